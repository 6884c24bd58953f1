//! The PostgreSQL implementation of the Hive store: the scaled shape, shared by every replica.

mod jobs;
mod lease;
#[cfg(feature = "test-support")]
pub mod test_support;

use async_trait::async_trait;
use hive_store::{
    Backend, JobRunRepo, LeaderLease, MigrationReport, SchemaState, Store, StoreError,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresStore {
    pool: PgPool,
    /// For the dedicated leadership connections; holds the password, so never printed.
    options: PgConnectOptions,
    jobs: jobs::PgJobRuns,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

impl PostgresStore {
    /// Connects a pool of up to `max_connections` to `url`. Errors never repeat the URL.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| {
                StoreError::Unavailable("DATABASE_URL is not a valid PostgreSQL URL".into())
            })?
            .application_name("hive");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(map_error)?;
        Ok(Self {
            jobs: jobs::PgJobRuns { pool: pool.clone() },
            pool,
            options,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Maps a driver error without SQL text, values or the connection string.
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolClosed => StoreError::Unavailable("the database pool is closed".into()),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("database I/O error: {e}")),
        sqlx::Error::Tls(_) => StoreError::Unavailable("database TLS error".into()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("a row with this key exists".into())
        }
        sqlx::Error::Database(db) => {
            StoreError::Backend(format!("postgres error {}", db.code().unwrap_or_default()))
        }
        sqlx::Error::Migrate(e) => StoreError::Migration(e.to_string()),
        sqlx::Error::Configuration(_) => {
            StoreError::Unavailable("invalid database configuration".into())
        }
        _ => StoreError::Backend("unexpected postgres error".into()),
    }
}

fn known_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?
        } else {
            Vec::new()
        };
        Ok(hive_store::schema_state(&applied, &known_versions()))
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let version = known_versions().into_iter().max().unwrap_or(0);
        let pending = match self.schema_state().await? {
            SchemaState::Newer { current, unknown } => {
                return Err(StoreError::SchemaNewer { current, unknown });
            }
            SchemaState::UpToDate { .. } => Vec::new(),
            SchemaState::Behind { pending, .. } => pending,
        };
        if !pending.is_empty() {
            // sqlx holds an advisory lock while migrating, so concurrent replicas take turns;
            // a replica that waited finds nothing left to apply.
            MIGRATOR
                .run(&self.pool)
                .await
                .map_err(|e| StoreError::Migration(e.to_string()))?;
        }
        Ok(MigrationReport {
            applied: pending,
            version,
        })
    }

    fn job_runs(&self) -> &dyn JobRunRepo {
        &self.jobs
    }

    async fn leader_lease(&self, name: &str) -> Result<Box<dyn LeaderLease>, StoreError> {
        Ok(Box::new(lease::AdvisoryLease::new(
            self.options.clone(),
            name,
        )))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
