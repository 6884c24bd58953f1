//! Two `hive serve` processes on different loopback addresses sharing PostgreSQL and Redis.

use crate::process::{HiveProcess, client, node_id, poll_until};
use std::time::Duration;

#[tokio::test]
async fn two_replicas_share_rate_limits_and_run_the_leader_job_once() {
    let (Some(_), Some(redis)) = (
        hive_testkit::postgres_admin_url(),
        hive_testkit::redis_url(),
    ) else {
        eprintln!("skipped: HIVE_TEST_DATABASE_URL and HIVE_TEST_REDIS_URL are both needed");
        return;
    };
    let database = hive_testkit::scratch_postgres().await;
    let prefix = format!("hive-test-{}", uuid::Uuid::new_v4().simple());
    let shared = [
        ("DATABASE_URL", database.url()),
        ("REDIS_URL", redis.as_str()),
        ("HIVE_REDIS_KEY_PREFIX", prefix.as_str()),
        ("HIVE_RATE_LIMITS", "health=4/1h"),
        ("HIVE_JOBS_TICK_SECONDS", "1"),
        ("HIVE_JOB_HISTORY_PRUNE_INTERVAL_SECONDS", "1"),
        ("MESH_BUS_HMAC_SECRET", "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut vars_a = shared.to_vec();
    vars_a.push(("HIVE_LISTEN", "127.0.0.2:0"));
    let mut vars_b = shared.to_vec();
    vars_b.push(("HIVE_LISTEN", "127.0.0.3:0"));
    let a = HiveProcess::start(dir_a.path(), &vars_a).await;
    // A listens on the bus (it announced itself after subscribing) before B arrives.
    wait_for_log(&a, "announced this replica on the event bus").await;
    let b = HiveProcess::start(dir_b.path(), &vars_b).await;
    assert!(
        a.base_url.starts_with("http://127.0.0.2:"),
        "{}",
        a.base_url
    );
    assert!(
        b.base_url.starts_with("http://127.0.0.3:"),
        "{}",
        b.base_url
    );

    // One quota for the client, whichever replica it reaches.
    let http = client();
    let mut remaining = Vec::new();
    for base in [&a.base_url, &b.base_url, &a.base_url, &b.base_url] {
        let response = http.get(format!("{base}/api/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        remaining.push(
            response.headers()["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["3", "2", "1", "0"]);
    let refused = http
        .get(format!("{}/api/health", a.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429, "a limit consumed on B is seen on A");

    // The singleton job runs on one replica only.
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let nodes = poll_until("three job runs", Duration::from_secs(60), async || {
        let nodes: Vec<String> =
            sqlx::query_scalar("SELECT node_id FROM job_runs WHERE finished_at IS NOT NULL")
                .fetch_all(&pool)
                .await
                .unwrap();
        (nodes.len() >= 3).then_some(nodes)
    })
    .await;
    assert!(
        nodes.iter().all(|n| *n == nodes[0]),
        "one leader: {nodes:?}"
    );
    pool.close().await;

    // An event published on one replica reaches the other: B's arrival, then its departure,
    // appear in A's log.
    let b_id = node_id(&b.stdout());
    let (status, _, _) = b.stop().await;
    assert!(status.success());
    poll_until(
        "B's announcements reaching A",
        Duration::from_secs(20),
        async || {
            let log = a.stdout();
            let seen = |kind: &str| {
                log.lines().any(|line| {
                    line.contains("event from another replica")
                        && line.contains(kind)
                        && line.contains(&b_id)
                })
            };
            (seen("replica.started") && seen("replica.stopping")).then_some(())
        },
    )
    .await;
    assert!(a.stop().await.0.success());
}

async fn wait_for_log(process: &HiveProcess, text: &str) {
    poll_until(
        &format!("{text:?} logged"),
        Duration::from_secs(20),
        async || process.stdout().contains(text).then_some(()),
    )
    .await;
}
