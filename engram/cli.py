"""The ``engram`` command line.

Exit codes scripts can rely on: 0 success, 1 an Engram error (message on
stderr), 2 bad usage (click's own), 3 a health check failed (``doctor``),
130 interrupted.  Subcommands that belong to one capability live next to it and
are collected from ``COMMAND_MODULES``; each such module exposes ``commands``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import Any, TypeVar

import click

from .errors import EngramError

T = TypeVar("T")

COMMAND_MODULES = (
    "engram.demo",
    "engram.jobs.cli",
    "engram.recall.cli",
    "engram.longinput_cli",
    "engram.privacy_cli",
    "engram.admin_cli",
)


def run_async(func: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async click callback, turning Engram errors into exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))
        except EngramError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper


def client_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--dsn and --policy, shared by commands that open a client."""
    func = click.option("--policy", default=None, help="Memory policy name or TOML path (ENGRAM_POLICY).")(
        func
    )
    func = click.option(
        "--dsn", default=None, help="PostgreSQL DSN (ENGRAM_DATABASE_URL); default: the embedded database."
    )(func)
    return func


def make_client(dsn: str | None, policy: str | None, **kwargs: Any) -> Any:
    from .client import Engram

    return Engram(dsn, memory_policy=policy, **kwargs)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
@click.version_option(package_name="engram-pg")
def main() -> None:
    """Engram: long-term memory for LLM agents on PostgreSQL."""


@main.command()
@client_options
@run_async
async def migrate(dsn: str | None, policy: str | None) -> None:
    """Apply pending database migrations (also done on every connect)."""
    from .db.migrate import available_migrations

    async with make_client(dsn, policy) as client, client._connection() as conn:
        rows = await conn.fetch("SELECT version, name, applied_at FROM engram_migrations ORDER BY version")
    click.echo(f"schema is at version {rows[-1]['version']} ({len(available_migrations())} migrations known)")
    for row in rows:
        click.echo(f"  {row['version']:04d} {row['name']}  applied {row['applied_at']:%Y-%m-%d %H:%M:%S}")


@main.group()
def server() -> None:
    """Manage the embedded PostgreSQL server under ENGRAM_HOME."""


@server.command("status")
def server_status() -> None:
    """Show whether the embedded server runs, and where."""
    from .settings import EngramSettings

    settings = EngramSettings()
    pgdata = settings.home / "pgdata"
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        click.echo(f"running (pid {pid_file.read_text().splitlines()[0]}) with data in {pgdata}")
    else:
        click.echo(f"not running; data folder {pgdata}")


@server.command("stop")
def server_stop() -> None:
    """Stop the embedded server (clients connected to it lose their connections)."""
    from .db.embedded import stop_embedded
    from .settings import EngramSettings

    stopped = stop_embedded(EngramSettings().home)
    click.echo("stopped" if stopped else "was not running")


def _load_command_modules() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that capability is not built into this version
                continue
            raise
        for command in getattr(module, "commands", ()):
            main.add_command(command)


_load_command_modules()


def run(awaitable: Awaitable[T]) -> T:
    """Helper for command modules: run a coroutine with the CLI's error handling."""

    async def _wrap() -> T:
        return await awaitable

    return run_async(_wrap)()


if __name__ == "__main__":  # pragma: no cover
    main()
