"""Catalog-driven scans used by the privacy proofs."""

from __future__ import annotations

import asyncpg


async def columns_to_scan(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        """SELECT c.relname AS t, a.attname AS col
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
             AND format_type(a.atttypid, a.atttypmod) IN ('text', 'jsonb', 'tsvector', 'json')
           ORDER BY 1, 2"""
    )
    return [(r["t"], r["col"]) for r in rows]


async def find_everywhere(conn: asyncpg.Connection, needle: str) -> list[str]:
    """Every table.column (any tenant) whose text contains ``needle`` (case-insensitive)."""
    hits: list[str] = []
    for table, col in await columns_to_scan(conn):
        n = await conn.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE strpos(lower("{col}"::text), lower($1)) > 0', needle
        )
        if n:
            hits.append(f"{table}.{col} ({n} rows)")
    return hits


async def rows_of_user(conn: asyncpg.Connection, user_id: str) -> dict[str, int]:
    tables = await conn.fetch(
        """SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id'
           WHERE n.nspname = current_schema() AND c.relkind = 'r'"""
    )
    return {
        r["t"]: await conn.fetchval(f'SELECT count(*) FROM "{r["t"]}" WHERE user_id = $1', user_id)
        for r in tables
    }


async def snapshot_except(conn: asyncpg.Connection, user_id: str) -> dict[str, list[str]]:
    """Every row of every table not belonging to ``user_id``, as canonical JSON text."""
    tables = await conn.fetch(
        """SELECT c.relname AS t, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = 'user_id') AS tenant
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1"""
    )
    out: dict[str, list[str]] = {}
    for r in tables:
        where = "WHERE user_id <> $1" if r["tenant"] else "WHERE $1::text IS NOT NULL"
        rows = await conn.fetch(
            f'SELECT to_jsonb(x)::text AS j FROM "{r["t"]}" x {where} ORDER BY 1', user_id
        )
        out[r["t"]] = [row["j"] for row in rows]
    return out
