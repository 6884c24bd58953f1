//! The rules, in the order of `SECURITY-RULES.md`: scheme, userinfo, port, local names, then
//! addresses (the literal's, or every address a name resolved to). Deciding needs no network:
//! [`EgressPolicy::precheck`] settles IP literals completely, and
//! [`EgressPolicy::check_addresses`] judges the answers of a lookup done elsewhere.

use crate::allowlist::{Allowlist, RequestHost};
use crate::ranges::{self, Strength};
use crate::{EgressError, Refusal, RefusalReason};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::{Host, Url};

/// How many redirects one request may follow (`HIVE_EGRESS_FETCH_MAX_REDIRECTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxRedirects(u8);

impl MaxRedirects {
    pub const DEFAULT: MaxRedirects = MaxRedirects(5);
    /// A chain longer than this is an attack or a loop, never a service.
    pub const LIMIT: u8 = 10;

    pub fn new(count: u8) -> Result<Self, ConfigError> {
        if count > Self::LIMIT {
            return Err(ConfigError::MaxRedirects(count.to_string()));
        }
        Ok(Self(count))
    }

    /// Parses the environment's text form.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::MaxRedirects(text.trim().to_owned());
        let count: u8 = text.trim().parse().map_err(|_| bad())?;
        Self::new(count).map_err(|_| bad())
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for MaxRedirects {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the maximum number of redirects must be a whole number from 0 to 10, not `{0}`")]
    MaxRedirects(String),
}

/// What the egress client is built with. The allowlist given here is the starting one; the
/// client's `set_allowlist` replaces it at run time.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    pub allowlist: Allowlist,
    pub max_redirects: MaxRedirects,
    /// Per lookup. The rules say 5 s.
    pub dns_timeout: Duration,
    /// Per TCP connect (TLS handshake excluded). The rules say 10 s.
    pub connect_timeout: Duration,
    /// Hive's own listen addresses; never connected to, allowlist or not. An unspecified
    /// address (`0.0.0.0:8080`) stands for loopback on that port; list the machine's other
    /// interface addresses explicitly if Hive listens on them.
    pub self_addresses: Vec<SocketAddr>,
    pub user_agent: String,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            allowlist: Allowlist::empty(),
            max_redirects: MaxRedirects::DEFAULT,
            dns_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            self_addresses: Vec::new(),
            user_agent: concat!("hive/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Where a checked URL goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An IP literal that passed every rule: connect to exactly this.
    Literal(SocketAddr),
    /// A name that passed the name rules; its addresses still have to be looked up and checked.
    Name(String),
}

/// A URL that passed the checks that need no network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    /// `scheme://host:port`, for errors and audit records.
    pub origin: String,
    pub port: u16,
    /// An allowlist entry covers this host and port.
    pub allowlisted: bool,
    pub destination: Destination,
}

/// One consistent view of the rules for one hop: the allowlist as it was when the hop started
/// and Hive's own addresses.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    allowlist: Arc<Allowlist>,
    self_addresses: Arc<[SocketAddr]>,
    /// Whether an entry of the list also lets its host through on private, loopback and local
    /// addresses (the admins' list) or only names it (a hosted agent's own list).
    list_opens_private: bool,
}

impl EgressPolicy {
    pub fn new(allowlist: Arc<Allowlist>, self_addresses: Arc<[SocketAddr]>) -> Self {
        Self {
            allowlist,
            self_addresses,
            list_opens_private: true,
        }
    }

