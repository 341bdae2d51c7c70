"""The statement rules: which first-person sentences become which facts.

A rule is tried only at the start of a clause (after optional lead-ins such as
"Actually," or "I think").  Anchoring is what keeps the extractor honest about
whose statement it is: in "my friend says I love jazz" or "if I lived in Oslo, I
would ski" the "I love" / "I lived" is not at a clause start, or the clause is
preceded by reported speech or a condition, so nothing is extracted.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from engram.interfaces import CandidateFact, SourceEvent, SourceSpan
from engram.policy import CriticalSlot, MemoryPolicy

from ._text import Sentence, meaningful, sentences, to_third_person, trim_value

#: At most this many facts come out of one event; a turn that yields more is a
#: paste, and the cap keeps one odd message from flooding reconciliation.
MAX_FACTS_PER_EVENT = 40

_F = re.IGNORECASE
_A = "['’]"
_ADV = (
    r"(?:(?:really|also|still|just|only|actually|definitely|strongly|absolutely|generally|usually|"
    r"mostly|mainly|truly|totally|much|personally|kind\s+of|sort\s+of|no\s+longer|always|never)\s+){0,2}"
)
_NEG = rf"(?:don{_A}t|do\s+not|never|no\s+longer)"
_IM = rf"I(?:{_A}m|\s+am)"


@dataclass(frozen=True, slots=True)
class Rule:
    """One statement shape.  ``pattern`` must define a ``v`` group (the value)."""

    name: str
    category: str
    confidence: float
    pattern: re.Pattern[str]
    #: Builds the fact text from the quote and the value; default: third-person rewrite.
    render: Callable[[str, str], str] | None = None
    #: Extra veto on the value (lower-cased), e.g. "a bit tired" is not an identity.
    reject: re.Pattern[str] | None = None


def _r(pattern: str) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern})" + r"(?P<v>.*)$", _F)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _decided(prefix: str) -> Callable[[str, str], str]:
    def render(_quote: str, value: str) -> str:
        return f"The user decided {prefix}{value}"

    return render


_HAVE_REJECT = re.compile(
    r"^(?:to\b|been\b|got\s+to\b|no\s+idea\b|an?\s+(?:question|idea|problem|issue|bug|error|quick|"
    r"follow[- ]up|suggestion|request|doubt|feeling|look|try|go|minute|moment|second)\b|"
    r"(?:some|a\s+few|few|two|more|other)\s+questions\b|(?:time|trouble|fun|questions|problems|issues)\b|"
    r"\w{3,}ed\b|(?:done|seen|gone|made|written|tried|read|heard|found|had|put|run|set)\b)"
)
_MY_REJECT_KEY = re.compile(
    r"^(?:question|problem|issue|point|guess|concern|worry|bad|mistake|fault|pleasure|turn|answer|idea|"
    r"thought|thinking|understanding|assumption|hope|code|script|function|output|error|test|tests|build|"
    r"connection|internet|request|suggestion|apologies|response|reply|job here|first|second|last|only|"
    r"main|plan|goal|aim|objective|favou?rite)\b"
)
_MY_REJECT_VALUE = re.compile(
    r"^(?:broken|down|slow|fine|ok|okay|failing|not\s+working|dead|gone|weird|wrong|missing|empty|full|"
    r"that\b|this\b|to\s+be\b|whether|if\b|how\b|what\b|why\b|simple|easy|here|there)"
)

RULES: tuple[Rule, ...] = (
    # ----------------------------------------------------------------- goals (before "my X is")
    Rule(
        "goal_my",
        "goal",
        0.85,
        _r(
            r"my\s+(?:main\s+|current\s+|ultimate\s+|primary\s+|long[- ]term\s+)?(?:goal|aim|objective)\s+is\s+to\s+"
        ),
        render=lambda _q, v: f"The user's goal is to {to_third_person(v)}",
    ),
    # ----------------------------------------------------------------- identity
    Rule(
        "name",
        "identity",
        0.95,
        _r(r"my\s+name\s+is\s+"),
        reject=re.compile(r"^(?:not|a|an|the|too|hard|irrelevant)\b"),
    ),
    Rule(
        "call_me",
        "identity",
        0.85,
        _r(r"(?:please\s+)?call\s+me\s+"),
        render=lambda _q, v: f"The user wants to be called {v}",
        reject=re.compile(r"^(?:back|later|when|if|tomorrow|at|on|a\b|an\b|the\b)"),
    ),
    # ----------------------------------------------------------------- preferences
    Rule(
        "favourite",
        "preference",
        0.85,
        _r(r"my\s+(?:all[- ]time\s+)?favou?rite\s+[\w -]{1,40}?\s+(?:is|are)\s+"),
    ),
    Rule("rather", "preference", 0.8, _r(rf"I(?:{_A}d|\s+would)\s+(?:much\s+)?(?:rather|prefer)\s+")),
    Rule("fan", "preference", 0.8, _r(rf"{_IM}\s+(?:not\s+)?(?:a\s+)?(?:big\s+|huge\s+)?fan\s+of\s+")),
    Rule(
        "like",
        "preference",
        0.85,
        _r(
            rf"I\s+{_ADV}(?:{_NEG}\s+)?{_ADV}(?:prefer|like|love|enjoy|adore|hate|dislike|detest|loathe|"
            rf"can{_A}t\s+stand|cannot\s+stand|care\s+for)\s+"
        ),
    ),
    Rule(
        "please",
        "preference",
        0.85,
        _r(r"please\s+(?P<mode>always|never|don't|don’t|do\s+not|stop|avoid)\s+"),
    ),
    Rule("always", "preference", 0.75, _r(r"(?P<mode>always|never)\s+(?!mind\b|again\b|ever\b)")),
    # ----------------------------------------------------------------- decisions
    Rule(
        "lets",
        "decision",
        0.8,
        re.compile(
            rf"let(?:{_A}s|\s+us)\s+(?P<v>(?:use|go\s+with|switch\s+to|stick\s+with|stay\s+with|keep|move\s+to|"
            r"adopt|pick|choose|standardi[sz]e\s+on|settle\s+on|migrate\s+to|name|call|drop|rename)\b.*)$",
            _F,
        ),
        render=_decided("to "),
    ),
    Rule(
        "decided",
        "decision",
        0.85,
        re.compile(
            rf"(?:we|I)(?:{_A}ve|\s+have)?\s+(?:just\s+|finally\s+)?decided\s+(?P<v>(?:to|on|that|against)\s+.*)$",
            _F,
        ),
        render=_decided(""),
    ),
    Rule(
        "go_with",
        "decision",
        0.8,
        re.compile(
            rf"we(?:{_A}ll|\s+will|{_A}re\s+going\s+to|\s+are\s+going\s+to|{_A}re|\s+are)\s+"
            r"(?P<verb>go(?:ing)?\s+with|us(?:e|ing)|stick(?:ing)?\s+with|switch(?:ing)?\s+to)\s+(?P<v>.*)$",
            _F,
        ),
    ),
    Rule(
        "chose",
        "decision",
        0.8,
        re.compile(
            rf"(?:we|I)(?:{_A}ve|\s+have)?\s+(?:chosen|chose|picked|settled\s+on|opted\s+for|went\s+with)\s+(?P<v>.*)$",
            _F,
        ),
        render=lambda _q, v: f"The user chose {v}",
    ),
    Rule(
        "from_now_on",
        "decision",
        0.8,
        re.compile(r"(?:from\s+now\s+on|going\s+forward|from\s+here\s+on)[,:]?\s+(?P<v>.*)$", _F),
        render=lambda _q, v: f"The user decided: from now on, {_lower_first(to_third_person(v))}",
    ),
    # ----------------------------------------------------------------- goals
    Rule(
        "goal",
        "goal",
        0.8,
        _r(
            rf"(?:I\s+{_ADV}(?:want|need|hope|plan|intend|aim|have)\s+to|{_IM}\s+{_ADV}(?:trying|planning|hoping|"
            rf"aiming)\s+to|I(?:{_A}d|\s+would)\s+(?:really\s+)?like\s+to)\s+"
        ),
        reject=re.compile(r"^(?:know|ask|say|see|check|mention|clarify|confirm|add\s+that|point\s+out)\b"),
    ),
    Rule("dont_want", "preference", 0.75, _r(rf"I\s+{_NEG}\s+want\s+(?:to\s+)?")),
    Rule("working_on", "goal", 0.65, _r(rf"{_IM}\s+(?:currently\s+)?(?:working\s+on|building|writing)\s+")),
    Rule(
        "want",
        "preference",
        0.6,
        _r(r"I\s+(?:really\s+|just\s+)?want\s+(?!to\b|you\b|it\b|that\b|this\b)"),
    ),
    # ----------------------------------------------------------------- facts about the user
    Rule(
        "age",
        "identity",
        0.9,
        re.compile(rf"{_IM}\s+(?P<v>\d{{1,3}}\s+(?:years?|yrs?)\s+old)\b", _F),
        render=lambda q, _v: to_third_person(q),
    ),
    Rule(
        "im_a",
        "identity",
        0.85,
        re.compile(rf"{_IM}\s+{_ADV}(?P<v>(?:not\s+)?an?\s+.*)$", _F),
        render=lambda q, _v: to_third_person(q),
        reject=re.compile(
            r"^(?:not\s+)?an?\s+(?:bit|little|lot|tad|few|fan|big\s+fan|huge\s+fan|beginner\s+at\s+this|question)\b"
        ),
    ),
    Rule(
        "from",
        "identity",
        0.85,
        _r(rf"{_IM}\s+(?:not\s+)?(?:originally\s+)?(?:from|based\s+in|located\s+in)\s+"),
    ),
    Rule(
        "condition",
        "fact",
        0.85,
        re.compile(
            rf"{_IM}\s+(?:not\s+)?(?P<v>(?:vegetarian|vegan|pescatarian|allergic\s+to\s+.+|lactose[- ]intolerant|"
            r"gluten[- ]intolerant|celiac|coeliac|diabetic|left[- ]handed|right[- ]handed|colou?r[- ]?blind|"
            r"married|single|divorced|widowed|retired|self[- ]employed|unemployed|pregnant|deaf|blind|"
            r"dyslexic|a\s+student)\b.*)$",
            _F,
        ),
        render=lambda q, _v: to_third_person(q),
    ),
    Rule("live", "fact", 0.9, _r(rf"I\s+{_ADV}(?:{_NEG}\s+)?(?:live|reside)\s+in\s+")),
    Rule(
        "moved",
        "fact",
        0.8,
        _r(rf"I(?:{_A}ve|\s+have)?\s+(?:just\s+|recently\s+)?(?:moved|relocated)\s+to\s+"),
    ),
    Rule("born", "fact", 0.85, _r(r"I\s+was\s+born\s+(?:in|on)\s+|I\s+grew\s+up\s+in\s+")),
    Rule("work", "fact", 0.85, _r(rf"I\s+{_ADV}(?:{_NEG}\s+)?work\s+(?:at|for|as|in|with|on|from)\s+")),
    Rule(
        "have",
        "fact",
        0.7,
        _r(rf"(?:I\s+{_ADV}(?:{_NEG}\s+)?(?:have|own)|I{_A}ve\s+got|I\s+have\s+got)\s+"),
        reject=_HAVE_REJECT,
    ),
    Rule(
        "habit",
        "fact",
        0.65,
        _r(
            rf"I\s+{_ADV}(?:{_NEG}\s+)?{_ADV}(?:speak|study|teach|use|drive|play|eat|drink|practi[cs]e|code\s+in|"
            r"program\s+in|write\s+in|run|cycle|commute)\s+"
        ),
        reject=re.compile(r"^(?:it|this|that|them|a\s+lot|to)\b"),
    ),
    Rule(
        "learning",
        "fact",
        0.7,
        re.compile(rf"{_IM}\s+(?:currently\s+)?(?:learning|studying)\s+(?P<v>.*)$", _F),
        render=lambda q, _v: to_third_person(q),
    ),
    Rule(
        "my_is",
        "fact",
        0.7,
        re.compile(r"my\s+(?P<k>[a-z][\w'’ -]{0,40}?)\s+(?:is|are)\s+(?P<v>.*)$", _F),
    ),
)


def _base_verb(phrase: str) -> str:
    """``going with`` -> ``go with``, ``using`` -> ``use``."""
    words = phrase.lower().split()
    head = {"going": "go", "using": "use", "sticking": "stick", "switching": "switch"}.get(words[0], words[0])
    return " ".join([head, *words[1:]])


# ----------------------------------------------------------------------------- clause scanning

_CLAUSE_BREAK = re.compile(
    r"(?:[,;:]|\s[-–—])\s+|\b(?:and|but|so|because|since|though|although|while|plus|then)\s+", _F
)
_LEAD_IN = re.compile(
    r"(?:(?P<hedge>i\s+think|i\s+guess|i\s+believe|i\s+suppose|probably|maybe|perhaps)|oh|well|ok|okay|so|and|"
    r"but|also|actually|honestly|btw|by\s+the\s+way|fyi|just\s+so\s+you\s+know|for\s+the\s+record|"
    r"for\s+context|for\s+reference|(?:please\s+)?(?:note|remember|keep\s+in\s+mind)(?:\s+that)?|"
    r"hi|hello|hey|yes|yeah|yep|no|nope|anyway|anyways|personally|basically|in\s+general|generally|"
    r"to\s+be\s+honest|tbh|as\s+i\s+said|like\s+i\s+said|again|now|also\s+note)\b[,:!.]?\s+",
    _F,
)
# Inverted word order marks a question even without "?" ("do I like jazz");
# "Do not use tabs" and "Don't X" are instructions, so an auxiliary only counts
# when a subject follows it.
_QUESTION_START = re.compile(
    r"^(?:(?:do|does|did|am|is|are|was|were|can|could|would|should|will|shall|may|might|have|has|"
    r"isn't|aren't|don't|doesn't|didn't|wouldn't|won't|can't)\s+(?:i|you|we|they|he|she|it|my|your|the|there)\b|"
    r"(?:what|why|how|where|who|whom|which|whose)\b)",
    _F,
)
# Anything before the clause that makes it conditional, imagined, or someone else's words.
_HYPOTHETICAL = re.compile(
    r"\b(?:if|unless|suppose|supposing|imagine|imagining|pretend|hypothetically|assuming|assume|whether|"
    r"when|whenever|wish|in\s+case|as\s+if|as\s+though|once|would|could|might|someday|one\s+day|"
    r"in\s+a\s+story|role[- ]?play|fiction)\b",
    _F,
)
_REPORTED = re.compile(
    r"[\"“”«»]|\b(?:said|says|say|told|tells|tell|asked|asks|ask|thinks|thought|believes|believed|claims|"
    r"claimed|wrote|writes|mentioned|mentions|replied|according\s+to|quote|quoting|he|she|they|"
    r"his|her|their|someone|somebody|people)\b",
    _F,
)
_UNCERTAIN = re.compile(r"\b(?:not\s+sure|unsure|no\s+idea|don't\s+know|do\s+not\s+know)\b", _F)


def is_question(text: str) -> bool:
    stripped = text.rstrip(" \"'”’)]")
    return stripped.endswith("?") or bool(_QUESTION_START.match(text))


def _clause_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _CLAUSE_BREAK.finditer(text))]


@dataclass(frozen=True, slots=True)
class Hit:
    """A matched statement inside one sentence (offsets relative to the sentence)."""

    start: int
    value_start: int
    value_end: int
    quote_end: int
    hedged: bool


def _skip_decoration(text: str, pos: int) -> int:
    # Emoji, markdown emphasis and stray spaces before a statement ("🎉 I love cats").
    while pos < len(text) and (
        text[pos].isspace()
        or text[pos] in "*_~"
        or unicodedata.category(text[pos]) in {"So", "Sk", "Cf", "Mn"}
    ):
        pos += 1
    return pos


def _skip_lead_ins(text: str, pos: int) -> tuple[int, bool]:
    hedged = False
    pos = _skip_decoration(text, pos)
    for _ in range(4):  # a handful of stacked lead-ins at most ("Oh, btw, I think ...")
        match = _LEAD_IN.match(text, pos)
        if match is None:
            break
        hedged = hedged or bool(match.group("hedge"))
        pos = match.end()
    return pos, hedged


def clause_context_ok(text: str, start: int) -> bool:
    """Is a statement starting at ``start`` the speaker's own, unconditional claim?"""
    before = text[:start]
    return not (_HYPOTHETICAL.search(before) or _REPORTED.search(before) or _UNCERTAIN.search(before))


