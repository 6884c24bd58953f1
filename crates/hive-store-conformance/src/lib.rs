//! The behaviour every store backend must show, run by each backend's tests through
//! [`conformance_suite!`](crate::conformance_suite).
//!
//! This is test support: it reports a broken backend by panicking, like an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod audited;
mod billing;
mod challenges;
mod conversations;
mod hosted;
mod identity;
mod mfa;
mod oidc;
mod passkeys;
mod push_configs;
mod settings;
mod usage;
mod vault;
mod workflows;
pub use agents::*;
pub use audited::*;
pub use billing::*;
pub use challenges::*;
pub use conversations::*;
pub use hosted::*;
pub use identity::*;
pub use mfa::*;
pub use oidc::*;
pub use passkeys::*;
pub use push_configs::*;
pub use settings::*;
pub use usage::*;
pub use vault::*;
pub use workflows::*;

use async_trait::async_trait;
use hive_store::{
    Backend, JobOutcome, JobRun, NewJobRun, PageRequest, SchemaState, Store, StoreError,
    truncate_to_micros,
};
use std::collections::HashSet;
use std::sync::Arc;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The audit record of a change a check makes (each one new, as record ids are unique).
pub struct Note(pub hive_store::AuditRecord);

/// A record for `action`, to hand to a mutating repository method as `note(..).append()` (also
/// for other crates' tests that need rows made through the store).
pub fn note(action: &str) -> Note {
    Note(hive_store::AuditRecord {
        id: Uuid::now_v7(),
        at: truncate_to_micros(T0),
        actor: "conformance".to_owned(),
        action: action.to_owned(),
        target: None,
        outcome: hive_store::AuditOutcome::Success,
        ip: None,
        request_id: None,
        detail: "{}".to_owned(),
        link: None,
    })
}

impl Note {
    pub fn append(&self) -> hive_store::AuditAppend<'_> {
        hive_store::AuditAppend {
            record: &self.0,
            hasher: &identity::TestHasher,
        }
    }
}

/// A fresh, migrated database for one check, and the means to reach it a second time.
#[async_trait]
pub trait Harness: Sized + Send + Sync {
    /// `None` when the backend is not available in this run: the check is skipped, reported
    /// through `hive_store::test_env::missing` (which fails it under CI).
    async fn fresh() -> Option<Self>;
    fn store(&self) -> Arc<dyn Store>;
    /// Another handle on the same database, as a second replica would open it.
    async fn open_again(&self) -> Result<Arc<dyn Store>, StoreError>;
    /// Records an applied migration this binary does not carry, as a newer Hive would have.
    async fn record_unknown_migration(&self, version: i64);
}

