//! Second factors over real HTTP, on every backend: TOTP enrollment and per-session
//! verification, replays, the lockout, recovery codes, the policy and an admin's reset.

use crate::support::*;
use hive_crypto::totp::TotpSecret;
use hive_proto::Clock;
use hive_testkit::{TestServer, backends, error_body};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

async fn mfa_server(backend: hive_testkit::TestBackend, policy: &str) -> TestServer {
    identity_server_with(backend, &[("HIVE_MFA_REQUIRED", policy)]).await
}

/// The authenticator code at the server's clock.
fn code_now(server: &TestServer, secret: &TotpSecret) -> String {
    let now = u64::try_from(server.clock.now().unix_timestamp()).unwrap();
    secret.code_at(now)
}

/// A six-digit code that is not `code`.
fn other_code(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_owned()
}

async fn stage_of(server: &TestServer, browser: &Browser) -> String {
    let me: Value = browser.me(server).await.json().await.unwrap();
    me["sessionStage"].as_str().unwrap().to_owned()
}

async fn post(
    server: &TestServer,
    browser: &Browser,
    path: &str,
    body: Value,
) -> reqwest::Response {
    browser.send(server, Method::POST, path, Some(body)).await
}

/// `POST /api/v1/auth/mfa/verify` with `code` in `browser`'s session.
async fn verify(
    server: &TestServer,
    browser: &Browser,
    code: impl serde::Serialize,
) -> reqwest::Response {
    post(
        server,
        browser,
        "/api/v1/auth/mfa/verify",
        json!({ "code": code }),
    )
    .await
}

async fn mfa_status(server: &TestServer, browser: &Browser) -> Value {
    browser
        .send(server, Method::GET, "/api/v1/auth/mfa", None)
        .await
        .json()
        .await
        .unwrap()
}

