//! The composition root's part for hosted agents: the sandbox backend of this host (the process
//! backend on bubblewrap), its share of the host's sandbox uids and cgroups, and the addresses
//! no agent may reach whatever the lists say (the database's, Redis's, NATS's).

use crate::agents::hosted::HostedRuntime;
use crate::kernel::audit::Auditor;
use crate::kernel::config::{Config, DatabaseUrl};
use crate::kernel::egress::Egress;
use crate::system_health::SandboxAvailability;
use hive_sandbox::SandboxBackend;
use hive_sandbox::process::{ProcessBackend, ProcessBackendConfig};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;

/// Host uids a Hive process gives its sandboxes (one each while it runs), from one of [`SLOTS`]
/// blocks above 1,640,000,000; the block is chosen by the data directory, so two Hive processes
/// on one host (each with its own data directory) neither share uids nor reap each other's
/// sandboxes. Below them stay the sandbox crate's own default range (1,610,000,000 up) and the
/// ranges its tests take (1,620,000,000 to 1,631,000,000).
const UIDS_PER_PROCESS: u32 = 4096;
const FIRST_UID: u32 = 1_640_000_000;
/// Blocks up to uid 2,143,808,000: uids past 2^31 are refused in bubblewrap's uid maps.
const SLOTS: u32 = 123_000;

/// The runtime of hosted agents on this host, or why there is none (said once in the log),
/// with what the system health report says of it.
pub async fn open_runtime(
    config: &Config,
    egress: &Egress,
    auditor: &Auditor,
) -> (Result<HostedRuntime, String>, SandboxAvailability) {
    let opened = open(config, egress, auditor).await;
    if let Err(why) = &opened {
        tracing::info!(reason = %why, "hosted agents do not run in this process");
    }
    let availability = match &opened {
        Ok(runtime) => SandboxAvailability::of(runtime.capabilities()),
        Err(_) if !config.sandbox.enabled => SandboxAvailability::Off,
        Err(_) if config.sandbox.init_program.is_none() => SandboxAvailability::NotThisProcess,
        Err(_) => SandboxAvailability::Unavailable,
    };
    (opened, availability)
}

async fn open(
    config: &Config,
    egress: &Egress,
    auditor: &Auditor,
) -> Result<HostedRuntime, String> {
    if !config.sandbox.enabled {
        return Err("HIVE_SANDBOX is off".into());
    }
    let Some(init_program) = &config.sandbox.init_program else {
        return Err("only `hive serve` runs hosted agents".into());
    };
    let instance = instance_of(config);
    let mut settings = ProcessBackendConfig::new(init_program);
    settings.bwrap = config.sandbox.bwrap.clone();
    settings.init_args = vec!["sandbox-init".to_owned()];
    settings.cgroup_parent = format!("hive-{}", &instance.name);
    let first = FIRST_UID + instance.slot * UIDS_PER_PROCESS;
    settings.host_uids = first..first + UIDS_PER_PROCESS;
    let backend = ProcessBackend::new(settings)
        .await
        .map_err(|error| format!("the sandbox cannot run here: {error}"))?;
    for note in &backend.capabilities().notes {
        tracing::warn!(note = %note, "sandbox");
    }
    let protected = protected_addresses(config).await;
    Ok(HostedRuntime::new(
        Arc::new(backend),
        egress.client(),
        auditor.clone(),
        protected,
    ))
}

struct Instance {
    /// 12 hex characters of the data directory's digest (the cgroup parent's name).
    name: String,
    slot: u32,
}

fn instance_of(config: &Config) -> Instance {
    let dir = std::fs::canonicalize(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let digest = hive_crypto::sha256_hex(dir.to_string_lossy().as_bytes());
    let slot = u32::from_str_radix(&digest[..8], 16).unwrap_or(0) % SLOTS;
    Instance {
        name: digest[..12].to_owned(),
        slot,
    }
}

/// The addresses of the services Hive itself uses: an agent's proxy refuses them even when an
/// allowlist names them.
async fn protected_addresses(config: &Config) -> Vec<SocketAddr> {
    let mut urls: Vec<String> = Vec::new();
    if let DatabaseUrl::Postgres(url) = &config.database.url {
        urls.push(url.expose_secret().to_owned());
    }
    if let Some(url) = &config.redis_url {
        urls.push(url.expose_secret().to_owned());
    }
    if let Some(nats) = &config.mesh.wan.nats {
        urls.push(nats.url.expose_secret().to_owned());
    }
    let mut addresses = Vec::new();
    for raw in urls {
        let Ok(url) = url::Url::parse(&raw) else {
            continue;
        };
        let (Some(host), Some(port)) = (
            url.host_str(),
            url.port_or_known_default().or(default_port(url.scheme())),
        ) else {
            continue;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => addresses.extend(found),
            Err(error) => {
                tracing::warn!(%error, "a service's address for the agents' proxy to refuse was not resolved")
            }
        }
    }
    addresses
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" | "postgresql" => Some(5432),
        "redis" | "rediss" => Some(6379),
        "nats" | "tls" => Some(4222),
        _ => None,
    }
}
