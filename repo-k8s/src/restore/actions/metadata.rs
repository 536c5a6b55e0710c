//! What every restored object goes through (Velero `restore.go`): the metadata reset, the
//! status decision, and the restore labels with Velero's shortening of long values.

use serde_json::Value;

use crate::object::Object;

/// Metadata the API server sets, or that names the old object: Velero's `resetMetadata`.
/// Finalizers and managedFields stay, as in Velero.
const RESET: &[&str] = &[
    "generateName",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
];

/// Annotation asking for (`true`) or against (`false`) an object's status being restored,
/// whatever the restore says; read trimmed and in any case.
pub const RESTORE_STATUS_ANNOTATION: &str = "velero.io/restore-status";

/// Velero's `resetMetadataAndStatus`: returns the status it took out (the restore puts it
/// back when it is restored). An object named only by `generateName` (a manifest's) keeps
/// it, or it could not be created at all.
pub(crate) fn reset(o: &mut Object) -> Option<Value> {
    let named = o
        .str_at(&["metadata", "name"])
        .is_some_and(|n| !n.is_empty());
    let meta = o.map_at_mut(&["metadata"]);
    for k in RESET {
        if *k != "generateName" || named {
            meta.remove(*k);
        }
    }
    o.take(&["status"])
}

/// Whether an object's status is restored: the annotation when it says true or false, else
/// the restore's choice for the resource.
pub(crate) fn restores_status(o: &Object, by_resource: bool) -> bool {
    match o
        .annotation(RESTORE_STATUS_ANNOTATION)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("true") => true,
        Some("false") => false,
        _ => by_resource,
    }
}

/// Velero's `label.GetValidName`: a value longer than a label value may be (63) becomes its
/// first 57 bytes and the first 6 hex digits of its SHA-256, so a long backup name still
/// labels what it restored.
pub fn valid_label_value(s: &str) -> String {
    const MAX: usize = 63;
    if s.len() <= MAX {
        return s.to_string();
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    let hex: String = digest.as_ref()[..3]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Velero cuts bytes; a name cut inside a character keeps what is whole.
    let mut cut = MAX - hex.len();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hex}", &s[..cut])
}

/// Sets `velero.io/backup-name` and `velero.io/restore-name` (replacing those of an earlier
/// restore).
pub(crate) fn add_restore_labels(o: &mut Object, backup: &str, restore: &str) {
    let labels = o.map_at_mut(&["metadata", "labels"]);
    for (k, v) in crate::restore::RESTORE_LABELS.iter().zip([backup, restore]) {
        if !v.is_empty() {
            labels.insert(k.to_string(), Value::String(valid_label_value(v)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/label/label_test.go TestGetValidLabelName, and restore_test.go
    /// TestRestoreItems' label-length cases.
    #[test]
    fn long_label_values_are_shortened_with_a_hash_as_velero_does() {
        assert_eq!(
            valid_label_value(
                "this_is_a_very_long_label_value_that_will_be_rejected_by_Kubernetes"
            ),
            "this_is_a_very_long_label_value_that_will_be_rejected_by_8d0722"
        );
        let exactly = "a".repeat(63);
        assert_eq!(valid_label_value(&exactly), exactly);
        assert_eq!(valid_label_value("nightly"), "nightly");
    }

    /// Velero restore_test.go TestResetMetadata and TestDetermineRestoreStatus.
    #[test]
    fn reset_keeps_finalizers_and_managed_fields_and_status_follows_the_annotation() {
        let mut o = obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "generateName": "c-", "uid": "u", "resourceVersion": "1",
                "ownerReferences": [{"name": "o"}], "finalizers": ["f"], "managedFields": [{"manager": "m"}],
                "labels": {"a": "b"}, "annotations": {"x": "y"}},
            "status": {"s": 1}}));
        assert_eq!(reset(&mut o), Some(json!({"s": 1})));
        assert_eq!(
            o.get(&["metadata"]).unwrap(),
            &json!({"name": "c", "namespace": "ns", "finalizers": ["f"], "managedFields": [{"manager": "m"}],
                "labels": {"a": "b"}, "annotations": {"x": "y"}})
        );
        assert!(o.get(&["status"]).is_none());
        // Named only by generateName: it stays.
        let mut unnamed = obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "c-"}}),
        );
        reset(&mut unnamed);
        assert_eq!(unnamed.str_at(&["metadata", "generateName"]), Some("c-"));
        let with = |v: &str| {
            obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "annotations": {RESTORE_STATUS_ANNOTATION: v}}}))
        };
        assert!(restores_status(&with("true"), false));
        assert!(!restores_status(&with("false"), true));
        assert!(restores_status(&with(" True "), false));
        assert!(!restores_status(&with("FALSE"), true));
        assert!(restores_status(&with("foo"), true));
        assert!(!restores_status(&with(""), false));
        let without =
            obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert!(restores_status(&without, true));
        assert!(!restores_status(&without, false));
    }
}
