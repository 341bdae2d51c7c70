"""Engram's built-in memory policies, registered through ``register_policies``.

Each preset is an ordinary :class:`engram.MemoryPolicy`, built and validated when
this module is imported, and registered exactly as a third-party policy package
would register its own.  The documentation page for each preset
(``docs/policies/<name>.md``) explains every choice; the ``description`` field
carries the short version so ``engram policies`` can show it.

Slot patterns are regular expressions the offline ``rules`` extractor tries on
user turns (case-insensitively; ``(?-i:...)`` marks the parts where case
matters).  The first capture group is the slot's value.  LLM extractors see each
slot's ``description`` instead.
"""

from __future__ import annotations

from collections.abc import Callable

from engram.hookspecs import hookimpl
from engram.policy import (
    ChunkingSettings,
    CriticalSlot,
    MemoryPolicy,
    RecallSettings,
    RedactionSettings,
    RetentionSettings,
    RouterRule,
)

__all__ = [
    "CODING_AGENT",
    "DEFAULT",
    "LEGAL",
    "PERSONAL_ASSISTANT",
    "PRESETS",
    "SUPPORT_AGENT",
    "register_policies",
]

#: The redactor from the ``redactors`` plugin that finds credentials and personal data.
SECRETS_AND_PII = "secrets_and_pii"


def _weights(**overrides: float) -> dict[str, float]:
    """The kernel's default weights with a preset's changes.

    Starting from ``RecallSettings``' defaults means a strategy added to the kernel
    later is enabled in every preset at its default weight instead of silently
    missing (a strategy absent from ``weights`` does not run).
    """
    base = dict(RecallSettings().weights)
    unknown = set(overrides) - set(base)
    if unknown:  # a typo here would otherwise surface only when a client resolves the policy
        raise ValueError(f"unknown strategies {sorted(unknown)}")
    return {**base, **overrides}


# Shared pattern fragments.  The value group stops at the end of a clause; the
# rules extractor trims trailing punctuation and whitespace afterwards.
_CAP = "(?-i:[A-Z])"  # an upper-case letter even though patterns run case-insensitively
_PROPER = rf"({_CAP}[\w'’.-]*(?:[ -]{_CAP}[\w'’.-]*){{0,3}})"  # "Ana", "Rio de Janeiro" stops at "de"
_PLACE = rf"({_CAP}[\w'’.-]*(?:(?:[ -]|\s(?:de|do|da|del|la|le|am|upon|on)\s){_CAP}[\w'’.-]*){{0,4}})"
_TICKED = r"`([^`\n]+)`"  # a command written in backticks, as people do for commands
_LANGUAGES = (
    r"(Python|TypeScript|JavaScript|Golang|Go|Rust|Java|Kotlin|Swift|C\+\+|C#|Objective-C|C|Ruby|PHP|Scala|"
    r"Elixir|Erlang|Haskell|OCaml|F#|Zig|Dart|Julia|Lua|Perl|R|Clojure|Nim|Crystal|Solidity|SQL|Bash)"
    r"(?![\w+#])"
)
_RUNNERS = (
    r"(?:pytest|python3?|py\.test|tox|nox|uv|poetry|hatch|pdm|npm|pnpm|yarn|bun|npx|deno|node|jest|vitest|"
    r"mocha|go|cargo|make|just|mvn|gradle|\./gradlew|sbt|mix|rspec|bundle|rake|dotnet|ctest|bazel|phpunit|"
    r"composer|swift|flutter|dart|zig|\./[\w./-]+|bin/[\w./-]+|scripts?/[\w./-]+)"
)
_COMMAND = rf"({_RUNNERS}\b[^`;\n]*?)(?=\s*(?:[.;,]\s|[.;,]?$|\s+(?:and|but|then)\s))"
_HOURS = (
    r"(\d{1,2}(?::\d{2})?(?:\s*(?:am|pm|h))?\s*(?:-|–|to|until|till)\s*\d{1,2}(?::\d{2})?(?:\s*(?:am|pm|h))?"
    r"(?:,?\s+(?:on\s+)?(?:mon|tue|wed|thu|fri|sat|sun|week)[\w]*(?:\s*(?:-|–|to|through)\s*\w+)?)?)"
)


