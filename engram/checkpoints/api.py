"""``CheckpointService``: read a task's latest checkpoint, or write one now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ExtractionError, InvalidInputError, NotFoundError
from ..interfaces import CheckpointRequest
from ..ledger import store as ledger_store
from ..ledger.models import source_events
from ..privacy import fence
from ..validation import check_id, check_scope
from . import store
from .models import Checkpoint, check_summary

if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncpg

    from ..runtime import Runtime


#: A summary made while the scope was redacted is made again, this many times at most.
_MAX_FENCE_RETRIES = 5


class CheckpointService:
    """Task checkpoints on demand (workers write them through the ``checkpoint`` job)."""

    def __init__(self, rt: Runtime, max_events: Callable[[], int]) -> None:
        self._rt = rt
        self._max_events = max_events

    async def _require_task(
        self, conn: asyncpg.Connection, task_id: str, user_id: str, agent_id: str
    ) -> None:
        if not await ledger_store.has_task(conn, user_id=user_id, agent_id=agent_id, task_id=task_id):
            raise NotFoundError(f"no task {task_id!r} in this scope")

    async def latest_checkpoint(self, task_id: str, *, agent_id: str, user_id: str) -> Checkpoint | None:
        """The task's newest checkpoint, or None if it has none yet."""
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        async with self._rt.connection() as conn:
            await self._require_task(conn, task_id, user_id, agent_id)
            return await store.latest_checkpoint(conn, user_id=user_id, agent_id=agent_id, task_id=task_id)

    async def checkpoint(self, task_id: str, *, agent_id: str, user_id: str) -> Checkpoint:
        """Summarise the task now (the extractor's ``summarize``) and store a checkpoint.

        With no new events since the latest checkpoint, that checkpoint is returned.
        The extractor is called with no transaction open.  If a redaction in the
        scope commits while the summary is being written, the summary is thrown
        away and made again from the redacted events (see :mod:`engram.privacy.fence`).
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        for _ in range(_MAX_FENCE_RETRIES):
            try:
                return await self._checkpoint_once(task_id, agent_id=agent_id, user_id=user_id)
            except fence.InputsChanged as changed:
                if changed.freshness == "purged":
                    raise NotFoundError(f"task {task_id!r} was purged") from None
        raise ExtractionError(
            f"task {task_id!r} was redacted {_MAX_FENCE_RETRIES} times while being summarised; try again"
        )

    async def _checkpoint_once(self, task_id: str, *, agent_id: str, user_id: str) -> Checkpoint:
        extractor = self._rt.extractor()
        async with self._rt.connection() as conn:
            await self._require_task(conn, task_id, user_id, agent_id)
            # Before reading the events the summary is made from (the redaction fence).
            generation = await fence.capture(conn, user_id=user_id, agent_id=agent_id)
            previous = await store.latest_checkpoint(
                conn, user_id=user_id, agent_id=agent_id, task_id=task_id
            )
            through = previous.through_event_id if previous else 0
            events = [
                e
                for e in await ledger_store.recent_task_events(
                    conn, user_id=user_id, agent_id=agent_id, task_id=task_id, limit=self._max_events()
                )
                if e.event_id > through
            ]
            turns = await ledger_store.task_turn_count(
                conn, user_id=user_id, agent_id=agent_id, task_id=task_id
            )
        if not events:
            if previous is not None:
                return previous
            raise InvalidInputError(f"task {task_id!r} has no events to summarise")
        usable = [e for e in events if not e.redacted]
        summary = check_summary(
            await extractor.summarize(
                CheckpointRequest(
                    user_id=user_id,
                    agent_id=agent_id,
                    task_id=task_id,
                    events=source_events(usable),
                    previous_summary=previous.summary if previous else None,
                    policy=self._rt.policy,
                )
            )
        )
        async with self._rt.transaction() as conn:
            # First, before any other lock: a redaction or purge since the capture
            # means the summary may repeat removed text.
            await fence.require_current(conn, generation)
            locked = await ledger_store.task_turn_count(
                conn, user_id=user_id, agent_id=agent_id, task_id=task_id, lock=True
            )
            if locked is None:
                raise NotFoundError(f"task {task_id!r} was purged")
            return await store.insert_checkpoint(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                summary=summary,
                through_event_id=events[-1].event_id,
                turn_count=turns or 0,
            )
