-- A2A push-notification configs: where to send an owner's task updates. The token and the
-- credentials are sealed by the vault in `secrets` (bound to owner, task and id); `key_id`
-- names the data key. No foreign key to a2a_tasks: tasks may live in memory or Redis. Rows
-- not created, replaced or used within the task TTL are pruned with expired tasks.
CREATE TABLE a2a_push_configs (
    owner       TEXT    NOT NULL CHECK (length(owner) BETWEEN 1 AND 200),
    task_id     TEXT    NOT NULL CHECK (length(task_id) = 36),
    id          TEXT    NOT NULL
                CHECK (length(id) BETWEEN 1 AND 64 AND id NOT GLOB '*[^A-Za-z0-9._-]*'),
    url         TEXT    NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    auth_scheme TEXT    NOT NULL CHECK (length(auth_scheme) <= 64),
    key_id      INTEGER NOT NULL CHECK (key_id BETWEEN 0 AND 4294967295),
    secrets     TEXT    NOT NULL CHECK (length(secrets) <= 16384),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (owner, task_id, id)
) STRICT;

CREATE INDEX a2a_push_configs_by_use ON a2a_push_configs (updated_at);
CREATE INDEX a2a_push_configs_by_key ON a2a_push_configs (key_id);
