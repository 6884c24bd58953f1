//! Chat from the API over real HTTP, on every backend: a conversation's turns streamed and
//! kept, a task the agent leaves open continued by the next message, paginated history,
//! conversations private to their caller, refusals that change nothing, and an `llm` agent
//! that remembers the conversation.

use crate::a2a::{a2a_server, conformance_agent_with, llm_server};
use crate::support::*;
use hive_a2a::sse::Decoder;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};

/// The events of a chat stream, each its name and its data.
pub(crate) async fn chat_events(mut response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut decoder = Decoder::new(1 << 20);
    let mut events = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        for event in decoder.feed(&chunk).unwrap() {
            events.push((event.event, serde_json::from_str(&event.data).unwrap()));
        }
    }
    events
}

/// Posts one chat message with a bearer token.
async fn post_chat(
    server: &TestServer,
    token: &str,
    agent: &str,
    body: Value,
) -> reqwest::Response {
    server
        .client
        .request(Method::POST, &format!("/api/v1/agents/{agent}/chat"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// One whole turn: its events, the last being the reply.
async fn turn(server: &TestServer, token: &str, agent: &str, body: Value) -> Vec<(String, Value)> {
    let events = chat_events(post_chat(server, token, agent, body).await).await;
    assert_eq!(events[0].0, "conversation", "{events:?}");
    assert_eq!(events.last().unwrap().0, "reply", "{events:?}");
    events
}

fn reply(events: &[(String, Value)]) -> &Value {
    &events.last().unwrap().1
}

async fn get_json(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let response = with_bearer(server, token, Method::GET, path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An API token of `browser`'s user that may chat, read and delete its conversations.
async fn chat_token(server: &TestServer, browser: &Browser) -> String {
    let token = create_token(
        server,
        browser,
        json!({ "name": "chat", "scopes": ["read", "write", "execute"] }),
    )
    .await;
    token["token"].as_str().unwrap().to_owned()
}

/// A server, its admin, a conformance agent everyone may call, and Alice and Bob (viewers)
/// with execute tokens.
async fn chat_server(
    backend: hive_testkit::TestBackend,
    vars: &[(&str, &str)],
    agent_limits: Value,
) -> (TestServer, Browser, String, String, String) {
    let server = a2a_server(backend, vars).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (_, alice) = add_user(&server, &admin, "alice@example.com", "viewer").await;
    let (_, bob) = add_user(&server, &admin, "bob@example.com", "viewer").await;
    let agent = conformance_agent_with(
        &server,
        &admin,
        json!({"name": "tck", "kind": "conformance", "visibility": "federation",
               "limits": agent_limits}),
    )
    .await;
    let alice_token = chat_token(&server, &alice).await;
    let bob_token = chat_token(&server, &bob).await;
    (server, admin, agent, alice_token, bob_token)
}

const ROOMY: fn() -> Value = || json!({"requestsPerMinute": 1000, "tokensPerDay": 0, "concurrentTasks": 8, "timeoutSeconds": 30});

#[tokio::test]
async fn a_conversation_streams_its_turns_and_keeps_them() {
    for backend in backends() {
        let (server, admin, agent, alice, bob) = chat_server(backend, &[], ROOMY()).await;

        let first = turn(&server, &alice, &agent, json!({"text": "hello\nthere"})).await;
        let started = &first[0].1;
        let conversation = started["conversation"]["id"].as_str().unwrap().to_owned();
        assert_eq!(started["conversation"]["title"], "hello");
        assert_eq!(started["conversation"]["agentId"], agent.as_str());
        assert_eq!(started["message"]["author"], "user");
        assert_eq!(started["message"]["text"], "hello\nthere");
        let states: Vec<&str> = first
            .iter()
            .filter(|(name, _)| name == "status")
            .map(|(_, data)| data["state"].as_str().unwrap())
            .collect();
        assert_eq!(states.last(), Some(&"completed"), "{first:?}");
        let deltas: String = first
            .iter()
            .filter(|(name, _)| name == "delta")
            .map(|(_, data)| data["text"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "Hello from TCK");
        assert_eq!(reply(&first)["text"], "Hello from TCK");
        assert_eq!(reply(&first)["state"], "completed");
        assert_eq!(reply(&first)["author"], "agent");
        let first_task = reply(&first)["taskId"].as_str().unwrap().to_owned();

        // The agent asks back: the task stays open for the next message, which continues it.
        let asked = turn(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "plan it",
                   "messageId": "tck-input-required-chat"}),
        )
        .await;
        assert_eq!(reply(&asked)["state"], "input-required");
        assert_eq!(reply(&asked)["text"], "Input required");
        let open = reply(&asked)["taskId"].as_str().unwrap().to_owned();
        assert_ne!(open, first_task);
        let (_, shown) = get_json(
            &server,
            &alice,
            &format!("/api/v1/conversations/{conversation}"),
        )
        .await;
        assert_eq!(shown["openTaskId"], open.as_str());
        assert_eq!(shown["answering"], false);

        let answered = turn(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "Lisbon"}),
        )
        .await;
        assert_eq!(reply(&answered)["taskId"], open.as_str(), "{answered:?}");
        assert_eq!(reply(&answered)["state"], "completed");
        let (_, shown) = get_json(
            &server,
            &alice,
            &format!("/api/v1/conversations/{conversation}"),
        )
        .await;
        assert_eq!(shown["openTaskId"], Value::Null);

        // The tasks are Alice's A2A tasks too, in the conversation's context.
        let listed = crate::a2a::call(
            &server,
            &alice,
            Some("1.0"),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "ListTasks",
                    "params": {"contextId": conversation}}),
        )
        .await;
        assert_eq!(
            listed["result"]["tasks"].as_array().unwrap().len(),
            2,
            "{listed}"
        );

        // The history, newest first, two at a time, without gaps.
        let mut texts = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => {
                    format!("/api/v1/conversations/{conversation}/messages?limit=2&cursor={cursor}")
                }
                None => format!("/api/v1/conversations/{conversation}/messages?limit=2"),
            };
            let (status, page) = get_json(&server, &alice, &path).await;
            assert_eq!(status, 200, "{page}");
            for item in page["items"].as_array().unwrap() {
                texts.push(format!(
                    "{}: {}",
                    item["author"].as_str().unwrap(),
                    item["text"].as_str().unwrap()
                ));
            }
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(
            texts,
            [
                "agent: Hello from TCK",
                "user: Lisbon",
                "agent: Input required",
                "user: plan it",
                "agent: Hello from TCK",
                "user: hello\nthere",
            ]
        );

        // Nobody else sees it: not Bob, not the admin.
        let (_, bobs) = get_json(&server, &bob, "/api/v1/conversations").await;
        assert_eq!(bobs["items"], json!([]));
        let conversation_path = format!("/api/v1/conversations/{conversation}");
        for path in [
            conversation_path.clone(),
            format!("{conversation_path}/messages"),
        ] {
            assert_eq!(get_json(&server, &bob, &path).await.0, 404, "{path}");
            let by_admin = admin.send(&server, Method::GET, &path, None).await;
            assert_eq!(by_admin.status(), 404, "{path}");
        }
        let continued = post_chat(
            &server,
            &bob,
            &agent,
            json!({"conversationId": conversation, "text": "mine now"}),
        )
        .await;
        assert_eq!(continued.status(), 404);
        let deleted = with_bearer(&server, &bob, Method::DELETE, &conversation_path).await;
        assert_eq!(deleted.status(), 404);
        let (_, alices) = get_json(&server, &alice, "/api/v1/conversations").await;
        assert_eq!(alices["items"].as_array().unwrap().len(), 1);
        assert_eq!(alices["items"][0]["id"], conversation.as_str());
        let filtered = format!("/api/v1/conversations?agentId={}", uuid::Uuid::new_v4());
        assert_eq!(
            get_json(&server, &alice, &filtered).await.1["items"],
            json!([])
        );

        // Alice deletes it: gone, and recorded without its contents.
        let response = with_bearer(&server, &alice, Method::DELETE, &conversation_path).await;
        assert_eq!(response.status(), 204);
        assert_eq!(get_json(&server, &alice, &conversation_path).await.0, 404);
        let records = records_of(&server, "conversation.delete").await;
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].target.as_deref(),
            Some(format!("conversation:{conversation}").as_str())
        );
        assert!(!records[0].detail.contains("Lisbon"));
        // Each turn was an audited A2A call of Alice's.
        let calls = records_of(&server, "a2a.call").await;
        assert_eq!(calls.len(), 4, "three turns and one ListTasks");
        assert!(
            calls
                .iter()
                .all(|record| !record.detail.contains("plan it"))
        );
    }
}

