//! Migrations 0021 and 0023 rebuild `agents` with foreign keys off: the rows, and the rows that
//! reference them, survive each; each can run again (a crash after its commit, before sqlx
//! recorded it); a failure half-way leaves the old schema and no connection without foreign
//! keys.

use super::*;
use hive_proto::Role;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_store::{
    AgentLimits, AgentRow, ConversationMessageRow, ConversationRow, MessageAuthor, NewBundle,
    NewRun, NewUser, PageRequest, RunCaps, RunInsert, RunTrigger, WorkflowSave,
};
use hive_store_conformance::note;
use time::macros::datetime;
use uuid::Uuid;

/// The version before the rebuild.
const BEFORE_REBUILD: i64 = 20;

/// Workflows: new tables only.
const WORKFLOWS: i64 = 22;

/// Workflow agents: the second rebuild of `agents`.
const SECOND_REBUILD: i64 = 23;

/// The newest migration (0024, billing).
const LATEST: i64 = 24;

/// Every migration after `from`, up to the newest.
fn after(from: i64) -> Vec<i64> {
    (from + 1..=LATEST).collect()
}

const AT: time::OffsetDateTime = datetime!(2026-03-01 12:00:00.123456 UTC);

struct Rows {
    agent: AgentRow,
    conversation: ConversationRow,
}

/// A store on a new database migrated up to `BEFORE_REBUILD`.
async fn store_before_rebuild(dir: &tempfile::TempDir) -> SqliteStore {
    let store = SqliteStore::open(&dir.path().join("hive.db"), 2)
        .await
        .unwrap();
    MIGRATOR
        .run_to(BEFORE_REBUILD, store.writer_pool())
        .await
        .unwrap();
    store
}

/// A user, their agent, and a conversation with it, written through the store.
async fn write_rows(store: &SqliteStore, name: &str, kind: AgentKind) -> Rows {
    let owner_id = Uuid::now_v7();
    let user = NewUser {
        id: owner_id,
        email: format!("{}@example.com", owner_id.simple()),
        display_name: "Owner".to_owned(),
        role: Role::Operator,
        password_hash: None,
        created_at: AT,
    };
    store
        .users()
        .create(&user, note("user.create").append())
        .await
        .unwrap();
    let agent = AgentRow {
        id: Uuid::now_v7(),
        owner_id,
        name: name.to_owned(),
        description: "kept through the rebuild: ünïcode".to_owned(),
        visibility: AgentVisibility::Federation,
        kind,
        runtime: r#"{"base_url":"http://127.0.0.1:11434/v1"}"#.to_owned(),
        skills: r#"[{"id":"chat"}]"#.to_owned(),
        limits: AgentLimits {
            requests_per_minute: 60,
            tokens_per_day: 5_000_000_000,
            concurrent_tasks: 4,
            timeout_seconds: u32::MAX,
        },
        status: AgentStatus::Ready,
        status_detail: "ready".to_owned(),
        version: 3,
        created_at: AT,
        updated_at: AT,
    };
    store
        .agents()
        .create(&agent, note("agent.create").append())
        .await
        .unwrap();
    let conversation = ConversationRow {
        id: Uuid::now_v7(),
        owner: format!("user:{owner_id}"),
        user_id: Some(owner_id),
        agent_id: agent.id,
        title: "Before the rebuild".to_owned(),
        open_task_id: None,
        turn_started_at: None,
        created_at: AT,
        updated_at: AT,
    };
    let first = ConversationMessageRow {
        id: Uuid::now_v7(),
        conversation_id: conversation.id,
        author: MessageAuthor::User,
        text: "Hello".to_owned(),
        truncated: false,
        task_id: None,
        state: String::new(),
        created_at: AT,
    };
    store
        .conversations()
        .create(&conversation, &first)
        .await
        .unwrap();
    Rows {
        agent,
        conversation,
    }
}

/// The rows are all there, as written, and the conversation's message with them.
async fn assert_kept(store: &SqliteStore, rows: &Rows) {
    assert_eq!(
        store
            .agents()
            .get(rows.agent.id, None)
            .await
            .unwrap()
            .as_ref(),
        Some(&rows.agent)
    );
    let conversation = &rows.conversation;
    assert_eq!(
        store
            .conversations()
            .get(&conversation.owner, conversation.id)
            .await
            .unwrap()
            .as_ref(),
        Some(conversation)
    );
    let messages = store
        .conversations()
        .messages(conversation.id, &PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(messages.items.len(), 1);
}

async fn broken_references(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pragma_foreign_key_check")
        .fetch_one(store.writer_pool())
        .await
        .unwrap()
}

async fn schema_sql(store: &SqliteStore, name: &str) -> String {
    sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = ?")
        .bind(name.to_owned())
        .fetch_one(store.writer_pool())
        .await
        .unwrap()
}

async fn applied(store: &SqliteStore) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(store.writer_pool())
        .await
        .unwrap()
}

