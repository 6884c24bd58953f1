use hive_core::kernel::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// JSON lines (default) or human-readable logs on stdout, filtered by `LOG_LEVEL`.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.level)
        .map_err(|e| format!("LOG_LEVEL: not a valid filter ({e})"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}
