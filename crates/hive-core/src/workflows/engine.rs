//! The executor: each replica takes runs that need one from the database's queue (a lease with
//! a fencing token, renewed while it works), and drives each run by its journal. Every step's
//! start is journaled before it acts and its end before the run moves on, so a replica killed
//! at any point leaves a journal the next holder resumes from: steps that succeeded are not run
//! again; a step left started runs again (at least once) with the same idempotency key.
//!
//! A run with nothing to do but wait (a delay, an approval, a sub-workflow, a retry's backoff)
//! is parked: its lease given up, due again at its earliest time or when signalled.

use super::definition::{Definition, MapNode, Node, NodeKind};
use super::error::WorkflowError;
use super::nodes::{self, DEFAULT_STEP_TIMEOUT, Failure, NodeServices, Outcome, StepInput};
use super::plan::{self, End};
use super::principal::{PrincipalError, Principals};
use super::runs::{RunAs, RunRequest, RunStarter, Started};
use super::template::SecretValues;
use crate::kernel::audit::{AuditAction, AuditEvent, Auditor};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::vault::secrets::SecretService;
use futures_util::StreamExt;
use hive_proto::SharedClock;
use hive_store::{
    AuditOutcome, RunEnd, RunRow, RunTrigger, StepEnd, StepRow, StepStart, StepStatus, Store,
    StoreError,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Largest output a step keeps (JSON text).
pub const MAX_STEP_OUTPUT_BYTES: usize = 256 * 1024;
/// How often a running step's progress is written, at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Largest error text a step keeps.
const MAX_ERROR_CHARS: usize = 2000;

/// How the executor paces itself.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a lease lasts unless renewed (renewed every third of it).
    pub lease: Duration,
    /// How often the queue is read when nothing wakes the executor.
    pub poll: Duration,
    /// Runs this replica drives at once (`HIVE_WORKFLOW_MAX_RUNNING`).
    pub max_running: usize,
    /// Steps of one run in flight at once.
    pub max_parallel_steps: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            max_running: 32,
            max_parallel_steps: 16,
        }
    }
}

/// What the executor works with.
pub struct EngineParts {
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub auditor: Auditor,
    pub secrets: Arc<SecretService>,
    pub principals: Principals,
    pub services: NodeServices,
    pub starter: Arc<RunStarter>,
    /// This replica's name, written on the leases it holds.
    pub node: String,
    pub settings: EngineSettings,
    /// Whether code nodes may run (`HIVE_WORKFLOW_DISABLE_CODE_NODE` and the admins'
    /// setting), asked before each step that has one.
    pub code_nodes: crate::kernel::settings::CodeNodesGate,
    /// Billing: each step's attempt is held before it starts and settled after.
    pub meter: Arc<dyn crate::kernel::ports::UsageSink>,
}

pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.inner.parts.node)
            .finish_non_exhaustive()
    }
}

struct Inner {
    parts: EngineParts,
    /// The runs this replica drives now.
    active: Mutex<HashSet<Uuid>>,
    runs: TaskTracker,
}

impl Engine {
    pub fn new(parts: EngineParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                active: Mutex::new(HashSet::new()),
                runs: TaskTracker::new(),
            }),
        }
    }

    fn wake(&self) -> Arc<Notify> {
        Arc::clone(self.inner.parts.starter.wake())
    }

    /// Starts taking runs until `cancel`; then the runs under way stop where they are (their
    /// journal says where) and their leases lapse for another replica or the next start.
    pub fn start(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let inner = Arc::clone(&self.inner);
        let wake = self.wake();
        tracker.spawn(async move {
            loop {
                inner.fill(&cancel).await;
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = wake.notified() => {}
                    () = tokio::time::sleep(inner.parts.settings.poll) => {}
                }
            }
            inner.runs.close();
            inner.runs.wait().await;
        });
    }
}

