//! The JSON-RPC codec: version selection, method names, limits, id echo, errors, and the
//! round trip of every method through both versions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_a2a::error::{ERROR_DOMAIN, ERROR_INFO_TYPE, ErrorCode, RpcError};
use hive_a2a::jsonrpc::*;
use hive_a2a::v1;
use serde_json::{Value, json};

fn body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

fn parse(value: Value, version: Version) -> Result<Request, Rejection> {
    parse_request(&body(value), version, &Limits::default())
}

fn send(version: Version) -> Value {
    let message = match version {
        Version::V1_0 => {
            json!({"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "hi"}]})
        }
        Version::V0_3 => {
            json!({"messageId": "m-1", "role": "user", "parts": [{"kind": "text", "text": "hi"}], "kind": "message"})
        }
    };
    let method = Method::SendMessage.name(version).unwrap();
    json!({"jsonrpc": "2.0", "id": "req-1", "method": method, "params": {"message": message}})
}

#[test]
fn version_from_header() {
    assert_eq!(Version::from_header(Some("1.0")).unwrap(), Version::V1_0);
    assert_eq!(Version::from_header(Some(" 1.0 ")).unwrap(), Version::V1_0);
    assert_eq!(Version::from_header(None).unwrap(), Version::V0_3);
    assert_eq!(Version::from_header(Some("")).unwrap(), Version::V0_3);
    assert_eq!(Version::from_header(Some("0.3")).unwrap(), Version::V0_3);
    // Patch numbers do not count.
    assert_eq!(Version::from_header(Some("1.0.1")).unwrap(), Version::V1_0);
    assert_eq!(Version::from_header(Some("0.3.0")).unwrap(), Version::V0_3);
    for unsupported in [
        "1.1", "2.0", "99.0", "0.2", "1", "v1.0", "1.0.", "1.0.x", "1.0.1.2", "01.0", "1.00",
    ] {
        let error = Version::from_header(Some(unsupported)).unwrap_err();
        assert_eq!(error.code, -32009, "{unsupported}");
    }
}

#[test]
fn method_names_of_both_versions() {
    let pairs = [
        (Method::SendMessage, "SendMessage", Some("message/send")),
        (
            Method::SendStreamingMessage,
            "SendStreamingMessage",
            Some("message/stream"),
        ),
        (Method::GetTask, "GetTask", Some("tasks/get")),
        (Method::ListTasks, "ListTasks", None),
        (Method::CancelTask, "CancelTask", Some("tasks/cancel")),
        (
            Method::SubscribeToTask,
            "SubscribeToTask",
            Some("tasks/resubscribe"),
        ),
        (
            Method::CreateTaskPushNotificationConfig,
            "CreateTaskPushNotificationConfig",
            Some("tasks/pushNotificationConfig/set"),
        ),
        (
            Method::GetTaskPushNotificationConfig,
            "GetTaskPushNotificationConfig",
            Some("tasks/pushNotificationConfig/get"),
        ),
        (
            Method::ListTaskPushNotificationConfigs,
            "ListTaskPushNotificationConfigs",
            Some("tasks/pushNotificationConfig/list"),
        ),
        (
            Method::DeleteTaskPushNotificationConfig,
            "DeleteTaskPushNotificationConfig",
            Some("tasks/pushNotificationConfig/delete"),
        ),
        (
            Method::GetExtendedAgentCard,
            "GetExtendedAgentCard",
            Some("agent/getAuthenticatedExtendedCard"),
        ),
    ];
    assert_eq!(pairs.len(), Method::all().len());
    for (method, v1_name, v03_name) in pairs {
        assert_eq!(Method::from_name(v1_name, Version::V1_0), Some(method));
        assert_eq!(method.name(Version::V0_3), v03_name);
        if let Some(name) = v03_name {
            assert_eq!(Method::from_name(name, Version::V0_3), Some(method));
            assert_eq!(
                Method::from_name(name, Version::V1_0),
                None,
                "{name} is not 1.0"
            );
        }
        assert_eq!(
            Method::from_name(v1_name, Version::V0_3),
            None,
            "{v1_name} is not 0.3"
        );
    }
    assert!(Method::SendStreamingMessage.is_streaming() && Method::SubscribeToTask.is_streaming());
    assert!(!Method::SendMessage.is_streaming());
}

#[test]
fn a_0_3_request_becomes_a_1_0_call() {
    let request = parse(send(Version::V0_3), Version::V0_3).unwrap();
    assert_eq!(request.id, Id::from("req-1"));
    let Call::SendMessage(send) = request.call else {
        panic!("expected SendMessage")
    };
    assert_eq!(send.message.role, v1::Role::User);
    assert_eq!(send.message.text(), "hi");
}

#[test]
fn the_other_versions_method_names_are_not_found_and_the_id_is_echoed() {
    let rejection = parse(send(Version::V0_3), Version::V1_0).unwrap_err();
    assert_eq!(rejection.error.code, -32601);
    assert_eq!(rejection.id, Id::from("req-1"));
    let mut list = send(Version::V1_0);
    list["method"] = json!("ListTasks");
    list["id"] = json!(7);
    let rejection = parse(list, Version::V0_3).unwrap_err();
    assert_eq!((rejection.error.code, rejection.id), (-32601, Id::from(7)));
    // The message says which A2A-Version selects the method.
    assert!(
        rejection.error.message.contains("A2A-Version: 1.0"),
        "{}",
        rejection.error.message
    );
    let rejection = parse(send(Version::V0_3), Version::V1_0).unwrap_err();
    assert!(rejection.error.message.contains("A2A-Version: 0.3"));
    // A name neither version has gets the plain message.
    let mut unknown = send(Version::V1_0);
    unknown["method"] = json!("NoSuchMethod");
    let rejection = parse(unknown, Version::V1_0).unwrap_err();
    assert_eq!(rejection.error.message, "Method not found");
}

#[test]
fn ids_are_echoed_as_they_came() {
    for id in [json!("abc"), json!(42), json!(-1.5), json!(null)] {
        let mut request = send(Version::V1_0);
        request["id"] = id.clone();
        let parsed = parse(request, Version::V1_0).unwrap();
        let response = encode_result(&parsed.id, &Outcome::Deleted, Version::V1_0).unwrap();
        let response: Value = serde_json::from_slice(&response).unwrap();
        assert_eq!(response["id"], id);
    }
}

#[test]
fn malformed_requests() {
    let limits = Limits::default();
    let cases: Vec<(Vec<u8>, i32, Id)> = vec![
        (b"{not json".to_vec(), -32700, Id::Null),
        (b"".to_vec(), -32700, Id::Null),
        (body(json!([send(Version::V1_0)])), -32600, Id::Null),
        (
            body(json!({"jsonrpc": "2.0", "method": "GetTask", "params": {"id": "t"}})),
            -32600,
            Id::Null,
        ),
        (
            body(json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "GetTask"})),
            -32600,
            Id::Null,
        ),
        (
            body(json!({"jsonrpc": "1.0", "id": 3, "method": "GetTask", "params": {"id": "t"}})),
            -32600,
            Id::from(3),
        ),
        (
            body(json!({"jsonrpc": "2.0", "id": 3, "method": 5})),
            -32600,
            Id::from(3),
        ),
        (
            body(json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": ["t"]})),
            -32602,
            Id::from(3),
        ),
        (
            body(json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {}})),
            -32602,
            Id::from(3),
        ),
        (
            body(json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {"id": 5}})),
            -32602,
            Id::from(3),
        ),
        (
            body(json!({"jsonrpc": "2.0", "id": 3, "method": "SendMessage",
                     "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": []}}})),
            -32602,
            Id::from(3),
        ),
        (
            body(json!({"jsonrpc": "2.0", "id": 3, "method": "SendMessage",
                     "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "a", "url": "b"}]}}})),
            -32602,
            Id::from(3),
        ),
    ];
    for (bytes, code, id) in cases {
        let rejection = parse_request(&bytes, Version::V1_0, &limits).unwrap_err();
        assert_eq!(
            (rejection.error.code, &rejection.id),
            (code, &id),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(!rejection.too_large);
    }
}

#[test]
fn unknown_fields_are_tolerated() {
    let mut request = send(Version::V1_0);
    request["extra"] = json!(1);
    request["params"]["future"] = json!({"a": 1});
    request["params"]["message"]["newField"] = json!(true);
    request["params"]["message"]["parts"][0]["hint"] = json!("x");
    assert!(matches!(
        parse(request, Version::V1_0).unwrap().call,
        Call::SendMessage(_)
    ));
}

/// A notification (no `id`) is judged on its method and params first, and refused only when
/// it is otherwise valid; the answer's id is null in every case.
#[test]
fn notifications_are_checked_before_they_are_refused() {
    for version in [Version::V1_0, Version::V0_3] {
        let valid = {
            let mut request = send(version);
            request.as_object_mut().unwrap().remove("id");
            request
        };
        let unknown = {
            let mut request = valid.clone();
            request["method"] = json!(match version {
                Version::V1_0 => "SendMesage",
                Version::V0_3 => "message/ssend",
            });
            request
        };
        let bad_params = {
            let mut request = valid.clone();
            request["params"] = json!({"": "not_a_dict"});
            request
        };
        let no_params_object = {
            let mut request = valid.clone();
            request["params"] = json!(["m-1"]);
            request
        };
        for (request, code, message) in [
            (valid, -32600, Some("A request needs an id")),
            (unknown, -32601, None),
            (bad_params, -32602, None),
            (no_params_object, -32602, Some("params must be an object")),
        ] {
            let rejection = parse(request.clone(), version).unwrap_err();
            assert_eq!(
                (rejection.error.code, &rejection.id),
                (code, &Id::Null),
                "{version:?}: {request}"
            );
            if let Some(message) = message {
                assert_eq!(rejection.error.message, message, "{version:?}: {request}");
            }
            assert!(!rejection.too_large);
        }
    }
    // The 0.3 kit's two cases, as it sends them.
    for (request, code) in [
        (
            json!({"jsonrpc": "2.0", "method": "message/ssend", "params": {}}),
            -32601,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "message/send", "params": {"": "not_a_dict"}}),
            -32602,
        ),
    ] {
        let rejection = parse(request.clone(), Version::V0_3).unwrap_err();
        assert_eq!(
            (rejection.error.code, rejection.id),
            (code, Id::Null),
            "{request}"
        );
    }
    // A request with a null id is not a notification.
    let mut request = send(Version::V1_0);
    request["id"] = Value::Null;
    assert_eq!(parse(request, Version::V1_0).unwrap().id, Id::Null);
}

