//! The channel to hosted agents against the documented example agent
//! (`examples/hosted-agent/agent.py`, Python's standard library only), run as a plain process
//! listening on a Unix socket: Hive's A2A client reads its card, sends a message, streams one,
//! and reads the task back, all through `ChannelTransport`. Needs `python3`: without it the test
//! fails under CI and is skipped elsewhere.

use hive_a2a::client::Client;
use hive_a2a::jsonrpc::{Call, Version};
use hive_a2a::v1::{
    GetTaskRequest, Message, Part, PartContent, Role, SendMessageRequest, SendMessageResponse,
    StreamResponse, TaskState,
};
use hive_core::agents::hosted::channel::ChannelTransport;
use std::path::Path;
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3";

fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|part| match &part.content {
            PartContent::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn message(text: &str) -> SendMessageRequest {
    SendMessageRequest {
        message: Message {
            message_id: "m-1".into(),
            role: Role::User,
            parts: vec![Part::text(text)],
            ..Message::default()
        },
        ..SendMessageRequest::default()
    }
}

#[tokio::test]
async fn hive_calls_the_example_agent_over_its_socket() {
    if !Path::new(PYTHON).exists() {
        hive_testkit::missing(PYTHON);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hosted-agent/agent.py");
    let _running = tokio::process::Command::new(PYTHON)
        .arg(agent)
        .env_clear()
        .env("HIVE_AGENT_SOCKET", &socket)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = tokio::time::Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the agent did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let client = Client::new(
        ChannelTransport::new(&socket),
        "http://agent/",
        Version::V1_0,
    );
    let card = client
        .fetch_agent_card("http://agent/.well-known/agent-card.json")
        .await
        .unwrap();
    assert_eq!(card.name, "echo");
    assert_eq!(card.skills.len(), 2);

    let SendMessageResponse::Task(task) = client.send_message(message("hello")).await.unwrap()
    else {
        panic!("a message instead of a task");
    };
    assert_eq!(task.status.state, TaskState::Completed);
    assert_eq!(text_of(&task.artifacts[0].parts), "echo: hello");

    let again = client
        .get_task(GetTaskRequest {
            id: task.id.clone(),
            ..GetTaskRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(again.id, task.id);

    let mut stream = client
        .stream(&Call::SendStreamingMessage(message("streamed")))
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.unwrap());
    }
    assert!(
        matches!(events.first(), Some(StreamResponse::Task(_))),
        "{events:?}"
    );
    match events.last() {
        Some(StreamResponse::StatusUpdate(update)) => {
            assert_eq!(update.status.state, TaskState::Completed)
        }
        other => panic!("the stream ended with {other:?}"),
    }
    assert!(
        events.iter().any(|event| matches!(event,
            StreamResponse::ArtifactUpdate(update)
                if text_of(&update.artifact.parts) == "echo: streamed")),
        "{events:?}"
    );
}
