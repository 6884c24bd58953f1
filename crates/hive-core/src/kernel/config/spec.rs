//! The one table of configuration variables: the loader, the report, the unknown-name check and
//! `docs/configuration.md` all follow it.
//!
//! A row whose name holds `<ID>` is a template: one variable per configured instance (an OIDC
//! provider), `<ID>` standing for the instance's id in upper case (`OIDC_<ID>_ISSUER` is
//! `OIDC_CORP_ISSUER` for the provider `corp`).

/// A configuration variable.
#[derive(Debug, Clone, Copy)]
pub struct VarSpec {
    pub name: &'static str,
    /// The default as shown to people (starting with `-` when there is none).
    pub default: &'static str,
    /// A secret: masked in every output, also accepted as `NAME_FILE`.
    pub secret: bool,
    /// What the value must be.
    pub rule: &'static str,
}

/// What a template row's name says in place of an instance id.
pub const ID_PLACEHOLDER: &str = "<ID>";

impl VarSpec {
    /// Whether an absent value means something other than "off" (shown as `default`, not `unset`).
    pub fn has_default(&self) -> bool {
        !self.default.starts_with('-')
    }

    /// Whether this row stands for one variable per instance (its name holds `<ID>`).
    pub fn is_template(&self) -> bool {
        self.name.contains(ID_PLACEHOLDER)
    }

    /// The name of a template row for the instance `id` (any case; upper-cased), or the row's
    /// own name for a plain row.
    pub fn name_for(&self, id: &str) -> String {
        self.name.replace(ID_PLACEHOLDER, &id.to_ascii_uppercase())
    }

    /// The instance id (upper case, as in the name) when `name` is this template's variable.
    fn instance_in<'a>(&self, name: &'a str) -> Option<&'a str> {
        let (prefix, suffix) = self.name.split_once(ID_PLACEHOLDER)?;
        let id = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        is_instance_id(&id.to_ascii_lowercase())
            .then_some(id)
            .filter(|id| !id.chars().any(|c| c.is_ascii_lowercase()))
    }
}

/// An instance id: 1 to 32 of `a-z 0-9`, starting with a letter (no `_`, so that a variable's
/// name splits one way only).
pub fn is_instance_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

const fn var(name: &'static str, default: &'static str, rule: &'static str) -> VarSpec {
    VarSpec {
        name,
        default,
        secret: false,
        rule,
    }
}

const fn secret(name: &'static str, default: &'static str, rule: &'static str) -> VarSpec {
    VarSpec {
        name,
        default,
        secret: true,
        rule,
    }
}

