//! Backups: one consistent, encrypted archive of an instance, made while it serves.
//!
//! An archive ([`archive`]) holds the database's copy (SQLite's own file, or PostgreSQL's
//! dump, taken by the store while it serves) and the files of the data directory a restore
//! needs (`secrets.json`, the generated master key and signing secret of a development
//! instance), with a manifest of checksums; it is encrypted with age to the operator's public
//! keys (`HIVE_BACKUP_RECIPIENTS`), so the server that made it cannot read it back. Hosted
//! agents' bundles live in the database; their unpacked copies under `sandboxes/` are a cache
//! rebuilt at start. Archives go to `HIVE_BACKUP_DIR`; retention ([`Backups::prune`]) keeps
//! the newest by count and by age; the leader makes them on a cron schedule ([`jobs`]).

pub mod archive;
pub mod jobs;
pub mod s3;

use crate::kernel::audit::{AuditAction, AuditEvent, Auditor, Principal};
use crate::kernel::caller::{Caller, RequestMeta};
use crate::kernel::config::BackupConfig;
use crate::kernel::refusal::Refusal;
use archive::{ArchiveError, Manifest, Source};
use hive_proto::SharedClock;
use hive_store::{AuditOutcome, Backend, SchemaState, Store};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// Archive names: `hive-backup-<UTC time>-<random>.age`.
const PREFIX: &str = "hive-backup-";
const SUFFIX: &str = ".age";
const NAME_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// The database's member in an archive, by backend.
pub const SQLITE_MEMBER: &str = "database.sqlite";
pub const POSTGRES_MEMBER: &str = "database.sql";
/// The data directory's generated secrets, when there are some.
pub const SECRETS_MEMBER: &str = "secrets.json";

/// Why a backup was not made or listed. The texts name no key and no secret.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(
        "no backup recipient is configured: set HIVE_BACKUP_RECIPIENTS to the age public key (age1…) whose identity file you keep offline"
    )]
    NoRecipient,
    #[error("a backup is already being made on this server")]
    Busy,
    #[error("backup failed: {0}")]
    Failed(String),
}

impl From<ArchiveError> for BackupError {
    fn from(error: ArchiveError) -> Self {
        Self::Failed(error.to_string())
    }
}

impl From<hive_store::StoreError> for BackupError {
    fn from(error: hive_store::StoreError) -> Self {
        Self::Failed(error.to_string())
    }
}

impl From<BackupError> for Refusal {
    fn from(error: BackupError) -> Self {
        match error {
            BackupError::Forbidden(message) => Self::Forbidden(message),
            BackupError::NoRecipient => Self::Conflict(
                "no backup recipient is configured (HIVE_BACKUP_RECIPIENTS): backups are refused",
            ),
            BackupError::Busy => Self::Conflict("a backup is already being made on this server"),
            BackupError::Failed(detail) => Self::Internal(detail),
        }
    }
}

/// An archive in the backup directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    pub name: String,
    pub bytes: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Makes, lists and prunes the archives of this instance.
pub struct Backups {
    config: BackupConfig,
    /// `<data dir>/secrets.json`, put in every archive when it exists.
    secrets_file: PathBuf,
    store: Arc<dyn Store>,
    clock: SharedClock,
    auditor: Auditor,
    /// One backup at a time on this replica.
    making: tokio::sync::Mutex<()>,
    /// `HIVE_BACKUP_S3_*`: where every archive is also uploaded.
    s3: Option<s3::S3Target>,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups")
            .field("dir", &self.config.dir)
            .finish_non_exhaustive()
    }
}

