//! Workflows: versions counted up per workflow, names unique per owner, caps refused; runs
//! inserted once per trigger key under the per-user and per-workflow caps (counting active
//! runs only); claims that take the oldest run needing a replica, never one held, never twice;
//! a lease's token fencing every write of an executor that lost it; parks refused after a
//! signal; decisions taken once; sub-workflows' ends and cancellations reaching their parents;
//! retries that keep what succeeded; schedule fires; deletion and pruning. Times are passed
//! explicitly: nothing here sleeps.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, note};
use futures_util::future::join_all;
use hive_proto::Role;
use hive_store::{
    MAX_STEP_KEY_CHARS, MAX_TRIGGER_KEY_CHARS, MAX_WEBHOOK_SECRET_BYTES,
    MAX_WORKFLOW_DESCRIPTION_CHARS, MAX_WORKFLOW_DOCUMENT_BYTES, MAX_WORKFLOW_ERROR_CHARS,
    MAX_WORKFLOW_NAME_CHARS, MAX_WORKFLOW_VALUE_BYTES, NewRun, NewUser, PageRequest, RunCaps,
    RunEnd, RunFilter, RunInsert, RunRow, RunStatus, RunTrigger, ScheduleFire, StepDecision,
    StepEnd, StepStart, StepStatus, Store, StoreError, WorkflowRow, WorkflowSave,
    WorkflowVersionRow, truncate_to_micros,
};
use std::collections::HashSet;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// `seconds` after T0, with T0's nanoseconds (the stores keep microseconds).
fn at(seconds: i64) -> OffsetDateTime {
    T0 + Duration::seconds(seconds)
}

fn stored(seconds: i64) -> OffsetDateTime {
    truncate_to_micros(at(seconds))
}

const ROOMY: RunCaps = RunCaps {
    per_user: 1_000,
    per_workflow: 1_000,
};

const DOCUMENT: &str = r#"{"nodes":[{"id":"a"}],"triggers":[]}"#;

async fn user(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    let user = NewUser {
        id,
        email: format!("{}@example.com", id.simple()),
        display_name: "Author".to_owned(),
        role: Role::Operator,
        password_hash: None,
        created_at: truncate_to_micros(T0),
    };
    store
        .users()
        .create(&user, note("user.create").append())
        .await
        .unwrap();
    id
}

fn save<'a>(id: Uuid, owner_id: Uuid, name: &'a str, document: &'a str) -> WorkflowSave<'a> {
    WorkflowSave {
        id,
        owner_id,
        name,
        description: "",
        document,
        scheduled: false,
        created_by: Some(owner_id),
        at: at(0),
    }
}

/// A new workflow of `owner_id` (version 1).
async fn workflow(store: &dyn Store, owner_id: Uuid) -> WorkflowRow {
    let id = Uuid::now_v7();
    let name = format!("wf-{}", id.simple());
    store
        .workflows()
        .save_workflow(
            &save(id, owner_id, &name, DOCUMENT),
            note("workflow.save").append(),
        )
        .await
        .unwrap()
        .0
}

/// A manual run of the workflow's first version, as `principal`, created `seconds` after T0.
fn new_run(workflow_id: Uuid, principal: Uuid, seconds: i64) -> NewRun<'static> {
    NewRun {
        id: Uuid::now_v7(),
        workflow_id,
        version: 1,
        principal_user: principal,
        principal_token: None,
        trigger: RunTrigger::Manual,
        trigger_key: None,
        input: r#"{"in":1}"#,
        parent_run: None,
        parent_step: None,
        deadline_at: at(seconds + 3_600),
        created_at: at(seconds),
        schedule: None,
    }
}

async fn insert_with(store: &dyn Store, run: &NewRun<'_>, caps: RunCaps) -> RunInsert {
    store
        .workflows()
        .insert_run(run, caps, note("workflow.run.start").append())
        .await
        .unwrap()
}

async fn insert(store: &dyn Store, run: &NewRun<'_>) -> RunRow {
    match insert_with(store, run, ROOMY).await {
        RunInsert::Created(row) => row,
        other => panic!("not created: {other:?}"),
    }
}

/// A user, their workflow and a run of it created `seconds` after T0.
async fn a_run(store: &dyn Store, seconds: i64) -> RunRow {
    let owner = user(store).await;
    let wf = workflow(store, owner).await;
    insert(store, &new_run(wf.id, owner, seconds)).await
}

/// Claims with `token` at `now` (seconds) for 30 seconds.
async fn claim(store: &dyn Store, token: Uuid, now: i64) -> Option<RunRow> {
    store
        .workflows()
        .claim_run("node-a", token, at(now), at(now + 30))
        .await
        .unwrap()
}

async fn get(store: &dyn Store, id: Uuid) -> RunRow {
    store.workflows().get_run(id).await.unwrap().unwrap()
}

fn start<'a>(step_key: &'a str, attempt: i64, seconds: i64) -> StepStart<'a> {
    StepStart {
        step_key,
        node_id: step_key.split('[').next().unwrap_or(step_key),
        attempt,
        input: Some(r#"{"step":true}"#),
        at: at(seconds),
    }
}

fn end<'a>(step_key: &'a str, status: StepStatus, seconds: Option<i64>) -> StepEnd<'a> {
    StepEnd {
        step_key,
        status,
        output: (status == StepStatus::Succeeded).then_some(r#"{"out":1}"#),
        branch: None,
        error: (status == StepStatus::Failed).then_some("it broke"),
        wake_at: None,
        at: seconds.map(at),
    }
}

async fn start_step(store: &dyn Store, run: Uuid, token: Uuid, key: &str, s: i64) -> bool {
    store
        .workflows()
        .start_step(run, token, &start(key, 1, s))
        .await
        .unwrap()
}

async fn end_step(store: &dyn Store, run: Uuid, token: Uuid, end: &StepEnd<'_>) -> bool {
    store.workflows().end_step(run, token, end).await.unwrap()
}

async fn finish(store: &dyn Store, run: Uuid, token: Uuid, how: &RunEnd<'_>, s: i64) -> bool {
    store
        .workflows()
        .finish_run(run, token, how, at(s), note("workflow.run.end").append())
        .await
        .unwrap()
}

async fn cancel(store: &dyn Store, run: Uuid, s: i64) -> bool {
    store
        .workflows()
        .cancel_run(run, at(s), note("workflow.run.cancel").append())
        .await
        .unwrap()
}

/// The run's steps as (key, status).
async fn journal(store: &dyn Store, run: Uuid) -> Vec<(String, StepStatus)> {
    let steps = store.workflows().steps(run).await.unwrap();
    steps.into_iter().map(|s| (s.step_key, s.status)).collect()
}

fn invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "{what}: {result:?}"
    );
}

fn waiting_step(key: &str) -> StepEnd<'_> {
    end(key, StepStatus::Waiting, None)
}

