//! The audit log's hash chain: each record's hash is an HMAC (keyed with the master key's
//! audit-chain subkey) over its place in the chain, the hash before it and its content, so an
//! edited, deleted or reordered record breaks the chain where it happened, and nobody without
//! `ENCRYPTION_KEY` can forge a consistent one. Hive writes every record into the chain, so a
//! record outside it (no `seq`) was inserted behind Hive's back: the database refuses one
//! (a trigger, as for updates and deletions) and [`verify`] names any found anyway.

use hive_crypto::vault::SubKey;
use hive_store::{
    AuditCheckpoint, AuditFilter, AuditPosition, AuditRecord, ChainHasher, CheckpointSigner,
    GENESIS_HASH, Store, StoreError,
};
use time::OffsetDateTime;

/// How many records `verify` reads at a time.
const VERIFY_BATCH: u32 = 1_000;

/// Hashes audit records with the audit-chain subkey.
pub struct AuditChain {
    key: SubKey,
}

impl std::fmt::Debug for AuditChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditChain(<keyed>)")
    }
}

impl AuditChain {
    pub fn new(key: SubKey) -> Self {
        Self { key }
    }

    /// Whether `checkpoint` was signed with this key and not changed since.
    pub fn checkpoint_is_genuine(&self, checkpoint: &AuditCheckpoint) -> bool {
        hive_crypto::constant_time_eq(
            self.sign_checkpoint(checkpoint).as_bytes(),
            checkpoint.signature.as_bytes(),
        )
    }
}