impl Backups {
    pub fn new(
        config: BackupConfig,
        secrets_file: PathBuf,
        store: Arc<dyn Store>,
        clock: SharedClock,
        auditor: Auditor,
    ) -> Result<Self, BackupError> {
        let s3 = config.s3.as_ref().map(s3::S3Target::new).transpose()?;
        Ok(Self {
            config,
            secrets_file,
            store,
            clock,
            auditor,
            making: tokio::sync::Mutex::new(()),
            s3,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Makes an archive now (an admin or the CLI), then applies retention. Audited
    /// `backup.create`, failures included.
    pub async fn create(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Result<BackupInfo, BackupError> {
        if !caller.is_admin() {
            return Err(BackupError::Forbidden("only an admin makes backups"));
        }
        self.create_as(caller.principal(), meta).await
    }

    /// [`Backups::create`] for `principal` (the schedule's job).
    pub(crate) async fn create_as(
        &self,
        principal: Principal,
        meta: &RequestMeta,
    ) -> Result<BackupInfo, BackupError> {
        let made = match self.make().await {
            Ok(info) => self.upload(info).await,
            Err(error) => Err(error),
        };
        let (outcome, target, detail) = match &made {
            Ok(info) => (
                AuditOutcome::Success,
                Some(format!("backup:{}", info.name)),
                serde_json::json!({"bytes": info.bytes}),
            ),
            Err(error) => (
                AuditOutcome::Failure,
                None,
                serde_json::json!({"reason": refusal_kind(error)}),
            ),
        };
        let event = AuditEvent {
            principal: principal.clone(),
            action: AuditAction::BackupCreate,
            target,
            outcome,
            detail,
        };
        if let Err(error) = &made {
            tracing::warn!(%error, "backup failed");
            self.auditor.record_refusal(event, meta).await;
            return made;
        }
        self.auditor
            .record(event, meta)
            .await
            .map_err(|_| BackupError::Failed("the audit record was not written".to_owned()))?;
        self.prune(principal, meta).await?;
        made
    }

    /// Uploads the archive to the S3 target when there is one; it stays in the directory
    /// either way.
    async fn upload(&self, info: BackupInfo) -> Result<BackupInfo, BackupError> {
        if let Some(target) = &self.s3 {
            target
                .upload(&self.config.dir.join(&info.name), &info.name)
                .await?;
        }
        Ok(info)
    }

    async fn make(&self) -> Result<BackupInfo, BackupError> {
        let recipients = if self.config.recipients.is_empty() {
            return Err(BackupError::NoRecipient);
        } else {
            archive::recipients(&self.config.recipients)?
        };
        let _making = self.making.try_lock().map_err(|_| BackupError::Busy)?;
        let dir = self.config.dir.clone();
        let created_at = self
            .clock
            .now()
            .replace_nanosecond(0)
            .unwrap_or(self.clock.now());
        let name = archive_name(created_at)?;
        let staging = blocking(move || prepare_dir(&dir)).await??;
        let (member, backend) = match self.store.backend() {
            Backend::Sqlite => (SQLITE_MEMBER, "sqlite"),
            Backend::Postgres => (POSTGRES_MEMBER, "postgres"),
        };
        let copy = staging.path().join(member);
        self.store.copy_database(&copy).await?;
        let schema_version = match self.store.schema_state().await? {
            SchemaState::UpToDate { version } => Some(version),
            SchemaState::Behind { current, .. } => current,
            SchemaState::Newer { current, .. } => Some(current),
        };
        let mut sources = vec![Source {
            name: member.to_owned(),
            path: copy,
        }];
        if self.secrets_file.is_file() {
            sources.push(Source {
                name: SECRETS_MEMBER.to_owned(),
                path: self.secrets_file.clone(),
            });
        }
        let manifest = Manifest {
            format: archive::FORMAT,
            hive_version: env!("CARGO_PKG_VERSION").to_owned(),
            backend: backend.to_owned(),
            schema_version,
            created_at,
            members: Vec::new(),
        };
        let dest = self.config.dir.join(&name);
        blocking(move || {
            // Written under a hidden name and renamed: a listed archive is always whole.
            let partial = staging.path().join(format!(".{name}.partial"));
            archive::write(&partial, manifest, &sources, &recipients)?;
            std::fs::rename(&partial, &dest).map_err(|error| ArchiveError::Io {
                action: "rename",
                path: dest.display().to_string(),
                error,
            })?;
            let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
            drop(staging);
            Ok::<_, ArchiveError>(BackupInfo {
                name,
                bytes,
                created_at,
            })
        })
        .await?
        .map_err(BackupError::from)
    }

    /// The archives in the S3 target (none when there is no target), newest first.
    pub async fn list_remote(&self, caller: &Caller) -> Result<Vec<BackupInfo>, BackupError> {
        if !caller.is_admin() {
            return Err(BackupError::Forbidden("only an admin lists backups"));
        }
        match &self.s3 {
            Some(target) => target.list().await,
            None => Ok(Vec::new()),
        }
    }

    /// The archives in the backup directory, newest first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<BackupInfo>, BackupError> {
        if !caller.is_admin() {
            return Err(BackupError::Forbidden("only an admin lists backups"));
        }
        self.archives().await
    }

    async fn archives(&self) -> Result<Vec<BackupInfo>, BackupError> {
        let dir = self.config.dir.clone();
        blocking(move || list_dir(&dir)).await?
    }

    /// Deletes the archives retention no longer keeps: beyond the newest `HIVE_BACKUP_KEEP`,
    /// and older than `HIVE_BACKUP_KEEP_DAYS`; the newest is always kept. Audited
    /// `backup.prune` when it deleted any. Returns the names deleted.
    pub async fn prune(
        &self,
        principal: Principal,
        meta: &RequestMeta,
    ) -> Result<Vec<String>, BackupError> {
        let now = self.clock.now();
        let (keep, keep_days) = (self.config.keep, self.config.keep_days);
        let mut doomed = expired(&self.archives().await?, keep, keep_days, now);
        if let Some(target) = &self.s3 {
            let remote = expired(&target.list().await?, keep, keep_days, now);
            target.delete(&remote).await?;
            for name in remote {
                if !doomed.contains(&name) {
                    doomed.push(name);
                }
            }
        }
        if doomed.is_empty() {
            return Ok(doomed);
        }
        let dir = self.config.dir.clone();
        let names = doomed.clone();
        blocking(move || {
            for name in &names {
                match std::fs::remove_file(dir.join(name)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(BackupError::Failed(format!("cannot delete {name}: {e}")));
                    }
                }
            }
            Ok(())
        })
        .await??;
        let event = AuditEvent {
            principal,
            action: AuditAction::BackupPrune,
            target: None,
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({"deleted": doomed}),
        };
        self.auditor.record_refusal(event, meta).await;
        Ok(doomed)
    }
}

fn refusal_kind(error: &BackupError) -> &'static str {
    match error {
        BackupError::Forbidden(_) => "forbidden",
        BackupError::NoRecipient => "no recipient",
        BackupError::Busy => "busy",
        BackupError::Failed(_) => "failed",
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| BackupError::Failed("interrupted".to_owned()))
}

fn archive_name(at: OffsetDateTime) -> Result<String, BackupError> {
    let time = at
        .to_offset(time::UtcOffset::UTC)
        .format(NAME_TIME)
        .map_err(|e| BackupError::Failed(e.to_string()))?;
    let random = hive_crypto::random_token_hex().map_err(|e| BackupError::Failed(e.to_string()))?;
    Ok(format!("{PREFIX}{time}-{}{SUFFIX}", &random[..8]))
}

/// When the archive named `name` was made; `None` for a file that is not one of ours.
fn created_at_of(name: &str) -> Option<OffsetDateTime> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (time, random) = rest.split_once('-')?;
    if random.len() != 8 || !random.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    time::PrimitiveDateTime::parse(time, NAME_TIME)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Creates the backup directory (0700) and a private staging directory inside it (on the same
/// file system, so the finished archive is renamed into place).
fn prepare_dir(dir: &Path) -> Result<tempfile::TempDir, BackupError> {
    let failed = |e: std::io::Error| BackupError::Failed(format!("{}: {e}", dir.display()));
    crate::kernel::runtime_secrets::create_private_dir(dir).map_err(failed)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(dir)
        .map_err(failed)
}

fn list_dir(dir: &Path) -> Result<Vec<BackupInfo>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::Failed(format!("{}: {e}", dir.display()))),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(created_at) = created_at_of(&name) else {
            continue;
        };
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_file() {
            found.push(BackupInfo {
                name,
                bytes: metadata.len(),
                created_at,
            });
        }
    }
    newest_first(&mut found);
    Ok(found)
}

