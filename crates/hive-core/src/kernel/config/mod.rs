//! The one typed, validated configuration of a Hive process.
//!
//! Loaded once at start from the environment, an optional TOML file (`HIVE_CONFIG`) and
//! `NAME_FILE` variables for every secret; never read again afterwards (no handler reads the
//! environment). An invalid value stops the process with a message naming the variable and the
//! rule; `hive config check` runs the same validation.

pub mod backup;
mod billing;
mod http;
mod load;
mod mesh;
mod oidc;
mod report;
mod secret_rules;
mod sources;
pub mod spec;
mod traces;

use ipnet::IpNet;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub use mesh::normalize_peer_origin;
pub use report::{ReportLine, ValueSource, render_check};
pub use sources::{ConfigError, EnvSource};

/// Development (the default) or production (`HIVE_ENV=production`): production refuses
/// generated, short or default-looking secrets and a plain-http `AUTH_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON lines otherwise (a file, a pipe, a service manager).
    Auto,
    Json,
    Pretty,
}

impl LogFormat {
    /// Whether the logs are JSON lines, when their output `is_terminal` or not.
    pub fn is_json(self, is_terminal: bool) -> bool {
        match self {
            Self::Auto => !is_terminal,
            Self::Json => true,
            Self::Pretty => false,
        }
    }
}

/// Which header names the client when the socket peer is a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpSource {
    /// `X-Real-IP`, set by the proxy.
    RealIp,
    /// The left-most `X-Forwarded-For` entry.
    XffFirst,
    /// The right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    XffLast,
}

/// Where the database is.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// A SQLite file (the embedded default: `<data dir>/hive.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL URL; secret because it may hold a password.
    Postgres(SecretString),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    /// `HIVE_DB_MAX_CONNECTIONS` (default 10, 1..=200).
    pub max_connections: u32,
    /// `HIVE_AUTO_MIGRATE` (default true): `hive serve` applies pending migrations itself.
    pub auto_migrate: bool,
}

/// Secrets as supplied by the operator; missing ones are generated (development) or refused
/// (production) by [`crate::kernel::runtime_secrets`].
#[derive(Debug, Clone, Default)]
pub struct SuppliedSecrets {
    /// `AUTH_SECRET` / `AUTH_SECRET_FILE`.
    pub auth_secret: Option<SecretString>,
    /// `ENCRYPTION_KEY` / `ENCRYPTION_KEY_FILE` (64 hex characters).
    pub encryption_key: Option<SecretString>,
    /// `HIVE_SETUP_TOKEN` / `HIVE_SETUP_TOKEN_FILE`.
    pub setup_token: Option<SecretString>,
    /// `HIVE_INTERNAL_TOKEN` / `HIVE_INTERNAL_TOKEN_FILE`.
    pub internal_token: Option<SecretString>,
    /// `MESH_BUS_HMAC_SECRET` / `MESH_BUS_HMAC_SECRET_FILE`: signs event bus messages (unset, a
    /// key derived from the master key does).
    pub bus_hmac_secret: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `HIVE_LISTEN` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `HIVE_METRICS_LISTEN`: where Prometheus metrics are served (off when unset).
    pub metrics_listen: Option<SocketAddr>,
    /// `HIVE_BODY_LIMIT_BYTES` (default 1 MiB, 1 KiB..=64 MiB).
    pub body_limit_bytes: usize,
    /// `HIVE_REQUEST_TIMEOUT_SECONDS` (default 30, 1..=600): time to produce response headers.
    pub request_timeout: Duration,
    /// `HIVE_TRUSTED_PROXIES`: comma-separated IPs and CIDRs (default none).
    pub trusted_proxies: Vec<IpNet>,
    /// `HIVE_CLIENT_IP_SOURCE` (default `xff_last`); used only for trusted peers.
    pub client_ip_source: ClientIpSource,
    /// `HIVE_SHUTDOWN_GRACE_SECONDS` (default 30, 0..=3600).
    pub shutdown_grace: Duration,
    /// Limits on connections, before any request is read.
    pub connections: ConnectionLimits,
}

