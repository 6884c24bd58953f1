//! Instance settings an admin edits at run time: `security`, the egress host allowlist that is
//! merged onto `HIVE_EGRESS_FETCH_HOST_ALLOWLIST`; `workflows`, whether workflows' code nodes
//! may be saved and run (`workflowCodeNodes`: `inherit` the configuration's default, `off`, or
//! `allow`; `HIVE_WORKFLOW_DISABLE_CODE_NODE=true` keeps them off whatever it says).
//!
//! A change is stored (with its audit record, in one transaction), applied on this replica at
//! once, and announced on the event bus so that every other replica reloads it from the
//! database; each replica also reloads every 15 seconds, so a lost announcement delays a change
//! by at most that. The announcement carries no value: whoever could forge one only causes a
//! reload.

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::egress::Egress;
use hive_egress::{Allowlist, AllowlistEntry};
use hive_state::{BusEvent, Channel, EventBus};
use hive_store::{AuditOutcome, PutOutcome, SettingWrite, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The name the security settings are stored under.
pub const SECURITY: &str = "security";
/// The name the workflow settings are stored under.
pub const WORKFLOWS: &str = "workflows";
/// The bus event kind that says "settings changed; reload them".
pub const CHANGED_EVENT: &str = "settings.changed";
/// How often every replica reloads the settings whatever the bus says.
pub const RELOAD_EVERY: Duration = Duration::from_secs(15);
/// Entries an admin's allowlist may hold.
pub const MAX_ALLOWLIST_ENTRIES: usize = 200;

crate::kernel::refusal::domain_error!(
    /// Why a settings call was refused. Messages are safe to show to the caller.
    SettingsError,
    "settings"
);

/// The security settings as stored (a JSON document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecuritySettings {
    /// Allowlist entries (`host`, `*.suffix`, an IP literal, each with an optional `:port`).
    #[serde(default)]
    pub egress_host_allowlist: Vec<String>,
}

/// The security settings in force on this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityState {
    pub settings: SecuritySettings,
    /// The stored version (`None` before the first write).
    pub version: Option<i64>,
}

/// The admins' word on workflows' code nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeNodesOverride {
    /// The configuration's default (`HIVE_WORKFLOW_DISABLE_CODE_NODE`, else off in production
    /// and on otherwise).
    #[default]
    Inherit,
    Off,
    /// On, unless `HIVE_WORKFLOW_DISABLE_CODE_NODE=true`.
    Allow,
}

impl CodeNodesOverride {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inherit => "inherit",
            Self::Off => "off",
            Self::Allow => "allow",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Inherit => 0,
            Self::Off => 1,
            Self::Allow => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Inherit,
            2 => Self::Allow,
            _ => Self::Off,
        }
    }
}

/// The workflow settings as stored (a JSON document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSettings {
    #[serde(default)]
    pub workflow_code_nodes: CodeNodesOverride,
}

/// The workflow settings in force on this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowState {
    pub settings: WorkflowSettings,
    /// The stored version (`None` before the first write).
    pub version: Option<i64>,
}

/// What the configuration says of code nodes (`HIVE_WORKFLOW_DISABLE_CODE_NODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeNodesDefault {
    /// On when the admins' setting is `inherit`.
    pub on: bool,
    /// `true` was set: off whatever the admins' setting says.
    pub forced_off: bool,
}

/// Whether code nodes may be saved and run now: the configuration and the admins' setting of
/// the moment (followed across replicas). Cheap to clone; clones see the same setting.
#[derive(Debug, Clone)]
pub struct CodeNodesGate {
    default: CodeNodesDefault,
    setting: Arc<AtomicU8>,
}

impl CodeNodesGate {
    pub fn new(default: CodeNodesDefault) -> Self {
        Self {
            default,
            setting: Arc::new(AtomicU8::new(CodeNodesOverride::Inherit.to_u8())),
        }
    }

    /// The configuration's part.
    pub fn default_of_configuration(&self) -> CodeNodesDefault {
        self.default
    }

    /// The admins' setting applied now.
    pub fn setting(&self) -> CodeNodesOverride {
        CodeNodesOverride::from_u8(self.setting.load(Ordering::SeqCst))
    }

