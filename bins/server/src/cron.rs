//! Schedules' cron expressions, read as Velero reads them (robfig/cron's `ParseStandard`):
//! five fields (minute, hour, day of month, month, day of week), the descriptors
//! (`@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`),
//! `@every <duration>`, and a `CRON_TZ=<zone>` (or `TZ=<zone>`) prefix naming the time zone
//! the fields are read in (UTC without one, as Velero's server runs in UTC).
//!
//! The fields are parsed by croner, which also accepts `L`, `W` and `#`, which robfig does
//! not: such a schedule works here and would be refused by Velero.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};

/// When a schedule runs.
#[derive(Clone, Debug)]
pub enum CronSchedule {
    /// Cron fields, read in a time zone.
    Fields(Box<croner::Cron>, Tz),
    /// `@every <duration>`: that long after the last run (whole seconds, at least one).
    Every(Duration),
}

impl CronSchedule {
    /// Reads `spec`; `Err` is Velero's validation error text.
    pub fn parse(spec: &str) -> Result<CronSchedule, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("Schedule must be a non-empty valid Cron expression".into());
        }
        let invalid = |e: String| format!("invalid schedule: {e}");
        let (tz, fields) = match spec
            .strip_prefix("CRON_TZ=")
            .or_else(|| spec.strip_prefix("TZ="))
        {
            Some(rest) => {
                let (zone, fields) = rest.split_once(' ').unwrap_or((rest, ""));
                let tz = Tz::from_str(zone).map_err(|_| {
                    invalid(format!(
                        "provided bad location {zone}: unknown time zone {zone}"
                    ))
                })?;
                (tz, fields.trim())
            }
            None => (Tz::UTC, spec),
        };
        if let Some(every) = fields.strip_prefix("@every ") {
            let d = crate::backups::go_duration(every).ok_or_else(|| {
                invalid(format!(
                    "failed to parse duration {fields}: time: invalid duration {every:?}"
                ))
            })?;
            return Ok(CronSchedule::Every(Duration::from_secs(d.as_secs().max(1))));
        }
        if !fields.starts_with('@') && fields.split_whitespace().count() != 5 {
            return Err(invalid(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.split_whitespace().count(),
                fields.split_whitespace().collect::<Vec<_>>().join(" ")
            )));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .sloppy_ranges(true)
            .build();
        let cron = parser
            .parse(fields)
            .map_err(|e| invalid(format!("{e}: {fields}")))?;
        Ok(CronSchedule::Fields(Box::new(cron), tz))
    }

    /// The first run strictly after `t` (robfig's `Next`).
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        let whole = |t: SystemTime| {
            let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
        };
        match self {
            CronSchedule::Every(d) => Some(whole(t) + *d),
            CronSchedule::Fields(cron, tz) => {
                let at: DateTime<Utc> = whole(t).into();
                let next = cron
                    .find_next_occurrence(&at.with_timezone(tz), false)
                    .ok()?;
                Some(next.with_timezone(&Utc).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        repo_core::time::parse_rfc3339(s).unwrap()
    }

    fn next(spec: &str, after: &str) -> String {
        let t = CronSchedule::parse(spec)
            .unwrap()
            .next_after(at(after))
            .unwrap();
        crate::backups::kube_time(t)
    }

    #[test]
    fn standard_fields_descriptors_and_every() {
        assert_eq!(
            next("0 1 * * *", "2026-12-01T00:30:00Z"),
            "2026-12-01T01:00:00Z"
        );
        assert_eq!(
            next("0 1 * * *", "2026-12-01T01:00:00Z"),
            "2026-12-02T01:00:00Z",
            "strictly after"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-12-01T00:14:59Z"),
            "2026-12-01T00:15:00Z"
        );
        assert_eq!(
            next("0 0 * * SUN", "2026-12-01T00:00:00Z"),
            "2026-12-06T00:00:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-12-01T00:06:00Z"),
            "2026-12-01T00:25:00Z"
        );
        assert_eq!(
            next("@daily", "2026-12-01T10:00:00Z"),
            "2026-12-02T00:00:00Z"
        );
        assert_eq!(
            next("@hourly", "2026-12-01T10:00:00Z"),
            "2026-12-01T11:00:00Z"
        );
        // Velero's TestGetNextRunTime: @every 5m is five minutes after the last run.
        assert_eq!(
            next("@every 5m", "2026-12-01T10:00:00.700Z"),
            "2026-12-01T10:05:00Z"
        );
    }

    #[test]
    fn time_zones() {
        // 01:00 in Berlin is 00:00 UTC in winter.
        assert_eq!(
            next("CRON_TZ=Europe/Berlin 0 1 * * *", "2026-12-01T12:00:00Z"),
            "2026-12-02T00:00:00Z"
        );
        assert_eq!(
            next("TZ=America/New_York 0 1 * * *", "2026-12-01T12:00:00Z"),
            "2026-12-02T06:00:00Z"
        );
    }

    #[test]
    fn invalid_schedules_say_why_in_veleros_words() {
        let err = |s: &str| CronSchedule::parse(s).unwrap_err();
        assert_eq!(
            err(""),
            "Schedule must be a non-empty valid Cron expression"
        );
        assert!(
            err("0 1 * *").starts_with("invalid schedule: expected exactly 5 fields, found 4"),
            "{}",
            err("0 1 * *")
        );
        assert!(
            err("61 * * * *").starts_with("invalid schedule: "),
            "{}",
            err("61 * * * *")
        );
        assert!(err("CRON_TZ=Mars/Base 0 1 * * *").contains("provided bad location Mars/Base"));
        assert!(err("@every soon").starts_with("invalid schedule: failed to parse duration"));
        assert!(err("0 0 1 * * *").contains("expected exactly 5 fields, found 6"));
    }
}
