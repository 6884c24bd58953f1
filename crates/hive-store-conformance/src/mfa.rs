//! TOTP credentials and recovery codes: enabled only from pending, each step and each code used
//! once even under concurrency, wrong codes counted per step, changes audited in their own
//! transaction.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, note};
use futures_util::future::join_all;
use hive_proto::Role;
use hive_store::{NewUser, Store, StoreError, TotpRow, VaultKeyRow, truncate_to_micros};
use time::Duration;
use uuid::Uuid;

/// A user and the vault key their seed is sealed with.
async fn user_with_key(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    store
        .users()
        .create(
            &NewUser {
                id,
                email: format!("{}@example.com", id.simple()),
                display_name: "Mfa".to_owned(),
                role: Role::Operator,
                password_hash: Some("hash".to_owned()),
                created_at: truncate_to_micros(T0),
            },
            note("user.create").append(),
        )
        .await
        .unwrap();
    if store.vault_keys().list().await.unwrap().is_empty() {
        store
            .vault_keys()
            .insert(
                &VaultKeyRow::new(1, "n.c".into(), truncate_to_micros(T0)),
                note("vault.key_create").append(),
            )
            .await
            .unwrap();
    }
    id
}

fn pending(user_id: Uuid, seed: &str) -> TotpRow {
    TotpRow {
        user_id,
        seed: seed.to_owned(),
        key_id: 1,
        created_at: T0,
        enabled_at: None,
        last_used_step: None,
        failed_step: None,
        failures: 0,
    }
}

fn hash(n: u32) -> String {
    format!("{n:064x}")
}

fn hashes(from: u32, count: u32) -> Vec<String> {
    (from..from + count).map(hash).collect()
}

const STEP: u64 = 59_000_000;

pub async fn totp_credentials_round_trip(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    assert_eq!(mfa.totp(user).await.unwrap(), None);
    let audited = audit_count(store).await;

    // Stored as pending whatever the row says.
    let start = TotpRow {
        enabled_at: Some(T0),
        last_used_step: Some(7),
        failures: 2,
        ..pending(user, "sealed-seed-1")
    };
    mfa.start_totp(&start, note("mfa.totp_start").append())
        .await
        .unwrap();
    let expected = TotpRow {
        created_at: truncate_to_micros(T0),
        ..pending(user, "sealed-seed-1")
    };
    assert_eq!(mfa.totp(user).await.unwrap(), Some(expected.clone()));
    // A pending credential cannot be used.
    assert!(!mfa.consume_totp_step(user, STEP).await.unwrap());

    // A second start replaces the pending one.
    let restart = TotpRow {
        created_at: T0 + Duration::minutes(1),
        ..pending(user, "sealed-seed-2")
    };
    mfa.start_totp(&restart, note("mfa.totp_start").append())
        .await
        .unwrap();
    let stored = mfa.totp(user).await.unwrap().unwrap();
    assert_eq!(stored.seed, "sealed-seed-2");
    assert_eq!(stored.created_at, truncate_to_micros(restart.created_at));

    let now = T0 + Duration::minutes(2);
    assert!(
        mfa.enable_totp(user, STEP, now, note("mfa.totp_enable").append())
            .await
            .unwrap()
    );
    let enabled = mfa.totp(user).await.unwrap().unwrap();
    assert_eq!(enabled.enabled_at, Some(truncate_to_micros(now)));
    assert_eq!(
        enabled.last_used_step,
        Some(STEP),
        "the confirming step is used"
    );

    assert!(
        mfa.remove_totp(user, note("mfa.totp_remove").append())
            .await
            .unwrap()
    );
    assert_eq!(mfa.totp(user).await.unwrap(), None);
    assert!(
        !mfa.remove_totp(user, note("mfa.totp_remove").append())
            .await
            .unwrap()
    );
    assert_eq!(
        audit_count(store).await,
        audited + 4,
        "one record per change"
    );
}

pub async fn only_a_pending_totp_is_enabled(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    assert!(
        !mfa.enable_totp(user, STEP, T0, note("mfa.totp_enable").append())
            .await
            .unwrap(),
        "nothing to enable"
    );
    mfa.start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    assert!(
        mfa.enable_totp(user, STEP, T0, note("mfa.totp_enable").append())
            .await
            .unwrap()
    );
    let audited = audit_count(store).await;
    assert!(
        !mfa.enable_totp(user, STEP + 5, T0, note("mfa.totp_enable").append())
            .await
            .unwrap(),
        "already enabled"
    );
    // An enabled credential is not replaced by a new enrollment.
    let again = mfa
        .start_totp(&pending(user, "evil"), note("mfa.totp_start").append())
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let stored = mfa.totp(user).await.unwrap().unwrap();
    assert_eq!(stored.seed, "seed");
    assert_eq!(stored.last_used_step, Some(STEP));
    assert_eq!(audit_count(store).await, audited, "refusals write nothing");
}