/// Expands to one `#[tokio::test]` per check, each on a fresh [`Harness`] of the type given:
/// `hive_store_conformance::conformance_suite!(MyHarness);` in a backend's `tests/conformance.rs`.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:ty) => {
        $crate::conformance_suite!(@store $harness;
            migrate_is_idempotent,
            ping_fails_after_close,
            job_runs_round_trip,
            job_runs_page_newest_first_without_gaps,
            job_runs_filter_by_job,
            finishing_is_checked,
            oversized_values_are_refused,
            prune_deletes_only_old_finished_runs,
            tasks_belong_to_their_owner_and_expire,
            tasks_are_put_in_batches_all_or_nothing,
            tasks_page_newest_status_first,
            a_discarded_task_refuses_a_late_write,
            setup_has_exactly_one_winner,
            users_round_trip_and_page,
            the_last_admin_is_guarded,
            role_password_and_deactivation_end_sessions,
            login_failures_are_counted_per_day,
            sessions_are_capped_and_pruned,
            live_sessions_page_newest_first,
            api_tokens_round_trip_and_revoke,
            invitations_are_used_once,
            password_resets_are_used_once,
            audit_records_page_newest_first,
            audit_appends_form_one_chain_under_concurrency,
            audit_batches_commit_in_order_or_not_at_all,
            audit_batches_continue_after_a_change_audited_on_its_own,
            audit_filters_match_and_pages_neither_skip_nor_repeat,
            audit_retention_cuts_the_chain_at_a_signed_checkpoint,
            vault_keys_are_unique_by_id,
            secrets_are_unique_per_owner_and_versioned,
            a_change_whose_audit_record_fails_is_rolled_back,
            vault_key_encryptions_are_reserved_up_to_a_limit,
            vault_keys_retire_only_when_unused_and_not_newest,
            secrets_reseal_only_unchanged_rows,
            settings_are_created_replaced_and_listed,
            stale_setting_writes_change_nothing,
            setting_names_values_and_authors_are_checked,
            concurrent_setting_writes_have_one_winner,
            a_setting_whose_audit_record_fails_is_unchanged,
            totp_credentials_round_trip,
            only_a_pending_totp_is_enabled,
            a_totp_step_is_used_once_under_concurrency,
            an_older_or_equal_totp_step_is_refused,
            totp_failures_are_counted_per_step,
            a_recovery_code_is_used_once_under_concurrency,
            replacing_recovery_codes_invalidates_the_old_ones,
            an_mfa_change_whose_audit_record_fails_is_unchanged,
            passkeys_round_trip,
            passkeys_are_capped_per_user_under_concurrency,
            a_credential_id_belongs_to_one_passkey,
            passkey_values_are_checked_by_the_schema,
            passkey_changes_end_the_other_sessions,
            a_passkey_counter_only_moves_forward,
            all_passkeys_of_a_user_are_removed_at_once,
            a_passkey_change_whose_audit_record_fails_is_unchanged,
            a_user_has_a_second_factor_only_while_totp_is_enabled,
            a_vault_key_sealing_a_totp_seed_is_not_retired,
            totp_seeds_are_resealed_only_when_unchanged,
            sessions_record_their_second_factor,
            a_challenge_is_taken_once_for_its_purpose,
            a_challenge_has_one_taker_under_concurrency,
            expired_challenges_are_pruned,
            oidc_links_round_trip_and_stay_unique,
            an_account_is_created_with_its_link_or_not_at_all,
            agents_round_trip_every_field,
            agent_names_are_unique_and_checked,
            agents_belong_to_their_owner,
            agents_page_newest_first_without_gaps,
            agent_settings_change_only_from_the_version_read,
            agent_status_changes_apart_from_settings,
            a_guarded_status_change_applies_only_from_the_status_read,
            oversized_agent_json_is_refused,
            an_agent_change_whose_audit_record_fails_is_rolled_back,
            push_configs_belong_to_their_owner_and_task,
            push_configs_are_capped_per_task_under_concurrency,
            push_configs_page_by_id,
            used_push_configs_are_kept_and_unused_ones_pruned,
            push_config_values_are_checked_by_the_schema,
            a_push_config_change_whose_audit_record_fails_is_unchanged,
            usage_rows_round_trip_and_page_newest_first,
            usage_tokens_are_summed_per_agent_from_a_moment,
            usage_values_are_checked,
            usage_is_summed_per_utc_day,
            conversations_round_trip_every_field,
            conversations_belong_to_their_owner,
            conversations_page_by_latest_update,
            a_turn_is_claimed_until_finished_or_stale,
            a_turn_has_one_claimer_under_concurrency,
            conversation_messages_page_newest_first,
            a_deleted_conversation_takes_its_messages,
            a_conversation_delete_whose_audit_record_fails_is_unchanged,
            idle_conversations_are_pruned_with_their_messages,
            conversations_go_with_their_agent,
            conversation_values_are_checked,
            bundle_versions_count_up_and_are_never_reused,
            pushing_keeps_the_newest_versions,
            one_bundle_version_is_active_and_rolled_back_to,
            bundle_archives_round_trip_byte_for_byte,
            bundle_caps_are_refused,
            a_bundle_for_a_missing_agent_is_not_found,
            a_bundle_push_whose_audit_record_fails_is_undone,
            concurrent_bundle_pushes_take_distinct_versions,
            a_deleted_agent_takes_its_bundles_and_lease,
            a_hosted_agent_is_stored_and_paused,
            a_lease_is_taken_when_free_and_over_when_expired,
            the_same_node_retakes_and_extends_its_lease,
            renewal_extends_only_the_leases_still_held,
            a_lease_is_released_only_by_its_holder,
            a_lease_for_a_missing_agent_is_not_taken,
            workflows_are_saved_as_versions,
            workflow_names_are_unique_per_owner,
            workflow_caps_are_refused,
            workflows_page_newest_first,
            workflow_switches_and_schedules_are_stored,
            runs_are_created_once_per_trigger_key,
            run_caps_count_active_runs_only,
            run_caps_hold_under_concurrency,
            runs_page_newest_first_by_filter,
            a_claim_takes_the_oldest_run_needing_a_replica,
            concurrent_claims_take_distinct_runs,
            a_lost_lease_fences_its_executor,
            step_values_are_checked,
            a_park_after_a_signal_is_refused,
            a_decision_is_taken_once_and_queues_the_run,
            waiting_steps_of_active_runs_are_listed_newest_first,
            a_sub_workflow_end_reaches_its_parent,
            a_sub_workflow_cancelled_alone_fails_its_parent_step,
            a_cancellation_reaches_sub_workflows_and_fences,
            a_retry_keeps_what_succeeded,
            schedule_fires_are_recorded_with_their_runs,
            a_deleted_workflow_takes_its_versions_and_runs,
            pruning_keeps_unfinished_runs_and_their_parents,
            a_run_change_whose_audit_record_fails_is_undone,
            a_ledger_entry_posts_once,
            fifty_concurrent_copies_of_an_entry_post_once,
            money_out_beyond_the_wallet_is_owed_and_paid_first,
            money_freed_while_something_is_owed_is_not_held_again,
            holds_never_overdraw_a_wallet_under_concurrency,
            a_settlement_applies_once,
            budgets_hold_count_and_alert,
            expired_holds_are_released_once,
            stripe_customers_link_one_to_one,
            prices_are_set_and_removed,
            ledger_values_are_checked,
            every_ledger_transaction_balances,
            replaying_a_prefix_of_events_changes_nothing,
        );
        $crate::conformance_suite!(@harness $harness;
            a_newer_schema_is_refused,
            leadership_is_exclusive,
            audit_batches_from_two_replicas_form_one_chain,
        );
    };
    (@store $harness:ty; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(harness) = <$harness as $crate::Harness>::fresh().await else {
                    return;
                };
                let store = $crate::Harness::store(&harness);
                $crate::$check(&*store).await;
            }
        )+
    };
    (@harness $harness:ty; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(harness) = <$harness as $crate::Harness>::fresh().await else {
                    return;
                };
                $crate::$check(&harness).await;
            }
        )+
    };
}

