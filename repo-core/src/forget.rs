//! Retention: which snapshots a policy keeps, as a plan that can be printed, tested and then
//! carried out. Forgetting deletes snapshot objects only; the data they referenced is freed
//! later by maintenance (garbage collection), never here.
//!
//! Rules follow restic's, so users can carry their policies over: snapshots are grouped
//! (by source by default); within a group, newest first, `keep_last` keeps the N newest,
//! and each of `keep_hourly` … `keep_yearly` keeps the newest snapshot of each of the N most
//! recent hours (days, ISO weeks, months, years) that have one; `keep_within` keeps all newer
//! than the duration before the newest snapshot of the group; `keep_tags` keeps any
//! snapshot carrying one of the tags. A snapshot whose TTL (`expires`) has passed is removed
//! whatever the rules say (the TTL is an explicit instruction) and takes no place in them:
//! `keep_last 2` keeps the two newest live snapshots.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{time, ObjectId, Result, Snapshot};

/// Which snapshots to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<Duration>,
    /// `key=value` tags; a snapshot with any of them is kept.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// A policy that keeps nothing by rule (only explicit ids or TTLs would act otherwise).
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}

/// What groups snapshots for a policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub source: bool,
    pub tags: bool,
}

impl GroupBy {
    /// The default: by source.
    pub fn source() -> Self {
        GroupBy {
            source: true,
            ..Default::default()
        }
    }

    /// Parses `host,source,tags` (any subset, comma-separated).
    pub fn parse(s: &str) -> Result<Self> {
        let mut g = GroupBy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "source" | "path" | "paths" => g.source = true,
                "tags" => g.tags = true,
                other => {
                    return Err(crate::Error::invalid(
                        "group-by",
                        format!("{other:?}: use host, source and/or tags"),
                    ))
                }
            }
        }
        Ok(g)
    }

    fn key(&self, s: &Snapshot) -> String {
        let mut parts = Vec::new();
        if self.host {
            parts.push(format!("host={}", s.host));
        }
        if self.source {
            parts.push(format!("source={}", s.source));
        }
        if self.tags {
            parts.push(format!("tags=[{}]", s.tags.join(",")));
        }
        parts.join(" ")
    }
}

/// The decision for one snapshot.
#[derive(Clone, Debug)]
pub struct Decision {
    pub id: ObjectId,
    pub snapshot: Snapshot,
    pub keep: bool,
    /// Why: the rules that keep it (`last`, `daily 2026-11-20`, …), or why it goes.
    pub reasons: Vec<String>,
}

/// A retention plan: per group, every snapshot newest first with its decision.
#[derive(Clone, Debug, Default)]
pub struct ForgetPlan {
    pub groups: Vec<(String, Vec<Decision>)>,
}

impl ForgetPlan {
    /// Snapshots the plan removes.
    pub fn removals(&self) -> impl Iterator<Item = &Decision> {
        self.groups.iter().flat_map(|(_, d)| d).filter(|d| !d.keep)
    }
}

fn seconds(s: &Snapshot) -> i64 {
    instant(s).0
}

/// A snapshot's time to the nanosecond (backups a moment apart must still sort right).
fn instant(s: &Snapshot) -> (i64, u32) {
    time::parse_unix(&s.time).unwrap_or((i64::MIN, 0))
}

fn expired(s: &Snapshot, now: i64) -> bool {
    s.expires
        .as_deref()
        .and_then(time::parse_unix)
        .is_some_and(|(t, _)| t <= now)
}

/// The calendar bucket (`2026-11-20 06h`, `2026-11-20`, `2026-W47`, `2026-11`, `2026`) a
/// time falls in for a keep rule.
fn bucket(rule: &str, t: i64) -> String {
    let (y, m, d, h, week_year, week) = time::calendar(t);
    match rule {
        "hourly" => format!("{y:04}-{m:02}-{d:02} {h:02}h"),
        "daily" => format!("{y:04}-{m:02}-{d:02}"),
        "weekly" => format!("{week_year:04}-W{week:02}"),
        "monthly" => format!("{y:04}-{m:02}"),
        _ => format!("{y:04}"),
    }
}

