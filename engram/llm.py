"""Toolkit for extractor plugins that call a hosted language model.

An extractor that sends the ledger to a hosted model (OpenAI, Anthropic, or a
server that speaks one of their APIs) has to do the same things whatever the
provider: read its settings, redact text before it leaves the process, build
the extraction and summary prompts, describe the answer it expects as a JSON
Schema, validate that answer, map the model's quotes back to exact spans of the
ledger, and turn the provider SDK's exceptions into Engram's retry vocabulary
(`ExtractionError`, and `RateLimitedError` with the provider's Retry-After).

This module is that shared half, public so that third-party extractor plugins
can behave exactly like the built-in `openai` and `anthropic` ones.  A plugin
keeps only what is specific to its provider: how it builds its SDK client, how
it asks for structured output, and how it reads the answer out of a response.

Importing this module loads no provider SDK and no plugin; redactors are
resolved when a `BeforeModelRedactor` is created.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigurationError, ExtractionError, PluginError, RateLimitedError
from .interfaces import CandidateFact, CheckpointRequest, ExtractionRequest, SourceEvent, SourceSpan

__all__ = [
    "DEFAULT_TIMEOUT",
    "TOOL_NAME",
    "BeforeModelRedactor",
    "LoopBound",
    "SDKErrors",
    "clean_summary",
    "extraction_prompt",
    "facts_schema",
    "loads_model_json",
    "parse_facts",
    "parse_timeout",
    "retry_after_seconds",
    "sdk_error",
    "setting",
    "setting_or",
    "summary_prompt",
]

log = logging.getLogger("engram.extractors")

#: Seconds per request when neither the caller nor ENGRAM_LLM_TIMEOUT says otherwise.
DEFAULT_TIMEOUT = 30.0
#: Name of the tool (Anthropic) or response schema (OpenAI) the model answers through.
TOOL_NAME = "record_facts"
_MAX_FACT_CHARS = 2000  # CandidateFact.content's limit
_SNIPPET = 200  # how much of a bad model answer an error message may quote
# Where the kernel's redaction functions live; imported only when redactors are configured.
_REDACTION_MODULE = "engram.privacy.redaction"

T = TypeVar("T")

# --------------------------------------------------------------------------- settings


def setting(settings: object | None, attr: str, env: Sequence[str], default: str | None = None) -> str | None:
    """Resolve one configuration value for a plugin.

    The value is `settings.<attr>` when the settings object has a non-empty one,
    else the first non-empty environment variable named in `env`, else
    `default`.  Call it when the extractor is created, not at import time, so a
    process can still change its environment before then.
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
    """Like `setting`, but falls back to `default` so the result is always a string."""
    return setting(settings, attr, env) or default


def parse_timeout(raw: str | float | None) -> float:
    """Read a request timeout in seconds, as given to a constructor or in ENGRAM_LLM_TIMEOUT.

    `None` gives `DEFAULT_TIMEOUT`.  Anything that is not a positive, finite
    number raises `ConfigurationError`.
    """
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
    """Keeps one SDK client per running event loop, made on first use by `make`.

    SDK clients pool connections that belong to the loop that opened them; reusing
    one from another loop (a CLI that calls `asyncio.run` twice, a test suite
    with per-test loops) fails with "Event loop is closed".  Clients are held in
    a weak map keyed by the loop, so those of finished loops can be collected.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """The client for the running event loop, made now if this loop has none yet."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._make()
            self._clients[loop] = client
        return client

    def pop_current(self) -> T | None:
        """Forget the running loop's client and return it (so the caller can close it), if there is one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._clients.pop(loop, None)


# --------------------------------------------------------------------------- redaction


class _RedactionModule(Protocol):
    # The part of the kernel's redaction module used here.  Typed structurally so
    # that this module never imports it eagerly: it loads redactor plugins.
    def detect_all(self, text: str, redactors: Sequence[Any]) -> list[Any]: ...

    def apply_detections(self, text: str, detections: Sequence[Any]) -> str: ...


class BeforeModelRedactor:
    """Applies a policy's `redaction.before_model` redactors to text about to be sent.

    Create one per request from `policy.redaction.before_model` and call it on
    every piece of user-supplied text that goes into a prompt.  Redactor names
    are resolved when the object is created, so an unknown name raises
    `ConfigurationError` before anything is sent.  It fails closed: if redactors
    are configured but the redaction module cannot be loaded, it raises
    `PluginError` rather than let unredacted text leave the process.  With no
    redactor names it returns text unchanged.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._module: _RedactionModule | None = None
        self._redactors: Sequence[Any] = ()  # resolved objects, when the module can resolve
        if self.names:
            try:
                # Imported lazily: the kernel module loads redactor plugins, which
                # importing this module must not do.
                module = importlib.import_module(_REDACTION_MODULE)
            except ImportError as exc:
                raise PluginError(
                    "the policy asks for redaction before hosted models "
                    f"({', '.join(self.names)}) but {_REDACTION_MODULE} is unavailable; refusing to send text"
                ) from exc
            self._module = cast(_RedactionModule, module)
            # Resolve names to redactor objects once, up front: an unknown name
            # fails before anything is sent, and each text skips the registry lookup.
            resolve: Callable[[Sequence[str]], Iterable[Any]] | None = getattr(
                module, "resolve_redactors", None
            )
            if resolve is not None:
                self._redactors = list(resolve(self.names))

    def __call__(self, text: str) -> str:
        """Return `text` with every detected secret or personal detail replaced by a marker."""
        if self._module is None or not text:
            return text
        detections = self._module.detect_all(text, self._redactors or self.names)
        return self._module.apply_detections(text, detections) if detections else text


# --------------------------------------------------------------------------- prompts


