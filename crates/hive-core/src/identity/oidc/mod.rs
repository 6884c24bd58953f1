//! Single sign-on with OpenID Connect: the authorization code flow with PKCE (S256), `state`
//! and `nonce`, for the providers of `OIDC_PROVIDERS`.
//!
//! [`Oidc::start`] keeps the flow's secrets server-side (a challenge row, 10 minutes, single
//! use, found by the hash of `state`) and binds the flow to the browser that started it: the
//! row holds the hash of a random handle the server puts in a short-lived cookie, and the
//! callback must present both `state` and that cookie (no login CSRF). [`Oidc::callback`]
//! redeems the code at the token endpoint (through the egress guard, redirects off), verifies
//! the ID token ([`hive_crypto::jwt`]: signature against the provider's keys, `iss`, `aud`,
//! `exp`, `nonce`…), finds or links or creates the account ([`accounts`]) and opens a session
//! like a password login (subject to the same second-factor policy).
//!
//! Every refused callback is audited as `auth.oidc.login` with its reason and answers the same
//! error. Nothing here logs or records the client secret, the code, a token or the verifier.

mod accounts;
pub mod discovery;

pub use accounts::mapped_role;

use crate::identity::{Identity, IdentityError, LoginMethod, NewSession};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::RequestMeta;
use crate::kernel::config::{Config, OidcProvider};
use crate::kernel::egress::{Egress, Purpose};
use discovery::{DiscoveryError, KeysWanted, ProviderCache};
use hive_crypto::jwt::{self, Expected};
use hive_egress::{CallLimits, EgressRequest};
use hive_proto::SharedClock;
use hive_store::{AuditOutcome, ChallengeRow, Store, StoreError};
use http::{HeaderValue, StatusCode, header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

/// The purpose of the challenge rows of this flow.
pub const CHALLENGE_PURPOSE: &str = "oidc_login";
/// How long a started sign-in may take.
pub const FLOW_TTL: time::Duration = time::Duration::minutes(10);
/// The clock difference allowed for ID token times (SECURITY-RULES: at most 30 s).
pub const LEEWAY_SECONDS: i64 = hive_crypto::jwt::MAX_LEEWAY_SECONDS;
/// The token endpoint: 10 s and 64 KiB.
const TOKEN_LIMITS: CallLimits = CallLimits::new(Duration::from_secs(10), 64 * 1024);
/// The longest authorization code accepted from a browser.
const MAX_CODE_BYTES: usize = 2048;
/// The longest return path kept.
const MAX_RETURN_PATH: usize = 512;

/// Why a sign-in could not go on. The server answers [`OidcError::Refused`] with one body for
/// every reason; the reason itself is in the audit record.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no such single sign-on provider")]
    UnknownProvider,
    #[error("single sign-on failed")]
    Refused,
    #[error("the identity provider cannot be reached")]
    ProviderUnavailable,
    #[error("temporarily unavailable")]
    Unavailable,
}

/// A refusal as the flow sees it, before it is audited.
#[derive(Debug)]
pub(crate) enum Refusal {
    Reason(&'static str),
    /// With the provider's own error code (`error` of its answer), cleaned for the record.
    Provider(&'static str, String),
    /// The database (or the audit log) cannot decide now.
    Unavailable,
}

impl Refusal {
    pub(crate) fn store(error: StoreError) -> Self {
        tracing::warn!(%error, "single sign-on: the store failed");
        Self::Unavailable
    }

    fn provider(reason: &'static str, code: Option<&str>) -> Self {
        let code: String = code
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        Self::Provider(reason, code)
    }

    fn discovery(error: &DiscoveryError) -> Self {
        tracing::warn!(%error, "single sign-on: provider documents unusable");
        Self::Reason(error.reason())
    }
}

/// A provider as the sign-in page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSummary {
    pub id: String,
    pub display_name: String,
}

/// A sign-in just started: send the browser to `authorize_url` with the flow cookie set to
/// `browser_handle`.
pub struct StartedLogin {
    pub authorize_url: String,
    /// 256 random bits as hex; only its hash is stored.
    pub browser_handle: String,
}

/// What the provider sent the browser back with. Its `Debug` hides the code, the state and
/// the flow handle: each is a live credential until used.
#[derive(Clone, Copy, Default)]
pub struct Callback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    /// The provider's `error` (the user declined, the client is not allowed…).
    pub error: Option<&'a str>,
    /// The provider's `iss` (RFC 9207), when it sends one: must be its issuer.
    pub issuer: Option<&'a str>,
    /// The flow cookie the browser presented.
    pub browser_handle: Option<&'a str>,
}

