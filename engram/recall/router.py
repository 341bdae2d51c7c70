"""Intent routing: decide which strategies matter most for a query.

The router is pluggable: any object with ``route(query, *, task_id, policy) ->
str`` can be assigned to ``Engram.router``.  The built-in one tries the policy's
``recall.router_rules`` first, then its own patterns.  What an intent changes is
up to the strategies: each declares ``intent_boosts``, multipliers on its policy
weight per intent.
"""

from __future__ import annotations

import re
from typing import Protocol

from ..policy import MemoryPolicy

_QUOTE = re.compile(
    r"\b(quote|quoted|quotation|cite|citation|cited|verbatim|exact (?:words?|wording|text|language)|"
    r"word[- ]for[- ]word|clause|section \d|paragraph \d|article \d|what does the (?:contract|document|"
    r"agreement|policy|report|spec) say)\b|§",
    re.IGNORECASE,
)
_TASK = re.compile(
    r"\b(where were we|so far|last step|previous step|next step|what did (?:we|you|i) (?:just )?(?:do|try|change|"
    r"run)|what have we|recap|progress|continue|pick up|resume|status of (?:the|this) task|just now|earlier in "
    r"this)\b",
    re.IGNORECASE,
)
_FACTS = re.compile(
    r"\b(prefer|preference|favou?rite|my name|who am i|about me|do i (?:like|use|have|live|work)|"
    r"what(?:'s| is) my|where do i|usually|always|never|allergic|birthday|remember (?:that|my))\b",
    re.IGNORECASE,
)


class Router(Protocol):
    def route(self, query: str, *, task_id: str | None, policy: MemoryPolicy) -> str: ...


class DefaultRouter:
    """Pattern-based routing; cheap, deterministic and explainable in traces."""

    def route(self, query: str, *, task_id: str | None, policy: MemoryPolicy) -> str:
        for rule in policy.recall.router_rules:
            if re.search(rule.pattern, query, re.IGNORECASE):
                return rule.intent
        if _QUOTE.search(query):
            return "quote"
        if task_id is not None and _TASK.search(query):
            return "task"
        if _FACTS.search(query):
            return "facts"
        return "general"
