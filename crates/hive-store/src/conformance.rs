//! The behaviour every store backend must show, run by each backend's tests through
//! [`conformance_suite!`](crate::conformance_suite).
//!
//! This is test support: it reports a broken backend by panicking, like an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{
    JobOutcome, JobRun, NewJobRun, PageRequest, SchemaState, Store, StoreError, truncate_to_micros,
};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::Arc;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A fresh, migrated database for one check, and the means to open it a second time.
#[async_trait]
pub trait Harness: Sized + Send + Sync {
    /// `None` when the backend is not available in this run (the check is skipped).
    async fn fresh() -> Option<Self>;
    fn store(&self) -> Arc<dyn Store>;
    /// Another handle on the same database, as a second replica would open it.
    async fn open_again(&self) -> Result<Arc<dyn Store>, StoreError>;
}

/// Expands to one `#[tokio::test]` per check, for the harness type given.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:ty) => {
        $crate::conformance_suite!(@tests $harness;
            migrate_is_idempotent,
            ping_fails_after_close,
            job_runs_round_trip,
            job_runs_page_newest_first_without_gaps,
            job_runs_filter_by_job,
            finishing_is_checked,
            prune_deletes_only_old_finished_runs,
            leadership_is_exclusive,
        );
    };
    (@tests $harness:ty; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(harness) = <$harness as $crate::conformance::Harness>::fresh().await else {
                    eprintln!("skipped: backend not configured");
                    return;
                };
                $crate::conformance::$check(&harness).await;
            }
        )+
    };
}

const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00.123456 UTC);

fn new_run(job: &str, at: OffsetDateTime) -> NewJobRun {
    NewJobRun {
        job: job.to_owned(),
        node_id: "node-a".to_owned(),
        started_at: at,
    }
}

pub async fn migrate_is_idempotent(h: &impl Harness) {
    let store = h.store();
    let state = store.schema_state().await.unwrap();
    let SchemaState::UpToDate { version } = state else {
        panic!("a fresh harness is migrated: {state:?}");
    };
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.version, version);
    assert_eq!(
        store.schema_state().await.unwrap(),
        SchemaState::UpToDate { version }
    );
}

pub async fn ping_fails_after_close(h: &impl Harness) {
    let store = h.store();
    store.ping().await.unwrap();
    store.close().await;
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
}

pub async fn job_runs_round_trip(h: &impl Harness) {
    let runs = h.store();
    let runs = runs.job_runs();
    let id = runs.start(new_run("prune", T0)).await.unwrap();
    runs.finish(
        id,
        T0 + Duration::seconds(2),
        JobOutcome::Succeeded,
        Some("pruned 3 runs"),
    )
    .await
    .unwrap();
    let page = runs
        .list(None, &PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![JobRun {
            id,
            job: "prune".into(),
            node_id: "node-a".into(),
            started_at: truncate_to_micros(T0),
            finished_at: Some(truncate_to_micros(T0 + Duration::seconds(2))),
            outcome: JobOutcome::Succeeded,
            detail: Some("pruned 3 runs".into()),
        }]
    );
    assert_eq!(page.next_cursor, None);
}

pub async fn job_runs_page_newest_first_without_gaps(h: &impl Harness) {
    let store = h.store();
    let runs = store.job_runs();
    let mut started = Vec::new();
    for i in 0..23 {
        // Groups of three share a start time, so ties must be broken by id.
        let at = T0 + Duration::seconds(i / 3);
        let id = runs.start(new_run("tick", at)).await.unwrap();
        started.push((truncate_to_micros(at), id));
    }
    started.sort_by(|a, b| b.cmp(a));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(5, cursor.as_deref()).unwrap();
        let got = runs.list(None, &page).await.unwrap();
        assert!(got.items.len() <= 5);
        seen.extend(got.items.iter().map(|r| (r.started_at, r.id)));
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, started, "every run once, newest first, ties by id");

    let exact = runs
        .list(None, &PageRequest::first(23).unwrap())
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 23);
    assert_eq!(exact.next_cursor, None, "no empty last page");
}

