-- The audit trail is queried by actor, target and outcome (action has its index since 0003).
CREATE INDEX audit_events_by_actor ON audit_events (actor, at DESC, id DESC);
CREATE INDEX audit_events_by_target ON audit_events (target, at DESC, id DESC);
CREATE INDEX audit_events_by_outcome ON audit_events (outcome, at DESC, id DESC);
-- Export walks the records older than the chain first; few or none remain.
CREATE INDEX audit_events_unchained ON audit_events (at, id) WHERE seq IS NULL;

-- Retention deletes the chain's oldest records. Each cut leaves a checkpoint: the seq and hash
-- of the last deleted record, HMAC-signed with the audit-chain key, so verification resumes
-- there and a deletion without a valid checkpoint still shows as a break.
CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
    hash       TEXT    NOT NULL CHECK (length(hash) = 64),
    at         INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    signature  TEXT    NOT NULL CHECK (length(signature) = 64)
) STRICT;
