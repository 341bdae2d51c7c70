"""Hosted-model extractors end to end: real SDKs, real HTTP, a local stand-in server."""

from __future__ import annotations

import email.utils
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from standin import CHAT, MESSAGES, Reply, StandIn, anthropic_text, anthropic_tool_use, chat_completion

from engram.errors import ConfigurationError, ExtractionError, PluginError, RateLimitedError
from engram.interfaces import CheckpointRequest, ExtractionRequest, Extractor, SourceEvent
from engram.policy import CriticalSlot, MemoryPolicy, RedactionSettings

# interfaces.py names MemoryPolicy only under TYPE_CHECKING; until the kernel
# rebuilds these models itself, resolve the forward reference here.
for _model in (ExtractionRequest, CheckpointRequest):
    _model.model_rebuild(_types_namespace={"MemoryPolicy": MemoryPolicy})

SECRET_KEY = "sk-proj-Zq7XvB2nT9kLmW4pR8sY1cD6fG3hJ5aE"
SECRET_EMAIL = "jane.doe@example.com"

EVENTS = (
    SourceEvent(
        event_id=11,
        task_id="t1",
        role="user",
        content="I prefer tabs over spaces. Please deploy to staging-eu-2 from now on.",
    ),
    SourceEvent(
        event_id=12, task_id="t1", role="assistant", content="Understood, deploying to staging-eu-2."
    ),
    SourceEvent(
        event_id=13,
        task_id="t1",
        role="user",
        content=f"My key is {SECRET_KEY} and you can mail me at {SECRET_EMAIL} about it.",
    ),
)

SLOT = CriticalSlot(name="deploy_target", description="The environment code is deployed to.")


def make_policy(*, redact: bool) -> MemoryPolicy:
    redaction = RedactionSettings() if redact else RedactionSettings(before_model=())
    return MemoryPolicy(
        name="provider-test",
        extraction_instructions="Remember coding preferences and deployment decisions.",
        critical_slots=(SLOT,),
        redaction=redaction,
    )


def extraction_request(
    *, redact: bool = False, events: tuple[SourceEvent, ...] = EVENTS
) -> ExtractionRequest:
    return ExtractionRequest(
        user_id="u1",
        agent_id="a1",
        task_id="t1",
        events=events,
        policy=make_policy(redact=redact),
        current_slots={"deploy_target": "staging-us-1"},
    )


def checkpoint_request(*, redact: bool = False) -> CheckpointRequest:
    return CheckpointRequest(
        user_id="u1",
        agent_id="a1",
        task_id="t1",
        events=EVENTS,
        previous_summary="Set up the repository.",
        policy=make_policy(redact=redact),
    )


MODEL_FACTS: dict[str, Any] = {
    "facts": [
        {  # clean: exact quote in the cited event
            "content": "The user prefers tabs over spaces.",
            "category": "preference",
            "slot": None,
            "confidence": 0.9,
            "source_event_ids": [11],
            "quote": "I prefer tabs over spaces.",
        },
        {  # a slot fact citing two events; the quote is in the first
            "content": "Deployments go to staging-eu-2.",
            "category": "decision",
            "slot": "deploy_target",
            "confidence": 0.8,
            "source_event_ids": [11, 12],
            "quote": "deploy to staging-eu-2",
        },
        {  # paraphrased quote: kept, without a span
            "content": "The assistant agreed to deploy to staging-eu-2.",
            "category": "fact",
            "slot": None,
            "confidence": 0.5,
            "source_event_ids": [12],
            "quote": "I will deploy there",
        },
        {  # invented lineage: dropped
            "content": "The user likes Rust.",
            "category": "preference",
            "slot": None,
            "confidence": 0.9,
            "source_event_ids": [999],
            "quote": None,
        },
        {  # unknown category/slot are cleared; confidence clamped
            "content": "The user is decisive.",
            "category": "mood",
            "slot": "not_a_slot",
            "confidence": 1.7,
            "source_event_ids": [11],
            "quote": None,
        },
        {  # no ids, but a verifiable quote: attributed to the event holding it
            "content": "The deployment was acknowledged.",
            "category": "fact",
            "slot": None,
            "confidence": 0.6,
            "source_event_ids": [],
            "quote": "Understood, deploying",
        },
        {  # no ids and no quote: dropped
            "content": "Something unverifiable.",
            "category": "fact",
            "slot": None,
            "confidence": 0.6,
            "source_event_ids": [],
            "quote": None,
        },
    ]
}


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def openai_extractor(standin: StandIn, **kwargs: Any) -> Any:
    from engram_openai import OpenAIExtractor

    kwargs.setdefault("timeout", 5.0)
    extractor = OpenAIExtractor(api_key="test-key", base_url=standin.openai_base_url, **kwargs)
    assert isinstance(extractor, Extractor)
    return extractor


