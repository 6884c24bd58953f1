//! A hosted agent's bundle: the tar.gz of its code with a manifest (`hive-agent.toml`) that
//! says how to start it, its card, its resources, the vault secrets it gets as environment
//! variables and the hosts it may reach.
//!
//! Unpacking trusts nothing in the archive: sizes are counted as the bytes come out (a header
//! may lie, a gzip bomb may not get far), every path is checked before anything is written
//! (relative, no `..`, no device files or hard links, no link pointing out of the bundle), files
//! are created anew (never written through what is already there), and links are made only after
//! every file, so no file is ever written through one.

use hive_egress::AllowlistEntry;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The manifest's name at the bundle's root.
pub const MANIFEST: &str = "hive-agent.toml";
/// Largest archive accepted, compressed.
pub const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest bundle once unpacked (the tar stream, headers included).
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
/// Most entries (files, directories, links) a bundle holds.
pub const MAX_ENTRIES: usize = 10_000;
/// Longest path inside a bundle, in bytes, and deepest nesting.
pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_PATH_DEPTH: usize = 32;
/// Largest manifest.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// Most secrets and outbound hosts a manifest names.
pub const MAX_SECRETS: usize = 32;
pub const MAX_HOSTS: usize = 64;

/// Why a bundle was refused: what is wrong, naming the entry; never file contents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the bundle is not a gzip-compressed tar archive: {0}")]
    NotAnArchive(String),
    #[error("the bundle is larger than {limit} bytes {what}")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("the bundle holds more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("the bundle's entry {path:?} is refused: {reason}")]
    Entry { path: String, reason: &'static str },
    #[error("the bundle has no {MANIFEST} at its root")]
    NoManifest,
    #[error("{MANIFEST}: {0}")]
    Manifest(String),
    #[error("the bundle could not be written: {0}")]
    Io(String),
}

impl From<io::Error> for BundleError {
    fn from(error: io::Error) -> Self {
        Self::Io(error.kind().to_string())
    }
}

/// What a hosted agent is, from its manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    /// The program and its arguments, run in the bundle's directory.
    pub command: Vec<String>,
    pub skills: Vec<ManifestSkill>,
    pub resources: Resources,
    /// Environment variable → the name of one of the owner's vault secrets.
    pub secrets: BTreeMap<String, String>,
    /// Hosts the agent may reach through Hive's proxy, beside the admins' allowlist.
    pub allowed_hosts: Vec<AllowlistEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSkill {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What the sandbox gives the agent, each within the bounds `Resources::check` holds it to.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    pub memory_mb: u32,
    /// CPU time as a number of cores (0.5: half of one).
    pub cpu: f64,
    pub processes: u32,
    /// The writable scratch space (a size-capped tmpfs).
    pub disk_mb: u32,
    /// How long the agent has to answer on its channel after it is started.
    pub start_timeout_seconds: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            memory_mb: 256,
            cpu: 1.0,
            processes: 64,
            disk_mb: 64,
            start_timeout_seconds: 30,
        }
    }
}

impl Resources {
    fn check(&self) -> Result<(), String> {
        let bounds = [
            ("memory_mb", f64::from(self.memory_mb), 16.0, 8192.0),
            ("cpu", self.cpu, 0.05, 8.0),
            ("processes", f64::from(self.processes), 1.0, 1024.0),
            ("disk_mb", f64::from(self.disk_mb), 1.0, 4096.0),
            (
                "start_timeout_seconds",
                f64::from(self.start_timeout_seconds),
                1.0,
                300.0,
            ),
        ];
        for (name, value, low, high) in bounds {
            if !(low..=high).contains(&value) {
                return Err(format!("resources.{name} must be {low} to {high}"));
            }
        }
        Ok(())
    }
}

/// The manifest as written: `[agent]`, `[resources]`, `[secrets]`, `[network]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    agent: AgentSection,
    #[serde(default)]
    resources: Resources,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    network: NetworkSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSection {
    name: String,
    #[serde(default)]
    description: String,
    command: Vec<String>,
    #[serde(default)]
    skills: Vec<ManifestSkill>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkSection {
    #[serde(default)]
    allow: Vec<String>,
}

/// Variables Hive sets itself, or that would change how the agent's programs load and connect:
/// a manifest cannot fill them from a secret.
pub fn reserved_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("HIVE_")
        || upper.starts_with("LD_")
        || upper.ends_with("_PROXY")
        || upper.starts_with("SSL_CERT_")
        || ["PATH", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONHOME"].contains(&upper.as_str())
}

fn environment_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_uppercase() || first == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64
}

