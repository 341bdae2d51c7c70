"""Engram's built-in recall strategies, registered through the same hook a
third-party strategy would use.

Each strategy proposes a ranked list; ``recall`` fuses them.  They read memory
only through the public :class:`engram.RecallContext` readers (whose SQL lives
in the stores that own each table), so a third-party strategy can do anything
these do; they only decide what to ask and how to present it.
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
