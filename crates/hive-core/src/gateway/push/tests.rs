//! The push-notification service end to end: configs on a Hive on SQLite, deliveries to a
//! local receiver.

use super::*;
use crate::Hive;
use crate::kernel::config::{Config, EnvSource};
use axum::http::{HeaderMap, StatusCode};
use hive_crypto::vault::Sealed;
use hive_proto::ManualClock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use time::macros::datetime;

const OWNER: &str = "user:0190a0b0-0000-7000-8000-000000000001";
const OTHER: &str = "user:0190a0b0-0000-7000-8000-000000000002";
const NOW: time::OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A webhook receiver on 127.0.0.1 that records every POST and fails the first
/// `fail_first` of them with a 500.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let recorded = Arc::clone(&got);
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::post(
                move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                    let recorded = Arc::clone(&recorded);
                    let failures = Arc::clone(&failures);
                    async move {
                        recorded.lock().unwrap().push(Received {
                            path: uri.path().to_owned(),
                            headers,
                            body,
                        });
                        let fail = failures
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if fail {
                            StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            StatusCode::NO_CONTENT
                        }
                    }
                },
            ),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, got, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn allowlist_entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    hive: Hive,
    push: PushConfigs,
}

/// A Hive on SQLite whose egress allowlist holds `allow`, and the service with no waits
/// between attempts.
async fn fixture(allow: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let pairs = [
        ("HIVE_DATA_DIR", data.as_str()),
        ("LOG_LEVEL", "warn"),
        ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allow),
    ];
    let config = Config::load(&EnvSource::from_pairs(pairs)).unwrap();
    let hive = Hive::open(config, Arc::new(ManualClock::new(NOW)))
        .await
        .unwrap();
    let push = PushConfigs::with_settings(
        Arc::clone(&hive.store),
        Arc::clone(&hive.vault),
        Arc::clone(&hive.egress),
        hive.auditor.clone(),
        Arc::clone(&hive.clock),
        DeliverySettings {
            retry_delays: vec![Duration::ZERO, Duration::ZERO],
            ..DeliverySettings::default()
        },
    );
    Fixture {
        _dir: dir,
        hive,
        push,
    }
}

fn config(id: &str, url: &str, token: &str) -> v1::TaskPushNotificationConfig {
    v1::TaskPushNotificationConfig {
        id: id.to_owned(),
        url: url.to_owned(),
        token: token.to_owned(),
        ..Default::default()
    }
}

fn task(id: Uuid, state: v1::TaskState, seq: usize) -> v1::Task {
    v1::Task {
        id: id.to_string(),
        context_id: "ctx-1".to_owned(),
        status: v1::TaskStatus {
            state,
            message: None,
            timestamp: Some(format!("2026-03-01T12:00:{seq:02}Z")),
        },
        ..Default::default()
    }
}

