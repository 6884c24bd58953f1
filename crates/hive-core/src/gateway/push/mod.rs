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

#[cfg(test)]
mod tests;
