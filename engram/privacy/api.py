"""``PrivacyService``: honest deletion.  ``purge`` removes a tenant completely;
``redact_event`` removes a secret from the ledger *and* from everything derived from it.

Both reach every table through the catalog (see :mod:`engram.privacy.store`), so
a table added by a later migration or a plugin cannot be forgotten.  Both
validate their input first, run in one transaction, and open the ledger
trigger's narrow exception with a transaction-local setting.  Both start by
taking the scope's row of the redaction fence (:mod:`engram.privacy.fence`), so
a derived write in flight commits before they scrub, and one that read its
inputs before them writes nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from ..errors import ConfigurationError, InvalidInputError, NotFoundError
from ..facts import store as facts_store
from ..ledger import store as ledger_store
from ..validation import check_id, check_row_id, check_scope, check_text
from . import store
from .models import PurgeReport, RedactionReport
from .redaction import detect_all
from .store import REDACTION_MARKER

if TYPE_CHECKING:
    from ..jobs.api import JobQueue
    from ..runtime import Runtime

#: Whole-event redaction also scrubs each sentence of the removed text from
#: derived rows; fragments shorter than this are too common to scrub safely.
MIN_FRAGMENT_CHARS = 8
#: The shortest text (after trimming whitespace) a span may remove, and the
#: shortest fragment scrubbed from derived rows.  Four characters still cover a
#: PIN; anything shorter ("p", "4", "zq") occurs inside ordinary words, so a scrub
#: of the scope would shred unrelated text.  Shorter spans are refused.
MIN_SPAN_CHARS = 4
#: How the artifact event of a long input introduces its copy of the document.
_PREVIEW_PREFIX = "Preview: "


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
                if part.startswith(_PREVIEW_PREFIX):
                    # An artifact event's copy of its document's start: scrub the
                    # copied text itself (and its sentences) from the document.
                    preview = part[len(_PREVIEW_PREFIX) :].rstrip("…").strip()
                    frags.add(preview)
                    frags.update(p.strip() for p in re.split(r"(?<=[.!?])\s+", preview))
                if len(part) >= MIN_FRAGMENT_CHARS:
                    frags.add(part)
    try:
        for text in removed:
            for d in detect_all(text, ["secrets_and_pii"]):
                frags.add(text[d.start : d.end])
    except Exception:  # the redactor plugin is optional here; the spans themselves are scrubbed anyway
        pass
    return sorted((f for f in frags if len(f) >= MIN_SPAN_CHARS), key=len, reverse=True)


def _check_spans(spans: Any, content: str) -> list[tuple[int, int]]:
    length = len(content)
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
    for start, end in out:
        # Checked on the text, not the offsets, so the message can say why without the text.
        if len(content[start:end].strip()) < MIN_SPAN_CHARS:
            raise InvalidInputError(
                f"span ({start}, {end}) removes fewer than {MIN_SPAN_CHARS} characters (whitespace aside): "
                "widen it to include the words around the secret, or redact the whole event"
            )
    out.sort()
    for (_, e1), (s2, _) in itertools.pairwise(out):
        if s2 < e1:
            raise InvalidInputError("spans must not overlap")
    return out


class PrivacyService:
    """``purge`` and ``redact_event``."""

    def __init__(self, rt: Runtime, queue: JobQueue) -> None:
        self._rt = rt
        self._queue = queue

    async def purge(self, *, user_id: str, agent_id: str | None = None) -> PurgeReport:
        """Delete every row of ``user_id`` (or of that user and ``agent_id``) from every table.

        One transaction; returns the number of rows removed per table.  Other
        tenants' rows are untouched (every statement filters by user_id).
        """
        user_id = check_id(user_id, "user_id")
        if agent_id is not None:
            agent_id = check_id(agent_id, "agent_id")
        async with self._rt.transaction() as conn:
            # The fence first: wait for derived writes in flight (their rows are then
            # deleted below), and make those that read the scope before now write nothing.
            retired = await store.retire_generations(conn, user_id=user_id, agent_id=agent_id)
            counts = await store.purge_scope(conn, user_id=user_id, agent_id=agent_id)
            counts["scope_generations"] = counts.get("scope_generations", 0) + retired
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
        try:
            return await self._redact(
                event_id, agent_id=agent_id, user_id=user_id, reason=reason, spans=spans
            )
        except asyncpg.IntegrityConstraintViolationError as exc:
            # Only content columns are rewritten, so this means a table (a plugin's,
            # say) constrains the text of a content column; the transaction rolled back.
            raise ConfigurationError(
                f"redaction rolled back: a derived table refused the scrubbed text ({type(exc).__name__} "
                f"on {getattr(exc, 'table_name', None) or 'a table'}); mark its column with "
                f"COMMENT ON COLUMN ... IS '{store.IDENTIFIER_COMMENT}' or relax the constraint"
            ) from None

    async def _redact(
        self,
        event_id: int,
        *,
        agent_id: str,
        user_id: str,
        reason: str,
        spans: Sequence[tuple[int, int]] | None,
    ) -> RedactionReport:
        async with self._rt.transaction() as conn:
            # The fence first (engram/privacy/fence.py): waits for derived writes in
            # flight, so the scrub below sees them, and makes every writer that read
            # the scope before this commit write nothing.
            await store.bump_generation(conn, user_id=user_id, agent_id=agent_id)
            event = await ledger_store.get_event(conn, user_id=user_id, agent_id=agent_id, event_id=event_id)
            if event is None:
                raise NotFoundError(f"no event {event_id} in this scope")
            # Lock the row: two redactions of one event must not interleave.
            await ledger_store.lock_event(conn, user_id=user_id, event_id=event_id)
            content = event.content
            ranges = _check_spans(spans, content)
            removed = [content[s:e] for s, e in ranges]
            new_content = content
            for s, e in reversed(ranges):
                new_content = new_content[:s] + REDACTION_MARKER + new_content[e:]
            whole = spans is None
            fragments = _fragments(removed, whole=whole)

            redacted_at = await ledger_store.redact_event_content(
                conn,
                user_id=user_id,
                event_id=event_id,
                content=new_content,
                redaction={
                    "reason": reason,
                    "spans": [list(r) for r in ranges],
                    "whole": whole,
                    "previous_redaction": event.redacted,
                },
            )
            # The event's own vector was computed from the secret.
            await ledger_store.delete_event_vectors(conn, user_id=user_id, event_id=event_id)

            derived = await facts_store.fact_ids_from_event(
                conn, user_id=user_id, agent_id=agent_id, event_id=event_id
            )
            superseded: list[int] = []
            if derived:
                superseded = await facts_store.supersede_without_successor(
                    conn, user_id=user_id, agent_id=agent_id, fact_ids=derived
                )
                if whole:
                    # Everything these facts say came from the redacted text.
                    await facts_store.replace_fact_contents(
                        conn, user_id=user_id, fact_ids=derived, content=REDACTION_MARKER
                    )
                    await facts_store.replace_event_quotes(
                        conn, user_id=user_id, agent_id=agent_id, event_id=event_id, quote=REDACTION_MARKER
                    )
            scrubbed = await store.scrub_scope(conn, user_id=user_id, agent_id=agent_id, fragments=fragments)
            # Engram's own copies in the ledger: a long input's artifact event repeats
            # the start of its document (and its title), so the scrub covers it too.
            artifacts = await self._scrub_artifacts(conn, user_id, agent_id, event_id, fragments, reason)
            if artifacts:
                scrubbed["events"] = scrubbed.get("events", 0) + artifacts
            requeued = await self._queue.enqueue_derivation(
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
            redacted_at=redacted_at,
            spans=tuple(ranges),
            facts_superseded=tuple(superseded),
            rows_scrubbed={t: n for t, n in scrubbed.items() if n},
            jobs_requeued=1 if requeued is not None else 0,
        )

    async def _scrub_artifacts(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        agent_id: str,
        event_id: int,
        fragments: Sequence[str],
        reason: str,
    ) -> int:
        """Scrub the fragments from the scope's long-input artifact events; returns how many changed.

        They are rewritten through the ledger's redaction path and marked redacted
        (with a record naming the event whose redaction caused it), exactly as if
        each had been redacted by hand.
        """
        if not fragments:
            return 0
        changed = 0
        for found in await ledger_store.artifact_events_containing(
            conn, user_id=user_id, agent_id=agent_id, fragments=fragments
        ):
            content, metadata = found.content, found.metadata
            for frag in fragments:
                content = content.replace(frag, REDACTION_MARKER)
                metadata = store.replace_in_strings(metadata, frag)
            if content == found.content and metadata == found.metadata:
                continue  # the match was in an identifier (the document's id or hash)
            await ledger_store.redact_event_content(
                conn,
                user_id=user_id,
                event_id=found.event_id,
                content=content,
                metadata=metadata,
                redaction={
                    "reason": reason,
                    "copy_of_redacted_event": event_id,
                    "whole": False,
                    "previous_redaction": found.redacted,
                },
            )
            await ledger_store.delete_event_vectors(conn, user_id=user_id, event_id=found.event_id)
            changed += 1
        return changed
