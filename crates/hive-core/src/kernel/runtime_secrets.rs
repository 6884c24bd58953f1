//! The secrets a process runs with: supplied by the operator, or (in development only)
//! generated once into `<data dir>/secrets.json` and reused on every later start.

use crate::kernel::config::{Config, Environment};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, ZeroizeOnDrop};

const FILE_NAME: &str = "secrets.json";
const FILE_VERSION: u32 = 1;

/// The 32-byte master key. Zeroed on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn from_hex(hex_key: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// The secrets in force.
#[derive(Debug)]
pub struct RuntimeSecrets {
    pub auth_secret: SecretString,
    pub encryption_key: EncryptionKey,
    pub setup_token: Option<SecretString>,
    pub internal_token: Option<SecretString>,
    /// Names generated on this start.
    pub generated: Vec<&'static str>,
    /// Names taken from the generated-secrets file (generated on an earlier start).
    pub from_file: Vec<&'static str>,
    /// The file as [`resolve`] left it, for [`settle_setup_token`] to finish (development only).
    file: Option<SecretsFile>,
}

/// Why the secrets could not be settled. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "{path} is accessible to other users (mode {mode:04o}); run chmod 600 {path} (and consider the secrets in it exposed)"
    )]
    Exposed { path: String, mode: u32 },
    #[error(
        "{path} is corrupt: {what} — restore it from a backup, or move it away to generate new secrets (values encrypted with the old key will be unreadable)"
    )]
    Corrupt { path: String, what: String },
    #[error(
        "{variable}: required in production (generated secrets are refused); set {variable} or {variable}_FILE"
    )]
    Missing { variable: &'static str },
    #[error("cannot {action} {path}: {error}")]
    Io {
        action: &'static str,
        path: String,
        error: std::io::Error,
    },
    #[error("{0}")]
    Random(#[from] hive_crypto::RandomError),
}

/// The file's shape. Values are checked after parsing; unknown fields are refused.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretsFile {
    #[zeroize(skip)]
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setup_token: Option<String>,
}

impl Default for SecretsFile {
    fn default() -> Self {
        Self {
            version: FILE_VERSION,
            auth_secret: None,
            encryption_key: None,
            setup_token: None,
        }
    }
}

impl std::fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsFile(<redacted>)")
    }
}

/// Settles one secret: the operator's value; else the file's, from an earlier start; else a new
/// one, put in `stored` (the caller writes the file). Says which in `generated` or `from_file`.
fn settle(
    name: &'static str,
    supplied: Option<&SecretString>,
    stored: &mut Option<String>,
    generated: &mut Vec<&'static str>,
    from_file: &mut Vec<&'static str>,
) -> Result<SecretString, SecretsError> {
    if let Some(value) = supplied {
        return Ok(value.clone());
    }
    match stored {
        Some(value) => {
            from_file.push(name);
            Ok(SecretString::from(value.clone()))
        }
        None => {
            let value = hive_crypto::random_token_hex()?;
            *stored = Some(value.clone());
            generated.push(name);
            Ok(SecretString::from(value))
        }
    }
}

pub fn secrets_file_path(config: &Config) -> PathBuf {
    config.data_dir.join(FILE_NAME)
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SecretsError {
    let path = path.display().to_string();
    move |error| SecretsError::Io {
        action,
        path,
        error,
    }
}

/// Reads and checks the generated-secrets file, if there is one.
fn read_file(path: &Path) -> Result<Option<SecretsFile>, SecretsError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    let shown = path.display().to_string();
    let corrupt = |what: &str| SecretsError::Corrupt {
        path: shown.clone(),
        what: what.to_owned(),
    };
    if !metadata.file_type().is_file() {
        return Err(corrupt("it is not a regular file"));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::Exposed { path: shown, mode });
    }
    let mut text = std::fs::read_to_string(path).map_err(io_error("read", path))?;
    let parsed = serde_json::from_str::<SecretsFile>(&text);
    text.zeroize();
    // serde's message may quote a value: say only where it failed.
    let file = parsed.map_err(|e| {
        corrupt(&format!(
            "not valid JSON for this file (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if file.version != FILE_VERSION {
        return Err(corrupt(&format!("unknown version {}", file.version)));
    }
    if file.auth_secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(corrupt("authSecret is shorter than 32 characters"));
    }
    if file.setup_token.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(corrupt("setupToken is shorter than 32 characters"));
    }
    if file
        .encryption_key
        .as_deref()
        .is_some_and(|k| EncryptionKey::from_hex(k).is_none())
    {
        return Err(corrupt("encryptionKey is not 64 hexadecimal characters"));
    }
    Ok(Some(file))
}

