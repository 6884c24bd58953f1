//! Conversations: every field kept, per owner, listed by latest activity, one turn at a time
//! (also under concurrency, and taken over once stale), messages paged newest first, deleted
//! with their audit record, pruned when idle, gone with their agent, values checked.

use crate::audited::{audit_count, broken, refused};
use crate::{T0, first, note};
use futures_util::future::join_all;
use hive_proto::Role;
use hive_proto::agents::{AgentKind, AgentStatus, AgentVisibility};
use hive_store::{
    AgentLimits, AgentRow, CONVERSATION_OWNER_MAX_CHARS, CONVERSATION_STATE_MAX_CHARS,
    CONVERSATION_TEXT_MAX_BYTES, CONVERSATION_TITLE_MAX_CHARS, ConversationMessageRow,
    ConversationRow, MessageAuthor, NewUser, PageRequest, SchemaState, Store, StoreError,
    TurnStart, truncate_to_micros,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// `seconds` after T0, as stored.
fn at(seconds: i64) -> OffsetDateTime {
    truncate_to_micros(T0 + Duration::seconds(seconds))
}

async fn user(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    let user = NewUser {
        id,
        email: format!("{}@example.com", id.simple()),
        display_name: "Talker".to_owned(),
        role: Role::Viewer,
        password_hash: None,
        created_at: at(0),
    };
    store
        .users()
        .create(&user, note("user.create").append())
        .await
        .unwrap();
    id
}

/// A new agent of a new owner (conversations reference agents).
async fn agent(store: &dyn Store) -> Uuid {
    let owner_id = user(store).await;
    let id = Uuid::now_v7();
    let row = AgentRow {
        id,
        owner_id,
        name: format!("c-{}", id.simple()),
        description: String::new(),
        visibility: AgentVisibility::Private,
        kind: AgentKind::Conformance,
        runtime: "{}".to_owned(),
        skills: "[]".to_owned(),
        limits: AgentLimits {
            requests_per_minute: 0,
            tokens_per_day: 0,
            concurrent_tasks: 0,
            timeout_seconds: 0,
        },
        status: AgentStatus::Ready,
        status_detail: String::new(),
        version: 1,
        created_at: at(0),
        updated_at: at(0),
    };
    store
        .agents()
        .create(&row, note("agent.create").append())
        .await
        .unwrap();
    id
}

fn message(
    conversation_id: Uuid,
    author: MessageAuthor,
    text: &str,
    created_at: OffsetDateTime,
) -> ConversationMessageRow {
    ConversationMessageRow {
        id: Uuid::now_v7(),
        conversation_id,
        author,
        text: text.to_owned(),
        truncated: false,
        task_id: None,
        state: String::new(),
        created_at,
    }
}

/// A conversation of `owner` with `agent_id`, created (and its turn claimed) at `created`.
fn conversation(
    owner: &str,
    agent_id: Uuid,
    created: OffsetDateTime,
) -> (ConversationRow, ConversationMessageRow) {
    let id = Uuid::now_v7();
    let row = ConversationRow {
        id,
        owner: owner.to_owned(),
        user_id: None,
        agent_id,
        title: "Hello".to_owned(),
        open_task_id: None,
        turn_started_at: Some(created),
        created_at: created,
        updated_at: created,
    };
    let first = message(id, MessageAuthor::User, "Hello, agent", created);
    (row, first)
}

async fn create(store: &dyn Store, owner: &str, agent_id: Uuid, seconds: i64) -> ConversationRow {
    let (row, first) = conversation(owner, agent_id, at(seconds));
    store.conversations().create(&row, &first).await.unwrap();
    row
}

async fn messages(store: &dyn Store, id: Uuid) -> Vec<ConversationMessageRow> {
    store
        .conversations()
        .messages(id, &first(100))
        .await
        .unwrap()
        .items
}

async fn get(store: &dyn Store, owner: &str, id: Uuid) -> Option<ConversationRow> {
    store.conversations().get(owner, id).await.unwrap()
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

pub async fn conversations_round_trip_every_field(store: &dyn Store) {
    let state = store.schema_state().await.unwrap();
    assert!(
        matches!(state, SchemaState::UpToDate { version } if version >= 18),
        "the conversations migration (18) is applied: {state:?}"
    );
    let repo = store.conversations();
    let (agent_id, user_id) = (agent(store).await, user(store).await);
    let owner = format!("user:{user_id}");
    let id = Uuid::now_v7();
    let full = ConversationRow {
        id,
        owner: owner.clone(),
        user_id: Some(user_id),
        agent_id,
        title: "Ünïcode title ✓".to_owned(),
        open_task_id: Some(Uuid::now_v7()),
        turn_started_at: Some(at(3)),
        created_at: at(1),
        updated_at: at(2),
    };
    let full_first = ConversationMessageRow {
        id: Uuid::now_v7(),
        conversation_id: id,
        author: MessageAuthor::Agent,
        text: "A reply\nover lines — ünïcode".to_owned(),
        truncated: true,
        task_id: Some(Uuid::now_v7()),
        state: "input-required".to_owned(),
        created_at: at(4),
    };
    repo.create(&full, &full_first).await.unwrap();
    assert_eq!(get(store, &owner, id).await.as_ref(), Some(&full));
    assert_eq!(messages(store, id).await, vec![full_first.clone()]);

    // Everything optional left out, and times with nanoseconds (truncated, not rounded).
    let (mut bare, mut bare_first) = conversation("internal", agent_id, T0);
    bare.title = String::new();
    bare.turn_started_at = None;
    bare_first.text = String::new();
    repo.create(&bare, &bare_first).await.unwrap();
    let expected = ConversationRow {
        created_at: truncate_to_micros(T0),
        updated_at: truncate_to_micros(T0),
        ..bare.clone()
    };
    assert_eq!(get(store, "internal", bare.id).await, Some(expected));
    assert_eq!(
        messages(store, bare.id).await,
        vec![ConversationMessageRow {
            created_at: truncate_to_micros(T0),
            ..bare_first.clone()
        }]
    );

    // A used id is a conflict, for the conversation and for the message, and writes nothing.
    let (mut again, mut again_first) = conversation(&owner, agent_id, at(9));
    again.id = id;
    again_first.conversation_id = id;
    conflict(repo.create(&again, &again_first).await, "a used id");
    assert_eq!(get(store, &owner, id).await.as_ref(), Some(&full));
    assert_eq!(messages(store, id).await, vec![full_first.clone()]);
    let (fresh, mut reused_message) = conversation(&owner, agent_id, at(9));
    reused_message.id = full_first.id;
    conflict(
        repo.create(&fresh, &reused_message).await,
        "a used message id",
    );
    assert_eq!(
        get(store, &owner, fresh.id).await,
        None,
        "no conversation without its first message"
    );

    // The account and the agent must exist.
    for (what, row) in [
        (
            "an unknown account",
            ConversationRow {
                user_id: Some(Uuid::now_v7()),
                ..conversation(&owner, agent_id, at(9)).0
            },
        ),
        (
            "an unknown agent",
            conversation(&owner, Uuid::now_v7(), at(9)).0,
        ),
    ] {
        let opening = message(row.id, MessageAuthor::User, "hi", at(9));
        conflict(repo.create(&row, &opening).await, what);
        assert_eq!(get(store, &owner, row.id).await, None, "{what}");
    }
}

pub async fn conversations_belong_to_their_owner(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    let mine = create(store, "user:alice", agent_id, 0).await;
    repo.finish_turn(mine.id, None, None, at(1)).await.unwrap();
    let mine = get(store, "user:alice", mine.id).await.unwrap();

    assert_eq!(get(store, "user:mallory", mine.id).await, None);
    for agent_filter in [None, Some(agent_id)] {
        let listed = repo
            .list("user:mallory", agent_filter, &first(10))
            .await
            .unwrap();
        assert!(listed.items.is_empty() && listed.next_cursor.is_none());
    }
    let intruding = message(mine.id, MessageAuthor::User, "let me in", at(2));
    assert_eq!(
        repo.begin_turn("user:mallory", &intruding, at(100))
            .await
            .unwrap(),
        TurnStart::NotFound
    );
    let nowhere = message(Uuid::now_v7(), MessageAuthor::User, "anyone?", at(2));
    assert_eq!(
        repo.begin_turn("user:alice", &nowhere, at(100))
            .await
            .unwrap(),
        TurnStart::NotFound
    );
    let audited = audit_count(store).await;
    assert!(
        !repo
            .delete(
                "user:mallory",
                mine.id,
                note("conversation.delete").append()
            )
            .await
            .unwrap()
    );
    assert_eq!(
        audit_count(store).await,
        audited,
        "nothing deleted, no record"
    );

    assert_eq!(
        get(store, "user:alice", mine.id).await.as_ref(),
        Some(&mine),
        "the owner's conversation is untouched"
    );
    assert_eq!(messages(store, mine.id).await.len(), 1);
    let listed = repo.list("user:alice", None, &first(10)).await.unwrap();
    assert_eq!(listed.items, vec![mine]);
}

pub async fn conversations_page_by_latest_update(store: &dyn Store) {
    let repo = store.conversations();
    let (agent_a, agent_b) = (agent(store).await, agent(store).await);
    let mut all = Vec::new();
    for i in 0..5 {
        let agent_id = if i % 2 == 0 { agent_a } else { agent_b };
        // Pairs share a time, so ties must be broken by id.
        all.push(create(store, "user:alice", agent_id, i / 2).await);
    }
    create(store, "user:bob", agent_a, 10).await;
    // A new turn on the oldest makes it the latest.
    let message = message(all[0].id, MessageAuthor::User, "again", at(20));
    let TurnStart::Started(bumped) = repo
        .begin_turn("user:alice", &message, at(20))
        .await
        .unwrap()
    else {
        panic!("the turn starts");
    };
    assert_eq!(bumped.updated_at, at(20));
    all[0] = bumped;
    all.sort_by_key(|c| std::cmp::Reverse((c.updated_at, c.id)));

    let page_through = |agent_filter: Option<Uuid>| async move {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = PageRequest::new(2, cursor.as_deref()).unwrap();
            let got = repo.list("user:alice", agent_filter, &page).await.unwrap();
            assert!(got.items.len() <= 2);
            seen.extend(got.items);
            match got.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        seen
    };
    assert_eq!(
        page_through(None).await,
        all,
        "every conversation once, latest first"
    );
    let of_a: Vec<ConversationRow> = all
        .iter()
        .filter(|c| c.agent_id == agent_a)
        .cloned()
        .collect();
    assert_eq!(of_a.len(), 3);
    assert_eq!(page_through(Some(agent_a)).await, of_a);
    let none = repo
        .list("user:alice", Some(Uuid::now_v7()), &first(10))
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());
    let exact = repo.list("user:alice", None, &first(5)).await.unwrap();
    assert_eq!(exact.items.len(), 5);
    assert_eq!(exact.next_cursor, None, "no empty last page");
}

pub async fn a_turn_is_claimed_until_finished_or_stale(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    // Created with its first turn claimed at 0.
    let row = create(store, "user:alice", agent_id, 0).await;

    let early = message(row.id, MessageAuthor::User, "too early", at(5));
    assert_eq!(
        repo.begin_turn("user:alice", &early, at(-60))
            .await
            .unwrap(),
        TurnStart::Busy
    );
    assert_eq!(
        repo.begin_turn("user:alice", &early, at(0)).await.unwrap(),
        TurnStart::Busy,
        "claimed exactly at the bound: not stale"
    );
    assert_eq!(messages(store, row.id).await.len(), 1, "nothing written");
    assert_eq!(get(store, "user:alice", row.id).await.as_ref(), Some(&row));

    // The claimer died: a claim older than `stale_before` is taken over.
    let takeover = message(row.id, MessageAuthor::User, "anyone there?", at(10));
    let TurnStart::Started(started) = repo
        .begin_turn("user:alice", &takeover, at(1))
        .await
        .unwrap()
    else {
        panic!("a stale claim is taken over");
    };
    assert_eq!(
        started,
        ConversationRow {
            turn_started_at: Some(at(10)),
            updated_at: at(10),
            ..row.clone()
        }
    );
    assert_eq!(
        get(store, "user:alice", row.id).await.as_ref(),
        Some(&started)
    );

    // The reply ends the turn and leaves a task open.
    let task = Uuid::now_v7();
    let reply = ConversationMessageRow {
        task_id: Some(task),
        state: "input-required".to_owned(),
        ..message(row.id, MessageAuthor::Agent, "Which one?", at(11))
    };
    assert!(
        repo.finish_turn(row.id, Some(&reply), Some(task), at(12))
            .await
            .unwrap()
    );
    let finished = get(store, "user:alice", row.id).await.unwrap();
    assert_eq!(
        finished,
        ConversationRow {
            open_task_id: Some(task),
            turn_started_at: None,
            updated_at: at(12),
            ..row.clone()
        }
    );
    let stored = messages(store, row.id).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0], reply);
    assert_eq!(stored[1], takeover);

    // Released: the next turn starts whatever `stale_before` says, keeping the open task.
    let next = message(row.id, MessageAuthor::User, "The second", at(13));
    let TurnStart::Started(started) = repo
        .begin_turn("user:alice", &next, at(-1_000))
        .await
        .unwrap()
    else {
        panic!("a released conversation takes a turn");
    };
    assert_eq!(started.open_task_id, Some(task));
    assert_eq!(started.turn_started_at, Some(at(13)));
    // A turn without a reply closes the task.
    assert!(repo.finish_turn(row.id, None, None, at(14)).await.unwrap());
    let finished = get(store, "user:alice", row.id).await.unwrap();
    assert_eq!(
        (
            finished.open_task_id,
            finished.turn_started_at,
            finished.updated_at
        ),
        (None, None, at(14))
    );
    assert_eq!(messages(store, row.id).await.len(), 4);

    // A conversation gone meanwhile: nothing is written.
    let gone = Uuid::now_v7();
    let orphan = message(gone, MessageAuthor::Agent, "late reply", at(15));
    assert!(
        !repo
            .finish_turn(gone, Some(&orphan), Some(task), at(15))
            .await
            .unwrap()
    );
    assert!(messages(store, gone).await.is_empty());
}

