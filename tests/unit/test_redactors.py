"""The built-in ``secrets_and_pii`` redactor and the kernel's redaction helpers.

No database: these run the real redactor and the real plugin manager (which
loads the ``redactors`` entry point of the editable install).

Credential-shaped test values are assembled at run time from a prefix and a
deterministic pseudo-random body, so this file itself contains nothing that a
secret scanner would (rightly) flag.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Iterator

import pytest
from engram_redactors import KINDS, SecretsAndPiiRedactor
from engram_redactors._checks import is_iban, is_jwt_header, luhn_ok
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engram import plugins
from engram.errors import ConfigurationError, InvalidInputError, PluginError
from engram.interfaces import Detection, Redactor
from engram.privacy.redaction import (
    DEFAULT_REDACTORS,
    RedactionResult,
    apply_detections,
    detect_all,
    redact,
    resolve_redactors,
)

# --------------------------------------------------------------------------- helpers

_ALNUM = string.ascii_letters + string.digits


def _body(length: int, seed: str, alphabet: str = _ALNUM) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(length))


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


OPENAI_PROJECT_KEY = "sk-" + "proj-" + _body(48, "openai-proj", _ALNUM + "_-")
OPENAI_LEGACY_KEY = "sk-" + _body(48, "openai-legacy")
ANTHROPIC_KEY = "sk-" + "ant-api03-" + _body(80, "anthropic", _ALNUM + "_-") + "AA"
AWS_KEY_ID = "AKIA" + _body(16, "aws-id", string.ascii_uppercase + "234567")
AWS_SESSION_KEY_ID = "ASIA" + _body(16, "aws-session", string.ascii_uppercase + "234567")
AWS_SECRET = _body(40, "aws-secret", _ALNUM + "/+")
GITHUB_PAT = "ghp" + "_" + _body(36, "github")
GITHUB_FINE_GRAINED = "github" + "_pat_" + _body(22, "gh-fg-1") + "_" + _body(59, "gh-fg-2")
SLACK_BOT = "xox" + "b-" + "123456789012-1234567890123-" + _body(24, "slack")
GOOGLE_KEY = "AI" + "za" + _body(35, "google", _ALNUM + "_-")
JWT = (
    _b64url({"alg": "HS256", "typ": "JWT"})
    + "."
    + _b64url({"sub": "1234567890", "name": "Ada Lovelace", "iat": 1516239022})
    + "."
    + _body(43, "jwt-signature", _ALNUM + "_-")
)
_PEM_LINES = (
    "\n".join(_body(64, f"pem-{i}", _ALNUM + "+/") for i in range(5)) + "\n" + _body(20, "pem-end") + "=="
)
RSA_KEY_BLOCK = f"-----BEGIN RSA {'PRIVATE'} KEY-----\n{_PEM_LINES}\n-----END RSA {'PRIVATE'} KEY-----"


def spans(text: str) -> list[tuple[str, str]]:
    """(kind, matched text) for every detection, in order."""
    return [(d.kind, text[d.start : d.end]) for d in SecretsAndPiiRedactor().detect(text)]


def assert_well_formed(text: str, detections: list[Detection]) -> None:
    previous_end = 0
    for detection in detections:
        assert 0 <= detection.start < detection.end <= len(text)
        assert detection.start >= previous_end, f"overlap or disorder at {detection}"
        previous_end = detection.end


def rebuild(text: str, detections: list[Detection]) -> str:
    """What the redacted text must be, computed independently of apply_detections."""
    out, cursor = "", 0
    for detection in detections:
        out += text[cursor : detection.start] + f"[REDACTED:{detection.kind}]"
        cursor = detection.end
    return out + text[cursor:]


@pytest.fixture
def real_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A freshly loaded plugin manager with every installed entry point."""
    monkeypatch.delenv("ENGRAM_LOAD_PLUGINS", raising=False)
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


# --------------------------------------------------------------------------- positives


