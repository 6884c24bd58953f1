//! The mesh: federation with peer instances (`MESH_FEDERATION_*`), the anonymous public tier
//! of the JSON-RPC endpoint (`A2A_PUBLIC_JSONRPC_*`) and the WAN carrier (`NATS_URL`,
//! `MESH_WAN_*`). Everything here is off unless configured, and a half-configured feature
//! stops the process rather than running open.

use super::http::parse_networks;
use super::secret_rules::weakness;
use super::sources::{Sources, invalid, read_secret_file};
use super::{
    ConfigError, FederationConfig, FederationKeyMode, FederationPeer, MAX_KEYS_PER_PEER,
    MeshConfig, NatsConfig, PublicApiKey, PublicTierConfig, WanConfig,
};
use hive_a2a::jsonrpc::{Method, Version};
use hive_crypto::federation::{Ed25519Seed, SharedSecret, parse_public_key};
use hive_crypto::manifest::verify_manifest;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Peers at most: each one is a trust relationship an operator reviews.
const MAX_PEERS: usize = 64;
/// Methods the public tier may allow at most.
const MAX_PUBLIC_METHODS: usize = 32;
/// Public-tier API keys at most.
const MAX_PUBLIC_KEYS: usize = 256;

pub(super) fn parse(
    src: &mut Sources<'_>,
    production: bool,
    own_origin: &str,
    warnings: &mut Vec<String>,
) -> Result<MeshConfig, ConfigError> {
    Ok(MeshConfig {
        federation: federation(src, production, own_origin, warnings)?,
        public_tier: public_tier(src)?,
        wan: wan(src, own_origin)?,
    })
}

fn federation(
    src: &mut Sources<'_>,
    production: bool,
    own_origin: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<FederationConfig>, ConfigError> {
    let enabled = src.boolean("MESH_FEDERATION_ENABLED", false)?;
    let peers_raw = src.value("MESH_FEDERATION_PEERS")?;
    let shared_secret = src.secret("MESH_FEDERATION_SHARED_SECRET")?;
    let seed_file = src.value("MESH_FEDERATION_ED25519_SEED_FILE")?;
    let peer_keys_raw = src.value("MESH_FEDERATION_PEER_KEYS")?;
    let manifest_file = src.value("MESH_FEDERATION_PEER_MANIFEST_FILE")?;
    let manifest_key = src.value("MESH_FEDERATION_MANIFEST_PUBLIC_KEY")?;
    let audience = src.value("MESH_FEDERATION_JWT_AUDIENCE")?;
    let jwt_ttl = src.seconds("MESH_FEDERATION_JWT_TTL_SECONDS", 300, 30, 3600)?;
    let leeway = src.seconds("MESH_FEDERATION_JWT_CLOCK_SKEW_LEEWAY_SECONDS", 30, 0, 300)?;
    let require_audience = src.boolean("MESH_FEDERATION_JWT_REQUIRE_AUDIENCE", true)?;
    let require_jti = src.boolean("MESH_FEDERATION_JWT_REQUIRE_JTI", true)?;
    let allow_legacy_secret = src.boolean("MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET", false)?;
    let proxy_send_secret = src.boolean("MESH_FEDERATION_PROXY_SEND_SECRET", false)?;
    let proxy_timeout = Duration::from_millis(src.integer(
        "MESH_FEDERATION_PROXY_TIMEOUT_MS",
        15_000,
        100,
        120_000,
    )?);
    let inbound_allowlist = match src.value("MESH_FEDERATION_INBOUND_ALLOWLIST")? {
        None => Vec::new(),
        Some(raw) => parse_networks(&raw).ok_or_else(|| {
            invalid(
                "MESH_FEDERATION_INBOUND_ALLOWLIST",
                "comma-separated IP addresses and CIDR ranges (IPv4 or IPv6)",
            )
        })?,
    };
    if !enabled {
        return Ok(None);
    }
    let mut peers = match peers_raw {
        None => Vec::new(),
        Some(raw) => peer_origins(&raw, production, own_origin)?,
    };
    // Refused in every environment: a guessable mesh secret lets anyone act as a peer.
    let shared_key = match &shared_secret {
        None => None,
        Some(secret) => Some(Arc::new(
            SharedSecret::new(secret.expose_secret()).map_err(|why| {
                invalid(
                    "MESH_FEDERATION_SHARED_SECRET",
                    format!(
                        "{why}; generate one with `hive mesh secret` (or `openssl rand -base64 32`)"
                    ),
                )
            })?,
        )),
    };
    let ed25519 = seed_file.is_some();
    if !ed25519 && shared_key.is_none() {
        return Err(no_key());
    }
    if let Some(raw) = peer_keys_raw {
        if !ed25519 {
            return Err(invalid(
                "MESH_FEDERATION_PEER_KEYS",
                "pinned peer keys need MESH_FEDERATION_ED25519_SEED_FILE (Ed25519 mode)",
            ));
        }
        pin_peer_keys(&raw, &mut peers)?;
    }
    let manifest = match (manifest_file, manifest_key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                MANIFEST_FILE,
                "needs MESH_FEDERATION_MANIFEST_PUBLIC_KEY, the operator key that signed it",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                MANIFEST_KEY,
                "needs MESH_FEDERATION_PEER_MANIFEST_FILE, the manifest it signed",
            ));
        }
        (Some(_), Some(_)) if !ed25519 => {
            return Err(invalid(
                MANIFEST_FILE,
                "a peer manifest needs MESH_FEDERATION_ED25519_SEED_FILE (Ed25519 mode)",
            ));
        }
        (Some(path), Some(key)) => {
            let key = parse_public_key(&key).ok().ok_or_else(|| {
                invalid(
                    MANIFEST_KEY,
                    "an Ed25519 public key (32 bytes, base64url without padding)",
                )
            })?;
            Some((path.trim().to_owned(), key))
        }
    };
    if allow_legacy_secret && shared_secret.is_none() {
        return Err(invalid(
            "MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET",
            "needs MESH_FEDERATION_SHARED_SECRET",
        ));
    }
    if proxy_send_secret && shared_secret.is_none() {
        return Err(invalid(
            "MESH_FEDERATION_PROXY_SEND_SECRET",
            "needs MESH_FEDERATION_SHARED_SECRET",
        ));
    }
    if let Some((path, operator_key)) = &manifest {
        pin_manifest_keys(path, operator_key, &mut peers, warnings)?;
    }
    if ed25519 {
        for peer in peers.iter().filter(|peer| peer.public_keys.is_empty()) {
            warnings.push(format!(
                "federation peer {} has no key in MESH_FEDERATION_PEER_KEYS or the peer manifest: it can be called but cannot call in",
                peer.origin
            ));
        }
    }
    if !require_audience {
        warnings.push(
            "MESH_FEDERATION_JWT_REQUIRE_AUDIENCE=false: a token minted for another peer is accepted here".to_owned(),
        );
    }
    if !require_jti {
        warnings.push(
            "MESH_FEDERATION_JWT_REQUIRE_JTI=false: captured federation tokens can be replayed until they expire".to_owned(),
        );
    }
    let audience = match audience.map(|raw| raw.trim().to_owned()) {
        None => None,
        Some(raw) if (1..=255).contains(&raw.len()) && !raw.chars().any(char::is_control) => {
            Some(raw)
        }
        Some(_) => {
            return Err(invalid(
                "MESH_FEDERATION_JWT_AUDIENCE",
                "1 to 255 characters without control characters",
            ));
        }
    };
    // Read last: every other mistake is named before a file is opened.
    let mode = match (seed_file, &shared_key) {
        (Some(path), _) => FederationKeyMode::Ed25519 {
            seed: Arc::new(read_seed(path.trim(), production, warnings)?),
        },
        (None, Some(key)) => FederationKeyMode::SharedSecret(Arc::clone(key)),
        (None, None) => return Err(no_key()),
    };
    Ok(Some(FederationConfig {
        peers,
        mode,
        shared_secret,
        shared_key,
        audience,
        jwt_ttl,
        leeway,
        require_audience,
        require_jti,
        allow_legacy_secret,
        proxy_send_secret,
        proxy_timeout,
        inbound_allowlist,
    }))
}

