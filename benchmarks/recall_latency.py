"""Recall latency at 10k / 100k / 1M facts over 10 / 1k / 10k tenants, with exact scan as the floor.

For every size the ``facts`` table is emptied and bulk-loaded with generated facts
(text from a pool of template sentences embedded once with all-MiniLM-L6-v2;
each row's vector is its pool vector plus noise, renormalised).  Tenant sizes are
skewed: at 100k and 1M a few large tenants sit above ``EXACT_SEARCH_MAX_ROWS`` (HNSW
path) and many small ones below it (exact path); rows of all tenants are
interleaved on disk, as they would be after months of traffic.  Secondary indexes
are dropped for the load and rebuilt after it (the partial HNSW index last), then
the table and its indexes are pre-warmed: we measure a warm steady state.

Per search path, the same (tenant, query) list is timed (client-side wall clock,
one request at a time) for:

- ``exact SQL (floor)``: the raw ``ORDER BY embedding <=> q LIMIT k`` over the
  scope, planned for its actual parameters (custom plans);
- ``nearest()``: :func:`engram.search.vector.nearest` as the facts strategy calls it,
  on a connection with default settings and asyncpg's statement cache, as the
  client pool uses (with recall@k against the floor's result);
- ``recall excl. emb.``: ``trace_recall`` through the whole pipeline (every
  strategy of the default policy) with a stand-in embedder that returns
  precomputed MiniLM vectors of the queries;
- ``recall incl. emb.``: the same with the real local MiniLM embedder (query
  cache cleared before every call, so each recall embeds its query);
- ``..., custom plans``: ``nearest()`` and the excl.-embedding recall again on
  connections with ``plan_cache_mode = force_custom_plan``, which shows what
  PostgreSQL's generic plans for prepared statements cost (a generic plan cannot
  see the tenant's size and re-parses the query vector text for every row).

Each mode gets a time budget (``--budget``), so a pathological mode is sampled
with fewer queries (at least 20) rather than stalling the run.

Targets (2 cores): <= 10 ms p50 / 25 ms p95 excluding embedding at 100k facts over
1k tenants; p95 <= 50 ms at 1M facts over 10k tenants.  Prints figures; asserts nothing.

    python benchmarks/recall_latency.py [--sizes 10k/10,100k/1k,1M/10k] [--no-1m]
        [--queries 200] [--budget 60] [--pool 10000] [--shared-buffers 6GB]

The 1M size took about 9 minutes to load and index on 2 shared cores (HNSW build
most of it), plus the measuring; ``--no-1m`` skips it.  With ENGRAM_DATABASE_URL set, the
benchmark refuses to empty a ``facts`` table holding rows it did not write
(``--force`` overrides).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
from _common import benchmark_database, percentile, restart_embedded

from engram import Engram
from engram.embeddings.space import EmbeddingSpace, vector_literal
from engram.search.vector import EXACT_SEARCH_MAX_ROWS, nearest

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
SPACE = EmbeddingSpace(MODEL_NAME, DIMENSION)
TENANT_PREFIX = "lat-"
AGENT = "assistant"
NOISE = 0.35  # cosine(row, its pool sentence) ~ 0.94
CHUNK = 50_000

# --------------------------------------------------------------------------- text


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


NAMES = _words(
    "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert Sybil Trent "
    "Victor Walter Yusuf Zoe Amara Bilal Chen Dmitri Esme Farah Goran Hana Ines Jonas Kenji Lena Mateo "
    "Nadia Omar Priya Quentin Rosa Sven Tariq Uma Vera Wen Ximena Yara Zeno"
)
CITIES = _words(
    "Lisbon Porto Berlin Munich Oslo Kyoto Osaka Lima Quito Nairobi Accra Cairo Denver Austin Boston "
    "Seattle Toronto Montreal Dublin Cork Krakow Prague Vienna Zurich Geneva Milan Turin Seville Valencia "
    "Bilbao Hanoi Manila Jakarta Perth Hobart Auckland"
)
DRINKS = _words(
    "green tea|black coffee|oat milk latte|espresso|chai|matcha|hot chocolate|sparkling water", "|"
)
FOODS = _words("peanuts|shellfish|gluten|lactose|eggs|soy|sesame|kiwi|penicillin|cat dander", "|")
HOBBIES = _words(
    "bouldering|trail running|sourdough baking|chess|birdwatching|woodworking|salsa dancing|"
    "watercolour painting|sailing|cycling|pottery|astronomy|gardening|fly fishing",
    "|",
)
JOBS = _words(
    "data engineer|nurse|architect|teacher|product manager|lawyer|chef|pilot|pharmacist|designer", "|"
)
COMPANIES = _words("Acme|Globex|Initech|Umbrella|Hooli|Vandelay|Stark Labs|Wayne Foods|Soylent|Tyrell", "|")
TECH = _words("PostgreSQL|Kafka|Redis|Kubernetes|Terraform|Django|FastAPI|Spark|Airflow|Rust|Go", "|")
CLOUDS = _words("AWS|GCP|Azure|Hetzner|a bare-metal rack|Fly.io", "|")
PROJECTS = _words("billing|search|onboarding|analytics|mobile app|payments|inventory|notifications", "|")
TOPICS = _words(
    "the Q3 budget|hiring|the roadmap|the migration|the audit|pricing|the launch|vendor contracts", "|"
)
PETS = _words("dog|cat|parrot|rabbit|tortoise|hamster", "|")
RELATIONS = _words("sister|brother|mother|father|cousin|best friend|daughter|son", "|")
MONTHS = _words("January February March April May June July August September October November December")
DAYS = _words("Monday Tuesday Wednesday Thursday Friday")
ISSUES = _words(
    "a login timeout|a failed refund|a missing invoice|slow exports|a broken webhook|duplicate emails", "|"
)
COMPONENTS = _words(
    "the API gateway|the checkout page|the mobile client|the admin console|the sync worker", "|"
)


def _ticket(r: random.Random) -> str:
    return f"{r.choice(['ENG', 'OPS', 'SUP', 'FIN'])}-{r.randint(100, 9999)}"


FACT_TEMPLATES = (
    lambda r: (
        f"{r.choice(NAMES)} prefers {r.choice(DRINKS)} in the {r.choice(['morning', 'afternoon', 'evening'])}."
    ),
    lambda r: f"{r.choice(NAMES)}'s {r.choice(RELATIONS)} lives in {r.choice(CITIES)}.",
    lambda r: f"{r.choice(NAMES)} is allergic to {r.choice(FOODS)}.",
    lambda r: f"The {r.choice(PROJECTS)} service runs {r.choice(TECH)} on {r.choice(CLOUDS)}.",
    lambda r: (
        f"{r.choice(NAMES)} works as a {r.choice(JOBS)} at {r.choice(COMPANIES)} since {r.randint(2005, 2025)}."
    ),
    lambda r: f"{r.choice(NAMES)} plans a trip to {r.choice(CITIES)} in {r.choice(MONTHS)}.",
    lambda r: f"Ticket {_ticket(r)} was about {r.choice(ISSUES)} in {r.choice(COMPONENTS)}.",
    lambda r: f"{r.choice(NAMES)} enjoys {r.choice(HOBBIES)} on weekends.",
    lambda r: f"{r.choice(NAMES)} has a {r.choice(PETS)} named {r.choice(NAMES)}.",
    lambda r: f"The meeting with {r.choice(NAMES)} about {r.choice(TOPICS)} moved to {r.choice(DAYS)}.",
    lambda r: f"{r.choice(NAMES)} wants weekly reports on {r.choice(PROJECTS)} sent every {r.choice(DAYS)}.",
    lambda r: (
        f"The user's deploy of {r.choice(PROJECTS)} to {r.choice(CLOUDS)} failed because of {r.choice(TECH)}."
    ),
)
QUERY_TEMPLATES = (
    lambda r: f"What does {r.choice(NAMES)} like to drink in the {r.choice(['morning', 'evening'])}?",
    lambda r: f"Where does {r.choice(NAMES)}'s {r.choice(RELATIONS)} live?",
    lambda r: f"Is {r.choice(NAMES)} allergic to anything?",
    lambda r: f"Which cloud does the {r.choice(PROJECTS)} service run on?",
    lambda r: f"Where does {r.choice(NAMES)} work these days?",
    lambda r: f"When is the trip to {r.choice(CITIES)}?",
    lambda r: f"What was ticket {_ticket(r)} about?",
    lambda r: f"What hobbies does {r.choice(NAMES)} have?",
    lambda r: f"Does {r.choice(NAMES)} have any pets?",
    lambda r: f"When is the meeting about {r.choice(TOPICS)}?",
    lambda r: f"Why did the {r.choice(PROJECTS)} deploy fail?",
    lambda r: f"Which {r.choice(TECH)} issues did we hit on {r.choice(CLOUDS)}?",
)


def sentences(templates: Sequence[Any], n: int, seed: int) -> list[str]:
    r = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out[r.choice(templates)(r)] = None
    return list(out)


class PrecomputedEmbedder:
    """Stands in for MiniLM (same name and dimension, so the same embedding space)
    and returns vectors computed beforehand: recall latency without the model."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.name = MODEL_NAME
        self.dimension = DIMENSION
        self._vectors = vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vectors[t] for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self._vectors[text]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Size:
    label: str
    facts: int
    tenants: int


