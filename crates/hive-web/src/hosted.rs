//! A hosted agent's part of its page: its bundle's versions (uploaded by the page's script
//! through the API, rolled back by a form), its last log lines (then followed live by the
//! script), what its sandbox uses, and the lifecycle a sandbox adds: restart, pause, resume.

use crate::agents::{after_action, then_agent_page};
use crate::page::{Refused, refusal, when};
use axum::extract::{Form, Path, State};
use axum::response::Response;
use hive_core::agents::hosted::BUNDLES_KEPT;
use hive_core::agents::hosted::logs::{LogLine, LogStream};
use hive_core::kernel::caller::{Caller, RequestMeta};
use hive_proto::Role;
use hive_proto::agents::HostedStatsView;
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use hive_store::{AgentRow, BundleRow};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Log lines the page shows before its script follows the rest.
pub const LOG_LINES_SHOWN: usize = 200;

/// What a hosted agent's page shows of it beside what every agent's page shows.
pub struct HostedSection {
    /// The kept versions, newest first.
    pub versions: Vec<VersionLine>,
    /// The last lines it printed, oldest first, or why they cannot be read.
    pub logs: Result<Vec<LogView>, String>,
    /// The seq of the last line shown (empty when none): the script follows from there.
    pub logs_after: String,
    /// Whether the page's script follows its output: it runs, or should.
    pub follow: bool,
    /// What it uses, or why that cannot be read.
    pub stats: Result<StatsView, String>,
    /// Why this replica cannot run hosted agents, if it cannot.
    pub unavailable: Option<String>,
    /// How many versions are kept.
    pub kept: u32,
}

impl HostedSection {
    /// Whether as many lines as the page shows were printed (older ones may be kept too).
    pub fn logs_cut(&self) -> bool {
        self.logs
            .as_ref()
            .is_ok_and(|lines| lines.len() >= LOG_LINES_SHOWN)
    }
}

pub struct VersionLine {
    pub version: i64,
    pub sha256: String,
    pub sha256_short: String,
    pub size: String,
    pub uploaded: String,
    pub uploaded_by: String,
    /// The version the next start runs.
    pub active: bool,
    /// The version its sandbox runs now (measured on this replica).
    pub running: bool,
}

pub struct LogView {
    pub at: String,
    pub stderr: bool,
    pub text: String,
}

impl LogView {
    fn of(line: LogLine) -> Self {
        Self {
            at: log_time(line.at),
            stderr: line.stream == LogStream::Stderr,
            text: line.text,
        }
    }
}

pub struct StatsView {
    pub status: &'static str,
    /// The replica that runs it, if any.
    pub node: Option<String>,
    /// Whether the measurements below are of a run (by the replica that runs it).
    pub measured_here: bool,
    pub bundle_version: Option<i64>,
    pub started: Option<String>,
    pub restarts: u32,
    pub cpu: String,
    pub memory: String,
    pub peak_memory: String,
    pub processes: String,
    pub proxy_requests: u64,
    pub proxy_refusals: u64,
    pub proxy_up: String,
    pub proxy_down: String,
}

impl StatsView {
    fn of(stats: HostedStatsView) -> Self {
        let unknown = || "not measured".to_owned();
        Self {
            status: stats.status.as_str(),
            node: stats.node,
            // Only the replica that runs it knows when it started.
            measured_here: stats.started_at.is_some(),
            bundle_version: stats.bundle_version,
            started: stats.started_at.map(when),
            restarts: stats.restarts,
            cpu: stats.cpu_seconds.map_or_else(unknown, |cpu| {
                seconds(Duration::from_secs_f64(cpu.max(0.0)))
            }),
            memory: stats.memory_bytes.map_or_else(unknown, mebibytes),
            peak_memory: stats.peak_memory_bytes.map_or_else(unknown, mebibytes),
            processes: stats
                .processes
                .map_or_else(unknown, |count| count.to_string()),
            proxy_requests: stats.proxy_requests,
            proxy_refusals: stats.proxy_refusals,
            proxy_up: size(stats.proxy_bytes_up),
            proxy_down: size(stats.proxy_bytes_down),
        }
    }
}

/// A log line's time as the page shows it: to the second, in UTC (the script writes live
/// lines the same way).
pub fn log_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A byte count in the unit that reads best: bytes, KiB, MiB or GiB, one decimal.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Memory in MiB, one decimal.
pub fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// CPU time in seconds, two decimals.
pub fn seconds(time: Duration) -> String {
    format!("{:.2} s", time.as_secs_f64())
}