/// Carries nanoseconds on purpose: stores keep microseconds and must truncate, not round.
const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00.123456789 UTC);

fn new_run(job: &str, at: OffsetDateTime) -> NewJobRun {
    NewJobRun {
        job: job.to_owned(),
        node_id: "node-a".to_owned(),
        started_at: at,
    }
}

fn first(limit: u32) -> PageRequest {
    PageRequest::first(limit).unwrap()
}

pub async fn migrate_is_idempotent(store: &dyn Store) {
    let state = store.schema_state().await.unwrap();
    let SchemaState::UpToDate { version } = state else {
        panic!("a fresh harness is migrated: {state:?}");
    };
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(again.version, version);
    assert_eq!(
        store.schema_state().await.unwrap(),
        SchemaState::UpToDate { version }
    );
}

pub async fn ping_fails_after_close(store: &dyn Store) {
    store.ping().await.unwrap();
    store.close().await;
    let after = store.ping().await;
    assert!(
        matches!(after, Err(StoreError::Unavailable(_))),
        "{after:?}"
    );
    let write = store.job_runs().start(new_run("late", T0)).await;
    assert!(
        matches!(write, Err(StoreError::Unavailable(_))),
        "{write:?}"
    );
}

pub async fn job_runs_round_trip(store: &dyn Store) {
    let runs = store.job_runs();
    let id = runs.start(new_run("prune", T0)).await.unwrap();
    runs.finish(
        id,
        T0 + Duration::seconds(2),
        JobOutcome::Succeeded,
        Some("pruned 3 runs"),
    )
    .await
    .unwrap();
    // Before 1970 truncation must still go towards the past.
    let early_at = datetime!(1969-12-31 23:59:59.999999999 UTC);
    let early = runs.start(new_run("early", early_at)).await.unwrap();

    let page = runs.list(None, &first(10)).await.unwrap();
    assert_eq!(
        page.items,
        vec![
            JobRun {
                id,
                job: "prune".into(),
                node_id: "node-a".into(),
                started_at: truncate_to_micros(T0),
                finished_at: Some(truncate_to_micros(T0 + Duration::seconds(2))),
                outcome: JobOutcome::Succeeded,
                detail: Some("pruned 3 runs".into()),
            },
            JobRun {
                id: early,
                job: "early".into(),
                node_id: "node-a".into(),
                started_at: datetime!(1969-12-31 23:59:59.999999 UTC),
                finished_at: None,
                outcome: JobOutcome::Running,
                detail: None,
            },
        ]
    );
    assert_eq!(page.next_cursor, None);
}