fn header<'a>(received: &'a Received, name: &str) -> &'a str {
    received.headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn configs_belong_to_their_owner_and_task() {
    let receiver = Receiver::start(0).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    let url = receiver.url("/hook/a?sig=query-canary");

    let created = f
        .push
        .create(OWNER, task_id, config("hook-1", &url, "token-canary-1"))
        .await
        .unwrap();
    assert_eq!(created.id, "hook-1");
    assert_eq!(created.task_id, task_id.to_string());
    assert_eq!(
        created.token, "token-canary-1",
        "the create answer echoes the token"
    );

    let got = f.push.get(OWNER, task_id, "hook-1").await.unwrap();
    assert_eq!(got.url, url);
    assert_eq!(got.token, "", "never returned again");
    assert_eq!(got.task_id, task_id.to_string());

    // Another owner sees nothing of it.
    assert!(matches!(
        f.push.get(OTHER, task_id, "hook-1").await,
        Err(PushError::NotFound)
    ));
    assert!(
        f.push
            .list(OTHER, task_id, 0, "")
            .await
            .unwrap()
            .configs
            .is_empty()
    );
    assert!(matches!(
        f.push.delete(OTHER, task_id, "hook-1").await,
        Err(PushError::NotFound)
    ));
    assert!(matches!(
        f.push.get(OWNER, Uuid::now_v7(), "hook-1").await,
        Err(PushError::NotFound)
    ));

    // Without an id: a uuid; without a token: a 256-bit one, for the signature.
    let generated = f
        .push
        .create(OWNER, task_id, config("", &receiver.url("/hook/b"), ""))
        .await
        .unwrap();
    assert!(Uuid::try_parse(&generated.id).is_ok(), "{}", generated.id);
    assert_eq!(generated.token.len(), 64);

    // The same id replaces.
    f.push
        .create(
            OWNER,
            task_id,
            config("hook-1", &receiver.url("/hook/c"), "t2"),
        )
        .await
        .unwrap();
    let listed = f.push.list(OWNER, task_id, 0, "").await.unwrap();
    assert_eq!(listed.configs.len(), 2);
    assert_eq!(listed.next_page_token, "");
    assert!(listed.configs.iter().all(|c| c.token.is_empty()));
    let replaced = f.push.get(OWNER, task_id, "hook-1").await.unwrap();
    assert_eq!(replaced.url, receiver.url("/hook/c"));

    // Pages of one.
    let first = f.push.list(OWNER, task_id, 1, "").await.unwrap();
    assert_eq!(first.configs.len(), 1);
    let second = f
        .push
        .list(OWNER, task_id, 1, &first.next_page_token)
        .await
        .unwrap();
    assert_eq!(second.configs.len(), 1);
    assert_eq!(second.next_page_token, "");
    assert_ne!(first.configs[0].id, second.configs[0].id);
    assert!(matches!(
        f.push.list(OWNER, task_id, 1, "not a token").await,
        Err(PushError::Invalid(_))
    ));

    f.push.delete(OWNER, task_id, "hook-1").await.unwrap();
    assert!(matches!(
        f.push.get(OWNER, task_id, "hook-1").await,
        Err(PushError::NotFound)
    ));
    assert!(matches!(
        f.push.delete(OWNER, task_id, "hook-1").await,
        Err(PushError::NotFound)
    ));

    // Bad ids and a task id that is not this task's.
    assert!(matches!(
        f.push
            .create(OWNER, task_id, config("has space", &url, ""))
            .await,
        Err(PushError::Invalid(_))
    ));
    let mut elsewhere = config("x", &url, "");
    elsewhere.task_id = Uuid::now_v7().to_string();
    assert!(matches!(
        f.push.create(OWNER, task_id, elsewhere).await,
        Err(PushError::Invalid(_))
    ));
    f.hive.close().await;
}

#[tokio::test]
async fn the_eleventh_config_of_a_task_is_refused() {
    let receiver = Receiver::start(0).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    for i in 0..10 {
        f.push
            .create(
                OWNER,
                task_id,
                config(&format!("c{i}"), &receiver.url("/h"), ""),
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        f.push
            .create(OWNER, task_id, config("c10", &receiver.url("/h"), ""))
            .await,
        Err(PushError::TooMany)
    ));
    // Replacing one of the ten is still allowed, and another task has its own ten.
    f.push
        .create(OWNER, task_id, config("c3", &receiver.url("/h2"), ""))
        .await
        .unwrap();
    f.push
        .create(
            OWNER,
            Uuid::now_v7(),
            config("c10", &receiver.url("/h"), ""),
        )
        .await
        .unwrap();
    let listed = f.push.list(OWNER, task_id, 100, "").await.unwrap();
    assert_eq!(listed.configs.len(), 10);
    f.hive.close().await;
}

#[tokio::test]
async fn invalid_and_unreachable_urls_are_refused_at_create() {
    let receiver = Receiver::start(0).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    let long = format!("{}/{}", receiver.url(""), "p".repeat(2048));
    let userinfo = format!("http://user:pw@127.0.0.1:{}/h", receiver.port);
    let other_port = format!("http://127.0.0.1:{}/h", receiver.port.wrapping_add(1));
    for bad in [
        "",
        "ftp://127.0.0.1/h",
        "not a url",
        long.as_str(),
        userinfo.as_str(),
        // Private and loopback addresses that are not allowlisted.
        "http://10.0.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/hook",
        other_port.as_str(),
    ] {
        let result = f
            .push
            .create(OWNER, task_id, config("", bad, "token-canary-2"))
            .await;
        let Err(PushError::Invalid(message)) = &result else {
            panic!("{bad}: {result:?}");
        };
        assert!(!message.contains("token-canary-2"), "{message}");
        assert!(!format!("{result:?}").contains("token-canary-2"));
    }
    assert!(
        f.push
            .list(OWNER, task_id, 0, "")
            .await
            .unwrap()
            .configs
            .is_empty()
    );
    f.hive.close().await;
}

