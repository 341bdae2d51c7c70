"""Everything public is documented: hook specs, CLI commands, and the ``Engram`` client.

A name counts as documented when either

* it is *rendered* on an API page: a mkdocstrings ``::: target`` block shows it
  (with an explicit ``members:`` list it must be listed) and it has a docstring
  (the pages set ``show_if_no_docstring: false``, so an undocumented member
  renders as nothing), or
* a docs page mentions it as code: inside a ``code span`` or a fenced block.

Only the documentation sources are read (no ``mkdocs build``), so this needs no
network and no database.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import click
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLI_PAGE = DOCS / "reference" / "cli.md"

_DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$")
_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


@dataclass
class Rendered:
    """One ``::: target`` block: what it renders and from which page."""

    target: str
    page: Path
    members: list[str] | None = None  # None: no explicit list, every documented member shows
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Docs:
    rendered: list[Rendered]
    code: str  # every code span and fenced block of every page, joined


def _pages() -> Iterator[Path]:
    yield from sorted(DOCS.rglob("*.md"))


def _parse_directives(page: Path, lines: list[str]) -> tuple[list[Rendered], list[str]]:
    """The ``:::`` blocks of a page, and the page's lines with those blocks removed."""
    blocks: list[Rendered] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        block = Rendered(target=match.group(1), page=page)
        i += 1
        in_members = False
        while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
            line = lines[i].strip()
            i += 1
            if not line:
                continue
            item = re.match(r"^-\s+(\S+)$", line)
            if in_members and item:
                assert block.members is not None
                block.members.append(item.group(1))
                continue
            in_members = False
            option = re.match(r"^(\w+):\s*(.*)$", line)
            if option:
                key, value = option.groups()
                if key == "members" and not value:
                    block.members = []
                    in_members = True
                else:
                    block.options[key] = value
        blocks.append(block)
    return blocks, prose


def _code_of(lines: list[str]) -> list[str]:
    """Fenced blocks and inline code spans of a page (without the ``:::`` blocks)."""
    out: list[str] = []
    fenced: list[str] | None = None
    text: list[str] = []
    for line in lines:
        if _FENCE.match(line.strip()):
            if fenced is None:
                fenced = []
            else:
                out.append("\n".join(fenced))
                fenced = None
            continue
        if fenced is not None:
            fenced.append(line)
        else:
            text.append(line)
    out.extend(m.group(2) for m in _CODE_SPAN.finditer("\n".join(text)))
    return out


@cache
def docs() -> Docs:
    rendered: list[Rendered] = []
    code: list[str] = []
    for page in _pages():
        blocks, prose = _parse_directives(page, page.read_text(encoding="utf-8").splitlines())
        rendered.extend(blocks)
        code.extend(_code_of(prose))
    return Docs(rendered=rendered, code="\n".join(code))


def mentioned_as_code(name: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", docs().code) is not None


def rendered_on(target: str, member: str) -> list[Rendered]:
    """The ``:::`` blocks rendering ``target`` that show ``member``."""
    return [
        block
        for block in docs().rendered
        if block.target == f"{target}.{member}"
        or (block.target == target and (block.members is None or member in block.members))
    ]


def has_docstring(obj: object) -> bool:
    doc = obj.__doc__ if isinstance(obj, property) else inspect.getdoc(obj)
    return bool(doc and doc.strip())


def test_the_docs_were_found() -> None:
    assert CLI_PAGE.is_file()
    assert any(block.target == "engram.Engram" for block in docs().rendered)
    assert any(block.target == "engram.hookspecs" for block in docs().rendered)


# --------------------------------------------------------------------------- hook specs


def hook_specs() -> dict[str, object]:
    from engram import hookspecs

    return {
        name: obj
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and getattr(obj, "engram_spec", None) is not None
    }


def test_hook_specs_are_found() -> None:
    assert {"register_embedders", "register_policies", "event_recorded", "recall_traced"} <= set(hook_specs())


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_spec_is_documented(name: str) -> None:
    spec = hook_specs()[name]
    rendered = rendered_on("engram.hookspecs", name) and has_docstring(spec)
    assert rendered or mentioned_as_code(name), (
        f"hook spec {name!r} appears on no docs page (neither rendered with a docstring "
        "by a `::: engram.hookspecs` block nor mentioned as code)"
    )


# --------------------------------------------------------------------------- CLI


def cli_commands() -> list[tuple[str, ...]]:
    from engram.cli import main

    out: list[tuple[str, ...]] = []

    def walk(group: click.Group, path: tuple[str, ...]) -> None:
        for name, command in sorted(group.commands.items()):
            if command.hidden:
                continue
            out.append((*path, name))
            if isinstance(command, click.Group):
                walk(command, (*path, name))

    walk(main, ())
    return out


def test_cli_commands_are_found() -> None:
    commands = cli_commands()
    assert ("worker",) in commands and ("jobs", "retry") in commands


@pytest.mark.parametrize("path", cli_commands(), ids=" ".join)
def test_every_cli_command_is_documented(path: tuple[str, ...]) -> None:
    page = CLI_PAGE.read_text(encoding="utf-8")
    full = " ".join(("engram", *path))
    in_text = re.search(rf"{re.escape(full)}(?![\w-])", page) is not None
    headings = [line for line in page.splitlines() if line.startswith("#")]
    parent = " ".join(("engram", *path[:-1]))
    in_heading = any(
        re.search(rf"(?<![\w-]){re.escape(path[-1])}(?![\w-])", h) and parent in h for h in headings
    )
    assert in_text or in_heading, f"`{full}` is not documented in docs/reference/cli.md"


# --------------------------------------------------------------------------- the client


def client_members() -> dict[str, object]:
    from engram import Engram

    out: dict[str, object] = {}
    for name in dir(Engram):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(Engram, name)
        if isinstance(static, (staticmethod, classmethod)):
            static = static.__func__
        if isinstance(static, property) or inspect.isfunction(static):
            out[name] = static
    return out


def test_client_members_are_found() -> None:
    members = client_members()
    assert {"record_turn", "recall", "get_fact", "is_connected"} <= set(members)


@pytest.mark.parametrize("name", sorted(client_members()))
def test_every_public_client_method_and_property_is_documented(name: str) -> None:
    member = client_members()[name]
    kind = "property" if isinstance(member, property) else "method"
    blocks = rendered_on("engram.Engram", name)
    if blocks and has_docstring(member):
        return
    if mentioned_as_code(name):
        return
    why = (
        "it is listed on an API page but has no docstring, so mkdocstrings renders nothing"
        if blocks
        else "no `::: engram.Engram` block renders it and no page mentions it as code"
    )
    pytest.fail(f"Engram.{name} ({kind}) is undocumented: {why}")
