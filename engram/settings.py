"""Settings read from ``ENGRAM_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: What every masked secret is replaced with.
MASK = "***"

# A password in a URI DSN: scheme://user:PASSWORD@host.  The password runs to the
# last "@" before whitespace or a quote, so an unencoded "@" or "/" in it is
# still masked (masking too much is safe; masking too little is not).
_URI_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:@/'\"]*:)[^\s'\"]*@")
# The same without a scheme ("user:pw@host/db", which asyncpg refuses but a
# message may still quote), only at the very start so free text is not touched.
_BARE_PASSWORD = re.compile(r"^(?P<head>[^\s:@/'\"=]*:)[^\s'\"]*@")
# password=... as a URI query parameter or a libpq keyword/value pair (quoted or not).
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&#'\"]+)", re.IGNORECASE
)
# Settings whose names say they hold a secret, masked in reprs like the DSN.
_SECRET_SETTING = re.compile(r"password|secret|token|api_key|apikey|credential", re.IGNORECASE)


def redact_dsn(text: str) -> str:
    """``text`` with every PostgreSQL password in it replaced by ``***``.

    Works on a DSN (``postgresql://user:pw@host/db?sslpassword=pw``, or libpq's
    ``host=... password=pw``) and on free text that quotes one (an error message,
    a log line).  The user name, host, port and database are kept: they are what
    an operator needs to see which server a message is about.
    """
    masked = _URI_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    if "://" not in masked:
        masked = _BARE_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", masked)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", masked)


def dsn_secrets(dsn: str) -> list[str]:
    """The passwords written in ``dsn`` (raw and percent-decoded), longest first.

    For scrubbing messages of libraries that quote a fragment of a DSN rather
    than the whole of it (asyncpg's "invalid port" error, say).
    """
    from urllib.parse import unquote

    found: list[str] = []
    uri = re.match(r"(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?([^\s]*)@", dsn)
    if uri and ":" in uri.group(1):
        found.append(uri.group(1).split(":", 1)[1])
    for m in _KEYWORD_PASSWORD.finditer(dsn):
        found.append(m.group(0)[len(m.group("head")) :].strip("'"))
    out = {s for raw in found for s in (raw, unquote(raw)) if s}
    return sorted(out, key=len, reverse=True)


def scrub_secrets(text: str, dsn: str | None) -> str:
    """``text`` with ``dsn``'s passwords (and any DSN password in it) masked."""
    out = redact_dsn(text)
    for secret in dsn_secrets(dsn or ""):
        # Very short passwords are masked only where they appear as part of a DSN:
        # replacing a one-letter password everywhere would garble the message.
        if len(secret) >= 3:
            out = out.replace(secret, MASK)
    return out


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("engram", appauthor=False))


class EngramSettings(BaseSettings):
    """Every knob has an environment variable: the field name upper-cased with ``ENGRAM_``."""

    # hide_input_in_errors: a validation error would otherwise quote the input,
    # which for a model-level check is every setting, the DSN with its password too.
    model_config = SettingsConfigDict(
        env_prefix="ENGRAM_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

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
    allow_policy_paths: bool = Field(
        default=True,
        description=(
            "Accept a TOML file path as a per-call memory_policy.  Off: per-call policies must be "
            "registered names or MemoryPolicy objects; the client's own policy may still be a path."
        ),
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() of settings end up in logs and tracebacks; the password
        # must not.  model_dump() and the attributes keep the real values, because
        # code that reads settings needs them to connect.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                yield name, redact_dsn(value)
            elif name is not None and value is not None and _SECRET_SETTING.search(name):
                yield name, MASK
            else:
                yield name, value

    @model_validator(mode="after")
    def _pool_bounds(self) -> EngramSettings:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("ENGRAM_MIN_POOL_SIZE must not exceed ENGRAM_MAX_POOL_SIZE")
        return self
