//! The Hive store: repository traits, the rows they return and [`StoreError`].
//!
//! One implementation per database lives in its own crate (`hive-store-sqlite`,
//! `hive-store-postgres`), each with its own migrations folder. Both run the same conformance
//! suite (the dev-only `hive-store-conformance` crate), so a behaviour that holds on one holds
//! on the other.

mod agents;
pub mod billing;
mod challenges;
mod conversations;
mod error;
mod hosted;
mod identity;
mod jobs;
mod mfa;
mod oidc;
mod page;
mod passkeys;
mod push_configs;
mod secrets;
mod settings;
#[cfg(feature = "sqlx")]
pub mod sqlx_support;
mod tasks;
#[cfg(feature = "test-support")]
pub mod test_env;
mod usage;
mod vault;
mod workflows;

use async_trait::async_trait;

pub use agents::{
    AgentLimits, AgentRepo, AgentRow, MAX_AGENT_JSON, agent_word_from_stored, check_agent,
    limits_from_stored, tokens_per_day_to_stored,
};
pub use billing::BillingRepo;
pub use challenges::{ChallengeRepo, ChallengeRow, MAX_CHALLENGE_PAYLOAD, check_challenge};
pub use conversations::{
    CONVERSATION_OWNER_MAX_CHARS, CONVERSATION_STATE_MAX_CHARS, CONVERSATION_TEXT_MAX_BYTES,
    CONVERSATION_TITLE_MAX_CHARS, ConversationMessageRow, ConversationRepo, ConversationRow,
    MessageAuthor, TurnStart, check_conversation, check_conversation_message,
};
pub use error::StoreError;
pub use hosted::{
    BundleRow, HostedRepo, LeaseRow, MAX_BUNDLE_ARCHIVE_BYTES, MAX_BUNDLE_MANIFEST_BYTES,
    MAX_LEASE_ADDRESS_CHARS, MAX_LEASE_NODE_CHARS, NewBundle, check_bundle,
};
pub use identity::{
    AccountChange, ApiTokenRepo, ApiTokenRow, AuditAppend, AuditCheckpoint, AuditFilter,
    AuditOutcome, AuditPosition, AuditPrune, AuditRecord, AuditRepo, ChainHasher, ChainLink,
    CheckpointSigner, GENESIS_HASH, GuardedChange, LoginThrottle, NewUser, OneTimePurpose,
    OneTimeTokenRepo, OneTimeTokenRow, ProfileChange, SessionRepo, SessionRow, TextMatch, UserRepo,
    UserRow, chain_link, next_link, prunable_prefix, role_from_text, scopes_from_text,
    scopes_to_text,
};
pub use jobs::{JobOutcome, JobRun, JobRunRepo, NewJobRun};
pub use mfa::{MfaRepo, TotpRow, step_from_stored, step_to_stored};
pub use oidc::{OIDC_PROVIDER_MAX_CHARS, OIDC_SUBJECT_MAX_CHARS, OidcLinkRepo, OidcLinkRow};
pub use page::{Cursor, MAX_PAGE_SIZE, Page, PageRequest};
pub use passkeys::{
    PASSKEY_CREDENTIAL_ID_MAX_CHARS, PASSKEY_DOCUMENT_MAX_BYTES, PASSKEY_NAME_MAX_CHARS,
    PasskeyAdded, PasskeyRepo, PasskeyRow, PasskeyUse, sign_count_from_stored,
};
pub use push_configs::{
    PUSH_CONFIG_ID_MAX_CHARS, PUSH_CONFIG_URL_MAX_CHARS, PushConfigPut, PushConfigRepo,
    PushConfigRow,
};
pub use secrets::{SecretRepo, SecretRow};
pub use settings::{
    PutOutcome, SETTING_NAME_MAX_CHARS, SETTING_VALUE_MAX_BYTES, SettingRow, SettingWrite,
    SettingsRepo,
};
pub use tasks::{TaskRepo, TaskRow};
pub use usage::{
    NO_CURRENCY, USAGE_DAYS_MAX, USAGE_MODEL_MAX_CHARS, USAGE_PRINCIPAL_MAX_CHARS, UsageDay,
    UsageKind, UsageRepo, UsageRow, check_usage, tokens_from_stored, usage_days_span,
};
pub use vault::{VaultKeyRepo, VaultKeyRow, count_to_stored};
pub use workflows::{
    MAX_STEP_KEY_CHARS, MAX_STEP_LABEL_CHARS, MAX_TRIGGER_KEY_CHARS, MAX_WAITING_STEPS,
    MAX_WEBHOOK_SECRET_BYTES, MAX_WORKFLOW_DESCRIPTION_CHARS, MAX_WORKFLOW_DOCUMENT_BYTES,
    MAX_WORKFLOW_ERROR_CHARS, MAX_WORKFLOW_NAME_CHARS, MAX_WORKFLOW_VALUE_BYTES, NewRun, RunCaps,
    RunEnd, RunFilter, RunInsert, RunRow, RunStatus, RunTrigger, ScheduleFire, StepDecision,
    StepEnd, StepRow, StepStart, StepStatus, WorkflowRepo, WorkflowRow, WorkflowSave,
    WorkflowVersionRow, check_new_run, check_run_end, check_run_node, check_step_decision,
    check_step_end, check_step_result, check_step_start, check_webhook_secret, check_workflow_save,
};