DEFAULT = MemoryPolicy(
    name="default",
    description=(
        "General-purpose assistant.  Remembers who the user is, what they prefer and what they "
        "decided, with balanced recall across facts, the current conversation and its checkpoint.  "
        "Pins only two slots that almost every assistant needs: the user's name and the language "
        "they want replies in.  Credentials and personal data are redacted before text goes to a "
        "hosted model; the ledger keeps the original so nothing the user said is lost."
    ),
    critical_slots=(
        CriticalSlot(
            name="name",
            description="What the user wants to be called.",
            patterns=(
                rf"\bmy name is {_PROPER}",
                rf"\b(?:please )?call me {_PROPER}",
                rf"^(?:hi|hello|hey)[,!]?\s+(?:there[,!]?\s+)?I(?:'m|’m| am) {_PROPER}\s*(?:[.!,]|$)",
            ),
        ),
        CriticalSlot(
            name="preferred_language",
            description="The natural language the user wants replies in (English, Portuguese, ...).",
            patterns=(
                r"\b(?:reply|respond|answer|write|talk|speak)(?: to me)?(?: only)? in (English|Portuguese|"
                r"Spanish|French|German|Italian|Dutch|Polish|Swedish|Norwegian|Danish|Finnish|Greek|Turkish|"
                r"Russian|Ukrainian|Arabic|Hebrew|Hindi|Bengali|Chinese|Mandarin|Cantonese|Japanese|Korean|"
                r"Vietnamese|Thai|Indonesian|Malay|Czech|Romanian|Hungarian|Catalan|Basque|Galician)\b",
            ),
        ),
    ),
    recall=RecallSettings(weights=_weights()),
    checkpoint_every_turns=8,
)


