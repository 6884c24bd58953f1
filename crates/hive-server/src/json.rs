//! The JSON body extractor: a refused body is a 400 in the one error shape, naming the field
//! (never quoting a submitted value, which may be a password).

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use hive_proto::ErrorCode;
use serde::de::DeserializeOwned;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        // The pipeline's body limit applies; no second one here.
        let bytes = read_body(request.into_body(), usize::MAX).await?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|error| ApiError::new(ErrorCode::ValidationFailed, describe(&error)))
    }
}

/// Reads a whole request body of at most `limit` bytes (and the pipeline's limit): a body over
/// either is 413, whether it came with a `Content-Length` or chunked; a broken one is 400.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        if is_length_limit(&error) {
            ApiError::of(ErrorCode::PayloadTooLarge)
        } else {
            ApiError::of(ErrorCode::BadRequest)
        }
    })
}

fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

fn describe(error: &serde_json::Error) -> String {
    format!("invalid request body: {}", hive_a2a::error::describe(error))
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
        assert!(describe(&broken).contains("EOF while parsing"));
    }
}