impl Inner {
    /// Takes runs while there is room.
    async fn fill(self: &Arc<Self>, cancel: &CancellationToken) {
        loop {
            let active = self.active.lock().unwrap_or_else(|e| e.into_inner()).len();
            if active >= self.parts.settings.max_running || cancel.is_cancelled() {
                return;
            }
            let token = Uuid::new_v4();
            let now = self.parts.clock.now();
            let claimed = self
                .parts
                .store
                .workflows()
                .claim_run(&self.parts.node, token, now, now + self.lease())
                .await;
            let run = match claimed {
                Ok(Some(run)) => run,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "workflows: the run queue cannot be read");
                    return;
                }
            };
            self.active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(run.id);
            let this = Arc::clone(self);
            let stop = cancel.child_token();
            self.runs.spawn(async move {
                let run_id = run.id;
                this.drive(run, token, stop).await;
                this.active
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&run_id);
                // Room for another.
                this.parts.starter.wake().notify_one();
            });
        }
    }

    fn lease(&self) -> time::Duration {
        time::Duration::try_from(self.parts.settings.lease).unwrap_or(time::Duration::seconds(30))
    }

    /// Drives one run while its lease holds, renewing it in the background.
    async fn drive(self: &Arc<Self>, run: RunRow, token: Uuid, stop: CancellationToken) {
        let lost = stop.child_token();
        let heartbeat = {
            let this = Arc::clone(self);
            let lost = lost.clone();
            let run_id = run.id;
            tokio::spawn(async move {
                let every = this.parts.settings.lease / 3;
                loop {
                    tokio::select! {
                        () = lost.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    let until = this.parts.clock.now() + this.lease();
                    match this
                        .parts
                        .store
                        .workflows()
                        .renew_run(run_id, token, until)
                        .await
                    {
                        Ok(true) => {}
                        // Cancelled, or taken over: stop writing at once.
                        Ok(false) => {
                            lost.cancel();
                            return;
                        }
                        // The next renewal may pass; the fencing token guards the writes.
                        Err(error) => {
                            tracing::warn!(%error, run = %run_id, "workflows: lease not renewed");
                        }
                    }
                }
            })
        };
        let execution = Execution {
            inner: Arc::clone(self),
            run: Arc::new(run),
            token,
            lost: lost.clone(),
        };
        let span = tracing::info_span!(
            "workflow.run",
            otel.name = "workflow run",
            hive.workflow.id = %execution.run.workflow_id,
            hive.workflow.version = execution.run.version,
            hive.workflow.run_id = %execution.run.id,
        );
        if let Err(error) = execution.run().instrument(span).await {
            tracing::warn!(%error, run = %execution.run.id, "workflows: the run stopped on an error; its lease will lapse and it resumes");
        }
        lost.cancel();
        let _ = heartbeat.await;
    }
}

#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error("the lease was lost or the run cancelled")]
    Lost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The journal as one executor reads it.
type Journal = HashMap<String, StepRow>;

/// One run being driven.
#[derive(Clone)]
struct Execution {
    inner: Arc<Inner>,
    run: Arc<RunRow>,
    token: Uuid,
    lost: CancellationToken,
}

/// What one step's task answers when it is over.
type StepResult = Result<(), Stopped>;

impl Execution {
    fn store(&self) -> &dyn Store {
        self.inner.parts.store.as_ref()
    }

    fn now(&self) -> OffsetDateTime {
        hive_store::truncate_to_micros(self.inner.parts.clock.now())
    }

    fn meta(&self) -> RequestMeta {
        RequestMeta {
            ip: None,
            request_id: Some(format!("workflow-run-{}", self.run.id)),
            user_agent: None,
        }
    }

