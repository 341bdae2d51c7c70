"""The wheel users install holds every kernel package, plugin, adapter and migration.

The suite runs against an editable install, which would not notice a package
missing from pyproject's explicit list; this builds the real wheel and looks inside.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_every_package_and_migration(tmp_path: Path) -> None:
    # Build from a copy so no build/ or egg-info lands in the repository.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".nox", "build", "*.egg-info", "__pycache__", "site", ".pytest_cache"
        ),
    )
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = out.glob("engram_pg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {
        f"engram/{p.relative_to(ROOT / 'engram').as_posix()}" for p in (ROOT / "engram").rglob("*.py")
    }
    for folder, package in (("plugins", None), ("policies", None), ("adapters", None)):
        for p in (ROOT / folder).rglob("*.py"):
            if package is None and "tests" not in p.parts:
                expected.add(p.relative_to(ROOT / folder).as_posix())
    expected |= {f"engram/migrations/{p.name}" for p in (ROOT / "migrations").glob("*.sql")}
    expected.add("engram/py.typed")
    missing = sorted(expected - names)
    assert missing == [], f"not in the wheel: {missing}"