fn no_key() -> ConfigError {
    invalid(
        "MESH_FEDERATION_ENABLED",
        "federation needs MESH_FEDERATION_ED25519_SEED_FILE (recommended) or MESH_FEDERATION_SHARED_SECRET",
    )
}

/// This instance's Ed25519 seed: 64 hex characters (or base64url) in a file only its owner
/// may read — in production anything looser is refused, elsewhere warned about.
fn read_seed(
    path: &str,
    production: bool,
    warnings: &mut Vec<String>,
) -> Result<Ed25519Seed, ConfigError> {
    const NAME: &str = "MESH_FEDERATION_ED25519_SEED_FILE";
    let text = read_secret_file(NAME, path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| invalid(NAME, format!("cannot read {path}: {}", e.kind())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            let why = format!("{path} may be read by other users (chmod 600 it)");
            if production {
                return Err(invalid(NAME, why));
            }
            warnings.push(format!("{NAME}: {why}"));
        }
    }
    Ed25519Seed::parse(&text).map_err(|_| {
        invalid(
            NAME,
            format!("{path} does not hold an Ed25519 seed (64 hex characters); `hive mesh keygen` writes one"),
        )
    })
}

/// An origin as a peer list names it: `scheme://host[:port]`, nothing else. https, or http
/// outside production (a test mesh on loopback).
fn origin_of(raw: &str, production: bool) -> Option<String> {
    let url = Url::parse(raw.trim()).ok()?;
    let scheme_fine = match url.scheme() {
        "https" => true,
        "http" => !production,
        _ => false,
    };
    let bare = url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && matches!(url.path(), "" | "/");
    if !scheme_fine || !bare || url.host().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn peer_origins(
    raw: &str,
    production: bool,
    own_origin: &str,
) -> Result<Vec<FederationPeer>, ConfigError> {
    const NAME: &str = "MESH_FEDERATION_PEERS";
    let mut peers: Vec<FederationPeer> = Vec::new();
    for item in raw
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let origin = origin_of(item, production).ok_or_else(|| {
            invalid(
                NAME,
                format!(
                    "{item:?} is not an origin: https://host[:port] (http only outside production), no path, query or credentials"
                ),
            )
        })?;
        if origin == own_origin {
            return Err(invalid(
                NAME,
                format!("{origin} is this instance's own origin"),
            ));
        }
        if peers.iter().any(|peer| peer.origin == origin) {
            return Err(invalid(NAME, format!("{origin} is listed twice")));
        }
        peers.push(FederationPeer {
            origin,
            public_keys: Vec::new(),
        });
    }
    if peers.len() > MAX_PEERS {
        return Err(invalid(NAME, format!("at most {MAX_PEERS} peers")));
    }
    Ok(peers)
}

