//! Hosted agents' bundle versions and replica leases, on any sqlx dialect: the dialect supplies
//! its SQL, including how it holds an agent and its bundles still while they are written.

use super::dialect::{BindValue, Dialect, Pools};
use super::{commit_audited, commit_if, get, rows};
use crate::{
    AuditAppend, BundleRow, HostedRepo, LeaseRow, MAX_LEASE_ADDRESS_CHARS, MAX_LEASE_NODE_CHARS,
    NewBundle, StoreError, check_bundle,
};
use async_trait::async_trait;
use sqlx::error::ErrorKind;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `agent_bundles` but the archive, as [`rows::bundle`] reads them.
#[macro_export]
macro_rules! bundle_columns {
    () => {
        "agent_id, version, sha256, size_bytes, manifest, created_by, created_at, active"
    };
}

/// The columns of `hosted_leases`, as [`rows::lease`] reads them.
#[macro_export]
macro_rules! lease_columns {
    () => {
        "agent_id, node, address, expires_at"
    };
}

/// The statements of [`SqlHosted`] in one dialect; the parameters of each are listed in the
/// order they are bound.
pub trait HostedSql: Dialect {
    /// agent id; a row when the agent exists, which it goes on doing until the transaction ends
    /// (a delete of the agent waits for it, so its cascade never meets the writes that follow).
    const HOLD_AGENT: &'static str;
    /// agent id; the agent's next version number as `version`: 1, then one more than the
    /// highest it ever had. Concurrent pushes for one agent take turns on the counter's row.
    const NEXT_VERSION: &'static str;
    /// agent id; the agent's highest version number as `last_version` (no row when it never
    /// had a bundle), held until the transaction ends against the agent's other bundle writers.
    const HOLD_BUNDLES: &'static str;
    /// agent id, version; makes every other version of the agent inactive.
    const DEACTIVATE_OTHERS: &'static str;
    /// agent id, version, sha256, size, manifest, archive, created by, created at; inserts it
    /// active and returns the columns of [`bundle_columns!`].
    const INSERT: &'static str;
    /// agent id, versions to pass over (those kept but the newest); deletes the older ones.
    const PRUNE: &'static str;
    /// agent id; [`bundle_columns!`], newest first.
    const LIST: &'static str;
    /// agent id; [`bundle_columns!`] and `archive` of the active version.
    const ACTIVE: &'static str;
    /// agent id, version; makes it active.
    const ACTIVATE: &'static str;
    /// agent id, node, address, now, until; returns a row when the node holds the lease
    /// after it (none for another holder's unexpired lease, or a missing agent).
    const TAKE_LEASE: &'static str;
    /// node, now, until; returns the `agent_id` of each lease extended.
    const RENEW_LEASES: &'static str;
    /// agent id, node.
    const RELEASE_LEASE: &'static str;
    /// agent id; the columns of [`lease_columns!`].
    const LEASE: &'static str;
}

pub struct SqlHosted<D: Dialect> {
    pub pools: Pools<D::Db>,
}

/// Refuses a node name or address the schema would refuse less clearly.
fn check_lease(node: &str, address: &str) -> Result<(), StoreError> {
    let node_chars = node.chars().count();
    if node_chars == 0 || node_chars > MAX_LEASE_NODE_CHARS {
        return Err(StoreError::Invalid(format!(
            "a lease's node name is 1 to {MAX_LEASE_NODE_CHARS} characters"
        )));
    }
    if address.chars().count() > MAX_LEASE_ADDRESS_CHARS {
        return Err(StoreError::Invalid(format!(
            "a lease's address is at most {MAX_LEASE_ADDRESS_CHARS} characters"
        )));
    }
    Ok(())
}

