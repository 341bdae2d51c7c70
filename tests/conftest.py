"""Shared fixtures: one real PostgreSQL per test session.

With ``ENGRAM_DATABASE_URL`` set, tests run against that server (point it at a
disposable database: tests create rows for random user ids and some create
scratch databases).  Otherwise an embedded PostgreSQL is started in a temporary
``ENGRAM_HOME`` and stopped when the session ends.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for tests/standin.py and helpers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("ENGRAM_DATABASE_URL")
    if url:
        yield url
        return
    from engram.db.embedded import embedded_dsn, stop_embedded

    # Not tmp_path_factory: pytest prunes old basetemp folders, which would pull
    # the data folder from under a server that a parallel run is still using.
    home = Path(tempfile.mkdtemp(prefix="engram-test-"))
    dsn = embedded_dsn(home, keep_running=True)
    os.environ["ENGRAM_TEST_EMBEDDED_HOME"] = str(home)
    try:
        yield dsn
    finally:
        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def scope() -> dict[str, str]:
    """A fresh tenant scope, so tests sharing the database never see each other."""
    return {"user_id": f"user-{uuid.uuid4().hex[:12]}", "agent_id": "agent-test"}


@pytest.fixture
async def engram(database_url: str) -> AsyncIterator[object]:
    from engram import Engram

    client = Engram(database_url, memory_policy="default", embedder="hashing")
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def raw_conn(database_url: str) -> AsyncIterator[object]:
    """A plain asyncpg connection for checking what is really in the database."""
    import asyncpg

    conn = await asyncpg.connect(database_url, statement_cache_size=0)
    try:
        yield conn
    finally:
        await conn.close()


async def count_rows(conn: object, user_id: str) -> dict[str, int]:
    """Rows per table holding ``user_id`` (catalog-driven), for 'nothing was written' checks."""
    tables = await conn.fetch(  # type: ignore[attr-defined]
        """SELECT c.table_name FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = current_schema() AND c.column_name = 'user_id'
             AND t.table_type = 'BASE TABLE' ORDER BY 1"""
    )
    out: dict[str, int] = {}
    for row in tables:
        name = row["table_name"]
        out[name] = await conn.fetchval(f'SELECT count(*) FROM "{name}" WHERE user_id = $1', user_id)  # type: ignore[attr-defined]
    return out


def dsn_with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


@pytest.fixture
async def scratch_dsn(database_url: str) -> AsyncIterator[str]:
    """A brand-new empty database on the same server, dropped afterwards."""
    import asyncpg

    name = f"engram_scratch_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url, statement_cache_size=0)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn_with_database(database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def own_dsn(scratch_dsn: str) -> str:
    """A database of the test's own, for tests that assert on one ``process_jobs`` batch.

    ``process_jobs`` claims due jobs of every tenant (the queue is shared), so on the
    suite's shared database jobs other tests left queued could fill the batch or
    pass through the test's scripted extractor.
    """
    return scratch_dsn


@pytest.fixture
async def own_raw_conn(own_dsn: str) -> AsyncIterator[object]:
    """A plain asyncpg connection to ``own_dsn``."""
    import asyncpg

    conn = await asyncpg.connect(own_dsn, statement_cache_size=0)
    try:
        yield conn
    finally:
        await conn.close()


# --------------------------------------------------------------------------- hypothesis profiles
# "ci" keeps the property tests (and the tenant-isolation state machine) to a
# minute or two; "long" is the thorough run documented in docs/privacy.md:
#   HYPOTHESIS_PROFILE=long nox -s tests -- tests/integration/test_isolation_state_machine.py
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
hypothesis_settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=_SLOW_OK,
    print_blob=True,
)
hypothesis_settings.register_profile(
    "long",
    max_examples=1_000,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=_SLOW_OK,
    print_blob=True,
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
