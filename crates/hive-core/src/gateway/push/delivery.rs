//! Delivering a task to every push-notification config of it: one queue per task (so a later
//! status never overtakes an earlier one), signed POSTs through the egress guard, retries.

use super::{
    FEATURE, Inner, MAX_CONFIGS_PER_TASK, PushConfigs, Secrets, TABLE, owner_principal, row_id,
};
use crate::kernel::caller::RequestMeta;
use crate::kernel::egress::Purpose;
use crate::vault::VaultFailure;
use bytes::Bytes;
use hive_a2a::v1;
use hive_crypto::vault::{Context, Sealed};
use hive_egress::{CallLimits, EgressError, EgressRequest};
use hive_store::PushConfigRow;
use http::{HeaderName, HeaderValue, header};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;

/// Per attempt: from the first lookup to the end of the answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The receiver's answer is ignored; more than this of it is not read.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// Waits before the second and third attempts.
pub const DEFAULT_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

/// Snapshots of one task waiting for delivery; past this the oldest waiting one is dropped
/// (the newer ones carry the task's later state).
const MAX_PENDING_PER_TASK: usize = 32;

/// Requests in flight at once, over all tasks.
pub(super) const MAX_CONCURRENT_SENDS: usize = 64;

/// The spec's media type for A2A 1.0 JSON payloads (section 4.3.3).
pub const CONTENT_TYPE: &str = "application/a2a+json";

pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-a2a-notification-token");

pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hive-signature");

const METRIC: &str = "hive_a2a_push_deliveries_total";

/// Delivery settings; tests shorten the retry delays.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// One more attempt than delays: the first right away, each next after its delay.
    pub retry_delays: Vec<Duration>,
    pub limits: CallLimits,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_delays: DEFAULT_RETRY_DELAYS.to_vec(),
            limits: CallLimits::new(DELIVERY_TIMEOUT, MAX_RESPONSE_BYTES),
        }
    }
}

pub(super) type QueueKey = (String, Uuid);

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">`, keyed with the whole token.
pub fn signature(token: &str, unix_seconds: i64, body: &[u8]) -> String {
    hive_crypto::webhook_signature::header(token.as_bytes(), unix_seconds, body)
}

fn lock(
    queues: &Mutex<HashMap<QueueKey, VecDeque<Bytes>>>,
) -> MutexGuard<'_, HashMap<QueueKey, VecDeque<Bytes>>> {
    // A panic while holding this lock leaves a consistent map (every change is one call).
    queues
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn count(outcome: &'static str) {
    metrics::counter!(METRIC, "outcome" => outcome).increment(1);
}

#[derive(serde::Serialize)]
struct Payload<'a> {
    task: &'a v1::Task,
}

/// One config, ready to send to.
struct Target {
    id: String,
    url: String,
    origin: String,
    auth_scheme: String,
    secrets: Secrets,
}

impl Inner {
    async fn run_queue(self: Arc<Self>, key: QueueKey) {
        loop {
            let next = {
                let mut queues = lock(&self.queues);
                match queues.get_mut(&key).and_then(VecDeque::pop_front) {
                    Some(body) => body,
                    None => {
                        queues.remove(&key);
                        return;
                    }
                }
            };
            self.deliver_to_all(&key.0, key.1, next).await;
        }
    }

    async fn deliver_to_all(&self, owner: &str, task_id: Uuid, body: Bytes) {
        let repo = self.store.push_configs();
        let rows = match repo.list(owner, task_id, None, MAX_CONFIGS_PER_TASK).await {
            Ok(rows) => rows,
            Err(error) => {
                count("error");
                tracing::warn!(%error, %task_id, "push configs could not be read; notification dropped");
                return;
            }
        };
        if rows.is_empty() {
            return;
        }
        if let Err(error) = repo.touch(owner, task_id, self.clock.now()).await {
            tracing::warn!(%error, %task_id, "push configs could not be marked as used");
        }
        let mut targets = Vec::with_capacity(rows.len());
        for row in &rows {
            match self.open(row).await {
                Ok(target) => targets.push(target),
                Err(()) => count("error"),
            }
        }
        let purpose = Purpose {
            principal: owner_principal(owner),
            feature: FEATURE,
            meta: RequestMeta::default(),
        };
        futures_util::future::join_all(
            targets
                .iter()
                .map(|target| self.deliver(target, task_id, &body, &purpose)),
        )
        .await;
    }

