//! The JSON-RPC 2.0 binding of A2A, for both protocol versions.
//!
//! A server calls [`Version::from_header`] with the `A2A-Version` header, [`parse_request`]
//! with the body, handles the [`Call`] (always in the 1.0 model, whatever the version on the
//! wire) and writes [`encode_result`] or [`encode_error`]. A client does the reverse with
//! [`encode_request`] and [`parse_response`] / [`decode_result`].
//!
//! Limits are checked before anything is deserialized: the body size, then the nesting depth
//! by a scan that counts brackets outside strings (so deep input never reaches the parser's
//! recursion).

use crate::error::{ErrorCode, RpcError, describe};
use crate::{v1, v03};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The protocol version of one request, chosen by the `A2A-Version` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V1_0,
    V0_3,
}

impl Version {
    /// `1.0` → 1.0; missing, empty or `0.3` → 0.3; anything else → `VersionNotSupported`
    /// (-32009). Only `Major.Minor` counts: a patch number (`1.0.1`, `0.3.0`) is ignored, as
    /// the specification requires. Surrounding whitespace is ignored.
    pub fn from_header(value: Option<&str>) -> Result<Self, RpcError> {
        let value = value.map(str::trim).unwrap_or_default();
        if value.is_empty() {
            return Ok(Self::V0_3);
        }
        let mut numbers = value.split('.');
        let major_minor = (numbers.next(), numbers.next());
        let patch_ok = match (numbers.next(), numbers.next()) {
            (None, None) => true,
            (Some(patch), None) => !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()),
            _ => false,
        };
        match major_minor {
            (Some("1"), Some("0")) if patch_ok => Ok(Self::V1_0),
            (Some("0"), Some("3")) if patch_ok => Ok(Self::V0_3),
            _ => Err(ErrorCode::VersionNotSupported.error()),
        }
    }

    /// The header value that selects this version.
    pub fn header_value(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V0_3 => "0.3",
        }
    }
}

/// The A2A methods, one per operation, whatever their name in either version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    SendMessage,
    SendStreamingMessage,
    GetTask,
    /// 1.0 only.
    ListTasks,
    CancelTask,
    SubscribeToTask,
    CreateTaskPushNotificationConfig,
    GetTaskPushNotificationConfig,
    ListTaskPushNotificationConfigs,
    DeleteTaskPushNotificationConfig,
    GetExtendedAgentCard,
}

const METHODS: [Method; 11] = [
    Method::SendMessage,
    Method::SendStreamingMessage,
    Method::GetTask,
    Method::ListTasks,
    Method::CancelTask,
    Method::SubscribeToTask,
    Method::CreateTaskPushNotificationConfig,
    Method::GetTaskPushNotificationConfig,
    Method::ListTaskPushNotificationConfigs,
    Method::DeleteTaskPushNotificationConfig,
    Method::GetExtendedAgentCard,
];

impl Method {
    /// Every method.
    pub fn all() -> [Self; 11] {
        METHODS
    }

