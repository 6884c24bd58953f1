//! The hosted agents of this replica: their bundles' versions, starting and stopping them, the
//! lease that makes one replica at a time run each, their logs and measurements, and the
//! watchdog that restarts one that ended by itself.
//!
//! The database says what should run: an agent whose status is `starting`, `ready`, `paused`
//! or `error` should be running, one `created` or `stopped` should not. Every replica
//! reconciles with that each [`RECONCILE_EVERY`]: it renews its leases (a sandbox whose lease
//! was lost is killed at once, its new holder runs it), stops what should not run, pauses and
//! resumes what it holds, and starts what should run and nobody holds. So a stop asked of any
//! replica reaches the holder, and when the holder dies another takes its agents over once
//! their leases expire.

use super::bundle::{self, MANIFEST, Manifest};
use super::channel::{CHANNEL_URL, ChannelTransport};
use super::forward::{self, ForwardRefusal, ForwardTransport, Forwarded, Relayed};
use super::logs::{LogLine, LogPage, LogRing};
use super::runtime::{HostedAgent, HostedError, HostedLaunch, HostedRuntime};
use crate::agents::AgentError;
use crate::agents::lifecycle::{Guard, StatusBoard};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::config::SandboxConfig;
use crate::kernel::ports::{Billable, MeteredUse, Reservation, UsageRefusal, UsageSink};
use crate::vault::secrets::SecretService;
use hive_a2a::client::{HttpRequest, Transport};
use hive_proto::agents::HostedStatsView;
use hive_proto::agents::{AgentKind, AgentStatus};
use hive_sandbox::ExitReason;
use hive_store::{AgentRow, AuditOutcome, BundleRow, NewBundle, PageRequest, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use zeroize::Zeroizing;

/// How often each replica reconciles its hosted agents with the database.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How long a lease lasts unless renewed: a dead holder's agents move after this.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Versions of a bundle kept per agent (the active one always among them).
pub const BUNDLES_KEPT: u32 = 10;
/// The watchdog's first wait before restarting an agent that ended, doubled each time it ends
/// again, up to [`RESTART_BACKOFF_MAX`]; a run that lasted [`STABLE_RUN`] starts it over.
const RESTART_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(300);
const STABLE_RUN: Duration = Duration::from_secs(600);
/// Agents read per page while reconciling.
const RECONCILE_PAGE: u32 = hive_store::MAX_PAGE_SIZE;

/// Where the hosted agents of this replica keep their files and how they run.
pub struct HostedParts {
    pub store: Arc<dyn Store>,
    pub board: StatusBoard,
    pub secrets: Arc<SecretService>,
    /// The runtime, or why hosted agents cannot run on this replica.
    pub runtime: Result<HostedRuntime, String>,
    pub config: SandboxConfig,
    /// `<data dir>/sandboxes`.
    pub dir: PathBuf,
    /// This replica's name, as leases record it.
    pub node: String,
    /// Whether this process is the only one on its database (SQLite): any lease left is a dead
    /// earlier run's, taken over at once.
    pub sole_process: bool,
    /// Signs and checks the calls replicas forward to each other's agents.
    pub forward_key: hive_crypto::vault::SubKey,
    /// Where forwarded calls' nonces are remembered (shared by the replicas).
    pub replay: Arc<dyn hive_state::ReplayCache>,
    /// Billing: a running agent's time is held a period ahead and settled as it runs.
    pub meter: Arc<dyn UsageSink>,
    /// `HIVE_BILLING_HOSTED_METER_SECONDS`: how long each held period of run time lasts.
    pub meter_every: std::time::Duration,
}

/// One agent running here.
struct Running {
    agent: HostedAgent,
    version: i64,
    started_at: OffsetDateTime,
    logs: Arc<LogRing>,
    /// The values of its secrets: cut out of whatever it answers.
    secret_values: Arc<Vec<Zeroizing<String>>>,
    /// Set before a stop, so that its end is not taken for a crash.
    stopping: AtomicBool,
    paused: AtomicBool,
    /// The run time held with billing and since when (settled when the period ends or the run
    /// does).
    metered: Mutex<Option<(Reservation, OffsetDateTime)>>,
}

/// The watchdog's memory of an agent that keeps ending.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    not_before: tokio::time::Instant,
}

pub struct HostedAgents {
    store: Arc<dyn Store>,
    board: StatusBoard,
    secrets: Arc<SecretService>,
    runtime: Result<HostedRuntime, String>,
    config: SandboxConfig,
    dir: PathBuf,
    node: String,
    sole_process: bool,
    forward_key: Arc<hive_crypto::vault::SubKey>,
    forward_client: reqwest::Client,
    replay: Arc<dyn hive_state::ReplayCache>,
    meter: Arc<dyn UsageSink>,
    meter_every: std::time::Duration,
    running: Mutex<HashMap<Uuid, Arc<Running>>>,
    /// One operation at a time per agent (start, stop, pause…), whoever asks.
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<Uuid, Backoff>>,
    restarts: Mutex<HashMap<Uuid, u32>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    reconciles: AtomicU32,
}

impl std::fmt::Debug for HostedAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedAgents")
            .field("node", &self.node)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// How a hosted agent is reached for a call, with the values of its secrets to cut out of
/// what it answers.
pub enum HostedRoute {
    /// It runs here: its socket.
    Local {
        transport: ChannelTransport,
        secret_values: Arc<Vec<Zeroizing<String>>>,
    },
    /// Another replica runs it: the way there.
    Elsewhere {
        transport: ForwardTransport,
        secret_values: Arc<Vec<Zeroizing<String>>>,
    },
}

impl HostedAgents {
    pub fn new(parts: HostedParts) -> Self {
        Self {
            store: parts.store,
            board: parts.board,
            secrets: parts.secrets,
            runtime: parts.runtime,
            config: parts.config,
            dir: parts.dir,
            node: parts.node,
            sole_process: parts.sole_process,
            forward_key: Arc::new(parts.forward_key),
            forward_client: forward::forwarding_client(),
            replay: parts.replay,
            meter: parts.meter,
            meter_every: parts.meter_every,
            running: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            restarts: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            reconciles: AtomicU32::new(0),
        }
    }

    fn now(&self) -> OffsetDateTime {
        hive_store::truncate_to_micros(self.board.clock.now())
    }

    fn agent_dir(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn lock_of(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(id).or_default())
    }

