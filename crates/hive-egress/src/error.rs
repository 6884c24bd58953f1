//! Typed outcomes. A refusal is a policy decision and carries a [`RefusalReason`] that metrics
//! and the audit log record as is; everything else (bad URL, DNS failure, connect, TLS, HTTP) is a
//! failure and kept apart so that an operator can tell "Hive said no" from "the far side is down".
//!
//! Every error names the URL's origin (`scheme://host:port`) and never its path, query or
//! userinfo, which may hold secrets. Library error texts that could repeat the URL are not
//! passed through (reqwest's are stripped of it first).

use std::fmt;

/// Why a request was refused. [`RefusalReason::as_str`] is the stable name used in metrics labels,
/// audit records and the `hive egress check` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalReason {
    /// Not http or https.
    Scheme,
    /// The URL carries a user name or password.
    Userinfo,
    /// Not 80 or 443, and the host is not allowlisted with that port.
    Port,
    /// `localhost`, `*.localhost`, `*.local`, `*.internal`: names that only mean something inside.
    LocalName,
    /// An address in a refused range (private, loopback, link-local, documentation, reserved…).
    PrivateRange,
    /// A cloud metadata name or address: refused even for allowlisted hosts.
    Metadata,
    /// An IPv6 address whose embedded IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) is
    /// itself refused.
    EmbeddedIpv4,
    /// More redirects than the configured maximum.
    RedirectLimit,
    /// The address is one Hive itself listens on.
    SelfConnection,
    /// The response body is larger than the call site's cap.
    TooLarge,
    /// The call site's total time ran out.
    Timeout,
    /// A hosted agent asked for a host that neither its own list nor the admins' allowlist
    /// names: its way out is closed by default.
    NotListed,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 12] = [
        Self::Scheme,
        Self::Userinfo,
        Self::Port,
        Self::LocalName,
        Self::PrivateRange,
        Self::Metadata,
        Self::EmbeddedIpv4,
        Self::RedirectLimit,
        Self::SelfConnection,
        Self::TooLarge,
        Self::Timeout,
        Self::NotListed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheme => "scheme",
            Self::Userinfo => "userinfo",
            Self::Port => "port",
            Self::LocalName => "local_name",
            Self::PrivateRange => "private_range",
            Self::Metadata => "metadata",
            Self::EmbeddedIpv4 => "embedded_ipv4",
            Self::RedirectLimit => "redirect_limit",
            Self::SelfConnection => "self_connection",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::NotListed => "not_listed",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request Hive refused to make (or to finish). `origin` is what the audit record names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound request to {origin} refused ({reason}): {detail}")]
pub struct Refusal {
    pub reason: RefusalReason,
    /// `scheme://host:port` of the URL refused; never its path, query or userinfo.
    pub origin: String,
    /// Human text: which rule, which range or address.
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(reason: RefusalReason, origin: &str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            origin: origin.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Everything that can go wrong with an outbound request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// Policy said no. The only variant with a [`RefusalReason`].
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The URL does not parse, or its host is malformed. The URL itself is not repeated.
    #[error("not a usable URL: {0}")]
    InvalidUrl(String),
    /// The name did not resolve (no answer, DNS timeout, resolver failure).
    #[error("could not resolve {origin}: {detail}")]
    Resolve { origin: String, detail: String },
    /// TCP connect failed or timed out.
    #[error("could not connect to {origin}: {detail}")]
    Connect { origin: String, detail: String },
    /// The TLS handshake failed, certificate verification included.
    #[error("TLS with {origin} failed: {detail}")]
    Tls { origin: String, detail: String },
    /// The HTTP exchange failed after connecting (protocol error, reset, bad redirect).
    #[error("HTTP exchange with {origin} failed: {detail}")]
    Http { origin: String, detail: String },
    /// The request could not be built (for example a header reqwest will not send).
    #[error("the request to {origin} could not be built: {detail}")]
    Request { origin: String, detail: String },
}

impl EgressError {
    /// The refusal reason, if this is a refusal.
    pub fn reason(&self) -> Option<RefusalReason> {
        match self {
            Self::Refused(refusal) => Some(refusal.reason),
            _ => None,
        }
    }

    /// A stable name for metrics: the refusal reason, or the kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refused(refusal) => refusal.reason.as_str(),
            Self::InvalidUrl(_) => "invalid_url",
            Self::Resolve { .. } => "resolve",
            Self::Connect { .. } => "connect",
            Self::Tls { .. } => "tls",
            Self::Http { .. } => "http",
            Self::Request { .. } => "request",
        }
    }

    /// The origin the error is about, when the URL got far enough to have one.
    pub fn origin(&self) -> Option<&str> {
        match self {
            Self::Refused(refusal) => Some(&refusal.origin),
            Self::InvalidUrl(_) => None,
            Self::Resolve { origin, .. }
            | Self::Connect { origin, .. }
            | Self::Tls { origin, .. }
            | Self::Http { origin, .. }
            | Self::Request { origin, .. } => Some(origin),
        }
    }

    pub(crate) fn refused(reason: RefusalReason, origin: &str, detail: impl Into<String>) -> Self {
        Self::Refused(Refusal::new(reason, origin, detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_the_documented_ones() {
        let names: Vec<&str> = RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "scheme",
                "userinfo",
                "port",
                "local_name",
                "private_range",
                "metadata",
                "embedded_ipv4",
                "redirect_limit",
                "self_connection",
                "too_large",
                "timeout",
                "not_listed"
            ]
        );
    }
}
