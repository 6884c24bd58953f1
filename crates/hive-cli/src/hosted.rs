//! `hive agent bundle|logs|stats|restart|pause|resume`: hosted agents through a running
//! server's HTTP API. A server holds its data directory (on SQLite, exclusively), so these
//! commands never open it: they are the API's clients, with an API token.
//!
//! The server is `--server`, else `HIVE_SERVER_URL`, else the configured `AUTH_URL`; the token
//! comes from `--token-file`, else `HIVE_TOKEN` (or the file `HIVE_TOKEN_FILE` names), never
//! from the command line, where every user of the machine could read it. Nothing printed holds
//! the token; everything the server sent is printed with its control characters escaped.

use clap::{Args, Subcommand};
use hive_core::agents::hosted::bundle::MAX_ARCHIVE_BYTES;
use hive_core::kernel::config::{Config, Environment};
use hive_proto::agents::{
    AgentView, BundleView, HostedStatsView, LogLineView, LogPageView, RollbackRequest,
};
use hive_proto::auth::PageResponse;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// Connecting to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole call, answer included (a restart waits for the agent's stop and start).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// A bundle's upload: up to 64 MiB.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// The log stream's answer head; its body has no deadline (it lasts as long as it is followed).
const STREAM_HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a token file may hold.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;
/// The most one event of the log stream may hold (a log line is far smaller).
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Log lines asked for per page (the API's most).
const LOG_PAGE: u64 = 1000;
/// Agents asked for per page while looking for a name (the API's most).
const AGENT_PAGE: u32 = 100;

/// Where the server is and which token to show it.
#[derive(Args, Clone)]
pub struct Remote {
    /// The server's base URL (default: HIVE_SERVER_URL, else the configured AUTH_URL).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// A file holding the API token (default: HIVE_TOKEN, or the file HIVE_TOKEN_FILE names).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
}

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

pub async fn hosted(config: &Config, action: HostedAction) -> Result<(), String> {
    match action {
        HostedAction::Bundle { action } => bundle(config, action).await,
        HostedAction::Logs {
            agent,
            after,
            limit,
            follow,
            remote,
        } => {
            let api = Api::new(config, &remote)?;
            let id = api.agent_id(&agent).await?;
            let last = api.print_logs(&id, after, limit).await?;
            if follow {
                api.follow_logs(&id, last.or(after), &mut print_line)
                    .await?;
            }
            Ok(())
        }
        HostedAction::Stats { agent, remote } => {
            let api = Api::new(config, &remote)?;
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

async fn bundle(config: &Config, action: BundleAction) -> Result<(), String> {
    match action {
        BundleAction::Push {
            agent,
            file,
            remote,
        } => {
            let archive = read_bundle(&file).await?;
            let api = Api::new(config, &remote)?;
            let id = api.agent_id(&agent).await?;
            let request = api
                .request(Method::PUT, &format!("/agents/{id}/bundle"))
                .timeout(UPLOAD_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/gzip")
                .body(archive);
            let pushed: BundleView = api.json(request).await?;
            emit(&format!(
                "pushed version {} (sha256 {}, {} bytes)",
                pushed.version,
                shown(&pushed.sha256),
                pushed.size_bytes
            ))
        }
        BundleAction::List { agent, remote } => {
            let api = Api::new(config, &remote)?;
            let id = api.agent_id(&agent).await?;
            let bundles: Vec<BundleView> = api
                .call(Method::GET, &format!("/agents/{id}/bundles"), None)
                .await?;
            if bundles.is_empty() {
                eprintln!("no bundle yet (hive agent bundle push AGENT FILE)");
                return Ok(());
            }
            emit(&format!(
                "{:>7}  {:<6}  {:<12}  {:>10}  created",
                "version", "active", "sha256", "size"
            ))?;
            for bundle in bundles {
                let sha: String = bundle.sha256.chars().take(12).collect();
                emit(&format!(
                    "{:>7}  {:<6}  {:<12}  {:>10}  {}",
                    bundle.version,
                    if bundle.active { "*" } else { "" },
                    shown(&sha),
                    size(u64::try_from(bundle.size_bytes).unwrap_or(0)),
                    // To the second: the column lines up.
                    rfc3339(
                        bundle
                            .created_at
                            .replace_nanosecond(0)
                            .unwrap_or(bundle.created_at)
                    )
                ))?;
            }
            Ok(())
        }
        BundleAction::Rollback {
            agent,
            version,
            remote,
        } => {
            let api = Api::new(config, &remote)?;
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
            emit(&format!(
                "version {} is active: the next start runs it (hive agent restart {})",
                active.version,
                shown(&agent)
            ))
        }
    }
}

/// `restart`, `pause` or `resume`: the agent's state afterwards.
async fn lifecycle(
    config: &Config,
    remote: &Remote,
    agent: &str,
    verb: &str,
) -> Result<(), String> {
    let api = Api::new(config, remote)?;
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
async fn read_bundle(file: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let length = tokio::fs::metadata(file).await.map_err(cannot)?.len();
    if length > MAX_ARCHIVE_BYTES {
        return Err(format!(
            "{} is {length} bytes; a bundle is at most {} MiB",
            file.display(),
            MAX_ARCHIVE_BYTES / (1024 * 1024)
        ));
    }
    let archive = tokio::fs::read(file).await.map_err(cannot)?;
    if !archive.starts_with(&[0x1f, 0x8b]) {
        return Err(format!(
            "{} is not gzip-compressed: a bundle is a .tar.gz with hive-agent.toml at its root",
            file.display()
        ));
    }
    Ok(archive)
}

/// One server's API, as one token.
struct Api {
    http: reqwest::Client,
    /// `…/api/v1`, without a trailing slash.
    base: String,
    token: Zeroizing<String>,
    /// Where the token came from (`HIVE_TOKEN`, `HIVE_TOKEN_FILE` or `--token-file`).
    token_source: &'static str,
}

/// Why following the log stream stopped.
enum StreamEnd {
    /// The server ended it.
    Ended,
    /// The connection broke (worth one reconnection).
    Dropped(String),
}

impl Api {
    fn new(config: &Config, remote: &Remote) -> Result<Self, String> {
        let server = server_url(config, remote.server.as_deref())?;
        let (token, token_source) = token(remote.token_file.as_deref())?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would be followed with the token: never; the error says where to.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hive-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {}", describe(e)))?;
        let base = format!("{}/api/v1", server.as_str().trim_end_matches('/'));
        Ok(Self {
            http,
            base,
            token,
            token_source,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str())
    }

    /// A GET of `path` with `query` (its values percent-encoded).
    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<RequestBuilder, String> {
        let mut url = Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| format!("cannot make the request's URL: {e}"))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        Ok(self.http.get(url).bearer_auth(self.token.as_str()))
    }

    /// Sends `request`; a refusal becomes the API's message.
    async fn send(&self, request: RequestBuilder) -> Result<Response, String> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        refused(response, self.token_source).await
    }

    /// Sends `request` and reads its JSON answer.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, String> {
        let response = self.send(request).await?;
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&body)
            .map_err(|e| format!("the server's answer is not what this version of hive reads: {e}"))
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, String> {
        let mut request = self.request(method, path).timeout(CALL_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.json(request).await
    }

    fn unreachable(&self, error: reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("{} did not answer in time", self.origin());
        }
        format!("cannot reach {}: {}", self.origin(), describe(error))
    }

    /// The id of an agent named by its id or its name (looked up among the agents the token
    /// may see).
    async fn agent_id(&self, who: &str) -> Result<String, String> {
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
        ))
    }

    /// Prints the kept lines after `after` (at most `limit`), page by page; the last one's
    /// number.
    async fn print_logs(
        &self,
        id: &str,
        mut after: Option<u64>,
        limit: Option<u64>,
    ) -> Result<Option<u64>, String> {
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
        print: &mut dyn FnMut(&LogLineView) -> Result<(), String>,
    ) -> Result<(), String> {
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
                    return Err(format!("the log stream broke again: {why}"));
                }
            }
        }
    }

    async fn stream_logs(
        &self,
        id: &str,
        last: &mut Option<u64>,
        resuming: bool,
        print: &mut dyn FnMut(&LogLineView) -> Result<(), String>,
    ) -> Result<StreamEnd, String> {
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
            Err(_) => return Err(format!("{} did not answer in time", self.origin())),
            Ok(Err(error)) if resuming => return Ok(StreamEnd::Dropped(self.unreachable(error))),
            Ok(Err(error)) => return Err(self.unreachable(error)),
            Ok(Ok(response)) => refused(response, self.token_source).await?,
        };
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if !event_stream {
            return Err("the server did not answer with an event stream".to_owned());
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

    fn origin(&self) -> &str {
        self.base.trim_end_matches("/api/v1")
    }
}

