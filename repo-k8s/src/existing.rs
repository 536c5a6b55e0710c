//! Objects a restore finds already in the cluster (Velero `restore.go`, the existing-object
//! path, and `merge_service_account.go`): when one is the same as the backed-up one, what
//! `--existing-resource-policy update` sends to make it the same, and how service accounts
//! are merged whatever the policy. Pure functions over JSON: the executor applies them.

use serde_json::{Map, Value};

use crate::object::Object;
use crate::restore::RESTORE_LABELS;

/// The in-cluster object as a restore compares it: the metadata and status reset the
/// backed-up one went through, and the restore labels of `desired` (stale ones from an
/// earlier restore make no difference).
pub fn comparable(existing: &Object, desired: &Object) -> Object {
    let mut c = existing.clone();
    crate::restore::reset_metadata(&mut c);
    let labels = c.map_at_mut(&["metadata", "labels"]);
    for k in RESTORE_LABELS {
        match desired.label(k) {
            Some(v) => labels.insert(k.to_string(), v.into()),
            None => labels.remove(*k),
        };
    }
    drop_empty_labels(&mut c);
    c
}

/// `desired` without its status, which a restore writes separately (Velero compares
/// without it).
fn without_status(desired: &Object) -> Object {
    let mut d = desired.clone();
    d.remove(&["status"]);
    drop_empty_labels(&mut d);
    d
}

/// Whether the in-cluster object is the backed-up one (Velero: semantically equal after
/// the reset).
pub fn is_same(existing: &Object, desired: &Object) -> bool {
    comparable(existing, desired).as_value() == without_status(desired).as_value()
}

/// The JSON merge patch (RFC 7386) that makes the in-cluster object the backed-up one,
/// keys only the cluster has included (as nulls, so they go). The restore labels are always
/// in it. `None` when there is nothing to change.
pub fn update_patch(existing: &Object, desired: &Object) -> Option<Value> {
    let mut from = comparable(existing, desired);
    // Blank labels, so the patch carries the restore's (Velero's removeRestoreLabels).
    let labels = from.map_at_mut(&["metadata", "labels"]);
    for k in RESTORE_LABELS {
        labels.insert(k.to_string(), "".into());
    }
    merge_diff(
        &Value::Object(from.as_value().clone()),
        &Value::Object(without_status(desired).as_value().clone()),
    )
}

/// The patch that only sets the restore labels of `desired`.
pub fn labels_patch(desired: &Object) -> Option<Value> {
    let mut labels = Map::new();
    for k in RESTORE_LABELS {
        if let Some(v) = desired.label(k) {
            labels.insert(k.to_string(), v.into());
        }
    }
    if labels.is_empty() {
        return None;
    }
    Some(serde_json::json!({"metadata": {"labels": labels}}))
}

