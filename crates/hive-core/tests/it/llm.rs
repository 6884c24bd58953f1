//! The `llm` runtime's client against the test endpoint, through the real egress guard and the
//! real vault; and the usage meter on the server's store and clock.

use hive_core::agents::LlmSettings;
use hive_core::agents::llm::{
    ChatDelta, ChatMessage, ChatRole, LlmClient, LlmError, Usage, UsageMeter,
};
use hive_core::identity::NewAccount;
use hive_core::kernel::caller::{Caller, Credential, RequestMeta};
use hive_core::kernel::egress::Purpose;
use hive_core::vault::secrets::NewSecret;
use hive_egress::RefusalReason;
use hive_proto::Role;
use hive_testkit::llm::{LlmMisbehaviour, TestLlm};
use hive_testkit::{TestBackend, TestServer, backends};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;
use uuid::Uuid;
use zeroize::Zeroizing;

const KEY: &str = "sk-test-0123456789abcdef-never-shown";
const PROMPT: &str = "confidential question";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Fixture {
    server: TestServer,
    endpoint: TestLlm,
    client: LlmClient,
    owner: Uuid,
    key_id: Uuid,
}

async fn fixture(backend: TestBackend) -> Fixture {
    let endpoint = TestLlm::start().await;
    let server = TestServer::builder(backend)
        .var(
            "HIVE_EGRESS_FETCH_HOST_ALLOWLIST",
            &endpoint.allowlist_entry(),
        )
        .start()
        .await;
    let hive = &server.hive;
    let account = NewAccount {
        email: "owner@example.com".to_owned(),
        display_name: "Owner".to_owned(),
        password: "a long enough test password".to_owned(),
    };
    let owner = hive
        .identity
        .create_first_admin(
            &account,
            &RequestMeta::default(),
            hive_core::kernel::audit::Principal::Cli,
        )
        .await
        .unwrap();
    let caller = Caller {
        user: Some(owner.clone()),
        role: Role::Admin,
        credential: Credential::Cli,
    };
    let secret = NewSecret {
        name: "llm-key".to_owned(),
        description: String::new(),
        value: Zeroizing::new(KEY.to_owned()),
    };
    let key = hive
        .secrets_service
        .create(&caller, &secret, &RequestMeta::default())
        .await
        .unwrap();
    let client = LlmClient::new(Arc::clone(&hive.egress), Arc::clone(&hive.secrets_service));
    Fixture {
        server,
        endpoint,
        client,
        owner: owner.id,
        key_id: key.id,
    }
}

fn purpose() -> Purpose {
    Purpose {
        principal: hive_core::kernel::audit::Principal::User(uuid::Uuid::nil()),
        feature: "llm",
        meta: RequestMeta::default(),
    }
}

fn settings(f: &Fixture) -> LlmSettings {
    LlmSettings {
        base_url: format!("{}/", f.endpoint.base_url()),
        model: "llama3.2:1b".to_owned(),
        system_prompt: "You are terse.".to_owned(),
        temperature: Some(0.25),
        max_tokens: Some(64),
        api_key_secret_id: Some(f.key_id),
    }
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::user("hello there"),
        ChatMessage::new(ChatRole::Assistant, "hi"),
        ChatMessage::user(PROMPT),
    ]
}

/// Every delta until the stream ends.
async fn drain(
    stream: &mut hive_core::agents::llm::ChatStream,
) -> Vec<Result<ChatDelta, LlmError>> {
    let mut all = Vec::new();
    while let Some(item) = stream.next().await {
        all.push(item);
    }
    all
}

