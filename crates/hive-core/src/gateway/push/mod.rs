//! A2A push notifications: the configs a client sets on its task (Create/Get/List/Delete
//! `TaskPushNotificationConfig`, 0.3 `tasks/pushNotificationConfig/*`) and the delivery of the
//! task to every config of it when its status changes.
//!
//! A config belongs to its owner (an opaque principal string) and task: another owner's config
//! is [`PushError::NotFound`]. The receiver's token and credentials are sealed by the vault,
//! bound to the config's row, and never returned after the create answer. Every delivery is a
//! POST through the egress guard (no redirects), signed like a Stripe webhook with the
//! config's token as the key (`X-Hive-Signature: t=<unix>,v1=<hex>`), retried with backoff,
//! and sent in order per task (so per config): a later status never overtakes an earlier one.
//!
//! Here: the configs (create, get, list, delete); `rules` what a config must meet, `delivery`
//! the sending.

mod delivery;
mod rules;

pub use delivery::{
    CONTENT_TYPE, DEFAULT_RETRY_DELAYS, DELIVERY_TIMEOUT, DeliverySettings, MAX_RESPONSE_BYTES,
    SIGNATURE_HEADER, TOKEN_HEADER, signature,
};

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal, TransactionRecord};
use crate::kernel::caller::RequestMeta;
use crate::kernel::egress::Egress;
use crate::vault::{Vault, VaultFailure};
use bytes::Bytes;
use delivery::{MAX_CONCURRENT_SENDS, QueueKey};
use hive_a2a::v1;
use hive_crypto::vault::Context;
use hive_egress::Decision;
use hive_proto::SharedClock;
use hive_store::{AuditOutcome, PushConfigPut, PushConfigRow, Store, StoreError};
use rules::{
    check_authentication, check_id, check_owner, check_token, check_url, is_config_id, shown,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Most configs one owner may set on one task.
pub const MAX_CONFIGS_PER_TASK: u32 = 10;
/// Longest token and longest credentials a client may give.
pub const MAX_TOKEN_BYTES: usize = 1024;
pub const MAX_CREDENTIALS_BYTES: usize = 4096;
/// Largest page of `list`.
const MAX_PAGE_SIZE: u32 = 100;

const TABLE: &str = "a2a_push_configs";
const FEATURE: &str = "a2a_push";

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No such config of this owner and task.
    #[error("push notification config not found")]
    NotFound,
    /// A value of the request is not acceptable; the text says which rule, never a secret.
    #[error("{0}")]
    Invalid(String),
    /// The task has [`MAX_CONFIGS_PER_TASK`] configs already.
    #[error("a task has at most 10 push notification configs")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn vault_error(error: VaultFailure) -> PushError {
    match error {
        VaultFailure::Store(store) => PushError::Store(store),
        // Crypto and key errors: internal, with no detail that could carry a value.
        _ => PushError::Store(StoreError::Backend(
            "the vault could not seal or open a push notification config".into(),
        )),
    }
}

/// The sealed part of a config.
#[derive(serde::Serialize, serde::Deserialize)]
struct Secrets {
    token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    credentials: String,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.token.zeroize();
        self.credentials.zeroize();
    }
}

/// What a config is sealed for: its table and its row (task, id, owner: ids and uuids hold no
/// `/`, so the owner, last, cannot make two rows read the same).
fn row_id(owner: &str, task_id: Uuid, id: &str) -> String {
    format!("{task_id}/{id}/{owner}")
}

struct Inner {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    egress: Arc<Egress>,
    auditor: Auditor,
    clock: SharedClock,
    settings: DeliverySettings,
    /// Snapshots waiting per (owner, task); a key is present exactly while its worker runs.
    queues: Mutex<HashMap<QueueKey, VecDeque<Bytes>>>,
    /// Bounds the requests in flight, so a burst of tasks cannot open unbounded connections.
    sends: tokio::sync::Semaphore,
    tracker: TaskTracker,
}

