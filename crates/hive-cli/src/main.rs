//! `hive`: the one binary of Hive.

mod admin;
mod agent;
mod allocator;
mod audit;
mod backup;
mod billing;
mod egress;
mod hosted;
mod instance;
mod logging;
mod mesh;
mod output;
mod profile;
mod remote;
mod telemetry;
mod vault;
mod workflow;

use clap::{Parser, Subcommand};
use hive_core::kernel::config::{Config, EnvSource};
use hive_core::kernel::runtime_secrets as secrets;
use hive_core::{Hive, storage};
use hive_proto::SystemClock;
use instance::{Failure, Instance, Target};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// mimalloc instead of the system's malloc: glibc keeps freed memory in one arena per thread
/// and hands little of it back, so every blocking thread that once verified a password kept its
/// 19 MiB Argon2id buffer (a burst of logins left hundreds of MiB behind for good). mimalloc
/// returns freed memory to the system (docs/operations.md gives the bound a test holds), sooner
/// with the options [`allocator::tune`] sets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hive",
    version,
    about = "Hive: runs, connects and guards AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (SQLite in HIVE_DATA_DIR unless DATABASE_URL names PostgreSQL).
    #[command(after_help = hive_core::kernel::config::spec::main_settings_help())]
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Create the first admin: on the data directory only (before any server runs).
    Admin {
        #[command(subcommand)]
        action: admin::AdminAction,
    },
    /// List, invite, change and deactivate accounts; reset links, sessions and second factors.
    /// Through a running server with --url (HIVE_URL, a profile), else on the data directory.
    User {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: admin::UserAction,
    },
    /// Create, list and revoke API tokens (through a server with --url, else the data
    /// directory).
    Token {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: admin::TokenAction,
    },
    /// The agent registry: list, register, show, start, stop, delete, import, call (through a
    /// server with --url, else the data directory); hosted agents' bundles, logs and stats
    /// through a running server.
    Agent {
        #[command(subcommand)]
        action: agent::AgentAction,
    },
    /// Workflows through a running server: apply, validate, list, show, run, runs, logs,
    /// cancel, retry, approve, import.
    Workflow {
        #[command(subcommand)]
        action: workflow::WorkflowAction,
    },
    /// Billing through a running server: wallet, ledger, usage (and its CSV), adjustments,
    /// prices.
    Billing {
        #[command(subcommand)]
        action: billing::BillingAction,
    },
    /// The vault's data keys: list, rotate, re-encrypt (through a server with --url, else the
    /// data directory).
    Keys {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: vault::KeysAction,
    },
    /// Secrets: list, and import values encrypted elsewhere (through a server with --url, else
    /// the data directory).
    Secrets {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: vault::SecretsAction,
    },
    /// The egress guard: what outbound requests may reach.
    Egress {
        #[command(subcommand)]
        action: egress::EgressAction,
    },
    /// Federation keys: generate a seed, show a public key, sign and verify a peer manifest.
    /// Reads no configuration.
    Mesh {
        #[command(subcommand)]
        action: mesh::MeshAction,
    },
    /// Backups: create, list, verify, restore (encrypted with age; see docs/operations.md).
    Backup {
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// The audit log: verify its chain, list, export (through a server with --url, else the
    /// data directory).
    Audit {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the configuration, print what was found (secrets masked) and exit non-zero on
    /// the first invalid value.
    Check,
}

/// The mode in which this binary is a sandbox's init program (`hive_sandbox::init`): run by
/// Hive itself, never by a person, so it is no command of the help.
const SANDBOX_INIT: &str = "sandbox-init";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some((mode, rest)) = args.split_first()
        && mode == SANDBOX_INIT
    {
        return hive_sandbox::init::main(&[SANDBOX_INIT.to_owned()], rest);
    }
    allocator::tune();
    let cli = Cli::parse();
    // Key tools for operators: they need no configuration (and may run where there is none).
    let command = match cli.command {
        Command::Mesh { action } => {
            return match mesh::mesh(action) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("hive: {message}");
                    ExitCode::FAILURE
                }
            };
        }
        command => command,
    };
    // Everything from here may create files in the data directory: owner-only, whatever the
    // inherited umask (the stores also create their files 0600; this covers anything else).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let config = match Config::load(&EnvSource::from_process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("hive: invalid configuration: {error}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Mesh { .. } => ExitCode::SUCCESS,
        Command::Config {
            action: ConfigAction::Check,
        } => config_check(&config),
        Command::Serve => run(serve(config)),
        Command::Migrate => run(migrate(config)),
        // The first admin is made where there is no instance yet: it may create one.
        Command::Admin { action } => run(with_hive_creating(config, |hive| async move {
            admin::admin(&hive, action).await
        })),
        Command::User { target, action } => run(on_instance(config, target, move |on, as_json| {
            admin::user(on, action, as_json)
        })),
        Command::Token { target, action } => {
            run(on_instance(config, target, move |on, as_json| {
                admin::token(on, action, as_json)
            }))
        }
        // Clients of a running server's API: they never open the data directory, which that
        // server holds.
        Command::Agent {
            action: agent::AgentAction::Hosted(action),
        } => run(async move { hosted::hosted(&config, action).await }),
        Command::Workflow { action } => {
            run(async move { workflow::workflow(&config, action).await })
        }
        Command::Billing { action } => run(async move { billing::billing(&config, action).await }),
        Command::Agent { action } => {
            let target = action.target().cloned().unwrap_or_default();
            run(on_instance(config, target, move |on, as_json| {
                agent::agent(on, action, as_json)
            }))
        }
        Command::Keys { target, action } => run(on_instance(config, target, move |on, as_json| {
            vault::keys(on, action, as_json)
        })),
        Command::Secrets { target, action } => {
            run(on_instance(config, target, move |on, as_json| {
                vault::secrets(on, action, as_json)
            }))
        }
        Command::Egress { action } => run(async move { egress::egress(&config, action).await }),
        Command::Backup { action } => run(backup::backup(config, action)),
        Command::Audit { target, action } => {
            run(on_instance(config, target, move |on, as_json| {
                audit::audit(on, action, as_json)
            }))
        }
    }
}