/// Deletes the agent through the store: answers whether its conversation went with it.
async fn delete_cascades(store: &SqliteStore, rows: &Rows) -> bool {
    assert!(
        store
            .agents()
            .delete(rows.agent.id, None, note("agent.delete").append())
            .await
            .unwrap()
    );
    let conversation = &rows.conversation;
    store
        .conversations()
        .get(&conversation.owner, conversation.id)
        .await
        .unwrap()
        .is_none()
}

#[tokio::test]
async fn the_rebuild_keeps_agents_and_what_references_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_before_rebuild(&dir).await;
    let rows = write_rows(&store, "before", AgentKind::Llm).await;
    let other = write_rows(&store, "second", AgentKind::Conformance).await;
    let old_conversations = schema_sql(&store, "conversations").await;

    let report = store.migrate().await.unwrap();
    assert_eq!(report.applied, after(BEFORE_REBUILD));
    assert_eq!(report.version, LATEST);

    assert_kept(&store, &rows).await;
    assert_kept(&store, &other).await;
    assert_eq!(broken_references(&store).await, 0);
    // Nothing renamed: the references keep naming `agents`, word for word.
    assert_eq!(schema_sql(&store, "conversations").await, old_conversations);
    assert!(old_conversations.contains("REFERENCES agents (id) ON DELETE CASCADE"));
    let agents = schema_sql(&store, "agents").await;
    assert!(agents.starts_with("CREATE TABLE agents ("), "{agents}");
    assert!(
        agents.contains("'hosted'") && agents.contains("'paused'"),
        "{agents}"
    );
    let strict: i64 =
        sqlx::query_scalar("SELECT strict FROM pragma_table_list WHERE name = 'agents'")
            .fetch_one(store.writer_pool())
            .await
            .unwrap();
    assert_eq!(strict, 1);
    let mut indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'agents' \
         AND sql IS NOT NULL",
    )
    .fetch_all(store.writer_pool())
    .await
    .unwrap();
    indexes.sort();
    assert_eq!(indexes, ["agents_by_owner", "agents_newest"]);
    // The name is still unique.
    let taken = AgentRow {
        id: Uuid::now_v7(),
        ..rows.agent.clone()
    };
    let refused = store
        .agents()
        .create(&taken, note("agent.create").append())
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );

    // The new words are accepted.
    let hosted = write_rows(&store, "hosted", AgentKind::Hosted).await;
    assert!(
        store
            .agents()
            .set_status(hosted.agent.id, AgentStatus::Paused, "", AT, None)
            .await
            .unwrap()
    );

    // Foreign keys are on for the writes that follow: the cascade reaches the conversation.
    let writer_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.writer_pool())
        .await
        .unwrap();
    assert_eq!(writer_keys, 1);
    assert!(delete_cascades(&store, &rows).await);
    assert_kept(&store, &other).await;
}

