"""A third-party plugin, installed by the tests with pip like any user plugin would be.

It registers one redactor, one extractor, one embedder, one recall strategy and
one CLI command, and observes recorded events, so the tests can show Engram
discovers and uses all of them through the entry point.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from engram import hookimpl
from engram.interfaces import CandidateFact, Detection, RecallCandidate

SEEN_EVENTS: list[Any] = []


class ShoutRedactor:
    name = "shout"

    def detect(self, text: str) -> list[Detection]:
        return [
            Detection(kind="shouting", start=m.start(), end=m.end(), redactor=self.name)
            for m in re.finditer(r"\b[A-Z]{4,}\b", text)
        ]


class ShoutExtractor:
    name = "shout"

    async def extract(self, request: Any) -> list[CandidateFact]:
        return [
            CandidateFact(content=e.content.upper(), source_event_ids=(e.event_id,))
            for e in request.events
            if e.role == "user"
        ]

    async def summarize(self, request: Any) -> str:
        return "SHOUTED SUMMARY"


class OnesEmbedder:
    name = "ones-8"
    dimension = 8

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[8**-0.5] * 8 for _ in texts]

    async def embed_query(self, text: str) -> list[float]:
        return [8**-0.5] * 8


class EchoStrategy:
    name = "echo"

    async def run(self, ctx: Any) -> list[RecallCandidate]:
        return [RecallCandidate(key="echo", source="echo", section="Echo", text=f"echo: {ctx.query}")]


@hookimpl
def register_redactors(register: Callable[..., None]) -> None:
    register(ShoutRedactor())


@hookimpl
def register_extractors(register: Callable[..., None]) -> None:
    register("shout", lambda settings=None: ShoutExtractor())


@hookimpl
def register_embedders(register: Callable[..., None]) -> None:
    register("ones", lambda settings=None: OnesEmbedder())


@hookimpl
def register_recall_strategies(register: Callable[..., None]) -> None:
    register(EchoStrategy())


@hookimpl
def event_recorded(event: Any) -> None:
    SEEN_EVENTS.append(event)


@hookimpl
def register_commands(cli: Any) -> None:
    import click

    @click.command("shout")
    @click.argument("text")
    def shout(text: str) -> None:
        """Print TEXT in capitals (a plugin's command)."""
        click.echo(text.upper())

    cli.add_command(shout)
