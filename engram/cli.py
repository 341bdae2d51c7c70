"""The ``engram`` command line.

Exit codes scripts can rely on: 0 success, 1 an Engram error (message on
stderr), 2 bad usage (click's own), 3 a health check failed (``doctor``),
130 interrupted.  Subcommands that belong to one capability live next to it and
are collected from ``COMMAND_MODULES``; each such module exposes ``commands``.
Plugins add theirs through the ``register_commands`` hook.
"""

from __future__ import annotations

import importlib

import click

from .errors import PluginError

#: The kernel's own command modules, one per capability; plugins add theirs
#: through the ``register_commands`` hook.
COMMAND_MODULES = (
    "engram.demo",
    "engram.jobs.cli",
    "engram.recall.cli",
    "engram.longinput.cli",
    "engram.privacy.cli",
    "engram.admin.cli",
)


@click.group()
@click.version_option(package_name="engram-pg")
def main() -> None:
    """Engram: long-term memory for LLM agents on PostgreSQL."""


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        for command in importlib.import_module(name).commands:
            main.add_command(command)
    from . import plugins

    # Plugins add theirs after ours; one that replaced a built-in command would
    # change what operators' scripts do, so that is refused.
    builtin = dict(main.commands)
    plugins.get_plugin_manager().hook.register_commands(cli=main)
    replaced = sorted(name for name, command in builtin.items() if main.commands.get(name) is not command)
    if replaced:
        raise PluginError(f"a plugin replaced built-in engram commands: {replaced}")


_load_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
