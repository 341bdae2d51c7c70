"""An Engram policy package: the ``veterinary_clinic`` memory policy.

Installing this distribution is all it takes to make the policy available::

    pip install engram-policy-veterinary

    from engram import Engram
    memory = Engram(memory_policy="veterinary_clinic")

Engram finds this module through the ``veterinary`` entry point in the ``engram``
group (see ``pyproject.toml``) and calls :func:`register_policies` when it first
needs the list of policies.
"""

from __future__ import annotations

from collections.abc import Callable

from engram.hookspecs import hookimpl

from .policy import POLICY_NAME, VETERINARY_CLINIC

__all__ = ["POLICY_NAME", "VETERINARY_CLINIC", "register_policies"]


@hookimpl
def register_policies(register: Callable[..., None]) -> None:
    """Hand Engram the veterinary policy (called once per plugin-manager load)."""
    register(VETERINARY_CLINIC)