pub const VARIABLES: &[VarSpec] = &[
    var("HIVE_ENV", "development", "development or production"),
    var("HIVE_DATA_DIR", "./hive-data", "a directory path"),
    var(
        "HIVE_CONFIG",
        "-",
        "the path of a TOML file setting these variables by name (HIVE_CONFIG itself excluded)",
    ),
    var(
        "HIVE_LISTEN",
        "127.0.0.1:8080",
        "an IP address and port, e.g. 0.0.0.0:8080",
    ),
    var(
        "AUTH_URL",
        "http://<HIVE_LISTEN>",
        "an absolute http(s) URL without credentials, query or fragment; required and https in production",
    ),
    var("HIVE_ALLOW_INSECURE_HTTP", "false", "true or false"),
    var(
        "HIVE_METRICS_LISTEN",
        "- (off)",
        "an IP address and port for Prometheus metrics at /metrics; keep it private",
    ),
    secret(
        "DATABASE_URL",
        "SQLite at <HIVE_DATA_DIR>/hive.db",
        "postgres://…, postgresql://… or sqlite:<path>",
    ),
    var("HIVE_DB_MAX_CONNECTIONS", "10", "an integer from 1 to 200"),
    var("HIVE_AUTO_MIGRATE", "true", "true or false"),
    secret("REDIS_URL", "-", "redis://… or rediss://…"),
    var(
        "HIVE_REDIS_KEY_PREFIX",
        "hive",
        "1 to 64 characters of A-Z a-z 0-9 _ - : (several deployments can share one Redis)",
    ),
    secret(
        "MESH_BUS_HMAC_SECRET",
        "a key derived from ENCRYPTION_KEY",
        "at least 32 characters; the key that signs every event bus message (meshSig), for subscribers outside Hive that share it; unset, the bus on Redis is signed with a key derived from the master key. Either way replicas drop unsigned or forged messages",
    ),
    var(
        "A2A_TASK_STORE",
        "redis with REDIS_URL, else db",
        "memory, redis (needs REDIS_URL) or db (the database: tasks survive restarts)",
    ),
    var(
        "A2A_TASK_TTL_SECONDS",
        "86400",
        "an integer from 60 to 2592000",
    ),
    var(
        "A2A_JSONRPC_MIN_ROLE",
        "viewer",
        "viewer, operator or admin: the least role that may call the A2A JSON-RPC endpoints",
    ),
    var(
        "A2A_DEFAULT_AGENT",
        "-",
        "an agent's name or id: where a message to the instance endpoint goes when its metadata names no skill",
    ),
    var(
        "A2A_JSONRPC_MAX_BODY_BYTES",
        "1048576",
        "an integer from 1024 to 16777216: the largest JSON-RPC request body",
    ),
    var(
        "A2A_STREAMS_PER_IP",
        "10",
        "an integer from 1 to 10000: open A2A streams per client IP",
    ),
    var(
        "A2A_STREAMS_PER_USER",
        "5",
        "an integer from 1 to 10000: open A2A streams per user (or token's user)",
    ),
    var(
        "A2A_STREAM_IDLE_SECONDS",
        "300",
        "an integer from 5 to 86400: a stream without an event this long is closed",
    ),
    var(
        "A2A_PUBLIC_JSONRPC_ENABLED",
        "false",
        "true or false: anonymous callers may use the allowed methods on public agents",
    ),
    var(
        "A2A_PUBLIC_JSONRPC_ALLOWED_METHODS",
        "- (required when enabled)",
        "1 to 32 A2A method names of either version (SendMessage or message/send), comma-separated",
    ),
    secret(
        "A2A_PUBLIC_JSONRPC_API_KEYS",
        "- (none)",
        "comma-separated name=KEY[@method|method] entries; KEY at least 32 random characters or sha256:<64 hex>; only hashes are kept",
    ),
    var(
        "A2A_PUBLIC_JSONRPC_MAX_BODY_BYTES",
        "65536",
        "an integer from 1024 to 1048576: the largest public-tier request body",
    ),
    var("MESH_FEDERATION_ENABLED", "false", "true or false"),
    var(
        "MESH_FEDERATION_PEERS",
        "- (none)",
        "comma-separated peer origins, https://host[:port] (http only outside production); a peer's index is its position",
    ),
    secret(
        "MESH_FEDERATION_SHARED_SECRET",
        "-",
        "32 or more random bytes as hex or base64 (`hive mesh secret` prints one), the same on every peer: HS256 tokens (and the legacy header); passphrases and other hand-made values refused",
    ),
    var(
        "MESH_FEDERATION_ED25519_SEED_FILE",
        "-",
        "path of this instance's Ed25519 seed (64 hex characters; `hive mesh keygen` writes one): EdDSA tokens, the recommended mode",
    ),
    var(
        "MESH_FEDERATION_PEER_KEYS",
        "- (none)",
        "comma-separated origin=PUBLIC_KEY pairs pinning each peer's Ed25519 public key (base64url); an origin may be listed up to 4 times while its key is rotated; Ed25519 mode only",
    ),
    var(
        "MESH_FEDERATION_PEER_MANIFEST_FILE",
        "- (none)",
        "path of a peer manifest signed by the operator key (`hive mesh manifest sign`), read at start: pins the keys of the listed peers that are in MESH_FEDERATION_PEERS; needs MESH_FEDERATION_MANIFEST_PUBLIC_KEY; Ed25519 mode only; invalid, expired (by the system clock) or wrongly signed stops the process",
    ),
    var(
        "MESH_FEDERATION_MANIFEST_PUBLIC_KEY",
        "- (none)",
        "the operator's Ed25519 public key (base64url, `hive mesh public-key`) that must have signed MESH_FEDERATION_PEER_MANIFEST_FILE; set both or neither",
    ),
    var(
        "MESH_FEDERATION_JWT_AUDIENCE",
        "the AUTH_URL origin",
        "1 to 255 characters: the aud inbound tokens must carry, and the aud of outbound ones when set (one audience for the whole mesh)",
    ),
    var(
        "MESH_FEDERATION_JWT_TTL_SECONDS",
        "300",
        "an integer from 30 to 3600: lifetime of minted tokens, and the longest accepted",
    ),
    var(
        "MESH_FEDERATION_JWT_CLOCK_SKEW_LEEWAY_SECONDS",
        "30",
        "an integer from 0 (strict) to 300",
    ),
    var(
        "MESH_FEDERATION_JWT_REQUIRE_AUDIENCE",
        "true",
        "true or false",
    ),
    var(
        "MESH_FEDERATION_JWT_REQUIRE_JTI",
        "true",
        "true or false: each token is accepted once",
    ),
    var(
        "MESH_FEDERATION_INBOUND_ALLOW_LEGACY_SECRET",
        "false",
        "true or false: accept the raw X-Hive-Federation-Secret header (needs the shared secret)",
    ),
    var(
        "MESH_FEDERATION_PROXY_SEND_SECRET",
        "false",
        "true or false: proxied calls carry X-Hive-Federation-Secret instead of a token (for peers that only know it)",
    ),
    var(
        "MESH_FEDERATION_PROXY_TIMEOUT_MS",
        "15000",
        "an integer from 100 to 120000: the whole proxied call",
    ),
    var(
        "MESH_FEDERATION_INBOUND_ALLOWLIST",
        "- (any address)",
        "comma-separated IPs and CIDRs (v4 and v6) federation calls may come from",
    ),
    secret(
        "NATS_URL",
        "- (off)",
        "nats://host:port or tls://host:port: carry WAN envelopes over NATS JetStream",
    ),
    var(
        "MESH_WAN_NATS_STREAM",
        "HIVE_WAN",
        "1 to 64 of A-Z a-z 0-9 - _: the JetStream stream",
    ),
    var(
        "MESH_WAN_NATS_SUBJECT",
        "hive.wan.envelopes",
        "dot-separated tokens of A-Z a-z 0-9 - _, up to 64 characters",
    ),
    var(
        "MESH_WAN_NATS_CONSUMER",
        "hive-<hash of the AUTH_URL origin>",
        "1 to 64 of A-Z a-z 0-9 - _: the durable consumer this instance's replicas share",
    ),
    var(
        "MESH_WAN_DEDUP_WINDOW_SECONDS",
        "120",
        "an integer from 1 to 86400: envelopes with the same id within it are stored once",
    ),
    var(
        "HIVE_RATE_LIMITS",
        "-",
        "overrides of the rate-limit policies: comma-separated name=COUNT/PERIOD, periods in s, m, h or d (e.g. login=10/15m,api=600/1m)",
    ),
    var(
        "HIVE_RATE_LIMIT_FAIL_OPEN",
        "-",
        "comma-separated policies (never authentication ones) that let requests through unmetered while Redis is unreachable",
    ),
    secret(
        "AUTH_SECRET",
        "generated (development)",
        "at least 32 characters; in production required and not default-looking",
    ),
    secret(
        "ENCRYPTION_KEY",
        "generated (development)",
        "exactly 64 hexadecimal characters (32 bytes); in production required",
    ),
    secret(
        "HIVE_SETUP_TOKEN",
        "generated (development)",
        "at least 32 characters",
    ),
    secret("HIVE_INTERNAL_TOKEN", "-", "at least 32 characters"),
    var(
        "HIVE_BODY_LIMIT_BYTES",
        "1048576",
        "an integer from 1024 to 67108864",
    ),
    var(
        "HIVE_REQUEST_TIMEOUT_SECONDS",
        "30",
        "an integer from 1 to 600",
    ),
    var(
        "HIVE_TRUSTED_PROXIES",
        "-",
        "comma-separated IP addresses or CIDR ranges",
    ),
    var(
        "HIVE_CLIENT_IP_SOURCE",
        "xff_last",
        "real_ip, xff_first or xff_last",
    ),
    var(
        "HIVE_SHUTDOWN_GRACE_SECONDS",
        "30",
        "an integer from 0 to 3600",
    ),
    var(
        "HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS",
        "10",
        "an integer from 1 to 300: time to send a request head; slower connections are closed",
    ),
    var(
        "HIVE_HTTP_IDLE_TIMEOUT_SECONDS",
        "60",
        "an integer from 1 to 3600: an HTTP/2 connection with no stream open this long is closed; an HTTP/1 connection waits at most the shorter of this and the head-read timeout for its next request",
    ),
    var(
        "HIVE_HTTP_MAX_CONNECTIONS",
        "10000",
        "an integer from 16 to 1000000: open connections in all",
    ),
    var(
        "HIVE_HTTP_MAX_CONNECTIONS_PER_IP",
        "256",
        "an integer from 1 to 100000: open connections from one address (trusted proxies excepted)",
    ),
    var(
        "HIVE_HTTP_MAX_STREAMS_PER_CONNECTION",
        "100",
        "an integer from 1 to 1000: concurrent HTTP/2 streams on one connection",
    ),
    var(
        "LOG_LEVEL",
        "info",
        "trace, debug, info, warn, error, off, or comma-separated target=level directives",
    ),
    var(
        "LOG_FORMAT",
        "auto",
        "auto, json or pretty: auto is pretty on a terminal and JSON lines otherwise",
    ),
    var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "- (no traces)",
        "an http(s) URL of an OTLP/HTTP receiver; traces are posted to <URL>/v1/traces",
    ),
    var(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "-",
        "an http(s) URL: the exact URL traces are posted to (instead of OTEL_EXPORTER_OTLP_ENDPOINT's)",
    ),
    secret(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "- (none)",
        "comma-separated name=value pairs (values percent-encoded) sent with every export, e.g. the collector's credential",
    ),
    var(
        "OTEL_SERVICE_NAME",
        "hive",
        "1 to 128 characters: the service.name of every span",
    ),
    var(
        "OTEL_SDK_DISABLED",
        "false",
        "true or false: no traces even with an endpoint",
    ),
    var("HEALTH_CHECK_DEEP", "false", "true or false"),
    var(
        "HIVE_HEALTH_DISK_DEGRADED_MB",
        "1024",
        "an integer from 0 to 16777216: under this many MiB free in the data directory, the system health report calls the disk degraded",
    ),
    var(
        "HIVE_HEALTH_DISK_DOWN_MB",
        "100",
        "an integer from 0 to 16777216, not above HIVE_HEALTH_DISK_DEGRADED_MB: under this many MiB free, the disk is down and the system health answers 503",
    ),
    secret(
        "SMTP_URL",
        "- (no mail)",
        "smtps://[user:password@]host[:port], smtp://…?tls=required (STARTTLS), or plain smtp:// to a loopback relay",
    ),
    var(
        "SMTP_FROM",
        "hive@<AUTH_URL host>",
        "the From address of Hive's mail",
    ),
    var(
        "ALLOW_PUBLIC_REGISTRATION",
        "false",
        "true or false; when true anyone may register a viewer account",
    ),
    var(
        "HIVE_MFA_REQUIRED",
        "admins",
        "admins, all or none: who must have a second factor before using a session",
    ),
    var("HIVE_JOBS_TICK_SECONDS", "60", "an integer from 1 to 3600"),
    var(
        "HIVE_SANDBOX",
        "process",
        "process or off: whether hosted agents run on this replica",
    ),
    var(
        "HIVE_SANDBOX_BWRAP",
        "/usr/bin/bwrap",
        "the path of bubblewrap",
    ),
    var(
        "HIVE_SANDBOX_MAX_RUNNING",
        "32",
        "an integer from 1 to 4096",
    ),
    var(
        "HIVE_SANDBOX_MAX_PER_USER",
        "8",
        "an integer from 1 to 4096",
    ),
    var(
        "HIVE_SANDBOX_LOG_BYTES",
        "4194304",
        "an integer from 65536 to 1073741824",
    ),
    var(
        "HIVE_SANDBOX_STOP_GRACE_SECONDS",
        "10",
        "an integer from 0 to 300",
    ),
    var(
        "HIVE_NODE_URL",
        "- (none)",
        "an http or https URL where the other replicas reach this one",
    ),
    var(
        "HIVE_WORKFLOW_DISABLE_CODE_NODE",
        "-",
        "true (code nodes off, whatever the admins' workflowCodeNodes setting says) or false (on unless that setting turns them off); unset: off in production, on otherwise, unless that setting says otherwise",
    ),
    var(
        "HIVE_WORKFLOW_MAX_RUNS_PER_USER",
        "50",
        "an integer from 1 to 10000",
    ),
    var(
        "HIVE_WORKFLOW_MAX_RUNNING",
        "32",
        "an integer from 1 to 1024",
    ),
    var(
        "HIVE_WORKFLOW_RUN_RETENTION_DAYS",
        "30",
        "an integer from 1 to 3650",
    ),
    var(
        "HIVE_WORKFLOW_LEASE_SECONDS",
        "30",
        "an integer from 5 to 3600: how long a replica holds a run without renewing it (renewed every third of it); a run whose replica died resumes elsewhere after at most this long",
    ),
    var(
        "HIVE_BACKUP_DIR",
        "<HIVE_DATA_DIR>/backups",
        "a directory path: where backup archives are written (created 0700; archives 0600)",
    ),
    var(
        "HIVE_BACKUP_RECIPIENTS",
        "- (none: backups are refused)",
        "age public keys (age1…), separated by commas: whom backups are encrypted to (keep the identity files offline)",
    ),
    var(
        "HIVE_BACKUP_SCHEDULE",
        "- (off)",
        "five-field cron text in UTC (e.g. 30 2 * * *): when the leader makes a backup; needs HIVE_BACKUP_RECIPIENTS",
    ),
    var(
        "HIVE_BACKUP_KEEP",
        "7",
        "an integer from 0 to 100000: archives kept in HIVE_BACKUP_DIR, the newest first (0: no limit)",
    ),
    var(
        "HIVE_BACKUP_KEEP_DAYS",
        "0",
        "an integer from 0 to 36500: archives older than this are deleted (0: no limit); the newest is always kept",
    ),
    var(
        "HIVE_BACKUP_S3_BUCKET",
        "- (none: archives stay in HIVE_BACKUP_DIR)",
        "an S3 bucket's name: every archive is also uploaded there, and retention applies there too",
    ),
    var(
        "HIVE_BACKUP_S3_ENDPOINT",
        "- (AWS)",
        "an http or https URL of an S3-compatible service (MinIO, Ceph…)",
    ),
    var("HIVE_BACKUP_S3_REGION", "us-east-1", "the bucket's region"),
    var(
        "HIVE_BACKUP_S3_PREFIX",
        "- (none)",
        "the archives' key prefix in the bucket, e.g. hive/prod",
    ),
    var(
        "HIVE_BACKUP_S3_ACCESS_KEY_ID",
        "-",
        "the access key id (required with HIVE_BACKUP_S3_BUCKET)",
    ),
    secret(
        "HIVE_BACKUP_S3_SECRET_ACCESS_KEY",
        "-",
        "the secret access key (required with HIVE_BACKUP_S3_BUCKET)",
    ),
    var(
        "HIVE_BILLING_CURRENCY",
        "usd",
        "an ISO 4217 code in lower case: the currency of wallets and prices",
    ),
    var(
        "BILLING_USAGE_MINOR_PER_1K_TOKENS",
        "0",
        "an integer from 0 to 1000000000: the default price of 1,000 llm tokens in minor units (0: free); per-model prices override it",
    ),
    var(
        "HIVE_BILLING_HOSTED_MINOR_PER_HOUR",
        "0",
        "an integer from 0 to 1000000000: the price of a hosted agent's hour of run time",
    ),
    var(
        "HIVE_BILLING_HOSTED_METER_SECONDS",
        "60",
        "an integer from 1 to 3600: a hosted agent's run time is held this far ahead and settled at this interval",
    ),
    var(
        "HIVE_BILLING_WORKFLOW_STEP_MINOR",
        "0",
        "an integer from 0 to 1000000000: the price of one workflow step",
    ),
    var(
        "HIVE_BILLING_ENFORCE",
        "false",
        "true or false: billable calls are paid from the caller's wallet, held before they start and refused with 402 when it cannot",
    ),
    var(
        "HIVE_BILLING_FAIL_OPEN",
        "false",
        "true or false: when the database that counts is unreachable, billable calls go on unmetered instead of being refused",
    ),
    var(
        "HIVE_BILLING_RESERVE_TOKENS",
        "1024",
        "an integer from 1 to 1000000: completion tokens held for a call whose agent sets no maxTokens",
    ),
    var(
        "HIVE_BILLING_TOPUP_MIN_MINOR",
        "100",
        "an integer from 1 to 1000000000",
    ),
    var(
        "HIVE_BILLING_TOPUP_MAX_MINOR",
        "100000",
        "an integer from 1 to 1000000000, at least HIVE_BILLING_TOPUP_MIN_MINOR",
    ),
    var(
        "HIVE_BILLING_ALERT_WEBHOOK_URL",
        "- (none)",
        "an http or https URL where budget alerts are posted (through the egress guard)",
    ),
    secret(
        "HIVE_BILLING_ALERT_WEBHOOK_SECRET",
        "- (none: alerts are posted unsigned)",
        "at least 32 characters: signs the alerts posted (Hive-Signature, Stripe's scheme)",
    ),
    secret(
        "STRIPE_WEBHOOK_SECRET",
        "- (none: POST /api/webhooks/stripe answers 503)",
        "Stripe's signing secret (whsec_…), at least 32 characters",
    ),
    secret(
        "STRIPE_SECRET_KEY",
        "- (none: checkout and portal off)",
        "a Stripe secret key (sk_…)",
    ),
    var(
        "STRIPE_SUBSCRIPTION_PRICE_ID",
        "- (none)",
        "a Stripe price id (price_…) for subscription checkout",
    ),
    var(
        "STRIPE_API_BASE",
        "https://api.stripe.com",
        "an http or https URL without credentials",
    ),
    var(
        "HIVE_JOB_HISTORY_PRUNE_INTERVAL_SECONDS",
        "3600",
        "an integer from 1 to 86400",
    ),
    var(
        "HIVE_JOB_HISTORY_RETENTION_DAYS",
        "30",
        "an integer from 1 to 3650",
    ),
    var(
        "HIVE_EGRESS_FETCH_HOST_ALLOWLIST",
        "- (none)",
        "comma-separated host names, *.suffix names or IP literals, each with an optional :port, that outbound requests may reach even on private addresses; merged with the admin's list",
    ),
    var(
        "HIVE_EGRESS_FETCH_MAX_REDIRECTS",
        "5",
        "an integer from 0 to 10: redirects an outbound GET follows, each re-checked",
    ),
    var(
        "AUDIT_RETENTION_DAYS",
        "365",
        "an integer from 1 to 36500; older audit records are deleted behind a signed checkpoint",
    ),
    var(
        "HIVE_CONVERSATION_RETENTION_DAYS",
        "90",
        "an integer from 0 to 36500; conversations with no message for this many days are deleted with their messages (0 keeps them)",
    ),
    var(
        "OIDC_PROVIDERS",
        "- (none)",
        "comma-separated ids of OpenID Connect providers (each 1 to 32 of a-z 0-9, starting with a letter), each configured by the OIDC_<ID>_* variables, <ID> being its id in upper case",
    ),
    var(
        "OIDC_AUTO_CREATE",
        "false",
        "true or false; when true a first single sign-on with no linked or matching account creates one, with the provider's mapped role",
    ),
    var(
        "OIDC_<ID>_ISSUER",
        "- (required)",
        "the issuer URL, exactly as the provider's discovery document names it; https (http only for a loopback host, never in production); no credentials, query or fragment",
    ),
    var(
        "OIDC_<ID>_CLIENT_ID",
        "- (required)",
        "the client id registered at the provider (1 to 255 visible characters)",
    ),
    secret(
        "OIDC_<ID>_CLIENT_SECRET",
        "- (required)",
        "the client secret registered at the provider (1 to 1024 characters); sent only to the token endpoint",
    ),
    var(
        "OIDC_<ID>_DISPLAY_NAME",
        "<id>",
        "1 to 100 characters naming the provider on the sign-in page",
    ),
    var(
        "OIDC_<ID>_SCOPES",
        "openid email profile",
        "space-separated scopes of A-Z a-z 0-9 _ - . : /; must include openid",
    ),
    var(
        "OIDC_<ID>_ROLE_CLAIM",
        "- (none)",
        "the ID token claim the role mapping reads: a string or an array of strings (e.g. groups)",
    ),
    var(
        "OIDC_<ID>_ROLE_MAP",
        "- (none)",
        "comma-separated value=role pairs (viewer, operator or admin); needs OIDC_<ID>_ROLE_CLAIM; of several matching values the highest role wins",
    ),
    var(
        "OIDC_<ID>_DEFAULT_ROLE",
        "viewer",
        "viewer, operator or admin: the role of an account created when the claim matches no pair",
    ),
];

