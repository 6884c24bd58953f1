//! Key rotation and import, over real HTTP and on each database: rotation while writes go on
//! loses nothing, a key at its count limit rotates by itself, concurrent rotations make one
//! key, and imported values arrive sealed while a wrong key leaves nothing behind.

use crate::support::*;
use hive_core::kernel::jobs::{Job, JobContext};
use hive_core::vault::rotation::ReencryptSecrets;
use hive_core::vault::{Vault, VaultLimits};
use hive_crypto::vault::{Context, MasterKey};
use hive_testkit::{TestServer, backends, error_body};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

const KEYS: &str = "/api/v1/admin/vault/keys";
const ROTATE: &str = "/api/v1/admin/vault/rotate";
const IMPORT: &str = "/api/v1/secrets/import";

/// Many secret writes: the `secrets` limit out of the way.
async fn busy_server(backend: hive_testkit::TestBackend) -> TestServer {
    identity_server_with(
        backend,
        &[(
            "HIVE_RATE_LIMITS",
            "login=10000/1m,register=10000/1m,setup=10000/1m,api=100000/1m,secrets=100000/1m",
        )],
    )
    .await
}

fn reencrypt_job(server: &TestServer) -> ReencryptSecrets {
    ReencryptSecrets {
        vault: server.hive.vault.clone(),
        auditor: server.hive.auditor.clone(),
        every: std::time::Duration::from_secs(300),
        // Small batches: the job pages through the table several times per run.
        batch: 7,
    }
}

fn job_context(server: &TestServer) -> JobContext {
    JobContext {
        store: server.hive.store.clone(),
        clock: server.hive.clock.clone(),
    }
}

/// Another process on the same database with the same master key (a second replica).
async fn replica(server: &TestServer, limits: VaultLimits) -> Vault {
    let master = MasterKey::from_bytes(server.hive.secrets.encryption_key.expose());
    Vault::open(
        server.hive.store.clone(),
        &master,
        server.hive.clock.clone(),
        limits,
    )
    .await
    .unwrap()
}

