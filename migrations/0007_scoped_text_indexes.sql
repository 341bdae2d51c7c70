-- Full-text and trigram indexes that start with the tenant.
--
-- A plain GIN index over content_tsv finds every matching row of every tenant
-- and only then drops the other tenants' rows, so a small tenant's keyword
-- search paid for the whole table (about 25 ms at 1M facts).  With btree_gin the
-- tenant columns live in the same GIN index, and the index scan intersects the
-- tenant's posting list with the terms' lists before touching the heap.
CREATE INDEX facts_scope_tsv ON facts USING gin (user_id, agent_id, content_tsv);
DROP INDEX facts_tsv;
CREATE INDEX facts_scope_trgm ON facts USING gin (user_id, agent_id, content gin_trgm_ops);
DROP INDEX facts_trgm;
CREATE INDEX events_scope_tsv ON events USING gin (user_id, agent_id, content_tsv);
DROP INDEX events_tsv;
CREATE INDEX long_input_chunks_scope_tsv ON long_input_chunks USING gin (user_id, agent_id, content_tsv);
DROP INDEX long_input_chunks_tsv;
