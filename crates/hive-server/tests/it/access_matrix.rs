//! Walks the whole route table as anonymous, viewer, operator, admin, a deactivated user and
//! another user than an object's owner, and checks every answer against the route's rule. A
//! route added without a rule cannot exist (routes come only from the table); a route whose
//! path this test cannot fill fails it.

use crate::support::*;
use hive_server::auth::Access;
use hive_server::route_table;
use hive_testkit::{TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A caller of the matrix and the role it holds (`None`: no valid session).
struct Caller {
    name: &'static str,
    role: Option<hive_proto::Role>,
    browser: Option<Browser>,
    email: Option<&'static str>,
}

/// The objects the table's paths name.
struct Objects {
    /// A user the admin acts on (never one of the callers).
    target_user: String,
    /// The owner's session and token, for the ownership checks.
    owner_session: String,
    owner_token: String,
    owner_secret: String,
    owner_passkey: String,
    owner_agent: String,
    /// A hosted agent of the owner's, with a first version of its bundle.
    owner_hosted: String,
    owner_conversation: String,
    /// A workflow of the owner's whose one approval only the owner may decide, and a run of
    /// it (waiting for that decision, so that it can be cancelled and retried).
    owner_workflow: String,
    owner_run: String,
}

/// The owner's workflow: a run of it waits for the owner's decision.
fn owned_workflow() -> Value {
    json!({
        "name": "owned",
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "approve", "type": "approval", "message": "go on?",
             "approvers": {"users": ["owner@example.com"]}},
            {"id": "done", "type": "output", "value": "done"}
        ],
        "edges": [{"from": "start", "to": "approve"}, {"from": "approve", "to": "done"}]
    })
}

/// `text` encoded for a form's body.
fn form_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A hosted agent's routes, API and pages: they act on [`Objects::owner_hosted`].
const HOSTED_ROUTES: [&str; 13] = [
    "/api/v1/agents/{id}/bundle",
    "/api/v1/agents/{id}/bundles",
    "/api/v1/agents/{id}/bundle/rollback",
    "/api/v1/agents/{id}/restart",
    "/api/v1/agents/{id}/pause",
    "/api/v1/agents/{id}/resume",
    "/api/v1/agents/{id}/logs",
    "/api/v1/agents/{id}/logs/stream",
    "/api/v1/agents/{id}/stats",
    "/agents/{id}/bundle/rollback",
    "/agents/{id}/restart",
    "/agents/{id}/pause",
    "/agents/{id}/resume",
];

/// Owned routes whose action needs a running sandbox, which the test server has none of: the
/// owner reaches them when the answer is the agent's state refusing it (409), not a 404.
const NEED_A_SANDBOX: [&str; 6] = [
    "/api/v1/agents/{id}/restart",
    "/api/v1/agents/{id}/pause",
    "/api/v1/agents/{id}/resume",
    "/agents/{id}/restart",
    "/agents/{id}/pause",
    "/agents/{id}/resume",
];

/// The one API route whose body is not JSON: a hosted agent's bundle upload.
const BUNDLE_UPLOAD: &str = "/api/v1/agents/{id}/bundle";

/// A bundle whose manifest names no secret, as a tar.gz.
pub(crate) fn small_bundle(description: &str) -> Vec<u8> {
    let manifest = format!(
        "[agent]\nname = \"owned\"\ndescription = \"{description}\"\ncommand = [\"python3\", \"agent.py\"]\n"
    );
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, text) in [
        ("hive-agent.toml", manifest.as_str()),
        ("agent.py", "print('hi')\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, name, text.as_bytes())
            .unwrap();
    }
    archive.into_inner().unwrap().finish().unwrap()
}

fn fill(path: &str, id: &str) -> String {
    path.replace("{id}", id).replace("{version}", "1")
}

