use crate::dialect::SqliteDialect;
use hive_store::setting_columns;
use hive_store::sqlx_support::settings::SettingSql;

impl SettingSql for SqliteDialect {
    const GET: &'static str = concat!(
        "SELECT ",
        setting_columns!(),
        " FROM settings WHERE name = ?"
    );
    const CREATE: &'static str = concat!(
        "INSERT INTO settings (",
        setting_columns!(),
        ") VALUES (?1, ?2, 1, ?3, ?4) ON CONFLICT (name) DO NOTHING RETURNING ",
        setting_columns!()
    );
    const UPDATE: &'static str = concat!(
        "UPDATE settings SET value = ?2, version = version + 1, updated_at = ?3, \
         updated_by = ?4 WHERE name = ?1 AND version = ?5 RETURNING ",
        setting_columns!()
    );
    const VERSION: &'static str = "SELECT version FROM settings WHERE name = ?";
    const LIST: &'static str = concat!(
        "SELECT ",
        setting_columns!(),
        " FROM settings ORDER BY name"
    );
}
