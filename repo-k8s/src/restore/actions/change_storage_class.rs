//! Change storage class (Velero `change_storageclass_action.go`, opt-in): PVs, PVCs and
//! StatefulSets' volume claim templates whose storage class is a key of the mapping get the
//! mapped class. The new class must exist when the item is restored; the executor checks.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::Object;

/// Applies `mapping` (old class → new class) and returns the classes it set.
pub(super) fn execute(item: &mut Object, mapping: &BTreeMap<String, String>) -> Vec<String> {
    let mut set = Vec::new();
    let mut map = |class: &mut Value| {
        if let Some(new) = class.as_str().and_then(|c| mapping.get(c)) {
            set.push(new.clone());
            *class = Value::String(new.clone());
        }
    };
    if item.kind() == "StatefulSet" {
        if let Some(Value::Array(templates)) = item.get_mut(&["spec", "volumeClaimTemplates"]) {
            for t in templates {
                if let Some(class) = t.pointer_mut("/spec/storageClassName") {
                    map(class);
                }
            }
        }
    } else if let Some(class) = item.get_mut(&["spec", "storageClassName"]) {
        map(class);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/change_storageclass_action_test.go.
    #[test]
    fn mapped_classes_change_and_others_stay() {
        let mapping: BTreeMap<String, String> = [("sc1", "sc2"), ("sc3", "sc4")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        for kind in ["PersistentVolume", "PersistentVolumeClaim"] {
            let mut o = obj(
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": {"storageClassName": "sc1"}}),
            );
            assert_eq!(execute(&mut o, &mapping), ["sc2"]);
            assert_eq!(o.str_at(&["spec", "storageClassName"]), Some("sc2"));
            let mut none = obj(
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": {}}),
            );
            assert!(execute(&mut none, &mapping).is_empty());
            let mut other = obj(
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": {"storageClassName": "sc9"}}),
            );
            assert!(execute(&mut other, &mapping).is_empty());
            assert_eq!(other.str_at(&["spec", "storageClassName"]), Some("sc9"));
        }
        let mut sts = obj(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "sc1"}}, {"spec": {"storageClassName": "sc1"}}, {"spec": {}}]}}),
        );
        assert_eq!(execute(&mut sts, &mapping), ["sc2", "sc2"]);
        let classes: Vec<_> = sts
            .get(&["spec", "volumeClaimTemplates"])
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["spec"].get("storageClassName").cloned())
            .collect();
        assert_eq!(classes, [Some(json!("sc2")), Some(json!("sc2")), None]);
    }
}
