"""A database written by the previous release (0.1.0) keeps its data after an upgrade.

A scratch database gets exactly the 0.1.0 schema (the migrations that release
shipped, applied by Engram's own migration runner), then rows written with raw
SQL the way the 0.1.0 code wrote them: a task and its owner, a turn, a fact
with its source span and vector, a finished memory job, a checkpoint, and a
long input with its chunk.  A current ``Engram`` client then connects, which
applies any newer migrations, and everything is read back through the public
API.

The previous release is commit ``b0d27f6``; its migrations and their SHA-256
checksums are pinned below rather than read from git, so the test does not
depend on the repository's history being present.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import asyncpg
import pytest

from engram import Engram
from engram.db import migrate as migration_runner

PREVIOUS_RELEASE = "0.1.0"
# `git ls-tree b0d27f6 migrations/`: the last migration 0.1.0 shipped, and the
# checksum every 0.1.0 database recorded for each file in engram_migrations.
PREVIOUS_RELEASE_LAST_MIGRATION = 7
PREVIOUS_RELEASE_CHECKSUMS = {
    1: "5ac7dbd68c5a1937da4312657f724381ea568444c41f9e5325ea929566b827df",
    2: "bfb2e957a3df62a8105851b104d5469650f29f564d9e2ee4f26e6197f33c8f9a",
    3: "6da0693512c570561ffc4adb789e9a800c04bed284785dbcbc0aa49ab3ef6e1e",
    4: "9c8dd7d1b1c44cb8fbc4d4bbdc93b67451a4c3296a835946f2d9426164f3f072",
    5: "af3062cdfdb32754eb83f0c4c0ce371152a831b699fdac40b6f3995b0af8e13f",
    6: "2b559239c9a55026ba744f544f4e7cc22ffb80fefa072ace388f2e877f43d78a",
    7: "89d90043304235c56da067abfb74ae04ebf1ef76291e37e5e260a1fae8a8ee45",
}

USER_MESSAGE = "Please remember that I always fly with Aer Lingus."
ASSISTANT_MESSAGE = "Noted: Aer Lingus is your airline."
FACT = "The user prefers to fly with Aer Lingus"
QUOTE = "I always fly with Aer Lingus"
SUMMARY = "The user asked us to remember their preferred airline (Aer Lingus)."
DOCUMENT = "the tenant must give ninety days written notice before leaving the premises"
CITED = "ninety days written notice"


def hashing_embedder() -> Any:
    import engram_hashing

    return engram_hashing.create_embedder()


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


def quote_hash(text: str) -> str:
    # 0.1.0's normalisation for plain lowercase ASCII: whitespace runs collapsed, casefolded.
    return "sha256:" + hashlib.sha256(" ".join(text.split()).casefold().encode()).hexdigest()


def test_the_previous_release_migrations_are_unchanged() -> None:
    """A 0.1.0 database recorded these checksums; an edited file would refuse every upgrade."""
    shipped = {
        m.version: m.checksum
        for m in migration_runner.available_migrations()
        if m.version <= PREVIOUS_RELEASE_LAST_MIGRATION
    }
    assert shipped == PREVIOUS_RELEASE_CHECKSUMS


async def apply_previous_release_schema(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 0.1.0 schema, applied the way 0.1.0's Engram.connect() applied it."""
    every = migration_runner.available_migrations()
    previous = [m for m in every if m.version <= PREVIOUS_RELEASE_LAST_MIGRATION]
    assert {m.version: m.checksum for m in previous} == PREVIOUS_RELEASE_CHECKSUMS
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        await migration_runner.check_server(conn, create_extensions=True)
        with monkeypatch.context() as patch:
            patch.setattr(migration_runner, "available_migrations", lambda: previous)
            applied = await migration_runner.migrate(conn)
        assert applied == sorted(PREVIOUS_RELEASE_CHECKSUMS)
    finally:
        await conn.close()


