//! A2A push configs: per owner and task, replaced by id, capped per task even under
//! concurrency, paged by id, audited with every change, kept while used and pruned after.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, note};
use futures_util::future::join_all;
use hive_store::{PushConfigPut, PushConfigRow, Store, StoreError, truncate_to_micros};
use time::Duration;
use uuid::Uuid;

fn config(owner: &str, task_id: Uuid, id: &str) -> PushConfigRow {
    let at = truncate_to_micros(T0);
    PushConfigRow {
        owner: owner.to_owned(),
        task_id,
        id: id.to_owned(),
        url: format!("https://hooks.example.com/{id}?k=v"),
        auth_scheme: "Bearer".to_owned(),
        key_id: 1,
        secrets: format!("sealed-{id}"),
        created_at: at,
        updated_at: at,
    }
}

async fn put(store: &dyn Store, row: &PushConfigRow) -> PushConfigPut {
    store
        .push_configs()
        .put(row, 10, note("a2a.push_config.set").append())
        .await
        .unwrap()
}

pub async fn push_configs_belong_to_their_owner_and_task(store: &dyn Store) {
    let repo = store.push_configs();
    let task = Uuid::now_v7();
    let mine = config("user:alice", task, "hook-1");
    let audited = audit_count(store).await;
    assert_eq!(put(store, &mine).await, PushConfigPut::Created);
    assert_eq!(audit_count(store).await, audited + 1);
    assert_eq!(
        repo.get("user:alice", task, "hook-1").await.unwrap(),
        Some(mine.clone())
    );
    assert_eq!(
        repo.get("user:mallory", task, "hook-1").await.unwrap(),
        None
    );
    assert_eq!(
        repo.get("user:alice", Uuid::now_v7(), "hook-1")
            .await
            .unwrap(),
        None
    );
    assert!(
        repo.list("user:mallory", task, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Another owner's config of the same id is theirs and leaves the first alone.
    let theirs = config("user:mallory", task, "hook-1");
    assert_eq!(put(store, &theirs).await, PushConfigPut::Created);
    assert_eq!(
        repo.get("user:alice", task, "hook-1").await.unwrap(),
        Some(mine.clone())
    );

    // The same id replaces, keeping the creation time.
    let mut replaced = mine.clone();
    replaced.url = "https://other.example.com/".to_owned();
    replaced.auth_scheme = String::new();
    replaced.key_id = 2;
    replaced.secrets = "sealed-again".to_owned();
    replaced.created_at = truncate_to_micros(T0 + Duration::hours(1));
    replaced.updated_at = truncate_to_micros(T0 + Duration::hours(1));
    assert_eq!(put(store, &replaced).await, PushConfigPut::Replaced);
    let stored = repo
        .get("user:alice", task, "hook-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored,
        PushConfigRow {
            created_at: mine.created_at,
            ..replaced
        }
    );

    let audited = audit_count(store).await;
    assert!(
        !repo
            .delete("user:mallory", task, "nope", note("x").append())
            .await
            .unwrap()
    );
    assert_eq!(
        audit_count(store).await,
        audited,
        "nothing deleted, nothing audited"
    );
    assert!(
        repo.delete("user:alice", task, "hook-1", note("x").append())
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, audited + 1);
    assert_eq!(repo.get("user:alice", task, "hook-1").await.unwrap(), None);
    assert!(
        repo.get("user:mallory", task, "hook-1")
            .await
            .unwrap()
            .is_some(),
        "only the owner's was deleted"
    );
}

pub async fn push_configs_are_capped_per_task_under_concurrency(store: &dyn Store) {
    let repo = store.push_configs();
    let task = Uuid::now_v7();
    let rows: Vec<PushConfigRow> = (0..20)
        .map(|i| config("user:alice", task, &format!("c{i:02}")))
        .collect();
    let notes: Vec<_> = rows.iter().map(|_| note("a2a.push_config.set")).collect();
    let audited = audit_count(store).await;
    let results = join_all(
        rows.iter()
            .zip(&notes)
            .map(|(row, n)| repo.put(row, 10, n.append())),
    )
    .await;
    let created = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|r| *r == PushConfigPut::Created)
        .count();
    assert_eq!(created, 10, "exactly the cap of 20 concurrent creations");
    assert_eq!(
        audit_count(store).await,
        audited + 10,
        "the created ones only"
    );
    let stored = repo.list("user:alice", task, None, 100).await.unwrap();
    assert_eq!(stored.len(), 10);

    // At the cap, an existing id may still be replaced; a new one may not.
    let mut again = stored[3].clone();
    again.url = "https://replaced.example.com/".to_owned();
    assert_eq!(put(store, &again).await, PushConfigPut::Replaced);
    assert_eq!(
        put(store, &config("user:alice", task, "one-more")).await,
        PushConfigPut::LimitReached
    );
    // The cap is per task and owner.
    assert_eq!(
        put(store, &config("user:alice", Uuid::now_v7(), "c00")).await,
        PushConfigPut::Created
    );
    assert_eq!(
        put(store, &config("user:bob", task, "c00")).await,
        PushConfigPut::Created
    );
}

pub async fn push_configs_page_by_id(store: &dyn Store) {
    let repo = store.push_configs();
    let task = Uuid::now_v7();
    // Upper case sorts before lower case bytewise, on both backends.
    let mut ids = vec!["b", "A", "a", "Z.1", "z-2", "0_x", "m"];
    for id in &ids {
        put(store, &config("user:alice", task, id)).await;
    }
    put(store, &config("user:alice", Uuid::now_v7(), "other-task")).await;
    ids.sort_unstable();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = repo
            .list("user:alice", task, after.as_deref(), 3)
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.iter().map(|c| c.id.clone()));
    }
    assert_eq!(seen, ids);
}