def anthropic_extractor(standin: StandIn, **kwargs: Any) -> Any:
    from engram_anthropic import AnthropicExtractor

    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("model", "claude-test")  # the default model name draws an SDK deprecation warning
    extractor = AnthropicExtractor(api_key="test-key", base_url=standin.anthropic_base_url, **kwargs)
    assert isinstance(extractor, Extractor)
    return extractor


def anthropic_key(sent: Any) -> str | None:
    """The API key an Anthropic request carried (older SDKs use x-api-key, newer a bearer token)."""
    if "x-api-key" in sent.headers:
        return str(sent.headers["x-api-key"])
    auth = str(sent.headers.get("authorization", ""))
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


def facts_reply(provider: str, payload: Any) -> Reply:
    """The model answering ``payload`` in the provider's structured-output form."""
    if provider == "openai":
        return Reply.json(chat_completion(json.dumps(payload)))
    return Reply.json(anthropic_tool_use(payload))


PROVIDERS: dict[str, tuple[Callable[..., Any], str]] = {
    "openai": (openai_extractor, CHAT),
    "anthropic": (anthropic_extractor, MESSAGES),
}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def check_parsed_facts(facts: list[Any]) -> None:
    by_content = {f.content: f for f in facts}
    assert set(by_content) == {
        "The user prefers tabs over spaces.",
        "Deployments go to staging-eu-2.",
        "The assistant agreed to deploy to staging-eu-2.",
        "The user is decisive.",
        "The deployment was acknowledged.",
    }
    tabs = by_content["The user prefers tabs over spaces."]
    assert tabs.category == "preference" and tabs.confidence == 0.9
    assert tabs.source_event_ids == (11,)
    (span,) = tabs.spans
    assert (span.event_id, span.start, span.end) == (11, 0, len("I prefer tabs over spaces."))
    assert EVENTS[0].content[span.start : span.end] == span.quote

    deploy = by_content["Deployments go to staging-eu-2."]
    assert deploy.slot == "deploy_target" and deploy.source_event_ids == (11, 12)
    (span,) = deploy.spans
    assert span.event_id == 11 and EVENTS[0].content[span.start : span.end] == "deploy to staging-eu-2"

    assert by_content["The assistant agreed to deploy to staging-eu-2."].spans == ()
    decisive = by_content["The user is decisive."]
    assert (decisive.category, decisive.slot, decisive.confidence) == (None, None, 1.0)
    acknowledged = by_content["The deployment was acknowledged."]
    assert acknowledged.source_event_ids == (12,) and acknowledged.spans[0].start == 0


# --------------------------------------------------------------------------- happy paths


