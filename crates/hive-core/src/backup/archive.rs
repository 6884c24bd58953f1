//! The archive: a tar stream encrypted with age to the operator's public keys. Its first member
//! is `manifest.json` (what made it, from which schema, when, and each other member's size and
//! SHA-256); the others are the database's copy and the files of the data directory a restore
//! needs. Reading checks every member against the manifest while it streams, so a verify and
//! a restore read the archive the same way.
//!
//! All of this is blocking file work: callers run it off the async executor.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// A public key an archive is encrypted to.
pub type Recipient = Box<dyn age::Recipient + Send + Sync>;

/// The manifest's member name: always first.
pub const MANIFEST: &str = "manifest.json";
/// The version of this layout; a reader refuses a newer one.
pub const FORMAT: u32 = 1;
/// The most a manifest may hold.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// One member as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What the archive holds and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    /// The Hive version that made it.
    pub hive_version: String,
    /// `sqlite` or `postgres`: which restore loads the database member.
    pub backend: String,
    /// The last migration applied to the database when it was copied.
    pub schema_version: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub members: Vec<Member>,
}

/// Why an archive could not be written or read. The texts name no key and no secret.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "the identity does not open this archive (it was encrypted to other keys): use the identity file of a key in HIVE_BACKUP_RECIPIENTS when it was made"
    )]
    WrongIdentity,
    #[error("the archive is damaged or was altered: {0}")]
    Damaged(String),
    #[error("the archive's member {member} does not match its manifest ({what})")]
    Mismatch { member: String, what: &'static str },
    #[error("the identity file {path} holds no usable age identity: {why}")]
    BadIdentity { path: String, why: String },
    #[error("no recipient to encrypt to: {0}")]
    BadRecipient(String),
    #[error("cannot {action} {path}: {error}")]
    Io {
        action: &'static str,
        path: String,
        error: std::io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.display().to_string();
    move |error| ArchiveError::Io {
        action,
        path,
        error,
    }
}

/// Reads the operator's public keys (`age1…`).
pub fn recipients(keys: &[String]) -> Result<Vec<Recipient>, ArchiveError> {
    if keys.is_empty() {
        return Err(ArchiveError::BadRecipient(
            "HIVE_BACKUP_RECIPIENTS is not set".to_owned(),
        ));
    }
    keys.iter()
        .map(|key| {
            crate::kernel::config::backup::parse_recipient(key).ok_or_else(|| {
                ArchiveError::BadRecipient(format!("{key:?} is not an age public key"))
            })
        })
        .collect()
}

/// Reads an age identity file (as `age-keygen` writes it: `AGE-SECRET-KEY-1…` lines, `#`
/// comments).
pub fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, ArchiveError> {
    let bad = |why: String| ArchiveError::BadIdentity {
        path: path.display().to_string(),
        why,
    };
    let file = File::open(path).map_err(io_error("open", path))?;
    let found = age::IdentityFile::from_buffer(BufReader::new(file))
        .map_err(|error| bad(error.kind().to_string()))?
        .into_identities()
        .map_err(|_| bad("an identity of a kind this Hive cannot use".to_owned()))?;
    if found.is_empty() {
        return Err(bad("no AGE-SECRET-KEY-1… line".to_owned()));
    }
    Ok(found)
}

/// A file to put in the archive under `name`.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub path: PathBuf,
}

