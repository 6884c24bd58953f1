//! Sign-in flow state on PostgreSQL: DELETE … RETURNING locks the row, so of concurrent takers
//! exactly one gets a challenge.

use crate::dialect::PgDialect;
use hive_store::sqlx_support::challenges::ChallengeSql;

impl ChallengeSql for PgDialect {
    const INSERT: &'static str = "INSERT INTO auth_challenges \
         (key_hash, purpose, user_id, payload, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    const TAKE: &'static str = "DELETE FROM auth_challenges WHERE key_hash = $1 AND purpose = $2 \
         RETURNING key_hash, purpose, user_id, payload, created_at, expires_at";
    const PRUNE: &'static str = "DELETE FROM auth_challenges WHERE expires_at <= $1";
}
