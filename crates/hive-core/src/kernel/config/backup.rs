//! `HIVE_BACKUP_*`: where backups go, whom they are encrypted to, when they are made and how
//! many are kept.

use super::sources::{ConfigError, Sources, invalid};
use super::{BackupConfig, BackupS3Config};
use croner::parser::{CronParser, Seconds, Year};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An age recipient from its public key: post-quantum (`age1pq1…`) or X25519 (`age1…`, what
/// `age-keygen` makes; age calls it classic and deprecates it for new keys, but keys operators
/// already keep offline must keep working).
#[allow(deprecated)]
pub fn parse_recipient(key: &str) -> Option<Box<dyn age::Recipient + Send + Sync>> {
    if let Ok(recipient) = age::pq::Recipient::from_str(key) {
        return Some(Box::new(recipient));
    }
    age::x25519::Recipient::from_str(key)
        .ok()
        .map(|recipient| Box::new(recipient) as Box<dyn age::Recipient + Send + Sync>)
}

/// Reads and checks the five-field cron text of `HIVE_BACKUP_SCHEDULE` (UTC).
pub(crate) fn parse_schedule(text: &str) -> Result<croner::Cron, String> {
    let trimmed = text.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
        return Err("five fields: minute hour day-of-month month day-of-week".to_owned());
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|error| format!("bad cron: {error}"))
}

pub(super) fn load(src: &mut Sources, data_dir: &Path) -> Result<BackupConfig, ConfigError> {
    let dir = src
        .value("HIVE_BACKUP_DIR")?
        .map_or_else(|| data_dir.join("backups"), PathBuf::from);
    let recipients = match src.value("HIVE_BACKUP_RECIPIENTS")? {
        None => Vec::new(),
        Some(raw) => {
            let keys: Vec<String> = raw
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(str::to_owned)
                .collect();
            if keys.iter().any(|key| parse_recipient(key).is_none()) {
                return Err(invalid(
                    "HIVE_BACKUP_RECIPIENTS",
                    "age public keys (age1…), separated by commas",
                ));
            }
            // age encrypts to post-quantum keys alone or to classic keys alone.
            let post_quantum = keys.iter().filter(|key| key.starts_with("age1pq1")).count();
            if post_quantum != 0 && post_quantum != keys.len() {
                return Err(invalid(
                    "HIVE_BACKUP_RECIPIENTS",
                    "all post-quantum keys (age1pq1…) or all X25519 keys (age1…), not both",
                ));
            }
            keys
        }
    };
    let schedule = match src.value("HIVE_BACKUP_SCHEDULE")? {
        None => None,
        Some(raw) if raw.trim().is_empty() => None,
        Some(raw) => {
            Some(parse_schedule(&raw).map_err(|why| invalid("HIVE_BACKUP_SCHEDULE", why))?)
        }
    };
    if schedule.is_some() && recipients.is_empty() {
        return Err(invalid(
            "HIVE_BACKUP_SCHEDULE",
            "needs HIVE_BACKUP_RECIPIENTS (backups are encrypted to the operator's age key)",
        ));
    }
    let keep = u32::try_from(src.integer("HIVE_BACKUP_KEEP", 7, 0, 100_000)?).unwrap_or(7);
    let keep_days = u32::try_from(src.integer("HIVE_BACKUP_KEEP_DAYS", 0, 0, 36_500)?).unwrap_or(0);
    Ok(BackupConfig {
        dir,
        recipients,
        schedule,
        keep,
        keep_days,
        s3: load_s3(src)?,
    })
}

fn load_s3(src: &mut Sources) -> Result<Option<BackupS3Config>, ConfigError> {
    let bucket = src.value("HIVE_BACKUP_S3_BUCKET")?;
    let endpoint = src.value("HIVE_BACKUP_S3_ENDPOINT")?;
    let region = src.value("HIVE_BACKUP_S3_REGION")?;
    let prefix = src.value("HIVE_BACKUP_S3_PREFIX")?;
    let access_key_id = src.value("HIVE_BACKUP_S3_ACCESS_KEY_ID")?;
    let secret_access_key = src.secret("HIVE_BACKUP_S3_SECRET_ACCESS_KEY")?;
    let Some(bucket) = bucket
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
    else {
        return Ok(None);
    };
    let endpoint = match endpoint {
        None => None,
        Some(raw) => Some(super::billing::plain_url("HIVE_BACKUP_S3_ENDPOINT", &raw)?),
    };
    let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key) else {
        return Err(invalid(
            "HIVE_BACKUP_S3_BUCKET",
            "needs HIVE_BACKUP_S3_ACCESS_KEY_ID and HIVE_BACKUP_S3_SECRET_ACCESS_KEY",
        ));
    };
    let prefix = prefix
        .unwrap_or_default()
        .trim()
        .trim_matches('/')
        .to_owned();
    Ok(Some(BackupS3Config {
        bucket,
        endpoint,
        region: region.unwrap_or_else(|| "us-east-1".to_owned()),
        prefix,
        access_key_id,
        secret_access_key,
    }))
}