pub async fn a_turn_has_one_claimer_under_concurrency(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    let row = create(store, "user:alice", agent_id, 0).await;
    assert!(repo.finish_turn(row.id, None, None, at(1)).await.unwrap());

    let racers: Vec<ConversationMessageRow> = (0..8)
        .map(|i| message(row.id, MessageAuthor::User, &format!("racer {i}"), at(2)))
        .collect();
    let results = join_all(
        racers
            .iter()
            .map(|m| repo.begin_turn("user:alice", m, at(-3_600))),
    )
    .await;
    let mut started = Vec::new();
    let mut busy = 0;
    for (racer, result) in racers.iter().zip(results) {
        match result.unwrap() {
            TurnStart::Started(_) => started.push(racer.clone()),
            TurnStart::Busy => busy += 1,
            TurnStart::NotFound => panic!("the conversation exists"),
        }
    }
    assert_eq!((started.len(), busy), (1, 7), "exactly one claimer");
    let stored = messages(store, row.id).await;
    assert_eq!(stored.len(), 2, "the first message and the winner's");
    assert_eq!(stored[0], started[0]);
}

pub async fn conversation_messages_page_newest_first(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    let (row, first_message) = conversation("user:alice", agent_id, at(0));
    repo.create(&row, &first_message).await.unwrap();
    let mut expected = vec![first_message];
    // Reply and next message share a time, so ties must be broken by id.
    for turn in 1..=2 {
        let reply = message(row.id, MessageAuthor::Agent, "reply", at(turn));
        assert!(
            repo.finish_turn(row.id, Some(&reply), None, at(turn))
                .await
                .unwrap()
        );
        let next = message(row.id, MessageAuthor::User, "next", at(turn));
        let started = repo.begin_turn("user:alice", &next, at(0)).await.unwrap();
        assert!(matches!(started, TurnStart::Started(_)), "{started:?}");
        expected.extend([reply, next]);
    }
    let other = create(store, "user:alice", agent_id, 0).await;
    expected.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id)));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(2, cursor.as_deref()).unwrap();
        let got = repo.messages(row.id, &page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items);
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen, expected, "every message once, newest first");
    assert_eq!(messages(store, other.id).await.len(), 1);
    let none = repo.messages(Uuid::now_v7(), &first(10)).await.unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());
}

