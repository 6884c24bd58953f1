-- Billing: every billable use is a usage record (the llm calls' table, renamed and widened);
-- a double-entry ledger in integer minor units; holds of calls under way; budgets, their
-- counters and alerts; Stripe customers; per-model prices.
ALTER TABLE inference_usage RENAME TO usage_records;
ALTER INDEX inference_usage_by_agent RENAME TO usage_records_by_agent;
ALTER TABLE usage_records
    ADD COLUMN kind       text   NOT NULL DEFAULT 'llm'
        CHECK (kind IN ('llm', 'hosted_run', 'workflow_step')),
    ADD COLUMN user_id    uuid,
    ADD COLUMN quantity   bigint NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    ADD COLUMN cost_minor bigint NOT NULL DEFAULT 0 CHECK (cost_minor >= 0),
    ADD COLUMN currency   text   NOT NULL DEFAULT 'xxx' CHECK (currency ~ '^[a-z]{3}$');
-- A user's usage, by time (the usage pages and exports).
CREATE INDEX usage_records_by_user ON usage_records (user_id, created_at DESC, id DESC)
    WHERE user_id IS NOT NULL;

-- Accounts: a user's wallet and arrears per currency keep a balance row (the sum of their
-- postings, updated in the transaction that posts); system accounts are summed when read.
CREATE TABLE billing_accounts (
    id            uuid        PRIMARY KEY,
    key           text        NOT NULL UNIQUE,
    kind          text        NOT NULL
        CHECK (kind IN ('wallet', 'arrears', 'funding', 'usage', 'adjustments')),
    user_id       uuid,
    currency      text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    balance_minor bigint      NOT NULL DEFAULT 0,
    held_minor    bigint      NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
    updated_at    timestamptz,
    CHECK ((kind IN ('wallet', 'arrears')) = (user_id IS NOT NULL)),
    CHECK (kind IN ('wallet', 'arrears') OR (balance_minor = 0 AND held_minor = 0)),
    -- A wallet never goes below zero, nor below what is held on it.
    CHECK (kind <> 'wallet' OR balance_minor >= held_minor),
    CHECK (kind <> 'arrears' OR (balance_minor <= 0 AND held_minor = 0))
);

-- One row a transaction, unique on its idempotency key: a redelivered event or a repeated
-- settlement finds its key taken in the same transaction that would make its effect.
CREATE TABLE billing_transactions (
    id              uuid        PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE
        CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    kind            text        NOT NULL
        CHECK (kind IN ('top_up', 'invoice', 'refund', 'usage', 'adjustment')),
    user_id         uuid        NOT NULL,
    currency        text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    amount_minor    bigint      NOT NULL CHECK (amount_minor <> 0),
    reference       text        CHECK (char_length(reference) BETWEEN 1 AND 255),
    memo            text        NOT NULL CHECK (char_length(memo) <= 500),
    actor           text        NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL
);
CREATE INDEX billing_transactions_by_user
    ON billing_transactions (user_id, created_at DESC, id DESC);
CREATE INDEX billing_transactions_by_reference
    ON billing_transactions (kind, reference, created_at) WHERE reference IS NOT NULL;

-- A transaction's lines: they sum to zero (checked by the code that posts and by
-- `verify_books`).
CREATE TABLE billing_postings (
    transaction_id uuid   NOT NULL REFERENCES billing_transactions (id),
    account_id     uuid   NOT NULL REFERENCES billing_accounts (id),
    amount_minor   bigint NOT NULL CHECK (amount_minor <> 0),
    PRIMARY KEY (transaction_id, account_id)
);
CREATE INDEX billing_postings_by_account ON billing_postings (account_id);

-- Budgets: a user's or an agent's tokens and/or cost per UTC day or month.
CREATE TABLE billing_budgets (
    id             uuid        PRIMARY KEY,
    scope          text        NOT NULL CHECK (scope IN ('user', 'agent')),
    scope_id       uuid        NOT NULL,
    period         text        NOT NULL CHECK (period IN ('day', 'month')),
    max_tokens     bigint      CHECK (max_tokens > 0),
    max_cost_minor bigint      CHECK (max_cost_minor > 0),
    notify_user_id uuid        NOT NULL,
    created_by     text        NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 200),
    created_at     timestamptz NOT NULL,
    CHECK (max_tokens IS NOT NULL OR max_cost_minor IS NOT NULL),
    UNIQUE (scope, scope_id, period)
);

-- A budget's use in one period: settled use and what calls under way hold.
CREATE TABLE billing_budget_use (
    budget_id       uuid        NOT NULL REFERENCES billing_budgets (id) ON DELETE CASCADE,
    period_start    timestamptz NOT NULL,
    tokens          bigint      NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    cost_minor      bigint      NOT NULL DEFAULT 0 CHECK (cost_minor >= 0),
    held_tokens     bigint      NOT NULL DEFAULT 0 CHECK (held_tokens >= 0),
    held_cost_minor bigint      NOT NULL DEFAULT 0 CHECK (held_cost_minor >= 0),
    PRIMARY KEY (budget_id, period_start)
);

-- Calls under way: what each holds on its wallet and budgets until it is settled.
CREATE TABLE billing_holds (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    agent_id   uuid        NOT NULL,
    currency   text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    cost_minor bigint      NOT NULL CHECK (cost_minor >= 0),
    tokens     bigint      NOT NULL CHECK (tokens >= 0),
    budgets    text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX billing_holds_by_expiry ON billing_holds (expires_at);

-- A budget's use crossing 80 % and 100 %, once a period each.
CREATE TABLE billing_alerts (
    id           uuid        PRIMARY KEY,
    budget_id    uuid        NOT NULL REFERENCES billing_budgets (id) ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    threshold    integer     NOT NULL CHECK (threshold IN (80, 100)),
    user_id      uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    delivered_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    UNIQUE (budget_id, period_start, threshold)
);
CREATE INDEX billing_alerts_by_user ON billing_alerts (user_id, created_at DESC, id DESC);
CREATE INDEX billing_alerts_undelivered ON billing_alerts (created_at) WHERE delivered_at IS NULL;

-- Stripe customers linked to users (by checkout.session.completed or a checkout Hive made).
CREATE TABLE billing_customers (
    user_id     uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    customer_id text        NOT NULL UNIQUE CHECK (char_length(customer_id) BETWEEN 1 AND 255),
    linked_at   timestamptz NOT NULL
);

-- Per-model token prices, in minor units per 1,000 tokens.
CREATE TABLE billing_prices (
    model                   text        PRIMARY KEY CHECK (char_length(model) BETWEEN 1 AND 200),
    prompt_minor_per_1k     bigint      NOT NULL CHECK (prompt_minor_per_1k >= 0),
    completion_minor_per_1k bigint      NOT NULL CHECK (completion_minor_per_1k >= 0),
    updated_at              timestamptz NOT NULL
);