/// Starts and confirms TOTP in `browser`'s session: the authenticator's secret and the
/// recovery codes shown.
pub(crate) async fn enroll(server: &TestServer, browser: &Browser) -> (TotpSecret, Vec<String>) {
    let started = post(server, browser, "/api/v1/auth/mfa/totp", json!({})).await;
    assert_eq!(started.status(), 201);
    let enrollment: Value = started.json().await.unwrap();
    let secret_text = enrollment["secret"].as_str().unwrap();
    hive_testkit::capture::canary(secret_text);
    let uri = enrollment["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Hive:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret_text}")), "{uri}");
    assert!(
        enrollment["qrSvg"]
            .as_str()
            .unwrap()
            .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
    );
    let secret = TotpSecret::from_base32(secret_text).unwrap();
    // Not enabled before a valid code.
    let status: Value = mfa_status(server, browser).await;
    assert_eq!(status["totp"], "pending");
    let wrong = other_code(&code_now(server, &secret));
    let refused = post(
        server,
        browser,
        "/api/v1/auth/mfa/totp/confirm",
        json!({ "code": wrong }),
    )
    .await;
    assert_eq!(refused.status(), 401);
    let confirmed = post(
        server,
        browser,
        "/api/v1/auth/mfa/totp/confirm",
        json!({ "code": code_now(server, &secret) }),
    )
    .await;
    assert_eq!(confirmed.status(), 200);
    let codes = recovery_codes(&confirmed.json().await.unwrap());
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test]
async fn the_policy_sends_an_admin_to_enrollment_and_each_session_verifies_on_its_own() {
    for backend in backends() {
        let server = mfa_server(backend, "admins").await;
        setup_admin(&server).await;
        let first = login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(stage_of(&server, &first).await, "enrollment_required");
        let users = first
            .send(&server, Method::GET, "/api/v1/users", None)
            .await;
        // Answered as anonymous: the session is no caller outside enrollment.
        assert_eq!(users.status(), 401);
        assert_eq!(error_body(users).await.error.code, "unauthenticated");

        let (secret, _) = enroll(&server, &first).await;
        assert_eq!(stage_of(&server, &first).await, "verified");
        let users = first
            .send(&server, Method::GET, "/api/v1/users", None)
            .await;
        assert_eq!(users.status(), 200);

        // A second session of the same user must verify on its own.
        let second = login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(stage_of(&server, &second).await, "second_factor_required");
        for (method, path) in [
            (Method::GET, "/api/v1/users"),
            (Method::POST, "/api/v1/auth/mfa/totp/disable"),
            (Method::POST, "/api/v1/auth/mfa/totp"),
            (Method::POST, "/api/v1/auth/mfa/recovery-codes"),
        ] {
            let refused = second
                .send(&server, method, path, Some(json!({ "code": "123456" })))
                .await;
            assert_eq!(refused.status(), 401, "{path}");
            assert_eq!(
                error_body(refused).await.error.code,
                "unauthenticated",
                "{path}"
            );
        }
        // The code that confirmed the enrollment was used in this step: a replay.
        let replay = verify(&server, &second, code_now(&server, &secret)).await;
        assert_eq!(replay.status(), 401);
        let refusals = records_of(&server, "auth.mfa.verify").await;
        assert!(
            refusals
                .iter()
                .any(|r| r.outcome.as_str() == "failure" && r.detail.contains("\"replayed\"")),
            "{refusals:?}"
        );
        assert_eq!(stage_of(&server, &second).await, "second_factor_required");

        server.clock.advance(Duration::seconds(30));
        let verified = verify(&server, &second, code_now(&server, &secret)).await;
        assert_eq!(verified.status(), 204);
        assert_eq!(stage_of(&server, &second).await, "verified");
        // A verified session spends no code: the next one still verifies elsewhere.
        server.clock.advance(Duration::seconds(30));
        let spare = verify(&server, &second, code_now(&server, &secret)).await;
        assert_eq!(spare.status(), 409);
        let third = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let used = verify(&server, &third, code_now(&server, &secret)).await;
        assert_eq!(used.status(), 204, "the code was not consumed by the 409");
        let users = second
            .send(&server, Method::GET, "/api/v1/users", None)
            .await;
        assert_eq!(users.status(), 200);
        // The first session was not touched by the second's login.
        assert_eq!(stage_of(&server, &first).await, "verified");
        let successes = records_of(&server, "auth.mfa.verify").await;
        assert!(
            successes
                .iter()
                .any(|r| r.outcome.as_str() == "success" && r.detail.contains("\"totp\""))
        );
    }
}

#[tokio::test]
async fn concurrent_uses_of_one_code_verify_exactly_one_session() {
    for backend in backends() {
        let server = mfa_server(backend, "none").await;
        setup_admin(&server).await;
        let first = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (secret, _) = enroll(&server, &first).await;
        server.clock.advance(Duration::seconds(30));
        let mut sessions = Vec::new();
        for _ in 0..20 {
            sessions.push(login(&server, ADMIN_EMAIL, PASSWORD).await);
        }
        let code = code_now(&server, &secret);
        let attempts = sessions.iter().map(|session| {
            let (server, code) = (&server, code.clone());
            async move {
                post(
                    server,
                    session,
                    "/api/v1/auth/mfa/verify",
                    json!({ "code": code }),
                )
                .await
                .status()
                .as_u16()
            }
        });
        let statuses = futures_util::future::join_all(attempts).await;
        assert_eq!(
            statuses.iter().filter(|s| **s == 204).count(),
            1,
            "{statuses:?}"
        );
        assert!(statuses.iter().all(|s| *s == 204 || *s == 401));
    }
}

