//! The server's Prometheus metrics, with Velero's names, labels and buckets
//! (`pkg/metrics/metrics.go`), so Velero's dashboards and alerts keep working, plus cairn's
//! own (`cairn_*`). Rendered in Prometheus' text format at `/metrics`.
//!
//! Velero labels most series by schedule (`schedule`, empty for backups made by hand) and
//! locations by name (`backup_location_name`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Type {
    Counter,
    Gauge,
    /// Upper bounds of the buckets, in seconds.
    Histogram(&'static [f64]),
}

/// Velero's backup duration buckets: 1, 5, 10, 15, 30 minutes, 1, 2, 3, 4 hours.
const BACKUP_BUCKETS: &[f64] = &[
    60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0,
];

/// Every family: name, help, type, label (empty: none).
const FAMILIES: &[(&str, &str, Type, &str)] = &[
    ("velero_backup_total", "Current number of existent backups", Type::Gauge, ""),
    ("velero_backup_attempt_total", "Total number of attempted backups", Type::Counter, "schedule"),
    ("velero_backup_success_total", "Total number of successful backups", Type::Counter, "schedule"),
    ("velero_backup_partial_failure_total", "Total number of partially failed backups", Type::Counter, "schedule"),
    ("velero_backup_failure_total", "Total number of failed backups", Type::Counter, "schedule"),
    ("velero_backup_validation_failure_total", "Total number of validation failed backups", Type::Counter, "schedule"),
    ("velero_backup_duration_seconds", "Time taken to complete backup, in seconds", Type::Histogram(BACKUP_BUCKETS), "schedule"),
    ("velero_backup_items_total", "Total number of items backed up", Type::Gauge, "schedule"),
    ("velero_backup_items_errors", "Total number of errors encountered during backup", Type::Gauge, "schedule"),
    ("velero_backup_warning_total", "Total number of warned backups", Type::Counter, "schedule"),
    ("velero_backup_last_status", "Last status of the backup. A value of 1 is success, 0 is failure", Type::Gauge, "schedule"),
    ("velero_backup_last_successful_timestamp", "Last time a backup ran successfully, Unix timestamp in seconds", Type::Gauge, "schedule"),
    ("velero_backup_tarball_size_bytes", "Size, in bytes, of a backup", Type::Gauge, "schedule"),
    ("velero_backup_deletion_attempt_total", "Total number of attempted backup deletions", Type::Counter, "schedule"),
    ("velero_backup_deletion_success_total", "Total number of successful backup deletions", Type::Counter, "schedule"),
    ("velero_backup_deletion_failure_total", "Total number of failed backup deletions", Type::Counter, "schedule"),
    ("velero_backup_location_status_gauge", "The status of backup location.  A value of 1 is available, 0 is unavailable", Type::Gauge, "backup_location_name"),
    ("velero_restore_total", "Current number of existent restores", Type::Gauge, ""),
    ("velero_restore_attempt_total", "Total number of attempted restores", Type::Counter, "schedule"),
    ("velero_restore_success_total", "Total number of successful restores", Type::Counter, "schedule"),
    ("velero_restore_partial_failure_total", "Total number of partially failed restores", Type::Counter, "schedule"),
    ("velero_restore_failed_total", "Total number of failed restores", Type::Counter, "schedule"),
    ("velero_restore_validation_failed_total", "Total number of failed restores failing validations", Type::Counter, "schedule"),
    ("cairn_backup_new_bytes", "Bytes the last backup added to the repository (after dedup and compression)", Type::Gauge, "schedule"),
    ("cairn_backup_stored_bytes", "Bytes of objects the last backup stored, before dedup", Type::Gauge, "schedule"),
    ("cairn_backup_cancelled_total", "Total number of backups cancelled while they ran", Type::Counter, "schedule"),
    ("cairn_schedule_deferred_runs_total", "Runs of a schedule that waited because a backup of it was still New or InProgress (Velero is silent about these)", Type::Counter, "schedule"),
    ("cairn_server_leader", "1 while this replica holds the Lease and acts, else 0", Type::Gauge, ""),
];