/// The push-notification configs of tasks and their delivery.
pub struct PushConfigs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PushConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfigs")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl PushConfigs {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        egress: Arc<Egress>,
        auditor: Auditor,
        clock: SharedClock,
    ) -> Self {
        Self::with_settings(
            store,
            vault,
            egress,
            auditor,
            clock,
            DeliverySettings::default(),
        )
    }

    pub fn with_settings(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        egress: Arc<Egress>,
        auditor: Auditor,
        clock: SharedClock,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                vault,
                egress,
                auditor,
                clock,
                settings,
                queues: Mutex::new(HashMap::new()),
                sends: tokio::sync::Semaphore::new(MAX_CONCURRENT_SENDS),
                tracker: TaskTracker::new(),
            }),
        }
    }

    /// Sets (creates or, for an existing id, replaces) a config of `owner`'s task. The answer
    /// is the config as set, with its id and its token (the one given, or one generated here:
    /// it keys the signature of every delivery); nothing returns the token again.
    pub async fn create(
        &self,
        owner: &str,
        task_id: Uuid,
        config: v1::TaskPushNotificationConfig,
    ) -> Result<v1::TaskPushNotificationConfig, PushError> {
        check_owner(owner)?;
        if !config.task_id.is_empty() && Uuid::try_parse(&config.task_id).ok() != Some(task_id) {
            return Err(PushError::Invalid("taskId does not match the task".into()));
        }
        let id = if config.id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            check_id(&config.id)?;
            config.id.clone()
        };
        let url = check_url(&config.url)?;
        check_token(&config.token)?;
        let authentication = check_authentication(config.authentication.as_ref())?;
        let origin = hive_egress::origin_of(&url);
        self.check_reachable(owner, &url, &origin).await?;

        let token = if config.token.is_empty() {
            hive_crypto::random_token_hex().map_err(|_| {
                PushError::Store(StoreError::Backend("no randomness for a token".into()))
            })?
        } else {
            config.token.clone()
        };
        let secrets = Secrets {
            token,
            credentials: authentication
                .as_ref()
                .map(|a| a.credentials.clone())
                .unwrap_or_default(),
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&secrets)
                .map_err(|e| PushError::Store(StoreError::Backend(e.to_string())))?,
        );
        let row_key = row_id(owner, task_id, &id);
        let sealed = self
            .inner
            .vault
            .seal(
                &plain,
                &Context {
                    table: TABLE,
                    row_id: &row_key,
                },
            )
            .await
            .map_err(vault_error)?;
        let now = hive_store::truncate_to_micros(self.inner.clock.now());
        let row = PushConfigRow {
            owner: owner.to_owned(),
            task_id,
            id: id.clone(),
            url: config.url.clone(),
            auth_scheme: authentication
                .as_ref()
                .map(|a| a.scheme.clone())
                .unwrap_or_default(),
            key_id: sealed.key_id,
            secrets: sealed.to_text(),
            created_at: now,
            updated_at: now,
        };
        let record = self.record(
            owner,
            AuditAction::A2aPushConfigSet,
            task_id,
            &id,
            Some(&origin),
        );
        match self
            .inner
            .store
            .push_configs()
            .put(&row, MAX_CONFIGS_PER_TASK, record.append())
            .await?
        {
            PushConfigPut::LimitReached => Err(PushError::TooMany),
            PushConfigPut::Created | PushConfigPut::Replaced => {
                Ok(v1::TaskPushNotificationConfig {
                    tenant: config.tenant,
                    id,
                    task_id: task_id.to_string(),
                    url: config.url,
                    token: secrets.token.clone(),
                    authentication,
                })
            }
        }
    }

    /// Refuses a URL the egress guard would refuse now (audited like any refusal).
    async fn check_reachable(
        &self,
        owner: &str,
        url: &url::Url,
        origin: &str,
    ) -> Result<(), PushError> {
        match self.inner.egress.check(url.as_str()).await {
            Decision::Allowed { .. } => Ok(()),
            Decision::Refused(refusal) => {
                let reason = refusal.reason.as_str();
                metrics::counter!("hive_egress_refusals_total", "reason" => reason).increment(1);
                let entry = AuditEvent {
                    principal: owner_principal(owner),
                    action: AuditAction::EgressRefused,
                    target: Some(origin.to_owned()),
                    outcome: AuditOutcome::Denied,
                    detail: serde_json::json!({ "reason": reason, "feature": FEATURE }),
                };
                self.inner
                    .auditor
                    .record_refusal(entry, &RequestMeta::default())
                    .await;
                Err(PushError::Invalid(format!(
                    "url is refused by the outbound request rules ({reason})"
                )))
            }
            Decision::Failed(error) => Err(PushError::Invalid(format!(
                "url cannot be reached ({})",
                error.kind()
            ))),
        }
    }

    fn record(
        &self,
        owner: &str,
        action: AuditAction,
        task_id: Uuid,
        id: &str,
        origin: Option<&str>,
    ) -> TransactionRecord {
        let mut detail = serde_json::json!({ "configId": id });
        if let Some(origin) = origin {
            detail["origin"] = serde_json::Value::from(origin);
        }
        let entry = AuditEvent {
            principal: owner_principal(owner),
            action,
            target: Some(format!("a2a_task:{task_id}")),
            outcome: AuditOutcome::Success,
            detail,
        };
        self.inner
            .auditor
            .in_transaction(entry, &RequestMeta::default())
    }

    /// The owner's config, without its token or credentials.
    pub async fn get(
        &self,
        owner: &str,
        task_id: Uuid,
        config_id: &str,
    ) -> Result<v1::TaskPushNotificationConfig, PushError> {
        if !is_config_id(config_id) {
            return Err(PushError::NotFound);
        }
        self.inner
            .store
            .push_configs()
            .get(owner, task_id, config_id)
            .await?
            .map(|row| shown(&row))
            .ok_or(PushError::NotFound)
    }

    /// The owner's configs of the task by id, `page_size` at a time (0: up to 10, at most 100);
    /// `page_token` is the `nextPageToken` of the page before (empty on the last page).
    pub async fn list(
        &self,
        owner: &str,
        task_id: Uuid,
        page_size: u32,
        page_token: &str,
    ) -> Result<v1::ListTaskPushNotificationConfigsResponse, PushError> {
        let limit = match page_size {
            0 => MAX_CONFIGS_PER_TASK,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = match page_token {
            "" => None,
            token if is_config_id(token) => Some(token),
            _ => return Err(PushError::Invalid("pageToken is not valid".into())),
        };
        let mut rows = self
            .inner
            .store
            .push_configs()
            .list(owner, task_id, after, limit + 1)
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => last.id.clone(),
            _ => String::new(),
        };
        Ok(v1::ListTaskPushNotificationConfigsResponse {
            configs: rows.iter().map(shown).collect(),
            next_page_token,
        })
    }

    /// Deletes the owner's config; nothing is sent to it afterwards (a delivery under way
    /// finishes its current attempt). `NotFound` when there is no such config.
    pub async fn delete(
        &self,
        owner: &str,
        task_id: Uuid,
        config_id: &str,
    ) -> Result<(), PushError> {
        if !is_config_id(config_id) {
            return Err(PushError::NotFound);
        }
        let record = self.record(
            owner,
            AuditAction::A2aPushConfigDelete,
            task_id,
            config_id,
            None,
        );
        if self
            .inner
            .store
            .push_configs()
            .delete(owner, task_id, config_id, record.append())
            .await?
        {
            Ok(())
        } else {
            Err(PushError::NotFound)
        }
    }
}

/// The audit principal of a task owner as stored (always written from a caller's principal).
fn owner_principal(owner: &str) -> Principal {
    Principal::parse(owner).unwrap_or_else(|| {
        tracing::warn!("a task owner of unknown shape; recorded as anonymous");
        Principal::Anonymous
    })
}

/// The service end to end: configs on a Hive on SQLite, deliveries to a local receiver.
#[cfg(test)]
mod tests {
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
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
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
}
