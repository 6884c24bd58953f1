//! Real Hive servers for tests: bound to 127.0.0.1:0, on SQLite in a temporary directory or on a
//! scratch PostgreSQL database, with a manual clock and a typed client.
//!
//! Every test that can should run on each of [`backends()`]: SQLite always, PostgreSQL when
//! `HIVE_TEST_DATABASE_URL` is set (CI sets it). The test services are read through
//! [`postgres_admin_url`], [`redis_url`] and [`nats_url`] (and [`OwnRedis::available`] or
//! [`OwnPostgres::available`] for a server of a test's own): without one a test skips that
//! part, except under CI ([`under_ci`]), where a missing one fails it ([`missing`]).

// A test kit reports a broken test environment by panicking, like an assertion would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod agent_card;
pub mod capture;
mod client;
pub mod llm;
pub mod oidc;
mod own_postgres;
pub mod passkey;

pub use client::{TestClient, error_body};
pub use hive_state::test_support::{OwnRedis, missing, nats_url, redis_url, service_url, under_ci};
pub use own_postgres::OwnPostgres;

use axum::Router;
use hive_core::Hive;
use hive_core::kernel::config::{Config, EnvSource};
use hive_proto::ManualClock;
use hive_server::{AppState, ServeError};
pub use hive_store_postgres::test_support::ScratchDatabase;
use std::sync::Arc;
use tempfile::TempDir;
use time::macros::datetime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The password of the tests' accounts, in one place: strong by the password policy (zxcvbn
/// scores it 4 of 4), so that no test leans on a weak or famous one.
pub const TEST_PASSWORD: &str = "quince harbor velvet thistle";

/// The variable that points the tests at a PostgreSQL server (a database it may create
/// databases in).
pub const TEST_DATABASE_URL: &str = hive_state::test_support::DATABASE_URL_VAR;
/// The variable that points the tests at a Redis server.
pub const TEST_REDIS_URL: &str = hive_state::test_support::REDIS_URL_VAR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// The backends this run can test: SQLite with in-memory state always; PostgreSQL (with Redis
/// when `HIVE_TEST_REDIS_URL` is set) when configured.
pub fn backends() -> Vec<TestBackend> {
    let mut all = vec![TestBackend::Sqlite];
    if postgres_admin_url().is_some() {
        all.push(TestBackend::Postgres);
    }
    all
}

/// The PostgreSQL server tests may create databases on, if configured (under CI it must be).
pub fn postgres_admin_url() -> Option<String> {
    hive_state::test_support::service_url(TEST_DATABASE_URL)
}

/// A fresh database for one test on the configured PostgreSQL server, dropped afterwards.
pub async fn scratch_postgres() -> ScratchDatabase {
    let admin = postgres_admin_url().expect("HIVE_TEST_DATABASE_URL is not set");
    hive_store_postgres::test_support::scratch_database(&admin).await
}

/// Where a test server keeps its state: a temporary data directory, and for PostgreSQL a
/// scratch database. Reusable across restarts of a server within one test.
pub struct TestEnvironment {
    pub backend: TestBackend,
    pub data_dir: TempDir,
    pub database: Option<ScratchDatabase>,
    /// The Redis key prefix of this environment (scaled shape only).
    pub redis_prefix: String,
}