/// Compares the versions applied to a database with the versions a binary carries.
pub fn schema_state(applied: &[i64], known: &[i64]) -> SchemaState {
    let current = applied.iter().copied().max();
    let unknown: Vec<i64> = applied
        .iter()
        .copied()
        .filter(|v| !known.contains(v))
        .collect();
    if let (Some(current), false) = (current, unknown.is_empty()) {
        return SchemaState::Newer { current, unknown };
    }
    let pending: Vec<i64> = known
        .iter()
        .copied()
        .filter(|v| !applied.contains(v))
        .collect();
    match (pending.is_empty(), current) {
        (true, Some(version)) => SchemaState::UpToDate { version },
        _ => SchemaState::Behind { current, pending },
    }
}

/// Stored times keep microseconds (what PostgreSQL keeps); both backends truncate the same way.
pub fn truncate_to_micros(at: time::OffsetDateTime) -> time::OffsetDateTime {
    let micros = at.nanosecond() / 1_000 * 1_000;
    at.replace_nanosecond(micros).unwrap_or(at)
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// How the database schema relates to the migrations this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration of the binary is applied and nothing else.
    UpToDate { version: i64 },
    /// Migrations of the binary are not applied yet (`hive migrate` applies them).
    Behind {
        current: Option<i64>,
        pending: Vec<i64>,
    },
    /// The database holds migrations this binary does not know: it was migrated by a newer
    /// Hive. Starting would risk writing rows the newer schema does not expect.
    Newer { current: i64, unknown: Vec<i64> },
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: Vec<i64>,
    pub version: i64,
}

/// The whole store: one handle, shared by every service.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    fn backend(&self) -> Backend;

    /// A cheap round trip to the database (deep health check).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Compares the applied migrations with the ones this binary carries.
    async fn schema_state(&self) -> Result<SchemaState, StoreError>;

    /// Applies pending migrations. Refuses ([`StoreError::SchemaNewer`]) on a newer schema and
    /// fails on a migration whose checksum changed.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// History of background job runs.
    fn job_runs(&self) -> &dyn JobRunRepo;

    /// A2A tasks (the `db` task store).
    fn tasks(&self) -> &dyn TaskRepo;

    /// Accounts, setup state and login throttling.
    fn users(&self) -> &dyn UserRepo;

    /// Login sessions.
    fn sessions(&self) -> &dyn SessionRepo;

    /// API tokens.
    fn api_tokens(&self) -> &dyn ApiTokenRepo;

    /// Invitations and password resets.
    fn one_time_tokens(&self) -> &dyn OneTimeTokenRepo;

    /// The audit trail.
    fn audit(&self) -> &dyn AuditRepo;

    /// The vault's wrapped data keys.
    fn vault_keys(&self) -> &dyn VaultKeyRepo;

    /// Secrets (values sealed by the vault).
    fn secrets(&self) -> &dyn SecretRepo;

    /// Instance settings an admin edits at run time.
    fn settings(&self) -> &dyn SettingsRepo;

    /// TOTP credentials and recovery codes.
    fn mfa(&self) -> &dyn MfaRepo;

    /// Passkeys (WebAuthn credentials).
    fn passkeys(&self) -> &dyn PasskeyRepo;
    /// Server-side state of sign-in flows (OIDC, WebAuthn).
    fn challenges(&self) -> &dyn ChallengeRepo;

    /// Single sign-on links (OpenID Connect provider and subject → account).
    fn oidc_links(&self) -> &dyn OidcLinkRepo;

    /// Registered agents (settings, limits and lifecycle status).
    fn agents(&self) -> &dyn AgentRepo;

    /// A2A push-notification configs of tasks.
    fn push_configs(&self) -> &dyn PushConfigRepo;

    /// Usage records: every billable use (an `llm` call's tokens among them).
    fn usage(&self) -> &dyn UsageRepo;

    /// Conversations with agents and their messages.
    fn conversations(&self) -> &dyn ConversationRepo;

    /// Hosted agents' bundle versions and the leases of the replicas that run them.
    fn hosted(&self) -> &dyn HostedRepo;

    /// Workflows, their versions, runs and runs' journals.
    fn workflows(&self) -> &dyn WorkflowRepo;

    /// Billing's books: the ledger, holds, budgets, alerts, Stripe customers, prices.
    fn billing(&self) -> &dyn BillingRepo;

    /// A lease on the named cluster-wide leadership (one holder among all replicas).
    async fn leader_lease(&self, name: &str) -> Result<Box<dyn LeaderLease>, StoreError>;

    /// Writes a consistent copy of the whole database, taken while it serves, to `dest` (a
    /// file that must not exist yet): SQLite's own database file, or PostgreSQL's plain SQL
    /// dump. The backend's restore loads it back.
    async fn copy_database(&self, dest: &std::path::Path) -> Result<(), StoreError>;

    /// Closes the pools; in-flight queries finish, new ones fail.
    async fn close(&self);
}

