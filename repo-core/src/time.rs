//! Wall-clock helpers: RFC 3339 formatting and the host name.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    format_rfc3339(SystemTime::now())
}

/// A time as RFC 3339 with nanoseconds, UTC.
pub fn format_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Parses RFC 3339.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// A time from seconds since the Unix epoch.
pub fn from_unix_seconds(s: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

/// This machine's host name (`HOSTNAME`, then /etc/hostname, else "unknown").
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Calendar fields of a Unix time in UTC: (year, month, day, hour, ISO week-year, ISO week).
pub fn calendar(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let hour = secs.rem_euclid(86_400) / 3600;
    // ISO weeks start on Monday; a week belongs to the year of its Thursday.
    let weekday_from_monday = (days + 3).rem_euclid(7);
    let thursday = days - weekday_from_monday + 3;
    let (ty, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(ty, 1, 1)) / 7 + 1;
    (y, m, d, hour, ty, week)
}

/// A Unix time (seconds, nanoseconds) as RFC 3339 UTC with nanoseconds. Unlike
/// [`format_rfc3339`], any time a file system can hold works, before 1970 included.
pub fn format_unix(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos.min(999_999_999)
    )
}

/// Parses what [`format_unix`] (or [`format_rfc3339`]) wrote: `YYYY-MM-DDTHH:MM:SS[.f]Z`.
pub fn parse_unix(s: &str) -> Option<(i64, u32)> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let (neg, date) = match date.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, date),
    };
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let sec: i64 = tp.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let y = if neg { -y } else { y };
    let days = days_from_civil(y, m, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_round_trip_before_and_after_the_epoch() {
        for (s, n) in [
            (0, 0),
            (1_700_000_000, 123_456_789),
            (-1, 999_999_999),
            (-86_400 * 365 * 300, 5),
            (253_402_300_799, 0),
        ] {
            let text = format_unix(s, n);
            assert_eq!(parse_unix(&text), Some((s, n)), "{text}");
        }
        assert_eq!(format_unix(0, 0), "1970-01-01T00:00:00.000000000Z");
        // 2021-01-03 (a Sunday) is in ISO week 53 of 2020; 2021-01-04 starts week 1.
        let (jan3, _) = parse_unix("2021-01-03T12:00:00Z").unwrap();
        assert_eq!(calendar(jan3), (2021, 1, 3, 12, 2020, 53));
        let (jan4, _) = parse_unix("2021-01-04T00:00:00Z").unwrap();
        assert_eq!(calendar(jan4), (2021, 1, 4, 0, 2021, 1));
        let t = UNIX_EPOCH + Duration::new(1_600_000_000, 42);
        assert_eq!(parse_unix(&format_rfc3339(t)), Some((1_600_000_000, 42)));
        assert_eq!(
            parse_unix("2020-01-01T00:00:00.5Z"),
            Some((1_577_836_800, 500_000_000))
        );
        for bad in [
            "",
            "2020-13-01T00:00:00Z",
            "2020-01-01 00:00:00Z",
            "2020-01-01T00:00:00.1234567890Z",
        ] {
            assert_eq!(parse_unix(bad), None, "{bad}");
        }
    }
}
