"""Offline checks for the ``veterinary_clinic`` policy: no database, no model.

Run with ``pytest`` from the package folder once the package and Engram are
installed.  The slot checks go through Engram's real ``rules`` extractor, so a
pattern that validates but never matches what people actually say fails here.
"""

from __future__ import annotations

import asyncio

import pytest
from engram_policy_veterinary import POLICY_NAME, VETERINARY_CLINIC, register_policies
from engram_rules import RulesExtractor
from engram_strategies import BUILTIN_STRATEGIES

from engram.interfaces import ExtractionRequest, SourceEvent
from engram.policy import policy_from_mapping


def slot_values(sentence: str) -> dict[str, str]:
    """The critical-slot values the rules extractor finds in one user message."""
    request = ExtractionRequest(
        user_id="u",
        agent_id="a",
        task_id="t",
        events=(SourceEvent(event_id=1, task_id="t", role="user", content=sentence),),
        policy=VETERINARY_CLINIC,
    )
    facts = asyncio.run(RulesExtractor().extract(request))
    return {f.slot: f.content.partition(": ")[2] for f in facts if f.slot is not None}


def test_the_hook_registers_the_policy() -> None:
    registered: list[object] = []
    register_policies(registered.append)
    assert registered == [VETERINARY_CLINIC]
    assert VETERINARY_CLINIC.name == POLICY_NAME


def test_the_policy_survives_a_round_trip_through_validation() -> None:
    """What a TOML file with the same keys would produce: validated, every weight known."""
    again = policy_from_mapping(VETERINARY_CLINIC.model_dump(), source="round trip")
    assert again == VETERINARY_CLINIC
    assert set(VETERINARY_CLINIC.recall.weights) == {s.name for s in BUILTIN_STRATEGIES}


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Hi, I'm here about my dog, Biscuit.", {"patient_name": "Biscuit", "species": "dog"}),
        ("Our rabbit is called Sir Waffles.", {"patient_name": "Sir Waffles", "species": "rabbit"}),
        ("Patient: Luna.", {"patient_name": "Luna"}),
        ("Species: bearded dragon.", {"species": "bearded dragon"}),
        ("I'm Maria Lopez, Biscuit's owner.", {"owner": "Maria Lopez"}),
        ("She belongs to Ana Silva.", {"owner": "Ana Silva"}),
        ("She is allergic to penicillin and chicken.", {"patient_allergies": "penicillin and chicken"}),
        ("No known allergies.", {"patient_allergies": "No known allergies"}),
        (
            "She's currently on meloxicam 1.5 mg once daily.",
            {"patient_medication": "meloxicam 1.5 mg once daily"},
        ),
        (
            "Current medication: gabapentin 100 mg at night.",
            {"patient_medication": "gabapentin 100 mg at night"},
        ),
        ("Biscuit weighs 24.5 kg.", {"patient_weight": "24.5 kg"}),
        ("The patient's weight is 7.2 kg.", {"patient_weight": "7.2 kg"}),
    ],
)
def test_slot_patterns_match_how_people_say_it(sentence: str, expected: dict[str, str]) -> None:
    assert slot_values(sentence) == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "I'm allergic to cats.",  # the owner, not the patient
        "My allergies are playing up today.",
        "My current medication is ibuprofen.",
        "My weight is 80 kg.",
        "The dog is on a diet.",  # no drug and dose
        "Is she allergic to penicillin?",  # a question states nothing
    ],
)
def test_owner_statements_and_questions_fill_no_slot(sentence: str) -> None:
    assert slot_values(sentence) == {}
