-- When a second factor was verified in a session (NULL: not yet, or none needed at login).
ALTER TABLE sessions ADD COLUMN second_factor_at INTEGER;

-- Short-lived state of a sign-in flow kept on the server (OIDC state, nonce and PKCE verifier;
-- WebAuthn challenges), found by the SHA-256 of a random handle the client holds, taken once.
CREATE TABLE auth_challenges (
    key_hash   TEXT    PRIMARY KEY NOT NULL
               CHECK (length(key_hash) = 64 AND key_hash NOT GLOB '*[^0-9a-f]*'),
    purpose    TEXT    NOT NULL CHECK (length(purpose) BETWEEN 1 AND 64),
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    payload    TEXT    NOT NULL CHECK (length(payload) <= 16384),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX auth_challenges_expiry ON auth_challenges (expires_at);
