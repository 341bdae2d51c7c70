"""Keyword search with IDF weighting, shared by every table with a ``content_tsv`` column.

PostgreSQL's ``ts_rank_cd`` has no notion of how rare a term is, so in a
conversation where a speaker's name appears in every turn, that name counts as
much as the one rare word the question is really about.  Here each query
lexeme is weighted by its inverse document frequency *within the caller's
scope* (the BM25 form, ``ln(1 + (N - df + 0.5) / (df + 0.5))``), and a row's score
is the sum of the weights of the query lexemes it contains, with ``ts_rank_cd``
breaking ties.  Any query term may match (OR semantics): recall wants a row that
matches two of five terms ranked, not dropped.

One index scan finds the matching rows (only the newest ``max_ranked`` are
kept); term frequencies are counted over that set, and the scope size is a
bounded count, so a huge tenant costs a bounded amount of work per query.
"""

from __future__ import annotations

from typing import Any

import asyncpg

#: Table -> (id column, content column), for tables with a generated ``content_tsv``.
KEYWORD_TABLES: dict[str, str] = {"facts": "fact_id", "events": "event_id", "long_input_chunks": "chunk_id"}
COUNT_CAP = 100_000


async def keyword_search(
    conn: asyncpg.Connection,
    *,
    table: str,
    id_column: str,
    user_id: str,
    agent_id: str,
    query: str,
    k: int,
    extra_filter: str = "TRUE",
    extra_args: tuple[object, ...] = (),
    max_ranked: int = 2_000,
) -> list[tuple[Any, float]]:
    """The k best rows of the scope for ``query``: (id, score), best first.

    ``extra_filter`` is trusted SQL over the table's columns; it may use the
    parameters ``$6``, ``$7``, ... bound from ``extra_args``.
    """
    if KEYWORD_TABLES.get(table) != id_column:
        raise ValueError(f"not a keyword table: {table}.{id_column}")
    scope = f"user_id = $1 AND agent_id = $2 AND ({extra_filter})"
    rows = await conn.fetch(
        f"""
        WITH q AS MATERIALIZED (
            SELECT DISTINCT lex, quote_literal(lex)::tsquery AS tq
            FROM unnest(tsvector_to_array(to_tsvector('english', $3))) AS lex
        ),
        anyq AS MATERIALIZED (
            SELECT string_agg(quote_literal(lex), ' | ')::tsquery AS tq FROM q
        ),
        n AS MATERIALIZED (
            SELECT count(*)::float8 AS n FROM (SELECT 1 FROM {table} WHERE {scope} LIMIT {COUNT_CAP}) s
        ),
        matched AS MATERIALIZED (
            SELECT {id_column} AS id, content_tsv FROM {table}
            WHERE {scope} AND (SELECT tq FROM anyq) IS NOT NULL AND content_tsv @@ (SELECT tq FROM anyq)
            ORDER BY {id_column} DESC LIMIT $5
        ),
        w AS MATERIALIZED (
            -- Every row containing a query term is in `matched` (OR semantics), so
            -- document frequencies come from it without another index scan; for a
            -- scope with more than max_ranked matches they describe the newest ones.
            SELECT q.tq, ln(1 + ((SELECT n FROM n) - d.df + 0.5) / (d.df + 0.5)) AS idf
            FROM q, LATERAL (SELECT count(*)::float8 AS df FROM matched m WHERE m.content_tsv @@ q.tq) d
        )
        SELECT m.id, sum(w.idf) AS score, max(ts_rank_cd(m.content_tsv, (SELECT tq FROM anyq), 1)) AS tie
        FROM matched m JOIN w ON m.content_tsv @@ w.tq
        GROUP BY m.id
        ORDER BY score DESC, tie DESC, m.id DESC
        LIMIT $4
        """,
        user_id,
        agent_id,
        query,
        k,
        max_ranked,
        *extra_args,
    )
    return [(r["id"], float(r["score"])) for r in rows]
