//! Agents: every field kept, names unique in the instance, owners see their own, settings
//! changed only from the version read, status apart from settings, changes with their audit.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, first, note};
use futures_util::future::join_all;
use hive_proto::Role;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_store::{
    AgentLimits, AgentRow, MAX_AGENT_JSON, NewUser, PageRequest, Store, StoreError,
    truncate_to_micros,
};
use time::Duration;
use uuid::Uuid;

async fn owner(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    let user = NewUser {
        id,
        email: format!("{}@example.com", id.simple()),
        display_name: "Agent owner".to_owned(),
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

/// An agent created `seconds` after T0, with every field set to something of its own.
fn agent(owner_id: Uuid, name: &str, seconds: i64) -> AgentRow {
    let at = truncate_to_micros(T0 + Duration::seconds(seconds));
    AgentRow {
        id: Uuid::now_v7(),
        owner_id,
        name: name.to_owned(),
        description: format!("The {name} agent: ünïcode kept"),
        visibility: AgentVisibility::Federation,
        kind: AgentKind::Llm,
        runtime: format!(
            r#"{{"base_url":"http://127.0.0.1:11434/v1","api_key_secret":"{owner_id}"}}"#
        ),
        skills: r#"[{"id":"chat","name":"Chat","tags":["llm"]}]"#.to_owned(),
        limits: AgentLimits {
            requests_per_minute: 60,
            tokens_per_day: 5_000_000_000,
            concurrent_tasks: 4,
            timeout_seconds: u32::MAX,
        },
        status: AgentStatus::Stopped,
        status_detail: "stopped by an operator".to_owned(),
        version: 1,
        created_at: at,
        updated_at: at + Duration::milliseconds(1),
    }
}

async fn create(store: &dyn Store, row: &AgentRow) {
    store
        .agents()
        .create(row, note("agent.create").append())
        .await
        .unwrap();
}

/// `row`'s next settings, as an editor holding `row` would write them.
fn edited(row: &AgentRow, description: &str) -> AgentRow {
    AgentRow {
        description: description.to_owned(),
        version: row.version + 1,
        updated_at: row.updated_at + Duration::minutes(1),
        ..row.clone()
    }
}

fn invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "{what}: {result:?}"
    );
}

fn conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "{what}: {result:?}"
    );
}

pub async fn agents_round_trip_every_field(store: &dyn Store) {
    let owner_id = owner(store).await;
    let agents = store.agents();
    let llm = agent(owner_id, "llm-1", 0);
    let remote = AgentRow {
        description: String::new(),
        visibility: AgentVisibility::Public,
        kind: AgentKind::Remote,
        runtime: "{}".to_owned(),
        skills: "[]".to_owned(),
        limits: AgentLimits {
            requests_per_minute: 0,
            tokens_per_day: 0,
            concurrent_tasks: 0,
            timeout_seconds: 0,
        },
        status: AgentStatus::Created,
        status_detail: String::new(),
        ..agent(owner_id, "remote", 1)
    };
    for row in [&llm, &remote] {
        create(store, row).await;
        assert_eq!(agents.get(row.id, None).await.unwrap().as_ref(), Some(row));
        assert_eq!(
            agents.get(row.id, Some(owner_id)).await.unwrap().as_ref(),
            Some(row)
        );
        assert_eq!(
            agents.find_by_name(&row.name).await.unwrap().as_ref(),
            Some(row)
        );
    }
    // Every word of each set is stored and read back.
    for (n, visibility) in AgentVisibility::ALL.iter().enumerate() {
        for (k, kind) in AgentKind::ALL.iter().enumerate() {
            for (s, status) in AgentStatus::ALL.iter().enumerate() {
                let row = AgentRow {
                    visibility: *visibility,
                    kind: *kind,
                    status: *status,
                    ..agent(owner_id, &format!("w-{n}-{k}-{s}"), 2)
                };
                create(store, &row).await;
                assert_eq!(agents.get(row.id, None).await.unwrap(), Some(row));
            }
        }
    }
    assert_eq!(agents.find_by_name("nobody").await.unwrap(), None);
    assert_eq!(agents.get(Uuid::now_v7(), None).await.unwrap(), None);
    let listed = agents.list(Some(owner_id), &first(100)).await.unwrap();
    let words = AgentVisibility::ALL.len() * AgentKind::ALL.len() * AgentStatus::ALL.len();
    assert_eq!(listed.items.len(), 2 + words);
    assert_eq!(listed.items.last(), Some(&llm), "the oldest comes last");
}

