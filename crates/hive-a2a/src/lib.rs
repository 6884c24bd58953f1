//! The Agent2Agent (A2A) protocol on its own: serde types for A2A 1.0 ([`v1`]) and 0.3
//! ([`v03`]) with conversions between them ([`convert`]), the JSON-RPC 2.0 binding
//! ([`jsonrpc`], errors in [`error`]), Server-Sent Events framing ([`sse`]), a client over a
//! pluggable transport ([`client`]) and the task state machine ([`state_machine`]: how events
//! fold into a task, and cancellation).
//!
//! The crate depends on no other part of Hive and carries no HTTP server or HTTP client, so any
//! project can use it with its own stack:
//!
//! - a **server** reads the `A2A-Version` header with [`jsonrpc::Version::from_header`], parses
//!   the body with [`jsonrpc::parse_request`] (size and depth limits first), handles the
//!   [`jsonrpc::Call`] — always in the 1.0 model, 0.3 params are converted — and writes
//!   [`jsonrpc::encode_result`] / [`jsonrpc::encode_error`], or one
//!   [`sse::encode_outcome_event`] per stream event, in the caller's version;
//! - a **client** implements [`client::Transport`] for its HTTP stack and calls
//!   [`client::Client`], which speaks either version and answers in the 1.0 model.
//!
//! ```
//! use hive_a2a::jsonrpc::{self, Call, Limits, Outcome, Version};
//! use hive_a2a::v1;
//!
//! let body = br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t-1"}}"#;
//! let version = Version::from_header(None)?; // no header: 0.3
//! let request = jsonrpc::parse_request(body, version, &Limits::default())?;
//! let Call::GetTask(get) = &request.call else { return Ok(()) };
//! let task = v1::Task { id: get.id.clone(), ..Default::default() };
//! let response = jsonrpc::encode_result(&request.id, &Outcome::Task(task), version)?;
//! assert!(String::from_utf8_lossy(&response).contains(r#""kind":"task""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Debug output of every type is safe to log: part contents are shown by kind and size,
//! metadata by its keys, push-notification tokens and credentials not at all.

pub mod client;
pub mod convert;
pub mod error;
pub mod jsonrpc;
mod redact;
pub mod sse;
pub mod state_machine;
pub mod v03;
pub mod v1;
