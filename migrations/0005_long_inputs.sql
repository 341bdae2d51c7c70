-- Long inputs: documents stored once per scope, cut into citable chunks.
--
-- A document's text lives in long_inputs exactly as it was given (never
-- normalised, never redacted by policy), so that the character offsets of its
-- chunks and of verified quotes point into the original.  The ledger holds only
-- a bounded 'artifact' event per ingest that references the document by id.
-- Tenant-first like every other table: primary keys, unique indexes and foreign
-- keys start with user_id.

CREATE TABLE long_inputs (
    user_id              text NOT NULL,
    agent_id             text NOT NULL,
    long_input_id        text NOT NULL,          -- "li_" + 20 hex digits, random
    task_id              text NOT NULL,          -- the task that first recorded it
    event_id             bigint NOT NULL,        -- that task's artifact event
    title                text,
    source               text,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    sha256               text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    text                 text NOT NULL,
    char_count           integer NOT NULL CHECK (char_count > 0),
    format               text NOT NULL CHECK (format IN ('text', 'markdown')),
    -- The chunking settings used, so the chunks can be reproduced (and checked)
    -- from the text alone even after the policy's defaults change.
    chunk_max_tokens     integer NOT NULL,
    chunk_overlap_tokens integer NOT NULL,
    chunk_count          integer NOT NULL CHECK (chunk_count > 0),
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Set when every chunk has a vector in the active embedding space.
    embedded_at          timestamptz,
    PRIMARY KEY (user_id, long_input_id),
    FOREIGN KEY (user_id, task_id) REFERENCES tasks (user_id, task_id),
    FOREIGN KEY (user_id, event_id) REFERENCES events (user_id, event_id)
);
-- An identical document in the same scope is recognised, not stored again.
CREATE UNIQUE INDEX long_inputs_one_per_scope ON long_inputs (user_id, agent_id, sha256);
CREATE INDEX long_inputs_scope ON long_inputs (user_id, agent_id, created_at DESC);

CREATE TABLE long_input_chunks (
    user_id         text NOT NULL,
    agent_id        text NOT NULL,
    long_input_id   text NOT NULL,
    -- Derived from the document's sha256 and the chunk's position (see
    -- docs/citations.md), so the same document ingested by two agents of one user
    -- yields the same chunk ids: the key therefore includes agent_id.
    chunk_id        text NOT NULL,
    ordinal         integer NOT NULL CHECK (ordinal >= 0),
    start_offset    integer NOT NULL CHECK (start_offset >= 0),
    end_offset      integer NOT NULL CHECK (end_offset > start_offset),
    text            text NOT NULL,
    quote_hash      text NOT NULL,
    token_count     integer NOT NULL CHECK (token_count > 0),
    heading         text,
    -- No fixed dimension (as for facts): each embedding space gets a partial HNSW
    -- index over a halfvec cast of its dimension (engram/vectors.py).  NULL until
    -- a worker (or record_long_input(embed_inline=True)) embeds the chunk.
    embedding       vector,
    embedding_space text,
    content_tsv     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(heading, '')), 'B') || to_tsvector('english', text)
    ) STORED,
    PRIMARY KEY (user_id, agent_id, chunk_id),
    UNIQUE (user_id, long_input_id, ordinal),
    FOREIGN KEY (user_id, long_input_id) REFERENCES long_inputs (user_id, long_input_id)
);
CREATE INDEX long_input_chunks_tsv ON long_input_chunks USING gin (content_tsv);
-- embed_pending_chunks' access path: the scope's chunks still without a vector.
CREATE INDEX long_input_chunks_pending ON long_input_chunks (user_id, agent_id, long_input_id, ordinal)
    WHERE embedding IS NULL;
CREATE INDEX long_input_chunks_reembed ON long_input_chunks (embedding_space, user_id);

-- Existing embedding spaces get their chunk index now (new ones get it from
-- ensure_space at connect).  Name and expression must match
-- EmbeddingSpace.index_name / vector_sql.
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT space, dimension FROM embedding_spaces LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON long_input_chunks USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops) WHERE embedding_space = %L',
            'long_input_chunks_hnsw_' || left(encode(sha256(convert_to(s.space, 'UTF8')), 'hex'), 12), s.dimension, s.space);
    END LOOP;
END $$;
