//! Passkeys over real HTTP, with a software authenticator at the device boundary (real CBOR
//! attestation objects, real ES256 signatures): registration, passwordless login, a passkey as
//! the second factor, and every way an answer can be wrong, on every backend.

use crate::support::*;
use hive_store::AuditOutcome;
use hive_testkit::passkey::{Attestation, SoftAuthenticator, Tweaks};
use hive_testkit::{TestBackend, TestServer, backends, error_body};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use time::Duration;

const REGISTER_START: &str = "/api/v1/auth/passkeys/register/start";
const REGISTER_FINISH: &str = "/api/v1/auth/passkeys/register/finish";
const PASSKEYS: &str = "/api/v1/auth/passkeys";
const MFA_START: &str = "/api/v1/auth/mfa/passkey/start";
const MFA_FINISH: &str = "/api/v1/auth/mfa/passkey/finish";
const LOGIN_START: &str = "/api/v1/auth/passkey-login/start";
const LOGIN_FINISH: &str = "/api/v1/auth/passkey-login/finish";

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// A server named `localhost` in its `AUTH_URL` (WebAuthn needs a domain name), its first
/// admin, and two operators, alice and bob, signed in.
struct Fixture {
    server: TestServer,
    admin: Browser,
    alice: Browser,
    alice_id: String,
    bob: Browser,
}

async fn fixture(backend: TestBackend) -> Fixture {
    let server = identity_builder(backend, &[])
        .public_host("localhost")
        .start()
        .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (alice_user, alice) = add_user(&server, &admin, ALICE, "operator").await;
    let (_, bob) = add_user(&server, &admin, BOB, "operator").await;
    Fixture {
        alice_id: alice_user["id"].as_str().unwrap().to_owned(),
        server,
        admin,
        alice,
        bob,
    }
}

/// A ceremony's id and the options for the authenticator.
struct Ceremony {
    id: String,
    public_key: Value,
}

async fn ceremony(response: Response) -> Ceremony {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let id = body["ceremonyId"].as_str().unwrap().to_owned();
    hive_testkit::capture::canary(&id);
    Ceremony {
        id,
        public_key: body["publicKey"].clone(),
    }
}

async fn start_registration(server: &TestServer, browser: &Browser) -> Ceremony {
    ceremony(
        browser
            .send(server, Method::POST, REGISTER_START, None)
            .await,
    )
    .await
}

async fn finish_registration(
    server: &TestServer,
    browser: &Browser,
    ceremony: &Ceremony,
    credential: Value,
) -> Response {
    let body = json!({ "ceremonyId": ceremony.id, "credential": credential, "name": "Laptop" });
    browser
        .send(server, Method::POST, REGISTER_FINISH, Some(body))
        .await
}

