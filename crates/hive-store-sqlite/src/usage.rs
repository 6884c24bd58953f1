use crate::dialect::SqliteDialect;
use hive_store::sqlx_support::usage::UsageSql;
use hive_store::usage_columns;

impl UsageSql for SqliteDialect {
    const INSERT: &'static str = concat!(
        "INSERT INTO usage_records (",
        usage_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (id) DO NOTHING"
    );
    // SQLite's SUM fails on overflow rather than wrapping; TOTAL would lose precision.
    const TOKENS_SINCE: &'static str = "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) \
         AS total FROM usage_records WHERE agent_id = ?1 AND created_at >= ?2";
    const LIST: &'static str = concat!(
        "SELECT ",
        usage_columns!(),
        " FROM usage_records WHERE agent_id = ?1 \
         AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    // Times are unix microseconds and ?2 a midnight UTC: whole days after it are UTC days.
    const BY_DAY: &'static str = "SELECT (created_at - ?2) / 86400000000 AS day, \
         count(*) AS calls, SUM(prompt_tokens) AS prompt, SUM(completion_tokens) AS completion \
         FROM usage_records WHERE agent_id = ?1 AND created_at >= ?2 AND created_at < ?3 \
         GROUP BY day ORDER BY day";
}
