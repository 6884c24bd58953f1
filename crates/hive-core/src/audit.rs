//! The audit log's hash chain: each record's hash is an HMAC (keyed with the master key's
//! audit-chain subkey) over its place in the chain, the hash before it and its content, so an
//! edited, deleted or reordered record breaks the chain where it happened, and nobody without
//! `ENCRYPTION_KEY` can forge a consistent one.

use hive_crypto::vault::SubKey;
use hive_store::{AuditRecord, ChainHasher, GENESIS_HASH, Store, StoreError};

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
}

/// Every field, length-prefixed, so that no two records encode alike.
fn canonical(seq: i64, prev_hash: &str, record: &AuditRecord) -> Vec<u8> {
    let micros = record.at.unix_timestamp_nanos() / 1_000;
    let fields: [&[u8]; 12] = [
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
    ];
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(&u64::try_from(field.len()).unwrap_or(u64::MAX).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
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
        }
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Records checked before the first break (or all of them).
    pub checked: u64,
    /// Records older than the chain, which it cannot vouch for.
    pub unchained: u64,
    pub first_break: Option<ChainBreak>,
}

/// Walks the whole chain from its first record and stops at the first break.
pub async fn verify(store: &dyn Store, chain: &AuditChain) -> Result<Verification, StoreError> {
    let audit = store.audit();
    let unchained = audit.count_unchained().await?;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
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
                    first_break,
                });
            }
            checked += 1;
            expected_seq += 1;
            prev_hash = link.hash;
        }
    }
    Ok(Verification {
        checked,
        unchained,
        first_break: None,
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

    async fn execute(store: &SqliteStore, sql: &str) {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(store.writer_pool())
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
}