#[test]
fn the_head_of_a_request_is_read_whatever_its_method() {
    let limits = Limits::default();
    let head = parse_request_head(
        &body(json!({"jsonrpc": "2.0", "id": 3, "method": "x/custom", "params": [1]})),
        &limits,
    )
    .unwrap();
    assert_eq!(head.id, Some(Id::from(3)));
    assert_eq!(head.method, "x/custom");
    assert_eq!(head.params, Some(json!([1])));
    // A notification has a head too.
    let notification = parse_request_head(
        &body(json!({"jsonrpc": "2.0", "method": "SendMessage"})),
        &limits,
    )
    .unwrap();
    assert_eq!(notification.id, None);
    assert_eq!(notification.params, None);
    for bad in [
        json!([{"jsonrpc": "2.0", "id": 1, "method": "x"}]),
        json!({"jsonrpc": "1.0", "id": 1, "method": "x"}),
        json!({"jsonrpc": "2.0", "id": 1}),
        json!({"jsonrpc": "2.0", "id": 1, "method": 7}),
        json!({"jsonrpc": "2.0", "id": {}, "method": "x"}),
    ] {
        let refused = parse_request_head(&body(bad.clone()), &limits).unwrap_err();
        assert_eq!(
            refused.error.code,
            ErrorCode::InvalidRequest.code(),
            "{bad}"
        );
    }
    let refused = parse_request_head(b"not json", &limits).unwrap_err();
    assert_eq!(refused.error.code, ErrorCode::ParseError.code());
    let small = Limits {
        max_body_bytes: 8,
        ..limits
    };
    assert!(
        parse_request_head(&body(json!({"jsonrpc": "2.0", "method": "x"})), &small)
            .unwrap_err()
            .too_large
    );
}