/// Writes the file atomically with mode 0600: a crash leaves the old file or the new one.
fn write_file(path: &Path, file: &SecretsFile) -> Result<(), SecretsError> {
    let mut json = serde_json::to_vec_pretty(file).map_err(|e| SecretsError::Corrupt {
        path: path.display().to_string(),
        what: e.to_string(),
    })?;
    let temporary = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&temporary);
    let written = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        out.write_all(&json)?;
        out.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    json.zeroize();
    if written.is_err() {
        // Best effort: a half-written copy of the secrets must not stay behind.
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(io_error("write", path))
}

/// Settles the secrets for this start. Blocking (file I/O): call off the async executor.
pub fn resolve(config: &Config) -> Result<RuntimeSecrets, SecretsError> {
    create_private_dir(&config.data_dir).map_err(io_error("create", &config.data_dir))?;
    let supplied = &config.secrets;
    if config.environment == Environment::Production {
        // Nothing is generated or read from the file: every secret comes from the operator.
        let auth_secret = supplied.auth_secret.clone().ok_or(SecretsError::Missing {
            variable: "AUTH_SECRET",
        })?;
        let encryption_key = supplied
            .encryption_key
            .as_ref()
            .and_then(|k| EncryptionKey::from_hex(k.expose_secret()))
            .ok_or(SecretsError::Missing {
                variable: "ENCRYPTION_KEY",
            })?;
        return Ok(RuntimeSecrets {
            auth_secret,
            encryption_key,
            setup_token: supplied.setup_token.clone(),
            internal_token: supplied.internal_token.clone(),
            generated: Vec::new(),
            from_file: Vec::new(),
            file: None,
        });
    }

    let path = secrets_file_path(config);
    let mut file = read_file(&path)?.unwrap_or_default();
    let mut generated = Vec::new();
    let mut from_file = Vec::new();
    let auth_secret = settle(
        "AUTH_SECRET",
        supplied.auth_secret.as_ref(),
        &mut file.auth_secret,
        &mut generated,
        &mut from_file,
    )?;
    let key_hex = settle(
        "ENCRYPTION_KEY",
        supplied.encryption_key.as_ref(),
        &mut file.encryption_key,
        &mut generated,
        &mut from_file,
    )?;
    let encryption_key =
        EncryptionKey::from_hex(key_hex.expose_secret()).ok_or_else(|| SecretsError::Corrupt {
            path: path.display().to_string(),
            what: "encryptionKey is not 64 hexadecimal characters".into(),
        })?;
    if !generated.is_empty() {
        write_file(&path, &file)?;
    }
    Ok(RuntimeSecrets {
        auth_secret,
        encryption_key,
        // Settled by [`settle_setup_token`] once the store says whether setup is open.
        setup_token: supplied.setup_token.clone(),
        internal_token: supplied.internal_token.clone(),
        generated,
        from_file,
        file: Some(file),
    })
}

/// Settles the setup token of development, once the store says whether setup is open: while it
/// is (no admin yet), the token of the file, or a new one written there; once it is done, none —
/// a token still in the file is removed, so it is neither printed nor usable again. A token the
/// operator supplied (`HIVE_SETUP_TOKEN`), and production, are left as they are. Finishes the
/// file [`resolve`] read (written only if the token changed). Blocking (file I/O): call off the
/// async executor.
pub fn settle_setup_token(
    config: &Config,
    secrets: &mut RuntimeSecrets,
    setup_open: bool,
) -> Result<(), SecretsError> {
    // Taken: the file's secrets are not kept in memory beyond this.
    let Some(mut file) = secrets.file.take() else {
        return Ok(());
    };
    if !generates_setup_token(config) {
        return Ok(());
    }
    let path = secrets_file_path(config);
    if !setup_open {
        secrets.setup_token = None;
        if file.setup_token.take().is_some() {
            write_file(&path, &file)?;
        }
        return Ok(());
    }
    const NAME: &str = "HIVE_SETUP_TOKEN";
    let token = settle(
        NAME,
        None,
        &mut file.setup_token,
        &mut secrets.generated,
        &mut secrets.from_file,
    )?;
    if secrets.generated.contains(&NAME) {
        write_file(&path, &file)?;
    }
    secrets.setup_token = Some(token);
    Ok(())
}

/// Whether this configuration has a generated setup token: development without
/// `HIVE_SETUP_TOKEN`.
fn generates_setup_token(config: &Config) -> bool {
    config.environment != Environment::Production && config.secrets.setup_token.is_none()
}

