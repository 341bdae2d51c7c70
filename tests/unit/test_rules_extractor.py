"""The offline ``rules`` extractor: exact facts, exact spans, and honest refusals."""

from __future__ import annotations

import pytest
from engram_policies import CODING_AGENT, LEGAL, PERSONAL_ASSISTANT, SUPPORT_AGENT
from engram_rules import MAX_SUMMARY_CHARS, RulesExtractor

from engram import plugins
from engram.interfaces import (
    CandidateFact,
    CheckpointRequest,
    ExtractionRequest,
    Extractor,
    SourceEvent,
)
from engram.policy import CriticalSlot, MemoryPolicy

# The request models name MemoryPolicy only as a forward reference; resolve it once.
ExtractionRequest.model_rebuild()
CheckpointRequest.model_rebuild()

BARE = MemoryPolicy(name="bare")  # no slots: statement rules only


def _event(content: str, *, event_id: int = 1, role: str = "user") -> SourceEvent:
    return SourceEvent(event_id=event_id, task_id="task", role=role, content=content)


async def _extract(
    *contents: str,
    policy: MemoryPolicy = BARE,
    role: str = "user",
    current_slots: dict[str, str] | None = None,
) -> list[CandidateFact]:
    events = tuple(_event(c, event_id=i + 1, role=role) for i, c in enumerate(contents))
    request = ExtractionRequest(
        user_id="u",
        agent_id="a",
        task_id="task",
        events=events,
        policy=policy,
        current_slots=current_slots or {},
    )
    facts = await RulesExtractor().extract(request)
    by_id = {e.event_id: e.content for e in events}
    for fact in facts:  # every fact, in every test, must cite its source exactly
        assert len(fact.spans) == 1
        span = fact.spans[0]
        assert fact.source_event_ids == (span.event_id,)
        assert by_id[span.event_id][span.start : span.end] == span.quote
    return facts


async def _summarize(events: tuple[SourceEvent, ...], previous: str | None = None) -> str:
    request = CheckpointRequest(
        user_id="u", agent_id="a", task_id="task", events=events, previous_summary=previous, policy=BARE
    )
    return await RulesExtractor().summarize(request)


# ----------------------------------------------------------------------------- registration


def test_registered_through_the_plugin_manager() -> None:
    factory = plugins.extractor_factories()["rules"]
    extractor = factory(None)
    assert isinstance(extractor, RulesExtractor)
    assert isinstance(extractor, Extractor)
    assert extractor.name == "rules"


# ----------------------------------------------------------------------------- statements

