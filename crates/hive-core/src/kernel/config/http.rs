//! The HTTP settings that need more than a range check: the public URL (`AUTH_URL`), trusted
//! networks, connection limits.

use super::ConnectionLimits;
use super::sources::{ConfigError, Sources, invalid};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use url::Url;

pub(super) fn parse_connection_limits(
    src: &mut Sources<'_>,
) -> Result<ConnectionLimits, ConfigError> {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let default = ConnectionLimits::default();
    let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(ConnectionLimits {
        header_read_timeout: src.seconds(
            "HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS",
            default.header_read_timeout.as_secs(),
            1,
            300,
        )?,
        idle_timeout: src.seconds(
            "HIVE_HTTP_IDLE_TIMEOUT_SECONDS",
            default.idle_timeout.as_secs(),
            1,
            3600,
        )?,
        max_connections: size(src.integer(
            "HIVE_HTTP_MAX_CONNECTIONS",
            wide(default.max_connections),
            16,
            1_000_000,
        )?),
        max_connections_per_ip: size(src.integer(
            "HIVE_HTTP_MAX_CONNECTIONS_PER_IP",
            wide(default.max_connections_per_ip),
            1,
            100_000,
        )?),
        max_streams_per_connection: u32::try_from(src.integer(
            "HIVE_HTTP_MAX_STREAMS_PER_CONNECTION",
            u64::from(default.max_streams_per_connection),
            1,
            1000,
        )?)
        .unwrap_or(default.max_streams_per_connection),
    })
}

pub(super) fn parse_auth_url(
    raw: Option<String>,
    listen: SocketAddr,
    production: bool,
    allow_insecure_http: bool,
) -> Result<Url, ConfigError> {
    let rule = "an absolute http(s) URL without credentials, query or fragment";
    let Some(raw) = raw else {
        if production {
            return Err(invalid(
                "AUTH_URL",
                "required in production (the public https URL)",
            ));
        }
        return Url::parse(&format!("http://{}", local_authority(listen)))
            .map_err(|_| invalid("AUTH_URL", rule));
    };
    let url = Url::parse(raw.trim()).map_err(|_| invalid("AUTH_URL", rule))?;
    let plain = match url.scheme() {
        "https" => false,
        "http" => true,
        _ => return Err(invalid("AUTH_URL", rule)),
    };
    if url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid("AUTH_URL", rule));
    }
    if production && plain && !allow_insecure_http {
        return Err(invalid(
            "AUTH_URL",
            "must be https in production (set HIVE_ALLOW_INSECURE_HTTP=true to allow http)",
        ));
    }
    Ok(url)
}

/// The address people reach a local listener at (an unspecified address is not reachable).
fn local_authority(listen: SocketAddr) -> String {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("127.0.0.1:{}", listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("[::1]:{}", listen.port()),
        _ => listen.to_string(),
    }
}

pub(super) fn parse_networks(raw: &str) -> Option<Vec<IpNet>> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .ok()
                .or_else(|| item.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}
