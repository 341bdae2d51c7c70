"""Hook specifications.  Every concrete behaviour in Engram comes through these.

Registration hooks receive a ``register`` callback and call it once per thing
they provide.  Observation hooks are called after the fact and must not raise;
an exception in one is logged and swallowed so a plugin cannot break a write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("engram")
hookimpl = pluggy.HookimplMarker("engram")


@hookspec
def register_embedders(register: Callable[..., None]) -> None:
    """Register embedder factories: ``register(name, factory)``.

    ``factory(settings)`` returns an :class:`engram.interfaces.Embedder`.  It is
    only called when that embedder is selected, so heavy imports belong inside it.
    """


@hookspec
def register_extractors(register: Callable[..., None]) -> None:
    """Register extractor factories: ``register(name, factory)``.

    ``factory(settings)`` returns an :class:`engram.interfaces.Extractor`.
    """


@hookspec
def register_recall_strategies(register: Callable[..., None]) -> None:
    """Register recall strategies: ``register(strategy)`` with an object that has
    ``name`` and ``async run(ctx)`` (see :class:`engram.interfaces.RecallStrategy`)."""


@hookspec
def register_redactors(register: Callable[..., None]) -> None:
    """Register redactors: ``register(redactor)`` with ``name`` and ``detect(text)``."""


@hookspec
def register_policies(register: Callable[..., None]) -> None:
    """Register memory policies: ``register(policy)`` with a :class:`engram.MemoryPolicy`."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``engram`` command line: ``cli`` is its ``click.Group``;
    call ``cli.add_command(command)``.  Built-in commands cannot be replaced."""


@hookspec
def event_recorded(event: Any) -> None:
    """Observe a ledger event after its transaction committed (an :class:`engram.Event`)."""


@hookspec
def fact_derived(fact: Any) -> None:
    """Observe a fact after it was stored (an :class:`engram.Fact`)."""


@hookspec
def recall_traced(trace: Any) -> None:
    """Observe every :class:`engram.RecallTrace` produced by recall."""
