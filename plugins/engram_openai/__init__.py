"""OpenAI (and OpenAI-compatible) embedder and extractor.

Registered names: embedder ``openai``, extractor ``openai``.  Importing this
package does not import the ``openai`` SDK; the factories do.

Configuration (constructor keyword arguments win over the environment):

=================================== =========================== ==========================
variable                            meaning                     default
=================================== =========================== ==========================
``ENGRAM_OPENAI_API_KEY``           API key                     ``OPENAI_API_KEY``
``ENGRAM_OPENAI_BASE_URL``          any OpenAI-compatible URL   the SDK's default
``ENGRAM_OPENAI_EXTRACTION_MODEL``  chat model for extraction   ``gpt-4o-mini``
``ENGRAM_OPENAI_EMBEDDING_MODEL``   embedding model             ``text-embedding-3-small``
``ENGRAM_OPENAI_EMBEDDING_DIMENSIONS`` vector size              ``1536``
``ENGRAM_LLM_TIMEOUT``              seconds per request         ``30``
=================================== =========================== ==========================

The SDK's own retries are disabled: a failed call raises at once and Engram's job
queue, which owns retries and honours ``RateLimitedError.retry_after``, decides
what happens next.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engram import llm
from engram.errors import ConfigurationError, ExtractionError, missing_extra
from engram.hookspecs import hookimpl
from engram.interfaces import CandidateFact, CheckpointRequest, ExtractionRequest

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_EXTRACTION_MODEL",
    "OpenAIEmbedder",
    "OpenAIExtractor",
    "create_embedder",
    "create_extractor",
    "register_embedders",
    "register_extractors",
]

log = logging.getLogger("engram.extractors.openai")

DEFAULT_EXTRACTION_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_EMBEDDING_DIMENSIONS = 1536
# OpenAI accepts up to 2048 inputs per embeddings request; smaller batches keep
# each request well under its total-token cap for typical fact-sized texts.
_EMBED_BATCH = 256
# Placeholder sent to OpenAI-compatible servers that need no key (vLLM, Ollama,
# llama.cpp); the SDK refuses to start without one.
_NO_KEY = "not-needed"


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise missing_extra("openai", "openai") from exc
    return openai


def _api_key(api_key: str | None, base_url: str | None, settings: object | None) -> str:
    key = api_key or llm.setting(settings, "openai_api_key", ("ENGRAM_OPENAI_API_KEY", "OPENAI_API_KEY"))
    if key:
        return key
    if base_url:
        return _NO_KEY
    raise ConfigurationError(
        "no OpenAI API key: set ENGRAM_OPENAI_API_KEY (or OPENAI_API_KEY), "
        "or ENGRAM_OPENAI_BASE_URL for a local OpenAI-compatible server"
    )


class _OpenAIBase:
    """Client construction and error mapping shared by the embedder and the extractor."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float | None,
        settings: object | None,
    ) -> None:
        self._openai = _import_openai()  # fail at construction, with the extra to install
        self.base_url = base_url or llm.setting(settings, "openai_base_url", ("ENGRAM_OPENAI_BASE_URL",))
        self._api_key = _api_key(api_key, self.base_url, settings)
        self.timeout = (
            llm.parse_timeout(timeout)
            if timeout is not None
            else llm.parse_timeout(llm.setting(settings, "llm_timeout", ("ENGRAM_LLM_TIMEOUT",)))
        )
        self._clients: llm.LoopBound[AsyncOpenAI] = llm.LoopBound(self._make_client)

    def _make_client(self) -> AsyncOpenAI:
        kwargs: dict[str, Any] = {"api_key": self._api_key, "timeout": self.timeout, "max_retries": 0}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        client: AsyncOpenAI = self._openai.AsyncOpenAI(**kwargs)
        return client

    @property
    def client(self) -> AsyncOpenAI:
        """The SDK client for the running event loop."""
        return self._clients.get()

    async def aclose(self) -> None:
        """Close the current loop's HTTP connections (optional; they are also closed on collection)."""
        client = self._clients.pop_current()
        if client is not None:
            await client.close()

    def _error(self, exc: Exception, what: str) -> ExtractionError:
        """Translate an SDK exception into Engram's retry vocabulary."""
        return llm.sdk_error(
            self._openai,
            exc,
            provider="openai",
            what=what,
            where=self.base_url or "api.openai.com",
            timeout=self.timeout,
        )

    def _handled(self) -> tuple[type[Exception], ...]:
        # The SDK raises its own hierarchy, but a JSON content-type with a broken
        # body escapes as a bare JSONDecodeError.
        return (self._openai.OpenAIError, json.JSONDecodeError)


# --------------------------------------------------------------------------- embedder


