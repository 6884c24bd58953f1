-- The audit log is append-only for Hive itself. No statement of Hive updates a record or a
-- checkpoint, so the database refuses one: a bug or an injected statement cannot rewrite
-- history (someone who owns the database can drop these triggers; `hive audit verify` then
-- finds what they changed). Records are deleted only by retention, and only behind a
-- checkpoint stored first in the same transaction; records older than the chain (no seq) go
-- freely.
CREATE FUNCTION hive_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit % rows are append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;

CREATE FUNCTION hive_audit_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq IS NOT NULL
        AND OLD.seq > coalesce((SELECT max(seq) FROM audit_checkpoints), 0) THEN
        RAISE EXCEPTION 'audit records are deleted only behind a checkpoint';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION hive_audit_refuse_change();
CREATE TRIGGER audit_events_cut_behind_a_checkpoint BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION hive_audit_guard_delete();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION hive_audit_refuse_change();
