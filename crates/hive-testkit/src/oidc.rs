//! An OpenID Connect provider for tests, on 127.0.0.1 over real HTTP: discovery, keys (its own
//! RSA and P-256 keys, generated when it starts), an authorize endpoint that sends the browser
//! back with a code, and a token endpoint that checks the client secret, the redirect URI and
//! the PKCE verifier before it answers an ID token it signs. Each test can make it misbehave
//! ([`Misbehaviour`]) to see Hive refuse what it then sends.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hive_crypto::jwt::test_support::{TestKey, hmac_signed, key_set, unsigned};
use hive_proto::Clock;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Which of its keys the provider signs ID tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKey {
    Rsa,
    Ec,
}

/// How the ID token the provider answers is broken, if at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Forgery {
    /// Signed as it should be.
    #[default]
    None,
    /// Signed by a key that is not published, under the published key's `kid`.
    ForeignSignature,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 keyed with the published RSA public key's bytes.
    Hs256WithPublicKey,
    /// Signed by a key whose `kid` is in no published key set.
    UnknownKid,
}

/// What the provider does wrong for one test.
#[derive(Debug, Clone, Default)]
pub struct Misbehaviour {
    pub forgery: Forgery,
    /// Claims replaced in (or, with `Value::Null`, removed from) every ID token.
    pub claims: BTreeMap<String, Value>,
    /// The authorize endpoint keeps another PKCE challenge than the one it was sent, so the
    /// verifier Hive redeems the code with does not match.
    pub replace_challenge: bool,
    /// The discovery document names another issuer.
    pub discovery_issuer: Option<String>,
    /// The token endpoint's `token_type`.
    pub token_type: Option<String>,
}

impl Misbehaviour {
    /// Tokens broken as `forgery` says.
    pub fn forge(forgery: Forgery) -> Self {
        Self {
            forgery,
            ..Self::default()
        }
    }

    /// Tokens whose claims `pairs` replace (`Value::Null` removes one).
    pub fn with_claims(pairs: &[(&str, Value)]) -> Self {
        Self {
            claims: pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
            ..Self::default()
        }
    }
}

/// The account the provider signs in as.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// More claims (e.g. `groups` for a role mapping).
    pub extra: BTreeMap<String, Value>,
}

impl TestUser {
    pub fn new(subject: &str, email: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            email: Some(email.to_owned()),
            email_verified: true,
            name: Some("Sso User".to_owned()),
            extra: BTreeMap::new(),
        }
    }
}

struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    user: TestUser,
}

struct Keys {
    rsa: TestKey,
    ec: TestKey,
    /// Publishes neither key: a key set for a rogue signer.
    foreign: TestKey,
    rotations: u32,
}

struct Inner {
    issuer: String,
    client_id: String,
    client_secret: String,
    keys: Mutex<Keys>,
    signing: Mutex<SigningKey>,
    user: Mutex<TestUser>,
    misbehaviour: Mutex<Misbehaviour>,
    grants: Mutex<HashMap<String, Grant>>,
    clock: Mutex<Option<Arc<dyn Clock>>>,
    jwks_fetches: AtomicUsize,
    token_requests: AtomicUsize,
    next_code: AtomicUsize,
}

/// A running test provider; stops when dropped.
pub struct TestProvider {
    /// `http://127.0.0.1:<port>`: the issuer, exactly as its documents name it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl TestProvider {
    /// Starts a provider with fresh keys, signing with RSA, for client `hive-test`.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let client_secret = format!("oidc-client-{}", uuid::Uuid::new_v4().simple());
        crate::capture::canary(&client_secret);
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            client_id: "hive-test".to_owned(),
            client_secret: client_secret.clone(),
            keys: Mutex::new(Keys {
                rsa: TestKey::rsa("rsa-0"),
                ec: TestKey::ec("ec-0"),
                foreign: TestKey::rsa("rsa-0"),
                rotations: 0,
            }),
            signing: Mutex::new(SigningKey::Rsa),
            user: Mutex::new(TestUser::new("subject-1", "sso@example.com")),
            misbehaviour: Mutex::new(Misbehaviour::default()),
            grants: Mutex::new(HashMap::new()),
            clock: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            next_code: AtomicUsize::new(1),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            issuer,
            client_id: inner.client_id.clone(),
            client_secret,
            inner,
            task,
        }
    }

    /// The variables that configure this provider as `id` in Hive (and let Hive's egress reach
    /// it on loopback).
    pub fn hive_vars(&self, id: &str) -> Vec<(String, String)> {
        let upper = id.to_ascii_uppercase();
        let port = self.issuer.rsplit(':').next().unwrap_or_default();
        vec![
            ("OIDC_PROVIDERS".to_owned(), id.to_owned()),
            (format!("OIDC_{upper}_ISSUER"), self.issuer.clone()),
            (format!("OIDC_{upper}_CLIENT_ID"), self.client_id.clone()),
            (
                format!("OIDC_{upper}_CLIENT_SECRET"),
                self.client_secret.clone(),
            ),
            (
                "HIVE_EGRESS_FETCH_HOST_ALLOWLIST".to_owned(),
                format!("127.0.0.1:{port}"),
            ),
        ]
    }

    /// Issues token times by `clock` (the test server's manual clock) instead of the system's.
    pub fn follow_clock(&self, clock: Arc<dyn Clock>) {
        *lock(&self.inner.clock) = Some(clock);
    }

    pub fn sign_with(&self, key: SigningKey) {
        *lock(&self.inner.signing) = key;
    }

    pub fn set_user(&self, user: TestUser) {
        *lock(&self.inner.user) = user;
    }

    pub fn misbehave(&self, misbehaviour: Misbehaviour) {
        *lock(&self.inner.misbehaviour) = misbehaviour;
    }

    /// Replaces both keys by new ones with new `kid`s; only the new ones are published.
    pub fn rotate_keys(&self) {
        let mut keys = lock(&self.inner.keys);
        keys.rotations += 1;
        keys.rsa = TestKey::rsa(&format!("rsa-{}", keys.rotations));
        keys.ec = TestKey::ec(&format!("ec-{}", keys.rotations));
    }

    /// How often the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How often the token endpoint was called.
    pub fn token_requests(&self) -> usize {
        self.inner.token_requests.load(Ordering::SeqCst)
    }
}

