"""Embedders: the hashing fallback, the local sentence-transformers model, OpenAI over HTTP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest
from standin import EMBEDDINGS, Reply, StandIn, embeddings_response

from engram.errors import ConfigurationError, ExtractionError, PluginError, RateLimitedError
from engram.interfaces import Embedder


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(v: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# --------------------------------------------------------------------------- hashing


@pytest.fixture
def hashing() -> Embedder:
    import engram_hashing

    embedder = engram_hashing.create_embedder()
    assert isinstance(embedder, Embedder)
    return embedder


async def test_hashing_shape_and_unit_norm(hashing: Embedder) -> None:
    assert (hashing.name, hashing.dimension) == ("hashing-384", 384)
    texts = ["The user prefers dark mode.", "", "   ", "!!!", "naïve café 東京", "word " * 500]
    vectors = await hashing.embed(texts)
    assert len(vectors) == len(texts)
    for vector in vectors:
        assert len(vector) == 384 and all(isinstance(x, float) for x in vector)
        assert norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert await hashing.embed([]) == []


def test_hashing_is_deterministic_across_processes() -> None:
    import engram_hashing

    text = "Deploy the billing service to staging-eu-2 on Fridays."
    here = engram_hashing.embed_text(text).tolist()
    code = f"import json, engram_hashing\nprint(json.dumps(engram_hashing.embed_text({text!r}).tolist()))"
    # A different hash seed proves we do not depend on Python's salted hash().
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == here


async def test_hashing_query_equals_document(hashing: Embedder) -> None:
    text = "Deploy the billing service to staging-eu-2 on Fridays."
    assert await hashing.embed([text]) == [await hashing.embed_query(text)]


async def test_hashing_orders_by_lexical_overlap(hashing: Embedder) -> None:
    query = await hashing.embed_query("which editor theme does the user prefer")
    close, related, unrelated = await hashing.embed(
        [
            "The user prefers a dark editor theme.",
            "The user prefers tea.",
            "Quarterly revenue grew twelve percent in Brazil.",
        ]
    )
    assert cosine(query, close) > cosine(query, related) > cosine(query, unrelated)
    # Inflections share character trigrams, so they still overlap.
    deploy, deployed = await hashing.embed(["deploy", "deployed"])
    assert cosine(deploy, deployed) > 0.3


async def test_hashing_large_batch_matches_single_calls(hashing: Embedder) -> None:
    texts = [f"fact number {i} about topic {i % 7}" for i in range(150)]  # takes the thread path
    batch = await hashing.embed(texts)
    assert batch[0] == await hashing.embed_query(texts[0])
    assert batch[149] == await hashing.embed_query(texts[149])


# --------------------------------------------------------------------------- sentence-transformers


def test_sentence_transformers_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_sentence_transformers as st

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(PluginError, match=r"pip install 'engram-pg\[local\]'"):
        st.create_embedder()


# --------------------------------------------------------------------------- openai


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def openai_embedder(standin: StandIn, **kwargs: object) -> Embedder:
    from engram_openai import OpenAIEmbedder

    kwargs.setdefault("timeout", 5.0)
    embedder = OpenAIEmbedder(api_key="test-key", base_url=standin.openai_base_url, **kwargs)  # type: ignore[arg-type]
    assert isinstance(embedder, Embedder)
    return embedder


async def test_openai_embedder_round_trip(standin: StandIn) -> None:
    embedder = openai_embedder(standin, dimensions=8)
    assert (embedder.name, embedder.dimension) == ("openai/text-embedding-3-small", 8)
    vectors = await embedder.embed(["alpha", "", "gamma"])
    assert [len(v) for v in vectors] == [8, 8, 8]
    assert all(norm(v) == pytest.approx(1.0) for v in vectors)
    (sent,) = standin.requests_to(EMBEDDINGS)
    body = sent.json()
    assert body == {
        "model": "text-embedding-3-small",
        "input": ["alpha", " ", "gamma"],  # the API refuses empty strings
        "dimensions": 8,
        "encoding_format": "float",
    }
    assert sent.headers["authorization"] == "Bearer test-key"
    assert await embedder.embed([]) == []
    assert len(standin.requests_to(EMBEDDINGS)) == 1


async def test_openai_embedder_batches_and_keeps_order(standin: StandIn) -> None:
    embedder = openai_embedder(standin, dimensions=4, batch_size=2)
    texts = [f"text {i}" for i in range(5)]
    # The server may return items out of order; `index` decides.
    standin.script(
        EMBEDDINGS,
        Reply.json(
            {
                "object": "list",
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
                "data": [
                    {"object": "embedding", "index": 1, "embedding": [0.0, 2.0, 0.0, 0.0]},
                    {"object": "embedding", "index": 0, "embedding": [3.0, 0.0, 0.0, 0.0]},
                ],
            }
        ),
    )
    vectors = await embedder.embed(texts)
    assert vectors[0] == [1.0, 0.0, 0.0, 0.0] and vectors[1] == [0.0, 1.0, 0.0, 0.0]
    assert len(vectors) == 5
    assert [r.json()["input"] for r in standin.requests_to(EMBEDDINGS)] == [
        ["text 0", "text 1"],
        ["text 2", "text 3"],
        ["text 4"],
    ]


async def test_openai_embedder_dimension_mismatch(standin: StandIn) -> None:
    standin.script(EMBEDDINGS, Reply.json(embeddings_response([[0.1] * 5])))
    with pytest.raises(ConfigurationError, match="ENGRAM_OPENAI_EMBEDDING_DIMENSIONS=5"):
        await openai_embedder(standin, dimensions=8).embed_query("x")


async def test_openai_embedder_wrong_count(standin: StandIn) -> None:
    standin.script(EMBEDDINGS, Reply.json(embeddings_response([[1.0] * 8])))
    with pytest.raises(ExtractionError, match="asked for 2 vectors"):
        await openai_embedder(standin, dimensions=8).embed(["a", "b"])


async def test_openai_embedder_errors(standin: StandIn) -> None:
    standin.script(EMBEDDINGS, Reply.rate_limited(retry_after="4"), Reply.server_error())
    embedder = openai_embedder(standin, dimensions=8)
    with pytest.raises(RateLimitedError) as info:
        await embedder.embed(["a"])
    assert info.value.retry_after == 4.0
    with pytest.raises(ExtractionError, match="server error 500"):
        await embedder.embed(["a"])
    assert len(standin.requests_to(EMBEDDINGS)) == 2  # no SDK retries


async def test_openai_embedder_environment(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_openai

    monkeypatch.setenv("ENGRAM_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("ENGRAM_OPENAI_BASE_URL", standin.openai_base_url)
    monkeypatch.setenv("ENGRAM_OPENAI_EMBEDDING_MODEL", "nomic-embed-text")
    monkeypatch.delenv("ENGRAM_OPENAI_EMBEDDING_DIMENSIONS", raising=False)
    embedder = engram_openai.create_embedder()
    assert (embedder.name, embedder.dimension) == ("openai/nomic-embed-text", 1536)
    await embedder.embed(["x"])
    body = standin.requests_to(EMBEDDINGS)[0].json()
    # Not a text-embedding-3 model and no explicit size: `dimensions` is not sent.
    assert body["model"] == "nomic-embed-text" and "dimensions" not in body

    monkeypatch.setenv("ENGRAM_OPENAI_EMBEDDING_DIMENSIONS", "lots")
    with pytest.raises(ConfigurationError, match="ENGRAM_OPENAI_EMBEDDING_DIMENSIONS"):
        engram_openai.create_embedder()
