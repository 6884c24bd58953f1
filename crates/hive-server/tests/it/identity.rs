//! Setup, login, sessions, tokens and accounts over real HTTP, on every backend.

use crate::support::*;
use hive_core::identity::Identity;
use hive_testkit::{TestServer, backends, error_body};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;
use time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn setup_request(server: &TestServer, token: Option<&str>, email: &str) -> reqwest::Response {
    let request = server
        .client
        .request(Method::POST, "/api/v1/setup")
        .json(&json!({ "email": email, "displayName": "Admin", "password": PASSWORD }));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn setup_creates_exactly_one_admin_even_under_a_race() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let status: Value = server
            .client
            .get("/api/v1/setup/status")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["setupCompleted"], false);
        assert_eq!(status["publicRegistration"], false);

        // Without the token, or with a wrong one: refused, nothing created.
        let missing = setup_request(&server, None, "a@example.com").await;
        assert_eq!(missing.status(), 401);
        assert_eq!(error_body(missing).await.error.code, "invalid_credentials");
        let wrong = setup_request(
            &server,
            Some(&SETUP_TOKEN.replace('K', "k")),
            "a@example.com",
        )
        .await;
        assert_eq!(wrong.status(), 401);

        let attempts = (0..20).map(|i| {
            let server = &server;
            async move {
                setup_request(server, Some(SETUP_TOKEN), &format!("admin{i}@example.com"))
                    .await
                    .status()
                    .as_u16()
            }
        });
        let statuses = futures_util::future::join_all(attempts).await;
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?} on {backend:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{statuses:?}"
        );

        let status: Value = server
            .client
            .get("/api/v1/setup/status")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["setupCompleted"], true);
        let again = setup_request(&server, Some(SETUP_TOKEN), "late@example.com").await;
        assert_eq!(again.status(), 409);
        let users = server
            .hive
            .store
            .users()
            .list(&hive_store::PageRequest::first(100).unwrap())
            .await
            .unwrap();
        assert_eq!(users.items.len(), 1);
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_logout_ends_the_session() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let response = try_login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        let attributes: Vec<&str> = set_cookie.split("; ").collect();
        let (name, token) = attributes[0].split_once('=').unwrap();
        assert_eq!(name, "hive_session", "plain http: no __Host- prefix");
        assert_eq!(token.len(), 64, "256 bits in hex");
        for wanted in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
            assert!(attributes.contains(&wanted), "{set_cookie}");
        }
        assert!(!attributes.contains(&"Secure"));
        // Only a hash of the token is stored.
        let stored = server
            .hive
            .store
            .sessions()
            .find_by_token_hash(token)
            .await
            .unwrap();
        assert!(stored.is_none());

        let browser = Browser {
            cookie: attributes[0].to_owned(),
            origin: server.base_url.clone(),
        };
        let me: Value = browser.me(&server).await.json().await.unwrap();
        assert_eq!(me["user"]["email"], ADMIN_EMAIL);
        assert_eq!(me["role"], "admin");
        assert_eq!(me["authenticatedBy"], "session");

        let out = browser
            .send(&server, Method::POST, "/api/v1/auth/logout", None)
            .await;
        assert_eq!(out.status(), 204);
        assert!(
            out.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        let after = browser.me(&server).await;
        assert_eq!(after.status(), 401);
        assert!(after.headers().contains_key("www-authenticate"));
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn a_cross_origin_cookie_write_is_refused() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let browser = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let evil = Browser {
            origin: "https://evil.example".to_owned(),
            ..browser.clone()
        };
        let body = json!({ "email": "x@example.com", "role": "admin" });
        let refused = evil
            .send(
                &server,
                Method::POST,
                "/api/v1/users/invitations",
                Some(body.clone()),
            )
            .await;
        assert_eq!(refused.status(), 403);
        // No Origin at all is refused too.
        let bare = server
            .client
            .request(Method::POST, "/api/v1/users/invitations")
            .header("cookie", &browser.cookie)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), 403);
        // Reads need no Origin; the same write from the Hive origin works.
        let read = evil
            .send(&server, Method::GET, "/api/v1/auth/me", None)
            .await;
        assert_eq!(read.status(), 200);
        let allowed = browser
            .send(
                &server,
                Method::POST,
                "/api/v1/users/invitations",
                Some(body),
            )
            .await;
        assert_eq!(allowed.status(), 201);
        let audit = server
            .hive
            .store
            .audit()
            .list(
                &hive_store::AuditFilter::action("auth.cookie_origin"),
                &hive_store::PageRequest::first(10).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(audit.items.len(), 2);
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn sessions_end_after_30_idle_minutes_and_12_hours() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let browser = login(&server, ADMIN_EMAIL, PASSWORD).await;
        // Activity every 29 minutes keeps it alive...
        for _ in 0..4 {
            server.clock.advance(Duration::minutes(29));
            assert_eq!(browser.me(&server).await.status(), 200);
        }
        // ...30 idle minutes end it.
        server.clock.advance(Duration::minutes(30));
        assert_eq!(browser.me(&server).await.status(), 401);

        let busy = login(&server, ADMIN_EMAIL, PASSWORD).await;
        for _ in 0..(12 * 60 / 20 - 1) {
            server.clock.advance(Duration::minutes(20));
            assert_eq!(busy.me(&server).await.status(), 200);
        }
        // 12 hours after login, however busy.
        server.clock.advance(Duration::minutes(20));
        assert_eq!(busy.me(&server).await.status(), 401);
        server.stop().await.0.unwrap();
    }
}

