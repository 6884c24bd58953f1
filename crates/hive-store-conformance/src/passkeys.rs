//! Passkeys: capped per user even under concurrency, a credential id registered once, counters
//! that only move forward, registrations and removals that end the user's other sessions, and
//! every change audited in its own transaction.

use crate::audited::{audit_count, broken, refused};
use crate::identity::session;
use crate::{T0, note};
use futures_util::future::join_all;
use hive_proto::Role;
use hive_store::{
    NewUser, PasskeyAdded, PasskeyRow, PasskeyUse, Store, StoreError, UserRow, truncate_to_micros,
};
use time::Duration;
use uuid::Uuid;

async fn passkey_user(store: &dyn Store) -> UserRow {
    let id = Uuid::now_v7();
    store
        .users()
        .create(
            &NewUser {
                id,
                email: format!("{}@example.com", id.simple()),
                display_name: "Passkey".to_owned(),
                role: Role::Operator,
                password_hash: Some("hash".to_owned()),
                created_at: truncate_to_micros(T0),
            },
            note("user.create").append(),
        )
        .await
        .unwrap()
}

fn passkey(user: &UserRow, credential_id: &str) -> PasskeyRow {
    PasskeyRow {
        id: Uuid::now_v7(),
        user_id: user.id,
        credential_id: credential_id.to_owned(),
        passkey: format!(r#"{{"cred":"{credential_id}"}}"#),
        sign_count: 0,
        backup_eligible: true,
        backup_state: false,
        name: "Laptop".to_owned(),
        created_at: T0,
        last_used_at: None,
    }
}

/// A credential id nobody else in this database has.
fn fresh_credential_id() -> String {
    format!("cred_{}-x", Uuid::now_v7().simple())
}

async fn add(store: &dyn Store, row: &PasskeyRow) {
    let added = store
        .passkeys()
        .add(row, 10, None, note("auth.passkey.register").append())
        .await
        .unwrap();
    assert!(matches!(added, PasskeyAdded::Added { .. }), "{added:?}");
}

fn used(row: &PasskeyRow, sign_count: u32, minutes: i64) -> PasskeyUse<'static> {
    PasskeyUse {
        id: row.id,
        passkey: r#"{"cred":"used"}"#,
        sign_count,
        backup_eligible: true,
        backup_state: true,
        at: T0 + Duration::minutes(minutes),
    }
}

pub async fn passkeys_round_trip(store: &dyn Store) {
    let user = passkey_user(store).await;
    let passkeys = store.passkeys();
    assert!(passkeys.list_for_user(user.id).await.unwrap().is_empty());
    let audited = audit_count(store).await;
    let second_factor = async || {
        store
            .users()
            .get(user.id)
            .await
            .unwrap()
            .unwrap()
            .second_factor
    };
    assert!(!second_factor().await);

    // Stored with microseconds and never used, whatever the row says.
    let first = PasskeyRow {
        last_used_at: Some(T0),
        ..passkey(&user, &fresh_credential_id())
    };
    add(store, &first).await;
    assert!(second_factor().await, "a passkey is a second factor");
    let second = PasskeyRow {
        created_at: T0 + Duration::minutes(1),
        name: "Phone".to_owned(),
        sign_count: 7,
        ..passkey(&user, &fresh_credential_id())
    };
    add(store, &second).await;
    let expected_first = PasskeyRow {
        created_at: truncate_to_micros(T0),
        last_used_at: None,
        ..first.clone()
    };
    let expected_second = PasskeyRow {
        created_at: truncate_to_micros(second.created_at),
        ..second.clone()
    };
    assert_eq!(
        passkeys.list_for_user(user.id).await.unwrap(),
        vec![expected_first.clone(), expected_second.clone()],
        "oldest first"
    );
    assert_eq!(
        passkeys
            .find_by_credential_id(&second.credential_id)
            .await
            .unwrap(),
        Some(expected_second)
    );
    assert_eq!(
        passkeys.find_by_credential_id("unknown").await.unwrap(),
        None
    );

    assert!(
        passkeys
            .rename(
                user.id,
                first.id,
                "Work laptop",
                note("auth.passkey.rename").append()
            )
            .await
            .unwrap()
    );
    let other = passkey_user(store).await;
    assert!(
        !passkeys
            .rename(other.id, first.id, "Mine now", note("x").append())
            .await
            .unwrap(),
        "only the owner renames"
    );
    assert!(
        !passkeys
            .remove(other.id, first.id, None, note("x").append())
            .await
            .unwrap(),
        "only the owner removes"
    );
    let listed = passkeys.list_for_user(user.id).await.unwrap();
    assert_eq!(listed[0].name, "Work laptop");
    assert!(
        passkeys
            .remove(
                user.id,
                first.id,
                None,
                note("auth.passkey.delete").append()
            )
            .await
            .unwrap()
    );
    assert!(
        !passkeys
            .remove(user.id, first.id, None, note("x").append())
            .await
            .unwrap(),
        "gone"
    );
    assert_eq!(passkeys.list_for_user(user.id).await.unwrap().len(), 1);
    assert!(second_factor().await, "one is left");
    // One record per change (the other user's creation included); refusals write nothing.
    assert_eq!(audit_count(store).await, audited + 5);
    passkeys
        .remove(
            user.id,
            second.id,
            None,
            note("auth.passkey.delete").append(),
        )
        .await
        .unwrap();
    assert!(!second_factor().await, "none is left");
}

