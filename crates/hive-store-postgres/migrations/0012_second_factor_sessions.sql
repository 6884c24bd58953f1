-- When a second factor was verified in a session (NULL: not yet, or none needed at login).
ALTER TABLE sessions ADD COLUMN second_factor_at timestamptz;

-- Short-lived state of a sign-in flow kept on the server (OIDC state, nonce and PKCE verifier;
-- WebAuthn challenges), found by the SHA-256 of a random handle the client holds, taken once.
CREATE TABLE auth_challenges (
    key_hash   text        PRIMARY KEY CHECK (key_hash COLLATE "C" ~ '^[0-9a-f]{64}$'),
    purpose    text        NOT NULL CHECK (length(purpose) BETWEEN 1 AND 64),
    user_id    uuid        REFERENCES users (id) ON DELETE CASCADE,
    payload    text        NOT NULL CHECK (length(payload) <= 16384),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX auth_challenges_expiry ON auth_challenges (expires_at);
