//! The store as every service gets it: each change of a cached row passes through here, so no
//! caller can forget to announce one (a logout, an admin's deactivation, the pruning job, a
//! CLI command alike).
//!
//! Watched: users, sessions, API tokens, one-time tokens (a reset ends sessions), second
//! factors (they decide a session's stage) and passkeys for [`CacheTopic::Credentials`];
//! agents for [`CacheTopic::Agents`]. Not watched, on purpose: the bookkeeping a request makes
//! on the way (last-seen and last-used times, login throttles, used TOTP steps, passkey
//! counters, re-sealed seeds), which no cached answer depends on. Everything else passes
//! through unchanged.
//!
//! A watched call announces its topic whatever its result: a write that failed may still have
//! committed (the connection dropped after the commit), and an announcement too many only
//! costs a read.

use super::{CacheTopic, Changes};
use async_trait::async_trait;
use hive_proto::agents::AgentStatus;
use hive_store::{
    AccountChange, AgentRepo, AgentRow, ApiTokenRepo, ApiTokenRow, AuditAppend, AuditRepo, Backend,
    ChallengeRepo, ConversationRepo, GuardedChange, JobRunRepo, LeaderLease, LoginThrottle,
    MfaRepo, MigrationReport, NewUser, OidcLinkRepo, OneTimePurpose, OneTimeTokenRepo,
    OneTimeTokenRow, Page, PageRequest, PasskeyAdded, PasskeyRepo, PasskeyRow, PasskeyUse,
    ProfileChange, PushConfigRepo, SchemaState, SecretRepo, SessionRepo, SessionRow, SettingsRepo,
    Store, StoreError, TaskRepo, TotpRow, UsageRepo, UserRepo, UserRow, VaultKeyRepo,
};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// A store whose changes of cached rows are announced through [`Changes`].
#[derive(Debug)]
pub struct WatchedStore {
    inner: Arc<dyn Store>,
    repos: Watched,
}

/// The watched repositories (one value implements them all, like the stores' own).
#[derive(Debug)]
struct Watched {
    inner: Arc<dyn Store>,
    changes: Arc<Changes>,
}

impl WatchedStore {
    pub fn wrap(inner: Arc<dyn Store>, changes: Arc<Changes>) -> Arc<dyn Store> {
        Arc::new(Self {
            repos: Watched {
                inner: Arc::clone(&inner),
                changes,
            },
            inner,
        })
    }
}

impl Watched {
    /// Makes `write` and announces `topic` once it is made — also if the caller goes away
    /// during the write (its future dropped after the commit): see [`Changes::pending`].
    async fn announced<T>(&self, topic: CacheTopic, write: impl Future<Output = T>) -> T {
        let pending = self.changes.pending(topic);
        let result = write.await;
        pending.announce().await;
        result
    }

    async fn credentials<T>(&self, write: impl Future<Output = T>) -> T {
        self.announced(CacheTopic::Credentials, write).await
    }

    async fn agents<T>(&self, write: impl Future<Output = T>) -> T {
        self.announced(CacheTopic::Agents, write).await
    }
}

