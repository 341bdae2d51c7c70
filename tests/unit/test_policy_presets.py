"""Built-in policy presets: registered through the real plugin manager, valid, and distinct."""

from __future__ import annotations

import re

import pytest
from engram_policies import CODING_AGENT, DEFAULT, LEGAL, PRESETS, SUPPORT_AGENT
from engram_strategies import BUILTIN_STRATEGIES

from engram import plugins
from engram.errors import ConfigurationError
from engram.policy import MemoryPolicy, policy_from_mapping

BUILTIN_NAMES = {s.name for s in BUILTIN_STRATEGIES}

EXPECTED = {"default", "coding_agent", "legal", "support_agent", "personal_assistant"}


@pytest.fixture(scope="module")
def registered() -> dict[str, MemoryPolicy]:
    plugins.reset_plugin_manager()  # discover entry points afresh, as a new process would
    return plugins.policies()


def test_all_presets_load_through_the_plugin_manager(registered: dict[str, MemoryPolicy]) -> None:
    assert set(registered) >= EXPECTED
    for name in EXPECTED:
        assert isinstance(registered[name], MemoryPolicy)
        assert registered[name].name == name
    assert "policies" in plugins.plugin_sources()


def test_preset_names_are_unique() -> None:
    names = [p.name for p in PRESETS]
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED


@pytest.mark.parametrize("policy", PRESETS, ids=lambda p: p.name)
def test_preset_validates_and_round_trips(policy: MemoryPolicy) -> None:
    # Through the same path a TOML policy file takes, including the strategy check.
    again = policy_from_mapping(policy.model_dump(), source=policy.name)
    assert again == policy
    policy.check_strategies(BUILTIN_NAMES)
    assert set(policy.recall.weights) == BUILTIN_NAMES
    assert len(policy.description) > 80
    for slot in policy.critical_slots:
        assert slot.description
        for pattern in slot.patterns:
            re.compile(pattern, re.IGNORECASE)


def test_a_typo_in_a_preset_would_be_refused() -> None:
    data = CODING_AGENT.model_dump()
    data["recall"]["weights"]["recent_ledgr"] = 1.0
    with pytest.raises(ConfigurationError, match="recent_ledgr"):
        policy_from_mapping(data, source="typo")


def test_coding_agent_choices() -> None:
    assert [s.name for s in CODING_AGENT.critical_slots] == [
        "repository",
        "language",
        "toolchain",
        "build_command",
        "test_command",
        "conventions",
        "current_goal",
    ]
    assert all(s.patterns for s in CODING_AGENT.critical_slots)
    weights = CODING_AGENT.recall.weights
    assert weights["recent_ledger"] > weights["facts_vector"]
    assert weights["checkpoint"] > weights["facts_vector"]
    assert weights["recent_ledger"] > DEFAULT.recall.weights["recent_ledger"]
    assert 5 <= CODING_AGENT.checkpoint_every_turns <= 7
    assert CODING_AGENT.checkpoint_every_turns < DEFAULT.checkpoint_every_turns


def test_legal_choices() -> None:
    assert [s.name for s in LEGAL.critical_slots] == [
        "matter",
        "client",
        "jurisdiction",
        "privilege",
        "deadlines",
    ]
    weights = LEGAL.recall.weights
    assert weights["long_input"] == max(weights.values())
    assert "secrets_and_pii" in LEGAL.redaction.before_model
    assert "secrets_and_pii" in LEGAL.redaction.before_storage
    assert LEGAL.chunking.max_tokens > DEFAULT.chunking.max_tokens
    assert LEGAL.chunking.overlap_tokens > DEFAULT.chunking.overlap_tokens
    overlap_ratio = LEGAL.chunking.overlap_tokens / LEGAL.chunking.max_tokens
    assert overlap_ratio > DEFAULT.chunking.overlap_tokens / DEFAULT.chunking.max_tokens


def test_support_agent_redacts_before_model_and_storage() -> None:
    assert {s.name for s in SUPPORT_AGENT.critical_slots} == {
        "customer",
        "product",
        "plan",
        "open_ticket",
        "preferred_contact_channel",
    }
    assert "secrets_and_pii" in SUPPORT_AGENT.redaction.before_model
    assert "secrets_and_pii" in SUPPORT_AGENT.redaction.before_storage


def test_personal_assistant_and_default_slots() -> None:
    registered = {p.name: p for p in PRESETS}
    assert [s.name for s in registered["personal_assistant"].critical_slots] == [
        "name",
        "timezone",
        "home_city",
        "dietary_preferences",
        "working_hours",
    ]
    assert [s.name for s in DEFAULT.critical_slots] == ["name", "preferred_language"]


def test_presets_are_immutable() -> None:
    with pytest.raises(Exception, match="frozen"):
        DEFAULT.name = "changed"  # type: ignore[misc]