    /// The method's name in `version`, if the version has it.
    pub fn name(self, version: Version) -> Option<&'static str> {
        Some(match (version, self) {
            (Version::V1_0, Self::SendMessage) => "SendMessage",
            (Version::V1_0, Self::SendStreamingMessage) => "SendStreamingMessage",
            (Version::V1_0, Self::GetTask) => "GetTask",
            (Version::V1_0, Self::ListTasks) => "ListTasks",
            (Version::V1_0, Self::CancelTask) => "CancelTask",
            (Version::V1_0, Self::SubscribeToTask) => "SubscribeToTask",
            (Version::V1_0, Self::CreateTaskPushNotificationConfig) => {
                "CreateTaskPushNotificationConfig"
            }
            (Version::V1_0, Self::GetTaskPushNotificationConfig) => "GetTaskPushNotificationConfig",
            (Version::V1_0, Self::ListTaskPushNotificationConfigs) => {
                "ListTaskPushNotificationConfigs"
            }
            (Version::V1_0, Self::DeleteTaskPushNotificationConfig) => {
                "DeleteTaskPushNotificationConfig"
            }
            (Version::V1_0, Self::GetExtendedAgentCard) => "GetExtendedAgentCard",
            (Version::V0_3, Self::SendMessage) => "message/send",
            (Version::V0_3, Self::SendStreamingMessage) => "message/stream",
            (Version::V0_3, Self::GetTask) => "tasks/get",
            (Version::V0_3, Self::ListTasks) => return None,
            (Version::V0_3, Self::CancelTask) => "tasks/cancel",
            (Version::V0_3, Self::SubscribeToTask) => "tasks/resubscribe",
            (Version::V0_3, Self::CreateTaskPushNotificationConfig) => {
                "tasks/pushNotificationConfig/set"
            }
            (Version::V0_3, Self::GetTaskPushNotificationConfig) => {
                "tasks/pushNotificationConfig/get"
            }
            (Version::V0_3, Self::ListTaskPushNotificationConfigs) => {
                "tasks/pushNotificationConfig/list"
            }
            (Version::V0_3, Self::DeleteTaskPushNotificationConfig) => {
                "tasks/pushNotificationConfig/delete"
            }
            (Version::V0_3, Self::GetExtendedAgentCard) => "agent/getAuthenticatedExtendedCard",
        })
    }

    /// The method called `name` in `version` (names of the other version are not methods).
    pub fn from_name(name: &str, version: Version) -> Option<Self> {
        METHODS
            .into_iter()
            .find(|method| method.name(version) == Some(name))
    }

    /// Answered with an event stream (SSE) rather than one response.
    pub fn is_streaming(self) -> bool {
        matches!(self, Self::SendStreamingMessage | Self::SubscribeToTask)
    }
}

/// A JSON-RPC request id: a string, a number or null, echoed as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    String(String),
    Number(serde_json::Number),
    Null,
}

impl From<&str> for Id {
    fn from(id: &str) -> Self {
        Self::String(id.to_owned())
    }
}

impl From<i64> for Id {
    fn from(id: i64) -> Self {
        Self::Number(id.into())
    }
}

/// One call, in the 1.0 model (0.3 params are converted).
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    SendMessage(v1::SendMessageRequest),
    SendStreamingMessage(v1::SendMessageRequest),
    GetTask(v1::GetTaskRequest),
    ListTasks(v1::ListTasksRequest),
    CancelTask(v1::CancelTaskRequest),
    SubscribeToTask(v1::SubscribeToTaskRequest),
    CreateTaskPushNotificationConfig(v1::TaskPushNotificationConfig),
    GetTaskPushNotificationConfig(v1::TaskPushNotificationConfigRef),
    ListTaskPushNotificationConfigs(v1::ListTaskPushNotificationConfigsRequest),
    DeleteTaskPushNotificationConfig(v1::TaskPushNotificationConfigRef),
    GetExtendedAgentCard(v1::GetExtendedAgentCardRequest),
}