pub async fn passkeys_are_capped_per_user_under_concurrency(store: &dyn Store) {
    let user = passkey_user(store).await;
    let passkeys = store.passkeys();
    let audited = audit_count(store).await;
    let rows: Vec<PasskeyRow> = (0..20)
        .map(|_| passkey(&user, &fresh_credential_id()))
        .collect();
    let notes: Vec<_> = rows.iter().map(|_| note("auth.passkey.register")).collect();
    let results = join_all(
        rows.iter()
            .zip(&notes)
            .map(|(row, n)| passkeys.add(row, 10, None, n.append())),
    )
    .await;
    let added = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|r| matches!(r, PasskeyAdded::Added { .. }))
        .count();
    assert_eq!(added, 10, "exactly the cap of 20 concurrent adds");
    assert_eq!(passkeys.list_for_user(user.id).await.unwrap().len(), 10);
    assert_eq!(
        audit_count(store).await,
        audited + 10,
        "the added ones only"
    );
    let more = passkeys
        .add(
            &passkey(&user, &fresh_credential_id()),
            10,
            None,
            note("x").append(),
        )
        .await
        .unwrap();
    assert_eq!(more, PasskeyAdded::LimitReached);
    // The cap is per user.
    let other = passkey_user(store).await;
    add(store, &passkey(&other, &fresh_credential_id())).await;
    // An unknown user has nothing to add to.
    let ghost = UserRow {
        id: Uuid::now_v7(),
        ..other
    };
    let missing = passkeys
        .add(
            &passkey(&ghost, &fresh_credential_id()),
            10,
            None,
            note("x").append(),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

pub async fn a_credential_id_belongs_to_one_passkey(store: &dyn Store) {
    let alice = passkey_user(store).await;
    let bob = passkey_user(store).await;
    let passkeys = store.passkeys();
    let credential_id = fresh_credential_id();
    add(store, &passkey(&alice, &credential_id)).await;
    let bob_session = session(&bob, "b0b", T0);
    store
        .sessions()
        .create(&bob_session, 48, note("auth.login").append())
        .await
        .unwrap();
    let audited = audit_count(store).await;
    for owner in [&bob, &alice] {
        let again = passkeys
            .add(
                &passkey(owner, &credential_id),
                10,
                None,
                note("auth.passkey.register").append(),
            )
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    }
    assert_eq!(audit_count(store).await, audited, "nothing recorded");
    assert!(passkeys.list_for_user(bob.id).await.unwrap().is_empty());
    assert_eq!(
        store.sessions().list_for_user(bob.id).await.unwrap().len(),
        1,
        "a refused registration ends no session"
    );
    let found = passkeys
        .find_by_credential_id(&credential_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, alice.id);
}

pub async fn passkey_values_are_checked_by_the_schema(store: &dyn Store) {
    let user = passkey_user(store).await;
    let passkeys = store.passkeys();
    let cases = [
        PasskeyRow {
            credential_id: "not base64url!".to_owned(),
            ..passkey(&user, "")
        },
        passkey(&user, ""),
        passkey(&user, &"A".repeat(1367)),
        PasskeyRow {
            name: String::new(),
            ..passkey(&user, &fresh_credential_id())
        },
        PasskeyRow {
            name: "n".repeat(101),
            ..passkey(&user, &fresh_credential_id())
        },
        PasskeyRow {
            passkey: "x".repeat(16 * 1024 + 1),
            ..passkey(&user, &fresh_credential_id())
        },
    ];
    for (i, row) in cases.iter().enumerate() {
        let refused = passkeys.add(row, 10, None, note("x").append()).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "case {i}: {refused:?}"
        );
    }
    // The longest allowed values pass, a name of 100 characters of any script included.
    let longest = PasskeyRow {
        name: "ü".repeat(100),
        passkey: "x".repeat(16 * 1024),
        sign_count: u32::MAX,
        ..passkey(&user, &"A".repeat(1366))
    };
    add(store, &longest).await;
    let stored = passkeys.list_for_user(user.id).await.unwrap();
    let expected = PasskeyRow {
        created_at: truncate_to_micros(T0),
        ..longest
    };
    assert!(stored == vec![expected], "the longest values round-trip");
}

