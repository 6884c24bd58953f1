//! A2A 0.3 objects against JSON written from the 0.3 specification, their conversion to the
//! 1.0 form (compared with the same objects written by hand in 1.0 JSON), and the way back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_a2a::{v1, v03};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/data/v03/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn parse<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// `name` round-trips as 0.3, converts to `name.v1.json`, and converts back to itself.
fn check<V03, V1>(name: &str) -> (V03, V1)
where
    V03: DeserializeOwned + Serialize + From<V1> + Clone,
    V1: DeserializeOwned + Serialize + From<V03> + Clone,
{
    let original = golden(&format!("{name}.json"));
    let old: V03 = parse(original.clone());
    assert_eq!(json(&old), original, "{name} as 0.3");
    let new = V1::from(old.clone());
    assert_eq!(
        json(&new),
        golden(&format!("{name}.v1.json")),
        "{name} in 1.0"
    );
    assert_eq!(
        json(&V03::from(new.clone())),
        original,
        "{name} back in 0.3"
    );
    (old, new)
}

#[test]
fn task_result() {
    let (old, new) =
        check::<v03::SendMessageResult, v1::SendMessageResponse>("send_message_result_task");
    assert!(matches!(old, v03::SendMessageResult::Task(_)));
    assert!(
        matches!(new, v1::SendMessageResponse::Task(t) if t.status.state == v1::TaskState::Completed)
    );
}

#[test]
fn message_result_is_told_apart_by_kind() {
    let message = json!({"role": "agent", "parts": [{"kind": "text", "text": "hi"}],
                         "messageId": "m", "kind": "message"});
    assert!(matches!(
        parse::<v03::SendMessageResult>(message),
        v03::SendMessageResult::Message(_)
    ));
    let wrong_kind =
        json!({"id": "t", "contextId": "c", "status": {"state": "working"}, "kind": "job"});
    assert!(serde_json::from_value::<v03::SendMessageResult>(wrong_kind).is_err());
}

#[test]
fn send_params_with_every_part_kind() {
    let (old, new) = check::<v03::MessageSendParams, v1::SendMessageRequest>("message_send_params");
    assert!(!old.configuration.unwrap().blocking);
    assert!(new.configuration.unwrap().return_immediately);
}

#[test]
fn blocking_defaults_to_true() {
    let params: v03::MessageSendParams = parse(json!({
        "message": {"role": "user", "parts": [{"kind": "text", "text": "x"}], "messageId": "m"},
        "configuration": {"acceptedOutputModes": []}
    }));
    assert!(params.configuration.as_ref().unwrap().blocking);
    let request = v1::SendMessageRequest::from(params);
    assert!(!request.configuration.unwrap().return_immediately);
}

#[test]
fn stream_events() {
    let original = golden("stream_events.json");
    let old: Vec<v03::StreamEvent> = parse(original.clone());
    assert_eq!(json(&old), original);
    let new: Vec<v1::StreamResponse> = old.iter().cloned().map(Into::into).collect();
    assert_eq!(json(&new), golden("stream_events.v1.json"));
    let back: Vec<v03::StreamEvent> = new.into_iter().map(Into::into).collect();
    assert_eq!(json(&back), original);
    assert!(matches!(&old[3], v03::StreamEvent::StatusUpdate(e) if e.is_final));
    assert!(matches!(&old[4], v03::StreamEvent::Message(_)));
}