fn newest_first(archives: &mut [BackupInfo]) {
    archives.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
}

/// The names retention deletes from `archives` (newest first): those after the first `keep`
/// (0: no limit) and those older than `keep_days` (0: no limit), never the newest.
fn expired(archives: &[BackupInfo], keep: u32, keep_days: u32, now: OffsetDateTime) -> Vec<String> {
    let oldest_kept = (keep_days > 0).then(|| now - time::Duration::days(i64::from(keep_days)));
    archives
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(index, info)| {
            (keep > 0 && *index >= keep as usize)
                || oldest_kept.is_some_and(|oldest| info.created_at < oldest)
        })
        .map(|(_, info)| info.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn info(name: &str, created_at: OffsetDateTime) -> BackupInfo {
        BackupInfo {
            name: name.to_owned(),
            bytes: 1,
            created_at,
        }
    }

    #[test]
    fn names_carry_their_time() {
        let at = datetime!(2026-12-07 12:30:05 UTC);
        let name = archive_name(at).unwrap();
        assert!(name.starts_with("hive-backup-20261207T123005Z-"), "{name}");
        assert_eq!(created_at_of(&name), Some(at));
        assert_eq!(created_at_of("hive-backup-20261207T123005Z.age"), None);
        assert_eq!(created_at_of("notes.txt"), None);
        assert_eq!(created_at_of(&format!(".{name}.partial")), None);
    }

    #[test]
    fn retention_keeps_the_newest_by_count_and_by_age() {
        let now = datetime!(2026-12-07 00:00 UTC);
        let archives: Vec<_> = (0..5)
            .map(|days| info(&format!("n{days}"), now - time::Duration::days(days * 10)))
            .collect();
        assert_eq!(expired(&archives, 3, 0, now), ["n3", "n4"]);
        assert_eq!(expired(&archives, 0, 25, now), ["n3", "n4"]);
        assert_eq!(expired(&archives, 2, 35, now), ["n2", "n3", "n4"]);
        assert!(expired(&archives, 0, 0, now).is_empty());
        // The newest stays, however old.
        assert_eq!(expired(&archives[4..], 1, 1, now), Vec::<String>::new());
    }
}
