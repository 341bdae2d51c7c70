"""Anthropic extractor (Messages API, forced tool use for structured facts).

Registered name: extractor ``anthropic``.  Importing this package does not import
the ``anthropic`` SDK; the factory does.

Configuration (constructor keyword arguments win over the environment):

============================== ============================ =====================
variable                       meaning                      default
============================== ============================ =====================
``ENGRAM_ANTHROPIC_API_KEY``   API key                      ``ANTHROPIC_API_KEY``
``ENGRAM_ANTHROPIC_BASE_URL``  API root (no ``/v1``)        the SDK's default
``ENGRAM_ANTHROPIC_MODEL``     model                        ``claude-sonnet-4-5``
``ENGRAM_LLM_TIMEOUT``         seconds per request          ``30``
============================== ============================ =====================

The SDK's own retries are disabled; Engram's job queue owns retries and honours
``RateLimitedError.retry_after``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# The provider-neutral half (prompt, schema, redaction, validation, error
# mapping) is shared with the OpenAI extractor so both treat a model's answer identically.
from engram import llm
from engram.errors import ConfigurationError, ExtractionError, missing_extra
from engram.hookspecs import hookimpl
from engram.interfaces import CandidateFact, CheckpointRequest, ExtractionRequest

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = ["DEFAULT_MODEL", "AnthropicExtractor", "create_extractor", "register_extractors"]

DEFAULT_MODEL = "claude-sonnet-4-5"
_EXTRACT_MAX_TOKENS = 4096
_SUMMARY_MAX_TOKENS = 1024
_NO_KEY = "not-needed"  # for compatible proxies that need no key; the SDK wants one


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise missing_extra("anthropic", "anthropic") from exc
    return anthropic


class AnthropicExtractor:
    """Fact extraction through a single forced tool call, ``record_facts``."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        max_tokens: int = _EXTRACT_MAX_TOKENS,
        settings: object | None = None,
    ) -> None:
        self._anthropic = _import_anthropic()
        self.base_url = base_url or llm.setting(
            settings, "anthropic_base_url", ("ENGRAM_ANTHROPIC_BASE_URL",)
        )
        key = api_key or llm.setting(
            settings, "anthropic_api_key", ("ENGRAM_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
        )
        if not key:
            if not self.base_url:
                raise ConfigurationError(
                    "no Anthropic API key: set ENGRAM_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)"
                )
            key = _NO_KEY
        self._api_key = key
        self.model = model or llm.setting_or(
            settings, "anthropic_model", ("ENGRAM_ANTHROPIC_MODEL",), DEFAULT_MODEL
        )
        self.timeout = (
            llm.parse_timeout(timeout)
            if timeout is not None
            else llm.parse_timeout(llm.setting(settings, "llm_timeout", ("ENGRAM_LLM_TIMEOUT",)))
        )
        if max_tokens < 1:
            raise ConfigurationError("max_tokens must be at least 1")
        self.max_tokens = max_tokens
        self.name = f"anthropic/{self.model}"
        self._clients: llm.LoopBound[AsyncAnthropic] = llm.LoopBound(self._make_client)

    def _make_client(self) -> AsyncAnthropic:
        # An explicit key also stops the SDK from looking for profiles or
        # federation credentials on disk.
        kwargs: dict[str, Any] = {"api_key": self._api_key, "timeout": self.timeout, "max_retries": 0}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        client: AsyncAnthropic = self._anthropic.AsyncAnthropic(**kwargs)
        return client

    @property
    def client(self) -> AsyncAnthropic:
        """The SDK client for the running event loop."""
        return self._clients.get()

    async def aclose(self) -> None:
        client = self._clients.pop_current()
        if client is not None:
            await client.close()

    def _error(self, exc: Exception, what: str) -> ExtractionError:
        """Translate an SDK exception into Engram's retry vocabulary."""
        return llm.sdk_error(
            self._anthropic,
            exc,
            provider="anthropic",
            what=what,
            where=self.base_url or "api.anthropic.com",
            timeout=self.timeout,
        )

    async def _create(self, what: str, **kwargs: Any) -> Any:
        try:
            return await self.client.messages.create(model=self.model, **kwargs)
        except (self._anthropic.AnthropicError, json.JSONDecodeError) as exc:
            raise self._error(exc, what) from exc

    async def extract(self, request: ExtractionRequest) -> list[CandidateFact]:
        if not request.events:
            return []
        redact = llm.BeforeModelRedactor(request.policy.redaction.before_model)
        system, user = llm.extraction_prompt(request, redact)
        message = await self._create(
            "extraction",
            max_tokens=self.max_tokens,
            system=system,
            messages=[{"role": "user", "content": user}],
            tools=[
                {
                    "name": llm.TOOL_NAME,
                    "description": "Record the durable facts found in the events (an empty list if none).",
                    "input_schema": llm.facts_schema(request),
                }
            ],
            # Forcing the tool means the answer is always structured input,
            # never prose we would have to parse.
            tool_choice={"type": "tool", "name": llm.TOOL_NAME},
        )
        if message.stop_reason == "max_tokens":
            raise ExtractionError(f"{self.name}: the answer was cut off at max_tokens={self.max_tokens}")
        for block in message.content:
            if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == llm.TOOL_NAME:
                return llm.parse_facts(block.input, request, self.name)
        # Some proxies drop tool support and answer in text; accept JSON there
        # rather than failing a job that did produce an answer.
        text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", None) == "text")
        if text.strip():
            return llm.parse_facts(llm.loads_model_json(text, self.name), request, self.name)
        raise ExtractionError(f"{self.name}: the model did not call {llm.TOOL_NAME}")

    async def summarize(self, request: CheckpointRequest) -> str:
        redact = llm.BeforeModelRedactor(request.policy.redaction.before_model)
        system, user = llm.summary_prompt(request, redact)
        message = await self._create(
            "summary",
            max_tokens=_SUMMARY_MAX_TOKENS,
            system=system,
            messages=[{"role": "user", "content": user}],
        )
        text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", None) == "text")
        return llm.clean_summary(text, self.name)

    def __repr__(self) -> str:
        return f"AnthropicExtractor(name={self.name!r}, base_url={self.base_url!r})"


def create_extractor(settings: object | None = None) -> AnthropicExtractor:
    """Factory registered as extractor ``anthropic``."""
    return AnthropicExtractor(settings=settings)


@hookimpl
def register_extractors(register: Callable[..., None]) -> None:
    register("anthropic", create_extractor)
