"""What the command modules share: error handling, common options, a client factory.

Kept apart from :mod:`engram.cli` (which imports every command module) so that a
command module never imports the module that imports it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import Any, TypeVar

import click

from .errors import EngramError
from .settings import redact_dsn

T = TypeVar("T")


def run_async(func: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async click callback, turning Engram errors into exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))
        except EngramError as exc:
            click.secho(f"error: {redact_dsn(str(exc))}", fg="red", err=True)  # no password on a terminal
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


def run(awaitable: Awaitable[T]) -> T:
    """Helper for command modules: run a coroutine with the CLI's error handling."""

    async def _wrap() -> T:
        return await awaitable

    return run_async(_wrap)()
