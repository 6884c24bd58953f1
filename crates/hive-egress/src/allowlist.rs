//! The host allowlist: the operator's way to let Hive reach a named private host (an internal
//! LLM gateway, a peer on the company network). Nothing else lets a private address through.
//!
//! Syntax (`HIVE_EGRESS_FETCH_HOST_ALLOWLIST`, comma-separated; the admin list uses the same
//! entries): `host`, `*.suffix`, or an IP literal (`10.0.0.5`, `[fd00::5]`), each optionally
//! followed by `:port`.
//! - An entry without a port covers ports 80 and 443 of that host; `host:port` covers that port
//!   only. A port other than 80/443 is reachable only through an entry that names it.
//! - `*.corp.example` matches every name below `corp.example`, not `corp.example` itself.
//! - Entry hosts go through the same WHATWG host parser as request URLs, so `Bücher.example`,
//!   `BÜCHER.example.` and `xn--bcher-kva.example` are one entry, and `127.1` means `127.0.0.1`.
//! - An allowlisted host may resolve to (or be) a private address, but never a metadata address,
//!   `0.0.0.0`/`::`, multicast or reserved space, and never one of Hive's own listen addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use url::{Host, Url};

/// Which hosts an entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this name (lowercase, IDNA-encoded, no trailing dot).
    Exact(String),
    /// Every name ending in `.{suffix}` (the suffix is stored without the leading dot).
    Suffix(String),
    /// Exactly this IP literal.
    Ip(IpAddr),
}

/// One allowlist entry: a host pattern and, optionally, the one port it opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowlistEntry {
    pub host: HostPattern,
    /// `None`: ports 80 and 443.
    pub port: Option<u16>,
}

/// An entry that does not parse, with where it was and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowlist entry {position} (`{entry}`): {problem}")]
pub struct AllowlistError {
    /// 1-based position in the comma-separated list (1 for a single entry).
    pub position: usize,
    pub entry: String,
    pub problem: &'static str,
}

/// The host of a request URL, as the allowlist compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestHost<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

impl AllowlistEntry {
    fn matches_host(&self, host: &RequestHost<'_>) -> bool {
        match (&self.host, host) {
            (HostPattern::Exact(name), RequestHost::Name(candidate)) => name == candidate,
            (HostPattern::Suffix(suffix), RequestHost::Name(candidate)) => candidate
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
            (HostPattern::Ip(ip), RequestHost::Ip(candidate)) => ip == candidate,
            _ => false,
        }
    }

    fn covers_port(&self, port: u16) -> bool {
        match self.port {
            Some(listed) => listed == port,
            None => port == 80 || port == 443,
        }
    }
}

impl FromStr for AllowlistEntry {
    type Err = AllowlistError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        parse_entry(raw).map_err(|problem| AllowlistError {
            position: 1,
            entry: raw.trim().to_owned(),
            problem,
        })
    }
}

/// Top-level names that are never delegated in the public DNS, so `*.internal` cannot reach
/// anyone else's zone.
const PRIVATE_USE_TOP_LEVEL: [&str; 3] = ["internal", "local", "lan"];

fn parse_entry(raw: &str) -> Result<AllowlistEntry, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("empty entry");
    }
    if raw.contains(['/', '@', '?', '#', '\\']) || raw.contains(char::is_whitespace) {
        return Err("an entry is a host with an optional port, not a URL");
    }
    let (host, port) = split_port(raw)?;
    let port = port.map(parse_port).transpose()?;
    let host = match host.strip_prefix("*.") {
        Some(suffix) => match parse_host(suffix)? {
            // `*.com` would let every name under a public top-level domain reach private
            // addresses: a suffix names a zone of at least two labels, or a private-use one.
            Host::Domain(name)
                if !name.trim_end_matches('.').contains('.')
                    && !PRIVATE_USE_TOP_LEVEL.contains(&name.trim_end_matches('.')) =>
            {
                return Err(
                    "a `*.suffix` needs at least two labels (`*.corp.example`, not `*.com`)",
                );
            }
            Host::Domain(name) => HostPattern::Suffix(name),
            Host::Ipv4(_) | Host::Ipv6(_) => return Err("`*.` goes before a name, not an address"),
        },
        None if host.contains('*') => return Err("`*` may only start an entry, as `*.suffix`"),
        None => match parse_host(host)? {
            Host::Domain(name) => HostPattern::Exact(name),
            Host::Ipv4(ip) => HostPattern::Ip(IpAddr::V4(ip)),
            Host::Ipv6(ip) => HostPattern::Ip(IpAddr::V6(ip)),
        },
    };
    Ok(AllowlistEntry { host, port })
}

