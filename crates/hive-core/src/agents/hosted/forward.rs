//! Calls to a hosted agent that reach a replica other than the one running it (its lease's
//! holder) go on to the holder: the A2A client's request, as it would have gone into the
//! agent's socket, is sent to the holder's `HIVE_NODE_URL` under [`FORWARD_PREFIX`], signed
//! with a key derived from the deployment's `ENCRYPTION_KEY` (every replica has it, nobody else
//! does). The holder checks the signature, the time (within [`MAX_SKEW`]) and that the nonce
//! was never seen (the shared replay cache), and relays the request into the agent's socket.
//! The call's gateway work — who may call, limits, the task record, the audit — stays on the
//! replica the caller reached; the holder only relays.

use super::channel::{CHANNEL_URL, ChannelBody, by_deadline};
use hive_a2a::client::{Body, HttpRequest, HttpResponse, Transport, TransportError};
use hive_crypto::vault::SubKey;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The holder's routes: `{FORWARD_PREFIX}{agent id}` followed by `/channel` and the channel's
/// path, `/logs?after=&limit=` or `/stats`; what is signed is that last part.
pub const FORWARD_PREFIX: &str = "/internal/v1/hosted/";
pub const HEADER_TIME: &str = "x-hive-forward-time";
pub const HEADER_NONCE: &str = "x-hive-forward-nonce";
pub const HEADER_SIGNATURE: &str = "x-hive-forward-signature";
/// How far the sender's clock may be from the holder's.
pub const MAX_SKEW: Duration = Duration::from_secs(30);
/// The request headers that cross (the A2A client's own); nothing else is relayed.
pub const RELAYED_HEADERS: [&str; 4] = ["content-type", "accept", "a2a-version", "a2a-extensions"];
/// How long connecting to the holder may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a signature covers: the time, the nonce, the method, the agent, the channel path, the
/// relayed headers in order and the body's digest, one per line.
pub fn signed_text(
    time: i64,
    nonce: &str,
    method: &str,
    agent: Uuid,
    path: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> String {
    let mut text = format!("hive-forward-v1\n{time}\n{nonce}\n{method}\n{agent}\n{path}\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}:{value}\n"));
    }
    text.push_str(&hive_crypto::sha256_hex(body));
    text
}

/// The headers of `request` that are relayed, lower-cased, in [`RELAYED_HEADERS`]' order.
pub fn relayed_headers<N: AsRef<str>>(headers: &[(N, String)]) -> Vec<(&'static str, String)> {
    RELAYED_HEADERS
        .iter()
        .filter_map(|name| {
            headers
                .iter()
                .find(|(given, _)| given.as_ref().eq_ignore_ascii_case(name))
                .map(|(_, value)| (*name, value.clone()))
        })
        .collect()
}

/// The methods the A2A client uses, as the channel's request takes them.
pub fn known_method(method: &str) -> Option<&'static str> {
    match method {
        "GET" => Some("GET"),
        "POST" => Some("POST"),
        _ => None,
    }
}

/// The channel path of a request the A2A client addressed to [`CHANNEL_URL`].
fn channel_path(url: &str) -> String {
    let rest = url
        .strip_prefix(CHANNEL_URL.trim_end_matches('/'))
        .unwrap_or(url);
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

/// The A2A client's way to a hosted agent on another replica.
pub struct ForwardTransport {
    pub(crate) client: reqwest::Client,
    /// The holder's `HIVE_NODE_URL`, without a trailing slash.
    pub(crate) holder: String,
    pub(crate) agent: Uuid,
    pub(crate) key: Arc<SubKey>,
    pub(crate) clock: hive_proto::SharedClock,
    pub(crate) timeout: Option<Duration>,
}

impl ForwardTransport {
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends a signed request for `path` (under the holder's route for the agent: `/channel…`,
    /// `/logs…`, `/stats`).
    async fn signed(
        &self,
        method: &'static str,
        path: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, TransportError> {
        // The HTTP client sends an `Accept` of its own when none is given: named, so signed.
        let mut given = headers.to_vec();
        if !given
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("accept"))
        {
            given.push(("accept", "*/*".to_owned()));
        }
        let headers = relayed_headers(&given);
        let time = self.clock.now().unix_timestamp();
        let nonce = hive_crypto::random_token_hex().map_err(|_| failed("no randomness"))?;
        let signature = self.key.hmac_sha256_hex(
            signed_text(time, &nonce, method, self.agent, path, &headers, &body).as_bytes(),
        );
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| failed("a bad method"))?;
        let url = format!("{}{FORWARD_PREFIX}{}{path}", self.holder, self.agent);
        let mut outgoing = self
            .client
            .request(method, url)
            .header(HEADER_TIME, time.to_string())
            .header(HEADER_NONCE, &nonce)
            .header(HEADER_SIGNATURE, signature)
            .body(body);
        for (name, value) in &headers {
            outgoing = outgoing.header(*name, value.as_str());
        }
        outgoing
            .send()
            .await
            .map_err(|_| failed("the replica running the agent cannot be reached"))
    }

    /// A signed `GET` of `path` answered with JSON by the holder (its logs, its stats).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, TransportError> {
        let sent = self.signed("GET", path, &[], Vec::new());
        let response = tokio::time::timeout(READ_TIMEOUT, sent)
            .await
            .map_err(|_| failed("the replica running the agent did not answer in time"))??;
        if !response.status().is_success() {
            return Err(failed("the replica running the agent refused"));
        }
        let body = tokio::time::timeout(READ_TIMEOUT, response.bytes())
            .await
            .map_err(|_| failed("the replica running the agent did not answer in time"))?
            .map_err(|_| failed("the holder's answer broke off"))?;
        serde_json::from_slice(&body).map_err(|_| failed("the holder's answer does not read"))
    }
}