STATEMENTS = [
    # (sentence, content, category, quote)
    ("I'm a data scientist.", "The user is a data scientist", "identity", "I'm a data scientist"),
    (
        "I am an architect at a small firm",
        "The user is an architect at a small firm",
        "identity",
        "I am an architect at a small firm",
    ),
    ("Hi! I live in Lisbon.", "The user lives in Lisbon", "fact", "I live in Lisbon"),
    ("my name is Ana", "The user's name is Ana", "identity", "my name is Ana"),
    ("I work at Acme Corp.", "The user works at Acme Corp", "fact", "I work at Acme Corp"),
    (
        "I work for the city council",
        "The user works for the city council",
        "fact",
        "I work for the city council",
    ),
    ("I have two cats.", "The user has two cats", "fact", "I have two cats"),
    (
        "I've got a Labrador named Rex.",
        "The user has a Labrador named Rex",
        "fact",
        "I've got a Labrador named Rex",
    ),
    (
        "My favourite colour is green.",
        "The user's favourite colour is green",
        "preference",
        "My favourite colour is green",
    ),
    ("My wife is a nurse.", "The user's wife is a nurse", "fact", "My wife is a nurse"),
    (
        "I prefer tabs over spaces.",
        "The user prefers tabs over spaces",
        "preference",
        "I prefer tabs over spaces",
    ),
    (
        "I really like dark roast coffee",
        "The user really likes dark roast coffee",
        "preference",
        "I really like dark roast coffee",
    ),
    (
        "I love hiking in the mountains!",
        "The user loves hiking in the mountains",
        "preference",
        "I love hiking in the mountains",
    ),
    ("I hate long meetings.", "The user hates long meetings", "preference", "I hate long meetings"),
    (
        "I don't like long answers.",
        "The user does not like long answers",
        "preference",
        "I don't like long answers",
    ),
    (
        "I do not enjoy cold weather",
        "The user does not enjoy cold weather",
        "preference",
        "I do not enjoy cold weather",
    ),
    ("I can't stand cilantro.", "The user cannot stand cilantro", "preference", "I can't stand cilantro"),
    (
        "I'd rather use Go than Rust.",
        "The user would rather use Go than Rust",
        "preference",
        "I'd rather use Go than Rust",
    ),
    (
        "Please always cite your sources.",
        "The user wants the assistant to always cite your sources",
        "preference",
        "Please always cite your sources",
    ),
    (
        "please never use emoji",
        "The user wants the assistant to never use emoji",
        "preference",
        "please never use emoji",
    ),
    (
        "Please don't summarise my emails.",
        "The user wants the assistant not to summarise the user's emails",
        "preference",
        "Please don't summarise my emails",
    ),
    (
        "Let's use Postgres for storage.",
        "The user decided to use Postgres for storage",
        "decision",
        "Let's use Postgres for storage",
    ),
    (
        "We decided to drop Python 3.9.",
        "The user decided to drop Python 3.9",
        "decision",
        "We decided to drop Python 3.9",
    ),
    ("We'll go with Redis.", "The user decided to go with Redis", "decision", "We'll go with Redis"),
    (
        "From now on, use pnpm instead of npm.",
        "The user decided: from now on, use pnpm instead of npm",
        "decision",
        "From now on, use pnpm instead of npm",
    ),
    (
        "I want to learn Rust this year.",
        "The user wants to learn Rust this year",
        "goal",
        "I want to learn Rust this year",
    ),
    (
        "I need to finish the report by Friday.",
        "The user needs to finish the report by Friday",
        "goal",
        "I need to finish the report by Friday",
    ),
    (
        "I'm trying to cut our build times.",
        "The user is trying to cut our build times",
        "goal",
        "I'm trying to cut our build times",
    ),
    (
        "My goal is to run a marathon.",
        "The user's goal is to run a marathon",
        "goal",
        "My goal is to run a marathon",
    ),
    ("I'm 34 years old.", "The user is 34 years old", "identity", "I'm 34 years old"),
    ("I'm vegetarian.", "The user is vegetarian", "fact", "I'm vegetarian"),
    (
        "I'm allergic to peanuts and shellfish.",
        "The user is allergic to peanuts and shellfish",
        "fact",
        "I'm allergic to peanuts and shellfish",
    ),
    (
        "I'm originally from Brazil.",
        "The user is originally from Brazil",
        "identity",
        "I'm originally from Brazil",
    ),
    (
        "I don't live in Lisbon anymore.",
        "The user does not live in Lisbon anymore",
        "fact",
        "I don't live in Lisbon anymore",
    ),
    ("I always use vim.", "The user always uses vim", "fact", "I always use vim"),
    (
        "I speak Portuguese and English.",
        "The user speaks Portuguese and English",
        "fact",
        "I speak Portuguese and English",
    ),
    ("Call me Sam.", "The user wants to be called Sam", "identity", "Call me Sam"),
    (
        "Actually, I prefer short answers because I read them on my phone.",
        "The user prefers short answers",
        "preference",
        "I prefer short answers",
    ),
    ("i live in porto", "The user lives in porto", "fact", "i live in porto"),
]


@pytest.mark.parametrize(("sentence", "content", "category", "quote"), STATEMENTS)
async def test_statement_becomes_one_third_person_fact(
    sentence: str, content: str, category: str, quote: str
) -> None:
    facts = await _extract(sentence)
    assert [(f.content, f.category, f.slot) for f in facts] == [(content, category, None)]
    span = facts[0].spans[0]
    assert span.quote == quote
    assert span.start == sentence.index(quote)


async def test_several_facts_in_one_message_keep_their_own_offsets() -> None:
    text = "Hi there! My name is Ana and I live in Lisbon. I'm a data scientist, and I prefer tea."
    facts = await _extract(text)
    assert [f.content for f in facts] == [
        "The user's name is Ana",
        "The user lives in Lisbon",
        "The user is a data scientist",
        "The user prefers tea",
    ]
    assert [(s.start, s.end) for f in facts for s in f.spans] == [(10, 24), (29, 45), (47, 67), (73, 85)]


