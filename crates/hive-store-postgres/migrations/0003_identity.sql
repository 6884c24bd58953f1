-- Identity: accounts, sessions, API tokens, invitations and resets, the audit trail.
-- Tokens are stored as SHA-256 hex only.
CREATE TABLE instance_setup (
    id           smallint    PRIMARY KEY CHECK (id = 1),
    completed_at timestamptz NOT NULL,
    admin_id     uuid        NOT NULL
);

CREATE TABLE users (
    id                   uuid        PRIMARY KEY,
    email                text        NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    display_name         text        NOT NULL CHECK (length(display_name) <= 100),
    role                 text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    active               boolean     NOT NULL,
    password_hash        text        CHECK (length(password_hash) <= 512),
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    last_failure_at      timestamptz,
    failure_day          bigint      NOT NULL DEFAULT 0,
    failures_today       integer     NOT NULL DEFAULT 0
);

CREATE INDEX users_newest ON users (created_at DESC, id DESC);

CREATE TABLE sessions (
    id               uuid        PRIMARY KEY,
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash       text        NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    authenticated_at timestamptz NOT NULL,
    ip               text        NOT NULL CHECK (length(ip) <= 64),
    user_agent       text        NOT NULL CHECK (length(user_agent) <= 256)
);

CREATE INDEX sessions_by_user ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   text        NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    scopes       text        NOT NULL CHECK (length(scopes) <= 64),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at DESC, id DESC);

CREATE TABLE one_time_tokens (
    id         uuid        PRIMARY KEY,
    purpose    text        NOT NULL CHECK (purpose IN ('invitation', 'password_reset')),
    token_hash text        NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    user_id    uuid        REFERENCES users (id) ON DELETE CASCADE,
    email      text        CHECK (length(email) <= 254),
    role       text        CHECK (role IN ('viewer', 'operator', 'admin')),
    created_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX one_time_tokens_expiry ON one_time_tokens (expires_at);

CREATE TABLE audit_events (
    id         uuid        PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text        NOT NULL CHECK (length(actor) <= 100),
    action     text        NOT NULL CHECK (length(action) <= 100),
    target     text        CHECK (length(target) <= 200),
    outcome    text        NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    ip         text        CHECK (length(ip) <= 64),
    request_id text        CHECK (length(request_id) <= 128),
    detail     text        NOT NULL CHECK (length(detail) <= 8192)
);

CREATE INDEX audit_events_newest ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_by_action ON audit_events (action, at DESC, id DESC);
