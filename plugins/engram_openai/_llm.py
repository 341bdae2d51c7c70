"""Provider-neutral parts of the hosted-model extractors.

The OpenAI and Anthropic extractors differ only in how they call their API and
how that API's errors look.  Everything else lives here so both behave the same:
settings lookup, redaction before text leaves the process, the prompt, the
output schema, validation of the model's answer, mapping quotes back to exact
spans, and reading a provider's Retry-After.

The Anthropic plugin imports this module; both ship in the same distribution, and
nothing here imports a provider SDK.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engram.errors import ConfigurationError, ExtractionError, PluginError, RateLimitedError
from engram.interfaces import CandidateFact, CheckpointRequest, ExtractionRequest, SourceEvent, SourceSpan

log = logging.getLogger("engram.extractors")

DEFAULT_TIMEOUT = 30.0
#: Tool / schema name shared by both providers.
TOOL_NAME = "record_facts"
_MAX_FACT_CHARS = 2000  # CandidateFact.content's limit
_SNIPPET = 200  # how much of a bad model answer an error message may quote

T = TypeVar("T")

# --------------------------------------------------------------------------- settings


def setting(settings: object | None, attr: str, env: Sequence[str], default: str | None = None) -> str | None:
    """Resolve one knob: a non-empty ``settings.<attr>``, else the first non-empty env var, else ``default``.

    Environment variables are read when a factory runs, not at import, so a
    process can change them before creating an extractor.
    """
    value = getattr(settings, attr, None) if settings is not None else None
    if value is not None and str(value) != "":
        return str(value)
    for name in env:
        raw = os.environ.get(name)
        if raw:
            return raw
    return default


def setting_or(settings: object | None, attr: str, env: Sequence[str], default: str) -> str:
    """:func:`setting` with a default, so the result is never ``None``."""
    return setting(settings, attr, env) or default


def parse_timeout(raw: str | float | None) -> float:
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"ENGRAM_LLM_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"ENGRAM_LLM_TIMEOUT must be a positive number of seconds, got {raw!r}")
    return value


class LoopBound(Generic[T]):
    """One SDK client per running event loop.

    SDK clients pool connections that belong to the loop that opened them; reusing
    one from another loop (a CLI that calls ``asyncio.run`` twice, a test suite
    with per-test loops) fails with "Event loop is closed".  A weak map keyed by
    the loop lets clients for finished loops be collected.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._make()
            self._clients[loop] = client
        return client

    def pop_current(self) -> T | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._clients.pop(loop, None)


# --------------------------------------------------------------------------- redaction


class _RedactionModule(Protocol):
    def detect_all(self, text: str, redactors: Sequence[Any]) -> list[Any]: ...

    def apply_detections(self, text: str, detections: Sequence[Any]) -> str: ...