class OpenAIEmbedder(_OpenAIBase):
    """Embeddings through ``POST /embeddings`` of OpenAI or any compatible server."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        dimensions: int | None = None,
        timeout: float | None = None,
        batch_size: int = _EMBED_BATCH,
        settings: object | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, settings=settings)
        self.model = model or llm.setting_or(
            settings, "openai_embedding_model", ("ENGRAM_OPENAI_EMBEDDING_MODEL",), DEFAULT_EMBEDDING_MODEL
        )
        raw_dims = (
            dimensions
            if dimensions is not None
            else llm.setting(settings, "openai_embedding_dimensions", ("ENGRAM_OPENAI_EMBEDDING_DIMENSIONS",))
        )
        try:
            self.dimension = int(raw_dims) if raw_dims is not None else DEFAULT_EMBEDDING_DIMENSIONS
        except ValueError:
            raise ConfigurationError(
                f"ENGRAM_OPENAI_EMBEDDING_DIMENSIONS must be an integer, got {raw_dims!r}"
            ) from None
        if not 1 <= self.dimension <= 16_000:
            raise ConfigurationError(
                f"embedding dimensions must be between 1 and 16000, got {self.dimension}"
            )
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.batch_size = batch_size
        # Only text-embedding-3 (and later) models accept `dimensions`; older
        # models and many compatible servers reject it.  Send it when it was
        # asked for explicitly or the model is known to support it.
        self._send_dimensions = raw_dims is not None or self.model.startswith("text-embedding-3")
        self.name = f"openai/{self.model}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        texts = list(texts)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors += await self._embed_batch(texts[start : start + self.batch_size])
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        (vector,) = await self._embed_batch([text])
        return vector

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        extra: dict[str, Any] = {"dimensions": self.dimension} if self._send_dimensions else {}
        try:
            response = await self.client.embeddings.create(
                model=self.model,
                # The API rejects empty strings; a single space embeds as "nothing".
                input=[text if text.strip() else " " for text in batch],
                # Plain floats: not every compatible server implements base64.
                encoding_format="float",
                **extra,
            )
        except self._handled() as exc:
            raise self._error(exc, "embeddings") from exc
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(batch) or [item.index for item in data] != list(range(len(batch))):
            raise ExtractionError(f"openai embeddings: asked for {len(batch)} vectors, got {len(data)}")
        return [self._unit(item.embedding) for item in data]

    def _unit(self, vector: Sequence[float]) -> list[float]:
        if len(vector) != self.dimension:
            raise ConfigurationError(
                f"openai embeddings: {self.model} returned {len(vector)}-dimensional vectors but "
                f"{self.dimension} are configured; set ENGRAM_OPENAI_EMBEDDING_DIMENSIONS={len(vector)}"
            )
        # OpenAI's vectors are already unit length, compatible servers' are not
        # always; the Embedder contract promises unit length either way.
        norm = math.sqrt(math.fsum(x * x for x in vector))
        if norm == 0.0 or not math.isfinite(norm):
            raise ExtractionError(f"openai embeddings: {self.model} returned a zero or non-finite vector")
        return [x / norm for x in vector]

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(name={self.name!r}, dimension={self.dimension}, base_url={self.base_url!r})"


# --------------------------------------------------------------------------- extractor


class OpenAIExtractor(_OpenAIBase):
    """Fact extraction with Chat Completions and a strict JSON-schema response format."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        temperature: float | None = None,
        settings: object | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, settings=settings)
        self.model = model or llm.setting_or(
            settings, "openai_extraction_model", ("ENGRAM_OPENAI_EXTRACTION_MODEL",), DEFAULT_EXTRACTION_MODEL
        )
        # Not sent unless set: reasoning models reject a temperature.
        self.temperature = temperature
        self.name = f"openai/{self.model}"

    async def _complete(
        self, system: str, user: str, what: str, response_format: dict[str, Any] | None
    ) -> Any:
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra["response_format"] = response_format
        if self.temperature is not None:
            extra["temperature"] = self.temperature
        try:
            completion = await self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                **extra,
            )
        except self._handled() as exc:
            raise self._error(exc, what) from exc
        if not completion.choices:
            raise ExtractionError(f"openai {what}: the response has no choices")
        choice = completion.choices[0]
        if choice.message.refusal:
            raise ExtractionError(f"openai {what}: the model refused: {choice.message.refusal[:200]}")
        if choice.finish_reason == "length":
            raise ExtractionError(f"openai {what}: the answer was cut off at the token limit")
        if choice.finish_reason == "content_filter":
            raise ExtractionError(f"openai {what}: the answer was withheld by the content filter")
        return choice.message.content

    async def extract(self, request: ExtractionRequest) -> list[CandidateFact]:
        if not request.events:
            return []
        redact = llm.BeforeModelRedactor(request.policy.redaction.before_model)
        system, user = llm.extraction_prompt(request, redact)
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": llm.TOOL_NAME, "strict": True, "schema": llm.facts_schema(request)},
        }
        content = await self._complete(system, user, "extraction", response_format)
        payload = llm.loads_model_json(content, self.name)
        return llm.parse_facts(payload, request, self.name)

    async def summarize(self, request: CheckpointRequest) -> str:
        redact = llm.BeforeModelRedactor(request.policy.redaction.before_model)
        system, user = llm.summary_prompt(request, redact)
        return llm.clean_summary(await self._complete(system, user, "summary", None), self.name)

    def __repr__(self) -> str:
        return f"OpenAIExtractor(name={self.name!r}, base_url={self.base_url!r})"


# --------------------------------------------------------------------------- registration


def create_embedder(settings: object | None = None) -> OpenAIEmbedder:
    """Factory registered as embedder ``openai``."""
    return OpenAIEmbedder(settings=settings)


def create_extractor(settings: object | None = None) -> OpenAIExtractor:
    """Factory registered as extractor ``openai``."""
    return OpenAIExtractor(settings=settings)


@hookimpl
def register_embedders(register: Callable[..., None]) -> None:
    register("openai", create_embedder)


@hookimpl
def register_extractors(register: Callable[..., None]) -> None:
    register("openai", create_extractor)
