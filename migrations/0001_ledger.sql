-- The append-only ledger: tasks and their events.
--
-- Tenant-first: every tenant table carries user_id and agent_id, and its primary
-- key and foreign keys start with user_id, so the schema can be distributed by
-- user_id on Citus without a redesign.

-- The one global directory: which (user, agent) owns a task id.  Task ids are
-- unique across tenants so that a caller can never write into (or learn the
-- contents of) a task owned by someone else; the lookup always filters by the
-- caller's user_id.  On Citus this is a reference table.
CREATE TABLE task_owners (
    task_id    text PRIMARY KEY,
    user_id    text NOT NULL,
    agent_id   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_owners_user ON task_owners (user_id, agent_id);

CREATE TABLE tasks (
    user_id    text NOT NULL,
    agent_id   text NOT NULL,
    task_id    text NOT NULL,
    turn_count integer NOT NULL DEFAULT 0,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, task_id)
);
CREATE INDEX tasks_scope ON tasks (user_id, agent_id, updated_at DESC);

CREATE TABLE events (
    user_id     text NOT NULL,
    agent_id    text NOT NULL,
    event_id    bigint GENERATED ALWAYS AS IDENTITY,
    task_id     text NOT NULL,
    role        text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool', 'observation', 'artifact')),
    content     text NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Set only by redact_event; the record says who/why/when, never the secret.
    redacted_at timestamptz,
    redaction   jsonb,
    content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    PRIMARY KEY (user_id, event_id),
    FOREIGN KEY (user_id, task_id) REFERENCES tasks (user_id, task_id)
);
CREATE INDEX events_task ON events (user_id, task_id, event_id);
CREATE INDEX events_scope ON events (user_id, agent_id, event_id DESC);
CREATE INDEX events_tsv ON events USING gin (content_tsv);

-- The database itself keeps the ledger append-only.  Two narrow exceptions are
-- opened per transaction with set_config('engram.ledger_write', ..., true):
--   'redact' lets redact_event rewrite content (and nothing that locates the row),
--   'purge'  lets purge delete a tenant's rows.
-- A transaction-local setting is invisible to other sessions and survives
-- PgBouncer's transaction pooling.  Deployments that cannot use triggers (e.g.
-- Citus without enable_unsafe_triggers) can express the same rule by granting
-- the application role INSERT and SELECT only, with redaction and purge run by a
-- role that also holds UPDATE and DELETE.
CREATE FUNCTION engram_guard_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    mode text := coalesce(current_setting('engram.ledger_write', true), '');
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF mode = 'purge' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'the Engram ledger is append-only: DELETE on % is refused (use purge)', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF mode = 'redact'
           AND NEW.user_id IS NOT DISTINCT FROM OLD.user_id
           AND NEW.agent_id IS NOT DISTINCT FROM OLD.agent_id
           AND NEW.event_id IS NOT DISTINCT FROM OLD.event_id
           AND NEW.task_id IS NOT DISTINCT FROM OLD.task_id
           AND NEW.role IS NOT DISTINCT FROM OLD.role
           AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'the Engram ledger is append-only: UPDATE on % is refused (use redact_event)', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION engram_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the Engram ledger is append-only: TRUNCATE on % is refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION engram_guard_ledger();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION engram_refuse_truncate();