async def test_openai_extract_end_to_end(standin: StandIn) -> None:
    standin.script(CHAT, facts_reply("openai", MODEL_FACTS))
    extractor = openai_extractor(standin, model="gpt-test")
    facts = await extractor.extract(extraction_request())
    check_parsed_facts(facts)

    (sent,) = standin.requests_to(CHAT)
    assert sent.headers["authorization"] == "Bearer test-key"
    body = sent.json()
    assert body["model"] == "gpt-test"
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    item = fmt["json_schema"]["schema"]["properties"]["facts"]["items"]
    assert sorted(item["required"]) == sorted(item["properties"])  # strict mode: everything required
    assert item["properties"]["slot"]["enum"] == ["deploy_target", None]
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "Remember coding preferences and deployment decisions." in system
    assert "deploy_target" in system and "The environment code is deployed to." in system
    assert "preference" in system
    assert '"id": 11' in user and "I prefer tabs over spaces." in user and "staging-us-1" in user


async def test_anthropic_extract_end_to_end(standin: StandIn) -> None:
    standin.script(MESSAGES, facts_reply("anthropic", MODEL_FACTS))
    extractor = anthropic_extractor(standin, model="claude-test")
    assert extractor.name == "anthropic/claude-test"
    facts = await extractor.extract(extraction_request())
    check_parsed_facts(facts)

    (sent,) = standin.requests_to(MESSAGES)
    assert anthropic_key(sent) == "test-key"
    body = sent.json()
    assert body["model"] == "claude-test"
    assert body["tool_choice"] == {"type": "tool", "name": "record_facts"}
    (tool,) = body["tools"]
    assert tool["name"] == "record_facts" and tool["input_schema"]["required"] == ["facts"]
    assert "deploy_target" in body["system"]
    assert "I prefer tabs over spaces." in body["messages"][0]["content"]


async def test_anthropic_accepts_json_text_when_a_proxy_drops_tools(standin: StandIn) -> None:
    standin.script(MESSAGES, Reply.json(anthropic_text(json.dumps(MODEL_FACTS))))
    check_parsed_facts(await anthropic_extractor(standin).extract(extraction_request()))


async def test_empty_events_make_no_request(standin: StandIn, provider: str) -> None:
    make, _ = PROVIDERS[provider]
    assert await make(standin).extract(extraction_request(events=())) == []
    assert standin.requests == []


async def test_openai_summarize(standin: StandIn) -> None:
    standin.script(CHAT, Reply.json(chat_completion("  Goal: ship. Deploys go to staging-eu-2.  ")))
    summary = await openai_extractor(standin).summarize(checkpoint_request())
    assert summary == "Goal: ship. Deploys go to staging-eu-2."
    body = standin.requests_to(CHAT)[0].json()
    assert "response_format" not in body  # plain text
    assert "Set up the repository." in body["messages"][1]["content"]


async def test_anthropic_summarize(standin: StandIn) -> None:
    standin.script(MESSAGES, Reply.json(anthropic_text("Goal: ship.")))
    assert await anthropic_extractor(standin).summarize(checkpoint_request()) == "Goal: ship."
    body = standin.requests_to(MESSAGES)[0].json()
    assert "tools" not in body and "Set up the repository." in body["messages"][0]["content"]


async def test_empty_summary_is_an_error(standin: StandIn, provider: str) -> None:
    make, path = PROVIDERS[provider]
    reply = Reply.json(chat_completion("   ") if provider == "openai" else anthropic_text(""))
    standin.script(path, reply)
    with pytest.raises(ExtractionError, match="empty summary"):
        await make(standin).summarize(checkpoint_request())


# --------------------------------------------------------------------------- redaction


async def test_secrets_are_redacted_before_sending(standin: StandIn, provider: str) -> None:
    make, path = PROVIDERS[provider]
    quote = "you can mail me at"
    standin.script(
        path,
        facts_reply(
            provider,
            {
                "facts": [
                    {
                        "content": "The user can be mailed at [REDACTED:email].",
                        "category": "identity",
                        "slot": None,
                        "confidence": 0.8,
                        "source_event_ids": [13],
                        "quote": quote,
                    }
                ]
            },
        ),
    )
    extractor = make(standin)
    (fact,) = await extractor.extract(extraction_request(redact=True))
    await extractor.summarize(checkpoint_request(redact=True))

    assert len(standin.requests_to(path)) == 2
    for sent in standin.requests_to(path):
        assert SECRET_KEY not in sent.text and "sk-proj-" not in sent.text
        assert SECRET_EMAIL not in sent.text
        assert "[REDACTED:" in sent.text
        assert "I prefer tabs over spaces." in sent.text  # ordinary text still goes out
    # The span still points into the original (unredacted) ledger content.
    (span,) = fact.spans
    assert EVENTS[2].content[span.start : span.end] == quote


