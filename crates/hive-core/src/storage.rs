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

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: crate::backup::archive::Manifest,
    /// What the schema then was brought to (migrations of this binary newer than the archive).
    pub schema: SchemaOutcome,
}

/// Why a restore stopped. Nothing is loaded over data that was there unless `replace` said so.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Archive(#[from] crate::backup::archive::ArchiveError),
    #[error(
        "the archive holds a {archive} database but this instance is configured for {configured} (DATABASE_URL)"
    )]
    WrongBackend {
        archive: String,
        configured: &'static str,
    },
    #[error("{0}; restore into an empty one, or pass --force to delete what it holds first")]
    NotEmpty(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot {action} {path}: {error}")]
    Io {
        action: &'static str,
        path: String,
        error: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

fn restore_io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> RestoreError {
    let path = path.display().to_string();
    move |error| RestoreError::Io {
        action,
        path,
        error,
    }
}

/// Restores the archive at `archive` (opened with the identity file `identity`) into the
/// instance `config` names: the database (SQLite's file in the data directory, or the
/// PostgreSQL database of `DATABASE_URL`) and the data directory's files. The target must be
/// empty unless `replace`, which deletes what it holds first (never loads over it). Every
/// member is checked against the manifest before anything is touched; then the schema is
/// brought to this binary's version.
pub async fn restore(
    config: &Config,
    archive: &std::path::Path,
    identity: &std::path::Path,
    replace: bool,
) -> Result<Restored, RestoreError> {
    use crate::backup::{
        POSTGRES_MEMBER, SECRETS_MEMBER, SQLITE_MEMBER, archive as backup_archive,
    };
    let data_dir = config.data_dir.clone();
    let (archive, identity) = (archive.to_owned(), identity.to_owned());
    let staged = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<_, RestoreError> {
            create_private_dir(&data_dir).map_err(restore_io("create", &data_dir))?;
            let staging = tempfile::Builder::new()
                .prefix(".restore-")
                .tempdir_in(&data_dir)
                .map_err(restore_io("create a directory in", &data_dir))?;
            let identities = backup_archive::identities(&identity)?;
            let manifest = backup_archive::read(
                &archive,
                &identities,
                backup_archive::Sink::Into(staging.path()),
            )?;
            Ok((staging, manifest))
        })
        .await
        .map_err(|_| RestoreError::Interrupted)??
    };
    let (staging, manifest) = staged;
    let configured = match &config.database.url {
        DatabaseUrl::Sqlite(_) => "sqlite",
        DatabaseUrl::Postgres(_) => "postgres",
    };
    if manifest.backend != configured {
        return Err(RestoreError::WrongBackend {
            archive: manifest.backend.clone(),
            configured,
        });
    }
    // The data directory's files first refused, then the database: a refusal changes nothing.
    let secrets_copy = staging.path().join(SECRETS_MEMBER);
    let secrets_target = crate::kernel::runtime_secrets::secrets_file_path(config);
    let restores_secrets = secrets_copy.is_file();
    if restores_secrets && secrets_target.exists() && !replace {
        return Err(RestoreError::NotEmpty(format!(
            "{} already exists",
            secrets_target.display()
        )));
    }
    match &config.database.url {
        DatabaseUrl::Sqlite(path) => {
            let copy = staging.path().join(SQLITE_MEMBER);
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                hive_store_sqlite::restore_database(&copy, &path, replace)
            })
            .await
            .map_err(|_| RestoreError::Interrupted)?
        }
        DatabaseUrl::Postgres(url) => {
            let copy = staging.path().join(POSTGRES_MEMBER);
            hive_store_postgres::restore_database(url.expose_secret(), &copy, replace).await
        }
    }
    .map_err(|error| match error {
        StoreError::Conflict(what) => RestoreError::NotEmpty(what),
        other => RestoreError::Store(other),
    })?;
    if restores_secrets {
        let target = secrets_target.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::rename(&secrets_copy, &target).map_err(restore_io("write", &target))
        })
        .await
        .map_err(|_| RestoreError::Interrupted)??;
    }
    tokio::task::spawn_blocking(move || drop(staging))
        .await
        .map_err(|_| RestoreError::Interrupted)?;
    let store = open(config).await?;
    let schema = ensure_schema(store.as_ref(), true).await;
    store.close().await;
    Ok(Restored {
        manifest,
        schema: schema?,
    })
}