    fn set(&self, setting: CodeNodesOverride) {
        self.setting.store(setting.to_u8(), Ordering::SeqCst);
    }

    pub fn allowed(&self) -> bool {
        self.refusal().is_none()
    }

    /// Why code nodes are off now (a sentence for the workflow's author), or `None` when they
    /// are on.
    pub fn refusal(&self) -> Option<&'static str> {
        if self.default.forced_off {
            return Some(
                "code nodes are off on this server (HIVE_WORKFLOW_DISABLE_CODE_NODE=true)",
            );
        }
        match self.setting() {
            CodeNodesOverride::Allow => None,
            CodeNodesOverride::Off => {
                Some("code nodes are turned off on this server by an admin (workflowCodeNodes)")
            }
            CodeNodesOverride::Inherit if self.default.on => None,
            CodeNodesOverride::Inherit => Some(
                "code nodes are off on this server (HIVE_WORKFLOW_DISABLE_CODE_NODE; off by default in production)",
            ),
        }
    }
}

/// Parses every entry, naming the first bad one by its place in the list.
fn parse_allowlist(entries: &[String]) -> Result<Allowlist, SettingsError> {
    if entries.len() > MAX_ALLOWLIST_ENTRIES {
        return Err(SettingsError::Invalid(format!(
            "egressHostAllowlist holds at most {MAX_ALLOWLIST_ENTRIES} entries"
        )));
    }
    let parsed = entries
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            raw.parse::<AllowlistEntry>().map_err(|error| {
                SettingsError::Invalid(format!(
                    "egressHostAllowlist entry {}: {}",
                    index + 1,
                    error.problem
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Allowlist::from_entries(parsed))
}

/// The stored security settings and the allowlist they make.
fn stored_security(value: &str) -> Result<(SecuritySettings, Allowlist), SettingsError> {
    let settings = serde_json::from_str::<SecuritySettings>(value)
        .map_err(|e| SettingsError::Internal(format!("stored security settings: {e}")))?;
    let allowlist = parse_allowlist(&settings.egress_host_allowlist)?;
    Ok((settings, allowlist))
}

/// The admin's allowlist in a stored `security` value.
pub fn allowlist_of(value: &str) -> Result<Allowlist, SettingsError> {
    stored_security(value).map(|(_, allowlist)| allowlist)
}

/// The settings service of this process.
#[derive(Debug)]
pub struct Settings {
    store: Arc<dyn Store>,
    auditor: Auditor,
    egress: Arc<Egress>,
    bus: Arc<EventBus>,
    clock: hive_proto::SharedClock,
    applied: std::sync::RwLock<SecurityState>,
    workflows: std::sync::RwLock<WorkflowState>,
    code_nodes: CodeNodesGate,
}

impl Settings {
    pub fn new(
        store: Arc<dyn Store>,
        auditor: Auditor,
        egress: Arc<Egress>,
        bus: Arc<EventBus>,
        clock: hive_proto::SharedClock,
        code_nodes: CodeNodesDefault,
    ) -> Self {
        Self {
            store,
            auditor,
            egress,
            bus,
            clock,
            applied: std::sync::RwLock::new(SecurityState {
                settings: SecuritySettings::default(),
                version: None,
            }),
            workflows: std::sync::RwLock::new(WorkflowState {
                settings: WorkflowSettings::default(),
                version: None,
            }),
            code_nodes: CodeNodesGate::new(code_nodes),
        }
    }

    /// Whether code nodes may be saved and run, following this service's setting.
    pub fn code_nodes(&self) -> CodeNodesGate {
        self.code_nodes.clone()
    }

    /// The workflow settings this replica applies now.
    pub fn workflows(&self) -> WorkflowState {
        self.workflows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn apply_workflows(&self, state: WorkflowState) {
        self.code_nodes.set(state.settings.workflow_code_nodes);
        *self
            .workflows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }

    /// What this replica applies now.
    pub fn security(&self) -> SecurityState {
        self.applied
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn apply(&self, state: SecurityState, allowlist: Allowlist) {
        self.egress.set_admin_allowlist(&allowlist);
        *self
            .applied
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }

    /// Reads the stored settings and applies them. A stored value that does not parse (edited
    /// in the database by hand) is refused and the admin's list dropped: the operator's list
    /// alone is in force until a valid change, which allows fewer hosts, never more.
    ///
    /// The workflow settings too: a stored value that does not parse turns code nodes off
    /// until a valid change.
    pub async fn reload(&self) -> Result<(), SettingsError> {
        let workflows = self.reload_workflows().await;
        let security = self.reload_security().await;
        security.and(workflows)
    }

    async fn reload_workflows(&self) -> Result<(), SettingsError> {
        let Some(row) = self.store.settings().get(WORKFLOWS).await? else {
            return Ok(());
        };
        match serde_json::from_str::<WorkflowSettings>(&row.value) {
            Ok(settings) => {
                self.apply_workflows(WorkflowState {
                    settings,
                    version: Some(row.version),
                });
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "stored workflow settings are not valid; code nodes are off");
                self.apply_workflows(WorkflowState {
                    settings: WorkflowSettings {
                        workflow_code_nodes: CodeNodesOverride::Off,
                    },
                    version: Some(row.version),
                });
                Err(SettingsError::Internal(format!(
                    "stored workflow settings: {error}"
                )))
            }
        }
    }

    async fn reload_security(&self) -> Result<(), SettingsError> {
        let Some(row) = self.store.settings().get(SECURITY).await? else {
            return Ok(());
        };
        // No shortcut on the version: a row edited behind Hive's back keeps its version.
        let parsed = stored_security(&row.value);
        match parsed {
            Ok((settings, allowlist)) => {
                self.apply(
                    SecurityState {
                        settings,
                        version: Some(row.version),
                    },
                    allowlist,
                );
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "stored security settings are not valid; the admin's allowlist is dropped");
                let dropped = SecurityState {
                    settings: SecuritySettings::default(),
                    version: Some(row.version),
                };
                self.apply(dropped, Allowlist::empty());
                Err(error)
            }
        }
    }

    /// Replaces the security settings (admin). `expected_version` is the version the caller
    /// read (`None` when there was none): a concurrent change wins over this one (`Conflict`).
    pub async fn put_security(
        &self,
        caller: &Caller,
        settings: SecuritySettings,
        expected_version: Option<i64>,
        meta: &RequestMeta,
    ) -> Result<SecurityState, SettingsError> {
        if !caller.is_admin() {
            return Err(SettingsError::Forbidden("only an admin changes settings"));
        }
        let allowlist = parse_allowlist(&settings.egress_host_allowlist)?;
        // Stored in the canonical form, so what is shown is what applies.
        let settings = SecuritySettings {
            egress_host_allowlist: allowlist
                .entries()
                .iter()
                .map(ToString::to_string)
                .collect(),
        };
        let detail = serde_json::json!({
            "egressHostAllowlist": settings.egress_host_allowlist,
        });
        let stored = self
            .save(caller, SECURITY, &settings, expected_version, detail, meta)
            .await?;
        let state = SecurityState {
            settings,
            version: Some(stored.version),
        };
        self.apply(state.clone(), allowlist);
        self.announce(SECURITY, meta).await;
        Ok(state)
    }

    /// Replaces the workflow settings (admin), as [`Settings::put_security`] does.
    pub async fn put_workflows(
        &self,
        caller: &Caller,
        settings: WorkflowSettings,
        expected_version: Option<i64>,
        meta: &RequestMeta,
    ) -> Result<WorkflowState, SettingsError> {
        if !caller.is_admin() {
            return Err(SettingsError::Forbidden("only an admin changes settings"));
        }
        let detail = serde_json::json!({
            "workflowCodeNodes": settings.workflow_code_nodes.as_str(),
        });
        let stored = self
            .save(caller, WORKFLOWS, &settings, expected_version, detail, meta)
            .await?;
        let state = WorkflowState {
            settings,
            version: Some(stored.version),
        };
        self.apply_workflows(state.clone());
        self.announce(WORKFLOWS, meta).await;
        Ok(state)
    }

    /// Writes one named setting with its audit record (`detail`: what the record says of the
    /// new value), unless it changed since `expected_version`.
    async fn save(
        &self,
        caller: &Caller,
        name: &str,
        settings: &impl serde::Serialize,
        expected_version: Option<i64>,
        detail: serde_json::Value,
        meta: &RequestMeta,
    ) -> Result<hive_store::SettingRow, SettingsError> {
        let value =
            serde_json::to_string(settings).map_err(|e| SettingsError::Internal(e.to_string()))?;
        let write = SettingWrite {
            name: name.to_owned(),
            value,
            expected_version,
            updated_at: hive_store::truncate_to_micros(self.clock.now()),
            updated_by: caller.principal().to_string(),
        };
        let entry = AuditEvent {
            principal: caller.principal(),
            action: AuditAction::SettingsUpdate,
            target: Some(format!("setting:{name}")),
            outcome: AuditOutcome::Success,
            detail,
        };
        let record = self.auditor.in_transaction(entry, meta);
        match self.store.settings().put(&write, record.append()).await? {
            PutOutcome::Written(row) => Ok(row),
            PutOutcome::Stale { .. } => Err(SettingsError::Conflict(
                "the settings changed meanwhile; read them again",
            )),
        }
    }

    async fn announce(&self, name: &str, meta: &RequestMeta) {
        let announcement = BusEvent::System {
            kind: CHANGED_EVENT.to_owned(),
            message: name.to_owned(),
        };
        if let Err(error) = self
            .bus
            .publish(announcement, meta.request_id.as_deref())
            .await
        {
            // The others still reload within RELOAD_EVERY.
            tracing::warn!(%error, "cannot announce a settings change on the bus");
        }
    }

    /// Follows changes made on other replicas: reloads on every announcement and every
    /// [`RELOAD_EVERY`].
    pub fn start_follower(self: &Arc<Self>, tracker: &TaskTracker, cancel: CancellationToken) {
        let settings = Arc::clone(self);
        tracker.spawn(async move {
            let mut events = settings.bus.subscribe(Channel::SystemEvents);
            let mut every = tokio::time::interval(RELOAD_EVERY);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = every.tick() => {}
                    received = events.recv() => match received {
                        Ok(envelope) => {
                            let BusEvent::System { kind, .. } = &envelope.payload else {
                                continue;
                            };
                            if kind != CHANGED_EVENT {
                                continue;
                            }
                        }
                        // Lagged: something may have been missed; reload to be sure.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                }
                if let Err(error) = settings.reload().await {
                    tracing::warn!(%error, "cannot reload the settings");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_forces_code_nodes_off_and_the_setting_decides_the_rest() {
        let gate = |on, forced_off, setting| {
            let gate = CodeNodesGate::new(CodeNodesDefault { on, forced_off });
            gate.set(setting);
            gate.allowed()
        };
        use CodeNodesOverride::*;
        // HIVE_WORKFLOW_DISABLE_CODE_NODE=true: off, whatever the admins say.
        for setting in [Inherit, Off, Allow] {
            assert!(!gate(false, true, setting));
        }
        // Unset in production (off by default), unset elsewhere or false (on by default).
        assert!(!gate(false, false, Inherit));
        assert!(gate(false, false, Allow));
        assert!(gate(true, false, Inherit));
        assert!(!gate(true, false, Off));
        let stored = serde_json::to_string(&WorkflowSettings {
            workflow_code_nodes: Allow,
        })
        .unwrap();
        assert_eq!(stored, r#"{"workflowCodeNodes":"allow"}"#);
    }

    #[test]
    fn allowlists_are_checked_entry_by_entry() {
        let good = ["api.example.com", "*.corp.example:8443", "10.0.0.5:9000"];
        let list = parse_allowlist(&good.map(str::to_owned)).unwrap();
        assert_eq!(list.entries().len(), 3);
        let bad = ["api.example.com".to_owned(), "x.example:0".to_owned()];
        let error = parse_allowlist(&bad).unwrap_err().to_string();
        assert!(error.starts_with("egressHostAllowlist entry 2:"), "{error}");
        let many: Vec<String> = (0..=MAX_ALLOWLIST_ENTRIES)
            .map(|i| format!("h{i}.example"))
            .collect();
        assert!(parse_allowlist(&many).is_err());
    }
}
