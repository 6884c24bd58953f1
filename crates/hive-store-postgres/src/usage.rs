use crate::dialect::PgDialect;
use hive_store::sqlx_support::usage::UsageSql;
use hive_store::usage_columns;

impl UsageSql for PgDialect {
    const INSERT: &'static str = concat!(
        "INSERT INTO usage_records (",
        usage_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (id) DO NOTHING"
    );
    // SUM of bigint is numeric; the cast back fails loudly past i64::MAX.
    const TOKENS_SINCE: &'static str = "SELECT \
         COALESCE(SUM(prompt_tokens + completion_tokens), 0)::bigint AS total \
         FROM usage_records WHERE agent_id = $1 AND created_at >= $2";
    const LIST: &'static str = concat!(
        "SELECT ",
        usage_columns!(),
        " FROM usage_records WHERE agent_id = $1 \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    const BY_DAY: &'static str = "SELECT \
         ((created_at AT TIME ZONE 'UTC')::date - ($2::timestamptz AT TIME ZONE 'UTC')::date)::bigint \
         AS day, count(*) AS calls, SUM(prompt_tokens)::bigint AS prompt, \
         SUM(completion_tokens)::bigint AS completion \
         FROM usage_records WHERE agent_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY day ORDER BY day";
}
