//! An A2A client over any HTTP stack.
//!
//! The client does not carry an HTTP implementation: it speaks through a [`Transport`], so that
//! the caller decides how requests leave the process (Hive plugs in its SSRF-guarded egress
//! client; a test plugs in an in-memory server). The transport is told the URL, the headers
//! and the body, and gives back the status, the content type and the body in chunks; the
//! client enforces the size and depth limits while reading, checks the id echo, and converts
//! 0.3 answers to the 1.0 model.

use crate::error::{RpcError, describe};
use crate::jsonrpc::{self, Call, Id, Limits, Method, Outcome, Version};
use crate::sse::{self, Decoder};
use crate::{v1, v03};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// The content type of JSON-RPC requests and responses.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The header that selects the protocol version.
pub const VERSION_HEADER: &str = "A2A-Version";

/// An HTTP request for the transport to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `POST` for calls, `GET` for agent cards.
    pub method: &'static str,
    pub url: String,
    /// The headers the protocol needs; the transport adds its own (e.g. authorization).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The transport's answer: status and content type, and the body to read.
#[derive(Debug)]
pub struct HttpResponse<B> {
    pub status: u16,
    pub content_type: String,
    pub body: B,
}

/// A failure of the transport itself (connection, TLS, refused by policy…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

/// A response body, read chunk by chunk.
pub trait Body: Send {
    /// The next chunk, or `None` at the end.
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;
}

/// How the client's requests reach the agent.
pub trait Transport: Send + Sync {
    type Body: Body;

    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse<Self::Body>, TransportError>> + Send;
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An HTTP status other than 200 without a JSON-RPC error in the body.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The agent answered with a JSON-RPC error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The answer is not valid A2A (too large, too deep, wrong id, wrong shape…).
    #[error("invalid agent response: {0}")]
    InvalidResponse(String),
}

/// A client for one agent's JSON-RPC endpoint.
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
    url: String,
    version: Version,
    limits: Limits,
    next_id: AtomicU64,
}

