-- Identity: accounts, sessions, API tokens, invitations and resets, the audit trail.
-- Times are unix microseconds; tokens are stored as SHA-256 hex only.
CREATE TABLE instance_setup (
    id           INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    completed_at INTEGER NOT NULL,
    admin_id     TEXT    NOT NULL
) STRICT;

CREATE TABLE users (
    id                   TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    email                TEXT    NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    display_name         TEXT    NOT NULL CHECK (length(display_name) <= 100),
    role                 TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    active               INTEGER NOT NULL CHECK (active IN (0, 1)),
    password_hash        TEXT    CHECK (length(password_hash) <= 512),
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_failure_at      INTEGER,
    failure_day          INTEGER NOT NULL DEFAULT 0,
    failures_today       INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX users_newest ON users (created_at DESC, id DESC);

CREATE TABLE sessions (
    id               TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    user_id          TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash       TEXT    NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    authenticated_at INTEGER NOT NULL,
    ip               TEXT    NOT NULL CHECK (length(ip) <= 64),
    user_agent       TEXT    NOT NULL CHECK (length(user_agent) <= 256)
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   TEXT    NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    role         TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    scopes       TEXT    NOT NULL CHECK (length(scopes) <= 64),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at DESC, id DESC);

CREATE TABLE one_time_tokens (
    id         TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    purpose    TEXT    NOT NULL CHECK (purpose IN ('invitation', 'password_reset')),
    token_hash TEXT    NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT    CHECK (length(email) <= 254),
    role       TEXT    CHECK (role IN ('viewer', 'operator', 'admin')),
    created_by TEXT    REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX one_time_tokens_expiry ON one_time_tokens (expires_at);

CREATE TABLE audit_events (
    id         TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL CHECK (length(actor) <= 100),
    action     TEXT    NOT NULL CHECK (length(action) <= 100),
    target     TEXT    CHECK (length(target) <= 200),
    outcome    TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    ip         TEXT    CHECK (length(ip) <= 64),
    request_id TEXT    CHECK (length(request_id) <= 128),
    detail     TEXT    NOT NULL CHECK (length(detail) <= 8192)
) STRICT;

CREATE INDEX audit_events_newest ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_by_action ON audit_events (action, at DESC, id DESC);
