-- The vault's data keys, each wrapped (AES-256-GCM) under a subkey of ENCRYPTION_KEY.
CREATE TABLE vault_keys (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id >= 1),
    wrapped    TEXT    NOT NULL CHECK (length(wrapped) <= 512),
    created_at INTEGER NOT NULL
) STRICT;
