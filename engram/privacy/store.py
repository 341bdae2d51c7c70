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

# Every text/jsonb column, with what decides whether it holds content or an
# identifier (see is_content_column): keys (primary, unique, foreign, exclusion,
# unique indexes), CHECKs that enumerate or pattern-match its values (how kinds,
# states, roles, formats and hashes are declared), and an explicit column comment.
_TEXT_COLUMNS_SQL = """
SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attgenerated <> '' AS generated,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = a.attrelid AND k.contype IN ('p', 'u', 'f', 'x') AND a.attnum = ANY (k.conkey))
       OR EXISTS (SELECT 1 FROM pg_index i
                  WHERE i.indrelid = a.attrelid AND i.indisunique AND a.attnum = ANY (i.indkey::int2[]))
       AS keyed,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = a.attrelid AND k.contype = 'c' AND k.conkey = ARRAY[a.attnum]
                 AND (pg_get_constraintdef(k.oid) LIKE '%= ANY (ARRAY[%'
                      OR pg_get_constraintdef(k.oid) LIKE '% ~ %'))
       AS enumerated,
       coalesce(col_description(a.attrelid, a.attnum), '') AS comment
FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
  AND format_type(a.atttypid, a.atttypmod) IN ('text', 'jsonb')
"""

#: Names (of columns, and of keys inside JSON documents) that hold identifiers,
#: kinds, states or labels: redaction never rewrites them.  A short secret such as
#: ``p`` must not turn ``kind = 'checkpoint'`` into ``check[REDACTED]oint`` or break
#: a ``long_input_id`` that other rows point at.
IDENTIFIER_NAMES = frozenset(
    {
        "id",
        "kind",
        "state",
        "status",
        "role",
        "format",
        "slot",
        "category",
        "origin",
        "sha256",
        "space",
        "worker",
    }
)
IDENTIFIER_SUFFIXES = ("_id", "_ids", "_key", "_hash", "_space", "_owner")
#: A column comment that overrides the inference, for a table a plugin adds.
CONTENT_COMMENT = "engram:content"
IDENTIFIER_COMMENT = "engram:identifier"


def is_identifier_name(name: str) -> bool:
    """True for names such as ``task_id``, ``kind`` or ``quote_hash`` (see IDENTIFIER_NAMES)."""
    lowered = name.lower()
    return lowered in IDENTIFIER_NAMES or lowered.endswith(IDENTIFIER_SUFFIXES)


def is_content_column(column: asyncpg.Record) -> bool:
    """Whether redaction may rewrite this column (a row of ``_TEXT_COLUMNS_SQL``).

    Content unless it is generated (tsvectors follow from content by themselves),
    part of a key or unique index, limited to listed values or a pattern by a
    CHECK, or named like an identifier.  ``COMMENT ON COLUMN ... IS
    'engram:content'`` (or ``'engram:identifier'``) settles it explicitly.
    """
    comment = column["comment"].strip()
    if column["generated"]:
        return False
    if comment == CONTENT_COMMENT:
        return True
    if comment == IDENTIFIER_COMMENT:
        return False
    return not (column["keyed"] or column["enumerated"] or is_identifier_name(column["column_name"]))


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


# --------------------------------------------------------------------------- scope generations
# The one table this module names: the redaction fence (engram/privacy/fence.py
# holds the protocol; migrations/0009_scope_generations.sql the reasons).

_SELECT_GENERATIONS = """
SELECT g.user_id, g.agent_id, g.generation
FROM scope_generations g JOIN unnest($1::text[], $2::text[]) AS k(user_id, agent_id)
  ON g.user_id = k.user_id AND g.agent_id = k.agent_id
"""


