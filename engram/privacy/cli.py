"""``engram purge``."""

from __future__ import annotations

import click

from ..clitools import client_options, echo_json, make_client, run_async


@click.command("purge")
@click.option("--user", "user_id", required=True, help="The user whose data is deleted.")
@click.option("--agent", "agent_id", default=None, help="Only this agent's data of the user.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-table counts as JSON.")
@client_options
@run_async
async def purge_command(
    user_id: str, agent_id: str | None, yes: bool, as_json: bool, dsn: str | None, policy: str | None
) -> None:
    """Delete every row of a user (or of one of their agents) from every table."""
    target = f"user {user_id!r}" + (f", agent {agent_id!r}" if agent_id else " (all agents)")
    if not yes and not click.confirm(f"Permanently delete all memory of {target}?", default=False):
        raise click.Abort()
    async with make_client(dsn, policy) as client:
        report = await client.purge(user_id=user_id, agent_id=agent_id)
    if as_json:
        echo_json({"user_id": user_id, "agent_id": agent_id, "counts": report.counts, "total": report.total})
        return
    click.echo(f"purged {report.total} rows of {target}")
    for table, n in sorted(report.counts.items()):
        if n:
            click.echo(f"  {table:<22} {n}")


commands = [purge_command]