impl std::fmt::Debug for Callback<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |value: Option<&str>| value.map(|_| "<redacted>");
        f.debug_struct("Callback")
            .field("code", &shown(self.code))
            .field("state", &shown(self.state))
            .field("error", &self.error)
            .field("issuer", &self.issuer)
            .field("browser_handle", &shown(self.browser_handle))
            .finish()
    }
}

/// A completed sign-in: the session, and the same-origin path to send the browser to.
pub struct CompletedLogin {
    pub session: NewSession,
    pub return_to: String,
}

/// What the challenge row keeps between start and callback.
#[derive(Serialize, Deserialize)]
struct FlowState {
    provider: String,
    nonce: String,
    verifier: String,
    /// SHA-256 (hex) of the flow cookie's handle.
    browser: String,
    return_to: String,
}

struct Provider {
    config: OidcProvider,
    cache: ProviderCache,
}

/// The single sign-on service: one per process.
pub struct Oidc {
    providers: Vec<Provider>,
    auto_create: bool,
    /// `AUTH_URL` without a trailing slash: redirect URIs start with it.
    base_url: String,
    store: Arc<dyn Store>,
    identity: Arc<Identity>,
    egress: Arc<Egress>,
    clock: SharedClock,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field(
                "providers",
                &self
                    .providers
                    .iter()
                    .map(|p| &p.config.id)
                    .collect::<Vec<_>>(),
            )
            .field("auto_create", &self.auto_create)
            .finish()
    }
}