/// The exit code of a command whose instance could not be opened.
const EXIT_NO_INSTANCE: u8 = 2;

fn run<E: Into<Failure>>(work: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hive: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work).map_err(Into::into) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Work(message)) => {
            eprintln!("hive: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Instance(message)) => {
            eprintln!("hive: {message}");
            ExitCode::from(EXIT_NO_INSTANCE)
        }
    }
}

fn config_check(config: &Config) -> ExitCode {
    match secrets::inspect(config) {
        Ok(status) => {
            println!(
                "{}",
                hive_core::kernel::config::render_check(config, &status)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("hive: invalid configuration: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut config: Config) -> Result<(), String> {
    let traces = config
        .traces
        .as_ref()
        .map(telemetry::Traces::start)
        .transpose()?;
    logging::init(&config.log, traces.as_ref().map(telemetry::Traces::tracer))?;
    if let Some(traces) = &config.traces {
        tracing::info!(endpoint = %traces.endpoint, service = %traces.service_name, "traces are exported over OTLP");
    }
    // This binary is the sandboxes' init program too (`hive sandbox-init`).
    config.sandbox.init_program = std::env::current_exe().ok();
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let listen = config.http.listen;
    let hive = Arc::new(
        Hive::open(config, Arc::new(SystemClock))
            .await
            .map_err(|e| e.to_string())?,
    );
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Signal handlers are in place before anyone is told the server is up: a SIGTERM right
    // after the listening line must shut down gracefully, not kill the process.
    let shutdown = CancellationToken::new();
    let signals = ShutdownSignals::register()?;
    tokio::spawn(signals.cancel_on_signal(shutdown.clone()));
    let tracker = TaskTracker::new();
    if let Some(address) = hive.config.http.metrics_listen {
        let handle = hive_server::metrics::install_recorder()?;
        let metrics_listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address} (HIVE_METRICS_LISTEN): {e}"))?;
        let local = metrics_listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("Metrics on http://{local}/metrics");
        let stop = shutdown.clone();
        tracker.spawn(async move {
            if let Err(error) =
                hive_server::metrics::serve_metrics(metrics_listener, handle, stop).await
            {
                tracing::error!(%error, "the metrics listener failed");
            }
        });
    }
    hive.start_jobs(&tracker, shutdown.clone());
    hive.start_presence(&tracker, shutdown.clone());

    tracing::info!(
        address = %local,
        node_id = %hive.node_id,
        database = hive.store.backend().as_str(),
        "Hive is listening"
    );
    // The listening line comes last: whoever waits for it (an operator's script, the tests)
    // has everything printed before it.
    if let Some(link) = hive.setup_link() {
        eprintln!("Create the first admin (one-time link): {link}");
    }
    eprintln!(
        "Hive is listening on http://{local} (public URL {})",
        hive.config.auth_url
    );

    let state = hive_server::AppState::new(Arc::clone(&hive), shutdown.clone());
    let app = hive_web::app(state.clone());
    let served = hive_server::serve_app(state, app, listener).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    hive.close().await;
    // The spans of the last requests go out before the process does.
    if let Some(traces) = traces {
        traces.flush_and_stop().await;
    }
    tracing::info!("Hive stopped");
    served.map_err(|e| e.to_string())
}

/// SIGTERM (orchestrators) and SIGINT (Ctrl-C), registered up front.
struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot listen for {name}: {e}"))
        };
        Ok(Self {
            terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    /// Either signal starts the graceful shutdown.
    async fn cancel_on_signal(mut self, shutdown: CancellationToken) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        tracing::info!("shutdown signal received");
        shutdown.cancel();
    }
}

/// Runs an account command on the server named (`--url`, `HIVE_URL`, a profile) through its
/// API, else on the existing instance's data directory.
/// Runs an account command on the instance `target` names, with whether it asked for JSON.
async fn on_instance<F, Fut>(config: Config, target: Target, work: F) -> Result<(), Failure>
where
    F: FnOnce(Instance, bool) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let as_json = target.json;
    match instance::server(&config, &target)? {
        Some(api) => work(Instance::Server(Arc::new(api)), as_json).await,
        None => with_hive(config, |hive| work(Instance::Embedded(hive), as_json)).await,
    }
}

/// Opens the existing instance (without serving), runs `work`, closes it. A data directory
/// without an instance is not made one: a command run from the wrong directory says so.
async fn with_hive<F, Fut, E>(config: Config, work: F) -> Result<(), Failure>
where
    F: FnOnce(Arc<Hive>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Failure>,
{
    existing_instance(&config).map_err(Failure::Instance)?;
    with_hive_creating(config, work).await
}

/// [`with_hive`] that makes the instance when there is none (`hive admin create`).
async fn with_hive_creating<F, Fut, E>(config: Config, work: F) -> Result<(), Failure>
where
    F: FnOnce(Arc<Hive>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Failure>,
{
    eprintln!("hive: {}", instance_of(&config));
    let hive = Arc::new(
        Hive::open(config, Arc::new(SystemClock))
            .await
            .map_err(|e| Failure::Instance(opening_failed(&e.to_string())))?,
    );
    let outcome = work(Arc::clone(&hive)).await;
    hive.close().await;
    outcome.map_err(Into::into)
}

/// Which instance a command works on: its data directory and its database.
fn instance_of(config: &Config) -> String {
    let dir = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    match &config.database.url {
        hive_core::kernel::config::DatabaseUrl::Sqlite(path) => format!(
            "data directory {} (database {})",
            dir.display(),
            std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
        ),
        hive_core::kernel::config::DatabaseUrl::Postgres(_) => {
            format!(
                "data directory {} (database: PostgreSQL, DATABASE_URL)",
                dir.display()
            )
        }
    }
}

/// Refuses a data directory (or SQLite database) that does not exist: only `serve`, `migrate`
/// and `admin create` make an instance.
fn existing_instance(config: &Config) -> Result<(), String> {
    let missing = |what: &std::path::Path| {
        format!(
            "no Hive instance at {}: {} does not exist. Run this where the instance is (its \
             HIVE_DATA_DIR, default ./hive-data), or make one first (`hive serve`, `hive migrate` \
             or `hive admin create`).",
            instance_of(config),
            what.display()
        )
    };
    if !config.data_dir.is_dir() {
        return Err(missing(&config.data_dir));
    }
    if let hive_core::kernel::config::DatabaseUrl::Sqlite(path) = &config.database.url
        && !path.is_file()
    {
        return Err(missing(path));
    }
    Ok(())
}

/// A failure to open the instance, with what to do when a server holds it.
fn opening_failed(message: &str) -> String {
    if message.contains("in use by another Hive process") {
        format!(
            "{message}. A running server holds it: stop the server first, or run the command \
             against the server with --url URL (or HIVE_URL, or a profile file) and an API \
             token (HIVE_TOKEN, HIVE_TOKEN_FILE, --token-file or the profile)."
        )
    } else {
        message.to_owned()
    }
}

async fn migrate(config: Config) -> Result<(), String> {
    let store = storage::open(&config).await.map_err(|e| e.to_string())?;
    let outcome = storage::ensure_schema(store.as_ref(), true).await;
    store.close().await;
    match outcome.map_err(|e| e.to_string())? {
        storage::SchemaOutcome::AlreadyCurrent { version } => {
            println!("the database is up to date (schema version {version})");
        }
        storage::SchemaOutcome::Migrated { applied, version } => {
            println!("applied migrations {applied:?}; schema version {version}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        // Every subcommand's flags, globals included (--url, --json): no clash anywhere.
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn a_public_key_that_begins_with_a_dash_is_a_value_not_a_flag() {
        let parsed = Cli::try_parse_from([
            "hive",
            "mesh",
            "manifest",
            "verify",
            "--file",
            "peers.manifest",
            "--public-key",
            "-EoLDrOY-jWVrS5m23Pum6nHthkYlrQ-jXTxcPLgtYA",
        ]);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }
}
