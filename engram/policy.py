"""``MemoryPolicy``: what a deployment remembers, how it recalls, and what it redacts.

A policy is an immutable, validated pydantic model.  Built-in presets live in the
``engram_policies`` plugin package and register through the ``register_policies``
hook like any third-party policy package would.  A policy can also be loaded from
a TOML file with :func:`load_policy_file`.

Policy files are trusted configuration, but a path may reach us from a caller
(a per-call ``memory_policy``), so errors about a file never quote its keys or
values: they name the file, the Engram setting concerned, and what is wrong.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigurationError
from .models import EngramModel

_SLOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Frozen(EngramModel):
    # Frozen like every public model; unknown keys are refused, so a typo in a
    # policy file is an error rather than a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class CriticalSlot(_Frozen):
    """A named fact that holds one current value per scope and is always recalled."""

    name: str = Field(description="Slot key, lower_snake_case.")
    description: str = Field(default="", description="What belongs in the slot; shown to extractors.")
    patterns: tuple[str, ...] = Field(
        default=(),
        description=(
            "Regular expressions the offline rules extractor tries on user turns. "
            "The first capture group (or the whole match) becomes the slot value."
        ),
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _SLOT_NAME.match(value):
            raise ValueError("slot names are lower_snake_case, 1-63 characters, starting with a letter")
        return value

    @field_validator("patterns")
    @classmethod
    def _check_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                # re.error says where, not what: the pattern is not quoted back.
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


INTENTS = ("quote", "task", "facts", "general")


class RouterRule(_Frozen):
    """Route queries matching ``pattern`` (a case-insensitive regex) to ``intent``."""

    pattern: str
    intent: str

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @field_validator("intent")
    @classmethod
    def _check_intent(cls, value: str) -> str:
        if value not in INTENTS:
            raise ValueError(f"intent must be one of {INTENTS}")
        return value


class HybridSettings(_Frozen):
    """How the ``ledger_hybrid`` strategy ranks conversation turns."""

    keyword_share: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="Share of the keyword score in an event's score; the rest is vector similarity.",
    )
    neighbour_weight: float = Field(
        default=0.3,
        ge=0.0,
        le=2.0,
        description="How much an event borrows from the events just before and after it in its task.",
    )
    task_weight: float = Field(
        default=0.6,
        ge=0.0,
        le=5.0,
        description="How much an event borrows from the best-scoring event of its task.",
    )
    pool: int = Field(
        default=100,
        ge=10,
        le=1000,
        description="Events taken from each of the keyword and vector searches before re-ranking.",
    )


class RecallSettings(_Frozen):
    """How ``recall`` mixes its strategies."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "critical_slots": 1.0,
            "facts_vector": 1.0,
            "facts_keyword": 1.0,
            "recent_ledger": 0.6,
            # ledger_hybrid already mixes words and meaning; the single-signal
            # strategies stay for exact-wording questions (the router boosts
            # ledger_search for quotes) and reuse its searches at no extra cost.
            "ledger_hybrid": 1.0,
            "ledger_search": 0.4,
            "ledger_vector": 0.3,
            "checkpoint": 0.7,
            "long_input": 0.8,
            "lineage": 0.5,
        },
        description="Reciprocal-rank-fusion weight per strategy; 0 disables a strategy.",
    )
    default_limit: int = Field(
        default=12, ge=1, le=200, description="Items returned when the caller gives no limit."
    )
    token_budget: int = Field(
        default=1500, ge=64, le=200_000, description="Upper bound on the context block's tokens."
    )
    recency_half_life_days: float = Field(
        default=30.0, gt=0, description="Age at which a memory's recency boost halves."
    )
    recent_turns: int = Field(
        default=6, ge=0, le=200, description="Ledger events of the current task to consider."
    )
    rrf_k: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="The k constant of reciprocal rank fusion; small values favour each list's top hits.",
    )
    router_rules: tuple[RouterRule, ...] = Field(
        default=(), description="Policy-specific routing rules, tried before the built-in router's."
    )
    hybrid: HybridSettings = Field(
        default_factory=HybridSettings, description="Tuning of the ledger_hybrid strategy."
    )

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        for weight in value.values():
            if weight < 0:
                raise ValueError("every weight must be >= 0")
        return value


class ChunkingSettings(_Frozen):
    """How ``record_long_input`` splits documents."""

    max_tokens: int = Field(default=220, ge=16, le=8192, description="Target chunk size in tokens.")
    overlap_tokens: int = Field(
        default=30, ge=0, le=2048, description="Tokens shared by neighbouring chunks."
    )

    @model_validator(mode="after")
    def _check_overlap(self) -> ChunkingSettings:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError("overlap_tokens must be smaller than max_tokens")
        return self


class RedactionSettings(_Frozen):
    """Which redactors run where."""

    before_model: tuple[str, ...] = Field(
        default=("secrets_and_pii",), description="Redactors applied to text sent to a hosted model."
    )
    before_storage: tuple[str, ...] = Field(
        default=(), description="Redactors applied to event content before it is written to the ledger."
    )


class RetentionSettings(_Frozen):
    """How long derived memory is kept (``None`` keeps it until purged)."""

    fact_ttl_days: int | None = Field(default=None, ge=1)
    job_history_days: int = Field(default=14, ge=1)