impl Call {
    pub fn method(&self) -> Method {
        match self {
            Self::SendMessage(_) => Method::SendMessage,
            Self::SendStreamingMessage(_) => Method::SendStreamingMessage,
            Self::GetTask(_) => Method::GetTask,
            Self::ListTasks(_) => Method::ListTasks,
            Self::CancelTask(_) => Method::CancelTask,
            Self::SubscribeToTask(_) => Method::SubscribeToTask,
            Self::CreateTaskPushNotificationConfig(_) => Method::CreateTaskPushNotificationConfig,
            Self::GetTaskPushNotificationConfig(_) => Method::GetTaskPushNotificationConfig,
            Self::ListTaskPushNotificationConfigs(_) => Method::ListTaskPushNotificationConfigs,
            Self::DeleteTaskPushNotificationConfig(_) => Method::DeleteTaskPushNotificationConfig,
            Self::GetExtendedAgentCard(_) => Method::GetExtendedAgentCard,
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Id,
    pub version: Version,
    pub call: Call,
}

/// Limits on a request or response body, checked before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Arrays and objects nested deeper than this are refused.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 1 MiB and 64 levels.
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Why a request was refused, with the error to answer and the id to answer it with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct Rejection {
    /// The request's id if it could be read, else null.
    pub id: Id,
    pub error: RpcError,
    /// The body was over [`Limits::max_body_bytes`] (a server may answer 413 instead).
    pub too_large: bool,
}

impl Rejection {
    fn new(id: Id, error: RpcError) -> Self {
        Self {
            id,
            error,
            too_large: false,
        }
    }
}

/// The depth of the deepest array or object in `body`, counting only brackets outside
/// strings; stops and returns `None` as soon as `max` is exceeded.
pub fn check_depth(body: &[u8], max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return None;
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(deepest)
}

/// Size and depth checks, then JSON parsing.
fn parse_limited(body: &[u8], limits: &Limits) -> Result<Value, Rejection> {
    if body.len() > limits.max_body_bytes {
        return Err(Rejection {
            id: Id::Null,
            error: ErrorCode::InvalidRequest.with_message("Request body too large"),
            too_large: true,
        });
    }
    if check_depth(body, limits.max_depth).is_none() {
        return Err(Rejection::new(
            Id::Null,
            ErrorCode::InvalidRequest.with_message("JSON nested too deeply"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|_| Rejection::new(Id::Null, ErrorCode::ParseError.error()))
}

/// What every request has, read without knowing its method: a proxy that forwards calls it does
/// not handle itself reads the method name here, with the request's shape checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead {
    /// `None` for a notification.
    pub id: Option<Id>,
    pub method: String,
    /// As sent; `None` when absent.
    pub params: Option<Value>,
}

/// The first checks of [`parse_request`], in its order: the body (size, depth, JSON), then the
/// shape (an object, an id if present that is a string, a number or null, `jsonrpc: "2.0"`, a
/// string `method`). The method need not be one of A2A's, and a notification is accepted.
pub fn parse_request_head(body: &[u8], limits: &Limits) -> Result<RequestHead, Rejection> {
    let value = parse_limited(body, limits)?;
    let Value::Object(mut object) = value else {
        return Err(Rejection::new(
            Id::Null,
            ErrorCode::InvalidRequest.with_message("A request is a JSON object (no batches)"),
        ));
    };
    let id = match object.remove("id") {
        None => None,
        Some(id) => Some(serde_json::from_value::<Id>(id).map_err(|_| {
            Rejection::new(
                Id::Null,
                ErrorCode::InvalidRequest.with_message("The id is a string, a number or null"),
            )
        })?),
    };
    let invalid = |message: &str| {
        Rejection::new(
            id.clone().unwrap_or(Id::Null),
            ErrorCode::InvalidRequest.with_message(message),
        )
    };
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(invalid("jsonrpc must be \"2.0\""));
    }
    let Some(Value::String(method)) = object.remove("method") else {
        return Err(invalid("method must be a string"));
    };
    Ok(RequestHead {
        id,
        method,
        params: object.remove("params"),
    })
}

/// Parses a request body of `version`.
///
/// Batches (arrays) are refused as invalid requests. The checks run in this order, each
/// answered by the first that fails: the body and the shape ([`parse_request_head`]), the
/// method's name (`MethodNotFound`, -32601), its params (`InvalidParams`, -32602), and last the
/// id itself: a notification (no `id`) that is otherwise valid is refused with
/// `InvalidRequest` (-32600), since every A2A method has a result. A rejection carries the
/// request's id when it had one, else null.
pub fn parse_request(body: &[u8], version: Version, limits: &Limits) -> Result<Request, Rejection> {
    let RequestHead {
        id,
        method: name,
        params,
    } = parse_request_head(body, limits)?;
    // The id to answer with: a notification's error response has a null id.
    let reply_id = id.clone().unwrap_or(Id::Null);
    let refuse = |error: RpcError| Rejection::new(reply_id.clone(), error);
    let method = Method::from_name(&name, version)
        .ok_or_else(|| refuse(method_not_found(&name, version)))?;
    let params = match params {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(params @ Value::Object(_)) => params,
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidParams.with_message("params must be an object"),
            ));
        }
    };
    let call = decode_call(method, version, params).map_err(refuse)?;
    let Some(id) = id else {
        return Err(refuse(
            ErrorCode::InvalidRequest.with_message("A request needs an id"),
        ));
    };
    Ok(Request { id, version, call })
}

