-- Workflows published as agents: `agents.kind` also takes 'workflow' (an agent a workflow's
-- a2a trigger makes and keeps; its runtime names the workflow).
--
-- The CHECK is replaced in one ALTER TABLE, as 0022 did, which checks the existing rows against
-- the new one once (every row passes: the new one only adds a word).
ALTER TABLE agents
    DROP CONSTRAINT agents_kind_check,
    ADD CONSTRAINT agents_kind_check
        CHECK (kind IN ('remote', 'llm', 'conformance', 'hosted', 'workflow'));