/// A refusal's status and the API's message (`{"error":{"code","message"}}`), or the response.
/// `token_source` names where the token came from (never the token).
async fn refused(response: Response, token_source: &str) -> Result<Response, String> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        return Err(format!(
            "the server redirects ({status}) to {}: set --server or HIVE_SERVER_URL to the address it names",
            shown(&to)
        ));
    }
    let body = response.bytes().await.unwrap_or_default();
    let error = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|body| {
            let error = body.get("error")?;
            Some((
                error.get("message")?.as_str()?.to_owned(),
                error.get("code")?.as_str()?.to_owned(),
            ))
        });
    let said = match error {
        Some((message, code)) => format!("{} ({})", shown(&message), shown(&code)),
        None => format!("HTTP {status}"),
    };
    Err(match status {
        StatusCode::UNAUTHORIZED => {
            format!("the server refused the token from {token_source} ({status}): {said}")
        }
        StatusCode::FORBIDDEN => {
            format!("the token from {token_source} may not do this ({status}): {said}")
        }
        _ => format!("the server refused ({status}): {said}"),
    })
}

/// reqwest's own text (without the URL, named elsewhere) and its causes.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The server's URL: `--server`, else `HIVE_SERVER_URL`, else the configured `AUTH_URL`.
fn server_url(config: &Config, flag: Option<&str>) -> Result<Url, String> {
    let from_env = non_empty_env("HIVE_SERVER_URL")?;
    let (raw, source) = match (flag, from_env) {
        (Some(flag), _) => (flag.to_owned(), "--server"),
        (None, Some(env)) => (env, "HIVE_SERVER_URL"),
        (None, None) => (config.auth_url.to_string(), "AUTH_URL"),
    };
    let url = Url::parse(raw.trim()).map_err(|e| format!("{source} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{source} must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{source} must not hold credentials (the token comes from HIVE_TOKEN or --token-file)"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{source} must have no query or fragment"));
    }
    let Some(host) = url.host_str() else {
        return Err(format!("{source} names no host"));
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() == "http" && !loopback && config.environment == Environment::Production {
        return Err(format!(
            "{source} is http: in production the token goes to a server only over https (or to a loopback address)"
        ));
    }
    Ok(url)
}

/// The API token: `--token-file`, else `HIVE_TOKEN`, else the file `HIVE_TOKEN_FILE` names.
fn token(flag: Option<&Path>) -> Result<(Zeroizing<String>, &'static str), String> {
    let direct = non_empty_env("HIVE_TOKEN")?.map(Zeroizing::new);
    let file_env = non_empty_env("HIVE_TOKEN_FILE")?;
    let (token, source) = match (flag, direct, file_env) {
        (Some(path), _, _) => (read_token_file(path, "--token-file")?, "--token-file"),
        (None, Some(_), Some(_)) => {
            return Err("set either HIVE_TOKEN or HIVE_TOKEN_FILE, not both".to_owned());
        }
        (None, Some(token), None) => (token, "HIVE_TOKEN"),
        (None, None, Some(path)) => (
            read_token_file(Path::new(&path), "HIVE_TOKEN_FILE")?,
            "HIVE_TOKEN_FILE",
        ),
        (None, None, None) => {
            return Err(
                "no API token: set HIVE_TOKEN (or HIVE_TOKEN_FILE), or pass --token-file PATH (`hive token create` makes one)"
                    .to_owned(),
            );
        }
    };
    let token = Zeroizing::new(token.trim().to_owned());
    if token.is_empty() {
        return Err(format!("{source} holds no token"));
    }
    // Visible ASCII only: anything else cannot travel in a header (and is no Hive token).
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{source} holds characters a token cannot have (it is one line of visible ASCII)"
        ));
    }
    Ok((token, source))
}

