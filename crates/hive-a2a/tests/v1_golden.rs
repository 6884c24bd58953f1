//! A2A 1.0 objects against JSON written from the examples of the specification (v1.0.1): each
//! file parses into the typed form, the typed form has the expected values, and writing it
//! back gives the same JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_a2a::v1::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/data/v1/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Parses the golden file and checks that it serializes back to the same JSON.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let original = golden(name);
    let typed: T = serde_json::from_value(original.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), original, "{name}");
    typed
}

#[test]
fn send_message_request() {
    let request: SendMessageRequest = round_trip("send_message_request.json");
    assert_eq!(request.message.role, Role::User);
    assert_eq!(request.message.text(), "What is the weather today?");
    request.message.validate().unwrap();
    let configuration = request.configuration.unwrap();
    assert!(configuration.return_immediately);
    assert_eq!(configuration.history_length, Some(0));
    let push = configuration.task_push_notification_config.unwrap();
    assert_eq!(push.authentication.unwrap().scheme, "Bearer");
}

#[test]
fn send_message_responses() {
    let response: SendMessageResponse = round_trip("send_message_response_task.json");
    let SendMessageResponse::Task(task) = response else {
        panic!("expected a task")
    };
    assert_eq!(task.status.state, TaskState::Completed);
    assert!(task.status.state.is_terminal());
    assert_eq!(task.artifacts[0].name, "Weather Report");
    assert_eq!(task.history[0].task_id, "task-uuid");

    let response: SendMessageResponse = round_trip("send_message_response_message.json");
    let SendMessageResponse::Message(message) = response else {
        panic!("expected a message")
    };
    assert_eq!(message.role, Role::Agent);
    assert_eq!(message.reference_task_ids, ["task-1"]);
}

#[test]
fn a_response_with_both_task_and_message_is_refused() {
    let both = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_WORKING"}},
                      "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}});
    assert!(serde_json::from_value::<SendMessageResponse>(both).is_err());
}

#[test]
fn spec_example_without_required_fields_parses_but_does_not_validate() {
    // Required fields are always written, so this one does not round-trip byte for byte.
    let task: Task = serde_json::from_value(golden("task_input_required.json")).unwrap();
    assert!(task.status.state.is_interrupted());
    let message = task.status.message.unwrap();
    assert_eq!(message.validate().unwrap_err().field, "message.messageId");
}

#[test]
fn message_with_extension_metadata() {
    let message: Message = round_trip("message_extension.json");
    assert_eq!(
        message.extensions,
        ["https://example.com/extensions/geolocation/v1"]
    );
    let metadata = message.metadata.unwrap();
    assert_eq!(
        metadata["https://example.com/extensions/geolocation/v1"]["latitude"],
        json!(37.7749)
    );
}

