//! Schedule (`velero.io/v1`, Velero `pkg/apis/velero/v1/schedule_types.go`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::velero_kind;
use super::BackupSpec;

velero_kind!(
    /// Backups made on a cron schedule, and its status.
    Schedule,
    ScheduleSpec,
    ScheduleStatus,
    "schedules",
    []
);

/// When to back up, and what each backup is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// The spec of every Backup the schedule creates.
    pub template: BackupSpec,
    /// A cron expression (`0 1 * * *`, or `@every 6h`).
    pub schedule: String,
    /// Whether the Backups it creates have the Schedule as their owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_owner_references_in_backup: Option<bool>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Whether a backup due at once (a new or unpaused schedule) waits for the next time.
    /// Unset: the server's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_immediately: Option<bool>,
}

/// A Schedule's `status.phase` (Velero's `SchedulePhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SchedulePhase {
    /// Not validated yet.
    #[default]
    New,
    /// Validated; backups are made on the schedule.
    Enabled,
    /// Invalid; no backups are made (`status.validationErrors` says why).
    FailedValidation,
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SchedulePhase>,
    /// When the last Backup was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// When a backup was last skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skipped: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_as_velero_writes_it_round_trips() {
        let text = r#"
apiVersion: velero.io/v1
kind: Schedule
metadata: {name: nightly, namespace: velero}
spec:
  schedule: "0 1 * * *"
  paused: true
  template:
    includedNamespaces: [shop]
    ttl: 720h0m0s
status:
  phase: Enabled
  lastBackup: "2025-01-02T01:00:00Z"
"#;
        let s: Schedule = yaml_serde::from_str(text).unwrap();
        assert!(s.spec.paused);
        assert_eq!(s.spec.template.ttl.as_deref(), Some("720h0m0s"));
        assert_eq!(
            s.status.as_ref().unwrap().phase,
            Some(SchedulePhase::Enabled)
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["spec"]["template"]["includedNamespaces"][0], "shop");
        assert_eq!(serde_json::from_value::<Schedule>(json).unwrap(), s);

        // Unpaused is Go's omitted false.
        let json = serde_json::to_value(ScheduleSpec::default()).unwrap();
        assert!(json.get("paused").is_none());
    }
}
