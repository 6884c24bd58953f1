//! The client against an in-memory agent built from the crate's own server side (codec and
//! SSE encoder), in both protocol versions, delivering bodies in small chunks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_a2a::client::*;
use hive_a2a::error::ErrorCode;
use hive_a2a::jsonrpc::{self, Call, Id, Limits, Outcome, Version};
use hive_a2a::{sse, v1, v03};
use std::collections::VecDeque;
use std::sync::Mutex;

#[derive(Debug)]
struct ChunkedBody(VecDeque<Vec<u8>>);

impl Body for ChunkedBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(self.0.pop_front())
    }
}

fn chunked(bytes: Vec<u8>, size: usize) -> ChunkedBody {
    ChunkedBody(bytes.chunks(size).map(<[u8]>::to_vec).collect())
}

/// What the fake agent does with a request.
#[derive(Clone, Copy)]
enum Behaviour {
    Serve,
    WrongId,
    HugeBody,
    /// A stream cut off in the middle of an event.
    TruncatedStream,
}

struct FakeAgent {
    behaviour: Behaviour,
    seen: Mutex<Vec<HttpRequest>>,
}

impl FakeAgent {
    fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            seen: Mutex::new(Vec::new()),
        }
    }
}

fn task(state: v1::TaskState) -> v1::Task {
    v1::Task {
        id: "t-1".into(),
        context_id: "c-1".into(),
        status: v1::TaskStatus {
            state,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn json(status: u16, body: Vec<u8>) -> HttpResponse<ChunkedBody> {
    HttpResponse {
        status,
        content_type: "application/json".into(),
        body: chunked(body, 7),
    }
}

impl Transport for FakeAgent {
    type Body = ChunkedBody;

    async fn send(
        &self,
        request: HttpRequest,
    ) -> Result<HttpResponse<ChunkedBody>, TransportError> {
        self.seen.lock().unwrap().push(request.clone());
        if request.method == "GET" {
            let card = v03::AgentCard {
                protocol_version: "0.3.0".into(),
                name: "old agent".into(),
                url: "https://agent.example/rpc".into(),
                ..Default::default()
            };
            return Ok(json(200, serde_json::to_vec(&card).unwrap()));
        }
        let header = request
            .headers
            .iter()
            .find(|(name, _)| *name == VERSION_HEADER)
            .map(|(_, v)| v.as_str());
        let version = match Version::from_header(header) {
            Ok(version) => version,
            Err(error) => {
                return Ok(json(
                    200,
                    jsonrpc::encode_error(&Id::Null, &error, Version::V1_0),
                ));
            }
        };
        let parsed = match jsonrpc::parse_request(&request.body, version, &Limits::default()) {
            Ok(parsed) => parsed,
            Err(rejection) => {
                return Ok(json(
                    200,
                    jsonrpc::encode_error(&rejection.id, &rejection.error, version),
                ));
            }
        };
        let id = match self.behaviour {
            Behaviour::WrongId => Id::from("someone-else"),
            _ => parsed.id.clone(),
        };
        if let Behaviour::HugeBody = self.behaviour {
            return Ok(json(200, vec![b' '; 2 * 1024 * 1024]));
        }
        match parsed.call {
            Call::SendMessage(_) => {
                let outcome = Outcome::SendMessage(v1::SendMessageResponse::Task(task(
                    v1::TaskState::Completed,
                )));
                Ok(json(
                    200,
                    jsonrpc::encode_result(&id, &outcome, version).unwrap(),
                ))
            }
            Call::GetTask(request) if request.id == "t-1" => Ok(json(
                200,
                jsonrpc::encode_result(&id, &Outcome::Task(task(v1::TaskState::Working)), version)
                    .unwrap(),
            )),
            Call::GetTask(_) => Ok(json(
                200,
                jsonrpc::encode_error(&id, &ErrorCode::TaskNotFound.error(), version),
            )),
            Call::SubscribeToTask(_) => {
                // An error before the stream starts is plain JSON.
                Ok(json(
                    200,
                    jsonrpc::encode_error(&id, &ErrorCode::UnsupportedOperation.error(), version),
                ))
            }
            Call::SendStreamingMessage(_) => {
                let mut stream = Vec::new();
                stream.extend(
                    sse::encode_outcome_event(
                        &id,
                        &Outcome::Event(v1::StreamResponse::Task(task(v1::TaskState::Working))),
                        version,
                    )
                    .unwrap(),
                );
                stream.extend_from_slice(sse::keep_alive());
                let done = v1::StreamResponse::StatusUpdate(v1::TaskStatusUpdateEvent {
                    task_id: "t-1".into(),
                    context_id: "c-1".into(),
                    status: v1::TaskStatus {
                        state: v1::TaskState::Completed,
                        ..Default::default()
                    },
                    metadata: None,
                });
                stream.extend(
                    sse::encode_outcome_event(&id, &Outcome::Event(done), version).unwrap(),
                );
                if let Behaviour::TruncatedStream = self.behaviour {
                    stream.extend_from_slice(b"data: {\"jsonrpc\"");
                }
                Ok(HttpResponse {
                    status: 200,
                    content_type: "text/event-stream".into(),
                    body: chunked(stream, 5),
                })
            }
            _ => Ok(json(
                200,
                jsonrpc::encode_error(&id, &ErrorCode::UnsupportedOperation.error(), version),
            )),
        }
    }
}

fn send_request() -> v1::SendMessageRequest {
    v1::SendMessageRequest {
        message: v1::Message {
            message_id: "m-1".into(),
            role: v1::Role::User,
            parts: vec![v1::Part::text("hello")],
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn calls_in_both_versions() {
    for version in [Version::V1_0, Version::V0_3] {
        let client = Client::new(
            FakeAgent::new(Behaviour::Serve),
            "https://agent.example/rpc",
            version,
        );
        let response = client.send_message(send_request()).await.unwrap();
        assert!(
            matches!(response, v1::SendMessageResponse::Task(t) if t.status.state == v1::TaskState::Completed)
        );
        let task = client
            .get_task(v1::GetTaskRequest {
                id: "t-1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(task.status.state, v1::TaskState::Working);
        let error = client
            .get_task(v1::GetTaskRequest {
                id: "nope".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::Rpc(ref e) if e.kind() == Some(ErrorCode::TaskNotFound)),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn requests_carry_the_version_and_fresh_ids() {
    let agent = FakeAgent::new(Behaviour::Serve);
    let client = Client::new(agent, "https://agent.example/rpc", Version::V0_3);
    client.send_message(send_request()).await.unwrap();
    client.send_message(send_request()).await.unwrap();
    let agent_requests = client_requests(&client);
    let bodies: Vec<serde_json::Value> = agent_requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["method"], "message/send");
    assert_eq!(bodies[0]["params"]["message"]["kind"], "message");
    assert_ne!(bodies[0]["id"], bodies[1]["id"]);
    let first = &agent_requests[0];
    assert_eq!(first.url, "https://agent.example/rpc");
    assert!(first.headers.contains(&(VERSION_HEADER, "0.3".to_owned())));
    assert!(
        first
            .headers
            .contains(&("Content-Type", JSON_CONTENT_TYPE.to_owned()))
    );
}

fn client_requests(client: &Client<FakeAgent>) -> Vec<HttpRequest> {
    client.transport().seen.lock().unwrap().clone()
}

impl std::fmt::Debug for FakeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeAgent")
    }
}

#[tokio::test]
async fn a_wrong_id_is_refused() {
    let client = Client::new(
        FakeAgent::new(Behaviour::WrongId),
        "https://a",
        Version::V1_0,
    );
    let error = client.send_message(send_request()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::InvalidResponse(ref m) if m.contains("id")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_huge_body_is_refused_while_reading() {
    let client = Client::new(
        FakeAgent::new(Behaviour::HugeBody),
        "https://a",
        Version::V1_0,
    );
    let error = client.send_message(send_request()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::InvalidResponse(ref m) if m.contains("larger")),
        "{error:?}"
    );
}

#[tokio::test]
async fn streams_in_both_versions() {
    for version in [Version::V1_0, Version::V0_3] {
        let client = Client::new(FakeAgent::new(Behaviour::Serve), "https://a", version);
        let mut stream = client
            .stream(&Call::SendStreamingMessage(send_request()))
            .await
            .unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(matches!(first, v1::StreamResponse::Task(_)), "{first:?}");
        let second = stream.next().await.unwrap().unwrap();
        assert!(
            matches!(second, v1::StreamResponse::StatusUpdate(ref s) if s.status.state == v1::TaskState::Completed)
        );
        assert!(stream.next().await.is_none());
    }
}

#[tokio::test]
async fn a_truncated_stream_is_reported() {
    let client = Client::new(
        FakeAgent::new(Behaviour::TruncatedStream),
        "https://a",
        Version::V1_0,
    );
    let mut stream = client
        .stream(&Call::SendStreamingMessage(send_request()))
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    assert!(stream.next().await.unwrap().is_ok());
    assert!(stream.next().await.unwrap().is_err());
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn an_error_before_the_stream_is_plain_json() {
    let client = Client::new(FakeAgent::new(Behaviour::Serve), "https://a", Version::V1_0);
    let call = Call::SubscribeToTask(v1::SubscribeToTaskRequest {
        id: "t-1".into(),
        ..Default::default()
    });
    let error = client.stream(&call).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Rpc(ref e) if e.code == -32004),
        "{error:?}"
    );
}

#[tokio::test]
async fn agent_cards_of_either_version() {
    let client = Client::new(FakeAgent::new(Behaviour::Serve), "https://a", Version::V1_0);
    let card = client
        .fetch_agent_card("https://agent.example/.well-known/agent-card.json")
        .await
        .unwrap();
    assert_eq!(card.name, "old agent");
    assert_eq!(
        card.supported_interfaces[0].url,
        "https://agent.example/rpc"
    );
    assert_eq!(card.supported_interfaces[0].protocol_version, "0.3.0");

    let path = format!(
        "{}/tests/data/v1/agent_card.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let card = parse_agent_card(&std::fs::read(path).unwrap(), &Limits::default()).unwrap();
    assert_eq!(card.supported_interfaces.len(), 3);
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(parse_agent_card(deep.as_bytes(), &Limits::default()).is_err());
}
