"""Extractive checkpoint summaries: copied sentences in fixed sections, never generated prose.

The summary is a handful of labelled lines so that the next summary can read the
previous one back (:func:`parse_summary`) and carry forward what the new events do
not replace: the goal, earlier decisions, and, while nobody has answered yet, the
open questions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from engram.interfaces import SourceEvent
from engram.policy import MemoryPolicy

from ._rules import is_question, statement_facts
from ._text import sentences

MAX_SUMMARY_CHARS = 1200
_FIELD_CHARS = 220
_ITEM_CHARS = 160
_MAX_DECISIONS = 5
_MAX_QUESTIONS = 3

# Statements are classified with every category enabled, whatever the task's
# policy allows for stored facts: the summary needs to know a goal is a goal.
_CLASSIFY = MemoryPolicy(
    name="rules-summary", categories=("preference", "fact", "decision", "goal", "identity")
)

_FENCED = re.compile(r"(```|~~~).*?(?:\1|$)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LABELS = {
    "goal": "Goal",
    "latest_request": "Latest request",
    "last_action": "Last assistant action",
}


@dataclass
class Summary:
    goal: str = ""
    decisions: list[str] = field(default_factory=list)
    latest_request: str = ""
    last_action: str = ""
    open_questions: list[str] = field(default_factory=list)
    earlier: str = ""  # a previous summary in a format we do not recognise


def clip(text: str, limit: int) -> str:
    """Collapse whitespace and cut at a word boundary, marking the cut."""
    text = re.sub(r"\s+", " ", _CONTROL.sub(" ", text)).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def _prose(content: str) -> str:
    """An event's text for display: code blocks shown as a marker, not pasted in."""
    return _FENCED.sub(" [code] ", content[:5000])


def parse_summary(text: str | None) -> Summary:
    summary = Summary()
    if not text or not text.strip():
        return summary
    recognised = False
    current_list: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("- ") and current_list is not None:
            current_list.append(line[2:].strip())
            continue
        current_list = None
        label, _, value = line.partition(":")
        key = label.strip().lower()
        if key == "decisions":
            current_list, recognised = summary.decisions, True
        elif key == "open questions":
            current_list, recognised = summary.open_questions, True
        elif key in {"goal", "latest request", "last assistant action", "earlier"}:
            recognised = True
            attr = {
                "goal": "goal",
                "latest request": "latest_request",
                "last assistant action": "last_action",
                "earlier": "earlier",
            }[key]
            setattr(summary, attr, value.strip())
    if not recognised:
        summary.earlier = clip(text, 300)
    return summary


def _user_goal(events: Iterable[SourceEvent]) -> str:
    goal = ""
    for event in events:
        for sentence in sentences(event.content):
            for fact in statement_facts(sentence, event, _CLASSIFY):
                if fact.category == "goal":
                    goal = fact.content  # the latest explicit goal wins
    return goal


def _decisions(events: Iterable[SourceEvent]) -> list[str]:
    found: list[str] = []
    for event in events:
        for sentence in sentences(event.content):
            found.extend(
                f.content for f in statement_facts(sentence, event, _CLASSIFY) if f.category == "decision"
            )
    return found


def _questions(event: SourceEvent) -> list[str]:
    return [s.text for s in sentences(event.content) if is_question(s.text) and s.text.rstrip().endswith("?")]


def _first_sentence(content: str) -> str:
    for sentence in sentences(content):
        return sentence.text
    return _prose(content)


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = re.sub(r"\W+", " ", item.casefold()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def build_summary(events: tuple[SourceEvent, ...], previous_summary: str | None) -> str:
    previous = parse_summary(previous_summary)
    users = [e for e in events if e.role == "user"]
    assistants = [e for e in events if e.role == "assistant"]

    summary = Summary(earlier=previous.earlier)
    summary.goal = (
        _user_goal(users) or previous.goal or (clip(_prose(users[0].content), _FIELD_CHARS) if users else "")
    )
    # Older decisions first, newest last; only the most recent few are kept.
    summary.decisions = _dedupe([*previous.decisions, *_decisions(users)])[-_MAX_DECISIONS:]
    summary.latest_request = (
        clip(_prose(users[-1].content), _FIELD_CHARS) if users else previous.latest_request
    )
    summary.last_action = (
        clip(_first_sentence(assistants[-1].content), _FIELD_CHARS) if assistants else previous.last_action
    )

    # A question is open while no assistant turn has followed it.  Previous open
    # questions survive only if the assistant has not spoken since.
    last_assistant = max((i for i, e in enumerate(events) if e.role == "assistant"), default=-1)
    questions = [] if assistants else list(previous.open_questions)
    for event in events[last_assistant + 1 :]:
        if event.role == "user":
            questions.extend(_questions(event))
    if events and events[-1].role == "assistant":
        questions.extend(f"Assistant asked: {q}" for q in _questions(events[-1]))
    summary.open_questions = _dedupe(questions)[-_MAX_QUESTIONS:]
    return render(summary)


def render(summary: Summary) -> str:
    def compose(s: Summary, field_chars: int, item_chars: int) -> str:
        lines = []
        if s.earlier:
            lines.append(f"Earlier: {clip(s.earlier, field_chars)}")
        if s.goal:
            lines.append(f"{_LABELS['goal']}: {clip(s.goal, field_chars)}")
        if s.decisions:
            lines.append("Decisions:")
            lines.extend(f"- {clip(d, item_chars)}" for d in s.decisions)
        if s.latest_request:
            lines.append(f"{_LABELS['latest_request']}: {clip(s.latest_request, field_chars)}")
        if s.last_action:
            lines.append(f"{_LABELS['last_action']}: {clip(s.last_action, field_chars)}")
        if s.open_questions:
            lines.append("Open questions:")
            lines.extend(f"- {clip(q, item_chars)}" for q in s.open_questions)
        return "\n".join(lines)

    # Shrink gracefully: tighter fields first, then fewer old decisions; the hard
    # cut at the end is only a guarantee, it should never trigger.
    for field_chars, item_chars in ((_FIELD_CHARS, _ITEM_CHARS), (160, 120), (110, 90)):
        text = compose(summary, field_chars, item_chars)
        if len(text) <= MAX_SUMMARY_CHARS:
            return text or "No user or assistant messages yet."
    while summary.decisions and len(text) > MAX_SUMMARY_CHARS:
        summary.decisions = summary.decisions[1:]
        text = compose(summary, 110, 90)
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"