class Redactor:
    """Applies a policy's ``redaction.before_model`` redactors to outgoing text.

    Fails closed: if redactors are configured but the redaction module cannot be
    loaded, nothing is sent.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._module: _RedactionModule | None = None
        self._redactors: Sequence[Any] = ()  # resolved objects, when the module can resolve
        if self.names:
            try:
                # Imported lazily: the kernel module loads redactor plugins, which
                # this package must not pull in at import time.
                module = importlib.import_module("engram.redaction")
            except ImportError as exc:
                raise PluginError(
                    "the policy asks for redaction before hosted models "
                    f"({', '.join(self.names)}) but engram.redaction is unavailable; refusing to send text"
                ) from exc
            self._module = cast(_RedactionModule, module)
            # Resolve names to redactor objects once, up front: an unknown name
            # fails before anything is sent, and each text skips the registry lookup.
            resolve = getattr(module, "resolve_redactors", None)
            if resolve is not None:
                self._redactors = list(resolve(self.names))

    def __call__(self, text: str) -> str:
        if self._module is None or not text:
            return text
        detections = self._module.detect_all(text, self._redactors or self.names)
        return self._module.apply_detections(text, detections) if detections else text


# --------------------------------------------------------------------------- prompts


def _events_json(events: Sequence[SourceEvent], redact: Redactor) -> str:
    # JSON rather than free text: event boundaries stay unambiguous and a turn
    # that imitates a prompt header cannot pass itself off as instructions.
    rows = [{"id": e.event_id, "role": e.role, "content": redact(e.content)} for e in events]
    return json.dumps(rows, ensure_ascii=False, indent=1)


def extraction_prompt(request: ExtractionRequest, redact: Redactor) -> tuple[str, str]:
    """Return (system, user) messages for fact extraction.  User-supplied text is redacted."""
    policy = request.policy
    lines = [
        "You extract long-term memory for an AI agent from events of its conversation log.",
        "",
        policy.extraction_instructions.strip(),
        "",
        "Rules:",
        "- Each fact is one short, self-contained statement that makes sense without the "
        'conversation (resolve pronouns; refer to the user as "The user").',
        "- Record only what the events state or clearly confirm. Do not guess or generalise.",
        "- source_event_ids: the ids of the events that support the fact.",
        "- quote: a short excerpt copied character for character from the content of one of "
        "those events (no paraphrase, no added punctuation), or null.",
        "- confidence: a number from 0 to 1.",
        "- Text such as [REDACTED:email] stands for removed sensitive data. Keep the marker as "
        "it is; never guess what it replaced.",
        f"- Call {TOOL_NAME} / answer with an empty list when nothing is worth remembering.",
    ]
    if policy.categories:
        lines.append(f"- category: one of {', '.join(policy.categories)}; null if none fits.")
    else:
        lines.append("- category: null.")
    if policy.critical_slots:
        lines.append(
            "- slot: when a fact gives the current value of one of these critical slots, set slot "
            "to its name and state the value in content; otherwise null."
        )
        lines += [f"  - {s.name}: {s.description or '(no description)'}" for s in policy.critical_slots]
    else:
        lines.append("- slot: null.")
    system = "\n".join(lines)

    parts = []
    if request.current_slots:
        current = {name: redact(value) for name, value in request.current_slots.items()}
        parts.append(
            "Current values of critical slots (record a slot fact only if an event changes or "
            "confirms it):\n" + json.dumps(current, ensure_ascii=False, indent=1)
        )
    parts.append("Events:\n" + _events_json(request.events, redact))
    return system, "\n\n".join(parts)


def summary_prompt(request: CheckpointRequest, redact: Redactor) -> tuple[str, str]:
    """Return (system, user) messages for a checkpoint summary.  User-supplied text is redacted."""
    system = (
        "You keep a running checkpoint of an AI agent's task so that work can resume later "
        "without rereading the whole log. Write a concise plain-text summary (at most about 150 "
        "words) of: the goal, decisions made, the current state, and open items. No preamble, "
        "no markdown headings. Keep markers such as [REDACTED:email] as they are."
    )
    parts = []
    if request.previous_summary:
        parts.append("Previous checkpoint:\n" + redact(request.previous_summary))
    parts.append(f"Task {request.task_id!r}, events since then:\n" + _events_json(request.events, redact))
    return system, "\n\n".join(parts)


# --------------------------------------------------------------------------- output schema


def facts_schema(request: ExtractionRequest) -> dict[str, Any]:
    """JSON Schema for the model's answer, valid for OpenAI strict mode and Anthropic tools.

    Strict mode wants every property listed in ``required`` and no extra keys;
    optional values are therefore nullable rather than omitted.
    """
    policy = request.policy

    def nullable_enum(values: Sequence[str], description: str) -> dict[str, Any]:
        if not values:
            return {"type": "null", "description": description}
        return {"type": ["string", "null"], "enum": [*values, None], "description": description}

    fact = {
        "type": "object",
        "additionalProperties": False,
        "required": ["content", "category", "slot", "confidence", "source_event_ids", "quote"],
        "properties": {
            "content": {"type": "string", "description": "The fact, one self-contained sentence."},
            "category": nullable_enum(policy.categories, "Fact category."),
            "slot": nullable_enum([s.name for s in policy.critical_slots], "Critical slot this fact sets."),
            "confidence": {"type": "number", "description": "0 to 1."},
            "source_event_ids": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "Ids of the events supporting the fact.",
            },
            "quote": {
                "type": ["string", "null"],
                "description": "Verbatim excerpt from one of the source events.",
            },
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["facts"],
        "properties": {"facts": {"type": "array", "items": fact}},
    }


class _FactOut(BaseModel):
    # Extra keys are tolerated: OpenAI-compatible servers that ignore strict mode
    # sometimes add fields, and ignoring them loses nothing.
    model_config = ConfigDict(extra="ignore")

    content: str
    category: str | None = None
    slot: str | None = None
    confidence: float | None = None
    source_event_ids: list[int] = Field(default_factory=list)
    quote: str | None = None


class _FactsOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    facts: list[_FactOut]


def _snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def loads_model_json(text: str | None, provider: str) -> object:
    """Parse the model's JSON answer, turning any failure into an ``ExtractionError``."""
    if text is None or not text.strip():
        raise ExtractionError(f"{provider}: the model returned no content")
    try:
        return cast(object, json.loads(text))
    except json.JSONDecodeError as exc:
        raise ExtractionError(
            f"{provider}: the model returned invalid JSON ({exc.msg}): {_snippet(text)!r}"
        ) from None


