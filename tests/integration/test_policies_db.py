"""Choosing a memory policy: by name, object, TOML file, environment; and refusing bad ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engram import CriticalSlot, Engram, MemoryPolicy, hookimpl, plugins


async def test_policy_registered_by_a_plugin_hook_works_end_to_end(
    engram: Engram, scope: dict[str, str], database_url: str
) -> None:
    class Plugin:
        @hookimpl
        def register_policies(self, register: Callable[..., Any]) -> None:
            register(MemoryPolicy(name="hooked", critical_slots=(CriticalSlot(name="favourite_tea"),)))

    pm = plugins.get_plugin_manager()
    pm.register(Plugin(), name="hooked-policy")
    try:
        async with Engram(database_url, memory_policy="hooked", embedder="hashing") as client:
            await client.add("Favourite tea: genmaicha", slot="favourite_tea", **scope)
            trace = await client.trace_recall("what's the weather like?", **scope)
        assert trace.policy == "hooked"
        assert trace.context.startswith("## Pinned facts\n- Favourite tea: genmaicha")
        sources = dict(plugins.registrations_by_plugin("register_policies"))
        assert "hooked-policy" in sources
    finally:
        pm.unregister(name="hooked-policy")
