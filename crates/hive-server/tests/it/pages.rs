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

/// `path`'s page as `browser` sees it: its status and text.
async fn page_of(server: &TestServer, browser: &Browser, path: &str) -> (StatusCode, String) {
    let response = browser
        .request(server, Method::GET, path)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// An admin's adjustment of `user`'s wallet through the API.
async fn adjust(server: &TestServer, admin: &Browser, user: &str, minor: i64, reason: &str) {
    let response = admin
        .request(server, Method::POST, "/api/v1/billing/adjustments")
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&serde_json::json!({"userId": user, "amountMinor": minor, "reason": reason}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{reason}");
}

/// One llm call's usage, settled through the store as metering settles it.
async fn settle_usage(
    server: &TestServer,
    user: uuid::Uuid,
    agent: uuid::Uuid,
    model: &str,
    at: time::OffsetDateTime,
    (prompt, completion, cost): (u64, u64, i64),
    budgets: Vec<hive_store::billing::BudgetCharge>,
) {
    let mut usage = hive_store::UsageRow::llm(
        uuid::Uuid::now_v7(),
        agent,
        format!("user:{user}"),
        model,
        prompt,
        completion,
        at,
    );
    usage.user_id = Some(user);
    usage.cost =
        hive_store::billing::Money::new(cost, hive_store::billing::Currency::new("usd").unwrap());
    let settled = server
        .hive
        .store
        .billing()
        .settle(&hive_store::billing::Settlement {
            usage,
            hold_id: None,
            debit: None,
            budgets,
            audit: None,
        })
        .await
        .unwrap();
    assert!(matches!(
        settled,
        hive_store::billing::Settled::Applied { .. }
    ));
}

/// `href="…"` values of `text` that start with `prefix`, unescaped.
fn links(text: &str, prefix: &str) -> Vec<String> {
    text.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with(prefix))
        .map(|href| href.replace("&amp;", "&").replace("&#x2f;", "/"))
        .collect()
}

/// The wallet after an admin's adjustments, as money in the currency's decimals; the ledger in
/// keyset pages; usage drawn as one bar per day with use, the same numbers in a table, and the
/// span's CSV through the link the page gives (the session cookie authenticates it).
#[tokio::test]
async fn the_billing_pages_show_the_wallet_the_ledger_and_usage_by_day() {
    for backend in backends() {
        let server = identity_builder(backend, &[]).start().await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, viewer) = add_user(&server, &admin, "payer@example.com", "viewer").await;
        let user_id = user["id"].as_str().unwrap().to_owned();

        let (status, empty) = page_of(&server, &viewer, "/billing").await;
        assert_eq!(status, 200);
        assert!(
            empty.contains(r#"<a href="/billing">Billing</a>"#),
            "{empty}"
        );
        assert!(
            empty.contains(r#"<dd id="balance">0.00 USD</dd>"#),
            "{empty}"
        );
        assert!(empty.contains("No entries yet."));
        // Stripe is not set up here: no payment forms, and no admins' link.
        assert!(!empty.contains("/billing/checkout") && !empty.contains("/billing/portal"));
        assert!(!empty.contains("/billing/prices"));
        let unset = post_form(
            &server,
            "/billing/checkout",
            Some(&server.origin),
            Some(&viewer.cookie),
            &[("mode", "payment"), ("amount", "10")],
        )
        .await;
        assert_eq!(unset.status(), 503);
        assert!(
            unset
                .text()
                .await
                .unwrap()
                .contains("Stripe is not configured")
        );

        adjust(&server, &admin, &user_id, 1250, "welcome credit").await;
        adjust(&server, &admin, &user_id, -5, "a correction").await;
        let (_, wallet) = page_of(&server, &viewer, "/billing").await;
        assert!(
            wallet.contains(r#"<dd id="balance">12.45 USD</dd>"#),
            "{wallet}"
        );
        assert!(
            wallet.contains("+12.50 USD") && wallet.contains("-0.05 USD"),
            "{wallet}"
        );
        assert!(wallet.contains("welcome credit") && wallet.contains("adjustment"));
        assert!(wallet.contains("<strong>not held against this wallet</strong>"));
        // Its policy lets its forms lead to Stripe's pages, and is otherwise the pages' own.
        let policy = |response: &Response| {
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let billing = viewer
            .request(&server, Method::GET, "/billing")
            .send()
            .await
            .unwrap();
        let login_page = server.client.get("/login").await;
        assert_eq!(
            policy(&billing),
            policy(&login_page).replace(
                "form-action 'self'",
                "form-action 'self' https://checkout.stripe.com https://billing.stripe.com"
            )
        );

        // The ledger, 50 a page, newest first; the next page by its cursor.
        for n in 0..50 {
            adjust(&server, &admin, &user_id, 1, &format!("cent {n}")).await;
        }
        let (status, first) = page_of(&server, &viewer, "/billing/ledger").await;
        assert_eq!(status, 200);
        assert_eq!(first.matches("<tr><td>").count(), 50, "{first}");
        assert!(first.contains("cent 49") && !first.contains("welcome credit"));
        let older = links(&first, "/billing/ledger?cursor=");
        assert_eq!(older.len(), 1, "{first}");
        let (status, second) = page_of(&server, &viewer, &older[0]).await;
        assert_eq!(status, 200);
        assert_eq!(second.matches("<tr><td>").count(), 2, "{second}");
        assert!(second.contains("welcome credit") && second.contains("a correction"));
        assert!(links(&second, "/billing/ledger?cursor=").is_empty());
        assert!(second.contains(r#"<a href="/billing/ledger">Newest entries</a>"#));
        let (status, _) = page_of(&server, &viewer, "/billing/ledger?cursor=not-a-cursor").await;
        assert_eq!(status, 400);
        // An admin's page is the admin's own wallet.
        let (_, admins) = page_of(&server, &admin, "/billing").await;
        assert!(
            admins.contains(r#"<dd id="balance">0.00 USD</dd>"#),
            "{admins}"
        );
        assert!(admins.contains(r#"href="/billing/prices""#));

        // Usage on three days of the last 30 (the test clock is at 2026-01-01 00:00 UTC), two
        // models, all free: the chart measures tokens.
        let agent: serde_json::Value = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/agents",
                Some(serde_json::json!({ "name": "counted", "kind": "conformance" })),
            )
            .await
            .json()
            .await
            .unwrap();
        let agent = uuid::Uuid::parse_str(agent["id"].as_str().unwrap()).unwrap();
        let payer = uuid::Uuid::parse_str(&user_id).unwrap();
        let day = |d: u8, h: u8| {
            time::Date::from_calendar_date(2025, time::Month::December, d)
                .unwrap()
                .with_hms(h, 0, 0)
                .unwrap()
                .assume_utc()
        };
        for (at, model, tokens) in [
            (day(5, 9), "small", (10, 5, 0)),
            (day(5, 17), "small", (10, 5, 0)),
            (day(20, 12), "large", (100, 50, 0)),
            (day(31, 23), "small", (1, 2, 0)),
        ] {
            settle_usage(&server, payer, agent, model, at, tokens, Vec::new()).await;
        }
        let (status, usage) = page_of(&server, &viewer, "/billing/usage").await;
        assert_eq!(status, 200);
        assert!(
            usage.contains("Tokens per day, 2025-12-03 to 2026-01-01 (UTC)"),
            "{usage}"
        );
        assert!(usage.contains(r#"<svg class="chart" id="usage-chart""#));
        assert_eq!(usage.matches(r#"<rect class="bar""#).count(), 3, "{usage}");
        assert!(
            usage.contains("<title>2025-12-05: 0.00 USD (30 tokens, 2 records)</title>"),
            "{usage}"
        );
        assert!(usage.contains("<title>2025-12-20: 0.00 USD (150 tokens, 1 record)</title>"));
        assert!(
            usage.contains(
                "<td>2025-12-31</td><td>1</td><td>1</td><td>2</td><td>3</td><td>0 s</td><td>0</td><td>0.00 USD</td>"
            ),
            "{usage}"
        );
        assert!(
            usage.contains("<th scope=\"row\">Total</th><td>4</td>"),
            "{usage}"
        );
        // By model: a bar per model, the largest first.
        let (_, models) = page_of(&server, &viewer, "/billing/usage?by=model").await;
        assert_eq!(
            models.matches(r#"<rect class="bar""#).count(),
            2,
            "{models}"
        );
        assert!(models.find("<td>large</td>") < models.find("<td>small</td>"));
        // A span that ends before the 20th holds one day; a day that is not one is refused.
        let (_, early) = page_of(
            &server,
            &viewer,
            "/billing/usage?from=2025-12-01&to=2025-12-10",
        )
        .await;
        assert_eq!(early.matches(r#"<rect class="bar""#).count(), 1, "{early}");
        let (status, wrong) = page_of(&server, &viewer, "/billing/usage?from=yesterday").await;
        assert_eq!(status, 400);
        assert!(
            wrong.contains(r#"<p class="error" role="alert">From is a date"#),
            "{wrong}"
        );
        // A cost makes the chart measure money.
        settle_usage(
            &server,
            payer,
            agent,
            "large",
            day(20, 13),
            (1, 1, 250),
            Vec::new(),
        )
        .await;
        let (_, costly) = page_of(&server, &viewer, "/billing/usage").await;
        assert!(costly.contains("Cost per day,"), "{costly}");
        assert!(costly.contains("<title>2025-12-20: 2.50 USD (152 tokens, 2 records)</title>"));
        // Nobody else's use: the admin used nothing.
        let (_, none) = page_of(&server, &admin, "/billing/usage").await;
        assert!(none.contains("Nothing was used in this span."), "{none}");

        // The export the page links to: the same span's records, with the session cookie.
        let csv = links(&costly, "/api/v1/billing/usage.csv?");
        assert_eq!(csv.len(), 1, "{costly}");
        let export = viewer
            .request(&server, Method::GET, &csv[0])
            .send()
            .await
            .unwrap();
        assert_eq!(export.status(), 200, "{}", csv[0]);
        assert!(content_type(&export).starts_with("text/csv"));
        let rows = export.text().await.unwrap();
        assert_eq!(rows.lines().count(), 1 + 5, "{rows}");
        server.stop().await.0.unwrap();
    }
}

/// An admin sets budgets from the page (a user chosen from the list, an agent by its id) and
/// deletes one, each audited; a viewer sees the budget on them with this period's use and the
/// alert it raised, and cannot set one.
#[tokio::test]
async fn admins_set_and_delete_budgets_from_the_page_and_viewers_see_theirs() {
    for backend in backends() {
        let server = identity_builder(backend, &[]).start().await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, viewer) = add_user(&server, &admin, "spender@example.com", "viewer").await;
        let user_id = user["id"].as_str().unwrap().to_owned();
        let agent: serde_json::Value = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/agents",
                Some(serde_json::json!({ "name": "limited", "kind": "conformance" })),
            )
            .await
            .json()
            .await
            .unwrap();
        let agent_id = agent["id"].as_str().unwrap().to_owned();
        let own = Some(server.origin.as_str());

        let (status, form) = page_of(&server, &admin, "/billing/budgets").await;
        assert_eq!(status, 200);
        assert!(form.contains("No budget."), "{form}");
        let choice = format!(
            r#"<option value="user:{user_id}">spender@example.com (spender@example.com)</option>"#
        );
        assert!(form.contains(&choice), "{form}");
        assert!(form.contains(&format!(
            r#"<option value="agent:{agent_id}">limited</option>"#
        )));

        // Refused in words: an amount that is not one, a budget without a limit (the service's
        // message), nothing chosen.
        let target = format!("user:{user_id}");
        for (fields, status, said) in [
            (
                vec![
                    ("target", target.as_str()),
                    ("period", "month"),
                    ("max_cost", "2,50"),
                ],
                422,
                "is not an amount",
            ),
            (
                vec![("target", target.as_str()), ("period", "month")],
                400,
                "a budget limits maxTokens, maxCostMinor or both",
            ),
            (
                vec![("target", ""), ("period", "day"), ("max_tokens", "5")],
                422,
                "Choose a user or an agent",
            ),
        ] {
            let refused = post_form(
                &server,
                "/billing/budgets",
                own,
                Some(&admin.cookie),
                &fields,
            )
            .await;
            assert_eq!(refused.status().as_u16(), status, "{fields:?}");
            let text = refused.text().await.unwrap();
            assert!(text.contains(r#"<p class="error" role="alert">"#), "{text}");
            assert!(text.contains(said), "{said}: {text}");
        }
        // From another site, even with the admin's session: refused, nothing set.
        let elsewhere = post_form(
            &server,
            "/billing/budgets",
            Some("http://127.0.0.1:1"),
            Some(&admin.cookie),
            &[("target", &target), ("period", "day"), ("max_tokens", "5")],
        )
        .await;
        assert_eq!(elsewhere.status(), 403);
        assert!(records_of(&server, "billing.budget.set").await.is_empty());

        let set = post_form(
            &server,
            "/billing/budgets",
            own,
            Some(&admin.cookie),
            &[
                ("target", &target),
                ("scope", "user"),
                ("scope_id", ""),
                ("period", "month"),
                ("max_tokens", "1000"),
                ("max_cost", "2.50"),
            ],
        )
        .await;
        assert_eq!(set.status(), 303);
        assert_eq!(location(&set), "/billing/budgets?done=set");
        let by_id = post_form(
            &server,
            "/billing/budgets",
            own,
            Some(&admin.cookie),
            &[
                ("target", ""),
                ("scope", "agent"),
                ("scope_id", &agent_id),
                ("period", "day"),
                ("max_tokens", "10"),
                ("max_cost", ""),
            ],
        )
        .await;
        assert_eq!(by_id.status(), 303);
        let records = records_of(&server, "billing.budget.set").await;
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(
            records[0].target.as_deref(),
            Some(format!("user:{user_id}").as_str())
        );
        assert!(
            records[0].detail.contains(r#""maxCostMinor":250"#),
            "{:?}",
            records[0]
        );
        let (_, listed) = page_of(&server, &admin, "/billing/budgets?done=set").await;
        assert!(listed.contains("The budget is set"), "{listed}");
        assert_eq!(listed.matches("<tr data-budget=").count(), 2, "{listed}");
        assert!(listed.contains("agent limited"), "{listed}");
        assert!(
            listed.contains(r#"<span class="hint">by you</span>"#),
            "{listed}"
        );

        // Use this period, 90 % of the tokens: the viewer's meter and the 80 % alert.
        let budgets = server
            .hive
            .store
            .billing()
            .list_budgets(None)
            .await
            .unwrap();
        let on_user = budgets.iter().find(|b| b.scope.kind() == "user").unwrap();
        let charge = hive_store::billing::BudgetCharge {
            claim: hive_store::billing::BudgetClaim {
                budget_id: on_user.id,
                period_start: on_user
                    .period
                    .start(hive_proto::Clock::now(server.clock.as_ref())),
                tokens: 900,
                cost_minor: 30,
            },
            max_tokens: on_user.max_tokens,
            max_cost_minor: on_user.max_cost_minor,
            notify_user_id: on_user.notify_user_id,
        };
        settle_usage(
            &server,
            uuid::Uuid::parse_str(&user_id).unwrap(),
            uuid::Uuid::parse_str(&agent_id).unwrap(),
            "small",
            hive_proto::Clock::now(server.clock.as_ref()),
            (600, 300, 30),
            vec![charge],
        )
        .await;
        let (status, theirs) = page_of(&server, &viewer, "/billing/budgets").await;
        assert_eq!(status, 200);
        assert!(
            theirs.contains("Budgets on you and your agents"),
            "{theirs}"
        );
        assert_eq!(theirs.matches("<tr data-budget=").count(), 1, "{theirs}");
        assert!(theirs.contains("<td>you</td>"), "{theirs}");
        assert!(theirs.contains(r#"<span class="hint">by an administrator</span>"#));
        assert!(theirs.contains(r#"<meter min="0" max="1000" value="900" high="800""#));
        assert!(theirs.contains("900 of 1,000 tokens (90 %)"), "{theirs}");
        assert!(theirs.contains("0.30 of 2.50 USD (12 %)"), "{theirs}");
        assert!(
            theirs.contains("<td>80 %</td><td>you, per month</td><td>2026-01</td>"),
            "{theirs}"
        );
        assert!(theirs.contains("shown here only (no alert webhook)"));
        // No form for a viewer, and the route refuses one: a page, audited, nothing set.
        assert!(!theirs.contains(r#"action="/billing/budgets""#));
        let refused = post_form(
            &server,
            "/billing/budgets",
            own,
            Some(&viewer.cookie),
            &[("target", &target), ("period", "day"), ("max_tokens", "1")],
        )
        .await;
        assert_eq!(refused.status(), 403);
        assert!(content_type(&refused).starts_with("text/html"));
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("You cannot open this page")
        );
        assert!(
            !records_of(&server, "http.POST /billing/budgets")
                .await
                .is_empty()
        );
        assert_eq!(records_of(&server, "billing.budget.set").await.len(), 2);

        // Admins see everyone's alerts.
        let (_, everyone) = page_of(&server, &admin, "/billing/budgets").await;
        assert!(
            everyone.contains(
                "<td>80 %</td><td>spender@example.com (spender@example.com), per month</td>"
            ),
            "{everyone}"
        );

        // Deleted from its button; an unknown one is said to be gone.
        let id = on_user.id;
        let deleted = post_form(
            &server,
            &format!("/billing/budgets/{id}/delete"),
            own,
            Some(&admin.cookie),
            &[],
        )
        .await;
        assert_eq!(deleted.status(), 303);
        assert_eq!(location(&deleted), "/billing/budgets?done=deleted");
        let records = records_of(&server, "billing.budget.delete").await;
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].target.as_deref(),
            Some(format!("budget:{id}").as_str())
        );
        let again = post_form(
            &server,
            &format!("/billing/budgets/{id}/delete"),
            own,
            Some(&admin.cookie),
            &[],
        )
        .await;
        assert_eq!(again.status(), 404);
        let (_, left) = page_of(&server, &admin, "/billing/budgets").await;
        assert_eq!(left.matches("<tr data-budget=").count(), 1, "{left}");
        // Its alerts went with it.
        assert!(left.contains("No alerts."), "{left}");
        let (_, none) = page_of(&server, &viewer, "/billing/budgets").await;
        assert!(none.contains("No budget concerns you."), "{none}");
        server.stop().await.0.unwrap();
    }
}

/// Stripe's API as the checkout test needs it: each session request's form kept, a session
/// answered.
async fn stripe_stand_in() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let kept = std::sync::Arc::clone(&seen);
    let app = axum::Router::new()
        .route(
            "/v1/checkout/sessions",
            axum::routing::post({
                let seen = std::sync::Arc::clone(&kept);
                move |body: String| async move {
                    seen.lock().unwrap().push(body);
                    axum::Json(serde_json::json!({
                        "id": "cs_test_page", "url": "https://checkout.stripe.com/c/pay/cs_test_page"
                    }))
                }
            }),
        )
        .route(
            "/v1/billing_portal/sessions",
            axum::routing::post(move |body: String| async move {
                kept.lock().unwrap().push(body);
                axum::Json(serde_json::json!({
                    "id": "bps_page", "url": "https://billing.stripe.com/p/session/bps_page"
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, seen)
}

/// The wallet's top-up (the amount typed in major units, read without floats), the
/// subscription and the customer portal, each answered with a redirect to Stripe; what the
/// form gets wrong and what the service refuses said on the page.
#[tokio::test]
async fn a_top_up_and_the_portal_lead_from_the_wallet_to_stripe() {
    const WEBHOOK_SECRET: &str = "whsec_0123456789abcdefghijklmnopqrstuv";
    for backend in backends() {
        let (stripe, seen) = stripe_stand_in().await;
        let api_base = format!("http://{stripe}");
        let server = identity_builder(
            backend,
            &[
                ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &stripe),
                ("STRIPE_API_BASE", &api_base),
                ("STRIPE_SECRET_KEY", "sk_test_0123456789abcdefghijklmnop"),
                ("STRIPE_SUBSCRIPTION_PRICE_ID", "price_page"),
                ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ],
        )
        .start()
        .await;
        hive_testkit::capture::canary("sk_test_0123456789abcdefghijklmnop");
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, buyer) = add_user(&server, &admin, "buyer@example.com", "viewer").await;
        let user_id = user["id"].as_str().unwrap().to_owned();
        let own = Some(server.origin.as_str());
        let cookie = Some(buyer.cookie.as_str());

        let (_, wallet) = page_of(&server, &buyer, "/billing").await;
        assert!(wallet.contains(r#"<form method="post" action="/billing/checkout">"#));
        assert!(wallet.contains("From 1.00 to 1000.00 USD."), "{wallet}");
        assert!(wallet.contains(">Subscribe</button>"), "{wallet}");
        // No customer linked yet: no portal.
        assert!(!wallet.contains("Manage payment"), "{wallet}");
        assert!(!wallet.contains("sk_test_"), "the key is never shown");

        // What the form gets wrong, and what the service's bounds refuse, before Stripe.
        for (amount, status, said) in [
            ("12.345", 422, "is not an amount"),
            ("-5", 422, "is not an amount"),
            ("0.99", 400, "a top-up is 100 to 100000 minor units"),
        ] {
            let refused = post_form(
                &server,
                "/billing/checkout",
                own,
                cookie,
                &[("mode", "payment"), ("amount", amount)],
            )
            .await;
            assert_eq!(refused.status().as_u16(), status, "{amount}");
            let text = refused.text().await.unwrap();
            assert!(text.contains(said), "{amount}: {text}");
            assert!(
                text.contains(&format!(r#"value="{amount}""#)),
                "kept: {text}"
            );
        }
        assert!(seen.lock().unwrap().is_empty());

        // 0.29 is no binary fraction: read as 29 cents, not 28.
        let paid = post_form(
            &server,
            "/billing/checkout",
            own,
            cookie,
            &[("mode", "payment"), ("amount", "25.29")],
        )
        .await;
        assert_eq!(paid.status(), 303);
        assert_eq!(
            location(&paid),
            "https://checkout.stripe.com/c/pay/cs_test_page"
        );
        let form = seen.lock().unwrap().pop().unwrap();
        assert!(
            form.contains("line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=2529"),
            "{form}"
        );
        assert!(
            form.contains(&format!("client_reference_id={user_id}")),
            "{form}"
        );
        let subscribed = post_form(
            &server,
            "/billing/checkout",
            own,
            cookie,
            &[("mode", "subscription")],
        )
        .await;
        assert_eq!(subscribed.status(), 303);
        let form = seen.lock().unwrap().pop().unwrap();
        assert!(
            form.contains("mode=subscription") && form.contains("price_page"),
            "{form}"
        );
        assert_eq!(records_of(&server, "billing.checkout").await.len(), 2);

        // Back from Stripe: the page says the wallet follows the webhook.
        let (_, back) = page_of(&server, &buyer, "/billing?checkout=success").await;
        assert!(
            back.contains(r#"<p class="note" role="status">Thank you"#),
            "{back}"
        );
        assert!(back.contains("webhook"));

        // The portal: refused in words before a checkout links a customer, then offered.
        let early = post_form(&server, "/billing/portal", own, cookie, &[]).await;
        assert_eq!(early.status(), 409);
        assert!(
            early
                .text()
                .await
                .unwrap()
                .contains("no Stripe customer is linked to you yet")
        );
        let event = serde_json::json!({
            "id": "evt_page_checkout", "object": "event", "type": "checkout.session.completed",
            "data": {"object": {"id": "cs_test_page", "customer": "cus_page",
                                "client_reference_id": user_id}}
        })
        .to_string();
        let now = hive_proto::Clock::now(server.clock.as_ref()).unix_timestamp();
        let signature = hive_crypto::webhook_signature::header(
            WEBHOOK_SECRET.as_bytes(),
            now,
            event.as_bytes(),
        );
        let linked = server
            .client
            .request(Method::POST, "/api/webhooks/stripe")
            .header("content-type", "application/json")
            .header("Stripe-Signature", signature)
            .body(event)
            .send()
            .await
            .unwrap();
        assert_eq!(linked.status(), 200);
        let (_, wallet) = page_of(&server, &buyer, "/billing").await;
        assert!(wallet.contains(">Manage payment</button>"), "{wallet}");
        let portal = post_form(&server, "/billing/portal", own, cookie, &[]).await;
        assert_eq!(portal.status(), 303);
        assert_eq!(
            location(&portal),
            "https://billing.stripe.com/p/session/bps_page"
        );
        assert!(
            seen.lock()
                .unwrap()
                .pop()
                .unwrap()
                .contains("customer=cus_page")
        );
        server.stop().await.0.unwrap();
    }
}

/// Admins set and remove a model's price from the prices page (audited); everyone sees the
/// prices in force on the wallet's page; a viewer cannot set one.
#[tokio::test]
async fn admins_set_and_remove_model_prices_from_the_page() {
    for backend in backends() {
        let server = identity_builder(backend, &[("BILLING_USAGE_MINOR_PER_1K_TOKENS", "3")])
            .start()
            .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, viewer) = add_user(&server, &admin, "reader@example.com", "viewer").await;
        let own = Some(server.origin.as_str());

        let (status, page) = page_of(&server, &admin, "/billing/prices").await;
        assert_eq!(status, 200);
        assert!(
            page.contains("the default: 0.03 USD per 1,000 tokens"),
            "{page}"
        );
        assert!(page.contains("None: every model costs the default."));
        let wrong = post_form(
            &server,
            "/billing/prices",
            own,
            Some(&admin.cookie),
            &[
                ("model", "gpt-local"),
                ("prompt", "0.001"),
                ("completion", "0"),
            ],
        )
        .await;
        assert_eq!(wrong.status(), 422);
        assert!(wrong.text().await.unwrap().contains("Prompt tokens: "));
        let set = post_form(
            &server,
            "/billing/prices",
            own,
            Some(&admin.cookie),
            &[
                ("model", "gpt-local"),
                ("prompt", "0.02"),
                ("completion", "0.1"),
            ],
        )
        .await;
        assert_eq!(set.status(), 303);
        assert_eq!(location(&set), "/billing/prices?done=set");
        let records = records_of(&server, "billing.price.set").await;
        assert_eq!(records.len(), 1);
        assert!(
            records[0].detail.contains(r#""completionMinorPer1k":10"#),
            "{:?}",
            records[0]
        );

        let (_, wallet) = page_of(&server, &viewer, "/billing").await;
        assert!(
            wallet.contains(
                "<tr><td><code>gpt-local</code></td><td>0.02 USD</td><td>0.10 USD</td></tr>"
            ),
            "{wallet}"
        );
        assert!(
            wallet.contains("<dt>1,000 tokens</dt><dd>0.03 USD</dd>"),
            "{wallet}"
        );
        // Not a viewer's to set, nor to see the admins' page.
        let refused = post_form(
            &server,
            "/billing/prices",
            own,
            Some(&viewer.cookie),
            &[("model", "gpt-local"), ("prompt", "0"), ("completion", "0")],
        )
        .await;
        assert_eq!(refused.status(), 403);
        assert_eq!(page_of(&server, &viewer, "/billing/prices").await.0, 403);

        let removed = post_form(
            &server,
            "/billing/prices/remove",
            own,
            Some(&admin.cookie),
            &[("model", "gpt-local")],
        )
        .await;
        assert_eq!(removed.status(), 303);
        assert_eq!(location(&removed), "/billing/prices?done=removed");
        assert_eq!(records_of(&server, "billing.price.set").await.len(), 2);
        let (_, page) = page_of(&server, &admin, "/billing/prices?done=removed").await;
        assert!(page.contains("takes the default price again") && page.contains("None:"));
        let again = post_form(
            &server,
            "/billing/prices/remove",
            own,
            Some(&admin.cookie),
            &[("model", "gpt-local")],
        )
        .await;
        assert_eq!(again.status(), 404);
        assert!(
            again
                .text()
                .await
                .unwrap()
                .contains("has no price of its own")
        );
        server.stop().await.0.unwrap();
    }
}

#[tokio::test]
async fn the_home_page_shows_the_system_health_to_a_viewer() {
    // Every disk has less than 16 TiB free: the disk shows as degraded.
    let server = identity_server_with(
        hive_testkit::TestBackend::Sqlite,
        &[
            ("HIVE_HEALTH_DISK_DEGRADED_MB", "16777216"),
            ("HIVE_HEALTH_DISK_DOWN_MB", "0"),
        ],
    )
    .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let (_, viewer) = add_user(&server, &admin, "viewer@example.com", "viewer").await;

    let (status, html) = page_of(&server, &viewer, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"System health: <span class="state state-degraded">degraded</span>"#),
        "{html}"
    );
    let row = |name: &str| {
        html.split("<tr>")
            .find(|row| row.starts_with(&format!("<td>{name}")))
            .unwrap_or_else(|| panic!("no row for {name} in {html}"))
            .to_owned()
    };
    let database = row("Database (required)");
    assert!(database.contains(r#"state-ok">ok<"#), "{database}");
    assert!(database.contains("answers ("), "{database}");
    let disk = row("Disk of the data directory (required)");
    assert!(disk.contains(r#"state-degraded">degraded<"#), "{disk}");
    assert!(
        disk.contains("low on space;") && disk.contains(" free of "),
        "{disk}"
    );
    assert!(html.contains("<td>Background jobs</td>"));
    // The deployment's details stay the admins'.
    assert!(!html.contains("Task store"));
    let (_, admin_html) = page_of(&server, &admin, "/").await;
    assert!(admin_html.contains("Task store") && admin_html.contains("System health: "));
    server.stop().await.0.unwrap();
}
