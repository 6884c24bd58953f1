//! Hive's one way out: the SSRF-guarded client of `hive-egress`, configured from
//! `HIVE_EGRESS_FETCH_*` and the admin's allowlist, with every refusal counted in metrics and
//! written to the audit log (its reason and the URL's origin, never the path or query).

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::RequestMeta;
use crate::kernel::config::Config;
use hive_egress::{
    Allowlist, CallLimits, Decision, EgressClient, EgressConfig, EgressError, EgressRequest,
    EgressResponse, Refusal, Resolve,
};
use hive_store::AuditOutcome;
use std::sync::Arc;

/// Who asks to reach out, and why: for the audit record of a refusal.
#[derive(Debug, Clone)]
pub struct Purpose {
    /// Who the refusal is recorded against.
    pub principal: Principal,
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
    auditor: Auditor,
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
    pub fn new(config: &Config, auditor: Auditor) -> Result<Self, EgressError> {
        let client = EgressClient::with_system_resolver(client_config(config))?;
        Ok(Self::with_client(config, client, auditor))
    }

    /// The client with another resolver (tests script DNS answers with it).
    pub fn with_resolver(config: &Config, resolver: Arc<dyn Resolve>, auditor: Auditor) -> Self {
        let client = EgressClient::new(client_config(config), resolver);
        Self::with_client(config, client, auditor)
    }

    fn with_client(config: &Config, client: EgressClient, auditor: Auditor) -> Self {
        Self {
            client,
            operator_allowlist: config.egress.allowlist.clone(),
            auditor,
        }
    }

    /// Applies the admin's allowlist (merged with the operator's) to every request from now on.
    /// The settings service keeps what the admin's list is; this only applies it.
    pub fn set_admin_allowlist(&self, admin: &Allowlist) {
        self.client
            .set_allowlist(self.operator_allowlist.merged(admin));
    }

    /// The client itself (clones share the allowlist, so an admin's change reaches them):
    /// hosted agents' proxies check with it.
    pub fn client(&self) -> EgressClient {
        self.client.clone()
    }

    /// The operator's list (from the environment), read-only at run time.
    pub fn operator_allowlist(&self) -> &Allowlist {
        &self.operator_allowlist
    }

    /// The operator's allowlist entries as written (for showing beside the admins' list).
    pub fn operator_allowlist_entries(&self) -> Vec<String> {
        self.operator_allowlist
            .entries()
            .iter()
            .map(ToString::to_string)
            .collect()
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
        let entry = AuditEvent {
            principal: purpose.principal.clone(),
            action: AuditAction::EgressRefused,
            target: Some(refusal.origin.clone()),
            outcome: AuditOutcome::Denied,
            detail: serde_json::json!({ "reason": reason, "feature": purpose.feature }),
        };
        self.auditor.record_refusal(entry, &purpose.meta).await;
    }
}