async def capture_generations(
    conn: asyncpg.Connection, scopes: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The current generation of each ``(user_id, agent_id)``, creating missing rows.

    The row must exist before a writer reads its inputs: a redaction or purge can
    only wait for (and be detected by) a writer through a row both of them lock.
    Run outside a transaction (autocommit), so the rows exist for everyone at once.
    """
    wanted = sorted(set(scopes))
    if not wanted:
        return {}
    users = [u for u, _ in wanted]
    agents = [a for _, a in wanted]
    found: dict[tuple[str, str], int] = {}
    # A concurrent purge can delete a row between our insert and our select;
    # the next round creates it again with a fresh value.
    for _ in range(5):
        for r in await conn.fetch(_SELECT_GENERATIONS, users, agents):
            found[(r["user_id"], r["agent_id"])] = int(r["generation"])
        missing = [s for s in wanted if s not in found]
        if not missing:
            return found
        await conn.execute(
            """INSERT INTO scope_generations (user_id, agent_id, generation)
               SELECT k.user_id, k.agent_id, nextval('scope_generation_seq')
               FROM unnest($1::text[], $2::text[]) AS k(user_id, agent_id)
               ON CONFLICT (user_id, agent_id) DO NOTHING""",
            [u for u, _ in missing],
            [a for _, a in missing],
        )
    # Still missing after five rounds means purges keep racing us: report an
    # impossible generation, so the writer's check fails and it writes nothing.
    return {s: found.get(s, -1) for s in wanted}


async def lock_generation(conn: asyncpg.Connection, *, user_id: str, agent_id: str) -> int | None:
    """The scope's generation, share-locked until the transaction ends (None: purged).

    FOR SHARE waits for a redaction or purge that holds the row, then returns the
    committed value; while we hold it, a new redaction or purge waits for us.
    """
    value = await conn.fetchval(
        "SELECT generation FROM scope_generations WHERE user_id = $1 AND agent_id = $2 FOR SHARE",
        user_id,
        agent_id,
    )
    return int(value) if value is not None else None


async def bump_generation(conn: asyncpg.Connection, *, user_id: str, agent_id: str) -> int:
    """Give the scope a new generation (redaction); waits for writers holding the row."""
    value = await conn.fetchval(
        """INSERT INTO scope_generations (user_id, agent_id, generation)
           VALUES ($1, $2, nextval('scope_generation_seq'))
           ON CONFLICT (user_id, agent_id) DO UPDATE SET generation = nextval('scope_generation_seq')
           RETURNING generation""",
        user_id,
        agent_id,
    )
    return int(value)


async def retire_generations(conn: asyncpg.Connection, *, user_id: str, agent_id: str | None) -> int:
    """Delete the scope's generation rows (purge); waits for writers holding them."""
    status = await conn.execute(
        "DELETE FROM scope_generations WHERE user_id = $1 AND ($2::text IS NULL OR agent_id = $2)",
        user_id,
        agent_id,
    )
    return _row_count(status)


def replace_in_strings(value: Any, fragment: str) -> Any:
    """Replace ``fragment`` in the string values of a JSON document, never in its keys,
    its structure (rewriting the raw JSON text could break it or rename keys), or
    the values of identifier keys (``long_input_id``, ``kind``, ...: see
    :func:`is_identifier_name`), which the code reading the document relies on."""
    if isinstance(value, str):
        return value.replace(fragment, REDACTION_MARKER)
    if isinstance(value, list):
        return [replace_in_strings(v, fragment) for v in value]
    if isinstance(value, dict):
        return {
            k: v if is_identifier_name(str(k)) else replace_in_strings(v, fragment) for k, v in value.items()
        }
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
        new = replace_in_strings(row["doc"], fragment)
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
    """Replace every fragment in every content column of the scope's derived rows.

    Derived rows are those of every tenant table outside :data:`LEDGER_TABLES`
    (checkpoints, long-input chunks, queued job payloads, facts, lineage, and any
    table added later).  Only content columns are rewritten (:func:`is_content_column`),
    never identifiers, kinds or states, so the rewrite cannot break a constraint.
    Rows whose text changed lose their vector, since it encoded the secret.
    Returns the rows rewritten per table visited.
    """
    if not fragments:
        return {}
    counts: dict[str, int] = {}
    for table in await tenant_tables(conn):
        if table in LEDGER_TABLES:
            continue
        columns = await conn.fetch(_TEXT_COLUMNS_SQL, table)
        writable = [c for c in columns if is_content_column(c)]
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


async def compact_tables(
    conn: asyncpg.Connection, tables: Sequence[str], *, wait_seconds: float = 60.0
) -> tuple[list[str], list[int]]:
    """``VACUUM (FULL, ANALYZE)`` each of ``tables`` that is a tenant table.

    Returns the tables compacted and the pids of sessions whose snapshot was still
    older than the call after ``wait_seconds`` (empty: nothing could see purged rows).

    After a purge the deleted rows' bytes stay in the table and index files until
    the pages are reused; VACUUM FULL rewrites each table and its indexes (and its
    TOAST table) into new files and drops the old ones, and ANALYZE replaces the
    sampled values in the statistics.  A rewrite still copies rows that some open
    snapshot can see, so it first waits for sessions whose snapshot predates this
    call (an autovacuum ANALYZE, a long report) to move on.  It takes an ACCESS
    EXCLUSIVE lock on each table while it runs.  VACUUM cannot run inside a
    transaction: ``conn`` must be a plain connection (the one function here that
    does not run in the caller's transaction).  Names are checked against the
    catalog before they are quoted into the statement.
    """
    import asyncio
    import time

    if conn.is_in_transaction():
        raise RuntimeError("compact_tables needs a connection outside any transaction")
    horizon = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
    deadline = time.monotonic() + wait_seconds
    while True:
        older = [
            r["pid"]
            for r in await conn.fetch(
                """SELECT pid FROM pg_stat_activity
                   WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL
                     AND age(backend_xmin) > age(xid($1::text::xid8))""",
                horizon,
            )
        ]
        if not older or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    known = set(await tenant_tables(conn))
    done: list[str] = []
    for table in sorted(set(tables) & known):
        await conn.execute(f'VACUUM (FULL, ANALYZE) "{table}"')
        done.append(table)
    return done, older
