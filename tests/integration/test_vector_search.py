"""Filtered vector search stays correct when tenants differ wildly in size.

pgvector filters after the HNSW scan, so a naive filtered query for one tenant
can return far fewer than k rows.  Engram searches small scopes exactly and
large ones with iterative HNSW scans; this test compares both with a brute-force
exact answer computed in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import numpy as np

from engram import Engram
from engram.embeddings.space import vector_literal
from engram.search.vector import nearest

DIM = 32
# The production threshold is 10,000 rows; a lower one keeps the test quick while
# exercising the same two paths.
EXACT_MAX = 400


class RandomEmbedder:
    name = "test-random"
    dimension = DIM

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[0.0] * DIM for _ in texts]

    async def embed_query(self, text: str) -> list[float]:
        return [0.0] * DIM


def _clustered(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    picks = centers[rng.integers(0, len(centers), n)]
    vecs = picks + 0.35 * rng.standard_normal((n, DIM))
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


async def test_filtered_search_matches_exact_for_large_and_small_tenants(scratch_dsn: str) -> None:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((40, DIM))
    big = 3_000
    tenants: dict[str, np.ndarray] = {
        "big-a": _clustered(rng, big, centers),
        "big-b": _clustered(rng, big, centers),
        **{f"small-{i}": _clustered(rng, 30, centers) for i in range(40)},
    }
    async with Engram(scratch_dsn, embedder=RandomEmbedder()) as client:
        space = client.embedding_space
        conn: asyncpg.Connection
        async with client._rt.connection() as conn:
            for user, vecs in tenants.items():
                await conn.executemany(
                    "INSERT INTO facts (user_id, agent_id, content, embedding, embedding_space) "
                    "VALUES ($1, 'a', $2, $3::text::vector, $4)",
                    [(user, f"{user} fact {i}", vector_literal(v), space.name) for i, v in enumerate(vecs)],
                )
            await conn.execute("ANALYZE facts")
            ids: dict[str, np.ndarray] = {}
            for user in tenants:
                rows = await conn.fetch("SELECT fact_id FROM facts WHERE user_id = $1 ORDER BY fact_id", user)
                ids[user] = np.array([r["fact_id"] for r in rows])

            recalls: dict[str, list[float]] = {}
            for user, vecs in tenants.items():
                for q in _clustered(rng, 10 if user.startswith("big") else 3, centers):
                    exact = set(ids[user][np.argsort(-(vecs @ q))[:10]].tolist())
                    got = await nearest(
                        conn,
                        table="facts",
                        id_column="fact_id",
                        user_id=user,
                        agent_id="a",
                        space=space,
                        embedding=q.tolist(),
                        k=10,
                        exact_max_rows=EXACT_MAX,
                    )
                    assert len(got) == 10, f"{user}: only {len(got)} of 10 rows came back"
                    assert {fid for fid, _ in got} <= set(ids[user].tolist()), "another tenant's row leaked"
                    sims = [s for _, s in got]
                    assert sims == sorted(sims, reverse=True)
                    recalls.setdefault(user, []).append(len(exact & {fid for fid, _ in got}) / 10)

            # Small tenants are searched exactly: identical to brute force.
            assert all(r == 1.0 for u, rs in recalls.items() if u.startswith("small") for r in rs)
            # Large tenants go through HNSW with iterative scans: approximate, but
            # never the collapsed result of post-filtering.
            for user in ("big-a", "big-b"):
                assert np.mean(recalls[user]) >= 0.95, recalls[user]

            # The naive query (plain HNSW + WHERE, no iterative scan) is what we avoid.
            async with conn.transaction():
                await conn.execute("SET LOCAL hnsw.iterative_scan = off")
                await conn.execute("SET LOCAL enable_sort = off")  # force the HNSW ordering
                q = vector_literal(tenants["small-3"][0].tolist())
                naive = await conn.fetch(
                    f"SELECT fact_id FROM facts WHERE embedding_space = {space.literal} AND user_id = 'small-3' "
                    f"AND agent_id = 'a' ORDER BY {space.vector_sql()} <=> $1::text::halfvec({DIM}) LIMIT 10",
                    q,
                )
            assert len(naive) < 10