#[test]
fn parts_have_exactly_one_content() {
    let parts: Vec<Part> = round_trip("parts.json");
    assert_eq!(parts[0].content, PartContent::Text("Hello, world!".into()));
    assert_eq!(parts[1].content, PartContent::Raw("iVBORw0KGgo=".into()));
    assert_eq!(parts[1].filename, "diagram.png");
    assert_eq!(parts[1].media_type, "image/png");
    assert_eq!(
        parts[2].content,
        PartContent::Url("https://example.com/report.pdf".into())
    );
    assert_eq!(
        parts[3].content,
        PartContent::Data(json!({"key": "value", "count": 42}))
    );
    assert_eq!(parts[4].content, PartContent::Data(Value::Null));

    for bad in [
        json!({}),
        json!({"text": "a", "url": "b"}),
        json!({"raw": "AA==", "data": {}}),
    ] {
        assert!(
            serde_json::from_value::<Part>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn stream_events() {
    let events: Vec<StreamResponse> = round_trip("stream_events.json");
    assert!(
        matches!(&events[0], StreamResponse::Task(task) if task.status.state == TaskState::Working)
    );
    let StreamResponse::ArtifactUpdate(update) = &events[1] else {
        panic!("expected an artifact update")
    };
    assert!(update.append && update.last_chunk);
    assert!(
        matches!(&events[2], StreamResponse::StatusUpdate(s) if s.status.state == TaskState::Completed)
    );
    assert!(matches!(&events[3], StreamResponse::Message(_)));
}

#[test]
fn list_tasks() {
    let request: ListTasksRequest = round_trip("list_tasks_request.json");
    assert_eq!(request.status, TaskState::Working);
    assert_eq!(request.page_size, Some(50));
    assert_eq!(request.include_artifacts, Some(true));

    let response: ListTasksResponse = round_trip("list_tasks_response.json");
    assert_eq!(response.next_page_token, "");
    assert_eq!((response.page_size, response.total_size), (20, 1));
    assert_eq!(
        response.tasks[0]
            .status
            .message
            .as_ref()
            .unwrap()
            .message_id,
        "msg-status-update"
    );
}

#[test]
fn push_config_debug_hides_secrets() {
    let config: TaskPushNotificationConfig = round_trip("push_config.json");
    assert_eq!(config.token, "opaque-token");
    let debug = format!("{config:?}");
    assert!(!debug.contains("opaque-token"), "{debug}");
    assert!(!debug.contains("secure-client-token"), "{debug}");
    assert!(debug.contains("client.example.com"), "{debug}");
}

#[test]
fn part_debug_hides_contents() {
    let message: Message = round_trip("message_extension.json");
    let debug = format!("{message:?}");
    assert!(!debug.contains("restaurants"), "{debug}");
    assert!(debug.contains("<text: 24 bytes>"), "{debug}");
    // Metadata shows its keys, not its values.
    assert!(!debug.contains("37.7749"), "{debug}");
    assert!(debug.contains("geolocation"), "{debug}");
}

#[test]
fn agent_card() {
    let card: AgentCard = round_trip("agent_card.json");
    assert_eq!(
        card.supported_interfaces[0].protocol_binding,
        BINDING_JSONRPC
    );
    assert_eq!(card.supported_interfaces[2].tenant, "acme");
    assert_eq!(card.capabilities.extended_agent_card, Some(true));
    assert!(card.capabilities.extensions[0].required);
    assert!(matches!(
        card.security_schemes["google"],
        SecurityScheme::OpenIdConnect(_)
    ));
    assert!(matches!(
        card.security_schemes["mtls"],
        SecurityScheme::MutualTls(_)
    ));
    let SecurityScheme::OAuth2(oauth) = &card.security_schemes["oauth"] else {
        panic!("expected oauth2")
    };
    assert!(
        matches!(&oauth.flows, OAuthFlows::ClientCredentials(flow) if flow.token_url == "https://auth.example.com/token")
    );
    assert_eq!(
        card.security_requirements[0].schemes["google"].list,
        ["openid", "profile", "email"]
    );
    assert_eq!(card.signatures.len(), 1);
}

#[test]
fn unknown_fields_are_ignored() {
    // The 1.0.1 example card still carries the 0.3 `security` key; a newer peer may add more.
    let mut card = golden("agent_card.json");
    card["security"] = json!([{"google": ["openid"]}]);
    card["capabilities"]["somethingNew"] = json!(true);
    card["skills"][0]["future"] = json!({"x": 1});
    let typed: AgentCard = serde_json::from_value(card).unwrap();
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        golden("agent_card.json")
    );
}

#[test]
fn state_names_are_the_proto_names() {
    for (state, name) in [
        (TaskState::Submitted, "TASK_STATE_SUBMITTED"),
        (TaskState::Working, "TASK_STATE_WORKING"),
        (TaskState::Completed, "TASK_STATE_COMPLETED"),
        (TaskState::Failed, "TASK_STATE_FAILED"),
        (TaskState::Canceled, "TASK_STATE_CANCELED"),
        (TaskState::InputRequired, "TASK_STATE_INPUT_REQUIRED"),
        (TaskState::Rejected, "TASK_STATE_REJECTED"),
        (TaskState::AuthRequired, "TASK_STATE_AUTH_REQUIRED"),
    ] {
        assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
    }
    let terminal: Vec<_> = [
        TaskState::Submitted,
        TaskState::Working,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::InputRequired,
        TaskState::Rejected,
        TaskState::AuthRequired,
    ]
    .into_iter()
    .filter(|s| s.is_terminal())
    .collect();
    assert_eq!(
        terminal,
        [
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Canceled,
            TaskState::Rejected
        ]
    );
}

#[test]
fn unknown_enum_values_read_as_unspecified() {
    let task: Task =
        serde_json::from_value(json!({"id": "t", "status": {"state": "TASK_STATE_PAUSED"}}))
            .unwrap();
    assert_eq!(task.status.state, TaskState::Unspecified);
    let message: Message = serde_json::from_value(
        json!({"messageId": "m", "role": "ROLE_SYSTEM", "parts": [{"text": "x"}]}),
    )
    .unwrap();
    assert_eq!(message.role, Role::Unspecified);
    assert!(message.validate().is_err());
    let old: hive_a2a::v03::TaskState = serde_json::from_value(json!("paused")).unwrap();
    assert_eq!(old, hive_a2a::v03::TaskState::Unknown);
    assert_eq!(
        serde_json::to_value(TaskState::Unspecified).unwrap(),
        json!("TASK_STATE_UNSPECIFIED")
    );
}
