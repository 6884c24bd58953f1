//! `HIVE_BACKUP_*`: where backups go, whom they are encrypted to, when they are made and how
//! many are kept.

use super::BackupConfig;
use super::sources::{ConfigError, Sources, invalid};
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
pub fn parse_schedule(text: &str) -> Result<croner::Cron, String> {
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
            parse_schedule(&raw).map_err(|why| invalid("HIVE_BACKUP_SCHEDULE", why))?;
            Some(raw.trim().to_owned())
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
    })
}