pub async fn a_deleted_conversation_takes_its_messages(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    let doomed = create(store, "user:alice", agent_id, 0).await;
    let reply = message(doomed.id, MessageAuthor::Agent, "bye", at(1));
    assert!(
        repo.finish_turn(doomed.id, Some(&reply), None, at(1))
            .await
            .unwrap()
    );
    let kept = create(store, "user:alice", agent_id, 0).await;

    let audited = audit_count(store).await;
    assert!(
        !repo
            .delete(
                "user:alice",
                Uuid::now_v7(),
                note("conversation.delete").append()
            )
            .await
            .unwrap()
    );
    assert_eq!(
        audit_count(store).await,
        audited,
        "nothing deleted, no record"
    );
    assert!(
        repo.delete(
            "user:alice",
            doomed.id,
            note("conversation.delete").append()
        )
        .await
        .unwrap()
    );
    assert_eq!(audit_count(store).await, audited + 1);
    assert_eq!(get(store, "user:alice", doomed.id).await, None);
    assert!(messages(store, doomed.id).await.is_empty());
    assert!(
        !repo
            .delete(
                "user:alice",
                doomed.id,
                note("conversation.delete").append()
            )
            .await
            .unwrap(),
        "deleted once"
    );
    assert_eq!(audit_count(store).await, audited + 1);
    assert_eq!(
        get(store, "user:alice", kept.id).await.as_ref(),
        Some(&kept)
    );
    assert_eq!(messages(store, kept.id).await.len(), 1);
}

