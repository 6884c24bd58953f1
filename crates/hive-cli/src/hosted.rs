//! `hive agent bundle|logs|stats|restart|pause|resume`: hosted agents through a running
//! server's HTTP API (the shared client is [`crate::remote`]).

use crate::remote::{
    Api, CALL_TIMEOUT, CallFailure, EventStream, Remote, STREAM_HEAD_TIMEOUT, describe, emit,
    refused, rfc3339, shown, size,
};
use clap::Subcommand;
use hive_core::agents::hosted::bundle::MAX_ARCHIVE_BYTES;
use hive_core::kernel::config::Config;
use hive_proto::agents::{
    AgentView, BundleView, HostedStatsView, LogLineView, LogPageView, RollbackRequest,
};
use hive_proto::auth::PageResponse;
use reqwest::Method;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A bundle's upload: up to 64 MiB.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Log lines asked for per page (the API's most).
const LOG_PAGE: u64 = 1000;
/// Agents asked for per page while looking for a name (the API's most).
const AGENT_PAGE: u32 = 100;

/// The hosted agents' commands of `hive agent` (clients of a running server).
#[derive(Subcommand)]
pub enum HostedAction {
    /// A hosted agent's bundles: push a new version, list the kept ones, roll back (through a
    /// running server's API).
    Bundle {
        #[command(subcommand)]
        action: BundleAction,
    },
    /// Print what a hosted agent printed, oldest first, as `<time> <stream> <text>`; with
    /// --follow, then each new line as it comes (through a running server's API).
    Logs {
        /// The agent's id or name.
        agent: String,
        /// Only lines after this one (their numbers count up over the agent's life).
        #[arg(long, value_name = "N")]
        after: Option<u64>,
        /// At most this many lines.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
              conflicts_with = "follow")]
        limit: Option<u64>,
        /// After the kept lines, follow new ones until Ctrl-C or the stream's end.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// What a hosted agent uses: status, bundle version, CPU, memory, processes, proxy traffic
    /// (through a running server's API).
    Stats {
        /// The agent's id or name.
        agent: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop a hosted agent and start it again, on its active bundle version (through a running
    /// server's API).
    Restart {
        /// The agent's id or name.
        agent: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Freeze a hosted agent's processes: they keep their memory and get no CPU (through a
    /// running server's API).
    Pause {
        /// The agent's id or name.
        agent: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Thaw a paused hosted agent (through a running server's API).
    Resume {
        /// The agent's id or name.
        agent: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum BundleAction {
    /// Upload a bundle (a .tar.gz with hive-agent.toml at its root, at most 64 MiB): it becomes
    /// the version the agent's next start runs.
    Push {
        /// The agent's id or name.
        agent: String,
        /// The bundle's file.
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// The kept versions, newest first; `*` marks the one the next start runs.
    List {
        /// The agent's id or name.
        agent: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make an earlier kept version the one the next start runs (default: the one before the
    /// active one).
    Rollback {
        /// The agent's id or name.
        agent: String,
        #[arg(long, value_name = "N")]
        version: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn hosted(config: &Config, action: HostedAction) -> Result<(), CallFailure> {
    match action {
        HostedAction::Bundle { action } => bundle(config, action).await,
        HostedAction::Logs {
            agent,
            after,
            limit,
            follow,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = api.agent_id(&agent).await?;
            let last = api.print_logs(&id, after, limit).await?;
            if follow {
                api.follow_logs(&id, last.or(after), &mut print_line)
                    .await?;
            }
            Ok(())
        }
        HostedAction::Stats { agent, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = api.agent_id(&agent).await?;
            let stats: HostedStatsView = api
                .call(Method::GET, &format!("/agents/{id}/stats"), None)
                .await?;
            print_stats(&stats)
        }
        HostedAction::Restart { agent, remote } => {
            lifecycle(config, &remote, &agent, "restart").await
        }
        HostedAction::Pause { agent, remote } => lifecycle(config, &remote, &agent, "pause").await,
        HostedAction::Resume { agent, remote } => {
            lifecycle(config, &remote, &agent, "resume").await
        }
    }
}

async fn bundle(config: &Config, action: BundleAction) -> Result<(), CallFailure> {
    match action {
        BundleAction::Push {
            agent,
            file,
            remote,
        } => {
            let archive = read_bundle(&file).await?;
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = api.agent_id(&agent).await?;
            let request = api
                .request(Method::PUT, &format!("/agents/{id}/bundle"))
                .timeout(UPLOAD_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/gzip")
                .body(archive);
            let pushed: BundleView = api.json(request).await?;
            Ok(emit(&format!(
                "pushed version {} (sha256 {}, {} bytes)",
                pushed.version,
                shown(&pushed.sha256),
                pushed.size_bytes
            ))?)
        }
        BundleAction::List { agent, remote } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = api.agent_id(&agent).await?;
            let bundles: Vec<BundleView> = api
                .call(Method::GET, &format!("/agents/{id}/bundles"), None)
                .await?;
            if bundles.is_empty() {
                eprintln!("no bundle yet (hive agent bundle push AGENT FILE)");
                return Ok(());
            }
            let rows = bundles
                .into_iter()
                .map(|bundle| {
                    let sha: String = bundle.sha256.chars().take(12).collect();
                    vec![
                        bundle.version.to_string(),
                        if bundle.active { "*" } else { "" }.to_owned(),
                        shown(&sha).into_owned(),
                        size(u64::try_from(bundle.size_bytes).unwrap_or(0)),
                        crate::output::time(bundle.created_at),
                    ]
                })
                .collect();
            crate::output::grid(&["VERSION", "ACTIVE", "SHA256", "SIZE", "CREATED"], rows)?;
            Ok(())
        }
        BundleAction::Rollback {
            agent,
            version,
            remote,
        } => {
            let api = Api::new(config, &remote).map_err(CallFailure::unreachable)?;
            let id = api.agent_id(&agent).await?;
            let body = serde_json::to_value(RollbackRequest { version })
                .map_err(|e| format!("cannot encode the request: {e}"))?;
            let active: BundleView = api
                .call(
                    Method::POST,
                    &format!("/agents/{id}/bundle/rollback"),
                    Some(body),
                )
                .await?;
            Ok(emit(&format!(
                "version {} is active: the next start runs it (hive agent restart {})",
                active.version,
                shown(&agent)
            ))?)
        }
    }
}

/// `restart`, `pause` or `resume`: the agent's state afterwards.
async fn lifecycle(
    config: &Config,
    remote: &Remote,
    agent: &str,
    verb: &str,
) -> Result<(), CallFailure> {
    let api = Api::new(config, remote).map_err(CallFailure::unreachable)?;
    let id = api.agent_id(agent).await?;
    let view: AgentView = api
        .call(
            Method::POST,
            &format!("/agents/{id}/{verb}"),
            Some(serde_json::json!({})),
        )
        .await?;
    emit(&format!("{} is {}", shown(&view.name), view.status))?;
    if !view.status_detail.is_empty() {
        emit(&format!("reason: {}", shown(&view.status_detail)))?;
    }
    Ok(())
}

/// A bundle file, checked for what can be told here: its size and that it is gzip.
async fn read_bundle(file: &Path) -> Result<Vec<u8>, CallFailure> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let length = tokio::fs::metadata(file).await.map_err(cannot)?.len();
    if length > MAX_ARCHIVE_BYTES {
        return Err(format!(
            "{} is {length} bytes; a bundle is at most {} MiB",
            file.display(),
            MAX_ARCHIVE_BYTES / (1024 * 1024)
        )
        .into());
    }
    let archive = tokio::fs::read(file).await.map_err(cannot)?;
    if !archive.starts_with(&[0x1f, 0x8b]) {
        return Err(format!(
            "{} is not gzip-compressed: a bundle is a .tar.gz with hive-agent.toml at its root",
            file.display()
        )
        .into());
    }
    Ok(archive)
}

/// Why following the log stream stopped.
enum StreamEnd {
    /// The server ended it.
    Ended,
    /// The connection broke (worth one reconnection).
    Dropped(String),
}

impl Api {
    /// The id of an agent named by its id or its name (looked up among the agents the token
    /// may see).
    pub(crate) async fn agent_id(&self, who: &str) -> Result<String, CallFailure> {
        if let Ok(id) = who.parse::<uuid::Uuid>() {
            return Ok(id.to_string());
        }
        let mut cursor: Option<String> = None;
        // Bounded: a server handing back cursors forever must not keep this running.
        for _ in 0..10_000 {
            let mut query = vec![("limit", AGENT_PAGE.to_string())];
            query.extend(cursor.iter().map(|cursor| ("cursor", cursor.clone())));
            let request = self.get("/agents", &query)?.timeout(CALL_TIMEOUT);
            let page: PageResponse<AgentView> = self.json(request).await?;
            if let Some(agent) = page.items.iter().find(|agent| agent.name == who) {
                return Ok(agent.id.clone());
            }
            match page.next_cursor {
                Some(next) if cursor.as_ref() != Some(&next) => cursor = Some(next),
                _ => break,
            }
        }
        Err(format!(
            "no agent named {} among those this token may see",
            shown(who)
        )
        .into())
    }

    /// Prints the kept lines after `after` (at most `limit`), page by page; the last one's
    /// number.
    async fn print_logs(
        &self,
        id: &str,
        mut after: Option<u64>,
        limit: Option<u64>,
    ) -> Result<Option<u64>, CallFailure> {
        let mut left = limit;
        let mut last = None;
        loop {
            let want = left.map_or(LOG_PAGE, |left| left.min(LOG_PAGE));
            if want == 0 {
                break;
            }
            let mut query = vec![("limit", want.to_string())];
            query.extend(after.map(|after| ("after", after.to_string())));
            let request = self
                .get(&format!("/agents/{id}/logs"), &query)?
                .timeout(CALL_TIMEOUT);
            let page: LogPageView = self.json(request).await?;
            let printed = u64::try_from(page.lines.len()).unwrap_or(u64::MAX);
            for line in &page.lines {
                print_line(line)?;
                last = Some(line.seq);
            }
            left = left.map(|left| left.saturating_sub(printed));
            match page.next {
                // Only forward: a page that does not advance ends the listing.
                Some(next) if printed > 0 && after.is_none_or(|after| next > after) => {
                    after = Some(next);
                }
                _ => break,
            }
        }
        Ok(last)
    }

    /// Follows the log stream after `last` until the server ends it; reconnects once (with
    /// `Last-Event-ID`) if the connection breaks.
    async fn follow_logs(
        &self,
        id: &str,
        mut last: Option<u64>,
        print: &mut dyn FnMut(&LogLineView) -> Result<(), CallFailure>,
    ) -> Result<(), CallFailure> {
        let mut reconnected = false;
        loop {
            match self.stream_logs(id, &mut last, reconnected, print).await? {
                StreamEnd::Ended => {
                    eprintln!(
                        "hive: the log stream ended (the agent is not running on the server that answered, or nothing came for a long while)"
                    );
                    return Ok(());
                }
                StreamEnd::Dropped(why) if !reconnected => {
                    eprintln!("hive: the log stream broke ({why}); reconnecting");
                    reconnected = true;
                }
                StreamEnd::Dropped(why) => {
                    return Err(format!("the log stream broke again: {why}").into());
                }
            }
        }
    }

    async fn stream_logs(
        &self,
        id: &str,
        last: &mut Option<u64>,
        resuming: bool,
        print: &mut dyn FnMut(&LogLineView) -> Result<(), CallFailure>,
    ) -> Result<StreamEnd, CallFailure> {
        // A reconnection says where it was as `Last-Event-ID`, as a browser's EventSource does.
        let after: Vec<(&str, String)> = match *last {
            Some(seen) if !resuming => vec![("after", seen.to_string())],
            _ => Vec::new(),
        };
        let mut request = self
            .get(&format!("/agents/{id}/logs/stream"), &after)?
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(seen) = last.filter(|_| resuming) {
            request = request.header("Last-Event-ID", seen.to_string());
        }
        let response = match tokio::time::timeout(STREAM_HEAD_TIMEOUT, request.send()).await {
            Err(_) => {
                return Err(CallFailure::unreachable(format!(
                    "{} did not answer in time",
                    self.origin()
                )));
            }
            Ok(Err(error)) if resuming => return Ok(StreamEnd::Dropped(self.unreachable(error))),
            Ok(Err(error)) => return Err(CallFailure::unreachable(self.unreachable(error))),
            Ok(Ok(response)) => refused(response, self.token_source).await?,
        };
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if !event_stream {
            return Err("the server did not answer with an event stream"
                .to_owned()
                .into());
        }
        let mut response = response;
        let mut events = EventStream::default();
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    for event in events.feed(&bytes)? {
                        if event.kind != "log" {
                            continue;
                        }
                        let line: LogLineView = serde_json::from_str(&event.data).map_err(|e| {
                            format!("the server sent a log line hive cannot read: {e}")
                        })?;
                        // After a reconnection nothing is printed twice.
                        if last.is_some_and(|seen| line.seq <= seen) {
                            continue;
                        }
                        print(&line)?;
                        *last = Some(line.seq);
                    }
                }
                Ok(None) => return Ok(StreamEnd::Ended),
                Err(error) => return Ok(StreamEnd::Dropped(describe(error))),
            }
        }
    }
}

fn print_line(line: &LogLineView) -> Result<(), CallFailure> {
    Ok(emit(&format!(
        "{} {} {}",
        rfc3339(line.at),
        shown(&line.stream),
        shown(&line.text)
    ))?)
}

fn print_stats(stats: &HostedStatsView) -> Result<(), CallFailure> {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let seconds = |value: Option<f64>| or_dash(value.map(|s| format!("{s:.2}")));
    let bytes = |value: Option<u64>| or_dash(value.map(size));
    let lines = [
        ("status", stats.status.to_string()),
        (
            "node",
            or_dash(stats.node.as_deref().map(|n| shown(n).into_owned())),
        ),
        (
            "bundle version",
            or_dash(stats.bundle_version.map(|v| v.to_string())),
        ),
        ("started at", or_dash(stats.started_at.map(rfc3339))),
        ("restarts", stats.restarts.to_string()),
        ("cpu seconds", seconds(stats.cpu_seconds)),
        (
            "cpu throttled seconds",
            seconds(stats.cpu_throttled_seconds),
        ),
        ("memory", bytes(stats.memory_bytes)),
        ("peak memory", bytes(stats.peak_memory_bytes)),
        ("processes", or_dash(stats.processes.map(|p| p.to_string()))),
        ("paused", stats.paused.to_string()),
        ("proxy requests", stats.proxy_requests.to_string()),
        ("proxy refusals", stats.proxy_refusals.to_string()),
        ("proxy bytes up", size(stats.proxy_bytes_up)),
        ("proxy bytes down", size(stats.proxy_bytes_down)),
    ];
    for (key, value) in lines {
        emit(&format!("{key}: {value}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    /// A server of canned HTTP/1.1 answers, one per connection; each request's head is sent
    /// to the test.
    async fn canned_server(
        answers: Vec<Vec<u8>>,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (heads, seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap() == 0 {
                        break;
                    }
                    head.push(byte[0]);
                }
                let _ = heads.send(String::from_utf8_lossy(&head).to_lowercase());
                socket.write_all(&answer).await.unwrap();
                // Dropped here: an answer without its last chunk is a broken connection.
            }
        });
        (format!("http://{address}"), seen)
    }

    fn stream_answer(seqs: &[u64], complete: bool) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for seq in seqs {
            let event = format!(
                "event: log\nid: {seq}\ndata: {{\"seq\":{seq},\"at\":\"2025-01-02T03:04:05Z\",\"stream\":\"stdout\",\"text\":\"line {seq}\"}}\n\n"
            );
            out.extend_from_slice(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
        }
        if complete {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        out
    }

    fn api(server: &str) -> Api {
        Api {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: format!("{server}/api/v1"),
            token: Zeroizing::new("hive_test".to_owned()),
            token_source: "HIVE_TOKEN",
        }
    }

    #[tokio::test]
    async fn a_broken_log_stream_is_resumed_once_from_the_last_line() {
        let (server, mut heads) = canned_server(vec![
            stream_answer(&[4], false),
            stream_answer(&[4, 5], true),
        ])
        .await;
        let mut printed = Vec::new();
        api(&server)
            .follow_logs("a1", Some(3), &mut |line| {
                printed.push(line.seq);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(printed, [4, 5], "nothing twice, nothing missed");
        let first = heads.recv().await.unwrap();
        assert!(
            first.starts_with("get /api/v1/agents/a1/logs/stream?after=3 "),
            "{first}"
        );
        let second = heads.recv().await.unwrap();
        assert!(second.contains("\r\nlast-event-id: 4\r\n"), "{second}");
        assert!(
            second.contains("authorization: bearer hive_test"),
            "{second}"
        );
    }

    #[tokio::test]
    async fn a_log_stream_that_breaks_twice_is_an_error() {
        let (server, _heads) =
            canned_server(vec![stream_answer(&[1], false), stream_answer(&[2], false)]).await;
        let mut printed = Vec::new();
        let error = api(&server)
            .follow_logs("a1", None, &mut |line| {
                printed.push(line.seq);
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(error.message.contains("broke again"), "{}", error.message);
        assert_eq!(printed, [1, 2]);
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
    }
}