def parse_size(text: str) -> Size:
    def number(s: str) -> int:
        s = s.strip().lower()
        mult = {"k": 1_000, "m": 1_000_000}.get(s[-1:], 1)
        return int(float(s[:-1] if mult > 1 else s) * mult)

    facts, _, tenants = text.partition("/")
    if not tenants:
        raise argparse.ArgumentTypeError(f"size {text!r} must be FACTS/TENANTS, e.g. 100k/1k")
    return Size(text.strip(), number(facts), number(tenants))


def tenant_sizes(size: Size, rng: np.random.Generator) -> list[int]:
    """Skewed sizes: from 100k facts on, a few tenants above the exact-search
    threshold hold ~35% of rows; the rest are log-normal and below it."""
    large: list[int] = []
    if size.facts >= 50_000 and size.tenants >= 10:
        n_large = max(2, size.tenants // 1000)
        share = int(size.facts * 0.35)
        weights = 1 / np.arange(1, n_large + 1)
        large = [max(int(EXACT_SEARCH_MAX_ROWS * 1.2), int(share * w / weights.sum())) for w in weights]
    n_small = size.tenants - len(large)
    remaining = size.facts - sum(large)
    raw = rng.lognormal(0.0, 1.0, n_small)
    small = np.maximum(1, np.floor(raw / raw.sum() * remaining)).astype(int)
    small = np.minimum(small, int(EXACT_SEARCH_MAX_ROWS * 0.8))
    deficit = remaining - int(small.sum())
    order = np.argsort(-small)
    i = 0
    while deficit != 0:  # spread the rounding error, keeping every tenant >= 1 row and below the threshold
        j = order[i % n_small]
        step = 1 if deficit > 0 else -1
        if 1 <= small[j] + step <= EXACT_SEARCH_MAX_ROWS * 0.8:
            small[j] += step
            deficit -= step
        i += 1
    return large + small.tolist()


def user_of(tenant: int) -> str:
    return f"{TENANT_PREFIX}{tenant:05d}"


def vector_bytes(vectors: np.ndarray) -> list[bytes]:
    """pgvector's binary wire format: int16 dim, int16 unused, float4 big-endian."""
    header = struct.pack(">HH", vectors.shape[1], 0)
    big = vectors.astype(">f4")
    return [header + row.tobytes() for row in big]


@dataclass
class LoadStats:
    rows: int = 0
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.steps.values())


