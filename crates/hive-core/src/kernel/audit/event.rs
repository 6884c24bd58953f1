//! What an audit record says, typed: who acted ([`Principal`]), what they did
//! ([`AuditAction`]), on what, with which outcome. The stored text of each is fixed here, once,
//! so that filters and exports keep matching what earlier versions wrote.

use hive_store::AuditOutcome;
use std::borrow::Cow;
use std::fmt;
use uuid::Uuid;

/// Who an action is recorded against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A user, through any of their sessions or an OIDC login.
    User(Uuid),
    /// An API token (the owner is on the token's own records).
    Token(Uuid),
    /// `HIVE_INTERNAL_TOKEN`.
    Internal,
    /// The `hive` command on the server's machine.
    Cli,
    /// A federated peer instance, by origin (`legacy` for the shared-secret header).
    Peer(String),
    /// The public tier, with the name of the API key presented.
    PublicKey(String),
    /// The public tier without a key.
    Public,
    /// Nobody proven yet: a login, a setup, a one-time link.
    Anonymous,
    /// Hive itself at start (the vault's first key).
    System,
    /// A background job, by name.
    Job(&'static str),
    /// Stripe, by a webhook event whose signature held.
    Stripe,
}

impl Principal {
    /// Reads the stored text of a principal back (task owners are kept as text). `None` for
    /// text this version never writes.
    pub fn parse(raw: &str) -> Option<Self> {
        let uuid = |id: &str| Uuid::parse_str(id).ok();
        Some(match raw.split_once(':') {
            Some(("user", id)) => Self::User(uuid(id)?),
            Some(("token", id)) => Self::Token(uuid(id)?),
            Some(("federation", origin)) => Self::Peer(origin.to_owned()),
            Some(("public-key", key)) => Self::PublicKey(key.to_owned()),
            Some(_) => return None,
            None => match raw {
                "internal" => Self::Internal,
                "cli" => Self::Cli,
                "public" => Self::Public,
                "anonymous" => Self::Anonymous,
                "system" => Self::System,
                "stripe" => Self::Stripe,
                _ => return None,
            },
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Token(id) => write!(f, "token:{id}"),
            Self::Internal => f.write_str("internal"),
            Self::Cli => f.write_str("cli"),
            Self::Peer(origin) => write!(f, "federation:{origin}"),
            Self::PublicKey(key) => write!(f, "public-key:{key}"),
            Self::Public => f.write_str("public"),
            Self::Anonymous => f.write_str("anonymous"),
            Self::System => f.write_str("system"),
            Self::Job(name) => write!(f, "job:{name}"),
            Self::Stripe => f.write_str("stripe"),
        }
    }
}

/// Declares the actions with their stored names, so that one list is both the type and the
/// table of names.
macro_rules! audit_actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Every action Hive records. The stored name is `domain.verb`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
            /// A request refused by its route's access rule: `http.<METHOD> <route>`.
            HttpRoute { method: String, route: String },
        }

        impl AuditAction {
            /// Every action of a fixed name, for documentation and tests.
            pub const NAMED: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The name stored in the log.
            pub fn name(&self) -> Cow<'static, str> {
                match self {
                    $(Self::$variant => Cow::Borrowed($name),)*
                    Self::HttpRoute { method, route } => Cow::Owned(format!("http.{method} {route}")),
                }
            }
        }
    };
}

