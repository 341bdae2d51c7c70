"""Catalog checks: the schema stays tenant-first so it can be distributed by user_id."""

from __future__ import annotations

import asyncpg

from engram import Engram

# The only tables that are not tenant tables: they describe the database itself
# and hold nothing of any tenant (no user_id, agent_id or task_id column).  Every
# other table, including any a later migration adds, must be tenant-first.
DATABASE_TABLES = {"engram_migrations", "embedding_spaces"}


async def _tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
    )
    return [r["tablename"] for r in rows]


async def test_every_tenant_table_is_tenant_first(engram: Engram, raw_conn: asyncpg.Connection) -> None:
    every = await _tables(raw_conn)
    assert set(every) >= DATABASE_TABLES
    tables = [t for t in every if t not in DATABASE_TABLES]
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


async def test_database_tables_hold_no_tenant_data(engram: Engram, raw_conn: asyncpg.Connection) -> None:
    """The exceptions to tenant-first have no column that could name a tenant or a task."""
    rows = await raw_conn.fetch(
        """SELECT c.relname AS t, a.attname AS col FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relname = ANY($1::text[])
             AND a.attname IN ('user_id', 'agent_id', 'task_id') AND NOT a.attisdropped""",
        sorted(DATABASE_TABLES),
    )
    assert [(r["t"], r["col"]) for r in rows] == []


async def test_task_ids_are_keyed_by_the_whole_scope(engram: Engram, raw_conn: asyncpg.Connection) -> None:
    """A task id is unique only within (user_id, agent_id): every key that names a task
    (the tasks primary key and the foreign keys into it) has user_id, agent_id and
    task_id as its leading columns, so two scopes can each have a task of one name."""
    rows = await raw_conn.fetch(
        """SELECT conrelid::regclass::text AS t, conname, contype::text AS contype,
                  ARRAY(SELECT a.attname::text FROM unnest(conkey) WITH ORDINALITY k(num, ord)
                        JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.num
                        ORDER BY k.ord) AS cols
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
           WHERE n.nspname = current_schema() AND contype IN ('p', 'u', 'f')
           ORDER BY 1, 2"""
    )
    naming_a_task = [r for r in rows if "task_id" in r["cols"]]
    assert {r["t"] for r in naming_a_task} >= {"tasks", "events", "checkpoints", "long_inputs"}
    wrong = [
        f"{r['t']}.{r['conname']}: {r['cols']}"
        for r in naming_a_task
        if list(r["cols"][:3]) != ["user_id", "agent_id", "task_id"]
    ]
    assert wrong == []
    (tasks_pk,) = [r for r in rows if r["t"] == "tasks" and r["contype"] == "p"]
    assert list(tasks_pk["cols"]) == ["user_id", "agent_id", "task_id"]
