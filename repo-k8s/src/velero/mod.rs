//! Velero's API (`velero.io/v1`), spelled as Velero spells it, so that the objects Velero's
//! tools write are read and the objects cairn writes are read by them: the kinds (Backup,
//! Restore, Schedule, BackupStorageLocation, the request kinds, the pod volume kinds), their
//! phases, the `Result` of warnings and errors per namespace, and the CustomResourceDefinitions
//! generated from the types ([`crd`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod backup;
pub mod crd;
mod data_mover;
mod location;
mod meta;
mod pod_volume;
mod requests;
mod restore;
mod schedule;

pub use backup::*;
pub use data_mover::*;
pub use location::*;
pub use meta::*;
pub use pod_volume::*;
pub use requests::*;
pub use restore::*;
pub use schedule::*;

/// A Backup's `status.phase` (Velero's `BackupPhase`; `Queued` and `ReadyToStart` are
/// Velero 1.18's concurrent-backup queue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BackupPhase {
    #[default]
    New,
    Queued,
    ReadyToStart,
    FailedValidation,
    InProgress,
    WaitingForPluginOperations,
    WaitingForPluginOperationsPartiallyFailed,
    Finalizing,
    FinalizingPartiallyFailed,
    Completed,
    PartiallyFailed,
    Failed,
    Deleting,
}

/// A Restore's `status.phase` (Velero's `RestorePhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RestorePhase {
    #[default]
    New,
    FailedValidation,
    InProgress,
    WaitingForPluginOperations,
    WaitingForPluginOperationsPartiallyFailed,
    Finalizing,
    FinalizingPartiallyFailed,
    Completed,
    PartiallyFailed,
    Failed,
}

/// How a backup or restore ended, whatever the object: what its caller acts on (an exit
/// code, a metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    PartiallyFailed,
    Failed,
    /// Not finished yet.
    Running,
}

impl BackupPhase {
    pub fn outcome(self) -> Outcome {
        match self {
            BackupPhase::Completed => Outcome::Completed,
            BackupPhase::PartiallyFailed => Outcome::PartiallyFailed,
            BackupPhase::Failed | BackupPhase::FailedValidation => Outcome::Failed,
            _ => Outcome::Running,
        }
    }
}

impl RestorePhase {
    pub fn outcome(self) -> Outcome {
        match self {
            RestorePhase::Completed => Outcome::Completed,
            RestorePhase::PartiallyFailed => Outcome::PartiallyFailed,
            RestorePhase::Failed | RestorePhase::FailedValidation => Outcome::Failed,
            _ => Outcome::Running,
        }
    }
}

macro_rules! display_as_serialized {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // Unit variants serialize as their names.
                let v = serde_json::to_value(self).expect("a unit variant");
                f.write_str(v.as_str().expect("a string"))
            }
        }
    )*};
}
display_as_serialized!(
    BackupPhase,
    RestorePhase,
    SchedulePhase,
    BackupStorageLocationPhase,
    DeleteBackupRequestPhase,
    ServerStatusRequestPhase,
    DownloadRequestPhase,
    PodVolumeBackupPhase,
    PodVolumeRestorePhase
);

/// Velero's `Result`: messages for Velero itself, the cluster, and per namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VeleroResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub velero: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

impl VeleroResult {
    /// Adds a message for a namespace (`""`: the cluster).
    pub fn add(&mut self, ns: &str, msg: String) {
        if ns.is_empty() {
            self.cluster.push(msg);
        } else {
            self.namespaces.entry(ns.to_string()).or_default().push(msg);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.velero.is_empty() && self.cluster.is_empty() && self.namespaces.is_empty()
    }

    pub fn len(&self) -> usize {
        self.messages().count()
    }

    /// One log line per message: `level: [namespace ns: ]message`.
    pub fn log_lines(&self, level: &str) -> String {
        let mut out = String::new();
        for (ns, m) in self.messages() {
            let at = ns.map(|ns| format!("namespace {ns}: ")).unwrap_or_default();
            out.push_str(&format!("{level}: {at}{m}\n"));
        }
        out
    }

    /// Every message with its namespace (`None` for Velero's and the cluster's).
    pub fn messages(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.velero
            .iter()
            .chain(&self.cluster)
            .map(|m| (None, m.as_str()))
            .chain(
                self.namespaces
                    .iter()
                    .flat_map(|(ns, ms)| ms.iter().map(move |m| (Some(ns.as_str()), m.as_str()))),
            )
    }
}

/// A backup's or restore's `results.json`: warnings and errors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    pub warnings: VeleroResult,
    pub errors: VeleroResult,
}

/// A Go duration (`720h0m0s`, `1.5h`, `90m`, `500ms`).
pub fn go_duration(s: &str) -> Option<std::time::Duration> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * secs;
        rest = next;
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// A duration as Go prints one (`4h0m0s`, `10m0s`, `2s`; below a second `500ms`), the
/// form Velero's duration fields hold.
pub fn go_duration_text(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does_and_read_back() {
        for (secs, text) in [
            (14400, "4h0m0s"),
            (600, "10m0s"),
            (2, "2s"),
            (3725, "1h2m5s"),
        ] {
            let d = std::time::Duration::from_secs(secs);
            assert_eq!(go_duration_text(d), text);
            assert_eq!(go_duration(text), Some(d));
        }
        assert_eq!(
            go_duration_text(std::time::Duration::from_millis(500)),
            "500ms"
        );
    }

    #[test]
    fn phases_are_spelled_as_velero_spells_them() {
        assert_eq!(BackupPhase::PartiallyFailed.to_string(), "PartiallyFailed");
        assert_eq!(
            serde_json::to_value(RestorePhase::FailedValidation).unwrap(),
            "FailedValidation"
        );
        let p: BackupPhase = serde_json::from_value("Deleting".into()).unwrap();
        assert_eq!(p, BackupPhase::Deleting);
        assert_eq!(BackupPhase::FailedValidation.outcome(), Outcome::Failed);
        assert_eq!(RestorePhase::InProgress.outcome(), Outcome::Running);
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            go_duration("720h0m0s"),
            Some(std::time::Duration::from_secs(720 * 3600))
        );
        assert_eq!(
            go_duration("1.5h"),
            Some(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            go_duration("90m"),
            Some(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            go_duration("500ms"),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(go_duration("0"), Some(std::time::Duration::ZERO));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration("5d"), None);
    }
}
