-- Conversations: an owner's chat with one agent, and its messages. `owner` is the principal
-- (`user:<uuid>`, `internal`…); `user_id` names the account behind it, if a user, so that the
-- conversation goes with the account, as it goes with the agent. `turn_started_at` is the claim
-- of the turn under way (NULL between turns): replicas claim a turn with one conditional UPDATE.
-- `open_task_id` is the A2A task left waiting for the caller; tasks may live outside the
-- database, so it references nothing. Idle conversations (by `updated_at`) are pruned.
CREATE TABLE conversations (
    id              uuid        PRIMARY KEY,
    owner           text        NOT NULL CHECK (char_length(owner) BETWEEN 1 AND 200),
    user_id         uuid        REFERENCES users (id) ON DELETE CASCADE,
    agent_id        uuid        NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    title           text        NOT NULL CHECK (char_length(title) <= 200),
    open_task_id    uuid,
    turn_started_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, id DESC);
CREATE INDEX conversations_by_owner_agent
    ON conversations (owner, agent_id, updated_at DESC, id DESC);
CREATE INDEX conversations_by_update ON conversations (updated_at);
-- The cascades from agents and users find their rows through these.
CREATE INDEX conversations_by_agent ON conversations (agent_id);
CREATE INDEX conversations_by_user ON conversations (user_id);

-- The messages of a conversation: the caller's and the agent's replies, text only (a longer
-- reply is cut and `truncated` set). `state` is the A2A task's state after a reply, empty
-- otherwise; `task_id` references nothing, like `open_task_id`.
CREATE TABLE conversation_messages (
    id              uuid        PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    author          text        NOT NULL CHECK (author IN ('user', 'agent')),
    text            text        NOT NULL CHECK (octet_length(text) <= 262144),
    truncated       boolean     NOT NULL,
    task_id         uuid,
    state           text        NOT NULL CHECK (char_length(state) <= 32),
    created_at      timestamptz NOT NULL
);

CREATE INDEX conversation_messages_newest
    ON conversation_messages (conversation_id, created_at DESC, id DESC);
