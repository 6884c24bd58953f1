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
}

impl AppState {
    pub fn new(hive: Arc<Hive>, shutdown: CancellationToken) -> Self {
        let pipeline = Arc::new(crate::pipeline::PipelineSettings::from_config(&hive.config));
        Self {
            hive,
            shutdown,
            pipeline,
        }
    }
}
