//! The system health report (`GET /api/v1/system/health`): this replica's view of what Hive
//! depends on — the database, Redis and NATS when configured, the job runner's leader, the
//! sandbox backend, the data directory's disk — each with its state, how long its check took
//! and, when it is not `ok`, a fixed reason code. Part of the composition root: it names the
//! backends the other modules only reach through their traits. What a check found beyond its
//! code (a driver's error) goes to the log, never into the report.

use crate::kernel::config::DiskThresholds;
use crate::kernel::jobs::RunnerStatus;
use crate::runtime::Hive;
use hive_proto::{
    Component, ComponentHealth, ComponentState, DiskHealth, HealthReason, JobsHealth, LastJobRun,
    SandboxHealth, SystemHealth,
};
use hive_state::PingFailure;
use hive_store::{JobOutcome, PageRequest};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one check may take before its component counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Without a job run recorded for this many runner ticks, no replica leads.
const STALE_AFTER_TICKS: u32 = 5;

/// What the sandbox backend of this process is, found once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxAvailability {
    /// `HIVE_SANDBOX=off`.
    Off,
    /// Only `hive serve` runs hosted agents.
    NotThisProcess,
    /// The backend cannot run on this host (the log says why).
    Unavailable,
    Available(SandboxHealth),
}

impl SandboxAvailability {
    /// The availability of the backend `capabilities` describe.
    pub fn of(capabilities: &hive_sandbox::BackendCapabilities) -> Self {
        Self::Available(SandboxHealth {
            backend: Some(capabilities.backend.to_owned()),
            cgroups: capabilities.whole_sandbox_stats,
            landlock_abi: capabilities.landlock_abi,
        })
    }
}

/// One component's finding before its timing is added.
struct Finding {
    state: ComponentState,
    reason: Option<HealthReason>,
    jobs: Option<JobsHealth>,
    sandbox: Option<SandboxHealth>,
    disk: Option<DiskHealth>,
}

impl Finding {
    fn ok() -> Self {
        Self::of(ComponentState::Ok, None)
    }

    fn of(state: ComponentState, reason: Option<HealthReason>) -> Self {
        Self {
            state,
            reason,
            jobs: None,
            sandbox: None,
            disk: None,
        }
    }

    /// A failed ping: down when the component is required, else degraded.
    fn failed(failure: PingFailure, required: bool) -> Self {
        let state = if required {
            ComponentState::Down
        } else {
            ComponentState::Degraded
        };
        let reason = match failure {
            PingFailure::TimedOut => HealthReason::TimedOut,
            PingFailure::Unreachable => HealthReason::Unreachable,
        };
        Self::of(state, Some(reason))
    }
}

/// Runs `check` within [`CHECK_TIMEOUT`], timing it.
async fn timed(
    name: Component,
    required: bool,
    check: impl Future<Output = Finding>,
) -> ComponentHealth {
    let started = Instant::now();
    let finding = tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Finding::failed(PingFailure::TimedOut, required));
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    ComponentHealth {
        name,
        required,
        state: finding.state,
        latency_ms,
        reason: finding.reason,
        jobs: finding.jobs,
        sandbox: finding.sandbox,
        disk: finding.disk,
    }
}

impl Hive {
    /// Checks every component at once and reports them; see the module's documentation.
    pub async fn system_health(&self) -> SystemHealth {
        let database = timed(Component::Database, true, self.check_database());
        let redis = async {
            match &self.state.redis {
                Some(redis) => Some(timed(Component::Redis, true, check_redis(redis)).await),
                None => None,
            }
        };
        let nats = async {
            match self.wan.carrier() {
                Some(carrier) => Some(timed(Component::Nats, false, check_nats(carrier)).await),
                None => None,
            }
        };
        let jobs = timed(Component::Jobs, false, self.check_jobs());
        let sandbox = timed(Component::Sandbox, false, async {
            check_sandbox(&self.sandbox)
        });
        let disk = timed(
            Component::Disk,
            true,
            check_disk(self.config.data_dir.clone(), self.config.disk_thresholds),
        );
        let (database, redis, nats, jobs, sandbox, disk) =
            tokio::join!(database, redis, nats, jobs, sandbox, disk);
        let components: Vec<ComponentHealth> = [Some(database), redis, nats, Some(jobs)]
            .into_iter()
            .flatten()
            .chain([sandbox, disk])
            .collect();
        for component in components.iter().filter(|c| c.state != ComponentState::Ok) {
            tracing::warn!(
                component = component.name.as_str(),
                state = component.state.as_str(),
                reason = component.reason.map(HealthReason::as_str),
                "system health: a component is not ok"
            );
        }
        SystemHealth {
            state: overall(&components),
            node: self.node_id.clone(),
            checked_at: self.clock.now(),
            components,
        }
    }