def _category(policy: MemoryPolicy, wanted: str) -> str | None:
    return wanted if wanted in policy.categories else None


def _confidence(base: float, hedged: bool) -> float:
    # A hedge ("I think", "maybe") keeps the fact but says we are less sure of it.
    return round(max(0.3, base - 0.25) if hedged else base, 2)


def statement_facts(sentence: Sentence, event: SourceEvent, policy: MemoryPolicy) -> list[CandidateFact]:
    """Facts from one sentence's clauses (not slots; see :func:`slot_facts`)."""
    text = sentence.text
    if is_question(text):
        return []
    facts: list[CandidateFact] = []
    tried: set[int] = set()
    for clause in _clause_starts(text):
        pos, hedged = _skip_lead_ins(text, clause)
        if pos in tried or pos >= len(text):
            continue
        tried.add(pos)
        # Lead-ins ("as I said", "I think") are judged by the hedge flag, not as context.
        if not clause_context_ok(text, clause):
            continue
        fact = _match_rules(text, pos, hedged, sentence, event, policy)
        if fact is not None:
            facts.append(fact)
    return facts


def _match_rules(
    text: str, pos: int, hedged: bool, sentence: Sentence, event: SourceEvent, policy: MemoryPolicy
) -> CandidateFact | None:
    for rule in RULES:
        match = rule.pattern.match(text, pos)
        if match is None:
            continue
        if rule.name == "my_is" and _MY_REJECT_KEY.match(match.group("k")):
            return None  # "my question is ..." says nothing durable, and no later rule fits
        bounds = trim_value(text, match.start("v"), match.end("v"))
        if bounds is None:
            continue
        v_start, v_end, q_end = bounds
        value = text[v_start:v_end]
        if not meaningful(value):
            continue
        lowered = value.lower()
        if rule.reject is not None and rule.reject.match(lowered):
            continue
        if rule.name == "my_is" and _MY_REJECT_VALUE.match(lowered):
            continue
        if len(value) > 200:
            continue  # a sprawling "value" is prose we did not understand
        quote = text[pos:q_end]
        content = _render(rule, match, quote, value)
        if not content:
            continue
        start = sentence.start + pos
        span = SourceSpan(event_id=event.event_id, start=start, end=sentence.start + q_end, quote=quote)
        return CandidateFact(
            content=content[:2000],
            category=_category(policy, rule.category),
            confidence=_confidence(rule.confidence, hedged),
            source_event_ids=(event.event_id,),
            spans=(span,),
        )
    return None


