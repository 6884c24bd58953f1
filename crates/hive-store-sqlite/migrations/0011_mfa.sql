-- Second factors. One TOTP credential per user: pending (enabled_at NULL) until its first
-- valid code, its seed sealed by the vault. `last_used_step` makes every step single use;
-- `failed_step` and `failures` count wrong codes within one step (the lockout).
CREATE TABLE totp_credentials (
    user_id        TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seed           TEXT    NOT NULL CHECK (length(seed) <= 1024),
    key_id         INTEGER NOT NULL REFERENCES vault_keys (id),
    created_at     INTEGER NOT NULL,
    enabled_at     INTEGER,
    last_used_step INTEGER CHECK (last_used_step >= 0),
    failed_step    INTEGER CHECK (failed_step >= 0),
    failures       INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0)
) STRICT;

-- Recovery codes, stored as SHA-256 hex only; used_at set marks a code spent.
CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL
               CHECK (length(code_hash) = 64 AND code_hash NOT GLOB '*[^0-9a-f]*'),
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    UNIQUE (user_id, code_hash)
) STRICT;
