//! Vault key checks.

use super::{T0, note};
use crate::{Store, StoreError, VaultKeyRow, truncate_to_micros};

pub async fn vault_keys_are_unique_by_id(store: &dyn Store) {
    let keys = store.vault_keys();
    assert!(keys.list().await.unwrap().is_empty());
    let key = |id: u32| VaultKeyRow {
        id,
        wrapped: format!("nonce{id}.ciphertext{id}"),
        created_at: truncate_to_micros(T0),
    };
    keys.insert(&key(2)).await.unwrap();
    keys.insert(&key(1)).await.unwrap();
    let taken = keys.insert(&key(2)).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(keys.list().await.unwrap(), vec![key(1), key(2)]);
}

pub async fn secrets_are_unique_per_owner_and_versioned(store: &dyn Store) {
    use crate::{NewUser, SecretRow};
    use hive_proto::Role;
    use uuid::Uuid;
    store
        .vault_keys()
        .insert(&VaultKeyRow {
            id: 1,
            wrapped: "n.c".into(),
            created_at: truncate_to_micros(T0),
        })
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
        .list(Some(alice.id), &super::first(10))
        .await
        .unwrap();
    assert_eq!(
        mine.items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["github", "openai"]
    );
    let page = secrets.list(None, &super::first(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = secrets
        .list(
            None,
            &crate::PageRequest::new(2, page.next_cursor.as_deref()).unwrap(),
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