#[tokio::test]
async fn the_migration_runs_again_when_it_was_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_before_rebuild(&dir).await;
    MIGRATOR.run_to(21, store.writer_pool()).await.unwrap();
    let rows = write_rows(&store, "hosted", AgentKind::Hosted).await;
    let archive = vec![0u8, 1, 2, 255];
    let sha256 = "0".repeat(64);
    store
        .hosted()
        .push_bundle(
            &NewBundle {
                agent_id: rows.agent.id,
                sha256: &sha256,
                manifest: "name = \"a\"",
                archive: &archive,
                created_by: None,
                created_at: AT,
            },
            5,
            note("agent.bundle.push").append(),
        )
        .await
        .unwrap();
    assert!(
        store
            .hosted()
            .take_lease(
                rows.agent.id,
                "node-a",
                "",
                AT,
                AT + time::Duration::hours(1)
            )
            .await
            .unwrap()
    );

    // As after a crash between the migration's commit and sqlx's record of it.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 21")
        .execute(store.writer_pool())
        .await
        .unwrap();
    let report = store.migrate().await.unwrap();
    assert_eq!(report.applied, after(BEFORE_REBUILD));
    assert_eq!(applied(&store).await, (1..=LATEST).collect::<Vec<_>>());

    assert_kept(&store, &rows).await;
    let (bundle, stored) = store
        .hosted()
        .active_bundle(rows.agent.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((bundle.version, stored), (1, archive));
    assert!(
        store
            .hosted()
            .lease_of(rows.agent.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(broken_references(&store).await, 0);
    assert!(delete_cascades(&store, &rows).await);
    assert!(
        store
            .hosted()
            .list_bundles(rows.agent.id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_rebuild_changes_nothing_and_leaves_foreign_keys_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_before_rebuild(&dir).await;
    let rows = write_rows(&store, "before", AgentKind::Llm).await;
    // A table in the way: the migration fails after it dropped and rebuilt `agents`, inside
    // its transaction.
    sqlx::query("CREATE TABLE agent_bundles (unrelated INTEGER) STRICT")
        .execute(store.writer_pool())
        .await
        .unwrap();

    let failed = store.migrate().await;
    assert!(
        matches!(failed, Err(StoreError::Migration(_))),
        "{failed:?}"
    );
    assert_eq!(applied(&store).await.last(), Some(&BEFORE_REBUILD));
    // The old table, with its rows and its old CHECK.
    assert_kept(&store, &rows).await;
    assert!(!schema_sql(&store, "agents").await.contains("'hosted'"));
    let hosted = AgentRow {
        id: Uuid::now_v7(),
        name: "refused".to_owned(),
        kind: AgentKind::Hosted,
        ..rows.agent.clone()
    };
    let refused = store
        .agents()
        .create(&hosted, note("agent.create").append())
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );

    // No write runs without foreign keys: the delete cascades.
    sqlx::query("DROP TABLE agent_bundles")
        .execute(store.writer_pool())
        .await
        .unwrap();
    let second = write_rows(&store, "second", AgentKind::Conformance).await;
    assert!(delete_cascades(&store, &rows).await);

    // With the way clear, it applies.
    assert_eq!(
        store.migrate().await.unwrap().applied,
        after(BEFORE_REBUILD)
    );
    assert_kept(&store, &second).await;
    assert_eq!(broken_references(&store).await, 0);
}

/// Migration 0022 adds the workflow tables to a database with rows: they stay, and an
/// existing account owns a workflow and runs it at once.
#[tokio::test]
async fn the_workflow_tables_join_a_database_with_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hive.db"), 2)
        .await
        .unwrap();
    MIGRATOR
        .run_to(WORKFLOWS - 1, store.writer_pool())
        .await
        .unwrap();
    let rows = write_rows(&store, "before", AgentKind::Hosted).await;

    let report = store.migrate().await.unwrap();
    assert_eq!(
        (report.applied, report.version),
        (after(WORKFLOWS - 1), LATEST)
    );
    assert_kept(&store, &rows).await;
    assert_eq!(broken_references(&store).await, 0);

    let owner = rows.agent.owner_id;
    let id = Uuid::now_v7();
    let (workflow, _) = store
        .workflows()
        .save_workflow(
            &WorkflowSave {
                id,
                owner_id: owner,
                name: "after",
                description: "",
                document: "{}",
                scheduled: true,
                created_by: Some(owner),
                at: AT,
            },
            note("workflow.save").append(),
        )
        .await
        .unwrap();
    let run = NewRun {
        id: Uuid::now_v7(),
        workflow_id: workflow.id,
        version: 1,
        principal_user: owner,
        principal_token: None,
        trigger: RunTrigger::Schedule,
        trigger_key: Some("nightly@0"),
        input: "{}",
        parent_run: None,
        parent_step: None,
        deadline_at: AT + time::Duration::hours(1),
        created_at: AT,
        schedule: Some(("nightly", AT)),
    };
    let caps = RunCaps {
        per_user: 1,
        per_workflow: 1,
    };
    let inserted = store
        .workflows()
        .insert_run(&run, caps, note("workflow.run.start").append())
        .await
        .unwrap();
    assert!(matches!(inserted, RunInsert::Created(_)), "{inserted:?}");
    assert_eq!(
        store.workflows().scheduled_workflows().await.unwrap(),
        vec![workflow]
    );

    // The account's deletion (no repository deletes accounts yet) takes its workflow, versions
    // and runs.
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(owner.hyphenated().to_string())
        .execute(store.writer_pool())
        .await
        .unwrap();
    assert_eq!(store.workflows().get_workflow(id).await.unwrap(), None);
    assert_eq!(store.workflows().get_run(run.id).await.unwrap(), None);
    assert_eq!(broken_references(&store).await, 0);
}

/// A bundle pushed for the agent and its lease taken: the tables 0021 added that reference
/// `agents`.
async fn write_hosted_rows(store: &SqliteStore, rows: &Rows) -> Vec<u8> {
    let archive = vec![0u8, 1, 2, 255];
    let sha256 = "0".repeat(64);
    store
        .hosted()
        .push_bundle(
            &NewBundle {
                agent_id: rows.agent.id,
                sha256: &sha256,
                manifest: "name = \"a\"",
                archive: &archive,
                created_by: None,
                created_at: AT,
            },
            5,
            note("agent.bundle.push").append(),
        )
        .await
        .unwrap();
    assert!(
        store
            .hosted()
            .take_lease(
                rows.agent.id,
                "node-a",
                "",
                AT,
                AT + time::Duration::hours(1)
            )
            .await
            .unwrap()
    );
    archive
}

/// The bundle and the lease of [`write_hosted_rows`] are there.
async fn assert_hosted_kept(store: &SqliteStore, rows: &Rows, archive: &[u8]) {
    let (bundle, stored) = store
        .hosted()
        .active_bundle(rows.agent.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((bundle.version, stored.as_slice()), (1, archive));
    assert!(
        store
            .hosted()
            .lease_of(rows.agent.id)
            .await
            .unwrap()
            .is_some()
    );
}

/// A workflow of the agent's owner, and an agent of kind `workflow` publishing it.
async fn write_workflow_agent(store: &SqliteStore, rows: &Rows, name: &str) -> AgentRow {
    let workflow_id = Uuid::now_v7();
    store
        .workflows()
        .save_workflow(
            &WorkflowSave {
                id: workflow_id,
                owner_id: rows.agent.owner_id,
                name,
                description: "",
                document: "{}",
                scheduled: false,
                created_by: Some(rows.agent.owner_id),
                at: AT,
            },
            note("workflow.save").append(),
        )
        .await
        .unwrap();
    let agent = AgentRow {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        kind: AgentKind::Workflow,
        runtime: format!(r#"{{"workflowId":"{workflow_id}"}}"#),
        ..rows.agent.clone()
    };
    store
        .agents()
        .create(&agent, note("agent.create").append())
        .await
        .map(|()| agent)
        .unwrap()
}

/// The tables that reference `agents`, as the schema states them.
async fn referencing_tables(store: &SqliteStore) -> Vec<String> {
    let mut tables = Vec::new();
    for name in [
        "conversations",
        "agent_bundle_counters",
        "agent_bundles",
        "hosted_leases",
    ] {
        let sql = schema_sql(store, name).await;
        assert!(sql.contains("REFERENCES agents (id)"), "{sql}");
        tables.push(sql);
    }
    tables
}

/// Migration 0023 rebuilds `agents` again, now that four tables reference it: every row, and
/// every row that references one, survives; the references still name `agents`; the new kind
/// is taken; foreign keys are on again (deletes cascade to all four).
#[tokio::test]
async fn the_second_rebuild_keeps_agents_and_the_four_tables_that_reference_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hive.db"), 2)
        .await
        .unwrap();
    MIGRATOR
        .run_to(SECOND_REBUILD - 1, store.writer_pool())
        .await
        .unwrap();
    let rows = write_rows(&store, "hosted", AgentKind::Hosted).await;
    let archive = write_hosted_rows(&store, &rows).await;
    let other = write_rows(&store, "second", AgentKind::Llm).await;
    let before = referencing_tables(&store).await;
    assert!(!schema_sql(&store, "agents").await.contains("'workflow'"));

    let report = store.migrate().await.unwrap();
    assert_eq!(
        (report.applied, report.version),
        (after(SECOND_REBUILD - 1), LATEST)
    );

    assert_kept(&store, &rows).await;
    assert_kept(&store, &other).await;
    assert_hosted_kept(&store, &rows, &archive).await;
    assert_eq!(broken_references(&store).await, 0);
    // Nothing renamed: the references keep naming `agents`, word for word.
    assert_eq!(referencing_tables(&store).await, before);
    let agents = schema_sql(&store, "agents").await;
    assert!(agents.starts_with("CREATE TABLE agents ("), "{agents}");
    assert!(
        agents.contains("'workflow'") && agents.contains("'hosted'") && agents.contains("'paused'"),
        "{agents}"
    );
    let strict: i64 =
        sqlx::query_scalar("SELECT strict FROM pragma_table_list WHERE name = 'agents'")
            .fetch_one(store.writer_pool())
            .await
            .unwrap();
    assert_eq!(strict, 1);
    let mut indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'agents' \
         AND sql IS NOT NULL",
    )
    .fetch_all(store.writer_pool())
    .await
    .unwrap();
    indexes.sort();
    assert_eq!(indexes, ["agents_by_owner", "agents_newest"]);

    // The new word is accepted, and the name is still unique.
    let published = write_workflow_agent(&store, &other, "published").await;
    assert_eq!(
        store.agents().get(published.id, None).await.unwrap(),
        Some(published.clone())
    );
    let taken = AgentRow {
        id: Uuid::now_v7(),
        ..published
    };
    let refused = store
        .agents()
        .create(&taken, note("agent.create").append())
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );

    // Foreign keys are on for the writes that follow: the cascade reaches all four tables.
    let writer_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.writer_pool())
        .await
        .unwrap();
    assert_eq!(writer_keys, 1);
    assert!(delete_cascades(&store, &rows).await);
    assert!(
        store
            .hosted()
            .list_bundles(rows.agent.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .hosted()
            .lease_of(rows.agent.id)
            .await
            .unwrap()
            .is_none()
    );
    let counters: i64 =
        sqlx::query_scalar("SELECT count(*) FROM agent_bundle_counters WHERE agent_id = ?")
            .bind(rows.agent.id.hyphenated().to_string())
            .fetch_one(store.writer_pool())
            .await
            .unwrap();
    assert_eq!(counters, 0);
    assert_kept(&store, &other).await;
}

#[tokio::test]
async fn the_second_rebuild_runs_again_when_it_was_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hive.db"), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let rows = write_rows(&store, "hosted", AgentKind::Hosted).await;
    let archive = write_hosted_rows(&store, &rows).await;
    let published = write_workflow_agent(&store, &rows, "published").await;

    // As after a crash between the migration's commit and sqlx's record of it.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
        .bind(SECOND_REBUILD)
        .execute(store.writer_pool())
        .await
        .unwrap();
    let report = store.migrate().await.unwrap();
    assert_eq!(report.applied, vec![SECOND_REBUILD]);
    assert_eq!(applied(&store).await, (1..=LATEST).collect::<Vec<_>>());

    assert_kept(&store, &rows).await;
    assert_hosted_kept(&store, &rows, &archive).await;
    assert_eq!(
        store.agents().get(published.id, None).await.unwrap(),
        Some(published)
    );
    assert_eq!(broken_references(&store).await, 0);
    assert!(delete_cascades(&store, &rows).await);
    assert!(
        store
            .hosted()
            .list_bundles(rows.agent.id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_second_rebuild_changes_nothing_and_leaves_foreign_keys_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hive.db"), 2)
        .await
        .unwrap();
    MIGRATOR
        .run_to(SECOND_REBUILD - 1, store.writer_pool())
        .await
        .unwrap();
    let rows = write_rows(&store, "before", AgentKind::Hosted).await;
    let archive = write_hosted_rows(&store, &rows).await;
    // A table where an index of the new `agents` goes: the migration fails after it dropped
    // and rebuilt `agents`, inside its transaction.
    for statement in [
        "DROP INDEX agents_by_owner",
        "CREATE TABLE agents_by_owner (unrelated INTEGER) STRICT",
    ] {
        sqlx::query(statement)
            .execute(store.writer_pool())
            .await
            .unwrap();
    }

    let failed = store.migrate().await;
    assert!(
        matches!(failed, Err(StoreError::Migration(_))),
        "{failed:?}"
    );
    assert_eq!(applied(&store).await.last(), Some(&(SECOND_REBUILD - 1)));
    // The old table, with its rows and its old CHECK.
    assert_kept(&store, &rows).await;
    assert_hosted_kept(&store, &rows, &archive).await;
    assert!(!schema_sql(&store, "agents").await.contains("'workflow'"));
    let workflow = AgentRow {
        id: Uuid::now_v7(),
        name: "refused".to_owned(),
        kind: AgentKind::Workflow,
        ..rows.agent.clone()
    };
    let refused = store
        .agents()
        .create(&workflow, note("agent.create").append())
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );

    // No write runs without foreign keys: the delete cascades.
    sqlx::query("DROP TABLE agents_by_owner")
        .execute(store.writer_pool())
        .await
        .unwrap();
    let second = write_rows(&store, "second", AgentKind::Conformance).await;
    assert!(delete_cascades(&store, &rows).await);
    assert!(
        store
            .hosted()
            .list_bundles(rows.agent.id)
            .await
            .unwrap()
            .is_empty()
    );

    // With the way clear, it applies.
    assert_eq!(
        store.migrate().await.unwrap().applied,
        after(SECOND_REBUILD - 1)
    );
    assert_kept(&store, &second).await;
    assert_eq!(broken_references(&store).await, 0);
    assert!(schema_sql(&store, "agents").await.contains("'workflow'"));
}