async fn create_secret(server: &TestServer, browser: &Browser, name: &str, value: &str) -> String {
    let response = browser
        .send(
            server,
            Method::POST,
            "/api/v1/secrets",
            Some(json!({ "name": name, "value": value })),
        )
        .await;
    assert_eq!(response.status(), 201, "create {name}");
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn update_secret(server: &TestServer, browser: &Browser, id: &str, value: &str) {
    let response = browser
        .send(
            server,
            Method::PATCH,
            &format!("/api/v1/secrets/{id}"),
            Some(json!({ "value": value })),
        )
        .await;
    assert_eq!(response.status(), 200, "update {id}");
}

async fn all_audit_records(server: &TestServer) -> Vec<hive_store::AuditRecord> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = hive_store::PageRequest::new(100, cursor.as_deref()).unwrap();
        let records = server
            .hive
            .store
            .audit()
            .list(&hive_store::AuditFilter::all(), &page)
            .await
            .unwrap();
        all.extend(records.items);
        match records.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

/// One writer's work: updates its secrets twice over and creates new ones, recording the
/// last value it wrote for each.
async fn write_while_rotating(
    server: &TestServer,
    browser: &Browser,
    prefix: &str,
    mut ids: Vec<String>,
) -> HashMap<String, String> {
    let mut latest = HashMap::new();
    for round in 1..=2 {
        for (n, id) in ids.iter().enumerate() {
            let value = format!("{prefix}-value-{n}-round-{round}");
            update_secret(server, browser, id, &value).await;
            latest.insert(id.clone(), value);
        }
        for n in 0..4 {
            let name = format!("{prefix}-new-{round}-{n}");
            let value = format!("{prefix}-created-{round}-{n}");
            let id = create_secret(server, browser, &name, &value).await;
            latest.insert(id.clone(), value);
            ids.push(id);
        }
    }
    latest
}

#[tokio::test]
async fn rotation_while_writes_go_on_loses_nothing() {
    for backend in backends() {
        let server = busy_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let (_, bob) = add_user(&server, &admin, "bob@example.com", "operator").await;
        let mut expected = HashMap::new();
        let mut ids = HashMap::new();
        for (who, browser) in [("alice", &alice), ("bob", &bob)] {
            let mut own = Vec::new();
            for n in 0..12 {
                let value = format!("{who}-first-{n}");
                let id = create_secret(&server, browser, &format!("{who}-{n}"), &value).await;
                expected.insert(id.clone(), value);
                own.push(id);
            }
            ids.insert(who, own);
        }
        let keys: Value = admin
            .send(&server, Method::GET, KEYS, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(keys["items"].as_array().unwrap().len(), 1);
        assert_eq!(keys["items"][0]["secrets"], 24);

        let job = reencrypt_job(&server);
        let ctx = job_context(&server);
        let rotate_and_reencrypt = async {
            let mut notes = Vec::new();
            for _ in 0..2 {
                let rotated = admin.send(&server, Method::POST, ROTATE, None).await;
                assert_eq!(rotated.status(), 200);
                let rotated: Value = rotated.json().await.unwrap();
                assert_eq!(rotated["created"], true);
                for _ in 0..2 {
                    notes.push(job.run(&ctx).await.unwrap());
                    tokio::task::yield_now().await;
                }
            }
            notes
        };
        let (alice_latest, bob_latest, notes) = tokio::join!(
            write_while_rotating(&server, &alice, "alice", ids["alice"].clone()),
            write_while_rotating(&server, &bob, "bob", ids["bob"].clone()),
            rotate_and_reencrypt,
        );
        expected.extend(alice_latest);
        expected.extend(bob_latest);
        // Values written under an older key while the job ran move on the next run.
        notes
            .iter()
            .for_each(|note| assert!(!note.contains("sk-"), "{note}"));
        job.run(&ctx).await.unwrap();

        let active = server.hive.vault.active_key_id().unwrap();
        assert_eq!(active, 3, "two rotations on {backend:?}");
        assert_eq!(expected.len(), 24 + 2 * 2 * 4);
        for (id, value) in &expected {
            let row = server
                .hive
                .store
                .secrets()
                .get(id.parse().unwrap(), None)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.key_id, active, "{} on {backend:?}", row.name);
            let revealed = server.hive.secrets_service.reveal(&row).await.unwrap();
            assert_eq!(
                std::str::from_utf8(&revealed).unwrap(),
                value,
                "{} on {backend:?}",
                row.name
            );
        }

        // The keys list: use counts, never material; keys 1 and 2 are retired, 3 active.
        let listed = admin.send(&server, Method::GET, KEYS, None).await;
        assert_eq!(listed.status(), 200);
        let text = listed.text().await.unwrap();
        assert!(!text.contains("wrapped"), "{text}");
        let keys: Value = serde_json::from_str(&text).unwrap();
        let items = keys["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        for (key, (active, secrets)) in items.iter().zip([(false, 0), (false, 0), (true, 40)]) {
            assert_eq!(key["active"], active, "{key}");
            assert_eq!(key["secrets"], secrets, "{key}");
            assert_eq!(key["retiredAt"].is_string(), !active, "{key}");
            assert!(key["encryptionsReserved"].as_u64().unwrap() > 0, "{key}");
        }
        let stored = server.hive.store.vault_keys().list().await.unwrap();
        assert_eq!(stored.len(), 3, "retired keys keep their material");

        // Rotations and re-encryptions are audited with counts, never values.
        let records = all_audit_records(&server).await;
        let rotations = records
            .iter()
            .filter(|r| r.action == "vault.rotate")
            .count();
        assert_eq!(rotations, 2);
        let reencrypted: u64 = records
            .iter()
            .filter(|r| r.action == "vault.reencrypt")
            .map(|r| {
                let detail: Value = serde_json::from_str(&r.detail).unwrap();
                detail["resealed"].as_u64().unwrap()
            })
            .sum();
        // How many the job moves depends on how many the writers moved first; at least one.
        assert!(reencrypted >= 1, "{reencrypted}");
        for record in &records {
            assert!(
                expected
                    .values()
                    .all(|v| !record.detail.contains(v.as_str())),
                "{}",
                record.detail
            );
        }
        server.stop().await.0.unwrap();
    }
}

async fn seal_many(vault: &Vault, context: &Context<'_>) -> Vec<u32> {
    let mut key_ids = Vec::new();
    for n in 0..25u8 {
        key_ids.push(vault.seal(&[n], context).await.unwrap().key_id);
    }
    key_ids
}

#[tokio::test]
async fn a_key_at_its_count_limit_rotates_before_sealing_across_replicas() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let limits = VaultLimits {
            reservation_block: 3,
            rotate_at: 10,
            ..VaultLimits::default()
        };
        let first = replica(&server, limits).await;
        let second = replica(&server, limits).await;
        let start = first.active_key_id().unwrap();
        let context = Context {
            table: "secrets",
            row_id: "counted",
        };
        let (a, b) = tokio::join!(seal_many(&first, &context), seal_many(&second, &context));
        let mut per_key: HashMap<u32, u64> = HashMap::new();
        for id in a.iter().chain(&b) {
            *per_key.entry(*id).or_default() += 1;
        }
        // Blocks of 3 up to 10: at most 9 seals a key, whatever the two replicas interleave.
        assert!(
            per_key.values().all(|n| *n <= 9),
            "{per_key:?} on {backend:?}"
        );
        assert!(per_key.len() >= 6, "{per_key:?}");
        let stored = server.hive.store.vault_keys().list().await.unwrap();
        assert!(
            stored.iter().all(|k| k.encryptions_reserved <= 10),
            "{stored:?}"
        );
        assert!(first.active_key_id().unwrap() > start);
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn two_concurrent_rotations_make_one_new_key() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let a = replica(&server, VaultLimits::default()).await;
        let b = replica(&server, VaultLimits::default()).await;
        let current = a.active_key_id().unwrap();
        let (ra, rb) = tokio::join!(a.rotate_from(current), b.rotate_from(current));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(
            usize::from(ra.created) + usize::from(rb.created),
            1,
            "{ra:?} {rb:?} on {backend:?}"
        );
        assert_eq!(ra.active_key_id, current + 1);
        assert_eq!(rb.active_key_id, current + 1);
        assert_eq!(
            server.hive.store.vault_keys().list().await.unwrap().len(),
            usize::try_from(current).unwrap() + 1
        );
        // The server's own vault picks the new key up when it next looks.
        server.hive.vault.refresh().await.unwrap();
        assert_eq!(server.hive.vault.active_key_id(), Some(current + 1));
        server.stop().await.0.unwrap();
    }
}

