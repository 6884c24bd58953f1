//! Credentials, agents and cards kept in process (`hive_core::kernel::changes`): whatever a
//! replica keeps, a revoked token, an ended session, a deactivated or demoted user loses access
//! at once on the replica that made the change and within a second on every other; an
//! announcement that is lost costs one second at most; a kept token is refused at its expiry.
//!
//! The test servers' clocks stand still unless a test moves them, so a kept entry never ages
//! out by itself here: only an announcement (or a moved clock) can end it.

use crate::support::*;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ME: &str = "/api/v1/auth/me";
const CARD: &str = "/.well-known/agent-card.json";

/// How long another replica may keep serving what changed.
const WITHIN: Duration = Duration::from_secs(1);

/// A user's session and API token, both used on the observing replica so that it keeps them.
struct Credentials {
    user_id: String,
    browser: Browser,
    token: String,
    token_id: String,
}

/// Signs `email` in on `changer` with a session and a token (role `operator`) and uses both
/// on `observer`, twice.
async fn credentials(
    changer: &TestServer,
    observer: &TestServer,
    admin: &Browser,
    email: &str,
) -> Credentials {
    let (user, browser) = add_user(changer, admin, email, "operator").await;
    let created = create_token(changer, &browser, json!({ "name": "kept" })).await;
    let kept = Credentials {
        user_id: user["id"].as_str().unwrap().to_owned(),
        browser,
        token: created["token"].as_str().unwrap().to_owned(),
        token_id: created["id"].as_str().unwrap().to_owned(),
    };
    for _ in 0..2 {
        assert_eq!(session_me(observer, &kept).await.0, 200);
        assert_eq!(token_me(observer, &kept).await.0, 200);
    }
    kept
}

/// `/auth/me` with the session: status and role.
async fn session_me(server: &TestServer, kept: &Credentials) -> (u16, Value) {
    answer(kept.browser.send(server, Method::GET, ME, None).await).await
}

/// `/auth/me` with the token: status and role.
async fn token_me(server: &TestServer, kept: &Credentials) -> (u16, Value) {
    answer(with_bearer(server, &kept.token, Method::GET, ME).await).await
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["role"].clone())
}

