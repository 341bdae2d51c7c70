"""``engram recall``."""

from __future__ import annotations

import click

from ..clitools import client_options, echo_json, make_client, run_async


@click.command("recall")
@click.argument("query")
@click.option("--user", "user_id", required=True, help="user_id of the scope to recall from.")
@click.option("--agent", "agent_id", required=True, help="agent_id of the scope to recall from.")
@click.option("--task", "task_id", default=None, help="Current task id (enables task strategies).")
@click.option("--limit", type=int, default=None, help="Items to return (default: the policy's).")
@click.option("--expect", "expected", multiple=True, help="A term the context should contain (repeatable).")
@click.option("--trace", is_flag=True, help="Print the trace (intent, strategies, timings, missing terms).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@client_options
@run_async
async def recall_command(
    query: str,
    user_id: str,
    agent_id: str,
    task_id: str | None,
    limit: int | None,
    expected: tuple[str, ...],
    trace: bool,
    as_json: bool,
    dsn: str | None,
    policy: str | None,
) -> None:
    """Print the memory context Engram would give an agent for QUERY."""
    async with make_client(dsn, policy) as client:
        result = await client.trace_recall(
            query,
            user_id=user_id,
            agent_id=agent_id,
            task_id=task_id,
            limit=limit,
            expected_terms=list(expected),
        )
    if as_json:
        echo_json(result.model_dump(mode="json"))
        return
    click.echo(result.context or "(no memory recalled)")
    if trace:
        click.echo("")
        click.secho(
            f"intent={result.intent} policy={result.policy} items={len(result.items)} "
            f"tokens={result.token_count}/{result.token_budget} total={result.total_ms:.1f} ms "
            f"(embedding {result.embedding_ms:.1f} ms)",
            fg="cyan",
        )
        for run in result.strategies:
            status = f" error: {run.error}" if run.error else ""
            click.echo(
                f"  {run.name:<15} weight={run.weight:<5} candidates={run.candidates:<3} "
                f"selected={run.selected:<3} {run.ms:7.2f} ms{status}"
            )
        if result.missing_expected_terms:
            click.secho(f"missing terms: {', '.join(result.missing_expected_terms)}", fg="yellow")


commands = [recall_command]