/// `MethodNotFound`, saying which `A2A-Version` selects the method when the other version has
/// it (a client that forgot the header otherwise learns nothing). The name is not quoted.
fn method_not_found(name: &str, version: Version) -> RpcError {
    let other = match version {
        Version::V1_0 => Version::V0_3,
        Version::V0_3 => Version::V1_0,
    };
    if Method::from_name(name, other).is_none() {
        return ErrorCode::MethodNotFound.error();
    }
    let hint = match other {
        Version::V1_0 => {
            "Method not found in A2A 0.3 (the version of a request without A2A-Version); it is \
             an A2A 1.0 method: send the header A2A-Version: 1.0"
        }
        Version::V0_3 => {
            "Method not found in A2A 1.0; it is an A2A 0.3 method: send A2A-Version: 0.3 (or no \
             A2A-Version)"
        }
    };
    ErrorCode::MethodNotFound.with_message(hint)
}

fn invalid_params(message: impl Into<String>) -> RpcError {
    ErrorCode::InvalidParams.with_message(message)
}

fn deserialize<T: DeserializeOwned>(value: Value, code: ErrorCode) -> Result<T, RpcError> {
    serde_json::from_value(value).map_err(|error| code.with_message(describe(&error)))
}

fn params<T: DeserializeOwned>(value: Value) -> Result<T, RpcError> {
    deserialize(value, ErrorCode::InvalidParams)
}

/// `value` as the 1.0 type, or as the 0.3 type converted to it; `code` if it is neither.
fn versioned<New, Old>(version: Version, value: Value, code: ErrorCode) -> Result<New, RpcError>
where
    New: DeserializeOwned,
    Old: DeserializeOwned + Into<New>,
{
    match version {
        Version::V1_0 => deserialize(value, code),
        Version::V0_3 => deserialize::<Old>(value, code).map(Into::into),
    }
}

fn require(value: &str, field: &str) -> Result<(), RpcError> {
    if value.is_empty() {
        Err(invalid_params(format!("{field} is required")))
    } else {
        Ok(())
    }
}