def _render(rule: Rule, match: re.Match[str], quote: str, value: str) -> str:
    if rule.name in {"please", "always"}:
        mode = re.sub(r"\s+", " ", match.group("mode").lower().replace("’", "'"))
        phrase = {
            "always": "to always",
            "never": "to never",
            "don't": "not to",
            "do not": "not to",
            "stop": "to stop",
            "avoid": "to avoid",
        }[mode]
        return f"The user wants the assistant {phrase} {_lower_first(to_third_person(value))}"
    if rule.name == "go_with":
        return f"The user decided to {_base_verb(match.group('verb'))} {value}"
    if rule.render is not None:
        return rule.render(quote, value)
    return to_third_person(quote)


# ----------------------------------------------------------------------------- critical slots


def slot_words(name: str) -> str:
    return name.replace("_", " ")


def render_slot(slot: CriticalSlot, value: str) -> str:
    return f"{slot_words(slot.name)}: {value}"


def _generic_slot_patterns(slot: CriticalSlot) -> list[re.Pattern[str]]:
    words = slot.name.split("_")
    phrase = r"[\s_-]+".join(re.escape(w) for w in words)
    patterns = [
        re.compile(rf"\b(?:my|our)\s+{phrase}\s+(?:is|are|=|will\s+be|should\s+be)\s+(?P<v>.+)$", _F),
        # A line such as "timezone: Europe/Lisbon" or "build command: make".
        re.compile(rf"^{phrase}\s*[:=]\s*(?P<v>.+)$", _F),
    ]
    if len(words) > 1:
        # "the <one word> is ..." is too common to trust ("the name is wrong"); with
        # two or more words ("the test command is ...") it is specific enough.
        patterns.append(
            re.compile(rf"\bthe\s+{phrase}\s+(?:is|are|=|will\s+be|should\s+be)\s+(?P<v>.+)$", _F)
        )
        patterns.append(re.compile(rf"(?:^|[\s(])\s*{phrase}\s*:\s*(?P<v>.+)$", _F))
    return patterns


