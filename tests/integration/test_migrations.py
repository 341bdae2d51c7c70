"""Migrations: applied once, in order, under a lock; edits to applied files are refused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from engram import Engram, MigrationError
from engram.db.migrate import available_migrations, migrate


async def test_concurrent_start_applies_each_migration_once(scratch_dsn: str) -> None:
    clients = [Engram(scratch_dsn, embedder="hashing") for _ in range(4)]
    await asyncio.gather(*(c.connect() for c in clients))
    for c in clients:
        await c.close()
    conn = await asyncpg.connect(scratch_dsn, statement_cache_size=0)
    try:
        rows = await conn.fetch("SELECT version FROM engram_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in available_migrations()]
        assert await migrate(conn) == []  # nothing left to do
        # extensions were created on the fresh database
        exts = {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}
        assert {"vector", "pg_trgm", "btree_gin"} <= exts
    finally:
        await conn.close()


async def test_edited_migration_is_refused(scratch_dsn: str) -> None:
    async with Engram(scratch_dsn, embedder="hashing"):
        pass
    conn = await asyncpg.connect(scratch_dsn, statement_cache_size=0)
    try:
        await conn.execute("UPDATE engram_migrations SET checksum = 'tampered' WHERE version = 1")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn)
        await conn.execute(
            "INSERT INTO engram_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
        await conn.execute(
            "UPDATE engram_migrations SET checksum = $1 WHERE version = 1", available_migrations()[0].checksum
        )
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn)
    finally:
        await conn.close()
    client = Engram(scratch_dsn, embedder="hashing")
    with pytest.raises(MigrationError):
        await client.connect()
    assert not client.is_connected