/// The typed params of `method` in `version`, in the 1.0 model, with required fields checked.
pub fn decode_call(method: Method, version: Version, value: Value) -> Result<Call, RpcError> {
    let v1 = version == Version::V1_0;
    let call = match method {
        Method::SendMessage | Method::SendStreamingMessage => {
            let request: v1::SendMessageRequest =
                versioned::<_, v03::MessageSendParams>(version, value, ErrorCode::InvalidParams)?;
            request
                .message
                .validate()
                .map_err(|error| invalid_params(error.to_string()))?;
            if method == Method::SendMessage {
                Call::SendMessage(request)
            } else {
                Call::SendStreamingMessage(request)
            }
        }
        Method::GetTask => {
            let request: v1::GetTaskRequest =
                versioned::<_, v03::TaskQueryParams>(version, value, ErrorCode::InvalidParams)?;
            require(&request.id, "id")?;
            Call::GetTask(request)
        }
        Method::ListTasks => Call::ListTasks(params(value)?),
        Method::CancelTask => {
            let request: v1::CancelTaskRequest =
                versioned::<_, v03::TaskIdParams>(version, value, ErrorCode::InvalidParams)?;
            require(&request.id, "id")?;
            Call::CancelTask(request)
        }
        Method::SubscribeToTask => {
            let request: v1::SubscribeToTaskRequest =
                versioned::<_, v03::TaskIdParams>(version, value, ErrorCode::InvalidParams)?;
            require(&request.id, "id")?;
            Call::SubscribeToTask(request)
        }
        Method::CreateTaskPushNotificationConfig => {
            let config: v1::TaskPushNotificationConfig =
                versioned::<_, v03::TaskPushNotificationConfig>(
                    version,
                    value,
                    ErrorCode::InvalidParams,
                )?;
            require(&config.task_id, "taskId")?;
            require(&config.url, "url")?;
            Call::CreateTaskPushNotificationConfig(config)
        }
        Method::GetTaskPushNotificationConfig | Method::DeleteTaskPushNotificationConfig => {
            let reference: v1::TaskPushNotificationConfigRef =
                versioned::<_, v03::TaskPushNotificationConfigParams>(
                    version,
                    value,
                    ErrorCode::InvalidParams,
                )?;
            require(&reference.task_id, if v1 { "taskId" } else { "id" })?;
            if method == Method::GetTaskPushNotificationConfig {
                Call::GetTaskPushNotificationConfig(reference)
            } else {
                require(
                    &reference.id,
                    if v1 { "id" } else { "pushNotificationConfigId" },
                )?;
                Call::DeleteTaskPushNotificationConfig(reference)
            }
        }
        Method::ListTaskPushNotificationConfigs => {
            let request: v1::ListTaskPushNotificationConfigsRequest =
                versioned::<_, v03::TaskIdParams>(version, value, ErrorCode::InvalidParams)?;
            require(&request.task_id, if v1 { "taskId" } else { "id" })?;
            Call::ListTaskPushNotificationConfigs(request)
        }
        Method::GetExtendedAgentCard => Call::GetExtendedAgentCard(if v1 {
            params(value)?
        } else {
            v1::GetExtendedAgentCardRequest::default()
        }),
    };
    Ok(call)
}

/// The params of `call` as `version` writes them.
pub fn encode_params(call: &Call, version: Version) -> Result<Value, RpcError> {
    fn to<T: Serialize>(value: T) -> Result<Value, RpcError> {
        serde_json::to_value(value).map_err(|_| ErrorCode::InternalError.error())
    }
    let call = call.clone();
    if version == Version::V1_0 {
        return match call {
            Call::SendMessage(r) | Call::SendStreamingMessage(r) => to(r),
            Call::GetTask(r) => to(r),
            Call::ListTasks(r) => to(r),
            Call::CancelTask(r) => to(r),
            Call::SubscribeToTask(r) => to(r),
            Call::CreateTaskPushNotificationConfig(r) => to(r),
            Call::GetTaskPushNotificationConfig(r) | Call::DeleteTaskPushNotificationConfig(r) => {
                to(r)
            }
            Call::ListTaskPushNotificationConfigs(r) => to(r),
            Call::GetExtendedAgentCard(r) => to(r),
        };
    }
    match call {
        Call::SendMessage(r) | Call::SendStreamingMessage(r) => to(v03::MessageSendParams::from(r)),
        Call::GetTask(r) => to(v03::TaskQueryParams::from(r)),
        Call::ListTasks(_) => Err(ErrorCode::MethodNotFound.error()),
        Call::CancelTask(r) => to(v03::TaskIdParams::from(r)),
        Call::SubscribeToTask(r) => to(v03::TaskIdParams::from(r)),
        Call::CreateTaskPushNotificationConfig(r) => to(v03::TaskPushNotificationConfig::from(r)),
        Call::GetTaskPushNotificationConfig(r) | Call::DeleteTaskPushNotificationConfig(r) => {
            to(v03::TaskPushNotificationConfigParams::from(r))
        }
        Call::ListTaskPushNotificationConfigs(r) => to(v03::TaskIdParams::from(r)),
        Call::GetExtendedAgentCard(_) => Ok(Value::Null),
    }
}

