//! Reading and validating the configuration: [`load`] reads every variable once, in order, and
//! assembles the [`Config`]; the parsers of one area live beside it (`sources`, `http`,
//! `secret_rules`, `oidc`, `mesh`).

use super::http::{parse_auth_url, parse_connection_limits, parse_networks};
use super::report::ValueSource;
use super::secret_rules::check_secrets;
use super::sources::{ConfigError, EnvSource, Sources, invalid, read_toml};
use super::spec;
use super::{
    ClientIpSource, Config, DatabaseConfig, DatabaseUrl, EgressSettings, Environment, HttpConfig,
    JobsConfig, LogConfig, LogFormat, SandboxConfig, SmtpConfig, SuppliedSecrets, TaskStoreKind,
    WorkflowConfig,
};
use crate::kernel::config::MfaPolicy;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use url::Url;

fn parse_a2a(src: &mut Sources<'_>) -> Result<super::A2aConfig, ConfigError> {
    let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(super::A2aConfig {
        min_role: src.parsed("A2A_JSONRPC_MIN_ROLE", hive_proto::Role::Viewer, |raw| {
            raw.parse().ok()
        })?,
        default_agent: src
            .value("A2A_DEFAULT_AGENT")?
            .map(|raw| raw.trim().to_owned())
            .filter(|name| !name.is_empty()),
        max_body_bytes: usize::try_from(src.integer(
            "A2A_JSONRPC_MAX_BODY_BYTES",
            1024 * 1024,
            1024,
            16 * 1024 * 1024,
        )?)
        .unwrap_or(1024 * 1024),
        streams_per_ip: count(src.integer("A2A_STREAMS_PER_IP", 10, 1, 10_000)?),
        streams_per_user: count(src.integer("A2A_STREAMS_PER_USER", 5, 1, 10_000)?),
        stream_idle: src.seconds("A2A_STREAM_IDLE_SECONDS", 300, 5, 86_400)?,
    })
}