/// What one client, and all of them together, may hold open; a connection that breaks a limit
/// is closed without reading from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS` (default 10, 1..=300): time to send a whole
    /// request head, from the connection's start or the end of the previous response.
    pub header_read_timeout: Duration,
    /// `HIVE_HTTP_IDLE_TIMEOUT_SECONDS` (default 60, 1..=3600): an HTTP/2 connection with no
    /// stream open this long is closed; an HTTP/1 connection is closed after the shorter of this
    /// and the head-read timeout (hyper restarts its head timer after each response).
    pub idle_timeout: Duration,
    /// `HIVE_HTTP_MAX_CONNECTIONS` (default 10000, 16..=1000000): open connections in all.
    pub max_connections: usize,
    /// `HIVE_HTTP_MAX_CONNECTIONS_PER_IP` (default 256, 1..=100000): open connections from one
    /// address (the socket peer; trusted proxies count only against the total).
    pub max_connections_per_ip: usize,
    /// `HIVE_HTTP_MAX_STREAMS_PER_CONNECTION` (default 100, 1..=1000): concurrent HTTP/2
    /// streams on one connection.
    pub max_streams_per_connection: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            max_streams_per_connection: 100,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `LOG_LEVEL` (default `info`): a level or `target=level` directives.
    pub level: String,
    /// `LOG_FORMAT` (default `auto`).
    pub format: LogFormat,
}

/// Free space in the data directory under which the system health report calls the disk
/// degraded, and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskThresholds {
    pub degraded_below_bytes: u64,
    pub down_below_bytes: u64,
}

/// `OTEL_*`: traces exported over OTLP/HTTP (present only when an endpoint is set and the SDK
/// is not disabled).
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The full URL batches are posted to (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` followed by `/v1/traces`).
    pub endpoint: Url,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: sent with every batch (often a collector's credential).
    pub headers: Vec<(String, SecretString)>,
    /// `OTEL_SERVICE_NAME` (default `hive`).
    pub service_name: String,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// `HIVE_JOBS_TICK_SECONDS` (default 60, 1..=3600): how often the leader looks for due jobs.
    pub tick: Duration,
    /// `HIVE_JOB_HISTORY_PRUNE_INTERVAL_SECONDS` (default 3600, 1..=86400).
    pub history_prune_interval: Duration,
    /// `HIVE_JOB_HISTORY_RETENTION_DAYS` (default 30, 1..=3650).
    pub history_retention_days: u32,
    /// `AUDIT_RETENTION_DAYS` (default 365, 1..=36500): audit records older than this are
    /// deleted, leaving a signed checkpoint.
    pub audit_retention_days: u32,
    /// `HIVE_CONVERSATION_RETENTION_DAYS` (default 90, 0..=36500; 0 keeps them): conversations
    /// with no message for this long are deleted with their messages.
    pub conversation_retention_days: u32,
}

/// `HIVE_BACKUP_*`: encrypted backups of the database and the data directory.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// `HIVE_BACKUP_DIR` (default `<data dir>/backups`): where archives are written (0700,
    /// each archive 0600).
    pub dir: PathBuf,
    /// `HIVE_BACKUP_RECIPIENTS`: the age public keys (`age1…`) archives are encrypted to; none,
    /// no backup can be made.
    pub recipients: Vec<String>,
    /// `HIVE_BACKUP_SCHEDULE`: the five-field cron (UTC) of the leader's backups, checked at
    /// load; none, off.
    pub schedule: Option<croner::Cron>,
    /// `HIVE_BACKUP_KEEP` (default 7; 0: no limit by count): archives kept.
    pub keep: u32,
    /// `HIVE_BACKUP_KEEP_DAYS` (default 0: no limit by age): archives older are deleted.
    pub keep_days: u32,
    /// `HIVE_BACKUP_S3_*`: a copy of every archive in an S3-compatible bucket.
    pub s3: Option<BackupS3Config>,
}

/// `HIVE_BACKUP_S3_*`: the S3-compatible bucket archives are uploaded to.
#[derive(Debug, Clone)]
pub struct BackupS3Config {
    /// `HIVE_BACKUP_S3_BUCKET`.
    pub bucket: String,
    /// `HIVE_BACKUP_S3_ENDPOINT`: the service's URL (MinIO, Ceph…); none, AWS's.
    pub endpoint: Option<Url>,
    /// `HIVE_BACKUP_S3_REGION` (default `us-east-1`).
    pub region: String,
    /// `HIVE_BACKUP_S3_PREFIX` (default none): the keys' prefix (`hive/` puts them in `hive/`).
    pub prefix: String,
    /// `HIVE_BACKUP_S3_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `HIVE_BACKUP_S3_SECRET_ACCESS_KEY`.
    pub secret_access_key: SecretString,
}