pub async fn a_conversation_delete_whose_audit_record_fails_is_unchanged(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    let row = create(store, "user:alice", agent_id, 0).await;
    let audited = audit_count(store).await;
    refused(
        repo.delete("user:alice", row.id, broken("conversation.delete").append())
            .await,
        "delete",
    );
    assert_eq!(audit_count(store).await, audited);
    assert_eq!(get(store, "user:alice", row.id).await, Some(row.clone()));
    assert_eq!(messages(store, row.id).await.len(), 1);
}

pub async fn idle_conversations_are_pruned_with_their_messages(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    let idle = create(store, "user:alice", agent_id, 0).await;
    let at_bound = create(store, "user:alice", agent_id, 3_600).await;
    // Old, but with a recent message.
    let revived = create(store, "user:bob", agent_id, 0).await;
    let reply = message(revived.id, MessageAuthor::Agent, "still here", at(7_200));
    assert!(
        repo.finish_turn(revived.id, Some(&reply), None, at(7_200))
            .await
            .unwrap()
    );

    assert_eq!(repo.prune_idle_since(at(0)).await.unwrap(), 0);
    assert_eq!(repo.prune_idle_since(at(3_600)).await.unwrap(), 1);
    assert_eq!(get(store, "user:alice", idle.id).await, None);
    assert!(messages(store, idle.id).await.is_empty());
    assert!(get(store, "user:alice", at_bound.id).await.is_some());
    assert!(get(store, "user:bob", revived.id).await.is_some());
    assert_eq!(messages(store, revived.id).await.len(), 2);
}

