use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `GET /api/health`: `{"ok":true}`, or `{"ok":false}` (503) when a deep check
/// fails. It never says why: the detail is for authenticated operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthResponse {
    pub ok: bool,
}
