//! The profile file: a server's URL and an API token kept for the commands that talk to a
//! running server, so that neither is typed (the token never on a command line).
//!
//! The file is `HIVE_PROFILE`, else `$XDG_CONFIG_HOME/hive/profile`, else
//! `~/.config/hive/profile`. It holds `url = …` and `token = …` lines (TOML, quoted or not);
//! `[NAME]` sections are named profiles (`--profile NAME`), the lines before any section (or a
//! `[default]` section) the default one. It is refused unless only its owner, the user running
//! `hive`, may read it (mode 0600 or 0400): it holds a credential.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The most a profile file may hold.
const MAX_PROFILE_BYTES: u64 = 64 * 1024;

/// What the source of a value read from the profile file is called in messages.
const SOURCE: &str = "the profile file";

/// One profile of the file.
pub(crate) struct Profile {
    pub(crate) url: Option<String>,
    pub(crate) token: Option<Zeroizing<String>>,
    pub(crate) source: &'static str,
}

/// The profile file's path, and whether it was named (`HIVE_PROFILE`) rather than the default.
fn path() -> Result<Option<(PathBuf, bool)>, String> {
    if let Some(named) = crate::remote::non_empty_env("HIVE_PROFILE")? {
        return Ok(Some((PathBuf::from(named), true)));
    }
    let config_home = match crate::remote::non_empty_env("XDG_CONFIG_HOME")? {
        Some(dir) => PathBuf::from(dir),
        None => match crate::remote::non_empty_env("HOME")? {
            Some(home) => Path::new(&home).join(".config"),
            None => return Ok(None),
        },
    };
    Ok(Some((config_home.join("hive").join("profile"), false)))
}

/// The profile `name` (default: the default profile) of the profile file; `None` when there
/// is no file and none was asked for.
pub(crate) fn load(name: Option<&str>) -> Result<Option<Profile>, String> {
    let Some((path, named)) = path()? else {
        return match name {
            Some(_) => Err("--profile: no profile file (set HIVE_PROFILE or HOME)".to_owned()),
            None => Ok(None),
        };
    };
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !named && name.is_none() => {
            return Ok(None);
        }
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    check_private(&path, &metadata)?;
    let text = read(&path)?;
    let wanted = name.unwrap_or("default");
    let mut profiles = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match profiles.iter().position(|(section, _)| section == wanted) {
        Some(index) => Ok(Some(profiles.swap_remove(index).1)),
        None if name.is_none() => Ok(None),
        None => Err(format!("{} has no profile [{wanted}]", path.display())),
    }
}

/// A credential's file must be its owner's alone, and that owner the user running `hive`.
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} may be read by other users (mode {mode:04o}): it holds a token, so hive uses it only \
             at mode 0600 (chmod 600 {})",
            path.display(),
            path.display()
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        return Err(format!(
            "{} belongs to another user (uid {}): hive uses only a profile file of its own user",
            path.display(),
            metadata.uid()
        ));
    }
    Ok(())
}

fn read(path: &Path) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_PROFILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_PROFILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_PROFILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The profiles of the file's text, by section name (`default` for the lines before any).
/// Errors name the line, never its value (a token may be on it).
fn parse(text: &str) -> Result<Vec<(String, Profile)>, String> {
    let mut profiles: Vec<(String, Profile)> = Vec::new();
    let mut section = "default".to_owned();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = unquote(name.trim()).to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not `key = value`", number + 1));
        };
        let value = unquote(value.trim());
        let index = match profiles.iter().position(|(name, _)| *name == section) {
            Some(index) => index,
            None => {
                profiles.push((
                    section.clone(),
                    Profile {
                        url: None,
                        token: None,
                        source: SOURCE,
                    },
                ));
                profiles.len() - 1
            }
        };
        let profile = &mut profiles[index].1;
        match key.trim() {
            "url" => profile.url = Some(value.to_owned()),
            "token" => profile.token = Some(Zeroizing::new(value.to_owned())),
            other => {
                return Err(format!(
                    "line {}: unknown key {other:?} (a profile holds url and token)",
                    number + 1
                ));
            }
        }
    }
    Ok(profiles)
}

/// A value without the quotes TOML puts around a string.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_plain_lines_and_sections_are_read() {
        let profiles = parse(
            "# mine\nurl = \"http://127.0.0.1:8080\"\ntoken='hive_a'\n\n[prod]\nurl=https://hive.example.com\ntoken = hive_b\n",
        )
        .unwrap();
        let names: Vec<&str> = profiles.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["default", "prod"]);
        assert_eq!(profiles[0].1.url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(
            profiles[0].1.token.as_deref().map(String::as_str),
            Some("hive_a")
        );
        assert_eq!(
            profiles[1].1.url.as_deref(),
            Some("https://hive.example.com")
        );
        assert_eq!(
            profiles[1].1.token.as_deref().map(String::as_str),
            Some("hive_b")
        );
    }

    #[test]
    fn an_unknown_key_is_refused_without_its_value() {
        let error = parse("password = s3cret-value\n").err().unwrap();
        assert!(error.contains("password"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        assert!(parse("just a line\n").is_err());
    }
}