    async fn run(&self) -> Result<(), Stopped> {
        let definition = match self.definition().await? {
            Ok(definition) => Arc::new(definition),
            Err(why) => return self.finish(Err(why)).await,
        };
        let mut in_flight: JoinSet<(String, StepResult)> = JoinSet::new();
        let mut flying: HashSet<String> = HashSet::new();
        let limits = &definition.limits;
        loop {
            if self.lost.is_cancelled() {
                return Err(Stopped::Lost);
            }
            let Some(current) = self.store().workflows().get_run(self.run.id).await? else {
                return Err(Stopped::Lost);
            };
            if current.status != hive_store::RunStatus::Running {
                return Err(Stopped::Lost);
            }
            let now = self.now();
            if now >= current.deadline_at {
                in_flight.abort_all();
                return self
                    .finish(Err(format!(
                        "the run passed its time limit of {} s",
                        limits.timeout.as_secs()
                    )))
                    .await;
            }
            let journal: Journal = self
                .store()
                .workflows()
                .steps(self.run.id)
                .await?
                .into_iter()
                .map(|step| (step.step_key.clone(), step))
                .collect();
            let attempts: i64 = journal.values().map(|step| step.attempt).sum();
            if attempts > i64::from(limits.max_steps) {
                in_flight.abort_all();
                return self
                    .finish(Err(format!(
                        "the run took more than its {} steps (limits.maxSteps)",
                        limits.max_steps
                    )))
                    .await;
            }
            let plan = plan::plan(&definition, &journal, &flying, now);
            match plan.end {
                Some(End::Failed(why)) => {
                    in_flight.abort_all();
                    return self.finish(Err(why)).await;
                }
                Some(End::Succeeded) if flying.is_empty() => {
                    let output = output_of(&definition, &journal);
                    return self.finish(Ok(output)).await;
                }
                _ => {}
            }
            let mut progressed = false;
            for id in &plan.skip {
                self.journal_skip(id, now).await?;
                progressed = true;
            }
            for id in &plan.due {
                let waited = journal.get(id).and_then(|step| step.wake_at);
                self.end(&StepEnd {
                    step_key: id,
                    status: StepStatus::Succeeded,
                    output: Some(&json!({ "waitedUntil": waited.map(rfc3339) }).to_string()),
                    branch: None,
                    error: None,
                    wake_at: None,
                    at: Some(now),
                })
                .await?;
                progressed = true;
            }
            for id in &plan.awaiting {
                if self.settle_child(&definition, &journal, id, now).await? {
                    progressed = true;
                }
            }
            let journal = Arc::new(journal);
            for (id, attempt) in plan.ready {
                if flying.len() >= self.inner.parts.settings.max_parallel_steps {
                    break;
                }
                let Some(node) = definition.node(&id).cloned() else {
                    continue;
                };
                flying.insert(id.clone());
                let this = self.clone();
                let definition = Arc::clone(&definition);
                let journal = Arc::clone(&journal);
                let span = tracing::info_span!(
                    "workflow.step",
                    otel.name = %format_args!("workflow step {}", node.kind.type_name()),
                    hive.workflow.run_id = %self.run.id,
                    hive.workflow.node = node.id.as_str(),
                    hive.workflow.node_type = node.kind.type_name(),
                    hive.workflow.attempt = attempt,
                );
                in_flight.spawn(
                    async move {
                        let result = this.step(&definition, &node, attempt, &journal).await;
                        (node.id, result)
                    }
                    .instrument(span),
                );
                progressed = true;
            }
            if flying.is_empty() {
                if progressed {
                    continue;
                }
                let parked = self
                    .store()
                    .workflows()
                    .park_run(self.run.id, self.token, current.signal, plan.next_wake)
                    .await?;
                if parked {
                    return Ok(());
                }
                continue;
            }
            // Plan again when a step ends, or now and then for decisions and due delays.
            tokio::select! {
                done = in_flight.join_next() => {
                    if let Some(joined) = done {
                        match joined {
                            Ok((id, result)) => {
                                flying.remove(&id);
                                result?;
                            }
                            Err(error) => {
                                // A step's task that panicked: its journal says it is still
                                // running, so the run's next holder tries it again.
                                tracing::error!(%error, run = %self.run.id, "workflows: a step's task ended abnormally");
                                return Err(Stopped::Lost);
                            }
                        }
                    }
                }
                () = self.lost.cancelled() => {
                    in_flight.abort_all();
                    return Err(Stopped::Lost);
                }
                () = tokio::time::sleep(self.inner.parts.settings.poll) => {}
            }
        }
    }

