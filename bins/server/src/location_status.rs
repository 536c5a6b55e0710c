//! Checking BackupStorageLocations, as Velero's location controller does: each is opened
//! every `validationFrequency` (a minute by default; `0s`: never) and marked `Available`,
//! or `Unavailable` with a message naming what failed. Opening creates the repository of
//! an empty writable location, so a new location is ready for its first backup.

use std::time::{Duration, SystemTime};

use repo_k8s::velero::{resource, BackupStorageLocation};
use serde_json::{json, Value};

use crate::backups::{is_due, Controller};

/// Velero's default validation frequency.
pub const DEFAULT_VALIDATION_FREQUENCY: Duration = Duration::from_secs(60);

impl Controller<'_> {
    /// Checks every location that is due at `now`; returns (name, available) of those
    /// checked.
    pub fn check_locations(&self, now: SystemTime) -> Vec<(String, bool)> {
        let r = resource::<BackupStorageLocation>();
        let Ok(list) = self.cluster.list(&r, Some(&self.namespace)) else {
            return Vec::new();
        };
        let mut checked = Vec::new();
        for o in list {
            let Ok(bsl) = serde_json::from_value::<BackupStorageLocation>(Value::Object(
                o.as_value().clone(),
            )) else {
                continue;
            };
            if !due(&bsl, now) {
                continue;
            }
            let outcome = self.open_repository(&bsl);
            let status = match &outcome {
                Ok(_) => json!({"phase": "Available", "message": ""}),
                Err(e) => json!({"phase": "Unavailable", "message": e}),
            };
            let mut status = status;
            status["lastValidationTime"] = crate::backups::kube_time(now).into();
            let _ = self.cluster.merge_patch(
                &r,
                Some(&self.namespace),
                &bsl.metadata.name,
                &json!({ "status": status }),
            );
            let available = if outcome.is_ok() { 1.0 } else { 0.0 };
            self.metrics.set(
                "velero_backup_location_status_gauge",
                &bsl.metadata.name,
                available,
            );
            let was = bsl.status.as_ref().and_then(|s| s.phase);
            if let Err(e) = &outcome {
                if was != Some(repo_k8s::velero::BackupStorageLocationPhase::Unavailable) {
                    self.event(&bsl, crate::events::Level::Warning, "Unavailable", e);
                }
            }
            checked.push((bsl.metadata.name.clone(), outcome.is_ok()));
        }
        checked
    }
}

/// Whether a location's check is due: never checked, or its frequency has passed.
fn due(bsl: &BackupStorageLocation, now: SystemTime) -> bool {
    let last = bsl
        .status
        .as_ref()
        .and_then(|s| s.last_validation_time.as_deref());
    is_due(
        bsl.spec.validation_frequency.as_deref(),
        DEFAULT_VALIDATION_FREQUENCY,
        last,
        now,
    )
}
