//! What writing the audit record inside each change costs: audited secret creations (a secret
//! row and its chained, HMAC'd record in one transaction) and records of their own, per second,
//! on SQLite and (when `HIVE_TEST_DATABASE_URL` is set) PostgreSQL, by 1 and 8 concurrent
//! writers; then the speed of `verify` over what was written.
//!
//! `cargo bench -p hive-core --bench audited_writes`. Prints numbers; asserts nothing. Results
//! go to docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_core::kernel::audit::{AuditChain, verify};
use hive_crypto::vault::{MasterKey, Purpose};
use hive_proto::Role;
use hive_store::{AuditAppend, AuditOutcome, AuditRecord, NewUser, SecretRow, Store, VaultKeyRow};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

fn record(action: &str) -> AuditRecord {
    AuditRecord {
        id: Uuid::now_v7(),
        at: hive_store::truncate_to_micros(OffsetDateTime::now_utc()),
        actor: "user:bench".to_owned(),
        action: action.to_owned(),
        target: None,
        outcome: AuditOutcome::Success,
        ip: Some("192.0.2.1".to_owned()),
        request_id: Some(Uuid::new_v4().to_string()),
        detail: r#"{"name":"bench","version":1}"#.to_owned(),
        link: None,
    }
}

fn secret(owner: Uuid) -> SecretRow {
    let now = hive_store::truncate_to_micros(OffsetDateTime::now_utc());
    SecretRow {
        id: Uuid::now_v7(),
        owner_id: owner,
        name: format!("s-{}", Uuid::new_v4().simple()),
        description: String::new(),
        version: 1,
        key_id: 1,
        // The size of a sealed 40-byte value.
        value: format!("1.{}.{}", "a".repeat(24), "b".repeat(112)),
        created_at: now,
        updated_at: now,
    }
}

#[derive(Clone, Copy)]
enum Work {
    AuditedSecret,
    RecordAlone,
}

async fn measure(
    name: &str,
    store: Arc<dyn Store>,
    chain: Arc<AuditChain>,
    owner: Uuid,
    work: Work,
    tasks: usize,
    per_task: usize,
) {
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, chain) = (store.clone(), chain.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let one = Instant::now();
                    match work {
                        Work::AuditedSecret => {
                            let row = secret(owner);
                            let note = record("secret.create");
                            let audit = AuditAppend {
                                record: &note,
                                hasher: chain.as_ref(),
                            };
                            store.secrets().create(&row, audit).await.unwrap();
                        }
                        Work::RecordAlone => {
                            let note = record("auth.login");
                            store.audit().append(&note, chain.as_ref()).await.unwrap();
                        }
                    }
                    latencies.push(one.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let total = latencies.len();
    println!(
        "{name:<44} {:>8.0}/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({total}, {tasks} tasks)",
        total as f64 / elapsed.as_secs_f64(),
        latencies[total / 2].as_secs_f64() * 1e3,
        latencies[total * 99 / 100].as_secs_f64() * 1e3,
    );
}

async fn run(backend: &str, store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    let chain = Arc::new(AuditChain::new(
        MasterKey::from_bytes(&[7; 32]).derive(Purpose::AuditChain),
    ));
    let setup = record("setup");
    let audit = AuditAppend {
        record: &setup,
        hasher: chain.as_ref(),
    };
    let now = hive_store::truncate_to_micros(OffsetDateTime::now_utc());
    store
        .vault_keys()
        .insert(&VaultKeyRow::new(1, "n.c".into(), now), audit)
        .await
        .unwrap();
    let owner = NewUser {
        id: Uuid::now_v7(),
        email: "bench@example.com".into(),
        display_name: "Bench".into(),
        role: Role::Operator,
        password_hash: None,
        created_at: now,
    };
    let owner_note = record("user.create");
    let audit = AuditAppend {
        record: &owner_note,
        hasher: chain.as_ref(),
    };
    let owner = store.users().create(&owner, audit).await.unwrap().id;
    for (label, work) in [
        ("audited secret creations", Work::AuditedSecret),
        ("records of their own", Work::RecordAlone),
    ] {
        for tasks in [1, 8] {
            let name = format!("{backend}: {label}");
            measure(
                &name,
                store.clone(),
                chain.clone(),
                owner,
                work,
                tasks,
                2_000 / tasks,
            )
            .await;
        }
    }
    let started = Instant::now();
    let report = verify(store.as_ref(), &chain).await.unwrap();
    assert!(report.first_break.is_none());
    println!(
        "{backend}: verify {:>10.0} records/s   ({} records)",
        report.checked as f64 / started.elapsed().as_secs_f64(),
        report.checked
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = hive_store_sqlite::SqliteStore::open(&dir.path().join("bench.db"), 4)
        .await
        .unwrap();
    run("sqlite", Arc::new(sqlite)).await;
    match std::env::var("HIVE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let scratch = hive_store_postgres::test_support::scratch_database(&url).await;
            let postgres = hive_store_postgres::PostgresStore::connect(scratch.url(), 10)
                .await
                .unwrap();
            run("postgres", Arc::new(postgres)).await;
        }
        _ => println!("postgres: skipped (HIVE_TEST_DATABASE_URL is not set)"),
    }
}
