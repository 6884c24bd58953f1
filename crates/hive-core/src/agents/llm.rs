//! The `llm` agent runtime's client: chat completions on an OpenAI-compatible endpoint (Ollama,
//! vLLM, OpenAI, Groq, Mistral…), sent only through Hive's egress guard, with the API key taken
//! from the owner's vault, and the token usage of every call recorded for the daily budget.
//!
//! What is sent: `POST {baseUrl}/chat/completions` with `model`, `messages` (the agent's system
//! prompt first when it has one), `temperature` and `max_tokens` when set, and `stream`; a
//! streaming call also asks for `stream_options: {include_usage: true}` so that the last chunk
//! carries the usage. What is read: the body chunk by chunk under a size cap, SSE `data:` events
//! until `[DONE]`, each line and event under its own cap.
//!
//! Errors never carry the API key, the prompt or the model's text: an [`LlmError`] names what
//! went wrong and, for an unreachable endpoint, its origin.

use crate::agents::LlmSettings;
use crate::kernel::egress::{Egress, Purpose};
use crate::kernel::trace_context;
use crate::vault::secrets::SecretService;
use hive_egress::{CallLimits, EgressError, EgressRequest, EgressResponse, RefusalReason};
use hive_proto::SharedClock;
use hive_store::{Store, StoreError, UsageRow};
use http::header::{self, HeaderValue};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use time::{OffsetDateTime, Time, UtcOffset};
use tracing::Instrument;
use uuid::Uuid;

/// The most response body read from one call, streamed or not.
pub const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// The longest SSE line, and the most data one SSE event may carry.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The longest `finish_reason` kept (a provider's word; longer ones are cut).
const MAX_FINISH_REASON_CHARS: usize = 64;
/// The audit feature name of the egress requests made here.
pub const FEATURE: &str = "llm";
/// The longest detail an [`LlmError`] keeps from a lower layer (a transport's or the vault's
/// text); longer ones are cut at a character boundary, with `…`.
pub const MAX_DETAIL_CHARS: usize = 240;

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(ChatRole::User, content)
    }
}

/// The tokens a call used, as the endpoint counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// `usage` as endpoints send it: a count may be missing or `null` (read as 0).
#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        Self {
            prompt_tokens: wire.prompt_tokens.unwrap_or(0),
            completion_tokens: wire.completion_tokens.unwrap_or(0),
        }
    }
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// One piece of a streamed completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatDelta {
    /// More of the answer's text, in order.
    Text(String),
    /// The end: the usage (when the endpoint reported it) and why the model stopped.
    Done {
        usage: Option<Usage>,
        finish_reason: Option<String>,
    },
}

/// What went wrong with a call. The text never holds the API key, the prompt or the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The egress guard refused the endpoint (private address not allowlisted, bad port…);
    /// nothing was sent. The refusal is audited by the guard.
    #[error("the egress guard refused the endpoint ({})", .0.as_str())]
    Refused(RefusalReason),
    /// The endpoint could not be reached (DNS, connect, TLS, a broken exchange).
    #[error("the endpoint is unreachable: {0}")]
    Unreachable(String),
    /// The call's total time ran out.
    #[error("the endpoint did not finish within the agent's timeout")]
    Timeout,
    /// The endpoint refused the agent's API key (HTTP 401 or 403).
    #[error("the endpoint refused the key (HTTP {status})")]
    KeyRefused { status: u16 },
    /// The endpoint answered with another status than 2xx.
    #[error("the endpoint answered HTTP {status}")]
    Upstream { status: u16 },
    /// The answer is not a chat completion (malformed JSON, oversized, cut short…).
    #[error("the endpoint's answer is not a usable chat completion: {0}")]
    InvalidResponse(String),
    /// The API key could not be taken from the vault.
    #[error("the API key cannot be used: {0}")]
    Secret(String),
}

impl LlmError {
    /// A stable name for metrics and error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::Unreachable(_) => "unreachable",
            Self::Timeout => "timeout",
            Self::KeyRefused { .. } => "key_refused",
            Self::Upstream { .. } => "upstream",
            Self::InvalidResponse(_) => "invalid_response",
            Self::Secret(_) => "secret",
        }
    }
}

