-- Every audit record Hive writes is in the hash chain, so the database refuses any other: a
-- record without its place (seq, prev_hash, hash), or one that does not continue the chain's
-- end (the next seq, and the hash of the last record, or of the newest retention checkpoint
-- when retention has just cut, or the genesis hash for the first record). Checking the HMAC
-- needs the key, which the database never has: a row that links correctly but carries a made-up
-- hash is found by `hive audit verify`, as is anything inserted after this trigger is dropped.
--
-- Concurrency: Hive appends under a transaction-scoped advisory lock held to the commit, and
-- the trigger runs after it is taken; under READ COMMITTED each query here sees every append
-- committed before it, so the end it reads is the end the record was hashed against. A writer
-- that skips the lock and races an append picks the same seq and is refused by the unique
-- index on seq.
CREATE FUNCTION hive_audit_guard_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    end_seq bigint;
    end_hash text;
BEGIN
    IF NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL THEN
        RAISE EXCEPTION 'audit records are appended to the hash chain only';
    END IF;
    SELECT seq, hash INTO end_seq, end_hash FROM audit_events
        WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT seq, hash INTO end_seq, end_hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1;
        IF NOT FOUND THEN
            end_seq := 0;
            end_hash := repeat('0', 64);
        END IF;
    END IF;
    IF NEW.seq <> end_seq + 1 OR NEW.prev_hash <> end_hash THEN
        RAISE EXCEPTION 'an audit record must continue the end of the hash chain';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_events_chained_only BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION hive_audit_guard_insert();