#[test]
fn final_comes_back_from_the_state() {
    for (state, is_final) in [
        (v1::TaskState::Working, false),
        (v1::TaskState::Submitted, false),
        (v1::TaskState::InputRequired, true),
        (v1::TaskState::AuthRequired, true),
        (v1::TaskState::Completed, true),
        (v1::TaskState::Failed, true),
        (v1::TaskState::Canceled, true),
        (v1::TaskState::Rejected, true),
    ] {
        let event = v1::TaskStatusUpdateEvent {
            status: v1::TaskStatus {
                state,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            v03::TaskStatusUpdateEvent::from(event).is_final,
            is_final,
            "{state:?}"
        );
    }
}

#[test]
fn agent_card() {
    let original = golden("agent_card.json");
    let old: v03::AgentCard = parse(original.clone());
    assert_eq!(json(&old), original);
    let new = v1::AgentCard::from(old);
    assert_eq!(json(&new), golden("agent_card.v1.json"));
    // 1.0 has no stateTransitionHistory; everything else comes back.
    let mut expected = original;
    expected["capabilities"]
        .as_object_mut()
        .unwrap()
        .remove("stateTransitionHistory");
    assert_eq!(json(&v03::AgentCard::from(new)), expected);
}

#[test]
fn a_1_0_card_becomes_a_0_3_card() {
    let path = format!(
        "{}/tests/data/v1/agent_card.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let card: v1::AgentCard =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let old = v03::AgentCard::from(card);
    assert_eq!(old.protocol_version, v03::PROTOCOL_VERSION);
    assert_eq!(old.url, "https://georoute-agent.example.com/a2a/v1");
    assert_eq!(old.preferred_transport, "JSONRPC");
    assert_eq!(old.additional_interfaces.len(), 2);
    assert_eq!(old.supports_authenticated_extended_card, Some(true));
    assert_eq!(old.security[0]["google"], ["openid", "profile", "email"]);
    let as_json = json(&old);
    assert_eq!(as_json["securitySchemes"]["key"]["type"], "apiKey");
    assert_eq!(as_json["securitySchemes"]["key"]["in"], "header");
    assert_eq!(as_json["securitySchemes"]["mtls"]["type"], "mutualTLS");
    assert_eq!(
        as_json["securitySchemes"]["oauth"]["flows"]["clientCredentials"]["tokenUrl"],
        "https://auth.example.com/token"
    );
}

#[test]
fn what_0_3_cannot_express() {
    // A text part's media type and a non-object data part.
    let part = v1::Part {
        media_type: "text/markdown".into(),
        ..v1::Part::text("# hi")
    };
    assert_eq!(
        json(&v03::Part::from(part)),
        json!({"kind": "text", "text": "# hi"})
    );
    let part = v1::Part::data(json!([1, 2]));
    assert_eq!(
        json(&v03::Part::from(part)),
        json!({"kind": "data", "data": {"value": [1, 2]}})
    );
}

#[test]
fn debug_hides_contents_and_secrets() {
    let params: v03::MessageSendParams = parse(golden("message_send_params.json"));
    let debug = format!("{params:?}");
    for hidden in [
        "long paper",
        "iVBORw0KGgo",
        "example.com/b.png",
        "secret-credential",
        "\"tok\"",
    ] {
        assert!(!debug.contains(hidden), "{hidden} in {debug}");
    }
}

mod round_trips {
    //! Every 0.3 value survives 0.3 → 1.0 → 0.3 (the mapping is total on these types).
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-z0-9 ]{0,8}"
    }

    fn metadata() -> impl Strategy<Value = Option<v1::Metadata>> {
        proptest::option::of(
            proptest::collection::btree_map("[a-z]{1,4}", any::<i32>(), 0..3)
                .prop_map(|map| map.into_iter().map(|(k, v)| (k, json!(v))).collect()),
        )
    }

    fn part() -> impl Strategy<Value = v03::Part> {
        prop_oneof![
            (text(), metadata())
                .prop_map(|(text, metadata)| v03::Part::Text(v03::TextPart { text, metadata })),
            (text(), text(), text(), any::<bool>(), metadata()).prop_map(
                |(name, mime_type, content, bytes, metadata)| {
                    let content = if bytes {
                        v03::FileContent::Bytes(content)
                    } else {
                        v03::FileContent::Uri(content)
                    };
                    v03::Part::File(v03::FilePart {
                        file: v03::File {
                            name,
                            mime_type,
                            content,
                        },
                        metadata,
                    })
                }
            ),
            (metadata(), metadata()).prop_map(|(data, metadata)| v03::Part::Data(v03::DataPart {
                data: data.unwrap_or_default(),
                metadata
            })),
        ]
    }

    fn role() -> impl Strategy<Value = v03::Role> {
        prop_oneof![Just(v03::Role::User), Just(v03::Role::Agent)]
    }

    fn state() -> impl Strategy<Value = v03::TaskState> {
        use v03::TaskState::*;
        proptest::sample::select(vec![
            Submitted,
            Working,
            InputRequired,
            Completed,
            Canceled,
            Failed,
            Rejected,
            AuthRequired,
            Unknown,
        ])
    }

    fn message() -> impl Strategy<Value = v03::Message> {
        (
            text(),
            text(),
            text(),
            role(),
            proptest::collection::vec(part(), 0..4),
            metadata(),
            proptest::collection::vec(text(), 0..2),
            proptest::collection::vec(text(), 0..2),
        )
            .prop_map(
                |(
                    message_id,
                    context_id,
                    task_id,
                    role,
                    parts,
                    metadata,
                    extensions,
                    reference_task_ids,
                )| v03::Message {
                    message_id,
                    context_id,
                    task_id,
                    role,
                    parts,
                    metadata,
                    extensions,
                    reference_task_ids,
                    kind: v03::MessageKind,
                },
            )
    }

    fn status() -> impl Strategy<Value = v03::TaskStatus> {
        (
            state(),
            proptest::option::of(message()),
            proptest::option::of(text()),
        )
            .prop_map(|(state, message, timestamp)| v03::TaskStatus {
                state,
                message: message.map(Box::new),
                timestamp,
            })
    }

    fn artifact() -> impl Strategy<Value = v03::Artifact> {
        (
            text(),
            text(),
            text(),
            proptest::collection::vec(part(), 0..3),
            metadata(),
            proptest::collection::vec(text(), 0..2),
        )
            .prop_map(
                |(artifact_id, name, description, parts, metadata, extensions)| v03::Artifact {
                    artifact_id,
                    name,
                    description,
                    parts,
                    metadata,
                    extensions,
                },
            )
    }

    fn task() -> impl Strategy<Value = v03::Task> {
        (
            text(),
            text(),
            status(),
            proptest::collection::vec(artifact(), 0..2),
            proptest::collection::vec(message(), 0..2),
            metadata(),
        )
            .prop_map(
                |(id, context_id, status, artifacts, history, metadata)| v03::Task {
                    id,
                    context_id,
                    status,
                    artifacts,
                    history,
                    metadata,
                    kind: v03::TaskKind,
                },
            )
    }

    fn event() -> impl Strategy<Value = v03::StreamEvent> {
        prop_oneof![
            task().prop_map(v03::StreamEvent::Task),
            message().prop_map(v03::StreamEvent::Message),
            (text(), text(), status(), metadata()).prop_map(
                |(task_id, context_id, status, metadata)| {
                    let state = v1::TaskState::from(status.state);
                    v03::StreamEvent::StatusUpdate(v03::TaskStatusUpdateEvent {
                        task_id,
                        context_id,
                        status,
                        metadata,
                        is_final: state.is_terminal() || state.is_interrupted(),
                        kind: v03::StatusUpdateKind,
                    })
                }
            ),
            (
                text(),
                text(),
                artifact(),
                any::<bool>(),
                any::<bool>(),
                metadata()
            )
                .prop_map(
                    |(task_id, context_id, artifact, append, last_chunk, metadata)| {
                        v03::StreamEvent::ArtifactUpdate(v03::TaskArtifactUpdateEvent {
                            task_id,
                            context_id,
                            artifact,
                            append,
                            last_chunk,
                            metadata,
                            kind: v03::ArtifactUpdateKind,
                        })
                    }
                ),
        ]
    }

    fn any_send_params() -> impl Strategy<Value = v03::MessageSendParams> {
        let push = (
            text(),
            text(),
            text(),
            proptest::option::of((proptest::option::of("[A-Za-z]{1,6}"), text())),
        )
            .prop_map(
                |(id, url, token, authentication)| v03::PushNotificationConfig {
                    id,
                    url,
                    token,
                    authentication: authentication.map(|(scheme, credentials)| {
                        v03::PushNotificationAuthenticationInfo {
                            schemes: scheme.into_iter().collect(),
                            credentials,
                        }
                    }),
                },
            );
        let configuration = (
            proptest::collection::vec(text(), 0..2),
            proptest::option::of(0..100i32),
            proptest::option::of(push),
            any::<bool>(),
        )
            .prop_map(
                |(accepted_output_modes, history_length, push_notification_config, blocking)| {
                    v03::MessageSendConfiguration {
                        accepted_output_modes,
                        history_length,
                        push_notification_config,
                        blocking,
                    }
                },
            );
        (message(), proptest::option::of(configuration), metadata()).prop_map(
            |(message, configuration, metadata)| v03::MessageSendParams {
                message,
                configuration,
                metadata,
            },
        )
    }

    fn survives<V03, V1>(old: V03)
    where
        V03: Clone + PartialEq + std::fmt::Debug + From<V1> + Serialize + DeserializeOwned,
        V1: From<V03> + Serialize + DeserializeOwned,
    {
        let new = V1::from(old.clone());
        // Through JSON too, so that the wire forms are the ones converted.
        let new: V1 = parse(json(&new));
        let back: V03 = parse(json(&V03::from(new)));
        assert_eq!(back, old);
    }

    proptest! {
        #[test]
        fn tasks(task in task()) { survives::<v03::Task, v1::Task>(task) }

        #[test]
        fn messages(message in message()) { survives::<v03::Message, v1::Message>(message) }

        #[test]
        fn events(event in event()) { survives::<v03::StreamEvent, v1::StreamResponse>(event) }

        #[test]
        fn send_params(params in any_send_params()) { survives::<v03::MessageSendParams, v1::SendMessageRequest>(params) }
    }
}

#[test]
fn file_parts_need_bytes_or_uri_and_tolerate_unknown_keys() {
    let part: v03::Part = parse(
        json!({"kind": "file", "file": {"name": "a", "uri": "https://x", "size": 3}, "extra": 1}),
    );
    assert!(
        matches!(part, v03::Part::File(ref f) if f.file.content == v03::FileContent::Uri("https://x".into()))
    );
    assert!(
        serde_json::from_value::<v03::Part>(json!({"kind": "file", "file": {"name": "a"}}))
            .is_err()
    );
    assert!(serde_json::from_value::<v03::Part>(json!({"kind": "image", "url": "x"})).is_err());
}
