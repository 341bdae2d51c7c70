"""Choosing a memory policy: by name, object, TOML file, environment; and refusing bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from engram import ConfigurationError, CriticalSlot, Engram, MemoryPolicy
from engram.policy import load_policy_file

GOOD_TOML = """
name = "from-file"
description = "loaded from TOML"
checkpoint_every_turns = 3

[[critical_slots]]
name = "matter"
description = "the legal matter"
patterns = ["matter (?:is|:) ([A-Z0-9-]+)"]

[recall]
token_budget = 900
weights = { facts_vector = 1.0, facts_keyword = 0.5, critical_slots = 1.0 }
"""


def test_policy_by_name_object_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Engram("postgresql://unused", memory_policy="legal").policy.name == "legal"
    custom = MemoryPolicy(name="inline")
    assert Engram("postgresql://unused", memory_policy=custom).policy is custom
    monkeypatch.setenv("ENGRAM_POLICY", "coding_agent")
    assert Engram("postgresql://unused").policy.name == "coding_agent"


def test_unknown_policy_lists_the_available_ones() -> None:
    with pytest.raises(ConfigurationError) as err:
        Engram("postgresql://unused", memory_policy="lawyer")
    message = str(err.value)
    assert "lawyer" in message
    for name in ("default", "coding_agent", "legal", "support_agent", "personal_assistant"):
        assert name in message


def test_policy_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(GOOD_TOML)
    client = Engram("postgresql://unused", memory_policy=str(path))
    policy = client.policy
    assert policy.name == "from-file" and policy.recall.token_budget == 900
    assert policy.critical_slots == (
        CriticalSlot(
            name="matter", description="the legal matter", patterns=("matter (?:is|:) ([A-Z0-9-]+)",)
        ),
    )
    assert Engram("postgresql://unused", memory_policy=path).policy == policy


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('name = "x"\nsurprise = 1\n', "<root>: 1 unknown setting"),
        ('name = "x"\ncheckpoint_every_turns = "often"\n', "checkpoint_every_turns"),
        ('name = "x"\n[recall]\ntoken_budget = -5\n', "recall.token_budget"),
        (
            'name = "x"\n[[critical_slots]]\nname = "a"\n[[critical_slots]]\nname = "a"\n',
            "duplicate critical slot",
        ),
        ('name = "x"\n[recall]\nweights = { facts_vectr = 1.0 }\n', "did you mean 'facts_vector'"),
        ('name = "x"\n[[critical_slots]]\nname = "Bad Name"\n', "critical_slots.0.name"),
        (
            'name = "x"\n[[critical_slots]]\nname = "ok"\npatterns = ["(unclosed"]\n',
            "invalid regular expression",
        ),
        ('name = "x"\n[chunking]\nmax_tokens = 100\noverlap_tokens = 200\n', "overlap_tokens"),
        ('name = "x"\n[recall.hybrid]\nkeyword_share = 1.5\n', "recall.hybrid.keyword_share"),
        ('name = "x"\n[recall.hybrid]\npool = 3\n', "recall.hybrid.pool"),
        ('name = "x"\n[recall.hybrid]\nneighbor_weight = 0.1\n', "did you mean 'neighbour_weight'"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_policy_files_are_refused_naming_the_field(tmp_path: Path, toml: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigurationError, match=field.replace(".", r"\.").replace("(", r"\(")):
        load_policy_file(path)
    with pytest.raises(ConfigurationError):
        Engram("postgresql://unused", memory_policy=str(path))


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        Engram("postgresql://unused", memory_policy=str(tmp_path / "nope.toml"))


def test_policies_are_immutable() -> None:
    policy = MemoryPolicy(name="frozen")
    with pytest.raises(ValueError):
        policy.name = "changed"  # type: ignore[misc]
