use crate::dialect::SqliteDialect;
use hive_store::sqlx_support::billing::BillingSql;
use hive_store::{alert_columns, budget_columns, hold_columns, ledger_columns, usage_columns};

/// The usage columns summed per group, for the usage reads.
macro_rules! usage_sums {
    () => {
        "kind, count(*) AS records, SUM(prompt_tokens) AS prompt, \
         SUM(completion_tokens) AS completion, SUM(quantity) AS quantity, \
         SUM(cost_minor) AS cost FROM usage_records \
         WHERE user_id = ?1 AND created_at >= ?2 AND created_at < ?3"
    };
}

/// One writer at a time (`BEGIN IMMEDIATE`): every transaction below reads what the last one
/// committed, so nothing needs a row lock.
impl BillingSql for SqliteDialect {
    const INSERT_ENTRY: &'static str = concat!(
        "INSERT INTO billing_transactions (",
        ledger_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (idempotency_key) DO NOTHING"
    );
    const ENSURE_ACCOUNT: &'static str = "INSERT INTO billing_accounts \
         (id, key, kind, user_id, currency) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (key) DO NOTHING";
    const HOLD_ACCOUNT: &'static str = "SELECT id, balance_minor, held_minor \
         FROM billing_accounts WHERE key = ?1";
    const READ_ACCOUNT: &'static str = "SELECT id, balance_minor, held_minor, updated_at \
         FROM billing_accounts WHERE key = ?1";
    const ADD_BALANCE: &'static str = "UPDATE billing_accounts \
         SET balance_minor = balance_minor + ?2, updated_at = ?3 WHERE id = ?1";
    const INSERT_POSTING: &'static str = "INSERT INTO billing_postings \
         (transaction_id, account_id, amount_minor) VALUES (?1, ?2, ?3)";
    const LIST_ENTRIES: &'static str = concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM billing_transactions WHERE user_id = ?1 \
         AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    const ENTRY_BY_KEY: &'static str = concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM billing_transactions WHERE idempotency_key = ?1"
    );
    const ENTRY_BY_REFERENCE: &'static str = concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM billing_transactions WHERE kind = ?1 AND reference = ?2 \
         ORDER BY created_at, id LIMIT 1"
    );
    const ENSURE_BUDGET_USE: &'static str = "INSERT INTO billing_budget_use \
         (budget_id, period_start) SELECT ?1, ?2 WHERE EXISTS \
         (SELECT 1 FROM billing_budgets WHERE id = ?1) \
         ON CONFLICT (budget_id, period_start) DO NOTHING";
    const HOLD_BUDGET: &'static str = "UPDATE billing_budget_use \
         SET held_tokens = held_tokens + ?3, held_cost_minor = held_cost_minor + ?4 \
         WHERE budget_id = ?1 AND period_start = ?2 \
         AND (?5 IS NULL OR tokens + held_tokens + ?3 <= ?5) \
         AND (?6 IS NULL OR cost_minor + held_cost_minor + ?4 <= ?6)";
    const HOLD_WALLET: &'static str = "UPDATE billing_accounts \
         SET held_minor = held_minor + ?2 WHERE key = ?1 AND balance_minor - held_minor \
         + COALESCE((SELECT a.balance_minor FROM billing_accounts a WHERE a.key = ?3), 0) >= ?2";
    const INSERT_HOLD: &'static str = concat!(
        "INSERT INTO billing_holds (",
        hold_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    );
    const TAKE_HOLD: &'static str = concat!(
        "DELETE FROM billing_holds WHERE id = ?1 RETURNING ",
        hold_columns!()
    );
    const RELEASE_WALLET: &'static str = "UPDATE billing_accounts \
         SET held_minor = MAX(held_minor - ?2, 0) WHERE key = ?1";
    const COUNT_BUDGET: &'static str = "UPDATE billing_budget_use SET \
         held_tokens = MAX(held_tokens - ?3, 0), \
         held_cost_minor = MAX(held_cost_minor - ?4, 0), \
         tokens = tokens + ?5, cost_minor = cost_minor + ?6 \
         WHERE budget_id = ?1 AND period_start = ?2 RETURNING tokens, cost_minor";
    const INSERT_ALERT: &'static str = concat!(
        "INSERT INTO billing_alerts (",
        alert_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (budget_id, period_start, threshold) DO NOTHING"
    );
    const EXPIRED_HOLDS: &'static str = concat!(
        "SELECT ",
        hold_columns!(),
        " FROM billing_holds WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2"
    );
    const PUT_BUDGET: &'static str = concat!(
        "INSERT INTO billing_budgets (",
        budget_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (scope, scope_id, period) DO UPDATE SET \
         max_tokens = EXCLUDED.max_tokens, max_cost_minor = EXCLUDED.max_cost_minor, \
         notify_user_id = EXCLUDED.notify_user_id, created_by = EXCLUDED.created_by \
         RETURNING ",
        budget_columns!()
    );
    const DELETE_BUDGET: &'static str = "DELETE FROM billing_budgets WHERE id = ?1";
    const GET_BUDGET: &'static str = concat!(
        "SELECT ",
        budget_columns!(),
        " FROM billing_budgets WHERE id = ?1"
    );
    const LIST_BUDGETS: &'static str = concat!(
        "SELECT ",
        budget_columns!(),
        " FROM billing_budgets WHERE (?1 IS NULL OR notify_user_id = ?1) \
         ORDER BY created_at, id"
    );
    const BUDGETS_FOR: &'static str = concat!(
        "SELECT ",
        budget_columns!(),
        " FROM billing_budgets WHERE (scope = 'user' AND scope_id = ?1) \
         OR (scope = 'agent' AND scope_id = ?2) ORDER BY id"
    );
    const BUDGET_USE: &'static str = "SELECT tokens, cost_minor, held_tokens, \
         held_cost_minor FROM billing_budget_use WHERE budget_id = ?1 AND period_start = ?2";
    const LIST_ALERTS: &'static str = concat!(
        "SELECT ",
        alert_columns!(),
        " FROM billing_alerts WHERE (?1 IS NULL OR user_id = ?1) \
         AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    const UNDELIVERED_ALERTS: &'static str = concat!(
        "SELECT ",
        alert_columns!(),
        " FROM billing_alerts WHERE delivered_at IS NULL AND attempts < ?1 \
         ORDER BY created_at, id LIMIT ?2"
    );
    const NOTE_ALERT: &'static str = "UPDATE billing_alerts \
         SET attempts = attempts + 1, delivered_at = ?2 WHERE id = ?1";
    const UNLINK_CUSTOMER: &'static str =
        "DELETE FROM billing_customers WHERE customer_id = ?2 AND user_id <> ?1";
    const LINK_CUSTOMER: &'static str = "INSERT INTO billing_customers \
         (user_id, customer_id, linked_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, \
         linked_at = EXCLUDED.linked_at \
         WHERE billing_customers.customer_id <> EXCLUDED.customer_id";
    const CUSTOMER_OF: &'static str =
        "SELECT customer_id FROM billing_customers WHERE user_id = ?1";
    const USER_OF_CUSTOMER: &'static str =
        "SELECT user_id FROM billing_customers WHERE customer_id = ?1";
    const PRICES: &'static str = "SELECT model, prompt_minor_per_1k, completion_minor_per_1k, \
         updated_at FROM billing_prices ORDER BY model";
    const PUT_PRICE: &'static str = "INSERT INTO billing_prices \
         (model, prompt_minor_per_1k, completion_minor_per_1k, updated_at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (model) DO UPDATE SET \
         prompt_minor_per_1k = EXCLUDED.prompt_minor_per_1k, \
         completion_minor_per_1k = EXCLUDED.completion_minor_per_1k, \
         updated_at = EXCLUDED.updated_at";
    const DELETE_PRICE: &'static str = "DELETE FROM billing_prices WHERE model = ?1";
    const USAGE_BY_AGENT: &'static str = concat!(
        "SELECT agent_id AS key, ",
        usage_sums!(),
        " GROUP BY agent_id, kind ORDER BY cost DESC, key"
    );
    const USAGE_BY_MODEL: &'static str = concat!(
        "SELECT model AS key, ",
        usage_sums!(),
        " GROUP BY model, kind ORDER BY cost DESC, key"
    );
    const USAGE_BY_DAY: &'static str = concat!(
        "SELECT strftime('%Y-%m-%d', created_at / 1000000, 'unixepoch') AS key, ",
        usage_sums!(),
        " GROUP BY key, kind ORDER BY key, kind"
    );
    const USAGE_RECORDS: &'static str = concat!(
        "SELECT ",
        usage_columns!(),
        " FROM usage_records WHERE user_id = ?1 AND created_at >= ?2 AND created_at < ?3 \
         AND (?4 IS NULL OR (created_at, id) < (?4, ?5)) \
         ORDER BY created_at DESC, id DESC LIMIT ?6"
    );
    const UNBALANCED: &'static str = "SELECT transaction_id, SUM(amount_minor) AS total \
         FROM billing_postings GROUP BY transaction_id HAVING SUM(amount_minor) <> 0 \
         UNION ALL SELECT t.id, 0 FROM billing_transactions t \
         WHERE NOT EXISTS (SELECT 1 FROM billing_postings p WHERE p.transaction_id = t.id)";
    const BALANCE_DRIFT: &'static str = "SELECT a.key, a.balance_minor AS stored, \
         COALESCE((SELECT SUM(p.amount_minor) FROM billing_postings p \
         WHERE p.account_id = a.id), 0) AS summed FROM billing_accounts a \
         WHERE a.kind IN ('wallet', 'arrears') AND a.balance_minor <> COALESCE((SELECT SUM(p.amount_minor) \
         FROM billing_postings p WHERE p.account_id = a.id), 0)";
    const HELD_DRIFT: &'static str = "SELECT a.key, a.held_minor AS stored, \
         COALESCE((SELECT SUM(h.cost_minor) FROM billing_holds h \
         WHERE h.user_id = a.user_id AND h.currency = a.currency), 0) AS summed \
         FROM billing_accounts a WHERE a.kind = 'wallet' AND a.held_minor <> \
         COALESCE((SELECT SUM(h.cost_minor) FROM billing_holds h \
         WHERE h.user_id = a.user_id AND h.currency = a.currency), 0)";
}