/// `origin=key,…`: each peer's Ed25519 public key (32 bytes, base64url without padding).
fn pin_peer_keys(raw: &str, peers: &mut [FederationPeer]) -> Result<(), ConfigError> {
    const NAME: &str = "MESH_FEDERATION_PEER_KEYS";
    for item in raw
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (origin, key) = item
            .split_once('=')
            .ok_or_else(|| invalid(NAME, "comma-separated origin=public-key pairs"))?;
        let origin = normalize_peer_origin(origin)
            .ok_or_else(|| invalid(NAME, format!("{origin:?} is not an origin")))?;
        let peer = peers
            .iter_mut()
            .find(|peer| peer.origin == origin)
            .ok_or_else(|| invalid(NAME, format!("{origin} is not in MESH_FEDERATION_PEERS")))?;
        let bytes = parse_public_key(key).ok().ok_or_else(|| {
            invalid(
                NAME,
                format!("the key of {origin} is not an Ed25519 public key (32 bytes, base64url)"),
            )
        })?;
        if peer.public_keys.contains(&bytes) {
            return Err(invalid(NAME, format!("{origin} lists the same key twice")));
        }
        pin_key(NAME, peer, bytes)?;
    }
    Ok(())
}

const MANIFEST_FILE: &str = "MESH_FEDERATION_PEER_MANIFEST_FILE";
const MANIFEST_KEY: &str = "MESH_FEDERATION_MANIFEST_PUBLIC_KEY";

/// Pins the keys a peer manifest signed by `operator_key` gives the peers of
/// `MESH_FEDERATION_PEERS`; entries for other origins are ignored with a warning (the manifest
/// may describe a wider mesh). A peer already pinned by `MESH_FEDERATION_PEER_KEYS` to another
/// key stops the process. Expiry is judged by the system clock: configuration is loaded once,
/// before any injected clock exists.
fn pin_manifest_keys(
    path: &str,
    operator_key: &[u8; 32],
    peers: &mut [FederationPeer],
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let text = read_secret_file(MANIFEST_FILE, path)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let manifest = verify_manifest(&text, operator_key, now)
        .map_err(|why| invalid(MANIFEST_FILE, format!("{path}: {why}")))?;
    for entry in &manifest.peers {
        let origin = normalize_peer_origin(&entry.origin).ok_or_else(|| {
            invalid(
                MANIFEST_FILE,
                format!("{path}: {:?} is not an origin", entry.origin),
            )
        })?;
        let Some(peer) = peers.iter_mut().find(|peer| peer.origin == origin) else {
            warnings.push(format!(
                "{MANIFEST_FILE}: {origin} is in the manifest but not in MESH_FEDERATION_PEERS: ignored"
            ));
            continue;
        };
        // Keys of both sources are pinned: a rotation can add the new key in one place
        // while the old one is still in the other.
        if !peer.public_keys.contains(&entry.public_key) {
            pin_key(MANIFEST_FILE, peer, entry.public_key)?;
        }
    }
    Ok(())
}

fn pin_key(variable: &str, peer: &mut FederationPeer, key: [u8; 32]) -> Result<(), ConfigError> {
    if peer.public_keys.len() >= MAX_KEYS_PER_PEER {
        return Err(invalid(
            variable,
            format!(
                "{} would have more than {MAX_KEYS_PER_PEER} keys pinned",
                peer.origin
            ),
        ));
    }
    peer.public_keys.push(key);
    Ok(())
}

/// An origin written as in `MESH_FEDERATION_PEERS` (http allowed), normalised to
/// `scheme://host[:port]`; `None` when it is not one. `hive mesh manifest sign` uses it.
pub fn normalize_peer_origin(raw: &str) -> Option<String> {
    origin_of(raw, false)
}

fn public_tier(src: &mut Sources<'_>) -> Result<Option<PublicTierConfig>, ConfigError> {
    let enabled = src.boolean("A2A_PUBLIC_JSONRPC_ENABLED", false)?;
    let methods_raw = src.value("A2A_PUBLIC_JSONRPC_ALLOWED_METHODS")?;
    let keys_raw = src.secret("A2A_PUBLIC_JSONRPC_API_KEYS")?;
    let max_body_bytes = usize::try_from(src.integer(
        "A2A_PUBLIC_JSONRPC_MAX_BODY_BYTES",
        64 * 1024,
        1024,
        1024 * 1024,
    )?)
    .unwrap_or(64 * 1024);
    if !enabled {
        return Ok(None);
    }
    const METHODS: &str = "A2A_PUBLIC_JSONRPC_ALLOWED_METHODS";
    let allowed_methods = match methods_raw {
        Some(raw) => method_list(METHODS, &raw)?,
        None => Vec::new(),
    };
    if allowed_methods.is_empty() {
        return Err(invalid(
            METHODS,
            "required when A2A_PUBLIC_JSONRPC_ENABLED=true: the methods anonymous callers may use",
        ));
    }
    let api_keys = match keys_raw {
        None => Vec::new(),
        Some(raw) => api_keys(raw.expose_secret())?,
    };
    Ok(Some(PublicTierConfig {
        allowed_methods,
        api_keys,
        max_body_bytes,
    }))
}

/// Method names of either protocol version (`SendMessage` or `message/send`), separated by
/// commas or `|`; at most 32, no repeats.
fn method_list(variable: &str, raw: &str) -> Result<Vec<Method>, ConfigError> {
    let mut methods = Vec::new();
    for name in raw
        .split([',', '|'])
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let method = Method::from_name(name, Version::V1_0)
            .or_else(|| Method::from_name(name, Version::V0_3))
            .ok_or_else(|| invalid(variable, format!("{name:?} is not an A2A method")))?;
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    if methods.len() > MAX_PUBLIC_METHODS {
        return Err(invalid(
            variable,
            format!("at most {MAX_PUBLIC_METHODS} methods"),
        ));
    }
    Ok(methods)
}

