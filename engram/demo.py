"""``engram demo``: the whole product in one run, on the embedded database, with no keys."""

from __future__ import annotations

import asyncio
import os
import uuid

import click

from .clitools import run_async

CONVERSATION = [
    (
        "session-1",
        "Hi! I'm Dana, a backend engineer. We're building the billing service in the repo acme/billing.",
        "Nice to meet you, Dana. I'll remember the billing repository.",
    ),
    (
        "session-1",
        "I prefer Python type hints everywhere and I hate tabs. Run tests with `pytest -q`.",
        "Understood: typed Python, spaces, and `pytest -q` for the test suite.",
    ),
    (
        "session-1",
        "Let's use PostgreSQL 16 for the invoices table.",
        "Decision noted: invoices live in PostgreSQL 16.",
    ),
    (
        "session-2",
        "I moved to Lisbon last month, so schedule reviews in Lisbon time.",
        "Got it, reviews will use Lisbon time.",
    ),
    (
        "session-2",
        "We decided to retry failed payments three times with exponential backoff.",
        "I'll implement three retries with exponential backoff.",
    ),
]

DOCUMENT = """# Master Services Agreement

## 1. Payment terms
Invoices are payable within thirty (30) days of receipt. Late payments accrue interest at 1.5% per month.

## 2. Termination
Either party may terminate this Agreement with sixty (60) days' written notice. Termination does not
relieve the Customer of the obligation to pay fees accrued before the termination date.

## 3. Confidentiality
Each party shall protect the other's Confidential Information with at least reasonable care and shall not
disclose it to third parties except as required by law.
"""


def _heading(text: str) -> None:
    click.secho(f"\n=== {text} ===", fg="cyan", bold=True)


async def run_demo(*, keep_data: bool = False) -> None:
    from .client import Engram

    user_id, agent_id = f"demo-user-{uuid.uuid4().hex[:6]}", "demo-assistant"
    async with Engram(memory_policy="coding_agent") as engram:
        _heading(f"Recording a conversation for {user_id} (append-only ledger)")
        for task, user_message, reply in CONVERSATION:
            turn = await engram.record_turn(
                f"{user_id}:{task}",  # task ids are global: namespace them per user
                user_message=user_message,
                assistant_response=reply,
                enqueue_processing=True,
                user_id=user_id,
                agent_id=agent_id,
            )
            click.echo(
                f"[{task}] turn {turn.turn_count}: events {turn.user_event_id},{turn.assistant_event_id}"
            )

        _heading("The ledger of session-1")
        for event in await engram.get_task_events(f"{user_id}:session-1", user_id=user_id, agent_id=agent_id):
            click.echo(f"#{event.event_id} {event.role:<9} {event.content}")

        if hasattr(engram, "process_jobs"):
            _heading("Memory worker: extracting facts and checkpoints")
            done = 0
            while True:
                n = await engram.process_jobs(batch_size=20)
                if n == 0:
                    break
                done += n
            click.echo(f"processed {done} jobs")
            facts = await engram.list_facts(user_id=user_id, agent_id=agent_id)
            for fact in facts:
                slot = f" [slot {fact.slot}]" if fact.slot else ""
                click.echo(f"fact {fact.fact_id}{slot}: {fact.content}")
            if facts:
                _heading(f"Lineage of fact {facts[-1].fact_id}: back to the exact words")
                lineage = await engram.lineage(facts[-1].fact_id, user_id=user_id, agent_id=agent_id)
                for node in lineage.nodes:
                    click.echo(f"{node.fact.status:<10} fact {node.fact.fact_id}: {node.fact.content}")
                    for src in node.sources:
                        click.echo(f'           from event {src.event_id}: "{src.quote}"')
            _heading("Task checkpoint of session-1 (on demand)")
            checkpoint = await engram.checkpoint(f"{user_id}:session-1", user_id=user_id, agent_id=agent_id)
            click.echo(checkpoint.summary)

        if hasattr(engram, "record_long_input"):
            _heading("Ingesting a contract as a long input")
            doc = await engram.record_long_input(
                f"{user_id}:session-2",
                DOCUMENT,
                title="Master Services Agreement",
                user_id=user_id,
                agent_id=agent_id,
            )
            if hasattr(engram, "process_jobs"):
                while await engram.process_jobs(batch_size=20):
                    pass
            click.echo(f"document {doc.long_input_id}: {len(doc.chunks)} chunks")

        _heading("trace_recall: what the agent gets at the next turn")
        trace = await engram.trace_recall(
            "How should I run the tests, and where does Dana live now?",
            task_id=f"{user_id}:session-2",
            expected_terms=["pytest", "Lisbon"],
            user_id=user_id,
            agent_id=agent_id,
        )
        click.echo(trace.context or "(nothing recalled)")
        click.secho(
            f"\nintent={trace.intent} items={len(trace.items)} tokens={trace.token_count} "
            f"total={trace.total_ms:.1f} ms missing_expected_terms={list(trace.missing_expected_terms)}",
            fg="green",
        )
        for run in trace.strategies:
            click.echo(
                f"  {run.name:<15} candidates={run.candidates:<3} selected={run.selected:<3} {run.ms:6.2f} ms"
            )

        if hasattr(engram, "build_long_input_context") and hasattr(engram, "verify_citation"):
            _heading("Citing the contract, and verifying the citation")
            ctx = await engram.build_long_input_context(
                "How much notice is needed to terminate?", user_id=user_id, agent_id=agent_id
            )
            best = ctx.chunks[0]
            click.echo(f"top excerpt: chunk_id={best.chunk_id} quote_hash={best.quote_hash}")
            quote = "sixty (60) days' written notice"
            check = await engram.verify_citation(
                chunk_id=best.chunk_id, quote=quote, user_id=user_id, agent_id=agent_id
            )
            click.echo(
                f'verify_citation("{quote}") -> verified={check.verified} offsets={check.start}..{check.end}'
            )

        if not keep_data and hasattr(engram, "purge"):
            report = await engram.purge(user_id=user_id)
            click.echo(f"\npurged the demo user: {report.total} rows removed")


@click.command("demo")
@click.option("--keep-data", is_flag=True, help="Leave the demo user's data in the database.")
@run_async
async def demo_command(keep_data: bool) -> None:
    """Record a conversation, derive memory, ingest a document, and show a traced recall."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    await run_demo(keep_data=keep_data)
    await asyncio.sleep(0)


commands = [demo_command]
