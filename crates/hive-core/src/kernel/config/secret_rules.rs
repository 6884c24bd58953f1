//! The rules for supplied secrets: long enough, random-looking in production.

use super::SuppliedSecrets;
use super::sources::{ConfigError, invalid};
use secrecy::ExposeSecret;

/// Why a secret looks weak or like a placeholder, if it does.
pub(crate) fn weakness(secret: &str) -> Option<&'static str> {
    const PLACEHOLDERS: &[&str] = &[
        "change",
        "replace",
        "example",
        "default",
        "secret",
        "password",
        "placeholder",
        "sample",
        "dummy",
        "test",
        "your",
        "xxx",
        "todo",
    ];
    let lower = secret.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|word| lower.contains(word)) {
        return Some("looks like a placeholder");
    }
    let mut distinct: Vec<char> = secret.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 10 {
        return Some("has too few distinct characters");
    }
    let chars: Vec<char> = secret.chars().collect();
    let periodic = (1..=16).any(|period| {
        chars.len() > period && (period..chars.len()).all(|i| chars[i] == chars[i - period])
    });
    if periodic {
        return Some("repeats a short pattern");
    }
    None
}

pub(super) fn check_secrets(
    secrets: &SuppliedSecrets,
    production: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if let Some(key) = &secrets.encryption_key {
        let key = key.expose_secret();
        if key.len() != 64 || !key.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                "ENCRYPTION_KEY",
                "must be exactly 64 hexadecimal characters (32 bytes), e.g. from `openssl rand -hex 32`",
            ));
        }
    }
    let named = [
        ("AUTH_SECRET", &secrets.auth_secret),
        ("ENCRYPTION_KEY", &secrets.encryption_key),
        ("HIVE_SETUP_TOKEN", &secrets.setup_token),
        ("HIVE_INTERNAL_TOKEN", &secrets.internal_token),
        ("MESH_BUS_HMAC_SECRET", &secrets.bus_hmac_secret),
    ];
    for (name, value) in named {
        let Some(value) = value else { continue };
        let value = value.expose_secret();
        if value.chars().count() < 32 {
            return Err(invalid(name, "must be at least 32 characters"));
        }
        if let Some(why) = weakness(value) {
            if production {
                return Err(invalid(
                    name,
                    format!("{why}; production needs a random value (e.g. `openssl rand -hex 32`)"),
                ));
            }
            warnings.push(format!("{name} {why}; it would be refused in production"));
        }
    }
    if production {
        for (name, value) in [
            ("AUTH_SECRET", &secrets.auth_secret),
            ("ENCRYPTION_KEY", &secrets.encryption_key),
        ] {
            if value.is_none() {
                return Err(invalid(
                    name,
                    format!(
                        "required in production (generated secrets are refused); set {name} or {name}_FILE"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random-looking values (a key and a secret), as the configuration tests use.
    const KEY: &str = "8f3a1c9e5b7d2046f1e8a3c5b9d7e2f40a6c8e1b3d5f7092a4c6e8b0d2f41357";
    const SECRET: &str = "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ";

    #[test]
    fn weakness_rules() {
        assert_eq!(weakness(KEY), None);
        assert_eq!(weakness(SECRET), None);
        assert!(weakness("x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1").is_some());
        assert!(weakness("Your-Token-Goes-Here-0123456789").is_some());
        assert!(weakness("1111111122222222333333334444444455").is_some());
    }
}