def _events_json(events: Sequence[SourceEvent], redact: BeforeModelRedactor) -> str:
    # JSON rather than free text: event boundaries stay unambiguous and a turn
    # that imitates a prompt header cannot pass itself off as instructions.
    rows = [{"id": e.event_id, "role": e.role, "content": redact(e.content)} for e in events]
    return json.dumps(rows, ensure_ascii=False, indent=1)


def extraction_prompt(request: ExtractionRequest, redact: BeforeModelRedactor) -> tuple[str, str]:
    """Build the system and user messages that ask a model to extract facts.

    The system message carries the policy's extraction instructions, its
    categories and critical slots, and the rules of the answer; the user message
    carries the current slot values and the events as JSON.  Every piece of
    user-supplied text goes through `redact` first.  The model is expected to
    answer in the shape of `facts_schema(request)`.
    """
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


def summary_prompt(request: CheckpointRequest, redact: BeforeModelRedactor) -> tuple[str, str]:
    """Build the system and user messages that ask a model for a task checkpoint summary.

    The user message holds the previous checkpoint, if any, and the new events,
    all passed through `redact`.  The answer is plain text; check it with
    `clean_summary`.
    """
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
    """The JSON Schema of the answer `parse_facts` accepts, for this request's policy.

    It is valid both as an OpenAI strict-mode response schema and as an
    Anthropic tool's input schema.  Strict mode wants every property listed as
    required and no extra keys, so optional values are nullable rather than
    omitted; categories and slots are limited to the policy's own.
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
    """Parse a model's text answer as JSON.

    An empty answer or invalid JSON raises `ExtractionError` (quoting the start
    of the answer), named after `provider`, so the job is retried.
    """
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
    """Validate a model's answer (already parsed JSON) and turn it into candidate facts.

    The shape must match `facts_schema`, otherwise the whole answer is refused
    with an `ExtractionError` (a retry may well succeed).  Individual facts that
    are well-formed but unusable are dropped or normalised, and logged:

    * a source id that is not one of the request's events: the fact is dropped
      (the model invented lineage);
    * no source ids: the event containing the quote is used; without one the
      fact is dropped, since every stored fact must trace back to the ledger;
    * a quote not found verbatim in the original (unredacted) event content:
      the fact is kept without a span;
    * an unknown category or slot is set to `None`; confidence is clamped to
      0..1 (0.7 when missing).
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
    """Strip a model's summary; an empty one raises `ExtractionError`, named after `provider`."""
    summary = (text or "").strip()
    if not summary:
        raise ExtractionError(f"{provider}: the model returned an empty summary")
    return summary


# --------------------------------------------------------------------------- errors


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a provider asked us to wait, read from its response headers.

    `retry-after-ms` (sent by OpenAI) is more precise, so it wins over
    `retry-after`, which may be seconds or an HTTP date.  No header, or one that
    cannot be read, gives `None`, and the job queue falls back to its own backoff.
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


class SDKErrors(Protocol):
    """The exception classes `sdk_error` needs from a provider SDK.

    The `openai` and `anthropic` modules both provide them, so either module can
    be passed as it is.
    """

    @property
    def APIStatusError(self) -> type[Exception]:
        """Raised for an HTTP error status; has `status_code`, `response` and `message`."""
        ...

    @property
    def APITimeoutError(self) -> type[Exception]:
        """Raised when the request timed out."""
        ...

    @property
    def APIConnectionError(self) -> type[Exception]:
        """Raised when the server could not be reached."""
        ...


def _status_code(exc: Exception) -> int:
    status = getattr(exc, "status_code", 0)
    return status if isinstance(status, int) else 0


def _response_headers(exc: Exception) -> Mapping[str, str] | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers if isinstance(headers, Mapping) else None


def sdk_error(
    sdk: SDKErrors, exc: Exception, *, provider: str, what: str, where: str, timeout: float
) -> ExtractionError:
    """Translate a provider SDK's exception into the error an extractor should raise.

    Both official SDKs share the same exception taxonomy, so one mapping serves
    both.  A 429 becomes a `RateLimitedError` carrying the provider's
    Retry-After, so the job queue snoozes the job for that long; a server error,
    a client error, a timeout, a connection failure or a response body that is
    not JSON becomes an `ExtractionError`, which the queue retries with backoff.
    `provider` and `what` (such as "embeddings" or "extraction") name the call in
    the message, `where` names the server and `timeout` is the configured limit
    in seconds.  The caller raises the result, chained to `exc`.
    """
    if isinstance(exc, sdk.APIStatusError):
        status = _status_code(exc)
        if status == 429:
            return RateLimitedError(
                f"{provider} {what}: rate limited (429) by {where}",
                retry_after=retry_after_seconds(_response_headers(exc)),
            )
        if status >= 500:  # includes Anthropic's 529 "overloaded"
            return ExtractionError(f"{provider} {what}: server error {status} from {where}; will be retried")
        message = getattr(exc, "message", exc)
        return ExtractionError(f"{provider} {what}: request refused with {status} by {where}: {message}")
    # Timeouts first: the SDKs' APITimeoutError is a kind of APIConnectionError.
    if isinstance(exc, sdk.APITimeoutError):
        return ExtractionError(f"{provider} {what}: no answer from {where} within {timeout:g}s")
    if isinstance(exc, sdk.APIConnectionError):
        return ExtractionError(f"{provider} {what}: could not connect to {where}: {exc.__cause__ or exc}")
    if isinstance(exc, json.JSONDecodeError):
        return ExtractionError(f"{provider} {what}: {where} answered with a body that is not JSON")
    return ExtractionError(f"{provider} {what}: {type(exc).__name__}: {exc}")
