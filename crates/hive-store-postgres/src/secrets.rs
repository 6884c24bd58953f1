use crate::dialect::PgDialect;
use hive_store::secret_columns;
use hive_store::sqlx_support::secrets::SecretSql;

impl SecretSql for PgDialect {
    const INSERT: &'static str = concat!(
        "INSERT INTO secrets (",
        secret_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    );
    const GET: &'static str = concat!(
        "SELECT ",
        secret_columns!(),
        " FROM secrets WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)"
    );
    const LIST: &'static str = concat!(
        "SELECT ",
        secret_columns!(),
        " FROM secrets WHERE ($1::uuid IS NULL OR owner_id = $1) \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    const REPLACE_VALUE: &'static str = "UPDATE secrets SET version = version + 1, \
         description = $1, key_id = $2, value = $3, updated_at = $4 \
         WHERE id = $5 AND version = $6";
    const DELETE: &'static str =
        "DELETE FROM secrets WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)";
    const LIST_NOT_UNDER_KEY: &'static str = concat!(
        "SELECT ",
        secret_columns!(),
        " FROM secrets WHERE key_id <> $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    );
    const RESEAL: &'static str = "UPDATE secrets SET key_id = $1, value = $2 \
         WHERE id = $3 AND version = $4 AND key_id = $5 AND value = $6";
    const COUNT_BY_KEY: &'static str =
        "SELECT key_id, count(*) AS secrets FROM secrets GROUP BY key_id ORDER BY key_id";
}
