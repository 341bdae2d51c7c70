-- Long-input chunks are embedded by memory workers: a third job kind.
ALTER TABLE memory_jobs DROP CONSTRAINT memory_jobs_kind_check;
ALTER TABLE memory_jobs ADD CONSTRAINT memory_jobs_kind_check
    CHECK (kind IN ('derive', 'checkpoint', 'embed_chunks'));
