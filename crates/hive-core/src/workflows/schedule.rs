//! Cron schedules in an IANA time zone.
//!
//! The cron text has exactly five fields, `minute hour day-of-month month day-of-week`
//! (minute resolution: a workflow is not a timer), with ranges, steps, lists and names
//! (`MON`, `JAN`), or a nickname (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
//! Times are wall-clock times in the zone; across daylight-saving changes a time that does
//! not exist that day (spring forward) fires at the first minute after the gap, and a time
//! that happens twice (fall back) fires once, at its first occurrence. Patterns that match
//! every minute or hour keep their rhythm through the change (croner's rules, those of
//! Vixie cron).

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use std::fmt;
use time::OffsetDateTime;

/// A cron text's length, at most.
pub const MAX_CRON_CHARS: usize = 100;

/// A parsed schedule: when, and in which zone.
#[derive(Clone)]
pub struct CronSchedule {
    cron: Cron,
    text: String,
    zone: Tz,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("cron", &self.text)
            .field("timezone", &self.zone.name())
            .finish()
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.zone == other.zone
    }
}

impl CronSchedule {
    /// Parses five-field cron text and an IANA zone name (`Europe/Paris`, `UTC`).
    pub fn parse(cron: &str, timezone: &str) -> Result<Self, String> {
        if cron.chars().count() > MAX_CRON_CHARS {
            return Err(format!("cron is longer than {MAX_CRON_CHARS} characters"));
        }
        let zone: Tz = timezone.parse().map_err(|_| {
            format!("unknown time zone {timezone:?} (an IANA name like Europe/Paris)")
        })?;
        let trimmed = cron.trim();
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(format!(
                "cron {cron:?} must have five fields: minute hour day-of-month month day-of-week"
            ));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|error| format!("bad cron {cron:?}: {error}"))?;
        Ok(Self {
            cron: parsed,
            text: trimmed.to_owned(),
            zone,
        })
    }

    /// The cron text.
    pub fn cron(&self) -> &str {
        &self.text
    }

    /// The zone's name.
    pub fn timezone(&self) -> &str {
        self.zone.name()
    }

    /// The first fire time strictly after `after`; `None` when there is none (a date that
    /// never comes, such as February 30th).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let utc = Utc
            .timestamp_opt(after.unix_timestamp(), after.nanosecond())
            .single()?;
        let local = utc.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_next_fire_time_is_in_the_zone() {
        let schedule = CronSchedule::parse("0 9 * * 1-5", "Europe/Paris").unwrap();
        // Friday 2025-01-10 10:00 UTC → Monday 2025-01-13 09:00 Paris = 08:00 UTC.
        assert_eq!(
            schedule.next_after(datetime!(2025-01-10 10:00 UTC)),
            Some(datetime!(2025-01-13 08:00 UTC))
        );
        // Strictly after: at the fire time itself, the next one is a day later.
        assert_eq!(
            schedule.next_after(datetime!(2025-01-13 08:00 UTC)),
            Some(datetime!(2025-01-14 08:00 UTC))
        );
        let every = CronSchedule::parse("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            every.next_after(datetime!(2025-01-10 10:07:30 UTC)),
            Some(datetime!(2025-01-10 10:15 UTC))
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_fires_once_after_the_gap() {
        // 2025-03-30, Paris: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let schedule = CronSchedule::parse("30 2 * * *", "Europe/Paris").unwrap();
        let first = schedule
            .next_after(datetime!(2025-03-29 12:00 UTC))
            .unwrap();
        assert_eq!(first, datetime!(2025-03-30 01:00 UTC)); // 03:00 CEST
        let second = schedule.next_after(first).unwrap();
        assert_eq!(second, datetime!(2025-03-31 00:30 UTC)); // 02:30 CEST
    }

    #[test]
    fn a_time_repeated_at_fall_back_fires_once() {
        // 2025-10-26, Paris: 03:00 CEST goes back to 02:00 CET; 01:30 happens once, 02:30 twice.
        let schedule = CronSchedule::parse("30 1 * * *", "Europe/Paris").unwrap();
        let first = schedule
            .next_after(datetime!(2025-10-25 12:00 UTC))
            .unwrap();
        assert_eq!(first, datetime!(2025-10-25 23:30 UTC)); // 01:30 CEST
        assert_eq!(
            schedule.next_after(first).unwrap(),
            datetime!(2025-10-27 00:30 UTC) // 01:30 CET the next day
        );
        let twice = CronSchedule::parse("30 2 * * *", "Europe/Paris").unwrap();
        let first = twice.next_after(datetime!(2025-10-25 12:00 UTC)).unwrap();
        assert_eq!(first, datetime!(2025-10-26 00:30 UTC)); // 02:30 CEST, the first one
        assert_eq!(
            twice.next_after(first).unwrap(),
            datetime!(2025-10-27 01:30 UTC) // not 02:30 CET the same night
        );
    }

    #[test]
    fn one_thirty_on_a_us_fall_back_night_fires_once() {
        // 2025-11-02, New York: 02:00 EDT goes back to 01:00 EST, so 01:30 happens twice.
        let schedule = CronSchedule::parse("30 1 * * *", "America/New_York").unwrap();
        let first = schedule
            .next_after(datetime!(2025-11-01 12:00 UTC))
            .unwrap();
        assert_eq!(first, datetime!(2025-11-02 05:30 UTC)); // 01:30 EDT
        assert_eq!(
            schedule.next_after(first).unwrap(),
            datetime!(2025-11-03 06:30 UTC) // not 01:30 EST (06:30 UTC) the same night
        );
    }

    #[test]
    fn bad_cron_or_zone_is_refused() {
        assert!(
            CronSchedule::parse("0 9 * *", "UTC")
                .unwrap_err()
                .contains("five fields")
        );
        assert!(CronSchedule::parse("0 0 9 * * *", "UTC").is_err());
        assert!(CronSchedule::parse("61 * * * *", "UTC").is_err());
        assert!(
            CronSchedule::parse("0 9 * * 1-5", "Mars/Olympus")
                .unwrap_err()
                .contains("time zone")
        );
        assert!(CronSchedule::parse("", "UTC").is_err());
        assert!(CronSchedule::parse(&"1,".repeat(60), "UTC").is_err());
        assert!(CronSchedule::parse("@daily", "UTC").is_ok());
    }

    #[test]
    fn a_date_that_never_comes_gives_none() {
        if let Ok(schedule) = CronSchedule::parse("0 0 30 2 *", "UTC") {
            assert_eq!(schedule.next_after(datetime!(2025-01-01 0:00 UTC)), None);
        }
    }
}
