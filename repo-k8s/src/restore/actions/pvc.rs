//! PersistentVolumeClaims (Velero `pvc_action.go`): the annotations of the old binding,
//! provisioning and snapshot go; a claim that was Bound brings its PersistentVolume.

use serde_json::Value;

use super::Needed;
use crate::object::Object;

/// Annotations that describe the old claim's binding, provisioner, node and snapshot.
pub(crate) const STALE_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    "velero.io/volume-snapshot-name",
    "velero.io/data-upload-name",
];

/// `status` is the claim's as backed up (the item has none by now).
pub(super) fn execute(pvc: &mut Object, status: Option<&Value>) -> Vec<Needed> {
    if let Some(Value::Object(a)) = pvc.get_mut(&["metadata", "annotations"]) {
        for k in STALE_ANNOTATIONS {
            a.remove(*k);
        }
    }
    let bound = status.and_then(|s| s.get("phase")) == Some(&Value::from("Bound"));
    match pvc.str_at(&["spec", "volumeName"]) {
        Some(pv) if bound && !pv.is_empty() => vec![Needed {
            resource: "persistentvolumes",
            name: pv.to_string(),
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    fn claim(annotations: Value, phase: &str, volume: &str) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "namespace": "ns", "annotations": annotations},
            "spec": {"volumeName": volume}, "status": {"phase": phase}}))
    }

    /// Velero pkg/restore/actions/pvc_action_test.go TestPVCActionExecute and
    /// TestAddPVFromPVCActionExecute.
    #[test]
    fn stale_annotations_go_and_a_bound_claim_brings_its_volume() {
        let mut c = claim(
            json!({"volume.kubernetes.io/selected-node": "n1", "pv.kubernetes.io/bind-completed": "yes", "other-anno": "x"}),
            "Bound",
            "bound-pv",
        );
        let status = c.take(&["status"]);
        let needed = execute(&mut c, status.as_ref());
        assert_eq!(
            c.get(&["metadata", "annotations"]).unwrap(),
            &json!({"other-anno": "x"})
        );
        assert_eq!(
            needed,
            [Needed {
                resource: "persistentvolumes",
                name: "bound-pv".into()
            }]
        );
        let mut pending = claim(json!({}), "Pending", "pending-pv");
        let status = pending.take(&["status"]);
        assert!(execute(&mut pending, status.as_ref()).is_empty());
        let mut unnamed = claim(json!({}), "Bound", "");
        let status = unnamed.take(&["status"]);
        assert!(execute(&mut unnamed, status.as_ref()).is_empty());
    }
}
