//! Vault key checks.

use crate::{T0, note};
use hive_store::{Store, StoreError, VaultKeyRow, truncate_to_micros};

pub async fn vault_keys_are_unique_by_id(store: &dyn Store) {
    let keys = store.vault_keys();
    assert!(keys.list().await.unwrap().is_empty());
    let key = |id: u32| {
        VaultKeyRow::new(
            id,
            format!("nonce{id}.ciphertext{id}"),
            truncate_to_micros(T0),
        )
    };
    keys.insert(&key(2), note("vault.key_create").append())
        .await
        .unwrap();
    keys.insert(&key(1), note("vault.key_create").append())
        .await
        .unwrap();
    let taken = keys
        .insert(&key(2), note("vault.key_create").append())
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(keys.list().await.unwrap(), vec![key(1), key(2)]);
}

pub async fn secrets_are_unique_per_owner_and_versioned(store: &dyn Store) {
    use hive_proto::Role;
    use hive_store::{NewUser, SecretRow};
    use uuid::Uuid;
    store
        .vault_keys()
        .insert(
            &VaultKeyRow::new(1, "n.c".into(), truncate_to_micros(T0)),
            note("vault.key_create").append(),
        )
        .await
        .unwrap();
    let owner = |email: &str| NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        display_name: email.to_owned(),
        role: Role::Operator,
        password_hash: None,
        created_at: truncate_to_micros(T0),
    };
    let alice = store
        .users()
        .create(&owner("alice@example.com"), note("create").append())
        .await
        .unwrap();
    let bob = store
        .users()
        .create(&owner("bob@example.com"), note("create").append())
        .await
        .unwrap();
    let secret = |owner_id: Uuid, name: &str, seconds: i64| {
        let at = truncate_to_micros(T0 + time::Duration::seconds(seconds));
        SecretRow {
            id: Uuid::now_v7(),
            owner_id,
            name: name.to_owned(),
            description: String::new(),
            version: 1,
            key_id: 1,
            value: format!("sealed-{name}"),
            created_at: at,
            updated_at: at,
        }
    };
    let secrets = store.secrets();
    let openai = secret(alice.id, "openai", 0);
    secrets
        .create(&openai, note("create").append())
        .await
        .unwrap();
    let dup = secrets
        .create(&secret(alice.id, "openai", 1), note("create").append())
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let bobs = secret(bob.id, "openai", 2);
    secrets
        .create(&bobs, note("create").append())
        .await
        .unwrap();
    secrets
        .create(&secret(alice.id, "github", 3), note("create").append())
        .await
        .unwrap();

    assert_eq!(
        secrets.get(openai.id, None).await.unwrap(),
        Some(openai.clone())
    );
    assert_eq!(secrets.get(openai.id, Some(bob.id)).await.unwrap(), None);
    let mine = secrets
        .list(Some(alice.id), &crate::first(10))
        .await
        .unwrap();
    assert_eq!(
        mine.items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["github", "openai"]
    );
    let page = secrets.list(None, &crate::first(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = secrets
        .list(
            None,
            &hive_store::PageRequest::new(2, page.next_cursor.as_deref()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rest.items, vec![openai.clone()]);

    // A new value is a new version; a writer holding an old version loses.
    let later = truncate_to_micros(T0 + time::Duration::minutes(5));
    let version = |description: &str, value: &str| SecretRow {
        version: 2,
        description: description.to_owned(),
        value: value.to_owned(),
        updated_at: later,
        // Kept as stored whatever the caller passes.
        name: "renamed".to_owned(),
        ..openai.clone()
    };
    let rotated = version("rotated", "sealed-2");
    assert!(
        secrets
            .replace_value(&rotated, note("replace_value").append())
            .await
            .unwrap()
    );
    let stale = version("stale", "sealed-x");
    assert!(
        !secrets
            .replace_value(&stale, note("replace_value").append())
            .await
            .unwrap()
    );
    let updated = secrets.get(openai.id, None).await.unwrap().unwrap();
    assert_eq!(
        (
            updated.version,
            updated.value.as_str(),
            updated.description.as_str()
        ),
        (2, "sealed-2", "rotated")
    );
    assert_eq!(updated.name, "openai");
    assert_eq!(updated.updated_at, later);

    assert!(
        !secrets
            .delete(openai.id, Some(bob.id), note("delete").append())
            .await
            .unwrap(),
        "not bob's"
    );
    assert!(
        secrets
            .delete(openai.id, Some(alice.id), note("delete").append())
            .await
            .unwrap()
    );
    assert!(
        !secrets
            .delete(openai.id, None, note("delete").append())
            .await
            .unwrap()
    );
    assert!(
        secrets
            .delete(bobs.id, None, note("delete").append())
            .await
            .unwrap(),
        "an admin path"
    );
}

fn sealed_secret(owner_id: uuid::Uuid, name: &str, key_id: u32) -> hive_store::SecretRow {
    let at = truncate_to_micros(T0);
    hive_store::SecretRow {
        id: uuid::Uuid::now_v7(),
        owner_id,
        name: name.to_owned(),
        description: String::new(),
        version: 1,
        key_id,
        value: format!("sealed-{name}-under-{key_id}"),
        created_at: at,
        updated_at: at,
    }
}

async fn an_owner(store: &dyn Store) -> uuid::Uuid {
    store
        .users()
        .create(
            &hive_store::NewUser {
                id: uuid::Uuid::now_v7(),
                email: "owner@example.com".into(),
                display_name: "Owner".into(),
                role: hive_proto::Role::Operator,
                password_hash: None,
                created_at: truncate_to_micros(T0),
            },
            note("create").append(),
        )
        .await
        .unwrap()
        .id
}

pub async fn vault_key_encryptions_are_reserved_up_to_a_limit(store: &dyn Store) {
    let keys = store.vault_keys();
    keys.insert(
        &VaultKeyRow::new(1, "n.c".into(), truncate_to_micros(T0)),
        note("vault.key_create").append(),
    )
    .await
    .unwrap();
    assert!(keys.reserve_encryptions(1, 4, 10).await.unwrap());
    assert!(keys.reserve_encryptions(1, 4, 10).await.unwrap());
    assert!(
        !keys.reserve_encryptions(1, 4, 10).await.unwrap(),
        "12 would pass the limit of 10"
    );
    assert!(
        keys.reserve_encryptions(1, 2, 10).await.unwrap(),
        "10 is the limit"
    );
    assert!(!keys.reserve_encryptions(1, 1, 10).await.unwrap());
    assert!(
        !keys.reserve_encryptions(9, 1, 10).await.unwrap(),
        "no key 9"
    );
    assert_eq!(keys.list().await.unwrap()[0].encryptions_reserved, 10);

    // Replicas reserving at once: each block is counted once, none lost, none past the limit.
    keys.insert(
        &VaultKeyRow::new(2, "n.c".into(), truncate_to_micros(T0)),
        note("vault.key_create").append(),
    )
    .await
    .unwrap();
    let attempts = (0..40).map(|_| keys.reserve_encryptions(2, 3, 90));
    let granted = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(granted, 30);
    assert_eq!(keys.list().await.unwrap()[1].encryptions_reserved, 90);
}

pub async fn vault_keys_retire_only_when_unused_and_not_newest(store: &dyn Store) {
    let keys = store.vault_keys();
    for id in [1, 2] {
        keys.insert(
            &VaultKeyRow::new(id, "n.c".into(), truncate_to_micros(T0)),
            note("vault.key_create").append(),
        )
        .await
        .unwrap();
    }
    let owner = an_owner(store).await;
    let secret = sealed_secret(owner, "old", 1);
    store
        .secrets()
        .create(&secret, note("create").append())
        .await
        .unwrap();
    let later = truncate_to_micros(T0 + time::Duration::hours(1));
    assert!(
        !keys
            .retire_if_unused(1, later, note("vault.key_retire").append())
            .await
            .unwrap(),
        "a secret uses it"
    );
    assert!(
        !keys
            .retire_if_unused(2, later, note("vault.key_retire").append())
            .await
            .unwrap(),
        "the newest key"
    );
    assert!(
        store
            .secrets()
            .delete(secret.id, None, note("delete").append())
            .await
            .unwrap()
    );
    assert!(
        keys.retire_if_unused(1, later, note("vault.key_retire").append())
            .await
            .unwrap()
    );
    assert!(
        !keys
            .retire_if_unused(1, later, note("vault.key_retire").append())
            .await
            .unwrap(),
        "once"
    );
    assert!(
        !keys
            .retire_if_unused(7, later, note("vault.key_retire").append())
            .await
            .unwrap(),
        "no key 7"
    );
    let listed = keys.list().await.unwrap();
    assert_eq!(
        (listed[0].retired_at, listed[1].retired_at),
        (Some(later), None)
    );
    assert!(
        !keys.reserve_encryptions(1, 1, 100).await.unwrap(),
        "a retired key seals nothing"
    );
}

pub async fn secrets_reseal_only_unchanged_rows(store: &dyn Store) {
    for id in [1, 2] {
        store
            .vault_keys()
            .insert(
                &VaultKeyRow::new(id, "n.c".into(), truncate_to_micros(T0)),
                note("vault.key_create").append(),
            )
            .await
            .unwrap();
    }
    let owner = an_owner(store).await;
    let secrets = store.secrets();
    let mut old = Vec::new();
    for n in 0..5 {
        let row = sealed_secret(owner, &format!("old{n}"), 1);
        secrets.create(&row, note("create").append()).await.unwrap();
        old.push(row);
    }
    secrets
        .create(&sealed_secret(owner, "new", 2), note("create").append())
        .await
        .unwrap();
    assert_eq!(secrets.count_by_key().await.unwrap(), vec![(1, 5), (2, 1)]);

    // In id order, in batches, only rows under another key.
    let first = secrets.list_not_under_key(2, None, 3).await.unwrap();
    assert_eq!(first, old[..3].to_vec());
    let rest = secrets
        .list_not_under_key(2, Some(first[2].id), 3)
        .await
        .unwrap();
    assert_eq!(rest, old[3..].to_vec());

    // A re-seal keeps version and times; a row changed meanwhile is left alone.
    assert!(secrets.reseal(&old[0], 2, "resealed-0").await.unwrap());
    let stored = secrets.get(old[0].id, None).await.unwrap().unwrap();
    assert_eq!(
        stored,
        hive_store::SecretRow {
            key_id: 2,
            value: "resealed-0".into(),
            ..old[0].clone()
        }
    );
    assert!(
        !secrets.reseal(&old[0], 2, "again").await.unwrap(),
        "no longer what was read"
    );
    let later = truncate_to_micros(T0 + time::Duration::minutes(1));
    assert!(
        secrets
            .replace_value(
                &hive_store::SecretRow {
                    version: 2,
                    description: String::new(),
                    value: "written-meanwhile".into(),
                    updated_at: later,
                    ..old[1].clone()
                },
                note("replace_value").append()
            )
            .await
            .unwrap()
    );
    assert!(!secrets.reseal(&old[1], 2, "stale").await.unwrap());
    let kept = secrets.get(old[1].id, None).await.unwrap().unwrap();
    assert_eq!(
        (kept.version, kept.value.as_str()),
        (2, "written-meanwhile")
    );
    let same_version_other_value = hive_store::SecretRow {
        value: "not-what-is-stored".into(),
        ..old[2].clone()
    };
    assert!(
        !secrets
            .reseal(&same_version_other_value, 2, "x")
            .await
            .unwrap()
    );
    assert_eq!(secrets.count_by_key().await.unwrap(), vec![(1, 4), (2, 2)]);
}
