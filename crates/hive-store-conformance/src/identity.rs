//! Identity checks: accounts, the setup race, the last-admin guard, sessions, API tokens,
//! one-time tokens and audit records.

use crate::{T0, first, note};
use futures_util::future::join_all;
use hive_proto::{Role, TokenScope};
use hive_store::{
    AccountChange, ApiTokenRow, AuditCheckpoint, AuditFilter, AuditOutcome, AuditPosition,
    AuditRecord, ChainHasher, CheckpointSigner, GENESIS_HASH, GuardedChange, NewUser,
    OneTimePurpose, OneTimeTokenRow, PageRequest, ProfileChange, SessionRow, Store, StoreError,
    TextMatch, UserRow, truncate_to_micros,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A user made through the store (its creation audited), for checks that need one.
pub(crate) async fn made_user(store: &dyn Store, email: &str, role: Role) -> UserRow {
    store
        .users()
        .create(&new_user(email, role), note("create").append())
        .await
        .unwrap()
}

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        display_name: format!("{email} name"),
        role,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        created_at: truncate_to_micros(T0),
    }
}

/// A 64-character stand-in for a SHA-256 hex digest.
fn hash_of(seed: &str) -> String {
    format!("{seed:0>64}")
}

pub(super) fn session(user: &UserRow, seed: &str, at: OffsetDateTime) -> SessionRow {
    let at = truncate_to_micros(at);
    SessionRow {
        id: Uuid::now_v7(),
        user_id: user.id,
        token_hash: hash_of(seed),
        created_at: at,
        last_seen_at: at,
        expires_at: at + Duration::hours(12),
        authenticated_at: at,
        second_factor_at: None,
        ip: "192.0.2.1".to_owned(),
        user_agent: "conformance".to_owned(),
    }
}