fn split_port(raw: &str) -> Result<(&str, Option<&str>), &'static str> {
    if raw.starts_with('[') {
        let end = raw
            .find(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        let (host, rest) = raw.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("after `]` only `:port` may follow"),
            },
        };
    }
    match raw.split_once(':') {
        None => Ok((raw, None)),
        Some((_, port)) if port.contains(':') => Err("write an IPv6 address in brackets: `[::1]`"),
        Some((host, port)) => Ok((host, Some(port))),
    }
}

fn parse_port(port: &str) -> Result<u16, &'static str> {
    const PROBLEM: &str = "the port must be a number from 1 to 65535";
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PROBLEM);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(PROBLEM),
        Ok(port) => Ok(port),
    }
}

/// Runs the host through the WHATWG parser exactly as a request URL's host would be, so that
/// the entry and the request compare equal when they name the same host.
fn parse_host(host: &str) -> Result<Host<String>, &'static str> {
    if host.is_empty() {
        return Err("the host is empty");
    }
    let url = Url::parse(&format!("http://{host}/")).map_err(|_| "not a valid host name")?;
    let parsed = url.host().ok_or("not a valid host name")?.to_owned();
    match parsed {
        Host::Domain(name) => {
            let name = crate::policy::normalize_name(&name).ok_or("not a valid host name")?;
            Ok(Host::Domain(name.to_owned()))
        }
        other => Ok(other),
    }
}

impl fmt::Display for AllowlistEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(name) => f.write_str(name)?,
            HostPattern::Suffix(suffix) => write!(f, "*.{suffix}")?,
            HostPattern::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// A set of allowlist entries. Cheap to clone into an `Arc` and swap whole (see
/// `EgressClient::set_allowlist`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<AllowlistEntry>,
}