impl Inner {
    fn now(&self) -> OffsetDateTime {
        match &*lock(&self.clock) {
            Some(clock) => clock.now(),
            None => OffsetDateTime::now_utc(),
        }
    }

    fn id_token(&self, grant: &Grant) -> String {
        let now = self.now().unix_timestamp();
        let user = &grant.user;
        let mut claims = json!({
            "iss": self.issuer, "aud": self.client_id, "sub": user.subject,
            "iat": now, "exp": now + 300, "nonce": grant.nonce,
            "email_verified": user.email_verified,
        });
        let object = claims.as_object_mut().expect("an object");
        if let Some(email) = &user.email {
            object.insert("email".into(), json!(email));
        }
        if let Some(name) = &user.name {
            object.insert("name".into(), json!(name));
        }
        object.extend(user.extra.clone());
        let misbehaviour = lock(&self.misbehaviour).clone();
        for (name, value) in &misbehaviour.claims {
            if value.is_null() {
                object.remove(name);
            } else {
                object.insert(name.clone(), value.clone());
            }
        }
        let keys = lock(&self.keys);
        let key = match *lock(&self.signing) {
            SigningKey::Rsa => &keys.rsa,
            SigningKey::Ec => &keys.ec,
        };
        let header = key.header();
        match misbehaviour.forgery {
            Forgery::None => key.sign(&header, &claims),
            Forgery::ForeignSignature => keys.foreign.sign(&keys.rsa.header(), &claims),
            Forgery::AlgNone => unsigned(&json!({"alg": "none", "typ": "JWT"}), &claims),
            Forgery::Hs256WithPublicKey => {
                let header = json!({"alg": "HS256", "typ": "JWT", "kid": keys.rsa.kid});
                hmac_signed(&header, &claims, &keys.rsa.public_key_bytes())
            }
            Forgery::UnknownKid => {
                let stranger = TestKey::rsa("kid-nobody-published");
                stranger.sign(&stranger.header(), &claims)
            }
        }
    }
}

fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": code }).to_string(),
    )
        .into_response()
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Response {
    let issuer = lock(&inner.misbehaviour)
        .discovery_issuer
        .clone()
        .unwrap_or_else(|| inner.issuer.clone());
    let base = &inner.issuer;
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
    .into_response()
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Response {
    inner.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = lock(&inner.keys);
    axum::Json(key_set(&[&keys.rsa, &keys.ec])).into_response()
}

async fn authorize(State(inner): State<Arc<Inner>>, RawQuery(query): RawQuery) -> Response {
    let query = query_map(query.as_deref());
    let param = |name: &str| query.get(name).cloned().unwrap_or_default();
    let fine = param("response_type") == "code"
        && param("client_id") == inner.client_id
        && param("code_challenge_method") == "S256"
        && !param("code_challenge").is_empty()
        && !param("state").is_empty()
        && !param("nonce").is_empty()
        && param("scope").split(' ').any(|scope| scope == "openid");
    if !fine {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let code = format!(
        "code-{}-{}",
        inner.next_code.fetch_add(1, Ordering::SeqCst),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = if lock(&inner.misbehaviour).replace_challenge {
        hive_crypto::pkce::s256_challenge("a verifier Hive never had")
    } else {
        param("code_challenge")
    };
    let grant = Grant {
        redirect_uri: param("redirect_uri"),
        challenge,
        nonce: param("nonce"),
        user: lock(&inner.user).clone(),
    };
    let mut back = url::Url::parse(&grant.redirect_uri).expect("a redirect URI");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &param("state"));
    crate::capture::canary(&code);
    lock(&inner.grants).insert(code, grant);
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// The client's credentials from `Authorization: Basic`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |part: &str| {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

async fn token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    inner.token_requests.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let client_fine = basic_credentials(&headers).is_some_and(|(id, secret)| {
        id == inner.client_id
            && hive_crypto::constant_time_eq(secret.as_bytes(), inner.client_secret.as_bytes())
    });
    if !client_fine {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if field("grant_type") != "authorization_code" {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // A code is good once.
    let Some(grant) = lock(&inner.grants).remove(&field("code")) else {
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier_fine =
        hive_crypto::pkce::s256_challenge(&field("code_verifier")) == grant.challenge;
    if grant.redirect_uri != field("redirect_uri") || !verifier_fine {
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    crate::capture::canary(&field("code_verifier"));
    let token_type = lock(&inner.misbehaviour)
        .token_type
        .clone()
        .unwrap_or_else(|| "Bearer".to_owned());
    let (access_token, id_token) = (
        format!("access-{}", uuid::Uuid::new_v4().simple()),
        inner.id_token(&grant),
    );
    crate::capture::canary(&access_token);
    crate::capture::canary(&id_token);
    axum::Json(json!({
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}