/// Velero's merge of a backed-up service account into the one in the cluster: secrets and
/// image pull secrets the cluster's lacks (by name) are appended, labels and annotations it
/// lacks are added (the cluster's values win). Returns the patch, `None` if nothing is
/// missing.
pub fn service_account_patch(existing: &Object, desired: &Object) -> Option<Value> {
    let from = comparable(existing, desired);
    let mut merged = from.clone();
    for list in ["secrets", "imagePullSecrets"] {
        let backed_up = desired.get(&[list]).and_then(Value::as_array);
        let Some(backed_up) = backed_up.filter(|l| !l.is_empty()) else {
            continue;
        };
        let m = merged.map_at_mut(&[]);
        let entry = m.entry(list).or_insert_with(|| Value::Array(Vec::new()));
        if !entry.is_array() {
            *entry = Value::Array(Vec::new());
        }
        let have = entry.as_array_mut().expect("made an array above");
        for r in backed_up {
            let name = r.get("name");
            if !have.iter().any(|h| h.get("name") == name) {
                have.push(r.clone());
            }
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(backed_up)) = desired.get(&["metadata", field]) {
            let m = merged.map_at_mut(&["metadata", field]);
            for (k, v) in backed_up {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    drop_empty_labels(&mut merged);
    merge_diff(
        &Value::Object(from.as_value().clone()),
        &Value::Object(merged.as_value().clone()),
    )
}

/// An empty labels map is no labels (so objects without labels compare equal).
fn drop_empty_labels(o: &mut Object) {
    let empty = o
        .get(&["metadata", "labels"])
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty);
    if empty {
        o.remove(&["metadata", "labels"]);
    }
}

/// The RFC 7386 merge patch from `from` to `to` (as evanphx/json-patch's CreateMergePatch
/// makes it): changed keys with their new values, nested mappings as patches of their own,
/// lists whole, keys only `from` has as null. `None` if they are equal.
pub fn merge_diff(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut patch = Map::new();
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv @ Value::Object(_)) if tv.is_object() => {
                        if let Some(p) = merge_diff(fv, tv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    _ => {
                        patch.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in f.keys().filter(|k| !t.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if from == to => None,
        _ => Some(to.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn o(v: Value) -> Object {
        Object::from_value(v, "t").unwrap()
    }

    fn in_cluster(data: Value, labels: Value) -> Object {
        o(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns", "uid": "u1", "resourceVersion": "9", "creationTimestamp": "t", "labels": labels},
            "data": data}))
    }

    fn desired(data: Value) -> Object {
        o(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns", "labels": {"velero.io/backup-name": "backup-1", "velero.io/restore-name": "restore-1"}},
            "data": data}))
    }

    /// Velero pkg/restore/restore_test.go TestRestoreItems ("update secret data and labels
    /// when secret exists in cluster and is not identical…, existing resource policy is
    /// update"): the backup's data replaces the cluster's, keys only the cluster has go,
    /// and the labels are the restore's.
    #[test]
    fn update_makes_the_object_equal_to_the_backup() {
        let existing = in_cluster(
            json!({"foo": "YmFy"}),
            json!({"velero.io/backup-name": "old", "velero.io/restore-name": "old"}),
        );
        let want = desired(json!({"key-1": "dmFsLTE="}));
        assert!(!is_same(&existing, &want));
        let patch = update_patch(&existing, &want).unwrap();
        assert_eq!(
            patch,
            json!({"data": {"key-1": "dmFsLTE=", "foo": null},
                "metadata": {"labels": {"velero.io/backup-name": "backup-1", "velero.io/restore-name": "restore-1"}}})
        );
    }

    /// TestRestoreItems ("update pod labels when pod exists in cluster and is identical…,
    /// policy is update" / "do not update … policy is none"): stale restore labels make no
    /// difference; update then sets only the labels.
    #[test]
    fn an_identical_object_differs_only_in_its_restore_labels() {
        let existing = in_cluster(
            json!({"k": "v"}),
            json!({"velero.io/backup-name": "foo", "velero.io/restore-name": "bar"}),
        );
        let want = desired(json!({"k": "v"}));
        assert!(is_same(&existing, &want));
        assert_eq!(
            update_patch(&existing, &want).unwrap(),
            json!({"metadata": {"labels": {"velero.io/backup-name": "backup-1", "velero.io/restore-name": "restore-1"}}})
        );
        assert_eq!(update_patch(&existing, &want), labels_patch(&want));
        // No labels on either side: the same.
        let bare = o(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "u", "labels": {}}}),
        );
        let want = o(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert!(is_same(&bare, &want));
    }

    /// Velero pkg/restore/merge_service_account_test.go TestMergeServiceAccountBasic and
    /// TestMergeMaps, and restore_test.go ("service account secrets and image pull secrets
    /// are restored when service account already exists in cluster").
    #[test]
    fn service_accounts_gain_what_the_backup_adds_and_keep_their_own() {
        let sa = |secrets: &[&str], pull: &[&str], labels: Value, annotations: Value| {
            let refs = |l: &[&str]| l.iter().map(|n| json!({"name": n})).collect::<Vec<_>>();
            o(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "sa", "namespace": "ns", "labels": labels, "annotations": annotations},
                "secrets": refs(secrets), "imagePullSecrets": refs(pull)}))
        };
        // Only the default token in the cluster, none in the backup: nothing to do.
        let existing = sa(&["default-token-abcde"], &[], json!({}), json!({}));
        assert_eq!(
            service_account_patch(&existing, &sa(&[], &[], json!({}), json!({}))),
            None
        );
        // Secrets appended after the cluster's, by name.
        let existing = sa(
            &["default-token-abcde", "my-secret", "sekrit"],
            &[],
            json!({}),
            json!({}),
        );
        let backup = sa(
            &["my-old-secret", "secrete", "sekrit"],
            &["pull-secret-1"],
            json!({}),
            json!({}),
        );
        let patch = service_account_patch(&existing, &backup).unwrap();
        assert_eq!(
            patch,
            json!({"secrets": [{"name": "default-token-abcde"}, {"name": "my-secret"}, {"name": "sekrit"},
                {"name": "my-old-secret"}, {"name": "secrete"}], "imagePullSecrets": [{"name": "pull-secret-1"}]})
        );
        // Labels and annotations: the union, the cluster's value on a clash.
        let existing = sa(
            &[],
            &[],
            json!({"l1": "cluster", "l2": "v"}),
            json!({"a1": "v"}),
        );
        let backup = sa(
            &[],
            &[],
            json!({"l1": "backup", "l3": "v"}),
            json!({"a2": "v"}),
        );
        assert_eq!(
            service_account_patch(&existing, &backup).unwrap(),
            json!({"metadata": {"labels": {"l3": "v"}, "annotations": {"a2": "v"}}})
        );
    }

    #[test]
    fn merge_diff_is_rfc_7386() {
        assert_eq!(merge_diff(&json!({"a": 1}), &json!({"a": 1})), None);
        assert_eq!(
            merge_diff(
                &json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": 1}),
                &json!({"a": {"b": 1, "c": 3}, "l": [1]})
            ),
            Some(json!({"a": {"c": 3}, "l": [1], "gone": null}))
        );
        assert_eq!(
            merge_diff(&json!(1), &json!({"x": 1})),
            Some(json!({"x": 1}))
        );
    }
}