pub async fn setup_has_exactly_one_winner(store: &dyn Store) {
    let users = store.users();
    assert!(!users.setup_completed().await.unwrap());
    let candidates: Vec<NewUser> = (0..20)
        .map(|i| new_user(&format!("admin{i}@example.com"), Role::Admin))
        .collect();
    let notes: Vec<_> = candidates.iter().map(|_| note("setup")).collect();
    let results = join_all(
        candidates
            .iter()
            .zip(&notes)
            .map(|(u, n)| users.create_first_admin(u, n.append())),
    )
    .await;
    let winners: Vec<&UserRow> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        }
    }
    assert!(users.setup_completed().await.unwrap());
    let all = users.list(&first(100)).await.unwrap();
    assert_eq!(all.items.len(), 1, "the losers left no account behind");
    assert_eq!(all.items[0].role, Role::Admin);
    let again = users
        .create_first_admin(
            &new_user("late@example.com", Role::Admin),
            note("create_first_admin").append(),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

pub async fn users_round_trip_and_page(store: &dyn Store) {
    let users = store.users();
    let alice = made_user(store, "alice@example.com", Role::Viewer).await;
    assert!(alice.active);
    assert_eq!(alice.created_at, truncate_to_micros(T0));
    assert_eq!(users.get(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(
        users.find_by_email("alice@example.com").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        users.find_by_email("nobody@example.com").await.unwrap(),
        None
    );
    let taken = users
        .create(
            &new_user("alice@example.com", Role::Admin),
            note("create").append(),
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    let bob = made_user(store, "bob@example.com", Role::Operator).await;
    let renamed = users
        .update_profile(
            alice.id,
            &ProfileChange {
                display_name: Some("Alice A.".to_owned()),
                email: None,
            },
            T0 + Duration::minutes(1),
            note("update_profile").append(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.display_name, "Alice A.");
    assert_eq!(renamed.email, "alice@example.com");
    assert!(renamed.updated_at > alice.updated_at);
    let clash = users
        .update_profile(
            alice.id,
            &ProfileChange {
                email: Some("bob@example.com".to_owned()),
                display_name: None,
            },
            T0,
            note("update_profile").append(),
        )
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(
        users
            .update_profile(
                Uuid::now_v7(),
                &ProfileChange::default(),
                T0,
                note("update_profile").append()
            )
            .await
            .unwrap(),
        None
    );

    for i in 0..5 {
        made_user(store, &format!("u{i}@example.com"), Role::Viewer).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(3, cursor.as_deref()).unwrap();
        let got = users.list(&page).await.unwrap();
        seen.extend(got.items.into_iter().map(|u| u.id));
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.contains(&bob.id) && seen.contains(&alice.id));
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 7, "no row twice");
}

pub async fn the_last_admin_is_guarded(store: &dyn Store) {
    let users = store.users();
    let a = made_user(store, "a@example.com", Role::Admin).await;
    let b = made_user(store, "b@example.com", Role::Admin).await;
    let viewer = made_user(store, "v@example.com", Role::Viewer).await;
    // Both admins demoted at once: one change wins, the other is refused.
    let demote = AccountChange {
        role: Some(Role::Viewer),
        ..AccountChange::default()
    };
    let deactivate = AccountChange {
        active: Some(false),
        ..AccountChange::default()
    };
    let (first_note, second_note) = (note("demote"), note("deactivate"));
    let (first_change, second_change) = tokio::join!(
        users.update_account(a.id, &demote, T0, first_note.append()),
        users.update_account(b.id, &deactivate, T0, second_note.append())
    );
    let outcomes = [first_change.unwrap(), second_change.unwrap()];
    let changed = outcomes
        .iter()
        .filter(|o| matches!(o, GuardedChange::Changed(_)))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, GuardedChange::LastAdmin))
        .count();
    assert_eq!((changed, refused), (1, 1), "{outcomes:?}");
    let admins: Vec<UserRow> = users
        .list(&first(10))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|u| u.role == Role::Admin && u.active)
        .collect();
    assert_eq!(admins.len(), 1);
    let last = &admins[0];
    assert_eq!(
        users
            .update_account(
                last.id,
                &AccountChange {
                    active: Some(false),
                    ..AccountChange::default()
                },
                T0,
                note("update_account").append()
            )
            .await
            .unwrap(),
        GuardedChange::LastAdmin
    );
    assert_eq!(
        users
            .update_account(
                last.id,
                &AccountChange {
                    role: Some(Role::Operator),
                    ..AccountChange::default()
                },
                T0,
                note("update_account").append()
            )
            .await
            .unwrap(),
        GuardedChange::LastAdmin
    );
    // Keeping the role is not a demotion.
    assert!(matches!(
        users
            .update_account(
                last.id,
                &AccountChange {
                    role: Some(Role::Admin),
                    ..AccountChange::default()
                },
                T0,
                note("update_account").append()
            )
            .await
            .unwrap(),
        GuardedChange::Changed(_)
    ));
    // Others change freely; an unknown id is reported.
    let GuardedChange::Changed(raised) = users
        .update_account(
            viewer.id,
            &AccountChange {
                role: Some(Role::Operator),
                ..AccountChange::default()
            },
            T0,
            note("update_account").append(),
        )
        .await
        .unwrap()
    else {
        panic!("a viewer can be raised");
    };
    assert_eq!(raised.role, Role::Operator);
    assert_eq!(
        users
            .update_account(
                Uuid::now_v7(),
                &AccountChange {
                    active: Some(false),
                    ..AccountChange::default()
                },
                T0,
                note("update_account").append()
            )
            .await
            .unwrap(),
        GuardedChange::NotFound
    );
}

pub async fn role_password_and_deactivation_end_sessions(store: &dyn Store) {
    let users = store.users();
    let sessions = store.sessions();
    let admin = made_user(store, "root@example.com", Role::Admin).await;
    let user = made_user(store, "u@example.com", Role::Operator).await;
    let kept = session(&user, "1", T0);
    sessions
        .create(&kept, 48, note("create").append())
        .await
        .unwrap();
    sessions
        .create(&session(&user, "2", T0), 48, note("create").append())
        .await
        .unwrap();
    sessions
        .create(&session(&admin, "3", T0), 48, note("create").append())
        .await
        .unwrap();

    assert!(
        users
            .set_password(
                user.id,
                "new-hash",
                Some(kept.id),
                T0,
                note("set_password").append()
            )
            .await
            .unwrap()
    );
    let left = sessions.list_for_user(user.id).await.unwrap();
    assert_eq!(left.iter().map(|s| s.id).collect::<Vec<_>>(), vec![kept.id]);
    assert_eq!(
        users
            .get(user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("new-hash")
    );
    assert!(
        !users
            .set_password(Uuid::now_v7(), "x", None, T0, note("set_password").append())
            .await
            .unwrap()
    );

    // The same role again ends nothing; a new role ends every session.
    users
        .update_account(
            user.id,
            &AccountChange {
                role: Some(Role::Operator),
                ..AccountChange::default()
            },
            T0,
            note("update_account").append(),
        )
        .await
        .unwrap();
    assert_eq!(sessions.list_for_user(user.id).await.unwrap().len(), 1);
    users
        .update_account(
            user.id,
            &AccountChange {
                role: Some(Role::Viewer),
                ..AccountChange::default()
            },
            T0,
            note("update_account").append(),
        )
        .await
        .unwrap();
    assert!(sessions.list_for_user(user.id).await.unwrap().is_empty());

    sessions
        .create(&session(&user, "4", T0), 48, note("create").append())
        .await
        .unwrap();
    let GuardedChange::Changed(off) = users
        .update_account(
            user.id,
            &AccountChange {
                active: Some(false),
                ..AccountChange::default()
            },
            T0,
            note("update_account").append(),
        )
        .await
        .unwrap()
    else {
        panic!("a non-admin can be deactivated");
    };
    assert!(!off.active);
    assert!(sessions.list_for_user(user.id).await.unwrap().is_empty());
    assert_eq!(
        sessions.list_for_user(admin.id).await.unwrap().len(),
        1,
        "other users keep theirs"
    );
}

pub async fn login_failures_are_counted_per_day(store: &dyn Store) {
    let users = store.users();
    let user = made_user(store, "f@example.com", Role::Viewer).await;
    let day = 20_000;
    let at = truncate_to_micros(T0);
    let results = join_all((0..5).map(|_| users.record_login_failure(user.id, day, at))).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let after = users.get(user.id).await.unwrap().unwrap().throttle;
    assert_eq!(after.consecutive_failures, 5, "no lost update");
    assert_eq!(after.failures_today, 5);
    assert_eq!(after.failure_day, day);
    assert_eq!(after.last_failure_at, Some(at));

    let next_day = users
        .record_login_failure(user.id, day + 1, at + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(next_day.failures_today, 1, "a new day starts a new count");
    assert_eq!(next_day.consecutive_failures, 6);

    users
        .record_login_success(user.id, Some("rehashed"), at)
        .await
        .unwrap();
    let cleared = users.get(user.id).await.unwrap().unwrap();
    assert_eq!(cleared.throttle.consecutive_failures, 0);
    assert_eq!(cleared.throttle.last_failure_at, None);
    assert_eq!(cleared.throttle.failures_today, 1, "the day's count stays");
    assert_eq!(cleared.password_hash.as_deref(), Some("rehashed"));
    let missing = users.record_login_failure(Uuid::now_v7(), day, at).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

pub async fn sessions_are_capped_and_pruned(store: &dyn Store) {
    let sessions = store.sessions();
    let user = made_user(store, "s@example.com", Role::Viewer).await;
    let other = made_user(store, "o@example.com", Role::Viewer).await;
    let mut made = Vec::new();
    for i in 0..4 {
        let row = session(&user, &format!("s{i}"), T0 + Duration::seconds(i));
        sessions
            .create(&row, 3, note("create").append())
            .await
            .unwrap();
        made.push(row);
    }
    let listed = sessions.list_for_user(user.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        made[1..].iter().rev().map(|s| s.id).collect::<Vec<_>>(),
        "the oldest beyond the cap is gone, newest first"
    );
    assert_eq!(
        sessions.find_by_token_hash(&hash_of("s0")).await.unwrap(),
        None
    );
    let newest = &made[3];
    assert_eq!(
        sessions
            .find_by_token_hash(&newest.token_hash)
            .await
            .unwrap(),
        Some(newest.clone())
    );
    let dup = sessions
        .create(&session(&other, "s3", T0), 3, note("create").append())
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let later = truncate_to_micros(T0 + Duration::minutes(10));
    sessions.touch(newest.id, later).await.unwrap();
    sessions.touch(newest.id, T0).await.unwrap();
    let seen = sessions
        .find_by_token_hash(&newest.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.last_seen_at, later, "touch never goes back");
    sessions
        .mark_authenticated(newest.id, later, note("mark_authenticated").append())
        .await
        .unwrap();
    let seen = sessions
        .find_by_token_hash(&newest.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.authenticated_at, later);

    assert!(
        !sessions
            .delete(newest.id, Some(other.id), Some(note("delete").append()))
            .await
            .unwrap(),
        "not theirs"
    );
    assert!(
        sessions
            .delete(newest.id, Some(user.id), Some(note("delete").append()))
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .delete(newest.id, None, Some(note("delete").append()))
            .await
            .unwrap()
    );

    // made[1] idles since T0+1s; made[2] is past its end at T0+13h.
    assert_eq!(
        sessions
            .prune_expired(T0 + Duration::minutes(5), T0 + Duration::seconds(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sessions
            .prune_expired(T0 + Duration::hours(13), T0)
            .await
            .unwrap(),
        1
    );
    assert!(sessions.list_for_user(user.id).await.unwrap().is_empty());
    sessions
        .create(&session(&user, "x1", T0), 48, note("create").append())
        .await
        .unwrap();
    sessions
        .create(&session(&user, "x2", T0), 48, note("create").append())
        .await
        .unwrap();
    assert_eq!(
        sessions
            .delete_for_user(user.id, None, note("delete_for_user").append())
            .await
            .unwrap(),
        2
    );
}

pub async fn api_tokens_round_trip_and_revoke(store: &dyn Store) {
    let tokens = store.api_tokens();
    let owner = made_user(store, "t@example.com", Role::Operator).await;
    let stranger = made_user(store, "x@example.com", Role::Admin).await;
    let mut made = Vec::new();
    for i in 0..3 {
        let at = truncate_to_micros(T0 + Duration::seconds(i));
        let row = ApiTokenRow {
            id: Uuid::now_v7(),
            user_id: owner.id,
            name: format!("token {i}"),
            token_hash: hash_of(&format!("t{i}")),
            role: Role::Viewer,
            scopes: vec![TokenScope::Read, TokenScope::Execute],
            created_at: at,
            expires_at: at + Duration::days(30),
            last_used_at: None,
            revoked_at: None,
        };
        tokens.create(&row, note("create").append()).await.unwrap();
        made.push(row);
    }
    assert_eq!(
        tokens
            .find_by_token_hash(&made[0].token_hash)
            .await
            .unwrap(),
        Some(made[0].clone())
    );
    let page = tokens.list_for_user(owner.id, &first(2)).await.unwrap();
    assert_eq!(
        page.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![made[2].id, made[1].id]
    );
    let rest = tokens
        .list_for_user(
            owner.id,
            &PageRequest::new(2, page.next_cursor.as_deref()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_cursor.is_none());
    assert!(
        tokens
            .list_for_user(stranger.id, &first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let used = truncate_to_micros(T0 + Duration::hours(1));
    tokens.touch(made[0].id, used).await.unwrap();
    tokens.touch(made[0].id, T0).await.unwrap();
    let found = tokens
        .find_by_token_hash(&made[0].token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.last_used_at, Some(used));

    assert!(
        !tokens
            .revoke(made[0].id, Some(stranger.id), used, note("revoke").append())
            .await
            .unwrap()
    );
    assert!(
        tokens
            .revoke(made[0].id, Some(owner.id), used, note("revoke").append())
            .await
            .unwrap()
    );
    assert!(
        !tokens
            .revoke(made[0].id, None, used, note("revoke").append())
            .await
            .unwrap(),
        "only once"
    );
    let revoked = tokens
        .find_by_token_hash(&made[0].token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(used));
    assert!(
        tokens
            .revoke(made[1].id, None, used, note("revoke").append())
            .await
            .unwrap(),
        "an admin path"
    );
}

fn invitation(email: &str, role: Role, by: Uuid, seed: &str) -> OneTimeTokenRow {
    let at = truncate_to_micros(T0);
    OneTimeTokenRow {
        id: Uuid::now_v7(),
        purpose: OneTimePurpose::Invitation,
        token_hash: hash_of(seed),
        user_id: None,
        email: Some(email.to_owned()),
        role: Some(role),
        created_by: Some(by),
        created_at: at,
        expires_at: at + Duration::days(7),
        used_at: None,
    }
}

pub async fn invitations_are_used_once(store: &dyn Store) {
    let one_time = store.one_time_tokens();
    let admin = made_user(store, "admin@example.com", Role::Admin).await;
    let invite = invitation("new@example.com", Role::Operator, admin.id, "i1");
    one_time
        .create(&invite, note("create").append())
        .await
        .unwrap();
    assert_eq!(
        one_time
            .find_live(OneTimePurpose::Invitation, &invite.token_hash, T0)
            .await
            .unwrap(),
        Some(invite.clone())
    );
    assert_eq!(
        one_time
            .find_live(OneTimePurpose::PasswordReset, &invite.token_hash, T0)
            .await
            .unwrap(),
        None,
        "purposes do not mix"
    );
    let notes: Vec<_> = (0..10).map(|_| note("accept")).collect();
    let accepted = join_all(notes.iter().map(|n| {
        one_time.accept_invitation(
            &invite.token_hash,
            Uuid::now_v7(),
            "New",
            "h",
            T0,
            n.append(),
        )
    }))
    .await;
    let created: Vec<&UserRow> = accepted
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(Option::as_ref))
        .collect();
    assert_eq!(created.len(), 1, "{accepted:?}");
    assert_eq!(created[0].email, "new@example.com");
    assert_eq!(created[0].role, Role::Operator);
    assert_eq!(created[0].display_name, "New");
    assert_eq!(
        one_time
            .find_live(OneTimePurpose::Invitation, &invite.token_hash, T0)
            .await
            .unwrap(),
        None
    );

    // An invitation for a taken email fails and stays usable; an expired one is refused.
    let clash = invitation("admin@example.com", Role::Viewer, admin.id, "i2");
    one_time
        .create(&clash, note("create").append())
        .await
        .unwrap();
    let refused = one_time
        .accept_invitation(
            &clash.token_hash,
            Uuid::now_v7(),
            "Dup",
            "h",
            T0,
            note("accept_invitation").append(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert!(
        one_time
            .find_live(OneTimePurpose::Invitation, &clash.token_hash, T0)
            .await
            .unwrap()
            .is_some()
    );
    let late = T0 + Duration::days(8);
    let expired = invitation("late@example.com", Role::Viewer, admin.id, "i3");
    one_time
        .create(&expired, note("create").append())
        .await
        .unwrap();
    assert_eq!(
        one_time
            .accept_invitation(
                &expired.token_hash,
                Uuid::now_v7(),
                "Late",
                "h",
                late,
                note("accept_invitation").append()
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(one_time.prune_expired(late).await.unwrap(), 3);
}

pub async fn password_resets_are_used_once(store: &dyn Store) {
    let users = store.users();
    let sessions = store.sessions();
    let one_time = store.one_time_tokens();
    let user = made_user(store, "r@example.com", Role::Viewer).await;
    users.record_login_failure(user.id, 1, T0).await.unwrap();
    sessions
        .create(&session(&user, "r1", T0), 48, note("create").append())
        .await
        .unwrap();
    let reset = |seed: &str| OneTimeTokenRow {
        id: Uuid::now_v7(),
        purpose: OneTimePurpose::PasswordReset,
        token_hash: hash_of(seed),
        user_id: Some(user.id),
        email: None,
        role: None,
        created_by: None,
        created_at: truncate_to_micros(T0),
        expires_at: truncate_to_micros(T0 + Duration::hours(1)),
        used_at: None,
    };
    let first_link = reset("p1");
    let second_link = reset("p2");
    one_time
        .create(&first_link, note("create").append())
        .await
        .unwrap();
    one_time
        .create(&second_link, note("create").append())
        .await
        .unwrap();
    let notes: Vec<_> = (0..10).map(|_| note("reset_password")).collect();
    let results =
        join_all(notes.iter().map(|n| {
            one_time.reset_password(&first_link.token_hash, "reset-hash", T0, n.append())
        }))
        .await;
    let winners = results
        .iter()
        .filter(|r| matches!(r, Ok(Some(id)) if *id == user.id))
        .count();
    assert_eq!(winners, 1, "{results:?}");
    let after = users.get(user.id).await.unwrap().unwrap();
    assert_eq!(after.password_hash.as_deref(), Some("reset-hash"));
    assert_eq!(after.throttle.consecutive_failures, 0);
    assert!(sessions.list_for_user(user.id).await.unwrap().is_empty());
    assert_eq!(
        one_time
            .reset_password(
                &second_link.token_hash,
                "other",
                T0,
                note("reset_password").append()
            )
            .await
            .unwrap(),
        None,
        "a password change voids the other links"
    );
    let expired = reset("p3");
    one_time
        .create(&expired, note("create").append())
        .await
        .unwrap();
    assert_eq!(
        one_time
            .reset_password(
                &expired.token_hash,
                "x",
                T0 + Duration::hours(2),
                note("reset_password").append()
            )
            .await
            .unwrap(),
        None
    );
}

pub async fn audit_records_page_newest_first(store: &dyn Store) {
    let audit = store.audit();
    let mut made = Vec::new();
    for i in 0..5 {
        let record = AuditRecord {
            id: Uuid::now_v7(),
            at: truncate_to_micros(T0 + Duration::seconds(i)),
            actor: "anonymous".to_owned(),
            action: if i % 2 == 0 {
                "auth.login"
            } else {
                "auth.logout"
            }
            .to_owned(),
            target: Some(format!("user:{i}")),
            outcome: if i == 0 {
                AuditOutcome::Failure
            } else {
                AuditOutcome::Success
            },
            ip: Some("192.0.2.7".to_owned()),
            request_id: Some(format!("req-{i}")),
            detail: "{}".to_owned(),
            link: None,
        };
        let link = audit.append(&record, &TestHasher).await.unwrap();
        made.push(AuditRecord {
            link: Some(link),
            ..record
        });
    }
    let all = audit.list(&AuditFilter::all(), &first(10)).await.unwrap();
    assert_eq!(all.items, made.iter().rev().cloned().collect::<Vec<_>>());
    let logins = audit
        .list(&AuditFilter::action("auth.login"), &first(2))
        .await
        .unwrap();
    assert_eq!(
        logins.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![made[4].id, made[2].id]
    );
    let rest = audit
        .list(
            &AuditFilter::action("auth.login"),
            &PageRequest::new(2, logins.next_cursor.as_deref()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rest.items, vec![made[0].clone()]);
    assert!(rest.next_cursor.is_none());
}

/// Every page of `filter`'s records, newest first, `limit` at a time.
async fn list_all(store: &dyn Store, filter: &AuditFilter, limit: u32) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .audit()
            .list(filter, &PageRequest::new(limit, cursor.as_deref()).unwrap())
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Every record of `filter`, oldest first, as export walks them.
async fn walk_oldest_first(
    store: &dyn Store,
    filter: &AuditFilter,
    limit: u32,
) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    let mut position = AuditPosition::START;
    loop {
        let batch = store
            .audit()
            .oldest_first(filter, &position, limit)
            .await
            .unwrap();
        match (batch.last(), position) {
            (Some(last), _) => position = AuditPosition::after(last),
            (None, AuditPosition::Unchained(_)) => position = AuditPosition::Chained(0),
            (None, AuditPosition::Chained(_)) => return out,
        }
        out.extend(batch);
    }
}

pub async fn audit_filters_match_and_pages_neither_skip_nor_repeat(store: &dyn Store) {
    let audit = store.audit();
    let actions = [
        "auth.login",
        "auth.logout",
        "secret.create",
        "auth.login_failed",
    ];
    let outcomes = [
        AuditOutcome::Success,
        AuditOutcome::Failure,
        AuditOutcome::Denied,
    ];
    let mut made = Vec::new();
    for i in 0..23_i64 {
        let record = AuditRecord {
            id: Uuid::now_v7(),
            // Some records share a time: the id orders them.
            at: truncate_to_micros(T0 + Duration::seconds(i / 3)),
            actor: format!("user:{}", i % 3),
            action: actions[(i % 4) as usize].to_owned(),
            target: match i % 5 {
                0 => None,
                1 | 2 => Some(format!("secret:{}", i % 2)),
                3 => Some("secretary:1".to_owned()),
                _ => Some(format!("user:{i}")),
            },
            outcome: outcomes[(i % 3) as usize],
            ip: None,
            request_id: None,
            detail: "{}".to_owned(),
            link: None,
        };
        let link = audit.append(&record, &TestHasher).await.unwrap();
        made.push(AuditRecord {
            link: Some(link),
            ..record
        });
    }
    let filters = [
        AuditFilter::all(),
        AuditFilter {
            actor: Some("user:1".to_owned()),
            ..AuditFilter::default()
        },
        AuditFilter::action("auth.login"),
        AuditFilter {
            action: Some(TextMatch::Prefix("auth.".to_owned())),
            ..AuditFilter::default()
        },
        AuditFilter {
            target: Some(TextMatch::Exact("secret:1".to_owned())),
            ..AuditFilter::default()
        },
        AuditFilter {
            target: Some(TextMatch::Prefix("secret:".to_owned())),
            ..AuditFilter::default()
        },
        AuditFilter {
            outcome: Some(AuditOutcome::Denied),
            ..AuditFilter::default()
        },
        AuditFilter {
            since: Some(truncate_to_micros(T0 + Duration::seconds(2))),
            until: Some(truncate_to_micros(T0 + Duration::seconds(5))),
            ..AuditFilter::default()
        },
        AuditFilter {
            actor: Some("user:0".to_owned()),
            action: Some(TextMatch::Prefix("auth.login".to_owned())),
            outcome: Some(AuditOutcome::Success),
            since: Some(truncate_to_micros(T0 + Duration::seconds(1))),
            ..AuditFilter::default()
        },
        AuditFilter {
            actor: Some("nobody".to_owned()),
            ..AuditFilter::default()
        },
        // One object's records of a few actions (an agent's calls).
        AuditFilter {
            action: Some(TextMatch::AnyOf(vec![
                "auth.login".to_owned(),
                "secret.create".to_owned(),
                "auth".to_owned(),
            ])),
            target: Some(TextMatch::Exact("secret:1".to_owned())),
            ..AuditFilter::default()
        },
        AuditFilter {
            action: Some(TextMatch::AnyOf(vec!["auth.logout".to_owned()])),
            ..AuditFilter::default()
        },
        AuditFilter {
            action: Some(TextMatch::AnyOf(Vec::new())),
            ..AuditFilter::default()
        },
    ];
    for filter in &filters {
        let mut newest_first: Vec<AuditRecord> =
            made.iter().filter(|r| filter.matches(r)).cloned().collect();
        newest_first.sort_by_key(|r| std::cmp::Reverse((r.at, r.id)));
        for limit in [1, 4, 100] {
            assert_eq!(
                list_all(store, filter, limit).await,
                newest_first,
                "{filter:?} in pages of {limit}"
            );
        }
        let in_chain_order: Vec<AuditRecord> =
            made.iter().filter(|r| filter.matches(r)).cloned().collect();
        assert_eq!(
            walk_oldest_first(store, filter, 4).await,
            in_chain_order,
            "{filter:?} oldest first"
        );
    }
    // The prefix filters are prefixes, not patterns.
    let wild = AuditFilter {
        action: Some(TextMatch::Prefix("auth_".to_owned())),
        ..AuditFilter::default()
    };
    assert!(list_all(store, &wild, 10).await.is_empty());
    let upper = AuditFilter {
        action: Some(TextMatch::Prefix("AUTH.".to_owned())),
        ..AuditFilter::default()
    };
    assert!(list_all(store, &upper, 10).await.is_empty());
}

pub async fn audit_retention_cuts_the_chain_at_a_signed_checkpoint(store: &dyn Store) {
    let audit = store.audit();
    let mut made = Vec::new();
    for i in 0..10 {
        let record = AuditRecord {
            at: truncate_to_micros(T0 + Duration::minutes(i)),
            ..chain_record(format!("{{\"n\":{i}}}"))
        };
        made.push(audit.append(&record, &TestHasher).await.unwrap());
    }
    assert_eq!(audit.latest_checkpoint().await.unwrap(), None);
    let now = T0 + Duration::days(400);
    let cut = T0 + Duration::minutes(5);

    // In batches of 3: records 1-3, then 4-5 (6 is at the cut, not before it), then nothing.
    let pruned = audit.prune_before(cut, 3, &TestHasher, now).await.unwrap();
    assert_eq!(pruned.deleted, 3);
    let checkpoint = pruned.checkpoint.clone().unwrap();
    let mut expected = AuditCheckpoint {
        seq: 3,
        hash: made[2].hash.clone(),
        at: truncate_to_micros(T0 + Duration::minutes(2)),
        created_at: truncate_to_micros(now),
        signature: String::new(),
    };
    expected.signature = TestHasher.sign_checkpoint(&expected);
    assert_eq!(checkpoint, expected);
    assert_eq!(audit.latest_checkpoint().await.unwrap(), Some(expected));
    let pruned = audit.prune_before(cut, 3, &TestHasher, now).await.unwrap();
    assert_eq!(pruned.deleted, 2);
    assert_eq!(pruned.checkpoint.as_ref().map(|c| c.seq), Some(5));
    let pruned = audit.prune_before(cut, 3, &TestHasher, now).await.unwrap();
    assert_eq!(pruned, hive_store::AuditPrune::default());
    let left = audit.chain_after(0, 100).await.unwrap();
    assert_eq!(
        left.first().and_then(|r| r.link.as_ref()).map(|l| l.seq),
        Some(6)
    );
    assert_eq!(
        audit
            .latest_checkpoint()
            .await
            .unwrap()
            .map(|c| (c.seq, c.hash)),
        Some((5, made[4].hash.clone()))
    );

    // A cut after everything keeps the newest record, so the next append links to it.
    let pruned = audit
        .prune_before(now, 100, &TestHasher, now)
        .await
        .unwrap();
    assert_eq!(pruned.deleted, 4);
    assert_eq!(pruned.checkpoint.map(|c| c.seq), Some(9));
    let next = audit
        .append(&chain_record("{}".to_owned()), &TestHasher)
        .await
        .unwrap();
    assert_eq!(next.seq, 11);
    assert_eq!(next.prev_hash, made[9].hash);
    let left = audit.chain_after(0, 100).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|r| r.link.as_ref().unwrap().seq)
            .collect::<Vec<_>>(),
        vec![10, 11]
    );
}

/// An unkeyed stand-in for the audit chain's HMAC: enough to see what the store hashes.
pub(crate) struct TestHasher;

impl CheckpointSigner for TestHasher {
    fn sign_checkpoint(&self, checkpoint: &AuditCheckpoint) -> String {
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(
            &(
                checkpoint.seq,
                &checkpoint.hash,
                checkpoint.at,
                checkpoint.created_at,
            ),
            &mut digest,
        );
        format!("{:064x}", std::hash::Hasher::finish(&digest))
    }
}

impl ChainHasher for TestHasher {
    fn hash(&self, seq: i64, prev_hash: &str, record: &AuditRecord) -> String {
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(seq, prev_hash, record.id, &record.detail), &mut digest);
        format!("{:064x}", std::hash::Hasher::finish(&digest))
    }
}

fn chain_record(detail: String) -> AuditRecord {
    AuditRecord {
        id: Uuid::now_v7(),
        at: truncate_to_micros(T0),
        actor: "system".to_owned(),
        action: "test.append".to_owned(),
        target: None,
        outcome: AuditOutcome::Success,
        ip: None,
        request_id: None,
        detail,
        link: None,
    }
}

pub async fn audit_appends_form_one_chain_under_concurrency(store: &dyn Store) {
    let audit = store.audit();
    let records: Vec<AuditRecord> = (0..30)
        .map(|i| chain_record(format!("{{\"n\":{i}}}")))
        .collect();
    let links = join_all(records.iter().map(|r| audit.append(r, &TestHasher))).await;
    let mut seqs: Vec<i64> = links.iter().map(|l| l.as_ref().unwrap().seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=30).collect::<Vec<_>>(),
        "one place each, no gaps"
    );

    assert_one_chain(store, 30).await;
}

/// Reads the whole chain back in pages and checks that it is `expected` records long, that
/// each link names the hash before it, and that each hash is what the hasher gives for the
/// stored record.
async fn assert_one_chain(store: &dyn Store, expected: usize) {
    let audit = store.audit();
    let mut chain = audit.chain_after(0, 7).await.unwrap();
    while let Some(last) = chain.last().and_then(|r| r.link.clone()) {
        let more = audit.chain_after(last.seq, 7).await.unwrap();
        if more.is_empty() {
            break;
        }
        chain.extend(more);
    }
    assert_eq!(chain.len(), expected);
    let mut prev = GENESIS_HASH.to_owned();
    for (expected_seq, record) in (1..).zip(&chain) {
        let link = record.link.clone().unwrap();
        assert_eq!(link.seq, expected_seq);
        assert_eq!(link.prev_hash, prev);
        let unlinked = AuditRecord {
            link: None,
            ..record.clone()
        };
        assert_eq!(
            link.hash,
            TestHasher.hash(link.seq, &link.prev_hash, &unlinked)
        );
        prev = link.hash;
    }
    assert_eq!(audit.count_unchained().await.unwrap(), 0);
}

/// The detail of a record [`PoisonHasher`] makes unwritable.
const POISON: &str = "{\"poison\":true}";

/// [`TestHasher`], except for the record whose detail is [`POISON`]: its hash is one the schema
/// refuses, so its insert fails in the middle of a batch, as a full disk would make it fail.
struct PoisonHasher;

impl ChainHasher for PoisonHasher {
    fn hash(&self, seq: i64, prev_hash: &str, record: &AuditRecord) -> String {
        if record.detail == POISON {
            "not-a-hash".to_owned()
        } else {
            TestHasher.hash(seq, prev_hash, record)
        }
    }
}

fn numbered(range: std::ops::Range<usize>) -> Vec<AuditRecord> {
    range
        .map(|i| chain_record(format!("{{\"n\":{i}}}")))
        .collect()
}

pub async fn audit_batches_commit_in_order_or_not_at_all(store: &dyn Store) {
    let audit = store.audit();
    assert!(
        audit
            .append_batch(&[], &PoisonHasher)
            .await
            .unwrap()
            .is_empty()
    );
    let opening = numbered(0..5);
    let links = audit.append_batch(&opening, &PoisonHasher).await.unwrap();
    assert_eq!(
        links.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "in the order given"
    );

    // One unwritable record fails the whole batch: none of its records exists afterwards.
    let mut failing = numbered(5..9);
    failing.insert(2, chain_record(POISON.to_owned()));
    let refused = audit.append_batch(&failing, &PoisonHasher).await;
    assert!(
        matches!(refused, Err(StoreError::AuditUnwritable(_))),
        "{refused:?}"
    );
    let stored = audit.list(&AuditFilter::all(), &first(100)).await.unwrap();
    assert_eq!(
        stored.items.len(),
        5,
        "none of the failed batch was written"
    );
    assert!(
        stored
            .items
            .iter()
            .all(|record| failing.iter().all(|failed| failed.id != record.id))
    );

    // The chain goes on from the last committed record.
    let after = audit
        .append_batch(&numbered(9..11), &PoisonHasher)
        .await
        .unwrap();
    assert_eq!(after[0].seq, 6);
    assert_eq!(after[0].prev_hash, links[4].hash);
    assert_one_chain(store, 7).await;
}

/// A change audited in its own transaction moves the chain's end between two batches: the next
/// batch continues after the change's record (a writer that remembers the end it wrote must
/// notice it moved), and the chain stays one.
pub async fn audit_batches_continue_after_a_change_audited_on_its_own(store: &dyn Store) {
    let audit = store.audit();
    for round in 0..3 {
        audit
            .append_batch(&numbered(round * 10..round * 10 + 4), &PoisonHasher)
            .await
            .unwrap();
    }
    made_user(store, "between@example.com", Role::Viewer).await;
    let after = audit
        .append_batch(&numbered(40..43), &PoisonHasher)
        .await
        .unwrap();
    assert_eq!(
        after[0].seq, 14,
        "after twelve batched records and the change's"
    );
    let change = audit.chain_after(12, 1).await.unwrap();
    assert_eq!(change[0].action, "create");
    assert_eq!(
        Some(after[0].prev_hash.clone()),
        change[0].link.as_ref().map(|link| link.hash.clone())
    );
    assert_one_chain(store, 16).await;
}

/// Concurrent batches from two handles on one database (two replicas; one handle twice where
/// the backend admits one process, as SQLite does) interleave as whole batches into one
/// chain: the chain is held once per batch, and each batch's records are consecutive.
pub async fn audit_batches_from_two_replicas_form_one_chain(h: &impl crate::Harness) {
    let second = match h.open_again().await {
        Ok(store) => store,
        Err(StoreError::Locked(_)) => h.store(),
        Err(other) => panic!("{other}"),
    };
    let stores = [h.store(), second];
    let batches: Vec<(usize, Vec<AuditRecord>)> = (0..20)
        .map(|b| (b % 2, numbered(b * 15..(b + 1) * 15)))
        .collect();
    let written = join_all(
        batches
            .iter()
            .map(|(replica, records)| stores[*replica].audit().append_batch(records, &TestHasher)),
    )
    .await;
    let mut starts = Vec::new();
    for links in written {
        let seqs: Vec<i64> = links.unwrap().iter().map(|l| l.seq).collect();
        assert_eq!(
            seqs,
            (seqs[0]..seqs[0] + 15).collect::<Vec<_>>(),
            "a batch is consecutive in the chain"
        );
        starts.push(seqs[0]);
    }
    starts.sort_unstable();
    assert_eq!(starts, (0..20).map(|b| b * 15 + 1).collect::<Vec<_>>());
    assert_one_chain(&*stores[0], 300).await;
}

pub async fn sessions_record_their_second_factor(store: &dyn Store) {
    let user = made_user(store, "mfa-session@example.com", Role::Admin).await;
    let sessions = store.sessions();
    let first = session(&user, "m1", T0);
    let second = session(&user, "m2", T0);
    for row in [&first, &second] {
        sessions
            .create(row, 48, note("create").append())
            .await
            .unwrap();
    }
    let at = truncate_to_micros(T0 + Duration::seconds(30));
    let refused = sessions
        .mark_second_factor(first.id, at, crate::broken("auth.mfa.verify").append())
        .await;
    assert!(
        matches!(refused, Err(StoreError::AuditUnwritable(_))),
        "{refused:?}"
    );
    let found = |hash: String| async move {
        sessions
            .find_by_token_hash(&hash)
            .await
            .unwrap()
            .unwrap()
            .second_factor_at
    };
    assert_eq!(found(first.token_hash.clone()).await, None, "rolled back");
    assert!(
        sessions
            .mark_second_factor(first.id, at, note("auth.mfa.verify").append())
            .await
            .unwrap()
    );
    assert_eq!(found(first.token_hash.clone()).await, Some(at));
    assert_eq!(
        found(second.token_hash.clone()).await,
        None,
        "each session verifies on its own"
    );
    assert!(
        !sessions
            .mark_second_factor(Uuid::now_v7(), at, note("auth.mfa.verify").append())
            .await
            .unwrap(),
        "no such session"
    );
}

pub async fn live_sessions_page_newest_first(store: &dyn Store) {
    let user = made_user(store, "pages@example.com", Role::Viewer).await;
    let sessions = store.sessions();
    let mut live = Vec::new();
    for i in 0..5 {
        let row = session(&user, &format!("live{i}"), T0 + Duration::seconds(i));
        sessions
            .create(&row, 48, note("create").append())
            .await
            .unwrap();
        live.push(row.id);
    }
    // Idle since long before the cut-off: not listed.
    let idle = session(&user, "idle", T0 - Duration::hours(2));
    sessions
        .create(&idle, 48, note("create").append())
        .await
        .unwrap();
    let now = T0 + Duration::minutes(1);
    let seen_after = T0 - Duration::minutes(30);
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(2, cursor.as_deref()).unwrap();
        let got = sessions
            .list_live_page(user.id, now, seen_after, &page)
            .await
            .unwrap();
        assert!(got.items.len() <= 2);
        listed.extend(got.items.iter().map(|s| s.id));
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    live.reverse();
    assert_eq!(
        listed, live,
        "newest first, every live one once, the idle one left out"
    );
    // Past their expiry none is live.
    let later = T0 + Duration::hours(13);
    let none = sessions
        .list_live_page(user.id, later, seen_after, &first(10))
        .await
        .unwrap();
    assert!(none.items.is_empty());
}
