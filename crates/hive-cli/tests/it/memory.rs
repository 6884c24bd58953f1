//! Memory the process keeps after a burst of logins: each password check takes 19 MiB
//! (Argon2id), and that memory must go back, not stay behind in the allocator's arenas.

use crate::accounts::create_admin;
use crate::process::{HiveProcess, client, resident_kib};

/// The bound of docs/operations.md: resident memory after 100 concurrent logins, once they
/// have all been answered. With mimalloc it is 75–160 MiB (the start's, plus at most the four
/// buffers of the hashing permits not yet handed back); with glibc's malloc it was 600–900 MiB.
const RSS_BOUND_KIB: u64 = 256 * 1024;

#[tokio::test]
async fn memory_goes_back_after_a_hundred_concurrent_logins() {
    let dir = tempfile::tempdir().unwrap();
    create_admin(dir.path(), "root@example.com").await;
    // Out of the login limit's way: the burst comes from one address.
    let limits = [("HIVE_RATE_LIMITS", "login=10000/1m,api=100000/1m")];
    let hive = HiveProcess::start(dir.path(), &limits).await;
    let before = resident_kib(hive.pid());
    let http = client();
    let url = format!("{}/api/v1/auth/login", hive.base_url);
    // Distinct accounts (known and unknown), so that every attempt hashes a password.
    let logins = (0..100).map(|i| {
        let body = serde_json::json!({
            "email": if i == 0 { "root@example.com".to_owned() } else { format!("user{i}@example.com") },
            "password": "not the password of anyone",
        });
        http.post(&url).json(&body).send()
    });
    for answer in futures_util::future::join_all(logins).await {
        assert_eq!(answer.unwrap().status(), 401);
    }
    let after = resident_kib(hive.pid());
    assert!(
        after < RSS_BOUND_KIB,
        "resident memory {after} KiB after 100 concurrent logins (at start {before} KiB; bound {RSS_BOUND_KIB} KiB)"
    );
    let (status, _, _) = hive.stop().await;
    assert!(status.success());
}

/// The allocator's options in the environment the server runs with (its `/proc/<pid>/environ`).
fn allocator_options(pid: u32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|byte| *byte == 0)
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .filter(|entry| entry.starts_with("MIMALLOC_"))
        .collect()
}

#[tokio::test]
async fn the_server_runs_with_the_allocator_tuned_unless_the_operator_chose() {
    let dir = tempfile::tempdir().unwrap();
    let hive = HiveProcess::start(dir.path(), &[]).await;
    let mut options = allocator_options(hive.pid());
    options.sort();
    assert_eq!(
        options,
        ["MIMALLOC_ARENA_EAGER_COMMIT=0", "MIMALLOC_PURGE_DELAY=50"],
        "the server started itself again with the options set, under the same pid"
    );
    let (status, _, _) = hive.stop().await;
    assert!(status.success());

    let chosen = [("MIMALLOC_PURGE_DELAY", "1000")];
    let hive = HiveProcess::start(dir.path(), &chosen).await;
    let mut options = allocator_options(hive.pid());
    options.sort();
    assert_eq!(
        options,
        ["MIMALLOC_ARENA_EAGER_COMMIT=0", "MIMALLOC_PURGE_DELAY=1000"]
    );
    let (status, _, _) = hive.stop().await;
    assert!(status.success());
}
