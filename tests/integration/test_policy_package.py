"""The example policy package (``examples/policy_package``), installed for real.

The package is pip-installed into this interpreter's environment, exactly as a
user would install a third-party policy, and exercised in subprocesses: a fresh
interpreter re-reads the ``engram`` entry points, so what is tested is discovery
through packaging metadata rather than an in-process registration.  Teardown
uninstalls it again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from engram import plugins

EXAMPLE = Path(__file__).parents[2] / "examples" / "policy_package"
DISTRIBUTION = "engram-policy-veterinary"
TIMEOUT = 300


def _env(**overrides: str) -> dict[str, str]:
    """This process's environment without a plugin allow-list, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k != "ENGRAM_LOAD_PLUGINS"}
    env.update(overrides)
    return env


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (``args`` become ``sys.argv[1:]``)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=TIMEOUT,
    )


def _last_json_line(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the example, so building it leaves no build/ or egg-info in the repository."""
    target = tmp_path_factory.mktemp("policy_package") / "policy_package"
    shutil.copytree(
        EXAMPLE, target, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    )
    return target


@pytest.fixture(scope="module")
def installed_package(package_copy: Path) -> Iterator[Path]:
    """pip-install the example policy package into this environment; uninstall it afterwards."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            str(package_copy),
        ],
        check=True,
        timeout=TIMEOUT,
    )
    try:
        yield package_copy
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", DISTRIBUTION],
            check=True,
            timeout=TIMEOUT,
        )
        plugins.reset_plugin_manager()


def test_installed_policy_works_end_to_end(
    installed_package: Path, database_url: str, scope: dict[str, str]
) -> None:
    """Record a consultation, let the memory worker extract slots, recall an unrelated question."""
    task_id = f"{scope['user_id']}-vet-visit"
    result = _python(
        """
        import asyncio, json, sys
        from engram import Engram

        DSN, TASK, SCOPE = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

        async def drain(memory):
            done = 0
            for _ in range(10):
                processed = await memory.process_jobs()
                done += processed
                if processed == 0:
                    break
            return done

        async def main():
            async with Engram(DSN, memory_policy="veterinary_clinic", embedder="hashing") as memory:
                await memory.record_turn(
                    TASK,
                    user_message=(
                        "Hi, I'm here about my dog, Biscuit. I'm Maria Lopez, Biscuit's owner; "
                        "my phone is +44 7700 900123. She is allergic to penicillin. "
                        "She's currently on meloxicam 1.5 mg once daily. Biscuit weighs 24.5 kg."
                    ),
                    assistant_response="Thanks, I've noted that for Biscuit's consultation.",
                    enqueue_processing=True,
                    **SCOPE,
                )
                first = await drain(memory)
                await memory.record_turn(
                    TASK,
                    user_message="Quick update: Biscuit now weighs 26 kg.",
                    assistant_response="Updated.",
                    enqueue_processing=True,
                    **SCOPE,
                )
                second = await drain(memory)
                trace = await memory.trace_recall("What time does the clinic open on Saturday?", **SCOPE)
                events = await memory.get_task_events(TASK, **SCOPE)
                weights = await memory.list_facts(slot="patient_weight", status=None, **SCOPE)
                stats = await memory.job_stats(**SCOPE)
            return {
                "processed": [first, second],
                "policy": trace.policy,
                "context": trace.context,
                "stored": events[0].content,
                "weights": [(f.content, f.status) for f in weights],
                "jobs": stats.model_dump(mode="json"),
            }

        print(json.dumps(asyncio.run(main())))
        """,
        database_url,
        task_id,
        json.dumps(scope),
    )
    out = _last_json_line(result)
    assert isinstance(out, dict)
    assert out["processed"][0] >= 1 and out["processed"][1] >= 1, out["jobs"]
    assert out["policy"] == "veterinary_clinic"
    # The question is about opening hours, yet every pinned slot value leads the context
    # (within the section, lines are ordered by fused score, not by the policy's slot order).
    assert out["context"].startswith("## Pinned facts\n- "), out["context"]
    pinned = out["context"].split("\n\n", 1)[0].splitlines()[1:]
    assert sorted(pinned) == sorted(
        [
            "- patient name: Biscuit",
            "- species: dog",
            "- owner: Maria Lopez",
            "- patient allergies: penicillin",
            "- patient medication: meloxicam 1.5 mg once daily",
            "- patient weight: 26 kg",
        ]
    ), out["context"]
    # The newer weight superseded the old one, which is kept with its status for lineage.
    assert sorted(out["weights"]) == [
        ["patient weight: 24.5 kg", "superseded"],
        ["patient weight: 26 kg", "active"],
    ]
    # before_storage redaction: the owner's phone number never reached the ledger.
    assert "7700 900123" not in out["stored"]
    assert "[REDACTED:phone_number]" in out["stored"]


def test_cli_lists_the_policy_with_its_distribution(installed_package: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from engram.cli import main; main()", "policies"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("veterinary_clinic "))
    assert lines[header].split() == ["veterinary_clinic", "from", DISTRIBUTION, "0.1.0"]
    assert lines[header + 1].strip().startswith("Veterinary practices.")
    assert lines[header + 2].strip() == (
        "critical slots: patient_name, species, owner, patient_allergies, patient_medication, patient_weight"
    )
    assert any(line.startswith("default ") for line in lines)  # the built-ins are still there


def test_allow_list_decides_whether_the_package_loads(installed_package: Path) -> None:
    code = """
        import json
        from engram import Engram, plugins
        from engram.errors import ConfigurationError

        try:
            Engram("postgresql://unused", memory_policy="veterinary_clinic")
            error = None
        except ConfigurationError as exc:
            error = str(exc)
        print(json.dumps({"policies": sorted(plugins.policies()), "error": error}))
        """
    # The allow-list the guide recommends for a service that uses only this policy.
    allowed = _last_json_line(
        _python(code, ENGRAM_LOAD_PLUGINS="veterinary,strategies,redactors,rules,hashing")
    )
    assert isinstance(allowed, dict)
    assert allowed["policies"] == ["veterinary_clinic"] and allowed["error"] is None
    left_out = _last_json_line(
        _python(code, ENGRAM_LOAD_PLUGINS="policies,strategies,redactors,rules,hashing")
    )
    assert isinstance(left_out, dict)
    assert "veterinary_clinic" not in left_out["policies"]
    assert "unknown memory policy 'veterinary_clinic'" in left_out["error"]
    assert "'legal'" in left_out["error"]  # the error lists what is available


def test_the_packages_own_tests_pass(installed_package: Path) -> None:
    """The offline tests shipped with the example (the guide's "test it" step) pass when installed."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "tests"],
        cwd=installed_package,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