#[tokio::test]
async fn three_wrong_codes_lock_totp_until_the_step_ends() {
    for backend in backends() {
        let server = mfa_server(backend, "none").await;
        setup_admin(&server).await;
        let first = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (secret, _) = enroll(&server, &first).await;
        server.clock.advance(Duration::seconds(35));
        let session = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let right = code_now(&server, &secret);
        for _ in 0..3 {
            let wrong = verify(&server, &session, other_code(&right)).await;
            assert_eq!(wrong.status(), 401);
        }
        let locked = verify(&server, &session, right).await;
        assert_eq!(locked.status(), 429);
        assert_eq!(locked.headers()["retry-after"], "25");
        assert_eq!(stage_of(&server, &session).await, "second_factor_required");
        server.clock.advance(Duration::seconds(25));
        let next = verify(&server, &session, code_now(&server, &secret)).await;
        assert_eq!(next.status(), 204);
    }
}

#[tokio::test]
async fn a_recovery_code_verifies_once_and_regenerating_voids_the_old_ones() {
    for backend in backends() {
        let server = mfa_server(backend, "all").await;
        let admin = setup_admin(&server).await;
        let first = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, codes) = enroll(&server, &first).await;

        let second = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let used = verify(&server, &second, codes[0].to_lowercase()).await;
        assert_eq!(used.status(), 204);
        let records = records_of(&server, "auth.mfa.recovery_code_use").await;
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].target.as_deref(),
            Some(&*format!("user:{}", admin["id"].as_str().unwrap()))
        );
        let third = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let again = verify(&server, &third, &codes[0]).await;
        assert_eq!(again.status(), 401, "single use");
        let status: Value = mfa_status(&server, &second).await;
        assert_eq!(status["recoveryCodesLeft"], 9);
        assert_eq!(status["totp"], "enabled");
        assert_eq!(status["required"], true);

        let regenerated = post(
            &server,
            &second,
            "/api/v1/auth/mfa/recovery-codes",
            json!({}),
        )
        .await;
        assert_eq!(regenerated.status(), 200);
        let fresh: Value = regenerated.json().await.unwrap();
        for code in fresh["recoveryCodes"].as_array().unwrap() {
            hive_testkit::capture::canary(code.as_str().unwrap());
        }
        let old = verify(&server, &third, &codes[1]).await;
        assert_eq!(old.status(), 401, "replaced");
        let new = verify(&server, &third, &fresh["recoveryCodes"][0]).await;
        assert_eq!(new.status(), 204);
    }
}

#[tokio::test]
async fn disabling_needs_a_recent_password_and_a_current_code_and_ends_other_sessions() {
    for backend in backends() {
        let server = mfa_server(backend, "none").await;
        setup_admin(&server).await;
        let first = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (secret, _) = enroll(&server, &first).await;
        server.clock.advance(Duration::seconds(30));
        let other = login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(stage_of(&server, &other).await, "second_factor_required");

        let body = json!({ "code": code_now(&server, &secret) });
        assert_needs_reauthentication(
            &server,
            &first,
            Method::POST,
            "/api/v1/auth/mfa/totp/disable",
            body,
        )
        .await;
        let wrong = post(
            &server,
            &first,
            "/api/v1/auth/mfa/totp/disable",
            json!({ "code": other_code(&code_now(&server, &secret)) }),
        )
        .await;
        assert_eq!(wrong.status(), 401);
        let status: Value = mfa_status(&server, &first).await;
        assert_eq!(status["totp"], "enabled", "a wrong code changes nothing");
        let disabled = post(
            &server,
            &first,
            "/api/v1/auth/mfa/totp/disable",
            json!({ "code": code_now(&server, &secret) }),
        )
        .await;
        assert_eq!(disabled.status(), 204);
        assert_eq!(other.me(&server).await.status(), 401, "other sessions end");
        let me: Value = first.me(&server).await.json().await.unwrap();
        assert_eq!(me["user"]["mfaEnabled"], false);
        assert_eq!(records_of(&server, "auth.mfa.totp_disable").await.len(), 1);
        // A new login needs no second factor any more.
        let later = login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(stage_of(&server, &later).await, "verified");
    }
}