fn length_prefixed(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(&u64::try_from(field.len()).unwrap_or(u64::MAX).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

fn micros(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000
}

impl CheckpointSigner for AuditChain {
    /// Its own domain tag, so a checkpoint signature can never pass for a record hash.
    fn sign_checkpoint(&self, checkpoint: &AuditCheckpoint) -> String {
        self.key.hmac_sha256_hex(&length_prefixed(&[
            b"hive/audit-checkpoint/v1",
            &checkpoint.seq.to_be_bytes(),
            checkpoint.hash.as_bytes(),
            &micros(checkpoint.at).to_be_bytes(),
            &micros(checkpoint.created_at).to_be_bytes(),
        ]))
    }
}

/// Every field, length-prefixed, so that no two records encode alike.
fn canonical(seq: i64, prev_hash: &str, record: &AuditRecord) -> Vec<u8> {
    let micros = micros(record.at);
    length_prefixed(&[
        b"hive/audit/v1",
        &seq.to_be_bytes(),
        prev_hash.as_bytes(),
        record.id.as_bytes(),
        &micros.to_be_bytes(),
        record.actor.as_bytes(),
        record.action.as_bytes(),
        record.target.as_deref().unwrap_or("\u{0}none").as_bytes(),
        record.outcome.as_str().as_bytes(),
        record.ip.as_deref().unwrap_or("\u{0}none").as_bytes(),
        record
            .request_id
            .as_deref()
            .unwrap_or("\u{0}none")
            .as_bytes(),
        record.detail.as_bytes(),
    ])
}

impl ChainHasher for AuditChain {
    fn hash(&self, seq: i64, prev_hash: &str, record: &AuditRecord) -> String {
        self.key.hmac_sha256_hex(&canonical(seq, prev_hash, record))
    }
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The record at `seq` is not what was written (content, time or place changed).
    Altered { seq: i64 },
    /// Records are missing before `seq` (deleted), or `seq` is out of order.
    Missing { expected: i64, found: i64 },
    /// The record at `seq` does not follow the one before it (reordered or spliced).
    Unlinked { seq: i64 },
    /// The newest retention checkpoint (at `seq`) is not signed with the audit key: forged
    /// or edited, so nothing after it can be vouched for.
    ForgedCheckpoint { seq: i64 },
    /// A record with no place in the chain. Every record Hive writes has one (the chain began
    /// with the audit log itself), so this one was inserted behind Hive's back.
    Outside { id: uuid::Uuid },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { seq } => write!(f, "record {seq} was altered"),
            Self::Missing { expected, found } => {
                write!(f, "record {expected} is missing (the next one is {found})")
            }
            Self::Unlinked { seq } => {
                write!(f, "record {seq} does not follow the record before it")
            }
            Self::ForgedCheckpoint { seq } => {
                write!(
                    f,
                    "the retention checkpoint at record {seq} is forged or altered"
                )
            }
            Self::Outside { id } => write!(
                f,
                "record {id} is not in the hash chain: it was inserted outside Hive"
            ),
        }
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Records checked before the first break (or all of them).
    pub checked: u64,
    /// Records outside the chain (no `seq`). Hive writes none: any is a break.
    pub unchained: u64,
    /// The seq of the retention checkpoint the walk started after (records up to it were
    /// deleted by retention), if any.
    pub resumed_after: Option<i64>,
    pub first_break: Option<ChainBreak>,
}

/// Walks the chain from its first record, or from just after the newest retention checkpoint
/// (which must be genuine), and stops at the first break; when the chain holds, a record outside
/// it (the oldest such) is the break.
pub async fn verify(store: &dyn Store, chain: &AuditChain) -> Result<Verification, StoreError> {
    let audit = store.audit();
    let unchained = audit.count_unchained().await?;
    let (mut expected_seq, mut prev_hash, resumed_after) = match audit.latest_checkpoint().await? {
        None => (1, GENESIS_HASH.to_owned(), None),
        Some(checkpoint) if chain.checkpoint_is_genuine(&checkpoint) => {
            (checkpoint.seq + 1, checkpoint.hash, Some(checkpoint.seq))
        }
        Some(checkpoint) => {
            return Ok(Verification {
                checked: 0,
                unchained,
                resumed_after: None,
                first_break: Some(ChainBreak::ForgedCheckpoint {
                    seq: checkpoint.seq,
                }),
            });
        }
    };
    let mut checked = 0;
    loop {
        let batch = audit.chain_after(expected_seq - 1, VERIFY_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for record in batch {
            let Some(link) = record.link.clone() else {
                continue;
            };
            let first_break = if link.seq != expected_seq {
                Some(ChainBreak::Missing {
                    expected: expected_seq,
                    found: link.seq,
                })
            } else if link.prev_hash != prev_hash {
                Some(ChainBreak::Unlinked { seq: link.seq })
            } else if !hive_crypto::constant_time_eq(
                chain.hash(link.seq, &link.prev_hash, &record).as_bytes(),
                link.hash.as_bytes(),
            ) {
                Some(ChainBreak::Altered { seq: link.seq })
            } else {
                None
            };
            if first_break.is_some() {
                return Ok(Verification {
                    checked,
                    unchained,
                    resumed_after,
                    first_break,
                });
            }
            checked += 1;
            expected_seq += 1;
            prev_hash = link.hash;
        }
    }
    let outside = if unchained == 0 {
        None
    } else {
        // A position among the records outside the chain yields only those, oldest first.
        audit
            .oldest_first(&AuditFilter::all(), &AuditPosition::START, 1)
            .await?
            .into_iter()
            .find(|record| record.link.is_none())
            .map(|record| ChainBreak::Outside { id: record.id })
    };
    Ok(Verification {
        checked,
        unchained,
        resumed_after,
        first_break: outside,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_crypto::vault::{MasterKey, Purpose};
    use hive_store::AuditOutcome;
    use hive_store_sqlite::SqliteStore;
    use std::sync::Arc;
    use time::macros::datetime;

    fn chain_with(key_byte: u8) -> AuditChain {
        AuditChain::new(MasterKey::from_bytes(&[key_byte; 32]).derive(Purpose::AuditChain))
    }

    async fn store_with_records(
        chain: &AuditChain,
        count: usize,
    ) -> (Arc<SqliteStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db"), 2).await.unwrap());
        hive_store::Store::migrate(store.as_ref()).await.unwrap();
        for i in 0..count {
            let record = AuditRecord {
                id: uuid::Uuid::now_v7(),
                at: datetime!(2026-01-01 00:00 UTC) + time::Duration::seconds(i as i64),
                actor: format!("user:{i}"),
                action: "auth.login".into(),
                target: None,
                outcome: AuditOutcome::Success,
                ip: Some("192.0.2.1".into()),
                request_id: None,
                detail: format!("{{\"n\":{i}}}"),
                link: None,
            };
            hive_store::Store::audit(store.as_ref())
                .append(&record, chain)
                .await
                .unwrap();
        }
        (store, dir)
    }

    async fn try_execute(store: &SqliteStore, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(store.writer_pool())
            .await
            .map(|_| ())
    }

    /// Rewrites history as someone who owns the database would: the append-only triggers go
    /// first (Hive itself cannot get past them).
    async fn execute(store: &SqliteStore, sql: &str) {
        let drop_guards = "DROP TRIGGER IF EXISTS audit_events_append_only; \
             DROP TRIGGER IF EXISTS audit_events_cut_behind_a_checkpoint; \
             DROP TRIGGER IF EXISTS audit_events_chained_only; \
             DROP TRIGGER IF EXISTS audit_events_continue_the_chain; \
             DROP TRIGGER IF EXISTS audit_checkpoints_append_only; \
             DROP TRIGGER IF EXISTS audit_checkpoints_kept;";
        try_execute(store, drop_guards).await.unwrap();
        try_execute(store, sql).await.unwrap();
    }

    #[tokio::test]
    async fn the_database_refuses_to_rewrite_the_log() {
        let chain = chain_with(1);
        let (store, _dir) = store_with_records(&chain, 3).await;
        for statement in [
            "UPDATE audit_events SET outcome = 'failure' WHERE seq = 2",
            "UPDATE audit_events SET seq = 9 WHERE seq = 3",
            "DELETE FROM audit_events WHERE seq = 3",
            "DELETE FROM audit_events",
        ] {
            let refused = try_execute(&store, statement).await.unwrap_err();
            assert!(
                refused.to_string().contains("audit records are"),
                "{refused}"
            );
        }
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!((report.checked, report.first_break), (3, None));
    }

    /// An `INSERT` of a forged record after seq 3 of a chain (`link` is `seq, prev_hash, hash`
    /// as SQL, or `NULL, NULL, NULL`).
    fn forged_insert(id: uuid::Uuid, link: &str) -> String {
        format!(
            "INSERT INTO audit_events \
             (id, at, actor, action, target, outcome, ip, request_id, detail, seq, prev_hash, hash) \
             VALUES ('{id}', 1577836800000000, 'user:forged', 'auth.login', NULL, 'success', \
             NULL, NULL, '{{}}', {link})"
        )
    }

    async fn hash_of(store: &SqliteStore, seq: i64) -> String {
        sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = ?")
            .bind(seq)
            .fetch_one(store.writer_pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_database_refuses_records_outside_the_chain() {
        let chain = chain_with(1);
        let (store, _dir) = store_with_records(&chain, 3).await;
        let end = hash_of(&store, 3).await;
        let other = hash_of(&store, 2).await;
        let fake = "ab".repeat(32);
        for link in [
            "NULL, NULL, NULL".to_owned(),
            format!("4, '{end}', NULL"),
            format!("NULL, '{end}', '{fake}'"),
            // Not the next place, or not linked to the end.
            format!("5, '{end}', '{fake}'"),
            format!("3, '{other}', '{fake}'"),
            format!("4, '{other}', '{fake}'"),
            format!("4, '{fake}', '{fake}'"),
        ] {
            let refused = try_execute(&store, &forged_insert(uuid::Uuid::now_v7(), &link))
                .await
                .unwrap_err();
            assert!(
                refused.to_string().contains("hash chain"),
                "{link}: {refused}"
            );
        }
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            (report.checked, report.unchained, report.first_break),
            (3, 0, None)
        );
        // Linked to the end, the database cannot tell a made-up hash (it has no key); verify can.
        try_execute(
            &store,
            &forged_insert(uuid::Uuid::now_v7(), &format!("4, '{end}', '{fake}'")),
        )
        .await
        .unwrap();
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(report.first_break, Some(ChainBreak::Altered { seq: 4 }));
    }

    #[tokio::test]
    async fn a_record_inserted_outside_the_chain_is_named() {
        let chain = chain_with(1);
        let (store, _dir) = store_with_records(&chain, 3).await;
        // Dated years before the chain began: its date proves nothing.
        let forged = uuid::Uuid::now_v7();
        execute(&store, &forged_insert(forged, "NULL, NULL, NULL")).await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(report.first_break, Some(ChainBreak::Outside { id: forged }));
        assert_eq!((report.checked, report.unchained), (3, 1));
        assert_eq!(
            report.first_break.unwrap().to_string(),
            format!("record {forged} is not in the hash chain: it was inserted outside Hive")
        );
        // Hive's own appends go on.
        store_append(&store, &chain).await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(report.checked, 4);
        assert_eq!(report.first_break, Some(ChainBreak::Outside { id: forged }));
    }

    async fn store_append(store: &SqliteStore, chain: &AuditChain) {
        let record = AuditRecord {
            id: uuid::Uuid::now_v7(),
            at: datetime!(2026-02-01 00:00 UTC),
            actor: "system".into(),
            action: "audit.test".into(),
            target: None,
            outcome: AuditOutcome::Success,
            ip: None,
            request_id: None,
            detail: "{}".into(),
            link: None,
        };
        hive_store::Store::audit(store)
            .append(&record, chain)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_intact_chain_verifies() {
        let chain = chain_with(1);
        let (store, _dir) = store_with_records(&chain, 5).await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            report,
            Verification {
                checked: 5,
                unchained: 0,
                resumed_after: None,
                first_break: None
            }
        );
        // Another key does not vouch for it: the chain cannot be forged without the key.
        let other = verify(store.as_ref(), &chain_with(2)).await.unwrap();
        assert_eq!(other.first_break, Some(ChainBreak::Altered { seq: 1 }));
    }

    #[tokio::test]
    async fn an_edited_record_is_found() {
        let chain = chain_with(1);
        let (store, _dir) = store_with_records(&chain, 5).await;
        execute(
            &store,
            "UPDATE audit_events SET outcome = 'failure' WHERE seq = 3",
        )
        .await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(report.first_break, Some(ChainBreak::Altered { seq: 3 }));
        assert_eq!(report.checked, 2);
    }

    #[tokio::test]
    async fn a_deleted_record_is_found() {
        let chain = chain_with(1);
        let (store, _dir) = store_with_records(&chain, 5).await;
        execute(&store, "DELETE FROM audit_events WHERE seq = 2").await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::Missing {
                expected: 2,
                found: 3
            })
        );
        // Deleting the newest records cannot be told from a shorter log by the chain alone;
        // deleting the first shows.
        execute(&store, "DELETE FROM audit_events WHERE seq = 1").await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::Missing {
                expected: 1,
                found: 3
            })
        );
    }

    #[tokio::test]
    async fn swapped_records_are_found() {
        let chain = chain_with(1);
        let (store, _dir) = store_with_records(&chain, 5).await;
        // Swap the places of records 2 and 4 (their links travel with them).
        execute(&store, "UPDATE audit_events SET seq = -2 WHERE seq = 2").await;
        execute(&store, "UPDATE audit_events SET seq = 2 WHERE seq = 4").await;
        execute(&store, "UPDATE audit_events SET seq = 4 WHERE seq = -2").await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert!(
            matches!(
                report.first_break,
                Some(ChainBreak::Unlinked { seq: 2 }) | Some(ChainBreak::Altered { seq: 2 })
            ),
            "{report:?}"
        );
        assert_eq!(report.checked, 1);
    }

    #[tokio::test]
    async fn retention_cuts_behind_a_checkpoint_that_verify_trusts_only_when_genuine() {
        use crate::kernel::jobs::{Job, JobContext, PruneAuditLog};
        let chain = Arc::new(chain_with(1));
        let (store, _dir) = store_with_records(&chain, 10).await;
        // Records are one second apart from midnight; the cut falls on the sixth.
        let clock = Arc::new(hive_proto::ManualClock::new(
            datetime!(2026-01-01 00:00:05 UTC) + time::Duration::days(365),
        ));
        let job = PruneAuditLog {
            retention_days: 365,
            every: std::time::Duration::from_secs(3600),
            chain: Arc::clone(&chain),
        };
        let ctx = JobContext {
            store: store.clone(),
            clock: clock.clone(),
        };
        let note = job.run(&ctx).await.unwrap();
        assert_eq!(note, "pruned 5 audit records; checkpoint at 5");
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            report,
            Verification {
                checked: 6,
                unchained: 0,
                resumed_after: Some(5),
                first_break: None
            },
            "records 6 to 10 and the retention record"
        );
        let retention = hive_store::Store::audit(store.as_ref())
            .list(
                &AuditFilter::action("audit.retention"),
                &hive_store::PageRequest::first(10).unwrap(),
            )
            .await
            .unwrap()
            .items;
        assert_eq!(retention.len(), 1);
        let detail: serde_json::Value = serde_json::from_str(&retention[0].detail).unwrap();
        assert_eq!(detail["deleted"], 5);
        assert_eq!(detail["checkpointSeq"], 5);
        // A second run at the same time finds nothing more to delete.
        assert_eq!(job.run(&ctx).await.unwrap(), "pruned 0 audit records");
        assert_eq!(
            verify(store.as_ref(), &chain).await.unwrap().first_break,
            None
        );

        // Another key did not sign the checkpoint.
        let other = verify(store.as_ref(), &chain_with(2)).await.unwrap();
        assert_eq!(
            other.first_break,
            Some(ChainBreak::ForgedCheckpoint { seq: 5 })
        );
        // Moving the checkpoint to hide a deletion breaks its signature.
        execute(&store, "DELETE FROM audit_events WHERE seq = 6").await;
        execute(&store, "UPDATE audit_checkpoints SET seq = 6 WHERE seq = 5").await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::ForgedCheckpoint { seq: 6 })
        );
        // Put back, the checkpoint is genuine again and the deletion shows.
        execute(&store, "UPDATE audit_checkpoints SET seq = 5 WHERE seq = 6").await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::Missing {
                expected: 6,
                found: 7
            })
        );
        // Without its checkpoint, the cut itself is a deletion.
        execute(&store, "DELETE FROM audit_checkpoints").await;
        let report = verify(store.as_ref(), &chain).await.unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::Missing {
                expected: 1,
                found: 7
            })
        );
    }
}