/// A request body for `call` in `version`. `ListTasks` has no 0.3 form (`MethodNotFound`).
pub fn encode_request(id: &Id, call: &Call, version: Version) -> Result<Vec<u8>, RpcError> {
    let name = call
        .method()
        .name(version)
        .ok_or_else(|| ErrorCode::MethodNotFound.error())?;
    let params = encode_params(call, version)?;
    let mut request = json!({"jsonrpc": "2.0", "id": id, "method": name});
    if !params.is_null()
        && let Some(object) = request.as_object_mut()
    {
        object.insert("params".to_owned(), params);
    }
    serde_json::to_vec(&request).map_err(|_| ErrorCode::InternalError.error())
}

/// The result of a call, in the 1.0 model.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `SendMessage`.
    SendMessage(v1::SendMessageResponse),
    /// `GetTask`, `CancelTask`.
    Task(v1::Task),
    ListTasks(v1::ListTasksResponse),
    /// `Create…` and `GetTaskPushNotificationConfig`.
    PushConfig(v1::TaskPushNotificationConfig),
    ListPushConfigs(v1::ListTaskPushNotificationConfigsResponse),
    /// `DeleteTaskPushNotificationConfig`: `{}` in 1.0, `null` in 0.3.
    Deleted,
    AgentCard(Box<v1::AgentCard>),
    /// One event of a stream.
    Event(v1::StreamResponse),
}

/// The `result` member for `outcome` as `version` writes it.
pub fn encode_outcome(outcome: &Outcome, version: Version) -> Result<Value, RpcError> {
    serde_json::to_value(Written { outcome, version }).map_err(|_| ErrorCode::InternalError.error())
}

/// A success response body, written straight from `outcome`: no copy of a 1.0 result and no
/// intermediate JSON tree (a `GetTask` answer is the largest part of the call's own work).
pub fn encode_result(id: &Id, outcome: &Outcome, version: Version) -> Result<Vec<u8>, RpcError> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        jsonrpc: &'static str,
        id: &'a Id,
        result: Written<'a>,
    }
    serde_json::to_vec(&Envelope {
        jsonrpc: "2.0",
        id,
        result: Written { outcome, version },
    })
    .map_err(|_| ErrorCode::InternalError.error())
}

/// An outcome serialised in `version`'s form. A 1.0 result is written from the borrowed value;
/// a 0.3 result is converted from a copy first.
struct Written<'a> {
    outcome: &'a Outcome,
    version: Version,
}

impl Serialize for Written<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.version, self.outcome) {
            (Version::V1_0, Outcome::SendMessage(r)) => r.serialize(serializer),
            (Version::V1_0, Outcome::Task(r)) => r.serialize(serializer),
            (_, Outcome::ListTasks(r)) => r.serialize(serializer),
            (Version::V1_0, Outcome::PushConfig(r)) => r.serialize(serializer),
            (Version::V1_0, Outcome::ListPushConfigs(r)) => r.serialize(serializer),
            (Version::V1_0, Outcome::Deleted) => {
                serde_json::Map::<String, Value>::new().serialize(serializer)
            }
            (Version::V1_0, Outcome::AgentCard(r)) => r.serialize(serializer),
            (Version::V1_0, Outcome::Event(r)) => r.serialize(serializer),
            (Version::V0_3, Outcome::SendMessage(r)) => {
                v03::SendMessageResult::from(r.clone()).serialize(serializer)
            }
            (Version::V0_3, Outcome::Task(r)) => v03::Task::from(r.clone()).serialize(serializer),
            (Version::V0_3, Outcome::PushConfig(r)) => {
                v03::TaskPushNotificationConfig::from(r.clone()).serialize(serializer)
            }
            (Version::V0_3, Outcome::ListPushConfigs(r)) => {
                Vec::<v03::TaskPushNotificationConfig>::from(r.clone()).serialize(serializer)
            }
            (Version::V0_3, Outcome::Deleted) => serializer.serialize_unit(),
            (Version::V0_3, Outcome::AgentCard(r)) => {
                v03::AgentCard::from(r.as_ref().clone()).serialize(serializer)
            }
            (Version::V0_3, Outcome::Event(r)) => {
                v03::StreamEvent::from(r.clone()).serialize(serializer)
            }
        }
    }
}