/// Removes the generated setup token from the secrets file (setup is done). Blocking.
pub fn retire_setup_token(config: &Config) -> Result<(), SecretsError> {
    if !generates_setup_token(config) {
        return Ok(());
    }
    let path = secrets_file_path(config);
    if let Some(mut file) = read_file(&path)?
        && file.setup_token.take().is_some()
    {
        write_file(&path, &file)?;
    }
    Ok(())
}

/// A read-only summary for `hive config check`; creates nothing.
pub fn inspect(config: &Config) -> Result<String, SecretsError> {
    let path = secrets_file_path(config);
    if config.environment == Environment::Production {
        let mut status =
            "Secrets: production — all supplied by the operator; nothing is generated".to_owned();
        // symlink_metadata: a dangling link still counts as something left behind.
        if std::fs::symlink_metadata(&path).is_ok() {
            status.push_str(&format!(
                "\nSecrets file: {} is ignored in production (its generated secrets are refused)",
                path.display()
            ));
        }
        return Ok(status);
    }
    match read_file(&path)? {
        None => Ok(format!(
            "Secrets file: {} does not exist yet; missing secrets are generated there on first start",
            path.display()
        )),
        Some(file) => {
            let held: Vec<&str> = [
                ("AUTH_SECRET", file.auth_secret.is_some()),
                ("ENCRYPTION_KEY", file.encryption_key.is_some()),
                ("HIVE_SETUP_TOKEN", file.setup_token.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, held)| held.then_some(name))
            .collect();
            Ok(format!(
                "Secrets file: {} (mode 0600, valid) holds generated {}",
                path.display(),
                held.join(", ")
            ))
        }
    }
}

