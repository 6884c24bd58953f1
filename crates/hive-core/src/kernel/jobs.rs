//! The background job runner: periodic work that must run on exactly one replica.
//!
//! Every tick each replica asks the store for the cluster-wide leader lease (a PostgreSQL
//! advisory lock; SQLite is always leader). Only the leader looks for due jobs. Whether a job is
//! due is decided from the run history in the database, not from memory, so a replica that takes
//! over from a dead leader neither repeats a job that just ran nor forgets one that is late.

use crate::kernel::audit::{AuditAction, Principal};
use async_trait::async_trait;
use hive_proto::SharedClock;
use hive_store::{JobOutcome, LeaderLease, NewJobRun, PageRequest, Store};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The name of the lease every replica competes for.
pub const LEADER_LEASE: &str = "hive-jobs-leader";

/// What a job gets to do its work.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
}

/// One kind of periodic work.
#[async_trait]
pub trait Job: Send + Sync {
    /// A stable name, recorded with every run.
    fn name(&self) -> &'static str;
    /// The time between the starts of two runs.
    fn every(&self) -> Duration;
    /// Whether a run is due now, given when the last one started (`None`: never). By default
    /// one period after the last start; a job on a calendar (a cron schedule) says otherwise.
    fn is_due(&self, last_start: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        is_due(last_start, self.every(), now)
    }
    /// Does the work; returns a short, secret-free note for the run history.
    async fn run(&self, ctx: &JobContext) -> Result<String, String>;
}

pub struct JobRunner {
    ctx: JobContext,
    node_id: String,
    tick: Duration,
    jobs: Vec<Arc<dyn Job>>,
    status: Arc<watch::Sender<RunnerStatus>>,
}

/// What this replica's runner last saw, for the system health report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerStatus {
    /// Whether the runner's loop is running.
    pub running: bool,
    /// When the runner started.
    pub started_at: Option<OffsetDateTime>,
    /// Whether this replica holds the leader lease now.
    pub leader: bool,
    /// When this replica took the lease it holds.
    pub leader_since: Option<OffsetDateTime>,
    /// When the runner last checked its leadership.
    pub last_tick: Option<OffsetDateTime>,
}

/// A handle on a running job runner.
#[derive(Debug, Clone)]
pub struct JobRunnerHandle {
    status: watch::Receiver<RunnerStatus>,
}

impl JobRunnerHandle {
    /// Whether this replica holds the leader lease now.
    pub fn is_leader(&self) -> bool {
        self.status.borrow().leader
    }

    /// What the runner last saw.
    pub fn status(&self) -> RunnerStatus {
        *self.status.borrow()
    }

    /// Waits until leadership equals `leader` (or the runner has stopped).
    pub async fn wait_for_leadership(&mut self, leader: bool) {
        let _ = self.status.wait_for(|now| now.leader == leader).await;
    }
}

impl JobRunner {
    pub fn new(ctx: JobContext, node_id: String, tick: Duration) -> Self {
        Self {
            ctx,
            node_id,
            tick,
            jobs: Vec::new(),
            status: Arc::new(watch::channel(RunnerStatus::default()).0),
        }
    }

    /// Publishes the runner's status on `status` (read by the system health report).
    pub fn reporting_to(mut self, status: Arc<watch::Sender<RunnerStatus>>) -> Self {
        self.status = status;
        self
    }

    pub fn with_job(mut self, job: Arc<dyn Job>) -> Self {
        self.jobs.push(job);
        self
    }

    /// Starts the loop on `tracker`; it ends (interrupting a running job) when `cancel` fires.
    pub fn spawn(self, tracker: &TaskTracker, cancel: CancellationToken) -> JobRunnerHandle {
        let now = self.ctx.clock.now();
        self.status.send_modify(|status| {
            status.running = true;
            status.started_at = Some(now);
        });
        let handle = JobRunnerHandle {
            status: self.status.subscribe(),
        };
        tracker.spawn(self.run_loop(cancel));
        handle
    }