#[tokio::test]
async fn a_delivery_carries_the_token_credentials_and_a_signature() {
    let receiver = Receiver::start(0).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    let mut with_auth = config("signed", &receiver.url("/hook?x=1"), "");
    with_auth.authentication = Some(v1::AuthenticationInfo {
        scheme: "Bearer".to_owned(),
        credentials: "credentials-canary".to_owned(),
    });
    let created = f.push.create(OWNER, task_id, with_auth).await.unwrap();
    let shown = f.push.get(OWNER, task_id, "signed").await.unwrap();
    assert_eq!(
        shown.authentication.as_ref().map(|a| a.scheme.as_str()),
        Some("Bearer")
    );
    assert_eq!(
        shown
            .authentication
            .as_ref()
            .map(|a| a.credentials.as_str()),
        Some("")
    );

    let sent = task(task_id, v1::TaskState::Completed, 1);
    f.push.notify(OWNER, &sent);
    // Another owner's notification of the same task id reaches none of these configs.
    f.push.notify(OTHER, &sent);
    f.push.drain().await;

    let got = receiver.take();
    assert_eq!(got.len(), 1);
    let delivery = &got[0];
    assert_eq!(delivery.path, "/hook");
    assert_eq!(header(delivery, "content-type"), CONTENT_TYPE);
    assert_eq!(header(delivery, "x-a2a-notification-token"), created.token);
    assert_eq!(
        header(delivery, "authorization"),
        "Bearer credentials-canary"
    );

    // What a receiver does: check the time, then the HMAC over "<t>.<raw body>".
    let signed = header(delivery, "x-hive-signature");
    let (t, mac) = signed
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap();
    assert_eq!(t.parse::<i64>().unwrap(), NOW.unix_timestamp());
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(&delivery.body);
    assert!(hive_crypto::verify_hmac_sha256_hex(
        created.token.as_bytes(),
        &message,
        mac
    ));
    assert!(!hive_crypto::verify_hmac_sha256_hex(
        b"another key",
        &message,
        mac
    ));

    // The body is a 1.0 StreamResponse holding the task.
    let payload: v1::StreamResponse = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(payload, v1::StreamResponse::Task(sent.clone()));

    // After a delete nothing more is sent.
    f.push.delete(OWNER, task_id, "signed").await.unwrap();
    f.push.notify(OWNER, &sent);
    f.push.drain().await;
    assert!(receiver.take().is_empty());
    f.hive.close().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_third_attempt() {
    let receiver = Receiver::start(2).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    let created = f
        .push
        .create(
            OWNER,
            task_id,
            config("retry", &receiver.url("/hook"), "tok"),
        )
        .await
        .unwrap();
    f.push
        .notify(OWNER, &task(task_id, v1::TaskState::Working, 1));
    f.push.drain().await;
    let got = receiver.take();
    assert_eq!(
        got.len(),
        3,
        "two failures, then the third attempt succeeds"
    );
    assert!(got.iter().all(|r| r.body == got[0].body));
    assert!(
        got.iter()
            .all(|r| header(r, "x-a2a-notification-token") == created.token)
    );
    f.hive.close().await;
}

#[tokio::test]
async fn a_receiver_that_always_fails_gets_three_attempts() {
    let receiver = Receiver::start(usize::MAX).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    f.push
        .create(OWNER, task_id, config("down", &receiver.url("/hook"), ""))
        .await
        .unwrap();
    f.push
        .notify(OWNER, &task(task_id, v1::TaskState::Working, 1));
    f.push.drain().await;
    assert_eq!(receiver.take().len(), 3, "then it gives up");
    f.hive.close().await;
}

#[tokio::test]
async fn deliveries_of_a_config_arrive_in_order() {
    // The first attempt fails, so the first status is retried while later ones wait.
    let receiver = Receiver::start(1).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    for id in ["a", "b"] {
        f.push
            .create(
                OWNER,
                task_id,
                config(id, &receiver.url(&format!("/{id}")), ""),
            )
            .await
            .unwrap();
    }
    let states = [
        v1::TaskState::Submitted,
        v1::TaskState::Working,
        v1::TaskState::InputRequired,
        v1::TaskState::Working,
        v1::TaskState::Completed,
    ];
    for (seq, state) in states.iter().enumerate() {
        f.push.notify(OWNER, &task(task_id, *state, seq));
    }
    f.push.drain().await;
    let got = receiver.take();
    for path in ["/a", "/b"] {
        let mut seen: Vec<String> = got
            .iter()
            .filter(|r| r.path == path)
            .map(|r| {
                let payload: v1::StreamResponse = serde_json::from_slice(&r.body).unwrap();
                let v1::StreamResponse::Task(task) = payload else {
                    panic!("a task");
                };
                task.status.timestamp.unwrap()
            })
            .collect();
        // One of the two configs met the failure and got its first status twice.
        seen.dedup();
        let expected: Vec<String> = (0..states.len())
            .map(|seq| format!("2026-03-01T12:00:{seq:02}Z"))
            .collect();
        assert_eq!(seen, expected, "{path}");
    }
    f.hive.close().await;
}

#[tokio::test]
async fn tokens_and_credentials_stay_out_of_debug_errors_and_the_database() {
    let receiver = Receiver::start(0).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    let mut secret = config("s", &receiver.url("/hook"), "token-canary-3");
    secret.authentication = Some(v1::AuthenticationInfo {
        scheme: "Basic".to_owned(),
        credentials: "credentials-canary-3".to_owned(),
    });
    let printed = format!("{secret:?}");
    let created = f.push.create(OWNER, task_id, secret.clone()).await.unwrap();
    let listed = f.push.list(OWNER, task_id, 0, "").await.unwrap();
    let row = f
        .hive
        .store
        .push_configs()
        .get(OWNER, task_id, "s")
        .await
        .unwrap()
        .unwrap();
    let too_many_token = config("bad id!", &receiver.url("/hook"), "token-canary-3");
    let refused = f.push.create(OWNER, task_id, too_many_token).await;
    for text in [
        printed,
        format!("{created:?}"),
        format!("{listed:?}"),
        serde_json::to_string(&listed).unwrap(),
        format!("{row:?}"),
        row.secrets.clone(),
        format!("{refused:?}"),
        format!("{:?}", f.push),
    ] {
        assert!(!text.contains("token-canary-3"), "{text}");
        assert!(!text.contains("credentials-canary-3"), "{text}");
    }
    // The sealed value opens only for its own row.
    let sealed = Sealed::from_text(&row.secrets).unwrap();
    let wrong = row_id(OTHER, task_id, "s");
    assert!(
        f.hive
            .vault
            .unseal(
                &sealed,
                &Context {
                    table: TABLE,
                    row_id: &wrong
                }
            )
            .await
            .is_err()
    );
    f.hive.close().await;
}

#[tokio::test]
async fn the_task_prune_job_prunes_unused_configs() {
    let receiver = Receiver::start(0).await;
    let f = fixture(&receiver.allowlist_entry()).await;
    let task_id = Uuid::now_v7();
    f.push
        .create(OWNER, task_id, config("old", &receiver.url("/hook"), ""))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(NOW + time::Duration::days(2)));
    let ctx = crate::kernel::jobs::JobContext {
        store: Arc::clone(&f.hive.store),
        clock,
    };
    let job = crate::kernel::jobs::PruneExpiredTasks {
        every: Duration::from_secs(3600),
        task_ttl: Duration::from_secs(86_400),
    };
    let detail = crate::kernel::jobs::Job::run(&job, &ctx).await.unwrap();
    assert!(detail.contains("1 push notification configs"), "{detail}");
    assert!(matches!(
        f.push.get(OWNER, task_id, "old").await,
        Err(PushError::NotFound)
    ));
    f.hive.close().await;
}