pub async fn job_runs_page_newest_first_without_gaps(store: &dyn Store) {
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

    let exact = runs.list(None, &first(23)).await.unwrap();
    assert_eq!(exact.items.len(), 23);
    assert_eq!(exact.next_cursor, None, "no empty last page");
}

pub async fn job_runs_filter_by_job(store: &dyn Store) {
    let runs = store.job_runs();
    let mut a_ids = Vec::new();
    for i in 0..7 {
        let job = if i % 2 == 0 { "a" } else { "b" };
        let id = runs
            .start(new_run(job, T0 + Duration::seconds(i)))
            .await
            .unwrap();
        if job == "a" {
            a_ids.push(id);
        }
    }
    a_ids.reverse();

    // Paging within one job follows the same cursor rules.
    let page_one = runs.list(Some("a"), &first(3)).await.unwrap();
    assert!(page_one.items.iter().all(|r| r.job == "a"));
    let next = PageRequest::new(3, page_one.next_cursor.as_deref()).unwrap();
    let page_two = runs.list(Some("a"), &next).await.unwrap();
    assert_eq!(page_two.next_cursor, None);
    let ids: Vec<Uuid> = page_one
        .items
        .iter()
        .chain(&page_two.items)
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, a_ids);

    let none = runs.list(Some("c"), &first(10)).await.unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.next_cursor, None);
}

pub async fn finishing_is_checked(store: &dyn Store) {
    let runs = store.job_runs();
    let unknown = runs
        .finish(Uuid::now_v7(), T0, JobOutcome::Failed, None)
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");

    let id = runs.start(new_run("x", T0)).await.unwrap();
    let still_running = runs.finish(id, T0, JobOutcome::Running, None).await;
    assert!(
        matches!(still_running, Err(StoreError::Conflict(_))),
        "{still_running:?}"
    );
    runs.finish(id, T0, JobOutcome::Failed, Some("boom"))
        .await
        .unwrap();
    let twice = runs.finish(id, T0, JobOutcome::Succeeded, None).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let listed = runs.list(None, &first(1)).await.unwrap();
    assert_eq!(
        listed.items[0].outcome,
        JobOutcome::Failed,
        "the first end stands"
    );
    assert_eq!(listed.items[0].detail.as_deref(), Some("boom"));
}

pub async fn oversized_values_are_refused(store: &dyn Store) {
    let runs = store.job_runs();
    let long_job = runs.start(new_run(&"j".repeat(101), T0)).await;
    assert!(
        matches!(long_job, Err(StoreError::Invalid(_))),
        "{long_job:?}"
    );
    let empty_job = runs.start(new_run("", T0)).await;
    assert!(
        matches!(empty_job, Err(StoreError::Invalid(_))),
        "{empty_job:?}"
    );

    let id = runs.start(new_run(&"j".repeat(100), T0)).await.unwrap();
    let long_detail = runs
        .finish(id, T0, JobOutcome::Failed, Some(&"d".repeat(1001)))
        .await;
    assert!(
        matches!(long_detail, Err(StoreError::Invalid(_))),
        "{long_detail:?}"
    );
    runs.finish(id, T0, JobOutcome::Failed, Some(&"d".repeat(1000)))
        .await
        .unwrap();
}