fn assert_clean(error: &LlmError) {
    let text = error.to_string();
    for secret in [KEY, PROMPT, "sk-test"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(!format!("{error:?}").contains(KEY));
}

#[tokio::test]
async fn a_stream_arrives_in_order_with_its_usage_and_the_settings_reach_the_endpoint() {
    for backend in backends() {
        let f = fixture(backend).await;
        let mut stream = f
            .client
            .stream(f.owner, &settings(&f), &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap();
        let got: Vec<ChatDelta> = drain(&mut stream)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got,
            [
                ChatDelta::Text("echo: ".into()),
                ChatDelta::Text("confidential ".into()),
                ChatDelta::Text("question".into()),
                ChatDelta::Done {
                    // Words: 3 (system) + 2 + 1 + 2 sent, 3 answered.
                    usage: Some(Usage {
                        prompt_tokens: 8,
                        completion_tokens: 3
                    }),
                    finish_reason: Some("stop".into()),
                },
            ]
        );
        assert!(stream.next().await.is_none(), "nothing after the end");

        let requests = f.endpoint.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].body,
            json!({
                "model": "llama3.2:1b",
                "messages": [
                    { "role": "system", "content": "You are terse." },
                    { "role": "user", "content": "hello there" },
                    { "role": "assistant", "content": "hi" },
                    { "role": "user", "content": PROMPT },
                ],
                "stream": true,
                "stream_options": { "include_usage": true },
                "temperature": 0.25,
                "max_tokens": 64,
            })
        );
        assert_eq!(
            requests[0].authorization.as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
}

#[tokio::test]
async fn a_whole_completion_sends_only_what_is_set() {
    for backend in backends() {
        let f = fixture(backend).await;
        f.endpoint.set_reply(Some("All done."));
        let bare = LlmSettings {
            base_url: f.endpoint.base_url(),
            system_prompt: "  ".to_owned(),
            temperature: None,
            max_tokens: None,
            api_key_secret_id: None,
            ..settings(&f)
        };
        let (text, usage) = f
            .client
            .complete(
                f.owner,
                &bare,
                &[ChatMessage::user(PROMPT)],
                TIMEOUT,
                &purpose(),
            )
            .await
            .unwrap();
        assert_eq!(text, "All done.");
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 2,
                completion_tokens: 2
            })
        );
        let sent = &f.endpoint.requests()[0];
        assert_eq!(
            sent.body,
            json!({
                "model": "llama3.2:1b",
                "messages": [{ "role": "user", "content": PROMPT }],
                "stream": false,
            })
        );
        assert_eq!(sent.authorization, None, "no key configured, none sent");

        // Usage is optional: a stream without it still ends.
        f.endpoint.misbehave(LlmMisbehaviour::NoUsage);
        let mut stream = f
            .client
            .stream(
                f.owner,
                &bare,
                &[ChatMessage::user("x")],
                TIMEOUT,
                &purpose(),
            )
            .await
            .unwrap();
        let last = drain(&mut stream).await.pop().unwrap().unwrap();
        assert_eq!(
            last,
            ChatDelta::Done {
                usage: None,
                finish_reason: Some("stop".into())
            }
        );
    }
}

