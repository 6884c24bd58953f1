//! Sign-in flow state on SQLite: one statement on the single writer, so two takers cannot
//! both get a challenge.

use crate::dialect::SqliteDialect;
use hive_store::sqlx_support::challenges::ChallengeSql;

impl ChallengeSql for SqliteDialect {
    const INSERT: &'static str = "INSERT INTO auth_challenges \
         (key_hash, purpose, user_id, payload, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)";
    const TAKE: &'static str = "DELETE FROM auth_challenges WHERE key_hash = ?1 AND purpose = ?2 \
         RETURNING key_hash, purpose, user_id, payload, created_at, expires_at";
    const PRUNE: &'static str = "DELETE FROM auth_challenges WHERE expires_at <= ?";
}
