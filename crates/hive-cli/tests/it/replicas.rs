//! Two `hive serve` processes on different loopback addresses sharing PostgreSQL and Redis.

use crate::process::{HiveProcess, client};
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
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut vars_a = shared.to_vec();
    vars_a.push(("HIVE_LISTEN", "127.0.0.2:0"));
    let mut vars_b = shared.to_vec();
    vars_b.push(("HIVE_LISTEN", "127.0.0.3:0"));
    let a = HiveProcess::start(dir_a.path(), &vars_a).await;
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
    let waiting = async {
        loop {
            let nodes: Vec<String> =
                sqlx::query_scalar("SELECT node_id FROM job_runs WHERE finished_at IS NOT NULL")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            if nodes.len() >= 3 {
                return nodes;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let nodes = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("jobs ran");
    assert!(
        nodes.iter().all(|n| *n == nodes[0]),
        "one leader: {nodes:?}"
    );
    pool.close().await;

    assert!(a.stop().await.0.success());
    assert!(b.stop().await.0.success());
}