/// The repository accessors of a [`Store`] implementation, expanded inside `impl Store for …`:
/// `store_repositories!(field)` hands out the repositories of `self.field`, a
/// `sqlx_support::SqlRepositories` (or anything with its field names).
#[macro_export]
macro_rules! store_repositories {
    ($repositories:ident) => {
        fn job_runs(&self) -> &dyn $crate::JobRunRepo {
            &self.$repositories.jobs
        }

        fn tasks(&self) -> &dyn $crate::TaskRepo {
            &self.$repositories.tasks
        }

        fn users(&self) -> &dyn $crate::UserRepo {
            &self.$repositories.identity
        }

        fn sessions(&self) -> &dyn $crate::SessionRepo {
            &self.$repositories.identity
        }

        fn api_tokens(&self) -> &dyn $crate::ApiTokenRepo {
            &self.$repositories.identity
        }

        fn one_time_tokens(&self) -> &dyn $crate::OneTimeTokenRepo {
            &self.$repositories.identity
        }

        fn audit(&self) -> &dyn $crate::AuditRepo {
            &self.$repositories.identity
        }

        fn vault_keys(&self) -> &dyn $crate::VaultKeyRepo {
            &self.$repositories.vault_keys
        }

        fn secrets(&self) -> &dyn $crate::SecretRepo {
            &self.$repositories.secrets
        }

        fn settings(&self) -> &dyn $crate::SettingsRepo {
            &self.$repositories.settings
        }

        fn mfa(&self) -> &dyn $crate::MfaRepo {
            &self.$repositories.mfa
        }

        fn passkeys(&self) -> &dyn $crate::PasskeyRepo {
            &self.$repositories.passkeys
        }

        fn challenges(&self) -> &dyn $crate::ChallengeRepo {
            &self.$repositories.challenges
        }

        fn oidc_links(&self) -> &dyn $crate::OidcLinkRepo {
            &self.$repositories.oidc_links
        }

        fn agents(&self) -> &dyn $crate::AgentRepo {
            &self.$repositories.agents
        }

        fn push_configs(&self) -> &dyn $crate::PushConfigRepo {
            &self.$repositories.push_configs
        }

        fn usage(&self) -> &dyn $crate::UsageRepo {
            &self.$repositories.usage
        }

        fn conversations(&self) -> &dyn $crate::ConversationRepo {
            &self.$repositories.conversations
        }

        fn hosted(&self) -> &dyn $crate::HostedRepo {
            &self.$repositories.hosted
        }

        fn workflows(&self) -> &dyn $crate::WorkflowRepo {
            &self.$repositories.workflows
        }

        fn billing(&self) -> &dyn $crate::BillingRepo {
            &self.$repositories.billing
        }
    };
}

/// Leadership among replicas for singleton work (schedules, retention, watchdogs).
///
/// PostgreSQL holds a session advisory lock on a dedicated connection: the lock dies with the
/// connection, so a crashed leader is replaced as soon as PostgreSQL notices. SQLite is one
/// process by construction (the store holds an exclusive lock on the database file's lock file),
/// so it is always the leader.
#[async_trait]
pub trait LeaderLease: Send + Sync + std::fmt::Debug {
    /// Becomes or stays the leader. `Ok(true)` means this holder is the leader now; `Ok(false)`
    /// that another holder is. An error means leadership is unknown and must be treated as lost.
    async fn try_acquire(&mut self) -> Result<bool, StoreError>;

    /// Gives leadership up (also done when the lease is dropped, at the latest when its
    /// connection closes).
    async fn release(&mut self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_states() {
        assert_eq!(
            schema_state(&[], &[1, 2]),
            SchemaState::Behind {
                current: None,
                pending: vec![1, 2]
            }
        );
        assert_eq!(
            schema_state(&[1], &[1, 2]),
            SchemaState::Behind {
                current: Some(1),
                pending: vec![2]
            }
        );
        assert_eq!(
            schema_state(&[1, 2], &[1, 2]),
            SchemaState::UpToDate { version: 2 }
        );
        assert_eq!(
            schema_state(&[1, 2, 3], &[1, 2]),
            SchemaState::Newer {
                current: 3,
                unknown: vec![3]
            }
        );
    }
}