/// Plans which of `snapshots` `policy` keeps, as of `now` (Unix seconds; TTLs compare
/// against it). With an empty policy and no expiries, everything is kept: forgetting needs
/// an explicit rule.
pub fn plan(
    snapshots: Vec<(ObjectId, Snapshot)>,
    policy: &KeepPolicy,
    group_by: GroupBy,
    now: i64,
) -> ForgetPlan {
    let mut groups: BTreeMap<String, Vec<(ObjectId, Snapshot)>> = BTreeMap::new();
    for (id, s) in snapshots {
        groups.entry(group_by.key(&s)).or_default().push((id, s));
    }
    let mut plan = ForgetPlan::default();
    for (key, mut list) in groups {
        // Newest first; ties broken by id so the plan is deterministic.
        list.sort_by(|a, b| instant(&b.1).cmp(&instant(&a.1)).then(b.0.cmp(&a.0)));
        // Expired snapshots go first and take no place in the keep rules.
        let (gone, live): (Vec<_>, Vec<_>) = list.into_iter().partition(|(_, s)| expired(s, now));
        let newest = live.first().map(|(_, s)| seconds(s)).unwrap_or(0);
        let mut decisions: Vec<Decision> = live
            .into_iter()
            .map(|(id, snapshot)| Decision {
                id,
                snapshot,
                keep: false,
                reasons: Vec::new(),
            })
            .collect();
        let keep = |d: &mut Decision, why: String| {
            d.keep = true;
            d.reasons.push(why);
        };
        for d in decisions.iter_mut().take(policy.last as usize) {
            keep(d, "last".into());
        }
        let buckets = [
            ("hourly", policy.hourly),
            ("daily", policy.daily),
            ("weekly", policy.weekly),
            ("monthly", policy.monthly),
            ("yearly", policy.yearly),
        ];
        for (name, n) in buckets {
            let mut seen: Vec<String> = Vec::new();
            for d in decisions.iter_mut() {
                if seen.len() >= n as usize {
                    break;
                }
                let b = bucket(name, seconds(&d.snapshot));
                if !seen.contains(&b) {
                    keep(d, format!("{name} {b}"));
                    seen.push(b);
                }
            }
        }
        if let Some(within) = policy.within {
            let limit = newest.saturating_sub(within.as_secs() as i64);
            for d in decisions.iter_mut() {
                if seconds(&d.snapshot) >= limit {
                    keep(d, format!("within {}", humantime::format_duration(within)));
                }
            }
        }
        for d in decisions.iter_mut() {
            if let Some(t) = policy.tags.iter().find(|t| d.snapshot.tags.contains(t)) {
                keep(d, format!("tag {t}"));
            }
        }
        if policy.is_empty() {
            for d in decisions.iter_mut() {
                keep(d, "no keep rule given".into());
            }
        }
        for d in decisions.iter_mut().filter(|d| !d.keep) {
            d.reasons.push("matches no keep rule".into());
        }
        for (id, snapshot) in gone {
            let why = format!(
                "expired at {} (TTL)",
                snapshot.expires.as_deref().unwrap_or_default()
            );
            decisions.push(Decision {
                id,
                snapshot,
                keep: false,
                reasons: vec![why],
            });
        }
        plan.groups.push((key, decisions));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: &str, source: &str, tags: &[&str]) -> (ObjectId, Snapshot) {
        let mut s = Snapshot::new(
            source,
            "h",
            tags.iter().map(|t| t.to_string()).collect(),
            Default::default(),
        )
        .unwrap();
        s.time = time.into();
        let (id, _) = s.seal(&crate::MasterKey::from_secret([1; 32]));
        (id, s)
    }

    fn kept(plan: &ForgetPlan) -> Vec<String> {
        let mut v: Vec<String> = plan
            .groups
            .iter()
            .flat_map(|(_, d)| d)
            .filter(|d| d.keep)
            .map(|d| d.snapshot.time[..13].to_string())
            .collect();
        v.sort();
        v
    }

    /// Two snapshots a day, at 06h and 18h, 2026-10-01 … 2026-11-20.
    fn history() -> Vec<(ObjectId, Snapshot)> {
        let (start, _) = time::parse_unix("2026-10-01T00:00:00Z").unwrap();
        (0..51)
            .flat_map(|day| [6, 18].map(|h| start + day * 86_400 + h * 3600))
            .map(|t| snap(&time::format_unix(t, 0), "/data", &[]))
            .collect()
    }

    #[test]
    fn calendar_rules_keep_the_newest_of_each_bucket() {
        let now = time::parse_unix("2026-11-21T00:00:00Z").unwrap().0;
        let p = KeepPolicy {
            last: 2,
            daily: 3,
            weekly: 2,
            monthly: 2,
            ..Default::default()
        };
        let plan = plan(history(), &p, GroupBy::source(), now);
        assert_eq!(
            kept(&plan),
            [
                "2026-10-31T18", // monthly: October
                "2026-11-15T18", // weekly: ISO week 46 (Nov 9-15)
                "2026-11-18T18", // daily
                "2026-11-19T18", // daily
                "2026-11-20T06", // last
                "2026-11-20T18", // last, daily, weekly (week 47), monthly (November)
            ]
        );
        let newest = &plan.groups[0].1[0];
        assert_eq!(
            newest.reasons,
            [
                "last",
                "daily 2026-11-20",
                "weekly 2026-W47",
                "monthly 2026-11"
            ]
        );
        let gone = plan.removals().count();
        assert_eq!(gone, 102 - 6);
    }

    #[test]
    fn within_tags_groups_empty_policy_and_ttl() {
        let now = time::parse_unix("2026-11-21T00:00:00Z").unwrap().0;
        let mut all = history();
        all.push(snap("2026-01-01T00:00:00Z", "/other", &["keep=yes"]));
        let mut expiring = snap("2026-11-20T23:00:00Z", "/data", &[]);
        expiring.1.expires = Some("2026-11-20T23:30:00Z".into());
        all.push(expiring);
        let p = KeepPolicy {
            within: Some(Duration::from_secs(36 * 3600)),
            tags: vec!["keep=yes".into()],
            ..Default::default()
        };
        let plan = plan(all.clone(), &p, GroupBy::source(), now);
        assert_eq!(plan.groups.len(), 2, "grouped by source");
        // `within` counts back from the newest live snapshot (the expired one is not).
        assert_eq!(
            kept(&plan),
            [
                "2026-01-01T00",
                "2026-11-19T06",
                "2026-11-19T18",
                "2026-11-20T06",
                "2026-11-20T18"
            ]
        );
        let expired: Vec<_> = plan
            .removals()
            .filter(|d| d.reasons[0].contains("TTL"))
            .collect();
        assert_eq!(
            expired.len(),
            1,
            "the expired snapshot goes although `within` covers it"
        );
        // No rule: nothing goes but the expired one.
        let none = super::plan(all, &KeepPolicy::default(), GroupBy::source(), now);
        assert_eq!(none.removals().count(), 1);
    }
}