async def test_confidence_reflects_rule_strength_and_hedging() -> None:
    (name,) = await _extract("My name is Ana.")
    (have,) = await _extract("I have two cats.")
    (hedged,) = await _extract("I think I prefer dark mode.")
    (plain,) = await _extract("I prefer dark mode.")
    assert name.confidence > plain.confidence > have.confidence
    assert hedged.content == plain.content == "The user prefers dark mode"
    assert hedged.confidence < plain.confidence


async def test_category_is_none_when_policy_does_not_offer_it() -> None:
    policy = MemoryPolicy(name="narrow", categories=("fact",))
    facts = await _extract("I live in Lisbon. I prefer tea.", policy=policy)
    assert [(f.content, f.category) for f in facts] == [
        ("The user lives in Lisbon", "fact"),
        ("The user prefers tea", None),
    ]


# ----------------------------------------------------------------------------- refusals

NOTHING = [
    "Do I like jazz?",
    "do i live in lisbon",
    "Would I like Rust?",
    "What if I prefer tabs?",
    "If I were a data scientist, I'd live in Paris.",
    "If I had more time, I'd rather use Go.",
    "When I'm tired, I prefer short answers.",
    "Suppose I live in Oslo, what changes?",
    "My friend likes sushi.",
    "My friend says I love jazz.",
    'She told me, "I prefer tabs."',
    "> I love cats",
    "They think I'm a data scientist.",
    "I'm not sure I like this.",
    "I like it.",
    "I love that!",
    "I'm a bit tired today.",
    "I have a question about billing.",
    "I have to say, nice work.",
    "I have been busy.",
    "My question is whether this scales.",
    "My code is broken.",
    "I want you to fix this",
    "Let's see what happens.",
    "Never mind.",
    "",
    "   \n\t  ",
    "ok",
    "```python\nprint('I love cats')\nx = 'I live in Lisbon'\n```",
    'print("I love dogs")',
    "    I prefer tabs  # indented code",
    "2024-01-01 12:00:00 ERROR I like errors",
    "Traceback (most recent call last):",
    "$ echo I live in Lisbon",
    "const pref = 'I prefer tabs';",
    "Eu moro em Lisboa e gosto de café.",
]


@pytest.mark.parametrize("text", NOTHING)
async def test_nothing_is_extracted(text: str) -> None:
    assert await _extract(text) == []


async def test_only_user_events_are_read() -> None:
    assert await _extract("I live in Lisbon.", role="assistant") == []
    assert await _extract("I live in Lisbon.", role="system") == []


async def test_duplicates_within_a_request_are_dropped() -> None:
    facts = await _extract("I prefer tea.", "i prefer tea", "I prefer TEA!")
    assert [f.content for f in facts] == ["The user prefers tea"]
    assert facts[0].source_event_ids == (1,)


async def test_odd_input_never_raises() -> None:
    weird = [
        "I live in Lis\x00bon.",
        "\x00\x01\x02",
        "I love cats 🐱🐱 and I live in Lisbon 🇵🇹.",
        "😀" * 5000,
        "I prefer tabs. " * 20_000,
        "a" * 100_000,
        "I" + " really" * 10_000 + " like tea",
        "my " * 30_000 + "is x",
        "\u202eI live in Lisbon\u202c",
    ]
    for text in weird:
        facts = await _extract(text)
        for fact in facts:
            assert "\x00" not in fact.content
            assert "\x00" not in fact.spans[0].quote


async def test_nul_byte_is_a_boundary_not_part_of_a_fact() -> None:
    text = "I prefer tea\x00 with milk, and I live in Lisbon"
    facts = await _extract(text)
    assert [f.content for f in facts] == ["The user prefers tea", "The user lives in Lisbon"]
    assert facts[1].spans[0].start == text.index("I live")


async def test_emoji_are_trimmed_from_values_and_offsets_stay_exact() -> None:
    text = "🎉 I love cats 🐱🐱 and I live in Lisbon 🇵🇹."
    facts = await _extract(text)
    assert [f.content for f in facts] == ["The user loves cats", "The user lives in Lisbon"]
    assert facts[1].spans[0].start == text.index("I live")


async def test_huge_event_work_is_capped() -> None:
    facts = await _extract(" ".join(f"I like item{i}." for i in range(5000)))
    assert 0 < len(facts) <= 40


# ----------------------------------------------------------------------------- critical slots


