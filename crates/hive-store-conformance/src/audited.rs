//! Changes and their audit records commit together: when the record cannot be written, the
//! change is rolled back and the caller hears [`StoreError::AuditUnwritable`].

use crate::{T0, note};
use hive_proto::Role;
use hive_store::{
    AccountChange, ApiTokenRow, AuditAppend, AuditRecord, ChainHasher, NewUser, OneTimePurpose,
    OneTimeTokenRow, ProfileChange, SecretRow, SessionRow, Store, StoreError, VaultKeyRow,
    truncate_to_micros,
};
use time::Duration;
use uuid::Uuid;

/// Yields a hash the schema refuses (hashes are 64 characters), so the audit insert fails
/// inside the change's transaction, as a full disk or a lost connection would make it fail.
struct RefusedHasher;

impl ChainHasher for RefusedHasher {
    fn hash(&self, _seq: i64, _prev_hash: &str, _record: &AuditRecord) -> String {
        "not-a-hash".to_owned()
    }
}

pub(super) struct BrokenNote(AuditRecord);

pub(super) fn broken(action: &str) -> BrokenNote {
    BrokenNote(note(action).0)
}

impl BrokenNote {
    pub(super) fn append(&self) -> AuditAppend<'_> {
        AuditAppend {
            record: &self.0,
            hasher: &RefusedHasher,
        }
    }
}

pub(super) fn refused<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::AuditUnwritable(_))),
        "{what}: {result:?}"
    );
}

pub(super) async fn audit_count(store: &dyn Store) -> usize {
    store.audit().chain_after(0, 1_000).await.unwrap().len()
}