    async fn run_loop(self, cancel: CancellationToken) {
        let status = Arc::clone(&self.status);
        let mut lease: Option<Box<dyn LeaderLease>> = None;
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let leader = self.check_leadership(&mut lease).await;
            metrics::gauge!("hive_jobs_leader").set(if leader { 1.0 } else { 0.0 });
            let now = self.ctx.clock.now();
            status.send_modify(|was| {
                if was.leader != leader {
                    tracing::info!(node_id = %self.node_id, leader, "job leadership changed");
                    was.leader = leader;
                    was.leader_since = leader.then_some(now);
                }
                was.last_tick = Some(now);
            });
            if !leader {
                continue;
            }
            for job in &self.jobs {
                if cancel.is_cancelled() {
                    break;
                }
                if self.is_job_due(job.as_ref()).await {
                    self.run_one(job.as_ref(), &cancel).await;
                }
            }
        }
        if let Some(mut lease) = lease
            && let Err(error) = lease.release().await
        {
            tracing::warn!(%error, "releasing the leader lease failed; it ends with its connection");
        }
        status.send_modify(|was| {
            *was = RunnerStatus {
                last_tick: was.last_tick,
                ..RunnerStatus::default()
            }
        });
    }

    async fn check_leadership(&self, lease: &mut Option<Box<dyn LeaderLease>>) -> bool {
        if lease.is_none() {
            match self.ctx.store.leader_lease(LEADER_LEASE).await {
                Ok(new) => *lease = Some(new),
                Err(error) => {
                    tracing::warn!(%error, "cannot open the leader lease; not leading");
                    return false;
                }
            }
        }
        let Some(held) = lease.as_mut() else {
            return false;
        };
        match held.try_acquire().await {
            Ok(leader) => leader,
            Err(error) => {
                // Leadership is unknown: treat it as lost and start over with a new lease.
                tracing::warn!(%error, "leader lease check failed; not leading");
                *lease = None;
                false
            }
        }
    }

    async fn is_job_due(&self, job: &dyn Job) -> bool {
        let Ok(page) = PageRequest::first(1) else {
            return false;
        };
        match self
            .ctx
            .store
            .job_runs()
            .list(Some(job.name()), &page)
            .await
        {
            Ok(last) => job.is_due(
                last.items.first().map(|run| run.started_at),
                self.ctx.clock.now(),
            ),
            Err(error) => {
                tracing::warn!(job = job.name(), %error, "cannot read the job history; skipping");
                false
            }
        }
    }

    async fn run_one(&self, job: &dyn Job, cancel: &CancellationToken) {
        let runs = self.ctx.store.job_runs();
        let started = NewJobRun {
            job: job.name().to_owned(),
            node_id: self.node_id.clone(),
            started_at: self.ctx.clock.now(),
        };
        let id = match runs.start(started).await {
            Ok(id) => id,
            Err(error) => {
                tracing::warn!(job = job.name(), %error, "cannot record the job start; skipping");
                return;
            }
        };
        let result = tokio::select! {
            result = job.run(&self.ctx) => result,
            () = cancel.cancelled() => Err("interrupted by shutdown".to_owned()),
        };
        let (outcome, detail) = match &result {
            Ok(detail) => (JobOutcome::Succeeded, detail.as_str()),
            Err(detail) => (JobOutcome::Failed, detail.as_str()),
        };
        match &result {
            Ok(_) => {
                tracing::info!(job = job.name(), detail, "job succeeded");
                let now = self.ctx.clock.now().unix_timestamp();
                metrics::gauge!("hive_job_last_success_timestamp_seconds", "job" => job.name())
                    .set(now as f64);
            }
            Err(_) => tracing::warn!(job = job.name(), detail, "job failed"),
        }
        let counted = if result.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        metrics::counter!("hive_job_runs_total", "job" => job.name(), "outcome" => counted)
            .increment(1);
        if let Err(error) = runs
            .finish(id, self.ctx.clock.now(), outcome, Some(detail))
            .await
        {
            tracing::warn!(job = job.name(), %error, "cannot record the job end");
        }
    }
}

/// A job is due when it never ran, or when its last start is at least one period ago.
fn is_due(last_start: Option<OffsetDateTime>, every: Duration, now: OffsetDateTime) -> bool {
    match last_start {
        None => true,
        Some(started) => {
            let every = time::Duration::try_from(every).unwrap_or(time::Duration::MAX);
            started.checked_add(every).is_some_and(|due| due <= now)
        }
    }
}

/// Deletes A2A tasks whose time is up from the database (`A2A_TASK_STORE=db`; the other task
/// stores expire by themselves), and push-notification configs not set or used within the task
/// TTL (whichever store holds their task, it has expired by then).
pub struct PruneExpiredTasks {
    pub every: Duration,
    /// `A2A_TASK_TTL_SECONDS`.
    pub task_ttl: Duration,
}

#[async_trait]
impl Job for PruneExpiredTasks {
    fn name(&self) -> &'static str {
        "prune-expired-tasks"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let now = ctx.clock.now();
        let pruned = ctx
            .store
            .tasks()
            .prune_expired(now)
            .await
            .map_err(|e| e.to_string())?;
        let ttl = time::Duration::try_from(self.task_ttl).unwrap_or(time::Duration::MAX);
        let configs = ctx
            .store
            .push_configs()
            .prune_unused_since(now.saturating_sub(ttl))
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "pruned {pruned} tasks and {configs} push notification configs"
        ))
    }
}

