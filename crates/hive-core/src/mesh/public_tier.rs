//! The anonymous public tier of the JSON-RPC endpoint (`A2A_PUBLIC_JSONRPC_*`): off by
//! default; when on, callers without credentials may use the allowed methods on `public`
//! agents, and holders of a public-tier API key the methods of that key.

use crate::kernel::config::{PublicApiKey, PublicTierConfig};
use hive_a2a::jsonrpc::Method;

/// The header a public-tier API key comes in (not `Authorization`, which holds API tokens).
pub const KEY_HEADER: http::HeaderName = http::HeaderName::from_static("x-hive-public-key");

/// The audit action of a public-tier refusal (accepted calls are `mesh.a2a.public_tier.call`).
pub const REFUSAL_ACTION: crate::kernel::audit::AuditAction =
    crate::kernel::audit::AuditAction::MeshPublicTierRefused;

#[derive(Debug)]
pub struct PublicTier {
    settings: PublicTierConfig,
}

impl PublicTier {
    pub fn new(settings: PublicTierConfig) -> Self {
        Self { settings }
    }

    /// The key a presented value is, by its hash (compared in constant time against each).
    pub fn key(&self, presented: &str) -> Option<&PublicApiKey> {
        let hash = hive_crypto::sha256(presented.trim().as_bytes());
        let mut found = None;
        for key in &self.settings.api_keys {
            if hive_crypto::constant_time_eq(&key.hash, &hash) {
                found = Some(key);
            }
        }
        found
    }

    /// Whether `method` may be called anonymously, or with `key`.
    pub fn allows(&self, key: Option<&PublicApiKey>, method: Method) -> bool {
        let methods = key
            .and_then(|key| key.methods.as_deref())
            .unwrap_or(&self.settings.allowed_methods);
        methods.contains(&method)
    }

    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// The methods anyone may call (`A2A_PUBLIC_JSONRPC_ALLOWED_METHODS`).
    pub fn allowed_methods(&self) -> &[Method] {
        &self.settings.allowed_methods
    }

    /// Each API key's name and the methods it may call, for the admins' view (no hashes).
    pub fn keys(&self) -> impl Iterator<Item = (&str, &[Method])> {
        self.settings.api_keys.iter().map(|key| {
            let methods = key
                .methods
                .as_deref()
                .unwrap_or(&self.settings.allowed_methods);
            (key.name.as_str(), methods)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier() -> PublicTier {
        let hash = |key: &str| hive_crypto::sha256(key.as_bytes());
        PublicTier::new(PublicTierConfig {
            allowed_methods: vec![Method::SendMessage],
            api_keys: vec![
                PublicApiKey {
                    name: "partner".into(),
                    hash: hash("k1-0123456789abcdefghijklmnopqrstuv"),
                    methods: Some(vec![Method::GetTask]),
                },
                PublicApiKey {
                    name: "plain".into(),
                    hash: hash("k2-0123456789abcdefghijklmnopqrstuv"),
                    methods: None,
                },
            ],
            max_body_bytes: 1024,
        })
    }

    #[test]
    fn keys_are_found_by_hash_and_scope_their_methods() {
        let tier = tier();
        assert!(tier.allows(None, Method::SendMessage));
        assert!(!tier.allows(None, Method::GetTask));
        let partner = tier.key(" k1-0123456789abcdefghijklmnopqrstuv ").unwrap();
        assert_eq!(partner.name, "partner");
        assert!(tier.allows(Some(partner), Method::GetTask));
        assert!(!tier.allows(Some(partner), Method::SendMessage));
        let plain = tier.key("k2-0123456789abcdefghijklmnopqrstuv").unwrap();
        assert!(tier.allows(Some(plain), Method::SendMessage));
        assert!(tier.key("k3-0123456789abcdefghijklmnopqrstuv").is_none());
    }
}
