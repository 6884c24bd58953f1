//! Accounts and sessions for the identity tests, over real HTTP.

use hive_testkit::{TestBackend, TestServer, TestServerBuilder};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

pub const SETUP_TOKEN: &str = "Kq7vT2mXw9Lp4Rz8Bn3Hs6Jd1Fg5Yc0A";
pub const INTERNAL_TOKEN: &str = "Zt4Nw8Qe2Rv6Ym1Kp9Xs3Lb7Hd5Gf0Jc";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub use hive_testkit::TEST_PASSWORD as PASSWORD;

/// A server with known setup and internal tokens and rate limits out of the tests' way.
pub async fn identity_server(backend: TestBackend) -> TestServer {
    identity_server_with(backend, &[]).await
}

pub async fn identity_server_with(backend: TestBackend, vars: &[(&str, &str)]) -> TestServer {
    identity_builder(backend, vars).start().await
}

/// The builder of [`identity_server_with`], for tests that change more than variables.
pub fn identity_builder(backend: TestBackend, vars: &[(&str, &str)]) -> TestServerBuilder {
    hive_testkit::capture::canary(PASSWORD);
    let mut builder = TestServer::builder(backend)
        .var("HIVE_SETUP_TOKEN", SETUP_TOKEN)
        .var("HIVE_INTERNAL_TOKEN", INTERNAL_TOKEN)
        .var(
            "HIVE_RATE_LIMITS",
            "login=10000/1m,sso=10000/1m,register=10000/1m,setup=10000/1m,api=100000/1m",
        );
    for (name, value) in vars {
        builder = builder.var(name, value);
    }
    builder
}

/// A signed-in browser: its session cookie and the origin it sends writes from.
#[derive(Debug, Clone)]
pub struct Browser {
    pub cookie: String,
    pub origin: String,
}

impl Browser {
    pub fn request(&self, server: &TestServer, method: Method, path: &str) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_str(&self.cookie).unwrap());
        headers.insert("origin", HeaderValue::from_str(&self.origin).unwrap());
        server.client.request(method, path).headers(headers)
    }

    pub async fn send(
        &self,
        server: &TestServer,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let request = self.request(server, method, path);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap()
    }

    pub async fn me(&self, server: &TestServer) -> Response {
        self.send(server, Method::GET, "/api/v1/auth/me", None)
            .await
    }
}

