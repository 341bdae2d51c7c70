"""Keyword search with IDF weighting, shared by every table with a ``content_tsv`` column.

PostgreSQL's ``ts_rank_cd`` has no notion of how rare a term is, so in a
conversation where a speaker's name appears in every turn, that name counts as
much as the one rare word the question is really about.  Here each query
lexeme is weighted by its inverse document frequency *within the caller's
scope* (the BM25 form, ``ln(1 + (N - df + 0.5) / (df + 0.5))``), and a row's score
is the sum of the weights of the query lexemes it contains, with ``ts_rank_cd``
breaking ties.  Any query term may match (OR semantics): recall wants a row that
matches two of five terms ranked, not dropped.

The work per query is bounded whatever the tenant's size:

- The scope's newest ``SAMPLE_ROWS`` rows are read through the tenant btree.
  Most scopes are no larger, and then that read is the whole search: exact,
  and no full-text index is touched.
- In a larger scope, the sample tells which terms are common there.  Each
  uncommon term fetches at most ``per_term`` matching rows through the
  tenant-first GIN index (``LIMIT`` without ``ORDER BY``, so heap visits stop
  there); below that bound its document frequency is exact.  Common terms are
  not looked up (their frequency is estimated from the sample): a row matching
  only words that are everywhere scores low, and looking them up is where the
  time would go.
- The query's terms are bounded (:mod:`engram.search.terms`): a long query is
  cut down to its ``MAX_SEARCH_TERMS`` most informative words
  (``bounded_query_text``; a short one is searched as written), and the
  statement uses at most ``MAX_SEARCH_LEXEMES`` lexemes (longest first)
  whatever text it is given.  Every lexeme costs a pass over
  the sample and a step of the tie-break's cover-density walk for each
  candidate row, so without this bound an 8,192-character query took seconds.
- The scope size is a count capped at ``COUNT_CAP``: past it every weight uses the
  same capped size, which keeps their order; only the best ``4 k`` rows by IDF get
  the (costlier) ``ts_rank_cd`` tie-break.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from .terms import MAX_SEARCH_LEXEMES, bounded_query_text

#: Table -> id column, for tables with a generated ``content_tsv``.
KEYWORD_TABLES: dict[str, str] = {"facts": "fact_id", "events": "event_id", "long_input_chunks": "chunk_id"}
COUNT_CAP = 20_000
SAMPLE_ROWS = 1_000


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
    per_term: int = 500,
    sample_rows: int = SAMPLE_ROWS,
) -> list[tuple[Any, float]]:
    """The k best rows of the scope for ``query``: (id, score), best first.

    ``extra_filter`` is trusted SQL over the table's columns; it may use the
    parameters ``$6``, ``$7``, ... bound from ``extra_args``.
    """
    if KEYWORD_TABLES.get(table) != id_column:
        raise ValueError(f"not a keyword table: {table}.{id_column}")
    query = bounded_query_text(query)
    scope = f"user_id = $1 AND agent_id = $2 AND ({extra_filter})"
    sample_rows = int(sample_rows)  # inlined: the planner sizes the sample from it
    rows = await conn.fetch(
        f"""
        WITH q AS MATERIALIZED (
            SELECT lex, quote_literal(lex)::tsquery AS tq
            FROM unnest(tsvector_to_array(to_tsvector('english', $3))) AS lex
            ORDER BY length(lex) DESC, lex LIMIT {MAX_SEARCH_LEXEMES}
        ),
        sample AS MATERIALIZED (
            SELECT {id_column} AS id, content_tsv FROM {table}
            WHERE {scope} ORDER BY {id_column} DESC LIMIT {sample_rows + 1}
        ),
        sampled AS MATERIALIZED (
            SELECT count(*)::float8 AS rows, count(*) <= {sample_rows} AS whole FROM sample
        ),
        n AS MATERIALIZED (
            SELECT CASE WHEN (SELECT whole FROM sampled) THEN (SELECT rows FROM sampled)
                   ELSE (SELECT count(*)::float8 FROM (
                             SELECT 1 FROM {table} WHERE {scope} LIMIT {COUNT_CAP}) s)
                   END AS n
        ),
        freq AS MATERIALIZED (
            SELECT q.lex, q.tq,
                   (SELECT count(*) FROM sample s WHERE s.content_tsv @@ q.tq)::float8
                       / greatest((SELECT rows FROM sampled), 1) AS share
            FROM q
        ),
        looked_up AS MATERIALIZED (
            SELECT f.lex, h.id, h.content_tsv
            FROM freq f, LATERAL (
                SELECT {id_column} AS id, content_tsv FROM {table}
                WHERE {scope} AND content_tsv @@ f.tq LIMIT $5
            ) h
            WHERE NOT (SELECT whole FROM sampled) AND f.share * (SELECT n FROM n) < $5
        ),
        w AS MATERIALIZED (
            SELECT f.tq,
                   ln(1 + ((SELECT n FROM n) - d.df + 0.5) / (d.df + 0.5)) AS idf
            FROM freq f, LATERAL (
                SELECT CASE
                    WHEN (SELECT whole FROM sampled) THEN f.share * (SELECT rows FROM sampled)
                    ELSE greatest(
                        (SELECT count(*) FROM looked_up l WHERE l.lex = f.lex)::float8,
                        CASE WHEN (SELECT count(*) FROM looked_up l WHERE l.lex = f.lex) >= $5
                                  OR f.share * (SELECT n FROM n) >= $5
                             THEN f.share * (SELECT n FROM n) ELSE 0 END)
                    END AS df
            ) d
            WHERE d.df > 0
        ),
        matched AS MATERIALIZED (
            SELECT DISTINCT ON (id) id, content_tsv FROM (
                SELECT s.id, s.content_tsv FROM sample s
                WHERE EXISTS (SELECT 1 FROM w WHERE s.content_tsv @@ w.tq)
                UNION ALL
                SELECT l.id, l.content_tsv FROM looked_up l
            ) u
        ),
        scored AS MATERIALIZED (
            SELECT m.id, sum(w.idf) AS score FROM matched m JOIN w ON m.content_tsv @@ w.tq
            GROUP BY m.id ORDER BY score DESC, m.id DESC LIMIT 4 * $4
        ),
        anyq AS MATERIALIZED (
            SELECT string_agg(quote_literal(lex), ' | ')::tsquery AS tq FROM q
        )
        SELECT s.id, s.score, ts_rank_cd(m.content_tsv, (SELECT tq FROM anyq), 1) AS tie
        FROM scored s JOIN matched m ON m.id = s.id
        ORDER BY s.score DESC, tie DESC, s.id DESC
        LIMIT $4
        """,
        user_id,
        agent_id,
        query,
        k,
        per_term,
        *extra_args,
    )
    return [(r["id"], float(r["score"])) for r in rows]
