"""The SQL of ``purge`` and of redaction's scrub: catalog-driven on purpose.

These statements name no table.  They read the catalog at run time for every
table with a ``user_id`` column (and every text/jsonb column in it), so a table
added later, by a migration or by a plugin, can never be forgotten by purge or
left holding a redacted secret.  Statements about one specific table's rows
live in that table's store.

Every statement filters by ``user_id`` (and ``agent_id`` where the scope has
one) and runs on a connection already inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

REDACTION_MARKER = "[REDACTED]"

#: The ledger itself: the scrub leaves it alone (only the redacted event changes there).
LEDGER_TABLES = ("events", "tasks")

_TABLES_SQL = """
SELECT c.relname AS table_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""

_FKS_SQL = """
SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE c.contype = 'f' AND n.nspname = current_schema()
"""

_TEXT_COLUMNS_SQL = """
SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attgenerated <> '' AS generated
FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
  AND format_type(a.atttypid, a.atttypmod) IN ('text', 'jsonb')
"""

# A nullable ``embedding`` column: the row's vector, dropped when its text changes.
_HAS_VECTOR_SQL = """
SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding'
AND NOT attisdropped AND NOT attnotnull
"""


def _row_count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    """Every table with a user_id column, children before parents (safe delete order)."""
    tables = [r["table_name"] for r in await conn.fetch(_TABLES_SQL)]
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for fk in await conn.fetch(_FKS_SQL):
        if fk["child"] in parents and fk["parent"] in parents and fk["child"] != fk["parent"]:
            parents[fk["child"]].add(fk["parent"])
    # Kahn's algorithm on the reversed graph: a table is deleted after all of its children.
    children: dict[str, set[str]] = {t: set() for t in tables}
    for child, ps in parents.items():
        for parent in ps:
            children[parent].add(child)
    ordered: list[str] = []
    pending = dict(children)
    while pending:
        ready = sorted(t for t, kids in pending.items() if not (kids - set(ordered)))
        if not ready:  # a cycle (none today); fall back to name order for the rest
            ready = sorted(pending)
        for t in ready:
            ordered.append(t)
            del pending[t]
    return ordered


async def purge_scope(conn: asyncpg.Connection, *, user_id: str, agent_id: str | None) -> dict[str, int]:
    """Delete every row of ``user_id`` (or of that user and ``agent_id``) from every tenant table.

    Opens the ledger trigger's ``purge`` exception for the rest of the
    transaction.  Returns the rows removed per table.
    """
    await conn.execute("SELECT set_config('engram.ledger_write', 'purge', true)")
    counts: dict[str, int] = {}
    for table in await tenant_tables(conn):
        if agent_id is None:
            status = await conn.execute(f'DELETE FROM "{table}" WHERE user_id = $1', user_id)
        else:
            status = await conn.execute(
                f'DELETE FROM "{table}" WHERE user_id = $1 AND agent_id = $2', user_id, agent_id
            )
        counts[table] = _row_count(status)
    return counts


def _replace_in_strings(value: Any, fragment: str) -> Any:
    """Replace ``fragment`` in the string values of a JSON document, never in its keys or
    structure (rewriting the raw JSON text could break it or rename keys)."""
    if isinstance(value, str):
        return value.replace(fragment, REDACTION_MARKER)
    if isinstance(value, list):
        return [_replace_in_strings(v, fragment) for v in value]
    if isinstance(value, dict):
        return {k: _replace_in_strings(v, fragment) for k, v in value.items()}
    return value


async def _scrub_json_column(
    conn: asyncpg.Connection,
    table: str,
    column: str,
    *,
    user_id: str,
    agent_id: str,
    fragment: str,
    vector_reset: str,
) -> int:
    """Scrub one jsonb column of the scope's rows.  Candidate rows are found by a text
    match on the encoded JSON, then rewritten value by value in Python."""
    encoded = json.dumps(fragment, ensure_ascii=False)[1:-1]  # as it appears inside a JSON string
    rows = await conn.fetch(
        f'SELECT ctid, "{column}" AS doc FROM "{table}" '
        f'WHERE user_id = $1 AND agent_id = $2 AND strpos("{column}"::text, $3) > 0 FOR UPDATE',
        user_id,
        agent_id,
        encoded,
    )
    changed = 0
    for row in rows:
        new = _replace_in_strings(row["doc"], fragment)
        if new == row["doc"]:
            continue  # the match was in a key or in the JSON syntax, not in a value
        await conn.execute(
            f'UPDATE "{table}" SET "{column}" = $4::jsonb{vector_reset} '
            "WHERE user_id = $1 AND agent_id = $2 AND ctid = $3",
            user_id,
            agent_id,
            row["ctid"],
            new,
        )
        changed += 1
    return changed


async def scrub_scope(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, fragments: Sequence[str]
) -> dict[str, int]:
    """Replace every fragment in every text/jsonb column of the scope's derived rows.

    Derived rows are those of every tenant table outside :data:`LEDGER_TABLES`
    (checkpoints, long-input chunks, queued job payloads, facts, lineage, and any
    table added later).  Rows whose text changed lose their vector, since it
    encoded the secret.  Returns the rows rewritten per table visited.
    """
    if not fragments:
        return {}
    counts: dict[str, int] = {}
    for table in await tenant_tables(conn):
        if table in LEDGER_TABLES:
            continue
        columns = await conn.fetch(_TEXT_COLUMNS_SQL, table)
        writable = [
            c
            for c in columns
            if not c["generated"] and c["column_name"] not in ("user_id", "agent_id", "embedding_space")
        ]
        if not writable:
            continue
        has_vector = bool(await conn.fetchval(_HAS_VECTOR_SQL, table))
        total = 0
        text_cols = [f'"{c["column_name"]}"' for c in writable if c["type"] == "text"]
        json_cols = [c["column_name"] for c in writable if c["type"] == "jsonb"]
        vector_reset = ", embedding = NULL, embedding_space = NULL" if has_vector else ""
        for frag in fragments:
            if text_cols:
                sets = ", ".join(f"{col} = replace({col}, $3::text, $4::text)" for col in text_cols)
                conds = " OR ".join(f"strpos({col}, $3::text) > 0" for col in text_cols)
                status = await conn.execute(
                    f'UPDATE "{table}" SET {sets}{vector_reset} WHERE user_id = $1 AND agent_id = $2 AND ({conds})',
                    user_id,
                    agent_id,
                    frag,
                    REDACTION_MARKER,
                )
                total += _row_count(status)
            for col in json_cols:
                total += await _scrub_json_column(
                    conn,
                    table,
                    col,
                    user_id=user_id,
                    agent_id=agent_id,
                    fragment=frag,
                    vector_reset=vector_reset,
                )
        counts[table] = total
    return counts