pub async fn agent_names_are_unique_and_checked(store: &dyn Store) {
    let (alice, bob) = (owner(store).await, owner(store).await);
    let agents = store.agents();
    let writer = agent(alice, "writer", 0);
    create(store, &writer).await;
    let reviewer = agent(bob, "reviewer", 1);
    create(store, &reviewer).await;
    let before = audit_count(store).await;

    // Unique in the instance, whoever owns it.
    let same_name = agent(bob, "writer", 2);
    conflict(
        agents
            .create(&same_name, note("agent.create").append())
            .await,
        "a taken name",
    );
    assert_eq!(agents.get(same_name.id, None).await.unwrap(), None);
    let renamed = AgentRow {
        name: "writer".to_owned(),
        ..edited(&reviewer, "renamed onto a taken name")
    };
    conflict(
        agents.update(&renamed, note("agent.update").append()).await,
        "renamed onto a taken name",
    );
    assert_eq!(
        agents.get(reviewer.id, None).await.unwrap().as_ref(),
        Some(&reviewer)
    );

    // The name's form, and the lengths of the texts.
    for bad in [
        "",
        "Writer",
        "a_b",
        "a b",
        "a.b",
        "é",
        "abc\n",
        &"a".repeat(65),
    ] {
        invalid(
            agents
                .create(&agent(alice, bad, 3), note("agent.create").append())
                .await,
            &format!("name {bad:?}"),
        );
        let renamed = AgentRow {
            name: bad.to_owned(),
            ..edited(&writer, "bad name")
        };
        invalid(
            agents.update(&renamed, note("agent.update").append()).await,
            &format!("renamed to {bad:?}"),
        );
    }
    let too_long = [
        (
            "a long description",
            AgentRow {
                description: "d".repeat(2001),
                ..edited(&writer, "")
            },
        ),
        (
            "a budget past what the databases hold",
            AgentRow {
                limits: AgentLimits {
                    tokens_per_day: u64::MAX,
                    ..writer.limits
                },
                ..edited(&writer, "")
            },
        ),
    ];
    for (what, next) in &too_long {
        let new_agent = AgentRow {
            id: Uuid::now_v7(),
            name: "refused".to_owned(),
            version: 1,
            ..next.clone()
        };
        invalid(
            agents
                .create(&new_agent, note("agent.create").append())
                .await,
            &format!("create with {what}"),
        );
        invalid(
            agents.update(next, note("agent.update").append()).await,
            &format!("update to {what}"),
        );
    }
    let long_detail = AgentRow {
        status_detail: "s".repeat(501),
        ..agent(alice, "long-detail", 3)
    };
    invalid(
        agents
            .create(&long_detail, note("agent.create").append())
            .await,
        "status detail",
    );
    invalid(
        agents
            .set_status(
                writer.id,
                AgentStatus::Error,
                &"s".repeat(501),
                T0,
                Some(note("agent.status").append()),
            )
            .await,
        "status detail of a change",
    );
    assert_eq!(
        agents.get(writer.id, None).await.unwrap().as_ref(),
        Some(&writer)
    );
    assert_eq!(audit_count(store).await, before, "refusals write nothing");

    // The longest name and description fit; a freed name can be taken again.
    let longest = AgentRow {
        description: "é".repeat(2000),
        status_detail: "é".repeat(500),
        ..agent(alice, &format!("{}-0", "a".repeat(62)), 4)
    };
    create(store, &longest).await;
    assert!(
        agents
            .delete(writer.id, None, note("agent.delete").append())
            .await
            .unwrap()
    );
    create(store, &same_name).await;
    assert_eq!(
        agents.find_by_name("writer").await.unwrap().map(|a| a.id),
        Some(same_name.id)
    );
}