@dataclass(frozen=True, slots=True)
class SlotMatcher:
    slot: CriticalSlot
    policy_patterns: tuple[re.Pattern[str], ...]
    generic_patterns: tuple[re.Pattern[str], ...]


def compile_slots(policy: MemoryPolicy) -> list[SlotMatcher]:
    matchers = []
    for slot in policy.critical_slots:
        compiled: list[re.Pattern[str]] = []
        for pattern in slot.patterns:
            try:
                # Natural language is case-insensitive; a pattern that needs case
                # can say so locally with (?-i:...).
                compiled.append(re.compile(pattern, _F))
            except re.error:
                continue  # CriticalSlot validates patterns, but never let one break a worker
        matchers.append(SlotMatcher(slot, tuple(compiled), tuple(_generic_slot_patterns(slot))))
    return matchers


_SLOT_CONFIDENCE_POLICY = 0.9
_SLOT_CONFIDENCE_GENERIC = 0.85


def slot_facts(sentence: Sentence, event: SourceEvent, matchers: list[SlotMatcher]) -> list[CandidateFact]:
    """Critical-slot values stated in one sentence: the policy's patterns first, then generic phrasings."""
    text = sentence.text
    if is_question(text):
        return []
    facts = []
    for matcher in matchers:
        fact = _match_slot(text, sentence, event, matcher)
        if fact is not None:
            facts.append(fact)
    return facts


