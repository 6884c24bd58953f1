use crate::dialect::SqliteDialect;
use hive_store::sqlx_support::hosted::HostedSql;
use hive_store::{bundle_columns, lease_columns};

/// Every write transaction begins `IMMEDIATE` on the single writer: the holds are plain reads.
impl HostedSql for SqliteDialect {
    const HOLD_AGENT: &'static str = "SELECT id FROM agents WHERE id = ?1";
    const NEXT_VERSION: &'static str = "INSERT INTO agent_bundle_counters (agent_id, last_version) \
         VALUES (?1, 1) \
         ON CONFLICT (agent_id) DO UPDATE SET last_version = last_version + 1 \
         RETURNING last_version AS version";
    const HOLD_BUNDLES: &'static str =
        "SELECT last_version FROM agent_bundle_counters WHERE agent_id = ?1";
    const DEACTIVATE_OTHERS: &'static str = "UPDATE agent_bundles SET active = 0 \
         WHERE agent_id = ?1 AND active = 1 AND version != ?2";
    const INSERT: &'static str = concat!(
        "INSERT INTO agent_bundles (agent_id, version, sha256, size_bytes, manifest, archive, \
         created_by, created_at, active) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1) RETURNING ",
        bundle_columns!()
    );
    const PRUNE: &'static str = "DELETE FROM agent_bundles WHERE agent_id = ?1 AND version < \
         (SELECT version FROM agent_bundles WHERE agent_id = ?1 \
          ORDER BY version DESC LIMIT 1 OFFSET ?2)";
    const LIST: &'static str = concat!(
        "SELECT ",
        bundle_columns!(),
        " FROM agent_bundles WHERE agent_id = ?1 ORDER BY version DESC"
    );
    const ACTIVE: &'static str = concat!(
        "SELECT ",
        bundle_columns!(),
        ", archive FROM agent_bundles WHERE agent_id = ?1 AND active = 1"
    );
    const ACTIVATE: &'static str =
        "UPDATE agent_bundles SET active = 1 WHERE agent_id = ?1 AND version = ?2";
    // The WHERE of the SELECT also keeps SQLite from reading ON CONFLICT as a join's ON.
    const TAKE_LEASE: &'static str = "INSERT INTO hosted_leases (agent_id, node, address, \
         expires_at) SELECT id, ?2, ?3, ?5 FROM agents WHERE id = ?1 \
         ON CONFLICT (agent_id) DO UPDATE SET node = excluded.node, \
           address = excluded.address, expires_at = excluded.expires_at \
         WHERE hosted_leases.expires_at < ?4 OR hosted_leases.node = excluded.node \
         RETURNING agent_id";
    const RENEW_LEASES: &'static str = "UPDATE hosted_leases SET expires_at = ?3 \
         WHERE node = ?1 AND expires_at >= ?2 RETURNING agent_id";
    const RELEASE_LEASE: &'static str =
        "DELETE FROM hosted_leases WHERE agent_id = ?1 AND node = ?2";
    const LEASE: &'static str = concat!(
        "SELECT ",
        lease_columns!(),
        " FROM hosted_leases WHERE agent_id = ?1"
    );
}
