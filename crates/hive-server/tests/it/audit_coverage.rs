//! Every route that changes state leaves the audit records of its changes (most exactly one),
//! each written with its change. The test walks the route table: a new mutating route without a case here fails
//! it, so nothing can be added unaudited.

use crate::support::*;
use hive_server::route_table;
use hive_store::{AuditOutcome, AuditRecord};
use hive_testkit::passkey::SoftAuthenticator;
use hive_testkit::{TestServer, backends};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const NEW_PASSWORD: &str = "a different long passphrase";

/// The mutating routes in the order the walk takes them, each with the actions of the records
/// it writes, in order (none: a POST that only reads). Most write one; an MFA change also
/// records the sessions it ends and the codes it issues.
/// The walk's mesh secret, shared with its peer instance.
const MESH_SECRET: &str = "SNY2SGlkZXg1VLxyV-m86USVvV8vBZGI-Bnpnz9IChQ";

const WALK: &[(&str, &str, &[&str])] = &[
    ("POST", "/api/v1/setup", &["setup.create_admin"]),
    ("POST", "/api/v1/auth/login", &["auth.login"]),
    ("POST", "/api/v1/users/invitations", &["user.invite"]),
    ("POST", "/api/v1/auth/invitation", &[]),
    (
        "POST",
        "/api/v1/auth/invitation/accept",
        &["user.accept_invitation"],
    ),
    ("POST", "/api/v1/auth/register", &["auth.register"]),
    ("PATCH", "/api/v1/users/{id}", &["user.update"]),
    (
        "POST",
        "/api/v1/users/{id}/reset-link",
        &["user.reset_link"],
    ),
    (
        "POST",
        "/api/v1/auth/password-reset",
        &["user.reset_password"],
    ),
    (
        "POST",
        "/api/v1/auth/password-reset/request",
        &["user.reset_requested"],
    ),
    ("PATCH", "/api/v1/auth/me", &["user.update_profile"]),
    (
        "POST",
        "/api/v1/auth/reauthenticate",
        &["auth.reauthenticate"],
    ),
    ("POST", "/api/v1/auth/password", &["user.change_password"]),
    ("POST", "/api/v1/tokens", &["token.create"]),
    ("DELETE", "/api/v1/tokens/{id}", &["token.revoke"]),
    ("POST", "/api/v1/secrets", &["secret.create"]),
    ("PATCH", "/api/v1/secrets/{id}", &["secret.update"]),
    ("DELETE", "/api/v1/secrets/{id}", &["secret.delete"]),
    ("POST", "/api/v1/secrets/import", &["secret.import"]),
    ("POST", "/api/v1/admin/vault/rotate", &["vault.rotate"]),
    ("POST", "/api/v1/admin/backups", &["backup.create"]),
    // The key rotated away from holds nothing any more: it is retired, then the pass recorded.
    (
        "POST",
        "/api/v1/admin/vault/reencrypt",
        &["vault.key_retire", "vault.reencrypt"],
    ),
    ("PUT", "/api/v1/settings/security", &["settings.update"]),
    ("PUT", "/api/v1/settings/workflows", &["settings.update"]),
    ("POST", "/api/v1/mesh/wan/ingress", &["mesh.wan.ingress"]),
    ("POST", "/api/v1/agents", &["agent.create"]),
    ("POST", "/api/v1/agents/import", &["agent.create"]),
    ("PATCH", "/api/v1/agents/{id}", &["agent.update"]),
    (
        "POST",
        "/api/v1/agents/{id}/start",
        &["agent.start", "agent.status"],
    ),
    // A call to a running agent: one record each, without contents.
    ("POST", "/api/a2a/jsonrpc", &["a2a.call"]),
    ("POST", "/api/a2a/jsonrpc/", &["a2a.call"]),
    ("POST", "/api/a2a/agents/{id}/jsonrpc", &["a2a.call"]),
    ("POST", "/api/a2a/agents/{id}/jsonrpc/", &["a2a.call"]),
    // The public tier's own endpoint: an anonymous call, recorded as such.
    (
        "POST",
        "/api/a2a/jsonrpc/public",
        &["mesh.a2a.public_tier.call"],
    ),
    // A call through the federation proxy to the walk's peer instance.
    (
        "POST",
        "/api/v1/mesh/federation/proxy/jsonrpc",
        &["mesh.federation.proxy_jsonrpc"],
    ),
    // A chat message is an A2A call (its contents stay out of the record).
    ("POST", "/api/v1/agents/{id}/chat", &["a2a.call"]),
    (
        "DELETE",
        "/api/v1/conversations/{id}",
        &["conversation.delete"],
    ),
    ("POST", "/api/v1/agents/{id}/stop", &["agent.stop"]),
    // A hosted agent's bundle: the version, and the card its manifest gives the agent.
    (
        "PUT",
        "/api/v1/agents/{id}/bundle",
        &["agent.bundle.push", "agent.update"],
    ),
    (
        "POST",
        "/api/v1/agents/{id}/bundle/rollback",
        &["agent.bundle.rollback", "agent.update"],
    ),
    ("DELETE", "/api/v1/agents/{id}", &["agent.delete"]),
    // Workflows: a document checked or converted changes nothing; its runs wait at approvals,
    // so the engine writes nothing of its own while the walk goes on.
    ("POST", "/api/v1/workflows/validate", &[]),
    ("POST", "/api/v1/workflows/import", &[]),
    ("POST", "/api/v1/workflows", &["workflow.save"]),
    ("PUT", "/api/v1/workflows/{id}", &["workflow.save"]),
    ("PATCH", "/api/v1/workflows/{id}", &["workflow.enable"]),
    (
        "POST",
        "/api/v1/workflows/{id}/webhook-secret",
        &["workflow.webhook_secret"],
    ),
    (
        "POST",
        "/api/v1/workflows/{id}/runs",
        &["workflow.run.start"],
    ),
    (
        "POST",
        "/api/v1/workflow-runs/{id}/approvals/{node}",
        &["workflow.approval"],
    ),
    (
        "POST",
        "/api/v1/workflow-runs/{id}/cancel",
        &["workflow.run.cancel"],
    ),
    (
        "POST",
        "/api/v1/workflow-runs/{id}/retry",
        &["workflow.run.retry"],
    ),
    // A signed call: the run it starts, recorded as anonymous.
    (
        "POST",
        "/api/webhooks/workflows/{id}/{trigger}",
        &["workflow.run.start"],
    ),
    ("DELETE", "/api/v1/workflows/{id}", &["workflow.delete"]),
    // Billing: a price, an adjustment, a Stripe event crediting Alice.
    (
        "PUT",
        "/api/v1/billing/prices/{model}",
        &["billing.price.set"],
    ),
    (
        "DELETE",
        "/api/v1/billing/prices/{model}",
        &["billing.price.set"],
    ),
    (
        "POST",
        "/api/v1/billing/adjustments",
        &["billing.adjustment"],
    ),
    ("POST", "/api/webhooks/stripe", &["billing.stripe.event"]),
    ("POST", "/api/v1/billing/budgets", &["billing.budget.set"]),
    (
        "DELETE",
        "/api/v1/billing/budgets/{id}",
        &["billing.budget.delete"],
    ),
    ("POST", "/api/v1/auth/mfa/totp", &["auth.mfa.totp_start"]),
    (
        "POST",
        "/api/v1/auth/mfa/totp/confirm",
        &[
            "auth.session.revoke_all",
            "auth.mfa.totp_enable",
            "auth.mfa.recovery_codes",
            "auth.mfa.verify",
        ],
    ),
    (
        "POST",
        "/api/v1/auth/mfa/verify",
        &["auth.mfa.recovery_code_use", "auth.mfa.verify"],
    ),
    (
        "POST",
        "/api/v1/auth/mfa/recovery-codes",
        &["auth.mfa.recovery_codes"],
    ),
    (
        "POST",
        "/api/v1/auth/mfa/totp/disable",
        &[
            "auth.mfa.recovery_code_use",
            "auth.session.revoke_all",
            "auth.mfa.totp_disable",
        ],
    ),
    (
        "DELETE",
        "/api/v1/auth/sessions/{id}",
        &["auth.session.revoke"],
    ),
    (
        "DELETE",
        "/api/v1/users/{id}/mfa",
        // Alice has recovery codes to void and sessions to end, but no TOTP to remove.
        &["user.mfa_reset", "auth.session.revoke_all"],
    ),
    (
        "DELETE",
        "/api/v1/users/{id}/sessions",
        &["auth.session.revoke_all"],
    ),
    ("POST", "/api/v1/auth/logout", &["auth.logout"]),
    ("POST", "/api/v1/auth/passkeys/register/start", &[]),
    (
        "POST",
        "/api/v1/auth/passkeys/register/finish",
        // The user's other sessions end in the same transaction, under this one record.
        &["auth.passkey.register"],
    ),
    (
        "PATCH",
        "/api/v1/auth/passkeys/{id}",
        &["auth.passkey.rename"],
    ),
    ("POST", "/api/v1/auth/passkey-login/start", &[]),
    ("POST", "/api/v1/auth/passkey-login/finish", &["auth.login"]),
    ("POST", "/api/v1/auth/mfa/passkey/start", &[]),
    (
        "POST",
        "/api/v1/auth/mfa/passkey/finish",
        &["auth.mfa.verify"],
    ),
    (
        "DELETE",
        "/api/v1/auth/passkeys/{id}",
        &["auth.passkey.delete"],
    ),
];

