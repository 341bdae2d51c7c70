"""Running redactors and applying what they find.

Redactors are plugins (``register_redactors``); this module is the kernel side:
it looks redactors up by name, runs them, reconciles their detections into one
sorted, non-overlapping list, and replaces each detected span with a marker
such as ``[REDACTED:email]``.

Applications call :func:`redact`.  Engram itself uses :func:`detect_all` and
:func:`apply_detections` for a policy's ``redaction.before_storage`` (event
content, before it is written) and ``redaction.before_model`` (text sent to a
hosted model).

Only light imports here: redactors are resolved through the plugin manager at
call time, so importing this module loads no plugin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import ConfigurationError, InvalidInputError, PluginError
from ..interfaces import Detection, Redactor
from .models import RedactionResult

__all__ = [
    "DEFAULT_REDACTORS",
    "RedactionResult",
    "apply_detections",
    "detect_all",
    "redact",
    "resolve_redactors",
]

#: What :func:`redact` runs when no redactor is named.
DEFAULT_REDACTORS: tuple[str, ...] = ("secrets_and_pii",)

RedactorSpec = str | Redactor


def _available() -> dict[str, Redactor]:
    from .. import plugins  # deferred: the plugin manager loads entry points

    return plugins.redactors()


def resolve_redactors(redactors: RedactorSpec | Sequence[RedactorSpec] | None = None) -> list[Redactor]:
    """Turn names (or redactor objects) into redactor objects, in order.

    ``None`` means :data:`DEFAULT_REDACTORS`; a single string is one name.  An
    unknown name raises :class:`~engram.errors.ConfigurationError` naming the
    redactors that are installed.
    """
    if redactors is None:
        specs: Sequence[RedactorSpec] = DEFAULT_REDACTORS
    elif isinstance(redactors, str) or not isinstance(redactors, Sequence):
        # A lone name or object; guards against "secrets_and_pii" being
        # iterated character by character.
        specs = (redactors,)
    else:
        specs = redactors
    registry: dict[str, Redactor] | None = None
    resolved: list[Redactor] = []
    for spec in specs:
        if isinstance(spec, str):
            if registry is None:
                registry = _available()
            found = registry.get(spec)
            if found is None:
                available = ", ".join(sorted(registry)) or "none installed"
                raise ConfigurationError(f"unknown redactor {spec!r}; available redactors: {available}")
            resolved.append(found)
        elif isinstance(spec, Redactor):
            resolved.append(spec)
        else:
            raise InvalidInputError(
                f"a redactor must be a name or an object with .name and .detect(), got {type(spec).__name__}"
            )
    return resolved


def _merge(text_length: int, detections: Iterable[Detection]) -> list[Detection]:
    """Sorted, non-overlapping detections; overlapping spans become their union.

    The union takes the kind of its longest member (the first one on a tie), so
    nothing any redactor found is left visible and the marker stays meaningful.
    Spans that merely touch are kept apart.  Empty spans carry nothing and are
    dropped.
    """
    ordered = sorted(
        (d for d in detections if d.end > d.start),
        key=lambda d: (d.start, -(d.end - d.start)),
    )
    merged: list[Detection] = []
    group: list[Detection] = []
    group_end = -1

    def flush() -> None:
        if not group:
            return
        start = group[0].start
        representative = max(group, key=lambda d: d.end - d.start)  # max keeps the first on ties
        if len(group) == 1 or (representative.start == start and representative.end == group_end):
            merged.append(representative)
        else:
            merged.append(representative.model_copy(update={"start": start, "end": group_end}))

    for detection in ordered:
        if detection.end > text_length:
            raise InvalidInputError(
                f"detection {detection.kind!r} at {detection.start}:{detection.end} lies outside "
                f"a text of length {text_length}"
            )
        if group and detection.start < group_end:
            group.append(detection)
            group_end = max(group_end, detection.end)
            continue
        flush()
        group = [detection]
        group_end = detection.end
    flush()
    return merged


def _run(redactor: Redactor, text: str) -> list[Detection]:
    name = getattr(redactor, "name", type(redactor).__name__)
    found = redactor.detect(text)
    if not isinstance(found, list | tuple):
        raise PluginError(f"redactor {name!r} returned {type(found).__name__}, expected a list of Detection")
    checked: list[Detection] = []
    for item in found:
        if not isinstance(item, Detection):
            raise PluginError(f"redactor {name!r} returned {type(item).__name__}, expected Detection")
        if item.start > item.end or item.end > len(text):
            # A span outside the text means the redactor looked at something
            # else; applying it would redact the wrong characters.
            raise PluginError(
                f"redactor {name!r} reported {item.kind!r} at {item.start}:{item.end}, "
                f"outside a text of length {len(text)}"
            )
        checked.append(item if item.redactor else item.model_copy(update={"redactor": name}))
    return checked


def detect_all(text: str, redactors: RedactorSpec | Sequence[RedactorSpec] | None = None) -> list[Detection]:
    """Run ``redactors`` (names or objects; default :data:`DEFAULT_REDACTORS`) over ``text``.

    Returns sorted, non-overlapping detections with offsets into ``text``.
    Where redactors disagree about overlapping spans the union is reported, so
    applying the result hides everything any of them found.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text to redact must be str, got {type(text).__name__}")
    chosen = resolve_redactors(redactors)
    if not text:
        return []
    found: list[Detection] = []
    for redactor in chosen:
        found.extend(_run(redactor, text))
    return _merge(len(text), found)


def apply_detections(text: str, detections: Sequence[Detection]) -> str:
    """Replace every detected span of ``text`` with its ``[REDACTED:kind]`` marker.

    Detections may come in any order and may overlap (overlapping spans are
    merged first, see :func:`detect_all`).  Offsets must lie within ``text``.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text to redact must be str, got {type(text).__name__}")
    if not detections:
        return text
    for detection in detections:
        if not isinstance(detection, Detection):
            raise InvalidInputError(f"expected Detection objects, got {type(detection).__name__}")
        if detection.start > detection.end:
            raise InvalidInputError(
                f"detection {detection.kind!r} has start {detection.start} after end {detection.end}"
            )
    pieces: list[str] = []
    cursor = 0
    for detection in _merge(len(text), detections):
        pieces.append(text[cursor : detection.start])
        pieces.append(detection.marker)
        cursor = detection.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def redact(text: str, redactors: RedactorSpec | Sequence[RedactorSpec] | None = None) -> RedactionResult:
    """Find and replace sensitive spans in ``text``.

    ``redactors`` names registered redactors (default ``("secrets_and_pii",)``);
    an unknown name raises :class:`~engram.errors.ConfigurationError` and a
    non-``str`` text raises :class:`~engram.errors.InvalidInputError`.

    >>> result = redact("write to ada@example.org")
    >>> result.text
    'write to [REDACTED:email]'
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text to redact must be str, got {type(text).__name__}")
    chosen = resolve_redactors(redactors)
    detections = detect_all(text, chosen)
    return RedactionResult(
        text=apply_detections(text, detections),
        detections=detections,
        redactors=tuple(getattr(r, "name", type(r).__name__) for r in chosen),
    )
