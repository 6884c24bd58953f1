//! Hive's one way out: the SSRF-guarded client of `hive-egress`, configured from
//! `HIVE_EGRESS_FETCH_*` and the admin's allowlist, with every refusal counted in metrics and
//! written to the audit log (its reason and the URL's origin, never the path or query).

use crate::config::Config;
use crate::identity::{AuditEntry, Identity, RequestMeta};
use hive_egress::{
    Allowlist, CallLimits, Decision, EgressClient, EgressConfig, EgressError, EgressRequest,
    EgressResponse, Refusal, Resolve,
};
use hive_store::AuditOutcome;
use std::sync::Arc;

/// Who asks to reach out, and why: for the audit record of a refusal.
#[derive(Debug, Clone)]
pub struct Purpose {
    /// The audit actor (`user:<id>`, `system`…).
    pub actor: String,
    /// What the request is for, e.g. `agent_card`, `webhook`.
    pub feature: &'static str,
    pub meta: RequestMeta,
}

/// The egress client of this process.
#[derive(Debug)]
pub struct Egress {
    client: EgressClient,
    /// `HIVE_EGRESS_FETCH_HOST_ALLOWLIST`; the admin's list is merged onto it.
    operator_allowlist: Allowlist,
    identity: Arc<Identity>,
}

/// The admin's allowlist as stored, for the CLI, and why it could not be read if it could not.
#[derive(Debug, Default)]
pub struct StoredAllowlist {
    pub list: Allowlist,
    pub note: Option<String>,
}

/// Reads the admin's allowlist from the database without starting anything else (for
/// `hive egress check`). When it cannot be read, says why and answers an empty list: the check
/// then judges by the operator's list alone, which allows no more than the server does.
pub async fn stored_admin_allowlist(config: &Config) -> StoredAllowlist {
    let unread = |why: String| StoredAllowlist {
        list: Allowlist::empty(),
        note: Some(format!(
            "the admin's allowlist was not read ({why}); judging by HIVE_EGRESS_FETCH_HOST_ALLOWLIST alone"
        )),
    };
    if let crate::config::DatabaseUrl::Sqlite(path) = &config.database.url
        && !path.exists()
    {
        // No database yet, so no admin list; and a check creates nothing.
        return StoredAllowlist::default();
    }
    let store = match crate::storage::open(config).await {
        Ok(store) => store,
        Err(error) => return unread(error.to_string()),
    };
    let row = store.settings().get(crate::settings::SECURITY).await;
    store.close().await;
    match row {
        Ok(None) => StoredAllowlist::default(),
        Ok(Some(row)) => match crate::settings::allowlist_of(&row.value) {
            Ok(list) => StoredAllowlist { list, note: None },
            Err(error) => unread(error.to_string()),
        },
        Err(error) => unread(error.to_string()),
    }
}

/// A client for checks only (`hive egress check`): the operator's list merged with `admin`.
pub fn checking_client(config: &Config, admin: Allowlist) -> Result<EgressClient, EgressError> {
    let mut settings = client_config(config);
    settings.allowlist = config.egress.allowlist.merged(&admin);
    EgressClient::with_system_resolver(settings)
}

fn client_config(config: &Config) -> EgressConfig {
    EgressConfig {
        allowlist: config.egress.allowlist.clone(),
        max_redirects: config.egress.max_redirects,
        // Hive never calls itself: its own listeners are refused whatever the allowlist says.
        self_addresses: std::iter::once(config.http.listen)
            .chain(config.http.metrics_listen)
            .collect(),
        ..EgressConfig::default()
    }
}

impl Egress {
    /// The client with the system's resolver.
    pub fn new(config: &Config, identity: Arc<Identity>) -> Result<Self, EgressError> {
        let client = EgressClient::with_system_resolver(client_config(config))?;
        Ok(Self::with_client(config, client, identity))
    }

    /// The client with another resolver (tests script DNS answers with it).
    pub fn with_resolver(
        config: &Config,
        resolver: Arc<dyn Resolve>,
        identity: Arc<Identity>,
    ) -> Self {
        let client = EgressClient::new(client_config(config), resolver);
        Self::with_client(config, client, identity)
    }

    fn with_client(config: &Config, client: EgressClient, identity: Arc<Identity>) -> Self {
        Self {
            client,
            operator_allowlist: config.egress.allowlist.clone(),
            identity,
        }
    }

    /// Applies the admin's allowlist (merged with the operator's) to every request from now on.
    /// The settings service keeps what the admin's list is; this only applies it.
    pub fn set_admin_allowlist(&self, admin: &Allowlist) {
        self.client
            .set_allowlist(self.operator_allowlist.merged(admin));
    }

    /// The operator's list (from the environment), read-only at run time.
    pub fn operator_allowlist(&self) -> &Allowlist {
        &self.operator_allowlist
    }

    /// Sends `request` under the rules; a refusal is audited and counted before it is returned.
    pub async fn send(
        &self,
        request: EgressRequest,
        limits: &CallLimits,
        purpose: &Purpose,
    ) -> Result<EgressResponse, EgressError> {
        let result = self.client.send(request, limits).await;
        match &result {
            Ok(_) => {
                metrics::counter!("hive_egress_requests_total", "outcome" => "sent").increment(1);
            }
            Err(EgressError::Refused(refusal)) => self.record_refusal(refusal, purpose).await,
            Err(error) => {
                metrics::counter!("hive_egress_requests_total", "outcome" => error.kind())
                    .increment(1);
            }
        }
        result
    }

    /// What a request to `url` would meet (resolves, never connects); for operators.
    pub async fn check(&self, url: &str) -> Decision {
        self.client.check(url).await
    }

    async fn record_refusal(&self, refusal: &Refusal, purpose: &Purpose) {
        let reason = refusal.reason.as_str();
        metrics::counter!("hive_egress_refusals_total", "reason" => reason).increment(1);
        tracing::warn!(origin = %refusal.origin, reason, feature = purpose.feature, "outbound request refused");
        let entry = AuditEntry {
            actor: purpose.actor.clone(),
            action: "egress.refused",
            target: Some(refusal.origin.clone()),
            outcome: AuditOutcome::Denied,
            detail: serde_json::json!({ "reason": reason, "feature": purpose.feature }),
        };
        self.identity.record_refusal(entry, &purpose.meta).await;
    }
}