#[async_trait]
impl Store for WatchedStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        self.inner.schema_state().await
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.inner.migrate().await
    }

    async fn copy_database(&self, dest: &std::path::Path) -> Result<(), StoreError> {
        self.inner.copy_database(dest).await
    }

    fn job_runs(&self) -> &dyn JobRunRepo {
        self.inner.job_runs()
    }

    fn tasks(&self) -> &dyn TaskRepo {
        self.inner.tasks()
    }

    fn users(&self) -> &dyn UserRepo {
        &self.repos
    }

    fn sessions(&self) -> &dyn SessionRepo {
        &self.repos
    }

    fn api_tokens(&self) -> &dyn ApiTokenRepo {
        &self.repos
    }

    fn one_time_tokens(&self) -> &dyn OneTimeTokenRepo {
        &self.repos
    }

    fn audit(&self) -> &dyn AuditRepo {
        self.inner.audit()
    }

    fn vault_keys(&self) -> &dyn VaultKeyRepo {
        self.inner.vault_keys()
    }

    fn secrets(&self) -> &dyn SecretRepo {
        self.inner.secrets()
    }

    fn settings(&self) -> &dyn SettingsRepo {
        self.inner.settings()
    }

    fn mfa(&self) -> &dyn MfaRepo {
        &self.repos
    }

    fn passkeys(&self) -> &dyn PasskeyRepo {
        &self.repos
    }

    fn challenges(&self) -> &dyn ChallengeRepo {
        self.inner.challenges()
    }

    fn oidc_links(&self) -> &dyn OidcLinkRepo {
        self.inner.oidc_links()
    }

    fn agents(&self) -> &dyn AgentRepo {
        &self.repos
    }

    fn push_configs(&self) -> &dyn PushConfigRepo {
        self.inner.push_configs()
    }

    fn usage(&self) -> &dyn UsageRepo {
        self.inner.usage()
    }

    fn conversations(&self) -> &dyn ConversationRepo {
        self.inner.conversations()
    }

    fn hosted(&self) -> &dyn hive_store::HostedRepo {
        self.inner.hosted()
    }

    fn workflows(&self) -> &dyn hive_store::WorkflowRepo {
        self.inner.workflows()
    }

    fn billing(&self) -> &dyn hive_store::BillingRepo {
        self.inner.billing()
    }

    async fn leader_lease(&self, name: &str) -> Result<Box<dyn LeaderLease>, StoreError> {
        self.inner.leader_lease(name).await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

#[async_trait]
impl UserRepo for Watched {
    async fn setup_completed(&self) -> Result<bool, StoreError> {
        self.inner.users().setup_completed().await
    }

    async fn create_first_admin(
        &self,
        user: &NewUser,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError> {
        self.inner.users().create_first_admin(user, audit).await
    }

    async fn create(&self, user: &NewUser, audit: AuditAppend<'_>) -> Result<UserRow, StoreError> {
        self.inner.users().create(user, audit).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        self.inner.users().get(id).await
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        self.inner.users().find_by_email(email).await
    }

    async fn list(&self, page: &PageRequest) -> Result<Page<UserRow>, StoreError> {
        self.inner.users().list(page).await
    }

    async fn update_profile(
        &self,
        id: Uuid,
        change: &ProfileChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        self.credentials(self.inner.users().update_profile(id, change, now, audit))
            .await
    }

    async fn update_account(
        &self,
        id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<GuardedChange, StoreError> {
        self.credentials(self.inner.users().update_account(id, change, now, audit))
            .await
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.credentials(self.inner.users().set_password(
            id,
            password_hash,
            keep_session,
            now,
            audit,
        ))
        .await
    }

    async fn record_login_failure(
        &self,
        id: Uuid,
        day: i64,
        now: OffsetDateTime,
    ) -> Result<LoginThrottle, StoreError> {
        self.inner.users().record_login_failure(id, day, now).await
    }

    async fn record_login_success(
        &self,
        id: Uuid,
        rehash: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner
            .users()
            .record_login_success(id, rehash, now)
            .await
    }
}

#[async_trait]
impl SessionRepo for Watched {
    /// Announced: the user's oldest sessions beyond the cap end with it.
    async fn create(
        &self,
        session: &SessionRow,
        max_per_user: u32,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        self.credentials(self.inner.sessions().create(session, max_per_user, audit))
            .await
    }

    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        self.inner.sessions().find_by_token_hash(token_hash).await
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.sessions().touch(id, at).await
    }

    async fn mark_authenticated(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        self.credentials(self.inner.sessions().mark_authenticated(id, at, audit))
            .await
    }

    async fn mark_second_factor(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.credentials(self.inner.sessions().mark_second_factor(id, at, audit))
            .await
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRow>, StoreError> {
        self.inner.sessions().list_for_user(user_id).await
    }

    async fn list_live_page(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        seen_after: OffsetDateTime,
        page: &PageRequest,
    ) -> Result<Page<SessionRow>, StoreError> {
        self.inner
            .sessions()
            .list_live_page(user_id, now, seen_after, page)
            .await
    }

    async fn delete(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        self.credentials(self.inner.sessions().delete(id, user_id, audit))
            .await
    }

    async fn delete_for_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<u64, StoreError> {
        self.credentials(
            self.inner
                .sessions()
                .delete_for_user(user_id, except, audit),
        )
        .await
    }

    async fn prune_expired(
        &self,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.credentials(self.inner.sessions().prune_expired(now, idle_since))
            .await
    }
}

#[async_trait]
impl ApiTokenRepo for Watched {
    async fn create(&self, token: &ApiTokenRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        self.inner.api_tokens().create(token, audit).await
    }

    async fn find_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRow>, StoreError> {
        self.inner.api_tokens().find_by_token_hash(token_hash).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<ApiTokenRow>, StoreError> {
        self.inner.api_tokens().get(id).await
    }

    async fn list_for_user(
        &self,
        user_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ApiTokenRow>, StoreError> {
        self.inner.api_tokens().list_for_user(user_id, page).await
    }

    async fn revoke(
        &self,
        id: Uuid,
        user_id: Option<Uuid>,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.credentials(self.inner.api_tokens().revoke(id, user_id, now, audit))
            .await
    }

    async fn touch(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        self.inner.api_tokens().touch(id, at).await
    }
}

#[async_trait]
impl OneTimeTokenRepo for Watched {
    async fn create(
        &self,
        token: &OneTimeTokenRow,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        self.inner.one_time_tokens().create(token, audit).await
    }

    async fn find_live(
        &self,
        purpose: OneTimePurpose,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeTokenRow>, StoreError> {
        self.inner
            .one_time_tokens()
            .find_live(purpose, token_hash, now)
            .await
    }

    async fn accept_invitation(
        &self,
        token_hash: &str,
        user_id: Uuid,
        display_name: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<UserRow>, StoreError> {
        self.inner
            .one_time_tokens()
            .accept_invitation(token_hash, user_id, display_name, password_hash, now, audit)
            .await
    }

    /// Announced: a reset ends the user's sessions.
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        self.credentials(self.inner.one_time_tokens().reset_password(
            token_hash,
            password_hash,
            now,
            audit,
        ))
        .await
    }

    async fn prune_expired(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.one_time_tokens().prune_expired(before).await
    }
}

#[async_trait]
impl MfaRepo for Watched {
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRow>, StoreError> {
        self.inner.mfa().totp(user_id).await
    }

    async fn start_totp(&self, row: &TotpRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        self.inner.mfa().start_totp(row, audit).await
    }

    /// Announced: the user now has a second factor, which every session must pass.
    async fn enable_totp(
        &self,
        user_id: Uuid,
        step: u64,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.credentials(self.inner.mfa().enable_totp(user_id, step, now, audit))
            .await
    }

    async fn consume_totp_step(&self, user_id: Uuid, step: u64) -> Result<bool, StoreError> {
        self.inner.mfa().consume_totp_step(user_id, step).await
    }

    async fn record_totp_failure(&self, user_id: Uuid, step: u64) -> Result<u32, StoreError> {
        self.inner.mfa().record_totp_failure(user_id, step).await
    }

    async fn remove_totp(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        self.credentials(self.inner.mfa().remove_totp(user_id, audit))
            .await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[String],
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        self.inner
            .mfa()
            .replace_recovery_codes(user_id, hashes, now, audit)
            .await
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: OffsetDateTime,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.inner
            .mfa()
            .use_recovery_code(user_id, code_hash, now, audit)
            .await
    }

    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<u32, StoreError> {
        self.inner.mfa().recovery_codes_left(user_id).await
    }

    async fn totp_not_under_key(
        &self,
        key_id: u32,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<TotpRow>, StoreError> {
        self.inner
            .mfa()
            .totp_not_under_key(key_id, after, limit)
            .await
    }

    async fn reseal_totp(
        &self,
        expected: &TotpRow,
        key_id: u32,
        seed: &str,
    ) -> Result<bool, StoreError> {
        self.inner.mfa().reseal_totp(expected, key_id, seed).await
    }
}

#[async_trait]
impl PasskeyRepo for Watched {
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<PasskeyRow>, StoreError> {
        self.inner.passkeys().list_for_user(user_id).await
    }

    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        self.inner
            .passkeys()
            .find_by_credential_id(credential_id)
            .await
    }

    async fn add(
        &self,
        row: &PasskeyRow,
        max_per_user: u32,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<PasskeyAdded, StoreError> {
        self.credentials(
            self.inner
                .passkeys()
                .add(row, max_per_user, keep_session, audit),
        )
        .await
    }

    async fn record_use(&self, used: &PasskeyUse<'_>) -> Result<bool, StoreError> {
        self.inner.passkeys().record_use(used).await
    }

    async fn rename(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.inner.passkeys().rename(user_id, id, name, audit).await
    }

    async fn remove(
        &self,
        user_id: Uuid,
        id: Uuid,
        keep_session: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.credentials(
            self.inner
                .passkeys()
                .remove(user_id, id, keep_session, audit),
        )
        .await
    }

    async fn remove_all(&self, user_id: Uuid, audit: AuditAppend<'_>) -> Result<u64, StoreError> {
        self.credentials(self.inner.passkeys().remove_all(user_id, audit))
            .await
    }
}

#[async_trait]
impl AgentRepo for Watched {
    async fn create(&self, agent: &AgentRow, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        self.agents(self.inner.agents().create(agent, audit)).await
    }

    async fn get(&self, id: Uuid, owner: Option<Uuid>) -> Result<Option<AgentRow>, StoreError> {
        self.inner.agents().get(id, owner).await
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<AgentRow>, StoreError> {
        self.inner.agents().find_by_name(name).await
    }

    async fn list(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<AgentRow>, StoreError> {
        self.inner.agents().list(owner, page).await
    }

    async fn update(&self, next: &AgentRow, audit: AuditAppend<'_>) -> Result<bool, StoreError> {
        self.agents(self.inner.agents().update(next, audit)).await
    }

    async fn set_status(
        &self,
        id: Uuid,
        status: AgentStatus,
        detail: &str,
        at: OffsetDateTime,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        self.agents(
            self.inner
                .agents()
                .set_status(id, status, detail, at, audit),
        )
        .await
    }

    async fn set_status_from(
        &self,
        id: Uuid,
        from: AgentStatus,
        status: AgentStatus,
        detail: &str,
        at: OffsetDateTime,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<bool, StoreError> {
        self.agents(
            self.inner
                .agents()
                .set_status_from(id, from, status, detail, at, audit),
        )
        .await
    }

    async fn delete(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        self.agents(self.inner.agents().delete(id, owner, audit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use crate::Hive;
    use crate::kernel::changes::CacheTopic;
    use crate::kernel::config::{Config, EnvSource};
    use hive_proto::ManualClock;
    use std::sync::Arc;
    use time::macros::datetime;
    use uuid::Uuid;

    /// Changes of cached rows bump their topic, whoever makes them; a request's bookkeeping
    /// does not (it would end every kept credential on every request).
    #[tokio::test]
    async fn changes_of_cached_rows_are_announced_and_bookkeeping_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").display().to_string();
        let pairs = [("HIVE_DATA_DIR", data.as_str()), ("LOG_LEVEL", "warn")];
        let config = Config::load(&EnvSource::from_pairs(pairs)).unwrap();
        let now = datetime!(2026-03-01 12:00 UTC);
        let hive = Hive::open(config, Arc::new(ManualClock::new(now)))
            .await
            .unwrap();
        let generation = |topic| hive.changes.generation(topic);
        let (credentials, agents) = (
            generation(CacheTopic::Credentials),
            generation(CacheTopic::Agents),
        );
        let nobody = Uuid::now_v7();
        let store = &hive.store;
        store.sessions().touch(nobody, now).await.unwrap();
        store.api_tokens().touch(nobody, now).await.unwrap();
        assert_eq!(generation(CacheTopic::Credentials), credentials);

        // Announced even when nothing matched: the write may have changed something.
        store.sessions().delete(nobody, None, None).await.unwrap();
        assert_eq!(generation(CacheTopic::Credentials), credentials + 1);
        store.sessions().prune_expired(now, now).await.unwrap();
        assert_eq!(generation(CacheTopic::Credentials), credentials + 2);
        assert_eq!(generation(CacheTopic::Agents), agents, "another topic");

        store
            .agents()
            .set_status(
                nobody,
                hive_proto::agents::AgentStatus::Stopped,
                "",
                now,
                None,
            )
            .await
            .unwrap();
        assert_eq!(generation(CacheTopic::Agents), agents + 1);
        hive.close().await;
    }
}