def _match_slot(
    text: str, sentence: Sentence, event: SourceEvent, matcher: SlotMatcher
) -> CandidateFact | None:
    tries = [(p, _SLOT_CONFIDENCE_POLICY, True) for p in matcher.policy_patterns] + [
        (p, _SLOT_CONFIDENCE_GENERIC, False) for p in matcher.generic_patterns
    ]
    for pattern, confidence, from_policy in tries:
        try:
            match = pattern.search(text)
        except (RecursionError, MemoryError):  # a pathological user pattern
            continue
        if match is None or not clause_context_ok(text, match.start()):
            continue
        if from_policy:
            group = 1 if pattern.groups >= 1 and match.group(1) is not None else 0
        else:
            group = pattern.groupindex["v"]
        bounds = trim_value(text, match.start(group), match.end(group))
        if bounds is None:
            continue
        v_start, v_end, q_end = bounds
        value = text[v_start:v_end]
        # One-character values are real here ("language: C", "plan: B").
        if not meaningful(value, min_length=1) or len(value) > 200:
            continue
        q_start = match.start()
        if match.end(group) < match.end():
            # The pattern goes on past its value ("on the (pro) plan"): quote all of it.
            q_end = max(q_end, match.end())
        quote = text[q_start:q_end].rstrip()
        if not quote:
            continue
        span = SourceSpan(
            event_id=event.event_id,
            start=sentence.start + q_start,
            end=sentence.start + q_start + len(quote),
            quote=quote,
        )
        return CandidateFact(
            content=render_slot(matcher.slot, value),
            category=None,
            slot=matcher.slot.name,
            confidence=confidence,
            source_event_ids=(event.event_id,),
            spans=(span,),
        )
    return None


def event_facts(event: SourceEvent, policy: MemoryPolicy, matchers: list[SlotMatcher]) -> list[CandidateFact]:
    """All candidate facts from one user event, slot values winning over overlapping statements."""
    slots: list[CandidateFact] = []
    statements: list[CandidateFact] = []
    for sentence in sentences(event.content):
        slots.extend(slot_facts(sentence, event, matchers))
        statements.extend(statement_facts(sentence, event, policy))
        if len(slots) + len(statements) >= MAX_FACTS_PER_EVENT:
            break

    def overlaps(fact: CandidateFact) -> bool:
        span = fact.spans[0]
        return any(s.spans[0].start < span.end and span.start < s.spans[0].end for s in slots)

    kept = slots + [f for f in statements if not overlaps(f)]
    kept.sort(key=lambda f: (f.spans[0].start, f.slot or ""))
    return kept[:MAX_FACTS_PER_EVENT]
