//! The anonymous public tier of the JSON-RPC endpoint (`A2A_PUBLIC_JSONRPC_*`) over real HTTP:
//! off by default; when on, anonymous callers may use the allowed methods on `public` agents
//! only, within a body limit and a per-address rate limit; API keys scope their own methods;
//! signed-in callers keep their rights on the local endpoints and have none of them on the
//! public one. Every refused request changes nothing.

use crate::a2a::{conformance_agent_with, execute_token};
use crate::support::*;
use hive_testkit::{TestBackend, TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};

const RPC: &str = "/api/a2a/jsonrpc";
const PUBLIC: &str = "/api/a2a/jsonrpc/public";
const CALL: &str = "mesh.a2a.public_tier.call";
const REFUSED: &str = "mesh.a2a.public_tier.refused";
/// Every limit out of the tests' way, the public tier's too.
const LIMITS: &str = "login=10000/1m,register=10000/1m,setup=10000/1m,api=100000/1m,a2a=100000/1m,public_a2a=100000/1m";

/// A server with `vars` (after the limits), its admin signed in, and the admin's agents
/// `open` (public, the default agent unless `vars` says otherwise), `shared` (federation) and
/// `mine` (private): their ids in that order.
async fn tier_server(
    backend: TestBackend,
    vars: &[(&str, &str)],
) -> (TestServer, Browser, [String; 3]) {
    let mut all = vec![("HIVE_RATE_LIMITS", LIMITS), ("A2A_DEFAULT_AGENT", "open")];
    all.extend_from_slice(vars);
    let server = identity_server_with(backend, &all).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let mut ids = Vec::new();
    for (name, visibility) in [
        ("open", "public"),
        ("shared", "federation"),
        ("mine", "private"),
    ] {
        ids.push(
            conformance_agent_with(
                &server,
                &admin,
                json!({ "name": name, "kind": "conformance", "visibility": visibility }),
            )
            .await,
        );
    }
    let [open, shared, mine]: [String; 3] = ids.try_into().unwrap();
    (server, admin, [open, shared, mine])
}

const ON: (&str, &str) = ("A2A_PUBLIC_JSONRPC_ENABLED", "true");
const SEND_ONLY: (&str, &str) = ("A2A_PUBLIC_JSONRPC_ALLOWED_METHODS", "message/send");

fn agent_path(id: &str) -> String {
    format!("/api/a2a/agents/{id}/jsonrpc")
}

/// A message in the protocol version a request without `A2A-Version` speaks (0.3).
fn send(message_id: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {
        "message": {"kind": "message", "messageId": message_id, "role": "user",
                    "parts": [{"kind": "text", "text": "hi"}]}}})
}

fn get_task(id: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 8, "method": "tasks/get", "params": {"id": id}})
}

