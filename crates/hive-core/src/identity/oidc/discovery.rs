//! What Hive learns from a provider: its discovery document and its signature keys, fetched
//! only through the egress guard, without following redirects, under size and time caps, and
//! cached. Keys are fetched again when a token names a key not in the cache, at most once a
//! minute, so that tokens with made-up `kid`s cannot make Hive hammer the provider.

use crate::kernel::config::OidcProvider;
use crate::kernel::egress::{Egress, Purpose};
use hive_crypto::jwt::{KeySet, SigningAlg};
use hive_egress::{CallLimits, EgressRequest};
use http::{StatusCode, header};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;

/// Discovery documents and key sets: 10 s and 256 KiB each.
const DOCUMENT_LIMITS: CallLimits = CallLimits::new(Duration::from_secs(10), 256 * 1024);
/// A discovery document is used this long before it is fetched again.
const DISCOVERY_MAX_AGE: time::Duration = time::Duration::hours(24);
/// Keys are fetched again after this long even when every `kid` is known (a provider that
/// withdrew a key is believed within the hour).
const KEYS_MAX_AGE: time::Duration = time::Duration::hours(1);
/// The least time between two fetches of the keys for unknown `kid`s.
pub(super) const KEYS_REFRESH_INTERVAL: time::Duration = time::Duration::seconds(60);

/// Why a provider's documents could not be had. Never holds a document's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the provider could not be reached ({0})")]
    Unreachable(String),
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    #[error("the discovery document is not usable: {0}")]
    Document(&'static str),
    #[error("the key set is not usable: {0}")]
    Keys(String),
}

impl DiscoveryError {
    /// A snake_case name for audit records.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "provider_unreachable",
            Self::Status(_) => "provider_error_status",
            Self::Document(_) => "discovery_invalid",
            Self::Keys(_) => "jwks_invalid",
        }
    }
}

/// The parts of a discovery document Hive uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    /// Those of RS256 and ES256 the provider signs ID tokens with.
    pub signing_algs: Vec<SigningAlg>,
    /// `client_secret_basic` unless the provider offers only `client_secret_post`.
    pub secret_in_body: bool,
}

/// Reads a discovery document for `provider`: its `issuer` must be the configured one, exactly
/// (OIDC Discovery 4.3), and its endpoints must be https (or http when the issuer is).
pub fn parse_metadata(
    document: &[u8],
    provider: &OidcProvider,
) -> Result<Metadata, DiscoveryError> {
    let value: Value =
        serde_json::from_slice(document).map_err(|_| DiscoveryError::Document("not JSON"))?;
    let text = |name: &str| value.get(name).and_then(Value::as_str);
    let list = |name: &str| -> Option<Vec<&str>> {
        value
            .get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
    };
    if text("issuer") != Some(provider.issuer.as_str()) {
        return Err(DiscoveryError::Document(
            "its issuer is not the configured issuer",
        ));
    }
    let endpoint = |name: &'static str| -> Result<Url, DiscoveryError> {
        let url =
            text(name)
                .and_then(|raw| Url::parse(raw).ok())
                .ok_or(DiscoveryError::Document(
                    "an endpoint is missing or not a URL",
                ))?;
        let scheme_fine = url.scheme() == "https"
            || (url.scheme() == "http" && provider.issuer_url.scheme() == "http");
        if !scheme_fine || url.fragment().is_some() || !url.username().is_empty() {
            return Err(DiscoveryError::Document(
                "an endpoint is not an https URL without credentials or fragment",
            ));
        }
        Ok(url)
    };
    let signing_algs: Vec<SigningAlg> = list("id_token_signing_alg_values_supported")
        .ok_or(DiscoveryError::Document(
            "id_token_signing_alg_values_supported is missing",
        ))?
        .into_iter()
        .filter_map(SigningAlg::from_name)
        .collect();
    if signing_algs.is_empty() {
        return Err(DiscoveryError::Document(
            "the provider signs ID tokens with neither RS256 nor ES256",
        ));
    }
    if list("response_types_supported").is_some_and(|types| !types.contains(&"code")) {
        return Err(DiscoveryError::Document(
            "the provider does not offer the authorization code flow",
        ));
    }
    if list("code_challenge_methods_supported").is_some_and(|methods| !methods.contains(&"S256")) {
        return Err(DiscoveryError::Document(
            "the provider does not offer PKCE S256",
        ));
    }
    let secret_in_body = match list("token_endpoint_auth_methods_supported") {
        None => false,
        Some(methods) if methods.contains(&"client_secret_basic") => false,
        Some(methods) if methods.contains(&"client_secret_post") => true,
        Some(_) => {
            return Err(DiscoveryError::Document(
                "the provider offers neither client_secret_basic nor client_secret_post",
            ));
        }
    };
    Ok(Metadata {
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
        signing_algs,
        secret_in_body,
    })
}

