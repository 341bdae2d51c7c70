"""Settings read from ``ENGRAM_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("engram", appauthor=False))


class EngramSettings(BaseSettings):
    """Every knob has an environment variable: the field name upper-cased with ``ENGRAM_``."""

    model_config = SettingsConfigDict(env_prefix="ENGRAM_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN.  Unset: start or reuse the embedded server."
    )
    home: Path = Field(default_factory=default_home, description="Folder for the embedded database.")
    min_pool_size: int = Field(default=1, ge=0, le=1000)
    max_pool_size: int = Field(default=10, ge=1, le=1000)
    pgbouncer: bool = Field(
        default=False,
        description="Transaction-pooling mode: no prepared-statement cache, no session state.",
    )
    command_timeout: float = Field(default=60.0, gt=0)
    create_extensions: bool = Field(default=True, description="Create vector/pg_trgm if missing.")
    migrate: bool = Field(default=True, description="Apply pending migrations on connect.")
    policy: str = Field(default="default", description="Memory policy name or TOML path.")
    embedder: str | None = Field(
        default=None, description="Embedder name; default: sentence-transformers if installed, else hashing."
    )
    extractor: str = Field(default="rules", description="Extractor used by memory workers.")
    allow_embedding_dimension_change: bool = False
    max_event_chars: int = Field(default=262_144, ge=1, description="Largest event content accepted.")

    @model_validator(mode="after")
    def _pool_bounds(self) -> EngramSettings:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("ENGRAM_MIN_POOL_SIZE must not exceed ENGRAM_MAX_POOL_SIZE")
        return self
