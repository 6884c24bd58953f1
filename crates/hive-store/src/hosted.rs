//! Hosted agents as stored: the versions of each agent's bundle (the archive itself, its digest
//! and manifest) with the one that runs, and the lease that says which replica runs it.

use crate::{AuditAppend, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// Largest archive a bundle row holds (the service refuses larger ones first).
pub const MAX_BUNDLE_ARCHIVE_BYTES: usize = 64 * 1024 * 1024;
/// Largest manifest text a bundle row holds.
pub const MAX_BUNDLE_MANIFEST_BYTES: usize = 64 * 1024;
/// Longest node name and node address a lease holds.
pub const MAX_LEASE_NODE_CHARS: usize = 200;
pub const MAX_LEASE_ADDRESS_CHARS: usize = 2048;

/// One version of an agent's bundle, without its archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRow {
    pub agent_id: Uuid,
    /// 1 for the first upload of an agent, then one more than the highest ever stored (a
    /// number is never reused, even after its version was pruned).
    pub version: i64,
    /// Lower-case hex SHA-256 of the archive.
    pub sha256: String,
    pub size_bytes: i64,
    /// The manifest's text as the bundle holds it.
    pub manifest: String,
    /// Who uploaded it (none once that account is deleted).
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    /// Whether this is the version the agent runs (exactly one per agent that has bundles).
    pub active: bool,
}

/// What [`HostedRepo::push_bundle`] stores.
#[derive(Debug, Clone)]
pub struct NewBundle<'a> {
    pub agent_id: Uuid,
    pub sha256: &'a str,
    pub manifest: &'a str,
    pub archive: &'a [u8],
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

/// The replica that runs a hosted agent, until `expires_at` unless it renews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub agent_id: Uuid,
    /// The holder's node name.
    pub node: String,
    /// Where the other replicas reach the holder (its internal URL; empty when it has none).
    pub address: String,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait HostedRepo: Send + Sync {
    /// Stores a new version of the agent's bundle and makes it the active one, keeping at most
    /// `keep` versions (the oldest others deleted; the new one is never among them), with the
    /// audit record in the same transaction. Answers the stored row.
    /// [`StoreError::NotFound`] when the agent is gone; [`StoreError::Invalid`] for an archive
    /// or manifest over its cap.
    async fn push_bundle(
        &self,
        bundle: &NewBundle<'_>,
        keep: u32,
        audit: AuditAppend<'_>,
    ) -> Result<BundleRow, StoreError>;

    /// The agent's stored versions, newest first.
    async fn list_bundles(&self, agent_id: Uuid) -> Result<Vec<BundleRow>, StoreError>;

    /// The active version with its archive.
    async fn active_bundle(
        &self,
        agent_id: Uuid,
    ) -> Result<Option<(BundleRow, Vec<u8>)>, StoreError>;

    /// Makes `version` the active one (a rollback), with the audit record in the same
    /// transaction. `Ok(false)`, with nothing written, when the agent has no such version.
    async fn activate_bundle(
        &self,
        agent_id: Uuid,
        version: i64,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;

    /// Takes the agent's lease for `node` until `until`: granted when there is none, when it
    /// expired before `now`, or when `node` holds it already (then it is extended and its
    /// address updated). `Ok(false)` when another node holds it, or the agent is gone.
    async fn take_lease(
        &self,
        agent_id: Uuid,
        node: &str,
        address: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Extends every lease `node` holds that has not expired before `now` to `until`, and
    /// answers the agents whose leases it still holds (a lease it lost is not among them).
    async fn renew_leases(
        &self,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Gives the lease up if `node` holds it.
    async fn release_lease(&self, agent_id: Uuid, node: &str) -> Result<(), StoreError>;

    /// The agent's lease, if any (expired or not: the caller compares `expires_at`).
    async fn lease_of(&self, agent_id: Uuid) -> Result<Option<LeaseRow>, StoreError>;
}

/// Refuses a bundle the databases would refuse less clearly.
pub fn check_bundle(bundle: &NewBundle<'_>) -> Result<(), StoreError> {
    if bundle.archive.len() > MAX_BUNDLE_ARCHIVE_BYTES {
        return Err(StoreError::Invalid(format!(
            "a bundle's archive is at most {MAX_BUNDLE_ARCHIVE_BYTES} bytes"
        )));
    }
    if bundle.manifest.len() > MAX_BUNDLE_MANIFEST_BYTES {
        return Err(StoreError::Invalid(format!(
            "a bundle's manifest is at most {MAX_BUNDLE_MANIFEST_BYTES} bytes"
        )));
    }
    let hex = bundle.sha256.len() == 64
        && bundle
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(StoreError::Invalid(
            "a bundle's digest is 64 lower-case hex characters".into(),
        ));
    }
    Ok(())
}