/// The first 12 hex digits of a digest: enough to tell versions apart on a page.
pub fn short_digest(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// Who uploaded a version, as the caller may know them: themselves, an admin by name (only
/// admins look accounts up), another account (an admin, as only they reach others' agents).
async fn uploader(
    state: &AppState,
    caller: &Caller,
    id: Option<Uuid>,
    names: &mut HashMap<Uuid, String>,
) -> String {
    let Some(id) = id else {
        return "an account since deleted".to_owned();
    };
    if caller.user_id() == Some(id) {
        return "you".to_owned();
    }
    if caller.role < Role::Admin {
        return "an administrator".to_owned();
    }
    if let Some(name) = names.get(&id) {
        return name.clone();
    }
    let name = match state.hive.identity.get_user(id).await {
        Ok(user) => user.display_name,
        Err(_) => "an account since deleted".to_owned(),
    };
    names.insert(id, name.clone());
    name
}

async fn version_lines(
    state: &AppState,
    caller: &Caller,
    rows: Vec<BundleRow>,
    running: Option<i64>,
) -> Vec<VersionLine> {
    let mut names = HashMap::new();
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        lines.push(VersionLine {
            version: row.version,
            sha256_short: short_digest(&row.sha256).to_owned(),
            size: size(u64::try_from(row.size_bytes).unwrap_or(0)),
            uploaded: when(row.created_at),
            uploaded_by: uploader(state, caller, row.created_by, &mut names).await,
            active: row.active,
            running: running == Some(row.version),
            sha256: row.sha256,
        });
    }
    lines
}

/// The hosted part of `agent`'s page.
pub async fn section(
    state: &AppState,
    caller: &Caller,
    agent: &AgentRow,
) -> Result<HostedSection, Refused> {
    let hosted = state.hive.agent_lifecycle.hosted();
    let rows = hosted.bundles(caller, agent.id).await.map_err(refusal)?;
    let stats = hosted
        .stats(caller, agent.id)
        .await
        .map(StatsView::of)
        .map_err(|error| refusal(error).1);
    let running = stats
        .as_ref()
        .ok()
        .filter(|stats| stats.measured_here)
        .and_then(|stats| stats.bundle_version);
    let lines = hosted
        .log_tail(caller, agent.id, LOG_LINES_SHOWN)
        .await
        .map_err(|error| refusal(error).1);
    let logs_after = lines
        .as_ref()
        .ok()
        .and_then(|lines| lines.last())
        .map(|line| line.seq.to_string())
        .unwrap_or_default();
    Ok(HostedSection {
        versions: version_lines(state, caller, rows, running).await,
        logs: lines.map(|lines| lines.into_iter().map(LogView::of).collect()),
        logs_after,
        follow: crate::agents::runs(agent.status),
        stats,
        unavailable: hosted.unavailable_reason().map(str::to_owned),
        kept: BUNDLES_KEPT,
    })
}

#[derive(Deserialize)]
pub struct RollbackForm {
    version: i64,
}

/// Makes a kept version the one the next start runs.
pub async fn rollback(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<RollbackForm>,
) -> Response {
    let done = state
        .hive
        .agent_lifecycle
        .hosted()
        .rollback(&caller, id, Some(form.version), &meta)
        .await
        .map(|row| {
            format!(
                "Version {} is the active one: it runs from the agent's next start or restart.",
                row.version
            )
        })
        .map_err(refusal);
    after_action(&state, &caller, id, done).await
}

pub async fn restart(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    let hosted = state.hive.agent_lifecycle.hosted();
    let done = hosted.restart(&caller, id, &meta).await;
    then_agent_page(&state, &caller, id, done).await
}

pub async fn pause(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    paused(&state, &caller, id, true, &meta).await
}

pub async fn resume(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    paused(&state, &caller, id, false, &meta).await
}

async fn paused(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    paused: bool,
    meta: &RequestMeta,
) -> Response {
    let hosted = state.hive.agent_lifecycle.hosted();
    let done = hosted.set_paused(caller, id, paused, meta).await;
    then_agent_page(state, caller, id, done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_unit_that_fits() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        // Past the largest unit, the number grows.
        assert_eq!(size(2048 * 1024 * 1024 * 1024), "2048.0 GiB");
        assert_eq!(mebibytes(0), "0.0 MiB");
        assert_eq!(mebibytes(12 * 1024 * 1024 + 512 * 1024), "12.5 MiB");
        assert_eq!(seconds(Duration::from_millis(1234)), "1.23 s");
    }

    #[test]
    fn digests_and_times_are_shortened_for_the_page() {
        let digest = "0123456789abcdef".repeat(4);
        assert_eq!(short_digest(&digest), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
        let at = time::macros::datetime!(2026-03-04 05:06:07.891 +02:00);
        assert_eq!(log_time(at), "2026-03-04 03:06:07");
    }
}
