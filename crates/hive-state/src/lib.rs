//! Shared state that replicas must agree on: the rate limiter, the replay cache, the event bus
//! and the A2A task store, each behind one trait with an in-process backend (the embedded
//! default) and a Redis backend (the scaled shape).
//!
//! The backends arrive with the shared-state issue; the crate exists now so that the layering
//! of the workspace is fixed from the start.
