"""The ``rules`` extractor: offline, deterministic fact extraction with regular expressions.

No model, no network, no heavy import.  It is Engram's default extractor so that a
fresh install derives *some* memory with nothing configured, and it is the
extractor the tests use because its output is exact and repeatable.

What it extracts, from **user** turns only:

* first-person facts ("I live in Lisbon", "I'm a data scientist", "my name is Ana",
  "I work at Acme", "I have two cats", "my X is Y");
* preferences ("I prefer tabs", "I don't like long answers", "please always cite
  sources", "I'd rather use Go");
* decisions ("let's use Postgres", "we decided to drop Python 3.9", "from now on ...");
* goals ("I want to learn Rust", "I'm trying to cut build times");
* the values of the policy's critical slots, through each slot's ``patterns`` and
  through generic phrasings built from the slot name ("my timezone is ...",
  "the test command is ...", "build command: make").

Each fact is rewritten into the third person about "The user", keeps the user's
wording otherwise, and cites the exact characters it came from.

What it cannot do, by design or by limitation:

* **No coreference.**  "I like it" or "that's my favourite" yields nothing: the
  rules cannot tell what "it" or "that" refers to.
* **No implicit facts.**  Only what is stated in a recognised sentence shape is
  extracted; "ugh, another Monday stand-up" says nothing to it about the user's job.
* **English only**, and conversational English at that; other languages produce
  no facts (slot patterns written for other languages still work).
* It skips what it cannot vouch for: questions, conditionals and hypotheticals,
  other people's words (reported speech, quoted text), code, logs, and sentences
  longer than a few hundred characters.  Only the first ~20,000 characters of an
  event are read.
* Checkpoint summaries are extractive: copied, clipped sentences in fixed sections,
  not an abstract of the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engram.hookspecs import hookimpl
from engram.interfaces import CandidateFact, CheckpointRequest, ExtractionRequest

from ._rules import compile_slots, event_facts
from ._summary import MAX_SUMMARY_CHARS, build_summary

__all__ = ["MAX_SUMMARY_CHARS", "RulesExtractor", "register_extractors"]


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


class RulesExtractor:
    """Regex-based :class:`engram.interfaces.Extractor`.  Stateless and safe to share."""

    name = "rules"

    async def extract(self, request: ExtractionRequest) -> list[CandidateFact]:
        matchers = compile_slots(request.policy)
        facts: list[CandidateFact] = []
        latest_slot: dict[str, CandidateFact] = {}
        seen: set[str] = set()
        for event in request.events:
            if event.role != "user":
                continue  # the assistant's words are not evidence about the user
            for fact in event_facts(event, request.policy, matchers):
                if fact.slot is not None:
                    # A slot holds one value: the user's latest statement wins.
                    latest_slot[fact.slot] = fact
                    continue
                key = _norm(fact.content)
                if key in seen:
                    continue
                seen.add(key)
                facts.append(fact)
        slot_facts = [
            fact for name, fact in latest_slot.items() if not _restates(fact, request.current_slots.get(name))
        ]
        return slot_facts + facts

    async def summarize(self, request: CheckpointRequest) -> str:
        return build_summary(request.events, request.previous_summary)


def _restates(fact: CandidateFact, current: str | None) -> bool:
    """Is this slot value the one already stored?  Then there is nothing new to propose."""
    if not current:
        return False
    value = fact.content.partition(": ")[2]
    return _norm(current) in {_norm(value), _norm(fact.content)}


@hookimpl
def register_extractors(register: Callable[..., None]) -> None:
    def factory(settings: object | None = None) -> RulesExtractor:
        return RulesExtractor()

    register("rules", factory)
