//! Short-lived sign-in flow state kept on the server: an OIDC login's `state`, nonce and PKCE
//! verifier, a WebAuthn ceremony's challenge. The client holds a random handle; the row is found
//! by its SHA-256 and taken exactly once.

use crate::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest payload stored (JSON).
pub const MAX_CHALLENGE_PAYLOAD: usize = 16 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct ChallengeRow {
    /// SHA-256 hex of the handle the client holds (a ≥256-bit random value).
    pub key_hash: String,
    /// What the flow is (`oidc`, `passkey.register`, …): a row is only taken for its purpose.
    pub purpose: String,
    /// The user the flow belongs to, when one is known at its start.
    pub user_id: Option<Uuid>,
    /// The flow's state as JSON; may hold values that must not leak (a PKCE verifier).
    pub payload: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

hive_proto::debug_redacted!(ChallengeRow {
    show: [purpose, user_id, created_at, expires_at],
    hide: [key_hash, payload]
});

/// Flow state changes nobody's data, so it is not audited; the flows audit their outcome.
#[async_trait]
pub trait ChallengeRepo: Send + Sync {
    /// Stores a flow's state. [`StoreError::Conflict`] if the handle is already taken;
    /// [`StoreError::Invalid`] for a payload over [`MAX_CHALLENGE_PAYLOAD`].
    async fn put(&self, challenge: &ChallengeRow) -> Result<(), StoreError>;

    /// Deletes and returns the state stored under `key_hash` for `purpose`, atomically: of
    /// concurrent callers one gets it. An expired row answers `None` (and is deleted too).
    async fn take(
        &self,
        purpose: &str,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ChallengeRow>, StoreError>;

    /// Deletes every expired row; returns how many.
    async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Refuses a payload the databases would refuse less clearly.
pub fn check_challenge(challenge: &ChallengeRow) -> Result<(), StoreError> {
    if challenge.payload.len() > MAX_CHALLENGE_PAYLOAD {
        return Err(StoreError::Invalid(format!(
            "a sign-in flow's state is limited to {MAX_CHALLENGE_PAYLOAD} bytes"
        )));
    }
    Ok(())
}
