//! Federation between Hive instances over real HTTP: three servers on 127.0.0.2, .3 and .4
//! sharing nothing but configuration. A calls B's agents through its proxy; C, which B does
//! not know, cannot; B's private agents do not exist for peers; captured and forged tokens are
//! refused alike, and a Redis outage refuses federation rather than letting it through.

use crate::a2a::conformance_agent_with;
use crate::support::*;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hive_crypto::federation::{Ed25519Seed, Signer, SigningKey};
use hive_testkit::agent_card::CardHost;
use hive_testkit::{TestBackend, TestServer, backends, origin_of, reserve_listener};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

const PROXY: &str = "/api/v1/mesh/federation/proxy/jsonrpc";
const RPC: &str = "/api/a2a/jsonrpc";
/// The test servers' clock: 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;
const LIMITS: &str = "login=10000/1m,register=10000/1m,setup=10000/1m,api=100000/1m,a2a=100000/1m,federation=100000/1m";

/// One instance of the mesh with what the tests need of it.
struct Node {
    server: TestServer,
    admin: Browser,
    /// The Ed25519 seed (hex) this instance signs with.
    seed: String,
}

impl Node {
    /// Its `AUTH_URL` origin (the address it is served on).
    fn origin(&self) -> &str {
        &self.server.origin
    }

    fn public_key(&self) -> String {
        Ed25519Seed::parse(&self.seed).unwrap().public_key_text()
    }

    /// A token as this instance would mint it.
    fn mint(&self, audience: &str) -> String {
        let signer = Signer::new(
            self.origin(),
            SigningKey::Ed25519(Ed25519Seed::parse(&self.seed).unwrap()),
        );
        signer.mint(audience, "user:test", NOW, 300).unwrap().token
    }
}

fn write_seed(dir: &tempfile::TempDir, name: &str) -> (String, PathBuf) {
    let seed = hive_crypto::random_token_hex().unwrap();
    // A seed must never reach a log or an audit record (the leak check looks for it).
    hive_testkit::capture::canary(&seed);
    let path = dir.path().join(format!("{name}.seed"));
    std::fs::write(&path, &seed).unwrap();
    let mut private = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut private, 0o600);
    std::fs::set_permissions(&path, private).unwrap();
    (seed, path)
}

fn allow(origin: &str) -> String {
    origin.trim_start_matches("http://").to_owned()
}

/// A (127.0.0.2) and B (127.0.0.3) are each other's peers; C (127.0.0.4) lists B as its peer,
/// but B does not list C. `extra_b` adds variables to B.
async fn mesh(
    backend: TestBackend,
    extra_b: &[(&str, &str)],
) -> (Node, Node, Node, tempfile::TempDir) {
    mesh_pinning(backend, extra_b, None).await
}

/// [`mesh`], B also pinning `a_next_key` for A (a key A is rotating to).
async fn mesh_pinning(
    backend: TestBackend,
    extra_b: &[(&str, &str)],
    a_next_key: Option<&str>,
) -> (Node, Node, Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listeners = [
        reserve_listener("127.0.0.2").await,
        reserve_listener("127.0.0.3").await,
        reserve_listener("127.0.0.4").await,
    ];
    let origins: Vec<String> = listeners.iter().map(origin_of).collect();
    let seeds: Vec<(String, PathBuf)> = ["a", "b", "c"]
        .iter()
        .map(|name| write_seed(&dir, name))
        .collect();
    let key = |i: usize| Ed25519Seed::parse(&seeds[i].0).unwrap().public_key_text();
    let peers_of = [vec![1], vec![0], vec![1]];
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let peers: Vec<&str> = peers_of[i].iter().map(|&p| origins[p].as_str()).collect();
        let mut keys: Vec<String> = peers_of[i]
            .iter()
            .map(|&p| format!("{}={}", origins[p], key(p)))
            .collect();
        if let (1, Some(next)) = (i, a_next_key) {
            keys.push(format!("{}={next}", origins[0]));
        }
        let allowlist: Vec<String> = peers_of[i].iter().map(|&p| allow(&origins[p])).collect();
        let seed_file = seeds[i].1.display().to_string();
        let mut vars: Vec<(&str, &str)> = vec![
            ("HIVE_RATE_LIMITS", LIMITS),
            ("MESH_FEDERATION_ENABLED", "true"),
            ("MESH_FEDERATION_ED25519_SEED_FILE", &seed_file),
        ];
        let peers = peers.join(",");
        let keys = keys.join(",");
        let allowlist = allowlist.join(",");
        vars.push(("MESH_FEDERATION_PEERS", &peers));
        vars.push(("MESH_FEDERATION_PEER_KEYS", &keys));
        vars.push(("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allowlist));
        if i == 1 {
            vars.extend_from_slice(extra_b);
        }
        let server = identity_builder(backend, &vars)
            .listener(listener)
            .start()
            .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        nodes.push(Node {
            server,
            admin,
            seed: seeds[i].0.clone(),
        });
    }
    let c = nodes.pop().unwrap();
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    (a, b, c, dir)
}

async fn agent(node: &Node, name: &str, visibility: &str) -> String {
    conformance_agent_with(
        &node.server,
        &node.admin,
        json!({ "name": name, "kind": "conformance", "visibility": visibility }),
    )
    .await
}

/// A message in the protocol version a request without `A2A-Version` speaks (0.3).
fn send(message_id: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {
        "message": {"kind": "message", "messageId": message_id, "role": "user",
                    "parts": [{"kind": "text", "text": "hi"}]}}})
}

