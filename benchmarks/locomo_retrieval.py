"""LoCoMo evidence-turn retrieval through Engram's recall pipeline.

Every turn of the ten LoCoMo conversations is recorded into the ledger of its
conversation's scope (one user/agent per conversation, one task per session,
the turn text carrying speaker and date).  Memory workers then derive facts and
event vectors exactly as in production.  Every question goes through
``trace_recall``; recalled items map back to turns through event metadata and
fact lineage, and we report evidence recall@1/5/10/25 overall and per category,
for the fused pipeline (``ledger_hybrid``), for plain reciprocal-rank fusion of
the keyword and vector lists, and for keyword-only and vector-only runs of the
same pipeline.

The dataset (CC BY-NC 4.0, evaluation only) is read from ../shared/data at run
time and never copied into the repository.

    python benchmarks/locomo_retrieval.py [--data PATH] [--embedder sentence-transformers]
        [--conversations 10] [--questions-per-conversation N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import benchmark_database, percentile

from engram import Engram, MemoryPolicy
from engram.policy import RecallSettings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo10.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
KS = (1, 5, 10, 25)
_DIA = re.compile(r"D(\d+)\s*:\s*(\d+)")


def normalise_evidence(raw: list[Any]) -> list[str]:
    """A few evidence ids are malformed ('D8:6; D9:17', 'D:11:26', lower case); keep what parses."""
    out: list[str] = []
    for item in raw:
        for m in _DIA.finditer(str(item).upper().replace("D:", "D")):
            dia = f"D{int(m.group(1))}:{int(m.group(2))}"
            if dia not in out:
                out.append(dia)
    return out


def turn_text(turn: dict[str, Any], date: str) -> str:
    text = turn.get("text", "")
    if turn.get("blip_caption"):
        text = f"{text} [shares a photo of {turn['blip_caption']}]"
    return f"[{date}] {turn['speaker']}: {text}"


def policy(name: str, weights: dict[str, float]) -> MemoryPolicy:
    # A large budget and limit: we measure ranking, not packing.
    return MemoryPolicy(
        name=name,
        recall=RecallSettings(weights=weights, token_budget=50_000, default_limit=25, recent_turns=0),
    )


# The fused run is the shipped pipeline's conversation ranking (ledger_hybrid with
# the default tuning) plus facts; the other two isolate one signal each.
FUSED = policy(
    "locomo-fused",
    {"ledger_hybrid": 1.0, "facts_vector": 0.3, "facts_keyword": 0.3, "lineage": 0.1},
)
RANK_FUSION = policy(
    "locomo-rrf",
    {"facts_vector": 0.3, "facts_keyword": 0.3, "ledger_search": 1.3, "ledger_vector": 1.0, "lineage": 0.1},
)
KEYWORD = policy("locomo-keyword", {"ledger_search": 1.0, "facts_keyword": 0.5})
VECTOR = policy("locomo-vector", {"ledger_vector": 1.0, "facts_vector": 0.5})


async def index_conversation(engram: Engram, conv: dict[str, Any]) -> tuple[dict[str, Any], dict[int, str]]:
    sample = conv["sample_id"]
    scope = {"user_id": f"locomo-{sample}", "agent_id": "locomo"}
    c = conv["conversation"]
    event_to_dia: dict[int, str] = {}
    n = 1
    while f"session_{n}" in c:
        date = c.get(f"session_{n}_date_time", "")
        for turn in c[f"session_{n}"]:
            event = await engram.record_event(
                f"{sample}-session-{n}",
                role="user",
                content=turn_text(turn, date),
                metadata={"dia_id": turn["dia_id"], "speaker": turn["speaker"], "session_date": date},
                enqueue_processing=True,
                **scope,
            )
            event_to_dia[event.event_id] = turn["dia_id"]
        n += 1
    return scope, event_to_dia


async def drain(engram: Engram) -> int:
    done = 0
    while True:
        n = await engram.process_jobs(batch_size=50)
        if not n:
            return done
        done += n


async def ranked_dia_ids(
    engram: Engram,
    question: str,
    scope: dict[str, str],
    pol: MemoryPolicy,
    event_to_dia: dict[int, str],
    fact_events: dict[int, list[int]],
) -> tuple[list[str], float]:
    trace = await engram.trace_recall(question, limit=25, memory_policy=pol, **scope)
    ranked: list[str] = []
    for item in trace.items:
        event_ids: list[int] = list(item.ids.get("event_ids", []))
        if "fact_id" in item.ids and not event_ids:
            event_ids = fact_events.get(item.ids["fact_id"], [])
        for eid in event_ids:
            dia = event_to_dia.get(eid)
            if dia and dia not in ranked:
                ranked.append(dia)
    return ranked, trace.total_ms


async def fact_lineage(engram: Engram, scope: dict[str, str]) -> dict[int, list[int]]:
    async with engram._rt.connection() as conn:
        rows = await conn.fetch(
            "SELECT fact_id, array_agg(event_id ORDER BY event_id) AS events FROM fact_sources "
            "WHERE user_id = $1 AND agent_id = $2 GROUP BY fact_id",
            scope["user_id"],
            scope["agent_id"],
        )
    return {r["fact_id"]: list(r["events"]) for r in rows}


async def main(args: argparse.Namespace, data: list[dict[str, Any]]) -> None:
    with benchmark_database() as dsn:
        async with Engram(dsn, embedder=args.embedder, extractor="rules", memory_policy=FUSED) as engram:
            t0 = time.perf_counter()
            convs = []
            for conv in data:
                scope, event_to_dia = await index_conversation(engram, conv)
                convs.append((conv, scope, event_to_dia))
            turns = sum(len(c[2]) for c in convs)
            t_record = time.perf_counter() - t0
            jobs = await drain(engram)
            t_index = time.perf_counter() - t0
            print(
                f"indexed {turns} turns of {len(convs)} conversations: recorded in {t_record:.1f} s, "
                f"{jobs} worker jobs, total {t_index:.1f} s ({turns / t_index:.0f} turns/s, embedder {args.embedder})"
            )

            results: dict[str, dict[str, list[float]]] = {}
            latency: dict[str, list[float]] = defaultdict(list)
            for pol in (FUSED, RANK_FUSION, KEYWORD, VECTOR):
                engram._rt.query_cache.clear()  # every run embeds its questions: comparable latency
                per: dict[str, list[float]] = defaultdict(list)
                for conv, scope, event_to_dia in convs:
                    fact_events = await fact_lineage(engram, scope)
                    qa = conv["qa"][: args.questions_per_conversation or None]
                    for q in qa:
                        evidence = normalise_evidence(q.get("evidence", []))
                        if not evidence:
                            continue
                        ranked, ms = await ranked_dia_ids(
                            engram, q["question"], scope, pol, event_to_dia, fact_events
                        )
                        latency[pol.name].append(ms)
                        cat = CATEGORIES.get(q.get("category"), "other")
                        for k in KS:
                            hit = len(set(ranked[:k]) & set(evidence)) / len(evidence)
                            per[f"all@{k}"].append(hit)
                            per[f"{cat}@{k}"].append(hit)
                results[pol.name] = per

    def mean(xs: list[float]) -> str:
        return f"{100 * sum(xs) / len(xs):5.1f}" if xs else "  n/a"

    print("\nEvidence recall@k (%), LoCoMo, " + f"{len(results[FUSED.name]['all@1'])} questions")
    header = f"{'run':<16}{'group':<13}" + "".join(f"{'R@' + str(k):>8}" for k in KS)
    print(header)
    print("-" * len(header))
    for name, per in results.items():
        for group in ["all", *CATEGORIES.values()]:
            n = len(per.get(f"{group}@1", []))
            if not n:
                continue
            print(
                f"{name:<16}{group + f' ({n})':<13}" + "".join(f"{mean(per[f'{group}@{k}']):>8}" for k in KS)
            )
        print()
    print("Reference on this machine class: BM25 R@5 48.6, MiniLM-only 38.2; target R@5 >= 65, R@10 >= 75.")
    for name, ms in latency.items():
        print(f"recall latency {name:<16} p50 {percentile(ms, 50):6.1f} ms  p95 {percentile(ms, 95):6.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--embedder", default="sentence-transformers")
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--questions-per-conversation", type=int, default=0)
    arguments = parser.parse_args()
    dataset = json.loads(Path(arguments.data).read_text())[: arguments.conversations]
    asyncio.run(main(arguments, dataset))