/// Deletes sessions past their end or idle limit, sign-in flow state past its end, and
/// invitation and reset links that expired more than a day ago (kept a day so that "expired"
/// can still be told apart).
pub struct PruneExpiredSessions {
    pub every: Duration,
    /// A session unused this long is dead (identity's limit, passed in: the kernel knows no
    /// domain).
    pub session_idle: time::Duration,
}

#[async_trait]
impl Job for PruneExpiredSessions {
    fn name(&self) -> &'static str {
        "prune-expired-sessions"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let now = ctx.clock.now();
        let sessions = ctx
            .store
            .sessions()
            .prune_expired(now, now - self.session_idle)
            .await
            .map_err(|e| e.to_string())?;
        let links = ctx
            .store
            .one_time_tokens()
            .prune_expired(now - time::Duration::days(1))
            .await
            .map_err(|e| e.to_string())?;
        let flows = ctx
            .store
            .challenges()
            .prune(now)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "pruned {sessions} sessions, {links} links and {flows} sign-in flows"
        ))
    }
}

/// Deletes job history older than the retention period.
pub struct PruneJobHistory {
    pub retention: Duration,
    pub every: Duration,
}

#[async_trait]
impl Job for PruneJobHistory {
    fn name(&self) -> &'static str {
        "prune-job-history"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let retention = time::Duration::try_from(self.retention).map_err(|e| e.to_string())?;
        let pruned = ctx
            .store
            .job_runs()
            .prune_finished_before(ctx.clock.now() - retention)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("pruned {pruned} runs"))
    }
}

/// Deletes conversations (with their messages) that had no message within the retention
/// period; a retention of 0 days keeps them.
pub struct PruneIdleConversations {
    pub retention_days: u32,
    pub every: Duration,
}

#[async_trait]
impl Job for PruneIdleConversations {
    fn name(&self) -> &'static str {
        "prune-idle-conversations"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        if self.retention_days == 0 {
            return Ok("conversations are kept (HIVE_CONVERSATION_RETENTION_DAYS=0)".to_owned());
        }
        let before = ctx.clock.now() - time::Duration::days(i64::from(self.retention_days));
        let pruned = ctx
            .store
            .conversations()
            .prune_idle_since(before)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("pruned {pruned} conversations"))
    }
}

/// How many audit records one retention transaction deletes.
const AUDIT_PRUNE_BATCH: u32 = 1_000;

/// Deletes audit records older than the retention period, oldest first and a batch per
/// transaction, each batch leaving a signed checkpoint so the rest of the chain still
/// verifies; then, if it deleted anything, records that in the audit log itself.
pub struct PruneAuditLog {
    pub retention_days: u32,
    pub every: Duration,
    pub chain: Arc<crate::kernel::audit::AuditChain>,
}