pub async fn a_change_whose_audit_record_fails_is_rolled_back(store: &dyn Store) {
    let at = truncate_to_micros(T0);
    let user = |email: &str| NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        display_name: "Name".to_owned(),
        role: Role::Admin,
        password_hash: Some("old-hash".to_owned()),
        created_at: at,
    };
    let users = store.users();

    // Creations leave nothing behind.
    let first = user("first@example.com");
    refused(
        users
            .create_first_admin(&first, broken("setup").append())
            .await,
        "first admin",
    );
    assert!(!users.setup_completed().await.unwrap());
    assert!(users.get(first.id).await.unwrap().is_none());
    let alice = users
        .create_first_admin(&user("alice@example.com"), note("setup").append())
        .await
        .unwrap();
    let bob = users
        .create(&user("bob@example.com"), note("create").append())
        .await
        .unwrap();
    let before = audit_count(store).await;
    let carol = user("carol@example.com");
    refused(
        users.create(&carol, broken("create").append()).await,
        "create user",
    );
    assert!(users.get(carol.id).await.unwrap().is_none());

    // Changes of an account keep the account as it was.
    let profile = ProfileChange {
        email: Some("new@example.com".into()),
        display_name: Some("New".into()),
    };
    refused(
        users
            .update_profile(bob.id, &profile, at, broken("profile").append())
            .await,
        "profile",
    );
    let demote = AccountChange {
        display_name: Some("Renamed".into()),
        role: Some(Role::Viewer),
        active: Some(false),
    };
    refused(
        users
            .update_account(bob.id, &demote, at, broken("account").append())
            .await,
        "account",
    );
    refused(
        users
            .set_password(bob.id, "new-hash", None, at, broken("password").append())
            .await,
        "password",
    );
    assert_eq!(users.get(bob.id).await.unwrap().as_ref(), Some(&bob));

    // Sessions and tokens.
    let sessions = store.sessions();
    let session = SessionRow {
        id: Uuid::now_v7(),
        user_id: bob.id,
        token_hash: format!("{:0>64}", "s1"),
        created_at: at,
        last_seen_at: at,
        expires_at: at + Duration::hours(12),
        authenticated_at: at,
        second_factor_at: None,
        ip: String::new(),
        user_agent: String::new(),
    };
    refused(
        sessions
            .create(&session, 48, broken("login").append())
            .await,
        "session",
    );
    assert!(sessions.list_for_user(bob.id).await.unwrap().is_empty());
    sessions
        .create(&session, 48, note("login").append())
        .await
        .unwrap();
    let later = at + Duration::minutes(5);
    refused(
        sessions
            .mark_authenticated(session.id, later, broken("reauth").append())
            .await,
        "re-authentication",
    );
    refused(
        sessions
            .delete(session.id, None, Some(broken("logout").append()))
            .await,
        "logout",
    );
    refused(
        sessions
            .delete_for_user(bob.id, None, broken("end all").append())
            .await,
        "end sessions",
    );
    assert_eq!(
        sessions.list_for_user(bob.id).await.unwrap(),
        vec![session.clone()]
    );
    let tokens = store.api_tokens();
    let token = ApiTokenRow {
        id: Uuid::now_v7(),
        user_id: bob.id,
        name: "ci".into(),
        token_hash: format!("{:0>64}", "t1"),
        role: Role::Viewer,
        scopes: vec![],
        created_at: at,
        expires_at: at + Duration::days(1),
        last_used_at: None,
        revoked_at: None,
    };
    refused(
        tokens.create(&token, broken("token").append()).await,
        "token",
    );
    assert!(
        tokens
            .find_by_token_hash(&token.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    tokens.create(&token, note("token").append()).await.unwrap();
    refused(
        tokens
            .revoke(token.id, None, at, broken("revoke").append())
            .await,
        "revoke",
    );
    let stored = tokens.find_by_token_hash(&token.token_hash).await.unwrap();
    assert_eq!(stored.and_then(|t| t.revoked_at), None);

    // One-time links: made, used.
    let one_time = store.one_time_tokens();
    let link = |purpose: OneTimePurpose, seed: &str| OneTimeTokenRow {
        id: Uuid::now_v7(),
        purpose,
        token_hash: format!("{seed:0>64}"),
        user_id: (purpose == OneTimePurpose::PasswordReset).then_some(bob.id),
        email: (purpose == OneTimePurpose::Invitation).then(|| "dave@example.com".to_owned()),
        role: (purpose == OneTimePurpose::Invitation).then_some(Role::Viewer),
        created_by: Some(alice.id),
        created_at: at,
        expires_at: at + Duration::days(1),
        used_at: None,
    };
    let invite = link(OneTimePurpose::Invitation, "i1");
    refused(
        one_time.create(&invite, broken("invite").append()).await,
        "invite",
    );
    assert!(
        one_time
            .find_live(OneTimePurpose::Invitation, &invite.token_hash, at)
            .await
            .unwrap()
            .is_none()
    );
    one_time
        .create(&invite, note("invite").append())
        .await
        .unwrap();
    let dave = Uuid::now_v7();
    refused(
        one_time
            .accept_invitation(
                &invite.token_hash,
                dave,
                "Dave",
                "h",
                at,
                broken("accept").append(),
            )
            .await,
        "accept",
    );
    assert!(users.get(dave).await.unwrap().is_none());
    let reset = link(OneTimePurpose::PasswordReset, "r1");
    one_time
        .create(&reset, note("reset link").append())
        .await
        .unwrap();
    refused(
        one_time
            .reset_password(
                &reset.token_hash,
                "reset-hash",
                at,
                broken("reset").append(),
            )
            .await,
        "reset",
    );
    for live in [&invite, &reset] {
        assert!(
            one_time
                .find_live(live.purpose, &live.token_hash, at)
                .await
                .unwrap()
                .is_some(),
            "{:?} stays unused",
            live.purpose
        );
    }
    assert_eq!(users.get(bob.id).await.unwrap().as_ref(), Some(&bob));

    // Secrets.
    let key = VaultKeyRow::new(1, "n.c".into(), at);
    refused(
        store
            .vault_keys()
            .insert(&key, broken("key").append())
            .await,
        "vault key",
    );
    assert!(store.vault_keys().list().await.unwrap().is_empty());
    store
        .vault_keys()
        .insert(&key, note("vault.key_create").append())
        .await
        .unwrap();
    let secrets = store.secrets();
    let secret = SecretRow {
        id: Uuid::now_v7(),
        owner_id: bob.id,
        name: "openai".into(),
        description: String::new(),
        version: 1,
        key_id: 1,
        value: "sealed-1".into(),
        created_at: at,
        updated_at: at,
    };
    refused(
        secrets.create(&secret, broken("secret").append()).await,
        "secret",
    );
    assert!(secrets.get(secret.id, None).await.unwrap().is_none());
    secrets
        .create(&secret, note("secret").append())
        .await
        .unwrap();
    refused(
        secrets
            .replace_value(
                &SecretRow {
                    version: 2,
                    value: "sealed-2".into(),
                    ..secret.clone()
                },
                broken("update").append(),
            )
            .await,
        "update secret",
    );
    refused(
        secrets
            .delete(secret.id, None, broken("delete").append())
            .await,
        "delete secret",
    );
    assert_eq!(
        secrets.get(secret.id, None).await.unwrap().as_ref(),
        Some(&secret)
    );

    // Only the records of the changes that went through were written, each once: the
    // session, the token, the two links, the vault key and the secret.
    let written = 6;
    assert_eq!(audit_count(store).await, before + written);
}
