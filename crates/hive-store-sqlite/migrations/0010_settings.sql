-- Instance settings an admin edits at run time (the egress allowlist first), one JSON document
-- per name. `version` starts at 1 and grows by one per write: writers name the version they
-- read, so two admins editing at once cannot overwrite each other unseen.
CREATE TABLE settings (
    name       TEXT    PRIMARY KEY NOT NULL
               CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z_.]*'),
    -- json_valid with one argument accepts strict RFC 8259 text only (no JSON5).
    value      TEXT    NOT NULL CHECK (octet_length(value) <= 65536 AND json_valid(value)),
    version    INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL,
    updated_by TEXT    NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 100)
) STRICT;
