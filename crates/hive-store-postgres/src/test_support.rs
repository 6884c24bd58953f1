//! Scratch databases for tests: each test gets its own database on the server named by the
//! test's admin URL, dropped when the test ends (whether it passed or not).
//!
//! Test support (behind the `test-support` feature): a broken test environment is reported by
//! panicking, like an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;
use std::time::Duration;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A database that exists as long as this value does.
pub struct ScratchDatabase {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl std::fmt::Debug for ScratchDatabase {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ScratchDatabase {
    /// The URL of the scratch database (the admin URL with another database name).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates `hive_t_<uuid>` on the server of `admin_url` (a role allowed to create databases).
pub async fn scratch_database(admin_url: &str) -> ScratchDatabase {
    // Never echo the URL: it may hold a password.
    let admin = PgConnectOptions::from_str(admin_url)
        .unwrap_or_else(|_| panic!("HIVE_TEST_DATABASE_URL is not a PostgreSQL URL"));
    let mut url = url::Url::parse(admin_url)
        .unwrap_or_else(|_| panic!("HIVE_TEST_DATABASE_URL is not a URL"));
    let name = format!("hive_t_{}", uuid::Uuid::new_v4().simple());
    url.set_path(&format!("/{name}"));

    let mut connection = tokio::time::timeout(ADMIN_TIMEOUT, admin.connect())
        .await
        .expect("the test PostgreSQL server answers in time (HIVE_TEST_DATABASE_URL)")
        .unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL server (HIVE_TEST_DATABASE_URL): {e}")
        });
    // The name is ours (letters, digits, underscores), so quoting is enough.
    connection
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = connection.close().await;
    ScratchDatabase {
        admin,
        name,
        url: url.to_string(),
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = std::mem::take(&mut self.name);
        // Drop is synchronous and often runs inside a runtime, which must not be blocked on:
        // a helper thread with its own runtime does the work, and this thread waits for it so
        // the database is gone when the test ends. FORCE ends sessions still connected.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(Ok(mut connection)) =
                    tokio::time::timeout(ADMIN_TIMEOUT, admin.connect()).await
                else {
                    return;
                };
                let drop_it = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = tokio::time::timeout(
                    ADMIN_TIMEOUT,
                    connection.execute(sqlx::AssertSqlSafe(drop_it)),
                )
                .await;
                let _ = connection.close().await;
            });
        });
        let _ = dropper.join();
    }
}
