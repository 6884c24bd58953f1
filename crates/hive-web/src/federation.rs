//! Federation for admins: this instance's identity in the mesh, its peers (with a probe of
//! each on request) and the public tier's state. Settings come from the configuration; the
//! page shows them, nothing here changes them.

use crate::page::{Chrome, render};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use hive_a2a::jsonrpc::{Method, Version};
use hive_core::kernel::caller::{Caller, RequestMeta};
use hive_proto::mesh::{FederationMode, PeerProbe};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use http::StatusCode;

struct PeerLine {
    index: usize,
    origin: String,
    can_call_in: bool,
    agent_card_url: String,
    jsonrpc_url: String,
    /// After a probe: what fetching the peer's card found, in words.
    probe: Option<String>,
    reachable: bool,
}

/// This instance in the mesh (`None`: federation is off).
struct Identity {
    mode: &'static str,
    key_id: String,
    public_key: Option<String>,
    audience: Option<String>,
    token_ttl_seconds: u64,
    inbound_allowlist: bool,
}

struct PublicKeyLine {
    name: String,
    methods: String,
}

/// The public tier (`None`: it is off).
struct PublicTierState {
    methods: String,
    keys: Vec<PublicKeyLine>,
    max_body_bytes: usize,
}

#[derive(Template)]
#[template(path = "federation.html")]
struct FederationPage<'a> {
    chrome: Chrome,
    title: &'a str,
    origin: String,
    identity: Option<Identity>,
    peers: Vec<PeerLine>,
    probed: bool,
    public_tier: Option<PublicTierState>,
}

fn methods(methods: &[Method]) -> String {
    methods
        .iter()
        .filter_map(|method| method.name(Version::V1_0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn probe_words(probe: &PeerProbe) -> String {
    match (&probe.agent_name, &probe.error, probe.status) {
        (Some(name), _, _) if probe.reachable => format!("reachable: its card names {name}"),
        (_, Some(error), Some(status)) => format!("failed: {error} (HTTP {status})"),
        (_, Some(error), None) => format!("failed: {error}"),
        (_, None, Some(status)) => format!("answered HTTP {status}"),
        _ if probe.reachable => "reachable".to_owned(),
        _ => "unreachable".to_owned(),
    }
}

/// The page; with `probe`, every peer is probed (its card fetched now, each probe audited).
async fn page_of(
    state: &AppState,
    caller: &Caller,
    probe: bool,
    meta: &RequestMeta,
) -> FederationPage<'static> {
    let hive = &state.hive;
    let (identity, peers) = match &hive.federation {
        None => (None, Vec::new()),
        Some(federation) => {
            let status = federation.status(probe.then_some(caller), meta).await;
            let directory = federation.directory();
            let peers = status
                .peers
                .iter()
                .map(|peer| {
                    let listed = directory
                        .peers
                        .iter()
                        .find(|entry| entry.index == peer.index);
                    PeerLine {
                        index: peer.index,
                        origin: peer.origin.clone(),
                        can_call_in: peer.can_call_in,
                        agent_card_url: listed
                            .map(|entry| entry.agent_card_url.clone())
                            .unwrap_or_default(),
                        jsonrpc_url: listed
                            .map(|entry| entry.jsonrpc_url.clone())
                            .unwrap_or_default(),
                        probe: peer.probe.as_ref().map(probe_words),
                        reachable: peer.probe.as_ref().is_some_and(|probe| probe.reachable),
                    }
                })
                .collect();
            let identity = Identity {
                mode: match status.mode {
                    Some(FederationMode::Ed25519) => "Ed25519 keys (each peer's public key pinned)",
                    Some(FederationMode::SharedSecret) => "a secret shared by the whole mesh",
                    None => "unknown",
                },
                key_id: status.key_id.unwrap_or_default(),
                public_key: status.public_key,
                audience: status.audience,
                token_ttl_seconds: status.token_ttl_seconds,
                inbound_allowlist: status.inbound_allowlist,
            };
            (Some(identity), peers)
        }
    };
    let public_tier = hive.public_tier.as_ref().map(|tier| PublicTierState {
        methods: methods(tier.allowed_methods()),
        keys: tier
            .keys()
            .map(|(name, allowed)| PublicKeyLine {
                name: name.to_owned(),
                methods: methods(allowed),
            })
            .collect(),
        max_body_bytes: tier.max_body_bytes(),
    });
    FederationPage {
        chrome: Chrome::of(caller),
        title: "Federation",
        origin: hive.config.public_origin(),
        identity,
        peers,
        probed: probe,
        public_tier,
    }
}

pub async fn page(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Response {
    render(
        StatusCode::OK,
        &page_of(&state, &caller, false, &meta).await,
    )
}

pub async fn probe(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
) -> Response {
    render(StatusCode::OK, &page_of(&state, &caller, true, &meta).await)
}