POSITIVES: list[tuple[str, str, str]] = [
    # (kind, text, the exact substring that must be reported)
    ("openai_api_key", f"export OPENAI_API_KEY={OPENAI_PROJECT_KEY}\n", OPENAI_PROJECT_KEY),
    ("openai_api_key", f"old key {OPENAI_LEGACY_KEY}, rotate it", OPENAI_LEGACY_KEY),
    ("anthropic_api_key", f'client = Anthropic(api_key="{ANTHROPIC_KEY}")', ANTHROPIC_KEY),
    ("aws_access_key_id", f"[default]\naws_access_key_id = {AWS_KEY_ID}\n", AWS_KEY_ID),
    ("aws_access_key_id", f"temporary creds {AWS_SESSION_KEY_ID} expire soon", AWS_SESSION_KEY_ID),
    ("aws_secret_access_key", f"[default]\naws_secret_access_key = {AWS_SECRET}\n", AWS_SECRET),
    ("aws_secret_access_key", f'export AWS_SECRET_ACCESS_KEY="{AWS_SECRET}"', AWS_SECRET),
    ("aws_secret_access_key", f'{{"SecretAccessKey": "{AWS_SECRET}"}}', AWS_SECRET),
    ("github_token", f"git clone https://{GITHUB_PAT}@github.com/org/repo.git", GITHUB_PAT),
    ("github_token", f"token: {GITHUB_FINE_GRAINED}", GITHUB_FINE_GRAINED),
    ("slack_token", f"SLACK_BOT_TOKEN={SLACK_BOT}.", SLACK_BOT),
    ("google_api_key", f"maps?key={GOOGLE_KEY}&q=paris", GOOGLE_KEY),
    ("jwt", f"Authorization: Bearer {JWT}", JWT),
    ("jwt", f"the cookie was session={JWT}; Path=/", JWT),
    ("private_key", f"here is my key:\n{RSA_KEY_BLOCK}\nthanks", RSA_KEY_BLOCK),
    ("url_password", "DATABASE_URL=postgres://app:s3cr3t-Pw@db.internal:5432/prod", "s3cr3t-Pw"),
    ("url_password", "redis://:hunter2@cache.example.com:6379/0", "hunter2"),
    ("url_password", "amqp://guest:p@ssw0rd@rabbit.example.com/vhost", "p@ssw0rd"),
    ("password", "password=hunter2 and retry", "hunter2"),
    ("password", "passwd: Tr0ub4dor&3\nuser: bob", "Tr0ub4dor&3"),
    ("password", 'SECRET="correct horse battery staple"', "correct horse battery staple"),
    ("password", "curl https://api.example.com/v1?api_key=abc123xyz789&page=2", "abc123xyz789"),
    ("password", '{"user": "ada", "password": "n0t-a-real-one"}', "n0t-a-real-one"),
    ("password", "db.connect(host='db', password='pa55word!')", "pa55word!"),
    ("password", "fyi my wifi password is Blue-Falcon-42.", "Blue-Falcon-42"),
    ("email", "Write to ada.lovelace+notes@example.co.uk today.", "ada.lovelace+notes@example.co.uk"),
    ("email", "<bob@example.com>", "bob@example.com"),
    ("phone_number", "Call me on +1 (415) 555-0134 after 5pm", "+1 (415) 555-0134"),
    ("phone_number", "UK office: +44 20 7946 0958.", "+44 20 7946 0958"),
    ("phone_number", "Berlin +49 30 12345678 or", "+49 30 12345678"),
    ("phone_number", "Paris +33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("phone_number", "her cell is 415-555-0134, evenings", "415-555-0134"),
    ("phone_number", "office (212) 555-0198 ext 4", "(212) 555-0198"),
    ("phone_number", "dial 1-800-555-0199 now", "1-800-555-0199"),
    ("phone_number", "mon portable 06 12 34 56 78", "06 12 34 56 78"),
    ("phone_number", "Festnetz 030 12345678", "030 12345678"),
    ("phone_number", "London 020 7946 0958", "020 7946 0958"),
    ("phone_number", "Phone: 4155550134", "4155550134"),
    ("payment_card", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("payment_card", "mc 5555-5555-5555-4444.", "5555-5555-5555-4444"),
    ("payment_card", "amex 378282246310005 on file", "378282246310005"),
    ("payment_card", "amex 3782 822463 10005 on file", "3782 822463 10005"),
    ("iban", "Pay to DE89 3704 0044 0532 0130 00 by Friday", "DE89 3704 0044 0532 0130 00"),
    ("iban", "IBAN: GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606 (Paris)", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "NL91ABNA0417164300 and NL91 ABNA 0417 1643 00", "NL91ABNA0417164300"),
]


@pytest.mark.parametrize(
    ("kind", "text", "secret"), POSITIVES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(POSITIVES)]
)
def test_each_kind_is_found_at_its_exact_offsets(kind: str, text: str, secret: str) -> None:
    detections = SecretsAndPiiRedactor().detect(text)
    start = text.index(secret)
    expected = Detection(kind=kind, start=start, end=start + len(secret), redactor="secrets_and_pii")
    assert expected in detections, spans(text)
    assert_well_formed(text, detections)


def test_every_advertised_kind_has_a_positive_case() -> None:
    covered = {kind for kind, _, _ in POSITIVES}
    uncovered = set(KINDS) - covered - {"slack_webhook_url", "bearer_token", "basic_auth"}
    assert not uncovered


def test_extra_credential_kinds() -> None:
    webhook = (
        "https://hooks.slack.com/services/T0" + _body(8, "t") + "/B0" + _body(8, "b") + "/" + _body(24, "w")
    )
    bearer = _body(32, "bearer")
    basic = base64.b64encode(b"admin:Sup3rS3cret").decode()
    text = f"post to {webhook}\nAuthorization: Bearer {bearer}\nAuthorization: Basic {basic}\n"
    assert spans(text) == [("slack_webhook_url", webhook), ("bearer_token", bearer), ("basic_auth", basic)]


def test_all_kinds_in_one_text_are_found_in_order() -> None:
    text = (
        f"Hi, I'm Ada (ada@example.org, +44 20 7946 0958). My card is 4111 1111 1111 1111 and "
        f"IBAN GB82 WEST 1234 5698 7654 32. Use {OPENAI_PROJECT_KEY} or password=hunter2."
    )
    assert spans(text) == [
        ("email", "ada@example.org"),
        ("phone_number", "+44 20 7946 0958"),
        ("payment_card", "4111 1111 1111 1111"),
        ("iban", "GB82 WEST 1234 5698 7654 32"),
        ("openai_api_key", OPENAI_PROJECT_KEY),
        ("password", "hunter2"),
    ]


def test_pem_block_is_one_detection_including_its_armour() -> None:
    text = f"before\n{RSA_KEY_BLOCK}\nafter"
    (detection,) = SecretsAndPiiRedactor().detect(text)
    assert detection.kind == "private_key"
    assert text[detection.start : detection.end] == RSA_KEY_BLOCK
    assert redact(text).text == "before\n[REDACTED:private_key]\nafter"


def test_pem_block_inside_json_with_escaped_newlines() -> None:
    escaped = RSA_KEY_BLOCK.replace("\n", "\\n")
    text = json.dumps({"type": "service_account"})[:-1] + f', "private_key": "{escaped}\\n"}}'
    assert ("private_key", escaped) in spans(text)


def test_truncated_pem_block_still_hides_the_key_material() -> None:
    header = f"-----BEGIN OPENSSH {'PRIVATE'} KEY-----"
    body = "\n".join(_body(70, f"ssh-{i}", _ALNUM + "+/") for i in range(3))
    text = f"{header}\n{body}\n\nI think the rest got cut off"
    assert spans(text) == [("private_key", f"{header}\n{body}")]


def test_detections_never_carry_the_secret() -> None:
    text = f"key {OPENAI_PROJECT_KEY} mail ada@example.org"
    for detection in SecretsAndPiiRedactor().detect(text):
        dumped = json.dumps(detection.model_dump())
        assert OPENAI_PROJECT_KEY not in dumped and "ada@example.org" not in dumped
        assert set(detection.model_dump()) == {"kind", "start", "end", "redactor"}


# --------------------------------------------------------------------------- negatives

NEGATIVES = [
    "Released on 2024-01-15 at 10:30:00Z (ISO 2024-01-15T10:30:00+01:00).",
    "Dates: 15.01.2024, 01/02/2024 10:30, 1/2/24, 2024/01/15, 15-01-2024, 2023 12 31.",
    "Upgrade from version 1.2.3 to 10.15.7 or v2.14.4; semver 0.12.1.",
    "In 1999, 2000 and 2024 we shipped 12345 units.",
    "order #123456789, order number 4829-1734-2211, invoice INV-2024-00042, PO 000123456.",
    "Tracking 1Z999AA10123456784; ticket 0042; epoch 1705312200 and 1705312200123 ms.",
    "Server 192.168.100.200:8080, ratio 3.14159265, price $1,234,567.89.",
    "ISBN 978-0-306-40615-7, UUID 123e4567-e89b-12d3-a456-426614174000.",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b and md5 d41d8cd98f00b204e9800998ecf8427e.",
    "Card 4111 1111 1111 1112 fails the Luhn check; so does 4111111111111112.",
    "1234 5678 9012 3456 is not a card number (bad check digit).",
    "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum, GB00WEST12345698765432 too.",
    "The password is required. Password: must have 8 characters. password_policy: strict.",
    "password=None, api_key=os.environ['OPENAI_API_KEY'], secret=getpass(), token: <your-token>.",
    "password=${DB_PASSWORD} and password=[REDACTED:password] and password='****'.",
    "pip install sk-learn-style-pipelines; the task-force met at noon.",
    "Visit https://example.com/path?x=1, ftp://ftp.example.com:21/pub or http://localhost:8080/",
    "Short numbers 555 1234, 100 200 3000, 12:30:45 and ZIP 94105-1234.",
    "NANP area codes cannot start with 1: 123-456-7890.",
    "A header that is not JSON: eyesopen1234.abcdef.ghijkl",
    "Coordinates 48.8566, 2.3522 and 0.5 + 0.25.",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_lookalikes_are_not_flagged(text: str) -> None:
    assert spans(text) == []


def test_card_needs_luhn_and_iban_needs_mod97() -> None:
    good, bad = "4242 4242 4242 4242", "4242 4242 4242 4241"
    assert luhn_ok(good.replace(" ", "")) and not luhn_ok(bad.replace(" ", ""))
    assert spans(f"card {good}") == [("payment_card", good)]
    assert spans(f"card {bad}") == []
    assert is_iban("DE89370400440532013000") and not is_iban("DE89370400440532013001")
    assert spans("DE89370400440532013000") == [("iban", "DE89370400440532013000")]
    assert spans("DE89370400440532013001") == []


def test_jwt_header_must_decode_to_json_with_alg() -> None:
    assert is_jwt_header(_b64url({"alg": "RS256"}))
    assert not is_jwt_header(_b64url({"typ": "JWT"}))
    assert not is_jwt_header("eyJub3QganNvbg")  # base64 of '{"not json'
    no_alg = _b64url({"typ": "JWT", "kid": "abc"}) + "." + _b64url({"sub": "x"}) + ".sig"
    assert spans(f"token {no_alg}") == []


def test_iban_stops_at_its_country_length() -> None:
    text = "IBANs GB82 WEST 1234 5698 7654 32 DE89 3704 0044 0532 0130 00 EUR"
    assert spans(text) == [
        ("iban", "GB82 WEST 1234 5698 7654 32"),
        ("iban", "DE89 3704 0044 0532 0130 00"),
    ]


# --------------------------------------------------------------------------- overlaps


def test_specific_token_wins_over_generic_assignment() -> None:
    text = f"api_key={OPENAI_PROJECT_KEY}"
    assert spans(text) == [("openai_api_key", OPENAI_PROJECT_KEY)]


def test_url_password_wins_over_email_lookalike() -> None:
    # "pw@db.example.com" looks like an address, but it is the password and host.
    text = "postgres://svc:Pw0rd9@db.example.com/app"
    assert spans(text) == [("url_password", "Pw0rd9")]


def test_jwt_wins_over_bearer_and_iban_over_card_and_phone() -> None:
    assert spans(f"Authorization: Bearer {JWT}") == [("jwt", JWT)]
    assert spans("DE89 3704 0044 0532 0130 00") == [("iban", "DE89 3704 0044 0532 0130 00")]


def test_private_key_swallows_everything_inside_it() -> None:
    block = f"-----BEGIN {'PRIVATE'} KEY-----\n{AWS_KEY_ID} ada@example.org\n{_body(64, 'x')}\n-----END {'PRIVATE'} KEY-----"
    assert spans(f"x {block} y") == [("private_key", block)]


def test_overlapping_detections_from_two_redactors_are_merged() -> None:
    class Fixed:
        def __init__(self, name: str, found: list[tuple[str, int, int]]) -> None:
            self.name = name
            self.found = found

        def detect(self, text: str) -> list[Detection]:
            return [Detection(kind=k, start=s, end=e) for k, s, e in self.found]

    text = "0123456789abcdefghij"
    first = Fixed("first", [("short", 2, 6), ("alone", 15, 17)])
    second = Fixed("second", [("long", 4, 12), ("touching", 17, 19)])
    merged = detect_all(text, [first, second])
    assert [(d.kind, d.start, d.end, d.redactor) for d in merged] == [
        ("long", 2, 12, "second"),  # union of 2-6 and 4-12, named after the longer
        ("alone", 15, 17, "first"),
        ("touching", 17, 19, "second"),  # adjacent spans stay separate
    ]
    assert apply_detections(text, merged) == "01[REDACTED:long]cde[REDACTED:alone][REDACTED:touching]j"


# --------------------------------------------------------------------------- apply_detections


def test_apply_detections_accepts_any_order_and_overlaps() -> None:
    text = "alpha beta gamma delta"
    detections = [
        Detection(kind="b", start=17, end=22),
        Detection(kind="a", start=0, end=5),
        Detection(kind="c", start=6, end=10),
        Detection(kind="c2", start=8, end=16),  # overlaps "c": merged into one marker
    ]
    assert apply_detections(text, detections) == "[REDACTED:a] [REDACTED:c2] [REDACTED:b]"
    assert apply_detections(text, []) == text
    assert apply_detections(text, [Detection(kind="empty", start=3, end=3)]) == text


def test_apply_detections_refuses_spans_outside_the_text() -> None:
    with pytest.raises(InvalidInputError, match="outside"):
        apply_detections("short", [Detection(kind="x", start=2, end=9)])
    with pytest.raises(InvalidInputError, match="after end"):
        apply_detections("short", [Detection(kind="x", start=4, end=2)])
    with pytest.raises(InvalidInputError):
        apply_detections(b"bytes", [])  # type: ignore[arg-type]


def test_misbehaving_redactor_is_named() -> None:
    class Liar:
        name = "liar"

        def detect(self, text: str) -> list[Detection]:
            return [Detection(kind="x", start=0, end=len(text) + 5)]

    class WrongType:
        name = "wrong_type"

        def detect(self, text: str) -> list[object]:
            return [(0, 1)]

    with pytest.raises(PluginError, match="liar"):
        detect_all("text", [Liar()])
    with pytest.raises(PluginError, match="wrong_type"):
        detect_all("text", [WrongType()])  # type: ignore[list-item]


# --------------------------------------------------------------------------- redact() and the plugin manager


@pytest.mark.usefixtures("real_plugins")
def test_plugin_is_registered_through_its_entry_point() -> None:
    assert "redactors" in plugins.iter_plugin_names()
    registered = plugins.redactors()
    assert isinstance(registered["secrets_and_pii"], SecretsAndPiiRedactor)
    assert isinstance(registered["secrets_and_pii"], Redactor)
    assert DEFAULT_REDACTORS == ("secrets_and_pii",)


@pytest.mark.usefixtures("real_plugins")
def test_redact_replaces_spans_and_reports_original_offsets() -> None:
    text = f"Email ada@example.org, key {GITHUB_PAT}, card 4111-1111-1111-1111."
    result = redact(text)
    assert result.text == (
        "Email [REDACTED:email], key [REDACTED:github_token], card [REDACTED:payment_card]."
    )
    assert result.redacted is True
    assert result.redactors == ("secrets_and_pii",)
    assert [text[d.start : d.end] for d in result.detections] == [
        "ada@example.org",
        GITHUB_PAT,
        "4111-1111-1111-1111",
    ]
    assert all(d.redactor == "secrets_and_pii" for d in result.detections)
    assert result.model_dump()["redacted"] is True
    with pytest.raises(ValidationError):
        result.text = "changed"  # type: ignore[misc]


@pytest.mark.usefixtures("real_plugins")
def test_redact_clean_text_and_name_forms() -> None:
    clean = redact("Nothing to hide in version 1.2.3 on 2024-01-15.")
    assert clean == RedactionResult(
        text="Nothing to hide in version 1.2.3 on 2024-01-15.", detections=[], redactors=("secrets_and_pii",)
    )
    assert clean.redacted is False
    assert redact("", ["secrets_and_pii"]).text == ""
    # A single name is one name, not a sequence of one-letter names.
    assert redact("mail ada@example.org", "secrets_and_pii").text == "mail [REDACTED:email]"
    # An empty selection runs nothing.
    assert redact("mail ada@example.org", ()).text == "mail ada@example.org"


@pytest.mark.usefixtures("real_plugins")
def test_unknown_redactor_lists_the_available_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"'no_such_redactor'.*secrets_and_pii"):
        redact("text", ["secrets_and_pii", "no_such_redactor"])
    with pytest.raises(ConfigurationError):
        resolve_redactors("nope")


@pytest.mark.usefixtures("real_plugins")
@pytest.mark.parametrize("bad", [None, b"bytes", 42, ["a list"]])
def test_redact_refuses_non_text(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="must be str"):
        redact(bad)  # type: ignore[arg-type]


def test_redactor_itself_refuses_non_text() -> None:
    with pytest.raises(TypeError):
        SecretsAndPiiRedactor().detect(b"bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hostile input


def test_surrogates_nul_and_case_folding_changes() -> None:
    # "İ" lower-cases to two code points, which disables the lower-case
    # locator; offsets must still index the original string.
    text = "İİ\x00\ud800 password=hunter2 \udfff ada@example.org\x00"
    assert spans(text) == [("password", "hunter2"), ("email", "ada@example.org")]
    assert redact(text).text == "İİ\x00\ud800 password=[REDACTED:password] \udfff [REDACTED:email]\x00"


def test_offsets_stay_exact_deep_into_a_large_text() -> None:
    filler = "lorem ipsum dolor sit amet, " * 40_000  # ~1.1 MB
    text = filler + f"contact ada@example.org with {AWS_KEY_ID}. " + filler
    detections = SecretsAndPiiRedactor().detect(text)
    assert [(d.kind, text[d.start : d.end]) for d in detections] == [
        ("email", "ada@example.org"),
        ("aws_access_key_id", AWS_KEY_ID),
    ]
    assert detections[0].start == len(filler) + len("contact ")


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PRIVATE KEY-----" * 20_000,
        "a@" * 100_000,
        "+1 " * 100_000,
        "password=" * 50_000,
        "4" * 200_000,
        "0 " * 100_000,
        "sk-" + "a" * 200_000,
        "://u:" * 50_000,
    ],
    ids=["pem-headers", "at-signs", "plus-ones", "labels", "digits", "zeros", "long-token", "schemes"],
)
def test_pathological_input_completes_and_is_well_formed(text: str) -> None:
    detections = SecretsAndPiiRedactor().detect(text)
    assert_well_formed(text, detections)