#[tokio::test]
async fn upstream_errors_and_malformed_chunks_are_clear_and_carry_no_key() {
    for backend in backends() {
        let f = fixture(backend).await;
        let settings = settings(&f);
        f.endpoint.misbehave(LlmMisbehaviour::Status(500));
        let error = f
            .client
            .stream(f.owner, &settings, &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap_err();
        assert_eq!(error, LlmError::Upstream { status: 500 });
        assert_clean(&error);
        f.endpoint.misbehave(LlmMisbehaviour::Status(401));
        let error = f
            .client
            .complete(f.owner, &settings, &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap_err();
        assert_eq!(error, LlmError::KeyRefused { status: 401 });
        assert_clean(&error);

        f.endpoint.misbehave(LlmMisbehaviour::MalformedChunk);
        let mut stream = f
            .client
            .stream(f.owner, &settings, &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap();
        let mut got = drain(&mut stream).await;
        let error = got.pop().unwrap().unwrap_err();
        assert!(matches!(error, LlmError::InvalidResponse(_)), "{error:?}");
        assert_clean(&error);
        assert_eq!(
            got.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [ChatDelta::Text("echo: ".into())],
            "the text before the bad chunk, then the error, then nothing"
        );
        assert!(stream.next().await.is_none());
        let error = f
            .client
            .complete(f.owner, &settings, &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap_err();
        assert!(matches!(error, LlmError::InvalidResponse(_)), "{error:?}");
        assert_clean(&error);
    }
}

#[tokio::test]
async fn the_egress_guard_refuses_an_unlisted_endpoint_before_anything_is_sent() {
    for backend in backends() {
        let f = fixture(backend).await;
        let unlisted = TestLlm::start().await;
        let elsewhere = LlmSettings {
            base_url: unlisted.base_url(),
            ..settings(&f)
        };
        let error = f
            .client
            .stream(f.owner, &elsewhere, &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap_err();
        assert!(matches!(error, LlmError::Refused(_)), "{error:?}");
        assert_ne!(error, LlmError::Refused(RefusalReason::Timeout));
        assert_clean(&error);
        let error = f
            .client
            .complete(f.owner, &elsewhere, &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap_err();
        assert!(matches!(error, LlmError::Refused(_)), "{error:?}");
        assert!(unlisted.requests().is_empty(), "no request reached it");
        assert!(f.endpoint.requests().is_empty());

        // Each refusal is audited by the guard, with the feature and no key or prompt.
        let filter = hive_store::AuditFilter {
            action: Some(hive_store::TextMatch::Exact("egress.refused".to_owned())),
            ..hive_store::AuditFilter::all()
        };
        let page = hive_store::PageRequest::first(10).unwrap();
        let records = f
            .server
            .hive
            .store
            .audit()
            .list(&filter, &page)
            .await
            .unwrap();
        assert_eq!(records.items.len(), 2);
        for record in &records.items {
            assert_eq!(record.actor, format!("user:{}", uuid::Uuid::nil()));
            assert!(
                record.detail.contains("\"feature\":\"llm\""),
                "{}",
                record.detail
            );
            assert!(!record.detail.contains(KEY) && !record.detail.contains(PROMPT));
        }
    }
}

#[tokio::test]
async fn the_key_is_the_owners_secret_or_nothing_is_sent() {
    for backend in backends() {
        let f = fixture(backend).await;
        for (owner, secret) in [(Uuid::now_v7(), f.key_id), (f.owner, Uuid::now_v7())] {
            let other = LlmSettings {
                api_key_secret_id: Some(secret),
                ..settings(&f)
            };
            let error = f
                .client
                .complete(owner, &other, &conversation(), TIMEOUT, &purpose())
                .await
                .unwrap_err();
            assert!(matches!(error, LlmError::Secret(_)), "{error:?}");
            assert_clean(&error);
        }
        assert!(f.endpoint.requests().is_empty());
    }
}

#[tokio::test]
async fn usage_is_recorded_and_counted_per_agent_and_utc_day() {
    for backend in backends() {
        let f = fixture(backend).await;
        let clock = &f.server.clock;
        let meter = UsageMeter::new(
            Arc::clone(&f.server.hive.store),
            Arc::clone(&f.server.hive.clock),
        );
        let (agent, other) = (Uuid::now_v7(), Uuid::now_v7());
        let principal = format!("user:{}", f.owner);

        clock.set(datetime!(2026-05-01 23:59:59.999 UTC));
        let yesterday = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 1_000,
        };
        meter
            .record(agent, &principal, "m", &yesterday)
            .await
            .unwrap();
        assert_eq!(meter.tokens_today(agent).await.unwrap(), 2_000);

        clock.set(datetime!(2026-05-02 00:00 UTC));
        assert_eq!(meter.tokens_today(agent).await.unwrap(), 0, "a new day");
        let (_, usage) = f
            .client
            .complete(f.owner, &settings(&f), &conversation(), TIMEOUT, &purpose())
            .await
            .unwrap();
        let usage = usage.unwrap();
        let row = meter
            .record(agent, &principal, "llama3.2:1b", &usage)
            .await
            .unwrap();
        clock.set(datetime!(2026-05-02 18:30 UTC));
        meter
            .record(other, &principal, "m", &yesterday)
            .await
            .unwrap();
        meter
            .record(
                agent,
                &principal,
                "m",
                &Usage {
                    prompt_tokens: 5,
                    completion_tokens: 0,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            meter.tokens_today(agent).await.unwrap(),
            usage.total() + 5,
            "today's rows of this agent only"
        );
        assert_eq!(meter.tokens_today(other).await.unwrap(), 2_000);

        let page = hive_store::PageRequest::first(10).unwrap();
        let listed = f
            .server
            .hive
            .store
            .usage()
            .list(agent, &page)
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 3);
        assert_eq!(listed.items[1], row);
        assert_eq!(row.principal, principal);
        assert_eq!(row.prompt_tokens, 8);
        assert_eq!(row.completion_tokens, 3, "echo: confidential question");
    }
}