    /// A policy whose list names hosts (and their ports) without opening private, loopback or
    /// local addresses to them: what an operator's manifest may say, where only the admins'
    /// list may reach inside the network.
    pub fn naming_only(allowlist: Arc<Allowlist>, self_addresses: Arc<[SocketAddr]>) -> Self {
        Self {
            list_opens_private: false,
            ..Self::new(allowlist, self_addresses)
        }
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// Parses `url` once and applies every rule that needs no lookup. An IP literal comes back
    /// fully decided ([`Destination::Literal`]); a name comes back as [`Destination::Name`].
    pub fn precheck(&self, url: &str) -> Result<Target, EgressError> {
        let url = parse_url(url)?;
        self.precheck_url(url)
    }

    /// As [`precheck`](Self::precheck), for a URL already parsed (a redirect's `Location`
    /// joined onto the previous URL).
    pub fn precheck_url(&self, url: Url) -> Result<Target, EgressError> {
        let origin = origin_of(&url);
        let refuse = |reason, detail: String| EgressError::refused(reason, &origin, detail);

        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(
                RefusalReason::Scheme,
                format!("scheme `{}` is not http or https", url.scheme()),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(
                RefusalReason::Userinfo,
                "the URL carries a user name or password".into(),
            ));
        }
        let host = url
            .host()
            .ok_or_else(|| EgressError::InvalidUrl("the URL has no host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| EgressError::InvalidUrl("the URL has no port".into()))?;
        let (request_host, name) = match host {
            Host::Domain(raw) => {
                let name = normalize_name(raw)
                    .ok_or_else(|| EgressError::InvalidUrl("the host name is malformed".into()))?;
                (RequestHost::Name(name), Some(name))
            }
            Host::Ipv4(ip) => (RequestHost::Ip(IpAddr::V4(ip)), None),
            Host::Ipv6(ip) => (RequestHost::Ip(IpAddr::V6(ip)), None),
        };
        let allowlisted = self.allowlist.allows(&request_host, port);
        if port != 80 && port != 443 && !allowlisted {
            return Err(refuse(
                RefusalReason::Port,
                format!("port {port} is not 80 or 443 and the host is not allowlisted with it"),
            ));
        }
        let destination = match (request_host, name) {
            (_, Some(name)) => {
                if let Some(reason) = local_name_reason(name) {
                    // Metadata names stay refused whatever the allowlist says.
                    if reason == RefusalReason::Metadata || !allowlisted || !self.list_opens_private
                    {
                        return Err(refuse(
                            reason,
                            format!("`{name}` is a local or metadata name"),
                        ));
                    }
                }
                Destination::Name(name.to_owned())
            }
            (RequestHost::Ip(ip), None) => {
                let addr = self
                    .check_address(ip, port, allowlisted)
                    .map_err(|(reason, detail)| refuse(reason, detail))?;
                Destination::Literal(addr)
            }
            (RequestHost::Name(_), None) => {
                return Err(EgressError::InvalidUrl("the host name is malformed".into()));
            }
        };
        Ok(Target {
            url,
            origin,
            port,
            allowlisted,
            destination,
        })
    }

    /// Judges every address a name resolved to: if any one is refused, the whole name is. On
    /// success, the addresses to connect to, with the target's port.
    pub fn check_addresses(
        &self,
        target: &Target,
        ips: &[IpAddr],
    ) -> Result<Vec<SocketAddr>, Refusal> {
        // The client reports an empty answer as a lookup failure first; refusing here keeps an
        // empty list from ever reading as "nothing refused".
        if ips.is_empty() {
            return Err(Refusal::new(
                RefusalReason::PrivateRange,
                &target.origin,
                "the name resolved to no address",
            ));
        }
        let mut checked = Vec::with_capacity(ips.len());
        for &ip in ips {
            let addr = self
                .check_address(ip, target.port, target.allowlisted)
                .map_err(|(reason, detail)| Refusal::new(reason, &target.origin, detail))?;
            if !checked.contains(&addr) {
                checked.push(addr);
            }
        }
        Ok(checked)
    }

    fn check_address(
        &self,
        ip: IpAddr,
        port: u16,
        allowlisted: bool,
    ) -> Result<SocketAddr, (RefusalReason, String)> {
        let addr = SocketAddr::new(ip, port);
        if self.is_self(addr) {
            return Err((
                RefusalReason::SelfConnection,
                format!("{addr} is one of Hive's own listen addresses"),
            ));
        }
        match ranges::classify(ip) {
            None => Ok(addr),
            Some(blocked)
                if allowlisted
                    && self.list_opens_private
                    && blocked.strength == Strength::Overridable =>
            {
                Ok(addr)
            }
            Some(blocked) => Err((blocked.reason, blocked.describe(ip))),
        }
    }

    fn is_self(&self, addr: SocketAddr) -> bool {
        let target_ip = canonical_ip(addr.ip());
        self.self_addresses.iter().any(|listen| {
            if listen.port() != addr.port() {
                return false;
            }
            let listen_ip = canonical_ip(listen.ip());
            listen_ip == target_ip
                || (listen_ip.is_unspecified()
                    && (target_ip.is_loopback() || target_ip.is_unspecified()))
        })
    }
}

/// `::ffff:a.b.c.d` reaches the IPv4 address on a dual-stack socket, so it compares as that.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Parses with the WHATWG parser. A string that does not parse but plainly names another
/// scheme is still a `scheme` refusal, since the scheme is checked before anything else.
pub fn parse_url(text: &str) -> Result<Url, EgressError> {
    match Url::parse(text) {
        Ok(url) => Ok(url),
        Err(error) => {
            let scheme = text
                .split_once(':')
                .map(|(scheme, _)| scheme.trim().to_ascii_lowercase())
                .filter(|scheme| {
                    !scheme.is_empty()
                        && scheme
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                });
            match scheme {
                Some(scheme) if scheme != "http" && scheme != "https" => Err(EgressError::refused(
                    RefusalReason::Scheme,
                    &format!("{scheme}:"),
                    format!("scheme `{scheme}` is not http or https"),
                )),
                _ => Err(EgressError::InvalidUrl(error.to_string())),
            }
        }
    }
}

/// `scheme://host:port` of a URL: what errors and audit records name. No userinfo, path or
/// query, which may carry secrets.
pub fn origin_of(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        (None, _) => format!("{}:", url.scheme()),
    }
}

/// Strips one trailing dot (the absolute form of the same name) and refuses what is left if it
/// is not a plain sequence of non-empty labels.
pub(crate) fn normalize_name(name: &str) -> Option<&str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let well_formed = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    well_formed.then_some(name)
}