impl TestEnvironment {
    pub async fn new(backend: TestBackend) -> Self {
        let database = match backend {
            TestBackend::Sqlite => None,
            TestBackend::Postgres => Some(scratch_postgres().await),
        };
        Self {
            backend,
            data_dir: tempfile::tempdir().expect("temporary data directory"),
            database,
            redis_prefix: format!("hive-test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The variables a server in this environment starts with (before the test's own).
    pub fn base_vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            (
                "HIVE_DATA_DIR".to_owned(),
                self.data_dir.path().display().to_string(),
            ),
            ("LOG_LEVEL".to_owned(), "warn".to_owned()),
            // Tests of other features sign in with a password alone; the MFA tests set the
            // policy they test (the default, `admins`, is tested there too).
            ("HIVE_MFA_REQUIRED".to_owned(), "none".to_owned()),
        ];
        if let Some(db) = &self.database {
            vars.push(("DATABASE_URL".to_owned(), db.url().to_owned()));
            // The scaled shape: PostgreSQL with Redis, under a key prefix of this environment.
            if let Some(redis) = redis_url() {
                vars.push(("REDIS_URL".to_owned(), redis));
                vars.push((
                    "HIVE_REDIS_KEY_PREFIX".to_owned(),
                    self.redis_prefix.clone(),
                ));
            }
        }
        vars
    }
}

/// Builds a [`TestServer`].
pub struct TestServerBuilder {
    backend: TestBackend,
    vars: Vec<(String, String)>,
    extra_routes: Router<AppState>,
    public_host: Option<String>,
    listener: Option<TcpListener>,
}

/// A listener on `ip` (any port), bound before the server that will use it starts, so that
/// several servers can be configured with each other's origins (a federation mesh on
/// 127.0.0.2, 127.0.0.3…: the whole 127/8 range is loopback).
pub async fn reserve_listener(ip: &str) -> TcpListener {
    TcpListener::bind((ip, 0))
        .await
        .unwrap_or_else(|error| panic!("bind {ip}:0: {error}"))
}

/// The `http://ip:port` origin a reserved listener will serve.
pub fn origin_of(listener: &TcpListener) -> String {
    format!("http://{}", listener.local_addr().expect("local address"))
}

impl TestServerBuilder {
    /// Serves on `listener` (from [`reserve_listener`]); its address is the server's origin.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Adds a configuration variable (as if set in the environment). A secret one becomes a
    /// canary of the leak check.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        capture::config_variable(name, value);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Routes merged into the application, behind the whole pipeline.
    pub fn routes(mut self, routes: Router<AppState>) -> Self {
        self.extra_routes = self.extra_routes.merge(routes);
        self
    }

    /// Names the server by `host` in its `AUTH_URL` (`http://<host>:<port>`) instead of by
    /// 127.0.0.1; the tests still connect to 127.0.0.1. WebAuthn needs a domain name, so
    /// passkey tests use `localhost`.
    pub fn public_host(mut self, host: &str) -> Self {
        self.public_host = Some(host.to_owned());
        self
    }

    pub async fn start(self) -> TestServer {
        let env = TestEnvironment::new(self.backend).await;
        let listener = match self.listener {
            Some(listener) => listener,
            None => reserve_listener("127.0.0.1").await,
        };
        TestServer::start_on(
            env,
            self.vars,
            self.extra_routes,
            self.public_host.as_deref(),
            listener,
        )
        .await
    }
}

/// A running Hive on a loopback port.
pub struct TestServer {
    /// Where the tests connect: `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The origin of the server's `AUTH_URL`, which browsers send writes from (the same as
    /// `base_url` unless the builder named a [`TestServerBuilder::public_host`]).
    pub origin: String,
    pub hive: Arc<Hive>,
    pub clock: Arc<ManualClock>,
    pub client: TestClient,
    pub shutdown: CancellationToken,
    tracker: TaskTracker,
    server: JoinHandle<Result<(), ServeError>>,
    /// Before `environment`: it reads the database while it still exists.
    _audit_capture: AuditCapture,
    environment: TestEnvironment,
}

/// The database a test server runs on, reached over a connection of the test's own.
#[derive(Clone)]
enum DatabaseTarget {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl DatabaseTarget {
    fn of(config: &Config) -> Self {
        match &config.database.url {
            hive_core::kernel::config::DatabaseUrl::Sqlite(path) => Self::Sqlite(path.clone()),
            hive_core::kernel::config::DatabaseUrl::Postgres(url) => {
                Self::Postgres(secrecy::ExposeSecret::expose_secret(url).to_owned())
            }
        }
    }

