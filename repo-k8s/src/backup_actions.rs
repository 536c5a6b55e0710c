//! Velero's backup item actions that change what is stored (`pkg/backup/actions`). The
//! items they take along (a pod's claims and PriorityClass, a Bound claim's volume, a
//! service account's cluster role bindings and roles) are chosen with the selection, in
//! [`crate::filter`]; here is what changes in the stored object.

use serde_json::Value;

use crate::object::Object;

/// Labels of an earlier restore or snapshot on a claim, which would mislead the next one.
const STALE_CLAIM_LABELS: &[&str] = &[
    "velero.io/restore-name",
    "backup.velero.io/must-include-additional-items",
    "velero.io/volume-snapshot-name",
];

/// Prepares an object of resource `gr` for backup `backup_name`. Returns whether it
/// changed.
pub fn prepare(o: &mut Object, gr: &str, backup_name: &str) -> bool {
    match gr {
        "persistentvolumeclaims" => clean_bound_claim(o, backup_name),
        _ => false,
    }
}

/// Velero `backup_pv_action.go`: a Bound claim is stored without what a restore of it must
/// not reuse: its data source (an earlier restore's snapshot), its volume selector (the
/// restored claim binds by `volumeName`, or is provisioned again) unless the storage class
/// is `""` (static binding), Velero's keys in a selector kept, and the labels of an earlier
/// restore or snapshot (and the backup-name label of another backup).
fn clean_bound_claim(pvc: &mut Object, backup_name: &str) -> bool {
    let bound = pvc.str_at(&["status", "phase"]) == Some("Bound")
        && pvc
            .str_at(&["spec", "volumeName"])
            .is_some_and(|v| !v.is_empty());
    if !bound {
        return false;
    }
    let mut changed = false;
    changed |= pvc.remove(&["spec", "dataSource"]);
    changed |= pvc.remove(&["spec", "dataSourceRef"]);
    if pvc.str_at(&["spec", "storageClassName"]) != Some("") {
        changed |= pvc.remove(&["spec", "selector"]);
    } else if let Some(Value::Object(m)) = pvc.get_mut(&["spec", "selector", "matchLabels"]) {
        let before = m.len();
        m.retain(|k, _| !k.starts_with("velero.io/"));
        changed |= m.len() != before;
    }
    if let Some(Value::Object(labels)) = pvc.get_mut(&["metadata", "labels"]) {
        let before = labels.len();
        labels.retain(|k, v| {
            let other_backup = k == "velero.io/backup-name" && v.as_str() != Some(backup_name);
            !STALE_CLAIM_LABELS.contains(&k.as_str()) && !other_backup
        });
        changed |= labels.len() != before;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(spec: Value, labels: Value, phase: &str) -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "c", "namespace": "ns", "labels": labels},
                "spec": spec, "status": {"phase": phase}}),
            "t",
        )
        .unwrap()
    }

    /// Velero pkg/backup/actions/backup_pv_action_test.go TestBackupPVAction and
    /// TestCleanupStaleVeleroLabels.
    #[test]
    fn a_bound_claim_is_stored_without_what_a_restore_must_not_reuse() {
        let spec = |class: Option<&str>, selector: Value| {
            let mut s = json!({"volumeName": "pv-1", "selector": selector,
                "dataSource": {"kind": "VolumeSnapshot", "name": "snap"}, "dataSourceRef": {"kind": "VolumeSnapshot", "name": "snap"}});
            if let Some(c) = class {
                s["storageClassName"] = json!(c);
            }
            s
        };
        // No class, or a class: the selector goes, with the data sources.
        for class in [None, Some("sc1")] {
            let mut c = claim(
                spec(class, json!({"matchLabels": {"abc": "abc"}})),
                json!({}),
                "Bound",
            );
            assert!(prepare(&mut c, "persistentvolumeclaims", "current-backup"));
            let s = c.get(&["spec"]).unwrap();
            assert!(
                s.get("selector").is_none()
                    && s.get("dataSource").is_none()
                    && s.get("dataSourceRef").is_none(),
                "{s}"
            );
        }
        // Class "": the selector stays, without Velero's keys.
        let mut c = claim(
            spec(
                Some(""),
                json!({"matchLabels": {"velero.io/abc": "x", "abc": "abc"}}),
            ),
            json!({}),
            "Bound",
        );
        prepare(&mut c, "persistentvolumeclaims", "current-backup");
        assert_eq!(
            c.get(&["spec", "selector"]).unwrap(),
            &json!({"matchLabels": {"abc": "abc"}})
        );
        // Stale labels go; this backup's name and other labels stay.
        let labels = |backup: &str| {
            json!({"velero.io/restore-name": "r", "velero.io/backup-name": backup, "velero.io/volume-snapshot-name": "s",
                "backup.velero.io/must-include-additional-items": "true", "app": "db", "env": "prod"})
        };
        let mut c = claim(spec(None, json!({})), labels("old-backup"), "Bound");
        prepare(&mut c, "persistentvolumeclaims", "current-backup");
        assert_eq!(
            c.get(&["metadata", "labels"]).unwrap(),
            &json!({"app": "db", "env": "prod"})
        );
        let mut c = claim(spec(None, json!({})), labels("current-backup"), "Bound");
        prepare(&mut c, "persistentvolumeclaims", "current-backup");
        assert_eq!(
            c.get(&["metadata", "labels"]).unwrap()["velero.io/backup-name"],
            "current-backup"
        );
        // Not Bound (Pending, Lost, none), or no volume: stored as it is.
        for phase in ["Pending", "Lost", ""] {
            let mut c = claim(
                spec(None, json!({"matchLabels": {"a": "b"}})),
                labels("old"),
                phase,
            );
            let before = c.clone();
            assert!(!prepare(&mut c, "persistentvolumeclaims", "current-backup"));
            assert_eq!(c, before);
        }
    }
}
