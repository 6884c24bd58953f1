//! Federation between Hive instances as the API shows it: the status, the peer directory and
//! the public mesh descriptor (`/.well-known/hive-mesh.json`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The schema name of [`MeshDescriptor`].
pub const DESCRIPTOR_SCHEMA: &str = "hive-mesh-v1";

/// How federation tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FederationMode {
    /// EdDSA, one key pair per instance, peers' public keys pinned.
    Ed25519,
    /// HS256 with one secret shared by the whole mesh.
    SharedSecret,
}

/// `GET /api/v1/mesh/federation/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederationStatus {
    pub enabled: bool,
    /// This instance's origin (the `iss` of its tokens).
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<FederationMode>,
    /// The `kid` of the tokens this instance mints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The Ed25519 public key (base64url), in Ed25519 mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The `aud` inbound tokens must carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub require_audience: bool,
    pub require_jti: bool,
    pub legacy_secret_accepted: bool,
    pub token_ttl_seconds: u64,
    pub clock_skew_leeway_seconds: u64,
    /// Whether inbound calls are limited to `MESH_FEDERATION_INBOUND_ALLOWLIST`.
    pub inbound_allowlist: bool,
    pub peers: Vec<PeerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerStatus {
    pub index: usize,
    pub origin: String,
    /// Whether the peer may call in (its key is pinned, or the mesh shares a secret).
    pub can_call_in: bool,
    /// With `?probe=1`: what fetching the peer's agent card found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<PeerProbe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerProbe {
    pub reachable: bool,
    /// The HTTP status of the card request, when one came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The card's `name`, when it was an agent card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// Why it failed (`refused:private_address`, `timeout`, `not_a_card`…), never a body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// `GET /api/v1/mesh/federation/directory`: the configured peers, without a network call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederationDirectory {
    pub peers: Vec<DirectoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryEntry {
    pub index: usize,
    pub origin: String,
    pub agent_card_url: String,
    pub jsonrpc_url: String,
    pub mesh_descriptor_url: String,
}

/// `GET /.well-known/hive-mesh.json`: what a peer's operator needs to pair with this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshDescriptor {
    /// [`DESCRIPTOR_SCHEMA`].
    pub schema: String,
    pub origin: String,
    pub a2a: MeshA2aUrls,
    pub federation: MeshFederation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshA2aUrls {
    pub agent_card: String,
    pub jsonrpc: String,
    /// Present when the public tier is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_jsonrpc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshFederation {
    pub enabled: bool,
    /// `EdDSA` or `HS256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The Ed25519 public key (base64url) peers pin, in Ed25519 mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The header a peer's token goes in.
    pub token_header: String,
}