/// The status and body of a failed login, without the request id.
async fn refusal(server: &TestServer, email: &str, password: &str) -> (u16, Value) {
    let response = try_login(server, email, password).await;
    let status = response.status().as_u16();
    let mut body: Value = response.json().await.unwrap();
    body["error"].as_object_mut().unwrap().remove("requestId");
    (status, body)
}

#[tokio::test]
async fn login_throttles_and_locks_without_telling_accounts_apart() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let unknown = refusal(&server, "nobody@example.com", PASSWORD).await;
        assert_eq!(unknown.0, 401);
        assert_eq!(unknown.1["error"]["code"], "invalid_credentials");
        let wrong = refusal(&server, ADMIN_EMAIL, "wrong password here").await;
        assert_eq!(wrong, unknown, "wrong password = unknown user");

        // Right after a failure the account waits 1 s: even the right password is refused.
        let throttled = refusal(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(throttled, unknown, "throttled = unknown user");
        server.clock.advance(Duration::seconds(1));
        assert_eq!(
            try_login(&server, ADMIN_EMAIL, PASSWORD).await.status(),
            200
        );

        // 100 failures in a day lock the account until the day ends.
        let admin = server
            .hive
            .store
            .users()
            .find_by_email(ADMIN_EMAIL)
            .await
            .unwrap()
            .unwrap();
        let now = hive_proto::Clock::now(server.clock.as_ref());
        let day = now.unix_timestamp().div_euclid(86_400);
        for _ in 0..100 {
            server
                .hive
                .store
                .users()
                .record_login_failure(admin.id, day, now)
                .await
                .unwrap();
        }
        server.clock.advance(Duration::minutes(1));
        let locked = refusal(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(locked, unknown, "locked = unknown user");
        let tomorrow = (now.date() + Duration::days(1)).midnight().assume_utc();
        server.clock.set(tomorrow);
        assert_eq!(
            try_login(&server, ADMIN_EMAIL, PASSWORD).await.status(),
            200
        );

        let failures = server
            .hive
            .store
            .audit()
            .list(
                &hive_store::AuditFilter::action("auth.login"),
                &hive_store::PageRequest::first(100).unwrap(),
            )
            .await
            .unwrap();
        let reasons: Vec<&str> = failures
            .items
            .iter()
            .filter(|r| r.outcome == hive_store::AuditOutcome::Failure)
            .map(|r| r.detail.as_str())
            .collect();
        for reason in [
            "unknown_account",
            "wrong_password",
            "delayed",
            "locked_for_the_day",
        ] {
            assert!(
                reasons.iter().any(|d| d.contains(reason)),
                "{reason} audited: {reasons:?}"
            );
        }
        server.stop().await.0.unwrap();
    }
}

/// Sends `count` logins of `email` with a wrong password at once, spread over `servers`, and
/// answers their refusals.
async fn concurrent_wrong_logins(
    servers: &[&TestServer],
    email: &str,
    count: usize,
) -> Vec<(u16, Value)> {
    let attempts =
        (0..count).map(|i| refusal(servers[i % servers.len()], email, "wrong password here"));
    futures_util::future::join_all(attempts).await
}

/// The `auth.login` failures recorded with `reason`.
async fn login_failures(server: &TestServer, reason: &str) -> usize {
    records_of(server, "auth.login")
        .await
        .iter()
        .filter(|r| r.detail.contains(&format!("\"{reason}\"")))
        .count()
}