CODING_AGENT = MemoryPolicy(
    name="coding_agent",
    description=(
        "Agents that edit code across long sessions.  Pins the working context an agent must never "
        "lose (repository, language, toolchain, build and test commands, conventions, current goal) "
        "so it bypasses similarity search.  Recall favours this task's recent steps and its latest "
        "checkpoint over old facts, keyword search over vectors (identifiers and file names match "
        "exactly), and memories fade within weeks.  Checkpoints every 6 turns, because agent turns "
        "are dense.  Secrets are redacted before text reaches a hosted model."
    ),
    extraction_instructions=(
        "Extract durable facts about the codebase and how the user wants work done: repository, "
        "languages, tools, build and test commands, coding conventions, architectural decisions and "
        "the current goal.  Ignore transient errors, stack traces and one-off command output."
    ),
    categories=("preference", "decision", "convention", "fact", "goal"),
    critical_slots=(
        CriticalSlot(
            name="repository",
            description="The repository being worked on (owner/name, URL or local path).",
            patterns=(
                r"\b(?:the |our |my |this )?repo(?:sitory)?(?: is| lives| is hosted)?(?: at| on| in)?\s*:?\s*"
                r"`?((?:https?://|git@)?[\w.@~-]+(?:[:/][\w.~-]+)+)`?",
                r"\bworking (?:in|on) (?:the )?`?([\w.-]+/[\w.-]+)`? repo(?:sitory)?\b",
            ),
        ),
        CriticalSlot(
            name="language",
            description="The main programming language of the codebase.",
            patterns=(
                rf"\b(?:the |our |this )?(?:project|codebase|code base|repo|app|service|library|backend|frontend)"
                rf" is (?:written |implemented |built )?in {_LANGUAGES}",
                rf"\b(?:main|primary) (?:programming )?language is {_LANGUAGES}",
                rf"\bwe(?:'re| are)? (?:write|writing|code in|coding in|program in) {_LANGUAGES}",
            ),
        ),
        CriticalSlot(
            name="toolchain",
            description="Package manager / build tooling (uv, poetry, pnpm, cargo, gradle, ...).",
            patterns=(
                r"\b(?:toolchain|package manager) is (?:`)?([\w.+ -]+?)(?:`)?(?=\s*(?:[.;,]|$))",
                r"\b(?:we |i )?(?:use|using|manage (?:deps|dependencies|packages) with|install (?:deps|dependencies|"
                r"packages) with) (uv|poetry|pipenv|pdm|hatch|conda|pip|npm|pnpm|yarn|bun|deno|cargo|maven|gradle|"
                r"bazel|cmake|sbt|mix|bundler|composer|nix)\b",
            ),
        ),
        CriticalSlot(
            name="build_command",
            description="The command that builds the project.",
            patterns=(
                rf"\bbuild(?: it| the project| everything)? (?:with|using|by running) {_TICKED}",
                rf"\bto build(?: it| the project)?,? (?:run|use) {_TICKED}",
                rf"\bbuild(?: command)?\s*(?::|=| is)\s*{_TICKED}",
                rf"\bbuild(?: command)?\s*(?::|=| is)\s*{_COMMAND}",
            ),
        ),
        CriticalSlot(
            name="test_command",
            description="The command that runs the test suite.",
            patterns=(
                rf"\brun (?:the |all )?(?:unit )?tests (?:with|using|via|by running) {_TICKED}",
                rf"\bto (?:run the )?tests?(?: it)?,? (?:run|use) {_TICKED}",
                rf"\btests? (?:run|are run) (?:with|using|via) {_TICKED}",
                rf"\btest(?:s| command| suite)?\s*(?::|=| is)\s*{_TICKED}",
                rf"\brun (?:the |all )?(?:unit )?tests (?:with|using|via) {_COMMAND}",
                rf"\btest(?:s| command)\s*(?::|=| is)\s*{_COMMAND}",
            ),
        ),
        CriticalSlot(
            name="conventions",
            description="Coding conventions the user insists on (style guide, formatter, commit format).",
            patterns=(
                r"\b(?:our |the |my )?(?:coding |code )?(?:conventions?|style guide|code style)(?: is| are|:)\s+(.+)",
                r"\bwe (?:always )?(?:follow|use|stick to) ((?:PEP ?8|black|ruff|prettier|eslint|gofmt|rustfmt|"
                r"conventional commits|google style|airbnb style|standard ?js|semantic versioning)\b[^.;\n]*)",
            ),
        ),
        CriticalSlot(
            name="current_goal",
            description="What the user is trying to achieve in this session.",
            patterns=(
                r"\b(?:the |my |our )?(?:current |main )?(?:goal|task|objective)(?: for (?:today|now|this session))?"
                r" (?:is|right now is) (?:to )?(.+)",
                r"\b(?:right now|today|currently),? (?:i'm|i am|we're|we are) (?:working on|trying to) (.+)",
            ),
        ),
    ),
    recall=RecallSettings(
        weights=_weights(
            facts_vector=0.8,
            facts_keyword=1.1,
            recent_ledger=1.2,
            ledger_search=0.9,
            ledger_vector=0.9,
            checkpoint=1.1,
            long_input=0.6,
            lineage=0.4,
        ),
        default_limit=14,
        token_budget=2000,
        recency_half_life_days=7.0,
        recent_turns=10,
        router_rules=(
            # "the last error" or "the failing test" is about this task's recent steps.
            RouterRule(
                pattern=r"\b(?:failing tests?|last (?:error|traceback|diff|commit|command)|stack ?trace)\b",
                intent="task",
            ),
            RouterRule(
                pattern=r"\b(?:how do (?:we|i) (?:build|test|lint|run)|(?:test|build) command|our conventions?)\b",
                intent="facts",
            ),
        ),
    ),
    checkpoint_every_turns=6,
    redaction=RedactionSettings(before_model=(SECRETS_AND_PII,), before_storage=()),
    chunking=ChunkingSettings(max_tokens=300, overlap_tokens=40),
)