#[test]
fn body_size_limit() {
    let bytes = body(send(Version::V1_0));
    let limits = Limits {
        max_body_bytes: bytes.len(),
        ..Limits::default()
    };
    assert!(parse_request(&bytes, Version::V1_0, &limits).is_ok());
    let limits = Limits {
        max_body_bytes: bytes.len() - 1,
        ..Limits::default()
    };
    let rejection = parse_request(&bytes, Version::V1_0, &limits).unwrap_err();
    assert!(rejection.too_large);
    assert_eq!(rejection.error.code, -32600);
}

#[test]
fn depth_limit_is_checked_before_parsing() {
    // Request, params, message, parts array, part object: 5 levels.
    let bytes = body(send(Version::V1_0));
    assert_eq!(check_depth(&bytes, 100), Some(5));
    let limits = Limits {
        max_depth: 5,
        ..Limits::default()
    };
    assert!(parse_request(&bytes, Version::V1_0, &limits).is_ok());
    let limits = Limits {
        max_depth: 4,
        ..Limits::default()
    };
    let rejection = parse_request(&bytes, Version::V1_0, &limits).unwrap_err();
    assert_eq!(rejection.error.code, -32600);
    assert!(rejection.error.message.contains("deep"));

    // Far deeper than any parser's recursion limit: refused by the scan, not by the parser
    // (which would call it a parse error, -32700).
    let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    let rejection = parse_request(
        deep.as_bytes(),
        Version::V1_0,
        &Limits {
            max_body_bytes: 4_000_000,
            max_depth: 64,
        },
    )
    .unwrap_err();
    assert_eq!(rejection.error.code, -32600);

    // Brackets inside strings (also after escaped quotes) do not count.
    assert_eq!(check_depth(br#"{"a": "[[[[{{{{ \" [[[["}"#, 1), Some(1));
    assert_eq!(check_depth(br#"[[["\\"]]]"#, 3), Some(3));
}

#[test]
fn errors_in_1_0_carry_error_info() {
    let error = ErrorCode::TaskNotFound
        .error()
        .with_error_info(serde_json::Map::from_iter([(
            "taskId".to_owned(),
            json!("nonexistent-task-id"),
        )]));
    let bytes = encode_error(&Id::from(2), &error, Version::V1_0);
    let path = format!(
        "{}/tests/data/v1/error_task_not_found.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), expected);

    // Added when missing, in 1.0 only, and only for A2A codes.
    let plain = ErrorCode::TaskNotCancelable.error();
    let v1: Value =
        serde_json::from_slice(&encode_error(&Id::Null, &plain, Version::V1_0)).unwrap();
    assert_eq!(v1["error"]["data"][0]["@type"], ERROR_INFO_TYPE);
    assert_eq!(v1["error"]["data"][0]["reason"], "TASK_NOT_CANCELABLE");
    assert_eq!(v1["error"]["data"][0]["domain"], ERROR_DOMAIN);
    let v03: Value =
        serde_json::from_slice(&encode_error(&Id::Null, &plain, Version::V0_3)).unwrap();
    assert_eq!(
        v03["error"],
        json!({"code": -32002, "message": "Task cannot be canceled"})
    );
    let parse: Value = serde_json::from_slice(&encode_error(
        &Id::Null,
        &ErrorCode::ParseError.error(),
        Version::V1_0,
    ))
    .unwrap();
    assert_eq!(
        parse,
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Invalid JSON payload"}})
    );
}

#[test]
fn every_code_and_reason() {
    let expected = [
        (ErrorCode::ParseError, -32700, None),
        (ErrorCode::InvalidRequest, -32600, None),
        (ErrorCode::MethodNotFound, -32601, None),
        (ErrorCode::InvalidParams, -32602, None),
        (ErrorCode::InternalError, -32603, None),
        (ErrorCode::TaskNotFound, -32001, Some("TASK_NOT_FOUND")),
        (
            ErrorCode::TaskNotCancelable,
            -32002,
            Some("TASK_NOT_CANCELABLE"),
        ),
        (
            ErrorCode::PushNotificationNotSupported,
            -32003,
            Some("PUSH_NOTIFICATION_NOT_SUPPORTED"),
        ),
        (
            ErrorCode::UnsupportedOperation,
            -32004,
            Some("UNSUPPORTED_OPERATION"),
        ),
        (
            ErrorCode::ContentTypeNotSupported,
            -32005,
            Some("CONTENT_TYPE_NOT_SUPPORTED"),
        ),
        (
            ErrorCode::InvalidAgentResponse,
            -32006,
            Some("INVALID_AGENT_RESPONSE"),
        ),
        (
            ErrorCode::ExtendedAgentCardNotConfigured,
            -32007,
            Some("EXTENDED_AGENT_CARD_NOT_CONFIGURED"),
        ),
        (
            ErrorCode::ExtensionSupportRequired,
            -32008,
            Some("EXTENSION_SUPPORT_REQUIRED"),
        ),
        (
            ErrorCode::VersionNotSupported,
            -32009,
            Some("VERSION_NOT_SUPPORTED"),
        ),
    ];
    for (kind, code, reason) in expected {
        assert_eq!(kind.code(), code);
        assert_eq!(ErrorCode::from_code(code), Some(kind));
        assert_eq!(kind.reason(), reason);
    }
    assert_eq!(ErrorCode::from_code(-32010), None);
}

fn task() -> v1::Task {
    v1::Task {
        id: "t-1".into(),
        context_id: "c-1".into(),
        status: v1::TaskStatus {
            state: v1::TaskState::Working,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn results_in_each_version() {
    let id = Id::from(1);
    let result = |outcome: &Outcome, version| -> Value {
        serde_json::from_slice::<Value>(&encode_result(&id, outcome, version).unwrap()).unwrap()["result"].clone()
    };
    let outcome = Outcome::SendMessage(v1::SendMessageResponse::Task(task()));
    assert_eq!(
        result(&outcome, Version::V1_0),
        json!({"task": {"id": "t-1", "contextId": "c-1", "status": {"state": "TASK_STATE_WORKING"}}})
    );
    assert_eq!(
        result(&outcome, Version::V0_3),
        json!({"id": "t-1", "contextId": "c-1", "status": {"state": "working"}, "kind": "task"})
    );
    assert_eq!(result(&Outcome::Deleted, Version::V1_0), json!({}));
    assert_eq!(result(&Outcome::Deleted, Version::V0_3), json!(null));
}

fn calls() -> Vec<Call> {
    let message = v1::Message {
        message_id: "m-1".into(),
        task_id: "t-1".into(),
        role: v1::Role::User,
        parts: vec![v1::Part::text("hi")],
        ..Default::default()
    };
    let send = v1::SendMessageRequest {
        message,
        configuration: Some(v1::SendMessageConfiguration {
            accepted_output_modes: vec!["text/plain".into()],
            history_length: Some(3),
            return_immediately: true,
            task_push_notification_config: Some(v1::TaskPushNotificationConfig {
                task_id: "t-1".into(),
                url: "https://client.example/hook".into(),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let reference = v1::TaskPushNotificationConfigRef {
        task_id: "t-1".into(),
        id: "p-1".into(),
        ..Default::default()
    };
    vec![
        Call::SendMessage(send.clone()),
        Call::SendStreamingMessage(send),
        Call::GetTask(v1::GetTaskRequest {
            id: "t-1".into(),
            history_length: Some(2),
            ..Default::default()
        }),
        Call::ListTasks(v1::ListTasksRequest {
            context_id: "c-1".into(),
            page_size: Some(10),
            ..Default::default()
        }),
        Call::CancelTask(v1::CancelTaskRequest {
            id: "t-1".into(),
            ..Default::default()
        }),
        Call::SubscribeToTask(v1::SubscribeToTaskRequest {
            id: "t-1".into(),
            ..Default::default()
        }),
        Call::CreateTaskPushNotificationConfig(v1::TaskPushNotificationConfig {
            task_id: "t-1".into(),
            id: "p-1".into(),
            url: "https://client.example/hook".into(),
            token: "tok".into(),
            ..Default::default()
        }),
        Call::GetTaskPushNotificationConfig(reference.clone()),
        Call::ListTaskPushNotificationConfigs(v1::ListTaskPushNotificationConfigsRequest {
            task_id: "t-1".into(),
            ..Default::default()
        }),
        Call::DeleteTaskPushNotificationConfig(reference),
        Call::GetExtendedAgentCard(v1::GetExtendedAgentCardRequest::default()),
    ]
}

#[test]
fn every_call_round_trips_through_both_versions() {
    for version in [Version::V1_0, Version::V0_3] {
        for call in calls() {
            let id = Id::from("x");
            match encode_request(&id, &call, version) {
                Ok(bytes) => {
                    let parsed = parse_request(&bytes, version, &Limits::default()).unwrap();
                    assert_eq!(parsed.id, id);
                    assert_eq!(parsed.call, call, "{version:?}");
                }
                Err(error) => {
                    assert_eq!((version, call.method()), (Version::V0_3, Method::ListTasks));
                    assert_eq!(error.code, -32601);
                }
            }
        }
    }
}

#[test]
fn every_outcome_round_trips_through_both_versions() {
    let outcomes = [
        (
            Method::SendMessage,
            Outcome::SendMessage(v1::SendMessageResponse::Task(task())),
        ),
        (
            Method::SendMessage,
            Outcome::SendMessage(v1::SendMessageResponse::Message(v1::Message {
                message_id: "m".into(),
                role: v1::Role::Agent,
                parts: vec![v1::Part::text("hi")],
                ..Default::default()
            })),
        ),
        (Method::GetTask, Outcome::Task(task())),
        (
            Method::SendStreamingMessage,
            Outcome::Event(v1::StreamResponse::StatusUpdate(
                v1::TaskStatusUpdateEvent {
                    task_id: "t-1".into(),
                    context_id: "c-1".into(),
                    status: task().status,
                    metadata: None,
                },
            )),
        ),
        (
            Method::CreateTaskPushNotificationConfig,
            Outcome::PushConfig(v1::TaskPushNotificationConfig {
                task_id: "t-1".into(),
                id: "p".into(),
                url: "https://x".into(),
                ..Default::default()
            }),
        ),
        (
            Method::ListTaskPushNotificationConfigs,
            Outcome::ListPushConfigs(v1::ListTaskPushNotificationConfigsResponse {
                configs: vec![v1::TaskPushNotificationConfig {
                    task_id: "t-1".into(),
                    url: "https://x".into(),
                    ..Default::default()
                }],
                next_page_token: String::new(),
            }),
        ),
        (Method::DeleteTaskPushNotificationConfig, Outcome::Deleted),
        (
            Method::GetExtendedAgentCard,
            Outcome::AgentCard(Box::new(v1::AgentCard {
                name: "a".into(),
                supported_interfaces: vec![v1::AgentInterface {
                    url: "https://a".into(),
                    protocol_binding: "JSONRPC".into(),
                    protocol_version: "0.3.0".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        ),
    ];
    for version in [Version::V1_0, Version::V0_3] {
        for (method, outcome) in &outcomes {
            let bytes = encode_result(&Id::from(9), outcome, version).unwrap();
            let response = parse_response(&bytes, &Limits::default()).unwrap();
            assert_eq!(response.id, Id::from(9));
            let decoded = decode_result(*method, version, response.result.unwrap()).unwrap();
            assert_eq!(&decoded, outcome, "{method:?} {version:?}");
        }
    }
}

#[test]
fn error_responses_parse() {
    let bytes = encode_error(
        &Id::from("q"),
        &ErrorCode::TaskNotFound.error(),
        Version::V1_0,
    );
    let response = parse_response(&bytes, &Limits::default()).unwrap();
    let error: RpcError = response.result.unwrap_err();
    assert_eq!(error.kind(), Some(ErrorCode::TaskNotFound));
    assert_eq!(error.error_info_reason(), Some("TASK_NOT_FOUND"));

    let both = body(
        json!({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1, "message": "x"}}),
    );
    assert_eq!(
        parse_response(&both, &Limits::default())
            .unwrap_err()
            .error
            .code,
        -32006
    );
    let neither = body(json!({"jsonrpc": "2.0", "id": 1}));
    assert!(parse_response(&neither, &Limits::default()).is_err());
    // A null result is a result (0.3 delete).
    let null = body(json!({"jsonrpc": "2.0", "id": 1, "result": null}));
    assert_eq!(
        parse_response(&null, &Limits::default()).unwrap().result,
        Ok(Value::Null)
    );
}

#[test]
fn error_messages_do_not_echo_long_values() {
    let long = "x".repeat(10_000);
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t", "historyLength": long}});
    let rejection = parse(request, Version::V1_0).unwrap_err();
    assert_eq!(rejection.error.code, -32602);
    assert!(
        rejection.error.message.len() < 200,
        "{}",
        rejection.error.message
    );
    assert!(
        rejection.error.message.starts_with("invalid type"),
        "{}",
        rejection.error.message
    );
}

/// ProtoJSON parsers accept a field's original proto name as well as its JSON name: the
/// public test kit sends `history_length`, `task_id`, `context_id`, `page_size`… in 1.0 params.
#[test]
fn v1_params_accept_proto_field_names() {
    let call = |method: Method, params: Value| {
        decode_call(method, Version::V1_0, params).expect("decodes")
    };
    let Call::GetTask(get) = call(Method::GetTask, json!({"id": "t-1", "history_length": 0}))
    else {
        panic!("not GetTask")
    };
    assert_eq!(get.history_length, Some(0));

    let Call::CreateTaskPushNotificationConfig(config) = call(
        Method::CreateTaskPushNotificationConfig,
        json!({"task_id": "t-1", "url": "https://example.com/hook", "token": "x"}),
    ) else {
        panic!("not CreateTaskPushNotificationConfig")
    };
    assert_eq!(config.task_id, "t-1");

    let Call::ListTasks(list) = call(
        Method::ListTasks,
        json!({"context_id": "c-1", "page_size": 2, "page_token": "p", "include_artifacts": true}),
    ) else {
        panic!("not ListTasks")
    };
    assert_eq!(list.context_id, "c-1");
    assert_eq!(list.page_size, Some(2));
    assert_eq!(list.page_token, "p");
    assert_eq!(list.include_artifacts, Some(true));

    let Call::SendMessage(send) = call(
        Method::SendMessage,
        json!({
            "message": {"message_id": "m-1", "context_id": "c-1", "role": "ROLE_USER",
                        "parts": [{"text": "hi", "media_type": "text/plain"}]},
            "configuration": {"history_length": 1, "return_immediately": true,
                              "accepted_output_modes": ["text/plain"]}
        }),
    ) else {
        panic!("not SendMessage")
    };
    assert_eq!(send.message.message_id, "m-1");
    assert_eq!(send.message.context_id, "c-1");
    assert_eq!(send.message.parts[0].media_type, "text/plain");
    let configuration = send.configuration.expect("configuration");
    assert_eq!(configuration.history_length, Some(1));
    assert!(configuration.return_immediately);

    // The JSON names still win on output.
    let encoded = serde_json::to_value(&get).unwrap();
    assert_eq!(encoded["historyLength"], 0);
}