/// The per-account delay is claimed before the password hash, not read: of 20 concurrent
/// wrong passwords for one account one is checked, the others get the throttled answer (the
/// same as for an unknown user). The clock stands still, so the delay after that one failure
/// never ends within the test.
#[tokio::test]
async fn concurrent_logins_for_one_account_are_checked_one_at_a_time() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let unknown = refusal(&server, "nobody@example.com", PASSWORD).await;
        let answers = concurrent_wrong_logins(&[&server], ADMIN_EMAIL, 20).await;
        assert!(
            answers.iter().all(|a| *a == unknown),
            "{backend:?}: {answers:?}"
        );
        assert_eq!(
            login_failures(&server, "wrong_password").await,
            1,
            "{backend:?}"
        );
        let refused = login_failures(&server, "attempt_in_flight").await
            + login_failures(&server, "delayed").await;
        assert_eq!(refused, 19, "{backend:?}");
        // An unknown address is claimed the same way and answers the same: concurrently, and
        // while its claim is held every attempt is refused as in flight (recorded without a
        // target, as there is no account).
        let answers = concurrent_wrong_logins(&[&server], "nobody@example.com", 20).await;
        assert!(answers.iter().all(|a| *a == unknown), "{backend:?}");
        let in_flight_before = unknown_address_in_flight(&server).await;
        let claim = server
            .hive
            .state
            .claims
            .claim(
                &Identity::attempt_claim_key("nobody@example.com"),
                std::time::Duration::from_secs(3600),
            )
            .await
            .unwrap()
            .expect("the unknown address's claim is free between rounds");
        let answers = concurrent_wrong_logins(&[&server], "nobody@example.com", 20).await;
        assert!(answers.iter().all(|a| *a == unknown), "{backend:?}");
        assert_eq!(
            unknown_address_in_flight(&server).await - in_flight_before,
            20,
            "{backend:?}"
        );
        claim.release().await.unwrap();
        // The claim is given back: past the delay the right password signs in.
        server.clock.advance(Duration::seconds(1));
        let signed_in = try_login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(signed_in.status(), 200, "{backend:?}");
        server.stop().await.0.unwrap();
    }
}

/// The same across two replicas sharing PostgreSQL and Redis: the claim is in Redis.
#[tokio::test]
async fn concurrent_logins_on_two_replicas_are_checked_one_at_a_time() {
    if !replicas_possible() {
        return;
    }
    let (a, b) = two_replicas().await;
    setup_admin(&a).await;
    let unknown = refusal(&b, "nobody@example.com", PASSWORD).await;
    let answers = concurrent_wrong_logins(&[&a, &b], ADMIN_EMAIL, 20).await;
    assert!(answers.iter().all(|x| *x == unknown), "{answers:?}");
    // One database: each replica's records are in the one audit log.
    assert_eq!(login_failures(&a, "wrong_password").await, 1);
    let refused =
        login_failures(&a, "attempt_in_flight").await + login_failures(&a, "delayed").await;
    assert_eq!(refused, 19);
    // The claims were Redis's all along, not each replica's own (which would let one attempt
    // per replica through).
    for replica in [&a, &b] {
        let counters = replica.hive.state.claim_counters.as_ref().unwrap();
        assert_eq!(counters.local_fallback_claims.load(Ordering::Relaxed), 0);
    }
}

/// The `auth.login` refusals of an attempt in flight on an address with no account.
async fn unknown_address_in_flight(server: &TestServer) -> usize {
    records_of(server, "auth.login")
        .await
        .iter()
        .filter(|r| r.target.is_none() && r.detail.contains("\"attempt_in_flight\""))
        .count()
}

/// Sends a login over a connection of its own, written out by hand so that the request is
/// known to be sent in full; dropping the connection is the client going away.
async fn send_login(server: &TestServer, email: &str, password: &str) -> TcpStream {
    let body = json!({ "email": email, "password": password }).to_string();
    let address = server.base_url.trim_start_matches("http://");
    let mut connection = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    connection
}