fn read_token_file(path: &Path, source: &str) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("{source}: cannot read {}: {e}", path.display());
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "{source}: {} is larger than {MAX_TOKEN_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// A variable of the process's environment; empty counts as unset (as in the configuration).
fn non_empty_env(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// One event of a Server-Sent Events stream.
struct Event {
    kind: String,
    data: String,
}

/// A Server-Sent Events parser fed chunk by chunk (lines end in `\n` or `\r\n`).
#[derive(Default)]
struct EventStream {
    pending: Vec<u8>,
    kind: String,
    data: String,
    has_data: bool,
}

impl EventStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data {
                    events.push(Event {
                        kind: if self.kind.is_empty() {
                            "message".to_owned()
                        } else {
                            std::mem::take(&mut self.kind)
                        },
                        data: std::mem::take(&mut self.data),
                    });
                }
                self.kind.clear();
                self.data.clear();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_ref(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => value.clone_into(&mut self.kind),
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
            if self.data.len() > MAX_EVENT_BYTES {
                return Err("the server sent an event larger than hive reads".to_owned());
            }
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            return Err("the server sent a line larger than hive reads".to_owned());
        }
        Ok(events)
    }
}

fn print_line(line: &LogLineView) -> Result<(), String> {
    emit(&format!(
        "{} {} {}",
        rfc3339(line.at),
        shown(&line.stream),
        shown(&line.text)
    ))
}