#[tokio::test]
async fn re_enrolling_needs_a_current_code() {
    let server = mfa_server(hive_testkit::TestBackend::Sqlite, "none").await;
    setup_admin(&server).await;
    let browser = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (secret, _) = enroll(&server, &browser).await;
    server.clock.advance(Duration::seconds(30));
    let confirmed_again = post(
        &server,
        &browser,
        "/api/v1/auth/mfa/totp/confirm",
        json!({ "code": code_now(&server, &secret) }),
    )
    .await;
    assert_eq!(confirmed_again.status(), 409, "nothing pending");
    let without = post(&server, &browser, "/api/v1/auth/mfa/totp", json!({})).await;
    assert_eq!(without.status(), 400);
    let with = post(
        &server,
        &browser,
        "/api/v1/auth/mfa/totp",
        json!({ "code": code_now(&server, &secret) }),
    )
    .await;
    assert_eq!(with.status(), 201);
    let status: Value = mfa_status(&server, &browser).await;
    assert_eq!(status["totp"], "pending", "the old credential is gone");
    let enrollment: Value = with.json().await.unwrap();
    hive_testkit::capture::canary(enrollment["secret"].as_str().unwrap());
    assert_ne!(
        enrollment["secret"].as_str().unwrap(),
        secret.to_base32().as_str()
    );
}

#[tokio::test]
async fn an_admin_resets_the_factors_of_a_user_who_lost_them() {
    for backend in backends() {
        // Named by a host: WebAuthn needs a domain for its relying party.
        let server = identity_builder(backend, &[("HIVE_MFA_REQUIRED", "none")])
            .public_host("localhost")
            .start()
            .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, browser) = add_user(&server, &admin, "op@example.com", "operator").await;
        enroll(&server, &browser).await;
        let mut authenticator = hive_testkit::passkey::SoftAuthenticator::new(&server.origin);
        register_passkey(&server, &browser, &mut authenticator).await;
        let status: Value = mfa_status(&server, &browser).await;
        assert_eq!(status["passkeys"], 1);
        let stuck = login(&server, "op@example.com", PASSWORD).await;
        assert_eq!(stage_of(&server, &stuck).await, "second_factor_required");

        let path = format!("/api/v1/users/{}/mfa", user["id"].as_str().unwrap());
        let by_user = browser.send(&server, Method::DELETE, &path, None).await;
        assert_eq!(by_user.status(), 403, "admins only");
        let reset = admin.send(&server, Method::DELETE, &path, None).await;
        assert_eq!(reset.status(), 204);
        assert_eq!(stuck.me(&server).await.status(), 401, "sessions ended");
        assert_eq!(browser.me(&server).await.status(), 401);
        let fresh = login(&server, "op@example.com", PASSWORD).await;
        assert_eq!(stage_of(&server, &fresh).await, "verified");
        let status: Value = mfa_status(&server, &fresh).await;
        assert_eq!(status["totp"], "none");
        assert_eq!(status["passkeys"], 0);
        assert_eq!(status["recoveryCodesLeft"], 0);
        let passkeys: Value = fresh
            .send(&server, Method::GET, "/api/v1/auth/passkeys", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            passkeys["items"].as_array().map(Vec::len),
            Some(0),
            "{passkeys}"
        );
        // TOTP, passkeys and recovery codes.
        assert_eq!(records_of(&server, "user.mfa_reset").await.len(), 3);
    }
}

