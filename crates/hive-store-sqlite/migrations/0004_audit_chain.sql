-- The audit log becomes a hash chain: each record holds its place (seq), the hash of the one
-- before and its own keyed hash. Records written before this migration keep NULLs.
ALTER TABLE audit_events ADD COLUMN seq INTEGER;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT CHECK (length(prev_hash) = 64);
ALTER TABLE audit_events ADD COLUMN hash TEXT CHECK (length(hash) = 64);
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);