#[tokio::test]
async fn refused_messages_change_nothing_or_say_so() {
    for backend in backends() {
        let limits = json!({"requestsPerMinute": 2, "tokensPerDay": 0, "concurrentTasks": 8, "timeoutSeconds": 30});
        let (server, admin, agent, alice, _) = chat_server(backend, &[], limits).await;

        // Refused before anything is stored: no conversation comes of them.
        let unknown = uuid::Uuid::new_v4().to_string();
        for (agent_id, body, status) in [
            (unknown.as_str(), json!({"text": "hi"}), 404),
            (agent.as_str(), json!({"text": "   "}), 400),
            (agent.as_str(), json!({"text": "x".repeat(65_537)}), 400),
            (
                agent.as_str(),
                json!({"text": "hi", "messageId": "has space"}),
                400,
            ),
            (
                agent.as_str(),
                json!({"text": "hi", "conversationId": "nope"}),
                400,
            ),
            (
                agent.as_str(),
                json!({"text": "hi", "conversationId": unknown}),
                404,
            ),
            (agent.as_str(), json!({"text": "hi", "surprise": true}), 400),
        ] {
            let response = post_chat(&server, &alice, agent_id, body.clone()).await;
            assert_eq!(response.status().as_u16(), status, "{body}");
        }
        // A private agent of the admin's is not there for Alice.
        let private = conformance_agent_with(
            &server,
            &admin,
            json!({"name": "private", "kind": "conformance", "visibility": "private"}),
        )
        .await;
        assert_eq!(
            post_chat(&server, &alice, &private, json!({"text": "hi"}))
                .await
                .status(),
            404
        );
        // A token without the execute scope may read conversations but not chat.
        let reader = create_token(
            &server,
            &admin,
            json!({"name": "reader", "scopes": ["read"]}),
        )
        .await;
        let reader = reader["token"].as_str().unwrap();
        assert_eq!(
            post_chat(&server, reader, &agent, json!({"text": "hi"}))
                .await
                .status(),
            403
        );
        assert_eq!(
            get_json(&server, reader, "/api/v1/conversations").await.0,
            200
        );
        assert_eq!(
            get_json(&server, &alice, "/api/v1/conversations").await.1["items"],
            json!([])
        );

        // Over the agent's requests a minute: the message is kept, its reply says refused.
        let first = turn(&server, &alice, &agent, json!({"text": "one"})).await;
        let conversation = first[0].1["conversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        turn(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "two"}),
        )
        .await;
        let throttled = post_chat(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "three"}),
        )
        .await;
        assert_eq!(throttled.status(), 429);
        assert!(throttled.headers().contains_key("retry-after"));
        let (_, page) = get_json(
            &server,
            &alice,
            &format!("/api/v1/conversations/{conversation}/messages"),
        )
        .await;
        assert_eq!(page["items"][0]["state"], "refused", "{page}");
        assert_eq!(page["items"][1]["text"], "three");
        assert_eq!(page["items"].as_array().unwrap().len(), 6);
        // The refusal released the turn.
        let (_, shown) = get_json(
            &server,
            &alice,
            &format!("/api/v1/conversations/{conversation}"),
        )
        .await;
        assert_eq!(shown["answering"], false);

        // A stopped agent turns the message down: 409, and the history says refused.
        let stopped = admin
            .send(
                &server,
                Method::POST,
                &format!("/api/v1/agents/{agent}/stop"),
                None,
            )
            .await;
        assert_eq!(stopped.status(), 200);
        let refused = post_chat(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "four"}),
        )
        .await;
        assert_eq!(refused.status(), 409);
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not ready"),
            "{body}"
        );
        let (_, page) = get_json(
            &server,
            &alice,
            &format!("/api/v1/conversations/{conversation}/messages?limit=2"),
        )
        .await;
        assert_eq!(page["items"][0]["state"], "refused", "{page}");
        assert_eq!(page["items"][1]["text"], "four");
    }
}