impl Oidc {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        identity: Arc<Identity>,
        egress: Arc<Egress>,
        clock: SharedClock,
    ) -> Self {
        Self {
            providers: config
                .oidc
                .providers
                .iter()
                .map(|provider| Provider {
                    config: provider.clone(),
                    cache: ProviderCache::new(),
                })
                .collect(),
            auto_create: config.oidc.auto_create,
            base_url: config.auth_url.as_str().trim_end_matches('/').to_owned(),
            store,
            identity,
            egress,
            clock,
        }
    }

    /// The configured providers, in order (no secrets).
    pub fn providers(&self) -> Vec<ProviderSummary> {
        self.providers
            .iter()
            .map(|p| ProviderSummary {
                id: p.config.id.clone(),
                display_name: p.config.display_name.clone(),
            })
            .collect()
    }

    /// The redirect URI to register at the provider `id`.
    pub fn redirect_uri(&self, id: &str) -> String {
        format!("{}/api/v1/auth/oidc/{id}/callback", self.base_url)
    }

    fn provider(&self, id: &str) -> Result<&Provider, OidcError> {
        self.providers
            .iter()
            .find(|p| p.config.id == id)
            .ok_or(OidcError::UnknownProvider)
    }

    fn now(&self) -> OffsetDateTime {
        hive_store::truncate_to_micros(self.clock.now())
    }

    fn purpose(meta: &RequestMeta) -> Purpose {
        Purpose {
            principal: Principal::Anonymous,
            feature: "oidc",
            meta: meta.clone(),
        }
    }

    /// Starts a sign-in at provider `id`. `return_to` is where the browser goes afterwards: a
    /// path on Hive's own origin, else `/`.
    pub async fn start(
        &self,
        id: &str,
        return_to: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<StartedLogin, OidcError> {
        let provider = self.provider(id)?;
        let now = self.now();
        let metadata = match provider
            .cache
            .metadata(&provider.config, &self.egress, &Self::purpose(meta), now)
            .await
        {
            Ok(metadata) => metadata,
            Err(error) => {
                self.refused(id, Refusal::discovery(&error), meta).await;
                return Err(OidcError::ProviderUnavailable);
            }
        };
        let random = || hive_crypto::random_token_hex().map_err(|_| OidcError::Unavailable);
        let (state, nonce, browser_handle) = (random()?, random()?, random()?);
        let verifier = hive_crypto::pkce::new_verifier().map_err(|_| OidcError::Unavailable)?;
        let flow = FlowState {
            provider: id.to_owned(),
            nonce: nonce.clone(),
            verifier: verifier.clone(),
            browser: hive_crypto::sha256_hex(browser_handle.as_bytes()),
            return_to: same_origin_path(&self.base_url, return_to),
        };
        let row = ChallengeRow {
            key_hash: hive_crypto::sha256_hex(state.as_bytes()),
            purpose: CHALLENGE_PURPOSE.to_owned(),
            user_id: None,
            payload: serde_json::to_string(&flow).map_err(|_| OidcError::Unavailable)?,
            created_at: now,
            expires_at: now + FLOW_TTL,
        };
        self.store.challenges().put(&row).await.map_err(|error| {
            tracing::warn!(%error, "single sign-on: the flow state was not stored");
            OidcError::Unavailable
        })?;

        let mut url = metadata.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.config.client_id)
            .append_pair("redirect_uri", &self.redirect_uri(id))
            .append_pair("scope", &provider.config.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair(
                "code_challenge",
                &hive_crypto::pkce::s256_challenge(&verifier),
            )
            .append_pair("code_challenge_method", "S256");
        Ok(StartedLogin {
            authorize_url: url.to_string(),
            browser_handle,
        })
    }

    /// Completes a sign-in at provider `id`. Every refusal is audited and answers
    /// [`OidcError::Refused`].
    pub async fn callback(
        &self,
        id: &str,
        callback: Callback<'_>,
        meta: &RequestMeta,
    ) -> Result<CompletedLogin, OidcError> {
        let provider = self.provider(id)?;
        match self.complete(provider, callback, meta).await {
            Ok(done) => Ok(done),
            Err(Refusal::Unavailable) => Err(OidcError::Unavailable),
            Err(refusal) => {
                self.refused(id, refusal, meta).await;
                Err(OidcError::Refused)
            }
        }
    }

    async fn refused(&self, id: &str, refusal: Refusal, meta: &RequestMeta) {
        let detail = match &refusal {
            Refusal::Reason(reason) => serde_json::json!({ "provider": id, "reason": reason }),
            Refusal::Provider(reason, code) => {
                serde_json::json!({ "provider": id, "reason": reason, "error": code })
            }
            Refusal::Unavailable => serde_json::json!({ "provider": id, "reason": "unavailable" }),
        };
        let entry = AuditEvent {
            principal: Principal::Anonymous,
            action: AuditAction::AuthOidcLogin,
            target: Some(format!("oidc:{id}")),
            outcome: AuditOutcome::Failure,
            detail,
        };
        self.identity.auditor().record_refusal(entry, meta).await;
    }

    async fn complete(
        &self,
        provider: &Provider,
        callback: Callback<'_>,
        meta: &RequestMeta,
    ) -> Result<CompletedLogin, Refusal> {
        let state = callback
            .state
            .filter(|state| !state.is_empty() && state.len() <= 256)
            .ok_or(Refusal::Reason("missing_state"))?;
        let now = self.now();
        // Taken (deleted) whatever follows: a state is good for one callback only.
        let row = self
            .store
            .challenges()
            .take(
                CHALLENGE_PURPOSE,
                &hive_crypto::sha256_hex(state.as_bytes()),
                now,
            )
            .await
            .map_err(Refusal::store)?
            .ok_or(Refusal::Reason("unknown_state"))?;
        let flow: FlowState =
            serde_json::from_str(&row.payload).map_err(|_| Refusal::Reason("unknown_state"))?;
        if flow.provider != provider.config.id {
            return Err(Refusal::Reason("wrong_provider"));
        }
        let browser = callback
            .browser_handle
            .ok_or(Refusal::Reason("missing_flow_cookie"))?;
        let presented = hive_crypto::sha256_hex(browser.as_bytes());
        if !hive_crypto::constant_time_eq(presented.as_bytes(), flow.browser.as_bytes()) {
            return Err(Refusal::Reason("flow_cookie_mismatch"));
        }
        if callback
            .issuer
            .is_some_and(|iss| iss != provider.config.issuer)
        {
            return Err(Refusal::Reason("wrong_iss_parameter"));
        }
        if let Some(error) = callback.error {
            return Err(Refusal::provider("provider_error", Some(error)));
        }
        let code = callback
            .code
            .filter(|code| !code.is_empty() && code.len() <= MAX_CODE_BYTES)
            .ok_or(Refusal::Reason("missing_code"))?;

        let purpose = Self::purpose(meta);
        let config = &provider.config;
        let metadata = provider
            .cache
            .metadata(config, &self.egress, &purpose, now)
            .await
            .map_err(|error| Refusal::discovery(&error))?;
        let id_token = self
            .redeem(config, &metadata, code, &flow.verifier, &purpose)
            .await?;

        let header = jwt::read_header(&id_token).map_err(|r| Refusal::Reason(r.reason()))?;
        let mut keys = provider
            .cache
            .keys(&metadata, KeysWanted::Current, &self.egress, &purpose, now)
            .await
            .map_err(|error| Refusal::discovery(&error))?;
        if !keys.contains(&header.kid) {
            keys = provider
                .cache
                .keys(
                    &metadata,
                    KeysWanted::Containing,
                    &self.egress,
                    &purpose,
                    now,
                )
                .await
                .map_err(|error| Refusal::discovery(&error))?;
        }
        let expected = Expected {
            issuer: &config.issuer,
            client_id: &config.client_id,
            nonce: &flow.nonce,
            now: now.unix_timestamp(),
            leeway: LEEWAY_SECONDS,
        };
        let claims = jwt::verify_id_token(&id_token, &keys, &expected)
            .map_err(|rejection| Refusal::Reason(rejection.reason()))?;

        let user = accounts::Resolver {
            store: self.store.as_ref(),
            identity: &self.identity,
            provider: config,
            auto_create: self.auto_create,
            meta,
            now,
        }
        .account(&claims)
        .await?;
        let method = LoginMethod::Oidc {
            provider: config.id.clone(),
        };
        let session = self
            .identity
            .start_session(&user, method, meta)
            .await
            .map_err(|error| {
                if !matches!(error, IdentityError::Unavailable) {
                    tracing::error!(%error, "single sign-on: no session opened");
                }
                Refusal::Unavailable
            })?;
        Ok(CompletedLogin {
            session,
            return_to: flow.return_to,
        })
    }

    /// Redeems `code` at the token endpoint and answers the ID token.
    async fn redeem(
        &self,
        config: &OidcProvider,
        metadata: &discovery::Metadata,
        code: &str,
        verifier: &str,
        purpose: &Purpose,
    ) -> Result<String, Refusal> {
        let secret = config.client_secret.expose_secret();
        let redirect_uri = self.redirect_uri(&config.id);
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = EgressRequest::post(metadata.token_endpoint.as_str())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .without_redirects();
        if metadata.secret_in_body {
            fields.extend([
                ("client_id", config.client_id.as_str()),
                ("client_secret", secret),
            ]);
        } else {
            request = request.header(header::AUTHORIZATION, basic_credentials(config)?);
        }
        // Built before the await: the serializer is not `Send`.
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .egress
            .send(request.body(body), &TOKEN_LIMITS, purpose)
            .await
            .map_err(|error| {
                tracing::warn!(kind = error.kind(), "single sign-on: token endpoint failed");
                Refusal::Reason("provider_unreachable")
            })?;
        let status = response.status();
        let json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            });
        let body = response
            .bytes()
            .await
            .map_err(|_| Refusal::Reason("provider_unreachable"))?;
        let answer: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if status != StatusCode::OK {
            let error = answer
                .as_ref()
                .and_then(|a| a.get("error"))
                .and_then(|e| e.as_str());
            return Err(Refusal::provider("token_endpoint_refused", error));
        }
        let answer = answer
            .filter(|_| json)
            .ok_or(Refusal::Reason("token_response_invalid"))?;
        let bearer = answer
            .get("token_type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
        if !bearer {
            return Err(Refusal::Reason("token_response_invalid"));
        }
        answer
            .get("id_token")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or(Refusal::Reason("no_id_token"))
    }
}

