"""Developer and CI sessions.  `nox -s tests` is the README's test command.

torch is installed first, pinned to the CPU wheel, because sentence-transformers
would otherwise pull a multi-gigabyte CUDA build.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"
PYTHON = "3.11"


def _install(session: nox.Session, extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite on a real PostgreSQL (embedded unless ENGRAM_DATABASE_URL is set)."""
    _install(session, "all,dev")
    session.env["HF_HUB_OFFLINE"] = "1"
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """The tests that need no database, no torch and no local model (tests/unit); runs in seconds."""
    # openai/anthropic: the provider tests drive the real SDKs against a local stand-in server.
    session.install("-e", ".[dev,openai,anthropic]")
    session.env["HF_HUB_OFFLINE"] = "1"
    session.run("pytest", *(session.posargs or ["-q", "tests/unit"]))


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Install Engram with the local model and run `engram demo` on the embedded database."""
    _install(session, "local")
    session.env["HF_HUB_OFFLINE"] = "1"
    session.run("engram", "demo", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict (settings in pyproject.toml) on the kernel, the plugins, the policies and the adapters.

    Every extra is installed so that the SDKs' and frameworks' own types are checked
    against, not silenced.  plugins/, policies/ and adapters/ have no __init__.py,
    so mypy names the packages inside them (engram_openai, ...) as they are imported.
    """
    _install(session, "all,dev")
    session.run("mypy", "engram", "plugins", "policies", "adapters", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings are errors."""
    session.install("-e", ".[dev]")
    session.run("mkdocs", "build", "--strict", "--site-dir", os.path.join(session.create_tmp(), "site"))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (they print figures; nothing is asserted)."""
    _install(session, "local,dev")
    session.env["HF_HUB_OFFLINE"] = "1"
    for script in session.posargs or ["benchmarks/ledger.py"]:
        session.run("python", script)
