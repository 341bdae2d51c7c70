"""``engram worker`` and ``engram jobs``."""

from __future__ import annotations

import gc
from typing import Any

import click

from ..clitools import client_options, echo_json, make_client, run_async


@click.command()
@client_options
@click.option(
    "--batch-size", default=20, show_default=True, type=click.IntRange(1, 1000), help="Jobs per claim."
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 3600),
    help="Longest idle wait between polls, in seconds.",
)
@click.option("--extractor", default=None, help="Extractor name (ENGRAM_EXTRACTOR; default: rules).")
@click.option("--embedder", default=None, help="Embedder name (ENGRAM_EMBEDDER).")
@click.option(
    "--lease", "lease_seconds", default=None, type=click.FloatRange(1, 86_400), help="Job lease in seconds."
)
@click.option("--worker-id", default=None, help="Name shown as lease owner (default host:pid:random).")
@click.option("-v", "--verbose", is_flag=True, help="Log every batch.")
@run_async
async def worker(
    dsn: str | None,
    policy: str | None,
    batch_size: int,
    interval: float,
    extractor: str | None,
    embedder: str | None,
    lease_seconds: float | None,
    worker_id: str | None,
    verbose: bool,
) -> None:
    """Run a memory worker until SIGTERM or SIGINT (Ctrl-C)."""
    from ..logs import configure_logging

    configure_logging(verbose)
    kwargs: dict[str, Any] = {}
    if extractor:
        kwargs["extractor"] = extractor
    if embedder:
        kwargs["embedder"] = embedder
    async with make_client(dsn, policy, **kwargs) as client:
        if lease_seconds is not None:
            client.worker_options = client.worker_options.model_copy(update={"lease_seconds": lease_seconds})
        client.get_extractor()  # fail now, not on the first job, if it is unknown
        click.echo(f"memory worker started (batch {batch_size}); stop with Ctrl-C or SIGTERM", err=True)
        done = await client.run_memory_worker(batch_size, interval, worker_id=worker_id)
        click.echo(f"memory worker stopped; {done} jobs succeeded", err=True)
    # The process exits next.  With a local model loaded (torch, transformers) the
    # interpreter's garbage collections at exit walk millions of objects: seconds
    # between SIGTERM and exit on a busy host.  Nothing is left to collect for, so
    # freeze what exists; exit handlers (the embedded server's) still run.
    gc.freeze()


@click.group(invoke_without_command=True)
@client_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def jobs(ctx: click.Context, dsn: str | None, policy: str | None, as_json: bool) -> None:
    """Show memory_jobs queue figures (pending / running / failed, oldest pending age)."""
    ctx.ensure_object(dict)
    ctx.obj.update(dsn=dsn, policy=policy)
    if ctx.invoked_subcommand is None:
        _show_stats(dsn, policy, as_json)


@run_async
async def _show_stats(dsn: str | None, policy: str | None, as_json: bool) -> None:
    async with make_client(dsn, policy) as client:
        stats = await client.job_stats()
    if as_json:
        echo_json({**stats.model_dump(), "pending": stats.pending})
        return
    age = stats.oldest_pending_age_seconds
    click.echo(f"pending    {stats.queued}  (due now: {stats.due})")
    click.echo(f"running    {stats.running}  (expired leases: {stats.expired_leases})")
    click.echo(f"failed     {stats.failed}")
    click.echo(f"succeeded  {stats.succeeded}")
    click.echo(f"cancelled  {stats.cancelled}")
    click.echo(f"oldest pending age  {'-' if age is None else f'{age:.1f}s'}")


@jobs.command("retry")
@click.option("--failed", "failed", is_flag=True, required=True, help="Re-queue every failed job.")
@click.option("--user-id", default=None, help="Only this user's failed jobs.")
@click.pass_context
@run_async
async def retry(ctx: click.Context, failed: bool, user_id: str | None) -> None:
    """Re-queue failed jobs with a fresh set of attempts."""
    async with make_client(ctx.obj["dsn"], ctx.obj["policy"]) as client:
        count = await client.retry_failed_jobs(user_id=user_id)
    click.echo(f"re-queued {count} failed job{'s' if count != 1 else ''}")


commands = [worker, jobs]