    async fn open(&self, row: &PushConfigRow) -> Result<Target, ()> {
        let origin = url::Url::parse(&row.url)
            .map(|url| hive_egress::origin_of(&url))
            .unwrap_or_default();
        let opened = async {
            let sealed = Sealed::from_text(&row.secrets).map_err(VaultFailure::Crypto)?;
            let key = row_id(&row.owner, row.task_id, &row.id);
            self.vault
                .unseal(
                    &sealed,
                    &Context {
                        table: TABLE,
                        row_id: &key,
                    },
                )
                .await
        }
        .await;
        let secrets = opened
            .ok()
            .and_then(|plain| serde_json::from_slice::<Secrets>(&plain).ok());
        let Some(secrets) = secrets else {
            tracing::warn!(task_id = %row.task_id, config_id = %row.id, %origin, "a push config could not be opened; not delivered");
            return Err(());
        };
        Ok(Target {
            id: row.id.clone(),
            url: row.url.clone(),
            origin,
            auth_scheme: row.auth_scheme.clone(),
            secrets,
        })
    }

    fn request(&self, target: &Target, body: &Bytes) -> Option<EgressRequest> {
        let now = self.clock.now().unix_timestamp();
        let mut token = HeaderValue::from_str(&target.secrets.token).ok()?;
        token.set_sensitive(true);
        let mut signed =
            HeaderValue::from_str(&signature(&target.secrets.token, now, body)).ok()?;
        signed.set_sensitive(true);
        let mut request = EgressRequest::post(target.url.clone())
            .without_redirects()
            .header(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))
            .header(TOKEN_HEADER, token)
            .header(SIGNATURE_HEADER, signed)
            .body(body.clone());
        if !target.auth_scheme.is_empty() && !target.secrets.credentials.is_empty() {
            let mut value = HeaderValue::from_str(&format!(
                "{} {}",
                target.auth_scheme, target.secrets.credentials
            ))
            .ok()?;
            value.set_sensitive(true);
            request = request.header(header::AUTHORIZATION, value);
        }
        Some(request)
    }

    async fn deliver(&self, target: &Target, task_id: Uuid, body: &Bytes, purpose: &Purpose) {
        let attempts = self.settings.retry_delays.len() + 1;
        let mut last = String::new();
        for attempt in 0..attempts {
            if let Some(delay) = attempt
                .checked_sub(1)
                .and_then(|i| self.settings.retry_delays.get(i))
                && !delay.is_zero()
            {
                tokio::time::sleep(*delay).await;
            }
            let Some(request) = self.request(target, body) else {
                count("error");
                tracing::warn!(%task_id, config_id = %target.id, origin = %target.origin, "a push config holds a value that is not a header; not delivered");
                return;
            };
            let Ok(_permit) = self.sends.acquire().await else {
                return;
            };
            match self
                .egress
                .send(request, &self.settings.limits, purpose)
                .await
            {
                Ok(response) if response.status().is_success() => {
                    count("delivered");
                    return;
                }
                // The answer's body is ignored (dropped unread).
                Ok(response) => last = format!("status {}", response.status().as_u16()),
                Err(EgressError::Refused(refusal)) => {
                    // Audited by the egress guard; the rules will not change in seconds.
                    count("refused");
                    tracing::warn!(%task_id, config_id = %target.id, origin = %target.origin, reason = refusal.reason.as_str(), "push notification refused by the outbound request rules");
                    return;
                }
                Err(error) => last = error.kind().to_owned(),
            }
        }
        count("failed");
        tracing::warn!(%task_id, config_id = %target.id, origin = %target.origin, attempts, last = %last, "push notification not delivered");
    }
}

impl PushConfigs {
    /// Queues a delivery of `task` (as it is now) to every config of the task; returns at once.
    /// Deliveries of one task go out in the order of the calls.
    pub fn notify(&self, owner: &str, task: &v1::Task) {
        let Ok(task_id) = Uuid::try_parse(&task.id) else {
            tracing::debug!("push notification skipped: the task id is not a uuid");
            return;
        };
        let body = match serde_json::to_vec(&Payload { task }) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::warn!(%error, "push notification skipped: the task did not serialise");
                return;
            }
        };
        let key = (owner.to_owned(), task_id);
        let mut queues = lock(&self.inner.queues);
        if let Some(waiting) = queues.get_mut(&key) {
            waiting.push_back(body);
            if waiting.len() > MAX_PENDING_PER_TASK {
                waiting.pop_front();
                count("superseded");
            }
            return;
        }
        queues.insert(key.clone(), VecDeque::from([body]));
        drop(queues);
        let inner = Arc::clone(&self.inner);
        self.inner
            .tracker
            .spawn(async move { inner.run_queue(key).await });
    }

    /// Waits for every queued and in-flight delivery (for shutdown and tests). Deliveries
    /// queued afterwards still run; call again to wait for them.
    pub async fn drain(&self) {
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.inner.tracker.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_stripe_shaped() {
        let body = br#"{"task":{"id":"t"}}"#;
        let signed = signature("whsec_test", 1_700_000_000, body);
        let (t, v1) = signed.split_once(",v1=").unwrap();
        assert_eq!(t, "t=1700000000");
        assert!(hive_crypto::verify_hmac_sha256_hex(
            b"whsec_test",
            b"1700000000.{\"task\":{\"id\":\"t\"}}",
            v1
        ));
    }
}
