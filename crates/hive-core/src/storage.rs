//! Opens the store the configuration names and brings its schema to the binary's version.

use crate::kernel::config::{Config, DatabaseUrl};
pub use crate::kernel::runtime_secrets::create_private_dir;
use hive_egress::Allowlist;
use hive_store::{SchemaState, Store, StoreError};
use hive_store_postgres::PostgresStore;
use hive_store_sqlite::SqliteStore;
use secrecy::ExposeSecret;
use std::sync::Arc;

/// Opens SQLite (embedded default) or PostgreSQL, as `DATABASE_URL` says.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let max = config.database.max_connections;
    Ok(match &config.database.url {
        DatabaseUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            Arc::new(SqliteStore::open(path, max).await?)
        }
        DatabaseUrl::Postgres(url) => {
            Arc::new(PostgresStore::connect(url.expose_secret(), max).await?)
        }
    })
}

/// What a start found and did with the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaOutcome {
    AlreadyCurrent { version: i64 },
    Migrated { applied: Vec<i64>, version: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the database schema is behind this binary (pending migrations: {pending:?}) and HIVE_AUTO_MIGRATE=false; run `hive migrate` first"
    )]
    Behind { pending: Vec<i64> },
}

/// Refuses a schema newer than the binary; applies pending migrations when `auto_migrate`.
pub async fn ensure_schema(
    store: &dyn Store,
    auto_migrate: bool,
) -> Result<SchemaOutcome, SchemaError> {
    match store.schema_state().await? {
        SchemaState::UpToDate { version } => Ok(SchemaOutcome::AlreadyCurrent { version }),
        SchemaState::Newer { current, unknown } => {
            Err(StoreError::SchemaNewer { current, unknown }.into())
        }
        SchemaState::Behind { pending, .. } if !auto_migrate => {
            Err(SchemaError::Behind { pending })
        }
        SchemaState::Behind { .. } => {
            let report = store.migrate().await?;
            Ok(SchemaOutcome::Migrated {
                applied: report.applied,
                version: report.version,
            })
        }
    }
}

/// The admin's allowlist as stored, for the CLI, and why it could not be read if it could not.
#[derive(Debug, Default)]
pub struct StoredAllowlist {
    pub list: Allowlist,
    pub note: Option<String>,
}

/// Reads the admin's allowlist from the database without starting anything else (for
/// `hive egress check`). When it cannot be read, says why and answers an empty list: the check
/// then judges by the operator's list alone, which allows no more than the server does.
pub async fn stored_admin_allowlist(config: &Config) -> StoredAllowlist {
    let unread = |why: String| StoredAllowlist {
        list: Allowlist::empty(),
        note: Some(format!(
            "the admin's allowlist was not read ({why}); judging by HIVE_EGRESS_FETCH_HOST_ALLOWLIST alone"
        )),
    };
    if let crate::kernel::config::DatabaseUrl::Sqlite(path) = &config.database.url
        && !path.exists()
    {
        // No database yet, so no admin list; and a check creates nothing.
        return StoredAllowlist::default();
    }
    let store = match open(config).await {
        Ok(store) => store,
        Err(error) => return unread(error.to_string()),
    };
    let row = store
        .settings()
        .get(crate::kernel::settings::SECURITY)
        .await;
    store.close().await;
    match row {
        Ok(None) => StoredAllowlist::default(),
        Ok(Some(row)) => match crate::kernel::settings::allowlist_of(&row.value) {
            Ok(list) => StoredAllowlist { list, note: None },
            Err(error) => unread(error.to_string()),
        },
        Err(error) => unread(error.to_string()),
    }
}
