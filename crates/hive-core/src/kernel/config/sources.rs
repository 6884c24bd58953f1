//! Where the values come from, in order of precedence: the environment, `NAME_FILE` files, the
//! TOML file of `HIVE_CONFIG`; and the error that names a variable and its rule.

use super::report::{ReportLine, ValueSource, display_value};
use super::spec::{self, VarSpec};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The variables a process was started with (a snapshot; tests build their own).
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    vars: BTreeMap<String, String>,
}

impl EnvSource {
    /// The process environment; variables that are not valid Unicode are left out.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Later pairs win over earlier ones with the same name.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

/// An invalid configuration: which variable, and the rule it breaks. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {rule}")]
pub struct ConfigError {
    pub variable: String,
    pub rule: String,
}

pub(super) fn invalid(variable: &str, rule: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        rule: rule.into(),
    }
}

/// Where the values come from, in order of precedence: environment, `NAME_FILE`, the TOML file.
pub(super) struct Sources<'a> {
    pub(super) env: &'a EnvSource,
    pub(super) toml: BTreeMap<String, String>,
    pub(super) report: Vec<ReportLine>,
}

impl Sources<'_> {
    /// The raw value of a variable and where it came from; records it for the report.
    fn raw(&mut self, spec: &'static VarSpec) -> Result<Option<String>, ConfigError> {
        self.raw_named(spec, spec.name.to_owned())
    }

    /// As [`Sources::raw`] for the variable `name` of `spec` (an instance of a template row).
    fn raw_named(
        &mut self,
        spec: &'static VarSpec,
        name: String,
    ) -> Result<Option<String>, ConfigError> {
        let found = self.lookup(&name, spec.secret)?;
        let (value, source) = match &found {
            Some((value, source)) => (display_value(spec, value), *source),
            None if spec.has_default() => (spec.default.to_owned(), ValueSource::Default),
            None => (spec.default.to_owned(), ValueSource::Unset),
        };
        self.report.push(ReportLine {
            name,
            value,
            source,
        });
        Ok(found.map(|(value, _)| value))
    }

    fn lookup(
        &self,
        name: &str,
        secret: bool,
    ) -> Result<Option<(String, ValueSource)>, ConfigError> {
        let file_name = format!("{name}_FILE");
        let direct = self.env.get(name);
        let from_file = secret.then(|| self.env.get(&file_name)).flatten();
        match (direct, from_file) {
            (Some(_), Some(_)) => Err(invalid(
                name,
                format!("set either {name} or {file_name}, not both"),
            )),
            (Some(value), None) => Ok(Some((value.to_owned(), ValueSource::Environment))),
            (None, Some(path)) => Ok(Some((
                read_secret_file(&file_name, path)?,
                ValueSource::File,
            ))),
            (None, None) => {
                if let Some(value) = self.toml.get(name) {
                    return Ok(Some((value.clone(), ValueSource::ConfigFile)));
                }
                match secret.then(|| self.toml.get(&file_name)).flatten() {
                    Some(path) => Ok(Some((
                        read_secret_file(&file_name, path)?,
                        ValueSource::File,
                    ))),
                    None => Ok(None),
                }
            }
        }
    }

    pub(super) fn value(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        let spec = spec::find(name).ok_or_else(|| invalid(name, "not a known variable"))?;
        if spec.is_template() {
            return self.raw_named(spec, name.to_owned());
        }
        self.raw(spec)
    }

    pub(super) fn secret(&mut self, name: &str) -> Result<Option<SecretString>, ConfigError> {
        Ok(self.value(name)?.map(SecretString::from))
    }

    pub(super) fn parsed<T>(
        &mut self,
        name: &str,
        default: T,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        match self.value(name)? {
            None => Ok(default),
            Some(raw) => parse(raw.trim())
                .ok_or_else(|| invalid(name, spec::find(name).map_or("invalid value", |s| s.rule))),
        }
    }

    pub(super) fn boolean(&mut self, name: &str, default: bool) -> Result<bool, ConfigError> {
        self.parsed(name, default, |raw| {
            match raw.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            }
        })
    }

    pub(super) fn integer(
        &mut self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        self.parsed(name, default, |raw| {
            raw.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
        })
    }

    pub(super) fn seconds(
        &mut self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.integer(name, default, min, max)
            .map(Duration::from_secs)
    }
}

/// Reads a small text file, refusing one over `limit` bytes (a mistaken `/dev/zero` or a log
/// file must not hang or fill memory at start).
fn read_small_file(variable: &str, path: &str, limit: u64) -> Result<String, ConfigError> {
    use std::io::Read;
    let cannot = |e: std::io::Error| invalid(variable, format!("cannot read {path}: {}", e.kind()));
    let mut content = String::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(limit + 1)
        .read_to_string(&mut content)
        .map_err(cannot)?;
    if content.len() as u64 > limit {
        return Err(invalid(
            variable,
            format!("{path} is larger than {limit} bytes"),
        ));
    }
    Ok(content)
}

/// A secret read from a file: one trailing newline (what editors and `echo` add) is dropped.
pub(super) fn read_secret_file(variable: &str, path: &str) -> Result<String, ConfigError> {
    let content = read_small_file(variable, path, 64 * 1024)?;
    let trimmed = content
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&content);
    Ok(trimmed.to_owned())
}

/// Reads the TOML file named by `HIVE_CONFIG`: a flat table of variable names.
pub(super) fn read_toml(path: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = read_small_file("HIVE_CONFIG", path, 1024 * 1024)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        invalid(
            "HIVE_CONFIG",
            format!("{path} is not valid TOML: {}", e.message()),
        )
    })?;
    let mut values = BTreeMap::new();
    let mut holds_secret = false;
    for (key, value) in table {
        if !spec::allowed_in_config_file(&key) {
            return Err(invalid("HIVE_CONFIG", format!("{path}: unknown key {key}")));
        }
        holds_secret |= spec::find(&key).is_some_and(|s| s.secret);
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(invalid(
                    "HIVE_CONFIG",
                    format!("{path}: {key} must be a string, integer or boolean"),
                ));
            }
        };
        values.insert(key, text);
    }
    // The same rule as in the environment: one source per secret, or a reader cannot tell which.
    if let Some(name) = values
        .keys()
        .find(|name| values.contains_key(&format!("{name}_FILE")))
    {
        return Err(invalid(
            "HIVE_CONFIG",
            format!("{path}: set either {name} or {name}_FILE, not both"),
        ));
    }
    if holds_secret {
        refuse_shared_file("HIVE_CONFIG", Path::new(path))?;
    }
    Ok(values)
}

/// A file holding secrets must not be readable by group or others.
fn refuse_shared_file(variable: &str, path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| {
            invalid(
                variable,
                format!("cannot read {}: {}", path.display(), e.kind()),
            )
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(invalid(
            variable,
            format!(
                "{} holds secrets but is accessible to other users (mode {:04o}); run chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        ));
    }
    Ok(())
}
