//! An OpenAI-compatible chat-completions endpoint on 127.0.0.1 for tests of `llm` agents:
//! `POST /v1/chat/completions`, streamed (SSE chunks with `choices[0].delta.content`, a chunk
//! with the finish reason, a usage chunk when `stream_options.include_usage` is set, then
//! `data: [DONE]`) or whole. It keeps every request it received (the JSON body and the
//! `Authorization` header) so that tests can check what Hive sent, and can be told to answer an
//! HTTP error or a malformed chunk.
//!
//! The reply is `echo: <the last user message>` unless [`TestLlm::set_reply`] says otherwise.
//! Usage is counted in words: the prompt's tokens are the words of every message sent, the
//! completion's the words of the reply; `max_tokens` cuts the reply to that many words.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the endpoint does wrong, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LlmMisbehaviour {
    /// Answers as it should.
    #[default]
    None,
    /// Answers this HTTP status with an error body that quotes the prompt and the key (which
    /// Hive must never repeat).
    Status(u16),
    /// Streams the first piece of text, then a chunk that is not JSON (and, for a whole
    /// completion, a body that is not JSON).
    MalformedChunk,
    /// Leaves the usage out.
    NoUsage,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    pub body: Value,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Shared {
    reply: Option<String>,
    misbehaviour: LlmMisbehaviour,
    requests: Vec<LlmRequest>,
    /// While set, a streamed reply stops after its second piece until this is notified.
    gate: Option<Arc<tokio::sync::Notify>>,
}

pub struct TestLlm {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl TestLlm {
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            // What Hive's start probe of an `llm` agent asks for.
            .route("/v1/models", axum::routing::get(models))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, shared, task }
    }

    /// `http://127.0.0.1:<port>/v1`: an agent's `baseUrl`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The egress allowlist entry that lets Hive reach this endpoint on loopback.
    pub fn allowlist_entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The text every answer carries from now on (`None`: the echo).
    pub fn set_reply(&self, reply: Option<&str>) {
        self.lock().reply = reply.map(str::to_owned);
    }

    pub fn misbehave(&self, misbehaviour: LlmMisbehaviour) {
        self.lock().misbehaviour = misbehaviour;
    }

    /// From now on a streamed reply sends its first two pieces, then waits for the answer's
    /// [`Notify::notify_one`](tokio::sync::Notify::notify_one) before the rest: a test sees
    /// what a caller makes of a reply under way.
    pub fn hold_streams(&self) -> Arc<tokio::sync::Notify> {
        let gate = Arc::new(tokio::sync::Notify::new());
        self.lock().gate = Some(Arc::clone(&gate));
        gate
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<LlmRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("the test endpoint's state")
    }
}

impl Drop for TestLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The model list: refused as the completions are while the endpoint refuses the key (a
/// provider refuses a bad key everywhere), so the watchdog's probe sees what a call sees.
async fn models(State(shared): State<Arc<Mutex<Shared>>>) -> Response {
    let misbehaviour = shared
        .lock()
        .expect("the test endpoint's state")
        .misbehaviour
        .clone();
    if let LlmMisbehaviour::Status(status @ (401 | 403)) = misbehaviour {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        let error = json!({ "error": { "message": "the key is refused" } });
        return (status, axum::Json(error)).into_response();
    }
    axum::Json(json!({"object": "list", "data": [{"id": "test-model", "object": "model"}]}))
        .into_response()
}

async fn completions(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let (reply, misbehaviour, gate) = {
        let mut shared = shared.lock().expect("the test endpoint's state");
        shared.requests.push(LlmRequest {
            body: body.clone(),
            authorization: authorization.clone(),
        });
        (
            shared.reply.clone(),
            shared.misbehaviour.clone(),
            shared.gate.clone(),
        )
    };
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    if let LlmMisbehaviour::Status(status) = misbehaviour {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let error = json!({ "error": {
            "message": format!("failed on {last_user:?} with {authorization:?}"),
            "type": "server_error",
        }});
        return (status, axum::Json(error)).into_response();
    }
    let mut reply = reply.unwrap_or_else(|| format!("echo: {last_user}"));
    // A word is a token here: `max_tokens` cuts the reply, as a model stops at its limit.
    let cut = body["max_tokens"]
        .as_u64()
        .filter(|max| words(&reply) > *max)
        .map(|max| usize::try_from(max).unwrap_or(usize::MAX));
    if let Some(max) = cut {
        reply = reply
            .split_whitespace()
            .take(max)
            .collect::<Vec<_>>()
            .join(" ");
    }
    let prompt_tokens: u64 = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(words)
        .sum();
    let usage = (misbehaviour != LlmMisbehaviour::NoUsage).then(|| {
        let completion_tokens = words(&reply);
        json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        })
    });
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if body["stream"] == true {
        let include_usage = body["stream_options"]["include_usage"] == true;
        stream(
            &model,
            &reply,
            usage.filter(|_| include_usage),
            misbehaviour,
            gate,
        )
    } else if misbehaviour == LlmMisbehaviour::MalformedChunk {
        (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"choices\": [",
        )
            .into_response()
    } else {
        let mut completion = json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": reply },
                "finish_reason": "stop",
            }],
        });
        if let Some(usage) = usage {
            completion["usage"] = usage;
        }
        axum::Json(completion).into_response()
    }
}

/// The reply in pieces of a word (with the space after it), each event split across two body
/// chunks so that readers must join lines that arrive in parts.
fn stream(
    model: &str,
    reply: &str,
    usage: Option<Value>,
    misbehaviour: LlmMisbehaviour,
    gate: Option<Arc<tokio::sync::Notify>>,
) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let mut events = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    for (i, piece) in reply.split_inclusive(' ').enumerate() {
        events.push(chunk(json!({ "content": piece }), Value::Null));
        if i == 0 && misbehaviour == LlmMisbehaviour::MalformedChunk {
            events.push(Value::String("not json".into()));
        }
    }
    events.push(chunk(json!({}), json!("stop")));
    if let Some(usage) = usage {
        events.push(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [],
            "usage": usage,
        }));
    }
    let mut parts: Vec<Result<Bytes, Infallible>> = Vec::new();
    let mut push_event = |text: String| {
        let event = format!("data: {text}\n\n");
        let middle = event.len() / 2;
        let (a, b) = event.split_at(
            (0..=middle)
                .rev()
                .find(|i| event.is_char_boundary(*i))
                .unwrap_or(0),
        );
        parts.push(Ok(Bytes::from(a.to_owned())));
        parts.push(Ok(Bytes::from(b.to_owned())));
    };
    for event in events {
        match event {
            Value::String(raw) => push_event(raw),
            other => push_event(other.to_string()),
        }
    }
    push_event("[DONE]".to_owned());
    use futures_util::StreamExt;
    // The opening event and two pieces (two body chunks each), then the gate if any.
    let rest = parts.split_off(parts.len().min(6));
    let wait = futures_util::stream::once(async move {
        if let Some(gate) = gate {
            gate.notified().await;
        }
    })
    .filter_map(|()| std::future::ready(None::<Result<Bytes, Infallible>>));
    let body = futures_util::stream::iter(parts)
        .chain(wait)
        .chain(futures_util::stream::iter(rest));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("a response")
}
