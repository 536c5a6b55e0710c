//! Sizes and times as a person reads them in a table. `--json` output keeps exact values.

/// Sizes as maintenance already says them (`1.5 KiB`, `1.2 GiB`): one formatter for every
/// output of cairn.
pub use repo_core::maintenance::human_bytes as bytes;

extern "C" {
    fn tzset();
}

/// localtime_r and mktime, unlike localtime, need not read TZ: the zone is loaded once.
/// (SAFETY of each call: tzset only reads TZ and the zone files into libc's own state.)
static ZONE: std::sync::Once = std::sync::Once::new();

/// An RFC 3339 time as `2026-11-30 18:04:05` in the machine's local time zone; text that
/// does not parse is shown as it is.
pub fn local_time(rfc3339: &str) -> String {
    let Some(t) = repo_core::time::parse_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    ZONE.call_once(|| unsafe { tzset() });
    let secs = repo_core::time::unix_seconds(t);
    // SAFETY: localtime_r fills the tm it is given from a time_t; both live on this stack.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let time = secs as libc::time_t;
    if unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
        return rfc3339.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year as i64 + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `YYYY-MM-DD HH:MM:SS` (or `YYYY-MM-DD HH:MM`, or `YYYY-MM-DD`) in the machine's local
/// time zone, as an instant.
pub fn parse_local_time(s: &str) -> Option<std::time::SystemTime> {
    let (date, time) = s.trim().split_once(' ').unwrap_or((s.trim(), "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i32>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i32>().ok());
    let (hour, min) = (t.next()??, t.next()??);
    let sec = t.next().unwrap_or(Some(0))?;
    if d.next().is_some() || t.next().is_some() {
        return None;
    }
    ZONE.call_once(|| unsafe { tzset() });
    // SAFETY: tm is plain data; mktime reads the fields set here and normalizes them.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&min)
        && (0..=60).contains(&sec);
    let secs = unsafe { libc::mktime(&mut tm) };
    (valid && secs != -1).then(|| repo_core::time::from_unix_seconds(secs as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_local_and_unparsable_ones_shown_as_given() {
        std::env::set_var("TZ", "UTC");
        assert_eq!(
            local_time("2026-11-30T18:04:05.123Z"),
            "2026-11-30 18:04:05"
        );
        assert_eq!(local_time("yesterday"), "yesterday");
        let t = parse_local_time("2026-11-30 18:04:05").unwrap();
        assert!(repo_core::time::format_rfc3339(t).starts_with("2026-11-30T18:04:05"));
        assert!(parse_local_time("2026-13-01 00:00:00").is_none());
        assert!(parse_local_time("2026-11-30 18:04:05:01").is_none());
        assert!(parse_local_time("last week").is_none());
    }
}
