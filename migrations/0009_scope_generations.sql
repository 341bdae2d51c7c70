-- The redaction fence: one row per (user_id, agent_id) scope whose derived rows
-- are being written or have been redacted.
--
-- A derived writer (a worker's job, checkpoint(), embed_pending_chunks, a
-- plugin's job handler) reads the scope's generation before it reads its inputs,
-- and inside its write transaction takes the row FOR SHARE and compares: a
-- redact_event (which bumps the row first thing in its transaction) or a purge
-- (which deletes it first) that committed in between makes it write nothing.
-- FOR SHARE also makes a redaction or purge that starts meanwhile wait until the
-- write has committed, so their scrub sees it.  See engram/privacy/fence.py.
--
-- Values come from one sequence and are never reused, so a scope that is purged
-- and then used again cannot hand a stale writer its old value back.
CREATE SEQUENCE scope_generation_seq AS bigint;

CREATE TABLE scope_generations (
    user_id    text   NOT NULL,
    agent_id   text   NOT NULL,
    generation bigint NOT NULL,
    PRIMARY KEY (user_id, agent_id)
);
