//! `hive agent` against the data directory: registrations the server then shows.

use crate::accounts::create_admin;
use crate::process::run_to_exit;

#[tokio::test]
async fn agents_are_registered_listed_and_imported_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, "root@example.com").await;

    let created = run_to_exit(
        path,
        &[
            "agent",
            "create",
            "--owner",
            "root@example.com",
            "--name",
            "tck",
            "--kind",
            "conformance",
        ],
        &[],
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    assert!(created.1.contains("created agent tck"), "{}", created.1);

    // Credentials are never inline: refused, and nothing is printed back.
    let inline = r#"{"url":"https://x.example/a2a","apiKey":"sk-cli-inline-never"}"#;
    hive_testkit::capture::canary("sk-cli-inline-never");
    let refused = run_to_exit(
        path,
        &[
            "agent",
            "create",
            "--owner",
            "root@example.com",
            "--name",
            "leaky",
            "--kind",
            "remote",
            "--runtime",
            inline,
        ],
        &[],
    )
    .await;
    assert!(!refused.0.success());
    assert!(!refused.2.contains("sk-cli-inline-never"), "{}", refused.2);

    let card = serde_json::json!({
        "name": "Echo Agent",
        "supportedInterfaces": [{ "url": "http://127.0.0.1:1/a2a/v1",
            "protocolBinding": "JSONRPC", "protocolVersion": "1.0" }],
        "skills": [{ "id": "echo", "name": "Echo" }],
    });
    let host = hive_testkit::agent_card::CardHost::start(card).await;
    let allow = host.allowlist_entry();
    let egress = [("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", allow.as_str())];
    let import = [
        "agent",
        "import",
        &host.base_url,
        "--owner",
        "root@example.com",
    ];
    let preview = run_to_exit(path, &import, &egress).await;
    assert!(preview.0.success(), "{preview:?}");
    assert!(preview.1.contains("name: echo-agent"), "{}", preview.1);
    assert!(preview.1.contains("skills: echo"), "{}", preview.1);
    let mut create = import.to_vec();
    create.push("--create");
    let imported = run_to_exit(path, &create, &egress).await;
    assert!(imported.0.success(), "{imported:?}");
    // Without the allowlist entry the guard refuses loopback.
    let guarded = run_to_exit(path, &import, &[]).await;
    assert!(!guarded.0.success());
    assert_eq!(host.fetches(), 2);

    let started = run_to_exit(path, &["agent", "start", "tck"], &[]).await;
    assert!(started.0.success(), "{started:?}");
    assert!(started.1.contains("tck is ready"), "{}", started.1);
    // The imported agent's endpoint is on loopback, which the guard refuses (no request is
    // made): an error with its reason.
    let remote = run_to_exit(path, &["agent", "start", "echo-agent"], &[]).await;
    assert!(remote.0.success(), "{remote:?}");
    assert!(remote.1.contains("echo-agent is error"), "{}", remote.1);
    assert!(
        remote
            .1
            .contains("reason: refused by the outbound rules (port"),
        "{}",
        remote.1
    );
    assert!(
        remote.1.contains("HIVE_EGRESS_FETCH_HOST_ALLOWLIST"),
        "{}",
        remote.1
    );
    // A call through the gateway: the answer, or each event of a stream.
    let called = run_to_exit(path, &["agent", "call", "tck", "hello"], &[]).await;
    assert!(called.0.success(), "{called:?}");
    assert!(called.1.contains(": completed"), "{}", called.1);
    assert!(called.1.contains("Hello from TCK"), "{}", called.1);
    let streamed = run_to_exit(
        path,
        &[
            "agent",
            "call",
            "tck",
            "go",
            "--stream",
            "--message-id",
            "tck-stream-001-cli",
        ],
        &[],
    )
    .await;
    assert!(streamed.0.success(), "{streamed:?}");
    let events: Vec<&str> = streamed.1.lines().collect();
    assert_eq!(events.len(), 4, "{}", streamed.1);
    assert!(events[0].ends_with(": submitted"), "{}", streamed.1);
    assert!(
        events[2].ends_with("Stream hello from TCK"),
        "{}",
        streamed.1
    );
    assert_eq!(events[3], "status: completed", "{}", streamed.1);
    let stopped = run_to_exit(path, &["agent", "stop", "tck"], &[]).await;
    assert!(stopped.1.contains("tck is stopped"), "{}", stopped.1);
    let refused = run_to_exit(path, &["agent", "call", "tck", "hello"], &[]).await;
    assert!(!refused.0.success(), "a stopped agent is not called");
    assert!(
        refused.1.contains("not ready") || refused.2.contains("not ready"),
        "{refused:?}"
    );
    let missing = run_to_exit(path, &["agent", "start", "nobody"], &[]).await;
    assert!(!missing.0.success());

    let listed = run_to_exit(path, &["agent", "list"], &[]).await;
    assert!(listed.0.success(), "{listed:?}");
    let lines: Vec<&str> = listed.1.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listed.1);
    assert!(
        lines[1].contains("remote") && lines[1].contains(" echo-agent "),
        "{}",
        listed.1
    );
    assert!(
        lines[2].contains("conformance") && lines[2].contains(" tck "),
        "{}",
        listed.1
    );
}

#[tokio::test]
async fn an_agent_created_with_a_call_limit_takes_no_more() {
    // Each `hive agent call` is its own process: only a shared limiter (Redis) counts across them.
    let Some(redis) = hive_testkit::redis_url() else {
        return;
    };
    let prefix = format!("cli-limit-{}:", uuid::Uuid::new_v4().simple());
    let shared = [
        ("REDIS_URL", redis.as_str()),
        ("HIVE_REDIS_KEY_PREFIX", prefix.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_admin(path, "root@example.com").await;
    let create = |name: &'static str, limit: &'static str| {
        [
            "agent",
            "create",
            "--owner",
            "root@example.com",
            "--name",
            name,
            "--kind",
            "conformance",
            "--requests-per-minute",
            limit,
        ]
    };
    let out_of_range = run_to_exit(path, &create("none", "0"), &shared).await;
    assert!(!out_of_range.0.success(), "{out_of_range:?}");
    let created = run_to_exit(path, &create("scarce", "2"), &shared).await;
    assert!(created.0.success(), "{created:?}");
    let started = run_to_exit(path, &["agent", "start", "scarce"], &shared).await;
    assert!(started.0.success(), "{started:?}");
    for _ in 0..2 {
        let called = run_to_exit(path, &["agent", "call", "scarce", "hello"], &shared).await;
        assert!(called.0.success(), "{called:?}");
    }
    let third = run_to_exit(path, &["agent", "call", "scarce", "hello"], &shared).await;
    assert!(
        !third.0.success(),
        "the third call in a minute is refused: {third:?}"
    );
}