/// The size and SHA-256 of a file.
pub fn checksum(path: &Path) -> Result<(u64, String), ArchiveError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(io_error("read", path))?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// A tar header for a private regular file of `bytes`, dated `at`.
fn header(bytes: u64, at: OffsetDateTime) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes);
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(at.unix_timestamp()).unwrap_or(0));
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// Writes the archive of `sources` (their checksums computed here, into `manifest`) to `dest`,
/// a new file (0600), encrypted to `recipients`. The file is synced before this returns.
pub fn write(
    dest: &Path,
    mut manifest: Manifest,
    sources: &[Source],
    recipients: &[Recipient],
) -> Result<Manifest, ArchiveError> {
    manifest.members = sources
        .iter()
        .map(|source| {
            checksum(&source.path).map(|(bytes, sha256)| Member {
                name: source.name.clone(),
                bytes,
                sha256,
            })
        })
        .collect::<Result<_, _>>()?;
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| ArchiveError::Damaged(format!("manifest: {error}")))?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(io_error("create", dest))?;
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .iter()
            .map(|recipient| recipient.as_ref() as &dyn age::Recipient),
    )
    .map_err(|error| ArchiveError::BadRecipient(error.to_string()))?;
    let writing = io_error("write", dest);
    let encrypted = encryptor
        .wrap_output(BufWriter::new(file))
        .map_err(io_error("write", dest))?;
    let mut tar = tar::Builder::new(encrypted);
    let at = manifest.created_at;
    let result = (|| {
        let mut manifest_header = header(manifest_json.len() as u64, at);
        tar.append_data(&mut manifest_header, MANIFEST, manifest_json.as_slice())?;
        for (source, member) in sources.iter().zip(&manifest.members) {
            let file = File::open(&source.path)?;
            // The size written is the one checksummed: a file that grew since is cut there,
            // and one that shrank fails the write (tar pads nothing).
            tar.append_data(
                &mut header(member.bytes, at),
                &member.name,
                file.take(member.bytes),
            )?;
        }
        let encrypted = tar.into_inner()?;
        let buffered = encrypted.finish()?;
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    result.map_err(writing)?;
    Ok(manifest)
}

/// What to do with each member while it is read and checked.
pub enum Sink<'a> {
    /// Nothing: a verify.
    Discard,
    /// Written (0600) into this directory under its name: a restore's staging.
    Into(&'a Path),
}

/// Reads the archive at `path` with `identities`, checking its manifest and every member's
/// size and SHA-256, and puts the members where `sink` says. Returns the manifest.
pub fn read(
    path: &Path,
    identities: &[Box<dyn age::Identity + Send + Sync>],
    sink: Sink<'_>,
) -> Result<Manifest, ArchiveError> {
    let file = File::open(path).map_err(io_error("open", path))?;
    read_from(file, identities, sink)
}

/// [`read`] from any reader of the archive's bytes (one that counts them for a progress bar).
pub fn read_from(
    archive: impl Read,
    identities: &[Box<dyn age::Identity + Send + Sync>],
    sink: Sink<'_>,
) -> Result<Manifest, ArchiveError> {
    let decryptor = age::Decryptor::new_buffered(BufReader::new(archive)).map_err(decrypt_error)?;
    let plain = decryptor
        .decrypt(
            identities
                .iter()
                .map(|identity| identity.as_ref() as &dyn age::Identity),
        )
        .map_err(decrypt_error)?;
    let mut tar = tar::Archive::new(plain);
    let mut entries = tar.entries().map_err(damaged)?;
    let mut first = entries
        .next()
        .ok_or_else(|| ArchiveError::Damaged("the archive is empty".to_owned()))?
        .map_err(damaged)?;
    if entry_name(&first)? != MANIFEST {
        return Err(ArchiveError::Damaged(format!(
            "the first member is not {MANIFEST}"
        )));
    }
    let mut text = Vec::new();
    (&mut first)
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(damaged)?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ArchiveError::Damaged(
            "the manifest is too large".to_owned(),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|error| ArchiveError::Damaged(format!("the manifest does not parse: {error}")))?;
    if manifest.format > FORMAT {
        return Err(ArchiveError::Damaged(format!(
            "format {} is newer than this Hive reads ({FORMAT}); restore with a newer Hive",
            manifest.format
        )));
    }
    let mut expected: BTreeMap<&str, &Member> = BTreeMap::new();
    for member in &manifest.members {
        if !is_plain_name(&member.name) || expected.insert(&member.name, member).is_some() {
            return Err(ArchiveError::Damaged(format!(
                "the manifest lists a bad or repeated member name {:?}",
                member.name
            )));
        }
    }
    for entry in entries {
        let mut entry = entry.map_err(damaged)?;
        let name = entry_name(&entry)?;
        let member = expected
            .remove(name.as_str())
            .ok_or_else(|| ArchiveError::Mismatch {
                member: name.clone(),
                what: "not in the manifest, or there twice",
            })?;
        let mut hasher = Sha256::new();
        let bytes = match sink {
            Sink::Discard => std::io::copy(&mut entry, &mut hasher).map_err(damaged)?,
            Sink::Into(dir) => {
                let dest = dir.join(&member.name);
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&dest)
                    .map_err(io_error("create", &dest))?;
                let mut both = Tee {
                    hasher: &mut hasher,
                    file: &mut file,
                };
                let bytes = std::io::copy(&mut entry, &mut both).map_err(damaged)?;
                file.sync_all().map_err(io_error("write", &dest))?;
                bytes
            }
        };
        if bytes != member.bytes {
            return Err(ArchiveError::Mismatch {
                member: name,
                what: "size",
            });
        }
        if hex::encode(hasher.finalize()) != member.sha256 {
            return Err(ArchiveError::Mismatch {
                member: name,
                what: "SHA-256",
            });
        }
    }
    if let Some(missing) = expected.keys().next() {
        return Err(ArchiveError::Mismatch {
            member: (*missing).to_owned(),
            what: "missing from the archive",
        });
    }
    Ok(manifest)
}