pub async fn used_push_configs_are_kept_and_unused_ones_pruned(store: &dyn Store) {
    let repo = store.push_configs();
    let used_task = Uuid::now_v7();
    let idle_task = Uuid::now_v7();
    put(store, &config("user:alice", used_task, "a")).await;
    put(store, &config("user:alice", used_task, "b")).await;
    put(store, &config("user:alice", idle_task, "a")).await;
    let later = truncate_to_micros(T0 + Duration::hours(5));
    assert_eq!(repo.touch("user:alice", used_task, later).await.unwrap(), 2);
    assert_eq!(repo.touch("user:bob", used_task, later).await.unwrap(), 0);
    // A touch never moves the time back.
    assert_eq!(repo.touch("user:alice", used_task, T0).await.unwrap(), 2);
    assert_eq!(
        repo.get("user:alice", used_task, "a")
            .await
            .unwrap()
            .unwrap()
            .updated_at,
        later
    );

    // Exactly at the bound: kept.
    assert_eq!(
        repo.prune_unused_since(truncate_to_micros(T0))
            .await
            .unwrap(),
        0
    );
    let pruned = repo
        .prune_unused_since(T0 + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(repo.get("user:alice", idle_task, "a").await.unwrap(), None);
    assert_eq!(
        repo.list("user:alice", used_task, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn push_config_values_are_checked_by_the_schema(store: &dyn Store) {
    let task = Uuid::now_v7();
    for bad in ["", "has space", "slash/", "ü", &"i".repeat(65)] {
        let result = store
            .push_configs()
            .put(&config("user:alice", task, bad), 10, note("x").append())
            .await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{bad:?}: {result:?}"
        );
    }
    let mut long_url = config("user:alice", task, "ok");
    long_url.url = format!("https://x.example/{}", "p".repeat(2048));
    let result = store
        .push_configs()
        .put(&long_url, 10, note("x").append())
        .await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    put(store, &config("user:alice", task, &"i".repeat(64))).await;
}

pub async fn a_push_config_change_whose_audit_record_fails_is_unchanged(store: &dyn Store) {
    let repo = store.push_configs();
    let task = Uuid::now_v7();
    let row = config("user:alice", task, "hook");
    refused(
        repo.put(&row, 10, broken("a2a.push_config.set").append())
            .await,
        "create",
    );
    assert_eq!(repo.get("user:alice", task, "hook").await.unwrap(), None);
    put(store, &row).await;
    refused(
        repo.delete(
            "user:alice",
            task,
            "hook",
            broken("a2a.push_config.delete").append(),
        )
        .await,
        "delete",
    );
    assert_eq!(
        repo.get("user:alice", task, "hook").await.unwrap(),
        Some(row)
    );
}
