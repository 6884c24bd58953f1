//! The Agent2Agent (A2A) protocol on its own: serde types for A2A 1.0 ([`v1`]) and 0.3
//! ([`v03`]) with conversions between them, the JSON-RPC 2.0 codec ([`jsonrpc`]) and
//! Server-Sent Events framing ([`sse`]).
//!
//! The crate depends on no other part of Hive and contains no HTTP server or client: a server
//! feeds request bodies and the `A2A-Version` header to [`jsonrpc`], and writes what it returns;
//! a client encodes requests with [`jsonrpc`] and decodes responses and event streams with
//! [`jsonrpc`] and [`sse`]. See `docs/a2a.md` for a tour.
//!
//! Debug output of every type is safe to log: part contents and push-notification secrets are
//! shown only by kind and size.

pub mod client;
pub mod convert;
pub mod error;
pub mod jsonrpc;
mod redact;
pub mod sse;
pub mod v03;
pub mod v1;
