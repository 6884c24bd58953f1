//! What the server knows of a request before anything decides about it: the client's address
//! and the request id (put in the request's extensions by the pipeline), whether it is a
//! federated peer's call, and which path is the public tier's. The lowest layer of the crate:
//! everything may read these, and this module imports nothing of the crate.

use hive_core::mesh::federation::{JWT_HEADER, SECRET_HEADER};
use http::{HeaderMap, HeaderValue};
use std::net::IpAddr;

/// The address rate limits, allowlists and the audit log see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
}

/// The path of the public tier's own endpoint.
pub const PUBLIC_PATH: &str = "/api/a2a/jsonrpc/public";

/// Whether the request carries either federation header: then it is a peer's call.
pub fn has_federation_headers(headers: &HeaderMap) -> bool {
    headers.contains_key(JWT_HEADER) || headers.contains_key(SECRET_HEADER)
}
