//! The leader's scheduled backup: on `HIVE_BACKUP_SCHEDULE` (cron, UTC), one archive per fire
//! time among all replicas, then retention. Whether a fire time has passed is read from the
//! job's run history in the database (the runner's), so a replica taking over from a dead
//! leader neither repeats the backup it made nor skips one that is due (fire times missed
//! while no replica led make one backup, not one each).

use super::Backups;
use crate::kernel::audit::Principal;
use crate::kernel::caller::RequestMeta;
use crate::kernel::jobs::{Job, JobContext};
use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The job's name in the run history.
pub const SCHEDULED_BACKUP: &str = "backup";

pub struct ScheduledBackup {
    pub backups: Arc<Backups>,
    pub schedule: croner::Cron,
    /// When this replica started: the first fire time is the first one after it, when the job
    /// never ran.
    pub since: OffsetDateTime,
    /// How often the runner looks (its tick).
    pub tick: Duration,
}

/// The first fire time of `schedule` strictly after `after`.
fn next_after(schedule: &croner::Cron, after: OffsetDateTime) -> Option<OffsetDateTime> {
    let utc = Utc
        .timestamp_opt(after.unix_timestamp(), after.nanosecond())
        .single()?;
    let next = schedule.find_next_occurrence(&utc, false).ok()?;
    OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
}

/// Whether a fire time has come since the last run started (or, never run, since `since`).
fn fire_due(
    schedule: &croner::Cron,
    since: OffsetDateTime,
    last_start: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> bool {
    next_after(schedule, last_start.unwrap_or(since)).is_some_and(|due| due <= now)
}

#[async_trait]
impl Job for ScheduledBackup {
    fn name(&self) -> &'static str {
        SCHEDULED_BACKUP
    }

    fn every(&self) -> Duration {
        self.tick
    }

    fn is_due(&self, last_start: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        fire_due(&self.schedule, self.since, last_start, now)
    }

    async fn run(&self, _ctx: &JobContext) -> Result<String, String> {
        let principal = Principal::Job(SCHEDULED_BACKUP);
        let made = self
            .backups
            .create_as(principal, &RequestMeta::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{} ({} bytes)", made.name, made.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_fire_time_is_due_once_after_the_last_run() {
        let schedule = crate::kernel::config::backup::parse_schedule("30 2 * * *").unwrap();
        let since = datetime!(2026-12-01 12:00 UTC);
        let is_due = |last, now| fire_due(&schedule, since, last, now);
        // Never ran: the first fire time after the start.
        assert!(!is_due(None, datetime!(2026-12-02 02:29 UTC)));
        assert!(is_due(None, datetime!(2026-12-02 02:30 UTC)));
        // Ran at 02:30:04: not again until the next day's.
        let ran = Some(datetime!(2026-12-02 02:30:04 UTC));
        assert!(!is_due(ran, datetime!(2026-12-02 23:59 UTC)));
        assert!(is_due(ran, datetime!(2026-12-03 02:30 UTC)));
        // Three fire times missed while nobody led: one backup catches up.
        assert!(is_due(ran, datetime!(2026-12-05 09:00 UTC)));
    }
}
