-- Second factors. One TOTP credential per user: pending (enabled_at NULL) until its first
-- valid code, its seed sealed by the vault. `last_used_step` makes every step single use;
-- `failed_step` and `failures` count wrong codes within one step (the lockout).
CREATE TABLE totp_credentials (
    user_id        uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    seed           text        NOT NULL CHECK (length(seed) <= 1024),
    key_id         bigint      NOT NULL REFERENCES vault_keys (id),
    created_at     timestamptz NOT NULL,
    enabled_at     timestamptz,
    last_used_step bigint      CHECK (last_used_step >= 0),
    failed_step    bigint      CHECK (failed_step >= 0),
    failures       integer     NOT NULL DEFAULT 0 CHECK (failures >= 0)
);

-- Recovery codes, stored as SHA-256 hex only; used_at set marks a code spent.
CREATE TABLE recovery_codes (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  text        NOT NULL CHECK (code_hash COLLATE "C" ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL,
    used_at    timestamptz,
    UNIQUE (user_id, code_hash)
);
