"""``engram purge``."""

from __future__ import annotations

import click

from ..clitools import client_options, echo_json, make_client, run_async


@click.command("purge")
@click.option("--user", "user_id", required=True, help="The user whose data is deleted.")
@click.option("--agent", "agent_id", default=None, help="Only this agent's data of the user.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-table counts as JSON.")
@click.option(
    "--compact",
    is_flag=True,
    help="Then VACUUM FULL the tables the purge touched (every tenant table if it found nothing "
    "left to delete), so the deleted bytes leave the table files (locks each table while it is "
    "rewritten; see docs/production/data-erasure.md).",
)
@client_options
@run_async
async def purge_command(
    user_id: str,
    agent_id: str | None,
    yes: bool,
    as_json: bool,
    compact: bool,
    dsn: str | None,
    policy: str | None,
) -> None:
    """Delete every row of a user (or of one of their agents) from every table.

    Deleted rows leave no row or index entry any query can reach, but their bytes
    stay in the table files until the pages are reused; --compact rewrites the
    touched tables so they are gone from the files too.  WAL and backups already
    taken are the operator's part (docs/production/data-erasure.md).
    """
    target = f"user {user_id!r}" + (f", agent {agent_id!r}" if agent_id else " (all agents)")
    if not yes and not click.confirm(f"Permanently delete all memory of {target}?", default=False):
        raise click.Abort()
    compacted: list[str] = []
    holders: list[int] = []
    async with make_client(dsn, policy) as client:
        report = await client.purge(user_id=user_id, agent_id=agent_id)
        if compact:
            from .store import compact_tables

            # After the purge has committed, on a pooled connection outside any
            # transaction (VACUUM refuses to run inside one).
            touched = [table for table, n in report.counts.items() if n]
            if not touched:
                # Nothing left to delete: a repeat run, to erase what an earlier
                # purge left in the files.  Which tables it touched is not known.
                touched = list(report.counts)
            async with client._rt.connection() as conn:
                compacted, holders = await compact_tables(conn, touched)
    if as_json:
        data = {"user_id": user_id, "agent_id": agent_id, "counts": report.counts, "total": report.total}
        if compact:
            data["compacted"] = compacted
            data["snapshots_older_than_purge"] = holders
        echo_json(data)
        return
    click.echo(f"purged {report.total} rows of {target}")
    for table, n in sorted(report.counts.items()):
        if n:
            click.echo(f"  {table:<22} {n}")
    if compact:
        click.echo(
            "compacted (VACUUM FULL, ANALYZE): "
            + (", ".join(compacted) if compacted else "nothing to compact")
        )
        if holders:
            click.secho(
                "warning: sessions older than the purge still ran (pids "
                + ", ".join(map(str, holders))
                + "); rows they could see were kept. Run --compact again once they end.",
                fg="yellow",
                err=True,
            )


commands = [purge_command]