/// Whether `key` is claimed — by someone else — before `connection` gets an answer. Probes by
/// claiming it (and giving a probe's claim straight back).
async fn claimed_before_an_answer(
    claims: &Arc<dyn hive_state::Claims>,
    key: &str,
    connection: &TcpStream,
) -> bool {
    let probing = async {
        loop {
            match claims
                .claim(key, StdDuration::from_secs(3600))
                .await
                .unwrap()
            {
                None => return true,
                Some(probe) => probe.release().await.unwrap(),
            }
            let mut peek = [0u8; 1];
            if !matches!(connection.try_read(&mut peek), Err(e) if e.kind() == ErrorKind::WouldBlock)
            {
                return false;
            }
            tokio::time::sleep(StdDuration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(StdDuration::from_secs(20), probing)
        .await
        .expect("the login reaches its claim or is answered")
}

/// A login whose client goes away mid-attempt gives its account's claim back with the
/// cancelled request, so the real user can sign in at once — not after the claim's TTL (on the
/// manual clock, which stands still here, the in-memory claim would never lapse).
#[tokio::test]
async fn a_login_dropped_mid_attempt_leaves_the_account_free() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let claims = Arc::clone(&server.hive.state.claims);
        let key = Identity::attempt_claim_key(ADMIN_EMAIL);
        // With its claim taken, the login cannot get past its first write.
        let held = server.hold_writes_to("users").await;
        let mut tries = 0;
        let connection = loop {
            tries += 1;
            assert!(tries <= 10, "{backend:?}: the probe kept racing the login");
            let connection = send_login(&server, ADMIN_EMAIL, PASSWORD).await;
            // A probe that wins the race has the login refused as in flight: send another.
            if claimed_before_an_answer(&claims, &key, &connection).await {
                break connection;
            }
        };
        drop(connection);
        held.release().await;
        // Far below the TTL, on a clock that does not move.
        let free = tokio::time::timeout(StdDuration::from_secs(3), async {
            loop {
                if let Some(claim) = claims
                    .claim(&key, StdDuration::from_secs(3600))
                    .await
                    .unwrap()
                {
                    return claim;
                }
                tokio::time::sleep(StdDuration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{backend:?}: the dropped login still holds the claim"));
        free.release().await.unwrap();
        assert_eq!(
            try_login(&server, ADMIN_EMAIL, PASSWORD).await.status(),
            200,
            "{backend:?}"
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn password_change_needs_a_fresh_login_and_ends_other_sessions() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let here = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let elsewhere = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let new_password = "a brand new passphrase";
        let change = json!({ "currentPassword": PASSWORD, "newPassword": new_password });

        assert_needs_reauthentication(
            &server,
            &here,
            Method::POST,
            "/api/v1/auth/password",
            change.clone(),
        )
        .await;

        let weak = here
            .send(
                &server,
                Method::POST,
                "/api/v1/auth/password",
                Some(json!({ "currentPassword": PASSWORD, "newPassword": "password1234" })),
            )
            .await;
        assert_eq!(weak.status(), 400);
        let changed = here
            .send(&server, Method::POST, "/api/v1/auth/password", Some(change))
            .await;
        assert_eq!(changed.status(), 204);
        assert_eq!(here.me(&server).await.status(), 200, "this session stays");
        assert_eq!(elsewhere.me(&server).await.status(), 401, "the others end");
        assert_eq!(
            try_login(&server, ADMIN_EMAIL, PASSWORD).await.status(),
            401
        );
        server.clock.advance(Duration::seconds(2));
        assert_eq!(
            try_login(&server, ADMIN_EMAIL, new_password).await.status(),
            200
        );
        server.stop().await.0.unwrap();
    }
}

/// The current password of a password change is checked like a login's: a wrong one counts
/// toward the account's delay and is audited; while the delay runs even the right one waits.
#[tokio::test]
async fn a_wrong_current_password_is_throttled_and_audited_like_a_login() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let browser = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let change = |current: &str| json!({ "currentPassword": current, "newPassword": "a brand new passphrase" });
        let wrong = browser
            .send(
                &server,
                Method::POST,
                "/api/v1/auth/password",
                Some(change("not it at all")),
            )
            .await;
        assert_eq!(wrong.status(), 401, "{backend:?}");
        let delayed = browser
            .send(
                &server,
                Method::POST,
                "/api/v1/auth/password",
                Some(change(PASSWORD)),
            )
            .await;
        assert_eq!(
            delayed.status(),
            401,
            "{backend:?}: the delay of a failure applies"
        );
        let reasons: Vec<String> = records_of(&server, "user.change_password")
            .await
            .iter()
            .map(|record| {
                assert_eq!(record.outcome, hive_store::AuditOutcome::Failure);
                let detail: Value = serde_json::from_str(&record.detail).unwrap();
                detail["reason"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(reasons.len(), 2, "{backend:?}");
        assert!(
            reasons.contains(&"wrong_password".to_owned()),
            "{backend:?}: {reasons:?}"
        );
        assert!(
            reasons.contains(&"delayed".to_owned()),
            "{backend:?}: {reasons:?}"
        );
        server.clock.advance(Duration::seconds(2));
        let changed = browser
            .send(
                &server,
                Method::POST,
                "/api/v1/auth/password",
                Some(change(PASSWORD)),
            )
            .await;
        assert_eq!(changed.status(), 204, "{backend:?}");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn tokens_follow_scopes_expiry_and_their_owner() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, operator) = add_user(&server, &admin, "op@example.com", "operator").await;

        let refused = operator
            .send(
                &server,
                Method::POST,
                "/api/v1/tokens",
                Some(json!({ "name": "too high", "role": "admin" })),
            )
            .await;
        assert_eq!(
            refused.status(),
            403,
            "a token's role cannot exceed its owner's"
        );
        let full = create_token(
            &server,
            &operator,
            json!({ "name": "ci", "expiresInDays": 30 }),
        )
        .await;
        let token = full["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("hive_") && token.len() == 48, "{token}");
        assert_eq!(full["role"], "operator");
        let read_only = create_token(
            &server,
            &operator,
            json!({ "name": "ro", "scopes": ["read"] }),
        )
        .await;
        let read_token = read_only["token"].as_str().unwrap();

        let me: Value = with_bearer(&server, &token, Method::GET, "/api/v1/auth/me")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (me["role"].as_str(), me["authenticatedBy"].as_str()),
            (Some("operator"), Some("token"))
        );
        // A read-only token reads but does not write.
        assert_eq!(
            with_bearer(&server, read_token, Method::GET, "/api/v1/tokens")
                .await
                .status(),
            200
        );
        let write = with_bearer(
            &server,
            read_token,
            Method::DELETE,
            &format!("/api/v1/tokens/{}", full["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(write.status(), 403);
        // A token cannot mint tokens (a sensitive change needs a fresh password check).
        let minted = server
            .client
            .request(Method::POST, "/api/v1/tokens")
            .bearer_auth(&token)
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(minted.status(), 403);
        // The listing never shows a token again.
        let listed: Value = with_bearer(&server, &token, Method::GET, "/api/v1/tokens")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 2);
        assert!(!listed.to_string().contains(&token));
        // Use is recorded: the token used above has a last-use time, the unused one none.
        let used = |id: &Value| {
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["id"] == *id)
                .unwrap()["lastUsedAt"]
                .clone()
        };
        assert!(used(&full["id"]).is_string(), "{listed}");
        assert!(used(&read_only["id"]).is_string(), "read-only was used too");

        // The admin ends another user's session; the user can end only their own.
        let sessions: Value = operator
            .send(&server, Method::GET, "/api/v1/auth/sessions", None)
            .await
            .json()
            .await
            .unwrap();
        let session_id = sessions["items"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(sessions["items"][0]["current"], true);
        let ended = admin
            .send(
                &server,
                Method::DELETE,
                &format!("/api/v1/auth/sessions/{session_id}"),
                None,
            )
            .await;
        assert_eq!(ended.status(), 204);
        assert_eq!(operator.me(&server).await.status(), 401);
        let operator = login(&server, "op@example.com", PASSWORD).await;

        // Demoting the owner lowers the token's role; deactivating stops it.
        let user_path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
        let demoted = admin
            .send(
                &server,
                Method::PATCH,
                &user_path,
                Some(json!({ "role": "viewer" })),
            )
            .await;
        assert_eq!(demoted.status(), 200);
        let me: Value = with_bearer(&server, &token, Method::GET, "/api/v1/auth/me")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["role"], "viewer");
        assert_eq!(
            operator.me(&server).await.status(),
            401,
            "a role change ends the sessions"
        );
        let off = admin
            .send(
                &server,
                Method::PATCH,
                &user_path,
                Some(json!({ "active": false })),
            )
            .await;
        assert_eq!(off.status(), 200);
        assert_eq!(
            with_bearer(&server, &token, Method::GET, "/api/v1/auth/me")
                .await
                .status(),
            401
        );
        let on = admin
            .send(
                &server,
                Method::PATCH,
                &user_path,
                Some(json!({ "active": true })),
            )
            .await;
        assert_eq!(on.status(), 200);
        assert_eq!(
            with_bearer(&server, &token, Method::GET, "/api/v1/auth/me")
                .await
                .status(),
            200
        );

        // Expiry.
        server.clock.advance(Duration::days(31));
        assert_eq!(
            with_bearer(&server, &token, Method::GET, "/api/v1/auth/me")
                .await
                .status(),
            401
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn the_internal_token_acts_as_an_operator() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let me: Value = with_bearer(&server, INTERNAL_TOKEN, Method::GET, "/api/v1/auth/me")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["role"], "operator");
        assert_eq!(me["authenticatedBy"], "internal");
        assert_eq!(
            with_bearer(&server, INTERNAL_TOKEN, Method::GET, "/api/v1/users")
                .await
                .status(),
            403
        );
        assert_eq!(
            with_bearer(
                &server,
                &INTERNAL_TOKEN[1..],
                Method::GET,
                "/api/v1/auth/me"
            )
            .await
            .status(),
            401
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn the_last_admin_stays_and_nobody_raises_their_own_role() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let admin_user = setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let own = format!("/api/v1/users/{}", admin_user["id"].as_str().unwrap());
        for change in [json!({ "role": "operator" }), json!({ "active": false })] {
            let refused = admin.send(&server, Method::PATCH, &own, Some(change)).await;
            assert_eq!(refused.status(), 409);
        }
        let (viewer_user, viewer) = add_user(&server, &admin, "v@example.com", "viewer").await;
        let viewer_path = format!("/api/v1/users/{}", viewer_user["id"].as_str().unwrap());
        let raise = viewer
            .send(
                &server,
                Method::PATCH,
                &viewer_path,
                Some(json!({ "role": "admin" })),
            )
            .await;
        assert_eq!(raise.status(), 403, "admin routes are closed to a viewer");
        let raise_me = viewer
            .send(
                &server,
                Method::PATCH,
                "/api/v1/auth/me",
                Some(json!({ "role": "admin" })),
            )
            .await;
        assert_eq!(
            raise_me.status(),
            400,
            "role is not a field of one's own profile"
        );

        // Two admins demoting each other at once: one stays.
        let (second_user, second) = add_user(&server, &admin, "a2@example.com", "admin").await;
        let second_path = format!("/api/v1/users/{}", second_user["id"].as_str().unwrap());
        let (a, b) = tokio::join!(
            admin.send(
                &server,
                Method::PATCH,
                &second_path,
                Some(json!({ "active": false }))
            ),
            second.send(
                &server,
                Method::PATCH,
                &own,
                Some(json!({ "active": false }))
            ),
        );
        // One wins; the other is refused by the guard (409), or arrives after its own
        // deactivation has ended its session (401).
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert!(
            statuses == [200, 401] || statuses == [200, 409],
            "{statuses:?}"
        );
        let page = hive_store::PageRequest::first(10).unwrap();
        let users = server.hive.store.users().list(&page).await.unwrap().items;
        let active_admins = users
            .iter()
            .filter(|u| u.role == hive_proto::Role::Admin && u.active)
            .count();
        assert_eq!(active_admins, 1);
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn invitations_and_resets_are_single_use_links() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let invite: Value = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/users/invitations",
                Some(json!({ "email": "New@Example.com", "role": "operator" })),
            )
            .await
            .json()
            .await
            .unwrap();
        let url = invite["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/invite#token=", server.base_url)),
            "the token rides in the fragment: {url}"
        );
        let token = url.split("#token=").nth(1).unwrap();
        let shown: Value = server
            .client
            .post_json("/api/v1/auth/invitation", &json!({ "token": token }))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (shown["email"].as_str(), shown["role"].as_str()),
            (Some("new@example.com"), Some("operator"))
        );
        let accept = json!({ "token": token, "displayName": "New", "password": PASSWORD });
        assert_eq!(
            server
                .client
                .post_json("/api/v1/auth/invitation/accept", &accept)
                .await
                .status(),
            201
        );
        assert_eq!(
            server
                .client
                .post_json("/api/v1/auth/invitation/accept", &accept)
                .await
                .status(),
            401
        );

        let new_user = server
            .hive
            .store
            .users()
            .find_by_email("new@example.com")
            .await
            .unwrap()
            .unwrap();
        let link: Value = admin
            .send(
                &server,
                Method::POST,
                &format!("/api/v1/users/{}/reset-link", new_user.id),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let reset_token = link_token(&link);
        let session = login(&server, "new@example.com", PASSWORD).await;
        let reset = json!({ "token": reset_token, "newPassword": "another fine passphrase" });
        assert_eq!(
            server
                .client
                .post_json("/api/v1/auth/password-reset", &reset)
                .await
                .status(),
            204
        );
        assert_eq!(
            server
                .client
                .post_json("/api/v1/auth/password-reset", &reset)
                .await
                .status(),
            401,
            "single use"
        );
        assert_eq!(
            session.me(&server).await.status(),
            401,
            "a reset ends the sessions"
        );
        assert_eq!(
            try_login(&server, "new@example.com", "another fine passphrase")
                .await
                .status(),
            200
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn bodies_with_unknown_fields_or_oversized_values_are_refused() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let unknown = server
            .client
            .post_json(
                "/api/v1/auth/login",
                &json!({ "email": "a@example.com", "password": "x", "admin": true }),
            )
            .await;
        assert_eq!(unknown.status(), 400);
        assert!(
            error_body(unknown)
                .await
                .error
                .message
                .contains("unknown field `admin`")
        );
        let long_name = setup_with(&server, json!({ "email": "a@example.com", "displayName": "n".repeat(101), "password": PASSWORD })).await;
        assert_eq!(long_name, 400);
        let long_email = setup_with(&server, json!({ "email": format!("{}@example.com", "a".repeat(250)), "displayName": "A", "password": PASSWORD })).await;
        assert_eq!(long_email, 400);
        let long_password = setup_with(
            &server,
            json!({ "email": "a@example.com", "displayName": "A", "password": "p".repeat(129) }),
        )
        .await;
        assert_eq!(long_password, 400);
        let huge_password = try_login(&server, "a@example.com", &"p".repeat(5000)).await;
        assert_eq!(huge_password.status(), 400);
        assert!(
            !server.hive.identity.setup_completed().await.unwrap(),
            "nothing was created"
        );
        // Public registration is off by default.
        let register = server
            .client
            .post_json(
                "/api/v1/auth/register",
                &json!({ "email": "r@example.com", "displayName": "R", "password": PASSWORD }),
            )
            .await;
        assert_eq!(register.status(), 403);
        server.stop().await.0.unwrap();
    }
}

async fn setup_with(server: &TestServer, body: Value) -> u16 {
    server
        .client
        .request(Method::POST, "/api/v1/setup")
        .bearer_auth(SETUP_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Setup, like every place a password is set, refuses a guessable one: leaked passwords of 12
/// characters and more, and ones made of the account's email or name. Whatever made it
/// guessable, the refusal is one error (same status, code and opening words, the password
/// never quoted); the account is then made with a strong random password.
#[tokio::test]
async fn guessable_passwords_are_refused_with_one_error() {
    let server = identity_server(hive_testkit::TestBackend::Sqlite).await;
    let email = "quillon.vartabedian@example.com";
    let attempt = async |password: &str| {
        server
            .client
            .request(Method::POST, "/api/v1/setup")
            .bearer_auth(SETUP_TOKEN)
            .json(&json!({ "email": email, "displayName": "Quillon Vartabedian", "password": password }))
            .send()
            .await
            .unwrap()
    };
    let mut openings = Vec::new();
    for weak in [
        "motherfucker",
        "leavemealone",
        "P@ssw0rd2024!",
        "my quillon.vartabedian@example.com",
        "Vartabedian2026!",
    ] {
        let refused = attempt(weak).await;
        assert_eq!(refused.status(), 400, "{weak}");
        let error = error_body(refused).await.error;
        assert_eq!(error.code, "validation_failed", "{weak}");
        assert!(!error.message.contains(weak), "{}", error.message);
        let opening = error.message.split(';').next().unwrap().to_owned();
        openings.push(opening);
    }
    openings.dedup();
    assert_eq!(
        openings,
        ["the password is too easy to guess"],
        "one refusal for every guessable password"
    );
    let strong = uuid::Uuid::new_v4().simple().to_string();
    hive_testkit::capture::canary(&strong);
    assert_eq!(attempt(&strong).await.status(), 201);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn public_registration_makes_viewers_when_enabled() {
    let server = identity_server_with(
        hive_testkit::TestBackend::Sqlite,
        &[("ALLOW_PUBLIC_REGISTRATION", "true")],
    )
    .await;
    let body = json!({ "email": "r@example.com", "displayName": "R", "password": PASSWORD });
    let created = server
        .client
        .post_json("/api/v1/auth/register", &body)
        .await;
    assert_eq!(created.status(), 201);
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["role"], "viewer");
    assert_eq!(
        server
            .client
            .post_json("/api/v1/auth/register", &body)
            .await
            .status(),
        409
    );
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn reset_links_go_out_by_mail_and_the_answer_never_tells() {
    let mut relay = crate::smtp::FakeSmtp::start().await;
    for backend in backends() {
        let server = identity_server_with(
            backend,
            &[("SMTP_URL", &relay.url), ("SMTP_FROM", "hive@example.com")],
        )
        .await;
        setup_admin(&server).await;
        let before = relay.connections();
        let ask = async |email: &str| {
            let body = json!({ "email": email });
            server
                .client
                .post_json("/api/v1/auth/password-reset/request", &body)
                .await
        };
        let unknown = ask("nobody@example.com").await;
        let known = ask(ADMIN_EMAIL).await;
        assert_eq!(
            (unknown.status().as_u16(), known.status().as_u16()),
            (202, 202)
        );
        let (unknown_body, known_body) =
            (unknown.bytes().await.unwrap(), known.bytes().await.unwrap());
        assert_eq!(unknown_body, known_body, "the same answer either way");

        let message = relay.next_message().await;
        assert!(message.contains(&format!("To: {ADMIN_EMAIL}")), "{message}");
        assert!(message.contains("From: hive@example.com"), "{message}");
        let token = message
            .split("#token=")
            .nth(1)
            .map(|rest| rest.chars().take(64).collect::<String>())
            .unwrap_or_else(|| panic!("no link in:\n{message}"));
        assert_eq!(
            relay.connections(),
            before + 1,
            "no mail for an unknown address"
        );

        // A second request within a minute sends nothing new; the mailed link works once.
        assert_eq!(ask(ADMIN_EMAIL).await.status(), 202);
        let reset = json!({ "token": token, "newPassword": "a mailed new passphrase" });
        assert_eq!(
            server
                .client
                .post_json("/api/v1/auth/password-reset", &reset)
                .await
                .status(),
            204
        );
        assert_eq!(
            server
                .client
                .post_json("/api/v1/auth/password-reset", &reset)
                .await
                .status(),
            401
        );
        assert_eq!(
            try_login(&server, ADMIN_EMAIL, "a mailed new passphrase")
                .await
                .status(),
            200
        );
        let page = hive_store::PageRequest::first(10).unwrap();
        let records = server
            .hive
            .store
            .audit()
            .list(
                &hive_store::AuditFilter::action("user.reset_requested"),
                &page,
            )
            .await
            .unwrap();
        let reasons: Vec<&str> = records.items.iter().map(|r| r.detail.as_str()).collect();
        for reason in ["unknown_account", "link_created"] {
            assert!(
                reasons.iter().any(|d| d.contains(reason)),
                "{reason}: {reasons:?}"
            );
        }
        assert_eq!(
            relay.connections(),
            before + 1,
            "throttled: one mail a minute"
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn an_imported_bcrypt_hash_logs_in_and_is_rehashed() {
    for backend in backends() {
        let server = identity_server(backend).await;
        let imported = bcrypt::hash(PASSWORD, 4).unwrap();
        let user = server
            .hive
            .store
            .users()
            .create(
                &hive_store::NewUser {
                    id: uuid::Uuid::now_v7(),
                    email: "old@example.com".into(),
                    display_name: "Imported".into(),
                    role: hive_proto::Role::Viewer,
                    password_hash: Some(imported.clone()),
                    created_at: hive_proto::Clock::now(server.clock.as_ref()),
                },
                hive_store_conformance::note("user.import").append(),
            )
            .await
            .unwrap();
        assert_eq!(
            try_login(&server, "old@example.com", "not the password")
                .await
                .status(),
            401
        );
        server.clock.advance(Duration::seconds(2));
        assert_eq!(
            try_login(&server, "old@example.com", PASSWORD)
                .await
                .status(),
            200
        );
        let stored = server
            .hive
            .store
            .users()
            .get(user.id)
            .await
            .unwrap()
            .unwrap();
        let hash = stored.password_hash.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_ne!(hash, imported);
        server.clock.advance(Duration::seconds(2));
        assert_eq!(
            try_login(&server, "old@example.com", PASSWORD)
                .await
                .status(),
            200
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn an_email_change_needs_a_recent_password_check() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let browser = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let change = json!({ "email": "new-admin@example.com" });
        assert_needs_reauthentication(
            &server,
            &browser,
            Method::PATCH,
            "/api/v1/auth/me",
            change.clone(),
        )
        .await;
        let changed = browser
            .send(&server, Method::PATCH, "/api/v1/auth/me", Some(change))
            .await;
        assert_eq!(changed.status(), 200);
        let me: Value = changed.json().await.unwrap();
        assert_eq!(me["email"], "new-admin@example.com");
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_and_secure() {
    let server = identity_server_with(
        hive_testkit::TestBackend::Sqlite,
        &[("AUTH_URL", "https://hive.example.com")],
    )
    .await;
    setup_admin(&server).await;
    let response = try_login(&server, ADMIN_EMAIL, PASSWORD).await;
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.starts_with("__Host-hive_session="),
        "{set_cookie}"
    );
    assert!(
        set_cookie.contains("; Secure") && set_cookie.contains("; Path=/"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Domain="), "{set_cookie}");
    let browser = Browser {
        cookie: session_cookie(&response),
        origin: "https://hive.example.com".into(),
    };
    assert_eq!(browser.me(&server).await.status(), 200);
    // The plain name is not read over https.
    let plain = Browser {
        cookie: browser.cookie.replacen("__Host-", "", 1),
        ..browser.clone()
    };
    assert_eq!(plain.me(&server).await.status(), 401);
    let out = browser
        .send(&server, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(out.status(), 204);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn the_session_list_is_paged_with_limit_and_cursor() {
    for backend in backends() {
        let server = identity_server(backend).await;
        setup_admin(&server).await;
        let mut browsers = Vec::new();
        for _ in 0..3 {
            browsers.push(login(&server, ADMIN_EMAIL, PASSWORD).await);
        }
        let newest = &browsers[2];
        let mut seen = Vec::new();
        let mut path = "/api/v1/auth/sessions?limit=2".to_owned();
        loop {
            let page: Value = newest
                .send(&server, Method::GET, &path, None)
                .await
                .json()
                .await
                .unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2, "{page}");
            seen.extend(items.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
            match page["nextCursor"].as_str() {
                Some(cursor) => path = format!("/api/v1/auth/sessions?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 3, "every session once: {seen:?}");
        seen.dedup();
        assert_eq!(seen.len(), 3);
        for bad in ["?limit=0", "?limit=101", "?cursor=not-a-cursor"] {
            let response = newest
                .send(
                    &server,
                    Method::GET,
                    &format!("/api/v1/auth/sessions{bad}"),
                    None,
                )
                .await;
            assert_eq!(response.status(), 400, "{bad}");
        }
        server.stop().await.0.unwrap();
    }
}