async def test_redaction_fails_closed_when_unavailable(
    standin: StandIn, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "engram.privacy.redaction", None)  # import now raises ImportError
    make, _ = PROVIDERS[provider]
    with pytest.raises(PluginError, match="refusing to send"):
        await make(standin).extract(extraction_request(redact=True))
    assert standin.requests == []


async def test_unknown_redactor_is_refused_before_sending(standin: StandIn, provider: str) -> None:
    policy = make_policy(redact=False).model_copy(
        update={"redaction": RedactionSettings(before_model=("no_such_redactor",))}
    )
    request = extraction_request().model_copy(update={"policy": policy})
    make, _ = PROVIDERS[provider]
    with pytest.raises(ConfigurationError, match="no_such_redactor"):
        await make(standin).extract(request)
    assert standin.requests == []


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry_after": "7"}, 7.0), ({"retry_after": "7", "retry_after_ms": "1500"}, 1.5), ({}, None)],
)
async def test_429_is_rate_limited_with_retry_after(
    standin: StandIn, provider: str, headers: dict[str, str], expected: float | None
) -> None:
    make, path = PROVIDERS[provider]
    standin.script(path, Reply.rate_limited(**headers))
    with pytest.raises(RateLimitedError) as info:
        await make(standin).extract(extraction_request())
    assert info.value.retry_after == expected
    assert len(standin.requests_to(path)) == 1  # the SDK did not retry on its own


async def test_429_with_http_date_retry_after(standin: StandIn, provider: str) -> None:
    make, path = PROVIDERS[provider]
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    standin.script(path, Reply.rate_limited(retry_after=when))
    with pytest.raises(RateLimitedError) as info:
        await make(standin).extract(extraction_request())
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 121


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_are_retryable_extraction_errors(
    standin: StandIn, provider: str, status: int
) -> None:
    make, path = PROVIDERS[provider]
    standin.script(path, Reply.server_error(status))
    with pytest.raises(ExtractionError, match=f"server error {status}") as info:
        await make(standin).extract(extraction_request())
    assert not isinstance(info.value, RateLimitedError)
    assert len(standin.requests_to(path)) == 1


async def test_client_errors_are_extraction_errors(standin: StandIn, provider: str) -> None:
    make, path = PROVIDERS[provider]
    standin.script(path, Reply.error(401, "invalid api key"))
    with pytest.raises(ExtractionError, match="401") as info:
        await make(standin).extract(extraction_request())
    assert not isinstance(info.value, RateLimitedError)


async def test_timeout_is_an_extraction_error(standin: StandIn, provider: str) -> None:
    make, path = PROVIDERS[provider]
    standin.script(path, facts_reply(provider, {"facts": []}).delayed(5.0))
    # The reply would arrive (and parse fine) after 5 s, so an error proves the client gave up first.
    with pytest.raises(ExtractionError, match=r"within 0\.5s"):
        await make(standin, timeout=0.5).extract(extraction_request())
    assert len(standin.requests_to(path)) == 1


