-- Passkeys (WebAuthn credentials), a few per user. `passkey` is the verifier's JSON document
-- of the credential (COSE public key, algorithm, counter, flags): public data, no private key.
-- `credential_id` (base64url) is unique across users: one authenticator credential, one account.
CREATE TABLE passkeys (
    id              TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   TEXT    NOT NULL UNIQUE
                    CHECK (length(credential_id) BETWEEN 1 AND 1366
                           AND credential_id NOT GLOB '*[^A-Za-z0-9_-]*'),
    passkey         TEXT    NOT NULL CHECK (length(CAST(passkey AS BLOB)) <= 16384),
    sign_count      INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    backup_state    INTEGER NOT NULL CHECK (backup_state IN (0, 1)),
    name            TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
) STRICT;

CREATE INDEX passkeys_by_user ON passkeys (user_id, created_at);
