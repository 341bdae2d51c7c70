"""The ``hashing`` embedder: deterministic feature hashing, numpy only.

This is Engram's zero-dependency fallback embedder and the fast one used in tests.
It does **not** understand meaning: it maps a text to a vector from its surface
form alone (words, word pairs and character trigrams), so two texts score as
similar only when they share vocabulary or spelling.  "The car is red" and "my
automobile is crimson" come out nearly unrelated.  Use the sentence-transformers
embedder (``pip install 'engram-pg[local]'``) or a hosted one for semantic recall.

What it does guarantee:

* the same text gives the same vector in every process, on every machine and
  Python version (the hash is blake2b, not Python's salted ``hash()``);
* every vector is unit length, including for empty text, so cosine distance in
  pgvector is always defined;
* no model files, no network, no heavy imports.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from engram.hookspecs import hookimpl

__all__ = ["DIMENSION", "HashingEmbedder", "create_embedder", "embed_text", "register_embedders"]

DIMENSION = 384

# Feature weights: whole words carry the most signal; word pairs add a little
# word-order sensitivity; character trigrams make the vector robust to
# inflection and typos ("deploy" / "deployed" / "deplyo" still overlap).
_WORD_WEIGHT = 1.0
_BIGRAM_WEIGHT = 0.7
_TRIGRAM_WEIGHT = 0.35

# Above this many texts the work is moved to a thread so a large batch cannot
# stall the event loop; below it the thread hand-off costs more than it saves.
_THREAD_THRESHOLD = 64

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=65_536)
def _bucket(feature: str) -> tuple[int, float]:
    """Stable (index, sign) for one feature.

    The first 8 digest bytes choose the bucket, one more bit chooses the sign; a
    signed hash makes collisions cancel out on average instead of piling up.
    """
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=9).digest()
    index = int.from_bytes(digest[:8], "little") % DIMENSION
    sign = 1.0 if digest[8] & 1 else -1.0
    return index, sign


def _features(text: str) -> list[tuple[str, float]]:
    words = _WORD.findall(text.casefold())
    features: list[tuple[str, float]] = [(f"w:{w}", _WORD_WEIGHT) for w in words]
    features += [(f"b:{a} {b}", _BIGRAM_WEIGHT) for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f"<{word}>"  # boundary markers so prefixes and suffixes are distinct trigrams
        features += [(f"c:{padded[i : i + 3]}", _TRIGRAM_WEIGHT) for i in range(len(padded) - 2)]
    return features


def embed_text(text: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Return the unit-length float32 vector for ``text``."""
    vector = np.zeros(DIMENSION, dtype=np.float64)
    features = _features(text)
    if not features:
        # A text with no word characters still needs a unit vector; all such
        # texts share one, which is honest: they have no lexical content to compare.
        features = [("empty:", 1.0)]
    for feature, weight in features:
        index, sign = _bucket(feature)
        vector[index] += sign * weight
    # Sub-linear term frequency: a word repeated ten times should not drown out the rest.
    vector = np.sign(vector) * np.log1p(np.abs(vector))
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not math.isfinite(norm):
        # Every feature cancelled out (possible, if unlikely, with signed hashing):
        # fall back to the shared empty-text vector rather than returning zeros.
        return embed_text("")
    return (vector / norm).astype(np.float32)


def _as_list(vector: np.ndarray[Any, np.dtype[np.float32]]) -> list[float]:
    # Plain Python floats: what the Embedder protocol promises and asyncpg binds.
    values: list[float] = vector.tolist()
    return values


class HashingEmbedder:
    """Feature-hashing embedder; captures lexical overlap only (see the module docstring)."""

    name = "hashing-384"
    dimension = DIMENSION

    def _embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        return [_as_list(embed_text(text)) for text in texts]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        texts = list(texts)
        if len(texts) > _THREAD_THRESHOLD:
            return await asyncio.to_thread(self._embed_sync, texts)
        return self._embed_sync(texts)

    async def embed_query(self, text: str) -> list[float]:
        return _as_list(embed_text(text))

    def __repr__(self) -> str:
        return f"HashingEmbedder(name={self.name!r}, dimension={self.dimension})"


def create_embedder(settings: object | None = None) -> HashingEmbedder:
    """Factory registered as ``hashing``; it has nothing to configure."""
    del settings
    return HashingEmbedder()


@hookimpl
def register_embedders(register: Callable[..., None]) -> None:
    register("hashing", create_embedder)
