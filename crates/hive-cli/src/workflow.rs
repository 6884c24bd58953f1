//! `hive workflow apply|validate|list|show|run|runs|logs|cancel|retry|approve|import|…`:
//! workflows through a running server's HTTP API (the shared client is [`crate::remote`]).

use crate::output;
use crate::remote::{
    Api, CALL_TIMEOUT, CallFailure, EventStream, Remote, STREAM_HEAD_TIMEOUT, describe, emit,
    refused, rfc3339, shown,
};
use clap::Subcommand;
use hive_core::kernel::config::Config;
use hive_proto::auth::PageResponse;
use hive_proto::workflows::{
    ImportView, RunDetailView, RunView, StepView, ValidationView, WebhookSecretView,
    WorkflowSavedView, WorkflowVersionView, WorkflowView,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The most a document or graph file may hold (the server takes 256 KiB documents).
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Rows asked for per page (the API's most).
const PAGE: u32 = 100;

#[derive(Subcommand)]
pub enum WorkflowAction {
    /// Save a workflow document (JSON): a new workflow, or the next version of yours of the
    /// same name.
    Apply {
        /// The document's file (`-` for standard input).
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check a document without saving it; every problem is listed (exit 1 if any).
    Validate {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Your workflows (an admin's: everyone's), newest first.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a workflow's document (its newest version, or --version N).
    Show {
        /// The workflow's id or name.
        workflow: String,
        #[arg(long, value_name = "N")]
        version: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a run of the newest version; with --wait, follow it and exit 1 unless it
    /// succeeds.
    Run {
        /// The workflow's id or name.
        workflow: String,
        /// The run's input, a JSON object.
        #[arg(long, value_name = "JSON", conflicts_with = "input_file")]
        input: Option<String>,
        /// A file holding the run's input.
        #[arg(long, value_name = "PATH")]
        input_file: Option<PathBuf>,
        /// Print each step as it goes and the output at the end.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Runs, newest first.
    Runs {
        /// Only this workflow's (id or name).
        #[arg(long)]
        workflow: Option<String>,
        /// queued, running, waiting, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// manual, webhook, schedule, a2a or workflow.
        #[arg(long)]
        trigger: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// A run's steps: status, attempt, times, errors; with --follow, then each change until
    /// the run ends.
    Logs {
        /// The run's id.
        run: String,
        /// Also print each step's input and output.
        #[arg(long)]
        full: bool,
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a run that has not ended (and its sub-workflows' runs).
    Cancel {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a failed or cancelled run again from the steps that did not succeed.
    Retry {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Decide an approval step: approve (default) or --reject.
    Approve {
        run: String,
        /// The approval node's id.
        node: String,
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Convert a Pilox workflow graph (JSON) to a Hive document, printed to standard output;
    /// what did not map is listed on standard error.
    Import {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop (disable) or allow (enable) new runs of a workflow.
    Enable {
        workflow: String,
        #[command(flatten)]
        remote: Remote,
    },
    Disable {
        workflow: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set a new webhook secret and print it (shown once).
    WebhookSecret {
        workflow: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a workflow with its versions and runs.
    Delete {
        workflow: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn workflow(config: &Config, action: WorkflowAction) -> Result<(), CallFailure> {
    match action {
        WorkflowAction::Apply { file, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let document = read_file(&file)?;
            let request = api
                .request(Method::POST, "/workflows")
                .timeout(CALL_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(document);
            let saved: WorkflowSavedView = api.json(request).await?;
            Ok(emit(&format!(
                "{} workflow {} ({}), version {}",
                if saved.created { "created" } else { "saved" },
                shown(&saved.workflow.name),
                saved.workflow.id,
                saved.version
            ))?)
        }
        WorkflowAction::Validate { file, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let request = api
                .request(Method::POST, "/workflows/validate")
                .timeout(CALL_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(read_file(&file)?);
            let report: ValidationView = api.json(request).await?;
            if report.valid {
                return Ok(emit("valid")?);
            }
            for problem in &report.problems {
                emit(&format!("{}: {}", problem.rule, shown(&problem.message)))?;
            }
            Err(format!("{} problem(s)", report.problems.len()).into())
        }
        WorkflowAction::List { remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let mut rows = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..10_000 {
                let page: PageResponse<WorkflowView> =
                    page(&api, "/workflows", &[], &cursor).await?;
                for workflow in &page.items {
                    rows.push(vec![
                        workflow.id.clone(),
                        shown(&workflow.name).into_owned(),
                        workflow.latest_version.to_string(),
                        workflow.enabled.to_string(),
                    ]);
                }
                match page.next_cursor {
                    Some(next) if cursor.as_ref() != Some(&next) => cursor = Some(next),
                    _ => break,
                }
            }
            Ok(output::grid(&["ID", "NAME", "VERSION", "ENABLED"], rows)?)
        }
        WorkflowAction::Show {
            workflow,
            version,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = workflow_id(&api, &workflow).await?;
            let version = match version {
                Some(version) => version,
                None => {
                    let workflow: WorkflowView = api
                        .call(Method::GET, &format!("/workflows/{id}"), None)
                        .await?;
                    workflow.latest_version
                }
            };
            let row: WorkflowVersionView = api
                .call(
                    Method::GET,
                    &format!("/workflows/{id}/versions/{version}"),
                    None,
                )
                .await?;
            Ok(emit(&pretty(&row.document))?)
        }
        WorkflowAction::Run {
            workflow,
            input,
            input_file,
            wait,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let input: Value = match (input, input_file) {
                (Some(text), _) => {
                    serde_json::from_str(&text).map_err(|e| format!("--input is not JSON: {e}"))?
                }
                (None, Some(path)) => serde_json::from_slice(&read_file(&path)?)
                    .map_err(|e| format!("{} is not JSON: {e}", path.display()))?,
                (None, None) => json!({}),
            };
            let id = workflow_id(&api, &workflow).await?;
            let run: RunView = api
                .call(
                    Method::POST,
                    &format!("/workflows/{id}/runs"),
                    Some(json!({ "input": input })),
                )
                .await?;
            emit(&format!("run {} {}", run.id, run.status))?;
            if !wait {
                return Ok(());
            }
            let last = follow(&api, &run.id, false).await?;
            finish(last)
        }
        WorkflowAction::Runs {
            workflow,
            status,
            trigger,
            limit,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let mut query = vec![("limit", limit.to_string())];
            if let Some(workflow) = workflow {
                query.push(("workflowId", workflow_id(&api, &workflow).await?));
            }
            query.extend(status.map(|status| ("status", status)));
            query.extend(trigger.map(|trigger| ("trigger", trigger)));
            let request = api.get("/workflow-runs", &query)?.timeout(CALL_TIMEOUT);
            let page: PageResponse<RunView> = api.json(request).await?;
            let rows = page
                .items
                .into_iter()
                .map(|run| {
                    vec![
                        run.id,
                        run.workflow_id,
                        run.status.to_string(),
                        run.trigger.to_string(),
                        output::time(run.created_at),
                    ]
                })
                .collect();
            output::grid(&["RUN", "WORKFLOW", "STATUS", "TRIGGER", "CREATED"], rows)?;
            Ok(())
        }
        WorkflowAction::Logs {
            run,
            full,
            follow: following,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            if following {
                let last = follow(&api, &run, full).await?;
                return finish(last);
            }
            let detail: RunDetailView = api
                .call(Method::GET, &format!("/workflow-runs/{run}"), None)
                .await?;
            for step in &detail.steps {
                print_step(step, full)?;
            }
            print_run(&detail.run)
        }
        WorkflowAction::Cancel { run, remote } => {
            run_verb(config, &remote, &run, "cancel", None).await
        }
        WorkflowAction::Retry { run, remote } => {
            run_verb(config, &remote, &run, "retry", None).await
        }
        WorkflowAction::Approve {
            run,
            node,
            reject,
            comment,
            remote,
        } => {
            let body = json!({ "approve": !reject, "comment": comment });
            let path = format!("approvals/{}", urlencoding(&node));
            run_verb(config, &remote, &run, &path, Some(body)).await
        }
        WorkflowAction::Import { file, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let graph: Value = serde_json::from_slice(&read_file(&file)?)
                .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
            let report: ImportView = api
                .call(
                    Method::POST,
                    "/workflows/import",
                    Some(json!({ "graph": graph })),
                )
                .await?;
            for note in &report.notes {
                eprintln!("hive: {}: {}", shown(&note.node), shown(&note.reason));
            }
            Ok(emit(&pretty(&report.document))?)
        }
        WorkflowAction::Enable { workflow, remote } => {
            set_enabled(config, &remote, &workflow, true).await
        }
        WorkflowAction::Disable { workflow, remote } => {
            set_enabled(config, &remote, &workflow, false).await
        }
        WorkflowAction::WebhookSecret { workflow, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = workflow_id(&api, &workflow).await?;
            let secret: WebhookSecretView = api
                .call(
                    Method::POST,
                    &format!("/workflows/{id}/webhook-secret"),
                    Some(json!({})),
                )
                .await?;
            eprintln!(
                "hive: shown once; sign calls with the {} header (see docs/workflows.md)",
                secret.header
            );
            Ok(emit(&secret.secret)?)
        }
        WorkflowAction::Delete { workflow, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = workflow_id(&api, &workflow).await?;
            api.send(
                api.request(Method::DELETE, &format!("/workflows/{id}"))
                    .timeout(CALL_TIMEOUT),
            )
            .await?;
            Ok(emit(&format!("deleted workflow {id}"))?)
        }
    }
}

async fn set_enabled(
    config: &Config,
    remote: &Remote,
    workflow: &str,
    enabled: bool,
) -> Result<(), CallFailure> {
    let api = Api::new(config, remote).map_err(CallFailure::unreachable)?;
    let id = workflow_id(&api, workflow).await?;
    let view: WorkflowView = api
        .call(
            Method::PATCH,
            &format!("/workflows/{id}"),
            Some(json!({ "enabled": enabled })),
        )
        .await?;
    Ok(emit(&format!(
        "{} is {}",
        shown(&view.name),
        if view.enabled { "enabled" } else { "disabled" }
    ))?)
}

/// `cancel`, `retry` or `approvals/{node}` of a run: the run afterwards.
async fn run_verb(
    config: &Config,
    remote: &Remote,
    run: &str,
    verb: &str,
    body: Option<Value>,
) -> Result<(), CallFailure> {
    let api = Api::new(config, remote).map_err(CallFailure::unreachable)?;
    let run = run_id(run)?;
    let view: RunView = api
        .call(
            Method::POST,
            &format!("/workflow-runs/{run}/{verb}"),
            Some(body.unwrap_or_else(|| json!({}))),
        )
        .await?;
    print_run(&view)
}

fn run_id(run: &str) -> Result<uuid::Uuid, CallFailure> {
    Ok(run
        .parse()
        .map_err(|_| format!("{} is not a run id", shown(run)))?)
}

/// A node id as a path segment (node ids are `[A-Za-z0-9_-]`; anything else is escaped).
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn page<T: serde::de::DeserializeOwned>(
    api: &Api,
    path: &str,
    query: &[(&str, String)],
    cursor: &Option<String>,
) -> Result<PageResponse<T>, CallFailure> {
    let mut query: Vec<(&str, String)> = query.to_vec();
    query.push(("limit", PAGE.to_string()));
    query.extend(cursor.iter().map(|cursor| ("cursor", cursor.clone())));
    let request = api.get(path, &query)?.timeout(CALL_TIMEOUT);
    api.json(request).await
}

/// The id of a workflow named by its id or its name (among those the token may see).
async fn workflow_id(api: &Api, who: &str) -> Result<String, CallFailure> {
    if let Ok(id) = who.parse::<uuid::Uuid>() {
        return Ok(id.to_string());
    }
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page: PageResponse<WorkflowView> = page(api, "/workflows", &[], &cursor).await?;
        if let Some(workflow) = page.items.iter().find(|workflow| workflow.name == who) {
            return Ok(workflow.id.clone());
        }
        match page.next_cursor {
            Some(next) if cursor.as_ref() != Some(&next) => cursor = Some(next),
            _ => break,
        }
    }
    Err(format!(
        "no workflow named {} among those this token may see",
        shown(who)
    )
    .into())
}

/// Follows a run's events until it ends; the run as it ended.
async fn follow(api: &Api, run: &str, full: bool) -> Result<Option<RunView>, CallFailure> {
    let run = run_id(run)?;
    let request = api
        .get(&format!("/workflow-runs/{run}/events"), &[])?
        .header(reqwest::header::ACCEPT, "text/event-stream");
    let response = match tokio::time::timeout(STREAM_HEAD_TIMEOUT, request.send()).await {
        Err(_) => {
            return Err(CallFailure::unreachable(format!(
                "{} did not answer in time",
                api.origin()
            )));
        }
        Ok(Err(error)) => return Err(CallFailure::unreachable(api.unreachable(error))),
        Ok(Ok(response)) => refused(response, api.token_source).await?,
    };
    let mut response = response;
    let mut events = EventStream::default();
    let mut last = None;
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                for event in events.feed(&bytes)? {
                    let cannot = |e: serde_json::Error| {
                        format!("the server sent an event hive cannot read: {e}")
                    };
                    match event.kind.as_str() {
                        "step" => {
                            print_step(&serde_json::from_str(&event.data).map_err(cannot)?, full)?
                        }
                        "run" => {
                            let run: RunView = serde_json::from_str(&event.data).map_err(cannot)?;
                            emit(&format!("run {} {}", run.id, run.status))?;
                            last = Some(run);
                        }
                        _ => {}
                    }
                }
            }
            Ok(None) => return Ok(last),
            Err(error) => return Err(format!("the run's stream broke: {}", describe(error)).into()),
        }
    }
}

/// The end of a followed run: its output, or why it did not succeed (exit 1).
fn finish(last: Option<RunView>) -> Result<(), CallFailure> {
    match last {
        Some(run) if run.status == "succeeded" => {
            Ok(emit(&pretty(run.output.as_ref().unwrap_or(&Value::Null)))?)
        }
        Some(run) if matches!(run.status.as_str(), "failed" | "cancelled") => Err(format!(
            "the run {}{}",
            run.status,
            run.error
                .map(|error| format!(": {}", shown(&error)))
                .unwrap_or_default()
        )
        .into()),
        _ => Err(
            "the stream ended before the run did (hive workflow logs RUN -f)"
                .to_owned()
                .into(),
        ),
    }
}

fn print_step(step: &StepView, full: bool) -> Result<(), CallFailure> {
    let mut line = format!(
        "{} {:<24} {:<9} attempt {}",
        rfc3339(
            step.started_at
                .replace_nanosecond(0)
                .unwrap_or(step.started_at)
        ),
        shown(&step.key),
        step.status,
        step.attempt
    );
    if let Some(branch) = &step.branch {
        line.push_str(&format!(" branch {}", shown(branch)));
    }
    if let Some(wake) = step.wake_at {
        line.push_str(&format!(" until {}", rfc3339(wake)));
    }
    if let Some(error) = &step.error {
        line.push_str(&format!(" error: {}", shown(error)));
    }
    emit(&line)?;
    if full {
        if let Some(input) = &step.input {
            emit(&format!("  input: {}", shown(&input.to_string())))?;
        }
        if let Some(output) = &step.output {
            emit(&format!("  output: {}", shown(&output.to_string())))?;
        }
    }
    Ok(())
}

fn print_run(run: &RunView) -> Result<(), CallFailure> {
    let mut line = format!("run {} {}", run.id, run.status);
    if let Some(error) = &run.error {
        line.push_str(&format!(": {}", shown(error)));
    }
    Ok(emit(&line)?)
}

/// JSON as people read it; safe for a terminal as it is (JSON escapes control characters).
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A file of at most 1 MiB (`-`: standard input).
fn read_file(path: &Path) -> Result<Vec<u8>, CallFailure> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{} is larger than {MAX_FILE_BYTES} bytes", path.display()).into());
    }
    Ok(bytes)
}