audit_actions! {
    SetupCreateAdmin => "setup.create_admin",
    AuthLogin => "auth.login",
    AuthLogout => "auth.logout",
    AuthRegister => "auth.register",
    AuthReauthenticate => "auth.reauthenticate",
    /// An API token was presented (recorded when refused).
    AuthToken => "auth.token",
    /// A cookie-authenticated write from another origin.
    AuthCookieOrigin => "auth.cookie_origin",
    AuthSessionRevoke => "auth.session.revoke",
    AuthSessionRevokeAll => "auth.session.revoke_all",
    AuthMfaVerify => "auth.mfa.verify",
    AuthMfaTotpStart => "auth.mfa.totp_start",
    AuthMfaTotpEnable => "auth.mfa.totp_enable",
    AuthMfaTotpDisable => "auth.mfa.totp_disable",
    AuthMfaRecoveryCodes => "auth.mfa.recovery_codes",
    AuthMfaRecoveryCodeUse => "auth.mfa.recovery_code_use",
    AuthPasskeyRegister => "auth.passkey.register",
    AuthPasskeyRename => "auth.passkey.rename",
    AuthPasskeyDelete => "auth.passkey.delete",
    AuthOidcLogin => "auth.oidc.login",
    AuthOidcLink => "auth.oidc.link",
    TokenCreate => "token.create",
    TokenRevoke => "token.revoke",
    UserCreate => "user.create",
    UserUpdate => "user.update",
    UserUpdateProfile => "user.update_profile",
    UserChangePassword => "user.change_password",
    UserInvite => "user.invite",
    UserAcceptInvitation => "user.accept_invitation",
    UserResetLink => "user.reset_link",
    UserResetRequested => "user.reset_requested",
    UserResetPassword => "user.reset_password",
    UserMfaReset => "user.mfa_reset",
    AuditExport => "audit.export",
    AuditRetention => "audit.retention",
    BackupCreate => "backup.create",
    BackupPrune => "backup.prune",
    VaultKeyCreate => "vault.key_create",
    VaultRotate => "vault.rotate",
    VaultKeyRetire => "vault.key_retire",
    VaultReencrypt => "vault.reencrypt",
    SecretCreate => "secret.create",
    SecretUpdate => "secret.update",
    SecretDelete => "secret.delete",
    SecretImport => "secret.import",
    SettingsUpdate => "settings.update",
    EgressRefused => "egress.refused",
    RateLimitExceeded => "rate_limit.exceeded",
    AgentCreate => "agent.create",
    AgentUpdate => "agent.update",
    AgentDelete => "agent.delete",
    AgentStart => "agent.start",
    AgentStop => "agent.stop",
    AgentStatus => "agent.status",
    AgentHealth => "agent.health",
    AgentRestart => "agent.restart",
    AgentPause => "agent.pause",
    AgentResume => "agent.resume",
    /// A hosted agent's program ended without being stopped (its watchdog restarts it).
    AgentExited => "agent.exited",
    AgentBundlePush => "agent.bundle.push",
    AgentBundleRollback => "agent.bundle.rollback",
    /// A request claiming to come from another replica that is not signed as one, is stale or
    /// replayed.
    AgentForwardRefused => "agent.forward.refused",
    ConversationDelete => "conversation.delete",
    /// A workflow's new version (the first creates it).
    WorkflowSave => "workflow.save",
    WorkflowDelete => "workflow.delete",
    WorkflowEnable => "workflow.enable",
    WorkflowDisable => "workflow.disable",
    WorkflowWebhookSecret => "workflow.webhook_secret",
    WorkflowRunStart => "workflow.run.start",
    /// A run's end, with how it ended.
    WorkflowRunFinish => "workflow.run.finish",
    WorkflowRunCancel => "workflow.run.cancel",
    WorkflowRunRetry => "workflow.run.retry",
    /// A decision on an approval step (or its refusal to someone not allowed to decide).
    WorkflowApproval => "workflow.approval",
    /// A webhook call refused: signature missing, wrong, stale or replayed.
    WorkflowWebhookRefused => "workflow.webhook.refused",
    /// A step refused because the run's principal lost the access it needs.
    WorkflowStepRefused => "workflow.step.refused",
    A2aCall => "a2a.call",
    A2aPushConfigSet => "a2a.push_config.set",
    A2aPushConfigDelete => "a2a.push_config.delete",
    MeshFederationInbound => "mesh.federation.inbound_jsonrpc",
    MeshFederationProxy => "mesh.federation.proxy_jsonrpc",
    MeshFederationProbe => "mesh.federation.probe",
    MeshPublicTierCall => "mesh.a2a.public_tier.call",
    MeshPublicTierRefused => "mesh.a2a.public_tier.refused",
    MeshWanIngress => "mesh.wan.ingress",
    /// A ledger transaction made by a Stripe event (a top-up, an invoice paid, a refund), or a
    /// customer linked by one.
    BillingStripeEvent => "billing.stripe.event",
    /// A Stripe webhook refused: signature missing, malformed, stale or wrong.
    BillingStripeRefused => "billing.stripe.refused",
    /// A billable use's debit.
    BillingUsageDebit => "billing.usage.debit",
    /// An admin's adjustment of a wallet, with its reason.
    BillingAdjustment => "billing.adjustment",
    BillingBudgetSet => "billing.budget.set",
    BillingBudgetDelete => "billing.budget.delete",
    /// A model's price set or removed.
    BillingPriceSet => "billing.price.set",
    /// A checkout or customer-portal session opened at Stripe.
    BillingCheckout => "billing.checkout",
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One thing to record, before the auditor adds the time and the request's address and id.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub principal: Principal,
    pub action: AuditAction,
    /// `kind:id` of what was acted on (`user:…`, `agent:…`, `secret:…`).
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    /// Facts of the event as a JSON object; never message contents or secrets.
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// A successful `action` by `principal` with no target and no detail.
    pub fn new(principal: Principal, action: AuditAction) -> Self {
        Self {
            principal,
            action,
            target: None,
            outcome: AuditOutcome::Success,
            detail: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// A refused `action`, with the reason in its detail.
    pub fn refused(principal: Principal, action: AuditAction, reason: &'static str) -> Self {
        Self::new(principal, action)
            .outcome(AuditOutcome::Denied)
            .detail(serde_json::json!({ "reason": reason }))
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn outcome(mut self, outcome: AuditOutcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_read_back_what_they_write() {
        let id = Uuid::now_v7();
        for principal in [
            Principal::User(id),
            Principal::Token(id),
            Principal::Internal,
            Principal::Cli,
            Principal::Peer("https://peer.example".into()),
            Principal::PublicKey("partner".into()),
            Principal::Public,
            Principal::Anonymous,
            Principal::System,
        ] {
            assert_eq!(Principal::parse(&principal.to_string()), Some(principal));
        }
        assert_eq!(
            Principal::Job("agent-health").to_string(),
            "job:agent-health"
        );
        for unknown in ["", "user:not-a-uuid", "root", "group:1"] {
            assert_eq!(Principal::parse(unknown), None, "{unknown}");
        }
    }

    /// The stored text of every principal, written out: the audit log and task owners keep
    /// it, so a change here would orphan what is already stored.
    #[test]
    fn principals_store_exactly_this_text() {
        let id = Uuid::parse_str("0190f5e2-7a3c-7d41-9b2e-5c8a1f3d6e90").unwrap();
        let golden = [
            (
                Principal::User(id),
                "user:0190f5e2-7a3c-7d41-9b2e-5c8a1f3d6e90",
            ),
            (
                Principal::Token(id),
                "token:0190f5e2-7a3c-7d41-9b2e-5c8a1f3d6e90",
            ),
            (Principal::Internal, "internal"),
            (Principal::Cli, "cli"),
            (
                Principal::Peer("https://peer.example:8443".into()),
                "federation:https://peer.example:8443",
            ),
            (Principal::PublicKey("partner".into()), "public-key:partner"),
            (Principal::Public, "public"),
            (Principal::Anonymous, "anonymous"),
            (Principal::System, "system"),
            (Principal::Job("agent-health"), "job:agent-health"),
        ];
        for (principal, text) in golden {
            assert_eq!(principal.to_string(), text, "{principal:?}");
        }
    }

    /// Every fixed action name, written out: a rename (or a new action) must show up here, as
    /// stored records and filters of the old name would stop matching.
    #[test]
    fn action_names_are_exactly_these() {
        const NAMES: &[&str] = &[
            "setup.create_admin",
            "auth.login",
            "auth.logout",
            "auth.register",
            "auth.reauthenticate",
            "auth.token",
            "auth.cookie_origin",
            "auth.session.revoke",
            "auth.session.revoke_all",
            "auth.mfa.verify",
            "auth.mfa.totp_start",
            "auth.mfa.totp_enable",
            "auth.mfa.totp_disable",
            "auth.mfa.recovery_codes",
            "auth.mfa.recovery_code_use",
            "auth.passkey.register",
            "auth.passkey.rename",
            "auth.passkey.delete",
            "auth.oidc.login",
            "auth.oidc.link",
            "token.create",
            "token.revoke",
            "user.create",
            "user.update",
            "user.update_profile",
            "user.change_password",
            "user.invite",
            "user.accept_invitation",
            "user.reset_link",
            "user.reset_requested",
            "user.reset_password",
            "user.mfa_reset",
            "audit.export",
            "audit.retention",
            "backup.create",
            "backup.prune",
            "vault.key_create",
            "vault.rotate",
            "vault.key_retire",
            "vault.reencrypt",
            "secret.create",
            "secret.update",
            "secret.delete",
            "secret.import",
            "settings.update",
            "egress.refused",
            "rate_limit.exceeded",
            "agent.create",
            "agent.update",
            "agent.delete",
            "agent.start",
            "agent.stop",
            "agent.status",
            "agent.health",
            "agent.restart",
            "agent.pause",
            "agent.resume",
            "agent.exited",
            "agent.bundle.push",
            "agent.bundle.rollback",
            "agent.forward.refused",
            "conversation.delete",
            "workflow.save",
            "workflow.delete",
            "workflow.enable",
            "workflow.disable",
            "workflow.webhook_secret",
            "workflow.run.start",
            "workflow.run.finish",
            "workflow.run.cancel",
            "workflow.run.retry",
            "workflow.approval",
            "workflow.webhook.refused",
            "workflow.step.refused",
            "a2a.call",
            "a2a.push_config.set",
            "a2a.push_config.delete",
            "mesh.federation.inbound_jsonrpc",
            "mesh.federation.proxy_jsonrpc",
            "mesh.federation.probe",
            "mesh.a2a.public_tier.call",
            "mesh.a2a.public_tier.refused",
            "mesh.wan.ingress",
            "billing.stripe.event",
            "billing.stripe.refused",
            "billing.usage.debit",
            "billing.adjustment",
            "billing.budget.set",
            "billing.budget.delete",
            "billing.price.set",
            "billing.checkout",
        ];
        let named: Vec<Cow<'static, str>> = AuditAction::NAMED.iter().map(|a| a.name()).collect();
        assert_eq!(named, NAMES);
    }

    #[test]
    fn action_names_are_unique_and_shaped_domain_dot_verb() {
        let mut seen = std::collections::HashSet::new();
        for action in AuditAction::NAMED {
            let name = action.name();
            assert!(seen.insert(name.clone()), "{name} named twice");
            let (domain, verb) = name.split_once('.').unwrap_or_default();
            assert!(!domain.is_empty() && !verb.is_empty(), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'),
                "{name}"
            );
        }
        let refused = AuditAction::HttpRoute {
            method: "GET".into(),
            route: "/api/v1/users".into(),
        };
        assert_eq!(refused.name(), "http.GET /api/v1/users");
    }
}
