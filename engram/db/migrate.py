"""Numbered SQL migrations, applied in order, once, under an advisory lock.

Files live in the top-level ``migrations/`` folder (shipped in the wheel as the
``engram.migrations`` package) and are named ``NNNN_description.sql``.  Each
applied file is recorded with its SHA-256; a file edited after it was applied is
refused, because silently diverging schemas are worse than a loud start-up error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from ..errors import ConfigurationError, MigrationError

# Any constant works; it only has to be the same for every Engram process.
_ADVISORY_LOCK_KEY = 0x454E4752414D  # "ENGRAM"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MIN_SERVER_VERSION = 160000
REQUIRED_EXTENSIONS = ("vector", "pg_trgm", "btree_gin")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("engram.migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


async def server_facts(conn: asyncpg.Connection) -> tuple[str, int, dict[str, str]]:
    """(server version text, server_version_num, installed extension -> version), for ``doctor``."""
    version = await conn.fetchval("SHOW server_version")
    number = int(await conn.fetchval("SHOW server_version_num"))
    extensions = {
        r["extname"]: r["extversion"]
        for r in await conn.fetch("SELECT extname, extversion FROM pg_extension")
    }
    return str(version), number, extensions


async def check_server(conn: asyncpg.Connection, *, create_extensions: bool) -> None:
    """Refuse servers older than 16 and make sure vector, pg_trgm and btree_gin exist."""
    version = int(await conn.fetchval("SHOW server_version_num"))
    if version < MIN_SERVER_VERSION:
        raise ConfigurationError(f"PostgreSQL 16 or newer is required; the server is {version // 10000}")
    installed = {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}
    missing = [ext for ext in REQUIRED_EXTENSIONS if ext not in installed]
    if not missing:
        return
    if not create_extensions:
        raise ConfigurationError(
            f"the database lacks the extensions {missing}; run CREATE EXTENSION for them "
            "or set ENGRAM_CREATE_EXTENSIONS=true"
        )
    available = {r["name"] for r in await conn.fetch("SELECT name FROM pg_available_extensions")}
    not_available = [ext for ext in missing if ext not in available]
    if not_available:
        raise ConfigurationError(
            f"the PostgreSQL server does not have the extensions {not_available} installed; "
            "install pgvector / contrib on the server"
        )
    for ext in missing:
        try:
            # Two processes may race here; IF NOT EXISTS plus a retry on the
            # unique violation keeps both happy.
            await conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{ext}"')
        except asyncpg.UniqueViolationError:
            pass
        except asyncpg.InsufficientPrivilegeError as exc:
            raise ConfigurationError(
                f"extension {ext!r} is missing and this role may not create it: {exc}; "
                f"ask an administrator to run CREATE EXTENSION {ext}"
            ) from exc


async def applied_migrations(conn: asyncpg.Connection) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass('engram_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM engram_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def migration_history(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Applied migrations, oldest first: version, name, applied_at."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT version, name, applied_at FROM engram_migrations ORDER BY version"
    )
    return rows


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations in one transaction.  Returns the versions applied."""
    wanted = available_migrations()
    async with conn.transaction():
        # A transaction-scoped lock: released at commit, and safe through PgBouncer.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_KEY)
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS engram_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = await applied_migrations(conn)
        known = {m.version for m in wanted}
        unknown = sorted(set(done) - known)
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this version of Engram does not know; "
                "upgrade Engram"
            )
        applied: list[int] = []
        for migration in wanted:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was edited after it was "
                        "applied (checksum mismatch); restore the original file and add a new migration"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO engram_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied.append(migration.version)
    return applied
