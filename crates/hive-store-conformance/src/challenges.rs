//! Sign-in flow state: taken once, for its purpose only, never after it expired.

use crate::T0;
use futures_util::future::join_all;
use hive_store::{ChallengeRow, MAX_CHALLENGE_PAYLOAD, Store, StoreError, truncate_to_micros};
use time::Duration;

fn challenge(seed: &str, purpose: &str) -> ChallengeRow {
    let at = truncate_to_micros(T0);
    ChallengeRow {
        key_hash: format!("{seed:0>64}"),
        purpose: purpose.to_owned(),
        user_id: None,
        payload: r#"{"nonce":"n"}"#.to_owned(),
        created_at: at,
        expires_at: at + Duration::minutes(10),
    }
}

pub async fn a_challenge_is_taken_once_for_its_purpose(store: &dyn Store) {
    let challenges = store.challenges();
    let row = challenge("a1", "oidc");
    challenges.put(&row).await.unwrap();
    let again = challenges.put(&row).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        challenges
            .take("passkey.login", &row.key_hash, T0)
            .await
            .unwrap(),
        None,
        "another purpose finds nothing"
    );
    assert_eq!(
        challenges.take("oidc", &row.key_hash, T0).await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(
        challenges.take("oidc", &row.key_hash, T0).await.unwrap(),
        None,
        "taken once"
    );

    let expired = challenge("a2", "oidc");
    challenges.put(&expired).await.unwrap();
    assert_eq!(
        challenges
            .take("oidc", &expired.key_hash, expired.expires_at)
            .await
            .unwrap(),
        None,
        "expired"
    );

    let big = ChallengeRow {
        payload: "x".repeat(MAX_CHALLENGE_PAYLOAD + 1),
        ..challenge("a3", "oidc")
    };
    let refused = challenges.put(&big).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
}

pub async fn a_challenge_has_one_taker_under_concurrency(store: &dyn Store) {
    let challenges = store.challenges();
    let row = challenge("b1", "passkey.login");
    challenges.put(&row).await.unwrap();
    let takes =
        join_all((0..20).map(|_| challenges.take("passkey.login", &row.key_hash, T0))).await;
    let won = takes
        .into_iter()
        .filter(|taken| matches!(taken, Ok(Some(_))))
        .count();
    assert_eq!(won, 1);
}

pub async fn expired_challenges_are_pruned(store: &dyn Store) {
    let challenges = store.challenges();
    let old = challenge("c1", "oidc");
    let fresh = ChallengeRow {
        expires_at: old.expires_at + Duration::minutes(5),
        ..challenge("c2", "oidc")
    };
    challenges.put(&old).await.unwrap();
    challenges.put(&fresh).await.unwrap();
    assert_eq!(challenges.prune(old.expires_at).await.unwrap(), 1);
    assert_eq!(
        challenges
            .take("oidc", &fresh.key_hash, T0)
            .await
            .unwrap()
            .map(|c| c.key_hash),
        Some(fresh.key_hash)
    );
}