pub(super) fn load(env: &EnvSource) -> Result<Config, ConfigError> {
    let toml = match env.get("HIVE_CONFIG") {
        Some(path) => read_toml(path)?,
        None => BTreeMap::new(),
    };
    let mut src = Sources {
        env,
        toml,
        report: Vec::new(),
    };
    let mut warnings = unknown_variable_warnings(env);

    let environment = src.parsed("HIVE_ENV", Environment::Development, |raw| match raw {
        "development" => Some(Environment::Development),
        "production" => Some(Environment::Production),
        _ => None,
    })?;
    let production = environment == Environment::Production;
    let data_dir = PathBuf::from(
        src.value("HIVE_DATA_DIR")?
            .unwrap_or_else(|| "./hive-data".into()),
    );
    // Read above (it names the TOML file); recorded here so `config check` shows which file.
    src.value("HIVE_CONFIG")?;
    let listen = src.parsed(
        "HIVE_LISTEN",
        SocketAddr::from(([127, 0, 0, 1], 8080)),
        |raw| raw.parse().ok(),
    )?;
    let allow_insecure_http = src.boolean("HIVE_ALLOW_INSECURE_HTTP", false)?;
    let auth_url = parse_auth_url(
        src.value("AUTH_URL")?,
        listen,
        production,
        allow_insecure_http,
    )?;

    let database_url = match src.value("DATABASE_URL")? {
        None => DatabaseUrl::Sqlite(data_dir.join("hive.db")),
        Some(raw) => parse_database_url(&raw)?,
    };
    let database = DatabaseConfig {
        url: database_url,
        max_connections: u32::try_from(src.integer("HIVE_DB_MAX_CONNECTIONS", 10, 1, 200)?)
            .unwrap_or(10),
        auto_migrate: src.boolean("HIVE_AUTO_MIGRATE", true)?,
    };
    let redis_url = src.secret("REDIS_URL")?;
    if let Some(url) = &redis_url {
        let raw = url.expose_secret();
        if !(raw.starts_with("redis://") || raw.starts_with("rediss://"))
            || Url::parse(raw).is_err()
        {
            return Err(invalid("REDIS_URL", "must be a redis:// or rediss:// URL"));
        }
    }

    let redis_key_prefix = src.parsed("HIVE_REDIS_KEY_PREFIX", "hive".to_owned(), |raw| {
        let fine = (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'));
        fine.then(|| raw.to_owned())
    })?;
    let mut rate_limits = hive_state::Policies::default();
    if let Some(spec) = src.value("HIVE_RATE_LIMITS")? {
        rate_limits = rate_limits
            .with_limits(&spec)
            .map_err(|rule| invalid("HIVE_RATE_LIMITS", rule))?;
    }
    if let Some(names) = src.value("HIVE_RATE_LIMIT_FAIL_OPEN")? {
        rate_limits = rate_limits
            .with_fail_open(&names)
            .map_err(|rule| invalid("HIVE_RATE_LIMIT_FAIL_OPEN", rule))?;
    }

    // Tasks are meant to live a day: without Redis they go to the database, which survives a
    // restart (memory only when asked for).
    let default_task_store = if redis_url.is_some() {
        TaskStoreKind::Redis
    } else {
        TaskStoreKind::Database
    };
    let task_store = src.parsed("A2A_TASK_STORE", default_task_store, |raw| match raw {
        "memory" => Some(TaskStoreKind::Memory),
        "redis" => Some(TaskStoreKind::Redis),
        "db" => Some(TaskStoreKind::Database),
        _ => None,
    })?;
    if task_store == TaskStoreKind::Redis && redis_url.is_none() {
        return Err(invalid("A2A_TASK_STORE", "redis needs REDIS_URL"));
    }
    let task_ttl = src.seconds("A2A_TASK_TTL_SECONDS", 86_400, 60, 2_592_000)?;
    let a2a = parse_a2a(&mut src)?;

    let secrets = SuppliedSecrets {
        auth_secret: src.secret("AUTH_SECRET")?,
        encryption_key: src.secret("ENCRYPTION_KEY")?,
        setup_token: src.secret("HIVE_SETUP_TOKEN")?,
        internal_token: src.secret("HIVE_INTERNAL_TOKEN")?,
        bus_hmac_secret: src.secret("MESH_BUS_HMAC_SECRET")?,
    };
    check_secrets(&secrets, production, &mut warnings)?;

    let metrics_listen = match src.value("HIVE_METRICS_LISTEN")? {
        None => None,
        Some(raw) => Some(raw.trim().parse::<SocketAddr>().map_err(|_| {
            invalid(
                "HIVE_METRICS_LISTEN",
                "an IP address and port, e.g. 127.0.0.1:9464",
            )
        })?),
    };
    let http = HttpConfig {
        listen,
        metrics_listen,
        body_limit_bytes: usize::try_from(src.integer(
            "HIVE_BODY_LIMIT_BYTES",
            1024 * 1024,
            1024,
            64 * 1024 * 1024,
        )?)
        .unwrap_or(1024 * 1024),
        request_timeout: src.seconds("HIVE_REQUEST_TIMEOUT_SECONDS", 30, 1, 600)?,
        trusted_proxies: src.parsed("HIVE_TRUSTED_PROXIES", Vec::new(), parse_networks)?,
        client_ip_source: src.parsed("HIVE_CLIENT_IP_SOURCE", ClientIpSource::XffLast, |raw| {
            match raw {
                "real_ip" => Some(ClientIpSource::RealIp),
                "xff_first" => Some(ClientIpSource::XffFirst),
                "xff_last" => Some(ClientIpSource::XffLast),
                _ => None,
            }
        })?,
        shutdown_grace: src.seconds("HIVE_SHUTDOWN_GRACE_SECONDS", 30, 0, 3600)?,
        connections: parse_connection_limits(&mut src)?,
    };
    let log = LogConfig {
        level: src.parsed("LOG_LEVEL", "info".to_owned(), |raw| {
            is_log_filter(raw).then(|| raw.to_owned())
        })?,
        format: src.parsed("LOG_FORMAT", LogFormat::Auto, |raw| match raw {
            "auto" => Some(LogFormat::Auto),
            "json" => Some(LogFormat::Json),
            "pretty" => Some(LogFormat::Pretty),
            _ => None,
        })?,
    };
    let traces = super::traces::parse(&mut src)?;
    let health_check_deep = src.boolean("HEALTH_CHECK_DEEP", false)?;
    let disk_thresholds = parse_disk_thresholds(&mut src)?;
    let allow_public_registration = src.boolean("ALLOW_PUBLIC_REGISTRATION", false)?;
    let mfa_required = src.parsed("HIVE_MFA_REQUIRED", MfaPolicy::Admins, MfaPolicy::parse)?;
    let smtp = parse_smtp(src.secret("SMTP_URL")?, src.value("SMTP_FROM")?, &auth_url)?;
    let egress = EgressSettings {
        allowlist: match src.value("HIVE_EGRESS_FETCH_HOST_ALLOWLIST")? {
            None => hive_egress::Allowlist::empty(),
            Some(text) => hive_egress::Allowlist::parse(&text)
                .map_err(|e| invalid("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", e.to_string()))?,
        },
        max_redirects: match src.value("HIVE_EGRESS_FETCH_MAX_REDIRECTS")? {
            None => hive_egress::MaxRedirects::DEFAULT,
            Some(text) => hive_egress::MaxRedirects::parse(&text).map_err(|_| {
                invalid("HIVE_EGRESS_FETCH_MAX_REDIRECTS", "an integer from 0 to 10")
            })?,
        },
    };
    let oidc = super::oidc::parse(&mut src, production)?;
    let own_origin = auth_url.origin().ascii_serialization();
    let mesh = super::mesh::parse(&mut src, production, &own_origin, &mut warnings)?;
    let jobs = JobsConfig {
        tick: src.seconds("HIVE_JOBS_TICK_SECONDS", 60, 1, 3600)?,
        history_prune_interval: src.seconds(
            "HIVE_JOB_HISTORY_PRUNE_INTERVAL_SECONDS",
            3600,
            1,
            86_400,
        )?,
        history_retention_days: u32::try_from(src.integer(
            "HIVE_JOB_HISTORY_RETENTION_DAYS",
            30,
            1,
            3650,
        )?)
        .unwrap_or(30),
        audit_retention_days: u32::try_from(src.integer("AUDIT_RETENTION_DAYS", 365, 1, 36_500)?)
            .unwrap_or(365),
        conversation_retention_days: u32::try_from(src.integer(
            "HIVE_CONVERSATION_RETENTION_DAYS",
            90,
            0,
            36_500,
        )?)
        .unwrap_or(90),
    };

    let sandbox = SandboxConfig {
        enabled: src.parsed("HIVE_SANDBOX", true, |raw| match raw {
            "process" => Some(true),
            "off" => Some(false),
            _ => None,
        })?,
        bwrap: PathBuf::from(
            src.value("HIVE_SANDBOX_BWRAP")?
                .unwrap_or_else(|| "/usr/bin/bwrap".to_owned()),
        ),
        max_running: u32::try_from(src.integer("HIVE_SANDBOX_MAX_RUNNING", 32, 1, 4096)?)
            .unwrap_or(32),
        max_per_user: u32::try_from(src.integer("HIVE_SANDBOX_MAX_PER_USER", 8, 1, 4096)?)
            .unwrap_or(8),
        log_bytes: src.integer("HIVE_SANDBOX_LOG_BYTES", 4 << 20, 64 << 10, 1 << 30)?,
        stop_grace: src.seconds("HIVE_SANDBOX_STOP_GRACE_SECONDS", 10, 0, 300)?,
        node_url: match src.value("HIVE_NODE_URL")? {
            None => None,
            Some(raw) => Some(super::billing::plain_url("HIVE_NODE_URL", &raw)?),
        },
        init_program: None,
    };

    let disable_code_nodes: Option<bool> =
        src.parsed("HIVE_WORKFLOW_DISABLE_CODE_NODE", None, |raw| match raw {
            "true" => Some(Some(true)),
            "false" => Some(Some(false)),
            _ => None,
        })?;
    let workflows = WorkflowConfig {
        code_nodes: disable_code_nodes.map_or(!production, |disabled| !disabled),
        code_nodes_forced_off: disable_code_nodes == Some(true),
        max_runs_per_user: u32::try_from(src.integer(
            "HIVE_WORKFLOW_MAX_RUNS_PER_USER",
            50,
            1,
            10_000,
        )?)
        .unwrap_or(50),
        max_running: u32::try_from(src.integer("HIVE_WORKFLOW_MAX_RUNNING", 32, 1, 1024)?)
            .unwrap_or(32),
        run_retention_days: u32::try_from(src.integer(
            "HIVE_WORKFLOW_RUN_RETENTION_DAYS",
            30,
            1,
            3650,
        )?)
        .unwrap_or(30),
        lease: src.seconds("HIVE_WORKFLOW_LEASE_SECONDS", 30, 5, 3600)?,
    };

    let billing = super::billing::load(&mut src)?;
    let backup = super::backup::load(&mut src, &data_dir)?;

    // Defaults derived from other values are shown as they came out.
    for line in &mut src.report {
        match (line.name.as_str(), line.source, &database.url) {
            ("AUTH_URL", ValueSource::Default, _) => line.value = auth_url.to_string(),
            ("DATABASE_URL", ValueSource::Default, DatabaseUrl::Sqlite(path)) => {
                line.value = format!("sqlite:{}", path.display());
            }
            ("A2A_TASK_STORE", ValueSource::Default, _) => {
                line.value = match task_store {
                    TaskStoreKind::Memory => "memory",
                    TaskStoreKind::Redis => "redis",
                    TaskStoreKind::Database => "db",
                }
                .to_owned();
            }
            _ => {}
        }
    }

    Ok(Config {
        workflows,
        backup,
        billing,
        egress,
        oidc,
        mesh,
        environment,
        data_dir,
        auth_url,
        allow_insecure_http,
        database,
        redis_url,
        redis_key_prefix,
        rate_limits,
        task_store,
        task_ttl,
        a2a,
        secrets,
        http,
        log,
        traces,
        health_check_deep,
        disk_thresholds,
        allow_public_registration,
        mfa_required,
        smtp,
        jobs,
        sandbox,
        warnings,
        report: src.report,
    })
}

/// `HIVE_HEALTH_DISK_DEGRADED_MB` and `HIVE_HEALTH_DISK_DOWN_MB`, the second not above the first.
fn parse_disk_thresholds(src: &mut Sources<'_>) -> Result<super::DiskThresholds, ConfigError> {
    const MIB: u64 = 1024 * 1024;
    const MAX_MIB: u64 = 16 * 1024 * 1024;
    let degraded = src.integer("HIVE_HEALTH_DISK_DEGRADED_MB", 1024, 0, MAX_MIB)?;
    let down = src.integer("HIVE_HEALTH_DISK_DOWN_MB", 100, 0, MAX_MIB)?;
    if down > degraded {
        return Err(invalid(
            "HIVE_HEALTH_DISK_DOWN_MB",
            "must not be above HIVE_HEALTH_DISK_DEGRADED_MB",
        ));
    }
    Ok(super::DiskThresholds {
        degraded_below_bytes: degraded * MIB,
        down_below_bytes: down * MIB,
    })
}

fn unknown_variable_warnings(env: &EnvSource) -> Vec<String> {
    env.names()
        .filter(|name| {
            ["HIVE_", "MESH_", "A2A_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                && !spec::is_known(name)
        })
        .map(|name| match spec::suggestion(name) {
            Some(known) => format!("unknown variable {name} (a typo?) — did you mean {known}?"),
            None => format!("unknown variable {name} (a typo?)"),
        })
        .collect()
}

/// `SMTP_URL`: `smtps://` (TLS), `smtp://…?tls=required` (STARTTLS), or plain `smtp://` to a
/// loopback relay only — credentials and reset links never cross a network in clear text.
fn parse_smtp(
    url: Option<SecretString>,
    from: Option<String>,
    auth_url: &Url,
) -> Result<Option<SmtpConfig>, ConfigError> {
    let rule = "smtps://[user:password@]host[:port], smtp://…?tls=required, or plain smtp:// to a loopback host";
    let Some(url) = url else {
        if from.is_some() {
            return Err(invalid("SMTP_FROM", "needs SMTP_URL"));
        }
        return Ok(None);
    };
    let parsed = Url::parse(url.expose_secret()).map_err(|_| invalid("SMTP_URL", rule))?;
    let host = parsed.host().ok_or_else(|| invalid("SMTP_URL", rule))?;
    let tls_required = parsed
        .query_pairs()
        .any(|(key, value)| key == "tls" && value == "required");
    // smtp is not a "special" scheme to the URL parser: an IP address arrives as a name.
    let loopback = match host {
        url::Host::Domain(name) => {
            name == "localhost"
                || name
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    let secure = match parsed.scheme() {
        "smtps" => true,
        "smtp" => tls_required || loopback,
        _ => false,
    };
    if !secure {
        return Err(invalid("SMTP_URL", rule));
    }
    let default_from = format!("hive@{}", auth_url.host_str().unwrap_or("localhost"));
    let from = from.unwrap_or(default_from);
    let valid_from = from.len() <= 254
        && from
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !from.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid_from {
        return Err(invalid(
            "SMTP_FROM",
            "an email address like hive@example.com",
        ));
    }
    Ok(Some(SmtpConfig { url, from }))
}

fn parse_database_url(raw: &str) -> Result<DatabaseUrl, ConfigError> {
    let raw = raw.trim();
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        if Url::parse(raw).is_err() {
            return Err(invalid("DATABASE_URL", "not a valid PostgreSQL URL"));
        }
        return Ok(DatabaseUrl::Postgres(SecretString::from(raw.to_owned())));
    }
    let path = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite:"))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            invalid(
                "DATABASE_URL",
                "must be postgres://…, postgresql://… or sqlite:<path>",
            )
        })?;
    Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
}

