//! Scratch databases for tests: each test gets its own database on the server named by the
//! test's admin URL, dropped when the test ends (whether it passed or not).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;

pub struct ScratchDatabase {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// The URL of the scratch database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates `hive_t_<random>` on the server of `admin_url` (a role allowed to create databases).
pub async fn scratch_database(admin_url: &str) -> ScratchDatabase {
    let admin = PgConnectOptions::from_str(admin_url).expect("HIVE_TEST_DATABASE_URL parses");
    let name = format!("hive_t_{}", uuid::Uuid::new_v4().simple());
    let mut connection = admin
        .connect()
        .await
        .expect("the test PostgreSQL server is reachable (HIVE_TEST_DATABASE_URL)");
    connection
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("CREATE DATABASE");
    connection.close().await.ok();
    let mut url = url::Url::parse(admin_url).expect("HIVE_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
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
        // Drop is synchronous and may run inside a runtime: use a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut connection) = admin.connect().await {
                    let _ = connection
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                    let _ = connection.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}