pub async fn agents_belong_to_their_owner(store: &dyn Store) {
    let (alice, bob) = (owner(store).await, owner(store).await);
    let agents = store.agents();
    let alices = agent(alice, "alices", 0);
    let bobs = agent(bob, "bobs", 1);
    create(store, &alices).await;
    create(store, &bobs).await;

    assert_eq!(agents.get(alices.id, Some(bob)).await.unwrap(), None);
    assert_eq!(
        agents.get(alices.id, Some(alice)).await.unwrap().as_ref(),
        Some(&alices)
    );
    let ids =
        |page: hive_store::Page<AgentRow>| page.items.iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(agents.list(Some(alice), &first(10)).await.unwrap()),
        [alices.id]
    );
    assert_eq!(
        ids(agents.list(Some(bob), &first(10)).await.unwrap()),
        [bobs.id]
    );
    assert_eq!(
        ids(agents.list(None, &first(10)).await.unwrap()),
        [bobs.id, alices.id]
    );
    let nobody = agents.list(Some(Uuid::now_v7()), &first(10)).await.unwrap();
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());

    let before = audit_count(store).await;
    assert!(
        !agents
            .delete(alices.id, Some(bob), note("agent.delete").append())
            .await
            .unwrap(),
        "not bob's"
    );
    assert_eq!(
        audit_count(store).await,
        before,
        "nothing deleted, nothing recorded"
    );
    assert!(agents.get(alices.id, None).await.unwrap().is_some());
    assert!(
        agents
            .delete(alices.id, Some(alice), note("agent.delete").append())
            .await
            .unwrap()
    );
    assert!(
        !agents
            .delete(alices.id, None, note("agent.delete").append())
            .await
            .unwrap(),
        "once"
    );
    assert!(
        agents
            .delete(bobs.id, None, note("agent.delete").append())
            .await
            .unwrap(),
        "an admin path"
    );
    assert_eq!(audit_count(store).await, before + 2);
    assert!(
        agents
            .list(None, &first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn agents_page_newest_first_without_gaps(store: &dyn Store) {
    let (alice, bob) = (owner(store).await, owner(store).await);
    let mut alices = Vec::new();
    for i in 0..17 {
        // Pairs share a creation time, so ties must be broken by id.
        let row = agent(alice, &format!("alice-{i}"), i / 2);
        create(store, &row).await;
        alices.push(row);
        create(store, &agent(bob, &format!("bob-{i}"), i / 2)).await;
    }
    alices.sort_by_key(|a| std::cmp::Reverse((a.created_at, a.id)));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(5, cursor.as_deref()).unwrap();
        let got = store.agents().list(Some(alice), &page).await.unwrap();
        assert!(got.items.len() <= 5);
        seen.extend(got.items);
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, alices, "every agent once, newest first, ties by id");

    let everyone = store.agents().list(None, &first(34)).await.unwrap();
    assert_eq!(everyone.items.len(), 34);
    assert_eq!(everyone.next_cursor, None, "no empty last page");
}

pub async fn agent_settings_change_only_from_the_version_read(store: &dyn Store) {
    let (alice, bob) = (owner(store).await, owner(store).await);
    let agents = store.agents();
    let stored = agent(alice, "editor", 0);
    create(store, &stored).await;

    // Every setting changes; owner, kind, status and creation time stay as stored.
    let next = AgentRow {
        owner_id: bob,
        name: "editor-2".to_owned(),
        description: "changed".to_owned(),
        visibility: AgentVisibility::Private,
        kind: AgentKind::Conformance,
        runtime: r#"{"changed":true}"#.to_owned(),
        skills: r#"[{"id":"other"}]"#.to_owned(),
        limits: AgentLimits {
            requests_per_minute: 1,
            tokens_per_day: 2,
            concurrent_tasks: 3,
            timeout_seconds: 4,
        },
        status: AgentStatus::Ready,
        status_detail: "ignored".to_owned(),
        version: 2,
        created_at: stored.created_at + Duration::days(1),
        updated_at: stored.updated_at + Duration::hours(1),
        ..stored.clone()
    };
    assert!(
        agents
            .update(&next, note("agent.update").append())
            .await
            .unwrap()
    );
    let expected = AgentRow {
        owner_id: stored.owner_id,
        kind: stored.kind,
        status: stored.status,
        status_detail: stored.status_detail.clone(),
        created_at: stored.created_at,
        ..next.clone()
    };
    assert_eq!(
        agents.get(stored.id, None).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        agents.find_by_name("editor").await.unwrap(),
        None,
        "renamed"
    );

    // A writer still holding version 1, or one skipping ahead, changes nothing.
    let before = audit_count(store).await;
    for version in [2, 4] {
        let stale = AgentRow {
            version,
            ..edited(&stored, "stale")
        };
        assert!(
            !agents
                .update(&stale, note("agent.update").append())
                .await
                .unwrap(),
            "version {version}"
        );
    }
    let gone = edited(&agent(alice, "gone", 0), "gone");
    assert!(
        !agents
            .update(&gone, note("agent.update").append())
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before, "no change, no record");
    assert_eq!(
        agents.get(stored.id, None).await.unwrap(),
        Some(expected.clone())
    );

    // Editors racing from the same version: exactly one wins, the stored row is the winner's.
    let racers: Vec<AgentRow> = (0..8)
        .map(|n| edited(&expected, &format!("racer {n}")))
        .collect();
    let notes: Vec<_> = (0..8).map(|_| note("agent.update")).collect();
    let outcomes = join_all(
        racers
            .iter()
            .zip(&notes)
            .map(|(row, note)| agents.update(row, note.append())),
    )
    .await;
    let winners: Vec<&AgentRow> = outcomes
        .iter()
        .zip(&racers)
        .filter(|(won, _)| *won.as_ref().unwrap())
        .map(|(_, row)| row)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert_eq!(
        agents.get(stored.id, None).await.unwrap().as_ref(),
        Some(winners[0])
    );
    assert_eq!(audit_count(store).await, before + 1);
}

pub async fn agent_status_changes_apart_from_settings(store: &dyn Store) {
    let owner_id = owner(store).await;
    let agents = store.agents();
    let stored = agent(owner_id, "watched", 0);
    create(store, &stored).await;
    let later = truncate_to_micros(T0 + Duration::minutes(3));

    let before = audit_count(store).await;
    assert!(
        agents
            .set_status(
                stored.id,
                AgentStatus::Starting,
                "",
                later,
                Some(note("agent.start").append())
            )
            .await
            .unwrap()
    );
    assert_eq!(
        audit_count(store).await,
        before + 1,
        "an operator's change is recorded"
    );
    let starting = agents.get(stored.id, None).await.unwrap().unwrap();
    assert_eq!(
        starting,
        AgentRow {
            status: AgentStatus::Starting,
            status_detail: String::new(),
            updated_at: later,
            ..stored.clone()
        },
        "the version counts changes of settings only"
    );

    // The watchdog's own observations carry no record.
    let even_later = later + Duration::seconds(30);
    assert!(
        agents
            .set_status(
                stored.id,
                AgentStatus::Error,
                "upstream unreachable",
                even_later,
                None
            )
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 1);
    let failed = agents.get(stored.id, None).await.unwrap().unwrap();
    assert_eq!(
        (
            failed.status,
            failed.status_detail.as_str(),
            failed.updated_at,
            failed.version
        ),
        (AgentStatus::Error, "upstream unreachable", even_later, 1)
    );

    // An editor holding version 1 still wins: status is not a change of settings.
    assert!(
        agents
            .update(&edited(&stored, "edited"), note("agent.update").append())
            .await
            .unwrap()
    );
    let edited_row = agents.get(stored.id, None).await.unwrap().unwrap();
    assert_eq!(
        (edited_row.status, edited_row.version),
        (AgentStatus::Error, 2),
        "an edit keeps the status"
    );

    // A missing agent: nothing to change, nothing recorded.
    let missing = Uuid::now_v7();
    assert!(
        !agents
            .set_status(
                missing,
                AgentStatus::Ready,
                "",
                later,
                Some(note("agent.start").append())
            )
            .await
            .unwrap()
    );
    assert!(
        !agents
            .set_status(missing, AgentStatus::Ready, "", later, None)
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, before + 2);
}

pub async fn oversized_agent_json_is_refused(store: &dyn Store) {
    let owner_id = owner(store).await;
    let agents = store.agents();
    // Counted in bytes: a two-byte character each.
    let json_of = |bytes: usize| format!("\"{}\"", "é".repeat((bytes - 2) / 2));
    let largest = json_of(MAX_AGENT_JSON);
    assert_eq!(largest.len(), MAX_AGENT_JSON);
    let too_large = format!("{largest} ");
    let fits = AgentRow {
        runtime: largest.clone(),
        skills: largest.clone(),
        ..agent(owner_id, "largest", 0)
    };
    create(store, &fits).await;
    assert_eq!(agents.get(fits.id, None).await.unwrap(), Some(fits.clone()));

    let before = audit_count(store).await;
    for (runtime, skills) in [(&too_large, &largest), (&largest, &too_large)] {
        let row = AgentRow {
            runtime: runtime.clone(),
            skills: skills.clone(),
            ..agent(owner_id, "too-large", 1)
        };
        invalid(
            agents.create(&row, note("agent.create").append()).await,
            "create",
        );
        let next = AgentRow {
            runtime: runtime.clone(),
            skills: skills.clone(),
            ..edited(&fits, "too large")
        };
        invalid(
            agents.update(&next, note("agent.update").append()).await,
            "update",
        );
    }
    assert_eq!(agents.find_by_name("too-large").await.unwrap(), None);
    assert_eq!(agents.get(fits.id, None).await.unwrap(), Some(fits));
    assert_eq!(audit_count(store).await, before);
}

pub async fn an_agent_change_whose_audit_record_fails_is_rolled_back(store: &dyn Store) {
    let owner_id = owner(store).await;
    let agents = store.agents();
    let row = agent(owner_id, "audited", 0);
    let before = audit_count(store).await;
    refused(
        agents.create(&row, broken("agent.create").append()).await,
        "create",
    );
    assert_eq!(agents.get(row.id, None).await.unwrap(), None);
    assert_eq!(agents.find_by_name("audited").await.unwrap(), None);
    assert_eq!(audit_count(store).await, before);

    create(store, &row).await;
    let renamed = AgentRow {
        name: "audited-2".to_owned(),
        ..edited(&row, "changed")
    };
    refused(
        agents
            .update(&renamed, broken("agent.update").append())
            .await,
        "update",
    );
    refused(
        agents
            .set_status(
                row.id,
                AgentStatus::Ready,
                "",
                T0,
                Some(broken("agent.start").append()),
            )
            .await,
        "status",
    );
    refused(
        agents
            .delete(row.id, None, broken("agent.delete").append())
            .await,
        "delete",
    );
    refused(
        agents
            .delete(row.id, Some(owner_id), broken("agent.delete").append())
            .await,
        "the owner's delete",
    );
    assert_eq!(agents.get(row.id, None).await.unwrap().as_ref(), Some(&row));
    assert_eq!(agents.find_by_name("audited-2").await.unwrap(), None);
    // The row is free for the next writer: the failed update took no version.
    assert!(
        agents
            .update(&renamed, note("agent.update").append())
            .await
            .unwrap()
    );
    assert_eq!(
        audit_count(store).await,
        before + 2,
        "the creation and the update"
    );
}

pub async fn a_guarded_status_change_applies_only_from_the_status_read(store: &dyn Store) {
    let owner_id = owner(store).await;
    let agents = store.agents();
    let stored = agent(owner_id, "guarded", 0);
    create(store, &stored).await;
    let at = truncate_to_micros(T0 + Duration::minutes(5));
    assert!(
        agents
            .set_status(stored.id, AgentStatus::Ready, "", at, None)
            .await
            .unwrap()
    );
    // A stop lands while the watchdog probes the agent it read as ready.
    assert!(
        agents
            .set_status(stored.id, AgentStatus::Stopped, "", at, None)
            .await
            .unwrap()
    );
    let before = audit_count(store).await;
    let later = at + Duration::seconds(10);
    assert!(
        !agents
            .set_status_from(
                stored.id,
                AgentStatus::Ready,
                AgentStatus::Error,
                "unreachable",
                later,
                Some(note("agent.health").append())
            )
            .await
            .unwrap(),
        "the watchdog's stale observation is refused"
    );
    let row = agents.get(stored.id, None).await.unwrap().unwrap();
    assert_eq!((row.status, row.updated_at), (AgentStatus::Stopped, at));
    assert_eq!(audit_count(store).await, before, "and nothing recorded");
    // From the status it is in, it applies, with its record.
    assert!(
        agents
            .set_status_from(
                stored.id,
                AgentStatus::Stopped,
                AgentStatus::Starting,
                "",
                later,
                Some(note("agent.start").append())
            )
            .await
            .unwrap()
    );
    let row = agents.get(stored.id, None).await.unwrap().unwrap();
    assert_eq!((row.status, row.updated_at), (AgentStatus::Starting, later));
    assert_eq!(audit_count(store).await, before + 1);
    assert!(
        !agents
            .set_status_from(
                Uuid::now_v7(),
                AgentStatus::Starting,
                AgentStatus::Ready,
                "",
                later,
                None
            )
            .await
            .unwrap()
    );
}
