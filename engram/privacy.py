"""Honest deletion: ``purge`` removes a tenant completely; ``redact_event`` removes a
secret from the ledger *and* from everything derived from it.

Both are catalog-driven: they find every table with a ``user_id`` column (and
every text/jsonb column in it) at run time, so a table added by a later
migration or a plugin cannot be forgotten.  Both run in one transaction and open
the ledger trigger's narrow exception with a transaction-local setting.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import Field

from .core import ClientCore
from .errors import InvalidInputError, NotFoundError
from .ledger import get_event
from .models import EngramModel
from .validation import check_id, check_row_id, check_scope, check_text

REDACTION_MARKER = "[REDACTED]"
#: Whole-event redaction also scrubs each sentence of the removed text from
#: derived rows; fragments shorter than this are too common to scrub safely.
MIN_FRAGMENT_CHARS = 8

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


class PurgeReport(EngramModel):
    """Rows removed per table by ``purge``."""

    user_id: str
    agent_id: str | None
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class RedactionReport(EngramModel):
    """What ``redact_event`` changed.  It never contains the redacted text."""

    event_id: int
    task_id: str
    reason: str
    redacted_at: datetime
    spans: tuple[tuple[int, int], ...] = Field(
        description="Redacted [start, end) offsets in the original content."
    )
    facts_superseded: tuple[int, ...] = ()
    rows_scrubbed: dict[str, int] = Field(
        default_factory=dict, description="Derived rows rewritten, per table."
    )
    jobs_requeued: int = 0


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


def _fragments(removed: Sequence[str], *, whole: bool) -> list[str]:
    """The strings to scrub from derived rows, longest first (so longer matches win)."""
    frags: set[str] = set()
    for text in removed:
        text = text.strip()
        if text:
            frags.add(text)
        if whole:
            for part in re.split(r"(?<=[.!?])\s+|\n+", text):
                part = part.strip()
                if len(part) >= MIN_FRAGMENT_CHARS:
                    frags.add(part)
    try:
        from .redaction import detect_all

        for text in removed:
            for d in detect_all(text, ["secrets_and_pii"]):
                frags.add(text[d.start : d.end])
    except Exception:  # the redactor plugin is optional here; the spans themselves are scrubbed anyway
        pass
    return sorted((f for f in frags if f), key=len, reverse=True)


def _check_spans(spans: Any, length: int) -> list[tuple[int, int]]:
    if spans is None:
        return [(0, length)]
    if isinstance(spans, str | bytes) or not isinstance(spans, Sequence) or not spans:
        raise InvalidInputError("spans must be a non-empty list of (start, end) pairs")
    out: list[tuple[int, int]] = []
    for span in spans:
        if not isinstance(span, Sequence) or isinstance(span, str | bytes) or len(span) != 2:
            raise InvalidInputError(f"each span must be a (start, end) pair, not {span!r}")
        start, end = span
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (start, end)):
            raise InvalidInputError("span offsets must be ints")
        if not 0 <= start < end <= length:
            raise InvalidInputError(f"span ({start}, {end}) is outside the event's content (length {length})")
        out.append((start, end))
    out.sort()
    for (_, e1), (s2, _) in itertools.pairwise(out):
        if s2 < e1:
            raise InvalidInputError("spans must not overlap")
    return out


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


class PrivacyAPI(ClientCore):
    """``purge`` and ``redact_event``."""

    async def purge(self, *, user_id: str, agent_id: str | None = None) -> PurgeReport:
        """Delete every row of ``user_id`` (or of that user and ``agent_id``) from every table.

        One transaction; returns the number of rows removed per table.  Other
        tenants' rows are untouched (every statement filters by user_id).
        """
        user_id = check_id(user_id, "user_id")
        if agent_id is not None:
            agent_id = check_id(agent_id, "agent_id")
        counts: dict[str, int] = {}
        async with self._transaction() as conn:
            await conn.execute("SELECT set_config('engram.ledger_write', 'purge', true)")
            for table in await tenant_tables(conn):
                if agent_id is None:
                    status = await conn.execute(f'DELETE FROM "{table}" WHERE user_id = $1', user_id)
                else:
                    status = await conn.execute(
                        f'DELETE FROM "{table}" WHERE user_id = $1 AND agent_id = $2', user_id, agent_id
                    )
                counts[table] = int(status.rsplit(" ", 1)[-1])
        return PurgeReport(user_id=user_id, agent_id=agent_id, counts=counts)

    async def redact_event(
        self,
        event_id: int,
        *,
        agent_id: str,
        user_id: str,
        reason: str,
        spans: Sequence[tuple[int, int]] | None = None,
    ) -> RedactionReport:
        """Replace an event's content (whole, or the given ``[start, end)`` spans) with a
        marker, and scrub the removed text from everything derived from it.

        Facts derived from the event are superseded and their text, vectors and
        lineage quotes scrubbed; checkpoints, long-input chunks and queued job
        payloads of the scope are scrubbed too; derivation is re-queued from the
        redacted text.  The event keeps a record of when and why, never what.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        event_id = check_row_id(event_id, "event_id")
        reason = check_text(reason, "reason", max_chars=1000)
        async with self._transaction() as conn:
            event = await get_event(conn, user_id=user_id, agent_id=agent_id, event_id=event_id)
            if event is None:
                raise NotFoundError(f"no event {event_id} in this scope")
            # Lock the row: two redactions of one event must not interleave.
            await conn.execute(
                "SELECT 1 FROM events WHERE user_id = $1 AND event_id = $2 FOR UPDATE", user_id, event_id
            )
            content = event.content
            ranges = _check_spans(spans, len(content))
            removed = [content[s:e] for s, e in ranges]
            new_content = content
            for s, e in reversed(ranges):
                new_content = new_content[:s] + REDACTION_MARKER + new_content[e:]
            whole = spans is None
            fragments = _fragments(removed, whole=whole)

            await conn.execute("SELECT set_config('engram.ledger_write', 'redact', true)")
            record = {
                "reason": reason,
                "spans": [list(r) for r in ranges],
                "whole": whole,
                "previous_redaction": event.redacted,
            }
            row = await conn.fetchrow(
                """UPDATE events SET content = $3, redacted_at = clock_timestamp(), redaction = $4::jsonb
                   WHERE user_id = $1 AND event_id = $2 RETURNING redacted_at""",
                user_id,
                event_id,
                new_content,
                record,
            )
            assert row is not None
            # The event's own vector was computed from the secret.
            await conn.execute(
                "DELETE FROM event_vectors WHERE user_id = $1 AND event_id = $2", user_id, event_id
            )

            derived = [
                r["fact_id"]
                for r in await conn.fetch(
                    "SELECT DISTINCT fact_id FROM fact_sources WHERE user_id = $1 AND agent_id = $2 AND event_id = $3",
                    user_id,
                    agent_id,
                    event_id,
                )
            ]
            superseded: list[int] = []
            if derived:
                rows = await conn.fetch(
                    """UPDATE facts SET status = 'superseded', valid_to = coalesce(valid_to, clock_timestamp()),
                                        embedding = NULL, embedding_space = NULL
                       WHERE user_id = $1 AND agent_id = $2 AND fact_id = ANY($3::bigint[])
                       RETURNING fact_id""",
                    user_id,
                    agent_id,
                    derived,
                )
                superseded = sorted(r["fact_id"] for r in rows)
                if whole:
                    # Everything these facts say came from the redacted text.
                    await conn.execute(
                        """UPDATE facts SET content = $3 WHERE user_id = $1 AND fact_id = ANY($2::bigint[])""",
                        user_id,
                        derived,
                        REDACTION_MARKER,
                    )
                    await conn.execute(
                        "UPDATE fact_sources SET quote = $4 WHERE user_id = $1 AND agent_id = $2 AND event_id = $3",
                        user_id,
                        agent_id,
                        event_id,
                        REDACTION_MARKER,
                    )
            scrubbed = await self._scrub_scope(conn, user_id=user_id, agent_id=agent_id, fragments=fragments)
            requeued = await self._enqueue_derivation(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                task_id=event.task_id,
                event_ids=[event_id],
                turn_count=0,
            )
        return RedactionReport(
            event_id=event_id,
            task_id=event.task_id,
            reason=reason,
            redacted_at=row["redacted_at"],
            spans=tuple(ranges),
            facts_superseded=tuple(superseded),
            rows_scrubbed={t: n for t, n in scrubbed.items() if n},
            jobs_requeued=1 if requeued is not None else 0,
        )

    async def _scrub_scope(
        self, conn: asyncpg.Connection, *, user_id: str, agent_id: str, fragments: Sequence[str]
    ) -> dict[str, int]:
        """Replace every fragment in every text/jsonb column of the scope's derived rows.

        The ledger itself is excluded (only the redacted event changes there).
        Rows whose text changed lose their vector, since it encoded the secret.
        """
        if not fragments:
            return {}
        counts: dict[str, int] = {}
        for table in await tenant_tables(conn):
            if table in ("events", "task_owners", "tasks"):
                continue
            columns = await conn.fetch(_TEXT_COLUMNS_SQL, table)
            writable = [
                c
                for c in columns
                if not c["generated"] and c["column_name"] not in ("user_id", "agent_id", "embedding_space")
            ]
            if not writable:
                continue
            has_vector = bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding' "
                    "AND NOT attisdropped AND NOT attnotnull",
                    table,
                )
            )
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
                    total += int(status.rsplit(" ", 1)[-1])
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