def _slot_values(facts: list[CandidateFact]) -> dict[str, str]:
    return {f.slot: f.content for f in facts if f.slot is not None}


async def test_slot_from_policy_pattern_uses_first_group() -> None:
    policy = MemoryPolicy(
        name="p",
        critical_slots=(CriticalSlot(name="team", patterns=(r"\bI'm on the (\w+) team\b",)),),
    )
    facts = await _extract("Hello, I'm on the Platform team.", policy=policy)
    assert [(f.slot, f.content, f.spans[0].quote, f.category) for f in facts] == [
        ("team", "team: Platform", "I'm on the Platform team", None)
    ]


async def test_slot_pattern_without_group_uses_whole_match() -> None:
    policy = MemoryPolicy(name="p", critical_slots=(CriticalSlot(name="tier", patterns=(r"\bgold\b",)),))
    facts = await _extract("We bought gold last week.", policy=policy)
    assert _slot_values(facts) == {"tier": "tier: gold"}


@pytest.mark.parametrize(
    ("text", "content", "quote"),
    [
        ("My favorite editor is Helix.", "favorite editor: Helix", "My favorite editor is Helix"),
        ("The favorite editor is vim.", "favorite editor: vim", "The favorite editor is vim"),
        ("favorite editor: Emacs", "favorite editor: Emacs", "favorite editor: Emacs"),
        ("our favorite-editor is `nano`", "favorite editor: nano", "our favorite-editor is `nano`"),
    ],
)
async def test_generic_slot_phrasings_work_without_patterns(text: str, content: str, quote: str) -> None:
    policy = MemoryPolicy(name="p", critical_slots=(CriticalSlot(name="favorite_editor"),))
    facts = await _extract(text, policy=policy)
    assert [(f.slot, f.content, f.spans[0].quote) for f in facts] == [("favorite_editor", content, quote)]


async def test_single_word_slot_ignores_loose_the_phrasing() -> None:
    policy = MemoryPolicy(name="p", critical_slots=(CriticalSlot(name="name"),))
    assert _slot_values(await _extract("The name is misleading.", policy=policy)) == {}
    assert _slot_values(await _extract("My name is Ana.", policy=policy)) == {"name": "name: Ana"}


async def test_slot_wins_over_overlapping_statement_and_latest_value_wins() -> None:
    facts = await _extract(
        "I live in Porto.",
        "Actually I live in Rio de Janeiro now, and I love it here.",
        policy=PERSONAL_ASSISTANT,
    )
    assert [(f.slot, f.content, f.source_event_ids) for f in facts] == [
        ("home_city", "home city: Rio de Janeiro", (2,)),
    ]


async def test_slot_already_current_is_not_proposed_again() -> None:
    policy = MemoryPolicy(name="p", critical_slots=(CriticalSlot(name="name"),))
    facts = await _extract("My name is Ana.", policy=policy, current_slots={"name": "name: Ana"})
    assert facts == []
    facts = await _extract("My name is Ana.", policy=policy, current_slots={"name": "Bea"})
    assert _slot_values(facts) == {"name": "name: Ana"}


async def test_slots_are_not_read_from_questions_or_conditionals() -> None:
    assert await _extract("Can you run tests with `pytest -q`?", policy=CODING_AGENT) == []
    assert await _extract("If the build command is `make`, use it.", policy=CODING_AGENT) == []
    assert await _extract("Opposing counsel said the deadline is June 1.", policy=LEGAL) == []