/// A path (with its query) on the origin of `base_url` for `requested`, else `/`: a return
/// address can never send the browser elsewhere.
fn same_origin_path(base_url: &str, requested: Option<&str>) -> String {
    let fallback = || "/".to_owned();
    let Some(requested) = requested else {
        return fallback();
    };
    let plain_path = requested.starts_with('/')
        && !requested.starts_with("//")
        && !requested.contains('\\')
        && requested.len() <= MAX_RETURN_PATH
        && !requested.chars().any(char::is_control);
    let Ok(base) = Url::parse(base_url) else {
        return fallback();
    };
    match base.join(requested) {
        // Checked again after the join: dot segments (`/.//host`, `/a/..//host`) normalise to
        // a path starting with `//`, which a browser reads as another host.
        Ok(url)
            if plain_path
                && url.origin() == base.origin()
                && !url.path().starts_with("//")
                && !url.path().contains('\\') =>
        {
            match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            }
        }
        _ => fallback(),
    }
}

/// `Basic base64(urlencode(client_id) ":" urlencode(client_secret))` (RFC 6749 2.3.1).
fn basic_credentials(config: &OidcProvider) -> Result<HeaderValue, Refusal> {
    use base64::Engine;
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!(
        "{}:{}",
        encode(&config.client_id),
        encode(config.client_secret.expose_secret())
    );
    let mut value = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
    .map_err(|_| Refusal::Reason("client_secret_unusable"))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests;