fn from_egress(error: EgressError) -> LlmError {
    match error {
        EgressError::Refused(refusal) => match refusal.reason {
            RefusalReason::Timeout => LlmError::Timeout,
            RefusalReason::TooLarge => LlmError::InvalidResponse(format!(
                "the answer is over the cap of {MAX_RESPONSE_BYTES} bytes"
            )),
            reason => LlmError::Refused(reason),
        },
        // The guard's texts name the origin and the cause, never the path, query or body;
        // `detail` makes sure of it.
        other => LlmError::Unreachable(detail(&other.to_string())),
    }
}

/// `text` fit to be shown: any URL cut to its origin (a path or query may hold a key, and
/// userinfo a password), at most [`MAX_DETAIL_CHARS`] characters.
pub fn detail(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DETAIL_CHARS + 4));
    for (n, word) in text.split(' ').enumerate() {
        if n > 0 {
            out.push(' ');
        }
        match word.find("://") {
            Some(at) => {
                let (scheme, rest) = word.split_at(at);
                let rest = &rest[3..];
                let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                let host = authority.rsplit('@').next().unwrap_or_default();
                out.push_str(scheme);
                out.push_str("://");
                out.push_str(host);
            }
            None => out.push_str(word),
        }
    }
    cap_chars(out, MAX_DETAIL_CHARS)
}

/// `text` cut to at most `max` characters (and `…`) at a character boundary.
pub fn cap_chars(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A serde error without the input it choked on: its category and position only.
fn describe_json(what: &str, error: &serde_json::Error) -> LlmError {
    let category = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "cut-off JSON",
    };
    LlmError::InvalidResponse(format!(
        "{what} is {category} (line {}, column {})",
        error.line(),
        error.column()
    ))
}

/// The request body.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<&'a ChatMessage>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// One streamed chunk; everything not read here is ignored.
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    content: Option<String>,
}

/// A whole (non-streamed) completion.
#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    message: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

fn short_reason(reason: String) -> String {
    if reason.chars().count() <= MAX_FINISH_REASON_CHARS {
        reason
    } else {
        reason.chars().take(MAX_FINISH_REASON_CHARS).collect()
    }
}

/// The chat-completions client of `llm` agents.
#[derive(Debug, Clone)]
pub struct LlmClient {
    egress: Arc<Egress>,
    secrets: Arc<SecretService>,
}

impl LlmClient {
    pub fn new(egress: Arc<Egress>, secrets: Arc<SecretService>) -> Self {
        Self { egress, secrets }
    }

    /// Streams the completion (`stream: true`, `stream_options: {include_usage: true}`), SSE
    /// `data:` lines until `[DONE]`. `owner_id` is the agent's owner, whose secret holds the
    /// key; `timeout` covers the whole call, the last byte of the stream included.
    pub async fn stream(
        &self,
        owner_id: Uuid,
        settings: &LlmSettings,
        messages: &[ChatMessage],
        timeout: Duration,
        purpose: &Purpose,
    ) -> Result<ChatStream, LlmError> {
        let response = self
            .send(owner_id, settings, messages, true, timeout, purpose)
            .await?;
        let whole = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        Ok(ChatStream {
            response: Some(response),
            buffer: Vec::new(),
            event: Vec::new(),
            in_event: false,
            pending: VecDeque::new(),
            usage: None,
            finish_reason: None,
            finished: false,
            whole,
        })
    }

    /// Non-streaming: the whole text and the usage.
    pub async fn complete(
        &self,
        owner_id: Uuid,
        settings: &LlmSettings,
        messages: &[ChatMessage],
        timeout: Duration,
        purpose: &Purpose,
    ) -> Result<(String, Option<Usage>), LlmError> {
        let mut response = self
            .send(owner_id, settings, messages, false, timeout, purpose)
            .await?;
        let body = read_body(&mut response).await?;
        let (text, usage, _finish_reason) = parse_completion(&body)?;
        Ok((text, usage))
    }