async def write_previous_release_rows(conn: asyncpg.Connection, scope: dict[str, str]) -> dict[str, Any]:
    """Rows as the 0.1.0 code wrote them (see its ledger, facts, jobs and long-input SQL)."""
    user_id, agent_id = scope["user_id"], scope["agent_id"]
    task_id = f"{user_id}:trip-planning"
    embedder = hashing_embedder()
    space = f"{embedder.name}@{embedder.dimension}"
    ids: dict[str, Any] = {"task_id": task_id}
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO embedding_spaces (space, embedder, dimension, active) VALUES ($1, $2, $3, true)",
            space,
            embedder.name,
            embedder.dimension,
        )
        for table in ("facts", "event_vectors", "long_input_chunks"):
            index = f"{table}_hnsw_" + hashlib.sha256(space.encode()).hexdigest()[:12]
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw "
                f"((embedding::halfvec({embedder.dimension})) halfvec_cosine_ops) "
                f"WHERE embedding_space = '{space}'"
            )
        await conn.execute(
            "INSERT INTO task_owners (task_id, user_id, agent_id) VALUES ($1, $2, $3)",
            task_id,
            user_id,
            agent_id,
        )
        await conn.execute(
            "INSERT INTO tasks (user_id, agent_id, task_id, turn_count, metadata) VALUES ($1, $2, $3, 1, $4::jsonb)",
            user_id,
            agent_id,
            task_id,
            json.dumps({"channel": "web"}),
        )
        rows = await conn.fetch(
            """INSERT INTO events (user_id, agent_id, task_id, role, content, metadata)
               SELECT $1, $2, $3, r.role, r.content, $6::jsonb
               FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS r(role, content, ord)
               ORDER BY r.ord
               RETURNING event_id""",
            user_id,
            agent_id,
            task_id,
            ["user", "assistant"],
            [USER_MESSAGE, ASSISTANT_MESSAGE],
            json.dumps({"client": "0.1.0"}),
        )
        ids["user_event_id"], ids["assistant_event_id"] = (r["event_id"] for r in rows)
        vector = (await embedder.embed([FACT]))[0]
        ids["fact_id"] = await conn.fetchval(
            """INSERT INTO facts (user_id, agent_id, content, slot, category, confidence, origin, task_id,
                                  metadata, embedding, embedding_space)
               VALUES ($1, $2, $3, NULL, 'preference', 0.9, 'extractor:rules', $4, $5::jsonb,
                       $6::text::vector, $7)
               RETURNING fact_id""",
            user_id,
            agent_id,
            FACT,
            task_id,
            json.dumps({"release": PREVIOUS_RELEASE}),
            vector_literal(vector),
            space,
        )
        start = USER_MESSAGE.index(QUOTE)
        await conn.execute(
            """INSERT INTO fact_sources (user_id, agent_id, fact_id, event_id, span_start, span_end, quote)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            user_id,
            agent_id,
            ids["fact_id"],
            ids["user_event_id"],
            start,
            start + len(QUOTE),
            QUOTE,
        )
        event_ids = [ids["user_event_id"], ids["assistant_event_id"]]
        ids["job_id"] = await conn.fetchval(
            """INSERT INTO memory_jobs (user_id, agent_id, kind, task_id, payload, dedupe_key, state, attempts,
                                        max_attempts, result, started_at, finished_at)
               VALUES ($1, $2, 'derive', $3, $4::jsonb, $5, 'succeeded', 1, 5, $6::jsonb,
                       clock_timestamp(), clock_timestamp())
               RETURNING job_id""",
            user_id,
            agent_id,
            task_id,
            json.dumps({"event_ids": event_ids, "turn_count": 1}),
            f"derive:{task_id}:{min(event_ids)}-{max(event_ids)}",
            json.dumps({"created": [ids["fact_id"]]}),
        )
        ids["checkpoint_id"] = await conn.fetchval(
            """INSERT INTO checkpoints (user_id, agent_id, task_id, summary, through_event_id, turn_count)
               VALUES ($1, $2, $3, $4, $5, 1) RETURNING checkpoint_id""",
            user_id,
            agent_id,
            task_id,
            SUMMARY,
            ids["assistant_event_id"],
        )
        # A long input: its bounded artifact event, the document, and its one chunk.
        sha = hashlib.sha256(DOCUMENT.encode()).hexdigest()
        long_input_id = "li_" + uuid.uuid4().hex[:20]
        ids["artifact_event_id"] = await conn.fetchval(
            """INSERT INTO events (user_id, agent_id, task_id, role, content, metadata)
               VALUES ($1, $2, $3, 'artifact', $4, $5::jsonb) RETURNING event_id""",
            user_id,
            agent_id,
            task_id,
            f'Long input {long_input_id} recorded: "Lease", {len(DOCUMENT):,} characters, 1 chunks '
            f"(text), sha256 {sha[:16]}.\nPreview: {DOCUMENT}",
            json.dumps(
                {
                    "kind": "long_input",
                    "long_input_id": long_input_id,
                    "sha256": sha,
                    "title": "Lease",
                    "source": "lease.txt",
                    "char_count": len(DOCUMENT),
                    "chunk_count": 1,
                    "format": "text",
                    "deduplicated": False,
                }
            ),
        )
        await conn.execute(
            """INSERT INTO long_inputs (user_id, agent_id, long_input_id, task_id, event_id, title, source,
                                        metadata, sha256, text, char_count, format, chunk_max_tokens,
                                        chunk_overlap_tokens, chunk_count, embedded_at)
               VALUES ($1, $2, $3, $4, $5, 'Lease', 'lease.txt', $6::jsonb, $7, $8, $9, 'text', 400, 60, 1,
                       clock_timestamp())""",
            user_id,
            agent_id,
            long_input_id,
            task_id,
            ids["artifact_event_id"],
            json.dumps({"matter": "M-1"}),
            sha,
            DOCUMENT,
            len(DOCUMENT),
        )
        chunk_id = "ch_" + hashlib.sha256(f"{sha}:0:0:{len(DOCUMENT)}".encode("ascii")).hexdigest()[:20]
        chunk_vector = (await embedder.embed([DOCUMENT]))[0]
        await conn.execute(
            """INSERT INTO long_input_chunks (user_id, agent_id, long_input_id, chunk_id, ordinal, start_offset,
                                              end_offset, text, quote_hash, token_count, heading, embedding,
                                              embedding_space)
               VALUES ($1, $2, $3, $4, 0, 0, $5, $6, $7, 16, NULL, $8::text::vector, $9)""",
            user_id,
            agent_id,
            long_input_id,
            chunk_id,
            len(DOCUMENT),
            DOCUMENT,
            quote_hash(DOCUMENT),
            vector_literal(chunk_vector),
            space,
        )
        ids.update(long_input_id=long_input_id, chunk_id=chunk_id, sha256=sha)
    return ids


async def test_previous_release_database_keeps_its_data(
    scratch_dsn: str, scope: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await apply_previous_release_schema(scratch_dsn, monkeypatch)
    conn = await asyncpg.connect(scratch_dsn, statement_cache_size=0)
    try:
        ids = await write_previous_release_rows(conn, scope)
    finally:
        await conn.close()
    task_id = ids["task_id"]

    async with Engram(scratch_dsn, memory_policy="default", embedder="hashing") as e:
        # The ledger.
        (task,) = await e.list_tasks(**scope)
        assert (task.task_id, task.turn_count, task.metadata) == (task_id, 1, {"channel": "web"})
        events = await e.get_task_events(task_id, **scope)
        assert [(ev.event_id, ev.role, ev.content) for ev in events[:2]] == [
            (ids["user_event_id"], "user", USER_MESSAGE),
            (ids["assistant_event_id"], "assistant", ASSISTANT_MESSAGE),
        ]
        assert events[0].metadata == {"client": "0.1.0"} and not events[0].redacted
        assert [ev.event_id for ev in events] == [
            ids["user_event_id"],
            ids["assistant_event_id"],
            ids["artifact_event_id"],
        ]
        assert (await e.get_event(ids["artifact_event_id"], **scope)).role == "artifact"

        # The fact and its lineage.
        fact = await e.get_fact(ids["fact_id"], **scope)
        assert (fact.content, fact.category, fact.status, fact.origin, fact.task_id) == (
            FACT,
            "preference",
            "active",
            "extractor:rules",
            task_id,
        )
        assert fact.confidence == pytest.approx(0.9)
        assert fact.metadata == {"release": PREVIOUS_RELEASE}
        start = USER_MESSAGE.index(QUOTE)
        assert [(s.event_id, s.span_start, s.span_end, s.quote) for s in fact.sources] == [
            (ids["user_event_id"], start, start + len(QUOTE), QUOTE)
        ]
        lineage = await e.lineage(ids["fact_id"], **scope)
        assert [node.fact.fact_id for node in lineage.nodes] == [ids["fact_id"]]
        assert lineage.event_ids == (ids["user_event_id"],)
        assert [f.fact_id for f in await e.list_facts(**scope)] == [ids["fact_id"]]

        # The job queue and the checkpoint.
        (job,) = await e.list_jobs(**scope)
        assert (job.job_id, job.kind, job.state, job.task_id, job.attempts) == (
            ids["job_id"],
            "derive",
            "succeeded",
            task_id,
            1,
        )
        assert job.payload == {
            "event_ids": [ids["user_event_id"], ids["assistant_event_id"]],
            "turn_count": 1,
        }
        assert job.result == {"created": [ids["fact_id"]]}
        assert (await e.get_job(ids["job_id"], **scope)).state == "succeeded"
        checkpoint = await e.latest_checkpoint(task_id, **scope)
        assert checkpoint is not None
        assert (checkpoint.checkpoint_id, checkpoint.summary, checkpoint.through_event_id) == (
            ids["checkpoint_id"],
            SUMMARY,
            ids["assistant_event_id"],
        )

        # The long input, its chunk, and a citation into it.
        doc = await e.get_long_input(ids["long_input_id"], include_text=True, include_chunks=True, **scope)
        assert (doc.text, doc.sha256, doc.title, doc.source, doc.metadata) == (
            DOCUMENT,
            ids["sha256"],
            "Lease",
            "lease.txt",
            {"matter": "M-1"},
        )
        assert (doc.event_id, doc.chunk_count, doc.format, doc.pending_chunks) == (
            ids["artifact_event_id"],
            1,
            "text",
            0,
        )
        (chunk,) = doc.chunks
        assert (chunk.chunk_id, chunk.start, chunk.end, chunk.quote_hash) == (
            ids["chunk_id"],
            0,
            len(DOCUMENT),
            quote_hash(DOCUMENT),
        )
        assert [d.long_input_id for d in await e.list_long_inputs(**scope)] == [ids["long_input_id"]]
        check = await e.verify_citation(chunk_id=ids["chunk_id"], quote=CITED, **scope)
        assert check.verified and (check.start, check.end) == (
            DOCUMENT.index(CITED),
            DOCUMENT.index(CITED) + len(CITED),
        )

        # Recall finds the old fact (by words and by its stored vector) and the old document.
        trace = await e.trace_recall("Which airline does the user fly with? Aer Lingus?", **scope)
        assert any(item.ids.get("fact_id") == ids["fact_id"] for item in trace.items)
        assert FACT in trace.context
        fact_runs = {s.name: s.candidates for s in trace.strategies if s.name.startswith("facts_")}
        assert fact_runs.get("facts_keyword", 0) >= 1 and fact_runs.get("facts_vector", 0) >= 1
        trace = await e.trace_recall("how many days of written notice must the tenant give?", **scope)
        assert any(item.ids.get("chunk_id") == ids["chunk_id"] for item in trace.items)

        # The upgraded database keeps working: new rows continue after the old ones.
        turn = await e.record_turn(
            task_id, user_message="And book a window seat.", assistant_response="Will do.", **scope
        )
        assert min(turn.event_ids) > ids["artifact_event_id"]
        assert turn.turn_count == 2
        fresh = await e.add("The user likes window seats", **scope)
        assert fresh.fact_id > ids["fact_id"]

    conn = await asyncpg.connect(scratch_dsn, statement_cache_size=0)
    try:
        versions = [
            r["version"] for r in await conn.fetch("SELECT version FROM engram_migrations ORDER BY 1")
        ]
        assert versions == [m.version for m in migration_runner.available_migrations()]
    finally:
        await conn.close()
