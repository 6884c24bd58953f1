//! Opens the store the configuration names and brings its schema to the binary's version.

use crate::config::{Config, DatabaseUrl};
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

/// Creates a directory (and its parents) readable by this user only.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
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
