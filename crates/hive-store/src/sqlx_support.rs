//! What the sqlx-based backends share: error mapping, the migration steps around sqlx's
//! migrator, the audited transaction scaffolding and row mapping. Dialect-specific knowledge
//! (which error codes mean "unreachable", how ids and times are stored, the SQL itself) stays
//! in the backends, behind [`Dialect`].

pub mod agents;
mod audit;
pub mod billing;
pub mod challenges;
pub mod conversations;
mod dialect;
pub mod hosted;
pub mod identity;
pub mod jobs;
pub mod mfa;
pub mod oidc;
pub mod passkeys;
pub mod push_configs;
mod repositories;
pub mod rows;
pub mod secrets;
pub mod settings;
pub mod tasks;
pub mod usage;
pub mod vault;
pub mod workflows;

pub use audit::{
    AUDIT_COLUMNS, ROWS_PER_INSERT, append_audit, append_audit_records, audit_unwritable,
    commit_audited, commit_if, commit_if_audited, insert_audit_records, links_after,
};
pub use dialect::{
    BindValue, Dialect, DialectConnection, DialectQuery, DialectRow, Pools, PushValue, Reads,
    Writes, get, keyset_page,
};
pub use repositories::SqlRepositories;

use crate::{MigrationReport, SchemaState, StoreError};
use sqlx::error::ErrorKind;
use sqlx::migrate::{MigrateError, Migrator};
use std::future::Future;

/// For a database error code of one dialect: `Some(what an operator should read)` when the code
/// means the database cannot serve requests right now (connection lost, busy, disk full).
pub type UnavailableCodes = fn(&str) -> Option<&'static str>;

/// Maps a driver error to a [`StoreError`] without SQL text, bound values or connection
/// strings.
pub fn map_error(error: sqlx::Error, unavailable: UnavailableCodes) -> StoreError {
    match error {
        sqlx::Error::PoolClosed => StoreError::Unavailable("the database pool is closed".into()),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("database I/O error: {e}")),
        sqlx::Error::Tls(_) => StoreError::Unavailable("TLS error talking to the database".into()),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the database connection worker stopped".into())
        }
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // The constraint name helps an operator; the message may quote row values.
            let what = match db.constraint() {
                Some(name) => format!("code {code}, constraint {name}"),
                None => format!("code {code}"),
            };
            match db.kind() {
                ErrorKind::UniqueViolation | ErrorKind::ExclusionViolation => {
                    StoreError::Conflict(format!("a row with this key exists ({what})"))
                }
                ErrorKind::ForeignKeyViolation => {
                    StoreError::Conflict(format!("a referenced row is missing or in use ({what})"))
                }
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    StoreError::Invalid(format!("a value breaks a rule of the schema ({what})"))
                }
                _ => match unavailable(&code) {
                    Some(reason) => StoreError::Unavailable(format!("{reason} ({what})")),
                    None => StoreError::Backend(what),
                },
            }
        }
        sqlx::Error::Migrate(e) => map_migrate_error(*e, unavailable),
        other => StoreError::Backend(error_kind(&other).to_owned()),
    }
}

/// Only the kind: the `Display` of several variants quotes configuration or values.
fn error_kind(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Configuration(_) => "invalid database configuration",
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "cannot decode a stored value",
        sqlx::Error::Encode(_) => "cannot encode a value",
        sqlx::Error::Protocol(_) => "database protocol error",
        _ => "unexpected database error",
    }
}

/// Maps a migrator error; the migration texts are never quoted.
pub fn map_migrate_error(error: MigrateError, unavailable: UnavailableCodes) -> StoreError {
    match error {
        MigrateError::Execute(e) => match map_error(e, unavailable) {
            unavailable @ StoreError::Unavailable(_) => unavailable,
            other => StoreError::Migration(other.to_string()),
        },
        MigrateError::ExecuteMigration(e, version) => StoreError::Migration(format!(
            "migration {version}: {}",
            map_error(e, unavailable)
        )),
        // The remaining variants name versions only.
        other => StoreError::Migration(other.to_string()),
    }
}