CODING_SLOTS = [
    (
        "We're working in the acme/payments repo.",
        "repository",
        "acme/payments",
        "working in the acme/payments repo",
    ),
    (
        "The repo is https://github.com/acme/api.git",
        "repository",
        "https://github.com/acme/api.git",
        "The repo is https://github.com/acme/api.git",
    ),
    (
        "The project is written in TypeScript.",
        "language",
        "TypeScript",
        "The project is written in TypeScript",
    ),
    ("The codebase is in C++.", "language", "C++", "The codebase is in C++"),
    ("Our main language is Go.", "language", "Go", "main language is Go"),
    ("We use pnpm for everything.", "toolchain", "pnpm", "We use pnpm"),
    ("We manage dependencies with uv.", "toolchain", "uv", "We manage dependencies with uv"),
    ("Build with `make build`.", "build_command", "make build", "Build with `make build`"),
    (
        "To build, run `cargo build --release`.",
        "build_command",
        "cargo build --release",
        "To build, run `cargo build --release`",
    ),
    ("build command: make release", "build_command", "make release", "build command: make release"),
    ("Run tests with `pytest -q`.", "test_command", "pytest -q", "Run tests with `pytest -q`"),
    ("tests: npm test", "test_command", "npm test", "tests: npm test"),
    (
        "Run the tests using `go test ./...`.",
        "test_command",
        "go test ./...",
        "Run the tests using `go test ./...`",
    ),
    (
        "To run the tests, use `tox -e py311`.",
        "test_command",
        "tox -e py311",
        "To run the tests, use `tox -e py311`",
    ),
    ("Run tests with npm test, then push.", "test_command", "npm test", "Run tests with npm test"),
    (
        "The test command is `cargo test --all`.",
        "test_command",
        "cargo test --all",
        "test command is `cargo test --all`",
    ),
    (
        "Our conventions are PEP 8 and Conventional Commits.",
        "conventions",
        "PEP 8 and Conventional Commits",
        "Our conventions are PEP 8 and Conventional Commits",
    ),
    (
        "We follow PEP 8 with 100-char lines.",
        "conventions",
        "PEP 8 with 100-char lines",
        "We follow PEP 8 with 100-char lines",
    ),
    (
        "The current goal is to add OAuth login to the API.",
        "current_goal",
        "add OAuth login to the API",
        "The current goal is to add OAuth login to the API",
    ),
    (
        "Right now I'm working on the payment retries.",
        "current_goal",
        "the payment retries",
        "Right now I'm working on the payment retries",
    ),
]


@pytest.mark.parametrize(("text", "slot", "value", "quote"), CODING_SLOTS)
async def test_coding_agent_slot_patterns(text: str, slot: str, value: str, quote: str) -> None:
    facts = await _extract(text, policy=CODING_AGENT)
    slots = [f for f in facts if f.slot]
    assert [(f.slot, f.content, f.spans[0].quote) for f in slots] == [
        (slot, f"{slot.replace('_', ' ')}: {value}", quote)
    ]


async def test_test_output_is_not_a_test_command() -> None:
    assert _slot_values(await _extract("tests: 3 failed, 10 passed", policy=CODING_AGENT)) == {}


LEGAL_SLOTS = [
    ("In the matter of Acme Corp v. Beta LLC, we need a timeline.", "matter", "Acme Corp v. Beta LLC"),
    ("Matter no. 2024-117 is the one.", "matter", "2024-117"),
    ("Matter: Smith v. Jones", "matter", "Smith v. Jones"),
    ("Our client is Northwind Traders Ltd.", "client", "Northwind Traders Ltd"),
    ("We represent the Harbor Authority.", "client", "the Harbor Authority"),
    ("Jurisdiction: England and Wales", "jurisdiction", "England and Wales"),
    ("The contract is governed by the laws of the State of New York.", "jurisdiction", "State of New York"),
    (
        "The case was filed in the Southern District of New York.",
        "jurisdiction",
        "Southern District of New York",
    ),
    ("Privilege: attorney-client privileged", "privilege", "attorney-client privileged"),
    ("This is privileged and confidential.", "privilege", "privileged and confidential"),
    ("The deadline is March 3, 2025 for the reply brief.", "deadlines", "March 3, 2025 for the reply brief"),
    ("The response is due by 14 April.", "deadlines", "The response is due by 14 April"),
    ("The motion must be filed by Friday, May 9.", "deadlines", "The motion must be filed by Friday, May 9"),
]


@pytest.mark.parametrize(("text", "slot", "value"), LEGAL_SLOTS)
async def test_legal_slot_patterns(text: str, slot: str, value: str) -> None:
    assert _slot_values(await _extract(text, policy=LEGAL)) == {slot: f"{slot}: {value}"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Customer ID: AC-99812", {"customer": "customer: AC-99812"}),
        ("I'm having trouble with the Acme Router X2.", {"product": "product: Acme Router X2"}),
        ("We're on the Business plan.", {"plan": "plan: Business"}),
        ("This is about ticket #48213.", {"open_ticket": "open ticket: 48213"}),
        ("Please contact me by email.", {"preferred_contact_channel": "preferred contact channel: email"}),
    ],
)
async def test_support_agent_slot_patterns(text: str, expected: dict[str, str]) -> None:
    assert _slot_values(await _extract(text, policy=SUPPORT_AGENT)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My name is Ana Sousa.", {"name": "name: Ana Sousa"}),
        ("My timezone is Europe/Lisbon.", {"timezone": "timezone: Europe/Lisbon"}),
        ("I'm based in New York City.", {"home_city": "home city: New York City"}),
        ("I don't eat pork.", {"dietary_preferences": "dietary preferences: don't eat pork"}),
        (
            "I usually work from 8:30 to 16:30 on weekdays.",
            {"working_hours": "working hours: 8:30 to 16:30 on weekdays"},
        ),
        ("My friend lives in Paris.", {}),
    ],
)
async def test_personal_assistant_slot_patterns(text: str, expected: dict[str, str]) -> None:
    assert _slot_values(await _extract(text, policy=PERSONAL_ASSISTANT)) == expected