/// What the walk has made so far.
/// The walk's Stripe webhook secret.
const BACKUP_RECIPIENT: &str = "age1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5z5tpwxqergd3c8g7rusqmwn7f2";
const STRIPE_SECRET: &str = "whsec_walk0123456789abcdefghijklmnopqrs";

#[derive(Default)]
struct Walk {
    admin: Option<Browser>,
    alice: Option<Browser>,
    alice_id: String,
    invitation: String,
    reset: String,
    token_id: String,
    secret_id: String,
    agent_id: String,
    /// A hosted agent of Alice's, for its bundle's routes.
    hosted_id: String,
    conversation_id: String,
    /// Alice's workflow, its run and its webhook secret.
    workflow_id: String,
    run_id: String,
    webhook_secret: String,
    /// A budget on Alice, set then deleted.
    budget_id: String,
    /// A host publishing an agent card on loopback (allowlisted for the walk's server).
    card_host: String,
    totp: Option<hive_crypto::totp::TotpSecret>,
    recovery_codes: Vec<String>,
    /// Alice's passkey device, its passkey and the ceremony in progress.
    authenticator: Option<SoftAuthenticator>,
    passkey_id: String,
    ceremony: Option<(String, Value)>,
    /// The session whose second factor the walk verifies.
    pending: Option<Browser>,
    /// The last chain position already looked at.
    seen: i64,
}