/// The mail relay for password-reset links.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `SMTP_URL`; secret because it may hold a password.
    pub url: SecretString,
    /// `SMTP_FROM` (default `hive@<AUTH_URL host>`).
    pub from: String,
}

/// Where A2A tasks are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStoreKind {
    Memory,
    Redis,
    Database,
}

/// The A2A gateway: who may call it and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct A2aConfig {
    /// `A2A_JSONRPC_MIN_ROLE` (default viewer): the least role that may call the JSON-RPC
    /// endpoints.
    pub min_role: hive_proto::Role,
    /// `A2A_DEFAULT_AGENT`: the agent (name or id) a message to the instance endpoint goes to
    /// when its metadata names no skill.
    pub default_agent: Option<String>,
    /// `A2A_JSONRPC_MAX_BODY_BYTES` (default 1 MiB, 1 KiB..=16 MiB).
    pub max_body_bytes: usize,
    /// `A2A_STREAMS_PER_IP` (default 10) and `A2A_STREAMS_PER_USER` (default 5): open streams.
    pub streams_per_ip: u32,
    pub streams_per_user: u32,
    /// `A2A_STREAM_IDLE_SECONDS` (default 300): a stream without an event this long is closed.
    pub stream_idle: Duration,
}

/// The operator's part of the egress rules (the admin's allowlist in the database is merged in
/// at run time).
#[derive(Debug, Clone)]
pub struct EgressSettings {
    /// `HIVE_EGRESS_FETCH_HOST_ALLOWLIST`.
    pub allowlist: hive_egress::Allowlist,
    /// `HIVE_EGRESS_FETCH_MAX_REDIRECTS` (default 5, at most 10).
    pub max_redirects: hive_egress::MaxRedirects,
}

/// Single sign-on: `OIDC_PROVIDERS`, `OIDC_AUTO_CREATE` and each provider's `OIDC_<ID>_*`.
#[derive(Debug, Clone, Default)]
pub struct OidcConfig {
    /// `OIDC_AUTO_CREATE` (default false): a first sign-in without a linked or matching
    /// account creates one.
    pub auto_create: bool,
    /// In the order of `OIDC_PROVIDERS`.
    pub providers: Vec<OidcProvider>,
}

/// One OpenID Connect provider.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// The id of `OIDC_PROVIDERS` (lower case): in URLs, links and audit records.
    pub id: String,
    /// `OIDC_<ID>_DISPLAY_NAME` (default the id).
    pub display_name: String,
    /// `OIDC_<ID>_ISSUER` as configured (trimmed): compared exactly with the discovery
    /// document's `issuer` and every ID token's `iss`.
    pub issuer: String,
    /// The same, parsed (https, or http to a loopback host outside production).
    pub issuer_url: Url,
    /// `OIDC_<ID>_CLIENT_ID`.
    pub client_id: String,
    /// `OIDC_<ID>_CLIENT_SECRET` / `_FILE`.
    pub client_secret: SecretString,
    /// `OIDC_<ID>_SCOPES` (default `openid email profile`; always holds `openid`).
    pub scopes: Vec<String>,
    /// `OIDC_<ID>_ROLE_CLAIM`: the claim the mapping reads.
    pub role_claim: Option<String>,
    /// `OIDC_<ID>_ROLE_MAP`: claim value → role.
    pub role_map: Vec<(String, hive_proto::Role)>,
    /// `OIDC_<ID>_DEFAULT_ROLE` (default viewer).
    pub default_role: hive_proto::Role,
}