LEGAL = MemoryPolicy(
    name="legal",
    description=(
        "Legal work where every statement must be traceable to its source.  Pins the matter, client, "
        "jurisdiction, privilege status and deadlines.  Long-input chunks and lineage quotes weigh most "
        "in recall, so answers cite documents rather than paraphrase; chunks are larger with generous "
        "overlap so clauses are not cut in half.  Memories fade slowly (matters run for months).  "
        "Redaction is strict: personal data and secrets are removed before any hosted model sees text "
        "and before anything is written to the ledger."
    ),
    extraction_instructions=(
        "Extract facts about the matter exactly as stated: parties, client, jurisdiction, privilege, "
        "deadlines and instructions.  Never infer legal conclusions, and keep dates, names and "
        "citations verbatim."
    ),
    categories=("fact", "decision", "deadline", "instruction", "party", "preference"),
    critical_slots=(
        CriticalSlot(
            name="matter",
            description="The matter or case being worked on (name or number).",
            patterns=(
                r"\bin the matter of (.+)",
                r"\b(?:the |this )?matter(?: name| number| no\.?| #)?(?: is|:)\s+(.+)",
                r"\bmatter (?:no\.?|number|#)\s*([\w./-]*\d[\w./-]*)",
                r"\b(?:the |this )?case(?: is|:)\s+((?-i:[A-Z]).*?\bv\.? .+)",
            ),
        ),
        CriticalSlot(
            name="client",
            description="Who the firm represents in this matter.",
            patterns=(
                r"\b(?:our |the |my )?client(?: is| name is|:)\s+(?!privilege)(.+)",
                r"\bwe (?:represent|are representing|act for|are acting for) (.+)",
            ),
        ),
        CriticalSlot(
            name="jurisdiction",
            description="Governing law or forum (e.g. England and Wales, New York, the EU).",
            patterns=(
                r"\bjurisdiction(?: is|:)\s+(.+)",
                r"\bgoverned by (?:the )?laws? of (?:the )?(.+)",
                r"\b(?:filed|pending|brought) (?:in|before) (?:the )?(.+?(?:court|tribunal|district|circuit)"
                r"(?: (?:of|for) [\w ]+)?)",
            ),
        ),
        CriticalSlot(
            name="privilege",
            description="Privilege status of the material (privileged, work product, not privileged).",
            patterns=(
                r"\bprivilege(?: status)?(?: is|:)\s+(.+)",
                r"\b(?:this is |it is |it's )?((?:not )?(?:privileged (?:and|&) confidential|attorney[- ]client "
                r"privileged?|(?:attorney )?work product|legally privileged|without prejudice))\b",
            ),
        ),
        CriticalSlot(
            name="deadlines",
            description="The next deadline(s) that must not be missed, with dates.",
            patterns=(
                r"\b(?:the |our |next )?deadlines?(?: is| are|:)\s+(.+)",
                # Keep what is due with the date: "deadlines: the reply brief is due by 14 April".
                r"\b((?:the |our |a |an )?[\w -]{2,40}? (?:is|are) due (?:by|on|before) .+)",
                r"\b((?:the |our |a |an )?[\w -]{2,40}? (?:must|needs? to|has to|have to) be (?:filed|served|submitted|"
                r"lodged) (?:by|on|before) .+)",
            ),
        ),
    ),
    recall=RecallSettings(
        weights=_weights(
            facts_vector=0.8,
            facts_keyword=1.1,
            recent_ledger=0.5,
            ledger_search=1.0,
            ledger_vector=0.9,
            checkpoint=0.7,
            long_input=1.4,
            lineage=1.0,
        ),
        default_limit=16,
        token_budget=3000,
        recency_half_life_days=180.0,
        recent_turns=6,
        router_rules=(
            # Document parts and "what did the court say" want the source text itself.
            RouterRule(
                pattern=r"\b(?:exhibit|schedule|annex|recital|sub-?clause|subsection|holding|"
                r"what did (?:the )?(?:court|judge|counsel|witness|opposing counsel) say)\b",
                intent="quote",
            ),
            RouterRule(
                pattern=r"\b(?:deadlines?|due dates?|limitation period|who (?:is|are) the client)\b",
                intent="facts",
            ),
        ),
    ),
    checkpoint_every_turns=10,
    redaction=RedactionSettings(before_model=(SECRETS_AND_PII,), before_storage=(SECRETS_AND_PII,)),
    chunking=ChunkingSettings(max_tokens=400, overlap_tokens=80),
    retention=RetentionSettings(fact_ttl_days=None, job_history_days=90),
)