    /// Ends a sub-workflow's waiting step whose run has ended (it ended before the step was
    /// journaled as waiting, so its end could not reach the step). `true` when it did.
    async fn settle_child(
        &self,
        definition: &Definition,
        journal: &Journal,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<bool, Stopped> {
        if !matches!(
            definition.node(id).map(|node| &node.kind),
            Some(NodeKind::Workflow(_))
        ) {
            return Ok(false);
        }
        let child = journal
            .get(id)
            .and_then(|step| step.output.as_deref())
            .and_then(|output| serde_json::from_str::<Value>(output).ok())
            .and_then(|output| output.get("runId")?.as_str()?.parse::<Uuid>().ok());
        let Some(child) = child else {
            return Ok(false);
        };
        let Some(child) = self.store().workflows().get_run(child).await? else {
            return Ok(false);
        };
        let error = format!(
            "the sub-workflow's run {} {}",
            child.id,
            child.status.as_str()
        );
        let (status, output, error) = match child.status {
            hive_store::RunStatus::Succeeded => (StepStatus::Succeeded, child.output, None),
            hive_store::RunStatus::Failed | hive_store::RunStatus::Cancelled => {
                (StepStatus::Failed, None, Some(error))
            }
            _ => return Ok(false),
        };
        self.end(&StepEnd {
            step_key: id,
            status,
            output: output.as_deref(),
            branch: None,
            error: error.as_deref(),
            wake_at: None,
            at: Some(now),
        })
        .await?;
        Ok(true)
    }

    /// The run's version, parsed (it was valid when saved; a version this binary cannot read
    /// fails the run rather than looping).
    async fn definition(&self) -> Result<Result<Definition, String>, Stopped> {
        let Some(version) = self
            .store()
            .workflows()
            .get_version(self.run.workflow_id, self.run.version)
            .await?
        else {
            return Ok(Err("the workflow's version is gone".to_owned()));
        };
        Ok(Definition::parse(&version.document)
            .map_err(|problems| format!("the workflow's version cannot run: {problems}")))
    }

    async fn journal_skip(&self, id: &str, now: OffsetDateTime) -> Result<(), Stopped> {
        self.start(&StepStart {
            step_key: id,
            node_id: id,
            attempt: 1,
            input: None,
            at: now,
        })
        .await?;
        self.end(&StepEnd {
            step_key: id,
            status: StepStatus::Skipped,
            output: None,
            branch: None,
            error: None,
            wake_at: None,
            at: Some(now),
        })
        .await
    }

    async fn start(&self, start: &StepStart<'_>) -> Result<(), Stopped> {
        if self
            .store()
            .workflows()
            .start_step(self.run.id, self.token, start)
            .await?
        {
            Ok(())
        } else {
            Err(Stopped::Lost)
        }
    }

    async fn end(&self, end: &StepEnd<'_>) -> Result<(), Stopped> {
        if self
            .store()
            .workflows()
            .end_step(self.run.id, self.token, end)
            .await?
        {
            Ok(())
        } else {
            Err(Stopped::Lost)
        }
    }

    /// Ends the run (its record in the same transaction).
    async fn finish(&self, result: Result<Value, String>) -> Result<(), Stopped> {
        let now = self.now();
        let output;
        let error;
        let (end, outcome) = match &result {
            Ok(value) => {
                output = value.to_string();
                (RunEnd::Succeeded { output: &output }, "succeeded")
            }
            Err(why) => {
                error = crate::agents::llm::cap_chars(why.clone(), MAX_ERROR_CHARS);
                (RunEnd::Failed { error: &error }, "failed")
            }
        };
        let record = self.inner.parts.auditor.in_transaction(
            AuditEvent {
                principal: self.run_as().principal(),
                action: AuditAction::WorkflowRunFinish,
                target: Some(format!("workflow_run:{}", self.run.id)),
                outcome: if result.is_ok() {
                    AuditOutcome::Success
                } else {
                    AuditOutcome::Failure
                },
                detail: json!({ "workflowId": self.run.workflow_id, "status": outcome }),
            },
            &self.meta(),
        );
        if self
            .store()
            .workflows()
            .finish_run(self.run.id, self.token, &end, now, record.append())
            .await?
        {
            metrics::counter!("hive_workflow_runs_total", "outcome" => outcome).increment(1);
            Ok(())
        } else {
            Err(Stopped::Lost)
        }
    }

    fn run_as(&self) -> RunAs {
        RunAs {
            user: self.run.principal_user,
            token: self.run.principal_token,
        }
    }

    /// The scope templates and conditions read: the run's input, the outputs so far, the run.
    fn scope(&self, journal: &Journal) -> Value {
        let input = serde_json::from_str::<Value>(&self.run.input).unwrap_or(Value::Null);
        json!({
            "input": input,
            "nodes": plan::outputs(journal),
            "run": {
                "id": self.run.id,
                "workflowId": self.run.workflow_id,
                "version": self.run.version,
                "trigger": self.run.trigger.as_str(),
            },
        })
    }

    /// One node's step, from its start in the journal to its end there.
    async fn step(
        &self,
        definition: &Definition,
        node: &Node,
        attempt: i64,
        journal: &Journal,
    ) -> StepResult {
        let now = self.now();
        let first_started = journal
            .get(&node.id)
            .map_or(now, |step| step.started_at.min(now));
        let caller = match self.inner.parts.principals.caller(&self.run, now).await {
            Ok(caller) => caller,
            Err(PrincipalError::Lost(lost)) => {
                self.inner
                    .parts
                    .auditor
                    .record_refusal(
                        AuditEvent {
                            principal: self.run_as().principal(),
                            action: AuditAction::WorkflowStepRefused,
                            target: Some(format!("workflow_run:{}", self.run.id)),
                            outcome: AuditOutcome::Denied,
                            detail: json!({ "node": node.id, "reason": lost.reason() }),
                        },
                        &self.meta(),
                    )
                    .await;
                return self
                    .fail_now(&node.id, &node.id, attempt, None, &lost.to_string())
                    .await;
            }
            Err(PrincipalError::Store(error)) => return Err(error.into()),
        };
        let scope = self.scope(journal);
        let secrets = match self.secrets_for(&node.kind).await {
            Ok(secrets) => secrets,
            Err(why) => return self.fail_now(&node.id, &node.id, attempt, None, &why).await,
        };
        let predecessors: Vec<(String, Value)> = definition
            .incoming(&node.id)
            .iter()
            .filter_map(|edge| {
                let step = journal.get(&edge.from)?;
                (step.status == StepStatus::Succeeded).then(|| {
                    let output = step
                        .output
                        .as_deref()
                        .and_then(|text| serde_json::from_str(text).ok())
                        .unwrap_or(Value::Null);
                    (edge.from.clone(), output)
                })
            })
            .collect();
        let meta = self.meta();
        let (progress, reports) = tokio::sync::mpsc::channel(1);
        let notes = self.record_progress(&node.id, reports);
        let input = StepInput {
            run_id: self.run.id,
            workflow_id: self.run.workflow_id,
            step_key: &node.id,
            kind: &node.kind,
            scope: &scope,
            secrets: &secrets,
            caller: &caller,
            meta: &meta,
            first_started,
            predecessors: &predecessors,
            progress: Some(&progress),
            timeout: node.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT),
        };
        let journaled = match nodes::journal_input(&node.kind, &input) {
            Ok(value) => value.map(|value| value.to_string()),
            Err(failure) => {
                return self
                    .fail_now(&node.id, &node.id, attempt, None, &failure.message)
                    .await;
            }
        };
        // Held before it starts: a step billing refuses fails, and the run with it.
        let billable = crate::kernel::ports::Billable {
            payer: caller.user_id().unwrap_or(self.run.principal_user),
            principal: caller.principal().to_string(),
            agent_id: self.run.workflow_id,
            kind: hive_store::UsageKind::WorkflowStep,
            model: String::new(),
            prompt_tokens: 0,
            max_completion_tokens: None,
            quantity: 1,
            meta: meta.clone(),
        };
        let reservation = match self.inner.parts.meter.reserve(billable).await {
            Ok(reservation) => reservation,
            Err(refusal) => {
                return self
                    .fail_now(&node.id, &node.id, attempt, None, &refusal.to_string())
                    .await;
            }
        };
        if let Err(stopped) = self
            .start(&StepStart {
                step_key: &node.id,
                node_id: &node.id,
                attempt,
                input: journaled.as_deref(),
                at: now,
            })
            .await
        {
            self.inner.parts.meter.release(reservation).await;
            return Err(stopped);
        }
        let code_off = node
            .kind
            .uses_code()
            .then(|| self.inner.parts.code_nodes.refusal())
            .flatten();
        let outcome = match &node.kind {
            _ if code_off.is_some() => Err(Failure::permanent(code_off.unwrap_or_default())),
            NodeKind::Map(map) => {
                self.map(node, map, &input, journal, attempt, input.timeout)
                    .await?
            }
            kind => {
                with_timeout(
                    outer_timeout(kind, input.timeout),
                    self.inner.parts.services.run(&input),
                )
                .await
            }
        };
        // The last report is written (or given up) before the step's end.
        drop(progress);
        let _ = notes.await;
        let used = crate::kernel::ports::MeteredUse {
            quantity: 1,
            ..crate::kernel::ports::MeteredUse::default()
        };
        self.inner.parts.meter.settle(reservation, used).await;
        self.record_outcome(node, attempt, outcome, &secrets, &caller)
            .await
    }