    async fn check_database(&self) -> Finding {
        match self.store.ping().await {
            Ok(()) => Finding::ok(),
            Err(error) => {
                tracing::warn!(%error, "system health: the database did not answer");
                Finding::failed(PingFailure::Unreachable, true)
            }
        }
    }

    async fn check_jobs(&self) -> Finding {
        let status: RunnerStatus = *self.jobs_status.borrow();
        let now = self.clock.now();
        let last_run = match PageRequest::first(1) {
            Ok(page) => self.store.job_runs().list(None, &page).await.map(|page| {
                page.items.into_iter().next().map(|run| LastJobRun {
                    job: run.job,
                    node: run.node_id,
                    started_at: run.started_at,
                    outcome: outcome_name(run.outcome).to_owned(),
                })
            }),
            Err(error) => Err(error),
        };
        if let Err(error) = &last_run {
            tracing::warn!(%error, "system health: the job history could not be read");
        }
        let window = self.config.jobs.tick * STALE_AFTER_TICKS;
        let stale_before = time::Duration::try_from(window)
            .ok()
            .and_then(|window| now.checked_sub(window));
        let mut finding = judge_jobs(&status, last_run.as_ref().ok(), stale_before);
        let last_run = last_run.ok().flatten();
        let leader_node = if status.leader {
            Some(self.node_id.clone())
        } else {
            last_run.as_ref().map(|run| run.node.clone())
        };
        finding.jobs = Some(JobsHealth {
            this_node_leads: status.leader,
            leader_node,
            leader_since: status.leader_since,
            last_tick_at: status.last_tick,
            last_run,
        });
        finding
    }
}

/// The job runner's state: `last_run` is `None` when the history could not be read; a run (or,
/// for a runner that started lately and may not have run anything yet, the runner's start)
/// before `stale_before` means no replica leads.
fn judge_jobs(
    status: &RunnerStatus,
    last_run: Option<&Option<LastJobRun>>,
    stale_before: Option<time::OffsetDateTime>,
) -> Finding {
    let recent = |at: time::OffsetDateTime| stale_before.is_none_or(|before| at >= before);
    let degraded = |reason| Finding::of(ComponentState::Degraded, Some(reason));
    match last_run {
        _ if !status.running => degraded(HealthReason::RunnerStopped),
        None => degraded(HealthReason::HistoryUnreadable),
        Some(Some(run)) if recent(run.started_at) => Finding::ok(),
        Some(_) if status.started_at.is_some_and(recent) => Finding::ok(),
        Some(_) => degraded(HealthReason::NoRecentRun),
    }
}

fn outcome_name(outcome: JobOutcome) -> &'static str {
    match outcome {
        JobOutcome::Running => "running",
        JobOutcome::Succeeded => "succeeded",
        JobOutcome::Failed => "failed",
    }
}

async fn check_redis(redis: &hive_state::RedisClient) -> Finding {
    match redis.ping().await {
        Ok(()) => Finding::ok(),
        Err(failure) => Finding::failed(failure, true),
    }
}

async fn check_nats(carrier: &hive_state::WanCarrier) -> Finding {
    match carrier.ping(CHECK_TIMEOUT).await {
        Ok(()) => Finding::ok(),
        Err(failure) => Finding::failed(failure, false),
    }
}

fn check_sandbox(availability: &SandboxAvailability) -> Finding {
    match availability {
        SandboxAvailability::Off => Finding::of(ComponentState::Ok, Some(HealthReason::Disabled)),
        SandboxAvailability::NotThisProcess => {
            Finding::of(ComponentState::Ok, Some(HealthReason::NotThisProcess))
        }
        SandboxAvailability::Unavailable => {
            Finding::of(ComponentState::Degraded, Some(HealthReason::Unavailable))
        }
        SandboxAvailability::Available(sandbox) => {
            let mut finding = if sandbox.cgroups {
                Finding::ok()
            } else {
                Finding::of(
                    ComponentState::Degraded,
                    Some(HealthReason::LimitsPerProcess),
                )
            };
            finding.sandbox = Some(sandbox.clone());
            finding
        }
    }
}