impl Allowlist {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses the comma-separated form of `HIVE_EGRESS_FETCH_HOST_ALLOWLIST`. Blank items (a
    /// trailing comma) are skipped; any bad entry fails the whole list, naming its position.
    pub fn parse(list: &str) -> Result<Self, AllowlistError> {
        let mut entries = Vec::new();
        for (index, raw) in list.split(',').enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let entry = parse_entry(raw).map_err(|problem| AllowlistError {
                position: index + 1,
                entry: raw.trim().to_owned(),
                problem,
            })?;
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        Ok(Self { entries })
    }

    pub fn from_entries(entries: impl IntoIterator<Item = AllowlistEntry>) -> Self {
        let mut list = Self::default();
        list.extend(entries);
        list
    }

    /// This list plus `other`'s entries (the environment's list merged with the admin's).
    pub fn merged(&self, other: &Allowlist) -> Allowlist {
        let mut list = self.clone();
        list.extend(other.entries.iter().cloned());
        list
    }

    fn extend(&mut self, entries: impl IntoIterator<Item = AllowlistEntry>) {
        for entry in entries {
            if !self.entries.contains(&entry) {
                self.entries.push(entry);
            }
        }
    }

    pub fn entries(&self) -> &[AllowlistEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an entry covers this host on this port.
    pub(crate) fn allows(&self, host: &RequestHost<'_>, port: u16) -> bool {
        self.entries
            .iter()
            .any(|entry| entry.matches_host(host) && entry.covers_port(port))
    }
}

impl fmt::Display for Allowlist {
    /// The canonical comma-separated form, which [`Allowlist::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{entry}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(raw: &str) -> AllowlistEntry {
        raw.parse().unwrap()
    }

    #[test]
    fn parses_names_suffixes_addresses_and_ports() {
        assert_eq!(
            entry("LLM.Corp.Example"),
            AllowlistEntry {
                host: HostPattern::Exact("llm.corp.example".into()),
                port: None
            }
        );
        assert_eq!(
            entry("*.corp.example:8443"),
            AllowlistEntry {
                host: HostPattern::Suffix("corp.example".into()),
                port: Some(8443)
            }
        );
        assert_eq!(entry("127.0.0.1:9000").to_string(), "127.0.0.1:9000");
        assert_eq!(entry("[::1]:9000").to_string(), "[::1]:9000");
        assert_eq!(entry("[FD00::5]").to_string(), "[fd00::5]");
        assert_eq!(entry("gateway.example.").to_string(), "gateway.example");
        assert_eq!(entry("bücher.example").to_string(), "xn--bcher-kva.example");
        // The WHATWG parser reads `127.1` as an address, so the entry does too.
        assert_eq!(entry("127.1").to_string(), "127.0.0.1");
    }

    #[test]
    fn refuses_malformed_entries_with_their_position() {
        let bad = [
            ("a.example,*", 2),
            ("ok.example, http://x.example/", 2),
            ("x.example:0", 1),
            ("x.example:70000", 1),
            ("x.example:", 1),
            ("x.example:+80", 1),
            ("foo.*.example", 1),
            ("*.10.0.0.1", 1),
            ("::1", 1),
            ("[::1", 1),
            ("[::1]x", 1),
            ("user@host.example", 1),
            ("a b.example", 1),
            ("*.", 1),
            ("host..example", 1),
        ];
        for (list, position) in bad {
            let error = Allowlist::parse(list).unwrap_err();
            assert_eq!(error.position, position, "{list}: {error}");
        }
        let message = Allowlist::parse("good.example,x.example:0")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "allowlist entry 2 (`x.example:0`): the port must be a number from 1 to 65535"
        );
    }

    #[test]
    fn list_round_trips_and_skips_blanks_and_duplicates() {
        let list = Allowlist::parse(" a.example , *.b.example:8080,,a.example, ").unwrap();
        assert_eq!(list.to_string(), "a.example,*.b.example:8080");
        assert_eq!(Allowlist::parse(&list.to_string()).unwrap(), list);
        assert!(Allowlist::parse("").unwrap().is_empty());
    }

    #[test]
    fn exact_suffix_and_port_matching() {
        let list = Allowlist::parse("api.example,*.corp.example:8443,10.0.0.5:9000").unwrap();
        let name = RequestHost::Name;
        assert!(list.allows(&name("api.example"), 443));
        assert!(list.allows(&name("api.example"), 80));
        assert!(!list.allows(&name("api.example"), 8443));
        assert!(!list.allows(&name("x.api.example"), 443));
        assert!(list.allows(&name("llm.corp.example"), 8443));
        assert!(list.allows(&name("a.b.corp.example"), 8443));
        assert!(!list.allows(&name("llm.corp.example"), 443));
        assert!(!list.allows(&name("corp.example"), 8443));
        assert!(!list.allows(&name("evilcorp.example"), 8443));
        let ip = |s: &str| RequestHost::Ip(s.parse().unwrap());
        assert!(list.allows(&ip("10.0.0.5"), 9000));
        assert!(!list.allows(&ip("10.0.0.5"), 443));
        assert!(!list.allows(&ip("::ffff:10.0.0.5"), 9000));
        assert!(!list.allows(&name("10.0.0.5"), 9000));
    }

    #[test]
    fn merged_keeps_both() {
        let env = Allowlist::parse("a.example").unwrap();
        let admin = Allowlist::parse("b.example,a.example").unwrap();
        assert_eq!(env.merged(&admin).to_string(), "a.example,b.example");
    }
}