SUPPORT_AGENT = MemoryPolicy(
    name="support_agent",
    description=(
        "Customer-support agents.  Pins who the customer is, which product and plan they are on, the "
        "ticket being worked and how they want to be contacted, so a returning customer never has to "
        "repeat themselves.  Keyword search weighs more than usual (order numbers, error codes, plan "
        "names); knowledge-base documents can be recorded as long inputs.  Memories fade within weeks "
        "and derived facts expire after a year.  Redaction is strict, before the model and before storage."
    ),
    extraction_instructions=(
        "Extract facts about the customer's account, product, plan, open issues and contact "
        "preferences, and what was promised to them.  Do not record payment details or credentials."
    ),
    categories=("fact", "preference", "issue", "decision", "identity"),
    critical_slots=(
        CriticalSlot(
            name="customer",
            description="The customer's name or account identifier.",
            patterns=(
                rf"\bmy name is {_PROPER}",
                r"\b(?:my )?(?:account|customer) (?:id|number|no\.?|#)\s*(?:is|:)?\s*#?([\w-]*\d[\w-]*)",
            ),
        ),
        CriticalSlot(
            name="product",
            description="The product or service the customer needs help with.",
            patterns=(
                r"\bproduct(?: is|:)\s+(.+)",
                rf"\b(?:problem|issue|trouble|bug|question) with (?:the |your |my )?({_CAP}[\w.+-]*(?: {_CAP}[\w.+-]*)*)",
                rf"\bi(?:'m| am) using (?:the |your )?({_CAP}[\w.+-]*(?: {_CAP}[\w.+-]*)*)",
            ),
        ),
        CriticalSlot(
            name="plan",
            description="The customer's plan, tier or subscription.",
            patterns=(
                r"\b(?:i'm|i am|we're|we are|i'm currently|we're currently) on (?:the |a )?([\w+-]+) "
                r"(?:plan|tier|subscription)\b",
                r"\b(?:my |our )?(?:plan|tier|subscription)(?: is|:)\s+(?:the )?([\w+ -]+?)(?: plan| tier)?(?=\s*(?:[.,;]|$))",
            ),
        ),
        CriticalSlot(
            name="open_ticket",
            description="The reference of the ticket or case currently open for the customer.",
            patterns=(
                r"\b(?:ticket|case|incident|request)\s*(?:#|no\.?|number|id|ref)?\s*:?\s*#?((?:[a-z]{1,6}-)?\d{3,})\b",
            ),
        ),
        CriticalSlot(
            name="preferred_contact_channel",
            description="How the customer wants to be contacted (email, phone, SMS, chat, ...).",
            patterns=(
                r"\b(?:contact|reach|get back to) me (?:by|via|on|over|through) (e-?mail|phone|sms|text|whatsapp|"
                r"slack|chat|telegram|signal)\b",
                r"\bprefer (?:to be contacted |being contacted |contact )?(?:by|via|over|through) (e-?mail|phone|sms|"
                r"text|whatsapp|slack|chat|telegram|signal)\b",
                r"\b(e-?mail|phone|sms|text|whatsapp) (?:is|works) best\b",
            ),
        ),
    ),
    recall=RecallSettings(
        weights=_weights(
            facts_keyword=1.1,
            recent_ledger=1.0,
            ledger_search=0.9,
            ledger_vector=0.9,
            checkpoint=0.9,
            long_input=0.7,
            lineage=0.3,
        ),
        default_limit=12,
        token_budget=1500,
        recency_half_life_days=14.0,
        recent_turns=8,
    ),
    checkpoint_every_turns=6,
    redaction=RedactionSettings(before_model=(SECRETS_AND_PII,), before_storage=(SECRETS_AND_PII,)),
    retention=RetentionSettings(fact_ttl_days=365, job_history_days=30),
)


