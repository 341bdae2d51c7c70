"""The ``veterinary_clinic`` memory policy.

An assistant in a veterinary practice talks to receptionists, nurses and vets
about one animal at a time.  Whatever the question, it must never lose track of
*which* animal it is, what species it is, who owns it, what it is allergic to,
what it is currently taking and what it weighs (doses are per kilogram).  Those
six facts are critical slots: their current values are pinned at the top of
every recall, without any similarity search.

Slot patterns are regular expressions for Engram's offline ``rules`` extractor.
It compiles them case-insensitively, so ``(?-i:[A-Z])`` is used where a capital
letter matters (names), and it takes the first capture group as the value.  The
extractor also derives generic phrasings from each slot's *name* ("my <name> is
...", "<name>: ..."), which is why the animal's slots start with ``patient_``: a
slot called ``allergies`` would also catch an owner saying "my allergies are
playing up".

Text written before the match must not look like reported speech ("she", "his",
"they said ..."), or the extractor skips it as someone else's claim; the
patterns therefore start *at* the subject ("She is allergic to ...") rather than
after it.
"""

from __future__ import annotations

from engram.policy import (
    ChunkingSettings,
    CriticalSlot,
    MemoryPolicy,
    RecallSettings,
    RedactionSettings,
    RetentionSettings,
    RouterRule,
)

__all__ = ["POLICY_NAME", "VETERINARY_CLINIC"]

#: The name clients select with ``Engram(memory_policy=...)``.
POLICY_NAME = "veterinary_clinic"

# ---------------------------------------------------------------- pattern pieces

#: Animals seen in a small-animal and mixed practice (multi-word names first).
_ANIMAL = (
    r"(?:guinea pig|bearded dragon|dog|cat|puppy|kitten|rabbit|bunny|hamster|gerbil|ferret|chinchilla|"
    r"rat|mouse|parrot|budgie|cockatiel|canary|tortoise|turtle|lizard|gecko|snake|horse|pony|donkey|"
    r"goat|sheep|pig|cow|chicken|duck)"
)
#: A capitalised name of one to three words: "Biscuit", "Maria Lopez", "Sir Waffles III".
_NAME = r"((?-i:[A-Z])[\w'’-]*(?: (?-i:[A-Z])[\w'’-]*){0,2})"
#: Who a clinical statement is about: a pronoun, "my dog", or a capitalised name.
_SUBJECT = rf"(?:he|she|it|they|(?:my|our|the) {_ANIMAL}|(?-i:[A-Z])[\w'’-]+)"
_IS = r"(?:'s|’s|\s+is|\s+are)"
#: A drug with a dose, e.g. "meloxicam 1.5 mg once daily", "Apoquel 16mg twice a day".
_DRUG_AND_DOSE = r"([\w-]+(?: [\w-]+)? \d+(?:\.\d+)?\s?(?:mg|mcg|µg|g|ml|iu|units?)\b[^;\n]*)"
#: A label at the start of a sentence ("Allergies: ...", "The patient's weight is ...").  Anchored so
#: that the owner's own "my medication is ..." is not taken for the animal's.
_LABEL = r"^(?:the )?(?:patient(?:'s|’s)? )?"
#: A body weight with its unit.
_WEIGHT = r"(\d+(?:[.,]\d+)?\s?(?:kg|kilos?|kilograms?|g|grams?|lbs?|pounds))\b"


# ---------------------------------------------------------------- critical slots

PATIENT_NAME = CriticalSlot(
    name="patient_name",
    description="The animal being treated: its name as the owner or clinic uses it.",
    patterns=(
        rf"\bmy {_ANIMAL}(?:'s|’s) name is {_NAME}",
        rf"\b(?:my|our) {_ANIMAL} is (?:called|named) {_NAME}",
        rf"\b(?:the )?patient(?:'s name| name)?(?: is|:)\s+{_NAME}",
        rf"\bi(?:'m| am) (?:here|calling|writing|booking) (?:about|for|with) my {_ANIMAL},? {_NAME}",
    ),
)

SPECIES = CriticalSlot(
    name="species",
    description="The patient's species (dog, cat, rabbit, ...), which decides drugs and doses.",
    patterns=(
        rf"\bmy ({_ANIMAL})(?:'s|’s) name is",
        rf"\b(?:my|our) ({_ANIMAL}) is (?:called|named)\b",
        rf"\bi(?:'m| am) (?:here|calling|writing|booking) (?:about|for|with) my ({_ANIMAL})\b",
        r"\bspecies(?: is|:)\s+([\w -]+)",
    ),
)

