use hive_core::kernel::config::LogConfig;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Logs on stdout, filtered by `LOG_LEVEL`: human-readable on a terminal, JSON lines when
/// stdout is not one (`LOG_FORMAT=auto`, the default) or when `LOG_FORMAT` says so.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.level)
        .map_err(|e| format!("LOG_LEVEL: not a valid filter ({e})"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = if config.format.is_json(std::io::stdout().is_terminal()) {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}
