//! `hive`: the one binary of Hive.

mod admin;
mod agent;
mod allocator;
mod backup;
mod billing;
mod egress;
mod hosted;
mod logging;
mod mesh;
mod remote;
mod telemetry;
mod vault;
mod workflow;

use clap::{Parser, Subcommand};
use hive_core::kernel::config::{Config, EnvSource};
use hive_core::kernel::runtime_secrets as secrets;
use hive_core::{Hive, storage};
use hive_proto::SystemClock;
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
    /// Create the first admin.
    Admin {
        #[command(subcommand)]
        action: admin::AdminAction,
    },
    /// List, invite and deactivate accounts.
    User {
        #[command(subcommand)]
        action: admin::UserAction,
    },
    /// Create, list and revoke API tokens.
    Token {
        #[command(subcommand)]
        action: admin::TokenAction,
    },
    /// The agent registry: list, create, import, start, stop, call; hosted agents' bundles,
    /// logs and stats through a running server.
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
    /// The vault's data keys: list, rotate, re-encrypt.
    Keys {
        #[command(subcommand)]
        action: vault::KeysAction,
    },
    /// Secrets: import values encrypted elsewhere.
    Secrets {
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
    /// The audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Walk the hash chain of the audit log and report the first edited, deleted or reordered
    /// record (exit 1), or that it is intact.
    Verify,
    /// Write the audit log to standard output as JSON lines, oldest first, each with its seq,
    /// prevHash and hash. The export is itself audited.
    Export(ExportArgs),
}

/// The filters of `hive audit export` (the same as the HTTP API's).
#[derive(clap::Args)]
struct ExportArgs {
    /// Records at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Records before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Exactly this actor (e.g. user:<id>, cli, system).
    #[arg(long)]
    actor: Option<String>,
    /// Exactly this action, or a prefix ending in `.` or `*`.
    #[arg(long)]
    action: Option<String>,
    /// A target (type:id) or a target type.
    #[arg(long)]
    resource: Option<String>,
    /// success, failure or denied.
    #[arg(long)]
    outcome: Option<String>,
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
        Command::User { action } => run(with_hive(config, |hive| async move {
            admin::user(&hive, action).await
        })),
        Command::Token { action } => run(with_hive(config, |hive| async move {
            admin::token(&hive, action).await
        })),
        // Clients of a running server's API: they never open the data directory, which that
        // server holds.
        Command::Agent {
            action: agent::AgentAction::Hosted(action),
        } => run(async move { hosted::hosted(&config, action).await }),
        Command::Workflow { action } => {
            run(async move { workflow::workflow(&config, action).await })
        }
        Command::Billing { action } => run(async move { billing::billing(&config, action).await }),
        Command::Agent { action } => run(with_hive(config, |hive| async move {
            agent::agent(&hive, action).await
        })),
        Command::Keys { action } => run(with_hive(config, |hive| async move {
            vault::keys(&hive, action).await
        })),
        Command::Secrets { action } => run(with_hive(config, |hive| async move {
            vault::secrets(&hive, action).await
        })),
        Command::Egress { action } => run(async move { egress::egress(&config, action).await }),
        Command::Backup { action } => run(backup::backup(config, action)),
        Command::Audit {
            action: AuditAction::Verify,
        } => run(with_hive(config, |hive| async move {
            verify_audit(&hive).await
        })),
        Command::Audit {
            action: AuditAction::Export(args),
        } => run(with_hive(config, |hive| async move {
            export_audit(&hive, args).await
        })),
    }
}

/// Why a command failed: its work (exit 1), or the instance it works on could not be opened
/// (exit 2: none there, locked by a running server, unreachable, misconfigured).
enum Failure {
    Work(String),
    Instance(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Work(message)
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

async fn verify_audit(hive: &Hive) -> Result<(), String> {
    let report = hive
        .audit_log
        .verify(&hive_core::kernel::caller::Caller::cli())
        .await
        .map_err(|e| e.to_string())?;
    if report.unchained > 0 {
        println!(
            "{} records are outside the hash chain (Hive writes none)",
            report.unchained
        );
    }
    if let Some(seq) = report.resumed_after {
        println!(
            "records up to {seq} were deleted by retention; verified from its signed checkpoint"
        );
    }
    match report.first_break {
        None => {
            println!("audit chain intact: {} records verified", report.checked);
            Ok(())
        }
        Some(first_break) => Err(format!(
            "audit chain broken: {first_break} ({} records before it verified)",
            report.checked
        )),
    }
}

async fn export_audit(hive: &Hive, args: ExportArgs) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let query = hive_proto::auth::AuditFilterQuery {
        actor: args.actor,
        action: args.action,
        resource: args.resource,
        outcome: args.outcome,
        since: args.since,
        until: args.until,
    };
    let mut export = hive
        .audit_log
        .export(
            &hive_core::kernel::caller::Caller::cli(),
            &query,
            &admin::cli_meta(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let write_failed = |e: std::io::Error| format!("cannot write the export: {e}");
    while let Some(lines) = export.next_lines().await.map_err(|e| e.to_string())? {
        out.write_all(&lines).await.map_err(write_failed)?;
    }
    out.flush().await.map_err(write_failed)
}

/// Opens the existing instance (without serving), runs `work`, closes it. A data directory
/// without an instance is not made one: a command run from the wrong directory says so.
async fn with_hive<F, Fut>(config: Config, work: F) -> Result<(), Failure>
where
    F: FnOnce(Arc<Hive>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    existing_instance(&config).map_err(Failure::Instance)?;
    with_hive_creating(config, work).await
}

/// [`with_hive`] that makes the instance when there is none (`hive admin create`).
async fn with_hive_creating<F, Fut>(config: Config, work: F) -> Result<(), Failure>
where
    F: FnOnce(Arc<Hive>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    eprintln!("hive: {}", instance_of(&config));
    let hive = Arc::new(
        Hive::open(config, Arc::new(SystemClock))
            .await
            .map_err(|e| Failure::Instance(opening_failed(&e.to_string())))?,
    );
    let outcome = work(Arc::clone(&hive)).await;
    hive.close().await;
    outcome.map_err(Failure::Work)
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
            "{message}. A running server holds it: stop the server first, or do this through \
             its API or dashboard (the `hive workflow`, `hive billing` and `hive agent hosted` \
             commands talk to it with HIVE_SERVER_URL and HIVE_TOKEN)."
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