/// Federation, the public tier and the WAN carrier; each off unless configured.
#[derive(Debug, Clone, Default)]
pub struct MeshConfig {
    /// `None` unless `MESH_FEDERATION_ENABLED=true`.
    pub federation: Option<FederationConfig>,
    /// `None` unless `A2A_PUBLIC_JSONRPC_ENABLED=true`.
    pub public_tier: Option<PublicTierConfig>,
    pub wan: WanConfig,
}

/// How this instance signs the tokens it presents to peers, and how it checks theirs.
#[derive(Debug, Clone)]
pub enum FederationKeyMode {
    /// HS256 with `MESH_FEDERATION_SHARED_SECRET`: every peer holds the same key.
    SharedSecret(Arc<hive_crypto::federation::SharedSecret>),
    /// EdDSA with this instance's seed (read from `MESH_FEDERATION_ED25519_SEED_FILE` at
    /// start) and each peer's pinned public key (`MESH_FEDERATION_PEER_KEYS`).
    Ed25519 {
        seed: Arc<hive_crypto::federation::Ed25519Seed>,
    },
}

/// Keys one peer may have pinned at once: the current one and those being rotated in or out.
pub const MAX_KEYS_PER_PEER: usize = 4;

/// One peer of `MESH_FEDERATION_PEERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationPeer {
    /// `scheme://host[:port]`: the peer's identity (`iss` of its tokens, `aud` of ours).
    pub origin: String,
    /// Its Ed25519 public keys, from `MESH_FEDERATION_PEER_KEYS` and the signed peer manifest
    /// (`MESH_FEDERATION_PEER_MANIFEST_FILE`): more than one while a key is being rotated (at
    /// most [`MAX_KEYS_PER_PEER`]).
    pub public_keys: Vec<[u8; 32]>,
}

#[derive(Debug, Clone)]
pub struct FederationConfig {
    /// `MESH_FEDERATION_PEERS`, in order (a peer's index is its position).
    pub peers: Vec<FederationPeer>,
    pub mode: FederationKeyMode,
    /// `MESH_FEDERATION_SHARED_SECRET`: the legacy header's value…
    pub shared_secret: Option<SecretString>,
    /// …and, checked for strength, the HS256 key.
    pub shared_key: Option<Arc<hive_crypto::federation::SharedSecret>>,
    /// `MESH_FEDERATION_JWT_AUDIENCE`: one audience for the whole mesh. Unset, inbound tokens
    /// must name the `AUTH_URL` origin and outbound ones name the peer's origin.
    pub audience: Option<String>,
    /// `MESH_FEDERATION_JWT_TTL_SECONDS` (default 300, 30..=3600).
    pub jwt_ttl: Duration,
    /// `MESH_FEDERATION_JWT_CLOCK_SKEW_LEEWAY_SECONDS` (default 30, 0..=300).
    pub leeway: Duration,
    /// `MESH_FEDERATION_JWT_REQUIRE_AUDIENCE` (default true).
    pub require_audience: bool,
    /// `MESH_FEDERATION_JWT_REQUIRE_JTI` (default true).
    pub require_jti: bool,
    /// `MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET` (default false).
    pub allow_legacy_secret: bool,
    /// `MESH_FEDERATION_PROXY_SEND_SECRET` (default false): proxied calls carry the raw
    /// secret instead of a token.
    pub proxy_send_secret: bool,
    /// `MESH_FEDERATION_PROXY_TIMEOUT_MS` (default 15000, 100..=120000).
    pub proxy_timeout: Duration,
    /// `MESH_FEDERATION_INBOUND_ALLOWLIST` (default: any address).
    pub inbound_allowlist: Vec<IpNet>,
}

/// One key of `A2A_PUBLIC_JSONRPC_API_KEYS`: only its SHA-256 is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicApiKey {
    pub name: String,
    pub hash: [u8; 32],
    /// The methods this key may call (default: the allowed methods).
    pub methods: Option<Vec<hive_a2a::jsonrpc::Method>>,
}