# ----------------------------------------------------------------------------- summaries

CI_TASK = (
    _event("Help me set up CI for the payments service.", event_id=1),
    _event(
        "Sure. I created .github/workflows/ci.yml with a test job. Which Python versions?",
        event_id=2,
        role="assistant",
    ),
    _event("Let's use Python 3.12 only. We decided to cache uv downloads.", event_id=3),
    _event("Done: the matrix now runs 3.12 and caches uv.", event_id=4, role="assistant"),
    _event("Next, coverage. Should it fail the build below 90%?", event_id=5),
)


async def test_summary_sections() -> None:
    summary = await _summarize(CI_TASK)
    assert summary == (
        "Goal: Help me set up CI for the payments service.\n"
        "Decisions:\n"
        "- The user decided to use Python 3.12 only\n"
        "- The user decided to cache uv downloads\n"
        "Latest request: Next, coverage. Should it fail the build below 90%?\n"
        "Last assistant action: Done: the matrix now runs 3.12 and caches uv.\n"
        "Open questions:\n"
        "- Should it fail the build below 90%?"
    )
    assert summary == await _summarize(CI_TASK)  # deterministic


async def test_latest_explicit_goal_replaces_first_request() -> None:
    events = (*CI_TASK, _event("I want to ship this before Friday.", event_id=6))
    assert (await _summarize(events)).startswith("Goal: The user wants to ship this before Friday\n")


async def test_summary_merges_with_previous_summary() -> None:
    first = await _summarize(CI_TASK)
    later = (
        _event("Yes, it fails below 90%. I also added a badge. Anything else?", event_id=6, role="assistant"),
        _event("We'll go with Codecov for reports.", event_id=7),
    )
    merged = await _summarize(later, previous=first)
    assert merged == (
        "Goal: Help me set up CI for the payments service.\n"
        "Decisions:\n"
        "- The user decided to use Python 3.12 only\n"
        "- The user decided to cache uv downloads\n"
        "- The user decided to go with Codecov for reports\n"
        "Latest request: We'll go with Codecov for reports.\n"
        "Last assistant action: Yes, it fails below 90%.\n"
    ).rstrip("\n")


async def test_summary_keeps_open_questions_until_the_assistant_answers() -> None:
    first = await _summarize(CI_TASK)
    more = (_event("Also, can we run it nightly?", event_id=6),)
    merged = await _summarize(more, previous=first)
    assert merged.endswith(
        "Open questions:\n- Should it fail the build below 90%?\n- Also, can we run it nightly?"
    )


async def test_summary_of_foreign_previous_summary_is_kept_as_earlier() -> None:
    merged = await _summarize(
        (_event("Let's use Redis.", event_id=9),), previous="The team set up CI last week."
    )
    assert merged.splitlines()[0] == "Earlier: The team set up CI last week."
    assert "- The user decided to use Redis" in merged


async def test_summary_is_bounded_and_code_is_not_pasted() -> None:
    many = [
        _event(f"Let's use library number {i} for the {'very ' * 30}long thing. " * 3, event_id=i)
        for i in range(1, 60)
    ]
    code = _event("```python\n" + "x = 1\n" * 500 + "```\nwhy does this fail?", event_id=99)
    events = (*many, code)
    summary = await _summarize(events, previous="Goal: " + "g" * 5000)
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert "x = 1" not in summary
    assert "[code]" in summary
    assert summary.count("\n- The user decided") <= 5


async def test_summary_of_nothing() -> None:
    assert await _summarize(()) == "No user or assistant messages yet."