pub async fn passkey_changes_end_the_other_sessions(store: &dyn Store) {
    let user = passkey_user(store).await;
    let bystander = passkey_user(store).await;
    let sessions = store.sessions();
    let open = |seed: &'static str, owner: &UserRow| {
        let row = session(owner, seed, T0);
        async move {
            sessions
                .create(&row, 48, note("auth.login").append())
                .await
                .unwrap();
            row.id
        }
    };
    let current = open("c1", &user).await;
    open("c2", &user).await;
    open("c3", &user).await;
    open("d1", &bystander).await;
    let passkeys = store.passkeys();
    let row = passkey(&user, &fresh_credential_id());
    let added = passkeys
        .add(
            &row,
            10,
            Some(current),
            note("auth.passkey.register").append(),
        )
        .await
        .unwrap();
    assert_eq!(added, PasskeyAdded::Added { sessions_ended: 2 });
    let left: Vec<Uuid> = sessions
        .list_for_user(user.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![current], "the registering session stays");
    let kept = sessions.list_for_user(user.id).await.unwrap();
    assert_eq!(
        kept[0].second_factor_at,
        Some(truncate_to_micros(row.created_at)),
        "verified by the passkey it registered"
    );
    assert_eq!(sessions.list_for_user(bystander.id).await.unwrap().len(), 1);

    open("c4", &user).await;
    assert!(
        passkeys
            .rename(
                user.id,
                row.id,
                "Renamed",
                note("auth.passkey.rename").append()
            )
            .await
            .unwrap()
    );
    assert_eq!(
        sessions.list_for_user(user.id).await.unwrap().len(),
        2,
        "a rename is no MFA change"
    );
    assert!(
        passkeys
            .remove(
                user.id,
                row.id,
                Some(current),
                note("auth.passkey.delete").append()
            )
            .await
            .unwrap()
    );
    let left: Vec<Uuid> = sessions
        .list_for_user(user.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![current]);
    assert_eq!(sessions.list_for_user(bystander.id).await.unwrap().len(), 1);
}

