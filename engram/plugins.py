"""The plugin manager: lazily loads ``engram`` entry points and built-in hooks.

Discovery is deferred to first use so ``import engram`` stays cheap.  Setting
``ENGRAM_LOAD_PLUGINS`` to a comma-separated list of entry-point names loads only
those (an empty string loads none), which is how an operator pins the exact set
of code that runs in a deployment.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigurationError, PluginError

ENTRY_POINT_GROUP = "engram"
log = logging.getLogger("engram.plugins")

_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None
_sources: dict[str, str] = {}


def _allow_list() -> set[str] | None:
    raw = os.environ.get("ENGRAM_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = _allow_list()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must name itself
            raise PluginError(f"could not load engram plugin {ep.name!r} ({ep.value}): {exc}") from exc
        pm.register(plugin, name=ep.name)
        dist = ep.dist
        _sources[ep.name] = f"{dist.name} {dist.version}" if dist is not None else ep.value
    if allowed:
        missing = allowed - {name for name, _ in pm.list_name_plugin()}
        if missing:
            raise ConfigurationError(
                f"ENGRAM_LOAD_PLUGINS names plugins that are not installed: {sorted(missing)}"
            )


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading entry points on first call."""
    global _pm
    if _pm is not None:
        return _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager("engram")
            pm.add_hookspecs(hookspecs)
            _load_entry_points(pm)
            try:
                pm.check_pending()
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from exc
            _pm = pm
    return _pm


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests, or after installing a plugin at run time)."""
    global _pm
    with _lock:
        _pm = None


def _collect(hook_name: str) -> list[tuple[Any, ...]]:
    registered: list[tuple[Any, ...]] = []

    def register(*args: Any) -> None:
        registered.append(args)

    getattr(get_plugin_manager().hook, hook_name)(register=register)
    return registered


def named_factories(hook_name: str) -> dict[str, Callable[..., Any]]:
    """``{name: factory}`` from a ``register(name, factory)`` hook; later plugins win."""
    out: dict[str, Callable[..., Any]] = {}
    # pluggy calls the most recently registered plugin first; reverse so that
    # later registrations (third-party, tests) override built-ins.
    for args in reversed(_collect(hook_name)):
        if len(args) != 2 or not isinstance(args[0], str) or not callable(args[1]):
            raise PluginError(f"{hook_name}: register(name, factory) expected, got {args!r}")
        out[args[0]] = args[1]
    return out


def named_objects(hook_name: str) -> dict[str, Any]:
    """``{obj.name: obj}`` from a ``register(obj)`` hook."""
    out: dict[str, Any] = {}
    for args in reversed(_collect(hook_name)):
        if len(args) != 1 or not isinstance(getattr(args[0], "name", None), str):
            raise PluginError(f"{hook_name}: register(obj) with a str .name expected, got {args!r}")
        out[args[0].name] = args[0]
    return out


def embedder_factories() -> dict[str, Callable[..., Any]]:
    return named_factories("register_embedders")


def extractor_factories() -> dict[str, Callable[..., Any]]:
    return named_factories("register_extractors")


def recall_strategies() -> dict[str, Any]:
    return named_objects("register_recall_strategies")


def redactors() -> dict[str, Any]:
    return named_objects("register_redactors")


def policies() -> dict[str, Any]:
    return named_objects("register_policies")


def plugin_sources() -> dict[str, str]:
    """Which distribution (or module) each loaded plugin came from, for ``engram policies``."""
    pm = get_plugin_manager()
    return {
        name: _sources.get(name, getattr(plugin, "__name__", "registered at run time"))
        for name, plugin in pm.list_name_plugin()
    }


def notify(hook_name: str, **kwargs: Any) -> None:
    """Call an observation hook; a failing observer is logged, never propagated."""
    hook = getattr(get_plugin_manager().hook, hook_name)
    if not hook.get_hookimpls():
        return
    try:
        hook(**kwargs)
    except Exception:  # observers must not break the operation they observe
        log.exception("observation hook %s raised", hook_name)


def iter_plugin_names() -> Iterable[str]:
    return [name for name, _ in get_plugin_manager().list_name_plugin()]


def registrations_by_plugin(hook_name: str) -> list[tuple[str, tuple[Any, ...]]]:
    """(plugin name, registered args) pairs: which plugin provided what."""
    pm = get_plugin_manager()
    out: list[tuple[str, tuple[Any, ...]]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        registered: list[tuple[Any, ...]] = []

        def register(*args: Any, _sink: list[tuple[Any, ...]] = registered) -> None:
            _sink.append(args)

        if "register" in impl.argnames:
            impl.function(register=register)
        out.extend((impl.plugin_name, args) for args in registered)
    return out
