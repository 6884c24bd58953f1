-- Instance settings an admin edits at run time (the egress allowlist first), one JSON document
-- per name. `version` starts at 1 and grows by one per write: writers name the version they
-- read, so two admins editing at once cannot overwrite each other unseen.
--
-- The value is kept as text, byte for byte as written (jsonb would reorder keys and drop
-- whitespace, and the two backends would return different text). PostgreSQL 15 has no
-- `IS JSON`, and a cast in a CHECK fails with a parse error instead of a check violation, so a
-- function turns the parse into a yes or no.
CREATE FUNCTION hive_is_json(document text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    PERFORM document::json;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END
$$;

CREATE TABLE settings (
    name       text        PRIMARY KEY CHECK (name COLLATE "C" ~ '^[a-z_.]{1,64}$'),
    value      text        NOT NULL CHECK (octet_length(value) <= 65536 AND hive_is_json(value)),
    version    bigint      NOT NULL CHECK (version >= 1),
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 100)
);
