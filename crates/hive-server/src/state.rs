use hive_core::Hive;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every handler and middleware can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub hive: Arc<Hive>,
    /// Fires when the process shuts down; long-lived responses (streams) end on it.
    pub shutdown: CancellationToken,
    pub(crate) pipeline: Arc<crate::pipeline::PipelineSettings>,
    /// The event streams open on this replica (A2A and the live event stream).
    pub(crate) streams: Arc<crate::streams::StreamSlots>,
}

impl AppState {
    pub fn new(hive: Arc<Hive>, shutdown: CancellationToken) -> Self {
        let pipeline = Arc::new(crate::pipeline::PipelineSettings::from_config(&hive.config));
        let a2a = &hive.config.a2a;
        let streams = Arc::new(crate::streams::StreamSlots::new(
            a2a.streams_per_ip,
            a2a.streams_per_user,
        ));
        Self {
            hive,
            shutdown,
            pipeline,
            streams,
        }
    }
}