    /// Writes a step's latest progress report to the journal, at most once a second, until
    /// the step drops its sender. A report is only ever a running step's output: once the
    /// step has ended, a late one changes nothing.
    fn record_progress(
        &self,
        key: &str,
        mut reports: tokio::sync::mpsc::Receiver<Value>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            while let Some(mut report) = reports.recv().await {
                // Reports that came meanwhile are superseded by the newest.
                while let Ok(newer) = reports.try_recv() {
                    report = newer;
                }
                let text = report.to_string();
                if text.len() <= MAX_STEP_OUTPUT_BYTES {
                    let noted = this
                        .store()
                        .workflows()
                        .note_step(this.run.id, this.token, &key, &text)
                        .await;
                    if !matches!(noted, Ok(true)) {
                        return;
                    }
                }
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        })
    }

    /// Journals a step that failed before it could start (its principal, its secrets, its
    /// templates): no retry would do better.
    async fn fail_now(
        &self,
        key: &str,
        node_id: &str,
        attempt: i64,
        input: Option<&str>,
        why: &str,
    ) -> StepResult {
        let now = self.now();
        self.start(&StepStart {
            step_key: key,
            node_id,
            attempt,
            input,
            at: now,
        })
        .await?;
        let error = crate::agents::llm::cap_chars(why.to_owned(), MAX_ERROR_CHARS);
        self.end(&StepEnd {
            step_key: key,
            status: StepStatus::Failed,
            output: None,
            branch: None,
            error: Some(&error),
            wake_at: None,
            at: Some(now),
        })
        .await
    }

    async fn record_outcome(
        &self,
        node: &Node,
        attempt: i64,
        outcome: Result<Outcome, Failure>,
        secrets: &SecretValues,
        caller: &Caller,
    ) -> StepResult {
        let now = self.now();
        match outcome {
            Ok(Outcome::Done { output, branch }) => {
                let output = scrub(&output.to_string(), secrets);
                if output.len() > MAX_STEP_OUTPUT_BYTES {
                    let why = format!(
                        "its output is {} bytes, over the {MAX_STEP_OUTPUT_BYTES} a step keeps",
                        output.len()
                    );
                    return self.end_failed(&node.id, &why, None).await;
                }
                self.end(&StepEnd {
                    step_key: &node.id,
                    status: StepStatus::Succeeded,
                    output: Some(&output),
                    branch: branch.as_deref(),
                    error: None,
                    wake_at: None,
                    at: Some(now),
                })
                .await
            }
            Ok(Outcome::Wait { wake_at }) => {
                self.end(&StepEnd {
                    step_key: &node.id,
                    status: StepStatus::Waiting,
                    output: None,
                    branch: None,
                    error: None,
                    wake_at,
                    at: None,
                })
                .await
            }
            Ok(Outcome::StartChild { workflow, input }) => {
                match self.start_child(&workflow, input, &node.id, caller).await {
                    Ok(started) => {
                        let output = json!({ "runId": started.run().id }).to_string();
                        // A child that ended already (a parent step run again) is not waited
                        // for: its end is the step's.
                        let child = started.run();
                        let (status, output, error) = match child.status {
                            hive_store::RunStatus::Succeeded => {
                                (StepStatus::Succeeded, child.output.clone(), None)
                            }
                            hive_store::RunStatus::Failed | hive_store::RunStatus::Cancelled => (
                                StepStatus::Failed,
                                None,
                                Some(format!(
                                    "the sub-workflow's run {} {}",
                                    child.id,
                                    child.status.as_str()
                                )),
                            ),
                            _ => (StepStatus::Waiting, Some(output), None),
                        };
                        self.end(&StepEnd {
                            step_key: &node.id,
                            status,
                            output: output.as_deref(),
                            branch: None,
                            error: error.as_deref(),
                            wake_at: None,
                            at: (status != StepStatus::Waiting).then_some(now),
                        })
                        .await
                    }
                    Err(error) => self.end_failed(&node.id, &error.to_string(), None).await,
                }
            }
            Err(failure) => {
                let why = scrub(&failure.message, secrets);
                let retry_at = (failure.retryable && attempt < i64::from(node.retry.max_attempts))
                    .then(|| {
                        // The wait before the next try, not before the one that just failed.
                        let next = u32::try_from(attempt + 1).unwrap_or(u32::MAX);
                        let wait = node.retry.delay_before(next);
                        now + time::Duration::try_from(wait).unwrap_or(time::Duration::ZERO)
                    });
                self.end_failed(&node.id, &why, retry_at).await
            }
        }
    }

    async fn end_failed(
        &self,
        key: &str,
        why: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> StepResult {
        let error = crate::agents::llm::cap_chars(why.to_owned(), MAX_ERROR_CHARS);
        self.end(&StepEnd {
            step_key: key,
            status: StepStatus::Failed,
            output: None,
            branch: None,
            error: Some(&error),
            wake_at: retry_at,
            at: Some(self.now()),
        })
        .await
    }

    /// The values of the secrets the node's templates name, the principal's own, read now
    /// (never stored with the run).
    async fn secrets_for(&self, kind: &NodeKind) -> Result<SecretValues, String> {
        let mut values = SecretValues::new();
        for name in kind_secret_names(kind) {
            let value = self
                .inner
                .parts
                .secrets
                .value_by_name(self.run.principal_user, &name, "workflow")
                .await
                .map_err(|_| "the run's secrets cannot be read now".to_owned())?
                .ok_or_else(|| format!("the secret {name:?} does not exist"))?;
            let text = std::str::from_utf8(&value)
                .map_err(|_| format!("the secret {name:?} is not text"))?;
            values.insert(name, Zeroizing::new(text.to_owned()));
        }
        Ok(values)
    }

    /// Starts (or finds, when the step runs again) the sub-workflow's run, as this run's
    /// principal: a workflow it owns, or any for an admin.
    async fn start_child(
        &self,
        reference: &str,
        input: Value,
        step_key: &str,
        caller: &Caller,
    ) -> Result<Started, WorkflowError> {
        let store = self.store().workflows();
        let workflow = match Uuid::parse_str(reference) {
            Ok(id) => store.get_workflow(id).await?,
            Err(_) => {
                store
                    .find_workflow(self.run.principal_user, reference)
                    .await?
            }
        };
        let workflow = workflow
            .filter(|workflow| caller.is_admin() || workflow.owner_id == self.run.principal_user)
            .ok_or(WorkflowError::NotFound)?;
        let Some(version) = store
            .get_version(workflow.id, workflow.latest_version)
            .await?
        else {
            return Err(WorkflowError::NotFound);
        };
        let definition = Definition::parse(&version.document)
            .map_err(|problems| WorkflowError::Invalid(problems.to_string()))?;
        let trigger_key = format!("parent:{}:{step_key}", self.run.id);
        self.inner
            .parts
            .starter
            .start(
                &RunRequest::new(
                    &workflow,
                    version.version,
                    &definition,
                    self.run_as(),
                    RunTrigger::Workflow,
                    input,
                    self.run_as().principal(),
                )
                .keyed(trigger_key)
                .child_of(self.run.id, step_key),
                &self.meta(),
            )
            .await
    }

    /// A map's items: each journaled as `node[i]`, at most `concurrency` at once; items that
    /// succeeded before (the step runs again after a crash) are not run again.
    async fn map(
        &self,
        node: &Node,
        map: &MapNode,
        input: &StepInput<'_>,
        journal: &Journal,
        attempt: i64,
        timeout: Duration,
    ) -> Result<Result<Outcome, Failure>, Stopped> {
        let items = match map.items.render(input.scope, input.secrets) {
            Ok(rendered) => rendered.value,
            Err(error) => return Ok(Err(Failure::permanent(error.to_string()))),
        };
        let Value::Array(items) = items else {
            return Ok(Err(Failure::permanent("`items` must render to an array")));
        };
        if items.len() > map.max_items as usize {
            return Ok(Err(Failure::permanent(format!(
                "{} items, over the map's maxItems of {}",
                items.len(),
                map.max_items
            ))));
        }
        let concurrency = usize::try_from(map.concurrency).unwrap_or(1).max(1);
        let results: Vec<Result<Result<Value, Failure>, Stopped>> =
            futures_util::stream::iter(items.into_iter().enumerate())
                .map(|(index, item)| {
                    self.map_item(node, map, input, journal, attempt, timeout, index, item)
                })
                .buffered(concurrency)
                .collect()
                .await;
        let mut outputs = Vec::with_capacity(results.len());
        for result in results {
            match result? {
                Ok(output) => outputs.push(output),
                Err(failure) => return Ok(Err(failure)),
            }
        }
        Ok(Ok(Outcome::Done {
            output: Value::Array(outputs),
            branch: None,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn map_item(
        &self,
        node: &Node,
        map: &MapNode,
        input: &StepInput<'_>,
        journal: &Journal,
        attempt: i64,
        timeout: Duration,
        index: usize,
        item: Value,
    ) -> Result<Result<Value, Failure>, Stopped> {
        let key = format!("{}[{index}]", node.id);
        if let Some(done) = journal
            .get(&key)
            .filter(|step| step.status == StepStatus::Succeeded)
        {
            let output = done
                .output
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null);
            return Ok(Ok(output));
        }
        let mut scope = input.scope.clone();
        scope["item"] = item;
        scope["index"] = json!(index);
        let item_input = StepInput {
            step_key: &key,
            kind: &map.body,
            scope: &scope,
            progress: None,
            ..*input
        };
        let item_attempt = journal
            .get(&key)
            .map_or(attempt.min(1), |step| step.attempt + 1);
        let journaled = match nodes::journal_input(&map.body, &item_input) {
            Ok(value) => value.map(|value| value.to_string()),
            Err(failure) => return Ok(Err(failure)),
        };
        self.start(&StepStart {
            step_key: &key,
            node_id: &node.id,
            attempt: item_attempt,
            input: journaled.as_deref(),
            at: self.now(),
        })
        .await?;
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            let outcome = with_timeout(
                outer_timeout(&map.body, timeout),
                self.inner.parts.services.run(&item_input),
            )
            .await;
            match outcome {
                Err(failure) if failure.retryable && tries < node.retry.max_attempts => {
                    // An item's retries happen here: the map's step is one in the plan.
                    tokio::time::sleep(node.retry.delay_before(tries + 1)).await;
                }
                other => break other,
            }
        };
        let now = self.now();
        match outcome {
            Ok(Outcome::Done { output, .. }) => {
                let text = scrub(&output.to_string(), input.secrets);
                self.end(&StepEnd {
                    step_key: &key,
                    status: StepStatus::Succeeded,
                    output: Some(&text),
                    branch: None,
                    error: None,
                    wake_at: None,
                    at: Some(now),
                })
                .await?;
                Ok(Ok(serde_json::from_str(&text).unwrap_or(Value::Null)))
            }
            Ok(_) => {
                let failure = Failure::permanent("a map's item cannot wait");
                self.end_failed(&key, &failure.message, None).await?;
                Ok(Err(failure))
            }
            Err(failure) => {
                let why = scrub(&failure.message, input.secrets);
                self.end_failed(&key, &why, None).await?;
                Ok(Err(Failure::permanent(format!("item {index}: {why}"))))
            }
        }
    }
}

/// How long the executor lets a step's work run: its timeout, or a little more for a code
/// step, which enforces its timeout itself (the sandbox killed, the limit named) and needs the
/// time to start and tear its sandbox down.
fn outer_timeout(kind: &NodeKind, timeout: Duration) -> Duration {
    if matches!(kind, NodeKind::Code(_)) {
        timeout + CODE_TEARDOWN
    } else {
        timeout
    }
}

/// What a code step is given past its timeout to start and end its sandbox.
const CODE_TEARDOWN: Duration = Duration::from_secs(30);

async fn with_timeout(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<Outcome, Failure>>,
) -> Result<Outcome, Failure> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::transient(format!(
                "the step took longer than its {} s",
                timeout.as_secs()
            )))
        })
}

