//! Single sign-on providers: `OIDC_PROVIDERS` names them, `OIDC_<ID>_*` configures each.

use super::sources::{Sources, invalid};
use super::spec;
use super::{ConfigError, OidcConfig, OidcProvider};
use hive_proto::Role;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeSet;
use std::net::IpAddr;
use url::Url;

const PREFIX: &str = "OIDC_";
const DEFAULT_SCOPES: &str = "openid email profile";

pub(super) fn parse(src: &mut Sources<'_>, production: bool) -> Result<OidcConfig, ConfigError> {
    let ids = match src.value("OIDC_PROVIDERS")? {
        None => Vec::new(),
        Some(list) => provider_ids(&list)?,
    };
    let auto_create = src.boolean("OIDC_AUTO_CREATE", false)?;
    refuse_stray_variables(src, &ids)?;
    let providers = ids
        .iter()
        .map(|id| provider(src, id, production))
        .collect::<Result<_, _>>()?;
    Ok(OidcConfig {
        auto_create,
        providers,
    })
}

fn provider_ids(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut ids = Vec::new();
    for id in list.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        if !spec::is_instance_id(id) {
            return Err(invalid(
                "OIDC_PROVIDERS",
                format!("{id:?} is not a provider id: 1 to 32 of a-z 0-9, starting with a letter"),
            ));
        }
        if ids.iter().any(|known| known == id) {
            return Err(invalid("OIDC_PROVIDERS", format!("{id} is listed twice")));
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}

/// An `OIDC_*` variable that configures nothing is a mistake to stop at (a misspelt role map
/// would silently hand out the default role): unknown names and providers not listed.
fn refuse_stray_variables(src: &Sources<'_>, ids: &[String]) -> Result<(), ConfigError> {
    let names: BTreeSet<&str> = src
        .env
        .names()
        .chain(src.toml.keys().map(String::as_str))
        .filter(|name| name.starts_with(PREFIX))
        .collect();
    for name in names {
        let variable = name.strip_suffix("_FILE").unwrap_or(name);
        if let Some((row, id)) = spec::find_template(variable) {
            if variable != name && !row.secret {
                return Err(invalid(name, "only secrets have a _FILE form"));
            }
            if !ids.contains(&id) {
                return Err(invalid(
                    name,
                    format!("configures provider {id}, which OIDC_PROVIDERS does not list"),
                ));
            }
        } else if !spec::is_known(name) {
            return Err(invalid(
                name,
                "not a known variable (see docs/configuration.md for the OIDC_<ID>_* names)",
            ));
        }
    }
    Ok(())
}

fn provider(
    src: &mut Sources<'_>,
    id: &str,
    production: bool,
) -> Result<OidcProvider, ConfigError> {
    let name = |row: &str| format!("OIDC_{}_{row}", id.to_ascii_uppercase());
    let required = |src: &mut Sources<'_>, row: &str| -> Result<String, ConfigError> {
        src.value(&name(row))?
            .map(|value| value.trim().to_owned())
            .ok_or_else(|| invalid(&name(row), format!("required for provider {id}")))
    };

    let issuer_name = name("ISSUER");
    let issuer = required(src, "ISSUER")?;
    let issuer_url = check_issuer(&issuer_name, &issuer, production)?;

    let client_id = required(src, "CLIENT_ID")?;
    if client_id.len() > 255
        || client_id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(&name("CLIENT_ID"), "1 to 255 visible characters"));
    }
    let secret_name = name("CLIENT_SECRET");
    let client_secret: SecretString = src
        .secret(&secret_name)?
        .ok_or_else(|| invalid(&secret_name, format!("required for provider {id}")))?;
    let secret_length = client_secret.expose_secret().chars().count();
    if !(1..=1024).contains(&secret_length) || client_secret.expose_secret().contains('\n') {
        return Err(invalid(&secret_name, "1 to 1024 characters on one line"));
    }

    let display_name = src
        .value(&name("DISPLAY_NAME"))?
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| id.to_owned());
    if display_name.is_empty()
        || display_name.chars().count() > 100
        || display_name.chars().any(char::is_control)
    {
        return Err(invalid(
            &name("DISPLAY_NAME"),
            "1 to 100 characters without control characters",
        ));
    }

    let scopes_text = src
        .value(&name("SCOPES"))?
        .unwrap_or_else(|| DEFAULT_SCOPES.to_owned());
    let scopes = scopes(&name("SCOPES"), &scopes_text)?;

    let role_claim = src
        .value(&name("ROLE_CLAIM"))?
        .map(|value| value.trim().to_owned());
    if let Some(claim) = &role_claim
        && (claim.is_empty()
            || claim.len() > 100
            || claim.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(invalid(
            &name("ROLE_CLAIM"),
            "a claim name of 1 to 100 visible characters",
        ));
    }
    let role_map = match src.value(&name("ROLE_MAP"))? {
        None => Vec::new(),
        Some(text) => role_map(&name("ROLE_MAP"), &text)?,
    };
    if !role_map.is_empty() && role_claim.is_none() {
        return Err(invalid(
            &name("ROLE_MAP"),
            format!("needs {} (the claim it maps)", name("ROLE_CLAIM")),
        ));
    }
    let default_role = match src.value(&name("DEFAULT_ROLE"))? {
        None => Role::Viewer,
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| invalid(&name("DEFAULT_ROLE"), "viewer, operator or admin"))?,
    };

    Ok(OidcProvider {
        id: id.to_owned(),
        display_name,
        issuer,
        issuer_url,
        client_id,
        client_secret,
        scopes,
        role_claim,
        role_map,
        default_role,
    })
}

