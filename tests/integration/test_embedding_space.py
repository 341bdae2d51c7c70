"""The embedding-dimension guard and re-embedding."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest
from click.testing import CliRunner

from engram import ConfigurationError, Engram
from engram.admin.reembed import pending_counts
from engram.cli import main


class SixteenDims:
    """A second model with another dimension (deterministic, offline)."""

    name = "test-sixteen"
    dimension = 16

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self._vec(text)

    @staticmethod
    def _vec(text: str) -> list[float]:
        v = [float((hash(w) % 7) - 3) for w in (text.lower().split() + ["pad"] * 16)[:16]]
        norm = sum(x * x for x in v) ** 0.5 or 1.0
        return [x / norm for x in v]


async def test_changing_dimension_is_refused_then_reembedded(
    scratch_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = {"user_id": "space-user", "agent_id": "a"}
    async with Engram(scratch_dsn, embedder="hashing") as first:
        await first.add("The user drinks oolong tea", **scope)
        await first.add("The user runs marathons", **scope)
        event = await first.record_event("space-task", role="user", content="hello", **scope)
        async with first._rt.connection() as conn:
            from engram.ledger.store import store_event_vectors

            (vec,) = await first.get_embedder().embed(["hello"])
            await store_event_vectors(
                conn,
                user_id="space-user",
                agent_id="a",
                event_ids=[event.event_id],
                vectors=[vec],
                space_name=first.embedding_space.name,
            )

    with pytest.raises(ConfigurationError) as err:
        await Engram(scratch_dsn, embedder=SixteenDims()).connect()
    assert (
        "384" in str(err.value)
        and "16" in str(err.value)
        and "ENGRAM_ALLOW_EMBEDDING_DIMENSION_CHANGE" in str(err.value)
    )

    monkeypatch.setenv("ENGRAM_ALLOW_EMBEDDING_DIMENSION_CHANGE", "true")
    async with Engram(scratch_dsn, embedder=SixteenDims()) as second:
        # Nothing was dropped: the facts are still there, waiting for new vectors.
        assert len(await second.list_facts(**scope)) == 2
        assert {t: n for t, n in (await pending_counts(second)).items() if n} == {
            "facts": 2,
            "event_vectors": 1,
        }
        from engram.admin.reembed import reembed

        done = await reembed(second, batch_size=1)
        assert done["facts"] == 2 and done["event_vectors"] == 1
        assert set((await pending_counts(second)).values()) == {0}
        trace = await second.trace_recall("marathons", **scope)
        assert "The user runs marathons" in trace.context
        assert any(r.name == "facts_vector" and r.candidates == 2 for r in trace.strategies)
    conn = await asyncpg.connect(scratch_dsn, statement_cache_size=0)
    try:
        dims = await conn.fetch("SELECT DISTINCT vector_dims(embedding) AS d FROM facts")
        assert [r["d"] for r in dims] == [16]
        spaces = await conn.fetch("SELECT space, active FROM embedding_spaces ORDER BY space")
        assert [(r["space"], r["active"]) for r in spaces] == [
            ("hashing-384@384", False),
            ("test-sixteen@16", True),
        ]
    finally:
        await conn.close()


def test_cli_doctor_and_policies(scratch_dsn: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["doctor", "--dsn", scratch_dsn], env={"ENGRAM_EMBEDDER": "hashing"})
    assert result.exit_code == 0, result.output
    assert "extension vector" in result.output and "all checks passed" in result.output
    policies = runner.invoke(main, ["policies"])
    assert policies.exit_code == 0
    for name in ("default", "coding_agent", "legal"):
        assert f"\n{name} " in "\n" + policies.output


def test_cli_doctor_fails_on_a_foreign_embedding_space(scratch_dsn: str) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(main, ["doctor", "--dsn", scratch_dsn], env={"ENGRAM_EMBEDDER": "hashing"}).exit_code
        == 0
    )
    result = runner.invoke(main, ["doctor", "--dsn", scratch_dsn], env={"ENGRAM_EMBEDDER": "nonexistent"})
    assert result.exit_code == 3
    assert "FAIL" in result.output


def test_cli_purge_asks_unless_yes(database_url: str, scope: dict[str, str]) -> None:
    async def seed() -> None:
        async with Engram(database_url, embedder="hashing") as client:
            await client.add("to be purged", **scope)

    asyncio.run(seed())
    runner = CliRunner()
    args = ["purge", "--dsn", database_url, "--user", scope["user_id"]]
    refused = runner.invoke(main, args, input="n\n", env={"ENGRAM_EMBEDDER": "hashing"})
    assert refused.exit_code == 1 and "Aborted" in refused.output
    done = runner.invoke(main, [*args, "--yes"], env={"ENGRAM_EMBEDDER": "hashing"})
    assert done.exit_code == 0, done.output
    assert "purged 1 rows" in done.output and "facts" in done.output


async def test_reembed_gives_a_chunk_the_vector_the_worker_gave_it(
    engram: Engram, scope: dict[str, str]
) -> None:
    """Both embed heading and text, so re-embedding never changes how a chunk ranks."""
    from engram.admin.reembed import reembed

    doc = "# Terms\n\n## Termination\n\nEither party may end this agreement with sixty days' notice.\n"
    record = await engram.record_long_input("t-" + scope["user_id"], doc, embed_inline=True, **scope)
    async with engram._rt.connection() as conn:
        before = await conn.fetch(
            "SELECT chunk_id, embedding::text AS v FROM long_input_chunks WHERE user_id = $1 AND long_input_id = $2",
            scope["user_id"],
            record.long_input_id,
        )
        await conn.execute(
            "UPDATE long_input_chunks SET embedding_space = NULL WHERE user_id = $1", scope["user_id"]
        )
    assert before and all(r["v"] for r in before)
    done = await reembed(engram)
    assert done["long_input_chunks"] >= len(before)
    async with engram._rt.connection() as conn:
        after = {
            r["chunk_id"]: r["v"]
            for r in await conn.fetch(
                "SELECT chunk_id, embedding::text AS v FROM long_input_chunks WHERE user_id = $1",
                scope["user_id"],
            )
        }
    assert {r["chunk_id"]: r["v"] for r in before} == after
