"""Operator commands: ``doctor``, ``migrate``, ``reembed``, ``policies`` and ``server``."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..clitools import client_options, make_client, run_async

#: pgvector releases before this had HNSW vacuum/repair bugs.
MIN_PGVECTOR = (0, 8, 4)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


@click.command("doctor")
@client_options
@run_async
async def doctor_command(dsn: str | None, policy: str | None) -> None:
    """Check the database, extensions, embedding space, pool and job backlog; say what to fix.

    Exits with status 3 when a check fails.
    """
    from ..db.migrate import (
        MIN_SERVER_VERSION,
        REQUIRED_EXTENSIONS,
        available_migrations,
        migration_history,
        server_facts,
    )
    from ..embeddings.store import active_space
    from ..errors import EngramError
    from ..settings import scrub_secrets

    problems = 0

    def report(ok: bool | None, label: str, detail: str, fix: str = "") -> None:
        nonlocal problems
        mark = {True: click.style("ok  ", fg="green"), False: click.style("FAIL", fg="red"), None: "warn"}[ok]
        # Every detail is scrubbed: doctor's output is pasted into tickets and chats.
        click.echo(f"[{mark}] {label}: {scrub_secrets(detail, dsn or client.settings.database_url)}")
        if ok is False:
            problems += 1
        if fix and ok is not True:
            click.echo(f"       fix: {fix}")

    client = make_client(dsn, policy)
    try:
        await client.connect()
    except EngramError as exc:
        report(
            False, "connect", str(exc), "check ENGRAM_DATABASE_URL, or unset it to use the embedded server"
        )
        sys.exit(3)
    try:
        async with client._rt.connection() as conn:
            version, number, exts = await server_facts(conn)
            report(number >= MIN_SERVER_VERSION, "server", f"PostgreSQL {version}")
            for ext in REQUIRED_EXTENSIONS:
                report(ext in exts, f"extension {ext}", exts.get(ext, "missing"), f"CREATE EXTENSION {ext}")
            if "vector" in exts:
                ok = _version_tuple(exts["vector"]) >= MIN_PGVECTOR
                report(ok or None, "pgvector version", exts["vector"], "upgrade pgvector to 0.8.4 or newer")
            history = await migration_history(conn)
            applied = history[-1]["version"] if history else None
            latest = available_migrations()[-1].version
            report(applied == latest, "schema", f"migration {applied} of {latest}", "run `engram migrate`")
            active = await active_space(conn)
            mine = client.embedding_space
            report(
                active is not None and active.name == mine.name,
                "embedding space",
                f"database {active.name if active else 'none'}, client {mine.name}",
                "set ENGRAM_EMBEDDER to the database's embedder, or allow the change and run `engram reembed`",
            )
        from .reembed import pending_counts

        pending = await pending_counts(client)
        waiting = sum(pending.values())
        report(
            True if waiting == 0 else None,
            "vectors",
            f"{waiting} rows wait for (re-)embedding {pending}",
            "run `engram reembed`",
        )
        s = client.settings
        report(
            True,
            "pool",
            f"min {s.min_pool_size}, max {s.max_pool_size}, pgbouncer mode {'on' if s.pgbouncer else 'off'}",
        )
        stats = await client.job_stats()
        data: dict[str, Any] = stats.model_dump()
        failed = int(data.get("failed", 0))
        report(
            failed == 0 or None,
            "memory_jobs",
            ", ".join(f"{k}={v}" for k, v in data.items()),
            "inspect with `engram jobs`, re-queue with `engram jobs retry --failed`",
        )
    finally:
        await client.close()
    if problems:
        click.secho(f"{problems} problem(s) found", fg="red")
        sys.exit(3)
    click.secho("all checks passed", fg="green")


@click.command("reembed")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=256, show_default=True)
@client_options
@run_async
async def reembed_command(batch_size: int, dsn: str | None, policy: str | None) -> None:
    """Re-embed every vector that is missing or belongs to another embedding space.

    Safe to interrupt and run again: it resumes where it stopped.
    """
    from tqdm import tqdm

    from .reembed import pending_counts, reembed

    async with make_client(dsn, policy, allow_embedding_dimension_change=True) as client:
        pending = await pending_counts(client)
        total = sum(pending.values())
        if total == 0:
            click.echo(f"nothing to do: every vector is in {client.embedding_space.name}")
            return
        with tqdm(total=total, unit="row", desc=f"re-embedding into {client.embedding_space.name}") as bar:
            done = await reembed(client, batch_size=batch_size, progress=lambda _t, n: bar.update(n))
    click.echo("re-embedded: " + ", ".join(f"{t} {n}" for t, n in done.items()))


@click.command("policies")
def policies_command() -> None:
    """List installed memory policies and the plugin each comes from."""
    from .. import plugins

    sources = plugins.plugin_sources()
    for plugin_name, args in sorted(
        plugins.registrations_by_plugin("register_policies"), key=lambda r: r[1][0].name
    ):
        policy = args[0]
        slots = ", ".join(s.name for s in policy.critical_slots) or "none"
        origin = sources.get(plugin_name, plugin_name)
        click.echo(f"{policy.name:<20} from {origin}")
        if policy.description:
            click.echo(f"    {policy.description.splitlines()[0]}")
        click.echo(f"    critical slots: {slots}")


@click.command("migrate")
@client_options
@run_async
async def migrate_command(dsn: str | None, policy: str | None) -> None:
    """Apply pending database migrations (also done on every connect)."""
    from ..db.migrate import available_migrations, migration_history

    async with make_client(dsn, policy) as client, client._rt.connection() as conn:
        rows = await migration_history(conn)
    click.echo(f"schema is at version {rows[-1]['version']} ({len(available_migrations())} migrations known)")
    for row in rows:
        click.echo(f"  {row['version']:04d} {row['name']}  applied {row['applied_at']:%Y-%m-%d %H:%M:%S}")


@click.group("server")
def server_group() -> None:
    """Manage the embedded PostgreSQL server under ENGRAM_HOME."""


@server_group.command("status")
def server_status() -> None:
    """Show whether the embedded server runs, and where."""
    from ..settings import EngramSettings

    settings = EngramSettings()
    pgdata = settings.home / "pgdata"
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        click.echo(f"running (pid {pid_file.read_text().splitlines()[0]}) with data in {pgdata}")
    else:
        click.echo(f"not running; data folder {pgdata}")


@server_group.command("stop")
def server_stop() -> None:
    """Stop the embedded server (clients connected to it lose their connections)."""
    from ..db.embedded import stop_embedded
    from ..settings import EngramSettings

    stopped = stop_embedded(EngramSettings().home)
    click.echo("stopped" if stopped else "was not running")


commands = [doctor_command, migrate_command, reembed_command, policies_command, server_group]