/// How long reading a holder's logs or stats may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for forwarded calls (no redirects: the holder answers itself).
pub(crate) fn forwarding_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// The holder's answer as it arrives.
pub struct ForwardBody {
    response: reqwest::Response,
    deadline: Option<tokio::time::Instant>,
}

fn failed(what: &str) -> TransportError {
    TransportError(format!("forwarding: {what}"))
}

fn timed_out() -> TransportError {
    failed("the agent's call timeout passed")
}

impl Body for ForwardBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let chunk = async {
            self.response
                .chunk()
                .await
                .map(|bytes| bytes.map(|bytes| bytes.to_vec()))
                .map_err(|_| failed("the holder's answer broke off"))
        };
        by_deadline(self.deadline, chunk, timed_out).await
    }
}

impl Transport for ForwardTransport {
    type Body = ForwardBody;

    async fn send(
        &self,
        request: HttpRequest,
    ) -> Result<HttpResponse<ForwardBody>, TransportError> {
        let channel = channel_path(&request.url);
        // The channel's root is the route's own path (a wildcard matches no empty rest).
        let path = if channel == "/" {
            "/channel".to_owned()
        } else {
            format!("/channel{channel}")
        };
        let deadline = self
            .timeout
            .map(|timeout| tokio::time::Instant::now() + timeout);
        let sent = self.signed(request.method, &path, &request.headers, request.body);
        let response = by_deadline(deadline, sent, timed_out).await?;
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(HttpResponse {
            status: response.status().as_u16(),
            content_type,
            body: ForwardBody { response, deadline },
        })
    }
}

/// Why the holder refused a forwarded call (said to the sender as a status, nothing more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardRefusal {
    #[error("the forwarded call is not signed by a replica of this deployment")]
    BadSignature,
    #[error("the forwarded call is too old or from the future")]
    Stale,
    #[error("the forwarded call was seen before")]
    Replayed,
    #[error("the agent does not run on this replica")]
    NotHere,
    #[error("the agent could not be reached on this replica")]
    Unreachable,
    #[error("the replay cache cannot be reached")]
    Unavailable,
}

/// A forwarded call as the holder received it.
pub struct Forwarded {
    pub agent: Uuid,
    pub method: String,
    /// The path after the agent's route (`/channel…`, `/logs…`, `/stats`), with its query.
    pub path: String,
    pub time: Option<i64>,
    pub nonce: String,
    pub signature: String,
    /// Every request header, as received (only [`RELAYED_HEADERS`] are kept).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The relay's answer: the agent's, as it arrives.
pub type Relayed = HttpResponse<ChannelBody>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_signed_names_every_part_and_only_relayed_headers_cross() {
        let agent = Uuid::nil();
        let headers = relayed_headers(&[
            ("Content-Type", "application/json".to_owned()),
            ("Authorization", "Bearer x".to_owned()),
            ("A2A-Version", "1.0".to_owned()),
        ]);
        assert_eq!(
            headers,
            [
                ("content-type", "application/json".to_owned()),
                ("a2a-version", "1.0".to_owned())
            ]
        );
        let base = signed_text(1, "n", "POST", agent, "/", &headers, b"{}");
        for changed in [
            signed_text(2, "n", "POST", agent, "/", &headers, b"{}"),
            signed_text(1, "m", "POST", agent, "/", &headers, b"{}"),
            signed_text(1, "n", "GET", agent, "/", &headers, b"{}"),
            signed_text(1, "n", "POST", Uuid::max(), "/", &headers, b"{}"),
            signed_text(1, "n", "POST", agent, "/x", &headers, b"{}"),
            signed_text(1, "n", "POST", agent, "/", &headers[..1], b"{}"),
            signed_text(1, "n", "POST", agent, "/", &headers, b"{ }"),
        ] {
            assert_ne!(base, changed);
        }
        assert_eq!(channel_path("http://agent/"), "/");
        assert_eq!(
            channel_path("http://agent/.well-known/agent-card.json"),
            "/.well-known/agent-card.json"
        );
    }
}
