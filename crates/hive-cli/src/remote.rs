//! The client of a running server's HTTP API that the remote commands share (`hive agent
//! bundle|logs|…`, `hive workflow …`, `hive billing …`, and the account commands when a server
//! is named: `instance`). A server holds its data directory (on SQLite, exclusively), so these
//! commands never open it: they are the API's clients, with an API token. Each says on
//! standard error which server it uses.
//!
//! The server is `--url` (or `--server`), else `HIVE_URL` (or `HIVE_SERVER_URL`), else the
//! profile file's, else the configured `AUTH_URL`; the token comes from `--token-file`, else
//! `HIVE_TOKEN` (or the file `HIVE_TOKEN_FILE` names), else the profile file's — never from the
//! command line, where every user of the machine could read it. Nothing printed holds
//! the token; everything the server sent is printed with its control characters escaped.

use crate::profile::Profile;
use clap::Args;
use hive_core::kernel::config::{Config, Environment};
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
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The log stream's answer head; its body has no deadline (it lasts as long as it is followed).
pub(crate) const STREAM_HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a token file may hold.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;
/// The most one event of the log stream may hold (a log line is far smaller).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Where the server is and which token to show it.
#[derive(Args, Clone, Default)]
pub struct Remote {
    /// The server's base URL (default: HIVE_URL or HIVE_SERVER_URL, else the profile's `url`;
    /// with none, the account commands work on the data directory and the others call the
    /// configured AUTH_URL).
    #[arg(
        long = "url",
        visible_alias = "server",
        value_name = "URL",
        global = true
    )]
    pub(crate) server: Option<String>,
    /// A file holding the API token (default: HIVE_TOKEN, or the file HIVE_TOKEN_FILE names,
    /// else the profile's `token`).
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// A named profile (`[NAME]`) of the profile file (HIVE_PROFILE, default
    /// ~/.config/hive/profile): its url and token, ahead of the environment's.
    #[arg(long, value_name = "NAME", global = true)]
    pub(crate) profile: Option<String>,
}

impl Remote {
    /// Whether a server was named (flag, environment or profile): the account commands then
    /// work through its API; otherwise on the embedded data directory.
    pub(crate) fn server_given(&self) -> Result<bool, String> {
        if self.server.is_some()
            || non_empty_env("HIVE_URL")?.is_some()
            || non_empty_env("HIVE_SERVER_URL")?.is_some()
        {
            return Ok(true);
        }
        Ok(crate::profile::load(self.profile.as_deref())?.is_some_and(|p| p.url.is_some()))
    }
}

/// One server's API, as one token.
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    /// `…/api/v1`, without a trailing slash.
    pub(crate) base: String,
    pub(crate) token: Zeroizing<String>,
    /// Where the token came from (`HIVE_TOKEN`, `HIVE_TOKEN_FILE`, `--token-file` or the
    /// profile file).
    pub(crate) token_source: &'static str,
}

impl Api {
    pub(crate) fn new(config: &Config, remote: &Remote) -> Result<Self, String> {
        let profile = crate::profile::load(remote.profile.as_deref())?;
        let server = server_url(config, remote, profile.as_ref())?;
        let (token, token_source) = token(remote, profile.as_ref())?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would be followed with the token: never; the error says where to.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hive-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {}", describe(e)))?;
        let base = format!("{}/api/v1", server.as_str().trim_end_matches('/'));
        // Every command says which instance it works on: here the server (never the token).
        eprintln!("hive: server {}", base.trim_end_matches("/api/v1"));
        Ok(Self {
            http,
            base,
            token,
            token_source,
        })
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str())
    }

    /// A GET of `path` with `query` (its values percent-encoded).
    pub(crate) fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<RequestBuilder, String> {
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
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response, CallFailure> {
        let response = request
            .send()
            .await
            .map_err(|e| CallFailure::unreachable(self.unreachable(e)))?;
        refused(response, self.token_source).await
    }

    /// Sends `request` and reads its JSON answer.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, CallFailure> {
        let response = self.send(request).await?;
        Ok(self.read_json(response).await?)
    }

    /// Reads the JSON answer of a call already sent (whose status the caller looked at).
    pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: Response,
    ) -> Result<T, String> {
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&body)
            .map_err(|e| format!("the server's answer is not what this version of hive reads: {e}"))
    }

    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, CallFailure> {
        let mut request = self.request(method, path).timeout(CALL_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.json(request).await
    }

    pub(crate) fn unreachable(&self, error: reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("{} did not answer in time", self.origin());
        }
        format!("cannot reach {}: {}", self.origin(), describe(error))
    }

    pub(crate) fn origin(&self) -> &str {
        self.base.trim_end_matches("/api/v1")
    }
}

/// Why a call failed: the server could not be reached or refused the token
/// (`unreachable`: the command's instance is not usable, exit 2), or it refused the work.
#[derive(Debug)]
pub(crate) struct CallFailure {
    pub(crate) message: String,
    pub(crate) unreachable: bool,
}

impl CallFailure {
    pub(crate) fn unreachable(message: String) -> Self {
        Self {
            message,
            unreachable: true,
        }
    }