    async fn send(
        &self,
        owner_id: Uuid,
        settings: &LlmSettings,
        messages: &[ChatMessage],
        stream: bool,
        timeout: Duration,
        purpose: &Purpose,
    ) -> Result<EgressResponse, LlmError> {
        let system = ChatMessage::new(ChatRole::System, settings.system_prompt.clone());
        let mut all: Vec<&ChatMessage> = Vec::with_capacity(messages.len() + 1);
        if !settings.system_prompt.trim().is_empty() {
            all.push(&system);
        }
        all.extend(messages);
        let body = WireRequest {
            model: &settings.model,
            messages: all,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: settings.temperature,
            max_tokens: settings.max_tokens,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|_| LlmError::InvalidResponse("the request could not be encoded".into()))?;
        let url = format!(
            "{}/chat/completions",
            settings.base_url.trim_end_matches('/')
        );
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut request = EgressRequest::post(url)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(header::ACCEPT, HeaderValue::from_static(accept))
            .body(body);
        if let Some(secret_id) = settings.api_key_secret_id {
            request = request.header(
                header::AUTHORIZATION,
                self.bearer(owner_id, secret_id).await?,
            );
        }
        let limits = CallLimits::new(timeout, MAX_RESPONSE_BYTES);
        // The model provider is not handed a trace context: it is not an agent of the trace.
        let span = trace_context::agent_call_span("llm", "POST", &settings.base_url);
        let sent = self
            .egress
            .send(request, &limits, purpose)
            .instrument(span.clone())
            .await;
        trace_context::record_answer(
            &span,
            sent.as_ref()
                .ok()
                .map(|response| response.status().as_u16()),
        );
        let response = sent.map_err(from_egress)?;
        let status = response.status();
        if !status.is_success() {
            // The body is not read: a provider's error text may quote the request.
            let status = status.as_u16();
            return Err(match status {
                401 | 403 => LlmError::KeyRefused { status },
                _ => LlmError::Upstream { status },
            });
        }
        Ok(response)
    }

    /// `Bearer <key>` from the owner's secret, marked sensitive (never logged by the HTTP stack).
    async fn bearer(&self, owner_id: Uuid, secret_id: Uuid) -> Result<HeaderValue, LlmError> {
        self.secrets
            .bearer_header(owner_id, secret_id, FEATURE)
            .await
            .map_err(|why| LlmError::Secret(detail(&format!("the API key: {why}"))))
    }
}

async fn read_body(response: &mut EgressResponse) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(from_egress)? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first choice's text, the usage and the finish reason of a whole completion.
fn parse_completion(body: &[u8]) -> Result<(String, Option<Usage>, Option<String>), LlmError> {
    let completion: WireCompletion =
        serde_json::from_slice(body).map_err(|e| describe_json("the completion", &e))?;
    let choice = completion
        .choices
        .into_iter()
        .find(|c| c.index == 0)
        .ok_or_else(|| LlmError::InvalidResponse("the completion has no choice".into()))?;
    let text = choice.message.and_then(|m| m.content).unwrap_or_default();
    Ok((
        text,
        completion.usage.map(Usage::from),
        choice.finish_reason.map(short_reason),
    ))
}

/// A completion as it streams in. Dropping it closes the connection.
#[derive(Debug)]
pub struct ChatStream {
    response: Option<EgressResponse>,
    /// Bytes read and not yet split into lines.
    buffer: Vec<u8>,
    /// The data lines of the event being read, joined by `\n`.
    event: Vec<u8>,
    in_event: bool,
    pending: VecDeque<Result<ChatDelta, LlmError>>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    /// Nothing more comes after `pending`.
    finished: bool,
    /// The endpoint answered a whole JSON completion instead of a stream.
    whole: bool,
}