impl<T: Transport> Client<T> {
    /// A client of the JSON-RPC endpoint `url` speaking `version`, with default limits.
    pub fn new(transport: T, url: impl Into<String>, version: Version) -> Self {
        Self {
            transport,
            url: url.into(),
            version,
            limits: Limits::default(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Limits on every response body and stream event.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The transport the client sends through.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn request(&self, call: &Call) -> Result<(Id, HttpRequest), ClientError> {
        let id = Id::from(
            i64::try_from(self.next_id.fetch_add(1, Ordering::Relaxed)).unwrap_or(i64::MAX),
        );
        let body = jsonrpc::encode_request(&id, call, self.version)?;
        let accept = if call.method().is_streaming() {
            sse::CONTENT_TYPE
        } else {
            JSON_CONTENT_TYPE
        };
        let request = HttpRequest {
            method: "POST",
            url: self.url.clone(),
            headers: vec![
                ("Content-Type", JSON_CONTENT_TYPE.to_owned()),
                ("Accept", accept.to_owned()),
                (VERSION_HEADER, self.version.header_value().to_owned()),
            ],
            body,
        };
        Ok((id, request))
    }

    /// One call with one response (not the streaming methods: see [`Client::stream`]).
    pub async fn call(&self, call: &Call) -> Result<Outcome, ClientError> {
        let method = call.method();
        if method.is_streaming() {
            return Err(ClientError::InvalidResponse(
                "streaming methods are called with Client::stream".to_owned(),
            ));
        }
        let (id, request) = self.request(call)?;
        let mut response = self.transport.send(request).await?;
        let body = read_limited(&mut response.body, self.limits.max_body_bytes).await?;
        self.single_response(method, &id, response.status, &body)
    }

    fn single_response(
        &self,
        method: Method,
        id: &Id,
        status: u16,
        body: &[u8],
    ) -> Result<Outcome, ClientError> {
        let parsed = match jsonrpc::parse_response(body, &self.limits) {
            Ok(parsed) => parsed,
            // A proxy or server error page is no JSON-RPC answer: report the status.
            Err(_) if status != 200 => return Err(ClientError::Status(status)),
            Err(rejection) => return Err(ClientError::InvalidResponse(rejection.error.message)),
        };
        // An error about an unreadable request may come back with a null id.
        let error_without_id = parsed.result.is_err() && parsed.id == Id::Null;
        if parsed.id != *id && !error_without_id {
            return Err(ClientError::InvalidResponse(
                "the response id is not the request's".to_owned(),
            ));
        }
        let result = parsed.result?;
        if status != 200 {
            return Err(ClientError::Status(status));
        }
        Ok(jsonrpc::decode_result(method, self.version, result)?)
    }

    /// A streaming call (`SendStreamingMessage`, `SubscribeToTask`): the events in order.
    /// An error found before the stream starts comes back as an error here.
    pub async fn stream(&self, call: &Call) -> Result<EventStream<T::Body>, ClientError> {
        let method = call.method();
        if !method.is_streaming() {
            return Err(ClientError::InvalidResponse(
                "only streaming methods are called with Client::stream".to_owned(),
            ));
        }
        let (id, request) = self.request(call)?;
        let mut response = self.transport.send(request).await?;
        let content_type = response.content_type.to_ascii_lowercase();
        if !content_type.starts_with(sse::CONTENT_TYPE) {
            let body = read_limited(&mut response.body, self.limits.max_body_bytes).await?;
            // Most likely an error; a single event answered as JSON is accepted too.
            let outcome = self.single_response(method, &id, response.status, &body)?;
            return Ok(EventStream::finished(response.body, outcome, self.limits));
        }
        if response.status != 200 {
            return Err(ClientError::Status(response.status));
        }
        Ok(EventStream {
            body: response.body,
            decoder: Decoder::new(self.limits.max_body_bytes),
            pending: VecDeque::new(),
            id,
            method,
            version: self.version,
            limits: self.limits,
            done: false,
        })
    }

    /// `SendMessage`.
    pub async fn send_message(
        &self,
        request: v1::SendMessageRequest,
    ) -> Result<v1::SendMessageResponse, ClientError> {
        match self.call(&Call::SendMessage(request)).await? {
            Outcome::SendMessage(response) => Ok(response),
            _ => Err(unexpected()),
        }
    }

    /// `GetTask`.
    pub async fn get_task(&self, request: v1::GetTaskRequest) -> Result<v1::Task, ClientError> {
        match self.call(&Call::GetTask(request)).await? {
            Outcome::Task(task) => Ok(task),
            _ => Err(unexpected()),
        }
    }

    /// `CancelTask`.
    pub async fn cancel_task(
        &self,
        request: v1::CancelTaskRequest,
    ) -> Result<v1::Task, ClientError> {
        match self.call(&Call::CancelTask(request)).await? {
            Outcome::Task(task) => Ok(task),
            _ => Err(unexpected()),
        }
    }

    /// Fetches and parses an agent card (either version's shape) as 1.0.
    pub async fn fetch_agent_card(&self, url: &str) -> Result<v1::AgentCard, ClientError> {
        fetch_agent_card(&self.transport, url, &self.limits).await
    }
}

fn unexpected() -> ClientError {
    ClientError::InvalidResponse("unexpected result type".to_owned())
}

/// Reads a whole body, refusing more than `max` bytes (checked as chunks arrive).
async fn read_limited<B: Body>(body: &mut B, max: usize) -> Result<Vec<u8>, ClientError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        if bytes.len() + chunk.len() > max {
            return Err(ClientError::InvalidResponse(format!(
                "response body larger than {max} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Fetches an agent card with `GET` and parses it as 1.0 or 0.3 (converted to 1.0): a card
/// with `supportedInterfaces` is 1.0, any other is 0.3.
pub async fn fetch_agent_card<T: Transport>(
    transport: &T,
    url: &str,
    limits: &Limits,
) -> Result<v1::AgentCard, ClientError> {
    let request = HttpRequest {
        method: "GET",
        url: url.to_owned(),
        headers: vec![("Accept", JSON_CONTENT_TYPE.to_owned())],
        body: Vec::new(),
    };
    let mut response = transport.send(request).await?;
    if response.status != 200 {
        return Err(ClientError::Status(response.status));
    }
    let body = read_limited(&mut response.body, limits.max_body_bytes).await?;
    parse_agent_card(&body, limits)
}

/// Parses an agent card of either version as 1.0, within `limits`.
pub fn parse_agent_card(body: &[u8], limits: &Limits) -> Result<v1::AgentCard, ClientError> {
    let invalid = |message: String| ClientError::InvalidResponse(message);
    if body.len() > limits.max_body_bytes || jsonrpc::check_depth(body, limits.max_depth).is_none()
    {
        return Err(invalid("agent card over the limits".to_owned()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| invalid(describe(&error)))?;
    if value.get("supportedInterfaces").is_some() {
        serde_json::from_value(value).map_err(|error| invalid(describe(&error)))
    } else {
        serde_json::from_value::<v03::AgentCard>(value)
            .map(Into::into)
            .map_err(|error| invalid(describe(&error)))
    }
}

/// The events of one stream, in the 1.0 model.
#[derive(Debug)]
pub struct EventStream<B> {
    body: B,
    decoder: Decoder,
    pending: VecDeque<Result<v1::StreamResponse, ClientError>>,
    id: Id,
    method: Method,
    version: Version,
    limits: Limits,
    done: bool,
}

impl<B: Body> EventStream<B> {
    fn finished(body: B, outcome: Outcome, limits: Limits) -> Self {
        let event = match outcome {
            Outcome::Event(event) => Ok(event),
            _ => Err(unexpected()),
        };
        Self {
            body,
            decoder: Decoder::new(limits.max_body_bytes),
            pending: VecDeque::from([event]),
            id: Id::Null,
            method: Method::SendStreamingMessage,
            version: Version::V1_0,
            limits,
            done: true,
        }
    }

    /// The next event; `None` when the stream has ended. A JSON-RPC error event is returned as
    /// an error and ends the stream.
    pub async fn next(&mut self) -> Option<Result<v1::StreamResponse, ClientError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if event.is_err() {
                    self.done = true;
                    self.pending.clear();
                }
                return Some(event);
            }
            if self.done {
                return None;
            }
            match self.body.next_chunk().await {
                Err(error) => {
                    self.done = true;
                    return Some(Err(error.into()));
                }
                Ok(None) => {
                    self.done = true;
                    if self.decoder.finish() {
                        return Some(Err(ClientError::InvalidResponse(
                            "the stream ended inside an event".to_owned(),
                        )));
                    }
                    return None;
                }
                Ok(Some(chunk)) => match self.decoder.feed(&chunk) {
                    Err(error) => {
                        self.done = true;
                        return Some(Err(ClientError::InvalidResponse(error.to_string())));
                    }
                    Ok(events) => {
                        for event in events {
                            let decoded = self.decode(&event);
                            self.pending.push_back(decoded);
                        }
                    }
                },
            }
        }
    }

    fn decode(&self, event: &sse::Event) -> Result<v1::StreamResponse, ClientError> {
        let (id, outcome) = event
            .decode(self.method, self.version, &self.limits)
            .map_err(|rejection| ClientError::InvalidResponse(rejection.error.message))?;
        if id != self.id {
            return Err(ClientError::InvalidResponse(
                "an event's id is not the request's".to_owned(),
            ));
        }
        match outcome? {
            Outcome::Event(event) => Ok(event),
            _ => Err(unexpected()),
        }
    }
}
