-- The memory_jobs queue: background derivation (facts, event vectors) and task
-- checkpoints, claimed by memory workers with FOR UPDATE SKIP LOCKED.
--
-- Tenant-first like every other table (primary key and unique index start with
-- user_id), but on Citus it stays a *local* table on the coordinator: SKIP
-- LOCKED only works inside one shard, and a worker's claim, the reaper and the
-- stats read across tenants by design.  Those three statements are the only
-- ones in Engram that do not filter by user_id (see engram/jobs/queue.py).
CREATE TABLE memory_jobs (
    user_id          text NOT NULL,
    agent_id         text NOT NULL,
    job_id           bigint GENERATED ALWAYS AS IDENTITY,
    kind             text NOT NULL CHECK (kind IN ('derive', 'checkpoint')),
    task_id          text,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         smallint NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 1000),
    run_at           timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    heartbeat_at     timestamptz,
    -- Enqueueing the same work twice is a no-op: (user, agent, dedupe_key) is unique.
    dedupe_key       text,
    last_error       text,
    -- [{attempt, at, kind, error, worker}], newest last, capped by the code.
    errors           jsonb NOT NULL DEFAULT '[]'::jsonb,
    result           jsonb,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (user_id, job_id),
    CHECK (state <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

CREATE UNIQUE INDEX memory_jobs_dedupe ON memory_jobs (user_id, agent_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
-- The claim's access path: only due-able rows are in it, so it stays small
-- however much history the table keeps.
CREATE INDEX memory_jobs_ready ON memory_jobs (priority DESC, run_at, job_id) WHERE state = 'queued';
-- The reaper's access path.
CREATE INDEX memory_jobs_leases ON memory_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX memory_jobs_failed ON memory_jobs (user_id, agent_id) WHERE state = 'failed';
CREATE INDEX memory_jobs_finished ON memory_jobs (finished_at) WHERE state IN ('succeeded', 'cancelled');
CREATE INDEX memory_jobs_scope ON memory_jobs (user_id, agent_id, job_id DESC);

-- lineage() walks supersession chains backwards (who did this fact replace?).
CREATE INDEX facts_superseded_by ON facts (user_id, superseded_by) WHERE superseded_by IS NOT NULL;