/// The secrets a node's templates name (a map's: its body's).
fn kind_secret_names(kind: &NodeKind) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    match kind {
        NodeKind::Http(node) => {
            names.extend(node.url.secret_names());
            for value in node.headers.values() {
                names.extend(value.secret_names());
            }
            if let Some(body) = &node.body {
                names.extend(body.secret_names());
            }
        }
        NodeKind::Code(node) => {
            for value in node.env.values() {
                names.extend(value.secret_names());
            }
        }
        NodeKind::Map(map) => names.extend(kind_secret_names(&map.body)),
        _ => {}
    }
    names
}

/// Replaces every secret's value in `text` with its name, as written and as JSON escapes it.
pub(crate) fn scrub(text: &str, secrets: &SecretValues) -> String {
    let mut text = text.to_owned();
    for (name, value) in secrets {
        if value.is_empty() {
            continue;
        }
        let marker = format!("[secret {name}]");
        text = text.replace(value.as_str(), &marker);
        if let Ok(quoted) = serde_json::to_string(value.as_str()) {
            let escaped = quoted.trim_matches('"');
            if escaped != value.as_str() {
                text = text.replace(escaped, &marker);
            }
        }
    }
    text
}

/// The run's output: its output node's, or null when it has none (or it was skipped).
fn output_of(definition: &Definition, journal: &Journal) -> Value {
    definition
        .nodes
        .iter()
        .find(|node| matches!(node.kind, NodeKind::Output(_)))
        .and_then(|node| journal.get(&node.id))
        .filter(|step| step.status == StepStatus::Succeeded)
        .and_then(|step| step.output.as_deref())
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_secret_values_raw_and_json_escaped() {
        let mut secrets = SecretValues::new();
        secrets.insert("KEY".into(), Zeroizing::new("s3cr\"t".into()));
        let text = json!({ "echo": "s3cr\"t", "raw": "x" }).to_string();
        let scrubbed = scrub(&text, &secrets);
        assert!(!scrubbed.contains("s3cr"), "{scrubbed}");
        assert!(scrubbed.contains("[secret KEY]"));
        assert_eq!(scrub("s3cr\"t alone", &secrets), "[secret KEY] alone");
    }
}