/// A cheap round trip to the database behind `pool` (deep health check).
pub async fn ping<D: Dialect>(pool: &sqlx::Pool<D::Db>) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await.map_err(D::map_error)?;
    sqlx::query("SELECT 1")
        .execute(D::on(&mut connection))
        .await
        .map(|_| ())
        .map_err(D::map_error)
}

/// [`schema_state`] of the database behind `pool`. `table_exists` tells (as `present`) whether
/// the migrator's table exists yet; each dialect asks its own catalogue.
pub async fn read_schema_state<D: Dialect>(
    pool: &sqlx::Pool<D::Db>,
    table_exists: &'static str,
    migrator: &Migrator,
) -> Result<SchemaState, StoreError> {
    let mut connection = pool.acquire().await.map_err(D::map_error)?;
    let found = sqlx::query(table_exists)
        .fetch_one(D::on(&mut connection))
        .await
        .map_err(D::map_error)?;
    let applied: Vec<i64> = if get::<D, bool>(&found, "present")? {
        sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(D::on(&mut connection))
            .await
            .map_err(D::map_error)?
            .iter()
            .map(|row| get::<D, i64>(row, "version"))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    Ok(schema_state(&applied, migrator))
}

/// The versions of the up-migrations a binary carries, ascending.
pub fn known_versions(migrator: &Migrator) -> Vec<i64> {
    let mut versions: Vec<i64> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// [`crate::schema_state`] of a database against what `migrator` carries.
pub fn schema_state(applied: &[i64], migrator: &Migrator) -> SchemaState {
    crate::schema_state(applied, &known_versions(migrator))
}

/// Runs `run` (the migrator, not yet polled) when `state` says migrations are pending; refuses
/// a newer schema before touching anything.
pub async fn migrate(
    state: SchemaState,
    migrator: &Migrator,
    run: impl Future<Output = Result<(), MigrateError>>,
    unavailable: UnavailableCodes,
) -> Result<MigrationReport, StoreError> {
    let version = known_versions(migrator).last().copied().unwrap_or(0);
    let pending = match state {
        SchemaState::Newer { current, unknown } => {
            return Err(StoreError::SchemaNewer { current, unknown });
        }
        SchemaState::UpToDate { .. } => Vec::new(),
        SchemaState::Behind { pending, .. } => pending,
    };
    if !pending.is_empty() {
        run.await.map_err(|e| map_migrate_error(e, unavailable))?;
    }
    // With replicas migrating at once, another one may have applied some of these; the
    // migrator's lock makes that harmless, the report is what this call found pending.
    Ok(MigrationReport {
        applied: pending,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing_unavailable(_: &str) -> Option<&'static str> {
        None
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_newer_schema_is_refused_before_migrating() {
        let migrator = Migrator::with_migrations(Vec::new());
        let refused = block_on(migrate(
            SchemaState::Newer {
                current: 9,
                unknown: vec![9],
            },
            &migrator,
            async { panic!("the migrator must not run") },
            nothing_unavailable,
        ));
        assert!(
            matches!(refused, Err(StoreError::SchemaNewer { current: 9, .. })),
            "{refused:?}"
        );
        let current = block_on(migrate(
            SchemaState::UpToDate { version: 0 },
            &migrator,
            async { panic!("nothing is pending") },
            nothing_unavailable,
        ))
        .unwrap();
        assert!(current.applied.is_empty());
    }

    #[test]
    fn migrator_errors_keep_their_versions_only() {
        let mapped = map_migrate_error(MigrateError::VersionMismatch(3), nothing_unavailable);
        assert!(
            matches!(&mapped, StoreError::Migration(m) if m.contains('3')),
            "{mapped:?}"
        );
        let closed = map_migrate_error(
            MigrateError::Execute(sqlx::Error::PoolClosed),
            nothing_unavailable,
        );
        assert!(matches!(closed, StoreError::Unavailable(_)), "{closed:?}");
    }
}
