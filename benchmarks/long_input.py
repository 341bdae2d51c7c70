"""Long-input ingest throughput and context-build latency.  Prints figures; asserts nothing.

Two generated documents are ingested into a fresh database: a 50-page contract-like
text and a book-length (~1 MB) Markdown text with chapters.  Ingest time covers
everything a document costs before it is fully searchable: validation, chunking,
the storing transaction, and embedding every chunk with ``embed_pending_chunks``
(what a memory worker runs).  A page is 3,000 characters.  Then
``build_long_input_context`` (hybrid: keyword + vector) and ``verify_citation``
latencies are measured over distinct generated queries, so the query-embedding
cache never helps.

    python benchmarks/long_input.py [--embedder sentence-transformers] [--pages 50]
        [--book-chars 1000000] [--queries 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid

from _common import benchmark_database, summary

from engram import Engram

PAGE_CHARS = 3_000
_WORDS = (
    "the lessee lessor shall pay rent monthly notice agreement party parties warranty liability indemnify "
    "premises landlord tenant repair insurance schedule annex obligation period deposit consent assignment "
    "termination breach remedy arbitration jurisdiction confidential information supplier client invoice "
    "services delivery acceptance default interest damages force majeure amendment waiver severability "
    "river morning letter garden silence window captain harbour village winter candle journey memory"
)
VOCABULARY = _WORDS.split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(8, 24))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), f"({rng.randint(1, 99)})")
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))


def contract(pages: int, seed: int = 1) -> str:
    """A plain-text contract of about ``pages`` pages with numbered clauses."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    clause = 0
    while size < pages * PAGE_CHARS:
        clause += 1
        para = f"{clause}. {_paragraph(rng)}"
        parts.append(para)
        size += len(para) + 2
    return "\n\n".join(parts)


def book(chars: int, seed: int = 2) -> str:
    """A Markdown book of about ``chars`` characters: chapters, sections and prose."""
    rng = random.Random(seed)
    parts: list[str] = ["# The Generated Book"]
    size = 0
    chapter = 0
    while size < chars:
        chapter += 1
        parts.append(f"## Chapter {chapter}")
        for section in range(1, rng.randint(3, 6)):
            parts.append(f"### Section {chapter}.{section}")
            for _ in range(rng.randint(3, 8)):
                para = _paragraph(rng)
                parts.append(para)
                size += len(para) + 2
    return "\n\n".join(parts)


async def ingest(engram: Engram, name: str, text: str, scope: dict[str, str]) -> str:
    pages = len(text) / PAGE_CHARS
    t0 = time.perf_counter()
    record = await engram.record_long_input(f"bench-{uuid.uuid4().hex[:8]}", text, title=name, **scope)
    t1 = time.perf_counter()
    embedded = await engram.embed_pending_chunks(long_input_id=record.long_input_id, **scope)
    t2 = time.perf_counter()
    total = t2 - t1 + (t1 - t0)
    print(
        f"{name}: {len(text):,} chars = {pages:.0f} pages, {record.chunk_count} chunks ({record.format})\n"
        f"  store (validate + chunk + transaction): {t1 - t0:.2f} s   embed {embedded} chunks: {t2 - t1:.2f} s "
        f"({embedded / (t2 - t1):.0f} chunks/s)\n"
        f"  ingest throughput incl. embedding: {pages / total:.1f} pages/s "
        f"(store only: {pages / (t1 - t0):.0f} pages/s)"
    )
    return record.long_input_id


async def main(args: argparse.Namespace) -> None:
    with benchmark_database() as dsn:
        async with Engram(dsn, memory_policy="default", embedder=args.embedder) as engram:
            t0 = time.perf_counter()
            await engram.get_embedder().embed(["warm up the model"])
            print(f"embedder {engram.get_embedder().name}: loaded in {time.perf_counter() - t0:.2f} s")
            scope = {"user_id": f"bench-{uuid.uuid4().hex[:8]}", "agent_id": "bench"}
            chunking = engram.policy.chunking
            print(f"chunking: max_tokens={chunking.max_tokens} overlap_tokens={chunking.overlap_tokens}\n")
            contract_text = contract(args.pages)
            await ingest(engram, f"{args.pages}-page contract", contract_text, scope)
            await ingest(engram, "book", book(args.book_chars), scope)

            rng = random.Random(3)
            queries = [
                f"what does the agreement say about {rng.choice(VOCABULARY)} and {rng.choice(VOCABULARY)} "
                f"{rng.choice(VOCABULARY)} (query {i})"
                for i in range(args.queries)
            ]
            timings: list[float] = []
            used_vectors = 0
            contexts = []
            for query in queries:
                t = time.perf_counter()
                ctx = await engram.build_long_input_context(query, **scope)
                timings.append((time.perf_counter() - t) * 1000)
                used_vectors += ctx.used_vectors
                contexts.append(ctx)
            print(f"\nbuild_long_input_context (8 chunks, 2,000 tokens, hybrid): {summary(timings)}")
            print(f"  vectors used in {used_vectors}/{len(queries)} builds")

            checks: list[float] = []
            verified = 0
            for ctx in contexts:
                if not ctx.chunks:
                    continue
                best = ctx.chunks[0]
                quote = best.text[len(best.text) // 3 : len(best.text) // 3 + 80]
                t = time.perf_counter()
                check = await engram.verify_citation(
                    chunk_id=best.chunk_id, quote=quote, quote_hash=best.quote_hash, **scope
                )
                checks.append((time.perf_counter() - t) * 1000)
                verified += check.verified
            print(f"verify_citation (quote in chunk): {summary(checks)}; verified {verified}/{len(checks)}")

            misses: list[float] = []
            for ctx in contexts[:20]:
                if not ctx.chunks:
                    continue
                quote = contract_text[PAGE_CHARS * 10 : PAGE_CHARS * 10 + 80]
                t = time.perf_counter()
                await engram.verify_citation(chunk_id=ctx.chunks[-1].chunk_id, quote=quote, **scope)
                misses.append((time.perf_counter() - t) * 1000)
            print(f"verify_citation (quote elsewhere: document-wide search): {summary(misses)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="sentence-transformers")
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--book-chars", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