impl std::fmt::Debug for PublicApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicApiKey")
            .field("name", &self.name)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTierConfig {
    /// `A2A_PUBLIC_JSONRPC_ALLOWED_METHODS` (required, 1 to 32).
    pub allowed_methods: Vec<hive_a2a::jsonrpc::Method>,
    /// `A2A_PUBLIC_JSONRPC_API_KEYS`.
    pub api_keys: Vec<PublicApiKey>,
    /// `A2A_PUBLIC_JSONRPC_MAX_BODY_BYTES` (default 64 KiB, 1 KiB..=1 MiB).
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct WanConfig {
    /// Set by `NATS_URL`: envelopes also travel over NATS JetStream.
    pub nats: Option<NatsConfig>,
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `NATS_URL`; secret because it may hold credentials.
    pub url: SecretString,
    /// `MESH_WAN_NATS_STREAM` (default `HIVE_WAN`).
    pub stream: String,
    /// `MESH_WAN_NATS_SUBJECT` (default `hive.wan.envelopes`).
    pub subject: String,
    /// `MESH_WAN_NATS_CONSUMER` (default `hive-<hash of the AUTH_URL origin>`): the durable
    /// consumer this instance's replicas share, so each envelope is taken once per instance.
    pub consumer: String,
    /// `MESH_WAN_DEDUP_WINDOW_SECONDS` (default 120, 1..=86400): the stream's duplicate window.
    pub dedup_window: Duration,
}

/// Hosted agents: where and how their code runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// `HIVE_SANDBOX` (default `process`; `off`: hosted agents cannot start on this replica).
    pub enabled: bool,
    /// `HIVE_SANDBOX_BWRAP` (default `/usr/bin/bwrap`).
    pub bwrap: PathBuf,
    /// `HIVE_SANDBOX_MAX_RUNNING` (default 32, 1..=4096): hosted agents running on this replica.
    pub max_running: u32,
    /// `HIVE_SANDBOX_MAX_PER_USER` (default 8, 1..=4096): one account's hosted agents running
    /// at once, on all replicas together.
    pub max_per_user: u32,
    /// `HIVE_SANDBOX_LOG_BYTES` (default 4 MiB, 64 KiB..=1 GiB): each agent's output kept on
    /// disk.
    pub log_bytes: u64,
    /// `HIVE_SANDBOX_STOP_GRACE_SECONDS` (default 10, 0..=300): between the stop signal and
    /// the kill.
    pub stop_grace: Duration,
    /// `HIVE_NODE_URL`: where the other replicas reach this one's API (calls to the hosted
    /// agents it runs are forwarded there); none in the embedded shape.
    pub node_url: Option<Url>,
    /// The sandboxes' init program: the `hive` binary sets itself here (run as
    /// `hive sandbox-init`); without one, hosted agents cannot run in this process.
    pub init_program: Option<PathBuf>,
}

/// `HIVE_WORKFLOW_*`: workflow runs.
#[derive(Debug, Clone)]
pub struct WorkflowConfig {
    /// From `HIVE_WORKFLOW_DISABLE_CODE_NODE` (`true`: off; `false`: on; unset: off in
    /// production, on otherwise): whether workflows may have code nodes when the admins'
    /// setting (`workflowCodeNodes`) says `inherit`.
    pub code_nodes: bool,
    /// `HIVE_WORKFLOW_DISABLE_CODE_NODE=true`: code nodes are off whatever the admins' setting
    /// says.
    pub code_nodes_forced_off: bool,
    /// `HIVE_WORKFLOW_MAX_RUNS_PER_USER` (default 50, 1..=10000): one account's active runs
    /// (queued, running, waiting), on all replicas together.
    pub max_runs_per_user: u32,
    /// `HIVE_WORKFLOW_MAX_RUNNING` (default 32, 1..=1024): runs this replica drives at once.
    pub max_running: u32,
    /// `HIVE_WORKFLOW_RUN_RETENTION_DAYS` (default 30, 1..=3650): how long ended runs are
    /// kept.
    pub run_retention_days: u32,
    /// `HIVE_WORKFLOW_LEASE_SECONDS` (default 30, 5..=3600): how long a replica's lease on a
    /// run lasts unless renewed; how long a run whose replica died waits to resume elsewhere.
    pub lease: std::time::Duration,
}