/// Creates a directory (and its parents) readable by this user only.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::config::EnvSource;
    use std::os::unix::fs::MetadataExt;

    fn config_in(dir: &Path, extra: &[(&str, &str)]) -> Config {
        let data = dir.join("data").display().to_string();
        let mut pairs = vec![("HIVE_DATA_DIR", data.as_str())];
        pairs.extend_from_slice(extra);
        Config::load(&EnvSource::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn development_generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        let mut first = resolve(&config).unwrap();
        settle_setup_token(&config, &mut first, true).unwrap();
        assert_eq!(
            first.generated,
            vec!["AUTH_SECRET", "ENCRYPTION_KEY", "HIVE_SETUP_TOKEN"]
        );
        let path = secrets_file_path(&config);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&config.data_dir), 0o700);
        assert!(
            !path.with_extension("json.tmp").exists(),
            "renamed into place"
        );

        let written = std::fs::metadata(&path).unwrap().ino();
        let mut second = resolve(&config).unwrap();
        settle_setup_token(&config, &mut second, true).unwrap();
        assert!(second.generated.is_empty());
        // Nothing new: the file is not written again (a write renames a new file into place).
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), written);
        assert_eq!(second.from_file.len(), 3);
        assert_eq!(
            first.auth_secret.expose_secret(),
            second.auth_secret.expose_secret()
        );
        assert_eq!(
            first.encryption_key.expose(),
            second.encryption_key.expose()
        );
        assert_eq!(
            first.setup_token.as_ref().unwrap().expose_secret(),
            second.setup_token.as_ref().unwrap().expose_secret()
        );
        assert_ne!(first.encryption_key.expose(), &[0u8; 32]);

        // Once an admin exists the token is retired: out of the file, and not made again.
        let mut third = resolve(&config).unwrap();
        settle_setup_token(&config, &mut third, false).unwrap();
        assert!(third.setup_token.is_none());
        assert!(!third.from_file.contains(&"HIVE_SETUP_TOKEN"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("setupToken"), "{text}");
        assert!(!text.contains(first.setup_token.as_ref().unwrap().expose_secret()));
        let retired = std::fs::metadata(&path).unwrap().ino();
        let mut fourth = resolve(&config).unwrap();
        settle_setup_token(&config, &mut fourth, false).unwrap();
        assert!(fourth.setup_token.is_none() && fourth.generated.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), retired);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn supplied_secrets_win_and_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ";
        let config = config_in(dir.path(), &[("AUTH_SECRET", secret)]);
        let resolved = resolve(&config).unwrap();
        assert_eq!(resolved.auth_secret.expose_secret(), secret);
        assert!(!resolved.generated.contains(&"AUTH_SECRET"));
        let text = std::fs::read_to_string(secrets_file_path(&config)).unwrap();
        assert!(!text.contains(secret));
        assert!(!text.contains("authSecret"));
    }

    #[test]
    fn a_file_readable_by_others_is_refused_not_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        resolve(&config).unwrap();
        let path = secrets_file_path(&config);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = resolve(&config).unwrap_err();
        assert!(
            matches!(error, SecretsError::Exposed { mode: 0o640, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("chmod 600"));
        assert!(error.to_string().contains("(mode 0640)"), "{error}");
        assert_eq!(mode(&path), 0o640);
        assert!(inspect(&config).is_err(), "config check refuses it too");
    }

    #[test]
    fn a_corrupt_file_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let path = secrets_file_path(&config);
        let cases = [
            "{not json".to_owned(),
            r#"{"version":1,"authSecret":"TooShortButSecretish"}"#.to_owned(),
            format!(r#"{{"version":1,"encryptionKey":"{}"}}"#, "z".repeat(64)),
            r#"{"version":2}"#.to_owned(),
            r#"{"version":1,"extra":"SomethingSecretLooking0123456789"}"#.to_owned(),
        ];
        for content in cases {
            std::fs::write(&path, &content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let error = resolve(&config).unwrap_err();
            let text = error.to_string();
            assert!(
                matches!(error, SecretsError::Corrupt { .. }),
                "{content}: {text}"
            );
            assert!(text.contains("corrupt"));
            assert!(
                !text.contains("Secretish") && !text.contains("SomethingSecret"),
                "{text}"
            );
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                content,
                "left as it was"
            );
        }
    }

    #[test]
    fn production_generates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = "8f3a1c9e5b7d2046f1e8a3c5b9d7e2f40a6c8e1b3d5f7092a4c6e8b0d2f41357";
        let config = config_in(
            dir.path(),
            &[
                ("HIVE_ENV", "production"),
                ("AUTH_URL", "https://hive.example.com"),
                ("AUTH_SECRET", "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ"),
                ("ENCRYPTION_KEY", key),
            ],
        );
        let resolved = resolve(&config).unwrap();
        assert!(resolved.generated.is_empty() && resolved.from_file.is_empty());
        assert!(resolved.setup_token.is_none());
        assert_eq!(hex::encode(resolved.encryption_key.expose()), key);
        assert!(!secrets_file_path(&config).exists());
    }

    #[test]
    fn production_refuses_the_generated_secrets_of_an_earlier_start() {
        let dir = tempfile::tempdir().unwrap();
        let development = config_in(dir.path(), &[]);
        let generated = resolve(&development).unwrap();
        let path = secrets_file_path(&development);
        let before = std::fs::read_to_string(&path).unwrap();

        // The loader refuses first: production needs the secrets supplied.
        let data = development.data_dir.display().to_string();
        let error = Config::load(&EnvSource::from_pairs([
            ("HIVE_DATA_DIR", data.as_str()),
            ("HIVE_ENV", "production"),
            ("AUTH_URL", "https://hive.example.com"),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "AUTH_SECRET");
        assert!(
            error.rule.contains("generated secrets are refused"),
            "{error}"
        );

        // And resolve refuses too, should a caller build the config some other way.
        let mut production = development.clone();
        production.environment = Environment::Production;
        let error = resolve(&production).unwrap_err();
        assert!(
            matches!(
                error,
                SecretsError::Missing {
                    variable: "AUTH_SECRET"
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("AUTH_SECRET_FILE"));
        assert!(
            !error
                .to_string()
                .contains(generated.auth_secret.expose_secret())
        );

        // Supplied secrets are used; the file is neither read nor changed.
        let key = "8f3a1c9e5b7d2046f1e8a3c5b9d7e2f40a6c8e1b3d5f7092a4c6e8b0d2f41357";
        let supplied = config_in(
            dir.path(),
            &[
                ("HIVE_ENV", "production"),
                ("AUTH_URL", "https://hive.example.com"),
                ("AUTH_SECRET", "Zq8vN3kW1xR7tY5uB2mC9pL4sD6fG0hJ"),
                ("ENCRYPTION_KEY", key),
            ],
        );
        let resolved = resolve(&supplied).unwrap();
        assert!(resolved.from_file.is_empty() && resolved.generated.is_empty());
        assert!(resolved.setup_token.is_none(), "no generated setup token");
        assert_ne!(
            resolved.encryption_key.expose(),
            generated.encryption_key.expose()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert!(
            inspect(&supplied)
                .unwrap()
                .contains("ignored in production")
        );
    }

    #[test]
    fn inspect_creates_nothing_and_debug_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        assert!(inspect(&config).unwrap().contains("does not exist yet"));
        assert!(!config.data_dir.exists());
        let resolved = resolve(&config).unwrap();
        let debug = format!("{resolved:?}");
        assert!(debug.contains("EncryptionKey(<redacted>)"));
        assert!(!debug.contains(&hex::encode(resolved.encryption_key.expose())));
        assert!(!debug.contains(resolved.auth_secret.expose_secret()));
        assert!(inspect(&config).unwrap().contains("holds generated"));
    }
}