/// https, or http to a loopback host outside production (a provider run beside Hive for a
/// test or a demo); nothing a discovery URL cannot be built on.
fn check_issuer(variable: &str, issuer: &str, production: bool) -> Result<Url, ConfigError> {
    let rule = "an absolute https URL without credentials, query or fragment";
    let url = Url::parse(issuer).map_err(|_| invalid(variable, rule))?;
    if url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(variable, rule));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if !production && is_loopback(&url) => Ok(url),
        "http" => Err(invalid(
            variable,
            "must be https (http is allowed only for a loopback host outside production)",
        )),
        _ => Err(invalid(variable, rule)),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

fn scopes(variable: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    let scopes: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    let fine = scopes.len() <= 20
        && scopes.iter().all(|scope| {
            scope.len() <= 100
                && scope
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
        });
    if !fine {
        return Err(invalid(
            variable,
            "at most 20 space-separated scopes of A-Z a-z 0-9 _ - . : /",
        ));
    }
    if !scopes.iter().any(|scope| scope == "openid") {
        return Err(invalid(variable, "must include openid"));
    }
    Ok(scopes)
}

fn role_map(variable: &str, text: &str) -> Result<Vec<(String, Role)>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (value, role) = pair
                .rsplit_once('=')
                .ok_or_else(|| invalid(variable, format!("{pair:?} is not value=role")))?;
            let value = value.trim();
            let role: Role = role.trim().parse().map_err(|_| {
                invalid(
                    variable,
                    format!("{pair:?}: the role must be viewer, operator or admin"),
                )
            })?;
            if value.is_empty() || value.len() > 256 {
                return Err(invalid(
                    variable,
                    format!("{pair:?}: the value must be 1 to 256 characters"),
                ));
            }
            Ok((value.to_owned(), role))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Config, EnvSource};
    use hive_proto::Role;
    use secrecy::ExposeSecret;

    const CLIENT_SECRET: &str = "Oidc-Client-Secret-Value-0123456789";

    fn load(pairs: &[(&str, &str)]) -> Result<Config, super::ConfigError> {
        Config::load(&EnvSource::from_pairs(pairs.iter().copied()))
    }

    fn corp(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = vec![
            ("OIDC_PROVIDERS", "corp"),
            ("OIDC_CORP_ISSUER", "https://login.example.com/realms/corp"),
            ("OIDC_CORP_CLIENT_ID", "hive"),
            ("OIDC_CORP_CLIENT_SECRET", CLIENT_SECRET),
        ];
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn no_provider_is_the_default() {
        let config = load(&[]).unwrap();
        assert!(config.oidc.providers.is_empty());
        assert!(!config.oidc.auto_create);
    }

    #[test]
    fn a_provider_with_its_defaults() {
        let config = load(&corp(&[])).unwrap();
        let provider = &config.oidc.providers[0];
        assert_eq!(provider.id, "corp");
        assert_eq!(provider.display_name, "corp");
        assert_eq!(provider.issuer, "https://login.example.com/realms/corp");
        assert_eq!(provider.scopes, ["openid", "email", "profile"]);
        assert_eq!(provider.default_role, Role::Viewer);
        assert!(provider.role_claim.is_none() && provider.role_map.is_empty());
        assert_eq!(provider.client_secret.expose_secret(), CLIENT_SECRET);
        let text = super::super::render_check(&config, "");
        assert!(!text.contains(CLIENT_SECRET), "{text}");
        assert!(!format!("{config:?}").contains(CLIENT_SECRET));
        assert!(text.contains("OIDC_CORP_CLIENT_SECRET"), "{text}");
        assert!(text.contains("OIDC_CORP_SCOPES"), "{text}");
    }

    #[test]
    fn several_providers_with_role_mappings() {
        let config = load(&corp(&[
            ("OIDC_PROVIDERS", "corp, partner2"),
            ("OIDC_AUTO_CREATE", "true"),
            ("OIDC_CORP_DISPLAY_NAME", "Corp SSO"),
            ("OIDC_CORP_ROLE_CLAIM", "groups"),
            ("OIDC_CORP_ROLE_MAP", "hive-admins=admin, hive-ops=operator"),
            ("OIDC_CORP_DEFAULT_ROLE", "viewer"),
            ("OIDC_CORP_SCOPES", "openid email groups"),
            ("OIDC_PARTNER2_ISSUER", "https://partner.example.net"),
            ("OIDC_PARTNER2_CLIENT_ID", "hive-partner"),
            ("OIDC_PARTNER2_CLIENT_SECRET", "another-client-secret"),
            ("OIDC_PARTNER2_DEFAULT_ROLE", "operator"),
        ]))
        .unwrap();
        assert!(config.oidc.auto_create);
        let [corp, partner] = config.oidc.providers.as_slice() else {
            panic!("two providers");
        };
        assert_eq!(corp.display_name, "Corp SSO");
        assert_eq!(corp.role_claim.as_deref(), Some("groups"));
        assert_eq!(
            corp.role_map,
            [
                ("hive-admins".to_owned(), Role::Admin),
                ("hive-ops".to_owned(), Role::Operator)
            ]
        );
        assert_eq!(partner.id, "partner2");
        assert_eq!(partner.default_role, Role::Operator);
    }

    #[test]
    fn the_client_secret_may_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{CLIENT_SECRET}\n")).unwrap();
        let path = path.display().to_string();
        let mut pairs = corp(&[]);
        pairs.retain(|(name, _)| *name != "OIDC_CORP_CLIENT_SECRET");
        pairs.push(("OIDC_CORP_CLIENT_SECRET_FILE", &path));
        let config = load(&pairs).unwrap();
        assert_eq!(
            config.oidc.providers[0].client_secret.expose_secret(),
            CLIENT_SECRET
        );
    }

    #[test]
    fn bad_provider_settings_stop_the_start() {
        for (name, value, variable) in [
            ("OIDC_PROVIDERS", "Corp", "OIDC_PROVIDERS"),
            ("OIDC_PROVIDERS", "corp,corp", "OIDC_PROVIDERS"),
            ("OIDC_PROVIDERS", "my_corp", "OIDC_PROVIDERS"),
            (
                "OIDC_CORP_ISSUER",
                "http://login.example.com",
                "OIDC_CORP_ISSUER",
            ),
            (
                "OIDC_CORP_ISSUER",
                "ftp://login.example.com",
                "OIDC_CORP_ISSUER",
            ),
            (
                "OIDC_CORP_ISSUER",
                "https://u:p@login.example.com",
                "OIDC_CORP_ISSUER",
            ),
            (
                "OIDC_CORP_ISSUER",
                "https://login.example.com/?x=1",
                "OIDC_CORP_ISSUER",
            ),
            ("OIDC_CORP_ISSUER", "login.example.com", "OIDC_CORP_ISSUER"),
            ("OIDC_CORP_CLIENT_ID", "has space", "OIDC_CORP_CLIENT_ID"),
            ("OIDC_CORP_SCOPES", "email profile", "OIDC_CORP_SCOPES"),
            ("OIDC_CORP_SCOPES", "openid e\"vil", "OIDC_CORP_SCOPES"),
            ("OIDC_CORP_ROLE_MAP", "admins=admin", "OIDC_CORP_ROLE_MAP"),
            ("OIDC_CORP_DEFAULT_ROLE", "root", "OIDC_CORP_DEFAULT_ROLE"),
            (
                "OIDC_CORP_DISPLAY_NAME",
                &"x".repeat(101),
                "OIDC_CORP_DISPLAY_NAME",
            ),
            ("OIDC_CORP_ROLE_MAPP", "a=admin", "OIDC_CORP_ROLE_MAPP"),
            (
                "OIDC_OTHER_ISSUER",
                "https://other.example.com",
                "OIDC_OTHER_ISSUER",
            ),
            (
                "OIDC_CORP_ISSUER_FILE",
                "/etc/issuer",
                "OIDC_CORP_ISSUER_FILE",
            ),
            ("OIDC_AUTOCREATE", "true", "OIDC_AUTOCREATE"),
        ] {
            let mut pairs = corp(&[]);
            pairs.push((name, value));
            let error = load(&pairs).unwrap_err();
            assert_eq!(error.variable, variable, "{name}={value}: {error}");
            assert!(!error.to_string().contains(CLIENT_SECRET));
        }
        for (missing, variable) in [
            ("OIDC_CORP_ISSUER", "OIDC_CORP_ISSUER"),
            ("OIDC_CORP_CLIENT_ID", "OIDC_CORP_CLIENT_ID"),
            ("OIDC_CORP_CLIENT_SECRET", "OIDC_CORP_CLIENT_SECRET"),
        ] {
            let mut pairs = corp(&[]);
            pairs.retain(|(name, _)| *name != missing);
            assert_eq!(load(&pairs).unwrap_err().variable, variable);
        }
        let role_map = load(&corp(&[
            ("OIDC_CORP_ROLE_CLAIM", "groups"),
            ("OIDC_CORP_ROLE_MAP", "admins=superuser"),
        ]));
        assert_eq!(role_map.unwrap_err().variable, "OIDC_CORP_ROLE_MAP");
    }

    #[test]
    fn plain_http_issuers_only_on_loopback_outside_production() {
        for loopback in [
            "http://127.0.0.1:8081",
            "http://[::1]:9000/idp",
            "http://localhost:5556",
        ] {
            let mut pairs = corp(&[]);
            pairs.push(("OIDC_CORP_ISSUER", loopback));
            assert!(load(&pairs).is_ok(), "{loopback}");
            pairs.extend([
                ("HIVE_ENV", "production"),
                ("AUTH_URL", "https://hive.example.com"),
                ("AUTH_SECRET", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
                (
                    "ENCRYPTION_KEY",
                    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
                ),
            ]);
            assert_eq!(load(&pairs).unwrap_err().variable, "OIDC_CORP_ISSUER");
        }
    }
}
