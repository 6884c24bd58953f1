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
/// A field name a client sent is repeated only up to this length.
const MAX_ECHOED_NAME: usize = 32;

/// A parser's message fit for a peer or a log: what was wrong and what was expected, never the
/// value that was sent (it may be long, or someone's secret). See [`describe_message`].
pub fn describe(error: &serde_json::Error) -> String {
    describe_message(&error.to_string())
}

/// Whether a name a client sent may be repeated in a message: at most [`MAX_ECHOED_NAME`]
/// bytes of ASCII letters, digits, `_`, `-` and `.` (a field name or a path to one, never a
/// value in disguise).
pub fn is_short_plain_name(name: &str) -> bool {
    name.len() <= MAX_ECHOED_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Rewrites a serde message so it quotes nothing of the input: an unknown field keeps a short
/// plain name at most, an unknown variant and a wrong value keep only their kind, and any
/// other message that quotes something becomes a general one. The expected names and types,
/// which come from Hive's own types, stay.
pub fn describe_message(message: &str) -> String {
    // serde_json adds the position; the rest is the message.
    let message = message.split(" at line ").next().unwrap_or_default();
    let described = if let Some(rest) = message.strip_prefix("unknown field `") {
        split_quoted(rest).map(|(name, expected)| {
            let name = if is_short_plain_name(name) {
                format!("`{name}`")
            } else {
                "(a name that is not one of the fields)".to_owned()
            };
            format!("unknown field {name}{expected}")
        })
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        split_quoted(rest).map(|(_, expected)| format!("unknown value{expected}"))
    } else if let Some((kind, rest)) = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|kind| message.strip_prefix(kind).map(|rest| (kind, rest)))
    {
        // "string \"…\", expected a boolean": the unexpected value's kind, then ours.
        rest.rsplit_once(", expected ")
            .map(|(unexpected, expected)| {
                let unexpected = unexpected
                    .split(['`', '"', '\''])
                    .next()
                    .unwrap_or_default()
                    .trim();
                format!("{kind}{unexpected}, expected {expected}")
            })
    } else if message.contains(['`', '"', '\'']) && !is_about_our_fields(message) {
        None
    } else {
        Some(message.to_owned())
    };
    let mut text = described.unwrap_or_else(|| "a field has the wrong type or value".to_owned());
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

/// Splits "NAME`, expected …" (or "…`, there are no fields") at the backtick closing the
/// name the client sent: the last one followed by serde's own words, since the name itself may
/// hold backticks.
fn split_quoted(rest: &str) -> Option<(&str, &str)> {
    let end = ["`, expected ", "`, there are no "]
        .iter()
        .filter_map(|tail| rest.rfind(tail))
        .max()?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// Messages that quote only names of Hive's own types.
fn is_about_our_fields(message: &str) -> bool {
    ["missing field `", "duplicate field `"]
        .iter()
        .any(|prefix| message.starts_with(prefix))
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
    pub fn with_error_info(self, metadata: serde_json::Map<String, Value>) -> Self {
        match self.kind().and_then(ErrorCode::reason) {
            Some(reason) => self.with_detail(reason, ERROR_DOMAIN, metadata),
            None => self,
        }
    }

    /// Sets `data` to one `ErrorInfo` detail of `reason` in `domain` (metadata left out when
    /// empty): the shape every error detail here has, A2A's own or a server's.
    pub fn with_detail(
        mut self,
        reason: &str,
        domain: &str,
        metadata: serde_json::Map<String, Value>,
    ) -> Self {
        let mut info = json!({"@type": ERROR_INFO_TYPE, "reason": reason, "domain": domain});
        if !metadata.is_empty()
            && let Some(object) = info.as_object_mut()
        {
            object.insert("metadata".to_owned(), Value::Object(metadata));
        }
        self.data = Some(Value::Array(vec![info]));
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

#[cfg(test)]
mod describe_tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        kind: Kind,
        active: Option<bool>,
        count: Option<u8>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Remote,
        Llm,
    }

    fn message(json: &str) -> String {
        describe(&serde_json::from_str::<Body>(json).unwrap_err())
    }

    #[test]
    fn short_plain_names_only_are_repeated() {
        for name in ["limit", "page-size", "params.message_id", &"a".repeat(32)] {
            assert!(is_short_plain_name(name), "{name}");
        }
        for name in ["a b", "x\"y", "name`", "ünï", &"a".repeat(33)] {
            assert!(!is_short_plain_name(name), "{name}");
        }
    }

    #[test]
    fn nothing_the_client_sent_is_quoted() {
        let secret = "hunter2-SECRET";
        let unknown_variant = message(&format!(r#"{{"kind":"{secret}"}}"#));
        assert_eq!(
            unknown_variant, "unknown value, expected `remote` or `llm`",
            "{unknown_variant}"
        );
        let wrong_type = message(&format!(r#"{{"kind":"llm","active":"{secret}"}}"#));
        assert_eq!(wrong_type, "invalid type: string, expected a boolean");
        let wrong_value = message(r#"{"kind":"llm","count":-7}"#);
        assert!(!wrong_value.contains("-7"), "{wrong_value}");
        assert!(
            wrong_value.starts_with("invalid value: integer"),
            "{wrong_value}"
        );
        // A long or odd field name is not repeated; a short plain one is (typos).
        let long = "k".repeat(200_000);
        let unknown_long = message(&format!(r#"{{"kind":"llm","{long}":1}}"#));
        assert!(unknown_long.len() <= 200, "{}", unknown_long.len());
        assert!(!unknown_long.contains("kkkk"), "{unknown_long}");
        let tricky = message(r#"{"kind":"llm","a`, expected SECRET":1}"#);
        assert!(!tricky.contains("SECRET"), "{tricky}");
        assert!(
            message(r#"{"kind":"llm","activ":1}"#)
                .starts_with("unknown field `activ`, expected one of `kind`"),
            "{}",
            message(r#"{"kind":"llm","activ":1}"#)
        );
        assert_eq!(message(r#"{"active":true}"#), "missing field `kind`");
        assert_eq!(message(r#"{"kind":"#), "EOF while parsing a value");
        // A quoted value in any other message is dropped with the message.
        assert_eq!(
            describe_message("invalid character: found `z` at 1"),
            "a field has the wrong type or value"
        );
    }
}
