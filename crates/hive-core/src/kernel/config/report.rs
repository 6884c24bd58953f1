//! What `hive config check` prints: every variable, its value (secrets masked) and its source.

use super::spec::VarSpec;
use super::{Config, Environment};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    Default,
    /// Not set, and no default: the feature is off (e.g. no `REDIS_URL`).
    Unset,
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
            Self::Unset => "unset",
            Self::Environment => "environment",
            Self::File => "_FILE",
            Self::ConfigFile => "HIVE_CONFIG file",
        })
    }
}

/// One variable as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    /// The variable's name (an instance's own name for a template row: `OIDC_CORP_ISSUER`).
    pub name: String,
    /// The value for display: secrets are masked, URLs lose their password.
    pub value: String,
    pub source: ValueSource,
}

impl ReportLine {
    /// The source as shown: a `NAME_FILE` source names its variable.
    pub fn source_label(&self) -> String {
        match self.source {
            ValueSource::File => format!("file ({}_FILE)", self.name),
            other => other.to_string(),
        }
    }
}

/// A value as it may be shown. A secret shows only that it is set and its length; a connection
/// URL shows everything but its password.
pub(crate) fn display_value(spec: &VarSpec, value: &str) -> String {
    if !spec.secret {
        return value.to_owned();
    }
    if value.contains("://")
        && let Ok(url) = url::Url::parse(value)
    {
        return masked_url(url);
    }
    if value.starts_with("sqlite:") {
        return value.to_owned();
    }
    format!("<set, {} chars>", value.chars().count())
}

/// A connection URL with its password replaced by `****`, in the userinfo and in the query
/// (sqlx reads `?password=`, redis-rs `?pass=`).
fn masked_url(mut url: url::Url) -> String {
    if url.password().is_some() {
        // Cannot fail for URLs that already carry a password.
        let _ = url.set_password(Some("****"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if key.to_ascii_lowercase().contains("pass") {
                    "****".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
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
            line.name,
            line.value,
            line.source_label()
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