/// Reads and checks a manifest's text.
pub fn parse_manifest(text: &str) -> Result<Manifest, BundleError> {
    let invalid = |message: String| BundleError::Manifest(message);
    let file: ManifestFile =
        toml::from_str(text).map_err(|error| invalid(error.message().into()))?;
    let agent = file.agent;
    if agent.command.is_empty() || agent.command.len() > 64 {
        return Err(invalid(
            "agent.command must name a program and at most 63 arguments".into(),
        ));
    }
    if agent
        .command
        .iter()
        .any(|part| part.is_empty() || part.len() > 4096 || part.contains('\0'))
    {
        return Err(invalid(
            "agent.command's parts must be 1 to 4096 bytes, without NUL".into(),
        ));
    }
    file.resources.check().map_err(invalid)?;
    if file.secrets.len() > MAX_SECRETS {
        return Err(invalid(format!("at most {MAX_SECRETS} secrets")));
    }
    for (variable, secret) in &file.secrets {
        if !environment_name(variable) || reserved_variable(variable) {
            return Err(invalid(format!(
                "secrets: {variable:?} is not a variable a secret may fill (A-Z, 0-9 and _, \
                 not HIVE_*, LD_*, SSL_CERT_*, *_PROXY, PATH, HOME, TMPDIR, PYTHONPATH or PYTHONHOME)"
            )));
        }
        if secret.trim().is_empty() || secret.chars().count() > 200 {
            return Err(invalid(format!(
                "secrets.{variable} must name a secret (1 to 200 characters)"
            )));
        }
    }
    if file.network.allow.len() > MAX_HOSTS {
        return Err(invalid(format!(
            "network.allow holds at most {MAX_HOSTS} hosts"
        )));
    }
    let allowed_hosts = file
        .network
        .allow
        .iter()
        .map(|entry| {
            entry
                .parse::<AllowlistEntry>()
                .map_err(|error| invalid(format!("network.allow: {error}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Manifest {
        name: agent.name,
        description: agent.description,
        command: agent.command,
        skills: agent.skills,
        resources: file.resources,
        secrets: file.secrets,
        allowed_hosts,
    })
}

/// Counts the bytes read through it and stops the read past `limit`.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
    what: &'static str,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(self.what));
        }
        Ok(n)
    }
}

const COMPRESSED: &str = "compressed";
const UNPACKED: &str = "unpacked";

/// The error of a read that ran past one of the caps, or of a broken archive.
fn read_error(error: &io::Error) -> BundleError {
    match error.get_ref().map(ToString::to_string).as_deref() {
        Some(COMPRESSED) => BundleError::TooLarge {
            what: "compressed",
            limit: MAX_ARCHIVE_BYTES,
        },
        Some(UNPACKED) => BundleError::TooLarge {
            what: "unpacked",
            limit: MAX_UNPACKED_BYTES,
        },
        _ => BundleError::NotAnArchive(error.to_string()),
    }
}

/// A path inside the bundle, checked: relative, no `..`, not too long or deep.
fn bundle_path(raw: &Path) -> Result<PathBuf, &'static str> {
    let mut path = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("a path may not climb out with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("a path must be relative"),
        }
    }
    if path.as_os_str().is_empty() {
        return Err("an empty path");
    }
    if path.as_os_str().len() > MAX_PATH_BYTES || path.components().count() > MAX_PATH_DEPTH {
        return Err("the path is too long or too deep");
    }
    Ok(path)
}

/// Whether `target`, a link's target read from the link at `link`, stays inside the bundle.
fn stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: usize = link.components().count().saturating_sub(1);
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Whether `target`, read from the link at `link`, climbs with `..` after passing through one of
/// the bundle's `links`. The kernel follows that link first, so the `..` climbs from where it
/// leads, not from where the path is written: `e -> d/..` with `d -> .` reaches the bundle's
/// parent, although [`stays_inside`] reads it as the bundle itself. Passing through a link and
/// going on down (`.bin/x -> ../pkg/bin/x` with `pkg` a link, as package managers lay out) stays
/// where that link leads, itself inside.
fn climbs_out_of_a_link(link: &Path, target: &Path, links: &[(PathBuf, PathBuf)]) -> bool {
    let mut at = link.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut through_link = false;
    for component in target.components() {
        match component {
            Component::ParentDir if through_link => return true,
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(part) if !through_link => {
                at.push(part);
                through_link = links.iter().any(|(other, _)| *other == at);
            }
            _ => {}
        }
    }
    false
}