pub async fn job_runs_filter_by_job(h: &impl Harness) {
    let store = h.store();
    let runs = store.job_runs();
    for i in 0..4 {
        let job = if i % 2 == 0 { "a" } else { "b" };
        runs.start(new_run(job, T0 + Duration::seconds(i)))
            .await
            .unwrap();
    }
    let only_a = runs
        .list(Some("a"), &PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(only_a.items.len(), 2);
    assert!(only_a.items.iter().all(|r| r.job == "a"));
    let none = runs
        .list(Some("c"), &PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

pub async fn finishing_is_checked(h: &impl Harness) {
    let store = h.store();
    let runs = store.job_runs();
    let unknown = runs
        .finish(Uuid::now_v7(), T0, JobOutcome::Failed, None)
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");

    let id = runs.start(new_run("x", T0)).await.unwrap();
    let still_running = runs.finish(id, T0, JobOutcome::Running, None).await;
    assert!(matches!(still_running, Err(StoreError::Conflict(_))));
    runs.finish(id, T0, JobOutcome::Failed, Some("boom"))
        .await
        .unwrap();
    let twice = runs.finish(id, T0, JobOutcome::Succeeded, None).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let listed = runs
        .list(None, &PageRequest::first(1).unwrap())
        .await
        .unwrap();
    assert_eq!(
        listed.items[0].outcome,
        JobOutcome::Failed,
        "the first end stands"
    );
}

pub async fn prune_deletes_only_old_finished_runs(h: &impl Harness) {
    let store = h.store();
    let runs = store.job_runs();
    let old = runs.start(new_run("p", T0)).await.unwrap();
    runs.finish(old, T0 + Duration::seconds(1), JobOutcome::Succeeded, None)
        .await
        .unwrap();
    let old_running = runs.start(new_run("p", T0)).await.unwrap();
    let recent = runs
        .start(new_run("p", T0 + Duration::days(2)))
        .await
        .unwrap();
    runs.finish(recent, T0 + Duration::days(2), JobOutcome::Succeeded, None)
        .await
        .unwrap();

    let pruned = runs
        .prune_finished_before(T0 + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left: HashSet<Uuid> = runs
        .list(None, &PageRequest::first(10).unwrap())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, HashSet::from([old_running, recent]));
}

pub async fn leadership_is_exclusive(h: &impl Harness) {
    let store = h.store();
    let mut first = store.leader_lease("jobs").await.unwrap();
    assert!(first.try_acquire().await.unwrap());
    assert!(first.try_acquire().await.unwrap(), "a leader stays leader");

    let other = match h.open_again().await {
        // SQLite: one process per database, so there is no one to compete with.
        Err(StoreError::Locked(_)) => return,
        other => other.unwrap(),
    };
    let mut second = other.leader_lease("jobs").await.unwrap();
    assert!(!second.try_acquire().await.unwrap(), "one leader at a time");
    let mut unrelated = other.leader_lease("another-purpose").await.unwrap();
    assert!(
        unrelated.try_acquire().await.unwrap(),
        "leases are per name"
    );

    first.release().await.unwrap();
    assert!(
        second.try_acquire().await.unwrap(),
        "released leadership passes on"
    );
    drop(second);
    // A dropped holder frees the lease (its connection closes); someone else gets it soon.
    let retake = async {
        while !first.try_acquire().await.unwrap() {
            // Polling for the database to notice the closed connection.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), retake)
        .await
        .expect("a dropped lease is freed");
    first.release().await.unwrap();

    // Ten replicas racing: exactly one wins.
    let mut leases = Vec::new();
    for _ in 0..10 {
        leases.push(other.leader_lease("race").await.unwrap());
    }
    let wins = futures_util::future::join_all(leases.iter_mut().map(|l| l.try_acquire())).await;
    let winners = wins.into_iter().filter(|w| *w.as_ref().unwrap()).count();
    assert_eq!(winners, 1);
    other.close().await;
}
