//! The JSON body extractor: a refused body is a 400 in the one error shape, naming the field
//! (never quoting a submitted value, which may be a password).

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use hive_proto::ErrorCode;
use serde::de::DeserializeOwned;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::of(ErrorCode::BadRequest))?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|error| ApiError::new(ErrorCode::ValidationFailed, describe(&error)))
    }
}

fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let what = text.split(" at line ").next().unwrap_or_default();
    let names_fields_only = [
        "unknown field",
        "missing field",
        "unknown variant",
        "duplicate field",
    ]
    .iter()
    .any(|prefix| what.starts_with(prefix));
    if names_fields_only {
        format!("invalid request body: {what}")
    } else if error.is_syntax() || error.is_eof() {
        "invalid request body: malformed JSON".to_owned()
    } else {
        "invalid request body: a field has the wrong type or value".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        active: Option<bool>,
    }

    #[test]
    fn messages_name_fields_but_never_values() {
        let unknown = serde_json::from_str::<Login>(r#"{"email":"a","role":"x"}"#).unwrap_err();
        assert!(describe(&unknown).contains("unknown field `role`"));
        let wrong =
            serde_json::from_str::<Login>(r#"{"email":"a","active":"hunter2secret"}"#).unwrap_err();
        assert!(
            !describe(&wrong).contains("hunter2secret"),
            "{}",
            describe(&wrong)
        );
        let broken = serde_json::from_str::<Login>("{").unwrap_err();
        assert!(describe(&broken).contains("malformed"));
    }
}