#[async_trait]
impl Job for PruneAuditLog {
    fn name(&self) -> &'static str {
        "prune-audit-log"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext) -> Result<String, String> {
        let now = ctx.clock.now();
        let cut = now - time::Duration::days(i64::from(self.retention_days));
        let audit = ctx.store.audit();
        let mut deleted = 0;
        let mut checkpoint_seq = None;
        loop {
            let batch = audit
                .prune_before(cut, AUDIT_PRUNE_BATCH, self.chain.as_ref(), now)
                .await
                .map_err(|e| e.to_string())?;
            deleted += batch.deleted;
            if let Some(checkpoint) = batch.checkpoint {
                checkpoint_seq = Some(checkpoint.seq);
            }
            if batch.deleted < u64::from(AUDIT_PRUNE_BATCH) {
                break;
            }
        }
        // The run history has every run; the audit log only the ones that deleted something.
        if deleted == 0 {
            return Ok("pruned 0 audit records".to_owned());
        }
        let entry = crate::kernel::audit::AuditEvent {
            principal: Principal::System,
            action: AuditAction::AuditRetention,
            target: None,
            outcome: hive_store::AuditOutcome::Success,
            detail: serde_json::json!({
                "deleted": deleted,
                "checkpointSeq": checkpoint_seq,
                "retentionDays": self.retention_days,
            }),
        };
        let record = crate::kernel::audit::record_at(
            now,
            entry,
            &crate::kernel::caller::RequestMeta::default(),
        );
        audit
            .append(&record, self.chain.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        Ok(match checkpoint_seq {
            Some(seq) => format!("pruned {deleted} audit records; checkpoint at {seq}"),
            None => format!("pruned {deleted} audit records (outside the chain)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_proto::ManualClock;
    use hive_store_sqlite::SqliteStore;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::macros::datetime;
    use tokio::sync::Notify;

    #[test]
    fn due_after_one_period() {
        let now = datetime!(2026-01-01 12:00 UTC);
        let hour = Duration::from_secs(3600);
        assert!(is_due(None, hour, now));
        assert!(!is_due(Some(now - time::Duration::minutes(59)), hour, now));
        assert!(is_due(Some(now - time::Duration::minutes(60)), hour, now));
        assert!(!is_due(Some(now), Duration::MAX, now));
    }

    struct Counting {
        runs: AtomicUsize,
        ran: Notify,
        fail: bool,
    }

    #[async_trait]
    impl Job for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn every(&self) -> Duration {
            Duration::from_secs(3600)
        }
        async fn run(&self, _ctx: &JobContext) -> Result<String, String> {
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            self.ran.notify_one();
            if self.fail {
                Err(format!("failure {n}"))
            } else {
                Ok(format!("run {n}"))
            }
        }
    }

    #[tokio::test]
    async fn runs_when_due_by_the_clock_and_records_each_run() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db"), 2).await.unwrap());
        store.migrate().await.unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let job = Arc::new(Counting {
            runs: AtomicUsize::new(0),
            ran: Notify::new(),
            fail: true,
        });
        let ctx = JobContext {
            store: store.clone(),
            clock: clock.clone(),
        };
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let mut handle = JobRunner::new(ctx, "node-1".into(), Duration::from_millis(5))
            .with_job(job.clone())
            .spawn(&tracker, cancel.clone());
        handle.wait_for_leadership(true).await;
        let start = datetime!(2026-01-01 00:00 UTC);
        let status = handle.status();
        assert!(status.running);
        assert_eq!(
            (status.started_at, status.leader_since),
            (Some(start), Some(start))
        );
        assert!(status.last_tick.is_some());

        job.ran.notified().await;
        clock.advance(time::Duration::hours(1));
        job.ran.notified().await;
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        assert!(!handle.is_leader(), "leadership ends with the runner");
        assert!(!handle.status().running && handle.status().leader_since.is_none());

        let runs = store
            .job_runs()
            .list(Some("counting"), &PageRequest::first(10).unwrap())
            .await
            .unwrap()
            .items;
        // Two clock periods, two runs: the ticks in between found nothing due.
        assert_eq!(job.runs.load(Ordering::SeqCst), 2);
        assert_eq!(runs.len(), 2);
        assert!(
            runs.iter()
                .all(|r| r.node_id == "node-1" && r.outcome == JobOutcome::Failed)
        );
        assert_eq!(runs[0].detail.as_deref(), Some("failure 2"));
        assert_eq!(runs[1].started_at, datetime!(2026-01-01 00:00 UTC));
    }

    #[tokio::test]
    async fn the_session_job_prunes_dead_sessions_only() {
        use hive_proto::Role;
        use hive_store::{NewUser, SessionRow};
        use hive_store_conformance::note;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db"), 2).await.unwrap());
        store.migrate().await.unwrap();
        let start = datetime!(2026-01-01 00:00 UTC);
        let user = store
            .users()
            .create(
                &NewUser {
                    id: uuid::Uuid::now_v7(),
                    email: "a@example.com".into(),
                    display_name: "A".into(),
                    role: Role::Viewer,
                    password_hash: None,
                    created_at: start,
                },
                note("create").append(),
            )
            .await
            .unwrap();
        let session = |seed: char, seen: time::OffsetDateTime| SessionRow {
            id: uuid::Uuid::now_v7(),
            user_id: user.id,
            token_hash: seed.to_string().repeat(64),
            created_at: start,
            last_seen_at: seen,
            expires_at: start + time::Duration::hours(12),
            authenticated_at: start,
            second_factor_at: None,
            ip: String::new(),
            user_agent: String::new(),
        };
        let now = start + time::Duration::hours(1);
        let live = session('a', now - time::Duration::minutes(5));
        store
            .sessions()
            .create(&live, 48, note("login").append())
            .await
            .unwrap();
        store
            .sessions()
            .create(
                &session('b', now - time::Duration::minutes(31)),
                48,
                note("login").append(),
            )
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let ctx = JobContext {
            store: store.clone(),
            clock,
        };
        let job = PruneExpiredSessions {
            session_idle: time::Duration::minutes(30),
            every: Duration::from_secs(60),
        };
        assert_eq!(
            job.run(&ctx).await.unwrap(),
            "pruned 1 sessions, 0 links and 0 sign-in flows"
        );
        let left = store.sessions().list_for_user(user.id).await.unwrap();
        assert_eq!(left, vec![live]);
    }
}