/// The variables of the `hive` command line's client commands (those that call a running
/// server's API: `hive workflow`, `hive billing`, `hive agent bundle|logs|…`, and the account
/// commands — `hive user|token|agent|keys|secrets|audit` — when a server is named). The command
/// line reads them itself; the server's configuration never does: they are known names (no
/// typo warning), but no rows of the server's report and no keys of the `HIVE_CONFIG` file.
pub const CLI_VARIABLES: &[VarSpec] = &[
    var(
        "HIVE_URL",
        "- (the profile's url)",
        "the http(s) base URL of a running server the command line talks to (`--url` wins over it); when set (or HIVE_SERVER_URL, or a profile's url) the account commands work through the server's API instead of the data directory; no credentials, query or fragment; in production http only to a loopback address",
    ),
    var(
        "HIVE_SERVER_URL",
        "the configured AUTH_URL",
        "the older name of HIVE_URL (HIVE_URL wins over it); the client-only commands fall back to AUTH_URL when neither nor a profile names a server",
    ),
    secret(
        "HIVE_TOKEN",
        "-",
        "an API token (`hive token create`) the client commands send as a bearer token; `--token-file PATH` wins over it (the token itself is never an argument: `ps` shows arguments)",
    ),
    var(
        "HIVE_PROFILE",
        "~/.config/hive/profile",
        "the profile file: `url = ...` and `token = ...` lines, `[NAME]` sections chosen with `--profile NAME`; refused unless mode 0600 (or 0400) and owned by the user running hive",
    ),
];

