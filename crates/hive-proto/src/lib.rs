//! Wire types shared by the Hive server, the CLI and the tests, and the one clock every layer
//! reads time from.
//!
//! JSON keys are camelCase everywhere, as in A2A.

pub mod agents;
pub mod auth;
pub mod backup;
pub mod billing;
pub mod clock;
pub mod conversations;
pub mod error;
pub mod health;
pub mod identity;
pub mod mesh;
pub mod mfa;
pub mod passkeys;
pub mod redact;
pub mod secrets;
pub mod settings;
pub mod wan;
pub mod workflows;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use health::{
    Component, ComponentHealth, ComponentState, DiskHealth, HealthReason, HealthResponse,
    JobsHealth, LastJobRun, SandboxHealth, SystemHealth,
};
pub use identity::{Role, TokenScope};