#[tokio::test]
async fn one_turn_at_a_time_and_a_reply_is_kept_when_the_reader_leaves() {
    for backend in backends() {
        let (server, _, agent, alice, _) = chat_server(backend, &[], ROOMY()).await;
        let first = turn(&server, &alice, &agent, json!({"text": "start"})).await;
        let conversation = first[0].1["conversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // The conformance agent keeps this task working for about five seconds.
        let mut slow = post_chat(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "take your time",
                   "messageId": "test-resubscribe-message-id-chat"}),
        )
        .await;
        assert_eq!(slow.status(), 200);
        let mut decoder = Decoder::new(1 << 20);
        let mut seen = Vec::new();
        while !seen
            .iter()
            .any(|event: &hive_a2a::sse::Event| event.event == "conversation")
        {
            let chunk = slow
                .chunk()
                .await
                .unwrap()
                .expect("the stream's first event");
            seen.extend(decoder.feed(&chunk).unwrap());
        }
        let busy = post_chat(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "hurry"}),
        )
        .await;
        assert_eq!(busy.status(), 409);
        let (_, shown) = get_json(
            &server,
            &alice,
            &format!("/api/v1/conversations/{conversation}"),
        )
        .await;
        assert_eq!(shown["answering"], true);

        // The reader leaves; the turn still ends with its reply stored.
        drop(slow);
        let path = format!("/api/v1/conversations/{conversation}");
        let mut waited = 0;
        loop {
            let (_, shown) = get_json(&server, &alice, &path).await;
            if shown["answering"] == false {
                break;
            }
            waited += 1;
            assert!(waited < 400, "the turn never ended");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (_, page) = get_json(&server, &alice, &format!("{path}/messages?limit=1")).await;
        assert_eq!(page["items"][0]["state"], "completed", "{page}");
        assert_eq!(page["items"][0]["author"], "agent");
        // And the conversation takes the next message.
        turn(
            &server,
            &alice,
            &agent,
            json!({"conversationId": conversation, "text": "next"}),
        )
        .await;
    }
}

