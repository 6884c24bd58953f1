//! Redis killed under a running `hive serve` and started again.

use crate::process::{HiveProcess, client, poll_until, session_cookie};
use hive_testkit::OwnRedis;
use std::time::Duration;

async fn remaining(base: &str) -> (u16, String) {
    let response = client()
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap();
    let remaining = response
        .headers()
        .get("ratelimit-remaining")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), remaining)
}

#[tokio::test]
async fn a_redis_outage_degrades_to_per_node_limits_and_recovers_on_its_own() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let hive = HiveProcess::start(
        dir.path(),
        &[
            ("REDIS_URL", url.as_str()),
            ("HIVE_RATE_LIMITS", "health=50/1h"),
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "info"),
            ("HIVE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    let base = hive.base_url.clone();
    assert_eq!(
        remaining(&base).await,
        (200, "49".into()),
        "counted in Redis"
    );
    assert_eq!(remaining(&base).await, (200, "48".into()));

    redis.kill();
    // No 500s: the per-node limiter answers, with a count of its own.
    for expected in ["49", "48", "47"] {
        assert_eq!(
            remaining(&base).await,
            (200, expected.into()),
            "per-node fallback"
        );
    }

    let _restarted = OwnRedis::start_on(redis.port);
    // Back on the shared count within seconds. This Redis kept nothing on disk, so its count
    // starts afresh at 49 — a number the per-node count (now at 47 and falling) never shows.
    poll_until(
        "recovery to the shared count",
        Duration::from_secs(20),
        async || {
            let (status, left) = remaining(&base).await;
            assert_eq!(status, 200);
            (left == "49").then_some(())
        },
    )
    .await;

    // The degraded decisions are counted where operators scrape them.
    let metrics_url = hive
        .stderr()
        .split("Metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("the metrics address is printed");
    let metrics = client()
        .get(metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let degraded = counter(
        &metrics,
        "hive_rate_limiter_degraded_decisions_total",
        "mode=\"local\"",
    );
    assert_eq!(degraded, 3.0, "{metrics}");
    assert!(counter(&metrics, "hive_rate_limiter_shared_failures_total", "") >= 3.0);
    assert!(
        counter(
            &metrics,
            "hive_rate_limit_decisions_total",
            "outcome=\"allowed\""
        ) >= 6.0
    );

    let (status, stdout, _) = hive.stop().await;
    assert!(status.success());
    assert!(
        stdout.contains("shared rate limiter unreachable"),
        "the outage is logged"
    );
    assert!(
        stdout.contains("shared rate limiter reachable again"),
        "so is the recovery"
    );
}

/// The value of the first sample of `name` whose labels contain `label`.
fn counter(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} {label} in:\n{metrics}"))
}

#[tokio::test]
async fn one_time_links_fail_closed_while_redis_is_down() {
    if !OwnRedis::available() {
        return;
    }
    const SETUP_TOKEN: &str = "Kq7vT2mXw9Lp4Rz8Bn3Hs6Jd1Fg5Yc0A";
    use hive_testkit::TEST_PASSWORD as PASSWORD;
    const ORIGIN: &str = "http://hive.test";
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let hive = HiveProcess::start(
        dir.path(),
        &[
            ("REDIS_URL", url.as_str()),
            ("HIVE_SETUP_TOKEN", SETUP_TOKEN),
            ("AUTH_URL", ORIGIN),
        ],
    )
    .await;
    let base = hive.base_url.clone();
    let http = client();
    let admin: serde_json::Value = http
        .post(format!("{base}/api/v1/setup"))
        .bearer_auth(SETUP_TOKEN)
        .json(&serde_json::json!({ "email": "root@example.com", "displayName": "Root", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": "root@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&login);
    let link: serde_json::Value = http
        .post(format!(
            "{base}/api/v1/users/{}/reset-link",
            admin["id"].as_str().unwrap()
        ))
        .header("cookie", &cookie)
        .header("origin", ORIGIN)
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
        .unwrap()
        .to_owned();
    let reset = serde_json::json!({ "token": token, "newPassword": "a second fine passphrase" });
    let try_reset = async || {
        http.post(format!("{base}/api/v1/auth/password-reset"))
            .json(&reset)
            .send()
            .await
            .unwrap()
    };

    redis.kill();
    // The replay check cannot decide: refused, not waved through.
    let refused = try_reset().await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    // Sessions keep working (they live in the database) and logins are limited per node.
    let me = http
        .get(format!("{base}/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let _restarted = OwnRedis::start_on(redis.port);
    // The link was not used up by the refused attempt: it works once Redis is back.
    poll_until(
        "the reset to go through",
        Duration::from_secs(20),
        async || {
            let status = try_reset().await.status().as_u16();
            assert!(status == 503 || status == 204, "{status}");
            (status == 204).then_some(())
        },
    )
    .await;
    assert_eq!(try_reset().await.status(), 401, "and only once");
    assert!(hive.stop().await.0.success());
}
