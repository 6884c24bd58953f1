//! The backup service in a running server: the leader's schedule makes one archive per fire
//! time across a change of leader (two replicas of one PostgreSQL database, each on a manual
//! clock), retention deletes the oldest archives by count and by age, and without a recipient
//! no backup is made.

use hive_core::backup::BackupError;
use hive_core::kernel::caller::{Caller, RequestMeta};
use hive_store::{JobOutcome, PageRequest};
use hive_testkit::{TestBackend, TestEnvironment, TestServer};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

/// The keys both replicas of one deployment share.
const SHARED: [(&str, &str); 2] = [
    (
        "ENCRYPTION_KEY",
        "5a0f3c9e81d27b64a5c8f01e3d9b2a7c6e4f8d1b0a3c5e7f9d2b4a6c8e0f1d3b",
    ),
    ("AUTH_SECRET", "Vq3mX8rT1wZ6pK9sB4nL7dF2hJ5gC0yA"),
];
/// A public key only: these tests never read an archive back.
const RECIPIENT: &str = "age1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5z5tpwxqergd3c8g7rusqmwn7f2";
/// Where every test server's manual clock starts.
const START: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The times (from their names) of the archives in `dir`, oldest first.
fn archive_times(dir: &Path) -> Vec<String> {
    let mut times: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
                .filter(|name| name.starts_with("hive-backup-") && name.ends_with(".age"))
                .map(|name| name["hive-backup-".len()..][..16].to_owned())
                .collect()
        })
        .unwrap_or_default();
    times.sort();
    times
}

fn at(offset: time::Duration) -> String {
    let time = START + offset;
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let waiting = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 60 s"));
}

/// The finished runs of `job` (start time on the clock, node, outcome), oldest first.
async fn runs(server: &TestServer, job: &str) -> Vec<(OffsetDateTime, String, JobOutcome)> {
    let page = server
        .hive
        .store
        .job_runs()
        .list(Some(job), &PageRequest::first(100).unwrap())
        .await
        .unwrap();
    let mut runs: Vec<_> = page
        .items
        .into_iter()
        .filter(|run| run.finished_at.is_some())
        .map(|run| (run.started_at, run.node_id, run.outcome))
        .collect();
    runs.sort_by_key(|run| run.0);
    runs
}

#[tokio::test]
async fn the_schedule_makes_one_backup_per_fire_time_across_a_change_of_leader() {
    if hive_testkit::postgres_admin_url().is_none() {
        return;
    }
    let database = hive_testkit::scratch_postgres().await;
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_str().unwrap();
    let replica = async || {
        let mut pairs = vars(&SHARED);
        pairs.extend(vars(&[
            ("DATABASE_URL", database.url()),
            ("HIVE_JOBS_TICK_SECONDS", "1"),
            ("HIVE_BACKUP_DIR", dir),
            ("HIVE_BACKUP_RECIPIENTS", RECIPIENT),
            ("HIVE_BACKUP_SCHEDULE", "* * * * *"),
            ("HIVE_BACKUP_KEEP", "0"),
        ]));
        let environment = TestEnvironment::new(TestBackend::Sqlite).await;
        TestServer::start_in(environment, pairs, axum::Router::new()).await
    };
    let a = replica().await;
    let b = replica().await;

    // Minute 1: whichever replica leads makes the one backup.
    for server in [&a, &b] {
        server.clock.advance(time::Duration::minutes(1));
    }
    wait_for("the first backup", async || {
        !runs(&a, "backup").await.is_empty()
    })
    .await;
    assert_eq!(archive_times(backups.path()).len(), 1);
    let made = runs(&a, "backup").await;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].2, JobOutcome::Succeeded, "{made:?}");
    let (old, survivor) = if made[0].1 == a.hive.node_id {
        (a, b)
    } else {
        (b, a)
    };

    // The leader stops; minutes 2 to 4 pass while nobody leads. The survivor takes the lead
    // and makes one backup for the fire times missed, not one each.
    old.stop().await.0.unwrap();
    survivor.clock.advance(time::Duration::seconds(3 * 60 + 30));
    wait_for("the survivor's backup", async || {
        runs(&survivor, "backup").await.len() == 2
    })
    .await;
    // Later ticks of the same minute make none: a job the runner runs every tick shows that
    // the survivor's runner ticked past it.
    survivor.clock.advance(time::Duration::seconds(10));
    let later = START + time::Duration::seconds(4 * 60 + 40);
    wait_for("a later tick of the survivor", async || {
        runs(&survivor, "release-billing-holds")
            .await
            .iter()
            .any(|(started, node, _)| *started >= later && *node == survivor.hive.node_id)
    })
    .await;
    assert_eq!(
        archive_times(backups.path()),
        [
            at(time::Duration::minutes(1)),
            at(time::Duration::seconds(4 * 60 + 30))
        ]
    );
    let made = runs(&survivor, "backup").await;
    assert_eq!(made.len(), 2, "{made:?}");
    assert_eq!(made[1].1, survivor.hive.node_id);
    survivor.stop().await.0.unwrap();
}