/// Unpacks the tar.gz `archive` into `into` (an empty directory) and reads its manifest.
/// Files get mode 0644, or 0755 when the archive marks them executable; directories 0755.
pub fn unpack(archive: impl Read, into: &Path) -> Result<Manifest, BundleError> {
    let compressed = Capped {
        inner: archive,
        read: 0,
        limit: MAX_ARCHIVE_BYTES,
        what: COMPRESSED,
    };
    let unpacked = Capped {
        inner: flate2::read::GzDecoder::new(compressed),
        read: 0,
        limit: MAX_UNPACKED_BYTES,
        what: UNPACKED,
    };
    let mut tar = tar::Archive::new(unpacked);
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut seen = HashSet::new();
    for (count, entry) in tar.entries().map_err(|e| read_error(&e))?.enumerate() {
        if count >= MAX_ENTRIES {
            return Err(BundleError::TooManyEntries);
        }
        let mut entry = entry.map_err(|e| read_error(&e))?;
        let raw = entry.path().map_err(|e| read_error(&e))?.into_owned();
        let refuse = |reason| BundleError::Entry {
            path: raw.display().to_string(),
            reason,
        };
        let path = bundle_path(&raw).map_err(refuse)?;
        if !seen.insert(path.clone()) {
            return Err(refuse("the bundle holds this path twice"));
        }
        let at = into.join(&path);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&at)?;
                fs::set_permissions(&at, fs::Permissions::from_mode(0o755))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = at.parent() {
                    fs::create_dir_all(parent)?;
                }
                let executable = entry.header().mode().is_ok_and(|mode| mode & 0o111 != 0);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o755 } else { 0o644 })
                    .open(&at)
                    .map_err(|error| match error.kind() {
                        io::ErrorKind::AlreadyExists => refuse("the bundle holds this path twice"),
                        _ => error.into(),
                    })?;
                io::copy(&mut entry, &mut file).map_err(|e| read_error(&e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| read_error(&e))?
                    .ok_or_else(|| refuse("a link without a target"))?
                    .into_owned();
                if !stays_inside(&path, &target) {
                    return Err(refuse("a link may not point out of the bundle"));
                }
                links.push((path, target));
            }
            tar::EntryType::Link => return Err(refuse("hard links are not accepted")),
            _ => return Err(refuse("only files, directories and links are accepted")),
        }
    }
    // Links last, none inside another: no file was written, and none is, through a link.
    for (path, target) in &links {
        if links
            .iter()
            .any(|(other, _)| other != path && path.starts_with(other))
        {
            return Err(BundleError::Entry {
                path: path.display().to_string(),
                reason: "a link may not sit inside another link",
            });
        }
        if climbs_out_of_a_link(path, target, &links) {
            return Err(BundleError::Entry {
                path: path.display().to_string(),
                reason: "a link may not climb with `..` out of another link",
            });
        }
        if let Some(parent) = into.join(path).parent() {
            fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, into.join(path))?;
    }
    read_manifest(into)
}

