-- A2A push-notification configs: where to send an owner's task updates. The token and the
-- credentials are sealed by the vault in `secrets` (bound to owner, task and id); `key_id`
-- names the data key. No foreign key to a2a_tasks: tasks may live in memory or Redis. Rows
-- not created, replaced or used within the task TTL are pruned with expired tasks.
CREATE TABLE a2a_push_configs (
    owner       text        NOT NULL CHECK (char_length(owner) BETWEEN 1 AND 200),
    task_id     uuid        NOT NULL,
    id          text        NOT NULL CHECK (id COLLATE "C" ~ '^[A-Za-z0-9._-]{1,64}$'),
    url         text        NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
    auth_scheme text        NOT NULL CHECK (char_length(auth_scheme) <= 64),
    key_id      bigint      NOT NULL CHECK (key_id BETWEEN 0 AND 4294967295),
    secrets     text        NOT NULL CHECK (octet_length(secrets) <= 16384),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (owner, task_id, id)
);

CREATE INDEX a2a_push_configs_by_use ON a2a_push_configs (updated_at);
CREATE INDEX a2a_push_configs_by_key ON a2a_push_configs (key_id);
