//! One running Hive: its configuration, secrets, store and clock, opened in order.

use crate::identity::{Identity, IdentitySettings, SetupDoneHook};
use crate::kernel::config::Config;
use crate::kernel::jobs::{
    JobContext, JobRunner, JobRunnerHandle, PruneAuditLog, PruneExpiredSessions, PruneExpiredTasks,
    PruneIdleConversations, PruneJobHistory, RunnerStatus,
};
use crate::kernel::runtime_secrets::{self as secrets, RuntimeSecrets, SecretsError};
use crate::shared_state::SharedState;
use crate::storage::{self, SchemaError, SchemaOutcome};
use crate::vault::rotation::{REENCRYPT_BATCH, REENCRYPT_EVERY, ReencryptSecrets};
use hive_proto::SharedClock;
use hive_store::{Store, StoreError};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Schema(#[from] SchemaError),
    #[error("{0}")]
    State(#[from] hive_state::StateError),
    #[error(transparent)]
    Mail(#[from] crate::kernel::mail::MailError),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultOpenError),
    #[error("identity: {0}")]
    Identity(#[from] crate::identity::IdentityError),
    #[error("egress: {0}")]
    Egress(String),
    #[error(transparent)]
    Federation(#[from] crate::mesh::federation::FederationStartError),
    #[error("backups: {0}")]
    Backup(#[from] crate::backup::BackupError),
    #[error("the secrets step stopped unexpectedly")]
    Interrupted,
}

/// How long a shutdown waits for chat turns to store their replies.
const TURN_DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a shutdown waits for push notifications under way.
const PUSH_DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// How long [`Hive::check_dependencies`] waits for an answer.
const DEPENDENCY_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a dependency did not answer: for the log, never for a client.
#[derive(Debug, thiserror::Error)]
pub enum DependencyFailure {
    #[error("database: {0}")]
    Database(StoreError),
    #[error("database: no answer within {DEPENDENCY_CHECK_TIMEOUT:?}")]
    DatabaseTimedOut,
}

/// The services of one Hive process, shared by the HTTP server, the CLI and the job runner.
#[derive(Debug)]
pub struct Hive {
    pub config: Arc<Config>,
    pub secrets: Arc<RuntimeSecrets>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    /// Rate limiter and replay cache, in memory or on Redis.
    pub state: SharedState,
    /// The generations of what this replica caches (credentials, agents), bumped by changes
    /// here and announced by the other replicas.
    pub changes: Arc<crate::kernel::changes::Changes>,
    /// Accounts, sessions, tokens.
    pub identity: Arc<Identity>,
    /// Passkeys (WebAuthn) of accounts, with `AUTH_URL` as the relying party.
    pub passkeys: Arc<crate::identity::Passkeys>,
    /// The vault's keyring.
    pub vault: Arc<crate::vault::Vault>,
    /// Rotation and listing of the vault's data keys.
    pub key_admin: Arc<crate::vault::rotation::KeyAdmin>,
    /// The one way out: the SSRF-guarded HTTP client.
    pub egress: Arc<crate::kernel::egress::Egress>,
    /// Single sign-on with the providers of `OIDC_PROVIDERS`.
    pub oidc: Arc<crate::identity::oidc::Oidc>,
    /// Admin-edited settings (the egress allowlist), followed across replicas.
    pub settings: Arc<crate::kernel::settings::Settings>,
    /// The agent registry.
    pub agents: Arc<crate::agents::Agents>,
    /// Starting, stopping and watching agents.
    pub agent_lifecycle: Arc<crate::agents::lifecycle::AgentLifecycle>,
    /// The A2A gateway: agent cards, JSON-RPC calls, the tasks of agents that run inside Hive.
    pub gateway: Arc<crate::gateway::Gateway>,
    /// Federation with peer instances (`MESH_FEDERATION_ENABLED=true`).
    pub federation: Option<Arc<crate::mesh::federation::Federation>>,
    /// The anonymous public tier (`A2A_PUBLIC_JSONRPC_ENABLED=true`).
    pub public_tier: Option<Arc<crate::mesh::public_tier::PublicTier>>,
    /// Chat with agents: conversations and their history.
    pub conversations: Arc<crate::gateway::conversations::Conversations>,
    /// Registration of remote agents from their agent cards.
    pub agent_import: Arc<crate::agents::import::AgentImport>,
    /// Second factors: TOTP and recovery codes.
    pub mfa: Arc<crate::identity::mfa::Mfa>,
    /// A2A push-notification configs and their delivery.
    pub push_configs: Arc<crate::gateway::push::PushConfigs>,
    /// Secrets sealed by the vault.
    pub secrets_service: Arc<crate::vault::secrets::SecretService>,
    /// Chat completions for `llm` agents (through the egress guard, keys from the vault).
    pub llm: Arc<crate::agents::llm::LlmClient>,
    /// Token usage of `llm` agents' calls, and their use today (the daily budget).
    pub usage_meter: Arc<crate::agents::llm::UsageMeter>,
    /// Billing: wallets, the ledger, Stripe, prices, metering and budgets.
    pub billing: Arc<crate::billing::Billing>,
    /// The WAN mesh: the ingress and, with `NATS_URL`, the JetStream carrier.
    pub wan: Arc<crate::mesh::wan::Wan>,
    /// Writes every audit record.
    pub auditor: crate::kernel::audit::Auditor,
    /// Reads, exports and verifies the audit log.
    pub audit_log: Arc<crate::kernel::audit::AuditLog>,
    /// Keys the audit log's hash chain (for `hive audit verify`).
    pub audit_chain: Arc<crate::kernel::audit::AuditChain>,
    /// Workflows: definitions, runs, approvals, webhooks.
    pub workflows: Arc<crate::workflows::service::Workflows>,
    /// This replica's executor of workflow runs.
    pub workflow_engine: Arc<crate::workflows::engine::Engine>,
    /// Starts workflow runs (for the schedule job).
    pub workflow_starter: Arc<crate::workflows::runs::RunStarter>,
    /// Encrypted archives of this instance, their retention (and the schedule's job).
    pub backups: Arc<crate::backup::Backups>,
    /// A random id for this process, recorded with the jobs it runs.
    pub node_id: String,
    /// What this replica's job runner last saw (leadership, ticks).
    pub jobs_status: Arc<tokio::sync::watch::Sender<RunnerStatus>>,
    /// The sandbox backend of this process, as found at start.
    pub sandbox: crate::system_health::SandboxAvailability,
    /// What the start did with the database schema.
    pub schema: SchemaOutcome,
}

/// Identity's setup-done hook: removes a generated setup token from the secrets file once the
/// first admin exists, however setup finished (a running server holds its copy, which setup
/// refuses from then on anyway). Best effort: the next start retires it too.
fn retire_setup_token_hook(config: &Arc<Config>) -> SetupDoneHook {
    let config = Arc::clone(config);
    SetupDoneHook::new(move || {
        if let Err(error) = secrets::retire_setup_token(&config) {
            tracing::warn!(
                %error,
                "the setup token could not be removed from the secrets file; the next start removes it"
            );
        }
    })
}

impl Hive {
    /// Resolves the secrets (generating missing ones in development), opens the store and
    /// brings its schema up to date (or refuses a newer one).
    pub async fn open(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        let config = Arc::new(config);
        let for_secrets = Arc::clone(&config);
        // File I/O and fsync: off the executor.
        let mut secrets = tokio::task::spawn_blocking(move || secrets::resolve(&for_secrets))
            .await
            .map_err(|_| StartError::Interrupted)??;
        let node_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let store = storage::open(&config).await?;
        // Whatever fails after the store is open closes it, once, here.
        let assembled: Result<Self, StartError> = async {
            let schema =
                storage::ensure_schema(store.as_ref(), config.database.auto_migrate).await?;
            // The generated setup token lives only while setup is open.
            secrets = Self::settle_setup_token(&config, store.as_ref(), secrets).await?;
            let master = hive_crypto::vault::MasterKey::from_bytes(secrets.encryption_key.expose());
            let state = SharedState::build(&config, &clock, &node_id, &store, &master)?;
            // Every service gets the store through which changes of cached rows are announced.
            let changes = crate::kernel::changes::Changes::new(Arc::clone(&state.bus), &node_id);
            let store = crate::kernel::changes::WatchedStore::wrap(
                Arc::clone(&store),
                Arc::clone(&changes),
            );
            let mailer = config
                .smtp
                .as_ref()
                .map(crate::kernel::mail::Mailer::new)
                .transpose()?;
            let audit_chain = Arc::new(crate::kernel::audit::AuditChain::new(
                master.derive(hive_crypto::vault::Purpose::AuditChain),
            ));
            let auditor = crate::kernel::audit::Auditor::new(
                Arc::clone(&store),
                Arc::clone(&audit_chain),
                Arc::clone(&clock),
            );
            let vault = Arc::new(
                crate::vault::Vault::open(
                    Arc::clone(&store),
                    &master,
                    Arc::clone(&clock),
                    crate::vault::VaultLimits::default(),
                )
                .await?,
            );
            let settings = IdentitySettings {
                mailer,
                allow_public_registration: config.allow_public_registration,
                mfa_policy: config.mfa_required,
                setup_token: secrets.setup_token.clone(),
                internal_token: secrets.internal_token.clone(),
                base_url: config.auth_url.as_str().trim_end_matches('/').to_owned(),
                on_setup_done: Some(retire_setup_token_hook(&config)),
            };
            let identity = Arc::new(Identity::new(
                Arc::clone(&store),
                Arc::clone(&clock),
                Arc::clone(&state.replay),
                Arc::clone(&state.claims),
                auditor.clone(),
                settings,
                Arc::clone(&changes),
            )?);
            let secrets_service = Arc::new(crate::vault::secrets::SecretService::new(
                Arc::clone(&store),
                Arc::clone(&vault),
                Arc::clone(&clock),
                auditor.clone(),
            ));
            let passkeys = Arc::new(crate::identity::Passkeys::new(
                Arc::clone(&identity),
                &config.auth_url,
            ));
            let mfa = Arc::new(crate::identity::mfa::Mfa::new(
                Arc::clone(&store),
                Arc::clone(&vault),
                Arc::clone(&identity),
                Arc::clone(&clock),
            ));
            let agents = Arc::new(crate::agents::Agents::new(
                Arc::clone(&store),
                auditor.clone(),
                Arc::clone(&clock),
            ));
            let key_admin = Arc::new(crate::vault::rotation::KeyAdmin::new(
                Arc::clone(&vault),
                Arc::clone(&store),
                auditor.clone(),
            ));
            let egress = Arc::new(
                crate::kernel::egress::Egress::new(&config, auditor.clone())
                    .map_err(|error| StartError::Egress(error.to_string()))?,
            );
            let oidc = Arc::new(crate::identity::oidc::Oidc::new(
                &config,
                Arc::clone(&store),
                Arc::clone(&identity),
                Arc::clone(&egress),
                Arc::clone(&clock),
            ));
            let agent_import = Arc::new(crate::agents::import::AgentImport::new(
                Arc::clone(&agents),
                Arc::clone(&egress),
            ));
            let billing = Arc::new(crate::billing::Billing::new(crate::billing::BillingParts {
                store: Arc::clone(&store),
                auditor: auditor.clone(),
                clock: Arc::clone(&clock),
                config: config.billing.clone(),
                egress: Arc::clone(&egress),
                public_url: config.auth_url.as_str().to_owned(),
            }));
            // One sandbox runtime for hosted agents and workflows' code nodes: they share the
            // host's sandbox uids and cgroups.
            let (sandbox_runtime, sandbox) =
                crate::sandboxing::open_runtime(&config, &egress, &auditor).await;
            // Absolute: the sandbox binds what is under it by path.
            let sandboxes_dir = std::path::absolute(config.data_dir.join("sandboxes"))
                .unwrap_or_else(|_| config.data_dir.join("sandboxes"));
            let hosted = Arc::new(crate::agents::hosted::HostedAgents::new(
                crate::agents::hosted::HostedParts {
                    store: Arc::clone(&store),
                    board: crate::agents::lifecycle::StatusBoard {
                        store: Arc::clone(&store),
                        bus: Arc::clone(&state.bus),
                        auditor: auditor.clone(),
                        clock: Arc::clone(&clock),
                    },
                    secrets: Arc::clone(&secrets_service),
                    runtime: sandbox_runtime.clone(),
                    config: config.sandbox.clone(),
                    dir: sandboxes_dir.clone(),
                    node: node_id.clone(),
                    sole_process: store.backend() == hive_store::Backend::Sqlite,
                    forward_key: master.derive(hive_crypto::vault::Purpose::HostedForwarding),
                    meter: Arc::clone(&billing) as Arc<dyn crate::kernel::ports::UsageSink>,
                    meter_every: config.billing.hosted_meter_every,
                    replay: Arc::clone(&state.replay),
                },
            ));
            let agent_lifecycle = Arc::new(crate::agents::lifecycle::AgentLifecycle::new(
                Arc::clone(&store),
                Arc::clone(&egress),
                Arc::clone(&secrets_service),
                Arc::clone(&state.bus),
                auditor.clone(),
                Arc::clone(&clock),
                Arc::clone(&hosted),
            ));
            let settings = Arc::new(crate::kernel::settings::Settings::new(
                Arc::clone(&store),
                auditor.clone(),
                Arc::clone(&egress),
                Arc::clone(&state.bus),
                Arc::clone(&clock),
                crate::kernel::settings::CodeNodesDefault {
                    on: config.workflows.code_nodes,
                    forced_off: config.workflows.code_nodes_forced_off,
                },
            ));
            let push_configs = Arc::new(crate::gateway::push::PushConfigs::new(
                Arc::clone(&store),
                Arc::clone(&vault),
                Arc::clone(&egress),
                auditor.clone(),
                Arc::clone(&clock),
            ));
            let llm = Arc::new(crate::agents::llm::LlmClient::new(
                Arc::clone(&egress),
                Arc::clone(&secrets_service),
            ));
            let usage_meter = Arc::new(crate::agents::llm::UsageMeter::new(
                Arc::clone(&store),
                Arc::clone(&clock),
            ));
            let gateway = Arc::new(crate::gateway::Gateway::new(crate::gateway::GatewayParts {
                store: Arc::clone(&store),
                identity: Arc::clone(&identity),
                egress: Arc::clone(&egress),
                secrets: Arc::clone(&secrets_service),
                push: Arc::clone(&push_configs),
                llm: Arc::clone(&llm),
                usage: Arc::clone(&usage_meter),
                meter: Arc::clone(&billing) as Arc<dyn crate::kernel::ports::UsageSink>,
                hosted: Arc::clone(&hosted),
                lifecycle: Arc::clone(&agent_lifecycle),
                limiter: Arc::clone(&state.limiter),
                tasks: Arc::clone(&state.tasks),
                task_events: Arc::clone(&state.task_events),
                clock: Arc::clone(&clock),
                changes: Arc::clone(&changes),
                task_ttl: config.task_ttl,
                settings: config.a2a.clone(),
                base_url: config.auth_url.as_str().to_owned(),
            }));
            let conversations = Arc::new(crate::gateway::conversations::Conversations::new(
                Arc::clone(&store),
                Arc::clone(&gateway),
                auditor.clone(),
                Arc::clone(&clock),
            ));
            let federation = match config.mesh.federation.clone() {
                None => None,
                Some(settings) => {
                    let parts = crate::mesh::federation::FederationParts {
                        settings,
                        own_origin: config.public_origin(),
                        replay: Arc::clone(&state.replay),
                        egress: Arc::clone(&egress),
                        auditor: auditor.clone(),
                        clock: Arc::clone(&clock),
                    };
                    Some(Arc::new(crate::mesh::federation::Federation::new(parts)?))
                }
            };
            let public_tier = config
                .mesh
                .public_tier
                .clone()
                .map(|settings| Arc::new(crate::mesh::public_tier::PublicTier::new(settings)));
            let carrier = connect_wan_carrier(&config, &state.replay).await?;
            let wan = Arc::new(crate::mesh::wan::Wan::new(
                auditor.clone(),
                Arc::clone(&state.bus),
                Arc::clone(&state.replay),
                carrier,
            ));
            // A stored list that cannot be read leaves the operator's list alone in force.
            if let Err(error) = settings.reload().await {
                tracing::warn!(%error, "the stored security settings were not applied at start");
            }
            // From here on, other replicas' changes end what this one caches.
            changes.follow();
            let workflow_starter = Arc::new(crate::workflows::runs::RunStarter::new(
                Arc::clone(&store),
                Arc::clone(&clock),
                auditor.clone(),
                Arc::new(tokio::sync::Notify::new()),
                config.workflows.max_runs_per_user,
            ));
            let workflow_engine = Arc::new(crate::workflows::engine::Engine::new(
                crate::workflows::engine::EngineParts {
                    store: Arc::clone(&store),
                    clock: Arc::clone(&clock),
                    auditor: auditor.clone(),
                    secrets: Arc::clone(&secrets_service),
                    principals: crate::workflows::principal::Principals::new(
                        Arc::clone(&store),
                        config.a2a.min_role,
                    ),
                    services: crate::workflows::nodes::NodeServices {
                        gateway: Arc::clone(&gateway),
                        egress: Arc::clone(&egress),
                        code: Arc::new(crate::workflows::code::CodeRunner::new(
                            sandbox_runtime,
                            &sandboxes_dir,
                        )),
                    },
                    starter: Arc::clone(&workflow_starter),
                    node: node_id.clone(),
                    settings: crate::workflows::engine::EngineSettings {
                        max_running: config.workflows.max_running as usize,
                        lease: config.workflows.lease,
                        ..crate::workflows::engine::EngineSettings::default()
                    },
                    code_nodes: settings.code_nodes(),
                    meter: Arc::clone(&billing) as Arc<dyn crate::kernel::ports::UsageSink>,
                },
            ));
            let workflows = Arc::new(crate::workflows::service::Workflows::new(
                crate::workflows::service::WorkflowParts {
                    store: Arc::clone(&store),
                    clock: Arc::clone(&clock),
                    auditor: auditor.clone(),
                    vault: Arc::clone(&vault),
                    secrets: Arc::clone(&secrets_service),
                    gateway: Arc::clone(&gateway),
                    agents: Arc::clone(&agents),
                    starter: Arc::clone(&workflow_starter),
                    code_nodes: settings.code_nodes(),
                },
            ));
            // The gateway runs published workflows through the workflows domain above it.
            gateway.connect_workflows(Arc::new(
                crate::workflows::publish::PublishedWorkflows::new(&workflows),
            ));
            let audit_log = Arc::new(crate::kernel::audit::AuditLog::new(
                Arc::clone(&store),
                auditor.clone(),
            ));
            let backups = Arc::new(crate::backup::Backups::new(
                config.backup.clone(),
                secrets::secrets_file_path(&config),
                Arc::clone(&store),
                Arc::clone(&clock),
                auditor.clone(),
            )?);
            Ok(Self {
                backups,
                auditor,
                audit_log,
                config,
                egress,
                oidc,
                settings,
                key_admin,
                identity,
                passkeys,
                agents,
                agent_import,
                agent_lifecycle,
                gateway,
                federation,
                public_tier,
                conversations,
                push_configs,
                mfa,
                secrets_service,
                llm,
                usage_meter,
                billing,
                vault,
                audit_chain,
                wan,
                secrets: Arc::new(secrets),
                store: Arc::clone(&store),
                clock,
                state,
                changes,
                workflows,
                workflow_engine,
                workflow_starter,
                node_id,
                jobs_status: Arc::new(tokio::sync::watch::channel(RunnerStatus::default()).0),
                sandbox,
                schema,
            })
        }
        .await;
        if assembled.is_err() {
            store.close().await;
        }
        assembled
    }

    /// Starts announcing this replica and logging the others' announcements, following
    /// settings changed on other replicas, and (with `NATS_URL`) consuming other instances'
    /// WAN envelopes onto the bus.
    pub fn start_presence(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        // Settings changed on another replica arrive on the same bus.
        self.settings.start_follower(tracker, cancel.clone());
        // Hosted agents: what a crash left is reaped, then each runs where its lease says.
        self.agent_lifecycle
            .hosted()
            .start_reconciler(tracker, cancel.clone());
        self.wan.start_consumer(tracker, cancel.clone());
        self.workflow_engine.start(tracker, cancel.clone());
        crate::mesh::presence::announce(
            Arc::clone(&self.state.bus),
            self.node_id.clone(),
            tracker,
            cancel,
        );
    }

    /// Starts the singleton background jobs (they run only while this replica leads).
    pub fn start_jobs(&self, tracker: &TaskTracker, cancel: CancellationToken) -> JobRunnerHandle {
        let jobs = &self.config.jobs;
        let ctx = JobContext {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
        };
        let mut runner = JobRunner::new(ctx, self.node_id.clone(), jobs.tick)
            .reporting_to(Arc::clone(&self.jobs_status));
        if let Some(schedule) = &self.config.backup.schedule {
            runner = runner.with_job(Arc::new(crate::backup::jobs::ScheduledBackup {
                backups: Arc::clone(&self.backups),
                schedule: schedule.clone(),
                since: self.clock.now(),
                tick: jobs.tick,
            }));
        }
        runner
            .with_job(Arc::new(PruneExpiredTasks {
                every: jobs.history_prune_interval,
                task_ttl: self.config.task_ttl,
            }))
            .with_job(Arc::new(PruneExpiredSessions {
                session_idle: crate::identity::limits::SESSION_IDLE,
                every: jobs.history_prune_interval,
            }))
            .with_job(Arc::new(PruneJobHistory {
                retention: std::time::Duration::from_secs(
                    u64::from(jobs.history_retention_days) * 86_400,
                ),
                every: jobs.history_prune_interval,
            }))
            .with_job(Arc::new(ReencryptSecrets {
                vault: Arc::clone(&self.vault),
                auditor: self.auditor.clone(),
                every: REENCRYPT_EVERY,
                batch: REENCRYPT_BATCH,
            }))
            .with_job(Arc::new(crate::agents::lifecycle::AgentHealth {
                lifecycle: Arc::clone(&self.agent_lifecycle),
                every: crate::agents::lifecycle::HEALTH_EVERY,
            }))
            .with_job(Arc::new(PruneIdleConversations {
                retention_days: jobs.conversation_retention_days,
                every: jobs.history_prune_interval,
            }))
            .with_job(Arc::new(crate::workflows::jobs::FireSchedules {
                starter: Arc::clone(&self.workflow_starter),
                every: jobs.tick,
            }))
            .with_job(Arc::new(crate::workflows::jobs::PruneWorkflowRuns {
                retention: std::time::Duration::from_secs(
                    u64::from(self.config.workflows.run_retention_days) * 86_400,
                ),
                every: jobs.history_prune_interval,
            }))
            .with_job(Arc::new(crate::billing::jobs::ReleaseExpiredHolds {
                every: jobs.tick,
            }))
            .with_job(Arc::new(crate::billing::jobs::DeliverAlerts {
                billing: Arc::clone(&self.billing),
                every: jobs.tick,
            }))
            .with_job(Arc::new(PruneAuditLog {
                retention_days: jobs.audit_retention_days,
                every: jobs.history_prune_interval,
                chain: Arc::clone(&self.audit_chain),
            }))
            .spawn(tracker, cancel)
    }

    /// [`secrets::settle_setup_token`] by whether the store holds an admin yet.
    async fn settle_setup_token(
        config: &Arc<Config>,
        store: &dyn Store,
        mut secrets: RuntimeSecrets,
    ) -> Result<RuntimeSecrets, StartError> {
        let setup_open = !store.users().setup_completed().await?;
        let config = Arc::clone(config);
        tokio::task::spawn_blocking(move || {
            secrets::settle_setup_token(&config, &mut secrets, setup_open).map(|()| secrets)
        })
        .await
        .map_err(|_| StartError::Interrupted)?
        .map_err(StartError::from)
    }

    /// The link a person opens to create the first admin, when the token was generated here
    /// (an operator-supplied token is theirs to know and is never printed), and only while setup
    /// is open (there is no such token once an admin exists). The token rides in the fragment,
    /// which browsers never send to a server or put in a `Referer`.
    pub fn setup_link(&self) -> Option<String> {
        use secrecy::ExposeSecret;
        let token = self.secrets.setup_token.as_ref()?;
        let generated = self.secrets.generated.contains(&"HIVE_SETUP_TOKEN")
            || self.secrets.from_file.contains(&"HIVE_SETUP_TOKEN");
        generated.then(|| {
            let base = self.config.auth_url.as_str().trim_end_matches('/');
            format!("{base}/setup#token={}", token.expose_secret())
        })
    }

    /// Whether what this process cannot serve without answers: the database, within 2 s (the
    /// deep health check).
    pub async fn check_dependencies(&self) -> Result<(), DependencyFailure> {
        match tokio::time::timeout(DEPENDENCY_CHECK_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(DependencyFailure::Database(error)),
            Err(_) => Err(DependencyFailure::DatabaseTimedOut),
        }
    }

    /// Closes the store; call after the server and the jobs have stopped.
    pub async fn close(&self) {
        // Running tasks end first: their last notifications join the deliveries drained below.
        self.gateway.shut_down().await;
        // Hosted agents end with their replica (their leases given up for another to take).
        self.agent_lifecycle.hosted().shut_down().await;
        // With the tasks ended, their chat turns store their replies.
        if tokio::time::timeout(TURN_DRAIN_GRACE, self.conversations.drain())
            .await
            .is_err()
        {
            tracing::warn!("chat turns still under way at shutdown were abandoned");
        }
        // Deliveries under way finish before the store closes, within a grace period (a task
        // with retries pending could otherwise hold the shutdown for minutes).
        if tokio::time::timeout(PUSH_DRAIN_GRACE, self.push_configs.drain())
            .await
            .is_err()
        {
            tracing::warn!("push notifications still under way at shutdown were abandoned");
        }
        self.changes.close();
        self.state.bus.close();
        self.state.task_events.close();
        self.store.close().await;
    }
}

/// With `NATS_URL`, the WAN carrier and its consumer name. The client connects in the
/// background: a start while NATS is down succeeds, and WAN ingress answers 503 until it is up.
async fn connect_wan_carrier(
    config: &Config,
    replay: &Arc<dyn hive_state::ReplayCache>,
) -> Result<Option<(Arc<hive_state::WanCarrier>, String)>, hive_state::StateError> {
    let Some(nats) = &config.mesh.wan.nats else {
        return Ok(None);
    };
    let settings = hive_state::CarrierSettings::new(
        secrecy::ExposeSecret::expose_secret(&nats.url)
            .trim()
            .to_owned(),
        nats.stream.clone(),
        nats.subject.clone(),
        nats.consumer.clone(),
        nats.dedup_window,
        config.public_origin(),
    );
    let carrier = hive_state::WanCarrier::connect(settings, Arc::clone(replay)).await?;
    Ok(Some((Arc::new(carrier), nats.consumer.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::config::EnvSource;

    async fn open_with_key(data: &str, key: &str) -> Result<Hive, StartError> {
        let pairs = [
            ("HIVE_DATA_DIR", data),
            ("LOG_LEVEL", "warn"),
            ("ENCRYPTION_KEY", key),
        ];
        let config = Config::load(&EnvSource::from_pairs(pairs)).unwrap();
        Hive::open(config, Arc::new(hive_proto::SystemClock)).await
    }

    /// A start that fails after the store is open (here the vault, under the wrong master key)
    /// keeps nothing of it alive: the data directory's lock is free for the next start.
    #[tokio::test]
    async fn a_start_that_fails_after_opening_the_store_leaves_the_directory_free() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").display().to_string();
        let right = "11".repeat(32);
        let first = open_with_key(&data, &right).await.unwrap();
        first.close().await;
        drop(first);
        let wrong = open_with_key(&data, &"22".repeat(32)).await;
        assert!(matches!(wrong, Err(StartError::Vault(_))), "{wrong:?}");
        let again = open_with_key(&data, &right).await.unwrap();
        again.close().await;
    }
}