pub async fn workflows_are_saved_as_versions(store: &dyn Store) {
    let owner = user(store).await;
    let flows = store.workflows();
    let id = Uuid::now_v7();
    let before = audit_count(store).await;
    let (first, v1) = flows
        .save_workflow(
            &WorkflowSave {
                description: "first",
                ..save(id, owner, "deploy", DOCUMENT)
            },
            note("workflow.save").append(),
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        WorkflowRow {
            id,
            owner_id: owner,
            name: "deploy".to_owned(),
            description: "first".to_owned(),
            latest_version: 1,
            enabled: true,
            scheduled: false,
            webhook_secret: None,
            created_at: stored(0),
            updated_at: stored(0),
        }
    );
    assert_eq!(
        v1,
        WorkflowVersionRow {
            workflow_id: id,
            version: 1,
            document: DOCUMENT.to_owned(),
            created_by: Some(owner),
            created_at: stored(0),
        }
    );
    let second_document = r#"{"nodes":[{"id":"b"}],"ünïcode":"kept"}"#;
    let (second, v2) = flows
        .save_workflow(
            &WorkflowSave {
                description: "second",
                scheduled: true,
                created_by: None,
                at: at(5),
                ..save(id, owner, "deploy-2", second_document)
            },
            note("workflow.save").append(),
        )
        .await
        .unwrap();
    assert_eq!(audit_count(store).await, before + 2);
    assert_eq!(
        second,
        WorkflowRow {
            name: "deploy-2".to_owned(),
            description: "second".to_owned(),
            latest_version: 2,
            scheduled: true,
            updated_at: stored(5),
            ..first.clone()
        }
    );
    assert_eq!((v2.version, v2.document.as_str()), (2, second_document));
    assert_eq!(v2.created_by, None);
    assert_eq!(flows.get_workflow(id).await.unwrap(), Some(second.clone()));
    assert_eq!(
        flows.find_workflow(owner, "deploy-2").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(flows.find_workflow(owner, "deploy").await.unwrap(), None);
    assert_eq!(flows.get_version(id, 1).await.unwrap(), Some(v1.clone()));
    assert_eq!(flows.get_version(id, 3).await.unwrap(), None);
    assert_eq!(
        flows.list_versions(id, 10).await.unwrap(),
        vec![v2.clone(), v1]
    );
    assert_eq!(flows.list_versions(id, 1).await.unwrap(), vec![v2]);
    assert_eq!(flows.get_workflow(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn workflow_names_are_unique_per_owner(store: &dyn Store) {
    let flows = store.workflows();
    let alice = user(store).await;
    let bob = user(store).await;
    let taken = workflow(store, alice).await;
    let other = workflow(store, alice).await;
    let before = audit_count(store).await;

    let same_name = flows
        .save_workflow(
            &save(Uuid::now_v7(), alice, &taken.name, DOCUMENT),
            note("workflow.save").append(),
        )
        .await;
    assert!(
        matches!(same_name, Err(StoreError::Conflict(_))),
        "{same_name:?}"
    );
    // Renaming another of the owner's workflows to the name is refused as well.
    let renamed = flows
        .save_workflow(
            &save(other.id, alice, &taken.name, DOCUMENT),
            note("workflow.save").append(),
        )
        .await;
    assert!(
        matches!(renamed, Err(StoreError::Conflict(_))),
        "{renamed:?}"
    );
    // Another owner's workflow id is not found, whatever the name.
    let stolen = flows
        .save_workflow(
            &save(taken.id, bob, "mine-now", DOCUMENT),
            note("workflow.save").append(),
        )
        .await;
    assert!(matches!(stolen, Err(StoreError::NotFound)), "{stolen:?}");
    assert_eq!(audit_count(store).await, before, "refusals write nothing");
    assert_eq!(
        flows.get_workflow(taken.id).await.unwrap(),
        Some(taken.clone())
    );
    assert_eq!(flows.list_versions(other.id, 10).await.unwrap().len(), 1);

    // The same name is another owner's to take.
    let (bobs, _) = flows
        .save_workflow(
            &save(Uuid::now_v7(), bob, &taken.name, DOCUMENT),
            note("workflow.save").append(),
        )
        .await
        .unwrap();
    assert_eq!(bobs.owner_id, bob);
    assert_eq!(
        flows.find_workflow(bob, &taken.name).await.unwrap(),
        Some(bobs)
    );
}

pub async fn workflow_caps_are_refused(store: &dyn Store) {
    let owner = user(store).await;
    let flows = store.workflows();
    let before = audit_count(store).await;
    let long_name = "n".repeat(MAX_WORKFLOW_NAME_CHARS + 1);
    let long_description = "d".repeat(MAX_WORKFLOW_DESCRIPTION_CHARS + 1);
    let big_document = "x".repeat(MAX_WORKFLOW_DOCUMENT_BYTES + 1);
    let id = Uuid::now_v7();
    for (what, candidate) in [
        ("an empty name", save(id, owner, "", DOCUMENT)),
        ("a long name", save(id, owner, &long_name, DOCUMENT)),
        (
            "a long description",
            WorkflowSave {
                description: &long_description,
                ..save(id, owner, "ok", DOCUMENT)
            },
        ),
        ("a large document", save(id, owner, "ok", &big_document)),
    ] {
        invalid(
            flows
                .save_workflow(&candidate, note("workflow.save").append())
                .await,
            what,
        );
    }
    assert_eq!(flows.get_workflow(id).await.unwrap(), None);
    assert_eq!(audit_count(store).await, before);

    // At the caps (characters, not bytes, for the texts) it is stored.
    let name = "é".repeat(MAX_WORKFLOW_NAME_CHARS);
    let description = "é".repeat(MAX_WORKFLOW_DESCRIPTION_CHARS);
    let document = "x".repeat(MAX_WORKFLOW_DOCUMENT_BYTES);
    let (row, version) = flows
        .save_workflow(
            &WorkflowSave {
                description: &description,
                ..save(id, owner, &name, &document)
            },
            note("workflow.save").append(),
        )
        .await
        .unwrap();
    assert_eq!((row.name, row.description), (name, description));
    assert_eq!(version.document.len(), MAX_WORKFLOW_DOCUMENT_BYTES);

    // A sealed webhook secret: empty or over its cap refused, at it kept byte for byte.
    for sealed in [vec![], vec![1u8; MAX_WEBHOOK_SECRET_BYTES + 1]] {
        invalid(
            flows
                .set_webhook_secret(
                    id,
                    Some(sealed.as_slice()),
                    at(1),
                    note("workflow.webhook").append(),
                )
                .await,
            "webhook secret",
        );
    }
    let sealed: Vec<u8> = (0..=255u8).cycle().take(MAX_WEBHOOK_SECRET_BYTES).collect();
    assert!(
        flows
            .set_webhook_secret(
                id,
                Some(sealed.as_slice()),
                at(1),
                note("workflow.webhook").append()
            )
            .await
            .unwrap()
    );
    let read = flows.get_workflow(id).await.unwrap().unwrap();
    assert_eq!(read.webhook_secret, Some(sealed));
    assert_eq!(read.updated_at, stored(1));
    assert!(
        flows
            .set_webhook_secret(id, None, at(2), note("workflow.webhook").append())
            .await
            .unwrap()
    );
    assert_eq!(
        flows
            .get_workflow(id)
            .await
            .unwrap()
            .unwrap()
            .webhook_secret,
        None
    );
    assert!(
        !flows
            .set_webhook_secret(
                Uuid::now_v7(),
                None,
                at(2),
                note("workflow.webhook").append()
            )
            .await
            .unwrap()
    );
}

pub async fn workflows_page_newest_first(store: &dyn Store) {
    let flows = store.workflows();
    let alice = user(store).await;
    let bob = user(store).await;
    let mut alices = Vec::new();
    for i in 0..7 {
        let id = Uuid::now_v7();
        let name = format!("w{i}");
        let (row, _) = flows
            .save_workflow(
                &WorkflowSave {
                    // Pairs share a creation time: ties are broken by id.
                    at: at(i / 2),
                    ..save(id, alice, &name, DOCUMENT)
                },
                note("workflow.save").append(),
            )
            .await
            .unwrap();
        alices.push(row);
    }
    let bobs = workflow(store, bob).await;
    alices.sort_by_key(|w| std::cmp::Reverse((w.created_at, w.id)));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(3, cursor.as_deref()).unwrap();
        let got = flows.list_workflows(Some(alice), &page).await.unwrap();
        seen.extend(got.items);
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, alices);
    let everyone = flows
        .list_workflows(None, &PageRequest::first(100).unwrap())
        .await
        .unwrap();
    assert_eq!(everyone.items.len(), 8);
    assert!(everyone.items.contains(&bobs));
}

pub async fn workflow_switches_and_schedules_are_stored(store: &dyn Store) {
    let flows = store.workflows();
    let owner = user(store).await;
    let mut rows = Vec::new();
    for scheduled in [true, true, false] {
        let id = Uuid::now_v7();
        let name = format!("s-{}", id.simple());
        let (row, _) = flows
            .save_workflow(
                &WorkflowSave {
                    scheduled,
                    ..save(id, owner, &name, DOCUMENT)
                },
                note("workflow.save").append(),
            )
            .await
            .unwrap();
        rows.push(row);
    }
    let before = audit_count(store).await;
    assert!(
        flows
            .set_workflow_enabled(rows[1].id, false, at(3), note("workflow.disable").append())
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 1);
    let disabled = flows.get_workflow(rows[1].id).await.unwrap().unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.updated_at, stored(3));
    assert_eq!(
        flows.scheduled_workflows().await.unwrap(),
        vec![rows[0].clone()],
        "enabled and scheduled only"
    );
    assert!(
        flows
            .set_workflow_enabled(rows[1].id, true, at(4), note("workflow.enable").append())
            .await
            .unwrap()
    );
    let ids: Vec<Uuid> = flows
        .scheduled_workflows()
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec![rows[0].id, rows[1].id]);
    let before = audit_count(store).await;
    assert!(
        !flows
            .set_workflow_enabled(
                Uuid::now_v7(),
                true,
                at(4),
                note("workflow.enable").append()
            )
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before, "nothing to audit");
}

pub async fn runs_are_created_once_per_trigger_key(store: &dyn Store) {
    let owner = user(store).await;
    let token = Uuid::now_v7();
    let wf = workflow(store, owner).await;
    let before = audit_count(store).await;
    let parent = insert(store, &new_run(wf.id, owner, 0)).await;
    let run = NewRun {
        principal_token: Some(token),
        trigger: RunTrigger::Webhook,
        trigger_key: Some("sig-1"),
        parent_run: Some(parent.id),
        parent_step: Some("call[2]"),
        ..new_run(wf.id, owner, 1)
    };
    let created = insert(store, &run).await;
    assert_eq!(
        created,
        RunRow {
            id: run.id,
            workflow_id: wf.id,
            version: 1,
            principal_user: owner,
            principal_token: Some(token),
            trigger: RunTrigger::Webhook,
            trigger_key: Some("sig-1".to_owned()),
            status: RunStatus::Queued,
            input: r#"{"in":1}"#.to_owned(),
            output: None,
            error: None,
            parent_run: Some(parent.id),
            parent_step: Some("call[2]".to_owned()),
            lease_node: None,
            lease_expires_at: None,
            wake_at: None,
            signal: 0,
            deadline_at: stored(3_601),
            created_at: stored(1),
            started_at: None,
            finished_at: None,
        }
    );
    assert_eq!(get(store, run.id).await, created);
    assert_eq!(audit_count(store).await, before + 2);

    // The same key again: the first run is answered, nothing written, even at the caps.
    let again = NewRun {
        trigger_key: Some("sig-1"),
        ..new_run(wf.id, owner, 2)
    };
    for caps in [
        ROOMY,
        RunCaps {
            per_user: 0,
            per_workflow: 0,
        },
    ] {
        assert_eq!(
            insert_with(store, &again, caps).await,
            RunInsert::Duplicate(created.clone())
        );
    }
    assert_eq!(store.workflows().get_run(again.id).await.unwrap(), None);
    assert_eq!(
        audit_count(store).await,
        before + 2,
        "no record of a duplicate"
    );

    // Keys are unique within a workflow only.
    let other = workflow(store, owner).await;
    insert(
        store,
        &NewRun {
            trigger_key: Some("sig-1"),
            ..new_run(other.id, owner, 2)
        },
    )
    .await;

    // A workflow or version that is not stored.
    for missing in [
        NewRun {
            version: 2,
            ..new_run(wf.id, owner, 3)
        },
        new_run(Uuid::now_v7(), owner, 3),
    ] {
        let result = store
            .workflows()
            .insert_run(&missing, ROOMY, note("workflow.run.start").append())
            .await;
        assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    }

    // Caps on what the run carries.
    let long_key = "k".repeat(MAX_TRIGGER_KEY_CHARS + 1);
    let big_input = "x".repeat(MAX_WORKFLOW_VALUE_BYTES + 1);
    let long_step = "s".repeat(MAX_STEP_KEY_CHARS + 1);
    for (what, bad) in [
        (
            "a long trigger key",
            NewRun {
                trigger_key: Some(&long_key),
                ..new_run(wf.id, owner, 4)
            },
        ),
        (
            "an empty trigger key",
            NewRun {
                trigger_key: Some(""),
                ..new_run(wf.id, owner, 4)
            },
        ),
        (
            "a large input",
            NewRun {
                input: &big_input,
                ..new_run(wf.id, owner, 4)
            },
        ),
        (
            "a long parent step",
            NewRun {
                parent_run: Some(parent.id),
                parent_step: Some(&long_step),
                ..new_run(wf.id, owner, 4)
            },
        ),
        (
            "a parent without its step",
            NewRun {
                parent_run: Some(parent.id),
                ..new_run(wf.id, owner, 4)
            },
        ),
        (
            "a long schedule trigger id",
            NewRun {
                schedule: Some((&long_key, at(4))),
                ..new_run(wf.id, owner, 4)
            },
        ),
    ] {
        invalid(
            store
                .workflows()
                .insert_run(&bad, ROOMY, note("workflow.run.start").append())
                .await,
            what,
        );
    }
}

pub async fn run_caps_count_active_runs_only(store: &dyn Store) {
    let owner = user(store).await;
    let other_user = user(store).await;
    let first = workflow(store, owner).await;
    let second = workflow(store, owner).await;
    let caps = RunCaps {
        per_user: 2,
        per_workflow: 2,
    };
    let a = insert(store, &new_run(first.id, owner, 0)).await;
    insert(store, &new_run(second.id, owner, 1)).await;
    let before = audit_count(store).await;
    // The user's two runs are in two workflows: the user's cap is reached, no workflow's.
    let third = new_run(first.id, owner, 3);
    assert_eq!(insert_with(store, &third, caps).await, RunInsert::UserAtCap);
    // Another user's run in the first workflow fills it.
    assert!(matches!(
        insert_with(store, &new_run(first.id, other_user, 2), caps).await,
        RunInsert::Created(_)
    ));
    let before_cap = audit_count(store).await;
    assert_eq!(before_cap, before + 1);
    assert_eq!(
        insert_with(store, &new_run(first.id, other_user, 3), caps).await,
        RunInsert::WorkflowAtCap
    );
    assert_eq!(audit_count(store).await, before_cap, "no record at a cap");
    assert_eq!(store.workflows().get_run(third.id).await.unwrap(), None);

    // A run that ended no longer counts, for either cap.
    assert!(cancel(store, a.id, 5).await);
    assert!(matches!(
        insert_with(store, &third, caps).await,
        RunInsert::Created(_)
    ));
    // Running and waiting runs count.
    let token = Uuid::now_v7();
    let running = claim(store, token, 10).await.unwrap();
    assert!(
        store
            .workflows()
            .park_run(running.id, token, running.signal, Some(at(1_000)))
            .await
            .unwrap()
    );
    let other_users = claim(store, Uuid::now_v7(), 11).await.unwrap();
    assert_eq!(
        (other_users.principal_user, other_users.status),
        (other_user, RunStatus::Running)
    );
    assert_eq!(
        insert_with(store, &new_run(second.id, owner, 12), caps).await,
        RunInsert::UserAtCap,
        "a waiting and a queued run"
    );
    assert_eq!(
        insert_with(store, &new_run(first.id, other_user, 12), caps).await,
        RunInsert::WorkflowAtCap,
        "a running and a queued run"
    );
}

pub async fn run_caps_hold_under_concurrency(store: &dyn Store) {
    let owner = user(store).await;
    let mut workflows = Vec::new();
    for _ in 0..4 {
        workflows.push(workflow(store, owner).await);
    }
    // Eight inserts at once, two per workflow: the user's cap of three holds across workflows.
    let per_user = RunCaps {
        per_user: 3,
        per_workflow: 100,
    };
    let runs: Vec<NewRun<'static>> = (0..8)
        .map(|i| new_run(workflows[i % 4].id, owner, 0))
        .collect();
    let results = join_all(runs.iter().map(|run| insert_with(store, run, per_user))).await;
    let created = results
        .iter()
        .filter(|r| matches!(r, RunInsert::Created(_)))
        .count();
    assert_eq!(created, 3, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, RunInsert::Created(_) | RunInsert::UserAtCap))
    );

    // And one workflow's cap across principals.
    let wf = workflow(store, owner).await;
    let per_workflow = RunCaps {
        per_user: 100,
        per_workflow: 2,
    };
    let mut principals = Vec::new();
    for _ in 0..6 {
        principals.push(user(store).await);
    }
    let runs: Vec<NewRun<'static>> = principals.iter().map(|p| new_run(wf.id, *p, 0)).collect();
    let results = join_all(runs.iter().map(|run| insert_with(store, run, per_workflow))).await;
    let created = results
        .iter()
        .filter(|r| matches!(r, RunInsert::Created(_)))
        .count();
    assert_eq!(created, 2, "{results:?}");

    // One trigger key, eight inserts at once: one run, the others answered with it.
    let keyed: Vec<NewRun<'static>> = (0..8)
        .map(|_| NewRun {
            trigger_key: Some("once"),
            ..new_run(wf.id, owner, 1)
        })
        .collect();
    let results = join_all(keyed.iter().map(|run| insert_with(store, run, ROOMY))).await;
    let created: Vec<&RunRow> = results
        .iter()
        .filter_map(|r| match r {
            RunInsert::Created(row) => Some(row),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{results:?}");
    for result in &results {
        match result {
            RunInsert::Created(_) => {}
            RunInsert::Duplicate(row) => assert_eq!(row, created[0]),
            other => panic!("{other:?}"),
        }
    }
}

pub async fn runs_page_newest_first_by_filter(store: &dyn Store) {
    let alice = user(store).await;
    let bob = user(store).await;
    let alices = workflow(store, alice).await;
    let bobs = workflow(store, bob).await;
    let mut mine = Vec::new();
    for i in 0..9 {
        let trigger = if i % 3 == 0 {
            RunTrigger::Schedule
        } else {
            RunTrigger::Manual
        };
        let run = insert(
            store,
            &NewRun {
                trigger,
                ..new_run(alices.id, bob, i / 2)
            },
        )
        .await;
        mine.push(run);
    }
    let theirs = insert(store, &new_run(bobs.id, alice, 0)).await;
    mine.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    let flows = store.workflows();

    // The owner of the workflow, not the principal, is whose runs they are.
    let by_owner = RunFilter {
        owner_id: Some(alice),
        ..RunFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(4, cursor.as_deref()).unwrap();
        let got = flows.list_runs(&by_owner, &page).await.unwrap();
        seen.extend(got.items);
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, mine);

    let listed = |filter: RunFilter| run_ids(store, filter);
    assert_eq!(listed(RunFilter::default()).await.len(), 10);
    assert_eq!(
        listed(RunFilter {
            workflow_id: Some(bobs.id),
            ..RunFilter::default()
        })
        .await,
        vec![theirs.id]
    );
    let scheduled: Vec<Uuid> = mine
        .iter()
        .filter(|r| r.trigger == RunTrigger::Schedule)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        listed(RunFilter {
            owner_id: Some(alice),
            trigger: Some(RunTrigger::Schedule),
            ..RunFilter::default()
        })
        .await,
        scheduled
    );
    assert!(cancel(store, theirs.id, 1).await);
    assert_eq!(
        listed(RunFilter {
            status: Some(RunStatus::Cancelled),
            ..RunFilter::default()
        })
        .await,
        vec![theirs.id]
    );
    assert!(
        listed(RunFilter {
            owner_id: Some(bob),
            status: Some(RunStatus::Queued),
            ..RunFilter::default()
        })
        .await
        .is_empty()
    );
}

