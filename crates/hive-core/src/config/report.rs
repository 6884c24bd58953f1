//! What `hive config check` prints: every variable, its value (secrets masked) and its source.

use super::spec::VarSpec;
use super::{Config, Environment};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    Default,
    Environment,
    /// A `NAME_FILE` variable named a file holding the value.
    File,
    /// The TOML file of `HIVE_CONFIG`.
    ConfigFile,
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Environment => "environment",
            Self::File => "_FILE",
            Self::ConfigFile => "HIVE_CONFIG file",
        })
    }
}

/// One variable as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    pub name: &'static str,
    /// The value for display: secrets are masked, URLs lose their password.
    pub value: String,
    pub source: ValueSource,
}

/// A value as it may be shown. A secret shows only that it is set and its length; a connection
/// URL shows everything but its password.
pub(crate) fn display_value(spec: &VarSpec, value: &str) -> String {
    if !spec.secret {
        return value.to_owned();
    }
    let is_url = value.contains("://");
    if is_url && let Ok(mut url) = url::Url::parse(value) {
        if url.password().is_some() {
            // Cannot fail for URLs that already carry a password.
            let _ = url.set_password(Some("****"));
        }
        return url.to_string();
    }
    if value.starts_with("sqlite:") {
        return value.to_owned();
    }
    format!("<set, {} chars>", value.chars().count())
}

/// The text of `hive config check`.
pub fn render_check(config: &Config, secrets_status: &str) -> String {
    let mode = match config.environment {
        Environment::Development => "development",
        Environment::Production => "production",
    };
    let width = config
        .report
        .iter()
        .map(|line| line.name.len())
        .max()
        .unwrap_or(0);
    let value_width = config
        .report
        .iter()
        .map(|line| line.value.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut out = format!("Hive configuration ({mode}): valid\n\n");
    for line in &config.report {
        out.push_str(&format!(
            "  {:<width$}  {:<value_width$}  ({})\n",
            line.name, line.value, line.source
        ));
    }
    out.push_str(&format!("\n{secrets_status}\n"));
    if !config.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for warning in &config.warnings {
            out.push_str(&format!("  - {warning}\n"));
        }
    }
    out
}
