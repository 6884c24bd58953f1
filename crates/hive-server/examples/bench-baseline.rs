//! The baseline of `scripts/bench`: the conformance agent served over bare HTTP, without
//! Hive's pipeline, so that the difference to Hive's own endpoints is what the pipeline costs.
//!
//! Usage: `cargo run --release -p hive-server --example bench-baseline -- 127.0.0.1:PORT`
//!
//! What it does per request, the same work Hive's gateway does for the agent itself:
//!
//! - `GET /.well-known/agent-card.json`: builds a 1.0 instance card with one skill (`tck`) and
//!   encodes it with `hive_a2a::jsonrpc::encode_outcome`, as Hive does for its card.
//! - `POST /api/a2a/jsonrpc`: reads `A2A-Version`, parses the body with
//!   `hive_a2a::jsonrpc::parse_request` (size and depth limits, the typed call), then
//!   - `SendMessage`: new ids (UUID v4), `hive_core::agents::conformance::react`, the script's
//!     `final_task` stamped with the time — what a blocking send answers;
//!   - `GetTask`: the one task it made at start (printed on standard output), from a map in
//!     memory, trimmed to `historyLength`;
//!
//!   and writes the answer with `hive_a2a::jsonrpc::encode_result`.
//!
//! What it does not do: no request id, access log, timeout, CORS or security headers, no
//! credentials (no token hash or lookup, no role or scope check), no rate limits (neither the
//! `a2a` policy nor the agent's `requestsPerMinute` and `concurrentTasks`), no agent lookup or
//! visibility check, no task store (a `SendMessage` keeps nothing; `GetTask` has no owner
//! check), no ETag, no metrics, no audit record. It listens on loopback only.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hive_a2a::jsonrpc::{self, Call, Id, Limits, Outcome, Version};
use hive_a2a::v1::{
    AgentCapabilities, AgentCard, AgentInterface, AgentSkill, SendMessageResponse, Task,
};
use hive_core::agents::conformance::{self, Reaction};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

#[derive(Clone)]
struct Baseline {
    base_url: String,
    tasks: Arc<HashMap<String, Task>>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The task of a blocking `SendMessage` of `message`, or the direct reply.
fn send(message: &hive_a2a::v1::Message) -> SendMessageResponse {
    let ids = conformance::Ids {
        task_id: Uuid::new_v4().to_string(),
        context_id: Uuid::new_v4().to_string(),
        agent_message_id: Uuid::new_v4().to_string(),
    };
    match conformance::react(message, &ids) {
        Reaction::Message(message) => SendMessageResponse::Message(message),
        Reaction::Task(script) => {
            let mut task = script.final_task();
            task.status.timestamp = Some(now());
            SendMessageResponse::Task(task)
        }
    }
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn card(State(baseline): State<Baseline>) -> Response {
    let url = format!("{}/api/a2a/jsonrpc", baseline.base_url);
    let card = AgentCard {
        name: "Hive".into(),
        description: "The baseline of scripts/bench: the conformance agent, bare".into(),
        supported_interfaces: vec![AgentInterface {
            url,
            protocol_binding: hive_a2a::v1::BINDING_JSONRPC.to_owned(),
            tenant: String::new(),
            protocol_version: "1.0".into(),
        }],
        version: env!("CARGO_PKG_VERSION").into(),
        capabilities: AgentCapabilities {
            streaming: Some(true),
            ..AgentCapabilities::default()
        },
        default_input_modes: vec!["text/plain".into(), "application/json".into()],
        default_output_modes: vec!["text/plain".into(), "application/json".into()],
        skills: vec![AgentSkill {
            id: "tck".into(),
            name: "tck".into(),
            description: "The conformance agent tck".into(),
            tags: vec!["conformance".into()],
            ..AgentSkill::default()
        }],
        ..AgentCard::default()
    };
    match jsonrpc::encode_outcome(&Outcome::AgentCard(Box::new(card)), Version::V1_0)
        .ok()
        .and_then(|value| serde_json::to_vec(&value).ok())
    {
        Some(body) => json(body),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn rpc(State(baseline): State<Baseline>, headers: HeaderMap, body: Bytes) -> Response {
    let header = headers.get("a2a-version").and_then(|v| v.to_str().ok());
    let version = match Version::from_header(header) {
        Ok(version) => version,
        Err(error) => return json(jsonrpc::encode_error(&Id::Null, &error, Version::V1_0)),
    };
    let request = match jsonrpc::parse_request(&body, version, &Limits::default()) {
        Ok(request) => request,
        Err(rejection) => {
            return json(jsonrpc::encode_error(
                &rejection.id,
                &rejection.error,
                version,
            ));
        }
    };
    let outcome = match request.call {
        Call::SendMessage(request) => Ok(Outcome::SendMessage(send(&request.message))),
        Call::GetTask(get) => match baseline.tasks.get(&get.id) {
            Some(task) => {
                let mut task = task.clone();
                if let Some(keep) = get.history_length.and_then(|n| usize::try_from(n).ok()) {
                    let drop = task.history.len().saturating_sub(keep);
                    task.history.drain(..drop);
                }
                Ok(Outcome::Task(task))
            }
            None => Err(hive_a2a::error::ErrorCode::TaskNotFound.error()),
        },
        _ => Err(hive_a2a::error::ErrorCode::UnsupportedOperation.error()),
    };
    let body = match outcome {
        Ok(outcome) => jsonrpc::encode_result(&request.id, &outcome, version)
            .unwrap_or_else(|error| jsonrpc::encode_error(&request.id, &error, version)),
        Err(error) => jsonrpc::encode_error(&request.id, &error, version),
    };
    json(body)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18091".into())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("the baseline listens on loopback only".into());
    }
    let message = hive_a2a::v1::Message {
        message_id: "tck-complete-task-bench-get".into(),
        role: hive_a2a::v1::Role::User,
        parts: vec![hive_a2a::v1::Part::text("hello")],
        ..hive_a2a::v1::Message::default()
    };
    let SendMessageResponse::Task(task) = send(&message) else {
        return Err("the conformance agent made no task".into());
    };
    println!("{}", task.id);
    let baseline = Baseline {
        base_url: format!("http://{addr}"),
        tasks: Arc::new(HashMap::from([(task.id.clone(), task)])),
    };
    let app = Router::new()
        .route("/.well-known/agent-card.json", get(card))
        .route("/api/a2a/jsonrpc", post(rpc))
        .with_state(baseline);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