    async fn execute(&self, sql: &str) -> Result<(), String> {
        match self {
            Self::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                execute_on::<sqlx::SqliteConnection>(&url, sql).await
            }
            Self::Postgres(url) => execute_on::<sqlx::PgConnection>(url, sql).await,
        }
    }

    /// Every audit record, a line each (`None` when the database cannot be read).
    async fn audit_lines(&self) -> Option<String> {
        match self {
            Self::Sqlite(path) => {
                let url = format!("sqlite://{}?mode=ro", path.display());
                audit_lines_of::<sqlx::SqliteConnection>(&url).await
            }
            Self::Postgres(url) => audit_lines_of::<sqlx::PgConnection>(url).await,
        }
    }
}

async fn execute_on<C>(url: &str, sql: &str) -> Result<(), String>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let mut conn = C::connect(url)
        .await
        .expect("a connection to the test server's database");
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    conn.close().await.expect("closes");
    done
}

async fn audit_lines_of<C>(url: &str) -> Option<String>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    for<'q> <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'r> String: sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
    usize: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
{
    use sqlx::Row;
    const QUERY: &str = "SELECT actor, action, coalesce(target, '') AS target, outcome, \
         coalesce(ip, '') AS ip, coalesce(request_id, '') AS request_id, detail \
         FROM audit_events";
    let mut conn = C::connect(url).await.ok()?;
    let rows = sqlx::query(QUERY).fetch_all(&mut conn).await.ok()?;
    let lines = rows.iter().map(|row| {
        let fields: Vec<String> = (0..7)
            .map(|i| row.try_get::<String, _>(i).unwrap_or_default())
            .collect();
        fields.join("\t") + "\n"
    });
    Some(lines.collect())
}

/// Writes held back by [`TestServer::hold_writes_to`].
pub enum HeldWrites {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl HeldWrites {
    /// Lets the writes through (the holding transaction changed nothing).
    pub async fn release(self) {
        use sqlx::Connection;
        match self {
            Self::Sqlite(mut connection) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut connection)
                    .await
                    .expect("rollback");
                connection.close().await.expect("closes");
            }
            Self::Postgres(mut connection) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut connection)
                    .await
                    .expect("rollback");
                connection.close().await.expect("closes");
            }
        }
    }
}

/// Copies the server's audit records into the test capture when the server goes away, for the
/// secret-leak check.
struct AuditCapture(DatabaseTarget);

impl Drop for AuditCapture {
    fn drop(&mut self) {
        let target = self.0.clone();
        // Its own thread and runtime: a drop cannot await, and the test's runtime may be the
        // current-thread kind, which cannot block on itself.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if let Some(lines) = runtime.block_on(target.audit_lines()) {
                capture::append("audit", &lines);
            }
        })
        .join();
    }
}

impl TestServer {
    pub fn builder(backend: TestBackend) -> TestServerBuilder {
        TestServerBuilder {
            backend,
            vars: Vec::new(),
            extra_routes: Router::new(),
            public_host: None,
            listener: None,
        }
    }

    /// A server with the default test configuration.
    pub async fn start(backend: TestBackend) -> Self {
        Self::builder(backend).start().await
    }

    /// Starts a server in an existing environment (to test restarts).
    pub async fn start_in(
        environment: TestEnvironment,
        vars: Vec<(String, String)>,
        extra_routes: Router<AppState>,
    ) -> Self {
        Self::start_as(environment, vars, extra_routes, None).await
    }

    /// [`TestServer::start_in`] with the server named `public_host` in its `AUTH_URL`.
    pub async fn start_as(
        environment: TestEnvironment,
        vars: Vec<(String, String)>,
        extra_routes: Router<AppState>,
        public_host: Option<&str>,
    ) -> Self {
        let listener = reserve_listener("127.0.0.1").await;
        Self::start_on(environment, vars, extra_routes, public_host, listener).await
    }