/// The free space of the data directory's file system against `thresholds` (off the
/// executor: `statvfs` may block on a network file system).
async fn check_disk(data_dir: PathBuf, thresholds: DiskThresholds) -> Finding {
    let measured = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&data_dir)).await;
    let stats = match measured {
        Ok(Ok(stats)) => stats,
        Ok(Err(error)) => {
            tracing::warn!(%error, "system health: the data directory's disk could not be queried");
            return Finding::of(ComponentState::Degraded, Some(HealthReason::Unreadable));
        }
        Err(_) => return Finding::of(ComponentState::Degraded, Some(HealthReason::Unreadable)),
    };
    let disk = DiskHealth {
        free_bytes: stats.f_bavail.saturating_mul(stats.f_frsize),
        total_bytes: stats.f_blocks.saturating_mul(stats.f_frsize),
        degraded_below_bytes: thresholds.degraded_below_bytes,
        down_below_bytes: thresholds.down_below_bytes,
    };
    let mut finding = judge_disk(&disk);
    finding.disk = Some(disk);
    finding
}

fn judge_disk(disk: &DiskHealth) -> Finding {
    if disk.free_bytes < disk.down_below_bytes {
        Finding::of(ComponentState::Down, Some(HealthReason::OutOfSpace))
    } else if disk.free_bytes < disk.degraded_below_bytes {
        Finding::of(ComponentState::Degraded, Some(HealthReason::LowSpace))
    } else {
        Finding::ok()
    }
}

/// `down` when a required component is down; `degraded` when anything is not `ok`.
fn overall(components: &[ComponentHealth]) -> ComponentState {
    if components
        .iter()
        .any(|c| c.required && c.state == ComponentState::Down)
    {
        ComponentState::Down
    } else if components.iter().any(|c| c.state != ComponentState::Ok) {
        ComponentState::Degraded
    } else {
        ComponentState::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(required: bool, state: ComponentState) -> ComponentHealth {
        ComponentHealth {
            name: Component::Nats,
            required,
            state,
            latency_ms: 0,
            reason: None,
            jobs: None,
            sandbox: None,
            disk: None,
        }
    }

    #[test]
    fn only_a_required_component_down_brings_the_whole_down() {
        use ComponentState::{Degraded, Down, Ok};
        assert_eq!(overall(&[component(true, Ok), component(false, Ok)]), Ok);
        assert_eq!(
            overall(&[component(true, Ok), component(false, Down)]),
            Degraded
        );
        assert_eq!(overall(&[component(true, Degraded)]), Degraded);
        assert_eq!(
            overall(&[component(true, Down), component(false, Ok)]),
            Down
        );
    }

    #[test]
    fn jobs_are_degraded_when_no_replica_ran_one_lately() {
        use time::macros::datetime;
        let now = datetime!(2026-01-01 01:00 UTC);
        let stale_before = Some(now - time::Duration::minutes(5));
        let run = |at| {
            Some(LastJobRun {
                job: "prune-job-history".into(),
                node: "other".into(),
                started_at: at,
                outcome: "succeeded".into(),
            })
        };
        let running_since = |at| RunnerStatus {
            running: true,
            started_at: Some(at),
            ..RunnerStatus::default()
        };
        let long_ago = datetime!(2026-01-01 00:00 UTC);
        let judged = |status: RunnerStatus, last: Option<&Option<LastJobRun>>| {
            let finding = judge_jobs(&status, last, stale_before);
            (finding.state, finding.reason)
        };
        let ok = (ComponentState::Ok, None);
        let degraded = |reason| (ComponentState::Degraded, Some(reason));
        assert_eq!(judged(running_since(long_ago), Some(&run(now))), ok);
        assert_eq!(
            judged(running_since(long_ago), Some(&run(long_ago))),
            degraded(HealthReason::NoRecentRun)
        );
        assert_eq!(
            judged(running_since(long_ago), Some(&None)),
            degraded(HealthReason::NoRecentRun)
        );
        // Just started: nothing ran yet, and that is fine for a while.
        assert_eq!(judged(running_since(now), Some(&None)), ok);
        assert_eq!(
            judged(running_since(long_ago), None),
            degraded(HealthReason::HistoryUnreadable)
        );
        assert_eq!(
            judged(RunnerStatus::default(), Some(&run(now))),
            degraded(HealthReason::RunnerStopped)
        );
    }

    #[test]
    fn the_disk_is_judged_against_both_thresholds() {
        let disk = |free| DiskHealth {
            free_bytes: free,
            total_bytes: 1_000,
            degraded_below_bytes: 500,
            down_below_bytes: 100,
        };
        let judged = |free| {
            let finding = judge_disk(&disk(free));
            (finding.state, finding.reason)
        };
        assert_eq!(judged(500), (ComponentState::Ok, None));
        assert_eq!(
            judged(499),
            (ComponentState::Degraded, Some(HealthReason::LowSpace))
        );
        assert_eq!(
            judged(99),
            (ComponentState::Down, Some(HealthReason::OutOfSpace))
        );
    }
}
