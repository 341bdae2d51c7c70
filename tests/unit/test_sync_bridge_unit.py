"""engram.sync: one long-lived background loop per client, sync calls handed to it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from engram import ConfigurationError, EngramError
from engram.sync import BackgroundLoop, LoopReentryError, SyncBridge


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


def test_bridge_start_failure_stops_its_loop() -> None:
    threads_before = threading.active_count()
    with pytest.raises(ConfigurationError, match="unknown memory policy"):
        SyncBridge.start("postgresql://127.0.0.1:1/none", memory_policy="no-such-policy")
    assert threading.active_count() == threads_before


def test_import_engram_does_not_import_frameworks() -> None:
    code = (
        "import sys, engram, engram.sync\n"
        "heavy = ('langchain', 'langgraph', 'llama_index', 'engram_langchain', 'engram_llamaindex')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
