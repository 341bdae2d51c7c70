"""``engram purge --compact``: after it, a purged user's text is gone from the table files.

A purge deletes rows; PostgreSQL keeps the deleted tuples' bytes in the heap,
index and TOAST files until the pages are reused.  These tests read those files
(``pg_read_binary_file``, so the embedded server's superuser is needed) after a
CHECKPOINT has written every page out.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner

from engram import Engram
from engram.cli import main

MARKED_TABLES = ("events",)  # where the marker certainly lands (plus its indexes and TOAST)


def _marker() -> tuple[str, bytes]:
    core = uuid.uuid4().hex
    # The needle is the core: the tsvector keeps a stemmed lexeme, stemming only cuts suffixes.
    return f"zq{core}zq", core.encode()


async def _record(dsn: str, user_id: str, marker: str) -> None:
    async with Engram(dsn, memory_policy="default", embedder="hashing") as engram:
        for i in range(3):
            await engram.record_turn(
                f"task-{i}",
                user_id=user_id,
                agent_id="agent",
                user_message=f"My locker code is {marker}, remember it.",
                assistant_response=f"Noted: {marker}.",
            )


async def _files_holding(dsn: str, needle: bytes) -> list[str]:
    """Relations (of the tenant tables, their indexes and TOAST) whose files hold ``needle``."""
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            pytest.skip("reading table files needs a superuser (the embedded server has one)")
        await conn.execute("CHECKPOINT")
        rows = await conn.fetch(
            """
            WITH t AS (
                SELECT c.oid, c.reltoastrelid FROM pg_class c
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
                WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
            ), rels AS (
                SELECT oid FROM t
                UNION SELECT reltoastrelid FROM t WHERE reltoastrelid <> 0
                UNION SELECT i.indexrelid FROM pg_index i
                      WHERE i.indrelid IN (SELECT oid FROM t UNION SELECT reltoastrelid FROM t)
            )
            SELECT r.oid::regclass::text AS name, pg_relation_filepath(r.oid) AS path,
                   pg_relation_size(r.oid) AS size
            FROM rels r
            """
        )
        found = []
        for row in rows:
            if row["path"] is None or not row["size"]:
                continue
            # One segment file holds up to 1 GB: a test database never needs the next.
            data: bytes = await conn.fetchval("SELECT pg_read_binary_file($1)", row["path"])
            if needle in data:
                found.append(row["name"])
        return sorted(found)
    finally:
        await conn.close()


def _purge(dsn: str, user_id: str, *extra: str) -> Any:
    result = CliRunner().invoke(
        main, ["purge", "--user", user_id, "--yes", "--dsn", dsn, *extra], env={"ENGRAM_EMBEDDER": "hashing"}
    )
    assert result.exit_code == 0, result.output
    return result


def test_purge_compact_removes_the_users_text_from_the_table_files(database_url: str) -> None:
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    marker, needle = _marker()
    asyncio.run(_record(database_url, user_id, marker))
    assert "events" in asyncio.run(_files_holding(database_url, needle))  # the check can see it

    result = _purge(database_url, user_id, "--compact")

    assert "compacted (VACUUM FULL, ANALYZE): " in result.output
    assert "events" in result.output.split("compacted", 1)[1]
    assert asyncio.run(_files_holding(database_url, needle)) == []


def test_without_compact_the_bytes_stay_while_a_snapshot_can_see_them(database_url: str) -> None:
    """Why purge alone promises no more than "unreachable by any query": a transaction
    that began before the purge still sees the rows, so no VACUUM (not even FULL) may
    drop them; once it ends, --compact erases them."""
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    marker, needle = _marker()
    asyncio.run(_record(database_url, user_id, marker))

    async def scenario() -> tuple[list[str], list[str]]:
        reader = await asyncpg.connect(database_url)
        try:
            async with reader.transaction(isolation="repeatable_read"):
                # The snapshot is taken by the first query, before the purge.
                assert await reader.fetchval("SELECT count(*) FROM events WHERE user_id = $1", user_id) > 0
                await asyncio.to_thread(_purge, database_url, user_id)
                vacuum = await asyncpg.connect(database_url)
                try:
                    await vacuum.execute("VACUUM events")
                finally:
                    await vacuum.close()
                still_seen = await reader.fetchval("SELECT count(*) FROM events WHERE user_id = $1", user_id)
                assert still_seen > 0  # the old snapshot still reads them
                during = await _files_holding(database_url, needle)
        finally:
            await reader.close()
        await asyncio.to_thread(_purge, database_url, user_id, "--compact")
        return during, await _files_holding(database_url, needle)

    during, after = asyncio.run(scenario())
    assert "events" in during
    assert after == []
