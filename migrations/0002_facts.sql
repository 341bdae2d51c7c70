-- Semantic memory: facts, the embedding space they live in, lineage, checkpoints.

-- Which embedder produced the vectors in this database.  Exactly one space is
-- active; a client configured with another embedder is refused at start-up
-- unless ENGRAM_ALLOW_EMBEDDING_DIMENSION_CHANGE=true, in which case facts of
-- the old space are re-embedded by `engram reembed`.  Describes the database,
-- not a tenant.
CREATE TABLE embedding_spaces (
    space      text PRIMARY KEY,          -- "<embedder name>@<dimension>"
    embedder   text NOT NULL,
    dimension  integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    active     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX embedding_spaces_one_active ON embedding_spaces (active) WHERE active;

CREATE TABLE facts (
    user_id         text NOT NULL,
    agent_id        text NOT NULL,
    fact_id         bigint GENERATED ALWAYS AS IDENTITY,
    content         text NOT NULL,
    slot            text,
    category        text,
    confidence      real NOT NULL DEFAULT 0.7 CHECK (confidence BETWEEN 0 AND 1),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded', 'retracted')),
    superseded_by   bigint,
    origin          text NOT NULL DEFAULT 'api',      -- 'api' or 'extractor:<name>'
    task_id         text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    valid_from      timestamptz NOT NULL DEFAULT clock_timestamp(),
    valid_to        timestamptz,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The vector column has no fixed dimension so that a model change does not
    -- need a table rewrite; each space gets its own partial HNSW index over a
    -- halfvec cast of the right dimension (see engram/facts.py).
    embedding       vector,
    embedding_space text,
    content_tsv     tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    PRIMARY KEY (user_id, fact_id),
    FOREIGN KEY (user_id, superseded_by) REFERENCES facts (user_id, fact_id)
);
CREATE INDEX facts_scope_active ON facts (user_id, agent_id, fact_id) WHERE status = 'active';
-- A critical slot holds one current value per scope.
CREATE UNIQUE INDEX facts_one_active_slot ON facts (user_id, agent_id, slot)
    WHERE status = 'active' AND slot IS NOT NULL;
CREATE INDEX facts_tsv ON facts USING gin (content_tsv);
CREATE INDEX facts_trgm ON facts USING gin (content gin_trgm_ops);
CREATE INDEX facts_reembed ON facts (embedding_space, user_id);

-- Lineage: which events (and which spans of them) a fact came from.
CREATE TABLE fact_sources (
    user_id    text NOT NULL,
    agent_id   text NOT NULL,
    fact_id    bigint NOT NULL,
    event_id   bigint NOT NULL,
    span_start integer NOT NULL DEFAULT 0,
    span_end   integer NOT NULL DEFAULT 0,
    quote      text NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, fact_id, event_id, span_start),
    FOREIGN KEY (user_id, fact_id) REFERENCES facts (user_id, fact_id),
    FOREIGN KEY (user_id, event_id) REFERENCES events (user_id, event_id)
);
CREATE INDEX fact_sources_event ON fact_sources (user_id, event_id);

-- Task checkpoints: an extractive or model-written summary of a task so far.
CREATE TABLE checkpoints (
    user_id          text NOT NULL,
    agent_id         text NOT NULL,
    checkpoint_id    bigint GENERATED ALWAYS AS IDENTITY,
    task_id          text NOT NULL,
    summary          text NOT NULL,
    through_event_id bigint NOT NULL,
    turn_count       integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (user_id, checkpoint_id),
    FOREIGN KEY (user_id, task_id) REFERENCES tasks (user_id, task_id)
);
CREATE INDEX checkpoints_task ON checkpoints (user_id, task_id, checkpoint_id DESC);