    fn refused(message: String) -> Self {
        Self {
            message,
            unreachable: false,
        }
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<CallFailure> for String {
    fn from(failure: CallFailure) -> Self {
        failure.message
    }
}

impl From<String> for CallFailure {
    fn from(message: String) -> Self {
        Self::refused(message)
    }
}

/// A refusal's status and the API's message (`{"error":{"code","message"}}`), or the response.
/// `token_source` names where the token came from (never the token).
pub(crate) async fn refused(
    response: Response,
    token_source: &str,
) -> Result<Response, CallFailure> {
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
        return Err(CallFailure::unreachable(format!(
            "the server redirects ({status}) to {}: set --url or HIVE_URL to the address it names",
            shown(&to)
        )));
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
        StatusCode::UNAUTHORIZED => CallFailure::unreachable(format!(
            "the server refused the token from {token_source} ({status}): {said}"
        )),
        StatusCode::FORBIDDEN => CallFailure::refused(format!(
            "the token from {token_source} may not do this ({status}): {said}"
        )),
        _ => CallFailure::refused(format!("the server refused ({status}): {said}")),
    })
}

/// reqwest's own text (without the URL, named elsewhere) and its causes.
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The server's URL: `--url`, else a profile named with `--profile`, else `HIVE_URL` or
/// `HIVE_SERVER_URL`, else the profile file's, else the configured `AUTH_URL`.
pub(crate) fn server_url(
    config: &Config,
    remote: &Remote,
    profile: Option<&Profile>,
) -> Result<Url, String> {
    let profile_url = profile.and_then(|p| p.url.clone().map(|url| (url, p.source)));
    let from_env = match non_empty_env("HIVE_URL")? {
        Some(url) => Some((url, "HIVE_URL")),
        None => non_empty_env("HIVE_SERVER_URL")?.map(|url| (url, "HIVE_SERVER_URL")),
    };
    let named_profile = remote.profile.is_some();
    let (raw, source) = match (&remote.server, from_env, profile_url) {
        (Some(flag), _, _) => (flag.clone(), "--url"),
        (None, _, Some(profile)) if named_profile => profile,
        (None, Some(env), _) => env,
        (None, None, Some(profile)) => profile,
        (None, None, None) => (config.auth_url.to_string(), "AUTH_URL"),
    };
    let url = Url::parse(raw.trim()).map_err(|e| format!("{source} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{source} must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{source} must not hold credentials (the token comes from HIVE_TOKEN, --token-file or the profile)"
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

/// The API token: `--token-file`, else a profile named with `--profile`, else `HIVE_TOKEN`
/// (or the file `HIVE_TOKEN_FILE` names), else the profile file's.
pub(crate) fn token(
    remote: &Remote,
    profile: Option<&Profile>,
) -> Result<(Zeroizing<String>, &'static str), String> {
    let direct = non_empty_env("HIVE_TOKEN")?.map(Zeroizing::new);
    let file_env = non_empty_env("HIVE_TOKEN_FILE")?;
    let profile_token = profile.and_then(|p| p.token.clone().map(|token| (token, p.source)));
    let named_profile = remote.profile.is_some();
    let (token, source) = match (
        remote.token_file.as_deref(),
        direct,
        file_env,
        profile_token,
    ) {
        (Some(path), _, _, _) => (read_token_file(path, "--token-file")?, "--token-file"),
        (None, _, _, Some(profile)) if named_profile => profile,
        (None, Some(_), Some(_), _) => {
            return Err("set either HIVE_TOKEN or HIVE_TOKEN_FILE, not both".to_owned());
        }
        (None, Some(token), None, _) => (token, "HIVE_TOKEN"),
        (None, None, Some(path), _) => (
            read_token_file(Path::new(&path), "HIVE_TOKEN_FILE")?,
            "HIVE_TOKEN_FILE",
        ),
        (None, None, None, Some(profile)) => profile,
        (None, None, None, None) => {
            return Err(
                "no API token: set HIVE_TOKEN (or HIVE_TOKEN_FILE), pass --token-file PATH, or put it in a profile file (`hive token create` makes one)"
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

pub(crate) fn read_token_file(path: &Path, source: &str) -> Result<Zeroizing<String>, String> {
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
pub(crate) fn non_empty_env(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// One event of a Server-Sent Events stream.
pub(crate) struct Event {
    pub(crate) kind: String,
    pub(crate) data: String,
}

/// A Server-Sent Events parser fed chunk by chunk (lines end in `\n` or `\r\n`).
#[derive(Default)]
pub(crate) struct EventStream {
    pending: Vec<u8>,
    pub(crate) kind: String,
    data: String,
    has_data: bool,
}

impl EventStream {
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
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

/// Writes one line to standard output (line by line, so a reader sees each as it comes).
pub(crate) fn emit(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to standard output: {e}"))
}

/// Text from the server as it may reach a terminal: control characters (other than tab) as
/// visible escapes, the way the server writes an agent's log lines — so nothing a server or an
/// agent sends can drive the terminal, whatever the server did.
pub(crate) fn shown(text: &str) -> Cow<'_, str> {
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

pub(crate) fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Bytes as people read them: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub(crate) fn size(bytes: u64) -> String {
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
}