#[derive(Default)]
struct Cached {
    metadata: Option<(Arc<Metadata>, OffsetDateTime)>,
    keys: Option<(Arc<KeySet>, OffsetDateTime)>,
}

/// One provider's documents, fetched once and shared (the lock makes concurrent sign-ins wait
/// for one fetch instead of each making its own).
pub(super) struct ProviderCache {
    cached: Mutex<Cached>,
}

impl std::fmt::Debug for ProviderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderCache")
    }
}

/// Which key set a caller needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeysWanted {
    /// The cached one, unless it is missing or old.
    Current,
    /// A fresh one, because a token names a key the cached one lacks (rate-limited).
    Containing,
}

impl ProviderCache {
    pub(super) fn new() -> Self {
        Self {
            cached: Mutex::new(Cached::default()),
        }
    }

    pub(super) async fn metadata(
        &self,
        provider: &OidcProvider,
        egress: &Egress,
        purpose: &Purpose,
        now: OffsetDateTime,
    ) -> Result<Arc<Metadata>, DiscoveryError> {
        let mut cached = self.cached.lock().await;
        if let Some((metadata, at)) = &cached.metadata
            && now - *at < DISCOVERY_MAX_AGE
        {
            return Ok(Arc::clone(metadata));
        }
        let url = discovery_url(&provider.issuer_url);
        let document = fetch(egress, url.as_str(), purpose).await?;
        let metadata = Arc::new(parse_metadata(&document, provider)?);
        cached.metadata = Some((Arc::clone(&metadata), now));
        Ok(metadata)
    }

    /// The provider's key set; with [`KeysWanted::Containing`] fetched again unless it was
    /// fetched less than a minute ago.
    pub(super) async fn keys(
        &self,
        metadata: &Metadata,
        wanted: KeysWanted,
        egress: &Egress,
        purpose: &Purpose,
        now: OffsetDateTime,
    ) -> Result<Arc<KeySet>, DiscoveryError> {
        let mut cached = self.cached.lock().await;
        if let Some((keys, at)) = &cached.keys {
            let age = now - *at;
            let fresh_enough = match wanted {
                KeysWanted::Current => age < KEYS_MAX_AGE,
                KeysWanted::Containing => age < KEYS_REFRESH_INTERVAL,
            };
            if fresh_enough {
                return Ok(Arc::clone(keys));
            }
        }
        let document = fetch(egress, metadata.jwks_uri.as_str(), purpose).await?;
        let keys = KeySet::parse(&document, &metadata.signing_algs)
            .map_err(|error| DiscoveryError::Keys(error.to_string()))?;
        tracing::info!(
            keys = keys.len(),
            "fetched an OpenID Connect provider's keys"
        );
        let keys = Arc::new(keys);
        cached.keys = Some((Arc::clone(&keys), now));
        Ok(keys)
    }
}

/// `<issuer>/.well-known/openid-configuration` (OIDC Discovery 4: appended to the issuer's
/// path, a trailing slash of the issuer dropped).
pub fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url
}

