"""The plugin kernel: entry-point discovery, the allow-list, validation, and hook coverage."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest

from engram import hookimpl, hookspecs, plugins
from engram.errors import ConfigurationError, PluginError

HERE = Path(__file__).parent.parent  # tests/
PLUGIN_PKG = HERE / "plugin_pkgs" / "engram_plugin_shout"


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def installed_plugin() -> Iterator[None]:
    """pip-install the example third-party plugin into this environment, then remove it."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            str(PLUGIN_PKG),
        ],
        check=True,
        timeout=300,
    )
    try:
        yield
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", "engram-plugin-shout"], check=True
        )
        plugins.reset_plugin_manager()


def test_third_party_plugin_is_discovered_and_used(installed_plugin: None, scratch_dsn: str) -> None:
    out = _run(
        """
        import asyncio, json
        from engram import Engram, plugins
        from engram.privacy.redaction import redact
        import engram_plugin_shout

        async def main():
            async with Engram(__DSN__, embedder="ones", extractor="shout") as m:
                assert m.get_embedder().dimension == 8
                assert (await m.get_extractor().summarize(None)) == "SHOUTED SUMMARY"
                await m.record_event("plug-task", role="system", content="hello",
                                     user_id="plugin-user", agent_id="a")
            return {
                "sources": plugins.plugin_sources()["shout"],
                "strategies": sorted(plugins.recall_strategies()),
                "redacted": redact("please STOP shouting", ["shout"]).text,
                "observed": [e.content for e in engram_plugin_shout.SEEN_EVENTS],
            }
        print(json.dumps(asyncio.run(main())))
        """.replace("__DSN__", repr(scratch_dsn))  # its own database: the plugin's 8-d space
    )
    result = json.loads(out)
    assert result["sources"] == "engram-plugin-shout 0.1.0"
    assert "echo" in result["strategies"]
    assert result["redacted"] == "please [REDACTED:shouting] shouting"
    assert result["observed"] == ["hello"]


def test_plugin_adds_a_cli_command(installed_plugin: None) -> None:
    """register_commands: the installed plugin's command runs through the real `engram` entry point."""
    engram_bin = Path(sys.executable).parent / "engram"
    result = subprocess.run(
        [str(engram_bin), "shout", "quiet please"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "QUIET PLEASE"
    listed = subprocess.run([str(engram_bin), "--help"], capture_output=True, text=True, timeout=300)
    assert "shout" in listed.stdout and "worker" in listed.stdout


def test_allow_list_limits_loaded_plugins(installed_plugin: None) -> None:
    out = _run(
        "from engram import plugins; print(sorted(plugins.iter_plugin_names()))",
        ENGRAM_LOAD_PLUGINS="shout,policies",
    )
    assert out == "['policies', 'shout']"
    out = _run(
        "from engram import plugins; print(sorted(plugins.iter_plugin_names()))", ENGRAM_LOAD_PLUGINS=""
    )
    assert out == "[]"


def test_allow_list_naming_a_missing_plugin_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_LOAD_PLUGINS", "policies,does_not_exist")
    plugins.reset_plugin_manager()
    try:
        with pytest.raises(ConfigurationError, match="does_not_exist"):
            plugins.get_plugin_manager()
    finally:
        monkeypatch.delenv("ENGRAM_LOAD_PLUGINS")
        plugins.reset_plugin_manager()


def test_misspelled_hook_is_rejected_by_check_pending() -> None:
    class Typo:
        @hookimpl
        def register_embedder(self, register: object) -> None:  # missing "s"
            pass

    pm = plugins.get_plugin_manager()
    pm.register(Typo(), name="typo")
    try:
        with pytest.raises(pluggy.PluginValidationError):
            pm.check_pending()
    finally:
        pm.unregister(name="typo")


def test_bad_registrations_are_plugin_errors() -> None:
    class Bad:
        @hookimpl
        def register_embedders(self, register: object) -> None:
            register("no-factory")  # type: ignore[operator]

        @hookimpl
        def register_redactors(self, register: object) -> None:
            register(object())  # type: ignore[operator]

    pm = plugins.get_plugin_manager()
    pm.register(Bad(), name="bad")
    try:
        with pytest.raises(PluginError, match="register_embedders"):
            plugins.embedder_factories()
        with pytest.raises(PluginError, match="register_redactors"):
            plugins.redactors()
    finally:
        pm.unregister(name="bad")


def test_failing_observer_does_not_break_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @hookimpl
        def recall_traced(self, trace: object) -> None:
            raise RuntimeError("observer bug")

    pm = plugins.get_plugin_manager()
    pm.register(Broken(), name="broken")
    try:
        plugins.notify("recall_traced", trace=object())
        assert "observer bug" in caplog.text
    finally:
        pm.unregister(name="broken")


def test_kernel_import_is_light() -> None:
    out = _run(
        """
        import sys, engram
        heavy = ["torch", "openai", "anthropic", "langchain", "langchain_core", "llama_index",
                 "sentence_transformers", "transformers", "numpy"]
        print(sorted(h for h in heavy if h in sys.modules))
        """
    )
    assert out == "[]"


def test_every_hook_has_a_test() -> None:
    """Datasette's rule: a hook nobody tests is a hook that silently breaks."""
    hooks = [
        name for name in dir(hookspecs) if getattr(getattr(hookspecs, name), "engram_spec", None) is not None
    ]
    assert {"register_embedders", "register_policies", "recall_traced"} <= set(hooks)
    # This file is excluded: naming a hook here must not count as testing it.
    sources = "\n".join(p.read_text() for p in HERE.rglob("test_*.py") if p.name != "test_plugins.py")
    sources += "\n".join(p.read_text() for p in (HERE / "plugin_pkgs").rglob("*.py"))
    untested = [h for h in hooks if not re.search(rf"\b{h}\b", sources)]
    assert untested == []