/// Names that only mean something inside a network, refused before any lookup.
fn local_name_reason(name: &str) -> Option<RefusalReason> {
    if name.starts_with("metadata") {
        return Some(RefusalReason::Metadata);
    }
    let local = name == "localhost"
        || [".localhost", ".local", ".internal"]
            .iter()
            .any(|suffix| name.ends_with(suffix));
    local.then_some(RefusalReason::LocalName)
}

/// `true` when `ip` is in none of the refused ranges. For callers that only hold an address
/// (the operator CLI, a peer's advertised address).
pub fn is_public(ip: IpAddr) -> bool {
    ranges::classify(ip).is_none()
}

/// The reason `ip` would be refused for a host that is not allowlisted, if any.
pub fn address_refusal(ip: IpAddr) -> Option<RefusalReason> {
    ranges::classify(ip).map(|blocked| blocked.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_redirects_parses_the_environment_form() {
        assert_eq!(MaxRedirects::parse("5").unwrap().get(), 5);
        assert_eq!(MaxRedirects::parse(" 0 ").unwrap().get(), 0);
        assert_eq!(MaxRedirects::parse("10").unwrap().get(), 10);
        for bad in ["11", "-1", "five", "", "300"] {
            let error = MaxRedirects::parse(bad).unwrap_err();
            assert!(error.to_string().contains("from 0 to 10"), "{bad}: {error}");
        }
    }

    #[test]
    fn names_lose_one_trailing_dot_only() {
        assert_eq!(normalize_name("example.com."), Some("example.com"));
        assert_eq!(normalize_name("example.com"), Some("example.com"));
        assert_eq!(normalize_name("example.com.."), None);
        assert_eq!(normalize_name("."), None);
        assert_eq!(normalize_name("a..b"), None);
        assert_eq!(normalize_name(&"a".repeat(64)), None);
    }

    #[test]
    fn local_names() {
        for name in ["localhost", "a.localhost", "printer.local", "db.internal"] {
            assert_eq!(
                local_name_reason(name),
                Some(RefusalReason::LocalName),
                "{name}"
            );
        }
        for name in [
            "metadata",
            "metadata.google.internal",
            "metadata.example.com",
        ] {
            assert_eq!(
                local_name_reason(name),
                Some(RefusalReason::Metadata),
                "{name}"
            );
        }
        for name in [
            "localhost.example.com",
            "local",
            "internal.example",
            "example.com",
        ] {
            assert_eq!(local_name_reason(name), None, "{name}");
        }
    }

    #[test]
    fn defaults_are_the_rules_numbers() {
        let config = EgressConfig::default();
        assert_eq!(config.max_redirects.get(), 5);
        assert_eq!(config.dns_timeout, Duration::from_secs(5));
        assert_eq!(config.connect_timeout, Duration::from_secs(10));
        assert!(config.allowlist.is_empty());
    }
}