fn is_level(raw: &str) -> bool {
    matches!(
        raw.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error" | "off"
    )
}

/// `level` or `target=level` directives, comma-separated.
fn is_log_filter(raw: &str) -> bool {
    raw.split(',')
        .all(|directive| match directive.trim().split_once('=') {
            None => is_level(directive.trim()),
            Some((target, level)) => {
                !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
                    && is_level(level)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    const KEY: &str = "8f3a1c9e5b7d2046f1e8a3c5b9d7e2f40a6c8e1b3d5f7092a4c6e8b0d2f41357";
    const SECRET: &str = "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ";

    fn load_pairs(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load(&EnvSource::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn logs_are_json_unless_on_a_terminal_or_told() {
        let format = |raw: &str| load_pairs(&[("LOG_FORMAT", raw)]).unwrap().log.format;
        assert!(LogFormat::Auto.is_json(false) && !LogFormat::Auto.is_json(true));
        assert!(format("json").is_json(true));
        assert!(!format("pretty").is_json(false));
        assert_eq!(format("auto"), LogFormat::Auto);
        let error = load_pairs(&[("LOG_FORMAT", "yaml")]).unwrap_err();
        assert!(error.to_string().contains("LOG_FORMAT"), "{error}");
    }

    #[test]
    fn disk_thresholds_are_mebibytes_and_down_is_not_above_degraded() {
        let config = load_pairs(&[]).unwrap();
        assert_eq!(config.disk_thresholds.degraded_below_bytes, 1024 << 20);
        assert_eq!(config.disk_thresholds.down_below_bytes, 100 << 20);
        let error = load_pairs(&[
            ("HIVE_HEALTH_DISK_DEGRADED_MB", "10"),
            ("HIVE_HEALTH_DISK_DOWN_MB", "20"),
        ])
        .unwrap_err();
        assert!(
            error.to_string().contains("HIVE_HEALTH_DISK_DOWN_MB"),
            "{error}"
        );
        assert!(load_pairs(&[("HIVE_HEALTH_DISK_DEGRADED_MB", "-1")]).is_err());
    }

    fn production(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut pairs = vec![
            ("HIVE_ENV", "production"),
            ("AUTH_URL", "https://hive.example.com"),
            ("AUTH_SECRET", SECRET),
            ("ENCRYPTION_KEY", KEY),
        ];
        pairs.extend_from_slice(extra);
        load_pairs(&pairs)
    }

    fn file_with(dir: &Path, name: &str, content: &str, mode: u32) -> String {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = load_pairs(&[]).unwrap();
        assert_eq!(config.environment, Environment::Development);
        assert_eq!(config.data_dir, PathBuf::from("./hive-data"));
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.auth_url.as_str(), "http://127.0.0.1:8080/");
        assert!(
            matches!(&config.database.url, DatabaseUrl::Sqlite(p) if p == Path::new("./hive-data/hive.db"))
        );
        assert_eq!(config.http.body_limit_bytes, 1024 * 1024);
        assert_eq!(config.http.client_ip_source, ClientIpSource::XffLast);
        assert_eq!(config.http.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.mfa_required, MfaPolicy::Admins);
        assert_eq!(config.log.format, LogFormat::Auto);
        assert!(!config.health_check_deep);
        assert!(config.http.trusted_proxies.is_empty());
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn environment_wins_over_file_variable_over_toml() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = file_with(dir.path(), "auth", &format!("{SECRET}\n"), 0o600);
        let toml = file_with(
            dir.path(),
            "hive.toml",
            "HIVE_LISTEN = \"127.0.0.1:7000\"\nHIVE_BODY_LIMIT_BYTES = 4096\nHEALTH_CHECK_DEEP = true\n",
            0o644,
        );
        let config = load_pairs(&[
            ("HIVE_CONFIG", &toml),
            ("HIVE_LISTEN", "127.0.0.1:9000"),
            ("AUTH_SECRET_FILE", &secret_file),
        ])
        .unwrap();
        assert_eq!(
            config.http.listen.to_string(),
            "127.0.0.1:9000",
            "env wins over TOML"
        );
        assert_eq!(
            config.http.body_limit_bytes, 4096,
            "TOML wins over the default"
        );
        assert!(config.health_check_deep);
        assert_eq!(
            config.secrets.auth_secret.as_ref().unwrap().expose_secret(),
            SECRET,
            "one trailing newline is dropped"
        );
        let sources: BTreeMap<&str, ValueSource> = config
            .report
            .iter()
            .map(|l| (l.name.as_str(), l.source))
            .collect();
        assert_eq!(sources["HIVE_LISTEN"], ValueSource::Environment);
        assert_eq!(sources["HIVE_BODY_LIMIT_BYTES"], ValueSource::ConfigFile);
        assert_eq!(sources["AUTH_SECRET"], ValueSource::File);
        assert_eq!(sources["LOG_LEVEL"], ValueSource::Default);
        assert_eq!(sources["HIVE_CONFIG"], ValueSource::Environment);
        let task_store = config.report.iter().find(|l| l.name == "A2A_TASK_STORE");
        assert_eq!(
            task_store.unwrap().value,
            "db",
            "derived default as it came out"
        );
        assert_eq!(sources["REDIS_URL"], ValueSource::Unset);
    }

    #[test]
    fn each_source_wins_over_the_next_for_the_same_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (in_env, in_file, in_toml) = (
            "EnvVal0123456789abcdefghijKLMNOPQRS",
            "FileVal0123456789abcdefghijKLMNOPQR",
            "TomlVal0123456789abcdefghijKLMNOPQR",
        );
        let toml = file_with(
            dir.path(),
            "hive.toml",
            &format!("AUTH_SECRET = \"{in_toml}\"\n"),
            0o600,
        );
        let file = file_with(dir.path(), "auth", &format!("{in_file}\r\n"), 0o600);
        let auth = |pairs: &[(&str, &str)]| {
            let config = load_pairs(pairs).unwrap();
            let source = config
                .report
                .iter()
                .find(|l| l.name == "AUTH_SECRET")
                .unwrap();
            let value = config
                .secrets
                .auth_secret
                .unwrap()
                .expose_secret()
                .to_owned();
            (value, source.source)
        };
        let with_toml = ("HIVE_CONFIG", toml.as_str());
        assert_eq!(
            auth(&[with_toml, ("AUTH_SECRET", in_env), ("ENCRYPTION_KEY", KEY)]),
            (in_env.to_owned(), ValueSource::Environment)
        );
        assert_eq!(
            auth(&[with_toml, ("AUTH_SECRET_FILE", &file)]),
            (in_file.to_owned(), ValueSource::File),
            "_FILE wins over TOML; CRLF dropped too"
        );
        assert_eq!(
            auth(&[with_toml]),
            (in_toml.to_owned(), ValueSource::ConfigFile)
        );
        let none = load_pairs(&[]).unwrap();
        assert!(none.secrets.auth_secret.is_none());
        let line = none
            .report
            .iter()
            .find(|l| l.name == "AUTH_SECRET")
            .unwrap();
        assert_eq!(line.source, ValueSource::Default);
        assert_eq!(line.value, "generated (development)");
    }

    #[test]
    fn a_secret_set_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_with(dir.path(), "auth", SECRET, 0o600);
        let error =
            load_pairs(&[("AUTH_SECRET", SECRET), ("AUTH_SECRET_FILE", &file)]).unwrap_err();
        assert_eq!(error.variable, "AUTH_SECRET");
        assert!(error.rule.contains("not both"));
        let missing = load_pairs(&[("AUTH_SECRET_FILE", "/nonexistent/auth")]).unwrap_err();
        assert_eq!(missing.variable, "AUTH_SECRET_FILE");
        // The same in the TOML file.
        let toml = file_with(
            dir.path(),
            "both.toml",
            &format!("AUTH_SECRET = \"{SECRET}\"\nAUTH_SECRET_FILE = \"{file}\"\n"),
            0o600,
        );
        let error = load_pairs(&[("HIVE_CONFIG", &toml)]).unwrap_err();
        assert_eq!(error.variable, "HIVE_CONFIG");
        assert!(error.rule.contains("not both"), "{error}");
        assert!(!error.to_string().contains(SECRET));
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = file_with(dir.path(), "big", &"a".repeat(64 * 1024 + 1), 0o600);
        let error = load_pairs(&[("AUTH_SECRET_FILE", &big)]).unwrap_err();
        assert_eq!(error.variable, "AUTH_SECRET_FILE");
        assert!(error.rule.contains("larger than"), "{error}");
        let error = load_pairs(&[("AUTH_SECRET_FILE", "/dev/zero")]).unwrap_err();
        assert_eq!(error.variable, "AUTH_SECRET_FILE");
    }

    #[test]
    fn a_toml_file_holding_secrets_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("AUTH_SECRET = \"{SECRET}\"\n");
        let shared = file_with(dir.path(), "shared.toml", &text, 0o644);
        let error = load_pairs(&[("HIVE_CONFIG", &shared)]).unwrap_err();
        assert_eq!(error.variable, "HIVE_CONFIG");
        assert!(error.rule.contains("chmod 600"), "{error}");
        assert!(error.rule.contains("(mode 0644)"), "{error}");
        assert!(!error.to_string().contains(SECRET));
        // A TOML without secrets may be shared.
        let plain = file_with(dir.path(), "plain.toml", "LOG_FORMAT = \"pretty\"\n", 0o644);
        assert!(load_pairs(&[("HIVE_CONFIG", &plain)]).is_ok());
        let private = file_with(dir.path(), "private.toml", &text, 0o600);
        assert!(load_pairs(&[("HIVE_CONFIG", &private)]).is_ok());
        for key in ["HIVE_LISTN = \"x\"", "HIVE_CONFIG = \"/etc/other.toml\""] {
            let unknown = file_with(dir.path(), "unknown.toml", &format!("{key}\n"), 0o600);
            assert!(
                load_pairs(&[("HIVE_CONFIG", &unknown)])
                    .unwrap_err()
                    .rule
                    .contains("unknown key"),
                "{key}"
            );
        }
        let float = file_with(
            dir.path(),
            "float.toml",
            "HIVE_JOBS_TICK_SECONDS = 1.5\n",
            0o600,
        );
        assert!(load_pairs(&[("HIVE_CONFIG", &float)]).is_err());
    }

    #[test]
    fn smtp_needs_tls_unless_the_relay_is_local() {
        for fine in [
            "smtps://user:pw@mail.example.com:465",
            "smtp://user:pw@mail.example.com:587?tls=required",
            "smtp://127.0.0.1:25",
            "smtp://localhost:2525",
            "smtp://[::1]:25",
        ] {
            let config = load_pairs(&[("SMTP_URL", fine)]).unwrap();
            let smtp = config.smtp.unwrap_or_else(|| panic!("{fine}"));
            assert_eq!(smtp.from, "hive@127.0.0.1", "from AUTH_URL's host");
        }
        for refused in [
            "smtp://user:pw@mail.example.com:587",
            "smtp://mail.example.com?tls=opportunistic",
            "http://mail.example.com",
            "not a url",
        ] {
            let error = load_pairs(&[("SMTP_URL", refused)]).unwrap_err();
            assert_eq!(error.variable, "SMTP_URL", "{refused}");
            assert!(!error.to_string().contains("pw@"), "{error}");
        }
        let from = load_pairs(&[("SMTP_URL", "smtp://127.0.0.1"), ("SMTP_FROM", "x y@z")]);
        assert_eq!(from.unwrap_err().variable, "SMTP_FROM");
        let alone = load_pairs(&[("SMTP_FROM", "hive@example.com")]);
        assert_eq!(alone.unwrap_err().variable, "SMTP_FROM");
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_rule() {
        for (name, value) in [
            ("HIVE_ENV", "staging"),
            ("HIVE_LISTEN", "localhost"),
            ("HIVE_BODY_LIMIT_BYTES", "100"),
            ("HIVE_REQUEST_TIMEOUT_SECONDS", "0"),
            ("HIVE_SHUTDOWN_GRACE_SECONDS", "-1"),
            ("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("HIVE_HTTP_IDLE_TIMEOUT_SECONDS", "3601"),
            ("HIVE_HTTP_MAX_CONNECTIONS", "15"),
            ("HIVE_HTTP_MAX_CONNECTIONS_PER_IP", "0"),
            ("HIVE_HTTP_MAX_STREAMS_PER_CONNECTION", "1001"),
            ("HIVE_TRUSTED_PROXIES", "10.0.0.0/8, nonsense"),
            ("HIVE_CLIENT_IP_SOURCE", "auto"),
            ("HIVE_MFA_REQUIRED", "some"),
            ("HEALTH_CHECK_DEEP", "yes"),
            ("LOG_LEVEL", "loud"),
            ("LOG_LEVEL", "hive=verbose"),
            ("LOG_FORMAT", "xml"),
            ("DATABASE_URL", "mysql://db/hive"),
            ("REDIS_URL", "http://cache"),
            ("AUTH_URL", "ftp://hive.example.com"),
            ("AUTH_URL", "https://user:pw@hive.example.com"),
            ("AUTH_URL", "https://hive.example.com/?q=1"),
            ("ENCRYPTION_KEY", "abc"),
            ("ENCRYPTION_KEY", &"g".repeat(64)),
            ("AUTH_SECRET", "too-short"),
            ("HIVE_INTERNAL_TOKEN", "too-short"),
            ("HIVE_RATE_LIMITS", "login=0/1m"),
            ("HIVE_RATE_LIMITS", "nonsense=1/1m"),
            ("HIVE_RATE_LIMIT_FAIL_OPEN", "login"),
            ("HIVE_REDIS_KEY_PREFIX", "has space"),
            ("A2A_TASK_STORE", "redis"),
            ("A2A_TASK_STORE", "files"),
            ("A2A_TASK_TTL_SECONDS", "10"),
            ("HIVE_METRICS_LISTEN", "everywhere"),
        ] {
            let error = load_pairs(&[(name, value)]).unwrap_err();
            assert_eq!(error.variable, name, "{name}={value}: {error}");
            assert!(!error.rule.is_empty());
            // A secret's value is never repeated back.
            if spec::find(name).is_some_and(|s| s.secret) {
                assert!(!error.to_string().contains(value), "{error}");
            }
        }
    }

    #[test]
    fn good_values_parse() {
        let config = load_pairs(&[
            ("HIVE_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1 ,::1"),
            ("HIVE_CLIENT_IP_SOURCE", "real_ip"),
            ("LOG_LEVEL", "info,hive_server=debug,sqlx::query=warn"),
            ("DATABASE_URL", "sqlite:/var/lib/hive/hive.db"),
            ("REDIS_URL", "rediss://:pw@cache:6380/0"),
            ("HIVE_LISTEN", "0.0.0.0:9000"),
            ("HIVE_RATE_LIMITS", "login=10/30m"),
            ("HIVE_RATE_LIMIT_FAIL_OPEN", "health,api"),
        ])
        .unwrap();
        assert_eq!(
            config.task_store,
            TaskStoreKind::Redis,
            "redis by default with REDIS_URL"
        );
        let memory = load_pairs(&[("A2A_TASK_STORE", "memory")]).unwrap();
        assert_eq!(memory.task_store, TaskStoreKind::Memory);
        assert_eq!(
            load_pairs(&[]).unwrap().task_store,
            TaskStoreKind::Database,
            "the database by default without REDIS_URL: tasks survive a restart"
        );
        let login = config.rate_limits.get("login").unwrap();
        assert_eq!(login.quota.limit, 10);
        assert_eq!(
            config.rate_limits.get("api").unwrap().outage,
            hive_state::OutageMode::FailOpen
        );
        assert_eq!(config.http.trusted_proxies.len(), 3);
        assert_eq!(config.http.client_ip_source, ClientIpSource::RealIp);
        assert!(
            matches!(&config.database.url, DatabaseUrl::Sqlite(p) if p == Path::new("/var/lib/hive/hive.db"))
        );
        assert_eq!(
            config.auth_url.as_str(),
            "http://127.0.0.1:9000/",
            "unspecified → loopback"
        );
        let pg = load_pairs(&[("DATABASE_URL", "postgresql://hive:pw@db/hive")]).unwrap();
        assert!(matches!(pg.database.url, DatabaseUrl::Postgres(_)));
    }

    #[test]
    fn production_refuses_weak_generated_or_missing_secrets() {
        assert!(production(&[]).is_ok());
        for weak in [
            "changeme-changeme-changeme-changeme",
            "changeme-changeme-changeme-changeme-1",
            "my-super-secret-value-0123456789abcdef",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abcdefghijabcdefghijabcdefghijabcdefghij",
        ] {
            let error = production(&[("HIVE_INTERNAL_TOKEN", weak)]).unwrap_err();
            assert_eq!(error.variable, "HIVE_INTERNAL_TOKEN", "{weak}");
            assert!(!error.to_string().contains(weak));
            // The same value is only a warning in development.
            let dev = load_pairs(&[("HIVE_INTERNAL_TOKEN", weak)]).unwrap();
            assert!(
                dev.warnings
                    .iter()
                    .any(|w| w.contains("HIVE_INTERNAL_TOKEN"))
            );
        }
        let periodic_key = "0123456789abcdef".repeat(4);
        assert_eq!(
            production(&[("ENCRYPTION_KEY", &periodic_key)])
                .unwrap_err()
                .variable,
            "ENCRYPTION_KEY"
        );
        let pairs = [
            ("HIVE_ENV", "production"),
            ("AUTH_URL", "https://hive.example.com"),
            ("ENCRYPTION_KEY", KEY),
        ];
        assert_eq!(load_pairs(&pairs).unwrap_err().variable, "AUTH_SECRET");
    }

    #[test]
    fn production_needs_https_unless_told_otherwise() {
        let plain = production(&[("AUTH_URL", "http://hive.internal")]).unwrap_err();
        assert_eq!(plain.variable, "AUTH_URL");
        assert!(
            production(&[
                ("AUTH_URL", "http://hive.internal"),
                ("HIVE_ALLOW_INSECURE_HTTP", "true")
            ])
            .is_ok()
        );
        let missing = load_pairs(&[
            ("HIVE_ENV", "production"),
            ("AUTH_SECRET", SECRET),
            ("ENCRYPTION_KEY", KEY),
        ])
        .unwrap_err();
        assert_eq!(missing.variable, "AUTH_URL");
    }

    #[test]
    fn unknown_hive_variables_are_reported_with_a_suggestion() {
        let config = load_pairs(&[
            ("HIVE_LISTN", "x"),
            ("HIVE_TEST_DATABASE_URL", "y"),
            ("OTHER", "z"),
        ])
        .unwrap();
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("HIVE_LISTN"));
        assert!(config.warnings[0].contains("did you mean HIVE_LISTEN"));
    }

    #[test]
    fn the_command_lines_own_variables_neither_warn_nor_configure_the_server() {
        let token = "hive_abcdefghijklmnopqrstuvwxyz012345";
        let config = load_pairs(&[
            ("HIVE_SERVER_URL", "http://127.0.0.1:1"),
            ("HIVE_TOKEN", token),
            ("HIVE_TOKEN_FILE", "/nonexistent/token"),
        ])
        .unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert!(
            config
                .report
                .iter()
                .all(|line| !line.name.starts_with("HIVE_TOKEN") && line.name != "HIVE_SERVER_URL"),
            "{:?}",
            config.report
        );
        assert!(!format!("{config:?}").contains(token));
        let typo = load_pairs(&[("HIVE_TOKN", token)]).unwrap();
        assert!(
            typo.warnings[0].contains("did you mean HIVE_TOKEN"),
            "{:?}",
            typo.warnings
        );
        assert!(!typo.warnings[0].contains(token));
    }

    #[test]
    fn the_report_never_shows_a_secret() {
        let config = load_pairs(&[
            ("AUTH_SECRET", SECRET),
            ("ENCRYPTION_KEY", KEY),
            (
                "DATABASE_URL",
                "postgres://hive:DbPassw0rdValue@db:5432/hive",
            ),
            ("REDIS_URL", "redis://:RedisPassw0rd@cache:6379"),
        ])
        .unwrap();
        let text = super::super::render_check(&config, "Secrets file: none");
        for secret in [SECRET, KEY, "DbPassw0rdValue", "RedisPassw0rd"] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
            assert!(!format!("{config:?}").contains(secret), "{secret} in Debug");
        }
        assert!(text.contains("<set, 32 chars>"), "{text}");
        assert!(text.contains("postgres://hive:****@db:5432/hive"), "{text}");

        // Secrets from a file and from the TOML file; a password in the query string.
        let dir = tempfile::tempdir().unwrap();
        let file = file_with(dir.path(), "token", SECRET, 0o600);
        let toml = file_with(
            dir.path(),
            "hive.toml",
            &format!("ENCRYPTION_KEY = \"{KEY}\"\n"),
            0o600,
        );
        let config = load_pairs(&[
            ("HIVE_CONFIG", &toml),
            ("HIVE_INTERNAL_TOKEN_FILE", &file),
            (
                "DATABASE_URL",
                "postgres://db/hive?sslmode=require&password=QueryPassw0rd",
            ),
            ("REDIS_URL", "rediss://cache:6380/0?pass=RedisQueryPass"),
        ])
        .unwrap();
        let text = super::super::render_check(&config, "");
        for secret in [SECRET, KEY, "QueryPassw0rd", "RedisQueryPass"] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
        }
        assert!(text.contains("sslmode=require&password=****"), "{text}");
        assert!(text.contains("(file (HIVE_INTERNAL_TOKEN_FILE))"), "{text}");
        assert!(text.contains("<set, 64 chars>"), "{text}");
    }
}