#[tokio::test]
async fn a_rotated_vault_key_moves_the_seed_and_codes_still_verify() {
    for backend in backends() {
        let server = mfa_server(backend, "none").await;
        let admin = setup_admin(&server).await;
        let first = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (secret, _) = enroll(&server, &first).await;
        let user_id: uuid::Uuid = admin["id"].as_str().unwrap().parse().unwrap();
        let before = server
            .hive
            .store
            .mfa()
            .totp(user_id)
            .await
            .unwrap()
            .unwrap();
        let rotated = post(&server, &first, "/api/v1/admin/vault/rotate", json!({})).await;
        assert_eq!(rotated.status(), 200);
        let report = hive_core::vault::rotation::reencrypt_secrets(
            server.hive.store.as_ref(),
            &server.hive.vault,
            100,
            &hive_core::vault::Rotator::system("unused"),
        )
        .await
        .unwrap();
        assert_eq!(report.resealed, 1, "{report:?}");
        assert_eq!(report.retired_keys, vec![before.key_id]);
        let after = server
            .hive
            .store
            .mfa()
            .totp(user_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.key_id, report.key_id);
        assert_ne!(after.seed, before.seed);

        server.clock.advance(Duration::seconds(30));
        let session = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let verified = verify(&server, &session, code_now(&server, &secret)).await;
        assert_eq!(verified.status(), 204);
    }
}

#[tokio::test]
async fn a_token_of_a_user_who_must_enroll_is_refused_until_they_do() {
    let server = mfa_server(hive_testkit::TestBackend::Sqlite, "admins").await;
    let admin = setup_admin(&server).await;
    let browser = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let refused = post(&server, &browser, "/api/v1/tokens", json!({ "name": "ci" })).await;
    assert_eq!(refused.status(), 401, "no token before enrollment");
    enroll(&server, &browser).await;
    let token = create_token(&server, &browser, json!({ "name": "ci" })).await;
    let token = token["token"].as_str().unwrap();
    let works = with_bearer(&server, token, Method::GET, "/api/v1/users").await;
    assert_eq!(works.status(), 200);

    // The factors are reset (the CLI, here in-process): the policy applies to the token again.
    let user_id = admin["id"].as_str().unwrap().parse().unwrap();
    let meta = hive_core::kernel::caller::RequestMeta::default();
    let cli = hive_core::kernel::caller::Caller::cli();
    server.hive.mfa.reset(&cli, user_id, &meta).await.unwrap();
    let blocked = with_bearer(&server, token, Method::GET, "/api/v1/users").await;
    assert_eq!(blocked.status(), 403);
    assert_eq!(
        error_body(blocked).await.error.code,
        "mfa_enrollment_required"
    );
    let records = records_of(&server, "auth.token").await;
    assert_eq!(records.len(), 1);
}

/// A refusal under the sign-in limit of the second-factor routes is recorded as the user's
/// whose session waits for its factor (the limit counts the address); the session gains
/// nothing by it.
#[tokio::test]
async fn a_sign_in_limit_refusal_names_the_waiting_sessions_user() {
    for backend in backends() {
        let server = identity_server_with(
            backend,
            &[
                ("HIVE_MFA_REQUIRED", "none"),
                ("HIVE_RATE_LIMITS", "login=6/1m"),
            ],
        )
        .await;
        setup_admin(&server).await;
        let first = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let me: Value = first.me(&server).await.json().await.unwrap();
        let user = me["user"]["id"].as_str().unwrap().to_owned();
        // Four attempts from the address so far: two logins, a wrong code and the right one.
        let (secret, _) = enroll(&server, &first).await;
        let waiting = login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(stage_of(&server, &waiting).await, "second_factor_required");
        let wrong = other_code(&code_now(&server, &secret));
        let statuses = [
            verify(&server, &waiting, &wrong).await.status().as_u16(),
            verify(&server, &waiting, &wrong).await.status().as_u16(),
            verify(&server, &waiting, &wrong).await.status().as_u16(),
        ];
        assert_eq!(statuses, [401, 401, 429], "{backend:?}");
        let limited = records_of(&server, "rate_limit.exceeded").await;
        assert_eq!(limited.len(), 1, "{limited:?}");
        assert_eq!(limited[0].actor, format!("user:{user}"));
        assert_eq!(limited[0].detail, r#"{"policy":"login"}"#);
        assert_eq!(stage_of(&server, &waiting).await, "second_factor_required");
    }
}