fn print_stats(stats: &HostedStatsView) -> Result<(), String> {
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

/// Writes one line to standard output (line by line, so a reader sees each as it comes).
fn emit(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to standard output: {e}"))
}

/// Text from the server as it may reach a terminal: control characters (other than tab) as
/// visible escapes, the way the server writes an agent's log lines — so nothing a server or an
/// agent sends can drive the terminal, whatever the server did.
fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\t' && c.is_control()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\t' || !c.is_control() {
            out.push(c);
        } else if c.is_ascii() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Bytes as people read them: `512 B`, `1.5 KiB`, `12.3 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_chunks_and_comments_are_skipped() {
        let mut stream = EventStream::default();
        let mut events = stream
            .feed(b": keep-alive\n\nevent: log\nid: 7\nda")
            .unwrap();
        assert!(events.is_empty());
        events.extend(
            stream
                .feed(b"ta: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n")
                .unwrap(),
        );
        let seen: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.kind.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(seen, [("log", "{\"a\":1}"), ("message", "x\ny")]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut stream = EventStream::default();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(stream.feed(&big).is_err());
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(shown("plain\ttext"), "plain\ttext");
        assert_eq!(shown("\x1b[31mred\x07"), "\\x1b[31mred\\x07");
        assert_eq!(shown("csi \u{9b}"), "csi \\u{9b}");
        // What the server already escaped stays as it is.
        assert_eq!(shown("\\x1b[31m"), "\\x1b[31m");
    }

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
        assert!(error.contains("broke again"), "{error}");
        assert_eq!(printed, [1, 2]);
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
    }
}
