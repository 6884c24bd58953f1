//! Wire types shared by the Hive server, the CLI and the tests, and the one clock every layer
//! reads time from.
//!
//! JSON keys are camelCase everywhere, as in A2A.

pub mod clock;
pub mod error;
pub mod health;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use health::HealthResponse;