pub async fn conversations_go_with_their_agent(store: &dyn Store) {
    // Users are never deleted through the store (only deactivated), so of the two cascades
    // only the agent's can be exercised here; the schema declares both.
    let repo = store.conversations();
    let (doomed_agent, other_agent) = (agent(store).await, agent(store).await);
    let user_id = user(store).await;
    let owner = format!("user:{user_id}");
    let mut doomed = Vec::new();
    for seconds in 0..2 {
        let (row, opening) = conversation(&owner, doomed_agent, at(seconds));
        let row = ConversationRow {
            user_id: Some(user_id),
            ..row
        };
        repo.create(&row, &opening).await.unwrap();
        doomed.push(row);
    }
    let kept = create(store, &owner, other_agent, 0).await;

    assert!(
        store
            .agents()
            .delete(doomed_agent, None, note("agent.delete").append())
            .await
            .unwrap()
    );
    for row in &doomed {
        assert_eq!(get(store, &owner, row.id).await, None);
        assert!(messages(store, row.id).await.is_empty());
    }
    let listed = repo.list(&owner, None, &first(10)).await.unwrap();
    assert_eq!(listed.items, vec![kept.clone()]);
    assert_eq!(messages(store, kept.id).await.len(), 1);
}

pub async fn conversation_values_are_checked(store: &dyn Store) {
    let repo = store.conversations();
    let agent_id = agent(store).await;
    let over_text = "é".repeat(CONVERSATION_TEXT_MAX_BYTES / 2) + "x";
    let over_state = "s".repeat(CONVERSATION_STATE_MAX_CHARS + 1);

    let mut bad_conversations = Vec::new();
    for owner in [String::new(), "o".repeat(CONVERSATION_OWNER_MAX_CHARS + 1)] {
        bad_conversations.push(("owner", conversation(&owner, agent_id, at(0))));
    }
    let (mut long_title, first_message) = conversation("user:alice", agent_id, at(0));
    long_title.title = "t".repeat(CONVERSATION_TITLE_MAX_CHARS + 1);
    bad_conversations.push(("title", (long_title, first_message)));
    let (row, mut long_text) = conversation("user:alice", agent_id, at(0));
    long_text.text = over_text.clone();
    bad_conversations.push(("text", (row, long_text)));
    let (row, mut long_state) = conversation("user:alice", agent_id, at(0));
    long_state.state = over_state.clone();
    bad_conversations.push(("state", (row, long_state)));
    let (row, mut elsewhere) = conversation("user:alice", agent_id, at(0));
    elsewhere.conversation_id = Uuid::now_v7();
    bad_conversations.push(("a first message of another conversation", (row, elsewhere)));
    for (what, (row, first_message)) in &bad_conversations {
        invalid(repo.create(row, first_message).await, what);
        assert_eq!(get(store, &row.owner, row.id).await, None, "{what}");
        assert!(messages(store, row.id).await.is_empty(), "{what}");
    }

    // Up to the caps (characters, or bytes for the text) is fine, and kept as given.
    let (mut row, mut first_message) =
        conversation(&"ü".repeat(CONVERSATION_OWNER_MAX_CHARS), agent_id, at(0));
    row.title = "é".repeat(CONVERSATION_TITLE_MAX_CHARS);
    first_message.text = "é".repeat(CONVERSATION_TEXT_MAX_BYTES / 2);
    first_message.state = "ß".repeat(CONVERSATION_STATE_MAX_CHARS);
    repo.create(&row, &first_message).await.unwrap();
    assert_eq!(get(store, &row.owner, row.id).await.as_ref(), Some(&row));
    assert_eq!(messages(store, row.id).await, vec![first_message.clone()]);

    // Turns refuse the same, and neither claim nor release nor write.
    let released = {
        assert!(repo.finish_turn(row.id, None, None, at(1)).await.unwrap());
        get(store, &row.owner, row.id).await.unwrap()
    };
    for (what, text, state) in [
        ("text", over_text.as_str(), ""),
        ("state", "ok", over_state.as_str()),
    ] {
        let bad = ConversationMessageRow {
            state: state.to_owned(),
            ..message(row.id, MessageAuthor::User, text, at(2))
        };
        invalid(repo.begin_turn(&row.owner, &bad, at(2)).await, what);
        assert_eq!(
            get(store, &row.owner, row.id).await.as_ref(),
            Some(&released),
            "{what}: not claimed"
        );
    }
    let ok = message(row.id, MessageAuthor::User, "ok", at(3));
    let started = repo.begin_turn(&row.owner, &ok, at(3)).await.unwrap();
    let TurnStart::Started(claimed) = started else {
        panic!("{started:?}");
    };
    for (what, reply) in [
        (
            "text",
            message(row.id, MessageAuthor::Agent, &over_text, at(4)),
        ),
        (
            "state",
            ConversationMessageRow {
                state: over_state.clone(),
                ..message(row.id, MessageAuthor::Agent, "ok", at(4))
            },
        ),
        (
            "a reply to another conversation",
            message(Uuid::now_v7(), MessageAuthor::Agent, "ok", at(4)),
        ),
    ] {
        invalid(
            repo.finish_turn(row.id, Some(&reply), None, at(4)).await,
            what,
        );
        assert_eq!(
            get(store, &row.owner, row.id).await.as_ref(),
            Some(&claimed),
            "{what}: not released"
        );
    }
    assert_eq!(messages(store, row.id).await.len(), 2, "nothing written");
}