/// `HIVE_*` names that are not configuration but are known (not reported as typos).
pub const KNOWN_OTHER_NAMES: &[&str] = &[
    "HIVE_TEST_DATABASE_URL",
    "HIVE_TEST_REDIS_URL",
    "HIVE_TEST_CAPTURE_DIR",
    "HIVE_TEST_NATS_URL",
    "HIVE_TEST_A2A_PYTHON",
    "HIVE_TEST_S3_SERVER",
];

/// The settings most deployments set, which `hive serve --help` lists with their defaults.
pub const MAIN_SETTINGS: &[&str] = &[
    "HIVE_ENV",
    "HIVE_DATA_DIR",
    "HIVE_LISTEN",
    "AUTH_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "HIVE_METRICS_LISTEN",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "HIVE_CONFIG",
];

/// [`MAIN_SETTINGS`] with their defaults and rules, from this table, and where the others are
/// (`hive serve --help` ends with it).
pub fn main_settings_help() -> String {
    let mut help = String::from(
        "Main settings (environment variables, or keys of the TOML file HIVE_CONFIG names):\n",
    );
    for spec in MAIN_SETTINGS.iter().filter_map(|name| find(name)) {
        let default = if spec.has_default() {
            format!("default: {}", spec.default)
        } else {
            format!("default: unset{}", spec.default.trim_start_matches('-'))
        };
        let file = if spec.secret {
            format!(" (a secret: also {}_FILE, a file holding it)", spec.name)
        } else {
            String::new()
        };
        help.push_str(&format!(
            "  {} [{default}]\n      {}{file}\n",
            spec.name, spec.rule
        ));
    }
    help.push_str(&format!(
        "\nAll {} settings are described in docs/configuration.md; `hive config check` \
         validates them and prints each value in force (secrets masked).",
        VARIABLES.len()
    ));
    help
}

