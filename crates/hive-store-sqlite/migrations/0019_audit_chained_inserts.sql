-- Every audit record Hive writes is in the hash chain, so the database refuses any other: a
-- record without its place (seq, prev_hash, hash), or one that does not continue the chain's
-- end (the next seq, and the hash of the last record, or of the newest retention checkpoint
-- when retention has just cut, or the genesis hash for the first record). Checking the HMAC
-- needs the key, which the database never has: a row that links correctly but carries a made-up
-- hash is found by `hive audit verify`, as is anything inserted after these triggers are
-- dropped. Hive's writer is the only one (SQLite has one writer), so the end read here is the
-- end the record was hashed against.
CREATE TRIGGER audit_events_chained_only BEFORE INSERT ON audit_events
WHEN NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL
BEGIN
    SELECT RAISE(ABORT, 'audit records are appended to the hash chain only');
END;

CREATE TRIGGER audit_events_continue_the_chain BEFORE INSERT ON audit_events
WHEN NEW.seq IS NOT NULL AND (
    NEW.seq IS NOT coalesce(
        (SELECT seq + 1 FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1),
        (SELECT seq + 1 FROM audit_checkpoints ORDER BY seq DESC LIMIT 1),
        1)
    OR NEW.prev_hash IS NOT coalesce(
        (SELECT hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1),
        (SELECT hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1),
        '0000000000000000000000000000000000000000000000000000000000000000'))
BEGIN
    SELECT RAISE(ABORT, 'an audit record must continue the end of the hash chain');
END;
