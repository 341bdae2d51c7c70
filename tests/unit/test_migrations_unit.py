"""Migrations: applied once, in order, under a lock; edits to applied files are refused."""

from __future__ import annotations

from engram.db.migrate import available_migrations


async def test_files_are_numbered_and_unique() -> None:
    migrations = available_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(versions) and versions[0] == 1
    assert len(set(versions)) == len(versions)