pub async fn prune_deletes_only_old_finished_runs(store: &dyn Store) {
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
    // Ended exactly at the bound: not before it, so kept.
    let at_bound = runs.start(new_run("p", T0)).await.unwrap();
    runs.finish(at_bound, T0 + Duration::days(1), JobOutcome::Failed, None)
        .await
        .unwrap();

    let pruned = runs
        .prune_finished_before(T0 + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left: HashSet<Uuid> = runs
        .list(None, &first(10))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, HashSet::from([old_running, recent, at_bound]));
}

pub async fn a_newer_schema_is_refused(h: &impl Harness) {
    let store = h.store();
    let SchemaState::UpToDate { version } = store.schema_state().await.unwrap() else {
        panic!("a fresh harness is migrated");
    };
    let future = version + 1_000;
    h.record_unknown_migration(future).await;
    assert_eq!(
        store.schema_state().await.unwrap(),
        SchemaState::Newer {
            current: future,
            unknown: vec![future]
        }
    );
    let refused = store.migrate().await;
    assert!(
        matches!(&refused, Err(StoreError::SchemaNewer { current, .. }) if *current == future),
        "{refused:?}"
    );
}

pub async fn leadership_is_exclusive(h: &impl Harness) {
    let store = h.store();
    let mut first = store.leader_lease("jobs").await.unwrap();
    assert!(first.try_acquire().await.unwrap());
    assert!(first.try_acquire().await.unwrap(), "a leader stays leader");

    if store.backend() == Backend::Sqlite {
        // One process per database (the lock file), so there is no one to compete with.
        let second = h.open_again().await;
        assert!(matches!(second, Err(StoreError::Locked(_))), "{second:?}");
        let mut same_name = store.leader_lease("jobs").await.unwrap();
        assert!(same_name.try_acquire().await.unwrap());
        first.release().await.unwrap();
        return;
    }

    let other = h.open_again().await.unwrap();
    let mut second = other.leader_lease("jobs").await.unwrap();
    assert!(!second.try_acquire().await.unwrap(), "one leader at a time");
    assert!(!second.try_acquire().await.unwrap(), "still one leader");
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
    assert!(
        !first.try_acquire().await.unwrap(),
        "the new leader holds it"
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
    for lease in &mut leases {
        lease.release().await.unwrap();
    }
    other.close().await;
}

fn task_row(owner: &str, at: OffsetDateTime) -> hive_store::TaskRow {
    hive_store::TaskRow {
        id: Uuid::now_v7(),
        owner: owner.to_owned(),
        agent_id: "agent-1".to_owned(),
        context_id: "ctx-1".to_owned(),
        status_time: truncate_to_micros(at),
        document: r#"{"status":{"state":"TASK_STATE_WORKING"}}"#.to_owned(),
        expires_at: truncate_to_micros(at + Duration::hours(1)),
    }
}

/// A batch is written in order in one transaction, each put answered as alone (the same
/// owner rule); one the database refuses fails the whole batch and leaves nothing of it.
pub async fn tasks_are_put_in_batches_all_or_nothing(store: &dyn Store) {
    let tasks = store.tasks();
    let held = task_row("alice", T0);
    assert!(tasks.put(&held, T0).await.unwrap());
    let mut stolen = held.clone();
    stolen.owner = "mallory".to_owned();
    let first = task_row("bob", T0);
    let mut first_updated = first.clone();
    first_updated.document = r#"{"status":{"state":"TASK_STATE_COMPLETED"}}"#.to_owned();
    let done = tasks
        .put_batch(&[first.clone(), stolen, first_updated.clone()], T0)
        .await
        .unwrap();
    assert_eq!(done, vec![true, false, true]);
    assert_eq!(
        tasks.get("bob", first.id, T0).await.unwrap(),
        Some(first_updated),
        "the later put of the batch wins"
    );
    assert_eq!(tasks.get("alice", held.id, T0).await.unwrap(), Some(held));

    let fresh = task_row("carol", T0);
    let mut refused = task_row("carol", T0);
    refused.document = "x".repeat(4_194_305); // over the schema's bound
    assert!(
        tasks
            .put_batch(&[fresh.clone(), refused], T0)
            .await
            .is_err()
    );
    assert_eq!(
        tasks.get("carol", fresh.id, T0).await.unwrap(),
        None,
        "nothing of a failed batch"
    );
}

pub async fn tasks_belong_to_their_owner_and_expire(store: &dyn Store) {
    let tasks = store.tasks();
    let mine = task_row("alice", T0);
    assert!(tasks.put(&mine, T0).await.unwrap());
    assert_eq!(
        tasks.get("alice", mine.id, T0).await.unwrap(),
        Some(mine.clone())
    );
    assert_eq!(tasks.get("mallory", mine.id, T0).await.unwrap(), None);

    let mut stolen = mine.clone();
    stolen.owner = "mallory".to_owned();
    assert!(
        !tasks.put(&stolen, T0).await.unwrap(),
        "another owner's id is refused"
    );
    assert_eq!(
        tasks.get("alice", mine.id, T0).await.unwrap(),
        Some(mine.clone())
    );

    let mut updated = mine.clone();
    updated.document = r#"{"status":{"state":"TASK_STATE_COMPLETED"}}"#.to_owned();
    assert!(
        tasks.put(&updated, T0).await.unwrap(),
        "the owner replaces it"
    );
    assert_eq!(
        tasks.get("alice", mine.id, T0).await.unwrap(),
        Some(updated)
    );

    let later = T0 + Duration::hours(2);
    assert_eq!(
        tasks.get("alice", mine.id, later).await.unwrap(),
        None,
        "expired"
    );
    let page = PageRequest::first(10).unwrap();
    assert!(
        tasks
            .list("alice", &page, later)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // An expired id is free again, for anyone.
    assert!(tasks.put(&stolen, later).await.unwrap());
    assert_eq!(
        tasks
            .prune_expired(later + Duration::hours(2))
            .await
            .unwrap(),
        1
    );
}

/// A discard replaces the task with a tombstone that neither reads nor lists, and that a late
/// write (one that was still in flight) does not replace until it expires.
pub async fn a_discarded_task_refuses_a_late_write(store: &dyn Store) {
    let tasks = store.tasks();
    // Before the tasks' own expiry (an hour after T0).
    let until = T0 + Duration::minutes(30);
    let page = PageRequest::first(10).unwrap();
    let kept = task_row("alice", T0);
    assert!(tasks.put(&kept, T0).await.unwrap());
    tasks.discard("mallory", kept.id, T0, until).await.unwrap();
    assert_eq!(
        tasks.get("alice", kept.id, T0).await.unwrap(),
        Some(kept.clone()),
        "another owner's discard changes nothing"
    );

    let landed = task_row("alice", T0);
    assert!(tasks.put(&landed, T0).await.unwrap());
    tasks.discard("alice", landed.id, T0, until).await.unwrap();
    assert_eq!(tasks.get("alice", landed.id, T0).await.unwrap(), None);
    assert!(
        !tasks.put(&landed, T0).await.unwrap(),
        "the write landing after the discard"
    );

    let late = task_row("alice", T0);
    tasks.discard("alice", late.id, T0, until).await.unwrap();
    assert!(
        !tasks.put(&late, T0).await.unwrap(),
        "a discard ahead of its write"
    );
    let mut other = late.clone();
    other.owner = "mallory".to_owned();
    assert!(!tasks.put(&other, T0).await.unwrap());
    assert_eq!(tasks.get("alice", late.id, T0).await.unwrap(), None);
    assert_eq!(
        tasks.list("alice", &page, T0).await.unwrap().items,
        vec![kept]
    );

    // Once the tombstone expires, the id is free again and the tombstone is pruned.
    let later = until + Duration::seconds(1);
    assert_eq!(tasks.prune_expired(later).await.unwrap(), 2);
    assert!(tasks.put(&late, later).await.unwrap());
}

pub async fn tasks_page_newest_status_first(store: &dyn Store) {
    let tasks = store.tasks();
    let mut expected = Vec::new();
    for i in 0..11 {
        let row = task_row("alice", T0 + Duration::seconds(i / 2));
        assert!(tasks.put(&row, T0).await.unwrap());
        expected.push(row);
    }
    assert!(tasks.put(&task_row("bob", T0), T0).await.unwrap());
    expected.sort_by_key(|t| std::cmp::Reverse((t.status_time, t.id)));
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(4, cursor.as_deref()).unwrap();
        let got = tasks.list("alice", &page, T0).await.unwrap();
        seen.extend(got.items);
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}
