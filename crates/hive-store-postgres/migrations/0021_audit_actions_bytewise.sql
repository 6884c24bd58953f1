-- Audit actions compare byte by byte, as on SQLite: the actions under a prefix (`agent.`) then
-- sit together in the action index, so a filter by prefix reads the newest records of each
-- such action instead of walking the whole log newest first (which took some 50 ms at 100,000
-- records when few of them matched). Actions are ASCII names, so no comparison a reader makes
-- changes; the index on the column is rebuilt, the table is not rewritten.
ALTER TABLE audit_events ALTER COLUMN action TYPE text COLLATE "C";