/// GETs a JSON document through the guard: no redirect followed, 200 only.
async fn fetch(egress: &Egress, url: &str, purpose: &Purpose) -> Result<Vec<u8>, DiscoveryError> {
    let request = EgressRequest::get(url)
        .header(
            header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        )
        .without_redirects();
    let response = egress
        .send(request, &DOCUMENT_LIMITS, purpose)
        .await
        .map_err(|error| DiscoveryError::Unreachable(error.kind().to_owned()))?;
    if response.status() != StatusCode::OK {
        return Err(DiscoveryError::Status(response.status().as_u16()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|error| DiscoveryError::Unreachable(error.kind().to_owned()))?;
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use serde_json::json;

    fn provider(issuer: &str) -> OidcProvider {
        OidcProvider {
            id: "corp".into(),
            display_name: "Corp".into(),
            issuer: issuer.into(),
            issuer_url: Url::parse(issuer).unwrap(),
            client_id: "hive".into(),
            client_secret: SecretString::from("s".to_owned()),
            scopes: vec!["openid".into()],
            role_claim: None,
            role_map: vec![],
            default_role: hive_proto::Role::Viewer,
        }
    }

    fn document(issuer: &str) -> Value {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
            "response_types_supported": ["code", "id_token"],
            "code_challenge_methods_supported": ["plain", "S256"],
        })
    }

    fn parse(value: &Value, provider: &OidcProvider) -> Result<Metadata, DiscoveryError> {
        parse_metadata(value.to_string().as_bytes(), provider)
    }

    #[test]
    fn a_document_gives_endpoints_and_only_accepted_algorithms() {
        let issuer = "https://login.example.com/realms/corp";
        let metadata = parse(&document(issuer), &provider(issuer)).unwrap();
        assert_eq!(
            metadata.signing_algs,
            [SigningAlg::Rs256],
            "HS256 and none dropped"
        );
        assert_eq!(metadata.token_endpoint.as_str(), format!("{issuer}/token"));
        assert!(!metadata.secret_in_body);
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        let issuer = "https://login.example.com";
        for other in [
            "https://login.example.com/",
            "https://LOGIN.example.com",
            "https://evil.example.com",
        ] {
            let mut doc = document(issuer);
            doc["issuer"] = json!(other);
            assert!(parse(&doc, &provider(issuer)).is_err(), "{other}");
        }
        let mut doc = document(issuer);
        doc.as_object_mut().unwrap().remove("issuer");
        assert!(parse(&doc, &provider(issuer)).is_err());
    }

    #[test]
    fn unusable_documents_are_refused() {
        let issuer = "https://login.example.com";
        let broken: [(&str, Value); 6] = [
            (
                "id_token_signing_alg_values_supported",
                json!(["HS256", "none"]),
            ),
            ("id_token_signing_alg_values_supported", Value::Null),
            ("code_challenge_methods_supported", json!(["plain"])),
            ("response_types_supported", json!(["id_token"])),
            ("token_endpoint", json!("http://login.example.com/token")),
            (
                "token_endpoint_auth_methods_supported",
                json!(["private_key_jwt"]),
            ),
        ];
        for (member, value) in broken {
            let mut doc = document(issuer);
            doc[member] = value.clone();
            assert!(parse(&doc, &provider(issuer)).is_err(), "{member}={value}");
        }
        assert!(parse_metadata(b"not json", &provider(issuer)).is_err());
        let mut post = document(issuer);
        post["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
        assert!(parse(&post, &provider(issuer)).unwrap().secret_in_body);
    }

    #[test]
    fn the_discovery_url_is_under_the_issuer() {
        for (issuer, url) in [
            (
                "https://login.example.com",
                "https://login.example.com/.well-known/openid-configuration",
            ),
            (
                "https://login.example.com/realms/corp/",
                "https://login.example.com/realms/corp/.well-known/openid-configuration",
            ),
        ] {
            assert_eq!(discovery_url(&Url::parse(issuer).unwrap()).as_str(), url);
        }
    }
}