/// The row of `name`: a plain variable, or the template row of an instance's variable
/// (`OIDC_CORP_ISSUER` finds `OIDC_<ID>_ISSUER`).
pub fn find(name: &str) -> Option<&'static VarSpec> {
    VARIABLES
        .iter()
        .find(|spec| !spec.is_template() && spec.name == name)
        .or_else(|| find_template(name).map(|(spec, _)| spec))
}

/// The template row of an instance's variable and the instance id (lower case).
pub fn find_template(name: &str) -> Option<(&'static VarSpec, String)> {
    VARIABLES.iter().find_map(|spec| {
        spec.instance_in(name)
            .map(|id| (spec, id.to_ascii_lowercase()))
    })
}

/// The template rows whose names start with `prefix` (e.g. `OIDC_<ID>_`).
pub fn templates(prefix: &str) -> impl Iterator<Item = &'static VarSpec> {
    VARIABLES
        .iter()
        .filter(move |spec| spec.is_template() && spec.name.starts_with(prefix))
}

/// The row of a command-line variable ([`CLI_VARIABLES`]).
pub fn find_cli(name: &str) -> Option<&'static VarSpec> {
    CLI_VARIABLES.iter().find(|spec| spec.name == name)
}

/// Whether `name` is a command-line variable or the `NAME_FILE` of a secret one.
pub fn is_cli_variable(name: &str) -> bool {
    find_cli(name).is_some()
        || name
            .strip_suffix("_FILE")
            .and_then(find_cli)
            .is_some_and(|spec| spec.secret)
}

