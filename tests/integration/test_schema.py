"""Catalog checks: the schema stays tenant-first so it can be distributed by user_id."""

from __future__ import annotations

import asyncpg

from engram import Engram

# Tables that are deliberately not tenant tables.  task_owners is the global
# directory of task ids (a reference table on Citus); engram_migrations and
# embedding_spaces describe the database itself.
GLOBAL_TABLES = {"engram_migrations", "task_owners", "embedding_spaces"}


async def _tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
    )
    return [r["tablename"] for r in rows]


async def test_every_tenant_table_is_tenant_first(engram: Engram, raw_conn: asyncpg.Connection) -> None:
    tables = [t for t in await _tables(raw_conn) if t not in GLOBAL_TABLES]
    assert "events" in tables and "tasks" in tables
    problems: list[str] = []
    for table in tables:
        columns = {
            r["attname"]: r["attnotnull"]
            for r in await raw_conn.fetch(
                "SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                "AND NOT attisdropped",
                table,
            )
        }
        for col in ("user_id", "agent_id"):
            if col not in columns:
                problems.append(f"{table}: no {col} column")
        if not columns.get("user_id", False):
            problems.append(f"{table}: user_id is nullable")
        constraints = await raw_conn.fetch(
            """SELECT conname, contype::text AS contype,
                      (SELECT attname FROM pg_attribute WHERE attrelid = conrelid AND attnum = conkey[1]) AS first_col
               FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'f', 'u')""",
            table,
        )
        if not any(c["contype"] == "p" for c in constraints):
            problems.append(f"{table}: no primary key")
        for c in constraints:
            if c["first_col"] != "user_id":
                problems.append(
                    f"{table}: constraint {c['conname']} starts with {c['first_col']}, not user_id"
                )
        unique_indexes = await raw_conn.fetch(
            """SELECT indexrelid::regclass::text AS name,
                      (SELECT attname FROM pg_attribute WHERE attrelid = indrelid AND attnum = indkey[0]) AS first_col
               FROM pg_index WHERE indrelid = $1::regclass AND indisunique""",
            table,
        )
        for idx in unique_indexes:
            if idx["first_col"] != "user_id":
                problems.append(f"{table}: unique index {idx['name']} starts with {idx['first_col']}")
    assert problems == []


async def test_user_id_has_one_type_everywhere(engram: Engram, raw_conn: asyncpg.Connection) -> None:
    types = await raw_conn.fetch(
        """SELECT DISTINCT data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND column_name = 'user_id'"""
    )
    assert [r["data_type"] for r in types] == ["text"]