fn seed_vectors() -> Vec<Value> {
    let text = include_str!("../../../hive-crypto/tests/vectors/seed_import.json");
    let parsed: Value = serde_json::from_str(text).unwrap();
    let vectors = parsed["vectors"].as_array().unwrap().clone();
    for vector in &vectors {
        for field in ["key", "plaintext"] {
            hive_testkit::capture::canary(vector[field].as_str().unwrap_or_default());
        }
    }
    vectors
}

#[tokio::test]
async fn imported_values_are_sealed_and_a_wrong_key_leaves_nothing() {
    const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, alice) = add_user(&server, &admin, "alice@example.com", "operator").await;
        let vectors = seed_vectors();
        assert!(!vectors.is_empty());

        let count = || async {
            server
                .hive
                .store
                .secrets()
                .list(None, &hive_store::PageRequest::first(100).unwrap())
                .await
                .unwrap()
                .items
                .len()
        };
        let import = |body: Value| alice.send(&server, Method::POST, IMPORT, Some(body));

        // Refusals first: each a 400 naming the wrong input, never its content; nothing made.
        let vector = &vectors[0];
        let (key, value) = (
            vector["key"].as_str().unwrap(),
            vector["value"].as_str().unwrap(),
        );
        let garbled = format!("{}00", value);
        for (body, names) in [
            (
                json!({ "name": "x", "value": value, "key": OTHER_KEY }),
                "value",
            ),
            (
                json!({ "name": "x", "value": garbled, "key": key }),
                "value",
            ),
            (
                json!({ "name": "x", "value": "not-hex:at:all", "key": key }),
                "value",
            ),
            (
                json!({ "name": "x", "value": value, "key": &key[..62] }),
                "key",
            ),
            (
                json!({ "name": "x", "value": value, "key": "zz".repeat(32) }),
                "key",
            ),
        ] {
            let refused = import(body.clone()).await;
            assert_eq!(refused.status(), 400, "{body}");
            let error = error_body(refused).await.error;
            assert_eq!(error.code, "validation_failed");
            assert!(error.message.contains(names), "{}", error.message);
            for secret in [key, OTHER_KEY, value, vector["plaintext"].as_str().unwrap()] {
                assert!(!error.message.contains(secret), "{}", error.message);
            }
        }
        let unknown =
            import(json!({ "name": "x", "value": value, "key": key, "owner": "x" })).await;
        assert_eq!(unknown.status(), 400);
        assert_eq!(count().await, 0, "nothing created on {backend:?}");

        for (n, vector) in vectors.iter().enumerate() {
            let plaintext = vector["plaintext"].as_str().unwrap();
            let key = vector["key"].as_str().unwrap();
            let response = import(json!({
                "name": format!("imported-{n}"),
                "description": "from the old hub",
                "value": vector["value"],
                "key": key,
            }))
            .await;
            assert_eq!(response.status(), 201);
            let text = response.text().await.unwrap();
            assert!(!text.contains(plaintext) && !text.contains(key), "{text}");
            let view: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(view["version"], 1);
            let row = server
                .hive
                .store
                .secrets()
                .get(view["id"].as_str().unwrap().parse().unwrap(), None)
                .await
                .unwrap()
                .unwrap();
            assert!(
                row.value.starts_with("v1.")
                    && !row.value.contains(vector["value"].as_str().unwrap())
            );
            let revealed = server.hive.secrets_service.reveal(&row).await.unwrap();
            assert_eq!(revealed.as_slice(), plaintext.as_bytes());
        }
        assert_eq!(count().await, vectors.len());
        // The same name twice: the usual conflict.
        let again = import(json!({ "name": "imported-0", "value": value, "key": key })).await;
        assert_eq!(again.status(), 409);

        for record in all_audit_records(&server).await {
            for vector in &vectors {
                for field in ["key", "plaintext", "value"] {
                    assert!(
                        !record.detail.contains(vector[field].as_str().unwrap()),
                        "{}",
                        record.detail
                    );
                }
            }
        }
        server.stop().await.0.unwrap();
    }
}
