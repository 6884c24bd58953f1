//! Placeholder: the loader is being written.
use super::Config;
use std::collections::BTreeMap;

/// The variables a process was started with (a snapshot; tests build their own).
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    vars: BTreeMap<String, String>,
}

impl EnvSource {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {rule}")]
pub struct ConfigError {
    pub variable: String,
    pub rule: String,
}

pub(super) fn load(_env: &EnvSource) -> Result<Config, ConfigError> {
    Err(ConfigError { variable: "HIVE".into(), rule: "not yet".into() })
}