#[tokio::test]
async fn retention_deletes_the_oldest_archives_by_count_and_by_age() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_str().unwrap();
    let environment = TestEnvironment::new(TestBackend::Sqlite).await;
    let server = TestServer::start_in(
        environment,
        vars(&[
            ("HIVE_BACKUP_DIR", dir),
            ("HIVE_BACKUP_RECIPIENTS", RECIPIENT),
            ("HIVE_BACKUP_KEEP", "2"),
            ("HIVE_BACKUP_KEEP_DAYS", "1"),
        ]),
        axum::Router::new(),
    )
    .await;
    let meta = RequestMeta::default();
    let make = async || {
        server
            .hive
            .backups
            .create(&Caller::cli(), &meta)
            .await
            .unwrap()
    };
    for _ in 0..3 {
        server.clock.advance(time::Duration::minutes(1));
        make().await;
    }
    // By count: the newest two.
    assert_eq!(
        archive_times(backups.path()),
        [
            at(time::Duration::minutes(2)),
            at(time::Duration::minutes(3))
        ]
    );
    // By age: two days on, both are older than a day; the new one stays alone.
    server.clock.advance(time::Duration::days(2));
    let newest = make().await;
    assert_eq!(
        archive_times(backups.path()),
        [at(time::Duration::days(2) + time::Duration::minutes(3))]
    );
    let listed = server.hive.backups.list(&Caller::cli()).await.unwrap();
    assert_eq!(listed, [newest]);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn without_a_recipient_no_backup_is_made() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("archives");
    let environment = TestEnvironment::new(TestBackend::Sqlite).await;
    let server = TestServer::start_in(
        environment,
        vars(&[("HIVE_BACKUP_DIR", dir.to_str().unwrap())]),
        axum::Router::new(),
    )
    .await;
    let refused = server
        .hive
        .backups
        .create(&Caller::cli(), &RequestMeta::default())
        .await
        .unwrap_err();
    assert!(matches!(refused, BackupError::NoRecipient), "{refused}");
    assert!(refused.to_string().contains("HIVE_BACKUP_RECIPIENTS"));
    assert!(!dir.exists(), "nothing was written");
    server.stop().await.0.unwrap();
}

/// The S3-compatible server of the S3 test: moto's, from PyPI (`.ci/run` installs it).
const S3_SERVER: &str = "HIVE_TEST_S3_SERVER";

/// moto's S3 server on a free loopback port (killed when dropped) and its URL.
async fn moto(program: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(program)
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{S3_SERVER}={program} does not start: {e}"));
    // It says where it listens ("Running on http://127.0.0.1:PORT") on standard error.
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("http://127.0.0.1:") {
                return line[at..].trim().to_owned();
            }
        }
        panic!("moto_server exited before it listened");
    })
    .await
    .expect("moto_server listens within 60 s");
    // Keep reading, so that a full pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, found)
}

#[tokio::test]
async fn archives_go_to_an_s3_compatible_bucket_and_retention_applies_there() {
    // CI must run it: .ci/run installs moto[server] and names its moto_server here.
    let Some(program) = hive_store::test_env::service_url(S3_SERVER) else {
        return;
    };
    let (_moto, endpoint) = moto(&program).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // moto takes an unsigned request to make the bucket.
    let made = http
        .put(format!("{endpoint}/hive-archives"))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{}", made.status());

    let backups = tempfile::tempdir().unwrap();
    let environment = TestEnvironment::new(TestBackend::Sqlite).await;
    let server = TestServer::start_in(
        environment,
        vars(&[
            ("HIVE_BACKUP_DIR", backups.path().to_str().unwrap()),
            ("HIVE_BACKUP_RECIPIENTS", RECIPIENT),
            ("HIVE_BACKUP_KEEP", "2"),
            ("HIVE_BACKUP_S3_BUCKET", "hive-archives"),
            ("HIVE_BACKUP_S3_ENDPOINT", &endpoint),
            ("HIVE_BACKUP_S3_PREFIX", "prod/hive"),
            ("HIVE_BACKUP_S3_ACCESS_KEY_ID", "testing-key-id"),
            (
                "HIVE_BACKUP_S3_SECRET_ACCESS_KEY",
                "testing-secret-access-key-0123456789",
            ),
        ]),
        axum::Router::new(),
    )
    .await;
    let cli = Caller::cli();
    let meta = RequestMeta::default();
    let mut made = Vec::new();
    for _ in 0..3 {
        server.clock.advance(time::Duration::minutes(1));
        made.push(server.hive.backups.create(&cli, &meta).await.unwrap());
    }
    let remote = server.hive.backups.list_remote(&cli).await.unwrap();
    let local = server.hive.backups.list(&cli).await.unwrap();
    // The newest two, in both places, byte for byte the same size.
    assert_eq!(remote, [made[2].clone(), made[1].clone()]);
    assert_eq!(local, remote);
    // Under the prefix, as S3 itself lists it.
    let listing = http
        .get(format!(
            "{endpoint}/hive-archives?list-type=2&prefix=prod/hive/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains(&format!("prod/hive/{}", made[2].name)),
        "{listing}"
    );
    assert!(!listing.contains(&made[0].name), "{listing}");
    server.stop().await.0.unwrap();
}
