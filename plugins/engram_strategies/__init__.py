"""Engram's built-in recall strategies, registered through the same hook a
third-party strategy would use.

Each strategy proposes a ranked list; ``recall`` fuses them.  SQL lives with the
module that owns each table (``engram.facts``, ``engram.ledger``, ...); the
strategies only decide what to ask and how to present it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engram.hookspecs import hookimpl

from .builtin import BUILTIN_STRATEGIES


@hookimpl
def register_recall_strategies(register: Callable[..., None]) -> None:
    for strategy in BUILTIN_STRATEGIES:
        register(strategy)


__all__: list[Any] = ["BUILTIN_STRATEGIES"]