/// Creates the first admin through the API.
pub async fn setup_admin(server: &TestServer) -> Value {
    let response = server
        .client
        .request(Method::POST, "/api/v1/setup")
        .header("x-hive-setup-token", SETUP_TOKEN)
        .json(&json!({ "email": ADMIN_EMAIL, "displayName": "Admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

pub async fn try_login(server: &TestServer, email: &str, password: &str) -> Response {
    server
        .client
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
}

/// The `name=value` part of the response's session cookie.
pub fn session_cookie(response: &Response) -> String {
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    if let Some((_, token)) = cookie.split_once('=') {
        hive_testkit::capture::canary(token);
    }
    cookie
}

pub async fn login(server: &TestServer, email: &str, password: &str) -> Browser {
    let response = try_login(server, email, password).await;
    assert_eq!(response.status(), 200, "login of {email}");
    Browser {
        cookie: session_cookie(&response),
        origin: server.origin.clone(),
    }
}

/// The one-time token of an invitation or reset link (it rides in the `#token=` fragment),
/// registered as a canary of the leak check.
pub fn link_token(link: &Value) -> String {
    let token = link["url"]
        .as_str()
        .and_then(|url| url.split("#token=").nth(1))
        .expect("a link with a #token= fragment")
        .to_owned();
    hive_testkit::capture::canary(&token);
    token
}

/// Invites `email` with `role` as `admin`, accepts the invitation and signs the new user in.
pub async fn add_user(
    server: &TestServer,
    admin: &Browser,
    email: &str,
    role: &str,
) -> (Value, Browser) {
    let invite = admin
        .send(
            server,
            Method::POST,
            "/api/v1/users/invitations",
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(invite.status(), 201);
    let link: Value = invite.json().await.unwrap();
    let token = link_token(&link);
    let accepted = server
        .client
        .post_json(
            "/api/v1/auth/invitation/accept",
            &json!({ "token": token, "displayName": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(accepted.status(), 201);
    let user: Value = accepted.json().await.unwrap();
    (user, login(server, email, PASSWORD).await)
}

/// A token made by `browser` (whose session is fresh).
pub async fn create_token(server: &TestServer, browser: &Browser, body: Value) -> Value {
    let response = browser
        .send(server, Method::POST, "/api/v1/tokens", Some(body))
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    hive_testkit::capture::canary(created["token"].as_str().unwrap_or_default());
    created
}

pub async fn with_bearer(server: &TestServer, token: &str, method: Method, path: &str) -> Response {
    server
        .client
        .request(method, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Ten minutes after the last password check, `method path body` is refused with
/// `reauthentication_required`; after `POST /api/v1/auth/reauthenticate` it may go ahead.
pub async fn assert_needs_reauthentication(
    server: &TestServer,
    browser: &Browser,
    method: Method,
    path: &str,
    body: Value,
) {
    server.clock.advance(time::Duration::minutes(11));
    let stale = browser.send(server, method, path, Some(body)).await;
    assert_eq!(stale.status(), 403);
    let error: Value = stale.json().await.unwrap();
    assert_eq!(error["error"]["code"], "reauthentication_required");
    let wrong = json!({ "password": "not my password" });
    let refused = browser
        .send(
            server,
            Method::POST,
            "/api/v1/auth/reauthenticate",
            Some(wrong),
        )
        .await;
    assert_eq!(refused.status(), 401);
    // Past the delay the failure imposed on the account.
    server.clock.advance(time::Duration::seconds(1));
    let right = json!({ "password": PASSWORD });
    let renewed = browser
        .send(
            server,
            Method::POST,
            "/api/v1/auth/reauthenticate",
            Some(right),
        )
        .await;
    assert_eq!(renewed.status(), 204);
}

/// The chained audit records of `action`, oldest first.
pub async fn records_of(server: &TestServer, action: &str) -> Vec<hive_store::AuditRecord> {
    let all = server
        .hive
        .store
        .audit()
        .chain_after(0, 1_000)
        .await
        .unwrap();
    all.into_iter().filter(|r| r.action == action).collect()
}

/// Registers a passkey of `authenticator` for `browser`'s user (whose session is fresh) and
/// answers its view.
pub async fn register_passkey(
    server: &TestServer,
    browser: &Browser,
    authenticator: &mut hive_testkit::passkey::SoftAuthenticator,
) -> Value {
    let start = browser
        .send(
            server,
            Method::POST,
            "/api/v1/auth/passkeys/register/start",
            None,
        )
        .await;
    assert_eq!(start.status(), 200);
    let ceremony: Value = start.json().await.unwrap();
    let id = ceremony["ceremonyId"].as_str().unwrap();
    hive_testkit::capture::canary(id);
    let credential = authenticator.register(&ceremony["publicKey"]).unwrap();
    let body = json!({ "ceremonyId": id, "credential": credential, "name": "Laptop" });
    let finish = browser
        .send(
            server,
            Method::POST,
            "/api/v1/auth/passkeys/register/finish",
            Some(body),
        )
        .await;
    assert_eq!(finish.status(), 201);
    finish.json().await.unwrap()
}

/// The recovery codes in an answer, registered as canaries of the leak check.
pub fn recovery_codes(body: &Value) -> Vec<String> {
    let codes: Vec<String> = body["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    for code in &codes {
        hive_testkit::capture::canary(code);
    }
    codes
}

/// Whether this run has PostgreSQL and Redis, which two replicas share.
pub fn replicas_possible() -> bool {
    hive_testkit::backends().contains(&TestBackend::Postgres) && hive_testkit::redis_url().is_some()
}

/// Two replicas of one installation: A owns the scratch database; B joins it with the same
/// keys, the same Redis and the same key prefix. Needs [`replicas_possible`].
pub async fn two_replicas() -> (TestServer, TestServer) {
    const SHARED: [(&str, &str); 2] = [
        (
            "ENCRYPTION_KEY",
            "3c1f9a7e5b2d4068a1c3e5f7092b4d6f8a0c2e4f6b8d0a2c4e6f8b0d2a4c6e8f",
        ),
        ("AUTH_SECRET", "Pw7xK2nR9vT4mB6cL1zQ8sD3fG5hJ0yA"),
    ];
    let a = identity_server_with(TestBackend::Postgres, &SHARED).await;
    let database = match &a.hive.config.database.url {
        hive_core::kernel::config::DatabaseUrl::Postgres(url) => {
            secrecy::ExposeSecret::expose_secret(url).to_owned()
        }
        other => panic!("{other:?}"),
    };
    let prefix = a.hive.config.redis_key_prefix.clone();
    let redis = hive_testkit::redis_url().unwrap();
    let mut joined: Vec<(&str, &str)> = SHARED.to_vec();
    joined.extend([
        ("DATABASE_URL", database.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("HIVE_REDIS_KEY_PREFIX", prefix.as_str()),
    ]);
    let b = identity_server_with(TestBackend::Sqlite, &joined).await;
    assert_eq!(b.hive.store.backend(), hive_store::Backend::Postgres);
    (a, b)
}
