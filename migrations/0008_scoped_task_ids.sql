-- Task ids are scoped by (user_id, agent_id).
--
-- Until now task_owners made every task id global: the first scope to use an id
-- owned it, every other scope was refused with an error that also told it the id
-- existed.  A task is now named by (user_id, agent_id, task_id), so two tenants
-- (or two agents of one user) can each have their own "task-1", and no call can
-- learn anything about an id of another scope.  task_owners, the one table that
-- was not keyed by user_id, goes away.
--
-- Existing rows keep their meaning.  Because task_owners allowed one owner per
-- task id, every tasks row already carries that owner's agent_id, and the events,
-- checkpoints and long inputs of a task were always written with the task's own
-- agent_id; so the wider keys below hold for every existing row, and adding the
-- new foreign keys re-checks exactly that (an inconsistent row written by hand
-- would stop the migration, which then rolls back, rather than lose data).
-- task_owners holds nothing else: Engram wrote an owner row in the same
-- transaction as the task's first event (and so its tasks row), so it records
-- no task that tasks does not.

-- The foreign keys into tasks use its primary key, so they go first.
ALTER TABLE events DROP CONSTRAINT events_user_id_task_id_fkey;
ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_user_id_task_id_fkey;
ALTER TABLE long_inputs DROP CONSTRAINT long_inputs_user_id_task_id_fkey;

ALTER TABLE tasks DROP CONSTRAINT tasks_pkey;
ALTER TABLE tasks ADD CONSTRAINT tasks_pkey PRIMARY KEY (user_id, agent_id, task_id);

ALTER TABLE events ADD CONSTRAINT events_user_id_agent_id_task_id_fkey
    FOREIGN KEY (user_id, agent_id, task_id) REFERENCES tasks (user_id, agent_id, task_id);
ALTER TABLE checkpoints ADD CONSTRAINT checkpoints_user_id_agent_id_task_id_fkey
    FOREIGN KEY (user_id, agent_id, task_id) REFERENCES tasks (user_id, agent_id, task_id);
ALTER TABLE long_inputs ADD CONSTRAINT long_inputs_user_id_agent_id_task_id_fkey
    FOREIGN KEY (user_id, agent_id, task_id) REFERENCES tasks (user_id, agent_id, task_id);

-- Reading a task filters by the whole scope, so its indexes lead with it too.
DROP INDEX events_task;
CREATE INDEX events_task ON events (user_id, agent_id, task_id, event_id);
DROP INDEX checkpoints_task;
CREATE INDEX checkpoints_task ON checkpoints (user_id, agent_id, task_id, checkpoint_id DESC);

DROP TABLE task_owners;