    async fn start_on(
        environment: TestEnvironment,
        vars: Vec<(String, String)>,
        extra_routes: Router<AppState>,
        public_host: Option<&str>,
        listener: TcpListener,
    ) -> Self {
        let address = listener.local_addr().expect("local address");
        let base_url = format!("http://{address}");
        let origin = match public_host {
            Some(host) => format!("http://{host}:{}", address.port()),
            None => base_url.clone(),
        };
        let mut all = environment.base_vars();
        all.push(("HIVE_LISTEN".to_owned(), address.to_string()));
        all.push(("AUTH_URL".to_owned(), origin.clone()));
        all.extend(vars);
        let config = Config::load(&EnvSource::from_pairs(all)).expect("valid test configuration");
        capture::install_log_capture();
        let audit_capture = AuditCapture(DatabaseTarget::of(&config));
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let hive = Arc::new(
            Hive::open(config, clock.clone())
                .await
                .expect("Hive opens in the test environment"),
        );
        // The secrets the server settled on (generated ones included) are canaries too.
        capture::canary(secrecy::ExposeSecret::expose_secret(
            &hive.secrets.auth_secret,
        ));
        capture::canary(&hex_of(hive.secrets.encryption_key.expose()));
        for token in [&hive.secrets.setup_token, &hive.secrets.internal_token]
            .into_iter()
            .flatten()
        {
            capture::canary(secrecy::ExposeSecret::expose_secret(token));
        }
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        hive.start_jobs(&tracker, shutdown.clone());
        hive.start_presence(&tracker, shutdown.clone());
        let state = AppState::new(Arc::clone(&hive), shutdown.clone());
        // The dashboard's pages too, as `hive serve` mounts them.
        let app = hive_web::app_with(state.clone(), extra_routes);
        let server = tokio::spawn(hive_server::serve_app(state, app, listener));
        Self {
            client: TestClient::new(&base_url),
            base_url,
            origin,
            hive,
            clock,
            shutdown,
            tracker,
            server,
            _audit_capture: audit_capture,
            environment,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Runs SQL statements on the server's database over a connection of the test's own,
    /// beside the server's pools: to inject a fault (a trigger that fails), or to look at
    /// rows as an operator with database access would.
    pub async fn execute_sql(&self, sql: &str) {
        if let Err(error) = self.try_execute_sql(sql).await {
            panic!("SQL refused: {error}");
        }
    }

    /// As [`TestServer::execute_sql`], answering what the database said.
    pub async fn try_execute_sql(&self, sql: &str) -> Result<(), String> {
        DatabaseTarget::of(&self.hive.config).execute(sql).await
    }

    /// Holds back writes to `table` until [`HeldWrites::release`]: a transaction of the test's
    /// own takes the database's write lock (SQLite) or a lock on `table` that lets reads through
    /// but not writes (PostgreSQL). A request that reaches such a write waits there — mid-flight
    /// for as long as the test needs (on SQLite, up to the server's 5 s busy timeout).
    pub async fn hold_writes_to(&self, table: &str) -> HeldWrites {
        use sqlx::Connection;
        match DatabaseTarget::of(&self.hive.config) {
            DatabaseTarget::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut connection = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("a connection to the test server's database");
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut connection)
                    .await
                    .expect("the write lock");
                HeldWrites::Sqlite(connection)
            }
            DatabaseTarget::Postgres(url) => {
                let mut connection = sqlx::PgConnection::connect(&url)
                    .await
                    .expect("a connection to the test server's database");
                let lock = format!("BEGIN; LOCK TABLE {table} IN SHARE MODE");
                sqlx::raw_sql(sqlx::AssertSqlSafe(lock))
                    .execute(&mut connection)
                    .await
                    .expect("the table lock");
                HeldWrites::Postgres(connection)
            }
        }
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Shuts down as `hive serve` does and returns how serving ended and the environment (to
    /// start again on the same data).
    pub async fn stop(self) -> (Result<(), ServeError>, TestEnvironment) {
        self.shutdown.cancel();
        let served = self.server.await.expect("server task");
        self.tracker.close();
        self.tracker.wait().await;
        self.hive.close().await;
        (served, self.environment)
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
