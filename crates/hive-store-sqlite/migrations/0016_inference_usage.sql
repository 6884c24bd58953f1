-- Inference usage: the tokens of each call of an `llm` agent. Rows outlive the agent (billing
-- reads this history), so `agent_id` references nothing. `principal` is who the call was made
-- for, as the audit log names them (`user:<uuid>`, `token:<uuid>`…).
CREATE TABLE inference_usage (
    id                TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    agent_id          TEXT    NOT NULL CHECK (length(agent_id) = 36),
    principal         TEXT    NOT NULL CHECK (length(principal) BETWEEN 1 AND 200),
    model             TEXT    NOT NULL CHECK (length(model) <= 200),
    prompt_tokens     INTEGER NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),
    created_at        INTEGER NOT NULL
) STRICT;

-- The daily budget sums an agent's rows since the day began; lists page an agent's rows.
CREATE INDEX inference_usage_by_agent ON inference_usage (agent_id, created_at DESC, id DESC);