/// An error response body. In 1.0 an A2A error without `data` gets its `ErrorInfo` detail.
pub fn encode_error(id: &Id, error: &RpcError, version: Version) -> Vec<u8> {
    let mut error = error.clone();
    if version == Version::V1_0 && error.data.is_none() {
        error = error.with_error_info(serde_json::Map::new());
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
    // A Value always serializes; the fallback keeps the function total.
    serde_json::to_vec(&body).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#
            .to_vec()
    })
}

/// A parsed response: its id and either the raw `result` or the error.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: Id,
    pub result: Result<Value, RpcError>,
}

/// Parses a response body (or one SSE event's data) with the same limits as requests.
pub fn parse_response(body: &[u8], limits: &Limits) -> Result<Response, Rejection> {
    #[derive(Deserialize)]
    struct Wire {
        jsonrpc: String,
        id: Id,
        #[serde(default, deserialize_with = "present")]
        result: Option<Value>,
        #[serde(default)]
        error: Option<RpcError>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        Value::deserialize(d).map(Some)
    }
    let value = parse_limited(body, limits)?;
    let wire: Wire = serde_json::from_value(value).map_err(|error| {
        Rejection::new(
            Id::Null,
            ErrorCode::InvalidAgentResponse.with_message(describe(&error)),
        )
    })?;
    let invalid = |message: &str| {
        Rejection::new(
            wire.id.clone(),
            ErrorCode::InvalidAgentResponse.with_message(message),
        )
    };
    if wire.jsonrpc != "2.0" {
        return Err(invalid("jsonrpc must be \"2.0\""));
    }
    let result = match (wire.result, wire.error) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(error),
        _ => return Err(invalid("a response has exactly one of result and error")),
    };
    Ok(Response {
        id: wire.id,
        result,
    })
}

/// The result of `method` as `version` wrote it, in the 1.0 model. For the streaming methods
/// this decodes one event.
pub fn decode_result(method: Method, version: Version, result: Value) -> Result<Outcome, RpcError> {
    Ok(match method {
        Method::SendMessage => Outcome::SendMessage(versioned::<_, v03::SendMessageResult>(
            version,
            result,
            ErrorCode::InvalidAgentResponse,
        )?),
        Method::SendStreamingMessage | Method::SubscribeToTask => {
            Outcome::Event(versioned::<_, v03::StreamEvent>(
                version,
                result,
                ErrorCode::InvalidAgentResponse,
            )?)
        }
        Method::GetTask | Method::CancelTask => Outcome::Task(versioned::<_, v03::Task>(
            version,
            result,
            ErrorCode::InvalidAgentResponse,
        )?),
        Method::ListTasks => {
            Outcome::ListTasks(deserialize(result, ErrorCode::InvalidAgentResponse)?)
        }
        Method::CreateTaskPushNotificationConfig | Method::GetTaskPushNotificationConfig => {
            Outcome::PushConfig(versioned::<_, v03::TaskPushNotificationConfig>(
                version,
                result,
                ErrorCode::InvalidAgentResponse,
            )?)
        }
        Method::ListTaskPushNotificationConfigs => {
            Outcome::ListPushConfigs(versioned::<_, Vec<v03::TaskPushNotificationConfig>>(
                version,
                result,
                ErrorCode::InvalidAgentResponse,
            )?)
        }
        Method::DeleteTaskPushNotificationConfig => Outcome::Deleted,
        Method::GetExtendedAgentCard => Outcome::AgentCard(Box::new(
            versioned::<_, v03::AgentCard>(version, result, ErrorCode::InvalidAgentResponse)?,
        )),
    })
}