impl ChatStream {
    /// The next piece: text in order, then one [`ChatDelta::Done`], then `None`. An error ends
    /// the stream (`None` after it).
    pub async fn next(&mut self) -> Option<Result<ChatDelta, LlmError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.finished {
                self.response = None;
                return None;
            }
            if let Err(error) = self.advance().await {
                self.fail(error);
            }
        }
    }

    fn fail(&mut self, error: LlmError) {
        self.pending.push_back(Err(error));
        self.finished = true;
        self.response = None;
    }

    fn finish(&mut self) {
        self.pending.push_back(Ok(ChatDelta::Done {
            usage: self.usage.take(),
            finish_reason: self.finish_reason.take(),
        }));
        self.finished = true;
        self.response = None;
    }

    /// Reads one more chunk of the body and turns every complete line in it into deltas.
    async fn advance(&mut self) -> Result<(), LlmError> {
        let Some(response) = self.response.as_mut() else {
            self.finished = true;
            return Ok(());
        };
        if self.whole {
            let body = read_body(response).await?;
            let (text, usage, finish_reason) = parse_completion(&body)?;
            if !text.is_empty() {
                self.pending.push_back(Ok(ChatDelta::Text(text)));
            }
            self.usage = usage;
            self.finish_reason = finish_reason;
            self.finish();
            return Ok(());
        }
        match response.chunk().await.map_err(from_egress)? {
            Some(chunk) => {
                self.buffer.extend_from_slice(&chunk);
                self.split_lines()?;
                if self.buffer.len() > MAX_EVENT_BYTES {
                    return Err(LlmError::InvalidResponse(format!(
                        "an event line is over {MAX_EVENT_BYTES} bytes"
                    )));
                }
            }
            None => {
                // A last line without its newline, then the event it ends.
                if !self.buffer.is_empty() {
                    let line = std::mem::take(&mut self.buffer);
                    self.line(&line)?;
                }
                if self.in_event {
                    self.dispatch()?;
                }
                if !self.finished {
                    if self.finish_reason.is_some() {
                        // Some servers end without `[DONE]`; a finished choice is the end.
                        self.finish();
                    } else {
                        return Err(LlmError::InvalidResponse(
                            "the stream ended before the completion finished".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn split_lines(&mut self) -> Result<(), LlmError> {
        let mut start = 0;
        while !self.finished {
            let Some(end) = self.buffer[start..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let line = self.buffer[start..start + end].to_vec();
            start += end + 1;
            self.line(&line)?;
        }
        self.buffer.drain(..start);
        if self.finished {
            self.buffer.clear();
        }
        Ok(())
    }

    /// One SSE line (RFC-style: `field: value`, `:` comments, an empty line ends an event).
    fn line(&mut self, line: &[u8]) -> Result<(), LlmError> {
        if line.len() > MAX_EVENT_BYTES {
            return Err(LlmError::InvalidResponse(format!(
                "an event line is over {MAX_EVENT_BYTES} bytes"
            )));
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return if self.in_event {
                self.dispatch()
            } else {
                Ok(())
            };
        }
        if line.starts_with(b":") {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field != b"data" {
            // `event`, `id`, `retry` and unknown fields carry nothing a completion needs.
            return Ok(());
        }
        if self.in_event {
            self.event.push(b'\n');
        }
        self.event.extend_from_slice(value);
        self.in_event = true;
        if self.event.len() > MAX_EVENT_BYTES {
            return Err(LlmError::InvalidResponse(format!(
                "an event is over {MAX_EVENT_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// The event read so far: `[DONE]`, or a chunk of the completion.
    fn dispatch(&mut self) -> Result<(), LlmError> {
        let data = std::mem::take(&mut self.event);
        self.in_event = false;
        if data.trim_ascii() == b"[DONE]" {
            self.finish();
            return Ok(());
        }
        let chunk: WireChunk =
            serde_json::from_slice(&data).map_err(|e| describe_json("a streamed chunk", &e))?;
        if chunk.error.is_some() {
            // Its message is the provider's and may quote the request: not repeated.
            return Err(LlmError::InvalidResponse(
                "the endpoint reported an error in the stream".into(),
            ));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.and_then(|d| d.content)
                && !text.is_empty()
            {
                self.pending.push_back(Ok(ChatDelta::Text(text)));
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(short_reason(reason));
            }
        }
        Ok(())
    }
}

/// Records the tokens of each call and answers an agent's use since the UTC day began (for the
/// `tokensPerDay` limit, which the gateway enforces).
#[derive(Debug, Clone)]
pub struct UsageMeter {
    store: Arc<dyn Store>,
    clock: SharedClock,
}

impl UsageMeter {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    /// Stores one call's usage, now, for `principal` (who the call was made for, as the audit
    /// log names them: `user:<uuid>`…).
    pub async fn record(
        &self,
        agent_id: Uuid,
        principal: &str,
        model: &str,
        usage: &Usage,
    ) -> Result<UsageRow, StoreError> {
        let row = UsageRow::llm(
            Uuid::now_v7(),
            agent_id,
            principal,
            model
                .chars()
                .take(hive_store::USAGE_MODEL_MAX_CHARS)
                .collect::<String>(),
            usage.prompt_tokens,
            usage.completion_tokens,
            hive_store::truncate_to_micros(self.clock.now()),
        );
        self.store.usage().record(&row).await?;
        Ok(row)
    }

    /// Tokens `agent_id` used since 00:00 UTC today.
    pub async fn tokens_today(&self, agent_id: Uuid) -> Result<u64, StoreError> {
        self.store
            .usage()
            .tokens_since(agent_id, day_start(self.clock.now()))
            .await
    }
}

/// The most prompt tokens a conversation can be: a token is at least one byte of its text in
/// the tokenizers in use (byte-level BPE and its relatives), plus each message's framing.
pub fn prompt_token_bound<'a>(messages: impl IntoIterator<Item = &'a str>) -> u64 {
    const PER_MESSAGE: u64 = 8;
    const PER_REQUEST: u64 = 8;
    messages.into_iter().fold(PER_REQUEST, |total, text| {
        total
            .saturating_add(u64::try_from(text.len()).unwrap_or(u64::MAX))
            .saturating_add(PER_MESSAGE)
    })
}

/// 00:00 UTC of `now`'s day.
pub fn day_start(now: OffsetDateTime) -> OffsetDateTime {
    now.to_offset(UtcOffset::UTC).replace_time(Time::MIDNIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn stream_of(body: &str) -> Vec<Result<ChatDelta, LlmError>> {
        let mut stream = ChatStream {
            response: None,
            buffer: body.as_bytes().to_vec(),
            event: Vec::new(),
            in_event: false,
            pending: VecDeque::new(),
            usage: None,
            finish_reason: None,
            finished: false,
            whole: false,
        };
        let mut out = Vec::new();
        if let Err(error) = stream.split_lines() {
            stream.fail(error);
        }
        out.extend(stream.pending.drain(..));
        out
    }

    #[test]
    fn sse_events_become_deltas() {
        let body = concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n",
            "event: message\nid: 3\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
            "data: [DONE]\n\n",
            "data: {\"ignored\": true}\n\n",
        );
        let got: Vec<ChatDelta> = stream_of(body).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            [
                ChatDelta::Text("Hel".into()),
                ChatDelta::Text("lo".into()),
                ChatDelta::Done {
                    usage: Some(Usage {
                        prompt_tokens: 5,
                        completion_tokens: 2
                    }),
                    finish_reason: Some("stop".into()),
                },
            ]
        );
    }

    #[test]
    fn malformed_chunks_are_refused_without_their_content() {
        for bad in [
            "data: {\"choices\": \"secret words\"}\n\n",
            "data: secret words\n\n",
            "data: {\"error\":{\"message\":\"secret words\"}}\n\n",
        ] {
            let got = stream_of(bad);
            let Some(Err(error)) = got.last() else {
                panic!("{bad}: {got:?}");
            };
            assert!(matches!(error, LlmError::InvalidResponse(_)), "{error:?}");
            assert!(!error.to_string().contains("secret"), "{error}");
        }
        let long = format!("data: {}\n\n", "x".repeat(MAX_EVENT_BYTES + 1));
        assert!(matches!(
            stream_of(&long).last(),
            Some(Err(LlmError::InvalidResponse(_)))
        ));
    }

    #[test]
    fn whole_completions_are_read() {
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let (text, usage, reason) = parse_completion(body).unwrap();
        assert_eq!(text, "Hi");
        assert_eq!(usage.map(|u| u.total()), Some(4));
        assert_eq!(reason.as_deref(), Some("length"));
        assert!(parse_completion(br#"{"choices":[]}"#).is_err());
        let nulls = br#"{"choices":[{"message":{"content":null}}],"usage":{"prompt_tokens":null}}"#;
        let (text, usage, _) = parse_completion(nulls).unwrap();
        assert_eq!((text.as_str(), usage), ("", Some(Usage::default())));
        assert!(parse_completion(b"<html>").is_err());
    }

    #[test]
    fn details_keep_no_url_path_query_or_userinfo_and_are_capped() {
        let text = detail(
            "HTTP exchange with https://user:pw@api.example:8443/v1/chat?key=sk-123#x failed: reset",
        );
        assert_eq!(
            text,
            "HTTP exchange with https://api.example:8443 failed: reset"
        );
        let error = from_egress(EgressError::Http {
            origin: "http://h.example".into(),
            detail: "see http://h.example/p?api_key=sk-secret".into(),
        });
        assert!(!error.to_string().contains("sk-secret"), "{error}");
        assert!(matches!(error, LlmError::Unreachable(_)));
        let long = detail(&"ü".repeat(1000));
        assert_eq!(long.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn the_day_starts_at_midnight_utc() {
        assert_eq!(
            day_start(datetime!(2026-03-01 23:59:59.5 -02:00)),
            datetime!(2026-03-02 00:00 UTC)
        );
    }

    #[test]
    fn the_system_prompt_and_options_are_sent_only_when_set() {
        let message = ChatMessage::user("hi");
        let body = WireRequest {
            model: "m",
            messages: vec![&message],
            stream: false,
            stream_options: None,
            temperature: None,
            max_tokens: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false})
        );
    }
}
