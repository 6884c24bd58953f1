//! Two `hive serve` processes on different loopback addresses sharing PostgreSQL and Redis.

use crate::process::{HiveProcess, SHARED_SECRETS, client, node_id, poll_until, session_cookie};
use serde_json::json;
use std::time::Duration;

/// The PostgreSQL database and Redis key space replicas of one test share.
pub(crate) struct SharedServices {
    pub(crate) database: hive_testkit::ScratchDatabase,
    redis: String,
    prefix: String,
}

impl SharedServices {
    /// `None` (with a note) when the run has no PostgreSQL or no Redis.
    pub(crate) async fn new() -> Option<Self> {
        let (Some(_), Some(redis)) = (
            hive_testkit::postgres_admin_url(),
            hive_testkit::redis_url(),
        ) else {
            return None;
        };
        Some(Self {
            database: hive_testkit::scratch_postgres().await,
            redis,
            prefix: format!("hive-test-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// A `hive serve` on `address` (a free port) with its own data directory.
    pub(crate) async fn start_replica(
        &self,
        address: &str,
        settings: &[(&str, &str)],
    ) -> (HiveProcess, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("{address}:0");
        let mut vars = vec![
            ("DATABASE_URL", self.database.url()),
            ("REDIS_URL", self.redis.as_str()),
            ("HIVE_REDIS_KEY_PREFIX", self.prefix.as_str()),
            ("HIVE_LISTEN", listen.as_str()),
        ];
        vars.extend_from_slice(&SHARED_SECRETS);
        vars.extend_from_slice(settings);
        let replica = HiveProcess::start(dir.path(), &vars).await;
        assert!(
            replica.base_url.starts_with(&format!("http://{address}:")),
            "{}",
            replica.base_url
        );
        (replica, dir)
    }
}

#[tokio::test]
async fn two_replicas_share_rate_limits_and_run_the_leader_job_once() {
    let Some(services) = SharedServices::new().await else {
        return;
    };
    let settings = [
        ("HIVE_RATE_LIMITS", "health=4/1h"),
        ("HIVE_JOBS_TICK_SECONDS", "1"),
        ("HIVE_JOB_HISTORY_PRUNE_INTERVAL_SECONDS", "1"),
        ("MESH_BUS_HMAC_SECRET", "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
    ];
    let (a, _dir_a) = services.start_replica("127.0.0.2", &settings).await;
    // A listens on the bus (it announced itself after subscribing) before B arrives.
    wait_for_log(&a, "announced this replica on the event bus").await;
    let (b, _dir_b) = services.start_replica("127.0.0.3", &settings).await;

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
    let pool = sqlx::PgPool::connect(services.database.url())
        .await
        .unwrap();
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

const SETUP_TOKEN: &str = "Kq7vT2mXw9Lp4Rz8Bn3Hs6Jd1Fg5Yc0A";
use hive_testkit::TEST_PASSWORD as PASSWORD;
/// Both replicas sit behind one public URL, as behind a load balancer.
const PUBLIC_URL: &str = "http://hive.test";

#[tokio::test]
async fn two_replicas_share_sessions_and_one_time_links() {
    let Some(services) = SharedServices::new().await else {
        return;
    };
    let settings = [("HIVE_SETUP_TOKEN", SETUP_TOKEN), ("AUTH_URL", PUBLIC_URL)];
    let (a, _dir_a) = services.start_replica("127.0.0.2", &settings).await;
    let (b, _dir_b) = services.start_replica("127.0.0.3", &settings).await;
    let http = client();

    let admin: serde_json::Value = http
        .post(format!("{}/api/v1/setup", a.base_url))
        .header("x-hive-setup-token", SETUP_TOKEN)
        .json(&json!({ "email": "root@example.com", "displayName": "Root", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let setup_on_b = http
        .post(format!("{}/api/v1/setup", b.base_url))
        .header("x-hive-setup-token", SETUP_TOKEN)
        .json(
            &json!({ "email": "other@example.com", "displayName": "Other", "password": PASSWORD }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(setup_on_b.status(), 409, "setup closed on A is closed on B");

    // A session made on A works on B; a logout on B ends it on A.
    let login = http
        .post(format!("{}/api/v1/auth/login", a.base_url))
        .json(&json!({ "email": "root@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = session_cookie(&login);
    let me = |base: &str| {
        http.get(format!("{base}/api/v1/auth/me"))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(me(&b.base_url).await.unwrap().status(), 200);
    let write = |base: &str, path: &str| {
        http.post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("origin", PUBLIC_URL)
    };

    // A reset link used on A is refused on B (consumed in the shared replay cache and in
    // the database).
    let link: serde_json::Value = write(
        &a.base_url,
        &format!("/api/v1/users/{}/reset-link", admin["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token = link["url"]
        .as_str()
        .unwrap()
        .split("#token=")
        .nth(1)
        .unwrap();
    let reset = json!({ "token": token, "newPassword": "a second fine passphrase" });
    let first = http
        .post(format!("{}/api/v1/auth/password-reset", a.base_url))
        .json(&reset)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 204);
    let replay = http
        .post(format!("{}/api/v1/auth/password-reset", b.base_url))
        .json(&reset)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401, "a link used on A is refused on B");
    assert_eq!(
        me(&a.base_url).await.unwrap().status(),
        401,
        "the reset on A ended the session everywhere"
    );

    let login = http
        .post(format!("{}/api/v1/auth/login", b.base_url))
        .json(&json!({ "email": "root@example.com", "password": "a second fine passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = session_cookie(&login);
    let me_with = |base: &str| {
        http.get(format!("{base}/api/v1/auth/me"))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(me_with(&a.base_url).await.unwrap().status(), 200);
    let out = http
        .post(format!("{}/api/v1/auth/logout", b.base_url))
        .header("cookie", &cookie)
        .header("origin", PUBLIC_URL)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    // A drops what it keeps of the session when B's announcement arrives: within a second.
    poll_until(
        "a logout on B ending the session on A",
        Duration::from_secs(1),
        async || (me_with(&a.base_url).await.unwrap().status() == 401).then_some(()),
    )
    .await;
    assert!(a.stop().await.0.success());
    assert!(b.stop().await.0.success());
}
