"""Recall latency of a normal query against a query of the largest allowed size, same scope.

A query may be up to ``MAX_QUERY_CHARS`` (8,192) characters.  Recall must bound
the work such a query causes (terms searched, candidates, neighbours), so its
cost stays a small multiple of a normal query's.  This script measures that
multiple on one scope:

- 400 events of real length: the turns of LongMemEval-S dev haystacks
  (``../shared/data/longmemeval_s_dev.json.gz``, read at run time, one
  session per task), or generated sentences when the file is missing;
- recorded through ``record_event`` and processed by the memory workers (event
  vectors, facts), with the hashing embedder by default
  (``--embedder sentence-transformers`` for MiniLM);
- then, interleaved, ``trace_recall`` with a normal question (LongMemEval's own
  questions) and with a maximum-size query (8,192 characters of distinct words
  drawn at random from the scope's vocabulary, shortest first: about 1,500).

Prints p50/p95 per kind, the median time spent embedding the query (part of
the total; the strategy that first needs the vector waits for it), their ratio,
and the slowest strategies of each.
Asserts nothing.

    python benchmarks/recall_query_size.py [--events 400] [--repeats 15] [--embedder hashing]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

from _common import benchmark_database, percentile

from engram import Engram
from engram.validation import MAX_QUERY_CHARS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "longmemeval_s_dev.json.gz"
MAX_EVENT_CHARS = 6_000  # LongMemEval replies run to several thousand characters; keep them


def load_turns(n: int, rng: random.Random) -> tuple[list[tuple[str, str, str]], list[str], str]:
    """(task, role, text) for ``n`` turns, normal questions, and where they came from."""
    if DATA.exists():
        with gzip.open(DATA, "rt", encoding="utf-8") as fh:
            data: list[dict[str, Any]] = json.load(fh)
        turns: list[tuple[str, str, str]] = []
        # Distinct questions, so that no normal query hits the query-embedding cache.
        questions = list(dict.fromkeys(q["question"] for q in data))[:40]
        for q in data:
            for sid, session in zip(q["haystack_session_ids"], q["haystack_sessions"], strict=False):
                for turn in session:
                    text = turn["content"].strip()[:MAX_EVENT_CHARS]
                    if text:
                        turns.append((f"lme-{sid}", turn["role"], text))
                if len(turns) >= n:
                    return turns[:n], questions, f"LongMemEval-S dev ({DATA.name})"
        return turns[:n], questions, f"LongMemEval-S dev ({DATA.name}, all of it)"
    words = [
        *("project", "deadline", "budget", "marathon", "recipe", "garden", "flight", "hotel"),
        *("museum", "sister", "invoice", "printer", "kubernetes", "python", "concert", "guitar"),
        *("vaccine", "lease", "mortgage", "bicycle", "laptop", "coffee", "thesis", "camera"),
    ]
    turns = []
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(20, 200)))
        turns.append((f"synthetic-{i // 10}", "user" if i % 2 == 0 else "assistant", f"Turn {i}: {text}."))
    questions = [f"What did I say about the {w} and the {v}?" for w in words for v in words[:2]]
    return turns, questions, "synthetic text (LongMemEval file not found)"


def max_query(vocabulary: list[str], rng: random.Random) -> str:
    """MAX_QUERY_CHARS characters of distinct words drawn from ``vocabulary``,
    shorter ones first so that the query holds as many distinct words as fit
    (about 1,300 with LongMemEval's vocabulary)."""
    words = sorted(rng.sample(vocabulary, len(vocabulary)), key=len)
    out: list[str] = []
    size = 0
    for word in words:
        if size + len(word) + 1 > MAX_QUERY_CHARS:
            break
        out.append(word)
        size += len(word) + 1
    rng.shuffle(out)
    return " ".join(out)


async def drain(engram: Engram) -> int:
    done = 0
    while n := await engram.process_jobs(batch_size=50):
        done += n
    return done


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    turns, questions, source = load_turns(args.events, rng)
    vocabulary = sorted({w for _, _, t in turns for w in re.findall(r"[A-Za-z]{4,}", t)})
    with benchmark_database() as dsn:
        async with Engram(dsn, memory_policy="default", embedder=args.embedder) as engram:
            user_id, agent_id = f"bench-qsize-{rng.randrange(10**9)}", "bench"
            t0 = time.perf_counter()
            for task, role, text in turns:
                await engram.record_event(
                    task, role=role, content=text, enqueue_processing=True, user_id=user_id, agent_id=agent_id
                )
            jobs = await drain(engram)
            tasks = len({t for t, _, _ in turns})
            print(
                f"scope: {len(turns)} events in {tasks} tasks from {source}, "
                f"{sum(len(t) for _, _, t in turns) / len(turns):.0f} chars per event on average; "
                f"{jobs} worker jobs; loaded in {time.perf_counter() - t0:.1f} s; embedder {args.embedder}"
            )
            big = [max_query(vocabulary, rng) for _ in range(args.repeats)]
            print(
                f"max query: {len(big[0])} chars, {len(set(big[0].split()))} distinct words "
                f"(vocabulary {len(vocabulary)})"
            )
            # Warm up (plans, caches, the embedder) before measuring either kind.
            await engram.trace_recall(questions[0], user_id=user_id, agent_id=agent_id)
            await engram.trace_recall(big[0], user_id=user_id, agent_id=agent_id)
            times: dict[str, list[float]] = {"normal": [], "maximum": []}
            slow: dict[str, dict[str, list[float]]] = {"normal": {}, "maximum": {}}
            embedding: dict[str, list[float]] = {"normal": [], "maximum": []}
            for i in range(args.repeats):
                for kind, query in (("normal", questions[(i + 1) % len(questions)]), ("maximum", big[i])):
                    t = time.perf_counter()
                    trace = await engram.trace_recall(query, user_id=user_id, agent_id=agent_id)
                    times[kind].append((time.perf_counter() - t) * 1000)
                    embedding[kind].append(trace.embedding_ms)
                    for run in trace.strategies:
                        slow[kind].setdefault(run.name, []).append(run.ms)
    print()
    print(
        f"{'query':<10}{'p50 ms':>10}{'p95 ms':>10}{'emb. p50':>10}{'n':>5}   slowest strategies (median ms)"
    )
    for kind, values in times.items():
        top = sorted(slow[kind].items(), key=lambda kv: -statistics.median(kv[1]))[:3]
        label = ", ".join(f"{name} {statistics.median(ms):.1f}" for name, ms in top)
        print(
            f"{kind:<10}{percentile(values, 50):>10.1f}{percentile(values, 95):>10.1f}"
            f"{percentile(embedding[kind], 50):>10.1f}{len(values):>5}   {label}"
        )
    ratio50 = percentile(times["maximum"], 50) / percentile(times["normal"], 50)
    ratio95 = percentile(times["maximum"], 95) / percentile(times["normal"], 95)
    print(f"ratio maximum/normal: p50 {ratio50:.2f}x  p95 {ratio95:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--embedder", default="hashing", help="hashing (default) or sentence-transformers (MiniLM)"
    )
    parser.add_argument("--seed", type=int, default=14)
    asyncio.run(main(parser.parse_args()))