async fn records_since(server: &TestServer, seq: i64) -> Vec<AuditRecord> {
    server
        .hive
        .store
        .audit()
        .chain_after(seq, 100)
        .await
        .unwrap()
}

/// The records written since the last look. The reset request is recorded in the background
/// after its answer, so a look may wait for it (bounded).
async fn new_records(server: &TestServer, walk: &mut Walk, expected: usize) -> Vec<AuditRecord> {
    let mut records = records_since(server, walk.seen).await;
    for _ in 0..500 {
        if records.len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        records = records_since(server, walk.seen).await;
    }
    if let Some(last) = records.last().and_then(|r| r.link.as_ref()) {
        walk.seen = last.seq;
    }
    records
}

/// Skips the records of a case's preparations (a login to have a session to act with).
async fn skip_preparations(server: &TestServer, walk: &mut Walk) {
    if let Some(last) = records_since(server, walk.seen)
        .await
        .last()
        .and_then(|r| r.link.as_ref())
    {
        walk.seen = last.seq;
    }
}

/// The status of `response` and its JSON body.
async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Takes the mutating route `method path` once, meant to succeed, and answers the status.
/// Asks for the extended agent card (A2A 1.0) and checks that a card came back.
async fn extended_card(request: reqwest::RequestBuilder) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard"});
    let response = request
        .header("A2A-Version", "1.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, answer) = read(response).await;
    assert!(answer["result"]["name"].is_string(), "{answer}");
    status
}

