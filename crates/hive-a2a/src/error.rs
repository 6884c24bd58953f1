//! JSON-RPC and A2A error codes, and the error object of a response.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The error codes of JSON-RPC 2.0 and A2A (both versions use the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    TaskNotFound,
    TaskNotCancelable,
    PushNotificationNotSupported,
    UnsupportedOperation,
    ContentTypeNotSupported,
    InvalidAgentResponse,
    ExtendedAgentCardNotConfigured,
    ExtensionSupportRequired,
    VersionNotSupported,
}

/// `@type` of the `google.rpc.ErrorInfo` detail in 1.0 errors.
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";
/// `domain` of A2A's `ErrorInfo` details.
pub const ERROR_DOMAIN: &str = "a2a-protocol.org";

const ALL: [ErrorCode; 14] = [
    ErrorCode::ParseError,
    ErrorCode::InvalidRequest,
    ErrorCode::MethodNotFound,
    ErrorCode::InvalidParams,
    ErrorCode::InternalError,
    ErrorCode::TaskNotFound,
    ErrorCode::TaskNotCancelable,
    ErrorCode::PushNotificationNotSupported,
    ErrorCode::UnsupportedOperation,
    ErrorCode::ContentTypeNotSupported,
    ErrorCode::InvalidAgentResponse,
    ErrorCode::ExtendedAgentCardNotConfigured,
    ErrorCode::ExtensionSupportRequired,
    ErrorCode::VersionNotSupported,
];

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i32 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::InternalError => -32603,
            Self::TaskNotFound => -32001,
            Self::TaskNotCancelable => -32002,
            Self::PushNotificationNotSupported => -32003,
            Self::UnsupportedOperation => -32004,
            Self::ContentTypeNotSupported => -32005,
            Self::InvalidAgentResponse => -32006,
            Self::ExtendedAgentCardNotConfigured => -32007,
            Self::ExtensionSupportRequired => -32008,
            Self::VersionNotSupported => -32009,
        }
    }

    /// The code of a number, if it is one of ours.
    pub fn from_code(code: i32) -> Option<Self> {
        ALL.into_iter().find(|known| known.code() == code)
    }

    /// The A2A error type in UPPER_SNAKE_CASE without "Error" (`ErrorInfo.reason`); `None`
    /// for the JSON-RPC codes.
    pub fn reason(self) -> Option<&'static str> {
        Some(match self {
            Self::TaskNotFound => "TASK_NOT_FOUND",
            Self::TaskNotCancelable => "TASK_NOT_CANCELABLE",
            Self::PushNotificationNotSupported => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            Self::UnsupportedOperation => "UNSUPPORTED_OPERATION",
            Self::ContentTypeNotSupported => "CONTENT_TYPE_NOT_SUPPORTED",
            Self::InvalidAgentResponse => "INVALID_AGENT_RESPONSE",
            Self::ExtendedAgentCardNotConfigured => "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
            Self::ExtensionSupportRequired => "EXTENSION_SUPPORT_REQUIRED",
            Self::VersionNotSupported => "VERSION_NOT_SUPPORTED",
            Self::ParseError
            | Self::InvalidRequest
            | Self::MethodNotFound
            | Self::InvalidParams
            | Self::InternalError => return None,
        })
    }

    /// The standard message.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::ParseError => "Invalid JSON payload",
            Self::InvalidRequest => "Request payload validation error",
            Self::MethodNotFound => "Method not found",
            Self::InvalidParams => "Invalid parameters",
            Self::InternalError => "Internal error",
            Self::TaskNotFound => "Task not found",
            Self::TaskNotCancelable => "Task cannot be canceled",
            Self::PushNotificationNotSupported => "Push notifications are not supported",
            Self::UnsupportedOperation => "This operation is not supported",
            Self::ContentTypeNotSupported => "Incompatible content types",
            Self::InvalidAgentResponse => "Invalid agent response",
            Self::ExtendedAgentCardNotConfigured => "Extended agent card is not configured",
            Self::ExtensionSupportRequired => "A required extension is not supported",
            Self::VersionNotSupported => "This A2A version is not supported",
        }
    }

    /// An error with the standard message.
    pub fn error(self) -> RpcError {
        self.with_message(self.default_message())
    }

    /// An error with its own message (which the peer will see: no secrets in it).
    pub fn with_message(self, message: impl Into<String>) -> RpcError {
        RpcError {
            code: self.code(),
            message: message.into(),
            data: None,
        }
    }
}

/// At most this many bytes of a parser's message go into an error message.
const MAX_DETAIL_BYTES: usize = 160;

/// A parser's message for a peer or a log: serde quotes the offending value, which may be
/// long or someone's data, so the text is cut short.
pub fn describe(error: &serde_json::Error) -> String {
    let mut text = error.to_string();
    if text.len() > MAX_DETAIL_BYTES {
        let mut end = MAX_DETAIL_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// The known code, if any.
    pub fn kind(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// Adds a 1.0 `ErrorInfo` detail (with `metadata`, e.g. `{"taskId": …}`) for an A2A
    /// code; the JSON-RPC codes get no detail. Replaces any `data`.
    pub fn with_error_info(mut self, metadata: serde_json::Map<String, Value>) -> Self {
        if let Some(reason) = self.kind().and_then(ErrorCode::reason) {
            let mut info =
                json!({"@type": ERROR_INFO_TYPE, "reason": reason, "domain": ERROR_DOMAIN});
            if !metadata.is_empty()
                && let Some(object) = info.as_object_mut()
            {
                object.insert("metadata".to_owned(), Value::Object(metadata));
            }
            self.data = Some(Value::Array(vec![info]));
        }
        self
    }

    /// The `reason` of the first `ErrorInfo` detail (1.0), if there is one.
    pub fn error_info_reason(&self) -> Option<&str> {
        self.data
            .as_ref()?
            .as_array()?
            .iter()
            .find(|detail| detail["@type"] == ERROR_INFO_TYPE)?
            .get("reason")?
            .as_str()
    }
}
