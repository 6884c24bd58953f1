-- The audit log is append-only for Hive itself. No statement of Hive updates a record or a
-- checkpoint, so the database refuses one: a bug or an injected statement cannot rewrite
-- history (someone who owns the database can drop these triggers; `hive audit verify` then
-- finds what they changed). Records are deleted only by retention, and only behind a
-- checkpoint stored first in the same transaction; records older than the chain (no seq) go
-- freely.
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;

CREATE TRIGGER audit_events_cut_behind_a_checkpoint BEFORE DELETE ON audit_events
WHEN OLD.seq IS NOT NULL
    AND OLD.seq > coalesce((SELECT max(seq) FROM audit_checkpoints), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit records are deleted only behind a checkpoint');
END;

CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

CREATE TRIGGER audit_checkpoints_kept BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are kept');
END;