/// Whether `name` is a variable, a `NAME_FILE` of a secret, a command-line variable, or another
/// known name.
pub fn is_known(name: &str) -> bool {
    find(name).is_some()
        || is_cli_variable(name)
        || KNOWN_OTHER_NAMES.contains(&name)
        || name
            .strip_suffix("_FILE")
            .and_then(find)
            .is_some_and(|spec| spec.secret)
}

/// Whether `name` may be a key of the `HIVE_CONFIG` TOML file: a variable (or a secret's
/// `NAME_FILE`), but neither a tool's name, a command-line variable nor `HIVE_CONFIG` itself
/// (no chains of files).
pub fn allowed_in_config_file(name: &str) -> bool {
    is_known(name)
        && !KNOWN_OTHER_NAMES.contains(&name)
        && !is_cli_variable(name)
        && name != "HIVE_CONFIG"
}

/// The closest known name within two edits, to suggest for a typo.
pub fn suggestion(unknown: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .filter(|spec| !spec.is_template())
        .chain(CLI_VARIABLES)
        .map(|spec| spec.name)
        .chain(KNOWN_OTHER_NAMES.iter().copied())
        .map(|name| (edit_distance(unknown, name), name))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The table of `docs/configuration.md`, generated from [`VARIABLES`] (a test keeps the file
/// in step).
pub fn markdown_table() -> String {
    table_of(VARIABLES)
}

/// The command-line variables' table of `docs/configuration.md`, from [`CLI_VARIABLES`].
pub fn cli_markdown_table() -> String {
    table_of(CLI_VARIABLES)
}

fn table_of(rows: &[VarSpec]) -> String {
    let mut out =
        String::from("| variable | default | rule | secret (`_FILE`) |\n|---|---|---|---|\n");
    for spec in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            spec.name,
            if spec.default == "-" {
                "—".to_owned()
            } else {
                format!("`{}`", spec.default)
            },
            spec.rule,
            if spec.secret { "yes" } else { "" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_settings_are_rows_of_the_table() {
        let help = main_settings_help();
        for name in MAIN_SETTINGS {
            let spec = find(name).unwrap_or_else(|| panic!("{name} is not a variable"));
            assert!(help.contains(&format!("  {name} [")), "{help}");
            assert!(help.contains(spec.rule), "{help}");
        }
        assert!(
            help.contains("HIVE_DATA_DIR [default: ./hive-data]"),
            "{help}"
        );
        assert!(help.contains("REDIS_URL [default: unset]"), "{help}");
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(suggestion("HIVE_LISTN"), Some("HIVE_LISTEN"));
        assert_eq!(suggestion("HIVE_DATADIR"), Some("HIVE_DATA_DIR"));
        assert_eq!(suggestion("HIVE_SOMETHING_ELSE_ENTIRELY"), None);
    }

    #[test]
    fn file_variants_exist_only_for_secrets() {
        assert!(is_known("AUTH_SECRET_FILE"));
        assert!(is_known("DATABASE_URL_FILE"));
        assert!(!is_known("HIVE_LISTEN_FILE"));
        assert!(is_known("HIVE_TEST_DATABASE_URL"));
        assert!(is_known("HIVE_CONFIG"));
        assert!(allowed_in_config_file("AUTH_SECRET_FILE"));
        assert!(!allowed_in_config_file("HIVE_CONFIG"));
        assert!(!allowed_in_config_file("HIVE_TEST_REDIS_URL"));
        assert!(!allowed_in_config_file("HIVE_LISTEN_FILE"));
    }

    #[test]
    fn template_rows_find_each_instance_variable() {
        let spec = find("OIDC_CORP_ISSUER").unwrap();
        assert_eq!(spec.name, "OIDC_<ID>_ISSUER");
        assert_eq!(spec.name_for("corp"), "OIDC_CORP_ISSUER");
        assert_eq!(
            find_template("OIDC_CORP2_CLIENT_SECRET").map(|(s, id)| (s.name, id)),
            Some(("OIDC_<ID>_CLIENT_SECRET", "corp2".to_owned()))
        );
        assert!(find("OIDC_CORP_CLIENT_SECRET").unwrap().secret);
        assert!(is_known("OIDC_CORP_CLIENT_SECRET_FILE"));
        assert!(!is_known("OIDC_CORP_ISSUER_FILE"), "not a secret");
        for not_a_variable in [
            "OIDC__ISSUER",
            "OIDC_corp_ISSUER",
            "OIDC_MY_CORP_ISSUER",
            "OIDC_1CORP_ISSUER",
            "OIDC_<ID>_ISSUER",
            "OIDC_CORP_ISSUERS",
        ] {
            assert!(find(not_a_variable).is_none(), "{not_a_variable}");
        }
        // A plain row is never taken for a template's instance.
        assert_eq!(find("OIDC_PROVIDERS").unwrap().name, "OIDC_PROVIDERS");
        assert!(is_instance_id("corp") && is_instance_id("a1"));
        assert!(!is_instance_id("Corp") && !is_instance_id("my-corp") && !is_instance_id(""));
        assert!(!is_instance_id(&"a".repeat(33)));
    }

    #[test]
    fn the_documentation_table_is_current() {
        let doc = include_str!("../../../../../docs/configuration.md");
        for table in [markdown_table(), cli_markdown_table()] {
            assert!(
                doc.contains(&table),
                "docs/configuration.md is out of date; it must hold the table:\n{table}"
            );
        }
    }

    #[test]
    fn command_line_variables_are_known_but_no_server_configuration() {
        for name in [
            "HIVE_URL",
            "HIVE_SERVER_URL",
            "HIVE_TOKEN",
            "HIVE_TOKEN_FILE",
            "HIVE_PROFILE",
        ] {
            assert!(is_known(name), "{name}");
            assert!(is_cli_variable(name), "{name}");
            assert!(!allowed_in_config_file(name), "{name}");
            assert!(
                find(name).is_none(),
                "{name} is read by the command line only"
            );
        }
        assert!(find_cli("HIVE_TOKEN").unwrap().secret);
        assert!(!find_cli("HIVE_SERVER_URL").unwrap().secret);
        assert!(!is_known("HIVE_SERVER_URL_FILE"), "not a secret");
        assert_eq!(suggestion("HIVE_TOKN"), Some("HIVE_TOKEN"));
        // No name is both.
        for spec in CLI_VARIABLES {
            assert!(find(spec.name).is_none() && !KNOWN_OTHER_NAMES.contains(&spec.name));
        }
    }
}
