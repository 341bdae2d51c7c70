-- Vectors for ledger events, written by memory workers (never on the write path),
-- so recall can find a past turn by meaning as well as by keyword.
CREATE TABLE event_vectors (
    user_id         text NOT NULL,
    agent_id        text NOT NULL,
    event_id        bigint NOT NULL,
    embedding       vector NOT NULL,
    embedding_space text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id),
    FOREIGN KEY (user_id, event_id) REFERENCES events (user_id, event_id)
);
CREATE INDEX event_vectors_scope ON event_vectors (user_id, agent_id, embedding_space);

-- Existing embedding spaces get their event index too (new ones get it from
-- ensure_space at connect).
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT space, dimension FROM embedding_spaces LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON event_vectors USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops) WHERE embedding_space = %L',
            'event_vectors_hnsw_' || left(encode(sha256(convert_to(s.space, 'UTF8')), 'hex'), 12), s.dimension, s.space);
    END LOOP;
END $$;