/// The object an owned route names for the ownership check.
fn owned_object<'a>(path: &str, objects: &'a Objects) -> &'a str {
    match path {
        "/api/v1/auth/sessions/{id}" => &objects.owner_session,
        "/api/v1/tokens/{id}" => &objects.owner_token,
        "/api/v1/secrets/{id}" => &objects.owner_secret,
        "/api/v1/auth/passkeys/{id}" => &objects.owner_passkey,
        "/api/v1/agents/{id}"
        | "/api/v1/agents/{id}/start"
        | "/api/v1/agents/{id}/stop"
        | "/api/v1/agents/{id}/usage"
        | "/api/v1/agents/{id}/calls" => &objects.owner_agent,
        "/api/v1/conversations/{id}" | "/api/v1/conversations/{id}/messages" => {
            &objects.owner_conversation
        }
        path if path.starts_with("/api/v1/workflow-runs/{id}")
            || path.starts_with("/workflows/runs/{id}") =>
        {
            &objects.owner_run
        }
        path if path.starts_with("/api/v1/workflows/{id}")
            || path.starts_with("/workflows/{id}") =>
        {
            &objects.owner_workflow
        }
        "/account/sessions/{id}/revoke" => &objects.owner_session,
        "/account/tokens/{id}/revoke" => &objects.owner_token,
        "/secrets/{id}/value" | "/secrets/{id}/delete" => &objects.owner_secret,
        "/account/passkeys/{id}/delete" => &objects.owner_passkey,
        path if HOSTED_ROUTES.contains(&path) => &objects.owner_hosted,
        path if path.starts_with("/agents/{id}") => &objects.owner_agent,
        other => panic!("owned route {other} has no object in the access matrix; add one"),
    }
}

fn role_path(path: &str, objects: &Objects) -> String {
    if !path.contains('{') {
        return path.to_owned();
    }
    if path.starts_with("/api/v1/users/") {
        return fill(path, &objects.target_user);
    }
    if path.starts_with("/internal/v1/hosted/") {
        // Unsigned: refused before any agent is looked at.
        return path
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{*path}", "x");
    }
    if path.starts_with("/api/v1/workflows/{id}")
        || path.starts_with("/api/v1/workflow-runs/{id}")
        || path.starts_with("/api/webhooks/workflows/{id}/")
    {
        // Unknown workflows and runs: the role check passes or not before the service looks.
        return fill(path, &uuid::Uuid::new_v4().to_string())
            .replace("{node}", "approve")
            .replace("{trigger}", "incoming");
    }
    if path.starts_with("/api/v1/billing/prices/{model}") {
        // A model without a price: deleting it is 404 for whoever may try.
        return path.replace("{model}", "no-such-model");
    }
    if path.starts_with("/api/v1/auth/oidc/{provider}/") {
        // No provider is configured here: an unknown one answers 404 to everyone.
        return path.replace("{provider}", "corp");
    }
    let owned = [
        "/api/v1/auth/sessions/{id}",
        "/api/v1/tokens/{id}",
        "/api/v1/secrets/{id}",
        "/api/v1/auth/passkeys/{id}",
        "/api/v1/agents/{id}",
        "/api/v1/agents/{id}/start",
        "/api/v1/agents/{id}/stop",
        "/api/v1/agents/{id}/usage",
        "/api/v1/agents/{id}/calls",
        "/api/v1/agents/{id}/chat",
        "/api/v1/conversations/{id}",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/billing/budgets/{id}",
    ];
    // A2A: unknown agents (the role check comes first; then 404 for every caller).
    if owned.contains(&path)
        || HOSTED_ROUTES.contains(&path)
        || path.starts_with("/api/a2a/agents/{id}/")
    {
        // Unknown ids: the role check passes or not before the handler looks.
        return fill(path, &uuid::Uuid::new_v4().to_string());
    }
    panic!("route {path} has a parameter the access matrix cannot fill; add it");
}

/// An empty object for methods that carry a body (enough to pass body parsing where every field
/// is optional, and a 400 elsewhere).
fn empty_body(method: &Method) -> Option<Value> {
    (*method != Method::GET && *method != Method::DELETE).then(|| json!({}))
}

