//! What every handler and middleware can reach: the services, the shutdown signal, the
//! pipeline's settings and the open streams. Below every module that handles a request.

use crate::streams::StreamSlots;
use hive_core::Hive;
use hive_core::kernel::config::{ClientIpSource, Config};
use http::HeaderValue;
use ipnet::IpNet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What every handler and middleware can reach. Cheap to clone: one reference count (the
/// state is cloned by every layer of every request, and a shutdown token's clone takes a lock).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    pub hive: Arc<Hive>,
    /// Fires when the process shuts down; long-lived responses (streams) end on it.
    pub shutdown: CancellationToken,
    pub(crate) pipeline: Arc<PipelineSettings>,
    /// The event streams open on this replica (A2A and the live event stream).
    pub(crate) streams: Arc<StreamSlots>,
}

impl AppState {
    pub fn new(hive: Arc<Hive>, shutdown: CancellationToken) -> Self {
        let pipeline = Arc::new(PipelineSettings::from_config(&hive.config));
        let a2a = &hive.config.a2a;
        let streams = Arc::new(StreamSlots::new(a2a.streams_per_ip, a2a.streams_per_user));
        Self(Arc::new(Shared {
            hive,
            shutdown,
            pipeline,
            streams,
        }))
    }
}

impl Shared {
    /// The one origin a browser's write may come from: that of `AUTH_URL`.
    pub fn allowed_origin(&self) -> &HeaderValue {
        &self.pipeline.allowed_origin
    }
}

/// Pipeline values computed once from the configuration, not per request.
#[derive(Debug)]
pub(crate) struct PipelineSettings {
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub client_ip_source: ClientIpSource,
    /// The only origin CORS allows: that of `AUTH_URL`.
    pub allowed_origin: HeaderValue,
    /// HSTS is sent only when Hive is served over https.
    pub hsts: bool,
}

impl PipelineSettings {
    pub fn from_config(config: &Config) -> Self {
        let origin = config.public_origin();
        Self {
            request_timeout: config.http.request_timeout,
            body_limit: config.http.body_limit_bytes,
            trusted_proxies: config.http.trusted_proxies.clone(),
            client_ip_source: config.http.client_ip_source,
            // An origin serialised by the URL parser is always a valid header value; the
            // fallback can never match a browser's Origin.
            allowed_origin: HeaderValue::from_str(&origin)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid:")),
            hsts: config.served_over_https(),
        }
    }
}
