use crate::dialect::PgDialect;
use hive_store::sqlx_support::mfa::MfaSql;
use hive_store::totp_columns;

impl MfaSql for PgDialect {
    const TOTP: &'static str = concat!(
        "SELECT ",
        totp_columns!(),
        " FROM totp_credentials WHERE user_id = $1"
    );
    const START_TOTP: &'static str = "INSERT INTO totp_credentials \
         (user_id, seed, key_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET seed = excluded.seed, key_id = excluded.key_id, \
         created_at = excluded.created_at, enabled_at = NULL, last_used_step = NULL, \
         failed_step = NULL, failures = 0 \
         WHERE totp_credentials.enabled_at IS NULL RETURNING user_id";
    const ENABLE_TOTP: &'static str = "UPDATE totp_credentials \
         SET enabled_at = $2, last_used_step = $3 WHERE user_id = $1 AND enabled_at IS NULL";
    const CONSUME_STEP: &'static str = "UPDATE totp_credentials SET last_used_step = $2 \
         WHERE user_id = $1 AND enabled_at IS NOT NULL \
         AND (last_used_step IS NULL OR last_used_step < $2)";
    const RECORD_FAILURE: &'static str = "UPDATE totp_credentials SET \
         failures = CASE WHEN failed_step = $2 THEN failures + 1 ELSE 1 END, \
         failed_step = $2 WHERE user_id = $1 RETURNING failures";
    const REMOVE_TOTP: &'static str = "DELETE FROM totp_credentials WHERE user_id = $1";
    const DELETE_RECOVERY_CODES: &'static str = "DELETE FROM recovery_codes WHERE user_id = $1";
    const INSERT_RECOVERY_CODE: &'static str =
        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)";
    const USE_RECOVERY_CODE: &'static str = "UPDATE recovery_codes SET used_at = $3 \
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
    const RECOVERY_CODES_LEFT: &'static str = "SELECT count(*) AS remaining FROM recovery_codes \
         WHERE user_id = $1 AND used_at IS NULL";
    const TOTP_NOT_UNDER_KEY: &'static str = concat!(
        "SELECT ",
        totp_columns!(),
        " FROM totp_credentials WHERE key_id <> $1 AND ($2::uuid IS NULL OR user_id > $2) \
         ORDER BY user_id LIMIT $3"
    );
    const RESEAL_TOTP: &'static str = "UPDATE totp_credentials SET key_id = $1, seed = $2 \
         WHERE user_id = $3 AND key_id = $4 AND seed = $5";
}