/// One call at `path` with `headers` and `body` sent as JSON: the status, the headers and the
/// body as JSON (null when it is none).
async fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    raw(
        server,
        path,
        headers,
        "application/json",
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// One call with a body of any content type.
async fn raw(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .client
        .request(Method::POST, path)
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The JSON-RPC error of a refused call: its reason and the HTTP status it carries.
fn assert_rpc_error(body: &Value, status: u16, reason: &str) {
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert!(body.get("result").is_none(), "{body}");
    assert_eq!(body["error"]["data"][0]["reason"], reason, "{body}");
    assert_eq!(
        body["error"]["data"][0]["metadata"]["httpStatus"],
        status.to_string(),
        "{body}"
    );
}

/// The id of the task a `message/send` answered with.
fn task_id(body: &Value) -> String {
    let result = &body["result"];
    assert!(result.is_object(), "a result: {body}");
    result["id"]
        .as_str()
        .or_else(|| result["taskId"].as_str())
        .unwrap_or_else(|| panic!("a task id in {body}"))
        .to_owned()
}

/// A request the tier refuses: what it is, its content type and body, the status and error
/// reason of the answer, and the reason audited (empty: refused before the tier).
type Refused = (
    &'static str,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

async fn descriptor(server: &TestServer) -> Value {
    let response = server.client.get("/.well-known/hive-mesh.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn random_key() -> String {
    let key = hive_crypto::random_token_hex().unwrap();
    hive_testkit::capture::canary(&key);
    key
}

#[tokio::test]
async fn the_public_tier_is_off_by_default() {
    for backend in backends() {
        let (server, _admin, [open, _, _]) = tier_server(backend, &[]).await;
        let (status, headers, body) = post(&server, RPC, &[], &send("anon")).await;
        assert_eq!(status, 401, "{body}");
        assert!(headers.contains_key("www-authenticate"));
        assert_rpc_error(&body, 401, "UNAUTHENTICATED");
        let (status, _, body) = post(&server, &agent_path(&open), &[], &send("anon")).await;
        assert_eq!(status, 401, "{body}");
        let (status, _, body) = post(&server, PUBLIC, &[], &send("anon")).await;
        assert_eq!(status, 404, "{body}");
        // A key header opens nothing either.
        let key = random_key().await;
        let (status, _, _) =
            post(&server, PUBLIC, &[("x-hive-public-key", &key)], &send("k")).await;
        assert_eq!(status, 404);
        // Nothing was served: no call of any kind, and no public tier to refuse anything.
        assert!(records_of(&server, CALL).await.is_empty());
        assert!(records_of(&server, "a2a.call").await.is_empty());
        assert!(records_of(&server, REFUSED).await.is_empty());
        assert!(
            descriptor(&server).await["a2a"]
                .get("publicJsonrpc")
                .is_none()
        );
    }
}

#[tokio::test]
async fn anonymous_callers_reach_public_agents_with_the_allowed_methods_only() {
    for backend in backends() {
        let (server, _admin, [open, shared, mine]) = tier_server(backend, &[ON, SEND_ONLY]).await;

        // A public agent's endpoint: served, and recorded as the public tier's call.
        let (status, _, body) = post(&server, &agent_path(&open), &[], &send("m1")).await;
        assert_eq!(status, 200, "{body}");
        let task = task_id(&body);
        let calls = records_of(&server, CALL).await;
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].actor, "public");
        assert_eq!(calls[0].target.as_deref(), Some(&*format!("agent:{open}")));
        assert!(records_of(&server, "a2a.call").await.is_empty());

        // Federation and private agents do not exist for the public tier.
        for hidden in [&shared, &mine] {
            let (status, _, body) = post(&server, &agent_path(hidden), &[], &send("m2")).await;
            assert_eq!(status, 404, "{body}");
            assert_rpc_error(&body, 404, "NOT_FOUND");
        }
        assert_eq!(records_of(&server, CALL).await.len(), 1);

        // The instance endpoints, whose default agent is public.
        for path in [PUBLIC, RPC] {
            let (status, _, body) = post(&server, path, &[], &send(&format!("m3{path}"))).await;
            assert_eq!(status, 200, "{path}: {body}");
            task_id(&body);
        }
        let calls = records_of(&server, CALL).await;
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|record| record.actor == "public"));

        // Another method, even on the caller's own task, at each endpoint: refused unread.
        for path in [PUBLIC.to_owned(), RPC.to_owned(), agent_path(&open)] {
            let (status, headers, body) = post(&server, &path, &[], &get_task(&task)).await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(headers.contains_key("www-authenticate"), "{path}");
            assert_rpc_error(&body, 401, "UNAUTHENTICATED");
        }
        // The 1.0 name of a method not allowed is refused alike.
        let (status, _, body) = post(
            &server,
            PUBLIC,
            &[("A2A-Version", "1.0")],
            &json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task}}),
        )
        .await;
        assert_eq!(status, 401, "{body}");
        // The allowed method in 1.0 is `SendMessage`.
        let (status, _, body) = post(
            &server,
            PUBLIC,
            &[("A2A-Version", "1.0")],
            &json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
                "message": {"messageId": "v1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["result"].is_object(), "{body}");
        // The version may come as the query parameter instead (spec 3.6.1), here as anywhere.
        let (status, _, body) = post(
            &server,
            &format!("{PUBLIC}?A2A-Version=1.0"),
            &[],
            &json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {
                "message": {"messageId": "v1q", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["result"].is_object(), "{body}");
        assert_eq!(body["id"], 2, "{body}");
        assert_eq!(records_of(&server, CALL).await.len(), 5);
        let refused = records_of(&server, REFUSED).await;
        assert_eq!(refused.len(), 4);
        assert!(
            refused
                .iter()
                .all(|record| record.detail.contains("method_not_allowed")),
            "{refused:?}"
        );

        let described = descriptor(&server).await;
        assert_eq!(
            described["a2a"]["publicJsonrpc"],
            format!("{}{PUBLIC}", server.origin)
        );
    }
}

#[tokio::test]
async fn requests_the_tier_does_not_accept_are_refused_before_any_handler() {
    for backend in backends() {
        let (server, _admin, [open, _, _]) = tier_server(
            backend,
            &[ON, SEND_ONLY, ("A2A_PUBLIC_JSONRPC_MAX_BODY_BYTES", "1024")],
        )
        .await;
        let mut oversize = send("big");
        oversize["params"]["message"]["parts"][0]["text"] = json!("x".repeat(2000));
        let oversize = serde_json::to_vec(&oversize).unwrap();
        assert!(oversize.len() > 2000);
        let cases: Vec<Refused> = vec![
            (
                "oversize",
                "application/json",
                oversize,
                413,
                "PAYLOAD_TOO_LARGE",
                "oversize",
            ),
            (
                "malformed JSON",
                "application/json",
                br#"{"jsonrpc": "2.0", "id": 1, "method": "message/send""#.to_vec(),
                400,
                "BAD_REQUEST",
                "malformed",
            ),
            (
                "a batch",
                "application/json",
                serde_json::to_vec(&json!([send("b1"), send("b2")])).unwrap(),
                400,
                "BAD_REQUEST",
                "malformed",
            ),
            (
                "no method",
                "application/json",
                br#"{"jsonrpc": "2.0", "id": 1, "params": {}}"#.to_vec(),
                400,
                "BAD_REQUEST",
                "malformed",
            ),
            (
                "not JSON-RPC 2.0",
                "application/json",
                serde_json::to_vec(&{
                    let mut body = send("v");
                    body["jsonrpc"] = json!("1.0");
                    body
                })
                .unwrap(),
                400,
                "BAD_REQUEST",
                "malformed",
            ),
            // Refused by the pipeline already, for every API write.
            (
                "not JSON",
                "text/plain",
                serde_json::to_vec(&send("t")).unwrap(),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "",
            ),
            // The pipeline takes any `+json` type; the tier takes `application/json` alone.
            (
                "another JSON type",
                "application/vnd.example+json",
                serde_json::to_vec(&send("j")).unwrap(),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "not_json",
            ),
        ];
        let mut refusals = 0;
        for (what, content_type, body, expected, reason, audited) in cases {
            for path in [PUBLIC.to_owned(), agent_path(&open)] {
                let (status, _, answer) =
                    raw(&server, &path, &[], content_type, body.clone()).await;
                assert_eq!(status, expected, "{what} at {path}: {answer}");
                assert_eq!(answer["jsonrpc"], "2.0", "{what}: {answer}");
                assert!(answer.get("result").is_none(), "{what}: {answer}");
                assert_eq!(
                    answer["error"]["data"][0]["metadata"]["httpStatus"],
                    expected.to_string(),
                    "{what}: {answer}"
                );
                assert_eq!(
                    answer["error"]["data"][0]["reason"], reason,
                    "{what}: {answer}"
                );
                // The request's id, also when the tier had read the body to refuse it.
                if let Ok(sent) = serde_json::from_slice::<Value>(&body)
                    && sent.is_object()
                {
                    assert_eq!(answer["id"], sent["id"], "{what} at {path}: {answer}");
                }
                if audited.is_empty() {
                    assert_eq!(records_of(&server, REFUSED).await.len(), refusals);
                    continue;
                }
                refusals += 1;
                let refused = records_of(&server, REFUSED).await;
                assert_eq!(refused.len(), refusals, "{what}");
                assert!(
                    refused.last().unwrap().detail.contains(audited),
                    "{what}: {:?}",
                    refused.last()
                );
            }
        }
        // None of them was served, nor left a task behind.
        assert!(records_of(&server, CALL).await.is_empty());
        assert!(records_of(&server, "a2a.call").await.is_empty());
        // The same body within the limit is.
        let (status, _, body) = post(&server, PUBLIC, &[], &send("small")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(records_of(&server, CALL).await.len(), 1);
    }
}

#[tokio::test]
async fn the_public_tier_is_rate_limited_per_address_and_local_callers_are_not_counted() {
    for backend in backends() {
        let limits = "login=10000/1m,register=10000/1m,setup=10000/1m,api=100000/1m,a2a=100000/1m,public_a2a=3/1m";
        let (server, admin, [open, _, mine]) =
            tier_server(backend, &[ON, SEND_ONLY, ("HIVE_RATE_LIMITS", limits)]).await;
        for i in 0..3 {
            let path = if i == 0 {
                PUBLIC.to_owned()
            } else {
                agent_path(&open)
            };
            let (status, _, body) = post(&server, &path, &[], &send(&format!("r{i}"))).await;
            assert_eq!(status, 200, "call {i}: {body}");
        }
        assert_eq!(records_of(&server, CALL).await.len(), 3);
        for path in [PUBLIC.to_owned(), agent_path(&open), RPC.to_owned()] {
            let (status, headers, body) = post(&server, &path, &[], &send("r4")).await;
            assert_eq!(status, 429, "{path}: {body}");
            let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert!(body.get("result").is_none(), "{body}");
        }
        // A malformed body is counted too, before it is read.
        let (status, _, _) = raw(&server, PUBLIC, &[], "application/json", b"{".to_vec()).await;
        assert_eq!(status, 429);
        assert_eq!(records_of(&server, CALL).await.len(), 3, "nothing served");

        // A signed-in caller is not the public tier, and not counted by its limit.
        let token = execute_token(&server, &admin).await;
        let (status, _, body) = post(
            &server,
            &agent_path(&mine),
            &[("authorization", &format!("Bearer {token}"))],
            &send("local"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        task_id(&body);
        assert_eq!(records_of(&server, "a2a.call").await.len(), 1);
        assert_eq!(records_of(&server, CALL).await.len(), 3);
    }
}

#[tokio::test]
async fn api_keys_scope_their_methods_and_are_audited_by_name() {
    for backend in backends() {
        let partner = random_key().await;
        let reader = random_key().await;
        let hashed = random_key().await;
        let keys = format!(
            "partner={partner}@message/send|tasks/get, reader={reader}@GetTask, hashed=sha256:{}",
            hive_crypto::sha256_hex(hashed.as_bytes())
        );
        let (server, _admin, [open, shared, _]) = tier_server(
            backend,
            &[ON, SEND_ONLY, ("A2A_PUBLIC_JSONRPC_API_KEYS", &keys)],
        )
        .await;
        let partner_h = [("x-hive-public-key", partner.as_str())];
        let reader_h = [("x-hive-public-key", reader.as_str())];
        let hashed_h = [("x-hive-public-key", hashed.as_str())];

        // The partner sends and reads its own task back.
        let (status, _, body) = post(&server, PUBLIC, &partner_h, &send("p1")).await;
        assert_eq!(status, 200, "{body}");
        let task = task_id(&body);
        let (status, _, body) = post(&server, PUBLIC, &partner_h, &get_task(&task)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["id"], task, "{body}");
        let calls = records_of(&server, CALL).await;
        assert_eq!(calls.len(), 2);
        assert!(
            calls
                .iter()
                .all(|record| record.actor == "public-key:partner"),
            "{calls:?}"
        );
        // A key reaches no more agents than the tier: a federation agent does not exist.
        let (status, _, _) = post(&server, &agent_path(&shared), &partner_h, &send("p2")).await;
        assert_eq!(status, 404);

        // Tasks belong to their caller: anonymous callers may not even ask, and the reader,
        // who may ask, finds no such task of its own.
        let (status, _, _) = post(&server, PUBLIC, &[], &get_task(&task)).await;
        assert_eq!(status, 401);
        let (status, _, body) = post(&server, PUBLIC, &reader_h, &get_task(&task)).await;
        assert_ne!(status, 401, "{body}");
        assert!(body.get("result").is_none(), "{body}");
        assert!(body["error"].is_object(), "{body}");
        // A key's methods replace the anonymous ones.
        let (status, headers_out, body) = post(&server, PUBLIC, &reader_h, &send("r1")).await;
        assert_eq!(status, 401, "{body}");
        assert!(headers_out.contains_key("www-authenticate"));

        // A key configured by its hash works with the key itself, with the anonymous methods.
        let (status, _, body) = post(&server, &agent_path(&open), &hashed_h, &send("h1")).await;
        assert_eq!(status, 200, "{body}");
        let hashed_task = task_id(&body);
        let last = records_of(&server, CALL).await.pop().unwrap();
        assert_eq!(last.actor, "public-key:hashed");
        let (status, _, _) = post(&server, PUBLIC, &hashed_h, &get_task(&hashed_task)).await;
        assert_eq!(status, 401);
        // Presenting the hash is not presenting the key.
        let hash = hive_crypto::sha256_hex(hashed.as_bytes());
        for wrong in [
            hash,
            format!("sha256:{}", hive_crypto::sha256_hex(hashed.as_bytes())),
        ] {
            let (status, _, body) = post(
                &server,
                PUBLIC,
                &[("x-hive-public-key", &wrong)],
                &send("w"),
            )
            .await;
            assert_eq!(status, 401, "{body}");
        }

        // An unknown key is refused even for a method anonymous callers may use.
        let stranger = random_key().await;
        let before = records_of(&server, CALL).await.len();
        for path in [PUBLIC.to_owned(), agent_path(&open), RPC.to_owned()] {
            let (status, headers_out, body) = post(
                &server,
                &path,
                &[("x-hive-public-key", &stranger)],
                &send(&format!("u{path}")),
            )
            .await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(headers_out.contains_key("www-authenticate"));
            assert_rpc_error(&body, 401, "UNAUTHENTICATED");
        }
        assert_eq!(records_of(&server, CALL).await.len(), before);
        let refused = records_of(&server, REFUSED).await;
        assert_eq!(
            refused
                .iter()
                .filter(|record| record.detail.contains("unknown_key"))
                .count(),
            5,
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn signed_in_callers_keep_their_rights_and_the_public_endpoint_ignores_them() {
    for backend in backends() {
        let (server, admin, [open, _, mine]) =
            tier_server(backend, &[ON, SEND_ONLY, ("A2A_DEFAULT_AGENT", "mine")]).await;
        let token = execute_token(&server, &admin).await;
        let bearer = format!("Bearer {token}");
        let auth = [("authorization", bearer.as_str())];

        // The local endpoints: the caller's private agent, and methods the tier does not allow.
        for path in [RPC.to_owned(), agent_path(&mine)] {
            let (status, _, body) = post(&server, &path, &auth, &send(&format!("l1{path}"))).await;
            assert_eq!(status, 200, "{path}: {body}");
            let task = task_id(&body);
            let (status, _, body) = post(&server, &path, &auth, &get_task(&task)).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body["result"]["id"], task, "{body}");
        }
        let local = records_of(&server, "a2a.call").await;
        assert_eq!(local.len(), 4);
        assert!(local.iter().all(|record| record.actor != "public"));
        assert!(records_of(&server, CALL).await.is_empty());

        // A bearer token that is not (or no longer) valid is refused as before, not taken for
        // an anonymous caller of the tier (who could reach the public agent).
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'a' { 'b' } else { 'a' });
        let forged = format!("Bearer {forged}");
        for path in [RPC.to_owned(), agent_path(&open)] {
            let (status, headers, body) = post(
                &server,
                &path,
                &[("authorization", &forged)],
                &send(&format!("f{path}")),
            )
            .await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(headers.contains_key("www-authenticate"), "{path}");
            assert_rpc_error(&body, 401, "UNAUTHENTICATED");
        }
        assert!(records_of(&server, CALL).await.is_empty());

        // The public endpoint: the bearer is ignored, the default agent (private) is out of
        // reach and the tier's methods are all there is.
        let (status, _, body) = post(&server, PUBLIC, &auth, &send("p1")).await;
        assert!(body.get("result").is_none(), "{status}: {body}");
        assert!(body["error"].is_object(), "{body}");
        let (status, _, body) = post(&server, PUBLIC, &auth, &get_task("any")).await;
        assert_eq!(status, 401, "{body}");
        let calls = records_of(&server, CALL).await;
        assert!(calls.iter().all(|record| record.actor == "public"));
        assert!(
            calls
                .iter()
                .all(|record| record.target.as_deref() != Some(&*format!("agent:{mine}"))),
            "{calls:?}"
        );
        assert_eq!(records_of(&server, "a2a.call").await.len(), 4);
        // Anonymous callers still reach the public agent at its own endpoint.
        let (status, _, body) = post(&server, &agent_path(&open), &[], &send("p2")).await;
        assert_eq!(status, 200, "{body}");
    }
}
