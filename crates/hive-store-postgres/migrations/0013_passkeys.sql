-- Passkeys (WebAuthn credentials), a few per user. `passkey` is the verifier's JSON document
-- of the credential (COSE public key, algorithm, counter, flags): public data, no private key.
-- `credential_id` (base64url) is unique across users: one authenticator credential, one account.
CREATE TABLE passkeys (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   text        NOT NULL UNIQUE
                    CHECK (char_length(credential_id) <= 1366
                           AND credential_id COLLATE "C" ~ '^[A-Za-z0-9_-]+$'),
    passkey         text        NOT NULL CHECK (octet_length(passkey) <= 16384),
    sign_count      bigint      NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible boolean     NOT NULL,
    backup_state    boolean     NOT NULL,
    name            text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz
);

CREATE INDEX passkeys_by_user ON passkeys (user_id, created_at);