async fn take(server: &TestServer, walk: &mut Walk, method: &str, path: &str) -> u16 {
    let admin = walk.admin.clone();
    let alice = walk.alice.clone();
    let alice_path = format!("/api/v1/users/{}", walk.alice_id);
    let response = match (method, path) {
        ("POST", "/api/v1/setup") => {
            let body =
                json!({ "email": ADMIN_EMAIL, "displayName": "Admin", "password": PASSWORD });
            server
                .client
                .request(Method::POST, path)
                .header("x-hive-setup-token", SETUP_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
        ("POST", "/api/v1/auth/login") => {
            let response = try_login(server, ADMIN_EMAIL, PASSWORD).await;
            walk.admin = Some(Browser {
                cookie: session_cookie(&response),
                origin: server.origin.clone(),
            });
            response
        }
        ("POST", "/api/v1/users/invitations") => {
            let body = json!({ "email": "alice@example.com", "role": "operator" });
            let response = admin
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await;
            let (status, link) = read(response).await;
            walk.invitation = link_token(&link);
            return status;
        }
        ("POST", "/api/v1/auth/invitation") => {
            server
                .client
                .post_json(path, &json!({ "token": walk.invitation }))
                .await
        }
        ("POST", "/api/v1/auth/invitation/accept") => {
            let body =
                json!({ "token": walk.invitation, "displayName": "Alice", "password": PASSWORD });
            let (status, user) = read(server.client.post_json(path, &body).await).await;
            walk.alice_id = user["id"].as_str().unwrap().to_owned();
            return status;
        }
        ("POST", "/api/v1/auth/register") => {
            let body =
                json!({ "email": "reg@example.com", "displayName": "Reg", "password": PASSWORD });
            server.client.post_json(path, &body).await
        }
        ("PATCH", "/api/v1/users/{id}") => {
            let body = json!({ "displayName": "Alice A.", "role": "operator" });
            admin
                .unwrap()
                .send(server, Method::PATCH, &alice_path, Some(body))
                .await
        }
        ("POST", "/api/v1/users/{id}/reset-link") => {
            let link_path = format!("{alice_path}/reset-link");
            let response = admin
                .unwrap()
                .send(server, Method::POST, &link_path, None)
                .await;
            let (status, link) = read(response).await;
            walk.reset = link_token(&link);
            return status;
        }
        ("POST", "/api/v1/auth/password-reset") => {
            let body = json!({ "token": walk.reset, "newPassword": NEW_PASSWORD });
            server.client.post_json(path, &body).await
        }
        ("POST", "/api/v1/auth/password-reset/request") => {
            server
                .client
                .post_json(path, &json!({ "email": "alice@example.com" }))
                .await
        }
        ("PATCH", "/api/v1/auth/me") => {
            let signed_in = login(server, "alice@example.com", NEW_PASSWORD).await;
            walk.alice = Some(signed_in.clone());
            skip_preparations(server, walk).await;
            let body = json!({ "displayName": "Alice B.", "email": "alice@example.org" });
            signed_in
                .send(server, Method::PATCH, path, Some(body))
                .await
        }
        ("POST", "/api/v1/auth/reauthenticate") => {
            let body = json!({ "password": NEW_PASSWORD });
            alice
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("POST", "/api/v1/auth/password") => {
            let body = json!({ "currentPassword": NEW_PASSWORD, "newPassword": PASSWORD });
            alice
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("POST", "/api/v1/tokens") => {
            let response = alice
                .unwrap()
                .send(server, Method::POST, path, Some(json!({ "name": "ci" })))
                .await;
            let (status, token) = read(response).await;
            walk.token_id = token["id"].as_str().unwrap().to_owned();
            return status;
        }
        ("DELETE", "/api/v1/tokens/{id}") => {
            let token_path = format!("/api/v1/tokens/{}", walk.token_id);
            alice
                .unwrap()
                .send(server, Method::DELETE, &token_path, None)
                .await
        }
        ("POST", "/api/v1/secrets") => {
            hive_testkit::capture::canary("sk-coverage-value");
            let body = json!({ "name": "openai", "value": "sk-coverage-value" });
            let response = alice
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await;
            let (status, secret) = read(response).await;
            walk.secret_id = secret["id"].as_str().unwrap().to_owned();
            return status;
        }
        ("PATCH", "/api/v1/secrets/{id}") => {
            let secret_path = format!("/api/v1/secrets/{}", walk.secret_id);
            hive_testkit::capture::canary("sk-coverage-rotated");
            let body = json!({ "value": "sk-coverage-rotated" });
            alice
                .unwrap()
                .send(server, Method::PATCH, &secret_path, Some(body))
                .await
        }
        ("DELETE", "/api/v1/secrets/{id}") => {
            let secret_path = format!("/api/v1/secrets/{}", walk.secret_id);
            alice
                .unwrap()
                .send(server, Method::DELETE, &secret_path, None)
                .await
        }
        ("POST", "/api/v1/secrets/import") => {
            // The seeds' format: AES-256-GCM under a raw key, as `ivHex:tagHex:cipherHex`.
            let text = include_str!("../../../hive-crypto/tests/vectors/seed_import.json");
            let vectors: Value = serde_json::from_str(text).unwrap();
            let vector = &vectors["vectors"][0];
            for field in ["key", "plaintext"] {
                hive_testkit::capture::canary(vector[field].as_str().unwrap());
            }
            let body = json!({
                "name": "imported",
                "value": vector["value"],
                "key": vector["key"],
            });
            alice
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("PUT", "/api/v1/settings/security") => {
            let body = json!({ "egressHostAllowlist": ["models.internal.example:8443"] });
            admin
                .unwrap()
                .send(server, Method::PUT, path, Some(body))
                .await
        }
        ("PUT", "/api/v1/settings/workflows") => {
            let body = json!({ "workflowCodeNodes": "allow" });
            admin
                .unwrap()
                .send(server, Method::PUT, path, Some(body))
                .await
        }
        ("POST", "/api/v1/mesh/wan/ingress") => {
            let body = json!({
                "schema": "wan-envelope-v1",
                "id": uuid::Uuid::new_v4().to_string(),
                "source": server.origin,
                "kind": "coverage",
                "issuedAt": "2026-12-02T13:45:00Z",
                "payload": {},
            });
            admin
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("POST", "/api/v1/agents") => {
            let body = json!({ "name": "coverage", "kind": "conformance" });
            let response = alice
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await;
            let (status, agent) = read(response).await;
            walk.agent_id = agent["id"].as_str().unwrap().to_owned();
            return status;
        }
        ("POST", "/api/v1/agents/import") => {
            let body = json!({ "url": walk.card_host, "create": true });
            alice
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("PATCH", "/api/v1/agents/{id}") => {
            let agent_path = format!("/api/v1/agents/{}", walk.agent_id);
            let body = json!({ "description": "covered" });
            alice
                .unwrap()
                .send(server, Method::PATCH, &agent_path, Some(body))
                .await
        }
        ("POST", "/api/v1/agents/{id}/start") | ("POST", "/api/v1/agents/{id}/stop") => {
            let agent_path = path.replace("{id}", &walk.agent_id);
            alice
                .unwrap()
                .send(server, Method::POST, &agent_path, None)
                .await
        }
        ("POST", "/api/a2a/jsonrpc/public") => {
            return extended_card(server.client.request(Method::POST, path)).await;
        }
        ("POST", "/api/v1/mesh/federation/proxy/jsonrpc") => {
            let proxy = format!("{path}?peerIndex=0");
            return extended_card(admin.unwrap().request(server, Method::POST, &proxy)).await;
        }
        ("POST", a2a) if a2a.starts_with("/api/a2a/") => {
            let rpc_path = path.replace("{id}", &walk.agent_id);
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
                "message": {"messageId": "tck-complete-task", "role": "ROLE_USER",
                            "parts": [{"text": "covered"}], "metadata": {"skill": "coverage"}}}});
            let response = alice
                .unwrap()
                .request(server, Method::POST, &rpc_path)
                .header("A2A-Version", "1.0")
                .json(&body)
                .send()
                .await
                .unwrap();
            let (status, answer) = read(response).await;
            assert_eq!(
                answer["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
                "{answer}"
            );
            return status;
        }
        ("POST", "/api/v1/agents/{id}/chat") => {
            let chat_path = path.replace("{id}", &walk.agent_id);
            let response = alice
                .unwrap()
                .send(
                    server,
                    Method::POST,
                    &chat_path,
                    Some(json!({"text": "covered"})),
                )
                .await;
            let status = response.status().as_u16();
            let events = crate::chat::chat_events(response).await;
            assert_eq!(events.last().unwrap().0, "reply", "{events:?}");
            walk.conversation_id = events[0].1["conversation"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            return status;
        }
        ("DELETE", "/api/v1/conversations/{id}") => {
            let conversation_path = path.replace("{id}", &walk.conversation_id);
            alice
                .unwrap()
                .send(server, Method::DELETE, &conversation_path, None)
                .await
        }
        ("PUT", "/api/v1/agents/{id}/bundle") => {
            // A hosted agent of Alice's (its creation is not the walk's).
            let body = json!({ "name": "coverage-hosted", "kind": "hosted" });
            let response = alice
                .clone()
                .unwrap()
                .send(server, Method::POST, "/api/v1/agents", Some(body))
                .await;
            let (_, agent) = read(response).await;
            walk.hosted_id = agent["id"].as_str().unwrap().to_owned();
            skip_preparations(server, walk).await;
            let bundle_path = path.replace("{id}", &walk.hosted_id);
            alice
                .unwrap()
                .request(server, Method::PUT, &bundle_path)
                .header("content-type", "application/gzip")
                .body(crate::access_matrix::small_bundle("the first version"))
                .send()
                .await
                .unwrap()
        }
        ("POST", "/api/v1/agents/{id}/bundle/rollback") => {
            // A second version to roll back from (its records are not the walk's).
            let bundle_path = format!("/api/v1/agents/{}/bundle", walk.hosted_id);
            let pushed = alice
                .clone()
                .unwrap()
                .request(server, Method::PUT, &bundle_path)
                .header("content-type", "application/gzip")
                .body(crate::access_matrix::small_bundle("the second version"))
                .send()
                .await
                .unwrap();
            assert_eq!(pushed.status(), 201);
            skip_preparations(server, walk).await;
            let rollback_path = path.replace("{id}", &walk.hosted_id);
            alice
                .unwrap()
                .send(server, Method::POST, &rollback_path, Some(json!({})))
                .await
        }
        ("DELETE", "/api/v1/agents/{id}") => {
            let agent_path = format!("/api/v1/agents/{}", walk.agent_id);
            alice
                .unwrap()
                .send(server, Method::DELETE, &agent_path, None)
                .await
        }
        ("POST", "/api/v1/workflows/validate") => {
            alice
                .unwrap()
                .send(server, Method::POST, path, Some(walk_workflow("checked")))
                .await
        }
        ("POST", "/api/v1/workflows/import") => {
            let body = json!({ "graph": { "nodes": [], "edges": [] } });
            alice
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("POST", "/api/v1/workflows") => {
            let response = alice
                .unwrap()
                .send(server, Method::POST, path, Some(walk_workflow("walked")))
                .await;
            let (status, saved) = read(response).await;
            walk.workflow_id = saved["workflow"]["id"].as_str().unwrap().to_owned();
            return status;
        }
        ("PUT", "/api/v1/workflows/{id}") => {
            let workflow_path = format!("/api/v1/workflows/{}", walk.workflow_id);
            alice
                .unwrap()
                .send(
                    server,
                    Method::PUT,
                    &workflow_path,
                    Some(walk_workflow("walked")),
                )
                .await
        }
        ("PATCH", "/api/v1/workflows/{id}") => {
            let workflow_path = format!("/api/v1/workflows/{}", walk.workflow_id);
            alice
                .unwrap()
                .send(
                    server,
                    Method::PATCH,
                    &workflow_path,
                    Some(json!({ "enabled": true })),
                )
                .await
        }
        ("POST", "/api/v1/workflows/{id}/webhook-secret") => {
            let secret_path = format!("/api/v1/workflows/{}/webhook-secret", walk.workflow_id);
            let response = alice
                .unwrap()
                .send(server, Method::POST, &secret_path, None)
                .await;
            let (status, secret) = read(response).await;
            walk.webhook_secret = secret["secret"].as_str().unwrap().to_owned();
            hive_testkit::capture::canary(&walk.webhook_secret);
            return status;
        }
        ("POST", "/api/v1/workflows/{id}/runs") => {
            let runs_path = format!("/api/v1/workflows/{}/runs", walk.workflow_id);
            let response = alice
                .unwrap()
                .send(
                    server,
                    Method::POST,
                    &runs_path,
                    Some(json!({ "input": {} })),
                )
                .await;
            let (status, run) = read(response).await;
            walk.run_id = run["id"].as_str().unwrap().to_owned();
            return status;
        }
        ("POST", "/api/v1/workflow-runs/{id}/approvals/{node}") => {
            let alice = alice.unwrap();
            // The engine takes the run on its own: decide once it waits at the first gate.
            let run_path = format!("/api/v1/workflow-runs/{}", walk.run_id);
            for _ in 0..600 {
                let (_, detail) =
                    read(alice.send(server, Method::GET, &run_path, None).await).await;
                if detail["run"]["status"] == "waiting" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let body = json!({ "approve": true });
            alice
                .send(
                    server,
                    Method::POST,
                    &format!("{run_path}/approvals/first"),
                    Some(body),
                )
                .await
        }
        ("POST", "/api/v1/workflow-runs/{id}/cancel") => {
            let cancel_path = format!("/api/v1/workflow-runs/{}/cancel", walk.run_id);
            alice
                .unwrap()
                .send(server, Method::POST, &cancel_path, None)
                .await
        }
        ("POST", "/api/v1/workflow-runs/{id}/retry") => {
            let retry_path = format!("/api/v1/workflow-runs/{}/retry", walk.run_id);
            alice
                .unwrap()
                .send(server, Method::POST, &retry_path, None)
                .await
        }
        ("POST", "/api/webhooks/workflows/{id}/{trigger}") => {
            use hive_proto::Clock;
            let body = r#"{"from":"the walk"}"#;
            let t = server.clock.now().unix_timestamp();
            let signature = hive_crypto::hmac_sha256_hex(
                walk.webhook_secret.as_bytes(),
                format!("{t}.{body}").as_bytes(),
            );
            server
                .client
                .request(
                    Method::POST,
                    &format!("/api/webhooks/workflows/{}/hook", walk.workflow_id),
                )
                .header("Hive-Signature", format!("t={t},v1={signature}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
        ("PUT", "/api/v1/billing/prices/{model}") => {
            let body = json!({"promptMinorPer1k": 2, "completionMinorPer1k": 6});
            admin
                .unwrap()
                .send(
                    server,
                    Method::PUT,
                    "/api/v1/billing/prices/walk-model",
                    Some(body),
                )
                .await
        }
        ("DELETE", "/api/v1/billing/prices/{model}") => {
            admin
                .unwrap()
                .send(
                    server,
                    Method::DELETE,
                    "/api/v1/billing/prices/walk-model",
                    None,
                )
                .await
        }
        ("POST", "/api/v1/billing/adjustments") => {
            let body = json!({"userId": walk.alice_id, "amountMinor": 500, "reason": "the walk"});
            admin
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("POST", "/api/v1/billing/budgets") => {
            let body = json!({"scope": "user", "scopeId": walk.alice_id, "period": "month",
                "maxCostMinor": 10_000});
            let response = admin
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await;
            let (status, budget) = read(response).await;
            walk.budget_id = budget["id"].as_str().unwrap_or_default().to_owned();
            return status;
        }
        ("DELETE", "/api/v1/billing/budgets/{id}") => {
            let budget_path = format!("/api/v1/billing/budgets/{}", walk.budget_id);
            admin
                .unwrap()
                .send(server, Method::DELETE, &budget_path, None)
                .await
        }
        ("POST", "/api/webhooks/stripe") => {
            use hive_proto::Clock;
            let body = json!({"id": "evt_walk", "type": "payment_intent.succeeded",
                "data": {"object": {"id": "pi_walk", "amount_received": 700, "currency": "usd",
                    "metadata": {"hive_user_id": walk.alice_id}}}})
            .to_string();
            let t = server.clock.now().unix_timestamp();
            server
                .client
                .request(Method::POST, path)
                .header(
                    "Stripe-Signature",
                    hive_crypto::webhook_signature::header(
                        STRIPE_SECRET.as_bytes(),
                        t,
                        body.as_bytes(),
                    ),
                )
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
        ("DELETE", "/api/v1/workflows/{id}") => {
            let workflow_path = format!("/api/v1/workflows/{}", walk.workflow_id);
            alice
                .unwrap()
                .send(server, Method::DELETE, &workflow_path, None)
                .await
        }
        ("POST", "/api/v1/auth/mfa/totp") => {
            let response = admin
                .unwrap()
                .send(server, Method::POST, path, Some(json!({})))
                .await;
            let (status, enrollment) = read(response).await;
            let secret = enrollment["secret"].as_str().unwrap();
            hive_testkit::capture::canary(secret);
            walk.totp = Some(hive_crypto::totp::TotpSecret::from_base32(secret).unwrap());
            return status;
        }
        ("POST", "/api/v1/auth/mfa/totp/confirm") => {
            let now = u64::try_from(server.hive.clock.now().unix_timestamp()).unwrap();
            let code = walk.totp.as_ref().unwrap().code_at(now);
            let response = admin
                .unwrap()
                .send(server, Method::POST, path, Some(json!({ "code": code })))
                .await;
            let (status, body) = read(response).await;
            walk.recovery_codes = recovery_codes(&body);
            return status;
        }
        ("POST", "/api/v1/auth/mfa/verify") => {
            let second = login(server, ADMIN_EMAIL, PASSWORD).await;
            skip_preparations(server, walk).await;
            let body = json!({ "code": walk.recovery_codes.pop().unwrap() });
            second.send(server, Method::POST, path, Some(body)).await
        }
        ("POST", "/api/v1/auth/mfa/recovery-codes") => {
            let response = admin.unwrap().send(server, Method::POST, path, None).await;
            let (status, body) = read(response).await;
            walk.recovery_codes = recovery_codes(&body);
            return status;
        }
        ("POST", "/api/v1/auth/mfa/totp/disable") => {
            let body = json!({ "code": walk.recovery_codes.pop().unwrap() });
            admin
                .unwrap()
                .send(server, Method::POST, path, Some(body))
                .await
        }
        ("DELETE", "/api/v1/users/{id}/mfa") => {
            let mfa_path = format!("{alice_path}/mfa");
            admin
                .unwrap()
                .send(server, Method::DELETE, &mfa_path, None)
                .await
        }
        (
            "POST",
            "/api/v1/admin/vault/rotate"
            | "/api/v1/admin/vault/reencrypt"
            | "/api/v1/admin/backups",
        ) => admin.unwrap().send(server, Method::POST, path, None).await,
        ("DELETE", "/api/v1/auth/sessions/{id}") => {
            // A second session of alice's, ended from the first.
            let second = login(server, "alice@example.org", PASSWORD).await;
            let sessions: Value = second
                .send(server, Method::GET, "/api/v1/auth/sessions", None)
                .await
                .json()
                .await
                .unwrap();
            let current = sessions["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["current"] == true)
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            skip_preparations(server, walk).await;
            let session_path = format!("/api/v1/auth/sessions/{current}");
            alice
                .unwrap()
                .send(server, Method::DELETE, &session_path, None)
                .await
        }
        ("DELETE", "/api/v1/users/{id}/sessions") => {
            let sessions_path = format!("{alice_path}/sessions");
            admin
                .unwrap()
                .send(server, Method::DELETE, &sessions_path, None)
                .await
        }
        ("POST", "/api/v1/auth/logout") => {
            admin.unwrap().send(server, Method::POST, path, None).await
        }
        (method, path) if path.contains("passkey") => {
            return take_passkey_route(server, walk, method, path).await;
        }
        (method, path) => panic!(
            "{method} {path} changes state but the audit coverage walk has no case for it; add one"
        ),
    };
    response.status().as_u16()
}

/// The passkey routes, taken last: alice (whose sessions the admin ended) signs in again,
/// registers a passkey, renames it, signs in with it, verifies a password session with it and
/// removes it.
async fn take_passkey_route(server: &TestServer, walk: &mut Walk, method: &str, path: &str) -> u16 {
    let (response, ceremony) = match (method, path) {
        ("POST", "/api/v1/auth/passkeys/register/start") => {
            let alice = login(server, "alice@example.org", PASSWORD).await;
            walk.alice = Some(alice.clone());
            walk.authenticator = Some(SoftAuthenticator::new(&server.origin));
            skip_preparations(server, walk).await;
            (alice.send(server, Method::POST, path, None).await, true)
        }
        ("POST", "/api/v1/auth/passkeys/register/finish") => {
            let (id, options) = walk.ceremony.take().unwrap();
            let device = walk.authenticator.as_mut().unwrap();
            let body =
                json!({ "ceremonyId": id, "credential": device.register(&options).unwrap() });
            let alice = walk.alice.clone().unwrap();
            let response = alice.send(server, Method::POST, path, Some(body)).await;
            let (status, view) = read(response).await;
            walk.passkey_id = view["id"].as_str().unwrap_or_default().to_owned();
            return status;
        }
        ("PATCH", "/api/v1/auth/passkeys/{id}") => {
            let passkey_path = format!("/api/v1/auth/passkeys/{}", walk.passkey_id);
            let body = json!({ "name": "Phone" });
            let alice = walk.alice.clone().unwrap();
            (
                alice
                    .send(server, Method::PATCH, &passkey_path, Some(body))
                    .await,
                false,
            )
        }
        ("POST", "/api/v1/auth/passkey-login/start") => (
            server
                .client
                .request(Method::POST, path)
                .send()
                .await
                .unwrap(),
            true,
        ),
        ("POST", "/api/v1/auth/passkey-login/finish")
        | ("POST", "/api/v1/auth/mfa/passkey/finish") => {
            let (id, options) = walk.ceremony.take().unwrap();
            let device = walk.authenticator.as_mut().unwrap();
            let body = json!({ "ceremonyId": id, "credential": device.assert(&options).unwrap() });
            let response = match &walk.pending {
                Some(pending) => pending.send(server, Method::POST, path, Some(body)).await,
                None => server.client.post_json(path, &body).await,
            };
            if path.contains("passkey-login") {
                session_cookie(&response);
            }
            (response, false)
        }
        ("POST", "/api/v1/auth/mfa/passkey/start") => {
            let pending = login(server, "alice@example.org", PASSWORD).await;
            walk.pending = Some(pending.clone());
            skip_preparations(server, walk).await;
            (pending.send(server, Method::POST, path, None).await, true)
        }
        ("DELETE", "/api/v1/auth/passkeys/{id}") => {
            let passkey_path = format!("/api/v1/auth/passkeys/{}", walk.passkey_id);
            let verified = walk.pending.clone().unwrap();
            (
                verified
                    .send(server, Method::DELETE, &passkey_path, None)
                    .await,
                false,
            )
        }
        (method, path) => panic!("{method} {path}: no passkey case in the audit coverage walk"),
    };
    let (status, body) = read(response).await;
    if ceremony {
        let id = body["ceremonyId"].as_str().unwrap_or_default().to_owned();
        hive_testkit::capture::canary(&id);
        walk.ceremony = Some((id, body["publicKey"].clone()));
    }
    status
}

/// The walk's workflow: two approvals an operator may give, so that its runs wait (the engine
/// writes no record of its own during the walk), and a webhook trigger.
fn walk_workflow(name: &str) -> Value {
    json!({
        "name": name,
        "triggers": [{ "id": "hook", "type": "webhook" }],
        "nodes": [
            { "id": "start", "type": "input" },
            { "id": "first", "type": "approval", "approvers": { "role": "operator" }, "message": "first?" },
            { "id": "second", "type": "approval", "approvers": { "role": "operator" }, "message": "second?" }
        ],
        "edges": [{ "from": "start", "to": "first" }, { "from": "first", "to": "second" }]
    })
}

/// Mutating routes this in-process walk cannot take, and where their records are checked.
const COVERED_ELSEWHERE: &[(&str, &str, &str)] = &[
    // They open sessions at Stripe, which the billing test stands in for.
    (
        "POST",
        "/api/v1/billing/checkout-session",
        "billing.checkout: crates/hive-server/tests/it/billing.rs",
    ),
    (
        "POST",
        "/api/v1/billing/customer-portal",
        "billing.checkout: crates/hive-server/tests/it/billing.rs",
    ),
    // They act on a running sandbox, which only `hive serve` starts.
    (
        "POST",
        "/api/v1/agents/{id}/restart",
        "agent.restart: crates/hive-cli/tests/it/hosted.rs",
    ),
    (
        "POST",
        "/api/v1/agents/{id}/pause",
        "agent.pause: crates/hive-cli/tests/it/hosted.rs",
    ),
    (
        "POST",
        "/api/v1/agents/{id}/resume",
        "agent.resume: crates/hive-cli/tests/it/hosted.rs",
    ),
    // A relay between replicas changes nothing: the replica the caller reached records the
    // call (two replicas: crates/hive-cli/tests/it/hosted.rs).
    (
        "POST",
        "/internal/v1/hosted/{id}/channel",
        "a2a.call on the caller's replica",
    ),
    (
        "POST",
        "/internal/v1/hosted/{id}/channel/{*path}",
        "a2a.call on the caller's replica",
    ),
];

#[tokio::test]
async fn every_mutating_route_leaves_the_records_of_its_changes() {
    let mutating: BTreeSet<(String, String)> = route_table()
        .into_iter()
        .filter(|r| r.method != Method::GET)
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let walked: BTreeSet<(String, String)> = WALK
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .chain(
            COVERED_ELSEWHERE
                .iter()
                .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    assert_eq!(
        mutating, walked,
        "the walk must take every mutating route of the table"
    );

    for backend in backends() {
        // Named by a domain in AUTH_URL, so that passkeys work.
        let card = json!({
            "name": "Imported",
            "supportedInterfaces": [{ "url": "https://imported.example.com/a2a",
                "protocolBinding": "JSONRPC", "protocolVersion": "1.0" }],
        });
        let host = hive_testkit::agent_card::CardHost::start(card).await;
        // A peer instance for the federation proxy (paired by a shared secret).
        let listener = hive_testkit::reserve_listener("127.0.0.1").await;
        let own_origin = format!("http://localhost:{}", listener.local_addr().unwrap().port());
        let peer = identity_builder(
            backend,
            &[
                ("MESH_FEDERATION_ENABLED", "true"),
                ("MESH_FEDERATION_SHARED_SECRET", MESH_SECRET),
                ("MESH_FEDERATION_PEERS", &own_origin),
            ],
        )
        .start()
        .await;
        let allowlist = format!(
            "{},{}",
            host.allowlist_entry(),
            peer.base_url.trim_start_matches("http://")
        );
        let vars = [
            ("ALLOW_PUBLIC_REGISTRATION", "true"),
            ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allowlist),
            ("MESH_FEDERATION_ENABLED", "true"),
            ("MESH_FEDERATION_SHARED_SECRET", MESH_SECRET),
            ("MESH_FEDERATION_PEERS", &peer.base_url),
            ("A2A_PUBLIC_JSONRPC_ENABLED", "true"),
            ("A2A_PUBLIC_JSONRPC_ALLOWED_METHODS", "GetExtendedAgentCard"),
            ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
            // A public key only: the walk makes a backup, and never reads it.
            ("HIVE_BACKUP_RECIPIENTS", BACKUP_RECIPIENT),
        ];
        let server = identity_builder(backend, &vars)
            .public_host("localhost")
            .listener(listener)
            .start()
            .await;
        hive_testkit::capture::canary(NEW_PASSWORD);
        let mut walk = Walk {
            card_host: host.base_url.clone(),
            ..Walk::default()
        };
        // What the start wrote (the vault's first key) is not the walk's.
        skip_preparations(&server, &mut walk).await;
        for (method, path, action) in WALK {
            let status = take(&server, &mut walk, method, path).await;
            assert!(
                (200..300).contains(&status),
                "{method} {path} on {backend:?}: {status}"
            );
            let expected = action.len();
            let records = new_records(&server, &mut walk, expected).await;
            let actions: Vec<(&str, AuditOutcome)> = records
                .iter()
                .map(|r| (r.action.as_str(), r.outcome))
                .collect();
            assert_eq!(
                records.len(),
                expected,
                "{method} {path} on {backend:?}: {actions:?}"
            );
            for (record, action) in records.iter().zip(action.iter()) {
                assert_eq!(record.action, *action, "{method} {path}: {actions:?}");
                // The reset request has no mail relay here: recorded as refused, not as done.
                let outcome = if *path == "/api/v1/auth/password-reset/request" {
                    AuditOutcome::Failure
                } else {
                    AuditOutcome::Success
                };
                assert_eq!(record.outcome, outcome, "{method} {path}");
                assert!(record.request_id.is_some(), "{method} {path}");
            }
        }
    }
}
