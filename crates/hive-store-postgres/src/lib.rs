//! The PostgreSQL implementation of the Hive store: the scaled shape, shared by every replica.
//!
//! One pool per process; leadership through session advisory locks on dedicated connections
//! ([`Store::leader_lease`]); migrations serialised among replicas by sqlx's migration lock.

mod agents;
mod billing;
mod challenges;
mod conversations;
mod dialect;
mod dump;
mod hosted;
mod identity;
mod jobs;
mod lease;
mod mfa;
mod oidc;
mod passkeys;
mod push_configs;
mod secrets;
mod settings;
mod tasks;
#[cfg(feature = "test-support")]
pub mod test_support;
mod usage;
mod vault;
mod workflows;

use async_trait::async_trait;
use dialect::PgDialect;
use hive_store::sqlx_support::{self, Pools, SqlRepositories};
use hive_store::{Backend, LeaderLease, MigrationReport, SchemaState, Store, StoreError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

pub use dump::restore_database;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresStore {
    pool: PgPool,
    /// For the dedicated leadership connections; holds the password, so never printed.
    options: PgConnectOptions,
    /// `DATABASE_URL`, for the backup's dump; holds the password, so never printed.
    url: String,
    repositories: SqlRepositories<PgDialect>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

impl PostgresStore {
    /// Connects a pool of up to `max_connections` to `url`, giving up after 5 seconds. Errors
    /// never repeat the URL or its password.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| {
                StoreError::Unavailable("DATABASE_URL is not a valid PostgreSQL URL".into())
            })?
            .application_name("hive");
        // One direct connection first: the pool would retry until its timeout and report only
        // that, where this reports why (refused, credentials, no such database).
        let probe = within_connect_timeout(options.connect()).await?;
        let _ = probe.close().await;
        let pool = within_connect_timeout(
            PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_with(options.clone()),
        )
        .await?;
        let pools = Pools::shared(pool.clone());
        Ok(Self {
            repositories: SqlRepositories::new(&pools),
            pool,
            options,
            url: url.to_owned(),
        })
    }

    /// The pool, for tests and tools that inspect the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// sqlx has no connect timeout of its own for PostgreSQL; a silent network must not hang a start.
pub(crate) async fn within_connect_timeout<T>(
    connecting: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(done) => done.map_err(map_error),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no connection to the database within {} seconds",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// SQLSTATEs that mean the database cannot serve now, by class or code.
fn is_unavailable_code(code: &str) -> Option<&'static str> {
    match code.get(..2)? {
        "08" => Some("the connection to the database failed"),
        "28" => Some("the database refused the credentials"),
        "53" => Some("the database is out of resources"),
        "57" if code.starts_with("57P") => Some("the database is shutting down or restarting"),
        "3D" => Some("the database does not exist"),
        _ => None,
    }
}

pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    sqlx_support::map_error(error, is_unavailable_code)
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx_support::ping::<PgDialect>(&self.pool).await
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        // The migrator creates its table in the first schema of the search path.
        sqlx_support::read_schema_state::<PgDialect>(
            &self.pool,
            "SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS present",
            &MIGRATOR,
        )
        .await
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let state = self.schema_state().await?;
        // sqlx holds an advisory lock while migrating, so concurrent replicas take turns; one
        // that waited finds the migrations applied and skips them.
        sqlx_support::migrate(
            state,
            &MIGRATOR,
            MIGRATOR.run(&self.pool),
            is_unavailable_code,
        )
        .await
    }

    hive_store::store_repositories!(repositories);

    async fn leader_lease(&self, name: &str) -> Result<Box<dyn LeaderLease>, StoreError> {
        Ok(Box::new(lease::AdvisoryLease::new(
            self.options.clone(),
            name,
        )))
    }

    async fn copy_database(&self, dest: &std::path::Path) -> Result<(), StoreError> {
        dump::dump(&self.url, dest).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::is_unavailable_code;

    #[test]
    fn unavailable_codes() {
        for code in ["08006", "08001", "53300", "57P01", "28P01", "3D000"] {
            assert!(is_unavailable_code(code).is_some(), "{code}");
        }
        for code in ["23505", "23514", "42P01", "57014", "XX000", ""] {
            assert!(is_unavailable_code(code).is_none(), "{code}");
        }
    }
}