class MemoryPolicy(_Frozen):
    """A complete, validated description of a memory deployment's behaviour."""

    name: str = Field(description="Unique policy name, used by Engram(memory_policy=...).")
    description: str = Field(default="")
    extraction_instructions: str = Field(
        default="Extract durable facts about the user, their preferences, decisions and goals.",
        description="Guidance given to LLM extractors.",
    )
    categories: tuple[str, ...] = Field(
        default=("preference", "fact", "decision", "goal", "identity"),
        description="Fact categories extractors may assign.",
    )
    critical_slots: tuple[CriticalSlot, ...] = Field(default=())
    recall: RecallSettings = Field(default_factory=RecallSettings)
    checkpoint_every_turns: int = Field(
        default=8, ge=0, le=10_000, description="0 disables automatic checkpoints."
    )
    redaction: RedactionSettings = Field(default_factory=RedactionSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @field_validator("name")
    @classmethod
    def _check_policy_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", value):
            raise ValueError("policy names are 1-63 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("critical_slots")
    @classmethod
    def _unique_slots(cls, value: tuple[CriticalSlot, ...]) -> tuple[CriticalSlot, ...]:
        seen: set[str] = set()
        for index, slot in enumerate(value):
            if slot.name in seen:
                raise ValueError(f"duplicate critical slot name (entry {index} repeats an earlier one)")
            seen.add(slot.name)
        return value

    def slot(self, name: str) -> CriticalSlot | None:
        return next((s for s in self.critical_slots if s.name == name), None)

    def check_strategies(self, known: set[str], *, quote_names: bool = True) -> None:
        """Raise ``ConfigurationError`` if a weight names a strategy nobody registered.

        With ``quote_names=False`` (a policy read from a file) the unknown names are
        not quoted, only counted, with the registered names they most resemble.
        """
        unknown = sorted(set(self.recall.weights) - known)
        if not unknown:
            return
        if quote_names:
            named = f"unknown strategies {unknown}"
        else:
            named = f"{len(unknown)} unregistered strategy name(s){_suggest(unknown, known)}"
        raise ConfigurationError(
            f"policy {self.name!r}: recall.weights names {named}; known strategies: {sorted(known)}"
        )


#: The largest policy file read (bytes).  Real policies are a few kilobytes;
#: the bound keeps a path such as /dev/zero from exhausting memory.
MAX_POLICY_FILE_BYTES = 1_048_576
_TOML_POSITION = re.compile(r"at line \d+, column \d+|at end of document")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _policy_field_names() -> frozenset[str]:
    """Every field name of MemoryPolicy and the models nested in it."""
    names: set[str] = set()
    todo: list[type[BaseModel]] = [MemoryPolicy]
    while todo:
        model = todo.pop()
        for name, field in model.model_fields.items():
            names.add(name)
            todo.extend(m for m in _models_in(field.annotation) if m is not model)
    return frozenset(names)


def _suggest(unknown: list[str], candidates: set[str] | frozenset[str]) -> str:
    # Only our own names are printed: a suggestion is a name Engram defines.
    close = sorted({m for u in unknown for m in difflib.get_close_matches(u, sorted(candidates), n=1)})
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _describe_errors(exc: ValidationError, *, quote: bool, known_strategies: set[str]) -> str:
    """One line per problem.  Unless ``quote``, only Engram's names are printed."""
    own = _policy_field_names() | known_strategies
    problems: dict[str, None] = {}
    unknown: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if err["type"] == "extra_forbidden" and loc:
            unknown.setdefault(".".join(loc[:-1]) or "<root>", []).append(loc[-1])
            continue
        shown = [p if quote or p.isdigit() or p in own else "<key>" for p in loc]
        problems[f"{'.'.join(shown) or '<root>'}: {err['msg']}"] = None
    for where, keys in unknown.items():
        if quote:
            problems[f"{where}: unknown setting(s) {keys}"] = None
        else:
            problems[f"{where}: {len(keys)} unknown setting(s){_suggest(keys, own)}"] = None
    return "; ".join(problems)


def policy_from_mapping(
    data: dict[str, Any],
    *,
    source: str = "<mapping>",
    known_strategies: set[str] | None = None,
    quote_keys: bool = True,
) -> MemoryPolicy:
    """Validate a plain mapping into a policy, turning pydantic errors into ours.

    The caller holds the mapping, so errors quote its unknown keys by default.
    With ``quote_keys=False`` (what :func:`load_policy_file` uses) they print
    only Engram's own setting and strategy names, never the data's.
    """
    if known_strategies is None:
        from . import plugins  # the policy model itself knows no strategy

        known_strategies = set(plugins.recall_strategies())
    if not isinstance(data, dict):
        raise ConfigurationError(f"invalid memory policy in {source}: expected a mapping")
    try:
        policy = MemoryPolicy.model_validate(data)
    except ValidationError as exc:
        problems = _describe_errors(exc, quote=quote_keys, known_strategies=known_strategies)
        # Not chained: pydantic's own error quotes the input values.
        raise ConfigurationError(f"invalid memory policy in {source}: {problems}") from None
    policy.check_strategies(known_strategies, quote_names=quote_keys)
    return policy


def load_policy_file(path: str | Path, *, known_strategies: set[str] | None = None) -> MemoryPolicy:
    """Load a policy from a TOML file (keys as in ``MemoryPolicy``).

    Errors name the file and the problem but never quote its content: the
    path may have come from a caller, and the file may be anyone's.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigurationError(f"policy file {file} is not a regular file")
            raw = handle.read(MAX_POLICY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigurationError(f"policy file not found: {file}") from None
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigurationError(f"cannot read policy file {str(file)!r}: {reason}") from None
    if len(raw) > MAX_POLICY_FILE_BYTES:
        raise ConfigurationError(f"policy file {file} is larger than {MAX_POLICY_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"policy file {file} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Only the position: tomllib's messages quote keys and characters of the
        # file ("Cannot declare ('db', 'password') twice").
        found = _TOML_POSITION.search(str(exc))
        where = f" ({found.group(0)})" if found else ""
        raise ConfigurationError(f"policy file {file} is not valid TOML{where}") from None
    return policy_from_mapping(data, source=str(file), known_strategies=known_strategies, quote_keys=False)