/// `name=key[@method|method…],…`. A key is at least 32 characters, or `sha256:<64 hex>` (its
/// hash, so the key itself need not be in the configuration). Only the hash is kept.
fn api_keys(raw: &str) -> Result<Vec<PublicApiKey>, ConfigError> {
    const NAME: &str = "A2A_PUBLIC_JSONRPC_API_KEYS";
    let mut keys: Vec<PublicApiKey> = Vec::new();
    for item in raw
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (name, rest) = item
            .split_once('=')
            .ok_or_else(|| invalid(NAME, "comma-separated name=key[@method|method] entries"))?;
        let name = name.trim();
        let name_fine = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_fine {
            return Err(invalid(
                NAME,
                "a key's name is 1 to 64 of A-Z a-z 0-9 - _ .",
            ));
        }
        if keys.iter().any(|key| key.name == name) {
            return Err(invalid(NAME, format!("the name {name} is used twice")));
        }
        let (key, methods) = match rest.split_once('@') {
            Some((key, methods)) => (key.trim(), Some(method_list(NAME, methods)?)),
            None => (rest.trim(), None),
        };
        let hash = match key.strip_prefix("sha256:") {
            Some(hex_text) => {
                let bytes = hex::decode(hex_text).ok().filter(|b| b.len() == 32);
                bytes.ok_or_else(|| {
                    invalid(
                        NAME,
                        format!("the hash of key {name} is not 64 hex characters"),
                    )
                })?
            }
            None if key.chars().count() >= 32 && weakness(key).is_none() => {
                hive_crypto::sha256(key.as_bytes()).to_vec()
            }
            None => {
                return Err(invalid(
                    NAME,
                    format!("key {name} must be at least 32 random characters, or sha256:<hex>"),
                ));
            }
        };
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| invalid(NAME, format!("key {name} is malformed")))?;
        if keys.iter().any(|known| known.hash == hash) {
            return Err(invalid(NAME, format!("key {name} is the same as another")));
        }
        keys.push(PublicApiKey {
            name: name.to_owned(),
            hash,
            methods,
        });
    }
    if keys.len() > MAX_PUBLIC_KEYS {
        return Err(invalid(NAME, format!("at most {MAX_PUBLIC_KEYS} keys")));
    }
    Ok(keys)
}

fn wan(src: &mut Sources<'_>, own_origin: &str) -> Result<WanConfig, ConfigError> {
    let url = src.secret("NATS_URL")?;
    let stream = src.parsed("MESH_WAN_NATS_STREAM", "HIVE_WAN".to_owned(), |raw| {
        nats_name(raw, false).then(|| raw.to_owned())
    })?;
    let subject = src.parsed(
        "MESH_WAN_NATS_SUBJECT",
        "hive.wan.envelopes".to_owned(),
        |raw| nats_name(raw, true).then(|| raw.to_owned()),
    )?;
    let default_consumer = format!(
        "hive-{}",
        &hive_crypto::sha256_hex(own_origin.as_bytes())[..16]
    );
    let consumer = src.parsed("MESH_WAN_NATS_CONSUMER", default_consumer, |raw| {
        nats_name(raw, false).then(|| raw.to_owned())
    })?;
    let dedup_window = src.seconds("MESH_WAN_DEDUP_WINDOW_SECONDS", 120, 1, 86_400)?;
    let nats = match url {
        None => None,
        Some(url) => {
            let parsed = Url::parse(url.expose_secret().trim()).ok();
            let fine = parsed
                .as_ref()
                .is_some_and(|url| matches!(url.scheme(), "nats" | "tls") && url.host().is_some());
            if !fine {
                return Err(invalid("NATS_URL", "nats://host:port or tls://host:port"));
            }
            Some(NatsConfig {
                url,
                stream,
                subject,
                consumer,
                dedup_window,
            })
        }
    };
    Ok(WanConfig { nats })
}