/// A call through `node`'s proxy; the status and the body as JSON (null when it is none).
async fn proxied(node: &Node, query: &str, body: &Value) -> (u16, Value) {
    let response = node
        .admin
        .send(
            &node.server,
            Method::POST,
            &format!("{PROXY}?{query}"),
            Some(body.clone()),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A call straight to `node`'s endpoint at `path` with `headers`.
async fn direct(node: &Node, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut request = node.server.client.request(Method::POST, path).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A GET by `browser` answered with JSON.
async fn get_json(browser: &Browser, server: &TestServer, path: &str) -> Value {
    let response = browser.send(server, Method::GET, path, None).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

fn agent_path(id: &str) -> String {
    format!("/api/a2a/agents/{id}/jsonrpc")
}

#[tokio::test]
async fn a_peer_reaches_shared_agents_through_the_proxy_and_nothing_more() {
    for backend in backends() {
        let (a, b, c, _dir) = mesh(backend, &[]).await;
        let shared = agent(&b, "shared", "federation").await;
        let open = agent(&b, "open", "public").await;
        let private = agent(&b, "private", "private").await;

        // A calls B's federated and public agents, by index and by origin.
        let (status, body) =
            proxied(&a, &format!("peerIndex=0&agentId={shared}"), &send("m1")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["result"].is_object(), "{body}");
        let by_origin = format!("peer={}&agentId={open}", b.origin());
        let (status, body) = proxied(&a, &by_origin, &send("m2")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["result"].is_object(), "{body}");
        // The call's version, here as the query parameter, is the one the peer reads.
        let send_v1 = json!({"jsonrpc": "2.0", "id": 8, "method": "SendMessage", "params": {
            "message": {"messageId": "m1q", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}});
        let query = format!("peerIndex=0&agentId={shared}&A2A-Version=1.0");
        let (status, body) = proxied(&a, &query, &send_v1).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["result"].is_object(),
            "read as 1.0's SendMessage: {body}"
        );

        // B's private agent does not exist for a peer.
        let (status, _) = proxied(&a, &format!("peerIndex=0&agentId={private}"), &send("m3")).await;
        assert_eq!(status, 404);

        // C is not B's peer: B refuses its tokens.
        let (status, body) =
            proxied(&c, &format!("peerIndex=0&agentId={shared}"), &send("m4")).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            body["error"]["data"][0]["reason"], "UNAUTHENTICATED",
            "{body}"
        );

        // Only configured peers, named one way.
        for query in [
            "peerIndex=1",
            &format!("peerIndex=0&peer={}", b.origin()),
            "peer=https://evil.example",
            "",
        ] {
            let (status, _) = proxied(&a, query, &send("m5")).await;
            assert_eq!(status, 400, "{query}");
        }
        let (status, _) = proxied(&a, "peerIndex=0", &json!({"not": "json-rpc"})).await;
        assert_eq!(status, 400);

        // Both sides audited the calls, B with the peer as the actor.
        let inbound = records_of(&b.server, "mesh.federation.inbound_jsonrpc").await;
        let accepted: Vec<_> = inbound
            .iter()
            .filter(|r| r.outcome == hive_store::AuditOutcome::Success)
            .collect();
        assert_eq!(accepted.len(), 3, "{inbound:?}");
        assert!(
            accepted
                .iter()
                .all(|r| r.actor == format!("federation:{}", a.origin()))
        );
        assert!(
            inbound
                .iter()
                .any(|r| r.outcome == hive_store::AuditOutcome::Denied
                    && r.detail.to_string().contains("unknown_kid")),
            "C's refusal says why: {inbound:?}"
        );
        let proxied_records = records_of(&a.server, "mesh.federation.proxy_jsonrpc").await;
        assert_eq!(proxied_records.len(), 4, "{proxied_records:?}");
        assert!(
            proxied_records
                .iter()
                .all(|r| r.target.as_deref() == Some(&*format!("peer:{}", b.origin())))
        );

        // A federation header is never answered with a bearer token's rights.
        let token = crate::a2a::execute_token(&b.server, &b.admin).await;
        let response = b
            .server
            .client
            .request(Method::POST, &agent_path(&private))
            .bearer_auth(&token)
            .header("x-hive-federation-jwt", "not-a-token")
            .json(&send("m6"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        // Both headers at once are a malformed request.
        let fresh = a.mint(b.origin());
        let (status, _) = direct(
            &b,
            &agent_path(&shared),
            &[
                ("x-hive-federation-jwt", &fresh),
                ("x-hive-federation-secret", "x"),
            ],
            &send("m7"),
        )
        .await;
        assert_eq!(status, 400);
        // Outside the JSON-RPC endpoints a peer's token is no credential at all.
        let response = b
            .server
            .client
            .request(Method::GET, "/api/v1/agents")
            .header("x-hive-federation-jwt", a.mint(b.origin()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test]
async fn a_captured_token_is_accepted_once_even_under_a_hundred_parallel_replays() {
    for backend in backends() {
        let (a, b, _c, _dir) = mesh(backend, &[]).await;
        let shared = agent(&b, "shared", "federation").await;
        let path = agent_path(&shared);

        let token = a.mint(b.origin());
        let header = [("x-hive-federation-jwt", token.as_str())];
        let (status, body) = direct(&b, &path, &header, &send("r1")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["result"].is_object(), "{body}");
        let (status, body) = direct(&b, &path, &header, &send("r2")).await;
        assert_eq!(status, 401, "{body}");

        let token = a.mint(b.origin());
        let calls = (0..100).map(|i| {
            let client = b.server.client.clone();
            let url = path.clone();
            let token = token.clone();
            async move {
                client
                    .request(Method::POST, &url)
                    .header("x-hive-federation-jwt", token)
                    .json(&send(&format!("p{i}")))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        });
        let statuses = futures_util::future::join_all(calls).await;
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            99,
            "{statuses:?}"
        );
    }
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// `header.claims.signature` signed by the Ed25519 `seed` (hex), whatever the header says.
fn ed25519_signed(seed: &str, header: &Value, claims: &Value) -> String {
    let pair = Ed25519KeyPair::from_seed_unchecked(&hex::decode(seed).unwrap()).unwrap();
    let message = format!("{}.{}", encode(header), encode(claims));
    let signature = pair.sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fn hmac_signed(secret: &[u8], header: &Value, claims: &Value) -> String {
    use hmac::Mac;
    let message = format!("{}.{}", encode(header), encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(message.as_bytes());
    format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn claims_for(a: &Node, b: &Node, patch: &[(&str, Value)]) -> Value {
    let mut claims = json!({
        "iss": a.origin(), "aud": b.origin(), "sub": "user:test",
        "jti": hive_crypto::random_hex(16).unwrap(), "iat": NOW, "exp": NOW + 300,
    });
    for (name, value) in patch {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(*name);
        } else {
            claims[*name] = value.clone();
        }
    }
    claims
}

#[tokio::test]
async fn forged_tokens_are_refused_alike_and_make_no_request() {
    let backend = TestBackend::Sqlite;
    let (a, b, c, _dir) = mesh(backend, &[]).await;
    let shared = agent(&b, "shared", "federation").await;
    let path = agent_path(&shared);
    let lure = CardHost::start(json!({"keys": []})).await;
    let lure_url = format!(
        "http://127.0.0.1:{}/.well-known/agent-card.json",
        lure.port()
    );
    let a_key = Ed25519Seed::parse(&a.seed).unwrap();
    let kid = a_key.kid();
    let header = json!({"alg": "EdDSA", "typ": "hive-federation+jwt", "kid": kid});
    let with = |extra: &[(&str, Value)]| {
        let mut h = header.clone();
        for (name, value) in extra {
            h[*name] = value.clone();
        }
        h
    };
    let good = claims_for(&a, &b, &[]);
    let message = format!("{}.{}", encode(&header), encode(&good));
    let stranger = hive_crypto::random_token_hex().unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                encode(&with(&[("alg", json!("none"))])),
                encode(&good)
            ),
        ),
        (
            "alg NoNe",
            format!(
                "{}.{}.",
                encode(&with(&[("alg", json!("NoNe"))])),
                encode(&good)
            ),
        ),
        ("stripped signature", format!("{message}.")),
        (
            "HS256 keyed with the public key",
            hmac_signed(
                &a_key.public_key(),
                &with(&[("alg", json!("HS256"))]),
                &good,
            ),
        ),
        (
            "crit",
            ed25519_signed(&a.seed, &with(&[("crit", json!(["exp"]))]), &good),
        ),
        (
            "jku",
            ed25519_signed(&a.seed, &with(&[("jku", json!(lure_url))]), &good),
        ),
        (
            "x5u",
            ed25519_signed(&a.seed, &with(&[("x5u", json!(lure_url))]), &good),
        ),
        (
            "embedded jwk",
            ed25519_signed(
                &stranger,
                &with(&[(
                    "jwk",
                    json!({"kty": "OKP", "crv": "Ed25519", "x": Ed25519Seed::parse(&stranger).unwrap().public_key_text()}),
                )]),
                &good,
            ),
        ),
        (
            "unknown kid",
            ed25519_signed(
                &a.seed,
                &with(&[("kid", json!("ed25519-0000000000000000"))]),
                &good,
            ),
        ),
        (
            "wrong key for the kid",
            ed25519_signed(&stranger, &header, &good),
        ),
        (
            "typ of an ID token",
            ed25519_signed(&a.seed, &with(&[("typ", json!("JWT"))]), &good),
        ),
        (
            "oversize",
            ed25519_signed(
                &a.seed,
                &header,
                &claims_for(&a, &b, &[("pad", json!("x".repeat(9000)))]),
            ),
        ),
        (
            "iss that does not own the key",
            ed25519_signed(
                &a.seed,
                &header,
                &claims_for(&a, &b, &[("iss", json!(c.origin()))]),
            ),
        ),
        (
            "aud of another instance",
            ed25519_signed(
                &a.seed,
                &header,
                &claims_for(&a, &b, &[("aud", json!(c.origin()))]),
            ),
        ),
        (
            "no jti",
            ed25519_signed(
                &a.seed,
                &header,
                &claims_for(&a, &b, &[("jti", Value::Null)]),
            ),
        ),
        (
            "no exp",
            ed25519_signed(
                &a.seed,
                &header,
                &claims_for(&a, &b, &[("exp", Value::Null)]),
            ),
        ),
        (
            "expired",
            ed25519_signed(
                &a.seed,
                &header,
                &claims_for(
                    &a,
                    &b,
                    &[("iat", json!(NOW - 400)), ("exp", json!(NOW - 100))],
                ),
            ),
        ),
        (
            "lifetime over the TTL",
            ed25519_signed(
                &a.seed,
                &header,
                &claims_for(&a, &b, &[("exp", json!(NOW + 301))]),
            ),
        ),
        ("not a JWT", "abc.def".to_owned()),
    ];
    let mut first: Option<Value> = None;
    for (name, token) in &cases {
        let (status, body) =
            direct(&b, &path, &[("x-hive-federation-jwt", token)], &send("f")).await;
        assert_eq!(status, 401, "{name}: {body}");
        let mut error = body["error"].clone();
        error["data"][0]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("requestId");
        match &first {
            None => first = Some(error),
            Some(expected) => {
                assert_eq!(&error, expected, "{name}: the same answer for every case")
            }
        }
    }
    assert_eq!(lure.fetches(), 0, "no key was ever fetched");
    // Each refusal was recorded with its own reason.
    let refused = records_of(&b.server, "mesh.federation.inbound_jsonrpc").await;
    assert_eq!(refused.len(), cases.len(), "{refused:?}");
    for reason in [
        "alg_none",
        "alg_not_allowed",
        "forbidden_header",
        "unknown_kid",
        "bad_signature",
        "wrong_typ",
        "token_oversize",
        "wrong_issuer",
        "wrong_audience",
        "expired",
        "lifetime_too_long",
    ] {
        assert!(
            refused
                .iter()
                .any(|r| r.detail.to_string().contains(reason)),
            "{reason} recorded: {refused:?}"
        );
    }
    // The genuine token still works after all that.
    let token = ed25519_signed(&a.seed, &header, &claims_for(&a, &b, &[]));
    let (status, body) = direct(&b, &path, &[("x-hive-federation-jwt", &token)], &send("ok")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"].is_object(), "{body}");
}

#[tokio::test]
async fn clock_skew_is_tolerated_up_to_the_leeway_and_not_beyond() {
    let (a, b, _c, _dir) = mesh(TestBackend::Sqlite, &[]).await;
    let shared = agent(&b, "shared", "federation").await;
    let path = agent_path(&shared);
    let key = Ed25519Seed::parse(&a.seed).unwrap();
    let header = json!({"alg": "EdDSA", "typ": "hive-federation+jwt", "kid": key.kid()});
    // Leeway 30 s (the default). B's clock is NOW.
    let cases = [
        ("expired 29 s ago", NOW - 329, NOW - 29, None, 200),
        ("expired 30 s ago", NOW - 330, NOW - 30, None, 401),
        ("issued 30 s ahead", NOW + 30, NOW + 330, None, 200),
        ("issued 31 s ahead", NOW + 31, NOW + 331, None, 401),
        ("valid from 30 s ahead", NOW, NOW + 300, Some(NOW + 30), 200),
        ("valid from 31 s ahead", NOW, NOW + 300, Some(NOW + 31), 401),
    ];
    for (name, iat, exp, nbf, expected) in cases {
        let mut patch = vec![("iat", json!(iat)), ("exp", json!(exp))];
        if let Some(nbf) = nbf {
            patch.push(("nbf", json!(nbf)));
        }
        let token = ed25519_signed(&a.seed, &header, &claims_for(&a, &b, &patch));
        let (status, body) =
            direct(&b, &path, &[("x-hive-federation-jwt", &token)], &send(name)).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert_eq!(
            body["result"].is_object(),
            expected == 200,
            "{name}: {body}"
        );
    }
    // A token issued ahead of B's clock is accepted once B's clock gets there: the injected
    // clock decides, not the machine's.
    let token = ed25519_signed(
        &a.seed,
        &header,
        &claims_for(
            &a,
            &b,
            &[("iat", json!(NOW + 100)), ("exp", json!(NOW + 400))],
        ),
    );
    let (status, _) = direct(
        &b,
        &path,
        &[("x-hive-federation-jwt", &token)],
        &send("early"),
    )
    .await;
    assert_eq!(status, 401);
    b.server.clock.advance(time::Duration::seconds(100));
    let (status, body) = direct(
        &b,
        &path,
        &[("x-hive-federation-jwt", &token)],
        &send("early"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"].is_object(), "{body}");
}

#[tokio::test]
async fn the_inbound_allowlist_admits_only_its_addresses() {
    let (a, b, _c, _dir) = mesh(
        TestBackend::Sqlite,
        &[(
            "MESH_FEDERATION_INBOUND_ALLOWLIST",
            "10.9.9.9, 2001:db8::/32",
        )],
    )
    .await;
    let shared = agent(&b, "shared", "federation").await;
    let (status, body) = proxied(&a, &format!("peerIndex=0&agentId={shared}"), &send("x")).await;
    assert_eq!(status, 403, "{body}");
    let refused = records_of(&b.server, "mesh.federation.inbound_jsonrpc").await;
    assert!(
        refused
            .iter()
            .any(|r| r.detail.to_string().contains("address_not_allowed"))
    );

    let (a, b, _c, _dir) = mesh(
        TestBackend::Sqlite,
        &[("MESH_FEDERATION_INBOUND_ALLOWLIST", "127.0.0.0/8, ::1")],
    )
    .await;
    let shared = agent(&b, "shared", "federation").await;
    let (status, body) = proxied(&a, &format!("peerIndex=0&agentId={shared}"), &send("x")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn status_directory_and_descriptor_describe_the_mesh() {
    let (a, b, _c, _dir) = mesh(TestBackend::Sqlite, &[]).await;
    agent(&b, "shared", "federation").await;

    let descriptor: Value = b
        .server
        .client
        .get("/.well-known/hive-mesh.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(descriptor["schema"], "hive-mesh-v1");
    assert_eq!(descriptor["origin"], b.origin());
    assert_eq!(descriptor["federation"]["algorithm"], "EdDSA");
    assert_eq!(descriptor["federation"]["publicKey"], b.public_key());
    assert_eq!(descriptor["a2a"]["jsonrpc"], format!("{}{RPC}", b.origin()));
    assert!(descriptor["a2a"].get("publicJsonrpc").is_none());

    let (_, viewer) = add_user(&a.server, &a.admin, "viewer@example.com", "viewer").await;
    let status: Value = get_json(&viewer, &a.server, "/api/v1/mesh/federation/status").await;
    assert_eq!(status["enabled"], true);
    assert_eq!(status["mode"], "ed25519");
    assert_eq!(status["publicKey"], a.public_key());
    assert_eq!(status["peers"][0]["origin"], b.origin());
    assert_eq!(status["peers"][0]["canCallIn"], true);
    assert!(
        status["peers"][0].get("probe").is_none(),
        "no probe without asking"
    );
    let refused = viewer
        .send(
            &a.server,
            Method::GET,
            "/api/v1/mesh/federation/status?probe=1",
            None,
        )
        .await;
    assert_eq!(refused.status(), 403);

    let probed = get_json(
        &a.admin,
        &a.server,
        "/api/v1/mesh/federation/status?probe=1",
    )
    .await;
    let probe = &probed["peers"][0]["probe"];
    assert_eq!(probe["reachable"], true, "{probed}");
    assert_eq!(probe["status"], 200);
    assert!(probe["agentName"].is_string(), "{probed}");

    let directory: Value = get_json(&viewer, &a.server, "/api/v1/mesh/federation/directory").await;
    assert_eq!(
        directory["peers"][0]["agentCardUrl"],
        format!("{}/.well-known/agent-card.json", b.origin())
    );

    // The admins' page says the same, and probes when asked.
    let page = a
        .server
        .client
        .request(Method::GET, "/admin/federation")
        .header("cookie", &a.admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for shown in [
        b.origin().to_owned(),
        a.public_key(),
        "Public tier".to_owned(),
    ] {
        assert!(html.contains(&shown), "the page does not show {shown}");
    }
    assert!(!html.contains("reachable"), "a probe without asking");
    let probed = crate::pages::post_form(
        &a.server,
        "/admin/federation/probe",
        Some(&a.server.origin),
        Some(&a.admin.cookie),
        &[],
    )
    .await;
    assert_eq!(probed.status(), 200);
    let html = probed.text().await.unwrap();
    assert!(
        html.contains("reachable: its card names"),
        "no probe on the page"
    );
}

#[tokio::test]
async fn the_descriptor_publishes_nothing_derived_from_the_shared_secret() {
    let mut descriptors = Vec::new();
    for _ in 0..2 {
        let secret = hive_crypto::federation::generate_shared_secret().unwrap();
        hive_testkit::capture::canary(&secret);
        let server = identity_builder(
            TestBackend::Sqlite,
            &[
                ("MESH_FEDERATION_ENABLED", "true"),
                ("MESH_FEDERATION_SHARED_SECRET", &secret),
                ("MESH_FEDERATION_PEERS", "http://127.0.0.9"),
            ],
        )
        .start()
        .await;
        let response = server.client.get("/.well-known/hive-mesh.json").await;
        assert_eq!(response.status(), 200);
        let descriptor: Value = response.json().await.unwrap();
        // The whole federation member, so that nothing else can be added to it unseen.
        assert_eq!(
            descriptor["federation"],
            json!({
                "enabled": true, "algorithm": "HS256", "keyId": "hs256",
                "tokenHeader": "X-Hive-Federation-JWT",
            }),
            "{descriptor}"
        );
        descriptors.push(descriptor["federation"].clone());
    }
    assert_eq!(
        descriptors[0], descriptors[1],
        "two secrets, one description"
    );
}

/// Two instances paired by a shared secret (HS256).
async fn shared_secret_pair(
    secret: &str,
    extra_a: &[(&str, &str)],
    extra_b: &[(&str, &str)],
) -> (TestServer, Browser, TestServer, Browser) {
    let la = reserve_listener("127.0.0.2").await;
    let lb = reserve_listener("127.0.0.3").await;
    let (oa, ob) = (origin_of(&la), origin_of(&lb));
    let mut servers = Vec::new();
    for (listener, peer, extra) in [(la, &ob, extra_a), (lb, &oa, extra_b)] {
        let allowlist = allow(peer);
        let mut vars: Vec<(&str, &str)> = vec![
            ("HIVE_RATE_LIMITS", LIMITS),
            ("MESH_FEDERATION_ENABLED", "true"),
            ("MESH_FEDERATION_SHARED_SECRET", secret),
            ("MESH_FEDERATION_PEERS", peer),
            ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allowlist),
        ];
        vars.extend_from_slice(extra);
        let server = identity_builder(TestBackend::Sqlite, &vars)
            .listener(listener)
            .start()
            .await;
        setup_admin(&server).await;
        let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
        servers.push((server, admin));
    }
    let (b, b_admin) = servers.pop().unwrap();
    let (a, a_admin) = servers.pop().unwrap();
    (a, a_admin, b, b_admin)
}

#[tokio::test]
async fn a_shared_secret_mesh_signs_with_hs256_and_the_raw_secret_is_opt_in() {
    let secret = "diyEEr1DiJmQG0zKbizxcYvb-cgGtlJ3zRIp62yEmM0";
    let (a, a_admin, b, b_admin) = shared_secret_pair(secret, &[], &[]).await;
    let b_node = Node {
        server: b,
        admin: b_admin,
        seed: String::new(),
    };
    let shared = agent(&b_node, "shared", "federation").await;
    let a_node = Node {
        server: a,
        admin: a_admin,
        seed: String::new(),
    };
    let (status, body) = proxied(
        &a_node,
        &format!("peerIndex=0&agentId={shared}"),
        &send("s1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let status = get_json(
        &a_node.admin,
        &a_node.server,
        "/api/v1/mesh/federation/status",
    )
    .await;
    assert_eq!(status["mode"], "shared_secret");
    assert!(status.get("publicKey").is_none());

    // The raw secret header is refused unless B allows it.
    let path = agent_path(&shared);
    let (code, _) = direct(
        &b_node,
        &path,
        &[("x-hive-federation-secret", secret)],
        &send("s2"),
    )
    .await;
    assert_eq!(code, 401);

    // A sends the raw secret instead of a token to a peer that accepts only that.
    let (a, a_admin, b, b_admin) = shared_secret_pair(
        secret,
        &[("MESH_FEDERATION_PROXY_SEND_SECRET", "true")],
        &[("MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET", "true")],
    )
    .await;
    let a_node = Node {
        server: a,
        admin: a_admin,
        seed: String::new(),
    };
    let b_node = Node {
        server: b,
        admin: b_admin,
        seed: String::new(),
    };
    let shared = agent(&b_node, "shared", "federation").await;
    let (status, body) = proxied(
        &a_node,
        &format!("peerIndex=0&agentId={shared}"),
        &send("s5"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"].is_object(), "{body}");
    let accepted = records_of(&b_node.server, "mesh.federation.inbound_jsonrpc").await;
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0].actor, "federation:legacy");
    let path = agent_path(&shared);
    let (code, body) = direct(
        &b_node,
        &path,
        &[("x-hive-federation-secret", secret)],
        &send("s3"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = direct(
        &b_node,
        &path,
        &[(
            "x-hive-federation-secret",
            "C_kEKMBXEuNESq8xAl_YW_QioV6H7FaxlqvD_xHuMvA",
        )],
        &send("s4"),
    )
    .await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn a_replay_store_outage_refuses_federation_with_503() {
    if !hive_testkit::OwnRedis::available() {
        return;
    }
    let mut redis = hive_testkit::OwnRedis::start();
    let url = redis.url();
    let (a, b, _c, _dir) = mesh(
        TestBackend::Sqlite,
        &[("REDIS_URL", &url), ("A2A_TASK_STORE", "memory")],
    )
    .await;
    let shared = agent(&b, "shared", "federation").await;
    let query = format!("peerIndex=0&agentId={shared}");
    let (status, body) = proxied(&a, &query, &send("up")).await;
    assert_eq!(status, 200, "{body}");

    redis.kill();
    let (status, body) = proxied(&a, &query, &send("down")).await;
    assert_eq!(status, 503, "fails closed, not 200: {body}");
    let refused = records_of(&b.server, "mesh.federation.inbound_jsonrpc").await;
    assert!(
        refused
            .iter()
            .any(|r| r.detail.to_string().contains("replay_store_unavailable"))
    );
}

#[tokio::test]
async fn the_federation_limit_counts_each_address_before_any_token_is_read() {
    let limits = LIMITS.replace("federation=100000/1m", "federation=3/1m");
    let (a, b, _c, _dir) = mesh(TestBackend::Sqlite, &[("HIVE_RATE_LIMITS", &limits)]).await;
    let shared = agent(&b, "shared", "federation").await;
    let path = agent_path(&shared);
    for _ in 0..3 {
        let (status, _) =
            direct(&b, &path, &[("x-hive-federation-jwt", "x.y.z")], &send("l")).await;
        assert_eq!(status, 401);
    }
    let response = b
        .server
        .client
        .request(Method::POST, &path)
        .header("x-hive-federation-jwt", a.mint(b.origin()))
        .json(&send("l"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "even a good token waits its turn");
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_peer_rotates_its_key_without_a_gap() {
    // B pins A's current key and the one A is moving to.
    let next = hive_crypto::random_token_hex().unwrap();
    hive_testkit::capture::canary(&next);
    let next_key = Ed25519Seed::parse(&next).unwrap().public_key_text();
    let (a, b, _c, _dir) = mesh_pinning(TestBackend::Sqlite, &[], Some(&next_key)).await;
    let shared = agent(&b, "shared", "federation").await;
    let path = agent_path(&shared);
    let header_of = |seed: &str| {
        json!({"alg": "EdDSA", "typ": "hive-federation+jwt",
               "kid": Ed25519Seed::parse(seed).unwrap().kid()})
    };
    for seed in [a.seed.as_str(), next.as_str()] {
        let token = ed25519_signed(seed, &header_of(seed), &claims_for(&a, &b, &[]));
        let (status, body) =
            direct(&b, &path, &[("x-hive-federation-jwt", &token)], &send("k")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["result"].is_object(), "{body}");
    }
    // A key that is neither is still refused.
    let stranger = hive_crypto::random_token_hex().unwrap();
    let token = ed25519_signed(&stranger, &header_of(&stranger), &claims_for(&a, &b, &[]));
    let (status, _) = direct(&b, &path, &[("x-hive-federation-jwt", &token)], &send("k")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_peer_that_cannot_be_reached_is_a_gateway_error_and_is_recorded() {
    // A peer that accepts connections and never answers, one whose port is closed, and one the
    // egress guard refuses (a private address nobody allowlisted).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_origin = origin_of(&silent);
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let closed_origin = origin_of(&reserve_listener("127.0.0.1").await);
    let refused_origin = "http://127.0.0.9";
    let peers = format!("{silent_origin},{closed_origin},{refused_origin}");
    let allowlist = format!("{},{}", allow(&silent_origin), allow(&closed_origin));
    let server = identity_builder(
        TestBackend::Sqlite,
        &[
            ("HIVE_RATE_LIMITS", LIMITS),
            ("MESH_FEDERATION_ENABLED", "true"),
            (
                "MESH_FEDERATION_SHARED_SECRET",
                "diyEEr1DiJmQG0zKbizxcYvb-cgGtlJ3zRIp62yEmM0",
            ),
            ("MESH_FEDERATION_PEERS", &peers),
            ("MESH_FEDERATION_PROXY_TIMEOUT_MS", "300"),
            ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", &allowlist),
        ],
    )
    .start()
    .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let node = Node {
        server,
        admin,
        seed: String::new(),
    };

    let (status, body) = proxied(&node, "peerIndex=0", &send("t")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "gateway_timeout");
    let (status, body) = proxied(&node, "peerIndex=1", &send("c")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "bad_gateway");
    let (status, body) = proxied(&node, "peerIndex=2", &send("r")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private"),
        "the guard's reason is given: {body}"
    );
    // Each failed call is on record, with the peer and what went wrong.
    let records = records_of(&node.server, "mesh.federation.proxy_jsonrpc").await;
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r.outcome == hive_store::AuditOutcome::Failure)
    );
    assert_eq!(
        records[2].target.as_deref(),
        Some(&*format!("peer:{refused_origin}"))
    );
    assert!(!records_of(&node.server, "egress.refused").await.is_empty());

    // The probe says which peers answer, and why the others do not.
    let probed = get_json(
        &node.admin,
        &node.server,
        "/api/v1/mesh/federation/status?probe=1",
    )
    .await;
    for (index, reason) in [(1, "connect"), (2, "refused:")] {
        let probe = &probed["peers"][index]["probe"];
        assert_eq!(probe["reachable"], false, "{probed}");
        assert!(
            probe["error"].as_str().unwrap().starts_with(reason),
            "{index}: {probed}"
        );
    }
    held.abort();
}