OWNER = CriticalSlot(
    name="owner",
    description="The owner or client responsible for the animal, by name.",
    patterns=(
        rf"\b(?:the )?owner(?:'s name| name)?(?: is|:)\s+{_NAME}",
        rf"\bi(?:'m| am) {_NAME},? (?:the|(?-i:[A-Z])[\w'’-]*(?:'s|’s)) owner\b",
        rf"\b(?:he|she|it) belongs to {_NAME}",
        rf"\bowned by {_NAME}",
    ),
)

PATIENT_ALLERGIES = CriticalSlot(
    name="patient_allergies",
    description="Drugs, foods or materials the animal reacts to, or 'no known allergies'.",
    patterns=(
        rf"\b{_SUBJECT}{_IS}(?: also| severely| very| mildly)? allergic to (.+)",
        rf"{_LABEL}(?:known )?allerg(?:y|ies)(?: is| are|:)\s+(.+)",
        r"\b(no known (?:drug )?allergies)\b",
    ),
)

PATIENT_MEDICATION = CriticalSlot(
    name="patient_medication",
    description="What the animal is currently taking, with dose and frequency.",
    patterns=(
        rf"\b{_SUBJECT}{_IS}?\s+(?:currently\s+|now\s+|still\s+)?(?:on|taking|receiving|getting)\s+"
        rf"{_DRUG_AND_DOSE}",
        rf"{_LABEL}(?:current )?(?:medications?|meds)(?: is| are|:)\s+(.+)",
    ),
)

PATIENT_WEIGHT = CriticalSlot(
    name="patient_weight",
    description="The animal's latest body weight with its unit; doses are calculated from it.",
    patterns=(
        rf"\b{_SUBJECT}\s+(?:now\s+|currently\s+)?weighs\s+(?:about\s+|around\s+)?{_WEIGHT}",
        rf"{_LABEL}(?:body |current )?weight(?: is|:)\s+{_WEIGHT}",
    ),
)


# ---------------------------------------------------------------- the policy


def _recall_weights() -> dict[str, float]:
    """Engram's default strategy weights with this practice's changes applied.

    Starting from the kernel's defaults keeps a strategy added in a later Engram
    release running here too: a strategy missing from ``weights`` does not run.
    """
    changes = {
        "facts_keyword": 1.2,  # drug names, lab values and microchip numbers must match exactly
        "recent_ledger": 0.8,  # the consultation matters, but less than the record
        "ledger_vector": 0.7,
        "checkpoint": 0.8,
        "long_input": 1.0,  # lab reports, referral letters and discharge notes
        "lineage": 0.9,  # clinical statements should point back to who said them
    }
    return {**RecallSettings().weights, **changes}


VETERINARY_CLINIC = MemoryPolicy(
    name=POLICY_NAME,
    description=(
        "Veterinary practices.  Pins the patient's name, species, owner, allergies, current medication "
        "and weight so they head every recall whatever is asked.  Keyword search and source quotes weigh "
        "more than usual (drug names and lab values must match exactly and stay traceable); lab reports "
        "recorded as long inputs are favoured.  Owner contact details and secrets are redacted before "
        "a hosted model sees text and before anything is stored.  Medical history never expires."
    ),
    extraction_instructions=(
        "Extract facts about the animal and its care exactly as stated: name, species, breed, age, sex and "
        "neuter status, owner, allergies, current medication with dose and frequency, weight, diagnoses "
        "made by the vet, vaccinations, procedures, the owner's instructions and consent, and follow-up "
        "dates.  Keep doses, units and dates verbatim.  Never infer a diagnosis, and do not record the "
        "owner's payment or contact details."
    ),
    categories=("fact", "history", "treatment", "instruction", "appointment", "preference"),
    critical_slots=(
        PATIENT_NAME,
        SPECIES,
        OWNER,
        PATIENT_ALLERGIES,
        PATIENT_MEDICATION,
        PATIENT_WEIGHT,
    ),
    recall=RecallSettings(
        weights=_recall_weights(),
        default_limit=14,
        token_budget=1800,
        recency_half_life_days=60.0,  # patients come back every few weeks or months
        recent_turns=8,
        router_rules=(
            RouterRule(
                pattern=r"\b(?:lab (?:report|results?)|blood ?work|blood results|x-?ray report|"
                r"referral letter|discharge (?:notes|summary))\b",
                intent="quote",
            ),
            RouterRule(
                pattern=r"\b(?:dose|dosage|mg/kg|how much \w+ (?:can|should) (?:i|we) give|allergic|allergies)\b",
                intent="facts",
            ),
        ),
    ),
    checkpoint_every_turns=6,  # one consultation is a handful of turns; hand-overs need a summary
    redaction=RedactionSettings(before_model=("secrets_and_pii",), before_storage=("secrets_and_pii",)),
    chunking=ChunkingSettings(max_tokens=300, overlap_tokens=50),
    retention=RetentionSettings(fact_ttl_days=None, job_history_days=30),
)
