//! Billing over real HTTP, on every backend: Stripe's webhook (signature first, each event
//! once, also under 50 concurrent copies; refunds of spent money owed), the wallet and ledger,
//! admins' adjustments, and metered `llm` calls held before they start and settled with the
//! endpoint's own counts (100 concurrent calls against a wallet for 37).

use crate::a2a::{a2a_server, conformance_agent_with, execute_token};
use crate::support::*;
use futures_util::future::join_all;
use hive_testkit::TestServer;
use hive_testkit::backends;
use reqwest::Method;
use serde_json::{Value, json};

const WEBHOOK_SECRET: &str = "whsec_0123456789abcdefghijklmnopqrstuv";
/// The test server's clock: 2026-01-01 00:00 UTC.
const NOW: i64 = 1_767_225_600;

async fn deliver(server: &TestServer, header: Option<String>, body: &str) -> (u16, Value) {
    let mut request = server
        .client
        .request(Method::POST, "/api/webhooks/stripe")
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(header) = header {
        request = request.header("Stripe-Signature", header);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn signed(body: &str, at: i64) -> String {
    hive_crypto::webhook_signature::header(WEBHOOK_SECRET.as_bytes(), at, body.as_bytes())
}

fn event(id: &str, kind: &str, object: Value) -> String {
    json!({"id": id, "object": "event", "type": kind, "data": {"object": object}}).to_string()
}

async fn wallet_of(server: &TestServer, browser: &Browser) -> Value {
    let response = browser
        .send(server, Method::GET, "/api/v1/billing/wallet", None)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn stripe_events_are_verified_and_each_applies_once() {
    for backend in backends() {
        // Without a secret the route is closed.
        let closed = a2a_server(backend, &[]).await;
        let body = event("evt_closed", "payment_intent.succeeded", json!({}));
        let (status, answer) = deliver(&closed, Some(signed(&body, NOW)), &body).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"]["code"], "stripe_webhooks_not_configured");
        drop(closed);

        let server = a2a_server(backend, &[("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)]).await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, buyer) = add_user(&server, &admin, "buyer@example.com", "viewer").await;
        let user_id = user["id"].as_str().unwrap().to_owned();

        // A top-up for the user named in its metadata.
        let paid = event(
            "evt_paid_1",
            "payment_intent.succeeded",
            json!({"id": "pi_1", "object": "payment_intent", "amount": 1000,
                   "amount_received": 1000, "currency": "usd", "invoice": null,
                   "metadata": {"hive_user_id": user_id}}),
        );
        // Refused signatures change nothing: missing, wrong secret, stale, another body.
        let wrong = hive_crypto::webhook_signature::header(b"whsec_another", NOW, paid.as_bytes());
        let stale = signed(&paid, NOW - 301);
        let other_body = signed(&paid.replace("1000", "9000"), NOW);
        for header in [
            None,
            Some(wrong),
            Some(stale),
            Some(other_body),
            Some("t=1,v1".into()),
        ] {
            let (status, answer) = deliver(&server, header, &paid).await;
            assert_eq!(status, 400, "{answer}");
        }
        assert_eq!(wallet_of(&server, &buyer).await["balanceMinor"], 0);
        assert!(
            !records_of(&server, "billing.stripe.refused")
                .await
                .is_empty()
        );

        let (status, answer) = deliver(&server, Some(signed(&paid, NOW)), &paid).await;
        assert_eq!(
            (status, answer["outcome"].as_str()),
            (200, Some("posted")),
            "{answer}"
        );
        // A redelivery answers 200 and changes nothing.
        let (status, answer) = deliver(&server, Some(signed(&paid, NOW + 60)), &paid).await;
        assert_eq!(
            (status, answer["outcome"].as_str()),
            (200, Some("duplicate"))
        );
        let wallet = wallet_of(&server, &buyer).await;
        assert_eq!(wallet["balanceMinor"], 1000, "{wallet}");
        assert_eq!(wallet["currency"], "usd");

        // 50 concurrent copies of one event: one effect.
        let again = event(
            "evt_paid_2",
            "payment_intent.succeeded",
            json!({"id": "pi_2", "amount_received": 500, "currency": "usd",
                   "metadata": {"hive_user_id": user_id}}),
        );
        let copies =
            join_all((0..50).map(|_| deliver(&server, Some(signed(&again, NOW)), &again))).await;
        assert!(copies.iter().all(|(status, _)| *status == 200));
        let posted = copies
            .iter()
            .filter(|(_, answer)| answer["outcome"] == "posted")
            .count();
        assert_eq!(posted, 1);
        assert_eq!(wallet_of(&server, &buyer).await["balanceMinor"], 1500);

        // An invoice's payment intent is credited by invoice.paid, through the customer the
        // checkout linked.
        let checkout = event(
            "evt_checkout",
            "checkout.session.completed",
            json!({"id": "cs_1", "customer": "cus_42", "metadata": {"hive_user_id": user_id}}),
        );
        let (_, answer) = deliver(&server, Some(signed(&checkout, NOW)), &checkout).await;
        assert_eq!(answer["outcome"], "linked");
        let invoiced = event(
            "evt_pi_invoice",
            "payment_intent.succeeded",
            json!({"id": "pi_3", "amount_received": 2000, "currency": "usd",
                   "invoice": "in_1", "customer": "cus_42"}),
        );
        let (_, answer) = deliver(&server, Some(signed(&invoiced, NOW)), &invoiced).await;
        assert_eq!(answer["outcome"], "ignored");
        let invoice = event(
            "evt_invoice",
            "invoice.paid",
            json!({"id": "in_1", "amount_paid": 2000, "currency": "usd",
                   "customer": "cus_42", "payment_intent": "pi_3"}),
        );
        let (_, answer) = deliver(&server, Some(signed(&invoice, NOW)), &invoice).await;
        assert_eq!(answer["outcome"], "posted");
        assert_eq!(wallet_of(&server, &buyer).await["balanceMinor"], 3500);

        // Spend 3000 of it, then the invoice's 2000 is refunded: 500 left, 1500 owed.
        let spend = admin
            .request(&server, Method::POST, "/api/v1/billing/adjustments")
            .header("Idempotency-Key", "spend-1")
            .json(&json!({"userId": user_id, "amountMinor": -3000, "reason": "usage before metering"}))
            .send()
            .await
            .unwrap();
        assert_eq!(spend.status(), 201);
        let refund = event(
            "evt_refund",
            "refund.created",
            json!({"id": "re_1", "amount": 2000, "currency": "usd", "payment_intent": "pi_3"}),
        );
        let (_, answer) = deliver(&server, Some(signed(&refund, NOW)), &refund).await;
        assert_eq!(answer["outcome"], "posted", "{answer}");
        let wallet = wallet_of(&server, &buyer).await;
        assert_eq!(
            (
                wallet["balanceMinor"].as_i64(),
                wallet["owedMinor"].as_i64()
            ),
            (Some(0), Some(1500)),
            "{wallet}"
        );

        // Unknown events and other currencies are acknowledged and change nothing.
        let unknown = event("evt_unknown", "customer.created", json!({"id": "cus_9"}));
        let (status, answer) = deliver(&server, Some(signed(&unknown, NOW)), &unknown).await;
        assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")));
        let euros = event(
            "evt_eur",
            "payment_intent.succeeded",
            json!({"id": "pi_4", "amount_received": 700, "currency": "eur",
                   "metadata": {"hive_user_id": user_id}}),
        );
        let (_, answer) = deliver(&server, Some(signed(&euros, NOW)), &euros).await;
        assert_eq!(answer["outcome"], "ignored");

        // The ledger: newest first, one line each.
        let ledger: Value = buyer
            .send(
                &server,
                Method::GET,
                "/api/v1/billing/ledger?limit=10",
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let kinds: Vec<&str> = ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["refund", "adjustment", "invoice", "top_up", "top_up"]
        );
        // Every transaction is audited; the books balance.
        assert_eq!(records_of(&server, "billing.stripe.event").await.len(), 5);
        assert_eq!(records_of(&server, "billing.adjustment").await.len(), 1);
        let faults = server.hive.store.billing().verify_books().await.unwrap();
        assert!(faults.is_empty(), "{faults:?}");
        // Another user's wallet is not the buyer's to read.
        let (someone, _) = add_user(&server, &admin, "someone@example.com", "viewer").await;
        let theirs = buyer
            .send(
                &server,
                Method::GET,
                &format!(
                    "/api/v1/billing/wallet?userId={}",
                    someone["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(theirs.status(), 404);
        drop(server);
    }
}

#[tokio::test]
async fn enforced_llm_calls_are_held_first_and_never_overdraw() {
    for backend in backends() {
        let llm = hive_testkit::llm::TestLlm::start().await;
        let server = a2a_server(
            backend,
            &[
                ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &llm.allowlist_entry()),
                ("HIVE_BILLING_ENFORCE", "true"),
                // One minor unit a token.
                ("BILLING_USAGE_MINOR_PER_1K_TOKENS", "1000"),
                ("A2A_STREAMS_PER_IP", "200"),
                ("A2A_STREAMS_PER_USER", "200"),
            ],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (caller_user, caller) =
            add_user(&server, &admin, "caller@example.com", "operator").await;
        let (other_user, _) = add_user(&server, &admin, "other@example.com", "viewer").await;
        let caller_id = caller_user["id"].as_str().unwrap().to_owned();
        let agent = conformance_agent_with(
            &server,
            &caller,
            json!({"name": "metered", "kind": "llm", "visibility": "private",
                   "runtime": {"baseUrl": llm.base_url(), "model": "test-model", "maxTokens": 10},
                   "limits": {"requestsPerMinute": 10000, "tokensPerDay": 0, "concurrentTasks": 200, "timeoutSeconds": 30}}),
        )
        .await;
        let token = execute_token(&server, &caller).await;
        llm.set_reply(Some("one two three"));
        // "hello": a prompt bound of 8 + (5 + 8) = 21 tokens, and 10 completion tokens.
        const HELD: i64 = 31;
        let fund = admin
            .request(&server, Method::POST, "/api/v1/billing/adjustments")
            .header("Idempotency-Key", "fund")
            .json(&json!({"userId": caller_id, "amountMinor": 37 * HELD, "reason": "test credit"}))
            .send()
            .await
            .unwrap();
        assert_eq!(fund.status(), 201);

        let gate = llm.hold_streams();
        let path = format!("/api/a2a/agents/{agent}/jsonrpc");
        let message = |n: usize| {
            json!({"jsonrpc": "2.0", "id": n, "method": "SendStreamingMessage", "params": {
                "message": {"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
                    "parts": [{"text": "hello"}],
                    // A body naming someone else changes nothing about who pays.
                    "metadata": {"hive_user_id": other_user["id"], "userId": other_user["id"]}}}})
        };
        let started = join_all((0..100).map(|n| {
            server
                .client
                .request(Method::POST, &path)
                .bearer_auth(&token)
                .header("A2A-Version", "1.0")
                .json(&message(n))
                .send()
        }))
        .await;
        let mut running = Vec::new();
        let mut refused = 0;
        for response in started {
            let response = response.unwrap();
            match response.status().as_u16() {
                200 => running.push(response),
                402 => {
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(
                        body["error"]["data"][0]["reason"], "PAYMENT_REQUIRED",
                        "{body}"
                    );
                    refused += 1;
                }
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!((running.len(), refused), (37, 63));
        let held = wallet_of(&server, &caller).await;
        assert_eq!(held["heldMinor"], 37 * HELD, "{held}");
        // Let the streams end, and read each to its end.
        let finished = async { join_all(running.into_iter().map(|r| r.text())).await };
        tokio::pin!(finished);
        let bodies = loop {
            tokio::select! {
                bodies = &mut finished => break bodies,
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => gate.notify_waiters(),
            }
        };
        assert!(
            bodies
                .iter()
                .all(|b| b.as_ref().unwrap().contains("TASK_STATE_COMPLETED"))
        );
        // Each used 1 prompt word and 3 completion words, as the endpoint reported.
        // Each call is settled before its stream ends.
        let wallet = wallet_of(&server, &caller).await;
        assert_eq!(wallet["heldMinor"], 0, "{wallet}");
        assert_eq!(wallet["balanceMinor"], 37 * HELD - 37 * 4, "{wallet}");
        assert_eq!(wallet["owedMinor"], 0);
        let requests = llm.requests();
        assert_eq!(requests.len(), 37, "refused calls reach no endpoint");
        assert!(requests.iter().all(|r| r.body["max_tokens"] == 10));
        // The caller paid; the other user named in the bodies did not.
        let usage = server
            .hive
            .store
            .billing()
            .usage_records(
                uuid::Uuid::parse_str(&caller_id).unwrap(),
                time::OffsetDateTime::UNIX_EPOCH,
                time::OffsetDateTime::now_utc() + time::Duration::days(3650),
                &hive_store::PageRequest::first(100).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(usage.items.len(), 37);
        assert!(
            usage
                .items
                .iter()
                .all(|u| (u.prompt_tokens, u.completion_tokens, u.cost.minor) == (1, 3, 4))
        );
        assert_eq!(records_of(&server, "billing.usage.debit").await.len(), 37);
        let faults = server.hive.store.billing().verify_books().await.unwrap();
        assert!(faults.is_empty(), "{faults:?}");
        drop(server);
    }
}

/// A stand-in for an HTTP receiver (Stripe's API, the alert webhook): every request's headers
/// and body are kept; each path answers its canned JSON.
struct Receiver {
    origin: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, http::HeaderMap, String)>>>,
}

impl Receiver {
    async fn start(answers: &[(&'static str, Value)]) -> Self {
        let seen: std::sync::Arc<std::sync::Mutex<Vec<(String, http::HeaderMap, String)>>> =
            Default::default();
        let mut app = axum::Router::new();
        for &(path, ref answer) in answers {
            let (seen, answer) = (std::sync::Arc::clone(&seen), answer.clone());
            app = app.route(
                path,
                axum::routing::post(move |headers: http::HeaderMap, body: String| {
                    let (seen, answer) = (std::sync::Arc::clone(&seen), answer.clone());
                    async move {
                        seen.lock().unwrap().push((path.to_string(), headers, body));
                        axum::Json(answer)
                    }
                }),
            );
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { origin, seen }
    }

    fn seen(&self) -> Vec<(String, http::HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }
}

fn form_field(form: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(form.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[tokio::test]
async fn checkout_and_the_portal_go_to_stripe_for_the_caller() {
    for backend in backends() {
        let closed = a2a_server(backend, &[]).await;
        setup_admin(&closed).await;
        let admin = login(&closed, ADMIN_EMAIL, PASSWORD).await;
        let response = admin
            .send(
                &closed,
                Method::POST,
                "/api/v1/billing/checkout-session",
                Some(json!({"amountMinor": 1000})),
            )
            .await;
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "stripe_not_configured");
        drop(closed);

        let stripe = Receiver::start(&[
            (
                "/v1/checkout/sessions",
                json!({"id": "cs_test_1", "url": "https://checkout.stripe.test/c/cs_test_1"}),
            ),
            (
                "/v1/billing_portal/sessions",
                json!({"id": "bps_1", "url": "https://billing.stripe.test/p/1"}),
            ),
        ])
        .await;
        let api_base = format!("http://{}", stripe.origin);
        let server = a2a_server(
            backend,
            &[
                ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &stripe.origin),
                ("STRIPE_API_BASE", &api_base),
                ("STRIPE_SECRET_KEY", "sk_test_0123456789abcdefghijklmnop"),
                ("STRIPE_SUBSCRIPTION_PRICE_ID", "price_123"),
                ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ],
        )
        .await;
        hive_testkit::capture::canary("sk_test_0123456789abcdefghijklmnop");
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, buyer) = add_user(&server, &admin, "payer@example.com", "viewer").await;
        let user_id = user["id"].as_str().unwrap().to_owned();
        let wallet = wallet_of(&server, &buyer).await;
        assert_eq!(wallet["stripe"]["checkoutEnabled"], true);
        assert_eq!(wallet["stripe"]["subscriptionCheckoutEnabled"], true);

        let checkout = |body: Value| {
            buyer.send(
                &server,
                Method::POST,
                "/api/v1/billing/checkout-session",
                Some(body),
            )
        };
        // Out of bounds, another currency, or someone else named: refused before Stripe.
        for body in [
            json!({"amountMinor": 99}),
            json!({"amountMinor": 100_001}),
            json!({"amountMinor": 1000, "currency": "eur"}),
            json!({"amountMinor": 1000, "userId": uuid::Uuid::new_v4()}),
        ] {
            let response = checkout(body.clone()).await;
            assert_eq!(response.status(), 400, "{body}");
        }
        assert!(stripe.seen().is_empty());

        let response = checkout(json!({"amountMinor": 2500})).await;
        assert_eq!(response.status(), 200);
        let session: Value = response.json().await.unwrap();
        assert_eq!(session["url"], "https://checkout.stripe.test/c/cs_test_1");
        assert_eq!(session["mode"], "payment");
        let (path, headers, form) = stripe.seen().pop().unwrap();
        assert_eq!(path, "/v1/checkout/sessions");
        assert_eq!(
            headers["authorization"],
            "Bearer sk_test_0123456789abcdefghijklmnop"
        );
        assert_eq!(form_field(&form, "mode").as_deref(), Some("payment"));
        assert_eq!(
            form_field(&form, "line_items[0][price_data][unit_amount]").as_deref(),
            Some("2500")
        );
        assert_eq!(
            form_field(&form, "line_items[0][price_data][currency]").as_deref(),
            Some("usd")
        );
        // The payment names the caller, so the webhook credits the caller.
        for field in [
            "metadata[hive_user_id]",
            "payment_intent_data[metadata][hive_user_id]",
            "client_reference_id",
        ] {
            assert_eq!(
                form_field(&form, field).as_deref(),
                Some(user_id.as_str()),
                "{field}"
            );
        }

        let response = checkout(json!({"mode": "subscription"})).await;
        assert_eq!(response.status(), 200);
        let (_, _, form) = stripe.seen().pop().unwrap();
        assert_eq!(
            form_field(&form, "line_items[0][price]").as_deref(),
            Some("price_123")
        );
        assert_eq!(
            form_field(&form, "subscription_data[metadata][hive_user_id]").as_deref(),
            Some(user_id.as_str())
        );
        assert_eq!(records_of(&server, "billing.checkout").await.len(), 2);

        // The portal needs the Stripe customer a completed checkout links.
        let portal = || {
            buyer.send(
                &server,
                Method::POST,
                "/api/v1/billing/customer-portal",
                None,
            )
        };
        assert_eq!(portal().await.status(), 409);
        let completed = event(
            "evt_checkout_done",
            "checkout.session.completed",
            json!({"id": "cs_test_1", "customer": "cus_77", "client_reference_id": user_id}),
        );
        let (_, answer) = deliver(&server, Some(signed(&completed, NOW)), &completed).await;
        assert_eq!(answer["outcome"], "linked");
        let response = portal().await;
        assert_eq!(response.status(), 200);
        let opened: Value = response.json().await.unwrap();
        assert_eq!(opened["url"], "https://billing.stripe.test/p/1");
        let (path, _, form) = stripe.seen().pop().unwrap();
        assert_eq!(path, "/v1/billing_portal/sessions");
        assert_eq!(form_field(&form, "customer").as_deref(), Some("cus_77"));
        drop(server);
    }
}

#[tokio::test]
async fn a_budget_stops_a_stream_at_its_limit_and_alerts() {
    for backend in backends() {
        let llm = hive_testkit::llm::TestLlm::start().await;
        let hooks = Receiver::start(&[("/alerts", json!({"ok": true}))]).await;
        let allowlist = format!("{},{}", llm.allowlist_entry(), hooks.origin);
        let alert_url = format!("http://{}/alerts", hooks.origin);
        const ALERT_SECRET: &str = "alert-secret-0123456789abcdefghijk";
        let server = a2a_server(
            backend,
            &[
                ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allowlist),
                ("HIVE_BILLING_ALERT_WEBHOOK_URL", &alert_url),
                ("HIVE_BILLING_ALERT_WEBHOOK_SECRET", ALERT_SECRET),
            ],
        )
        .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        let (user, caller) = add_user(&server, &admin, "budgeted@example.com", "operator").await;
        let user_id = user["id"].as_str().unwrap().to_owned();
        // A local model: its tokens are free, and the budget counts them all the same.
        let agent = conformance_agent_with(
            &server,
            &caller,
            json!({"name": "local", "kind": "llm", "visibility": "private",
                   "runtime": {"baseUrl": llm.base_url(), "model": "local-model"}}),
        )
        .await;
        let token = execute_token(&server, &caller).await;

        // Only admins set budgets.
        let budget =
            json!({"scope": "user", "scopeId": user_id, "period": "day", "maxTokens": 100});
        let refused = caller
            .send(
                &server,
                Method::POST,
                "/api/v1/billing/budgets",
                Some(budget.clone()),
            )
            .await;
        assert_eq!(refused.status(), 403);
        let set = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/billing/budgets",
                Some(budget),
            )
            .await;
        assert_eq!(set.status(), 201);

        // "a": a prompt bound of 8 + (1 + 8) = 17 tokens; 83 are left for the answer, which the
        // model is told (`max_tokens`) and stops at, mid-answer.
        llm.set_reply(Some(&"word ".repeat(200)));
        let path = format!("/api/a2a/agents/{agent}/jsonrpc");
        let say = json!({"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {
            "message": {"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
                        "parts": [{"text": "a"}]}}});
        let response = server
            .client
            .request(Method::POST, &path)
            .bearer_auth(&token)
            .header("A2A-Version", "1.0")
            .json(&say)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let stream = response.text().await.unwrap();
        assert!(stream.contains("TASK_STATE_COMPLETED"), "{stream}");
        assert_eq!(llm.requests()[0].body["max_tokens"], 83);
        // 1 prompt token and 83 completion tokens: 84 of 100, past 80 %.
        let budgets: Value = caller
            .send(&server, Method::GET, "/api/v1/billing/budgets", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(budgets[0]["usedTokens"], 84, "{budgets}");
        assert_eq!(budgets[0]["heldTokens"], 0);

        // The next call has no room for its prompt: refused before the model is called.
        let again = json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {
            "message": {"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
                        "parts": [{"text": "a"}]}}});
        let response = server
            .client
            .request(Method::POST, &path)
            .bearer_auth(&token)
            .header("A2A-Version", "1.0")
            .json(&again)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 402);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["data"][0]["reason"], "BUDGET_REACHED",
            "{body}"
        );
        assert_eq!(llm.requests().len(), 1);

        // The alert: on the dashboard's list, then posted once, signed.
        let alerts: Value = caller
            .send(&server, Method::GET, "/api/v1/billing/alerts", None)
            .await
            .json()
            .await
            .unwrap();
        let thresholds: Vec<u64> = alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["thresholdPercent"].as_u64().unwrap())
            .collect();
        assert_eq!(thresholds, [80]);
        assert_eq!(server.hive.billing.deliver_alerts().await.unwrap(), (1, 0));
        assert_eq!(server.hive.billing.deliver_alerts().await.unwrap(), (0, 0));
        let (_, headers, body) = hooks.seen().pop().unwrap();
        let posted: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(posted["thresholdPercent"], 80);
        assert_eq!(posted["scope"], "user");
        let signature = headers["hive-signature"].to_str().unwrap();
        assert!(
            hive_crypto::webhook_signature::verify(
                Some(signature),
                body.as_bytes(),
                ALERT_SECRET.as_bytes(),
                NOW
            )
            .is_ok()
        );
        drop(server);
    }
}

#[tokio::test]
async fn billable_calls_fail_closed_when_the_books_cannot_be_reached() {
    for backend in backends() {
        for fail_open in [false, true] {
            let llm = hive_testkit::llm::TestLlm::start().await;
            let open = fail_open.to_string();
            let server = a2a_server(
                backend,
                &[
                    ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &llm.allowlist_entry()),
                    ("HIVE_BILLING_ENFORCE", "true"),
                    ("BILLING_USAGE_MINOR_PER_1K_TOKENS", "1000"),
                    ("HIVE_BILLING_FAIL_OPEN", &open),
                ],
            )
            .await;
            setup_admin(&server).await;
            let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
            let agent = conformance_agent_with(
                &server,
                &admin,
                json!({"name": "paid", "kind": "llm", "visibility": "private",
                       "runtime": {"baseUrl": llm.base_url(), "model": "m", "maxTokens": 5}}),
            )
            .await;
            let token = execute_token(&server, &admin).await;
            let admin_id = wallet_of(&server, &admin).await["userId"].clone();
            let fund = admin
                .send(
                    &server,
                    Method::POST,
                    "/api/v1/billing/adjustments",
                    Some(json!({"userId": admin_id, "amountMinor": 10_000, "reason": "credit"})),
                )
                .await;
            assert_eq!(fund.status(), 201);
            // The books lose the table every hold is written to.
            server
                .execute_sql("ALTER TABLE billing_holds RENAME TO billing_holds_gone")
                .await;
            let say = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
                "message": {"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
                            "parts": [{"text": "hi"}]}}});
            let response = server
                .client
                .request(Method::POST, &format!("/api/a2a/agents/{agent}/jsonrpc"))
                .bearer_auth(&token)
                .header("A2A-Version", "1.0")
                .json(&say)
                .send()
                .await
                .unwrap();
            if fail_open {
                assert_eq!(response.status(), 200);
                assert_eq!(llm.requests().len(), 1);
            } else {
                assert_eq!(response.status(), 503);
                assert!(llm.requests().is_empty(), "refused before any work");
            }
            drop(server);
        }
    }
}

#[tokio::test]
async fn workflow_steps_are_metered_and_refused_when_unpaid() {
    use crate::workflows::{admin_session, ended, start, step, wait_run};
    for backend in backends() {
        let server = a2a_server(
            backend,
            &[
                ("HIVE_BILLING_ENFORCE", "true"),
                ("HIVE_BILLING_WORKFLOW_STEP_MINOR", "7"),
            ],
        )
        .await;
        let (admin, token) = admin_session(&server).await;
        let document = json!({
            "name": "metered",
            "nodes": [
                {"id": "start", "type": "input"},
                {"id": "label", "type": "transform", "value": "hello"},
                {"id": "done", "type": "output", "value": "{{ nodes.label.output }}"}
            ],
            "edges": [{"from": "start", "to": "label"}, {"from": "label", "to": "done"}]
        });
        let saved = admin
            .send(&server, Method::POST, "/api/v1/workflows", Some(document))
            .await;
        assert_eq!(saved.status(), 201);
        let saved: Value = saved.json().await.unwrap();
        let workflow = saved["workflow"]["id"].as_str().unwrap().to_owned();

        // An empty wallet: the first step is refused, and the run fails with billing's word.
        let run = start(&server, &token, &workflow, json!({})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "failed", "{detail}");
        let refused = step(&detail, "start");
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("the wallet cannot pay"),
            "{refused}"
        );

        // Paid for, each step's attempt costs 7.
        let admin_id = wallet_of(&server, &admin).await["userId"].clone();
        let fund = admin
            .send(
                &server,
                Method::POST,
                "/api/v1/billing/adjustments",
                Some(json!({"userId": admin_id, "amountMinor": 100, "reason": "credit"})),
            )
            .await;
        assert_eq!(fund.status(), 201);
        let run = start(&server, &token, &workflow, json!({})).await;
        let detail = wait_run(&server, &token, &run, ended).await;
        assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
        let wallet = wallet_of(&server, &admin).await;
        assert_eq!(wallet["balanceMinor"], 100 - 3 * 7, "{wallet}");
        assert_eq!(wallet["heldMinor"], 0);
        let usage: Value = admin
            .send(
                &server,
                Method::GET,
                "/api/v1/billing/usage?groupBy=agent&from=2025-12-01T00:00:00Z&to=2026-02-01T00:00:00Z",
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let group = &usage["groups"][0];
        assert_eq!(group["key"], workflow.as_str(), "{usage}");
        assert_eq!(group["kind"], "workflow_step");
        assert_eq!(
            (group["quantity"].as_i64(), group["costMinor"].as_i64()),
            (Some(3), Some(21))
        );
        drop(server);
    }
}