/// The body of a change to an owned object: what it needs to reach the ownership check.
fn owned_body(method: &Method, path: &str) -> Option<Value> {
    match (method, path) {
        (&Method::PATCH, "/api/v1/auth/passkeys/{id}") => Some(json!({ "name": "Renamed" })),
        (&Method::PATCH, "/api/v1/agents/{id}") => Some(json!({ "description": "Renamed" })),
        (&Method::PUT, "/api/v1/workflows/{id}") => Some(owned_workflow()),
        (&Method::PATCH, "/api/v1/workflows/{id}") => Some(json!({ "enabled": true })),
        _ => empty_body(method),
    }
}

/// `route` (a path of the table) at `path` by `browser` (`None`: anonymous) with `body`; a
/// bundle upload carries a bundle instead.
async fn send(
    server: &TestServer,
    browser: Option<&Browser>,
    method: &Method,
    route: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = match browser {
        Some(browser) => browser.request(server, method.clone(), path),
        None => server.client.request(method.clone(), path),
    };
    let request = match body {
        _ if route == BUNDLE_UPLOAD => request
            .header("content-type", "application/gzip")
            .body(small_bundle("uploaded by the walk")),
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn call(
    server: &TestServer,
    caller: &Caller,
    method: &Method,
    route: &str,
    path: &str,
) -> u16 {
    let body = empty_body(method);
    let response = send(server, caller.browser.as_ref(), method, route, path, body).await;
    response.status().as_u16()
}

/// A page request as a browser sends it (a form post from Hive's own origin, with `form`).
async fn page_send(
    server: &TestServer,
    cookie: Option<&str>,
    method: &Method,
    path: &str,
    form: &str,
) -> reqwest::Response {
    let mut request = server
        .client
        .request(method.clone(), path)
        .header("origin", &server.origin);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if *method == Method::POST {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
    }
    request.send().await.unwrap()
}

fn to_sign_in(response: &reqwest::Response) -> bool {
    response.status() == 303
        && response.headers()["location"]
            .to_str()
            .is_ok_and(|to| to.starts_with("/login"))
}

/// A page request as the caller's browser sends it, with an empty form: its status, and
/// whether it was sent to the sign-in page.
async fn page_call(
    server: &TestServer,
    caller: &Caller,
    method: &Method,
    path: &str,
) -> (u16, bool) {
    let cookie = caller
        .browser
        .as_ref()
        .map(|browser| browser.cookie.as_str());
    let response = page_send(server, cookie, method, path, "").await;
    (response.status().as_u16(), to_sign_in(&response))
}

/// The form an owned page's change needs to reach the ownership check.
fn owned_form(path: &str) -> String {
    let form = match path {
        "/agents/{id}/settings" => "name=owned&visibility=private",
        "/agents/{id}/limits" => {
            "requests_per_minute=60&tokens_per_day=0&concurrent_tasks=4&timeout_seconds=60"
        }
        "/secrets/{id}/value" => "value=another-value",
        "/agents/{id}/bundle/rollback" => "version=1",
        "/workflows/{id}/save" => {
            return format!("document={}", form_value(&owned_workflow().to_string()));
        }
        "/workflows/{id}/enabled" => "enabled=true",
        "/workflows/{id}/runs" => "input=%7B%7D",
        "/workflows/{id}/delete" => "confirm=yes",
        _ => "",
    };
    form.to_owned()
}

/// Whether a page ends its object (the owner's walk leaves those to the API's).
fn ends_object(path: &str) -> bool {
    path.ends_with("/delete") || path.ends_with("/revoke")
}

/// Signs a caller in again when a route (logout) ended its session; `true` when it had to
/// (the check itself was then a refused, audited request).
async fn keep_signed_in(server: &TestServer, caller: &mut Caller) -> bool {
    if let (Some(browser), Some(email), Some(_)) = (&caller.browser, caller.email, caller.role)
        && browser.me(server).await.status() == 401
    {
        caller.browser = Some(login(server, email, PASSWORD).await);
        return true;
    }
    false
}

#[tokio::test]
async fn every_route_answers_every_caller_by_its_rule() {
    for backend in backends() {
        // Named by a domain in AUTH_URL, so that passkeys work.
        let server = identity_builder(backend, &[])
            .public_host("localhost")
            .start()
            .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (_, viewer) = add_user(&server, &admin, "viewer@example.com", "viewer").await;
        let (_, operator) = add_user(&server, &admin, "operator@example.com", "operator").await;
        let (gone_user, gone) = add_user(&server, &admin, "gone@example.com", "operator").await;
        let (target, _) = add_user(&server, &admin, "target@example.com", "viewer").await;
        let (_, owner) = add_user(&server, &admin, "owner@example.com", "operator").await;
        let gone_path = format!("/api/v1/users/{}", gone_user["id"].as_str().unwrap());
        let off = admin
            .send(
                &server,
                Method::PATCH,
                &gone_path,
                Some(json!({ "active": false })),
            )
            .await;
        assert_eq!(off.status(), 200);

        let mut device = hive_testkit::passkey::SoftAuthenticator::new(&server.origin);
        let owner_passkey = register_passkey(&server, &owner, &mut device).await;
        // A second session of the owner's is the object; the first one acts.
        login(&server, "owner@example.com", PASSWORD).await;
        let owner_sessions: Value = owner
            .send(&server, Method::GET, "/api/v1/auth/sessions", None)
            .await
            .json()
            .await
            .unwrap();
        let owner_token = create_token(&server, &owner, json!({ "name": "owned" })).await;
        let owner_secret: Value = owner
            .send(
                &server,
                Method::POST,
                "/api/v1/secrets",
                Some(json!({ "name": "owned", "value": "s3cr3t-value" })),
            )
            .await
            .json()
            .await
            .unwrap();
        let owner_agent: Value = owner
            .send(
                &server,
                Method::POST,
                "/api/v1/agents",
                Some(json!({ "name": "owned", "kind": "conformance" })),
            )
            .await
            .json()
            .await
            .unwrap();
        // The conversation is with an agent of its own: the walk deletes `owner_agent`.
        let chat_agent: Value = owner
            .send(
                &server,
                Method::POST,
                "/api/v1/agents",
                Some(json!({ "name": "chatty", "kind": "conformance" })),
            )
            .await
            .json()
            .await
            .unwrap();
        let agent_path = format!("/api/v1/agents/{}", chat_agent["id"].as_str().unwrap());
        let owner_hosted: Value = owner
            .send(
                &server,
                Method::POST,
                "/api/v1/agents",
                Some(json!({ "name": "hosted", "kind": "hosted" })),
            )
            .await
            .json()
            .await
            .unwrap();
        let owner_hosted = owner_hosted["id"].as_str().unwrap().to_owned();
        let pushed = owner
            .request(
                &server,
                Method::PUT,
                &format!("/api/v1/agents/{owner_hosted}/bundle"),
            )
            .header("content-type", "application/gzip")
            .body(small_bundle("the first version"))
            .send()
            .await
            .unwrap();
        assert_eq!(pushed.status(), 201);
        let started = owner
            .send(&server, Method::POST, &format!("{agent_path}/start"), None)
            .await;
        assert_eq!(started.status(), 200);
        let chatted = owner
            .send(
                &server,
                Method::POST,
                &format!("{agent_path}/chat"),
                Some(json!({ "text": "hello" })),
            )
            .await;
        let events = crate::chat::chat_events(chatted).await;
        let workflow: Value = owner
            .send(
                &server,
                Method::POST,
                "/api/v1/workflows",
                Some(owned_workflow()),
            )
            .await
            .json()
            .await
            .unwrap();
        let owner_workflow = workflow["workflow"]["id"].as_str().unwrap().to_owned();
        let run = owner
            .send(
                &server,
                Method::POST,
                &format!("/api/v1/workflows/{owner_workflow}/runs"),
                Some(json!({})),
            )
            .await;
        assert_eq!(run.status(), 202);
        let run: Value = run.json().await.unwrap();
        let objects = Objects {
            target_user: target["id"].as_str().unwrap().to_owned(),
            owner_session: owner_sessions["items"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            owner_token: owner_token["id"].as_str().unwrap().to_owned(),
            owner_secret: owner_secret["id"].as_str().unwrap().to_owned(),
            owner_passkey: owner_passkey["id"].as_str().unwrap().to_owned(),
            owner_agent: owner_agent["id"].as_str().unwrap().to_owned(),
            owner_hosted,
            owner_conversation: events[0].1["conversation"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            owner_workflow,
            owner_run: run["id"].as_str().unwrap().to_owned(),
        };

        use hive_proto::Role;
        let mut callers = vec![
            Caller {
                name: "anonymous",
                role: None,
                browser: None,
                email: None,
            },
            Caller {
                name: "deactivated",
                role: None,
                browser: Some(gone),
                email: None,
            },
            Caller {
                name: "viewer",
                role: Some(Role::Viewer),
                browser: Some(viewer),
                email: Some("viewer@example.com"),
            },
            Caller {
                name: "operator",
                role: Some(Role::Operator),
                browser: Some(operator),
                email: Some("operator@example.com"),
            },
            Caller {
                name: "admin",
                role: Some(Role::Admin),
                browser: Some(admin),
                email: Some(ADMIN_EMAIL),
            },
        ];

        let table = route_table();
        assert!(table.len() >= 20, "the table lists the API");
        let mut refusals = 0;
        let mut replica_refusals = 0;
        let mut seen = HashMap::new();
        for entry in &table {
            assert!(
                seen.insert((entry.method.clone(), entry.path), ())
                    .is_none(),
                "{} {} twice",
                entry.method,
                entry.path
            );
            let path = role_path(entry.path, &objects);
            for caller in &mut callers {
                let status = call(&server, caller, &entry.method, entry.path, &path).await;
                let what = format!(
                    "{} {} as {} on {backend:?}",
                    entry.method, entry.path, caller.name
                );
                match (entry.rule.access, caller.role) {
                    (Access::Public, _) => {
                        assert!(status != 401 && status != 403, "{what}: {status}")
                    }
                    // No session or token stands for a replica's signature; the refusal is
                    // recorded as the relay's own (counted below), not as a route's.
                    (Access::Replica, _) => {
                        assert_eq!(status, 403, "{what}");
                        replica_refusals += 1;
                        continue;
                    }
                    (Access::AtLeast(_), None) => assert_eq!(status, 401, "{what}"),
                    (Access::AtLeast(minimum), Some(role)) if role < minimum => {
                        assert_eq!(status, 403, "{what}")
                    }
                    (Access::AtLeast(_), Some(_)) => assert!(
                        status != 401 && status != 403 && status < 500,
                        "{what}: {status}"
                    ),
                }
                if status == 401 || status == 403 {
                    refusals += 1;
                }
                if keep_signed_in(&server, caller).await {
                    refusals += 1;
                }
            }
        }

        // The dashboard's pages by the same rules: a browser without a session is sent to sign
        // in (the refusal recorded), a role below the page's minimum gets 403.
        let pages = hive_web::page_table();
        assert!(
            pages.iter().any(|page| page.path == "/"),
            "the table lists the pages"
        );
        for entry in &pages {
            assert!(
                seen.insert((entry.method.clone(), entry.path), ())
                    .is_none(),
                "{} {} twice",
                entry.method,
                entry.path
            );
            let path = entry
                .path
                .replace("{*file}", "app.css")
                .replace("{id}", &uuid::Uuid::new_v4().to_string());
            for caller in &mut callers {
                let (status, sent_to_sign_in) =
                    page_call(&server, caller, &entry.method, &path).await;
                let what = format!(
                    "page {} {} as {} on {backend:?}",
                    entry.method, entry.path, caller.name
                );
                match (entry.rule.access, caller.role) {
                    (Access::Public | Access::Replica, _) => assert!(
                        status != 401 && status != 403 && status < 500,
                        "{what}: {status}"
                    ),
                    (Access::AtLeast(_), None) => {
                        assert!(sent_to_sign_in, "{what}: {status}");
                        refusals += 1;
                    }
                    (Access::AtLeast(minimum), Some(role)) if role < minimum => {
                        assert_eq!(status, 403, "{what}");
                        refusals += 1;
                    }
                    // Signing out leads to the sign-in page too, as its answer.
                    (Access::AtLeast(_), Some(_)) => assert!(
                        (!sent_to_sign_in || entry.path == "/logout")
                            && status != 401
                            && status != 403
                            && status < 500,
                        "{what}: {status}"
                    ),
                }
                if keep_signed_in(&server, caller).await {
                    refusals += 1;
                }
            }
        }

        // Ownership: another user's object is not there for a non-admin; the owner reaches it.
        let stranger = callers
            .iter()
            .find(|c| c.name == "operator")
            .unwrap()
            .browser
            .clone()
            .unwrap();
        // The pages first: the API's walk below ends the objects.
        for entry in pages.iter().filter(|e| e.owned) {
            let path = fill(entry.path, owned_object(entry.path, &objects));
            let form = owned_form(entry.path);
            let refused =
                page_send(&server, Some(&stranger.cookie), &entry.method, &path, &form).await;
            assert_eq!(
                refused.status(),
                404,
                "page {} {} by another user",
                entry.method,
                entry.path
            );
            if ends_object(entry.path) {
                continue;
            }
            let reached =
                page_send(&server, Some(&owner.cookie), &entry.method, &path, &form).await;
            let state_refused = NEED_A_SANDBOX.contains(&entry.path) && reached.status() == 409;
            assert!(
                (reached.status().is_success() || reached.status() == 303 || state_refused)
                    && !to_sign_in(&reached),
                "page {} {} by its owner: {}",
                entry.method,
                entry.path,
                reached.status()
            );
        }
        for entry in table.iter().filter(|e| e.owned) {
            let path = fill(entry.path, owned_object(entry.path, &objects));
            let body = owned_body(&entry.method, entry.path);
            let status = send(
                &server,
                Some(&stranger),
                &entry.method,
                entry.path,
                &path,
                body,
            )
            .await
            .status();
            assert_eq!(
                status, 404,
                "{} {} by another user",
                entry.method, entry.path
            );
        }
        // The owner's walk ends objects last: a workflow's routes come after its deletion.
        let mut owners_walk: Vec<_> = table.iter().filter(|e| e.owned).collect();
        owners_walk.sort_by_key(|e| e.method == Method::DELETE);
        for entry in owners_walk {
            let path = fill(entry.path, owned_object(entry.path, &objects));
            let body = owned_body(&entry.method, entry.path);
            let status = send(
                &server,
                Some(&owner),
                &entry.method,
                entry.path,
                &path,
                body,
            )
            .await
            .status();
            let state_refused = NEED_A_SANDBOX.contains(&entry.path) && status == 409;
            assert!(
                status.is_success() || state_refused,
                "{} {} by its owner: {status}",
                entry.method,
                entry.path
            );
        }

        // Every refusal left an audit record.
        let mut audited = 0;
        let mut forward_refusals_audited = 0;
        let mut cursor: Option<String> = None;
        loop {
            let page = hive_store::PageRequest::new(100, cursor.as_deref()).unwrap();
            let records = server
                .hive
                .store
                .audit()
                .list(&hive_store::AuditFilter::all(), &page)
                .await
                .unwrap();
            audited += records
                .items
                .iter()
                .filter(|r| {
                    r.action.starts_with("http.") && r.outcome == hive_store::AuditOutcome::Denied
                })
                .count();
            forward_refusals_audited += records
                .items
                .iter()
                .filter(|r| {
                    r.action == "agent.forward.refused"
                        && r.outcome == hive_store::AuditOutcome::Denied
                })
                .count();
            match records.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(
            audited, refusals,
            "one audit record per refusal on {backend:?}"
        );
        assert_eq!(
            forward_refusals_audited, replica_refusals,
            "one record per unsigned relay request on {backend:?}"
        );
        assert!(replica_refusals > 0, "the relay's routes were walked");
        server.stop().await.0.unwrap();
    }
}

/// Removes every `requestId` (it differs on every request), wherever the answer holds one.
fn without_request_ids(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("requestId");
            map.values_mut().for_each(without_request_ids);
        }
        Value::Array(items) => items.iter_mut().for_each(without_request_ids),
        _ => {}
    }
}

/// Status and body of an answer, without its request ids.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    without_request_ids(&mut body);
    (status, body)
}

/// Routes whose answer carries a fresh random value (a ceremony id) on every call: the
/// status alone is compared.
const FRESH_EVERY_TIME: [&str; 1] = ["/api/v1/auth/passkey-login/start"];

/// A session short of its second factor — verifying it, or sent to enroll one first — is
/// anonymous on every route but the few of its stage: each answer equals the anonymous one
/// (the admin's private agent is not on the instance card, its own card is not there).
#[tokio::test]
async fn a_session_short_of_its_second_factor_is_answered_like_anonymous() {
    for backend in backends() {
        let server = identity_builder(backend, &[("HIVE_MFA_REQUIRED", "admins")])
            .public_host("localhost")
            .start()
            .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        crate::mfa::enroll(&server, &admin).await;
        let agent: Value = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/agents",
                Some(json!({ "name": "private-helper", "kind": "conformance" })),
            )
            .await
            .json()
            .await
            .unwrap();
        let agent_id = agent["id"].as_str().unwrap().to_owned();
        assert_eq!(agent["visibility"], "private");
        let path = format!("/api/v1/agents/{agent_id}/start");
        let started = admin.send(&server, Method::POST, &path, None).await;
        assert_eq!(started.status(), 200);
        // The verified session sees the agent: what the others must not.
        let card = admin
            .send(&server, Method::GET, "/.well-known/agent-card.json", None)
            .await;
        assert!(card.text().await.unwrap().contains("private-helper"));
        let own_card = format!("/api/a2a/agents/{agent_id}/agent-card.json");
        let own = admin.send(&server, Method::GET, &own_card, None).await;
        assert_eq!(own.status(), 200);

        // A second admin without a second factor: the policy sends the session to enrollment.
        let (_, enrolling) = add_user(&server, &admin, "second@example.com", "admin").await;
        let pending = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let sessions = [
            ("second_factor_required", pending),
            ("enrollment_required", enrolling),
        ];
        for (stage, browser) in &sessions {
            let me: Value = browser.me(&server).await.json().await.unwrap();
            assert_eq!(me["sessionStage"], *stage);
        }

        let unknown = uuid::Uuid::new_v4().to_string();
        for entry in route_table() {
            let path = if entry.path.starts_with("/api/a2a/agents/{id}/") {
                fill(entry.path, &agent_id)
            } else {
                fill(entry.path, &unknown).replace("{provider}", "corp")
            };
            let body = empty_body(&entry.method);
            let mut request = server.client.request(entry.method.clone(), &path);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let anonymous = answer(request.send().await.unwrap()).await;
            for (stage, browser) in &sessions {
                let during = match *stage {
                    "second_factor_required" => entry.rule.during.second_factor,
                    _ => entry.rule.during.enrollment,
                };
                if during {
                    continue;
                }
                let what = format!(
                    "{} {} in a session {stage} on {backend:?}",
                    entry.method, entry.path
                );
                let response = browser
                    .send(&server, entry.method.clone(), &path, body.clone())
                    .await;
                let seen = answer(response).await;
                if FRESH_EVERY_TIME.contains(&entry.path) {
                    assert_eq!(seen.0, anonymous.0, "{what}");
                } else {
                    assert_eq!(seen, anonymous, "{what}");
                }
            }
        }

        // The refusals are the anonymous answer; their records say whose session it was.
        let refused = records_of(&server, "http.GET /api/v1/users").await;
        for reason in ["second_factor_required", "mfa_enrollment_required"] {
            assert!(
                refused
                    .iter()
                    .any(|r| r.actor.starts_with("user:") && r.detail.contains(reason)),
                "{reason}: {refused:?}"
            );
        }
        // The sessions were not used up by the walk: they still verify or enroll.
        for (_, browser) in &sessions {
            assert_eq!(browser.me(&server).await.status(), 200);
        }
        server.stop().await.0.unwrap();
    }
}
