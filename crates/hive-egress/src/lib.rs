//! The SSRF-guarded HTTP client. Every outbound request Hive makes (agent cards, remote agents,
//! LLM providers, webhooks, OIDC discovery, federation peers) goes through this crate and no
//! other. The rules are those of `SECURITY-RULES.md`, "Outbound requests (SSRF)"; `docs/egress.md`
//! explains them for operators.
//!
//! - [`EgressPolicy`] decides a URL without network for IP literals and judges resolved
//!   addresses; [`EgressClient::check`] adds the lookup but never connects.
//! - [`EgressClient::send`] resolves once per hop through a [`Resolve`], refuses the whole name
//!   if any address is refused, connects only to the checked addresses, follows redirects by
//!   hand (GET and HEAD only), and caps body size and total time per call ([`CallLimits`]).
//! - Every refusal is an [`EgressError::Refused`] with a [`RefusalReason`] and the URL's origin.
//! - [`EgressProxy`] is the HTTP(S) proxy a hosted agent's sandbox gets as its only way out:
//!   each CONNECT or `http://` request is decided by [`EgressClient::check_for_agent`] (closed
//!   by default: the admins' allowlist, or the agent's own hosts on public addresses only), and
//!   carried to a checked address only.

mod allowlist;
mod client;
mod error;
mod policy;
mod proxy;
mod ranges;
mod resolve;

pub use allowlist::{Allowlist, AllowlistEntry, AllowlistError, HostPattern};
pub use client::{CallLimits, Decision, EgressClient, EgressRequest, EgressResponse};
pub use error::{EgressError, Refusal, RefusalReason};
pub use policy::{
    ConfigError, Destination, EgressConfig, EgressPolicy, MaxRedirects, Target, address_refusal,
    is_public, origin_of, parse_url,
};
pub use proxy::{EgressProxy, ProxyCounts, ProxyEvents, ProxyLimits, ProxyStats};
pub use resolve::{HickoryResolver, Resolve, ResolveError, ScriptedResolver};
