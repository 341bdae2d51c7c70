"""The ``checkpoint`` job: summarise a task's new events every N turns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from ..interfaces import CheckpointRequest
from ..jobs.handlers import JobWork
from ..ledger import store as ledger_store
from ..ledger.models import Event, source_events
from . import store
from .models import check_summary

if TYPE_CHECKING:
    from ..facts.models import Fact
    from ..jobs.models import Job
    from ..runtime import Runtime


@dataclass
class CheckpointWork(JobWork):
    events: list[Event] = field(default_factory=list)
    summary: str | None = None
    through_event_id: int = 0
    turn_count: int = 0


class CheckpointHandler:
    """Runs ``checkpoint`` jobs through the extractor's ``summarize``."""

    kind = "checkpoint"

    def __init__(self, rt: Runtime, max_events: Callable[[], int]) -> None:
        self._rt = rt
        self._max_events = max_events

    async def prepare(self, job: Job) -> JobWork:
        work = CheckpointWork(job)
        assert job.task_id is not None
        async with self._rt.connection() as conn:
            previous = await store.latest_checkpoint(
                conn, user_id=job.user_id, agent_id=job.agent_id, task_id=job.task_id
            )
            events = await ledger_store.recent_task_events(
                conn,
                user_id=job.user_id,
                agent_id=job.agent_id,
                task_id=job.task_id,
                limit=self._max_events(),
            )
        previous_through = previous.through_event_id if previous else 0
        upper = job.payload.get("through_event_id")
        events = [
            e
            for e in events
            if e.event_id > previous_through and (not isinstance(upper, int) or e.event_id <= upper)
        ]
        work.through_event_id = events[-1].event_id if events else 0
        work.events = [e for e in events if not e.redacted]
        turns = job.payload.get("turn_count")
        work.turn_count = turns if isinstance(turns, int) else 0
        if not work.events:
            work.done = True
            return work
        request = CheckpointRequest(
            user_id=job.user_id,
            agent_id=job.agent_id,
            task_id=job.task_id,
            events=source_events(work.events),
            previous_summary=previous.summary if previous else None,
            policy=self._rt.policy,
        )
        work.summary = check_summary(await self._rt.extractor().summarize(request))
        return work

    def embedding_texts(self, work: JobWork) -> list[str]:
        return []

    def attach_embeddings(self, work: JobWork, vectors: Sequence[Sequence[float]]) -> None:
        return None

    async def write(self, conn: asyncpg.Connection, work: JobWork) -> tuple[dict[str, Any], list[Fact]]:
        assert isinstance(work, CheckpointWork)
        job = work.job
        checkpoint = None
        if not work.done and work.summary and job.task_id is not None:
            turns = await ledger_store.task_turn_count(
                conn, user_id=job.user_id, agent_id=job.agent_id, task_id=job.task_id, lock=True
            )
            previous = await store.latest_checkpoint(
                conn, user_id=job.user_id, agent_id=job.agent_id, task_id=job.task_id
            )
            # Skip if the task is gone, or a newer checkpoint (e.g. on demand) already covers these events.
            if turns is not None and (previous is None or previous.through_event_id < work.through_event_id):
                checkpoint = await store.insert_checkpoint(
                    conn,
                    user_id=job.user_id,
                    agent_id=job.agent_id,
                    task_id=job.task_id,
                    summary=work.summary,
                    through_event_id=work.through_event_id,
                    turn_count=work.turn_count or turns,
                )
        result = {
            "checkpoint_id": checkpoint.checkpoint_id if checkpoint else None,
            "events": len(work.events),
        }
        return result, []