    fn running_here(&self, id: Uuid) -> Option<Arc<Running>> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(&id).cloned()
    }

    fn take_running(&self, id: Uuid) -> Option<Arc<Running>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(&id)
    }

    fn running_count(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether hosted agents can run here, and why not.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.runtime.as_ref().err().map(String::as_str)
    }

    // ---- bundles ----

    /// Stores a new version of the agent's bundle after checking all of it (the archive, every
    /// path, the manifest, that the owner has the secrets it names) and makes it the one the
    /// next start runs; the agent's description and skills become the manifest's.
    pub async fn push_bundle(
        &self,
        caller: &Caller,
        id: Uuid,
        archive: Vec<u8>,
        meta: &RequestMeta,
    ) -> Result<BundleRow, AgentError> {
        let agent = &self.owned(caller, id).await?;
        if archive.len() as u64 > bundle::MAX_ARCHIVE_BYTES {
            return Err(AgentError::Invalid(format!(
                "the bundle is larger than {} bytes",
                bundle::MAX_ARCHIVE_BYTES
            )));
        }
        let sha256 = hive_crypto::sha256_hex(&archive);
        let bundles = self.agent_dir(agent.id).join("bundles");
        let unpacked = bundles.join(&sha256);
        let (manifest, manifest_text) = {
            let archive = archive.clone();
            let unpacked = unpacked.clone();
            tokio::task::spawn_blocking(move || unpack_once(&archive, &unpacked))
                .await
                .map_err(|_| AgentError::Unavailable)??
        };
        self.check_secrets_exist(agent.owner_id, &manifest).await?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AgentBundlePush,
            target: Some(format!("agent:{}", agent.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "name": agent.name,
                "sha256": sha256,
                "bytes": archive.len(),
            }),
        };
        let record = self.board.auditor.in_transaction(entry, meta);
        let row = self
            .store
            .hosted()
            .push_bundle(
                &NewBundle {
                    agent_id: agent.id,
                    sha256: &sha256,
                    manifest: &manifest_text,
                    archive: &archive,
                    created_by: caller.user_id(),
                    created_at: self.now(),
                },
                BUNDLES_KEPT,
                record.append(),
            )
            .await?;
        self.adopt_card(caller, agent, &manifest, meta).await?;
        self.forget_unkept_unpacked(agent.id).await;
        Ok(row)
    }

    /// The agent's kept versions, newest first.
    pub async fn bundles(&self, caller: &Caller, id: Uuid) -> Result<Vec<BundleRow>, AgentError> {
        let agent = &self.owned(caller, id).await?;
        Ok(self.store.hosted().list_bundles(agent.id).await?)
    }

    /// Makes `version` (none: the one before the active one) the version the next start runs.
    pub async fn rollback(
        &self,
        caller: &Caller,
        id: Uuid,
        version: Option<i64>,
        meta: &RequestMeta,
    ) -> Result<BundleRow, AgentError> {
        let agent = &self.owned(caller, id).await?;
        let kept = self.store.hosted().list_bundles(agent.id).await?;
        let active = kept.iter().find(|row| row.active).map(|row| row.version);
        let target = match version {
            Some(version) => kept.iter().find(|row| row.version == version),
            None => kept
                .iter()
                .find(|row| Some(row.version) < active && !row.active),
        }
        .cloned()
        .ok_or(AgentError::Conflict(
            "no such version of the bundle is kept (see the agent's bundles)",
        ))?;
        let manifest = bundle::parse_manifest(&target.manifest)
            .map_err(|error| AgentError::Invalid(error.to_string()))?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AgentBundleRollback,
            target: Some(format!("agent:{}", agent.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "name": agent.name,
                "from": active,
                "to": target.version,
                "sha256": target.sha256,
            }),
        };
        let record = self.board.auditor.in_transaction(entry, meta);
        if !self
            .store
            .hosted()
            .activate_bundle(agent.id, target.version, record.append())
            .await?
        {
            return Err(AgentError::Conflict(
                "the version was removed meanwhile; read the bundles again",
            ));
        }
        self.adopt_card(caller, agent, &manifest, meta).await?;
        Ok(BundleRow {
            active: true,
            ..target
        })
    }

    /// The registry's description and skills become the manifest's (its card).
    async fn adopt_card(
        &self,
        caller: &Caller,
        agent: &AgentRow,
        manifest: &Manifest,
        meta: &RequestMeta,
    ) -> Result<(), AgentError> {
        let current = self
            .store
            .agents()
            .get(agent.id, None)
            .await?
            .ok_or(AgentError::NotFound)?;
        let skills: Vec<hive_proto::agents::Skill> = manifest
            .skills
            .iter()
            .map(|skill| hive_proto::agents::Skill {
                id: skill.id.clone(),
                name: skill.name.clone(),
                description: skill.description.clone(),
                tags: skill.tags.clone(),
            })
            .collect();
        let mut next = current.clone();
        if !manifest.description.is_empty() {
            next.description = manifest.description.clone();
        }
        if !skills.is_empty() {
            next.skills = crate::agents::checked_skills(&skills)?;
        }
        if next == current {
            return Ok(());
        }
        next.version = current.version + 1;
        next.updated_at = self.now();
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AgentUpdate,
            target: Some(format!("agent:{}", agent.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "name": next.name,
                "kind": next.kind.as_str(),
                "visibility": next.visibility.as_str(),
                "version": next.version,
                "from": "bundle manifest",
            }),
        };
        let record = self.board.auditor.in_transaction(entry, meta);
        // A concurrent change of the agent's settings wins; the card follows the next push.
        self.store.agents().update(&next, record.append()).await?;
        Ok(())
    }

    /// Every secret the manifest names is one of the owner's.
    async fn check_secrets_exist(
        &self,
        owner_id: Uuid,
        manifest: &Manifest,
    ) -> Result<(), AgentError> {
        let names: Vec<&String> = manifest.secrets.values().collect();
        let found = self
            .secrets
            .names_of(owner_id)
            .await
            .map_err(|_| AgentError::Unavailable)?;
        let missing: Vec<&str> = names
            .iter()
            .filter(|name| !found.contains(name.as_str()))
            .map(|name| name.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(AgentError::Invalid(format!(
                "the manifest names secrets the agent's owner does not have: {}",
                missing.join(", ")
            )))
        }
    }

    /// Removes unpacked copies of versions no longer kept.
    async fn forget_unkept_unpacked(&self, agent_id: Uuid) {
        let Ok(kept) = self.store.hosted().list_bundles(agent_id).await else {
            return;
        };
        let keep: Vec<String> = kept.into_iter().map(|row| row.sha256).collect();
        let dir = self.agent_dir(agent_id).join("bundles");
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        })
        .await;
    }

    // ---- lifecycle ----

    /// Starts the agent here (the caller's own or, for an admin, anyone's): `ready` once its
    /// card answers on its channel, `error` with the reason when it does not (its output is in
    /// its logs). An agent that runs already is left running.
    pub(crate) async fn start(
        self: &Arc<Self>,
        caller: &Caller,
        agent: &AgentRow,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        hosted_only(agent)?;
        let lock = self.lock_of(agent.id);
        let _held = lock.lock().await;
        self.forget_backoff(agent.id);
        if self.running_here(agent.id).is_some() {
            return self.read(agent.id).await;
        }
        if let Some(lease) = self.live_lease_elsewhere(agent.id).await? {
            if matches!(agent.status, AgentStatus::Ready | AgentStatus::Paused) {
                return self.read(agent.id).await;
            }
            tracing::info!(agent = %agent.id, holder = %lease, "hosted agent held elsewhere");
            return Err(AgentError::Conflict(
                "the agent is starting on another replica",
            ));
        }
        if let Err(why) = &self.runtime {
            // Stored as wished: a replica that runs hosted agents starts it when it reconciles.
            let detail = format!("waiting for a replica that can run it (this one: {why})");
            self.board
                .change(
                    agent,
                    AgentStatus::Starting,
                    &detail,
                    &caller.principal(),
                    AuditAction::AgentStart,
                    meta,
                    Guard::Any,
                )
                .await?;
            return self.read(agent.id).await;
        }
        self.check_caps(agent).await?;
        self.launch(agent, caller.principal(), meta).await?;
        self.read(agent.id).await
    }

    /// Stops the agent: its signal, the grace period, then everything of it killed. On another
    /// replica than its holder, the stop is stored and the holder ends it at its next
    /// reconciliation.
    pub(crate) async fn stop(
        self: &Arc<Self>,
        caller: &Caller,
        agent: &AgentRow,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        hosted_only(agent)?;
        let lock = self.lock_of(agent.id);
        let _held = lock.lock().await;
        self.forget_backoff(agent.id);
        self.board
            .change(
                agent,
                AgentStatus::Stopped,
                "",
                &caller.principal(),
                AuditAction::AgentStop,
                meta,
                Guard::Any,
            )
            .await?;
        self.end_here(agent.id).await;
        self.read(agent.id).await
    }

    /// Stops and starts the agent: a new bundle version or changed settings apply.
    pub async fn restart(
        self: &Arc<Self>,
        caller: &Caller,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        let agent = &self.owned(caller, id).await?;
        let lock = self.lock_of(agent.id);
        let _held = lock.lock().await;
        self.forget_backoff(agent.id);
        if self.running_here(agent.id).is_none()
            && let Some(lease) = self.live_lease_elsewhere(agent.id).await?
        {
            tracing::info!(agent = %agent.id, holder = %lease, "restart asked of a non-holder");
            return Err(AgentError::Conflict(
                "the agent runs on another replica: stop it, then start it",
            ));
        }
        self.end_here(agent.id).await;
        self.check_caps(agent).await?;
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::AgentRestart,
            target: Some(format!("agent:{}", agent.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({ "name": agent.name }),
        };
        if self.board.auditor.record(entry, meta).await.is_err() {
            return Err(AgentError::Unavailable);
        }
        let current = self.read(agent.id).await?;
        self.launch(&current, caller.principal(), meta).await?;
        self.read(agent.id).await
    }

    /// Freezes (`pause`) or thaws the agent's processes.
    pub async fn set_paused(
        self: &Arc<Self>,
        caller: &Caller,
        id: Uuid,
        paused: bool,
        meta: &RequestMeta,
    ) -> Result<AgentRow, AgentError> {
        let agent = &self.owned(caller, id).await?;
        let lock = self.lock_of(agent.id);
        let _held = lock.lock().await;
        let (from, to, action) = if paused {
            (
                AgentStatus::Ready,
                AgentStatus::Paused,
                AuditAction::AgentPause,
            )
        } else {
            (
                AgentStatus::Paused,
                AgentStatus::Ready,
                AuditAction::AgentResume,
            )
        };
        if agent.status != from {
            return Err(AgentError::Conflict(if paused {
                "only a ready agent can be paused"
            } else {
                "only a paused agent can be resumed"
            }));
        }
        if let Some(running) = self.running_here(agent.id) {
            freeze(&running, paused).await?;
        }
        // Elsewhere, the holder follows the stored status at its next reconciliation.
        let changed = self
            .board
            .change(
                agent,
                to,
                "",
                &caller.principal(),
                action,
                meta,
                Guard::WhileUnchanged,
            )
            .await?;
        if !changed {
            return Err(AgentError::Conflict(
                "the agent changed meanwhile; read it again",
            ));
        }
        self.read(agent.id).await
    }

    /// Ends the agent here (if it runs here) and removes its files: its bundles, runs and logs.
    /// Called when the agent is deleted.
    pub async fn remove(&self, agent_id: Uuid) {
        let lock = self.lock_of(agent_id);
        let _held = lock.lock().await;
        self.end_here(agent_id).await;
        self.forget_backoff(agent_id);
        let dir = self.agent_dir(agent_id);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&agent_id);
    }

    /// Starts `agent` here under its lease. Status: `starting`, then `ready` or `error`.
    async fn launch(
        self: &Arc<Self>,
        agent: &AgentRow,
        principal: Principal,
        meta: &RequestMeta,
    ) -> Result<(), AgentError> {
        let runtime = self.runtime.as_ref().map_err(|_| {
            AgentError::Conflict("hosted agents cannot run on this replica: its sandbox is off or unavailable (its log says why)")
        })?;
        if !self.take_lease(agent.id).await? {
            return Err(AgentError::Conflict("the agent runs on another replica"));
        }
        self.board
            .change(
                agent,
                AgentStatus::Starting,
                "",
                &principal,
                AuditAction::AgentStart,
                meta,
                Guard::Any,
            )
            .await?;
        let starting = AgentRow {
            status: AgentStatus::Starting,
            ..agent.clone()
        };
        // Its first period of run time is held before it starts: one billing refuses does not.
        let held = self.meter.reserve(self.billable_run(agent, meta)).await;
        let outcome = match held {
            Ok(reservation) => match self.run(runtime, agent).await {
                Ok(running) => {
                    *running.metered.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((reservation, self.now()));
                    Ok(running)
                }
                Err(failure) => {
                    self.meter.release(reservation).await;
                    Err(failure)
                }
            },
            Err(refusal) => Err(StartFailure {
                detail: format!("billing refused its run time: {refusal}"),
                reason: format!("billing refused its run time: {refusal}"),
            }),
        };
        let (status, detail) = match outcome {
            Ok(running) => {
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(agent.id, Arc::clone(&running));
                self.watch(agent.id, running);
                (AgentStatus::Ready, StartFailure::none())
            }
            Err(failure) => {
                self.release_lease(agent.id).await;
                self.note_failure(agent.id);
                (AgentStatus::Error, failure)
            }
        };
        // A stop that came while it started stands (reconciliation ends what then runs).
        self.board
            .change_noting(
                &starting,
                status,
                &detail.detail,
                &detail.reason,
                &principal,
                AuditAction::AgentStatus,
                meta,
                Guard::WhileUnchanged,
            )
            .await?;
        Ok(())
    }

    /// Everything a start needs, then the start; why (safe to show) when it fails.
    async fn run(
        &self,
        runtime: &HostedRuntime,
        agent: &AgentRow,
    ) -> Result<Arc<Running>, StartFailure> {
        self.prepare_and_run(runtime, agent)
            .await
            .map_err(|why| StartFailure {
                detail: why.clone(),
                reason: why,
            })?
    }

    async fn prepare_and_run(
        &self,
        runtime: &HostedRuntime,
        agent: &AgentRow,
    ) -> Result<Result<Arc<Running>, StartFailure>, String> {
        let Some((bundle_row, archive)) = self
            .store
            .hosted()
            .active_bundle(agent.id)
            .await
            .map_err(|_| "its bundle cannot be read now".to_owned())?
        else {
            return Err("it has no bundle yet: upload one".to_owned());
        };
        let agent_dir = self.agent_dir(agent.id);
        let unpacked = agent_dir.join("bundles").join(&bundle_row.sha256);
        let (manifest, _) = {
            let unpacked = unpacked.clone();
            tokio::task::spawn_blocking(move || unpack_once(&archive, &unpacked))
                .await
                .map_err(|_| "its bundle could not be unpacked".to_owned())?
                .map_err(|error| error.to_string())?
        };
        let secrets = self.secret_values(agent.owner_id, &manifest).await?;
        let run_dir = agent_dir.join("run");
        let logs_dir = agent_dir.join("logs");
        let log_bytes = self.config.log_bytes;
        let redactions: Vec<Zeroizing<String>> =
            secrets.iter().map(|(_, value)| value.clone()).collect();
        let logs = {
            let run_dir = run_dir.clone();
            let agent_dir = agent_dir.clone();
            let redactions = redactions.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<LogRing> {
                prepare_run_dir(&agent_dir, &run_dir)?;
                Ok(LogRing::open(&logs_dir, log_bytes)?.with_redactions(redactions))
            })
            .await
            .map_err(|_| "its run directory could not be prepared".to_owned())?
            .map_err(|error| {
                format!("its run directory could not be prepared ({})", error.kind())
            })?
        };
        let logs = Arc::new(logs);
        let sandbox_id = format!("agent-{}", agent.id.simple());
        let launch = HostedLaunch {
            agent: agent.id,
            owner: Principal::User(agent.owner_id),
            id: &sandbox_id,
            bundle_dir: &unpacked,
            manifest: &manifest,
            secrets: secrets
                .iter()
                .map(|(name, value)| (name.clone(), value.to_string()))
                .collect(),
            run_dir: &run_dir,
            logs: Arc::clone(&logs),
            clock: Arc::clone(&self.board.clock),
        };
        Ok(match runtime.start(launch).await {
            Ok(hosted) => Ok(Arc::new(Running {
                agent: hosted,
                version: bundle_row.version,
                started_at: self.now(),
                logs,
                secret_values: Arc::new(redactions),
                stopping: AtomicBool::new(false),
                paused: AtomicBool::new(false),
                metered: Mutex::new(None),
            })),
            Err(HostedError::NotReady { why, output }) => Err(StartFailure {
                detail: not_ready_detail(&why, &output),
                reason: format!("it did not become ready: {why}"),
            }),
            Err(error) => Err(StartFailure {
                detail: error.to_string(),
                reason: error.to_string(),
            }),
        })
    }

    /// The manifest's variables with the values of the owner's secrets it names.
    async fn secret_values(
        &self,
        owner_id: Uuid,
        manifest: &Manifest,
    ) -> Result<Vec<(String, Zeroizing<String>)>, String> {
        let mut values = Vec::with_capacity(manifest.secrets.len());
        for (variable, name) in &manifest.secrets {
            let value = self
                .secrets
                .value_by_name(owner_id, name, "hosted_agent")
                .await
                .map_err(|_| "its secrets cannot be read now".to_owned())?
                .ok_or_else(|| format!("the secret {name:?} its manifest names is gone"))?;
            let text = std::str::from_utf8(&value)
                .map_err(|_| format!("the secret {name:?} is not text"))?;
            values.push((variable.clone(), Zeroizing::new(text.to_owned())));
        }
        Ok(values)
    }

    /// Follows the agent until it ends; an end that no stop asked for is recorded, and the
    /// agent restarted after its backoff.
    fn watch(self: &Arc<Self>, agent_id: Uuid, running: Arc<Running>) {
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let exit = tokio::select! {
                exit = running.agent.sandbox().wait() => exit,
                () = this.shutdown.cancelled() => {
                    this.settle_run_time(&running).await;
                    return;
                }
                refusal = this.meter_run_time(agent_id, &running) => {
                    this.stop_unpaid(agent_id, refusal).await;
                    return;
                }
            };
            this.settle_run_time(&running).await;
            if running.stopping.load(Ordering::SeqCst) {
                return;
            }
            let lock = this.lock_of(agent_id);
            let _held = lock.lock().await;
            // Only the run that ended is taken out: a newer one may have started meanwhile.
            {
                let mut map = this.running.lock().unwrap_or_else(|e| e.into_inner());
                if map
                    .get(&agent_id)
                    .is_some_and(|current| Arc::ptr_eq(current, &running))
                {
                    map.remove(&agent_id);
                } else {
                    return;
                }
            }
            running.agent.end_proxy();
            let ran = this.now() - running.started_at;
            if ran >= STABLE_RUN {
                this.forget_backoff(agent_id);
            }
            this.note_failure(agent_id);
            *this
                .restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(agent_id)
                .or_default() += 1;
            let why = match &exit {
                Ok(exit) => describe_exit(&exit.reason),
                Err(error) => error.to_string(),
            };
            tracing::warn!(agent = %agent_id, reason = %why, "a hosted agent ended by itself");
            let Ok(Some(agent)) = this.store.agents().get(agent_id, None).await else {
                return;
            };
            let actor = Principal::Job("hosted-watchdog");
            let meta = RequestMeta::default();
            let entry = AuditEvent {
                principal: actor.clone(),
                action: AuditAction::AgentExited,
                target: Some(format!("agent:{agent_id}")),
                outcome: AuditOutcome::Failure,
                detail: serde_json::json!({
                    "name": agent.name,
                    "reason": why,
                    "bundleVersion": running.version,
                }),
            };
            let _ = this.board.auditor.record(entry, &meta).await;
            if matches!(agent.status, AgentStatus::Ready | AgentStatus::Paused) {
                let _ = this
                    .board
                    .change(
                        &agent,
                        AgentStatus::Error,
                        &format!("it ended: {why}; restarting"),
                        &actor,
                        AuditAction::AgentHealth,
                        &meta,
                        Guard::WhileUnchanged,
                    )
                    .await;
            }
            // The lease is kept: the reconciliation restarts it here when its backoff is over.
        });
    }

    /// Ends the agent's run on this replica, if any, and gives its lease up.
    async fn end_here(&self, agent_id: Uuid) {
        if let Some(running) = self.take_running(agent_id) {
            running.stopping.store(true, Ordering::SeqCst);
            match running.agent.stop(self.config.stop_grace).await {
                Ok(exit) => {
                    tracing::info!(agent = %agent_id, reason = ?exit.reason, "hosted agent stopped")
                }
                Err(error) => tracing::warn!(agent = %agent_id, %error, "stopping a hosted agent"),
            }
            self.settle_run_time(&running).await;
        }
        self.release_lease(agent_id).await;
    }

    // ---- run time, metered ----

    /// A period of the agent's run time, paid by its owner.
    fn billable_run(&self, agent: &AgentRow, meta: &RequestMeta) -> Billable {
        Billable {
            payer: agent.owner_id,
            principal: Principal::User(agent.owner_id).to_string(),
            agent_id: agent.id,
            kind: hive_store::UsageKind::HostedRun,
            model: String::new(),
            prompt_tokens: 0,
            max_completion_tokens: None,
            quantity: self.meter_every.as_secs().max(1),
            meta: meta.clone(),
        }
    }

    /// Settles the run time held so far with the seconds it ran (once).
    async fn settle_run_time(&self, running: &Running) {
        let held = running
            .metered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((reservation, since)) = held {
            let seconds = u64::try_from((self.now() - since).whole_seconds()).unwrap_or(0);
            let used = MeteredUse {
                quantity: seconds,
                ..MeteredUse::default()
            };
            self.meter.settle(reservation, used).await;
        }
    }

    /// Each period: the last one settled, the next one held. Answers billing's refusal (the
    /// agent is then stopped); runs until the run ends otherwise.
    async fn meter_run_time(&self, agent_id: Uuid, running: &Running) -> UsageRefusal {
        loop {
            tokio::time::sleep(self.meter_every).await;
            self.settle_run_time(running).await;
            let agent = match self.store.agents().get(agent_id, None).await {
                Ok(Some(agent)) => agent,
                // Gone, or the database is away: the next period tries again.
                _ => continue,
            };
            match self
                .meter
                .reserve(self.billable_run(&agent, &RequestMeta::default()))
                .await
            {
                Ok(reservation) => {
                    *running.metered.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((reservation, self.now()));
                }
                Err(refusal) => return refusal,
            }
        }
    }

    /// Stops an agent whose run time billing refused, and says why on its status.
    async fn stop_unpaid(&self, agent_id: Uuid, refusal: UsageRefusal) {
        let lock = self.lock_of(agent_id);
        let _held = lock.lock().await;
        tracing::warn!(agent = %agent_id, %refusal, "a hosted agent is stopped: billing refused its run time");
        self.end_here(agent_id).await;
        let Ok(Some(agent)) = self.store.agents().get(agent_id, None).await else {
            return;
        };
        let _ = self
            .board
            .change(
                &agent,
                AgentStatus::Error,
                &format!("stopped: billing refused its run time ({refusal})"),
                &Principal::Job("hosted-meter"),
                AuditAction::AgentHealth,
                &RequestMeta::default(),
                Guard::Any,
            )
            .await;
    }

    // ---- leases and reconciliation ----

    async fn take_lease(&self, agent_id: Uuid) -> Result<bool, AgentError> {
        let now = self.now();
        let until = now + LEASE_TTL;
        // Alone on the database, any lease left is a dead earlier run's.
        let as_of = if self.sole_process { until } else { now };
        let address = self
            .config
            .node_url
            .as_ref()
            .map(|url| url.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Ok(self
            .store
            .hosted()
            .take_lease(agent_id, &self.node, &address, as_of, until)
            .await?)
    }

    async fn release_lease(&self, agent_id: Uuid) {
        if let Err(error) = self
            .store
            .hosted()
            .release_lease(agent_id, &self.node)
            .await
        {
            // It expires by itself.
            tracing::warn!(agent = %agent_id, %error, "a hosted agent's lease was not released");
        }
    }

    /// The node of another replica holding an unexpired lease on the agent.
    async fn live_lease_elsewhere(&self, agent_id: Uuid) -> Result<Option<String>, AgentError> {
        if self.sole_process {
            return Ok(None);
        }
        let lease = self.store.hosted().lease_of(agent_id).await?;
        Ok(lease
            .filter(|lease| lease.node != self.node && lease.expires_at > self.now())
            .map(|lease| lease.node))
    }

    /// Where a call to the agent goes: its socket here, or the replica that runs it.
    pub async fn route(&self, agent_id: Uuid) -> Result<HostedRoute, AgentError> {
        if let Some(running) = self.running_here(agent_id) {
            if running.paused.load(Ordering::SeqCst) {
                return Err(AgentError::Conflict("the agent is paused"));
            }
            return Ok(HostedRoute::Local {
                transport: running.agent.transport(),
                secret_values: Arc::clone(&running.secret_values),
            });
        }
        let lease = self
            .store
            .hosted()
            .lease_of(agent_id)
            .await?
            .filter(|lease| lease.node != self.node && lease.expires_at > self.now())
            .ok_or(AgentError::Conflict("the agent is not running"))?;
        if lease.address.is_empty() {
            return Err(AgentError::Conflict(
                "the agent runs on a replica without HIVE_NODE_URL, which others cannot reach",
            ));
        }
        let secret_values = Arc::new(self.active_secret_values(agent_id).await?);
        Ok(HostedRoute::Elsewhere {
            transport: ForwardTransport {
                client: self.forward_client.clone(),
                holder: lease.address,
                agent: agent_id,
                key: Arc::clone(&self.forward_key),
                clock: Arc::clone(&self.board.clock),
                timeout: None,
            },
            secret_values,
        })
    }

    /// The values of the secrets the agent's active bundle names (to scrub what a holder
    /// elsewhere relays back).
    async fn active_secret_values(
        &self,
        agent_id: Uuid,
    ) -> Result<Vec<Zeroizing<String>>, AgentError> {
        let agent = self.read(agent_id).await?;
        let Some(active) = self
            .store
            .hosted()
            .list_bundles(agent_id)
            .await?
            .into_iter()
            .find(|row| row.active)
        else {
            return Ok(Vec::new());
        };
        let manifest = bundle::parse_manifest(&active.manifest)
            .map_err(|error| AgentError::Internal(error.to_string()))?;
        let values = self
            .secret_values(agent.owner_id, &manifest)
            .await
            .map_err(|_| AgentError::Unavailable)?;
        Ok(values.into_iter().map(|(_, value)| value).collect())
    }

    /// Checks a request another replica forwarded: its time, its signature over everything it
    /// carries, and that its nonce was never seen. Answers its method.
    async fn verify(
        &self,
        forwarded: &Forwarded,
        meta: &RequestMeta,
    ) -> Result<&'static str, ForwardRefusal> {
        let checked = self.check_forwarded(forwarded).await;
        if let Err(
            refusal @ (ForwardRefusal::BadSignature
            | ForwardRefusal::Stale
            | ForwardRefusal::Replayed),
        ) = checked
        {
            let reason = match refusal {
                ForwardRefusal::Stale => "stale",
                ForwardRefusal::Replayed => "replayed",
                _ => "bad_signature",
            };
            let entry = AuditEvent::refused(
                Principal::Anonymous,
                AuditAction::AgentForwardRefused,
                reason,
            )
            .target(format!("agent:{}", forwarded.agent));
            self.board.auditor.record_refusal(entry, meta).await;
        }
        checked
    }

    async fn check_forwarded(&self, forwarded: &Forwarded) -> Result<&'static str, ForwardRefusal> {
        let now = self.board.clock.now().unix_timestamp();
        let skew = i64::try_from(forward::MAX_SKEW.as_secs()).unwrap_or(30);
        let time = forwarded.time.ok_or(ForwardRefusal::Stale)?;
        if (now - time).abs() > skew {
            return Err(ForwardRefusal::Stale);
        }
        let method =
            forward::known_method(&forwarded.method).ok_or(ForwardRefusal::BadSignature)?;
        let text = forward::signed_text(
            time,
            &forwarded.nonce,
            method,
            forwarded.agent,
            &forwarded.path,
            &forward::relayed_headers(&forwarded.headers),
            &forwarded.body,
        );
        if forwarded.nonce.len() < 32
            || !self
                .forward_key
                .verify_hmac_sha256_hex(text.as_bytes(), &forwarded.signature)
        {
            return Err(ForwardRefusal::BadSignature);
        }
        let fresh = self
            .replay
            .consume(
                &format!("hosted-forward:{}", forwarded.nonce),
                forward::MAX_SKEW * 2,
            )
            .await
            .map_err(|_| ForwardRefusal::Unavailable)?;
        if fresh {
            Ok(method)
        } else {
            Err(ForwardRefusal::Replayed)
        }
    }

    /// Relays a call another replica forwarded into the agent's socket, once it is verified.
    pub async fn relay(
        &self,
        forwarded: Forwarded,
        meta: &RequestMeta,
    ) -> Result<Relayed, ForwardRefusal> {
        let method = self.verify(&forwarded, meta).await?;
        let channel = forwarded
            .path
            .strip_prefix("/channel")
            .filter(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
            .ok_or(ForwardRefusal::BadSignature)?;
        let channel = if channel.is_empty() || channel.starts_with('?') {
            format!("/{channel}")
        } else {
            channel.to_owned()
        };
        let transport = self
            .local_channel(forwarded.agent)
            .ok_or(ForwardRefusal::NotHere)?;
        let request = HttpRequest {
            method,
            url: format!("{}{channel}", CHANNEL_URL.trim_end_matches('/')),
            headers: forward::relayed_headers(&forwarded.headers),
            body: forwarded.body,
        };
        transport
            .send(request)
            .await
            .map_err(|_| ForwardRefusal::Unreachable)
    }

    /// A page of the logs of an agent running here, for another replica that asked (verified).
    pub async fn relay_logs(
        &self,
        forwarded: Forwarded,
        after: Option<u64>,
        limit: usize,
        meta: &RequestMeta,
    ) -> Result<LogPage, ForwardRefusal> {
        self.verify(&forwarded, meta).await?;
        let running = self
            .running_here(forwarded.agent)
            .ok_or(ForwardRefusal::NotHere)?;
        read_ring(Arc::clone(&running.logs), move |ring| {
            ring.read(after, limit)
        })
        .await
        .map_err(|_| ForwardRefusal::Unreachable)
    }

    /// The measurements of an agent running here, for another replica that asked (verified).
    pub async fn relay_stats(
        &self,
        forwarded: Forwarded,
        meta: &RequestMeta,
    ) -> Result<HostedStatsView, ForwardRefusal> {
        self.verify(&forwarded, meta).await?;
        let agent = self
            .read(forwarded.agent)
            .await
            .map_err(|_| ForwardRefusal::NotHere)?;
        let running = self
            .running_here(forwarded.agent)
            .ok_or(ForwardRefusal::NotHere)?;
        Ok(self.measured(&agent, &running).await)
    }

    /// The way to the replica holding the agent's lease, if another one does.
    async fn holder_elsewhere(&self, agent_id: Uuid) -> Option<ForwardTransport> {
        let lease = self.store.hosted().lease_of(agent_id).await.ok()??;
        (lease.node != self.node && lease.expires_at > self.now() && !lease.address.is_empty())
            .then(|| ForwardTransport {
                client: self.forward_client.clone(),
                holder: lease.address,
                agent: agent_id,
                key: Arc::clone(&self.forward_key),
                clock: Arc::clone(&self.board.clock),
                timeout: None,
            })
    }

    /// The local channel of an agent running here (for a call another replica forwards).
    pub fn local_channel(&self, agent_id: Uuid) -> Option<ChannelTransport> {
        self.running_here(agent_id)
            .filter(|running| !running.paused.load(Ordering::SeqCst))
            .map(|running| running.agent.transport())
    }

    /// Kills what a crashed earlier run left, then reconciles every [`RECONCILE_EVERY`] until
    /// `cancel`.
    pub fn start_reconciler(self: &Arc<Self>, tracker: &TaskTracker, cancel: CancellationToken) {
        let this = Arc::clone(self);
        tracker.spawn(async move {
            if let Ok(runtime) = &this.runtime {
                runtime.reap_leftovers().await;
            }
            loop {
                if let Err(error) = this.reconcile().await {
                    tracing::warn!(%error, "reconciling hosted agents");
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(RECONCILE_EVERY) => {}
                }
            }
        });
    }

    /// One pass: leases renewed (a lost one's sandbox killed), then every hosted agent made to
    /// match its stored status. Answers how many passes ran so far.
    pub async fn reconcile(self: &Arc<Self>) -> Result<u32, AgentError> {
        let now = self.now();
        let held = self
            .store
            .hosted()
            .renew_leases(&self.node, now, now + LEASE_TTL)
            .await?;
        let here: Vec<Uuid> = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.keys().copied().collect()
        };
        for agent_id in here.iter().filter(|id| !held.contains(id)) {
            tracing::warn!(agent = %agent_id, "lost a hosted agent's lease: ending it here");
            if let Some(running) = self.take_running(*agent_id) {
                running.stopping.store(true, Ordering::SeqCst);
                let _ = running.agent.kill().await;
            }
        }
        let mut known = std::collections::HashSet::new();
        let mut page = PageRequest::first(RECONCILE_PAGE)
            .map_err(|error| AgentError::Internal(error.to_string()))?;
        loop {
            let agents = self.store.agents().list(None, &page).await?;
            for agent in agents.items.iter().filter(|a| a.kind == AgentKind::Hosted) {
                known.insert(agent.id);
                self.reconcile_one(agent).await;
            }
            match agents.next_cursor {
                Some(cursor) => {
                    page = PageRequest::new(RECONCILE_PAGE, Some(&cursor))
                        .map_err(|error| AgentError::Internal(error.to_string()))?;
                }
                None => break,
            }
        }
        self.sweep_deleted(&known).await;
        Ok(self.reconciles.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Agents deleted (on any replica) end here and leave no file behind.
    async fn sweep_deleted(&self, known: &std::collections::HashSet<Uuid>) {
        let here: Vec<Uuid> = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.keys().copied().collect()
        };
        let mut gone: Vec<Uuid> = here.into_iter().filter(|id| !known.contains(id)).collect();
        let dir = self.dir.clone();
        let on_disk = tokio::task::spawn_blocking(move || {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|entry| entry.file_name().to_str()?.parse::<Uuid>().ok())
                        .collect::<Vec<Uuid>>()
                })
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        gone.extend(on_disk.into_iter().filter(|id| !known.contains(id)));
        gone.sort();
        gone.dedup();
        for agent_id in gone {
            // Deleted meanwhile, or created after the list was read: asked again.
            if matches!(self.store.agents().get(agent_id, None).await, Ok(None)) {
                self.remove(agent_id).await;
            }
        }
    }

    async fn reconcile_one(self: &Arc<Self>, agent: &AgentRow) {
        let lock = self.lock_of(agent.id);
        // Busy with a start or stop: the next pass looks again.
        let Ok(_held) = lock.try_lock() else { return };
        let running = self.running_here(agent.id);
        let should_run = should_run(agent.status);
        match (should_run, running) {
            (false, Some(_)) => self.end_here(agent.id).await,
            (true, Some(running)) => {
                let paused = running.paused.load(Ordering::SeqCst);
                let want_paused = agent.status == AgentStatus::Paused;
                if paused != want_paused
                    && let Err(error) = freeze(&running, want_paused).await
                {
                    tracing::warn!(agent = %agent.id, %error, "following a pause or resume");
                }
            }
            (true, None) => {
                if self.runtime.is_err() || !self.backoff_over(agent.id) {
                    return;
                }
                if matches!(
                    self.live_lease_elsewhere(agent.id).await,
                    Ok(Some(_)) | Err(_)
                ) {
                    return;
                }
                if self.check_caps(agent).await.is_err() {
                    return;
                }
                let meta = RequestMeta::default();
                let actor = Principal::Job("hosted-watchdog");
                if let Err(error) = self.launch(agent, actor, &meta).await {
                    tracing::debug!(agent = %agent.id, %error, "hosted agent not started here");
                    return;
                }
                if agent.status == AgentStatus::Paused
                    && let Some(running) = self.running_here(agent.id)
                {
                    let _ = freeze(&running, true).await;
                }
            }
            (false, None) => {}
        }
    }

    fn note_failure(&self, agent_id: Uuid) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let entry = backoff.entry(agent_id).or_insert(Backoff {
            failures: 0,
            not_before: tokio::time::Instant::now(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let wait = RESTART_BACKOFF_FIRST
            .saturating_mul(1u32 << entry.failures.saturating_sub(1).min(16))
            .min(RESTART_BACKOFF_MAX);
        entry.not_before = tokio::time::Instant::now() + wait;
    }

    fn backoff_over(&self, agent_id: Uuid) -> bool {
        let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff
            .get(&agent_id)
            .is_none_or(|entry| tokio::time::Instant::now() >= entry.not_before)
    }

    fn forget_backoff(&self, agent_id: Uuid) {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&agent_id);
    }

    /// The caps: running sandboxes on this replica, and the owner's running hosted agents.
    async fn check_caps(&self, agent: &AgentRow) -> Result<(), AgentError> {
        if self.running_count() >= self.config.max_running as usize {
            return Err(AgentError::Conflict(
                "this replica runs as many hosted agents as HIVE_SANDBOX_MAX_RUNNING allows",
            ));
        }
        let mut count = 0u32;
        let mut page = PageRequest::first(RECONCILE_PAGE)
            .map_err(|error| AgentError::Internal(error.to_string()))?;
        loop {
            let agents = self
                .store
                .agents()
                .list(Some(agent.owner_id), &page)
                .await?;
            count += agents
                .items
                .iter()
                .filter(|other| {
                    other.id != agent.id
                        && other.kind == AgentKind::Hosted
                        && matches!(
                            other.status,
                            AgentStatus::Starting | AgentStatus::Ready | AgentStatus::Paused
                        )
                })
                .count() as u32;
            match agents.next_cursor {
                Some(cursor) => {
                    page = PageRequest::new(RECONCILE_PAGE, Some(&cursor))
                        .map_err(|error| AgentError::Internal(error.to_string()))?;
                }
                None => break,
            }
        }
        if count >= self.config.max_per_user {
            return Err(AgentError::Conflict(
                "the agent's owner runs as many hosted agents as HIVE_SANDBOX_MAX_PER_USER allows",
            ));
        }
        Ok(())
    }

    // ---- logs and stats ----

    /// A page of the agent's output, oldest first, after `after`.
    pub async fn logs(
        &self,
        caller: &Caller,
        id: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<LogPage, AgentError> {
        let agent = &self.owned(caller, id).await?;
        if self.running_here(agent.id).is_none()
            && let Some(holder) = self.holder_elsewhere(agent.id).await
        {
            let mut path = format!("/logs?limit={limit}");
            if let Some(after) = after {
                path.push_str(&format!("&after={after}"));
            }
            match holder.get_json::<LogPage>(&path).await {
                Ok(page) => return Ok(page),
                // What this replica kept of earlier runs is what there is to show.
                Err(error) => tracing::warn!(agent = %agent.id, %error, "logs from the holder"),
            }
        }
        let ring = self.ring_of(agent.id).await?;
        read_ring(ring, move |ring| ring.read(after, limit)).await
    }

    /// The agent's last `lines` lines (at most [`super::logs::MAX_PAGE`]), oldest first, in one
    /// read of its ring: for a first look, which then follows from the last one's seq.
    pub async fn log_tail(
        &self,
        caller: &Caller,
        id: Uuid,
        lines: usize,
    ) -> Result<Vec<LogLine>, AgentError> {
        let agent = &self.owned(caller, id).await?;
        let ring = self.ring_of(agent.id).await?;
        read_ring(ring, move |ring| ring.tail(lines)).await
    }

    /// The agent's output from `after` on, then live while it runs here. The receiver is `None`
    /// when it does not run here (the backlog is all there is).
    pub async fn follow(
        &self,
        caller: &Caller,
        id: Uuid,
        after: Option<u64>,
    ) -> Result<(LogPage, Option<tokio::sync::broadcast::Receiver<LogLine>>), AgentError> {
        let agent = &self.owned(caller, id).await?;
        let live = self
            .running_here(agent.id)
            .map(|running| running.logs.subscribe());
        let page = self.logs(caller, id, after, 1000).await?;
        Ok((page, live))
    }

    async fn ring_of(&self, agent_id: Uuid) -> Result<Arc<LogRing>, AgentError> {
        if let Some(running) = self.running_here(agent_id) {
            return Ok(Arc::clone(&running.logs));
        }
        let dir = self.agent_dir(agent_id).join("logs");
        let cap = self.config.log_bytes;
        tokio::task::spawn_blocking(move || LogRing::open(&dir, cap))
            .await
            .map_err(|_| AgentError::Unavailable)?
            .map(Arc::new)
            .map_err(|error| AgentError::Internal(format!("opening logs: {}", error.kind())))
    }

    /// What the agent uses: measured by the replica that runs it (asked when it is another);
    /// its status, holder and active version otherwise.
    pub async fn stats(&self, caller: &Caller, id: Uuid) -> Result<HostedStatsView, AgentError> {
        let agent = &self.owned(caller, id).await?;
        if let Some(running) = self.running_here(agent.id) {
            return Ok(self.measured(agent, &running).await);
        }
        if let Some(holder) = self.holder_elsewhere(agent.id).await {
            match holder.get_json::<HostedStatsView>("/stats").await {
                Ok(stats) => return Ok(stats),
                Err(error) => tracing::warn!(agent = %agent.id, %error, "stats from the holder"),
            }
        }
        let lease = self.store.hosted().lease_of(agent.id).await?;
        let active = self
            .store
            .hosted()
            .list_bundles(agent.id)
            .await?
            .into_iter()
            .find(|row| row.active)
            .map(|row| row.version);
        Ok(HostedStatsView {
            status: agent.status,
            node: lease
                .filter(|lease| lease.expires_at > self.now())
                .map(|lease| lease.node),
            bundle_version: active,
            started_at: None,
            restarts: self.restarts_of(agent.id),
            cpu_seconds: None,
            cpu_throttled_seconds: None,
            memory_bytes: None,
            peak_memory_bytes: None,
            processes: None,
            paused: agent.status == AgentStatus::Paused,
            proxy_requests: 0,
            proxy_refusals: 0,
            proxy_bytes_up: 0,
            proxy_bytes_down: 0,
        })
    }

    fn restarts_of(&self, agent_id: Uuid) -> u32 {
        self.restarts
            .lock()
            .map(|r| r.get(&agent_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The measurements of an agent running here.
    async fn measured(&self, agent: &AgentRow, running: &Running) -> HostedStatsView {
        let sandbox = running.agent.sandbox().stats().await.unwrap_or_default();
        let proxy = running.agent.proxy_counts();
        let seconds = |d: Duration| d.as_secs_f64();
        HostedStatsView {
            status: agent.status,
            node: Some(self.node.clone()),
            bundle_version: Some(running.version),
            started_at: Some(running.started_at),
            restarts: self.restarts_of(agent.id),
            cpu_seconds: sandbox.cpu_time.map(seconds),
            cpu_throttled_seconds: sandbox.cpu_throttled.map(seconds),
            memory_bytes: sandbox.memory_bytes,
            peak_memory_bytes: sandbox.peak_memory_bytes,
            processes: sandbox.processes,
            paused: sandbox.paused,
            proxy_requests: proxy.requests,
            proxy_refusals: proxy.refusals,
            proxy_bytes_up: proxy.bytes_up,
            proxy_bytes_down: proxy.bytes_down,
        }
    }

    /// The caller's hosted agent (an admin's: any); others' are not found.
    async fn owned(&self, caller: &Caller, id: Uuid) -> Result<AgentRow, AgentError> {
        let agent = self
            .store
            .agents()
            .get(id, caller.owner_scope()?)
            .await?
            .ok_or(AgentError::NotFound)?;
        hosted_only(&agent)?;
        Ok(agent)
    }

    async fn read(&self, id: Uuid) -> Result<AgentRow, AgentError> {
        self.store
            .agents()
            .get(id, None)
            .await?
            .ok_or(AgentError::NotFound)
    }

    /// Stops every agent running here (the replica is shutting down) and gives their leases
    /// up, so another replica can take them over at once; their stored status stays, so they
    /// start again wherever a replica runs.
    pub async fn shut_down(&self) {
        self.shutdown.cancel();
        let all: Vec<Uuid> = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.keys().copied().collect()
        };
        for agent_id in all {
            self.end_here(agent_id).await;
        }
        self.tasks.close();
        self.tasks.wait().await;
        if let Ok(runtime) = &self.runtime {
            runtime.release().await;
        }
    }
}

/// Why a start failed: the agent's stored detail, and the audit record's reason (the same but
/// for the output a detail quotes).
struct StartFailure {
    detail: String,
    reason: String,
}

impl StartFailure {
    fn none() -> Self {
        Self {
            detail: String::new(),
            reason: String::new(),
        }
    }
}

/// Most of a failed start's output its status detail carries (the detail is its owner's and
/// admins' to read, at most 500 characters).
const DETAIL_OUTPUT_CHARS: usize = 300;

/// Why a start failed, with the end of what the program printed (read back from its logs: its
/// secrets cut out, control characters escaped), its lines joined by ` | `.
fn not_ready_detail(why: &str, output: &str) -> String {
    let why: String = why.chars().take(120).collect();
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let joined = lines.join(" | ");
    let count = joined.chars().count();
    let tail: String = joined
        .chars()
        .skip(count.saturating_sub(DETAIL_OUTPUT_CHARS))
        .collect();
    if tail.is_empty() {
        format!("it did not become ready: {why}; it printed nothing")
    } else if count > DETAIL_OUTPUT_CHARS {
        format!("it did not become ready: {why}; its output ended with: …{tail}")
    } else {
        format!("it did not become ready: {why}; its output ended with: {tail}")
    }
}

/// `read` of the ring, off the executor (it reads files).
async fn read_ring<T: Send + 'static>(
    ring: Arc<LogRing>,
    read: impl FnOnce(&LogRing) -> std::io::Result<T> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(move || read(&ring))
        .await
        .map_err(|_| AgentError::Unavailable)?
        .map_err(|error| AgentError::Internal(format!("reading logs: {}", error.kind())))
}

/// Whether an agent of this status should be running somewhere.
fn should_run(status: AgentStatus) -> bool {
    matches!(
        status,
        AgentStatus::Starting | AgentStatus::Ready | AgentStatus::Paused | AgentStatus::Error
    )
}

fn hosted_only(agent: &AgentRow) -> Result<(), AgentError> {
    if agent.kind == AgentKind::Hosted {
        Ok(())
    } else {
        Err(AgentError::Invalid(
            "only a hosted agent has bundles, logs and a sandbox".into(),
        ))
    }
}

async fn freeze(running: &Running, paused: bool) -> Result<(), AgentError> {
    let sandbox = running.agent.sandbox();
    let done = if paused {
        sandbox.pause().await
    } else {
        sandbox.resume().await
    };
    done.map_err(|error| {
        tracing::warn!(%error, "freezing or thawing a sandbox");
        AgentError::Conflict("the sandbox could not be paused or resumed here")
    })?;
    running.paused.store(paused, Ordering::SeqCst);
    Ok(())
}

fn describe_exit(reason: &ExitReason) -> String {
    match reason {
        ExitReason::Exited(code) => format!("its program exited with code {code}"),
        ExitReason::Signaled(signal) => format!("its program was killed by signal {signal}"),
        ExitReason::OutOfMemory => "it passed its memory limit and was killed".to_owned(),
        ExitReason::CpuTimeLimit => "it passed its CPU time limit".to_owned(),
        ExitReason::Stopped { .. } => "it was stopped".to_owned(),
    }
}

/// The bundle unpacked at `into` (checked entirely on the way), and its manifest with its
/// text. An earlier unpacking of the same digest is used as it is.
fn unpack_once(archive: &[u8], into: &Path) -> Result<(Manifest, String), AgentError> {
    let manifest_at = into.join(MANIFEST);
    if !into.is_dir() {
        let parent = into
            .parent()
            .ok_or_else(|| AgentError::Internal("a bundle directory has no parent".into()))?;
        std::fs::create_dir_all(parent)
            .map_err(|error| AgentError::Internal(format!("bundle directory: {}", error.kind())))?;
        let incoming = parent.join(format!(".incoming-{}", Uuid::new_v4().simple()));
        let unpacked = bundle::unpack(archive, &incoming);
        if let Err(error) = unpacked {
            let _ = std::fs::remove_dir_all(&incoming);
            return Err(AgentError::Invalid(error.to_string()));
        }
        // The sandbox's own uid reads it: others may read, nobody else writes.
        open_for_sandbox(&incoming)
            .map_err(|error| AgentError::Internal(format!("bundle modes: {}", error.kind())))?;
        if std::fs::rename(&incoming, into).is_err() {
            // Another push of the same bytes got there first.
            let _ = std::fs::remove_dir_all(&incoming);
        }
    }
    let text = std::fs::read_to_string(&manifest_at)
        .map_err(|error| AgentError::Internal(format!("reading the manifest: {}", error.kind())))?;
    let manifest =
        bundle::parse_manifest(&text).map_err(|error| AgentError::Invalid(error.to_string()))?;
    Ok((manifest, text))
}

/// Directories 0755 and files 0644 (executables 0755): the sandbox's uid reads its bundle.
fn open_for_sandbox(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let mode = entry.metadata()?.permissions().mode();
                let open = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(open))?;
            }
        }
    }
    Ok(())
}