async def test_connection_refused_is_an_extraction_error(provider: str) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if provider == "openai":
        from engram_openai import OpenAIExtractor

        extractor: Any = OpenAIExtractor(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", timeout=2)
    else:
        from engram_anthropic import AnthropicExtractor

        extractor = AnthropicExtractor(api_key="k", base_url=f"http://127.0.0.1:{port}", timeout=2, model="m")
    with pytest.raises(ExtractionError, match="could not connect"):
        await extractor.extract(extraction_request())


async def test_openai_malformed_json_content(standin: StandIn) -> None:
    standin.script(CHAT, Reply.json(chat_completion('{"facts": [{"content": "The user')))
    with pytest.raises(ExtractionError, match="invalid JSON"):
        await openai_extractor(standin).extract(extraction_request())


async def test_anthropic_non_json_text_answer(standin: StandIn) -> None:
    standin.script(MESSAGES, Reply.json(anthropic_text("Sure! Here are the facts: the user likes tabs.")))
    with pytest.raises(ExtractionError, match="invalid JSON"):
        await anthropic_extractor(standin).extract(extraction_request())


async def test_malformed_response_body(standin: StandIn, provider: str) -> None:
    make, path = PROVIDERS[provider]
    standin.script(path, Reply.raw('{"id": "x", "choices": [', content_type="application/json"))
    with pytest.raises(ExtractionError, match="not JSON"):
        await make(standin).extract(extraction_request())


@pytest.mark.parametrize(
    "payload",
    [
        {"facts": [{"content": 42, "source_event_ids": [11]}]},
        {"facts": "none"},
        {"items": []},
        {"facts": [{"content": "x", "source_event_ids": ["eleven"]}]},
        [],
    ],
    ids=["content-not-string", "facts-not-list", "missing-facts", "ids-not-int", "top-level-list"],
)
async def test_schema_violations_are_extraction_errors(standin: StandIn, provider: str, payload: Any) -> None:
    if provider == "anthropic" and not isinstance(payload, dict):
        pytest.skip("a tool's input is always an object on the Anthropic wire")
    make, path = PROVIDERS[provider]
    standin.script(path, facts_reply(provider, payload))
    with pytest.raises(ExtractionError, match="does not match the facts schema"):
        await make(standin).extract(extraction_request())


async def test_openai_refusal_and_truncation(standin: StandIn) -> None:
    standin.script(
        CHAT,
        Reply.json(chat_completion(None, refusal="I can't help with that.")),
        Reply.json(chat_completion('{"facts": [', finish_reason="length")),
    )
    extractor = openai_extractor(standin)
    with pytest.raises(ExtractionError, match="refused"):
        await extractor.extract(extraction_request())
    with pytest.raises(ExtractionError, match="cut off"):
        await extractor.extract(extraction_request())


async def test_anthropic_truncated_tool_call(standin: StandIn) -> None:
    standin.script(MESSAGES, Reply.json(anthropic_tool_use({"facts": []}, stop_reason="max_tokens")))
    with pytest.raises(ExtractionError, match="cut off"):
        await anthropic_extractor(standin).extract(extraction_request())


# --------------------------------------------------------------------------- configuration


async def test_openai_factory_reads_environment(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_openai

    monkeypatch.delenv("ENGRAM_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "fallback-key")
    monkeypatch.setenv("ENGRAM_OPENAI_BASE_URL", standin.openai_base_url)
    monkeypatch.setenv("ENGRAM_OPENAI_EXTRACTION_MODEL", "env-model")
    monkeypatch.setenv("ENGRAM_LLM_TIMEOUT", "12.5")
    extractor = engram_openai.create_extractor()
    assert extractor.name == "openai/env-model" and extractor.timeout == 12.5
    await extractor.extract(extraction_request())
    sent = standin.requests_to(CHAT)[0]
    assert sent.json()["model"] == "env-model" and sent.headers["authorization"] == "Bearer fallback-key"

    monkeypatch.setenv("ENGRAM_OPENAI_API_KEY", "engram-key")  # the Engram-specific name wins
    await engram_openai.create_extractor().extract(extraction_request())
    assert standin.requests_to(CHAT)[1].headers["authorization"] == "Bearer engram-key"


@pytest.mark.filterwarnings("ignore:The model 'claude-sonnet-4-5' is deprecated:DeprecationWarning")
async def test_anthropic_factory_reads_environment(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_anthropic

    monkeypatch.setenv("ENGRAM_ANTHROPIC_API_KEY", "engram-key")
    monkeypatch.setenv("ENGRAM_ANTHROPIC_BASE_URL", standin.anthropic_base_url)
    monkeypatch.delenv("ENGRAM_ANTHROPIC_MODEL", raising=False)
    monkeypatch.delenv("ENGRAM_LLM_TIMEOUT", raising=False)
    extractor = engram_anthropic.create_extractor()
    assert extractor.name == "anthropic/claude-sonnet-4-5" and extractor.timeout == 30.0
    await extractor.extract(extraction_request())
    sent = standin.requests_to(MESSAGES)[0]
    assert anthropic_key(sent) == "engram-key" and sent.json()["model"] == "claude-sonnet-4-5"


def test_settings_object_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_openai

    class Settings:
        openai_api_key = "from-settings"
        openai_extraction_model = "settings-model"
        llm_timeout = 3

    monkeypatch.setenv("ENGRAM_OPENAI_EXTRACTION_MODEL", "env-model")
    extractor = engram_openai.create_extractor(Settings())
    assert extractor.name == "openai/settings-model" and extractor.timeout == 3.0


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_anthropic
    import engram_openai

    for name in (
        "ENGRAM_OPENAI_API_KEY",
        "OPENAI_API_KEY",
        "ENGRAM_OPENAI_BASE_URL",
        "ENGRAM_ANTHROPIC_API_KEY",
        "ANTHROPIC_API_KEY",
        "ENGRAM_ANTHROPIC_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="ENGRAM_OPENAI_API_KEY"):
        engram_openai.create_extractor()
    with pytest.raises(ConfigurationError, match="ENGRAM_ANTHROPIC_API_KEY"):
        engram_anthropic.create_extractor()


@pytest.mark.parametrize("raw", ["soon", "0", "-3"])
def test_bad_timeout_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    import engram_openai

    monkeypatch.setenv("ENGRAM_OPENAI_API_KEY", "k")
    monkeypatch.setenv("ENGRAM_LLM_TIMEOUT", raw)
    with pytest.raises(ConfigurationError, match="ENGRAM_LLM_TIMEOUT"):
        engram_openai.create_extractor()


@pytest.mark.parametrize(
    ("module", "sdk", "extra"),
    [("engram_openai", "openai", "openai"), ("engram_anthropic", "anthropic", "anthropic")],
)
def test_missing_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, sdk: str, extra: str
) -> None:
    import importlib

    plugin = importlib.import_module(module)
    monkeypatch.setitem(sys.modules, sdk, None)  # `import <sdk>` now raises ImportError
    with pytest.raises(PluginError, match=rf"pip install 'engram-pg\[{extra}\]'"):
        plugin.create_extractor()


def test_hooks_register_the_documented_names() -> None:
    import engram_anthropic
    import engram_hashing
    import engram_openai
    import engram_sentence_transformers
    import pluggy

    from engram import hookspecs

    pm = pluggy.PluginManager("engram")
    pm.add_hookspecs(hookspecs)
    for plugin in (engram_hashing, engram_sentence_transformers, engram_openai, engram_anthropic):
        pm.register(plugin)
    embedders: dict[str, Any] = {}
    extractors: dict[str, Any] = {}
    pm.hook.register_embedders(register=lambda name, factory: embedders.__setitem__(name, factory))
    pm.hook.register_extractors(register=lambda name, factory: extractors.__setitem__(name, factory))
    assert set(embedders) == {"hashing", "sentence-transformers", "openai"}
    assert set(extractors) == {"openai", "anthropic"}
    assert all(callable(f) for f in [*embedders.values(), *extractors.values()])


def test_importing_plugins_stays_light() -> None:
    code = (
        "import sys\n"
        "import engram_openai, engram_anthropic, engram_hashing, engram_sentence_transformers\n"
        "engram_hashing.create_embedder()\n"
        "heavy = [m for m in ('openai', 'anthropic', 'torch', 'sentence_transformers', 'transformers')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"importing plugins pulled in: {out.stdout.strip()}"