async def load(
    conn: asyncpg.Connection,
    size: Size,
    sizes: list[int],
    pool_texts: list[str],
    pool_vectors: np.ndarray,
    *,
    force: bool,
    seed: int,
) -> LoadStats:
    stats = LoadStats()
    foreign = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM facts WHERE user_id NOT LIKE $1)", TENANT_PREFIX + "%"
    )
    if foreign and not force:
        raise SystemExit(
            "the facts table holds rows this benchmark did not write; refusing to empty it (--force)"
        )
    t0 = time.perf_counter()
    await conn.execute("TRUNCATE facts, fact_sources")
    pk = await conn.fetchval(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'facts'::regclass AND contype = 'p'"
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'facts' "
        "AND indexname <> $1",
        pk,
    )
    for ix in indexes:
        await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
    hnsw = [
        ix
        for ix in indexes
        if " USING hnsw " in ix["indexdef"] and SPACE.index_name("facts") == ix["indexname"]
    ]
    if not hnsw:
        raise SystemExit(f"expected the space's HNSW index {SPACE.index_name('facts')} (created at connect)")
    stats.steps["truncate + drop indexes"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(owner)  # interleave tenants on disk
    now = datetime.now(UTC)
    await conn.execute("SET synchronous_commit = off")
    for start in range(0, len(owner), CHUNK):
        tenants = owner[start : start + CHUNK]
        n = len(tenants)
        picks = rng.integers(0, len(pool_texts), n)
        vecs = pool_vectors[picks] + rng.standard_normal((n, DIMENSION), dtype=np.float32) * (
            NOISE / np.sqrt(DIMENSION)
        )
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ages = rng.integers(0, 365 * 24 * 3600, n)
        records = [
            (
                user_of(int(t)),
                AGENT,
                pool_texts[int(p)],
                0.8,
                v,
                SPACE.name,
                created,
                created,
            )
            for t, p, v, created in zip(
                tenants,
                picks,
                vector_bytes(vecs),
                (now - timedelta(seconds=int(a)) for a in ages),
                strict=True,
            )
        ]
        await conn.copy_records_to_table(
            "facts",
            records=records,
            columns=[
                "user_id",
                "agent_id",
                "content",
                "confidence",
                "embedding",
                "embedding_space",
                "created_at",
                "valid_from",
            ],
        )
        stats.rows += n
    stats.steps["COPY rows"] = time.perf_counter() - t0

    await conn.execute("SET maintenance_work_mem = '2GB'")
    await conn.execute("SET max_parallel_maintenance_workers = 1")
    t0 = time.perf_counter()
    for ix in indexes:
        if ix not in hnsw:
            await conn.execute(ix["indexdef"])
    stats.steps["btree + GIN indexes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '8GB'")  # keep the whole graph in memory
    for ix in hnsw:
        await conn.execute(ix["indexdef"])
    stats.steps["HNSW index"] = time.perf_counter() - t0
    await conn.execute("RESET maintenance_work_mem")
    t0 = time.perf_counter()
    await conn.execute("VACUUM (ANALYZE) facts")
    stats.steps["VACUUM ANALYZE"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    for rel in ["facts", *(ix["indexname"] for ix in indexes), pk]:
        await conn.execute("SELECT pg_prewarm($1::regclass)", rel)
    await conn.execute(
        "SELECT pg_prewarm(reltoastrelid) FROM pg_class WHERE oid = 'facts'::regclass AND reltoastrelid <> 0"
    )
    stats.steps["prewarm"] = time.perf_counter() - t0
    return stats


# --------------------------------------------------------------------------- measuring


EXACT_SQL = """
SELECT fact_id, embedding <=> $3::text::vector AS dist FROM facts
WHERE user_id = $1 AND agent_id = $2 AND embedding_space = $4 AND status = 'active'
ORDER BY dist LIMIT $5
"""


@dataclass
class PathResult:
    path: str
    tenants: int
    rows_per_tenant: str
    ms: dict[str, list[float]] = field(default_factory=dict)
    recall_at_k: dict[str, list[float]] = field(default_factory=dict)
    embedding_ms: list[float] = field(default_factory=list)
    strategy_ms: dict[str, dict[str, list[float]]] = field(default_factory=dict)


FLOOR = "exact SQL (floor)"
NEAREST = "nearest()"
NEAREST_CUSTOM = "nearest(), custom plans"
EXCL = "recall excl. emb."
EXCL_CUSTOM = "recall excl. emb., custom plans"
INCL = "recall incl. emb."
MODES = (FLOOR, NEAREST, NEAREST_CUSTOM, EXCL, EXCL_CUSTOM, INCL)


@dataclass
class Clients:
    shipped: asyncpg.Connection  # default session settings, statement cache on (as the pool's)
    custom: asyncpg.Connection  # plan_cache_mode = force_custom_plan
    fast: Engram  # precomputed query vectors
    fast_custom: Engram  # the same, its pool with plan_cache_mode = force_custom_plan
    real: Engram  # the MiniLM model


async def measure_path(
    path: str,
    work: list[tuple[int, str]],
    sizes: list[int],
    clients: Clients,
    query_vectors: dict[str, list[float]],
    *,
    k: int,
    warmup: int,
    budget_s: float,
) -> PathResult:
    chosen = sorted({t for t, _ in work})
    spread = [sizes[t] for t in chosen]
    result = PathResult(path, len(chosen), f"{min(spread):,}-{max(spread):,}")

    async def exact(t: int, q: str) -> list[int]:
        rows = await clients.custom.fetch(
            EXACT_SQL, user_of(t), AGENT, vector_literal(query_vectors[q]), SPACE.name, k
        )
        return [r["fact_id"] for r in rows]

    async def near(conn: asyncpg.Connection, t: int, q: str) -> list[int]:
        hits = await nearest(
            conn,
            table="facts",
            id_column="fact_id",
            user_id=user_of(t),
            agent_id=AGENT,
            space=SPACE,
            embedding=query_vectors[q],
            k=k,
            extra_filter="status = 'active'",
        )
        return [h[0] for h in hits]

    async def recall_with(client: Engram, t: int, q: str) -> Any:
        client._rt.query_cache.clear()  # every recall embeds its query (no LRU hits)
        return await client.trace_recall(q, agent_id=AGENT, user_id=user_of(t))

    modes: dict[str, Any] = {
        FLOOR: exact,
        NEAREST: lambda t, q: near(clients.shipped, t, q),
        NEAREST_CUSTOM: lambda t, q: near(clients.custom, t, q),
        EXCL: lambda t, q: recall_with(clients.fast, t, q),
        EXCL_CUSTOM: lambda t, q: recall_with(clients.fast_custom, t, q),
        INCL: lambda t, q: recall_with(clients.real, t, q),
    }
    truth: list[set[int]] = []
    for name, fn in modes.items():
        deadline = time.perf_counter() + budget_s
        # Warm-up also lets PostgreSQL's plan cache settle (it may switch a
        # prepared statement to a generic plan after five executions).
        for t, q in work[-warmup:]:
            await fn(t, q)
        timings = []
        for i, (t, q) in enumerate(work):
            if i >= 20 and time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            out = await fn(t, q)
            timings.append((time.perf_counter() - t0) * 1000)
            if name == FLOOR:
                truth.append(set(out))
            elif name in (NEAREST, NEAREST_CUSTOM):
                result.recall_at_k.setdefault(name, []).append(
                    len(truth[i] & set(out)) / max(1, len(truth[i]))
                )
            elif name in (EXCL, EXCL_CUSTOM):
                for run in out.strategies:
                    result.strategy_ms.setdefault(name, {}).setdefault(run.name, []).append(run.ms)
            else:
                result.embedding_ms.append(out.embedding_ms)
        result.ms[name] = timings
    return result


def pick_work(
    sizes: list[int], queries: list[str], n: int, rng: random.Random
) -> dict[str, list[tuple[int, str]]]:
    small = [t for t, s in enumerate(sizes) if s <= EXACT_SEARCH_MAX_ROWS]
    large = [t for t, s in enumerate(sizes) if s > EXACT_SEARCH_MAX_ROWS]
    work = {}
    if small:
        work["exact"] = [(rng.choice(small), rng.choice(queries)) for _ in range(n)]
    if large:
        work["hnsw"] = [(large[i % len(large)], rng.choice(queries)) for i in range(n)]
    return work


# --------------------------------------------------------------------------- output


def print_results(size: Size, stats: LoadStats, results: list[PathResult]) -> None:
    print(f"\n=== {size.facts:,} facts over {size.tenants:,} tenants ({size.label}) ===")
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in stats.steps.items())
    print(f"load: {stats.rows:,} rows in {stats.total:.1f}s ({steps})")
    header = f"{'path':<6} {'tenants':>7} {'rows/tenant':>15}  {'mode':<32} {'p50 ms':>8} {'p95 ms':>8} {'n':>5} {'R@k':>6}"
    print(header)
    print("-" * len(header))
    for r in results:
        for i, mode in enumerate(m for m in MODES if m in r.ms):
            values = r.ms[mode]
            rk = r.recall_at_k.get(mode)
            lead = f"{r.path:<6} {r.tenants:>7} {r.rows_per_tenant:>15}" if i == 0 else " " * 30
            print(
                f"{lead}  {mode:<32} {percentile(values, 50):8.2f} {percentile(values, 95):8.2f} {len(values):5d} "
                f"{statistics.fmean(rk) if rk else float('nan'):6.3f}"
            )
        print(f"{'':30}  {'(query embedding alone, p50)':<32} {percentile(r.embedding_ms, 50):8.2f}")
    for r in results:
        for mode, runs in r.strategy_ms.items():
            parts = ", ".join(f"{n} {percentile(v, 50):.2f}/{percentile(v, 95):.2f}" for n, v in runs.items())
            print(f"  {r.path}, {mode}, per strategy p50/p95 ms: {parts}")
    for r in results:
        for mode in (EXCL, EXCL_CUSTOM):
            v = r.ms.get(mode)
            if not v:
                continue
            p50, p95 = percentile(v, 50), percentile(v, 95)
            if (size.facts, size.tenants) == (100_000, 1_000):
                ok = p50 <= 10 and p95 <= 25
                print(
                    f"  target <= 10 ms p50 / 25 ms p95 ({r.path} path, {mode}): "
                    f"{p50:.2f} / {p95:.2f} -> {'met' if ok else 'MISSED'}"
                )
            if (size.facts, size.tenants) == (1_000_000, 10_000):
                print(
                    f"  target p95 <= 50 ms ({r.path} path, {mode}): {p95:.2f} -> {'met' if p95 <= 50 else 'MISSED'}"
                )


# --------------------------------------------------------------------------- main


async def tune_server(dsn: str, shared_buffers: str | None) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        restart = False
        if shared_buffers and await conn.fetchval("SHOW shared_buffers") != shared_buffers:
            await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            restart = True
        await conn.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
        await conn.execute("ALTER SYSTEM SET checkpoint_timeout = '30min'")
        await conn.execute("SELECT pg_reload_conf()")
        data_dir = await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()
    if restart:
        restart_embedded(data_dir)
    conn = await asyncpg.connect(dsn)
    try:
        shown = [
            f"{s}={await conn.fetchval(f'SHOW {s}')}"
            for s in ("server_version", "shared_buffers", "work_mem", "jit", "effective_cache_size")
        ]
    finally:
        await conn.close()
    return ", ".join(shown)


async def main(args: argparse.Namespace) -> None:
    sizes_wanted: list[Size] = args.sizes
    if args.no_1m:
        sizes_wanted = [s for s in sizes_wanted if s.facts < 1_000_000]
    t_start = time.perf_counter()
    with benchmark_database() as dsn:
        import os

        embedded = not os.environ.get("ENGRAM_DATABASE_URL")
        settings = await tune_server(dsn, args.shared_buffers if embedded else None)
        print(f"server: {settings}{'' if embedded else ' (ENGRAM_DATABASE_URL: not tuned)'}")

        real = Engram(dsn, embedder="sentence-transformers", memory_policy=args.policy)
        await real.connect()
        embedder = real.get_embedder()
        t0 = time.perf_counter()
        pool_texts = sentences(FACT_TEMPLATES, args.pool, seed=1)
        query_texts = sentences(QUERY_TEMPLATES, args.distinct_queries, seed=2)
        vectors = await embedder.embed(pool_texts + query_texts)
        pool_vectors = np.asarray(vectors[: len(pool_texts)], dtype=np.float32)
        query_vectors = dict(zip(query_texts, vectors[len(pool_texts) :], strict=True))
        print(
            f"embedded {len(pool_texts):,} fact sentences + {len(query_texts):,} queries with MiniLM "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        custom_dsn = dsn + ("&" if "?" in dsn else "?") + "plan_cache_mode=force_custom_plan"
        fast = Engram(dsn, embedder=PrecomputedEmbedder(query_vectors), memory_policy=args.policy)
        fast_custom = Engram(
            custom_dsn, embedder=PrecomputedEmbedder(query_vectors), memory_policy=args.policy
        )
        await fast.connect()
        await fast_custom.connect()
        k = max(10, real.policy.recall.default_limit * 2)  # what the facts strategy asks nearest() for
        print(
            f"policy {real.policy.name!r}, k={k}, exact search up to {EXACT_SEARCH_MAX_ROWS:,} rows per scope; "
            f"up to {args.queries} timed queries per path and mode (at least 20, at most ~{args.budget:.0f}s), "
            f"after {args.warmup} warm-up queries"
        )

        loader = await asyncpg.connect(dsn)
        schema = await loader.fetchval(
            "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'vector'"
        )
        await loader.set_type_codec(
            "vector", schema=schema, encoder=lambda b: b, decoder=lambda b: b, format="binary"
        )
        clients = Clients(
            shipped=await asyncpg.connect(dsn),
            custom=await asyncpg.connect(custom_dsn),
            fast=fast,
            fast_custom=fast_custom,
            real=real,
        )
        rng = random.Random(args.seed)
        try:
            for size in sizes_wanted:
                sizes = tenant_sizes(size, np.random.default_rng(args.seed))
                stats = await load(
                    loader, size, sizes, pool_texts, pool_vectors, force=args.force, seed=args.seed
                )
                print(f"[{size.label}] loaded in {stats.total:.0f}s; measuring", flush=True)
                results = []
                for path, work in pick_work(sizes, query_texts, args.queries, rng).items():
                    results.append(
                        await measure_path(
                            path,
                            work,
                            sizes,
                            clients,
                            query_vectors,
                            k=k,
                            warmup=args.warmup,
                            budget_s=args.budget,
                        )
                    )
                print_results(size, stats, results)
        finally:
            await clients.shipped.close()
            await clients.custom.close()
            await loader.close()
            await fast.close()
            await fast_custom.close()
            await real.close()
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=lambda s: [parse_size(x) for x in s.split(",") if x.strip()],
        default=[parse_size(x) for x in ("10k/10", "100k/1k", "1M/10k")],
        help="comma-separated FACTS/TENANTS (default 10k/10,100k/1k,1M/10k)",
    )
    parser.add_argument("--no-1m", action="store_true", help="skip sizes of 1M facts or more")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per path and mode")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--budget", type=float, default=60, help="seconds per path and mode (min. 20 queries)"
    )
    parser.add_argument("--pool", type=int, default=10_000, help="fact sentences embedded with MiniLM")
    parser.add_argument("--distinct-queries", type=int, default=1_000)
    parser.add_argument("--policy", default="default")
    parser.add_argument(
        "--shared-buffers", default="6GB", help="embedded server only; 'keep' leaves the server's setting"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--force", action="store_true", help="empty a facts table holding foreign rows")
    ns = parser.parse_args()
    if ns.shared_buffers == "keep":
        ns.shared_buffers = None
    asyncio.run(main(ns))