/// A fresh run directory, reachable (not listable) by the sandbox's uid through every parent
/// Hive made: the data directory and `sandboxes` are 0711, every file in them stays 0600.
fn prepare_run_dir(agent_dir: &Path, run_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let traversable = std::fs::Permissions::from_mode(0o711);
    if run_dir.exists() {
        std::fs::remove_dir_all(run_dir)?;
    }
    std::fs::create_dir_all(run_dir)?;
    std::fs::set_permissions(run_dir, traversable.clone())?;
    std::fs::set_permissions(agent_dir, traversable.clone())?;
    if let Some(sandboxes) = agent_dir.parent() {
        std::fs::set_permissions(sandboxes, traversable.clone())?;
        if let Some(data_dir) = sandboxes.parent() {
            std::fs::set_permissions(data_dir, traversable.clone())?;
        }
    }
    let bundles = agent_dir.join("bundles");
    if bundles.is_dir() {
        std::fs::set_permissions(bundles, traversable)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_start_says_why_and_how_its_output_ended_within_the_detail_limit() {
        let detail = not_ready_detail("the program ended first (Exited(1))", "one\n\ntwo\n");
        assert_eq!(
            detail,
            "it did not become ready: the program ended first (Exited(1)); its output ended with: one | two"
        );
        let long = "x".repeat(5000);
        let detail = not_ready_detail(&"w".repeat(1000), &long);
        assert!(detail.chars().count() <= 500, "{}", detail.chars().count());
        assert!(detail.ends_with(&"x".repeat(DETAIL_OUTPUT_CHARS)));
        assert!(not_ready_detail("timed out", "").ends_with("it printed nothing"));
    }
}
