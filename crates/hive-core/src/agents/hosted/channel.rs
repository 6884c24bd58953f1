//! The channel Hive calls a hosted agent on: HTTP/1.1 over the Unix socket the agent listens on
//! in its sandbox's channel directory. It is Hive's own door into the sandbox, not a way out, so
//! it does not go through the egress guard; the agent on the other side is treated as hostile
//! like any upstream (the A2A client caps what it reads).

use bytes::Bytes;
use hive_a2a::client::{Body, HttpRequest, HttpResponse, Transport, TransportError};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::UnixStream;

/// How long connecting may take: the agent is on this host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL the channel's requests name (the socket is the destination; this is their Host).
pub const CHANNEL_URL: &str = "http://agent/";

/// The A2A client's way to a hosted agent: one connection a request to its socket.
#[derive(Debug, Clone)]
pub struct ChannelTransport {
    socket: PathBuf,
    /// How long a whole exchange may take, answer read to its end included.
    timeout: Option<Duration>,
}

impl ChannelTransport {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: None,
        }
    }

    /// Each exchange ends, failed, `timeout` after it began (an agent that never answers, or
    /// never ends its stream, holds nothing for longer).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// An answer's body as it arrives from the agent.
pub struct ChannelBody {
    incoming: Incoming,
    deadline: Option<tokio::time::Instant>,
}

fn timed_out() -> TransportError {
    TransportError("channel: the agent's call timeout passed".into())
}

/// `work`, failed with `timed_out` if `deadline` (if any) passes first: a call to a hosted
/// agent, here or on another replica, ends at the agent's call timeout however far it got.
pub(crate) async fn by_deadline<T>(
    deadline: Option<tokio::time::Instant>,
    work: impl Future<Output = Result<T, TransportError>>,
    timed_out: impl FnOnce() -> TransportError,
) -> Result<T, TransportError> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| timed_out())?,
        None => work.await,
    }
}

impl Body for ChannelBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let deadline = self.deadline;
        by_deadline(deadline, self.next_frame(), timed_out).await
    }
}

impl ChannelBody {
    async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            match self.incoming.frame().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(TransportError(format!("channel: {error}"))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data.to_vec()));
                    }
                    // Trailers carry nothing the client reads.
                }
            }
        }
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> TransportError {
    TransportError(format!("channel: {what}: {error}"))
}

impl Transport for ChannelTransport {
    type Body = ChannelBody;

    async fn send(
        &self,
        request: HttpRequest,
    ) -> Result<HttpResponse<ChannelBody>, TransportError> {
        // The URL names the path (and the Host header) only: the socket is the destination.
        let url = url::Url::parse(&request.url).map_err(|error| failed("the URL", error))?;
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target = format!("{target}?{query}");
        }
        let mut outgoing = http::Request::builder()
            .method(request.method)
            .uri(target)
            .header(http::header::HOST, url.host_str().unwrap_or("agent"));
        for (name, value) in request.headers {
            outgoing = outgoing.header(name, value);
        }
        let outgoing = outgoing
            .body(Full::new(Bytes::from(request.body)))
            .map_err(|error| failed("the request", error))?;
        let opened = async {
            let stream = UnixStream::connect(&self.socket)
                .await
                .map_err(|error| failed("connecting", error.kind()))?;
            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|error| failed("handshake", error))
        };
        let (mut sender, connection) = tokio::time::timeout(CONNECT_TIMEOUT, opened)
            .await
            .map_err(|_| failed("connecting", "timed out"))??;
        // The connection is driven for as long as the answer is being read.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let deadline = self
            .timeout
            .map(|timeout| tokio::time::Instant::now() + timeout);
        let sent = async {
            sender
                .send_request(outgoing)
                .await
                .map_err(|error| failed("sending", error))
        };
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
            body: ChannelBody {
                incoming: response.into_body(),
                deadline,
            },
        })
    }
}