/// The agent was deleted between the statement's look and its write (PostgreSQL, under a
/// concurrent delete): for a lease, that is an agent that is gone.
fn is_missing_reference(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

#[async_trait]
impl<D: HostedSql> HostedRepo for SqlHosted<D> {
    async fn push_bundle(
        &self,
        bundle: &NewBundle<'_>,
        keep: u32,
        audit: AuditAppend<'_>,
    ) -> Result<BundleRow, StoreError> {
        check_bundle(bundle)?;
        let size = i64::try_from(bundle.archive.len())
            .map_err(|_| StoreError::Invalid("a bundle's archive is too large".into()))?;
        // The new version is the newest, so it is always among those kept.
        let pass_over = i64::from(keep.max(1) - 1);
        let mut tx = D::begin(&self.pools).await?;
        let agent = sqlx::query(D::HOLD_AGENT)
            .bind_value(D::id(bundle.agent_id))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if agent.is_none() {
            return Err(StoreError::NotFound);
        }
        let next = sqlx::query(D::NEXT_VERSION)
            .bind_value(D::id(bundle.agent_id))
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let version: i64 = get::<D, _>(&next, "version")?;
        sqlx::query(D::DEACTIVATE_OTHERS)
            .bind_value(D::id(bundle.agent_id))
            .bind_value(version)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let inserted = sqlx::query(D::INSERT)
            .bind_value(D::id(bundle.agent_id))
            .bind_value(version)
            .bind_value(bundle.sha256)
            .bind_value(size)
            .bind_value(bundle.manifest)
            .bind_value(bundle.archive)
            .bind_value(bundle.created_by.map(D::id))
            .bind_value(D::time(bundle.created_at))
            .fetch_one(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let row = rows::bundle::<D>(&inserted)?;
        sqlx::query(D::PRUNE)
            .bind_value(D::id(bundle.agent_id))
            .bind_value(pass_over)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        commit_audited::<D>(tx, &audit).await?;
        Ok(row)
    }

    async fn list_bundles(&self, agent_id: Uuid) -> Result<Vec<BundleRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::LIST)
            .bind_value(D::id(agent_id))
            .fetch_all(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found.iter().map(rows::bundle::<D>).collect()
    }

    async fn active_bundle(
        &self,
        agent_id: Uuid,
    ) -> Result<Option<(BundleRow, Vec<u8>)>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let found = sqlx::query(D::ACTIVE)
            .bind_value(D::id(agent_id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        found
            .map(|row| {
                Ok((
                    rows::bundle::<D>(&row)?,
                    get::<D, Vec<u8>>(&row, "archive")?,
                ))
            })
            .transpose()
    }

    async fn activate_bundle(
        &self,
        agent_id: Uuid,
        version: i64,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin(&self.pools).await?;
        // Dropping the transaction rolls back: nothing written, no audit record.
        let agent = sqlx::query(D::HOLD_AGENT)
            .bind_value(D::id(agent_id))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if agent.is_none() {
            return Ok(false);
        }
        let bundles = sqlx::query(D::HOLD_BUNDLES)
            .bind_value(D::id(agent_id))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if bundles.is_none() {
            return Ok(false);
        }
        sqlx::query(D::DEACTIVATE_OTHERS)
            .bind_value(D::id(agent_id))
            .bind_value(version)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let done = sqlx::query(D::ACTIVATE)
            .bind_value(D::id(agent_id))
            .bind_value(version)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        // No such version: the deactivation above is rolled back with the rest.
        let activated = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, activated, audit).await
    }

    async fn take_lease(
        &self,
        agent_id: Uuid,
        node: &str,
        address: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        check_lease(node, address)?;
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let taken = sqlx::query(D::TAKE_LEASE)
            .bind_value(D::id(agent_id))
            .bind_value(node)
            .bind_value(address)
            .bind_value(D::instant(now))
            .bind_value(D::time(until))
            .fetch_optional(D::on(&mut writer))
            .await;
        match taken {
            Ok(row) => Ok(row.is_some()),
            Err(e) if is_missing_reference(&e) => Ok(false),
            Err(e) => Err(D::map_error(e)),
        }
    }

    async fn renew_leases(
        &self,
        node: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        let renewed = sqlx::query(D::RENEW_LEASES)
            .bind_value(node)
            .bind_value(D::instant(now))
            .bind_value(D::time(until))
            .fetch_all(D::on(&mut writer))
            .await
            .map_err(D::map_error)?;
        let mut agents = renewed
            .iter()
            .map(|row| D::uuid_at(row, "agent_id"))
            .collect::<Result<Vec<_>, _>>()?;
        agents.sort_unstable();
        Ok(agents)
    }

    async fn release_lease(&self, agent_id: Uuid, node: &str) -> Result<(), StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::RELEASE_LEASE)
            .bind_value(D::id(agent_id))
            .bind_value(node)
            .execute(D::on(&mut writer))
            .await
            .map(|_| ())
            .map_err(D::map_error)
    }

    async fn lease_of(&self, agent_id: Uuid) -> Result<Option<LeaseRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::LEASE)
            .bind_value(D::id(agent_id))
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::lease::<D>).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_checked() {
        assert!(check_lease("node-a", "").is_ok());
        assert!(check_lease(&"n".repeat(MAX_LEASE_NODE_CHARS), &"a".repeat(2048)).is_ok());
        for (node, address) in [
            ("", ""),
            (&*"n".repeat(MAX_LEASE_NODE_CHARS + 1), ""),
            ("node-a", &*"a".repeat(MAX_LEASE_ADDRESS_CHARS + 1)),
        ] {
            assert!(
                matches!(check_lease(node, address), Err(StoreError::Invalid(_))),
                "{} {}",
                node.len(),
                address.len()
            );
        }
    }
}
