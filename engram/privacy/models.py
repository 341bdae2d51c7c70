"""What ``purge``, ``redact_event`` and :func:`~engram.privacy.redaction.redact` return."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, computed_field

from ..interfaces import Detection
from ..models import EngramModel


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


class RedactionResult(EngramModel):
    """The outcome of :func:`~engram.privacy.redaction.redact`.

    ``detections`` are located in the text that was *passed in*, so they can be
    used to highlight or audit the original; ``text`` is the redacted copy.
    """

    text: str = Field(description="The input with every detected span replaced by its marker.")
    detections: list[Detection] = Field(
        default_factory=list,
        description="Sorted, non-overlapping spans, as offsets into the original text.",
    )
    redactors: tuple[str, ...] = Field(default=(), description="Names of the redactors that ran.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def redacted(self) -> bool:
        """Whether anything was replaced."""
        return bool(self.detections)