#[tokio::test]
async fn an_llm_agent_remembers_the_conversation() {
    for backend in backends() {
        let (llm, server) = llm_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let agent = conformance_agent_with(
            &server,
            &admin,
            json!({"name": "chat", "kind": "llm", "visibility": "private",
                   "runtime": {"baseUrl": llm.base_url(), "model": "test-model"}}),
        )
        .await;
        let token = chat_token(&server, &admin).await;

        let first = turn(&server, &token, &agent, json!({"text": "my name is Ada"})).await;
        let deltas: String = first
            .iter()
            .filter(|(name, _)| name == "delta")
            .map(|(_, data)| data["text"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "echo: my name is Ada");
        // The model's whole answer comes once, though the agent also ends with it as its message.
        assert_eq!(reply(&first)["text"], "echo: my name is Ada");
        let conversation = first[0].1["conversation"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let second = turn(
            &server,
            &token,
            &agent,
            json!({"conversationId": conversation, "text": "what is my name?"}),
        )
        .await;
        assert_eq!(reply(&second)["text"], "echo: what is my name?");
        let sent = llm.requests().last().unwrap().body["messages"].clone();
        assert_eq!(
            sent,
            json!([
                {"role": "user", "content": "my name is Ada"},
                {"role": "assistant", "content": "echo: my name is Ada"},
                {"role": "user", "content": "what is my name?"},
            ])
        );
    }
}

/// A model endpoint that refuses the agent's key: the chat says so with the provider's status,
/// and the agent leaves `ready` for `error` with the same reason until it is started again.
#[tokio::test]
async fn an_llm_agent_whose_key_is_refused_says_so_and_is_in_error() {
    use hive_testkit::llm::LlmMisbehaviour;
    for backend in backends() {
        let (llm, server) = llm_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let agent = conformance_agent_with(
            &server,
            &admin,
            json!({"name": "chat", "kind": "llm", "visibility": "private",
                   "runtime": {"baseUrl": llm.base_url(), "model": "test-model"}}),
        )
        .await;
        let token = chat_token(&server, &admin).await;
        let agent_path = format!("/api/v1/agents/{agent}");

        for status in [401, 403] {
            llm.misbehave(LlmMisbehaviour::Status(status));
            let events = turn(&server, &token, &agent, json!({"text": "hello"})).await;
            let expected = format!("the model endpoint refused the key (HTTP {status})");
            assert_eq!(reply(&events)["text"], expected, "{backend:?}: {events:?}");
            assert_eq!(reply(&events)["state"], "failed");

            let (_, row) = get_json(&server, &token, &agent_path).await;
            assert_eq!(row["status"], "error", "{row}");
            assert_eq!(
                row["statusDetail"],
                format!("the endpoint refused the key (HTTP {status})"),
                "{row}"
            );
            // Until it is started again, the agent takes no calls.
            let refused = post_chat(&server, &token, &agent, json!({"text": "again"})).await;
            let body = refused.text().await.unwrap();
            assert!(body.contains("the agent is not ready (error)"), "{body}");

            // Its key accepted again (a new key, or the provider fixed): started, it answers.
            llm.misbehave(LlmMisbehaviour::None);
            let started = admin
                .send(&server, Method::POST, &format!("{agent_path}/start"), None)
                .await;
            let row: Value = started.json().await.unwrap();
            assert_eq!(row["status"], "ready", "{row}");
            let answered = turn(&server, &token, &agent, json!({"text": "hi"})).await;
            assert_eq!(reply(&answered)["text"], "echo: hi");
        }
        let changes = records_of(&server, "agent.status").await;
        assert!(
            changes
                .iter()
                .any(|record| record.detail.contains("refused the key")),
            "{changes:?}"
        );
        server.stop().await.0.unwrap();
    }
}