PERSONAL_ASSISTANT = MemoryPolicy(
    name="personal_assistant",
    description=(
        "A long-lived personal assistant.  Pins the facts that shape almost every answer: name, "
        "timezone, home city, dietary preferences and working hours.  Recall leans on stable facts "
        "over the recent conversation, and memories fade slowly because a person's life changes over "
        "months, not days.  Checkpoints are rare (every 12 turns): conversations are loose and "
        "the value is in facts, not task state."
    ),
    extraction_instructions=(
        "Extract durable facts about the user's life: identity, where they live, routines, schedule, "
        "food and other preferences, people they mention by role, and plans with dates."
    ),
    critical_slots=(
        CriticalSlot(
            name="name",
            description="What the user wants to be called.",
            patterns=(rf"\bmy name is {_PROPER}", rf"\b(?:please )?call me {_PROPER}"),
        ),
        CriticalSlot(
            name="timezone",
            description="The user's timezone (IANA name or UTC offset).",
            patterns=(
                r"\b(?:my )?time ?zone(?: is|:)\s+([\w/+:-]+(?: [\w/+:-]+){0,2}?)(?=\s*(?:[.,;]|$))",
                r"\bi(?:'m| am) (?:in|on) ((?:UTC|GMT)\s?[+-]\s?\d{1,2}(?::\d{2})?|(?:Europe|America|Asia|Africa|"
                r"Australia|Pacific|Atlantic|Indian)/[\w_/-]+|(?:pacific|eastern|central|mountain) time)\b",
            ),
        ),
        CriticalSlot(
            name="home_city",
            description="Where the user lives.",
            patterns=(
                rf"\bi (?:live|am based|am living|'m based|'m living) in {_PLACE}",
                rf"\bi(?:'m| am) (?:based|living) in {_PLACE}",
                rf"\bmy home ?(?:city|town) is {_PLACE}",
            ),
        ),
        CriticalSlot(
            name="dietary_preferences",
            description="Diet and food restrictions (vegetarian, allergies, foods avoided).",
            patterns=(
                r"\bi(?:'m| am) (?:a )?((?:strict )?(?:vegetarian|vegan|pescatarian|keto|paleo|gluten[- ]free|"
                r"lactose[- ]intolerant|halal|kosher|celiac|coeliac))\b",
                r"\bi(?:'m| am) (allergic to [\w ,'-]+)",
                r"\bi ((?:don't|do not|can't|cannot|never) eat [\w ,'-]+)",
            ),
        ),
        CriticalSlot(
            name="working_hours",
            description="When the user works, with days if given.",
            patterns=(
                r"\b(?:my )?work(?:ing)? hours (?:are|is|:)\s*(.+)",
                rf"\bi (?:usually |normally )?work (?:from )?{_HOURS}",
                rf"\bi(?:'m| am) (?:available|online|at work|working) (?:from )?{_HOURS}",
            ),
        ),
    ),
    recall=RecallSettings(
        weights=_weights(
            facts_vector=1.2,
            facts_keyword=0.9,
            recent_ledger=0.5,
            ledger_search=0.7,
            ledger_vector=0.6,
            checkpoint=0.5,
            long_input=0.5,
            lineage=0.4,
        ),
        default_limit=12,
        token_budget=1500,
        recency_half_life_days=90.0,
        recent_turns=6,
    ),
    checkpoint_every_turns=12,
)


#: Every built-in preset, in the order ``engram policies`` lists them.
PRESETS: tuple[MemoryPolicy, ...] = (DEFAULT, CODING_AGENT, LEGAL, SUPPORT_AGENT, PERSONAL_ASSISTANT)


@hookimpl
def register_policies(register: Callable[..., None]) -> None:
    for policy in PRESETS:
        register(policy)
