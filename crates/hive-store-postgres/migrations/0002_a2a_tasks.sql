-- A2A tasks (A2A_TASK_STORE=db).
CREATE TABLE a2a_tasks (
    id          uuid        PRIMARY KEY,
    owner       text        NOT NULL CHECK (length(owner) BETWEEN 1 AND 200),
    agent_id    text        NOT NULL CHECK (length(agent_id) BETWEEN 1 AND 200),
    context_id  text        NOT NULL CHECK (length(context_id) BETWEEN 1 AND 200),
    status_time timestamptz NOT NULL,
    document    text        NOT NULL CHECK (length(document) <= 4194304),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX a2a_tasks_by_owner_newest ON a2a_tasks (owner, status_time DESC, id DESC);
CREATE INDEX a2a_tasks_expiry ON a2a_tasks (expires_at);