fn read_manifest(root: &Path) -> Result<Manifest, BundleError> {
    let path = root.join(MANIFEST);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() => {}
        Ok(_) => return Err(BundleError::Manifest("must be a regular file".into())),
        Err(_) => return Err(BundleError::NoManifest),
    }
    let mut text = String::new();
    fs::File::open(&path)?
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|_| BundleError::Manifest("must be UTF-8 text".into()))?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(BundleError::Manifest(format!(
            "must be at most {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    parse_manifest(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    const MANIFEST_TEXT: &str = r#"
[agent]
name = "echo"
description = "Says back what it is sent"
command = ["python3", "agent.py"]

[[agent.skills]]
id = "echo"
name = "Echo"

[resources]
memory_mb = 128
cpu = 0.5

[secrets]
MODEL_KEY = "model-key"

[network]
allow = ["api.example.com", "*.example.org:8443"]
"#;

    /// An entry of a test archive: its path and what it is.
    enum Item<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Fifo(&'a str),
    }

    /// Writes raw headers, so that paths the `tar` crate's builder would refuse get in.
    fn archive(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for item in items {
            let mut header = tar::Header::new_gnu();
            let (path, data, kind, mode, link): (&str, &[u8], _, u32, Option<&str>) = match item {
                Item::File(path, data, mode) => (path, data, tar::EntryType::Regular, *mode, None),
                Item::Dir(path) => (path, b"", tar::EntryType::Directory, 0o755, None),
                Item::Symlink(path, to) => (path, b"", tar::EntryType::Symlink, 0o777, Some(to)),
                Item::HardLink(path, to) => (path, b"", tar::EntryType::Link, 0o644, Some(to)),
                Item::Fifo(path) => (path, b"", tar::EntryType::Fifo, 0o644, None),
            };
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn unpacked(items: &[Item]) -> (tempfile::TempDir, Result<Manifest, BundleError>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack(archive(items).as_slice(), dir.path());
        (dir, result)
    }

    fn refusal(items: &[Item]) -> BundleError {
        unpacked(items).1.unwrap_err()
    }

    #[test]
    fn a_good_bundle_unpacks_with_its_manifest() {
        let (dir, manifest) = unpacked(&[
            Item::File(MANIFEST, MANIFEST_TEXT.as_bytes(), 0o644),
            Item::Dir("lib"),
            Item::File("lib/util.py", b"X = 1\n", 0o600),
            Item::File("agent.py", b"print('hi')\n", 0o750),
            Item::Symlink("main.py", "agent.py"),
            Item::Symlink("lib/up.py", "../agent.py"),
        ]);
        let manifest = manifest.unwrap();
        assert_eq!(manifest.command, ["python3", "agent.py"]);
        assert_eq!(manifest.skills[0].id, "echo");
        assert_eq!(manifest.resources.memory_mb, 128);
        assert_eq!(manifest.resources.processes, 64, "a default");
        assert_eq!(manifest.secrets["MODEL_KEY"], "model-key");
        assert_eq!(manifest.allowed_hosts.len(), 2);
        let mode = |path: &str| {
            fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("agent.py"), 0o755);
        assert_eq!(mode("lib/util.py"), 0o644);
        assert_eq!(
            fs::read(dir.path().join("main.py")).unwrap(),
            b"print('hi')\n"
        );
        assert_eq!(
            fs::read(dir.path().join("lib/up.py")).unwrap(),
            b"print('hi')\n"
        );
    }

    #[test]
    fn paths_that_leave_the_bundle_are_refused_before_anything_is_written() {
        for (items, reason) in [
            (
                vec![Item::File("/etc/cron.d/x", b"", 0o644)],
                "a path must be relative",
            ),
            (
                vec![Item::File("lib/../../x", b"", 0o644)],
                "a path may not climb out with `..`",
            ),
            (
                vec![Item::Symlink("out", "../../etc/shadow")],
                "a link may not point out of the bundle",
            ),
            (
                vec![Item::Symlink("abs", "/etc/shadow")],
                "a link may not point out of the bundle",
            ),
            (
                vec![Item::HardLink("h", "/etc/shadow")],
                "hard links are not accepted",
            ),
            (
                vec![Item::Fifo("pipe")],
                "only files, directories and links are accepted",
            ),
            (
                vec![
                    Item::File("a.py", b"1", 0o644),
                    Item::File("./a.py", b"2", 0o644),
                ],
                "the bundle holds this path twice",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let outside = dir.path().join("outside");
            fs::create_dir(&outside).unwrap();
            let root = dir.path().join("bundle");
            fs::create_dir(&root).unwrap();
            match unpack(archive(&items).as_slice(), &root) {
                Err(BundleError::Entry { reason: got, .. }) => assert_eq!(got, reason),
                other => panic!("{reason}: {other:?}"),
            }
            assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{reason}");
        }
    }

    #[test]
    fn a_link_inside_a_link_is_refused_so_nothing_is_written_through_one() {
        let refused = refusal(&[
            Item::Symlink("lib", "sub"),
            Item::Dir("sub"),
            Item::Symlink("lib/x", "../y"),
        ]);
        assert!(
            matches!(
                refused,
                BundleError::Entry {
                    reason: "a link may not sit inside another link",
                    ..
                }
            ),
            "{refused:?}"
        );
    }

    /// Found by the `hosted_bundle` fuzz target: `e -> d/..` with `d -> .` reads as the bundle
    /// itself but resolves to its parent.
    #[test]
    fn a_link_that_climbs_out_of_another_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bundle");
        fs::create_dir(&root).unwrap();
        let items = [
            Item::File(MANIFEST, MANIFEST_TEXT.as_bytes(), 0o644),
            Item::Symlink("d", "."),
            Item::Symlink("e", "d/.."),
        ];
        match unpack(archive(&items).as_slice(), &root) {
            Err(BundleError::Entry { path, reason }) => {
                assert_eq!(path, "e");
                assert_eq!(reason, "a link may not climb with `..` out of another link");
            }
            other => panic!("{other:?}"),
        }
        assert!(fs::symlink_metadata(root.join("e")).is_err());
        // Going through a link and on down stays where that link leads.
        let (_dir, manifest) = unpacked(&[
            Item::File(MANIFEST, MANIFEST_TEXT.as_bytes(), 0o644),
            Item::Dir("store/pkg/bin"),
            Item::File("store/pkg/bin/run", b"#!/bin/sh\n", 0o755),
            Item::Symlink("pkg", "store/pkg"),
            Item::Symlink("bin/run", "../pkg/bin/run"),
        ]);
        assert!(manifest.is_ok(), "{manifest:?}");
    }

    #[test]
    fn a_bomb_stops_at_the_unpacked_cap() {
        // Zeros compress about a thousand to one: a few hundred KiB on the wire.
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
        let mut header = tar::Header::new_gnu();
        header.set_size(MAX_UNPACKED_BYTES + 1);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                "zeros",
                io::repeat(0).take(MAX_UNPACKED_BYTES + 1),
            )
            .unwrap();
        let bomb = builder.into_inner().unwrap().finish().unwrap();
        assert!((bomb.len() as u64) < MAX_ARCHIVE_BYTES);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            unpack(bomb.as_slice(), dir.path()).unwrap_err(),
            BundleError::TooLarge {
                what: "unpacked",
                limit: MAX_UNPACKED_BYTES
            }
        );
    }

    #[test]
    fn too_many_entries_and_garbage_are_refused() {
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|n| format!("f{n}")).collect();
        let items: Vec<Item> = names
            .iter()
            .map(|name| Item::File(name, b"", 0o644))
            .collect();
        assert_eq!(refusal(&items), BundleError::TooManyEntries);
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(&b"not a gzip stream at all"[..], dir.path()),
            Err(BundleError::NotAnArchive(_))
        ));
    }

    #[test]
    fn the_documented_example_is_a_valid_manifest() {
        let example = include_str!("../../../../../examples/hosted-agent/hive-agent.toml");
        let manifest = parse_manifest(example).unwrap();
        assert_eq!(manifest.command, ["python3", "agent.py"]);
        assert_eq!(manifest.secrets["UPSTREAM_TOKEN"], "example-upstream-token");
    }

    #[test]
    fn the_manifest_is_required_and_checked() {
        assert_eq!(
            refusal(&[Item::File("agent.py", b"", 0o644)]),
            BundleError::NoManifest
        );
        assert!(matches!(
            refusal(&[
                Item::Symlink(MANIFEST, "agent.py"),
                Item::File("agent.py", b"", 0o644)
            ]),
            BundleError::Manifest(_)
        ));
        for (text, says) in [
            ("[agent]\nname = \"a\"\ncommand = []\n", "agent.command"),
            (
                "[agent]\nname = \"a\"\ncommand = [\"x\"]\n[resources]\nmemory_mb = 100000\n",
                "resources.memory_mb",
            ),
            (
                "[agent]\nname = \"a\"\ncommand = [\"x\"]\n[secrets]\nLD_PRELOAD = \"k\"\n",
                "LD_PRELOAD",
            ),
            (
                "[agent]\nname = \"a\"\ncommand = [\"x\"]\n[secrets]\nHTTPS_PROXY = \"k\"\n",
                "HTTPS_PROXY",
            ),
            (
                "[agent]\nname = \"a\"\ncommand = [\"x\"]\n[network]\nallow = [\"http://x/\"]\n",
                "network.allow",
            ),
            (
                "[agent]\nname = \"a\"\ncommand = [\"x\"]\nrun_as_root = true\n",
                "unknown field",
            ),
        ] {
            match parse_manifest(text) {
                Err(BundleError::Manifest(message)) => {
                    assert!(message.contains(says), "{says}: {message}")
                }
                other => panic!("{says}: {other:?}"),
            }
        }
    }
}