/// The ids of the runs `filter` lists, newest first.
async fn run_ids(store: &dyn Store, filter: RunFilter) -> Vec<Uuid> {
    let page = store
        .workflows()
        .list_runs(&filter, &PageRequest::first(100).unwrap())
        .await
        .unwrap();
    page.items.iter().map(|r| r.id).collect()
}

pub async fn a_claim_takes_the_oldest_run_needing_a_replica(store: &dyn Store) {
    let owner = user(store).await;
    let wf = workflow(store, owner).await;
    let flows = store.workflows();
    // Created in this order: one to wait until 100, one to hold until 60, one queued.
    let waiting = insert(store, &new_run(wf.id, owner, 0)).await;
    let held = insert(store, &new_run(wf.id, owner, 1)).await;
    let queued = insert(store, &new_run(wf.id, owner, 2)).await;

    let a = Uuid::now_v7();
    let first = flows
        .claim_run("node-a", a, at(10), at(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, waiting.id, "the oldest first");
    assert_eq!(
        (first.status, first.lease_node.as_deref()),
        (RunStatus::Running, Some("node-a"))
    );
    assert_eq!(first.lease_expires_at, Some(stored(40)));
    assert_eq!(first.started_at, Some(stored(10)));
    assert!(
        flows
            .park_run(waiting.id, a, 0, Some(at(100)))
            .await
            .unwrap()
    );
    let parked = get(store, waiting.id).await;
    assert_eq!(
        (parked.status, parked.wake_at, parked.lease_node),
        (RunStatus::Waiting, Some(stored(100)), None)
    );

    let b = Uuid::now_v7();
    let second = flows
        .claim_run("node-b", b, at(30), at(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, held.id);
    let third = claim(store, Uuid::now_v7(), 31).await.unwrap();
    assert_eq!(third.id, queued.id);
    assert_eq!(third.lease_node.as_deref(), Some("node-a"));
    assert!(
        !flows.park_run(queued.id, b, 0, None).await.unwrap(),
        "another token does not park it"
    );

    // Nothing is due: the waiting run's time has not come, the leases run.
    assert_eq!(claim(store, Uuid::now_v7(), 40).await, None);
    // A lease is held up to its last instant.
    let last_instant = flows
        .claim_run("node-c", Uuid::now_v7(), stored(60), at(90))
        .await
        .unwrap();
    assert_eq!(last_instant, None);

    // After the held lease ended: that run (not the waiting one, due only at 100).
    let c_token = Uuid::now_v7();
    let taken_over = flows
        .claim_run("node-c", c_token, at(61), at(91))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken_over.id, held.id);
    assert_eq!(taken_over.lease_node.as_deref(), Some("node-c"));
    assert_eq!(
        taken_over.started_at,
        Some(stored(30)),
        "the first start is kept"
    );
    // The waiting run is due at its time, and its wake time is cleared.
    let d = Uuid::now_v7();
    let woken = claim(store, d, 100).await.unwrap();
    assert_eq!(woken.id, waiting.id);
    assert_eq!((woken.wake_at, woken.started_at), (None, Some(stored(10))));
    // A waiting run without a wake time waits for a signal only.
    assert!(flows.park_run(woken.id, d, 0, None).await.unwrap());
    assert_eq!(
        claim(store, Uuid::now_v7(), 1_000_000).await.unwrap().id,
        held.id
    );
    assert_eq!(
        claim(store, Uuid::now_v7(), 1_000_000).await.unwrap().id,
        queued.id
    );
    assert_eq!(claim(store, Uuid::now_v7(), 1_000_000).await, None);

    invalid(
        flows.claim_run("", Uuid::now_v7(), at(0), at(1)).await,
        "an empty node name",
    );
}

pub async fn concurrent_claims_take_distinct_runs(store: &dyn Store) {
    let owner = user(store).await;
    let wf = workflow(store, owner).await;
    let mut created = HashSet::new();
    for i in 0..5 {
        created.insert(insert(store, &new_run(wf.id, owner, i)).await.id);
    }
    let claims = (0..8).map(|_| {
        store
            .workflows()
            .claim_run("node-x", Uuid::now_v7(), at(10), at(40))
    });
    let results = join_all(claims).await;
    let claimed: Vec<Uuid> = results
        .into_iter()
        .filter_map(|r| r.unwrap().map(|run| run.id))
        .collect();
    assert_eq!(claimed.len(), 5, "{claimed:?}");
    assert_eq!(
        claimed.iter().copied().collect::<HashSet<_>>(),
        created,
        "each run claimed once"
    );
    assert_eq!(claim(store, Uuid::now_v7(), 11).await, None);
}

pub async fn a_lost_lease_fences_its_executor(store: &dyn Store) {
    let run = a_run(store, 0).await;
    let flows = store.workflows();
    let old = Uuid::now_v7();
    assert_eq!(claim(store, old, 0).await.unwrap().id, run.id);
    assert!(start_step(store, run.id, old, "a", 1).await);
    assert!(flows.renew_run(run.id, old, at(40)).await.unwrap());
    assert_eq!(get(store, run.id).await.lease_expires_at, Some(stored(40)));

    // The lease ran out; another replica took the run over.
    let new = Uuid::now_v7();
    let taken = flows
        .claim_run("node-b", new, at(41), at(71))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, run.id);
    let steps_before = flows.steps(run.id).await.unwrap();
    let audit_before = audit_count(store).await;

    assert!(!flows.renew_run(run.id, old, at(100)).await.unwrap());
    assert!(!start_step(store, run.id, old, "b", 42).await);
    assert!(
        !store
            .workflows()
            .start_step(run.id, old, &start("a", 2, 42))
            .await
            .unwrap()
    );
    assert!(
        !end_step(
            store,
            run.id,
            old,
            &end("a", StepStatus::Succeeded, Some(42))
        )
        .await
    );
    assert!(
        !flows
            .park_run(run.id, old, taken.signal, None)
            .await
            .unwrap()
    );
    assert!(!finish(store, run.id, old, &RunEnd::Succeeded { output: "{}" }, 42).await);
    assert!(
        !flows
            .note_step(run.id, old, "a", r#"{"progress":["stale"]}"#)
            .await
            .unwrap()
    );
    assert_eq!(flows.steps(run.id).await.unwrap(), steps_before);
    assert_eq!(get(store, run.id).await, taken, "nothing written");
    assert_eq!(audit_count(store).await, audit_before);

    // The new holder goes on: the step's next attempt, its end, the run's end.
    assert!(
        flows
            .start_step(run.id, new, &start("a", 2, 43))
            .await
            .unwrap()
    );
    let step = &flows.steps(run.id).await.unwrap()[0];
    assert_eq!(
        (step.attempt, step.status, step.started_at),
        (2, StepStatus::Running, stored(43))
    );
    // While it runs, what it reports is its output; a step not running takes no note.
    assert!(
        flows
            .note_step(run.id, new, "a", r#"{"progress":["half way"]}"#)
            .await
            .unwrap()
    );
    let step = &flows.steps(run.id).await.unwrap()[0];
    assert_eq!(step.output.as_deref(), Some(r#"{"progress":["half way"]}"#));
    assert!(!flows.note_step(run.id, new, "zz", "{}").await.unwrap());
    let mut ended = end("a", StepStatus::Succeeded, Some(44));
    ended.branch = Some("true");
    assert!(end_step(store, run.id, new, &ended).await);
    let step = &flows.steps(run.id).await.unwrap()[0];
    assert_eq!(
        (
            step.status,
            step.output.as_deref(),
            step.branch.as_deref(),
            step.finished_at
        ),
        (
            StepStatus::Succeeded,
            Some(r#"{"out":1}"#),
            Some("true"),
            Some(stored(44))
        )
    );
    // A step never started is not ended.
    assert!(
        !end_step(
            store,
            run.id,
            new,
            &end("zz", StepStatus::Succeeded, Some(44))
        )
        .await
    );
    assert!(
        finish(
            store,
            run.id,
            new,
            &RunEnd::Succeeded {
                output: r#"{"ok":true}"#
            },
            45
        )
        .await
    );
    assert_eq!(audit_count(store).await, audit_before + 1);
    let done = get(store, run.id).await;
    assert_eq!(
        (
            done.status,
            done.output.as_deref(),
            done.finished_at,
            done.lease_node
        ),
        (
            RunStatus::Succeeded,
            Some(r#"{"ok":true}"#),
            Some(stored(45)),
            None
        )
    );
    // Once ended, the holder's token holds nothing either.
    assert!(!flows.renew_run(run.id, new, at(100)).await.unwrap());
    assert!(!finish(store, run.id, new, &RunEnd::Failed { error: "late" }, 46).await);
}

pub async fn step_values_are_checked(store: &dyn Store) {
    let run = a_run(store, 0).await;
    let token = Uuid::now_v7();
    claim(store, token, 0).await.unwrap();
    let flows = store.workflows();
    let long_key = "k".repeat(MAX_STEP_KEY_CHARS + 1);
    let big = "x".repeat(MAX_WORKFLOW_VALUE_BYTES + 1);
    let long_error = "e".repeat(MAX_WORKFLOW_ERROR_CHARS + 1);
    for (what, bad) in [
        ("an empty key", start("", 1, 1)),
        ("a long key", start(&long_key, 1, 1)),
        ("attempt 0", start("a", 0, 1)),
        (
            "a large input",
            StepStart {
                input: Some(&big),
                ..start("a", 1, 1)
            },
        ),
    ] {
        invalid(flows.start_step(run.id, token, &bad).await, what);
    }
    assert!(start_step(store, run.id, token, "a", 1).await);
    for (what, bad) in [
        ("running", end("a", StepStatus::Running, None)),
        (
            "waiting with an end",
            end("a", StepStatus::Waiting, Some(2)),
        ),
        ("ended without one", end("a", StepStatus::Succeeded, None)),
        (
            "a large output",
            StepEnd {
                output: Some(&big),
                ..end("a", StepStatus::Succeeded, Some(2))
            },
        ),
        (
            "a long error",
            StepEnd {
                error: Some(&long_error),
                ..end("a", StepStatus::Failed, Some(2))
            },
        ),
    ] {
        invalid(flows.end_step(run.id, token, &bad).await, what);
    }
    invalid(
        flows
            .finish_run(
                run.id,
                token,
                &RunEnd::Failed { error: &long_error },
                at(3),
                note("workflow.run.end").append(),
            )
            .await,
        "a long run error",
    );
    invalid(
        flows
            .finish_run(
                run.id,
                token,
                &RunEnd::Succeeded { output: &big },
                at(3),
                note("workflow.run.end").append(),
            )
            .await,
        "a large run output",
    );
    assert_eq!(
        journal(store, run.id).await,
        vec![("a".to_owned(), StepStatus::Running)]
    );
    // At the caps it is kept.
    let error = "é".repeat(MAX_WORKFLOW_ERROR_CHARS);
    let output = "x".repeat(MAX_WORKFLOW_VALUE_BYTES);
    assert!(
        end_step(
            store,
            run.id,
            token,
            &StepEnd {
                output: Some(&output),
                error: Some(&error),
                ..end("a", StepStatus::Failed, Some(2))
            }
        )
        .await
    );
    let step = &flows.steps(run.id).await.unwrap()[0];
    assert_eq!(step.error.as_deref(), Some(error.as_str()));
    assert_eq!(step.output.as_ref().map(String::len), Some(output.len()));
}

pub async fn a_park_after_a_signal_is_refused(store: &dyn Store) {
    let run = a_run(store, 0).await;
    let token = Uuid::now_v7();
    let claimed = claim(store, token, 0).await.unwrap();
    assert_eq!(claimed.signal, 0);
    assert!(start_step(store, run.id, token, "approve", 1).await);
    assert!(end_step(store, run.id, token, &waiting_step("approve")).await);
    // The decision arrives while the executor still runs the run.
    let decision = StepDecision {
        run_id: run.id,
        step_key: "approve",
        status: StepStatus::Succeeded,
        output: Some(r#"{"approved":true}"#),
        branch: Some("approved"),
        error: None,
        at: at(5),
    };
    assert!(
        store
            .workflows()
            .decide_step(&decision, note("workflow.decide").append())
            .await
            .unwrap()
    );
    let signalled = get(store, run.id).await;
    assert_eq!(
        (signalled.status, signalled.signal),
        (RunStatus::Running, 1),
        "a running run stays with its executor"
    );
    // The executor read the journal before the decision: its park is refused.
    let flows = store.workflows();
    assert!(!flows.park_run(run.id, token, 0, None).await.unwrap());
    assert_eq!(get(store, run.id).await, signalled);
    assert!(
        flows
            .park_run(run.id, token, 1, Some(at(50)))
            .await
            .unwrap()
    );
    let parked = get(store, run.id).await;
    assert_eq!(
        (
            parked.status,
            parked.wake_at,
            parked.lease_node,
            parked.lease_expires_at
        ),
        (RunStatus::Waiting, Some(stored(50)), None, None)
    );
    assert!(
        !flows.park_run(run.id, token, 1, None).await.unwrap(),
        "parked: the token holds nothing"
    );
}

pub async fn a_decision_is_taken_once_and_queues_the_run(store: &dyn Store) {
    let run = a_run(store, 0).await;
    let token = Uuid::now_v7();
    claim(store, token, 0).await.unwrap();
    assert!(start_step(store, run.id, token, "approve", 1).await);
    assert!(start_step(store, run.id, token, "other", 1).await);
    assert!(end_step(store, run.id, token, &waiting_step("approve")).await);
    let flows = store.workflows();
    assert!(flows.park_run(run.id, token, 0, None).await.unwrap());

    let decision = StepDecision {
        run_id: run.id,
        step_key: "approve",
        status: StepStatus::Failed,
        output: None,
        branch: Some("rejected"),
        error: Some("rejected by the reviewer"),
        at: at(5),
    };
    let before = audit_count(store).await;
    // Not waiting: a running step, a step not in the journal.
    for step_key in ["other", "missing"] {
        assert!(
            !flows
                .decide_step(
                    &StepDecision {
                        step_key,
                        ..decision.clone()
                    },
                    note("workflow.decide").append()
                )
                .await
                .unwrap()
        );
    }
    invalid(
        flows
            .decide_step(
                &StepDecision {
                    status: StepStatus::Skipped,
                    ..decision.clone()
                },
                note("workflow.decide").append(),
            )
            .await,
        "a decision that skips",
    );
    assert_eq!(audit_count(store).await, before);

    assert!(
        flows
            .decide_step(&decision, note("workflow.decide").append())
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 1);
    let step = flows
        .steps(run.id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.step_key == "approve")
        .unwrap();
    assert_eq!(
        (
            step.status,
            step.branch.as_deref(),
            step.error.as_deref(),
            step.finished_at
        ),
        (
            StepStatus::Failed,
            Some("rejected"),
            Some("rejected by the reviewer"),
            Some(stored(5))
        )
    );
    let queued = get(store, run.id).await;
    assert_eq!((queued.status, queued.signal), (RunStatus::Queued, 1));

    // Taken once: a second decision, either way, changes nothing.
    let second = StepDecision {
        status: StepStatus::Succeeded,
        error: None,
        branch: Some("approved"),
        ..decision.clone()
    };
    assert!(
        !flows
            .decide_step(&second, note("workflow.decide").append())
            .await
            .unwrap()
    );
    assert_eq!(get(store, run.id).await, queued);
    assert_eq!(audit_count(store).await, before + 1);

    // A waiting step of a run that ended is not decided.
    let ended = a_run(store, 10).await;
    let t = Uuid::now_v7();
    assert_eq!(claim(store, t, 20).await.unwrap().id, run.id);
    assert_eq!(claim(store, t, 20).await.unwrap().id, ended.id);
    assert!(start_step(store, ended.id, t, "approve", 21).await);
    assert!(end_step(store, ended.id, t, &waiting_step("approve")).await);
    assert!(
        finish(
            store,
            ended.id,
            t,
            &RunEnd::Failed { error: "deadline" },
            22
        )
        .await
    );
    assert!(
        !flows
            .decide_step(
                &StepDecision {
                    run_id: ended.id,
                    ..second
                },
                note("workflow.decide").append()
            )
            .await
            .unwrap()
    );
}

pub async fn waiting_steps_of_active_runs_are_listed_newest_first(store: &dyn Store) {
    let parked = a_run(store, 0).await;
    let running = a_run(store, 10).await;
    let ended = a_run(store, 20).await;
    let (tp, tr, te) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(claim(store, tp, 30).await.unwrap().id, parked.id);
    assert_eq!(claim(store, tr, 30).await.unwrap().id, running.id);
    assert_eq!(claim(store, te, 30).await.unwrap().id, ended.id);
    assert!(start_step(store, parked.id, tp, "first", 31).await);
    assert!(end_step(store, parked.id, tp, &waiting_step("first")).await);
    assert!(start_step(store, parked.id, tp, "second", 32).await);
    assert!(end_step(store, parked.id, tp, &waiting_step("second")).await);
    // Running and succeeded steps are not waiting.
    assert!(start_step(store, parked.id, tp, "busy", 33).await);
    assert!(start_step(store, parked.id, tp, "done", 33).await);
    let done = end("done", StepStatus::Succeeded, Some(34));
    assert!(end_step(store, parked.id, tp, &done).await);
    let flows = store.workflows();
    assert!(flows.park_run(parked.id, tp, 0, None).await.unwrap());
    // A run still running (its executor has not parked it yet).
    assert!(start_step(store, running.id, tr, "ask", 35).await);
    assert!(end_step(store, running.id, tr, &waiting_step("ask")).await);
    // A run that ended with a step left waiting.
    assert!(start_step(store, ended.id, te, "late", 36).await);
    assert!(end_step(store, ended.id, te, &waiting_step("late")).await);
    assert!(
        finish(
            store,
            ended.id,
            te,
            &RunEnd::Failed { error: "deadline" },
            37
        )
        .await
    );

    let listed = |limit| async move {
        flows
            .waiting_steps(limit)
            .await
            .unwrap()
            .into_iter()
            .map(|(run, step)| {
                assert_eq!(run.id, step.run_id);
                assert_eq!(step.status, StepStatus::Waiting);
                (run.id, step.step_key)
            })
            .collect::<Vec<_>>()
    };
    let all = vec![
        (running.id, "ask".to_owned()),
        (parked.id, "second".to_owned()),
        (parked.id, "first".to_owned()),
    ];
    assert_eq!(listed(100).await, all);
    assert_eq!(listed(2).await, all[..2].to_vec());
    assert_eq!(listed(0).await, vec![]);
    let (run, step) = flows.waiting_steps(1).await.unwrap().remove(0);
    assert_eq!(run, get(store, running.id).await);
    assert_eq!(
        (step.node_id.as_str(), step.started_at),
        ("ask", stored(35))
    );

    // A decided step is no longer waiting; its run, queued again, is listed once it waits.
    let decision = StepDecision {
        run_id: running.id,
        step_key: "ask",
        status: StepStatus::Succeeded,
        output: Some("{}"),
        branch: Some("approved"),
        error: None,
        at: at(40),
    };
    assert!(
        flows
            .decide_step(&decision, note("workflow.decide").append())
            .await
            .unwrap()
    );
    assert_eq!(listed(100).await, all[1..].to_vec());
    assert!(cancel(store, parked.id, 41).await);
    assert_eq!(listed(100).await, vec![]);
}

/// A parent run parked on its step `step`, waiting for a sub-workflow's run; answers the
/// parent and the child (queued).
async fn parent_and_child(store: &dyn Store, step: &str, seconds: i64) -> (RunRow, RunRow) {
    let owner = user(store).await;
    let wf = workflow(store, owner).await;
    let parent = insert(store, &new_run(wf.id, owner, seconds)).await;
    let token = Uuid::now_v7();
    assert_eq!(claim(store, token, seconds).await.unwrap().id, parent.id);
    assert!(start_step(store, parent.id, token, step, seconds).await);
    assert!(end_step(store, parent.id, token, &waiting_step(step)).await);
    let child = insert(
        store,
        &NewRun {
            trigger: RunTrigger::Workflow,
            trigger_key: Some(step),
            parent_run: Some(parent.id),
            parent_step: Some(step),
            ..new_run(wf.id, owner, seconds + 1)
        },
    )
    .await;
    assert!(
        store
            .workflows()
            .park_run(parent.id, token, 0, None)
            .await
            .unwrap()
    );
    (get(store, parent.id).await, child)
}

pub async fn a_sub_workflow_end_reaches_its_parent(store: &dyn Store) {
    let (parent, child) = parent_and_child(store, "sub", 0).await;
    assert_eq!(parent.status, RunStatus::Waiting);
    let token = Uuid::now_v7();
    // The parent waits for a signal only: the child is the one to claim.
    assert_eq!(claim(store, token, 10).await.unwrap().id, child.id);
    let before = audit_count(store).await;
    assert!(
        finish(
            store,
            child.id,
            token,
            &RunEnd::Succeeded {
                output: r#"{"x":1}"#
            },
            11
        )
        .await
    );
    assert_eq!(audit_count(store).await, before + 1);
    let step = &store.workflows().steps(parent.id).await.unwrap()[0];
    assert_eq!(
        (step.status, step.output.as_deref(), step.finished_at),
        (StepStatus::Succeeded, Some(r#"{"x":1}"#), Some(stored(11)))
    );
    let after = get(store, parent.id).await;
    assert_eq!(
        (after.status, after.signal, after.lease_node),
        (RunStatus::Queued, 1, None)
    );
    assert!(cancel(store, parent.id, 12).await, "out of the next claims");

    // A failed child fails the step with its error.
    let (parent, child) = parent_and_child(store, "sub", 20).await;
    let t = Uuid::now_v7();
    assert_eq!(claim(store, t, 30).await.unwrap().id, child.id);
    assert!(
        finish(
            store,
            child.id,
            t,
            &RunEnd::Failed {
                error: "child broke"
            },
            31
        )
        .await
    );
    let step = &store.workflows().steps(parent.id).await.unwrap()[0];
    assert_eq!(
        (step.status, step.error.as_deref(), step.output.as_deref()),
        (StepStatus::Failed, Some("child broke"), None)
    );
    assert_eq!(get(store, parent.id).await.status, RunStatus::Queued);
}

pub async fn a_sub_workflow_cancelled_alone_fails_its_parent_step(store: &dyn Store) {
    let (parent, child) = parent_and_child(store, "sub", 0).await;
    assert!(cancel(store, child.id, 5).await);
    let step = &store.workflows().steps(parent.id).await.unwrap()[0];
    assert_eq!(step.status, StepStatus::Failed);
    assert!(step.error.is_some());
    let after = get(store, parent.id).await;
    assert_eq!((after.status, after.signal), (RunStatus::Queued, 1));
}

pub async fn a_cancellation_reaches_sub_workflows_and_fences(store: &dyn Store) {
    let owner = user(store).await;
    let wf = workflow(store, owner).await;
    let root = insert(store, &new_run(wf.id, owner, 0)).await;
    let a = Uuid::now_v7();
    assert_eq!(claim(store, a, 0).await.unwrap().id, root.id);
    assert!(start_step(store, root.id, a, "done", 1).await);
    assert!(
        end_step(
            store,
            root.id,
            a,
            &end("done", StepStatus::Succeeded, Some(1))
        )
        .await
    );
    assert!(start_step(store, root.id, a, "sub", 1).await);
    let child_of = |parent: Uuid, seconds: i64| NewRun {
        trigger: RunTrigger::Workflow,
        parent_run: Some(parent),
        parent_step: Some("sub"),
        ..new_run(wf.id, owner, seconds)
    };
    let child = insert(store, &child_of(root.id, 1)).await;
    let grandchild = insert(store, &child_of(child.id, 2)).await;
    let unrelated = insert(store, &new_run(wf.id, owner, 3)).await;
    let b = Uuid::now_v7();
    assert_eq!(claim(store, b, 2).await.unwrap().id, child.id);
    assert!(start_step(store, child.id, b, "sub", 2).await);
    assert!(end_step(store, child.id, b, &waiting_step("sub")).await);

    let before = audit_count(store).await;
    assert!(cancel(store, root.id, 10).await);
    assert_eq!(audit_count(store).await, before + 1);
    for (id, signal) in [(root.id, 1), (child.id, 1), (grandchild.id, 1)] {
        let run = get(store, id).await;
        assert_eq!(
            (
                run.status,
                run.finished_at,
                run.signal,
                run.lease_node,
                run.lease_expires_at
            ),
            (RunStatus::Cancelled, Some(stored(10)), signal, None, None),
            "run {id}"
        );
    }
    assert_eq!(get(store, unrelated.id).await.status, RunStatus::Queued);
    assert_eq!(
        journal(store, root.id).await,
        vec![
            ("done".to_owned(), StepStatus::Succeeded),
            ("sub".to_owned(), StepStatus::Cancelled)
        ]
    );
    let cancelled_step = &store.workflows().steps(child.id).await.unwrap()[0];
    assert_eq!(
        (cancelled_step.status, cancelled_step.finished_at),
        (StepStatus::Cancelled, Some(stored(10)))
    );

    // The executors' next writes fail and change nothing.
    assert!(!start_step(store, root.id, a, "next", 11).await);
    assert!(
        !end_step(
            store,
            child.id,
            b,
            &end("sub", StepStatus::Succeeded, Some(11))
        )
        .await
    );
    assert!(
        !store
            .workflows()
            .renew_run(root.id, a, at(60))
            .await
            .unwrap()
    );
    assert!(!finish(store, child.id, b, &RunEnd::Succeeded { output: "{}" }, 11).await);
    assert_eq!(get(store, child.id).await.status, RunStatus::Cancelled);
    assert_eq!(journal(store, root.id).await.len(), 2);

    // Only once; a run that is gone is not cancelled either.
    let before = audit_count(store).await;
    assert!(!cancel(store, root.id, 12).await);
    assert!(!cancel(store, grandchild.id, 12).await);
    assert!(!cancel(store, Uuid::now_v7(), 12).await);
    assert_eq!(audit_count(store).await, before);
    // The cancelled runs are not claimed.
    assert_eq!(
        claim(store, Uuid::now_v7(), 100).await.unwrap().id,
        unrelated.id
    );
    assert_eq!(claim(store, Uuid::now_v7(), 100).await, None);
}

pub async fn a_retry_keeps_what_succeeded(store: &dyn Store) {
    let run = a_run(store, 0).await;
    let flows = store.workflows();
    let t = Uuid::now_v7();
    claim(store, t, 0).await.unwrap();
    for key in ["a", "b", "c", "d", "e"] {
        assert!(start_step(store, run.id, t, key, 1).await);
    }
    assert!(end_step(store, run.id, t, &end("a", StepStatus::Succeeded, Some(2))).await);
    assert!(end_step(store, run.id, t, &end("b", StepStatus::Skipped, Some(2))).await);
    assert!(end_step(store, run.id, t, &end("c", StepStatus::Failed, Some(2))).await);
    assert!(end_step(store, run.id, t, &waiting_step("d")).await);
    assert!(finish(store, run.id, t, &RunEnd::Failed { error: "c failed" }, 3).await);

    let before = audit_count(store).await;
    assert!(
        flows
            .retry_run(
                run.id,
                at(7_200),
                at(4),
                note("workflow.run.retry").append()
            )
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 1);
    assert_eq!(
        journal(store, run.id).await,
        vec![
            ("a".to_owned(), StepStatus::Succeeded),
            ("b".to_owned(), StepStatus::Skipped)
        ]
    );
    let again = get(store, run.id).await;
    assert_eq!(
        (
            again.status,
            again.error,
            again.finished_at,
            again.deadline_at,
            again.started_at
        ),
        (
            RunStatus::Queued,
            None,
            None,
            stored(7_200),
            Some(stored(0))
        )
    );
    // Only a failed or cancelled run: not a queued one, not a succeeded one.
    assert!(
        !flows
            .retry_run(
                run.id,
                at(7_200),
                at(5),
                note("workflow.run.retry").append()
            )
            .await
            .unwrap()
    );
    let t2 = Uuid::now_v7();
    assert_eq!(claim(store, t2, 10).await.unwrap().id, run.id);
    assert!(finish(store, run.id, t2, &RunEnd::Succeeded { output: "{}" }, 11).await);
    assert!(
        !flows
            .retry_run(
                run.id,
                at(7_200),
                at(12),
                note("workflow.run.retry").append()
            )
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 2);

    // A cancelled run is retried too, its cancelled steps gone.
    let other = a_run(store, 20).await;
    let t3 = Uuid::now_v7();
    assert_eq!(claim(store, t3, 20).await.unwrap().id, other.id);
    assert!(start_step(store, other.id, t3, "x", 21).await);
    assert!(cancel(store, other.id, 22).await);
    assert!(
        flows
            .retry_run(
                other.id,
                at(9_000),
                at(23),
                note("workflow.run.retry").append()
            )
            .await
            .unwrap()
    );
    assert!(journal(store, other.id).await.is_empty());
    // A refused audit record undoes the retry.
    assert!(cancel(store, other.id, 24).await);
    refused(
        flows
            .retry_run(
                other.id,
                at(9_000),
                at(25),
                broken("workflow.run.retry").append(),
            )
            .await,
        "retry",
    );
    assert_eq!(get(store, other.id).await.status, RunStatus::Cancelled);
}

pub async fn schedule_fires_are_recorded_with_their_runs(store: &dyn Store) {
    let owner = user(store).await;
    let wf = workflow(store, owner).await;
    let flows = store.workflows();
    assert!(flows.last_fires(wf.id).await.unwrap().is_empty());
    let fire = |key: &'static str, trigger: &'static str, seconds: i64| NewRun {
        trigger: RunTrigger::Schedule,
        trigger_key: Some(key),
        schedule: Some((trigger, at(seconds))),
        ..new_run(wf.id, owner, seconds)
    };
    insert(store, &fire("nightly@100", "nightly", 100)).await;
    insert(store, &fire("hourly@50", "hourly", 50)).await;
    let fires = |rows: &[(&str, i64)]| {
        rows.iter()
            .map(|(trigger, seconds)| ScheduleFire {
                workflow_id: wf.id,
                trigger_id: (*trigger).to_owned(),
                fired_at: stored(*seconds),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        flows.last_fires(wf.id).await.unwrap(),
        fires(&[("hourly", 50), ("nightly", 100)])
    );
    insert(store, &fire("nightly@200", "nightly", 200)).await;
    // A duplicate's fire is not recorded; neither is a cap's.
    assert!(matches!(
        insert_with(store, &fire("nightly@200", "nightly", 300), ROOMY).await,
        RunInsert::Duplicate(_)
    ));
    assert_eq!(
        insert_with(
            store,
            &fire("hourly@400", "hourly", 400),
            RunCaps {
                per_user: 100,
                per_workflow: 0
            }
        )
        .await,
        RunInsert::WorkflowAtCap
    );
    // A late fire older than the last one recorded leaves it.
    insert(store, &fire("hourly@10", "hourly", 10)).await;
    assert_eq!(
        flows.last_fires(wf.id).await.unwrap(),
        fires(&[("hourly", 50), ("nightly", 200)])
    );
    // A refused audit record undoes the run and its fire.
    refused(
        flows
            .insert_run(
                &fire("nightly@500", "nightly", 500),
                ROOMY,
                broken("workflow.run.start").append(),
            )
            .await,
        "scheduled run",
    );
    assert_eq!(
        flows.last_fires(wf.id).await.unwrap(),
        fires(&[("hourly", 50), ("nightly", 200)])
    );
    let other = workflow(store, owner).await;
    assert!(flows.last_fires(other.id).await.unwrap().is_empty());
}

pub async fn a_deleted_workflow_takes_its_versions_and_runs(store: &dyn Store) {
    let owner = user(store).await;
    let doomed = workflow(store, owner).await;
    let kept = workflow(store, owner).await;
    let flows = store.workflows();
    let run = insert(
        store,
        &NewRun {
            schedule: Some(("nightly", at(0))),
            ..new_run(doomed.id, owner, 0)
        },
    )
    .await;
    let kept_run = insert(store, &new_run(kept.id, owner, 1)).await;
    // A run of the kept workflow started as a sub-workflow of the doomed one's run.
    let child = insert(
        store,
        &NewRun {
            parent_run: Some(run.id),
            parent_step: Some("sub"),
            ..new_run(kept.id, owner, 2)
        },
    )
    .await;
    let t = Uuid::now_v7();
    assert_eq!(claim(store, t, 5).await.unwrap().id, run.id);
    assert!(start_step(store, run.id, t, "a", 5).await);

    let before = audit_count(store).await;
    assert!(
        flows
            .delete_workflow(doomed.id, note("workflow.delete").append())
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 1);
    assert_eq!(flows.get_workflow(doomed.id).await.unwrap(), None);
    assert_eq!(flows.get_version(doomed.id, 1).await.unwrap(), None);
    assert_eq!(flows.get_run(run.id).await.unwrap(), None);
    assert!(flows.steps(run.id).await.unwrap().is_empty());
    assert!(flows.last_fires(doomed.id).await.unwrap().is_empty());
    assert!(!start_step(store, run.id, t, "b", 6).await);
    assert_eq!(get(store, kept_run.id).await, kept_run);
    let orphan = get(store, child.id).await;
    assert_eq!(
        (orphan.parent_run, orphan.parent_step.as_deref()),
        (None, Some("sub"))
    );
    assert!(
        !flows
            .delete_workflow(doomed.id, note("workflow.delete").append())
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 1);

    // A refused audit record keeps it.
    refused(
        flows
            .delete_workflow(kept.id, broken("workflow.delete").append())
            .await,
        "delete",
    );
    assert!(flows.get_workflow(kept.id).await.unwrap().is_some());
}

pub async fn pruning_keeps_unfinished_runs_and_their_parents(store: &dyn Store) {
    let owner = user(store).await;
    let wf = workflow(store, owner).await;
    let flows = store.workflows();
    let run = |seconds: i64| new_run(wf.id, owner, seconds);
    let child = |parent: Uuid, seconds: i64| NewRun {
        parent_run: Some(parent),
        parent_step: Some("sub"),
        ..new_run(wf.id, owner, seconds)
    };
    let old_a = insert(store, &run(0)).await;
    let old_b = insert(store, &run(1)).await;
    let parent_of_active = insert(store, &run(2)).await;
    let active_child = insert(store, &child(parent_of_active.id, 3)).await;
    let parent_of_done = insert(store, &run(4)).await;
    let done_child = insert(store, &child(parent_of_done.id, 5)).await;
    let unfinished = insert(store, &run(6)).await;
    let recent = insert(store, &run(7)).await;
    let t = Uuid::now_v7();
    assert_eq!(claim(store, t, 8).await.unwrap().id, old_a.id);
    assert!(start_step(store, old_a.id, t, "a", 8).await);
    assert!(finish(store, old_a.id, t, &RunEnd::Succeeded { output: "{}" }, 10).await);
    for (id, seconds) in [
        (old_b.id, 11),
        (parent_of_active.id, 12),
        (done_child.id, 13),
        (parent_of_done.id, 14),
        (recent.id, 1_000),
    ] {
        assert!(cancel(store, id, seconds).await);
    }
    // Canceling the parent of the active child cancelled it too: queue it again.
    assert!(
        flows
            .retry_run(
                active_child.id,
                at(9_000),
                at(15),
                note("workflow.run.retry").append()
            )
            .await
            .unwrap()
    );

    // At most `limit`, oldest first.
    assert_eq!(flows.prune_runs(at(500), 1).await.unwrap(), 1);
    assert_eq!(flows.get_run(old_a.id).await.unwrap(), None);
    assert!(flows.steps(old_a.id).await.unwrap().is_empty());
    assert_eq!(flows.prune_runs(at(500), 100).await.unwrap(), 3);
    let left: HashSet<Uuid> = flows
        .list_runs(&RunFilter::default(), &PageRequest::first(100).unwrap())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        left,
        HashSet::from([
            parent_of_active.id,
            active_child.id,
            unfinished.id,
            recent.id
        ])
    );
    assert_eq!(flows.prune_runs(at(500), 100).await.unwrap(), 0);
}

pub async fn a_run_change_whose_audit_record_fails_is_undone(store: &dyn Store) {
    let owner = user(store).await;
    let flows = store.workflows();
    let id = Uuid::now_v7();
    refused(
        flows
            .save_workflow(
                &save(id, owner, "refused", DOCUMENT),
                broken("workflow.save").append(),
            )
            .await,
        "save",
    );
    assert_eq!(flows.get_workflow(id).await.unwrap(), None);
    let wf = workflow(store, owner).await;
    let run = new_run(wf.id, owner, 0);
    refused(
        flows
            .insert_run(&run, ROOMY, broken("workflow.run.start").append())
            .await,
        "insert",
    );
    assert_eq!(flows.get_run(run.id).await.unwrap(), None);
    let (parent, child) = parent_and_child(store, "sub", 0).await;
    let t = Uuid::now_v7();
    assert_eq!(claim(store, t, 1).await.unwrap().id, child.id);
    refused(
        flows
            .finish_run(
                child.id,
                t,
                &RunEnd::Succeeded { output: "{}" },
                at(2),
                broken("workflow.run.end").append(),
            )
            .await,
        "finish",
    );
    assert_eq!(get(store, child.id).await.status, RunStatus::Running);
    assert_eq!(get(store, parent.id).await, parent, "the parent untouched");
    refused(
        flows
            .cancel_run(parent.id, at(3), broken("workflow.run.cancel").append())
            .await,
        "cancel",
    );
    assert_eq!(get(store, child.id).await.status, RunStatus::Running);
    assert_eq!(get(store, parent.id).await.status, RunStatus::Waiting);
}