/// `STRIPE_*`: payments through Stripe.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`, at least 32 characters): verifies
    /// `POST /api/webhooks/stripe`; unset, that route answers 503.
    pub webhook_secret: Option<SecretString>,
    /// `STRIPE_SECRET_KEY` (`sk_…`): checkout and customer-portal sessions; unset, they are off.
    pub secret_key: Option<SecretString>,
    /// `STRIPE_SUBSCRIPTION_PRICE_ID` (`price_…`): the subscription checkout's price.
    pub subscription_price_id: Option<String>,
    /// `STRIPE_API_BASE` (default `https://api.stripe.com`): where Stripe's API is reached,
    /// always through the egress guard.
    pub api_base: Url,
}

/// `BILLING_*` and `HIVE_BILLING_*`: metering, prices, enforcement.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// `HIVE_BILLING_CURRENCY` (default `usd`): the currency of wallets and prices.
    pub currency: hive_store::billing::Currency,
    /// `BILLING_USAGE_MINOR_PER_1K_TOKENS` (default 0: tokens are free): the default price of
    /// 1,000 tokens (prompt and completion), in minor units; per-model prices override it.
    pub minor_per_1k_tokens: i64,
    /// `HIVE_BILLING_HOSTED_MINOR_PER_HOUR` (default 0): a hosted agent's hour of run time.
    pub hosted_minor_per_hour: i64,
    /// `HIVE_BILLING_HOSTED_METER_SECONDS` (default 60, 1..=3600): a hosted agent's run time
    /// is held this far ahead and settled at this interval.
    pub hosted_meter_every: std::time::Duration,
    /// `HIVE_BILLING_WORKFLOW_STEP_MINOR` (default 0): one workflow step.
    pub workflow_step_minor: i64,
    /// `HIVE_BILLING_ENFORCE` (default false): billable calls must be paid for from the
    /// caller's wallet (held before they start, refused with 402 when it cannot).
    pub enforce: bool,
    /// `HIVE_BILLING_FAIL_OPEN` (default false): when the database that counts cannot be
    /// reached, billable calls go on unmetered instead of being refused.
    pub fail_open: bool,
    /// `HIVE_BILLING_RESERVE_TOKENS` (default 1024): completion tokens held for a call whose
    /// agent sets no `maxTokens`.
    pub reserve_tokens: u32,
    /// `HIVE_BILLING_TOPUP_MIN_MINOR` / `_MAX_MINOR` (default 100 / 100000): a one-time
    /// top-up's bounds.
    pub top_up_min_minor: i64,
    pub top_up_max_minor: i64,
    /// `HIVE_BILLING_ALERT_WEBHOOK_URL`: where budget alerts are posted (through the egress
    /// guard); unset, they are shown on the dashboard only.
    pub alert_webhook_url: Option<Url>,
    /// `HIVE_BILLING_ALERT_WEBHOOK_SECRET`: signs the alerts posted (`Hive-Signature`).
    pub alert_webhook_secret: Option<SecretString>,
    pub stripe: StripeConfig,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `HIVE_ENV`.
    pub environment: Environment,
    /// `HIVE_DATA_DIR` (default `./hive-data`).
    pub data_dir: PathBuf,
    /// `AUTH_URL`: the canonical public URL; its origin is the only CORS origin. Default
    /// `http://<HIVE_LISTEN>` in development; required (and https) in production.
    pub auth_url: Url,
    /// `HIVE_ALLOW_INSECURE_HTTP` (default false): lets production run on a plain-http `AUTH_URL`.
    pub allow_insecure_http: bool,
    /// `DATABASE_URL` (default SQLite at `<data dir>/hive.db`).
    pub database: DatabaseConfig,
    /// `REDIS_URL` (redis:// or rediss://), used by shared state.
    pub redis_url: Option<SecretString>,
    /// `HIVE_REDIS_KEY_PREFIX` (default `hive`): the first part of every Redis key.
    pub redis_key_prefix: String,
    /// The rate-limit policies: defaults, `HIVE_RATE_LIMITS`, `HIVE_RATE_LIMIT_FAIL_OPEN`.
    pub rate_limits: hive_state::Policies,
    /// `A2A_TASK_STORE`.
    pub task_store: TaskStoreKind,
    /// `A2A_TASK_TTL_SECONDS` (default 86400, 60..=2592000).
    pub task_ttl: Duration,
    /// `A2A_*`: the gateway's access and limits.
    pub a2a: A2aConfig,
    pub secrets: SuppliedSecrets,
    pub http: HttpConfig,
    pub log: LogConfig,
    /// `OTEL_*`: where traces go (off when `None`).
    pub traces: Option<TraceConfig>,
    /// `HEALTH_CHECK_DEEP` (default false): `/api/health` also checks the database.
    pub health_check_deep: bool,
    /// `HIVE_HEALTH_DISK_*`: free space that makes the data directory's disk unhealthy.
    pub disk_thresholds: DiskThresholds,
    /// `ALLOW_PUBLIC_REGISTRATION` (default false): anyone may create a viewer account.
    pub allow_public_registration: bool,
    /// `HIVE_MFA_REQUIRED` (default `admins`): who must have a second factor.
    pub mfa_required: MfaPolicy,
    /// `SMTP_URL` and `SMTP_FROM`: password-reset mail (off when unset).
    pub smtp: Option<SmtpConfig>,
    pub jobs: JobsConfig,
    /// `HIVE_SANDBOX*` and `HIVE_NODE_URL`: hosted agents.
    pub sandbox: SandboxConfig,
    /// `HIVE_WORKFLOW_*`: workflow runs.
    pub workflows: WorkflowConfig,
    /// `HIVE_BACKUP_*`: backups.
    pub backup: BackupConfig,
    /// `BILLING_*`, `HIVE_BILLING_*` and `STRIPE_*`: metering and payments.
    pub billing: BillingConfig,
    /// `HIVE_EGRESS_FETCH_*`: what outbound requests may reach.
    pub egress: EgressSettings,
    /// `OIDC_*`: single sign-on providers.
    pub oidc: OidcConfig,
    /// `MESH_FEDERATION_*`, `A2A_PUBLIC_JSONRPC_*`, `NATS_URL` and `MESH_WAN_*`.
    pub mesh: MeshConfig,
    /// Non-fatal findings (unknown `HIVE_*` variables, weak development secrets).
    pub warnings: Vec<String>,
    /// Every known variable, how it was set and its display value (secrets masked).
    pub report: Vec<ReportLine>,
}

impl Config {
    /// Loads and validates the configuration from `env` (and the files it names).
    pub fn load(env: &EnvSource) -> Result<Self, ConfigError> {
        load::load(env)
    }

    /// The origin of `AUTH_URL` (`scheme://host[:port]`), the one allowed CORS origin.
    pub fn public_origin(&self) -> String {
        self.auth_url.origin().ascii_serialization()
    }

    /// Whether Hive is reached over https (decides `Secure` cookies and HSTS).
    pub fn served_over_https(&self) -> bool {
        self.auth_url.scheme() == "https"
    }
}

/// Who must have a second factor before a session may be used (`HIVE_MFA_REQUIRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPolicy {
    /// Admins only (the default).
    Admins,
    All,
    None,
}

impl MfaPolicy {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admins" => Some(Self::Admins),
            "all" => Some(Self::All),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admins => "admins",
            Self::All => "all",
            Self::None => "none",
        }
    }

    /// Whether a user of `role` must have a second factor.
    pub fn requires(self, role: hive_proto::Role) -> bool {
        match self {
            Self::Admins => role == hive_proto::Role::Admin,
            Self::All => true,
            Self::None => false,
        }
    }
}