pub async fn a_totp_step_is_used_once_under_concurrency(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    mfa.start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    mfa.enable_totp(user, STEP, T0, note("mfa.totp_enable").append())
        .await
        .unwrap();
    let results = join_all((0..100).map(|_| mfa.consume_totp_step(user, STEP + 1))).await;
    let won = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1, "exactly one of 100 concurrent consumers");
    assert_eq!(
        mfa.totp(user).await.unwrap().unwrap().last_used_step,
        Some(STEP + 1)
    );
}

pub async fn an_older_or_equal_totp_step_is_refused(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    mfa.start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    mfa.enable_totp(user, STEP, T0, note("mfa.totp_enable").append())
        .await
        .unwrap();
    assert!(
        !mfa.consume_totp_step(user, STEP).await.unwrap(),
        "the enrolling step"
    );
    assert!(!mfa.consume_totp_step(user, STEP - 1).await.unwrap());
    assert!(mfa.consume_totp_step(user, STEP + 1).await.unwrap());
    assert!(
        !mfa.consume_totp_step(user, STEP + 1).await.unwrap(),
        "replay"
    );
    assert!(
        !mfa.consume_totp_step(user, STEP).await.unwrap(),
        "the previous step after the current one"
    );
    assert!(mfa.consume_totp_step(user, STEP + 3).await.unwrap());
    assert_eq!(
        mfa.totp(user).await.unwrap().unwrap().last_used_step,
        Some(STEP + 3)
    );
    // Steps beyond what the database holds are refused, not wrapped.
    let huge = mfa.consume_totp_step(user, u64::MAX).await;
    assert!(matches!(huge, Err(StoreError::Invalid(_))), "{huge:?}");
    // Without a credential nothing is consumed.
    let other = user_with_key(store).await;
    assert!(!mfa.consume_totp_step(other, STEP).await.unwrap());
}

pub async fn totp_failures_are_counted_per_step(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    let missing = mfa.record_totp_failure(user, STEP).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    mfa.start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    assert_eq!(mfa.record_totp_failure(user, STEP).await.unwrap(), 1);
    assert_eq!(mfa.record_totp_failure(user, STEP).await.unwrap(), 2);
    assert_eq!(mfa.record_totp_failure(user, STEP).await.unwrap(), 3);
    let stored = mfa.totp(user).await.unwrap().unwrap();
    assert_eq!((stored.failed_step, stored.failures), (Some(STEP), 3));
    assert_eq!(
        mfa.record_totp_failure(user, STEP + 1).await.unwrap(),
        1,
        "a new step restarts the count"
    );
    // Concurrent failures are all counted.
    let results = join_all((0..10).map(|_| mfa.record_totp_failure(user, STEP + 1))).await;
    let mut counts: Vec<u32> = results.into_iter().map(|r| r.unwrap()).collect();
    counts.sort_unstable();
    assert_eq!(counts, (2..12).collect::<Vec<u32>>());
}

pub async fn a_recovery_code_is_used_once_under_concurrency(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 0);
    mfa.replace_recovery_codes(user, &hashes(0, 10), T0, note("mfa.codes").append())
        .await
        .unwrap();
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 10);
    let audited = audit_count(store).await;

    let code = hash(3);
    let notes: Vec<_> = (0..20).map(|_| note("mfa.recovery_code_use")).collect();
    let results = join_all(
        notes
            .iter()
            .map(|n| mfa.use_recovery_code(user, &code, T0, n.append())),
    )
    .await;
    let won = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1, "exactly one of 20 concurrent users");
    assert_eq!(audit_count(store).await, audited + 1, "the winner only");
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 9);
    assert!(
        !mfa.use_recovery_code(user, &hash(3), T0, note("x").append())
            .await
            .unwrap()
    );
    // Another user's code, or one never issued, is no code.
    let other = user_with_key(store).await;
    assert!(
        !mfa.use_recovery_code(other, &hash(4), T0, note("x").append())
            .await
            .unwrap()
    );
    assert!(
        !mfa.use_recovery_code(user, &hash(99), T0, note("x").append())
            .await
            .unwrap()
    );
    assert_eq!(
        audit_count(store).await,
        audited + 2,
        "the winner and the other user"
    );
    // Only hashes are stored.
    let bad = mfa
        .replace_recovery_codes(user, &["ABC".to_owned()], T0, note("x").append())
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 9);
}

pub async fn replacing_recovery_codes_invalidates_the_old_ones(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    mfa.replace_recovery_codes(user, &hashes(0, 10), T0, note("mfa.codes").append())
        .await
        .unwrap();
    assert!(
        mfa.use_recovery_code(user, &hash(0), T0, note("x").append())
            .await
            .unwrap()
    );
    // The new set may reuse a hash that was used before: it starts unused.
    mfa.replace_recovery_codes(user, &hashes(5, 10), T0, note("mfa.codes").append())
        .await
        .unwrap();
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 10);
    for old in 0..5 {
        assert!(
            !mfa.use_recovery_code(user, &hash(old), T0, note("x").append())
                .await
                .unwrap(),
            "old code {old}"
        );
    }
    assert!(
        mfa.use_recovery_code(user, &hash(14), T0, note("x").append())
            .await
            .unwrap()
    );
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 9);
}

