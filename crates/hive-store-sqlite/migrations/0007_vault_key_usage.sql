-- Per-key encryption counts (AES-GCM with random nonces: at most 2^32 seals per key) and the
-- retirement of keys no value uses any more. Each process reserves blocks of encryptions here
-- before it seals, so the count holds across restarts and replicas.
ALTER TABLE vault_keys ADD COLUMN encryptions_reserved INTEGER NOT NULL DEFAULT 0
    CHECK (encryptions_reserved >= 0);
ALTER TABLE vault_keys ADD COLUMN retired_at INTEGER;

-- Seals made before counting began: at least one per stored value.
UPDATE vault_keys SET encryptions_reserved =
    (SELECT count(*) FROM secrets WHERE secrets.key_id = vault_keys.id);
