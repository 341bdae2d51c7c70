"""engram.sync: one long-lived background loop per client, sync calls handed to it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engram import ConfigurationError, Engram, EngramError
from engram.sync import BackgroundLoop, LoopReentryError, SyncBridge

AGENT = "sync-agent"


async def current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_background_loop_runs_everything_on_one_loop() -> None:
    with BackgroundLoop() as bg:
        loops = {bg.run(current_loop()) for _ in range(20)}
        assert loops == {bg.loop}
        assert bg.thread.daemon and bg.thread.is_alive()
        with pytest.raises(ZeroDivisionError):
            bg.run(_divide())
    assert not bg.thread.is_alive() and bg.loop.is_closed()
    with pytest.raises(ConfigurationError, match="closed"):
        bg.run(asyncio.sleep(0))


async def _divide() -> float:
    return 1 / 0


def test_background_loop_timeout() -> None:
    with BackgroundLoop(timeout=0.2) as bg, pytest.raises(TimeoutError):
        bg.run(asyncio.sleep(5))


def test_reentry_from_inside_the_loop_raises_instead_of_deadlocking() -> None:
    assert issubclass(LoopReentryError, EngramError)
    with BackgroundLoop(timeout=5) as bg:

        async def nested() -> None:
            bg.run(asyncio.sleep(0))  # a sync call made on the loop it would wait on

        with pytest.raises(LoopReentryError, match="inside the background event loop"):
            bg.run(nested())


@pytest.fixture
def bridge(database_url: str) -> Any:
    with SyncBridge.start(database_url, memory_policy="default", embedder="hashing") as b:
        yield b


def test_bridge_client_lives_on_the_bridge_loop(bridge: SyncBridge) -> None:
    assert bridge.owns_loop and bridge.client.is_connected
    pool = bridge.client._pool
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


def test_bridge_start_failure_stops_its_loop() -> None:
    threads_before = threading.active_count()
    with pytest.raises(ConfigurationError, match="unknown memory policy"):
        SyncBridge.start("postgresql://127.0.0.1:1/none", memory_policy="no-such-policy")
    assert threading.active_count() == threads_before


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


def test_import_engram_does_not_import_frameworks() -> None:
    code = (
        "import sys, engram, engram.sync\n"
        "heavy = ('langchain', 'langgraph', 'llama_index', 'engram_langchain', 'engram_llamaindex')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