pub async fn an_mfa_change_whose_audit_record_fails_is_unchanged(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    refused(
        mfa.start_totp(&pending(user, "seed"), broken("mfa.totp_start").append())
            .await,
        "start",
    );
    assert_eq!(mfa.totp(user).await.unwrap(), None);
    mfa.start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    refused(
        mfa.start_totp(&pending(user, "other"), broken("mfa.totp_start").append())
            .await,
        "restart",
    );
    assert_eq!(mfa.totp(user).await.unwrap().unwrap().seed, "seed");
    refused(
        mfa.enable_totp(user, STEP, T0, broken("mfa.totp_enable").append())
            .await,
        "enable",
    );
    let stored = mfa.totp(user).await.unwrap().unwrap();
    assert_eq!((stored.enabled_at, stored.last_used_step), (None, None));
    mfa.enable_totp(user, STEP, T0, note("mfa.totp_enable").append())
        .await
        .unwrap();
    refused(
        mfa.remove_totp(user, broken("mfa.totp_remove").append())
            .await,
        "remove",
    );
    assert!(mfa.totp(user).await.unwrap().is_some());

    mfa.replace_recovery_codes(user, &hashes(0, 10), T0, note("mfa.codes").append())
        .await
        .unwrap();
    refused(
        mfa.replace_recovery_codes(user, &hashes(20, 10), T0, broken("mfa.codes").append())
            .await,
        "replace codes",
    );
    refused(
        mfa.use_recovery_code(user, &hash(1), T0, broken("mfa.code_use").append())
            .await,
        "use a code",
    );
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 10);
    assert!(
        mfa.use_recovery_code(user, &hash(1), T0, note("mfa.code_use").append())
            .await
            .unwrap(),
        "the old set is still there and the code unused"
    );
}

pub async fn a_user_has_a_second_factor_only_while_totp_is_enabled(store: &dyn Store) {
    let user = user_with_key(store).await;
    let mfa = store.mfa();
    let has_factor = async || {
        let by_id = store.users().get(user).await.unwrap().unwrap();
        let by_email = store
            .users()
            .find_by_email(&by_id.email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_id.second_factor, by_email.second_factor);
        by_id.second_factor
    };
    assert!(!has_factor().await);
    mfa.start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    assert!(!has_factor().await, "a pending credential is no factor yet");
    mfa.enable_totp(user, STEP, T0, note("mfa.totp_enable").append())
        .await
        .unwrap();
    assert!(has_factor().await);
    mfa.remove_totp(user, note("mfa.totp_remove").append())
        .await
        .unwrap();
    assert!(!has_factor().await);
}

pub async fn a_vault_key_sealing_a_totp_seed_is_not_retired(store: &dyn Store) {
    let user = user_with_key(store).await;
    let keys = store.vault_keys();
    keys.insert(
        &VaultKeyRow::new(2, "n.c".into(), truncate_to_micros(T0)),
        note("vault.key_create").append(),
    )
    .await
    .unwrap();
    store
        .mfa()
        .start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    let later = truncate_to_micros(T0 + Duration::hours(1));
    assert!(
        !keys
            .retire_if_unused(1, later, note("vault.key_retire").append())
            .await
            .unwrap(),
        "a seed is sealed with it"
    );
    store
        .mfa()
        .remove_totp(user, note("mfa.totp_remove").append())
        .await
        .unwrap();
    assert!(
        keys.retire_if_unused(1, later, note("vault.key_retire").append())
            .await
            .unwrap()
    );
}

pub async fn totp_seeds_are_resealed_only_when_unchanged(store: &dyn Store) {
    let user = user_with_key(store).await;
    store
        .vault_keys()
        .insert(
            &VaultKeyRow::new(2, "n.c".into(), truncate_to_micros(T0)),
            note("vault.key_create").append(),
        )
        .await
        .unwrap();
    let mfa = store.mfa();
    mfa.start_totp(&pending(user, "seed"), note("mfa.totp_start").append())
        .await
        .unwrap();
    let listed = mfa.totp_not_under_key(2, None, 10).await.unwrap();
    let row = listed.iter().find(|r| r.user_id == user).unwrap().clone();
    assert!(
        mfa.totp_not_under_key(1, None, 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.user_id != user),
        "already under key 1"
    );
    assert!(
        mfa.totp_not_under_key(2, Some(user), 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.user_id > user),
        "after the cursor"
    );
    // Re-enrolled meanwhile: the seed the job read is gone, nothing is overwritten.
    mfa.start_totp(&pending(user, "newer"), note("mfa.totp_start").append())
        .await
        .unwrap();
    assert!(!mfa.reseal_totp(&row, 2, "resealed").await.unwrap());
    assert_eq!(mfa.totp(user).await.unwrap().unwrap().seed, "newer");
    let current = mfa.totp(user).await.unwrap().unwrap();
    assert!(mfa.reseal_totp(&current, 2, "resealed").await.unwrap());
    let stored = mfa.totp(user).await.unwrap().unwrap();
    assert_eq!((stored.seed.as_str(), stored.key_id), ("resealed", 2));
}