/// Writes to the file and the hasher at once.
struct Tee<'a> {
    hasher: &'a mut Sha256,
    file: &'a mut File,
}

impl Write for Tee<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(data)?;
        self.hasher.update(&data[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A member name: one plain file name, no directory, nothing hidden.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, ArchiveError> {
    if entry.header().entry_type() != tar::EntryType::Regular {
        return Err(ArchiveError::Damaged(
            "a member is not a regular file".to_owned(),
        ));
    }
    let path = entry.path().map_err(damaged)?;
    let name = path.to_str().unwrap_or_default().to_owned();
    if !is_plain_name(&name) {
        return Err(ArchiveError::Damaged(format!(
            "a member has a bad name {name:?}"
        )));
    }
    Ok(name)
}

fn damaged(error: std::io::Error) -> ArchiveError {
    ArchiveError::Damaged(error.to_string())
}

fn decrypt_error(error: age::DecryptError) -> ArchiveError {
    match error {
        age::DecryptError::NoMatchingKeys => ArchiveError::WrongIdentity,
        other => ArchiveError::Damaged(other.to_string()),
    }
}

#[cfg(test)]
#[allow(deprecated)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    /// An X25519 key pair, the kind `age-keygen` makes.
    fn keypair() -> (age::x25519::Identity, Recipient) {
        let identity = age::x25519::Identity::generate();
        let recipient = Box::new(identity.to_public());
        (identity, recipient)
    }

    fn boxed(identity: age::x25519::Identity) -> Vec<Box<dyn age::Identity + Send + Sync>> {
        vec![Box::new(identity)]
    }

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            hive_version: "test".to_owned(),
            backend: "sqlite".to_owned(),
            schema_version: Some(7),
            created_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            members: Vec::new(),
        }
    }

    /// An archive of two files, its path, the identity that opens it.
    fn archive(dir: &Path) -> (PathBuf, age::x25519::Identity) {
        let (identity, recipient) = keypair();
        let one = dir.join("one");
        let two = dir.join("two");
        std::fs::write(&one, b"the database").unwrap();
        std::fs::write(&two, vec![7u8; 200_000]).unwrap();
        let sources = [
            Source {
                name: "database.sqlite".into(),
                path: one,
            },
            Source {
                name: "secrets.json".into(),
                path: two,
            },
        ];
        let dest = dir.join("backup.age");
        write(&dest, manifest(), &sources, &[recipient]).unwrap();
        (dest, identity)
    }

    #[test]
    fn an_archive_reads_back_with_its_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let (path, identity) = archive(dir.path());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let read_back = read(&path, &boxed(identity), Sink::Into(&out)).unwrap();
        assert_eq!(read_back.members.len(), 2);
        assert_eq!(read_back.schema_version, Some(7));
        assert_eq!(
            read_back.members[0].sha256,
            hive_crypto::sha256_hex(b"the database")
        );
        assert_eq!(
            std::fs::read(out.join("database.sqlite")).unwrap(),
            b"the database"
        );
        assert_eq!(
            std::fs::read(out.join("secrets.json")).unwrap(),
            vec![7u8; 200_000]
        );
        // Nothing in the file is readable without the identity.
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(12).any(|w| w == b"the database"));
    }

    #[test]
    fn another_identity_is_refused_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _identity) = archive(dir.path());
        let (other, _) = keypair();
        let error = read(&path, &boxed(other), Sink::Discard).unwrap_err();
        assert!(matches!(error, ArchiveError::WrongIdentity), "{error}");
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (path, identity) = archive(dir.path());
        let original = std::fs::read(&path).unwrap();
        let identities = boxed(identity);
        // In the header, early in the payload and at its end.
        for at in [40, original.len() / 2, original.len() - 3] {
            let mut altered = original.clone();
            altered[at] ^= 0x01;
            std::fs::write(&path, &altered).unwrap();
            let error = read(&path, &identities, Sink::Discard).unwrap_err();
            assert!(
                matches!(
                    error,
                    ArchiveError::Damaged(_) | ArchiveError::WrongIdentity
                ),
                "byte {at}: {error}"
            );
            if at > 200 {
                assert!(
                    matches!(error, ArchiveError::Damaged(_)),
                    "byte {at}: {error}"
                );
            }
        }
    }

    #[test]
    fn a_member_that_disagrees_with_the_manifest_is_refused() {
        // Whoever holds the public key can make an archive: its members must still match the
        // manifest it carries.
        let dir = tempfile::tempdir().unwrap();
        let (identity, recipient) = keypair();
        let mut lying = manifest();
        lying.members = vec![Member {
            name: "database.sqlite".into(),
            bytes: 3,
            sha256: hive_crypto::sha256_hex(b"abc"),
        }];
        let json = serde_json::to_vec(&lying).unwrap();
        let dest = dir.path().join("lying.age");
        let file = File::create(&dest).unwrap();
        let encryptor = age::Encryptor::with_recipients(std::iter::once(
            recipient.as_ref() as &dyn age::Recipient
        ))
        .unwrap();
        let mut tar = tar::Builder::new(encryptor.wrap_output(file).unwrap());
        let at = lying.created_at;
        tar.append_data(
            &mut header(json.len() as u64, at),
            MANIFEST,
            json.as_slice(),
        )
        .unwrap();
        tar.append_data(&mut header(3, at), "database.sqlite", b"abd".as_slice())
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let error = read(&dest, &boxed(identity), Sink::Discard).unwrap_err();
        assert!(
            matches!(
                error,
                ArchiveError::Mismatch {
                    what: "SHA-256",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn an_identity_file_as_age_keygen_writes_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, _) = keypair();
        let path = dir.path().join("key.txt");
        std::fs::write(
            &path,
            format!(
                "# created: now\n# public key: {}\n{}\n",
                identity.to_public(),
                identity.to_string().expose_secret()
            ),
        )
        .unwrap();
        assert_eq!(identities(&path).unwrap().len(), 1);
        std::fs::write(&path, "# nothing here\n").unwrap();
        assert!(matches!(
            identities(&path),
            Err(ArchiveError::BadIdentity { .. })
        ));
    }
}