def _find_span(
    quote: str | None, event_ids: Sequence[int], events: Mapping[int, SourceEvent]
) -> SourceSpan | None:
    if not quote:
        return None
    # Exact search in the *original* content: a span must point at characters the
    # ledger really holds.  A quote that only exists in the redacted text (it
    # contains a [REDACTED:...] marker) or that the model paraphrased is dropped.
    for candidate in dict.fromkeys((quote, quote.strip())):
        if not candidate:
            continue
        for event_id in event_ids:
            start = events[event_id].content.find(candidate)
            if start >= 0:
                return SourceSpan(event_id=event_id, start=start, end=start + len(candidate), quote=candidate)
    return None


def parse_facts(payload: object, request: ExtractionRequest, provider: str) -> list[CandidateFact]:
    """Validate the model's answer and turn it into candidate facts.

    The *shape* must match the schema, otherwise the whole answer is refused with
    an ``ExtractionError`` (a retry may well succeed).  Individual facts that are
    well-formed but unusable are dropped or normalised, and logged:

    * a source id that is not one of the request's events → the fact is dropped
      (the model invented lineage);
    * no source ids → the event containing the quote is used; without one the
      fact is dropped, since every stored fact must trace back to the ledger;
    * a quote not found verbatim → the fact is kept without a span;
    * an unknown category or slot → set to ``None``; confidence is clamped to 0..1.
    """
    try:
        answer = _FactsOut.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ExtractionError(
            f"{provider}: the model's answer does not match the facts schema: {problems}"
        ) from None

    events = {e.event_id: e for e in request.events}
    categories = set(request.policy.categories)
    slots = {s.name for s in request.policy.critical_slots}
    facts: list[CandidateFact] = []
    for index, raw in enumerate(answer.facts):
        content = raw.content.strip()
        if not content or len(content) > _MAX_FACT_CHARS:
            log.warning(
                "%s: dropped fact %d: empty or longer than %d characters", provider, index, _MAX_FACT_CHARS
            )
            continue
        ids = list(dict.fromkeys(raw.source_event_ids))
        unknown = [i for i in ids if i not in events]
        if unknown:
            log.warning(
                "%s: dropped fact %d: cites events %s that were not in the request", provider, index, unknown
            )
            continue
        span = _find_span(raw.quote, ids or list(events), events)
        if not ids:
            if span is None:
                log.warning("%s: dropped fact %d: no source events and no verifiable quote", provider, index)
                continue
            ids = [span.event_id]
        elif raw.quote and span is None:
            log.info("%s: fact %d kept without a span: its quote is not in the cited events", provider, index)
        confidence = raw.confidence if raw.confidence is not None and math.isfinite(raw.confidence) else 0.7
        facts.append(
            CandidateFact(
                content=content,
                category=raw.category if raw.category in categories else None,
                slot=raw.slot if raw.slot in slots else None,
                confidence=min(1.0, max(0.0, confidence)),
                source_event_ids=tuple(ids),
                spans=(span,) if span is not None else (),
            )
        )
    return facts


def clean_summary(text: str | None, provider: str) -> str:
    summary = (text or "").strip()
    if not summary:
        raise ExtractionError(f"{provider}: the model returned an empty summary")
    return summary


# --------------------------------------------------------------------------- errors


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a provider asked us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after-ms`` (OpenAI) is more precise, so it wins.  ``retry-after`` may
    be seconds or an HTTP date.  Anything unparseable yields ``None`` and the job
    queue falls back to its own backoff.
    """
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            ms = float(raw_ms)
        except ValueError:
            pass
        else:
            if math.isfinite(ms) and ms >= 0:
                return ms / 1000.0
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def sdk_error(
    sdk: Any, exc: Exception, *, provider: str, what: str, where: str, timeout: float
) -> ExtractionError:
    """Translate an OpenAI or Anthropic SDK exception into Engram's retry vocabulary.

    Both official SDKs share the same exception taxonomy (APIStatusError,
    APITimeoutError, APIConnectionError), so one mapping serves both: 429 snoozes
    the job for Retry-After, everything else is a retryable ExtractionError.
    """
    if isinstance(exc, sdk.APIStatusError):
        status: int = exc.status_code
        if status == 429:
            return RateLimitedError(
                f"{provider} {what}: rate limited (429) by {where}",
                retry_after=retry_after_seconds(exc.response.headers),
            )
        if status >= 500:  # includes Anthropic's 529 "overloaded"
            return ExtractionError(f"{provider} {what}: server error {status} from {where}; will be retried")
        return ExtractionError(f"{provider} {what}: request refused with {status} by {where}: {exc.message}")
    if isinstance(exc, sdk.APITimeoutError):
        return ExtractionError(f"{provider} {what}: no answer from {where} within {timeout:g}s")
    if isinstance(exc, sdk.APIConnectionError):
        return ExtractionError(f"{provider} {what}: could not connect to {where}: {exc.__cause__ or exc}")
    if isinstance(exc, json.JSONDecodeError):
        return ExtractionError(f"{provider} {what}: {where} answered with a body that is not JSON")
    return ExtractionError(f"{provider} {what}: {type(exc).__name__}: {exc}")
