//! Single sign-on against a provider started inside the test on 127.0.0.1 (real HTTP both
//! ways, its own RSA and P-256 keys): valid sign-ins with each key, every forged or mismatched
//! token and flow refused with one answer, no session cookie and an audit record of the
//! reason; key rotation; the linking and creation rules.

use crate::support::*;
use hive_proto::Clock;
use hive_store::AuditOutcome;
use hive_testkit::oidc::{Forgery, Misbehaviour, SigningKey, TestProvider, TestUser};
use hive_testkit::{TestServer, backends};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use time::Duration;

const START: &str = "/api/v1/auth/oidc/corp/start";

/// A server with the provider configured as `corp`, its token times on the server's clock.
async fn sso_server(
    backend: hive_testkit::TestBackend,
    provider: &TestProvider,
    extra: &[(&str, &str)],
) -> TestServer {
    let mut vars: Vec<(String, String)> = provider.hive_vars("corp");
    vars.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let server = identity_server_with(backend, &pairs).await;
    provider.follow_clock(server.clock.clone());
    server
}

/// A sign-in on its way back to Hive: the callback URL the provider sent the browser to, and
/// the flow cookie Hive set when it started.
struct Returning {
    callback: url::Url,
    flow_cookie: Option<String>,
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Starts at Hive and lets the provider answer; stops before the callback reaches Hive.
async fn leave_for_provider(server: &TestServer, start: &str) -> Returning {
    let started = server.client.get(start).await;
    assert_eq!(started.status(), 302, "start");
    let flow_cookie = set_cookies(&started)
        .iter()
        .find(|c| c.starts_with("hive_oidc_flow="))
        .map(|c| c.split(';').next().unwrap().to_owned());
    assert!(flow_cookie.is_some(), "a flow cookie");
    let authorize = location(&started);
    let at_provider = plain_client().get(&authorize).send().await.unwrap();
    assert_eq!(
        at_provider.status(),
        302,
        "the provider sends the browser back"
    );
    let callback = url::Url::parse(&location(&at_provider)).unwrap();
    assert!(
        callback.as_str().starts_with(&format!(
            "{}/api/v1/auth/oidc/corp/callback?",
            server.base_url
        )),
        "{callback}"
    );
    Returning {
        callback,
        flow_cookie,
    }
}

async fn come_back(returning: &Returning) -> Response {
    let mut request = plain_client().get(returning.callback.clone());
    if let Some(cookie) = &returning.flow_cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

fn session_of(response: &Response) -> Option<String> {
    set_cookies(response)
        .into_iter()
        .find(|c| c.starts_with("hive_session=") && !c.starts_with("hive_session=;"))
        .map(|c| {
            let cookie = c.split(';').next().unwrap().to_owned();
            hive_testkit::capture::canary(cookie.trim_start_matches("hive_session="));
            cookie
        })
}

/// A full sign-in that must succeed: the browser it leaves signed in, and where it was sent.
async fn sign_in(server: &TestServer) -> (Browser, String) {
    let response = come_back(&leave_for_provider(server, START).await).await;
    assert_eq!(response.status(), 302, "signed in");
    let cookie = session_of(&response).expect("a session cookie");
    let browser = Browser {
        cookie,
        origin: server.base_url.clone(),
    };
    (browser, location(&response))
}

async fn me(server: &TestServer, browser: &Browser) -> Value {
    let response = browser.me(server).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The callback is refused with the one answer, sets no session, and the newest
/// `auth.oidc.login` record says `reason`.
async fn assert_refused(server: &TestServer, response: Response, reason: &str) {
    assert_eq!(response.status(), 401, "{reason}");
    let cookies = set_cookies(&response);
    assert!(session_of(&response).is_none(), "{reason}: {cookies:?}");
    assert!(
        cookies.iter().any(|c| c.starts_with("hive_oidc_flow=;")),
        "the flow cookie is cleared: {cookies:?}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "sso_failed", "{reason}");
    assert_eq!(
        body["error"]["message"],
        "Single sign-on failed. Start again; if you have no Hive account yet, ask an admin."
    );
    let records = records_of(server, "auth.oidc.login").await;
    let last = records.last().expect("a record of the refusal");
    assert_eq!(last.outcome, AuditOutcome::Failure);
    let detail: Value = serde_json::from_str(&last.detail).unwrap();
    assert_eq!(detail["reason"], reason, "{detail}");
    assert_eq!(detail["provider"], "corp");
}

async fn session_count(server: &TestServer) -> usize {
    records_of(server, "auth.login")
        .await
        .into_iter()
        .filter(|r| r.outcome == AuditOutcome::Success)
        .count()
}

#[tokio::test]
async fn valid_sign_ins_with_rsa_and_ec_keys_open_working_sessions() {
    for backend in backends() {
        let provider = TestProvider::start().await;
        let server = sso_server(backend, &provider, &[("OIDC_AUTO_CREATE", "true")]).await;

        let (browser, went_to) = sign_in(&server).await;
        assert_eq!(went_to, "/");
        let first = me(&server, &browser).await;
        assert_eq!(first["user"]["email"], "sso@example.com");
        assert_eq!(first["role"], "viewer");
        assert_eq!(first["authenticatedBy"], "session");
        let created = records_of(&server, "user.create").await;
        assert_eq!(created.len(), 1, "one account made");
        let detail: Value = serde_json::from_str(&created[0].detail).unwrap();
        assert_eq!(
            (detail["via"].as_str(), detail["role"].as_str()),
            (Some("oidc"), Some("viewer"))
        );
        let logins = records_of(&server, "auth.login").await;
        let detail: Value = serde_json::from_str(&logins.last().unwrap().detail).unwrap();
        assert!(detail.to_string().contains("oidc"), "{detail}");

        // The same subject signs in with an EC-signed token: the same account, by its link.
        provider.sign_with(SigningKey::Ec);
        let (again, _) = sign_in(&server).await;
        assert_eq!(me(&server, &again).await["user"]["id"], first["user"]["id"]);
        assert_eq!(records_of(&server, "user.create").await.len(), 1);
        assert_eq!(provider.jwks_fetches(), 1, "the keys are cached");

        // Logging out ends the SSO session like any other.
        let out = again
            .send(&server, Method::POST, "/api/v1/auth/logout", None)
            .await;
        assert_eq!(out.status(), 204);
        assert_eq!(again.me(&server).await.status(), 401);
        assert_eq!(
            me(&server, &browser).await["user"]["id"],
            first["user"]["id"]
        );
    }
}

#[tokio::test]
async fn forged_and_mismatched_tokens_are_refused() {
    for backend in backends() {
        let provider = TestProvider::start().await;
        let server = sso_server(backend, &provider, &[("OIDC_AUTO_CREATE", "true")]).await;
        let now = server.clock.now().unix_timestamp();
        let cases: Vec<(&str, Misbehaviour)> = vec![
            (
                "bad_signature",
                Misbehaviour::forge(Forgery::ForeignSignature),
            ),
            ("alg_none", Misbehaviour::forge(Forgery::AlgNone)),
            (
                "alg_not_allowed",
                Misbehaviour::forge(Forgery::Hs256WithPublicKey),
            ),
            (
                "wrong_issuer",
                Misbehaviour::with_claims(&[("iss", json!("https://evil.example.com"))]),
            ),
            (
                "wrong_audience",
                Misbehaviour::with_claims(&[("aud", json!("another-client"))]),
            ),
            (
                "expired",
                Misbehaviour::with_claims(&[("iat", json!(now - 600)), ("exp", json!(now - 60))]),
            ),
            (
                "wrong_nonce",
                Misbehaviour::with_claims(&[("nonce", json!("a nonce of another sign-in"))]),
            ),
            (
                "token_endpoint_refused",
                Misbehaviour {
                    replace_challenge: true,
                    ..Default::default()
                },
            ),
            (
                "token_response_invalid",
                Misbehaviour {
                    token_type: Some("mac".into()),
                    ..Default::default()
                },
            ),
        ];
        for (reason, misbehaviour) in cases {
            provider.misbehave(misbehaviour);
            let response = come_back(&leave_for_provider(&server, START).await).await;
            assert_refused(&server, response, reason).await;
        }
        let pkce = records_of(&server, "auth.oidc.login").await;
        let detail: Value = serde_json::from_str(&pkce[7].detail).unwrap();
        assert_eq!(
            detail["error"], "invalid_grant",
            "the provider refused the verifier"
        );

        // An unknown kid makes Hive fetch the keys once more, then refuse; another one within
        // the minute fetches nothing.
        server.clock.advance(Duration::seconds(61));
        provider.misbehave(Misbehaviour::forge(Forgery::UnknownKid));
        let fetched = provider.jwks_fetches();
        let response = come_back(&leave_for_provider(&server, START).await).await;
        assert_refused(&server, response, "unknown_kid").await;
        assert_eq!(
            provider.jwks_fetches(),
            fetched + 1,
            "refreshed for the unknown kid"
        );
        let response = come_back(&leave_for_provider(&server, START).await).await;
        assert_refused(&server, response, "unknown_kid").await;
        assert_eq!(
            provider.jwks_fetches(),
            fetched + 1,
            "at most one refresh a minute"
        );

        assert_eq!(session_count(&server).await, 0, "no session at all");
        assert!(records_of(&server, "user.create").await.is_empty());
        // Behaving again, the same provider signs in.
        provider.misbehave(Misbehaviour::default());
        sign_in(&server).await;
    }
}

#[tokio::test]
async fn the_flow_is_bound_to_its_browser_and_used_once() {
    for backend in backends() {
        let provider = TestProvider::start().await;
        let server = sso_server(backend, &provider, &[("OIDC_AUTO_CREATE", "true")]).await;

        // Another state than the one Hive sent.
        let mut wrong = leave_for_provider(&server, START).await;
        let pairs: Vec<(String, String)> = wrong
            .callback
            .query_pairs()
            .map(|(n, v)| {
                let v = if n == "state" {
                    "f".repeat(64)
                } else {
                    v.into_owned()
                };
                (n.into_owned(), v)
            })
            .collect();
        wrong.callback.query_pairs_mut().clear().extend_pairs(pairs);
        assert_refused(&server, come_back(&wrong).await, "unknown_state").await;

        // No flow cookie (a login CSRF: the attacker's callback in the victim's browser).
        let mut cookieless = leave_for_provider(&server, START).await;
        cookieless.flow_cookie = None;
        assert_refused(&server, come_back(&cookieless).await, "missing_flow_cookie").await;

        // The cookie of another sign-in.
        let other = leave_for_provider(&server, START).await;
        let mut swapped = leave_for_provider(&server, START).await;
        swapped.flow_cookie = other.flow_cookie.clone();
        assert_refused(&server, come_back(&swapped).await, "flow_cookie_mismatch").await;

        // A state is good for one callback.
        let once = leave_for_provider(&server, START).await;
        let first = come_back(&once).await;
        assert_eq!(first.status(), 302);
        assert_refused(&server, come_back(&once).await, "unknown_state").await;

        // A flow older than ten minutes is gone.
        let late = leave_for_provider(&server, START).await;
        server.clock.advance(Duration::minutes(11));
        assert_refused(&server, come_back(&late).await, "unknown_state").await;

        // The provider's own refusal, and a missing code.
        let declined = leave_for_provider(&server, START).await;
        let mut url = declined.callback.clone();
        let state: String = url
            .query_pairs()
            .find(|(n, _)| n == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        url.query_pairs_mut()
            .clear()
            .append_pair("error", "access_denied")
            .append_pair("state", &state);
        let declined = Returning {
            callback: url,
            ..declined
        };
        assert_refused(&server, come_back(&declined).await, "provider_error").await;
        assert_eq!(
            session_count(&server).await,
            1,
            "only the one good callback"
        );
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    for backend in backends() {
        let provider = TestProvider::start().await;
        let server = sso_server(backend, &provider, &[("OIDC_AUTO_CREATE", "true")]).await;
        sign_in(&server).await;
        assert_eq!(provider.jwks_fetches(), 1);

        provider.rotate_keys();
        // Within a minute of the last fetch the new kid is not looked up: refused.
        let response = come_back(&leave_for_provider(&server, START).await).await;
        assert_refused(&server, response, "unknown_kid").await;
        assert_eq!(provider.jwks_fetches(), 1);
        // Later, the unknown kid makes Hive fetch the keys again, and the sign-in works.
        server.clock.advance(Duration::seconds(61));
        sign_in(&server).await;
        assert_eq!(provider.jwks_fetches(), 2);
        provider.sign_with(SigningKey::Ec);
        sign_in(&server).await;
        assert_eq!(
            provider.jwks_fetches(),
            2,
            "the new EC key came with the same fetch"
        );
    }
}

#[tokio::test]
async fn accounts_are_linked_by_verified_email_only_and_created_only_when_allowed() {
    for backend in backends() {
        let provider = TestProvider::start().await;
        let server = sso_server(backend, &provider, &[]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (alice, _) = add_user(&server, &admin, "alice@example.com", "operator").await;

        // No account with that address, auto-create off: refused, nothing created.
        provider.set_user(TestUser::new("sub-nobody", "nobody@example.com"));
        let response = come_back(&leave_for_provider(&server, START).await).await;
        assert_refused(&server, response, "no_account").await;
        let users: Value = admin
            .send(&server, Method::GET, "/api/v1/users", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(users["items"].as_array().unwrap().len(), 2);

        // Alice's address, but the provider does not vouch for it: no link.
        let unverified = TestUser {
            email_verified: false,
            ..TestUser::new("sub-alice", "Alice@Example.com")
        };
        provider.set_user(unverified.clone());
        let response = come_back(&leave_for_provider(&server, START).await).await;
        assert_refused(&server, response, "email_not_verified").await;
        assert!(records_of(&server, "auth.oidc.link").await.is_empty());

        // Verified: linked (audited) and signed in as Alice.
        provider.set_user(TestUser {
            email_verified: true,
            ..unverified
        });
        let (browser, _) = sign_in(&server).await;
        let shown = me(&server, &browser).await;
        assert_eq!(shown["user"]["id"], alice["id"]);
        assert_eq!(
            shown["role"], "operator",
            "the role is Hive's, not the mapping's"
        );
        let links = records_of(&server, "auth.oidc.link").await;
        assert_eq!(links.len(), 1);
        assert_eq!(
            links[0].target.as_deref(),
            Some(format!("user:{}", alice["id"].as_str().unwrap()).as_str())
        );

        // Linked, the subject signs in even when the email changed at the provider.
        provider.set_user(TestUser::new("sub-alice", "alice.new@example.com"));
        let (again, _) = sign_in(&server).await;
        assert_eq!(me(&server, &again).await["user"]["id"], alice["id"]);

        // A deactivated account is refused, link or not.
        let path = format!("/api/v1/users/{}", alice["id"].as_str().unwrap());
        let off = admin
            .send(
                &server,
                Method::PATCH,
                &path,
                Some(json!({ "active": false })),
            )
            .await;
        assert_eq!(off.status(), 200);
        let response = come_back(&leave_for_provider(&server, START).await).await;
        assert_refused(&server, response, "deactivated").await;
    }
}

#[tokio::test]
async fn auto_created_accounts_take_the_mapped_role() {
    for backend in backends() {
        let provider = TestProvider::start().await;
        let server = sso_server(
            backend,
            &provider,
            &[
                ("OIDC_AUTO_CREATE", "true"),
                ("OIDC_CORP_ROLE_CLAIM", "groups"),
                ("OIDC_CORP_ROLE_MAP", "hive-ops=operator,hive-staff=viewer"),
                ("OIDC_CORP_DISPLAY_NAME", "Corp SSO"),
            ],
        )
        .await;
        let mut ops = TestUser::new("sub-ops", "ops@example.com");
        ops.extra
            .insert("groups".into(), json!(["staff", "hive-ops"]));
        provider.set_user(ops);
        let (browser, _) = sign_in(&server).await;
        let shown = me(&server, &browser).await;
        assert_eq!(shown["role"], "operator");
        assert_eq!(shown["user"]["displayName"], "Sso User");

        // An unverified address is never made into an account.
        let unverified = TestUser {
            email_verified: false,
            ..TestUser::new("sub-new", "new@example.com")
        };
        provider.set_user(unverified);
        let response = come_back(&leave_for_provider(&server, START).await).await;
        assert_refused(&server, response, "email_not_verified").await;

        // The provider list names the provider, never its secret.
        let listed = server.client.get("/api/v1/auth/oidc/providers").await;
        assert_eq!(listed.status(), 200);
        let text = listed.text().await.unwrap();
        assert!(!text.contains(&provider.client_secret));
        let listed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            listed,
            json!({ "providers": [{
                "id": "corp", "displayName": "Corp SSO",
                "startUrl": "/api/v1/auth/oidc/corp/start"
            }]})
        );
    }
}

#[tokio::test]
async fn return_paths_stay_on_hive_and_unknown_providers_are_not_found() {
    let backend = hive_testkit::TestBackend::Sqlite;
    let provider = TestProvider::start().await;
    let server = sso_server(backend, &provider, &[("OIDC_AUTO_CREATE", "true")]).await;
    for (requested, landing) in [
        ("%2Fagents%3Ftab%3Dmine", "/agents?tab=mine"),
        ("%2F%2Fevil.example.com%2F", "/"),
        ("%2F.%2F%2Fevil.example.com", "/"),
        ("%2Fa%2F..%2F%2Fevil.example.com", "/"),
        ("https%3A%2F%2Fevil.example.com%2F", "/"),
    ] {
        let start = format!("{START}?returnTo={requested}");
        let response = come_back(&leave_for_provider(&server, &start).await).await;
        assert_eq!(response.status(), 302);
        assert_eq!(location(&response), landing, "{requested}");
    }
    for path in [
        "/api/v1/auth/oidc/other/start",
        "/api/v1/auth/oidc/other/callback?code=x&state=y",
    ] {
        assert_eq!(server.client.get(path).await.status(), 404, "{path}");
    }
    // The start sends the browser to the provider with PKCE S256, state and nonce.
    let started = server.client.get(START).await;
    let authorize = url::Url::parse(&location(&started)).unwrap();
    let query: BTreeMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert_eq!(query["state"].len(), 64, "256 bits");
    assert_eq!(query["nonce"].len(), 64, "256 bits");
    assert_eq!(query["scope"], "openid email profile");
    assert_eq!(
        query["redirect_uri"],
        format!("{}/api/v1/auth/oidc/corp/callback", server.base_url)
    );
    let cookie = set_cookies(&started)
        .into_iter()
        .find(|c| c.starts_with("hive_oidc_flow="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Max-Age=600")
    );
}

#[tokio::test]
async fn an_unreachable_or_lying_provider_is_refused_at_the_start() {
    let backend = hive_testkit::TestBackend::Sqlite;
    let provider = TestProvider::start().await;
    let server = sso_server(backend, &provider, &[]).await;
    provider.misbehave(Misbehaviour {
        discovery_issuer: Some("https://evil.example.com".into()),
        ..Default::default()
    });
    let response = server.client.get(START).await;
    assert_eq!(response.status(), 503);
    let records = records_of(&server, "auth.oidc.login").await;
    let detail: Value = serde_json::from_str(&records.last().unwrap().detail).unwrap();
    assert_eq!(detail["reason"], "discovery_invalid");

    // Without the allowlist entry the egress guard refuses loopback: no request leaves.
    let provider = TestProvider::start().await;
    let mut vars = provider.hive_vars("corp");
    vars.retain(|(name, _)| name != "HIVE_EGRESS_FETCH_HOST_ALLOWLIST");
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let guarded = identity_server_with(backend, &pairs).await;
    assert_eq!(guarded.client.get(START).await.status(), 503);
    assert_eq!(records_of(&guarded, "egress.refused").await.len(), 1);
    assert_eq!(provider.jwks_fetches(), 0);
}

#[tokio::test]
async fn sign_ins_are_rate_limited_per_client_address() {
    let backend = hive_testkit::TestBackend::Sqlite;
    let provider = TestProvider::start().await;
    let server = sso_server(backend, &provider, &[("HIVE_RATE_LIMITS", "sso=3/15m")]).await;
    for _ in 0..3 {
        assert_eq!(server.client.get(START).await.status(), 302);
    }
    let limited = server.client.get(START).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let callback = server
        .client
        .get("/api/v1/auth/oidc/corp/callback?code=x&state=y")
        .await;
    assert_eq!(callback.status(), 429, "the callback shares the quota");
    // Password logins keep their own.
    assert_eq!(
        try_login(&server, "nobody@example.com", PASSWORD)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_single_sign_on_session_is_under_the_mfa_policy_like_a_password_one() {
    for backend in backends() {
        let provider = TestProvider::start().await;
        let server = sso_server(backend, &provider, &[("HIVE_MFA_REQUIRED", "admins")]).await;
        setup_admin(&server).await;
        // A password session of the admin must enroll…
        let password = login(&server, ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(
            me(&server, &password).await["sessionStage"],
            "enrollment_required"
        );

        // The admin signs in by SSO (linked by verified email): the policy sends the session
        // to enrollment, as it does the password session.
        provider.set_user(TestUser::new("sub-admin", ADMIN_EMAIL));
        let (sso_admin, _) = sign_in(&server).await;
        let shown = me(&server, &sso_admin).await;
        assert_eq!(shown["role"], "admin");
        assert_eq!(shown["sessionStage"], "enrollment_required");
        let users = sso_admin
            .send(&server, Method::GET, "/api/v1/users", None)
            .await;
        assert_eq!(users.status(), 401, "anonymous outside enrollment");
        let body: Value = users.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");

        // A viewer is not covered: verified at once.
        let server = sso_server(
            backend,
            &provider,
            &[
                ("HIVE_MFA_REQUIRED", "admins"),
                ("OIDC_AUTO_CREATE", "true"),
            ],
        )
        .await;
        provider.set_user(TestUser::new("sub-viewer", "viewer@example.com"));
        let (viewer, _) = sign_in(&server).await;
        assert_eq!(me(&server, &viewer).await["sessionStage"], "verified");
        // Under HIVE_MFA_REQUIRED=all the same sign-in must enroll first.
        let strict = sso_server(
            backend,
            &provider,
            &[("HIVE_MFA_REQUIRED", "all"), ("OIDC_AUTO_CREATE", "true")],
        )
        .await;
        let (must_enroll, _) = sign_in(&strict).await;
        assert_eq!(
            me(&strict, &must_enroll).await["sessionStage"],
            "enrollment_required"
        );
    }
}
