//! The dashboard's pages over HTTP (the browser test drives them in Chromium): forms only from
//! Hive's origin, refusals written for a person, sign-in that never sends a browser elsewhere,
//! and the page routes in the access matrix ([`crate::access_matrix`]).

use crate::support::*;
use hive_testkit::{TestServer, backends};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

fn location(response: &Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

fn content_type(response: &Response) -> &str {
    response.headers()["content-type"].to_str().unwrap()
}

/// A form post as a browser on `origin` (or none) sends it.
pub(crate) async fn post_form(
    server: &TestServer,
    path: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut request = server
        .client
        .request(Method::POST, path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded(form));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

fn serde_urlencoded(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                name,
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn forms_from_another_origin_are_refused_audited_and_change_nothing() {
    for backend in backends() {
        let server = identity_builder(backend, &[]).start().await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let credentials = [("email", ADMIN_EMAIL), ("password", PASSWORD)];
        let elsewhere = "http://127.0.0.1:1";
        for origin in [Some(elsewhere), Some("null"), None] {
            let signed_in = post_form(&server, "/login", origin, None, &credentials).await;
            assert_eq!(signed_in.status(), 403, "sign-in from {origin:?}");
            assert!(signed_in.headers().get("set-cookie").is_none());
            assert!(content_type(&signed_in).starts_with("text/html"));
            let out = post_form(&server, "/logout", origin, Some(&admin.cookie), &[]).await;
            assert_eq!(out.status(), 403, "sign-out from {origin:?}");
        }
        assert_eq!(admin.me(&server).await.status(), 200, "still signed in");
        // The sign-ins refused by the pages' guard, the sign-outs (with a session cookie) already
        // by the pipeline's check of cookie writes.
        let refused = records_of(&server, "auth.cookie_origin").await;
        let with = |reason: &str| refused.iter().filter(|r| r.detail.contains(reason)).count();
        assert_eq!(with("cross_origin_form"), 3, "{refused:?}");
        assert_eq!(with("cross_origin_cookie_write"), 3, "{refused:?}");

        // From Hive's own origin the same form signs in, and the session goes on to the home page.
        let own = Some(server.origin.as_str());
        let signed_in = post_form(&server, "/login", own, None, &credentials).await;
        assert_eq!(signed_in.status(), 303);
        assert_eq!(location(&signed_in), "/login?next=%2F");
        assert!(signed_in.headers().get("set-cookie").is_some());
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn sign_in_sends_a_browser_only_to_paths_of_this_site() {
    let server = identity_builder(hive_testkit::TestBackend::Sqlite, &[])
        .start()
        .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    for (next, to) in [
        ("/account/second-factor", "/account/second-factor"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("\t/evil", "/"),
    ] {
        let encoded =
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
        let response = admin
            .request(&server, Method::GET, &format!("/login?next={encoded}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{next}");
        assert_eq!(location(&response), to, "{next}");
    }
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn refusals_are_pages_and_a_page_without_a_session_leads_to_sign_in() {
    let server = identity_builder(hive_testkit::TestBackend::Sqlite, &[])
        .start()
        .await;
    setup_admin(&server).await;
    let away = server.client.get("/account/second-factor").await;
    assert_eq!(away.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&away), "/login?next=%2Faccount%2Fsecond-factor");

    // A malformed form: a page that says so, not the API's JSON.
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let bad = post_form(
        &server,
        "/login/verify",
        Some(&server.origin),
        Some(&admin.cookie),
        &[("no-such-field", "1")],
    )
    .await;
    assert!(bad.status().is_client_error(), "{}", bad.status());
    assert!(content_type(&bad).starts_with("text/html"));
    let body = bad.text().await.unwrap();
    assert!(body.contains("The request was not understood"), "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_err());

    // A browser's unknown page is a page; the API's unknown path stays JSON.
    let lost = server.client.get("/no-such-page").await;
    assert_eq!(lost.status(), 404);
    assert!(content_type(&lost).starts_with("text/html"));
    assert!(lost.headers().contains_key("content-security-policy"));
    assert!(lost.text().await.unwrap().contains("Nothing here"));
    let api = server.client.get("/api/v1/no-such-thing").await;
    assert_eq!(api.status(), 404);
    assert!(content_type(&api).starts_with("application/json"));

    // Pages carry the strict policy, and a referrer policy that keeps the forms' origin.
    let page = server.client.get("/login").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    assert_eq!(page.headers()["cache-control"], "no-store");
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_reset_link_opens_a_page_that_sets_the_new_password() {
    let server = identity_builder(hive_testkit::TestBackend::Sqlite, &[])
        .start()
        .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (user, _) = add_user(&server, &admin, "reset@example.com", "viewer").await;
    let link: Value = admin
        .send(
            &server,
            Method::POST,
            &format!("/api/v1/users/{}/reset-link", user["id"].as_str().unwrap()),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .contains("/reset-password#token=")
    );
    let token = link_token(&link);
    let opened = server.client.get("/reset-password").await;
    assert_eq!(opened.status(), 200);
    assert!(
        opened
            .text()
            .await
            .unwrap()
            .contains("data-fragment=\"token\"")
    );

    let new_password = "a brand new passphrase for reset";
    let own = Some(server.origin.as_str());
    let wrong = post_form(
        &server,
        "/reset-password",
        own,
        None,
        &[("token", "not-a-token"), ("password", new_password)],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("role=\"alert\""));
    let done = post_form(
        &server,
        "/reset-password",
        own,
        None,
        &[("token", &token), ("password", new_password)],
    )
    .await;
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .unwrap()
            .contains("Your password is changed")
    );
    login(&server, "reset@example.com", new_password).await;
    assert_eq!(
        try_login(&server, "reset@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    // The link was used up.
    let again = post_form(
        &server,
        "/reset-password",
        own,
        None,
        &[
            ("token", &token),
            ("password", "yet another long passphrase"),
        ],
    )
    .await;
    assert_eq!(again.status(), 401);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn sign_in_offers_each_provider_and_a_reset_by_mail() {
    let provider = hive_testkit::oidc::TestProvider::start().await;
    let vars: Vec<(String, String)> = provider.hive_vars("corp");
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let server = identity_builder(hive_testkit::TestBackend::Sqlite, &pairs)
        .start()
        .await;
    setup_admin(&server).await;
    let page = server.client.get("/login").await.text().await.unwrap();
    assert!(
        page.contains("href=\"/api/v1/auth/oidc/corp/start\""),
        "{page}"
    );
    assert!(page.contains("href=\"/reset-password/request\""));

    // The same page whether or not the account exists (the mail, if any, goes in the background).
    let own = Some(server.origin.as_str());
    let mut answers = Vec::new();
    for email in [ADMIN_EMAIL, "nobody@example.com"] {
        let asked = post_form(
            &server,
            "/reset-password/request",
            own,
            None,
            &[("email", email)],
        )
        .await;
        assert_eq!(asked.status(), 202, "{email}");
        answers.push(asked.text().await.unwrap());
    }
    assert!(answers[0].contains("If an account has this email"));
    assert_eq!(answers[0], answers[1]);
    // The page asked the service: each request is on record (written in the background, as
    // the mail is; there is no mail relay here).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while records_of(&server, "user.reset_requested").await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reset requests are not on record"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.stop().await.0.unwrap();
}

/// A hosted agent's page on a server that runs no sandbox: created from the list's form, its
/// versions (uploaded with the session cookie, as the page's script does) and a rollback, and
/// the actions its state refuses said on the page.
#[tokio::test]
async fn a_hosted_agents_page_shows_its_versions_and_why_an_action_is_refused() {
    let server = identity_builder(hive_testkit::TestBackend::Sqlite, &[])
        .start()
        .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let own = Some(server.origin.as_str());
    let cookie = Some(admin.cookie.as_str());
    let page_of = async |path: &str| {
        let response = admin.request(&server, Method::GET, path).send().await;
        let response = response.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    };
    assert!(
        page_of("/agents")
            .await
            .contains(r#"<option value="hosted">"#)
    );
    let form = [
        ("name", "echo"),
        ("kind", "hosted"),
        ("visibility", "private"),
    ];
    let created = post_form(&server, "/agents", own, cookie, &form).await;
    assert_eq!(created.status(), 303);
    let path = location(&created).to_owned();
    let id = path.trim_start_matches("/agents/").to_owned();

    let first = page_of(&path).await;
    for expected in [
        "No bundle yet: upload one",
        "Uploading from this page needs JavaScript",
        r#"<form id="bundle-form""#,
        "Nothing printed yet.",
        "It does not run now",
        "This Hive process does not run hosted agents",
        ">Start</button>",
    ] {
        assert!(first.contains(expected), "{expected}: {first}");
    }
    assert!(!first.contains(">Stop</button>") && !first.contains(">Pause</button>"));

    // Uploads as the page's script sends them: the API's route, the session cookie.
    let upload = async |archive: Vec<u8>| {
        admin
            .request(&server, Method::PUT, &format!("/api/v1/agents/{id}/bundle"))
            .header("content-type", "application/gzip")
            .body(archive)
            .send()
            .await
            .unwrap()
    };
    let refused = upload(b"not a bundle".to_vec()).await;
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    assert!(refused["error"]["message"].is_string(), "{refused}");
    let small_bundle = crate::access_matrix::small_bundle;
    assert_eq!(upload(small_bundle("first")).await.status(), 201);
    assert_eq!(upload(small_bundle("second")).await.status(), 201);
    let listed = page_of(&path).await;
    assert!(!listed.contains("No bundle yet"), "{listed}");
    assert!(
        listed.contains(r#"Roll back to this version<span class="visually-hidden"> (1)</span>"#),
        "{listed}"
    );
    assert!(
        !listed.contains("(2)</span>"),
        "the active version has no rollback: {listed}"
    );
    assert!(listed.contains("<td>you</td>"), "{listed}");
    assert!(
        listed.contains("<p>second</p>"),
        "the manifest's description: {listed}"
    );

    let rolled = post_form(
        &server,
        &format!("{path}/bundle/rollback"),
        own,
        cookie,
        &[("version", "1")],
    )
    .await;
    assert_eq!(rolled.status(), 200);
    let rolled = rolled.text().await.unwrap();
    assert!(rolled.contains("Version 1 is the active one"), "{rolled}");
    assert!(rolled.contains("(2)</span>"), "{rolled}");

    // Refused by its state: said on its page, with the conflict's status.
    let paused = post_form(&server, &format!("{path}/pause"), own, cookie, &[]).await;
    assert_eq!(paused.status(), 409);
    let paused = paused.text().await.unwrap();
    assert!(
        paused.contains(r#"<p class="error" role="alert">only a ready agent can be paused</p>"#),
        "{paused}"
    );

    // Started on a replica that runs no sandbox: stored as wished, and it can be stopped.
    let started = post_form(&server, &format!("{path}/start"), own, cookie, &[]).await;
    assert_eq!(started.status(), 303);
    let waiting = page_of(&path).await;
    assert!(waiting.contains("state-starting"), "{waiting}");
    assert!(
        waiting.contains("waiting for a replica that can run it"),
        "{waiting}"
    );
    assert!(waiting.contains(">Stop</button>") && !waiting.contains(">Start</button>"));
    assert!(waiting.contains(r#"data-follow="on""#), "{waiting}");
    let stopped = post_form(&server, &format!("{path}/stop"), own, cookie, &[]).await;
    assert_eq!(stopped.status(), 303);
    assert!(page_of(&path).await.contains("state-stopped"));
    server.stop().await.0.unwrap();
}

/// The admins' code-node setting from the security page: saved, followed by the save of a
/// workflow with a code node, and a wrong value refused.
#[tokio::test]
async fn the_security_page_sets_whether_workflows_may_have_code_nodes() {
    for backend in backends() {
        let server =
            identity_server_with(backend, &[("HIVE_WORKFLOW_DISABLE_CODE_NODE", "false")]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let page = admin
            .send(&server, Method::GET, "/admin/security", None)
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let text = page.text().await.unwrap();
        assert!(text.contains("Workflow code nodes"), "{text}");
        assert!(text.contains("<strong>on</strong>"), "{text}");

        let saved = post_form(
            &server,
            "/admin/security/code-nodes",
            Some(&admin.origin),
            Some(&admin.cookie),
            &[("setting", "off"), ("version", "")],
        )
        .await;
        assert_eq!(saved.status(), StatusCode::OK);
        let text = saved.text().await.unwrap();
        assert!(
            text.contains("is saved") && text.contains("<strong>off</strong>"),
            "{text}"
        );
        let setting: Value = admin
            .send(&server, Method::GET, "/api/v1/settings/workflows", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(setting["workflowCodeNodes"], "off", "{setting}");
        let code = serde_json::json!({
            "name": "with-code",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "sum", "type": "code", "language": "python", "source": "print(1)"}
            ],
            "edges": [{"from": "start", "to": "sum"}]
        });
        let checked: Value = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/workflows/validate",
                Some(code),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(checked["valid"], false, "{checked}");
        assert_eq!(
            checked["problems"][0]["rule"], "code_nodes_off",
            "{checked}"
        );

        let wrong = post_form(
            &server,
            "/admin/security/code-nodes",
            Some(&admin.origin),
            Some(&admin.cookie),
            &[("setting", "sometimes"), ("version", "")],
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
        server.stop().await.0.unwrap();
    }
}