/// Asks until `probe` gives `want`: on the first ask when `at_once`, else within [`WITHIN`]
/// of now (the change has been answered). Never a fixed sleep.
async fn refused_in_time<F, Fut>(mut probe: F, want: (u16, Value), at_once: bool, what: &str)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let started = Instant::now();
    loop {
        let got = probe().await;
        if got == want {
            return;
        }
        assert!(
            !at_once && started.elapsed() < WITHIN,
            "{what}: still {got:?} after {:?} (want {want:?})",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each change made on `changer` ends what `observer` keeps: at once on the same replica,
/// within a second on another. `tag` tells the users of one run from another's.
async fn changes_end_kept_credentials(changer: &TestServer, observer: &TestServer, tag: &str) {
    let at_once = std::ptr::eq(changer, observer);
    let admin = login(changer, ADMIN_EMAIL, PASSWORD).await;
    let refused = || (401, Value::Null);
    let email = |who: &str| format!("{who}-{tag}@example.com");

    // A revoked token.
    let kept = credentials(changer, observer, &admin, &email("revoked")).await;
    let path = format!("/api/v1/tokens/{}", kept.token_id);
    let revoke = kept
        .browser
        .send(changer, Method::DELETE, &path, None)
        .await;
    assert_eq!(revoke.status(), 204);
    refused_in_time(
        || token_me(observer, &kept),
        refused(),
        at_once,
        "revoked token",
    )
    .await;
    assert_eq!(
        session_me(observer, &kept).await.0,
        200,
        "the session stays"
    );

    // A session ended by logout.
    let kept = credentials(changer, observer, &admin, &email("logout")).await;
    let logout = kept
        .browser
        .send(changer, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(logout.status(), 204);
    refused_in_time(
        || session_me(observer, &kept),
        refused(),
        at_once,
        "session after logout",
    )
    .await;

    // A session ended by an admin.
    let kept = credentials(changer, observer, &admin, &email("ended")).await;
    let path = format!("/api/v1/users/{}/sessions", kept.user_id);
    let ended = admin.send(changer, Method::DELETE, &path, None).await;
    assert_eq!(ended.status(), 200, "{:?}", ended.text().await);
    refused_in_time(
        || session_me(observer, &kept),
        refused(),
        at_once,
        "session ended by an admin",
    )
    .await;

    // A demoted user: the token drops to the new role, the sessions end.
    let kept = credentials(changer, observer, &admin, &email("demoted")).await;
    assert_eq!(token_me(observer, &kept).await.1, "operator");
    let path = format!("/api/v1/users/{}", kept.user_id);
    let demote = admin
        .send(
            changer,
            Method::PATCH,
            &path,
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(demote.status(), 200);
    refused_in_time(
        || token_me(observer, &kept),
        (200, json!("viewer")),
        at_once,
        "token of a demoted user",
    )
    .await;
    refused_in_time(
        || session_me(observer, &kept),
        refused(),
        at_once,
        "session of a demoted user",
    )
    .await;

    // A deactivated user.
    let kept = credentials(changer, observer, &admin, &email("deactivated")).await;
    let path = format!("/api/v1/users/{}", kept.user_id);
    let off = admin
        .send(
            changer,
            Method::PATCH,
            &path,
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(off.status(), 200);
    refused_in_time(
        || token_me(observer, &kept),
        refused(),
        at_once,
        "token of a deactivated user",
    )
    .await;
    refused_in_time(
        || session_me(observer, &kept),
        refused(),
        at_once,
        "session of a deactivated user",
    )
    .await;
}

#[tokio::test]
async fn one_replica_refuses_a_revoked_or_ended_credential_at_once() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        changes_end_kept_credentials(&server, &server, "here").await;
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn another_replica_refuses_a_revoked_or_ended_credential_within_a_second() {
    if !replicas_possible() {
        return;
    }
    let (a, b) = two_replicas().await;
    b.hive.state.bus.ready().await;
    setup_admin(&a).await;
    changes_end_kept_credentials(&a, &b, "a-to-b").await;
    // And the other way round.
    changes_end_kept_credentials(&b, &a, "b-to-a").await;
}

/// A change that reaches the database without an announcement (here: written behind Hive's
/// back) is served for as long as the entry lives, one second, and no longer.
#[tokio::test]
async fn a_lost_announcement_costs_one_second_at_most() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let kept = credentials(&server, &server, &admin, "lost@example.com").await;
        let sessions: Value = kept
            .browser
            .send(&server, Method::GET, "/api/v1/auth/sessions", None)
            .await
            .json()
            .await
            .unwrap();
        let session_id = sessions["items"][0]["id"].as_str().unwrap().to_owned();
        server
            .execute_sql(&format!(
                "DELETE FROM api_tokens WHERE id = '{}'; DELETE FROM sessions WHERE id = '{session_id}'",
                kept.token_id
            ))
            .await;
        // Kept: served without a read (the rows are gone).
        assert_eq!(token_me(&server, &kept).await.0, 200);
        assert_eq!(session_me(&server, &kept).await.0, 200);
        server.clock.advance(time::Duration::milliseconds(999));
        assert_eq!(token_me(&server, &kept).await.0, 200);
        server.clock.advance(time::Duration::milliseconds(1));
        assert_eq!(token_me(&server, &kept).await.0, 401, "one second later");
        assert_eq!(session_me(&server, &kept).await.0, 401, "one second later");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_token_that_expires_while_kept_is_refused_at_its_expiry() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let created = create_token(
            &server,
            &admin,
            json!({ "name": "short", "expiresInDays": 1 }),
        )
        .await;
        let token = created["token"].as_str().unwrap().to_owned();
        let expires_at = time::OffsetDateTime::parse(
            created["expiresAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let me = || async { with_bearer(&server, &token, Method::GET, ME).await.status() };
        // Read and kept half a second before the expiry: a second's lifetime would outlast it.
        server
            .clock
            .set(expires_at - time::Duration::milliseconds(500));
        assert_eq!(me().await, 200);
        server
            .clock
            .set(expires_at - time::Duration::microseconds(1));
        assert_eq!(me().await, 200);
        server.clock.set(expires_at);
        assert_eq!(me().await, 401, "refused at its expiry");
        server.stop().await.0.unwrap();
    }
}

/// Registers and starts a public conformance agent of `owner`'s; answers its id.
async fn public_agent(server: &TestServer, owner: &Browser, name: &str) -> String {
    crate::a2a::conformance_agent_with(
        server,
        owner,
        json!({ "name": name, "kind": "conformance", "visibility": "public" }),
    )
    .await
}

/// The anonymous instance card: its skills and ETag.
async fn anonymous_card(server: &TestServer) -> (Vec<String>, String) {
    let response = server.client.get(CARD).await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let card: Value = response.json().await.unwrap();
    let skills = card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|skill| skill["id"].as_str().unwrap().to_owned())
        .collect();
    (skills, etag)
}

/// A change of an agent on `changer` reaches `observer`'s cards (and their ETags) and calls.
async fn agent_changes_reach_cards(changer: &TestServer, observer: &TestServer) {
    let at_once = std::ptr::eq(changer, observer);
    let admin = login(changer, ADMIN_EMAIL, PASSWORD).await;
    let id = public_agent(changer, &admin, "kept-bot").await;
    let (skills, etag) = anonymous_card(observer).await;
    assert_eq!(skills, ["kept-bot"]);
    // Served again: the same card, so the same ETag.
    assert_eq!(anonymous_card(observer).await, (skills, etag.clone()));
    let agent_card = format!("/api/a2a/agents/{id}/agent-card.json");
    assert_eq!(observer.client.get(&agent_card).await.status(), 200);

    // Renamed: a new card, a new ETag; the old one no longer matches.
    let path = format!("/api/v1/agents/{id}");
    let renamed = admin
        .send(
            changer,
            Method::PATCH,
            &path,
            Some(json!({ "name": "renamed-bot" })),
        )
        .await;
    assert_eq!(renamed.status(), 200, "{:?}", renamed.text().await);
    let skills_of = || async {
        let (skills, _) = anonymous_card(observer).await;
        (200, json!(skills))
    };
    refused_in_time(skills_of, (200, json!(["renamed-bot"])), at_once, "renamed").await;
    let (_, renamed_etag) = anonymous_card(observer).await;
    assert_ne!(renamed_etag, etag);
    let stale = observer
        .client
        .request(Method::GET, CARD)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "the old ETag is another card's");

    // Made private: gone from anonymous callers' cards, its own card gone for them.
    let private = admin
        .send(
            changer,
            Method::PATCH,
            &path,
            Some(json!({ "visibility": "private" })),
        )
        .await;
    assert_eq!(private.status(), 200);
    refused_in_time(skills_of, (200, json!([])), at_once, "made private").await;
    let own_card = || async {
        (
            observer.client.get(&agent_card).await.status().as_u16(),
            Value::Null,
        )
    };
    refused_in_time(
        own_card,
        (404, Value::Null),
        at_once,
        "private agent's card",
    )
    .await;

    // Stopped: not listed, even to its owner.
    let stop = admin
        .send(changer, Method::POST, &format!("{path}/stop"), None)
        .await;
    assert_eq!(stop.status(), 200);
    let owners_card = || async {
        let card: Value = admin
            .send(observer, Method::GET, CARD, None)
            .await
            .json()
            .await
            .unwrap();
        (200, card["skills"].clone())
    };
    refused_in_time(owners_card, (200, json!([])), at_once, "stopped").await;
}

#[tokio::test]
async fn one_replica_serves_an_agents_change_at_once() {
    for backend in backends() {
        let server = crate::a2a::a2a_server(backend, &[]).await;
        setup_admin(&server).await;
        agent_changes_reach_cards(&server, &server).await;
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn another_replica_serves_an_agents_change_within_a_second() {
    if !replicas_possible() {
        return;
    }
    let (a, b) = two_replicas().await;
    b.hive.state.bus.ready().await;
    setup_admin(&a).await;
    agent_changes_reach_cards(&a, &b).await;
}

/// Without `MESH_BUS_HMAC_SECRET` the replicas sign their bus with a key derived from the
/// master key: one replica's event reaches the other, and an event someone else publishes
/// straight onto the same Redis channel (unsigned, or signed with another key) is dropped.
#[tokio::test]
async fn the_bus_is_signed_by_default_and_a_forged_event_is_dropped() {
    if !replicas_possible() {
        return;
    }
    let (a, b) = two_replicas().await;
    assert!(a.hive.config.secrets.bus_hmac_secret.is_none());
    let mut received = b.hive.state.bus.subscribe(hive_state::Channel::AgentStatus);
    let forger_redis = hive_state::RedisClient::new(
        &hive_testkit::redis_url().unwrap(),
        &a.hive.config.redis_key_prefix,
    )
    .unwrap();
    let unsigned = hive_state::EventBus::redis(forger_redis.clone(), "forger", None);
    let other_key = hive_state::EventBus::redis(
        forger_redis,
        "forger",
        Some(b"a-key-that-is-not-this-installations"),
    );
    for bus in [&a.hive.state.bus, &b.hive.state.bus] {
        bus.ready().await;
    }
    unsigned.ready().await;
    other_key.ready().await;
    let status = |agent: &str| hive_state::BusEvent::AgentStatus {
        agent_id: agent.into(),
        status: "ready".into(),
        previous: None,
        owner_id: None,
        visibility: None,
    };
    let dropped = || {
        let counters = b.hive.state.bus.counters();
        counters
            .bad_signature
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let dropped_before = dropped();
    unsigned
        .publish(status("forged-unsigned"), None)
        .await
        .unwrap();
    other_key
        .publish(status("forged-other-key"), None)
        .await
        .unwrap();
    a.hive
        .state
        .bus
        .publish(status("genuine"), None)
        .await
        .unwrap();
    // The forged events were published first, on other connections: whatever their order on
    // the way, the one event delivered is the genuine one.
    let event = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("the other replica's event arrives")
        .unwrap();
    assert_eq!(event.payload, status("genuine"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while dropped() - dropped_before < 2 {
        assert!(
            Instant::now() < deadline,
            "dropped {}",
            dropped() - dropped_before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(received.try_recv().is_err(), "a forged event was delivered");
    unsigned.close();
    other_key.close();
}
