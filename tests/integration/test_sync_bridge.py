"""engram.sync: one long-lived background loop per client, sync calls handed to it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engram import ConfigurationError, Engram
from engram.sync import LoopReentryError, SyncBridge

AGENT = "sync-agent"


async def current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@pytest.fixture
def bridge(database_url: str) -> Any:
    with SyncBridge.start(database_url, memory_policy="default", embedder="hashing") as b:
        yield b


def test_bridge_client_lives_on_the_bridge_loop(bridge: SyncBridge) -> None:
    assert bridge.owns_loop and bridge.client.is_connected
    pool = bridge.client._rt.db.pool
    assert pool is not None and pool._loop is bridge.loop  # the pool belongs to that loop
    user = f"sync-{uuid.uuid4().hex[:10]}"
    fact = bridge.run(bridge.client.add("Sync callers can write facts.", user_id=user, agent_id=AGENT))
    assert fact.fact_id > 0
    # Many threads at once share the one loop and pool; no loop or thread per call.
    threads_before = threading.active_count()

    def recall(_: int) -> str:
        return bridge.run(bridge.client.recall("facts", user_id=user, agent_id=AGENT)).context

    with ThreadPoolExecutor(8) as pool_ex:
        contexts = list(pool_ex.map(recall, range(32)))
    assert all("Sync callers can write facts." in c for c in contexts)
    assert threading.active_count() == threads_before


def test_bridge_reentry_raises(bridge: SyncBridge) -> None:
    async def sync_call_inside() -> None:
        bridge.run(bridge.client.list_facts(user_id="u", agent_id=AGENT))

    with pytest.raises(LoopReentryError, match="deadlock"):
        bridge.run(sync_call_inside())


async def test_bridge_arun_from_another_loop(bridge: SyncBridge) -> None:
    """From the test's loop, ``arun`` hands the coroutine to the bridge's loop and awaits it."""
    assert asyncio.get_running_loop() is not bridge.loop
    ran_on = await bridge.arun(current_loop())
    assert ran_on is bridge.loop
    facts = await bridge.arun(bridge.client.list_facts(user_id="nobody-" + uuid.uuid4().hex, agent_id=AGENT))
    assert facts == []


def test_bridge_close_stops_loop_and_client(database_url: str) -> None:
    bridge = SyncBridge.start(database_url, memory_policy="default", embedder="hashing")
    client, loop = bridge.client, bridge.loop
    assert loop is not None
    bridge.close()
    bridge.close()  # idempotent
    assert bridge.closed and not client.is_connected and loop.is_closed()
    with pytest.raises(ConfigurationError, match="closed"):
        bridge.run(asyncio.sleep(0))


async def test_attached_bridge_on_the_client_loop(engram: Any) -> None:
    """An async app's client: async calls await in place, sync calls on its loop are refused."""
    bridge = SyncBridge.attach(engram)
    assert bridge.loop is asyncio.get_running_loop() and not bridge.owns_loop
    user = f"sync-{uuid.uuid4().hex[:10]}"
    assert await bridge.arun(engram.list_facts(user_id=user, agent_id=AGENT)) == []
    with pytest.raises(LoopReentryError):
        bridge.run(engram.list_facts(user_id=user, agent_id=AGENT))
    # From a worker thread, while this loop is free, the sync call is handed over.
    facts = await asyncio.to_thread(lambda: bridge.run(engram.list_facts(user_id=user, agent_id=AGENT)))
    assert facts == []
    bridge.close()
    assert engram.is_connected  # an attached bridge does not own the client


def test_unbound_bridge_refuses_sync_calls(database_url: str) -> None:
    client = Engram(database_url, memory_policy="default", embedder="hashing")
    bridge = SyncBridge.wrap(client)
    assert bridge.loop is None
    with pytest.raises(ConfigurationError, match=r"SyncBridge\.start"):
        bridge.run(client.list_facts(user_id="u", agent_id=AGENT))
    assert SyncBridge.wrap(bridge) is bridge
