"""``engram ingest``: record a document file as a long input, optionally embedding it now."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..clitools import client_options, echo_json, make_client, run_async
from ..errors import InvalidInputError


def read_document(path: Path) -> str:
    """A file's text as UTF-8 (a leading byte-order mark is dropped).

    Anything that is not UTF-8 (a PDF, an image, a Latin-1 file) is refused with a
    clear error rather than stored as replacement characters.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not UTF-8 text (undecodable byte at offset {exc.start}); "
            "convert it to plain text or Markdown first"
        ) from None


@click.command()
@client_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--task", "task_id", required=True, help="Task whose ledger records the document.")
@click.option("--user", "user_id", required=True, help="user_id of the scope.")
@click.option("--agent", "agent_id", required=True, help="agent_id of the scope.")
@click.option("--title", default=None, help="Document title (default: the file name).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default=None,
    help="How to chunk it (default: from the file suffix, else detected).",
)
@click.option("--embed-now", is_flag=True, help="Embed the chunks now, with a progress bar.")
@click.option("--embedder", default=None, help="Embedder name (ENGRAM_EMBEDDER).")
@click.option(
    "--batch-size", default=64, show_default=True, type=click.IntRange(1, 1024), help="Chunks per batch."
)
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@run_async
async def ingest(
    dsn: str | None,
    policy: str | None,
    file: Path,
    task_id: str,
    user_id: str,
    agent_id: str,
    title: str | None,
    fmt: str | None,
    embed_now: bool,
    embedder: str | None,
    batch_size: int,
    as_json: bool,
) -> None:
    """Store FILE once as a long input, chunked for exact citations.

    Chunks are embedded by a memory worker later, or now with --embed-now.  Exit
    code 1 on any refusal (not UTF-8, empty, binary, too large, wrong scope).
    """
    from tqdm import tqdm

    text = read_document(file)
    kwargs: dict[str, Any] = {"embedder": embedder} if embedder else {}
    async with make_client(dsn, policy, **kwargs) as client:
        record = await client.record_long_input(
            task_id,
            text,
            user_id=user_id,
            agent_id=agent_id,
            title=title if title is not None else file.name,
            source=str(file),
            format=fmt,
        )
        embedded = 0
        if embed_now and not record.embedded:
            with tqdm(total=record.chunk_count, unit="chunk", desc="embedding", file=sys.stderr) as bar:
                embedded = await client.embed_pending_chunks(
                    user_id=user_id,
                    agent_id=agent_id,
                    long_input_id=record.long_input_id,
                    batch_size=batch_size,
                    progress=bar.update,
                )
    if as_json:
        echo_json({**record.model_dump(), "embedded_now": embedded})
        return
    state = "already stored; not stored again" if record.deduplicated else "stored"
    click.echo(
        f"{record.long_input_id}: {state} ({record.char_count:,} characters, {record.chunk_count} chunks, "
        f"{record.format}); artifact event {record.event_id} in task {record.task_id}"
    )
    if record.embedded or embedded:
        click.echo("chunks embedded: vector and keyword search ready")
    elif record.job_id is not None:
        click.echo(f"embedding queued as job {record.job_id}; keyword search works meanwhile")
    else:
        click.echo("chunks not embedded yet (keyword search works); run again with --embed-now to embed them")


commands = [ingest]
