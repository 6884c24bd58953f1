//! The Agent2Agent (A2A) protocol on its own: serde types for A2A 1.0 and 0.3, the JSON-RPC 2.0
//! codec, SSE framing and a client. The crate depends on nothing else of Hive so that other
//! projects can use it.
//!
//! The types arrive with the A2A gateway issue; the crate exists now so that the layering of the
//! workspace is fixed from the start.