/// A JetStream stream or consumer name (`A-Z a-z 0-9 - _`), or with `dots` a subject of such
/// tokens separated by dots; 1 to 64 characters.
fn nats_name(raw: &str, dots: bool) -> bool {
    let token_fine = |token: &str| {
        !token.is_empty()
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    };
    (1..=64).contains(&raw.len())
        && if dots {
            raw.split('.').all(token_fine)
        } else {
            token_fine(raw)
        }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, EnvSource, FederationKeyMode};
    use hive_a2a::jsonrpc::Method;
    use hive_crypto::federation::Ed25519Seed;
    use hive_crypto::manifest::{Manifest, ManifestPeer, sign_manifest};

    const SECRET: &str = "psmm_gWvWblqh8yuONVsLLBIbIcwvH_KQP6RRaE77RI";
    const B: &str = "http://127.0.0.3:8080";
    const C: &str = "http://127.0.0.4:8080";

    fn load(pairs: &[(&str, &str)]) -> Result<Config, super::ConfigError> {
        let mut all = vec![("AUTH_URL", "http://127.0.0.2:8080")];
        all.extend_from_slice(pairs);
        Config::load(&EnvSource::from_pairs(all))
    }

    fn federation(pairs: &[(&str, &str)]) -> Result<Config, super::ConfigError> {
        let mut all = vec![("MESH_FEDERATION_ENABLED", "true")];
        all.extend_from_slice(pairs);
        load(&all)
    }

    #[test]
    fn everything_is_off_by_default() {
        let config = load(&[("MESH_FEDERATION_PEERS", B)]).unwrap();
        assert!(config.mesh.federation.is_none());
        assert!(config.mesh.public_tier.is_none());
        assert!(config.mesh.wan.nats.is_none());
    }

    #[test]
    fn a_shared_secret_mesh_loads_with_secure_defaults() {
        let config = federation(&[
            ("MESH_FEDERATION_PEERS", &format!("{B}, {C}/")),
            ("MESH_FEDERATION_SHARED_SECRET", SECRET),
        ])
        .unwrap();
        let fed = config.mesh.federation.unwrap();
        let origins: Vec<&str> = fed.peers.iter().map(|p| p.origin.as_str()).collect();
        assert_eq!(origins, [B, C]);
        assert!(matches!(fed.mode, FederationKeyMode::SharedSecret(_)));
        assert_eq!(fed.audience, None);
        assert_eq!(fed.jwt_ttl.as_secs(), 300);
        assert_eq!(fed.leeway.as_secs(), 30);
        assert!(fed.require_audience && fed.require_jti);
        assert!(!fed.allow_legacy_secret && !fed.proxy_send_secret);
        assert!(fed.inbound_allowlist.is_empty());
    }

    #[test]
    fn passphrase_secrets_are_refused_in_production_and_development() {
        let passphrases = [
            "acme-corp-hive-federation-key-2026",
            "correct horse battery staple mesh",
            "CorrectHorseBatteryStapleMeshAcmeCorp2026Prod",
            "acme-corp-hive-federation-key-2026-prod-mesh",
            "Tr0ub4dor&3-hive-federation-mesh-key-prod",
            // base64 of "correct horse battery staple mesh key"
            "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZSBtZXNoIGtleQ==",
        ];
        let generated = hive_crypto::federation::generate_shared_secret().unwrap();
        let hex = hive_crypto::random_token_hex().unwrap();
        let production = |secret: &str| {
            Config::load(&EnvSource::from_pairs(vec![
                ("HIVE_ENV", "production"),
                ("AUTH_URL", "https://hive.example.com"),
                ("AUTH_SECRET", "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ"),
                (
                    "ENCRYPTION_KEY",
                    "8f3a1c9e5b7d2046f1e8a3c5b9d7e2f40a6c8e1b3d5f7092a4c6e8b0d2f41357",
                ),
                ("MESH_FEDERATION_ENABLED", "true"),
                ("MESH_FEDERATION_PEERS", "https://b.example"),
                ("MESH_FEDERATION_SHARED_SECRET", secret),
            ]))
        };
        let development = |secret: &str| {
            federation(&[
                ("MESH_FEDERATION_PEERS", B),
                ("MESH_FEDERATION_SHARED_SECRET", secret),
            ])
        };
        for passphrase in passphrases {
            for result in [production(passphrase), development(passphrase)] {
                let error = result.unwrap_err().to_string();
                assert!(error.contains("MESH_FEDERATION_SHARED_SECRET"), "{error}");
                assert!(error.contains("hive mesh secret"), "{error}");
                assert!(!error.contains(passphrase), "echoed: {error}");
            }
        }
        for secret in [generated.as_str(), hex.as_str(), SECRET] {
            production(secret).unwrap();
            development(secret).unwrap();
        }
    }

    #[test]
    fn federation_refuses_what_would_run_open_or_wrong() {
        let peers = ("MESH_FEDERATION_PEERS", B);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[peers], "MESH_FEDERATION_ENABLED"),
            (
                &[peers, ("MESH_FEDERATION_SHARED_SECRET", "short")],
                "MESH_FEDERATION_SHARED_SECRET",
            ),
            (
                &[
                    peers,
                    (
                        "MESH_FEDERATION_SHARED_SECRET",
                        "changeme-changeme-changeme-changeme",
                    ),
                ],
                "MESH_FEDERATION_SHARED_SECRET",
            ),
            (
                &[
                    peers,
                    (
                        "MESH_FEDERATION_SHARED_SECRET",
                        "abababababababababababababababab",
                    ),
                ],
                "MESH_FEDERATION_SHARED_SECRET",
            ),
            (
                &[
                    ("MESH_FEDERATION_PEERS", "ftp://b.example"),
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                ],
                "MESH_FEDERATION_PEERS",
            ),
            (
                &[
                    ("MESH_FEDERATION_PEERS", "https://b.example/api"),
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                ],
                "MESH_FEDERATION_PEERS",
            ),
            (
                &[
                    ("MESH_FEDERATION_PEERS", "https://u:p@b.example"),
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                ],
                "MESH_FEDERATION_PEERS",
            ),
            (
                &[
                    ("MESH_FEDERATION_PEERS", "http://127.0.0.2:8080"),
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                ],
                "MESH_FEDERATION_PEERS",
            ),
            (
                &[
                    ("MESH_FEDERATION_PEERS", &*format!("{B},{B}/")),
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                ],
                "MESH_FEDERATION_PEERS",
            ),
            (
                &[
                    peers,
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                    ("MESH_FEDERATION_PEER_KEYS", "x=y"),
                ],
                "MESH_FEDERATION_PEER_KEYS",
            ),
            (
                &[
                    peers,
                    ("MESH_FEDERATION_ED25519_SEED_FILE", "/nonexistent"),
                    (
                        "MESH_FEDERATION_PEER_KEYS",
                        &*format!("{C}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                    ),
                ],
                "MESH_FEDERATION_PEER_KEYS",
            ),
            (
                &[
                    peers,
                    ("MESH_FEDERATION_ED25519_SEED_FILE", "/nonexistent"),
                    ("MESH_FEDERATION_PEER_KEYS", &*format!("{B}=AAAA")),
                ],
                "MESH_FEDERATION_PEER_KEYS",
            ),
            (
                &[
                    peers,
                    ("MESH_FEDERATION_ED25519_SEED_FILE", "/nonexistent"),
                    ("MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET", "true"),
                ],
                "MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET",
            ),
            (
                &[
                    peers,
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                    ("MESH_FEDERATION_JWT_TTL_SECONDS", "29"),
                ],
                "MESH_FEDERATION_JWT_TTL_SECONDS",
            ),
            (
                &[
                    peers,
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                    ("MESH_FEDERATION_JWT_CLOCK_SKEW_LEEWAY_SECONDS", "301"),
                ],
                "MESH_FEDERATION_JWT_CLOCK_SKEW_LEEWAY_SECONDS",
            ),
            (
                &[
                    peers,
                    ("MESH_FEDERATION_SHARED_SECRET", SECRET),
                    ("MESH_FEDERATION_INBOUND_ALLOWLIST", "10.0.0.0/8, nonsense"),
                ],
                "MESH_FEDERATION_INBOUND_ALLOWLIST",
            ),
        ];
        for (pairs, variable) in cases {
            let error = federation(pairs).unwrap_err();
            assert_eq!(error.variable, *variable, "{pairs:?}");
            assert!(!error.to_string().contains(SECRET));
        }
    }

    #[test]
    fn ed25519_mode_pins_each_peer_key() {
        let key = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let dir = tempfile::tempdir().unwrap();
        let seed_path = dir.path().join("federation.seed");
        std::fs::write(&seed_path, format!("{}\n", "9d".repeat(32))).unwrap();
        let seed_file = seed_path.to_str().unwrap();
        // Readable by others: refused in production, warned about here.
        let mut loose = std::fs::metadata(&seed_path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut loose, 0o644);
        std::fs::set_permissions(&seed_path, loose).unwrap();
        let warned = federation(&[("MESH_FEDERATION_ED25519_SEED_FILE", seed_file)]).unwrap();
        assert!(
            warned.warnings.iter().any(|w| w.contains("chmod 600")),
            "{:?}",
            warned.warnings
        );
        let mut private = std::fs::metadata(&seed_path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut private, 0o600);
        std::fs::set_permissions(&seed_path, private).unwrap();
        let config = federation(&[
            ("MESH_FEDERATION_PEERS", &format!("{B},{C}")),
            ("MESH_FEDERATION_ED25519_SEED_FILE", seed_file),
            ("MESH_FEDERATION_PEER_KEYS", &format!("{B}/={key}")),
            ("MESH_FEDERATION_INBOUND_ALLOWLIST", "127.0.0.0/8, ::1"),
        ])
        .unwrap();
        let fed = config.mesh.federation.unwrap();
        let FederationKeyMode::Ed25519 { seed } = &fed.mode else {
            panic!("not Ed25519 mode")
        };
        assert_eq!(seed.public_key().len(), 32);
        assert!(!config.warnings.iter().any(|w| w.contains("chmod 600")));
        std::fs::write(&seed_path, "not a seed").unwrap();
        let error = federation(&[("MESH_FEDERATION_ED25519_SEED_FILE", seed_file)]).unwrap_err();
        assert_eq!(error.variable, "MESH_FEDERATION_ED25519_SEED_FILE");
        assert_eq!(fed.peers[0].public_keys.len(), 1);
        assert!(fed.peers[1].public_keys.is_empty());
        assert_eq!(fed.inbound_allowlist.len(), 2);
        assert!(
            config.warnings.iter().any(|w| w.contains(C)),
            "{:?}",
            config.warnings
        );
    }

    /// A private seed file in `dir`, as `hive mesh keygen` writes it.
    fn seed_file(dir: &std::path::Path) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("federation.seed");
        std::fs::write(&path, format!("{}\n", "5e".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn now() -> i64 {
        let elapsed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(elapsed.as_secs()).unwrap()
    }

    /// Writes a manifest signed by `operator` listing `peers`, issued at `iat`.
    fn write_manifest(
        dir: &std::path::Path,
        operator: &Ed25519Seed,
        peers: &[(&str, [u8; 32])],
        iat: i64,
        exp: Option<i64>,
    ) -> String {
        let manifest = Manifest {
            issuer: "ops@a.example".to_owned(),
            issued_at: iat,
            expires_at: exp,
            peers: peers
                .iter()
                .map(|(origin, public_key)| ManifestPeer {
                    origin: (*origin).to_owned(),
                    public_key: *public_key,
                })
                .collect(),
        };
        let path = dir.join("peers.manifest");
        let text = sign_manifest(operator, &manifest).unwrap();
        std::fs::write(&path, format!("{text}\n")).unwrap();
        path.to_str().unwrap().to_owned()
    }

    #[test]
    fn a_signed_manifest_pins_the_configured_peers_keys() {
        let dir = tempfile::tempdir().unwrap();
        let seed = seed_file(dir.path());
        let operator = Ed25519Seed::generate().unwrap();
        let operator_key = operator.public_key_text();
        let (b, c, d) = (
            Ed25519Seed::generate().unwrap(),
            Ed25519Seed::generate().unwrap(),
            Ed25519Seed::generate().unwrap(),
        );
        // The manifest writes B with a trailing slash, and describes D, a peer not ours.
        let b_written = format!("{B}/");
        let manifest = write_manifest(
            dir.path(),
            &operator,
            &[
                (&b_written, b.public_key()),
                (C, c.public_key()),
                ("https://d.example", d.public_key()),
            ],
            now(),
            Some(now() + 86_400),
        );
        let config = federation(&[
            ("MESH_FEDERATION_PEERS", &format!("{B},{C}")),
            ("MESH_FEDERATION_ED25519_SEED_FILE", &seed),
            // C is pinned in both places with the same key: fine.
            (
                "MESH_FEDERATION_PEER_KEYS",
                &format!("{C}={}", c.public_key_text()),
            ),
            ("MESH_FEDERATION_PEER_MANIFEST_FILE", &manifest),
            ("MESH_FEDERATION_MANIFEST_PUBLIC_KEY", &operator_key),
        ])
        .unwrap();
        let fed = config.mesh.federation.unwrap();
        assert_eq!(fed.peers[0].public_keys, [b.public_key()]);
        assert_eq!(
            fed.peers[1].public_keys,
            [c.public_key()],
            "the same key once"
        );
        assert_eq!(fed.peers.len(), 2, "D is not added");
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("https://d.example") && w.contains("ignored")),
            "{:?}",
            config.warnings
        );
        assert!(
            !config.warnings.iter().any(|w| w.contains("cannot call in")),
            "{:?}",
            config.warnings
        );

        // B's next key in MESH_FEDERATION_PEER_KEYS while the manifest still has the current
        // one (a rotation): both are pinned.
        let config = federation(&[
            ("MESH_FEDERATION_PEERS", &format!("{B},{C}")),
            ("MESH_FEDERATION_ED25519_SEED_FILE", &seed),
            (
                "MESH_FEDERATION_PEER_KEYS",
                &format!("{B}={}", d.public_key_text()),
            ),
            ("MESH_FEDERATION_PEER_MANIFEST_FILE", &manifest),
            ("MESH_FEDERATION_MANIFEST_PUBLIC_KEY", &operator_key),
        ])
        .unwrap();
        let fed = config.mesh.federation.unwrap();
        assert_eq!(fed.peers[0].public_keys, [d.public_key(), b.public_key()]);
    }

    #[test]
    fn a_bad_manifest_or_half_its_settings_stop_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let seed = seed_file(dir.path());
        let operator = Ed25519Seed::generate().unwrap();
        let operator_key = operator.public_key_text();
        let other_key = Ed25519Seed::generate().unwrap().public_key_text();
        let peer = Ed25519Seed::generate().unwrap().public_key();
        let peers = ("MESH_FEDERATION_PEERS", B);
        let ed25519 = ("MESH_FEDERATION_ED25519_SEED_FILE", seed.as_str());
        let good = write_manifest(dir.path(), &operator, &[(B, peer)], now(), None);
        let file = ("MESH_FEDERATION_PEER_MANIFEST_FILE", good.as_str());
        let key = ("MESH_FEDERATION_MANIFEST_PUBLIC_KEY", operator_key.as_str());
        assert!(federation(&[peers, ed25519, file, key]).is_ok());
        // The settings, the variable the error names, and what its message says.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (
                &[peers, ed25519, file],
                "MESH_FEDERATION_PEER_MANIFEST_FILE",
                "needs",
            ),
            (
                &[peers, ed25519, key],
                "MESH_FEDERATION_MANIFEST_PUBLIC_KEY",
                "needs",
            ),
            (
                &[peers, ("MESH_FEDERATION_SHARED_SECRET", SECRET), file, key],
                "MESH_FEDERATION_PEER_MANIFEST_FILE",
                "Ed25519 mode",
            ),
            (
                &[
                    peers,
                    ed25519,
                    file,
                    ("MESH_FEDERATION_MANIFEST_PUBLIC_KEY", "AAAA"),
                ],
                "MESH_FEDERATION_MANIFEST_PUBLIC_KEY",
                "Ed25519 public key",
            ),
            (
                &[
                    peers,
                    ed25519,
                    file,
                    ("MESH_FEDERATION_MANIFEST_PUBLIC_KEY", &other_key),
                ],
                "MESH_FEDERATION_PEER_MANIFEST_FILE",
                "another key",
            ),
            (
                &[
                    peers,
                    ed25519,
                    ("MESH_FEDERATION_PEER_MANIFEST_FILE", "/nonexistent/peers"),
                    key,
                ],
                "MESH_FEDERATION_PEER_MANIFEST_FILE",
                "cannot read",
            ),
        ];
        for (pairs, variable, says) in cases {
            let error = federation(pairs).unwrap_err();
            assert_eq!(error.variable, *variable, "{pairs:?}");
            assert!(error.to_string().contains(says), "{error}");
        }
        // Expired, issued far in the future, tampered with.
        let refused = [
            (now() - 7200, Some(now() - 3600), "expired"),
            (now() + 3600, None, "future"),
        ];
        for (iat, exp, says) in refused {
            write_manifest(dir.path(), &operator, &[(B, peer)], iat, exp);
            let error = federation(&[peers, ed25519, file, key]).unwrap_err();
            assert_eq!(error.variable, "MESH_FEDERATION_PEER_MANIFEST_FILE");
            assert!(error.to_string().contains(says), "{error}");
        }
        let text = write_manifest(dir.path(), &operator, &[(B, peer)], now(), None);
        let signed = std::fs::read_to_string(&text).unwrap();
        let mut parts: Vec<String> = signed.trim().split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        std::fs::write(&text, parts.join(".")).unwrap();
        let error = federation(&[peers, ed25519, file, key]).unwrap_err();
        assert_eq!(error.variable, "MESH_FEDERATION_PEER_MANIFEST_FILE");
    }

    #[test]
    fn a_peer_may_have_several_keys_while_one_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let seed = seed_file(dir.path());
        let keys: Vec<String> = (0..5)
            .map(|_| Ed25519Seed::generate().unwrap().public_key_text())
            .collect();
        let pins = |keys: &[String]| {
            keys.iter()
                .map(|key| format!("{B}={key}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let load_with = |pinned: &str| {
            federation(&[
                ("MESH_FEDERATION_PEERS", B),
                ("MESH_FEDERATION_ED25519_SEED_FILE", &seed),
                ("MESH_FEDERATION_PEER_KEYS", pinned),
            ])
        };
        let fed = load_with(&pins(&keys[..2]))
            .unwrap()
            .mesh
            .federation
            .unwrap();
        assert_eq!(fed.peers[0].public_keys.len(), 2);
        assert!(load_with(&pins(&keys[..4])).is_ok());
        for refused in [pins(&keys), pins(&[keys[0].clone(), keys[0].clone()])] {
            let error = load_with(&refused).unwrap_err();
            assert_eq!(error.variable, "MESH_FEDERATION_PEER_KEYS", "{refused}");
        }
    }

    #[test]
    fn production_peers_are_https() {
        let production = [
            ("HIVE_ENV", "production"),
            ("AUTH_URL", "https://a.example"),
            ("AUTH_SECRET", "Zx8Kq2Lm9Np4Rs7Tv1Wy3Ab6Cd0Ef5Gh"),
            (
                "ENCRYPTION_KEY",
                "3f1a9c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
            ),
            ("MESH_FEDERATION_ENABLED", "true"),
            ("MESH_FEDERATION_SHARED_SECRET", SECRET),
        ];
        let mut pairs = production.to_vec();
        pairs.push(("MESH_FEDERATION_PEERS", B));
        let error = Config::load(&EnvSource::from_pairs(pairs)).unwrap_err();
        assert_eq!(error.variable, "MESH_FEDERATION_PEERS");
        let mut pairs = production.to_vec();
        pairs.push(("MESH_FEDERATION_PEERS", "https://b.example"));
        assert!(Config::load(&EnvSource::from_pairs(pairs)).is_ok());
    }

    #[test]
    fn the_public_tier_needs_its_method_list() {
        let error = load(&[("A2A_PUBLIC_JSONRPC_ENABLED", "true")]).unwrap_err();
        assert_eq!(error.variable, "A2A_PUBLIC_JSONRPC_ALLOWED_METHODS");
        let error = load(&[
            ("A2A_PUBLIC_JSONRPC_ENABLED", "true"),
            (
                "A2A_PUBLIC_JSONRPC_ALLOWED_METHODS",
                "message/send, tasks/delete",
            ),
        ])
        .unwrap_err();
        assert_eq!(error.variable, "A2A_PUBLIC_JSONRPC_ALLOWED_METHODS");
        let config = load(&[
            ("A2A_PUBLIC_JSONRPC_ENABLED", "true"),
            (
                "A2A_PUBLIC_JSONRPC_ALLOWED_METHODS",
                "message/send, SendMessage, GetTask",
            ),
            (
                "A2A_PUBLIC_JSONRPC_API_KEYS",
                &format!(
                    "partner={SECRET}@tasks/get|tasks/cancel, hashed=sha256:{}",
                    "ab".repeat(32)
                ),
            ),
        ])
        .unwrap();
        let tier = config.mesh.public_tier.unwrap();
        assert_eq!(tier.allowed_methods, [Method::SendMessage, Method::GetTask]);
        assert_eq!(tier.max_body_bytes, 64 * 1024);
        assert_eq!(tier.api_keys.len(), 2);
        assert_eq!(
            tier.api_keys[0].methods.as_deref(),
            Some(&[Method::GetTask, Method::CancelTask][..])
        );
        assert_eq!(tier.api_keys[1].hash, [0xab; 32]);
        // Only the hash is kept, and the report masks the variable.
        assert!(!format!("{:?}", tier.api_keys).contains(SECRET));
        let line = config
            .report
            .iter()
            .find(|l| l.name == "A2A_PUBLIC_JSONRPC_API_KEYS");
        assert!(!line.unwrap().value.contains(SECRET));
    }

    #[test]
    fn the_public_tier_refuses_bad_keys_and_too_many_methods() {
        let many: Vec<String> = (0..33).map(|i| format!("m{i}")).collect();
        for (variable, value) in [
            ("A2A_PUBLIC_JSONRPC_ALLOWED_METHODS", many.join(",")),
            ("A2A_PUBLIC_JSONRPC_API_KEYS", "short=abc".to_owned()),
            (
                "A2A_PUBLIC_JSONRPC_API_KEYS",
                format!("a={SECRET},a=sha256:{}", "cd".repeat(32)),
            ),
            (
                "A2A_PUBLIC_JSONRPC_API_KEYS",
                format!("a={SECRET},b={SECRET}"),
            ),
            ("A2A_PUBLIC_JSONRPC_API_KEYS", "a=sha256:zz".to_owned()),
            ("A2A_PUBLIC_JSONRPC_API_KEYS", format!("a={SECRET}@nope")),
        ] {
            let mut pairs = vec![("A2A_PUBLIC_JSONRPC_ENABLED", "true")];
            if variable != "A2A_PUBLIC_JSONRPC_ALLOWED_METHODS" {
                pairs.push(("A2A_PUBLIC_JSONRPC_ALLOWED_METHODS", "SendMessage"));
            }
            pairs.push((variable, &value));
            let error = load(&pairs).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
            assert!(!error.to_string().contains(SECRET));
        }
    }

    #[test]
    fn nats_settings_are_checked() {
        let config = load(&[("NATS_URL", "nats://127.0.0.1:4222")]).unwrap();
        let nats = config.mesh.wan.nats.unwrap();
        assert_eq!(nats.stream, "HIVE_WAN");
        assert_eq!(nats.subject, "hive.wan.envelopes");
        assert!(nats.consumer.starts_with("hive-") && nats.consumer.len() == 21);
        for (variable, value) in [
            ("NATS_URL", "http://127.0.0.1:4222"),
            ("MESH_WAN_NATS_STREAM", "has.dot"),
            ("MESH_WAN_NATS_SUBJECT", "a..b"),
            ("MESH_WAN_NATS_CONSUMER", "with space"),
        ] {
            let error = load(&[("NATS_URL", "nats://127.0.0.1:4222"), (variable, value)]);
            assert_eq!(error.unwrap_err().variable, variable, "{value}");
        }
    }

    #[test]
    fn unknown_mesh_names_are_reported() {
        let config = load(&[("MESH_FEDERATION_REQUIRE_JTI", "false")]).unwrap();
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("MESH_FEDERATION_REQUIRE_JTI")),
            "{:?}",
            config.warnings
        );
    }
}