#[derive(Clone, Debug, Default)]
struct Series {
    value: f64,
    /// Histograms: counts per bucket (cumulative when rendered), and the sum.
    buckets: Vec<u64>,
    count: u64,
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<BTreeMap<&'static str, BTreeMap<String, Series>>>);

fn family(name: &str) -> (&'static str, Type) {
    let f = FAMILIES
        .iter()
        .find(|f| f.0 == name)
        .unwrap_or_else(|| panic!("metric {name} is not declared in FAMILIES"));
    (f.0, f.2)
}

impl Metrics {
    fn with(&self, name: &str, label: &str, f: impl FnOnce(&mut Series, Type)) {
        let (name, kind) = family(name);
        let mut all = self.0.lock().expect("not poisoned");
        let series = all
            .entry(name)
            .or_default()
            .entry(label.to_string())
            .or_default();
        f(series, kind);
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &str, label: &str) {
        self.with(name, label, |s, _| s.value += 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, label: &str, value: f64) {
        self.with(name, label, |s, _| s.value = value);
    }

    /// Records a histogram observation.
    pub fn observe(&self, name: &str, label: &str, value: f64) {
        self.with(name, label, |s, kind| {
            let Type::Histogram(bounds) = kind else {
                panic!("metric {name} is not a histogram");
            };
            s.buckets.resize(bounds.len(), 0);
            if let Some(i) = bounds.iter().position(|b| value <= *b) {
                s.buckets[i] += 1;
            }
            s.count += 1;
            s.value += value;
        });
    }

    /// A series' value (a histogram's sum), for tests.
    pub fn value(&self, name: &str, label: &str) -> Option<f64> {
        let all = self.0.lock().expect("not poisoned");
        all.get(name)?.get(label).map(|s| s.value)
    }

    /// Every family in Prometheus' text format (those with no series yet included, as
    /// client_golang shows vectors only once used: their HELP and TYPE lines).
    pub fn render(&self) -> String {
        let all = self.0.lock().expect("not poisoned");
        let mut out = String::new();
        for (name, help, kind, label) in FAMILIES {
            let type_name = match kind {
                Type::Counter => "counter",
                Type::Gauge => "gauge",
                Type::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {type_name}");
            let empty = BTreeMap::new();
            let series = all.get(name).unwrap_or(&empty);
            let labels = |value: &str, extra: &str| {
                let mut parts = Vec::new();
                if !label.is_empty() {
                    parts.push(format!("{label}=\"{}\"", escape(value)));
                }
                if !extra.is_empty() {
                    parts.push(extra.to_string());
                }
                if parts.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", parts.join(","))
                }
            };
            if series.is_empty() && label.is_empty() && !matches!(kind, Type::Histogram(_)) {
                let _ = writeln!(out, "{name} 0");
            }
            for (value, s) in series {
                match kind {
                    Type::Histogram(bounds) => {
                        let mut cumulative = 0;
                        for (i, b) in bounds.iter().enumerate() {
                            cumulative += s.buckets.get(i).copied().unwrap_or(0);
                            let le = format!("le=\"{b}\"");
                            let _ =
                                writeln!(out, "{name}_bucket{} {cumulative}", labels(value, &le));
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            labels(value, "le=\"+Inf\""),
                            s.count
                        );
                        let _ = writeln!(out, "{name}_sum{} {}", labels(value, ""), s.value);
                        let _ = writeln!(out, "{name}_count{} {}", labels(value, ""), s.count);
                    }
                    _ => {
                        let _ = writeln!(out, "{name}{} {}", labels(value, ""), s.value);
                    }
                }
            }
        }
        out
    }
}

/// A label value as Prometheus' text format escapes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_veleros_names_and_buckets() {
        let m = Metrics::default();
        m.inc("velero_backup_attempt_total", "nightly");
        m.inc("velero_backup_attempt_total", "nightly");
        m.set("velero_backup_location_status_gauge", "default", 1.0);
        m.observe("velero_backup_duration_seconds", "", 90.0);
        let text = m.render();
        assert!(
            text.contains("velero_backup_attempt_total{schedule=\"nightly\"} 2\n"),
            "{text}"
        );
        assert!(text
            .contains("velero_backup_location_status_gauge{backup_location_name=\"default\"} 1\n"));
        assert!(
            text.contains("velero_backup_duration_seconds_bucket{schedule=\"\",le=\"60\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("velero_backup_duration_seconds_bucket{schedule=\"\",le=\"300\"} 1\n")
        );
        assert!(
            text.contains("velero_backup_duration_seconds_bucket{schedule=\"\",le=\"+Inf\"} 1\n")
        );
        assert!(text.contains("velero_backup_duration_seconds_sum{schedule=\"\"} 90\n"));
        assert!(text.contains("# TYPE velero_backup_total gauge\nvelero_backup_total 0\n"));
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }
}
