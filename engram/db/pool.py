"""The asyncpg pool and the transaction helpers every module uses."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from ..errors import ConfigurationError
from ..settings import EngramSettings, redact_dsn, scrub_secrets


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb <-> Python objects; set per connection because codecs are client-side
    # state, which is safe behind PgBouncer (nothing is stored on the server).
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, settings: EngramSettings) -> asyncpg.Pool:
    kwargs: dict[str, Any] = {
        "min_size": settings.min_pool_size,
        "max_size": settings.max_pool_size,
        "command_timeout": settings.command_timeout,
        "init": _init_connection,
    }
    if settings.pgbouncer:
        # Transaction pooling hands each transaction to any server connection, so
        # server-side prepared statements and session settings cannot be relied on.
        kwargs["statement_cache_size"] = 0
        kwargs["max_cached_statement_lifetime"] = 0
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(dsn, **kwargs)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        # ValueError and InterfaceError: asyncpg's DSN parser ("invalid literal for
        # int()" for a bad port, ClientConfigurationError for a bad sslmode).  Its
        # messages may quote a fragment of the DSN, so they are scrubbed of the
        # DSN's passwords; the server is named by the masked DSN.
        detail = scrub_secrets(f"{type(exc).__name__}: {exc}", dsn)
        error = ConfigurationError(f"cannot connect to PostgreSQL at {redact_dsn(dsn)}: {detail}")
        if detail != f"{type(exc).__name__}: {exc}":
            # The original exception holds the password; do not chain it, since a
            # logged traceback prints every exception of the chain.
            raise error from None
        raise error from exc
    return pool