async fn start_login(server: &TestServer) -> Ceremony {
    ceremony(
        server
            .client
            .request(Method::POST, LOGIN_START)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn finish_login(server: &TestServer, ceremony_id: &str, credential: Value) -> Response {
    server
        .client
        .post_json(
            LOGIN_FINISH,
            &json!({ "ceremonyId": ceremony_id, "credential": credential }),
        )
        .await
}

/// A whole passwordless login with `tweaks`.
async fn passkey_login(
    server: &TestServer,
    authenticator: &mut SoftAuthenticator,
    tweaks: &Tweaks,
) -> Response {
    let ceremony = start_login(server).await;
    let credential = authenticator
        .assert_with(&ceremony.public_key, tweaks)
        .unwrap();
    finish_login(server, &ceremony.id, credential).await
}

fn browser_of(server: &TestServer, response: &Response) -> Browser {
    Browser {
        cookie: session_cookie(response),
        origin: server.origin.clone(),
    }
}

async fn status_of(server: &TestServer, browser: &Browser, path: &str) -> u16 {
    browser
        .send(server, Method::GET, path, None)
        .await
        .status()
        .as_u16()
}

/// The reasons of the failure records of `action`, oldest first.
async fn failure_reasons(server: &TestServer, action: &str) -> Vec<String> {
    records_of(server, action)
        .await
        .into_iter()
        .filter(|r| r.outcome == AuditOutcome::Failure)
        .map(|r| {
            let detail: Value = serde_json::from_str(&r.detail).unwrap();
            detail["reason"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_registered_passkey_signs_in_without_a_password() {
    for backend in backends() {
        let f = fixture(backend).await;
        let server = &f.server;
        let other_session = login(server, ALICE, PASSWORD).await;

        let ceremony = start_registration(server, &f.alice).await;
        let options = &ceremony.public_key;
        assert_eq!(
            options["rp"]["id"], "localhost",
            "the RP ID is AUTH_URL's host"
        );
        assert_eq!(
            options["authenticatorSelection"]["userVerification"],
            "required"
        );
        assert_eq!(
            options["authenticatorSelection"]["residentKey"],
            "preferred"
        );
        assert!(
            options["excludeCredentials"]
                .as_array()
                .is_none_or(Vec::is_empty)
        );
        let mut authenticator = SoftAuthenticator::new(&server.origin);
        let credential = authenticator.register(options).unwrap();
        let response = finish_registration(server, &f.alice, &ceremony, credential).await;
        assert_eq!(response.status(), 201, "{backend:?}");
        let view: Value = response.json().await.unwrap();
        assert_eq!(view["name"], "Laptop");
        assert_eq!(view["credentialId"], authenticator.credentials[0].id_b64());
        assert!(view["lastUsedAt"].is_null());

        // An MFA change: the registering session stays, the user's others end.
        assert_eq!(status_of(server, &f.alice, PASSKEYS).await, 200);
        assert_eq!(other_session.me(server).await.status(), 401);
        let registered = records_of(server, "auth.passkey.register").await;
        assert_eq!(registered.len(), 1);
        assert_eq!(registered[0].outcome, AuditOutcome::Success);
        assert_eq!(registered[0].actor, format!("user:{}", f.alice_id));

        // Passwordless: no email, no password; the passkey names its user.
        let signed_in = passkey_login(server, &mut authenticator, &Tweaks::default()).await;
        assert_eq!(signed_in.status(), 200, "{backend:?}");
        let browser = browser_of(server, &signed_in);
        let user: Value = signed_in.json().await.unwrap();
        assert_eq!(user["email"], ALICE);
        // A user-verified passkey is both factors: the session reaches everything.
        assert_eq!(status_of(server, &browser, PASSKEYS).await, 200);
        assert_eq!(
            status_of(server, &browser, "/api/v1/auth/sessions").await,
            200
        );
        let logins = records_of(server, "auth.login").await;
        let last = logins.last().unwrap();
        assert_eq!(last.outcome, AuditOutcome::Success);
        assert!(last.detail.contains("passkey"), "{}", last.detail);

        // The use is recorded; the list shows it.
        let listed: Value = browser
            .send(server, Method::GET, PASSKEYS, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        assert!(listed["items"][0]["lastUsedAt"].is_string());

        // A second registration excludes the first credential: the authenticator declines.
        let again = start_registration(server, &browser).await;
        let excluded = again.public_key["excludeCredentials"].as_array().unwrap();
        assert_eq!(excluded.len(), 1);
        assert!(authenticator.register(&again.public_key).is_err());
        // A packed self-attested passkey from another authenticator is welcome.
        let mut second = SoftAuthenticator::new(&server.origin)
            .with_attestation(Attestation::PackedSelf)
            .synced();
        let credential = second.register(&again.public_key).unwrap();
        let response = finish_registration(server, &browser, &again, credential).await;
        assert_eq!(response.status(), 201);
        let synced: Value = response.json().await.unwrap();
        assert_eq!(synced["backupEligible"], true);
        assert_eq!(
            passkey_login(server, &mut second, &Tweaks::default())
                .await
                .status(),
            200,
            "a synced passkey without a counter signs in, and again"
        );
        assert_eq!(
            passkey_login(server, &mut second, &Tweaks::default())
                .await
                .status(),
            200
        );
        server_done(f).await;
    }
}

async fn server_done(f: Fixture) {
    f.server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_passkey_is_the_second_factor_of_a_password_session() {
    for backend in backends() {
        let f = fixture(backend).await;
        let server = &f.server;
        let mut alices = SoftAuthenticator::new(&server.origin);
        register_passkey(server, &f.alice, &mut alices).await;
        let mut bobs = SoftAuthenticator::new(&server.origin);
        register_passkey(server, &f.bob, &mut bobs).await;

        // A password login of a user with a passkey has one factor: nothing else answers.
        let pending = login(server, ALICE, PASSWORD).await;
        let refused = pending.send(server, Method::GET, PASSKEYS, None).await;
        assert_eq!(refused.status(), 401);
        assert_eq!(error_body(refused).await.error.code, "unauthenticated");

        // Bob's passkey cannot verify alice's session, even forced past the allow list.
        let ceremony = ceremony(pending.send(server, Method::POST, MFA_START, None).await).await;
        let allowed = ceremony.public_key["allowCredentials"].as_array().unwrap();
        assert_eq!(allowed.len(), 1);
        assert_eq!(allowed[0]["id"], alices.credentials[0].id_b64());
        let forced = Tweaks {
            credential: Some(0),
            ..Tweaks::default()
        };
        let credential = bobs.assert_with(&ceremony.public_key, &forced).unwrap();
        let body = json!({ "ceremonyId": ceremony.id, "credential": credential });
        let response = pending
            .send(server, Method::POST, MFA_FINISH, Some(body))
            .await;
        assert_eq!(response.status(), 401);
        assert_eq!(error_body(response).await.error.code, "invalid_credentials");
        assert_eq!(
            failure_reasons(server, "auth.mfa.verify").await,
            vec!["another_users_credential"]
        );

        // Alice's passkey with a broken signature or without user verification does not.
        for (tweaks, reason) in [
            (
                Tweaks {
                    tamper_signature: true,
                    ..Tweaks::default()
                },
                "bad_signature",
            ),
            (
                Tweaks {
                    skip_user_verification: true,
                    ..Tweaks::default()
                },
                "user_not_verified",
            ),
        ] {
            let ceremony = ceremony_of(server, &pending, MFA_START).await;
            let credential = alices.assert_with(&ceremony.public_key, &tweaks).unwrap();
            let body = json!({ "ceremonyId": ceremony.id, "credential": credential });
            let response = pending
                .send(server, Method::POST, MFA_FINISH, Some(body))
                .await;
            assert_eq!(response.status(), 401, "{reason}");
            assert_eq!(
                failure_reasons(server, "auth.mfa.verify")
                    .await
                    .last()
                    .map(String::as_str),
                Some(reason)
            );
            // The refused ceremony is used up: even a good answer to it is refused.
            let good = alices.assert(&ceremony.public_key).unwrap();
            let body = json!({ "ceremonyId": ceremony.id, "credential": good });
            let replayed = pending
                .send(server, Method::POST, MFA_FINISH, Some(body))
                .await;
            assert_eq!(replayed.status(), 401, "{reason}");
            assert_eq!(
                failure_reasons(server, "auth.mfa.verify")
                    .await
                    .last()
                    .map(String::as_str),
                Some("unknown_ceremony")
            );
            assert_eq!(status_of(server, &pending, PASSKEYS).await, 401);
        }

        // Alice's own passkey does; the ceremonies above are used up, so a new one.
        let ceremony = ceremony_of(server, &pending, MFA_START).await;
        let credential = alices.assert(&ceremony.public_key).unwrap();
        let body = json!({ "ceremonyId": ceremony.id, "credential": credential });
        let verified = pending
            .send(server, Method::POST, MFA_FINISH, Some(body.clone()))
            .await;
        assert_eq!(verified.status(), 204, "{backend:?}");
        assert_eq!(status_of(server, &pending, PASSKEYS).await, 200);
        let records = records_of(server, "auth.mfa.verify").await;
        let success = records.last().unwrap();
        assert_eq!(success.outcome, AuditOutcome::Success);
        assert!(success.detail.contains("passkey"), "{}", success.detail);

        // The same answer again: the session is verified, and the ceremony is gone anyway.
        let replay = pending
            .send(server, Method::POST, MFA_FINISH, Some(body))
            .await;
        assert!(replay.status().is_client_error(), "{}", replay.status());

        // A second session of the same user verifies on its own.
        let second = login(server, ALICE, PASSWORD).await;
        assert_eq!(status_of(server, &second, PASSKEYS).await, 401);
        server_done(f).await;
    }
}

async fn ceremony_of(server: &TestServer, browser: &Browser, path: &str) -> Ceremony {
    ceremony(browser.send(server, Method::POST, path, None).await).await
}

#[tokio::test]
async fn every_bad_login_answer_is_one_uniform_refusal() {
    for backend in backends() {
        let f = fixture(backend).await;
        let server = &f.server;
        let mut authenticator = SoftAuthenticator::new(&server.origin);
        register_passkey(server, &f.alice, &mut authenticator).await;
        // A counted use, so that the stored counter is above 0.
        let first = passkey_login(server, &mut authenticator, &Tweaks::default()).await;
        assert_eq!(first.status(), 200);

        let mut bodies = Vec::new();
        let mut refuse = async |response: Response, what: &str| {
            assert_eq!(response.status(), 401, "{what} on {backend:?}");
            let body = error_body(response).await.error;
            bodies.push((body.code, body.message));
        };
        let tweaked = [
            (
                Tweaks {
                    origin: Some("http://evil.localhost:1".into()),
                    ..Tweaks::default()
                },
                "wrong_origin",
            ),
            (
                Tweaks {
                    rp_id: Some("evil.example".into()),
                    ..Tweaks::default()
                },
                "wrong_rp_id",
            ),
            (
                Tweaks {
                    tamper_signature: true,
                    ..Tweaks::default()
                },
                "bad_signature",
            ),
            (
                Tweaks {
                    skip_user_verification: true,
                    ..Tweaks::default()
                },
                "user_not_verified",
            ),
            (
                Tweaks {
                    sign_count: Some(1),
                    ..Tweaks::default()
                },
                "counter_not_increased",
            ),
            (
                Tweaks {
                    user_handle: Some(uuid::Uuid::now_v7().as_bytes().to_vec()),
                    ..Tweaks::default()
                },
                "user_handle_mismatch",
            ),
        ];
        let mut expected = Vec::new();
        for (tweaks, reason) in &tweaked {
            refuse(
                passkey_login(server, &mut authenticator, tweaks).await,
                reason,
            )
            .await;
            expected.push(*reason);
        }

        // A used ceremony, an unknown one, and one whose answer carries another challenge.
        let ceremony = start_login(server).await;
        let credential = authenticator.assert(&ceremony.public_key).unwrap();
        let answered = finish_login(server, &ceremony.id, credential.clone()).await;
        assert_eq!(answered.status(), 200);
        refuse(
            finish_login(server, &ceremony.id, credential.clone()).await,
            "replay",
        )
        .await;
        expected.push("unknown_ceremony");
        let unknown = "0".repeat(64);
        refuse(finish_login(server, &unknown, credential).await, "unknown").await;
        expected.push("unknown_ceremony");
        let other = start_login(server).await;
        let stale = start_login(server).await;
        let credential = authenticator.assert(&stale.public_key).unwrap();
        refuse(
            finish_login(server, &other.id, credential).await,
            "challenge",
        )
        .await;
        expected.push("wrong_challenge");
        // An expired ceremony.
        let late = start_login(server).await;
        server.clock.advance(Duration::minutes(6));
        let credential = authenticator.assert(&late.public_key).unwrap();
        refuse(finish_login(server, &late.id, credential).await, "expired").await;
        expected.push("unknown_ceremony");

        // A credential the server does not know (registered with another relying party).
        let mut stranger = SoftAuthenticator::new(&server.origin);
        let elsewhere = json!({
            "rp": { "id": "localhost", "name": "Elsewhere" },
            "user": { "id": "AAAAAAAAAAAAAAAAAAAAAA", "name": "x", "displayName": "x" },
            "challenge": "AAAA",
            "pubKeyCredParams": [{ "type": "public-key", "alg": -7 }],
        });
        stranger.register(&elsewhere).unwrap();
        refuse(
            passkey_login(server, &mut stranger, &Tweaks::default()).await,
            "unknown credential",
        )
        .await;
        expected.push("unknown_credential");

        // A deactivated owner.
        let alice_path = format!("/api/v1/users/{}", f.alice_id);
        let off = f
            .admin
            .send(
                server,
                Method::PATCH,
                &alice_path,
                Some(json!({ "active": false })),
            )
            .await;
        assert_eq!(off.status(), 200);
        refuse(
            passkey_login(server, &mut authenticator, &Tweaks::default()).await,
            "deactivated",
        )
        .await;
        expected.push("deactivated");

        // One answer for all, and one audit record with its reason each.
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "uniform bodies: {bodies:?}"
        );
        assert_eq!(bodies[0].0, "invalid_credentials");
        assert_eq!(failure_reasons(server, "auth.login").await, expected);
        server_done(f).await;
    }
}

#[tokio::test]
async fn a_ceremony_belongs_to_the_session_that_started_it() {
    for backend in backends() {
        let f = fixture(backend).await;
        let server = &f.server;
        let mut authenticator = SoftAuthenticator::new(&server.origin);
        // Registration: alice's other session cannot finish what this one started.
        let other = login(server, ALICE, PASSWORD).await;
        let ceremony = start_registration(server, &f.alice).await;
        let credential = authenticator.register(&ceremony.public_key).unwrap();
        let stolen = finish_registration(server, &other, &ceremony, credential.clone()).await;
        assert_eq!(stolen.status(), 400);
        let bobs = finish_registration(server, &f.bob, &ceremony, credential.clone()).await;
        assert_eq!(bobs.status(), 400);
        // The ceremony was used up by the attempt: its owner starts again.
        let used = finish_registration(server, &f.alice, &ceremony, credential).await;
        assert_eq!(used.status(), 400);
        assert_eq!(
            failure_reasons(server, "auth.passkey.register").await,
            vec![
                "another_sessions_ceremony",
                "unknown_ceremony",
                "unknown_ceremony"
            ]
        );
        assert!(
            records_of(server, "auth.passkey.register")
                .await
                .iter()
                .all(|r| r.outcome == AuditOutcome::Failure)
        );
        register_passkey(server, &f.alice, &mut authenticator).await;

        // Second factor: a ceremony of one pending session is no use to another.
        let first = login(server, ALICE, PASSWORD).await;
        let second = login(server, ALICE, PASSWORD).await;
        let ceremony = ceremony_of(server, &first, MFA_START).await;
        let credential = authenticator.assert(&ceremony.public_key).unwrap();
        let body = json!({ "ceremonyId": ceremony.id, "credential": credential });
        let response = second
            .send(server, Method::POST, MFA_FINISH, Some(body.clone()))
            .await;
        assert_eq!(response.status(), 401);
        assert_eq!(status_of(server, &second, PASSKEYS).await, 401);
        let response = first
            .send(server, Method::POST, MFA_FINISH, Some(body))
            .await;
        assert_eq!(
            response.status(),
            401,
            "used up by the other session's attempt"
        );
        assert_eq!(
            failure_reasons(server, "auth.mfa.verify").await,
            vec!["another_sessions_ceremony", "unknown_ceremony"]
        );
        // And a login ceremony is no second factor.
        let login_ceremony = start_login(server).await;
        let credential = authenticator.assert(&login_ceremony.public_key).unwrap();
        let body = json!({ "ceremonyId": login_ceremony.id, "credential": credential });
        let response = first
            .send(server, Method::POST, MFA_FINISH, Some(body))
            .await;
        assert_eq!(response.status(), 401);
        server_done(f).await;
    }
}

#[tokio::test]
async fn removing_a_passkey_needs_a_fresh_check_and_ends_the_other_sessions() {
    for backend in backends() {
        let f = fixture(backend).await;
        let server = &f.server;
        let mut authenticator = SoftAuthenticator::new(&server.origin);
        let view = register_passkey(server, &f.alice, &mut authenticator).await;
        let path = format!("{PASSKEYS}/{}", view["id"].as_str().unwrap());
        let other = browser_of(
            server,
            &passkey_login(server, &mut authenticator, &Tweaks::default()).await,
        );

        // Bob cannot see or remove it.
        let bobs = f.bob.send(server, Method::DELETE, &path, None).await;
        assert_eq!(bobs.status(), 404);
        let renamed = f
            .bob
            .send(
                server,
                Method::PATCH,
                &path,
                Some(json!({ "name": "mine" })),
            )
            .await;
        assert_eq!(renamed.status(), 404);

        // Renaming is no MFA change; removing is, and needs a password check in 10 minutes.
        let renamed = f
            .alice
            .send(
                server,
                Method::PATCH,
                &path,
                Some(json!({ "name": "Work laptop" })),
            )
            .await;
        assert_eq!(renamed.status(), 200);
        let renamed: Value = renamed.json().await.unwrap();
        assert_eq!(renamed["name"], "Work laptop");
        assert_needs_reauthentication(server, &f.alice, Method::DELETE, &path, json!({})).await;
        let removed = f.alice.send(server, Method::DELETE, &path, None).await;
        assert_eq!(removed.status(), 204, "{backend:?}");
        assert_eq!(
            other.me(server).await.status(),
            401,
            "the other session ended"
        );
        assert_eq!(f.alice.me(server).await.status(), 200);
        let listed: Value = f
            .alice
            .send(server, Method::GET, PASSKEYS, None)
            .await
            .json()
            .await
            .unwrap();
        assert!(listed["items"].as_array().unwrap().is_empty());
        assert_eq!(records_of(server, "auth.passkey.delete").await.len(), 1);
        assert_eq!(records_of(server, "auth.passkey.rename").await.len(), 1);
        // Gone for login too, and the user's password sessions have one factor again.
        let refused = passkey_login(server, &mut authenticator, &Tweaks::default()).await;
        assert_eq!(refused.status(), 401);
        let plain = login(server, ALICE, PASSWORD).await;
        assert_eq!(status_of(server, &plain, PASSKEYS).await, 200);
        server_done(f).await;
    }
}

#[tokio::test]
async fn registration_is_a_sensitive_change_and_capped() {
    let f = fixture(TestBackend::Sqlite).await;
    let server = &f.server;
    // A token is not a session.
    let token = create_token(server, &f.alice, json!({ "name": "ci" })).await;
    let by_token = with_bearer(
        server,
        token["token"].as_str().unwrap(),
        Method::POST,
        REGISTER_START,
    )
    .await;
    assert_eq!(by_token.status(), 403);
    // Ten minutes after the password check, neither start nor finish goes ahead.
    let ceremony = start_registration(server, &f.alice).await;
    server.clock.advance(Duration::minutes(4));
    let mut authenticator = SoftAuthenticator::new(&server.origin);
    let credential = authenticator.register(&ceremony.public_key).unwrap();
    server.clock.advance(Duration::minutes(7));
    let late = finish_registration(server, &f.alice, &ceremony, credential).await;
    assert_eq!(late.status(), 403);
    assert_eq!(
        error_body(late).await.error.code,
        "reauthentication_required"
    );
    assert_needs_reauthentication(server, &f.alice, Method::POST, REGISTER_START, json!({})).await;

    // Ten passkeys at most.
    for _ in 0..10 {
        let mut device = SoftAuthenticator::new(&server.origin);
        register_passkey(server, &f.alice, &mut device).await;
    }
    let full = f
        .alice
        .send(server, Method::POST, REGISTER_START, None)
        .await;
    assert_eq!(full.status(), 409);
    server_done(f).await;
}

#[tokio::test]
async fn passkeys_need_a_domain_name_in_auth_url() {
    let server = identity_server(TestBackend::Sqlite).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let refused = admin
        .send(&server, Method::POST, REGISTER_START, None)
        .await;
    assert_eq!(refused.status(), 409);
    let message = error_body(refused).await.error.message;
    assert!(message.contains("domain name"), "{message}");
    let login_start = server
        .client
        .request(Method::POST, LOGIN_START)
        .send()
        .await
        .unwrap();
    assert_eq!(login_start.status(), 409);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_user_under_the_mfa_policy_may_enroll_a_passkey_instead_of_totp() {
    for backend in backends() {
        let server = identity_builder(backend, &[("HIVE_MFA_REQUIRED", "admins")])
            .public_host("localhost")
            .start()
            .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let refused = admin.send(&server, Method::GET, PASSKEYS, None).await;
        assert_eq!(refused.status(), 401, "anonymous outside enrollment");
        assert_eq!(error_body(refused).await.error.code, "unauthenticated");

        let mut authenticator = SoftAuthenticator::new(&server.origin);
        register_passkey(&server, &admin, &mut authenticator).await;
        assert_eq!(
            status_of(&server, &admin, PASSKEYS).await,
            200,
            "{backend:?}"
        );
        assert_eq!(status_of(&server, &admin, "/api/v1/users").await, 200);
        let verified = records_of(&server, "auth.mfa.verify").await;
        assert_eq!(verified.len(), 1);
        assert!(
            verified[0].detail.contains("passkey"),
            "{}",
            verified[0].detail
        );

        // From now on a password login needs the passkey too; a passkey login needs nothing else.
        let pending = login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(status_of(&server, &pending, PASSKEYS).await, 401);
        let signed_in = passkey_login(&server, &mut authenticator, &Tweaks::default()).await;
        let browser = browser_of(&server, &signed_in);
        assert_eq!(status_of(&server, &browser, "/api/v1/users").await, 200);
        server.stop().await.0.unwrap();
    }
}