# --------------------------------------------------------------------------- properties

_FRAGMENTS = [
    "sk-",
    "sk-ant-",
    "AKIA",
    "ghp_",
    "xoxb-",
    "AIza",
    "eyJhbGciOiJIUzI1NiJ9",
    ".",
    "@",
    "://",
    ":",
    "password=",
    "Password is ",
    "Bearer ",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "\n",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "+1 ",
    "+44 (0)",
    "0",
    "555-",
    "2024-01-15",
    "İ",
    "\x00",
    "\ud800",
    '"',
    "\\n",
]

_hostile_text = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=12),
        st.text(alphabet=string.ascii_letters + string.digits + " -_.+/=@:", max_size=40),
        st.sampled_from(_FRAGMENTS),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_hostile_text)
@example(text="\ud800password=\udfff")
@example(text="İ" * 10 + "ada@example.org")
def test_redact_never_raises_and_detections_are_well_formed(text: str) -> None:
    result = redact(text, [SecretsAndPiiRedactor()])
    assert_well_formed(text, result.detections)
    assert result.text == rebuild(text, result.detections)
    assert result.redacted == bool(result.detections)


_SECRETS = [
    OPENAI_PROJECT_KEY,
    ANTHROPIC_KEY,
    AWS_KEY_ID,
    GITHUB_PAT,
    SLACK_BOT,
    GOOGLE_KEY,
    JWT,
    "ada.lovelace@example.org",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "GB82WEST12345698765432",
]
_filler = st.text(alphabet=string.ascii_lowercase + " ,;!?\n", max_size=30)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(_filler, st.sampled_from(_SECRETS)), min_size=1, max_size=6), tail=_filler)
def test_no_detected_secret_survives_redaction(parts: list[tuple[str, str]], tail: str) -> None:
    text = "".join(f"{filler} {secret} " for filler, secret in parts) + tail
    result = redact(text, [SecretsAndPiiRedactor()])
    for _, secret in parts:
        assert secret not in result.text
    for detection in result.detections:
        assert text[detection.start : detection.end] not in result.text


def _luhn_complete(partial: str) -> str:
    for check in "0123456789":
        if luhn_ok(partial + check):
            return partial + check
    raise AssertionError("unreachable: one check digit always fits")


@settings(max_examples=200, deadline=None)
@given(body=st.text(alphabet="0123456789", min_size=14, max_size=14), first=st.sampled_from("3456"))
def test_cards_are_flagged_exactly_when_luhn_holds(body: str, first: str) -> None:
    number = _luhn_complete(first + body)
    grouped = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    assert spans(f"card {grouped} ok") == [("payment_card", grouped)]
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert spans(f"card {wrong} ok") == []


@settings(max_examples=200, deadline=None)
@given(bban=st.text(alphabet="0123456789", min_size=18, max_size=18))
def test_ibans_are_flagged_exactly_when_mod97_holds(bban: str) -> None:
    check = 98 - int(bban + "131400") % 97  # D=13, E=14, check digits 00
    iban = f"DE{check:02d}{bban}"
    assert spans(f"to {iban} now") == [("iban", iban)]
    wrong = f"DE{(check % 97) + 1:02d}{bban}" if check != 97 else f"DE02{bban}"
    assert spans(f"to {wrong} now") == []