pub async fn a_passkey_counter_only_moves_forward(store: &dyn Store) {
    let user = passkey_user(store).await;
    let passkeys = store.passkeys();
    let counted = PasskeyRow {
        sign_count: 5,
        ..passkey(&user, &fresh_credential_id())
    };
    add(store, &counted).await;
    let audited = audit_count(store).await;
    assert!(
        !passkeys.record_use(&used(&counted, 5, 1)).await.unwrap(),
        "equal"
    );
    assert!(
        !passkeys.record_use(&used(&counted, 4, 1)).await.unwrap(),
        "back"
    );
    assert!(
        !passkeys.record_use(&used(&counted, 0, 1)).await.unwrap(),
        "reset"
    );
    assert!(passkeys.record_use(&used(&counted, 6, 2)).await.unwrap());
    let stored = passkeys
        .find_by_credential_id(&counted.credential_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.sign_count, 6);
    assert!(stored.backup_state);
    assert_eq!(stored.passkey, r#"{"cred":"used"}"#);
    assert_eq!(
        stored.last_used_at,
        Some(truncate_to_micros(T0 + Duration::minutes(2)))
    );
    assert_eq!(stored.name, counted.name, "a use renames nothing");

    // Of 50 concurrent uses with one counter value, one passes.
    let uses: Vec<PasskeyUse<'_>> = (0..50).map(|_| used(&counted, 9, 3)).collect();
    let results = join_all(uses.iter().map(|u| passkeys.record_use(u))).await;
    let won = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1);

    // An authenticator without a counter reports 0 every time: accepted until it counts.
    let uncounted = passkey(&user, &fresh_credential_id());
    add(store, &uncounted).await;
    assert!(passkeys.record_use(&used(&uncounted, 0, 1)).await.unwrap());
    assert!(passkeys.record_use(&used(&uncounted, 0, 2)).await.unwrap());
    assert!(passkeys.record_use(&used(&uncounted, 1, 3)).await.unwrap());
    assert!(!passkeys.record_use(&used(&uncounted, 0, 4)).await.unwrap());
    // An unknown passkey is not used.
    let ghost = PasskeyRow {
        id: Uuid::now_v7(),
        ..uncounted
    };
    assert!(!passkeys.record_use(&used(&ghost, 100, 5)).await.unwrap());
    assert_eq!(
        audit_count(store).await,
        audited + 1,
        "uses are not audited here"
    );
}

pub async fn all_passkeys_of_a_user_are_removed_at_once(store: &dyn Store) {
    let user = passkey_user(store).await;
    let other = passkey_user(store).await;
    for owner in [&user, &user, &user, &other] {
        add(store, &passkey(owner, &fresh_credential_id())).await;
    }
    let passkeys = store.passkeys();
    let audited = audit_count(store).await;
    assert_eq!(
        passkeys
            .remove_all(user.id, note("user.mfa_reset").append())
            .await
            .unwrap(),
        3
    );
    assert!(passkeys.list_for_user(user.id).await.unwrap().is_empty());
    assert_eq!(passkeys.list_for_user(other.id).await.unwrap().len(), 1);
    assert_eq!(
        passkeys
            .remove_all(user.id, note("user.mfa_reset").append())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        audit_count(store).await,
        audited + 1,
        "none removed, none recorded"
    );
}

pub async fn a_passkey_change_whose_audit_record_fails_is_unchanged(store: &dyn Store) {
    let user = passkey_user(store).await;
    let current = session(&user, "e1", T0);
    let other = session(&user, "e2", T0);
    for row in [&current, &other] {
        store
            .sessions()
            .create(row, 48, note("auth.login").append())
            .await
            .unwrap();
    }
    let passkeys = store.passkeys();
    let row = passkey(&user, &fresh_credential_id());
    refused(
        passkeys
            .add(
                &row,
                10,
                Some(current.id),
                broken("auth.passkey.register").append(),
            )
            .await,
        "add",
    );
    assert!(passkeys.list_for_user(user.id).await.unwrap().is_empty());
    assert_eq!(
        store.sessions().list_for_user(user.id).await.unwrap().len(),
        2,
        "no session ended"
    );
    add(store, &row).await;
    refused(
        passkeys
            .rename(
                user.id,
                row.id,
                "Other",
                broken("auth.passkey.rename").append(),
            )
            .await,
        "rename",
    );
    let reopened = session(&user, "e3", T0);
    store
        .sessions()
        .create(&reopened, 48, note("auth.login").append())
        .await
        .unwrap();
    refused(
        passkeys
            .remove(
                user.id,
                row.id,
                Some(reopened.id),
                broken("auth.passkey.delete").append(),
            )
            .await,
        "remove",
    );
    refused(
        passkeys
            .remove_all(user.id, broken("user.mfa_reset").append())
            .await,
        "remove all",
    );
    let listed = passkeys.list_for_user(user.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, row.name);
    assert_eq!(
        store.sessions().list_for_user(user.id).await.unwrap().len(),
        1
    );
}
