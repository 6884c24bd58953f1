//! The Hive HTTP server: the request pipeline, the routers and the handlers that adapt
//! `hive-core` services to HTTP.
//!
//! The pipeline runs, outermost first: sensitive-header redaction → request id → access log
//! span → error rendering → catch panic → request head (target length, duplicated
//! credentials) → timeout → body rules (limit, content type) →
//! client IP → CORS → security headers → rate limit → authentication → authorization (per
//! route, from the route table) → handler. Beneath it all, the `connections` module holds each
//! connection to its timeouts and caps.
//!
//! Modules import only those below them: `error`, `request`, `connections` → `json`, `streams`
//! → `state` → `auth` → `pipeline` → `routes` → `serve` (docs/architecture.md has the table a
//! test checks).

pub mod auth;
mod connections;
pub mod error;
mod json;
pub mod metrics;
mod pipeline;
mod request;
mod routes;
mod serve;
pub mod state;
mod streams;

pub use error::ApiError;
pub use request::{ClientIp, RequestId};
pub use routes::{Route, RouteEntry, mount, not_found, openapi, route, route_table, views};
pub use serve::{ServeError, router, router_with, router_with_fallback, serve, serve_app};
pub use state::AppState;
