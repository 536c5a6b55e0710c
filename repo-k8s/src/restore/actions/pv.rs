//! PersistentVolumes (Velero `restore.go`, the PV branch and `resetVolumeBindingInfo`): a
//! volume whose data the restore brings back another way (pod volume or CSI data), or whose
//! reclaim policy is `Delete` (its disk went with the old claim), is not restored: its claim
//! loses `volumeName` and gets a new volume from its storage class. Other volumes are
//! restored with their old binding cleared, so the restored claim binds again.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::Object;

/// What the restore does with a backed-up PersistentVolume.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Create it (binding reset, claim namespace mapped).
    Restore,
    /// Leave it out; the claim is provisioned again. With why.
    Provision(&'static str),
}

/// Decides, and for a restored volume resets its binding. `data_restored`: the backup holds
/// the volume's data, restored into a new volume.
pub(crate) fn execute(
    pv: &mut Object,
    data_restored: bool,
    mappings: &BTreeMap<String, String>,
) -> Decision {
    if data_restored {
        return Decision::Provision(
            "its data is in the backup and is restored into a new volume for its claim",
        );
    }
    if pv.str_at(&["spec", "persistentVolumeReclaimPolicy"]) == Some("Delete") {
        return Decision::Provision(
            "reclaim policy Delete and no volume data in the backup: its claim gets a new volume from its storage class",
        );
    }
    let old = pv.str_at(&["spec", "claimRef", "namespace"]);
    if let Some(new) = old.and_then(|ns| mappings.get(ns)).cloned() {
        pv.map_at_mut(&["spec", "claimRef"])
            .insert("namespace".into(), new.into());
    }
    reset_binding(pv);
    Decision::Restore
}

/// Velero's `resetVolumeBindingInfo`: the old claim's uid and version and the binding
/// annotations go; `pv.kubernetes.io/provisioned-by` and a claim's `volumeName` stay.
pub(crate) fn reset_binding(o: &mut Object) {
    if let Some(Value::Object(c)) = o.get_mut(&["spec", "claimRef"]) {
        c.remove("uid");
        c.remove("resourceVersion");
    }
    if let Some(Value::Object(a)) = o.get_mut(&["metadata", "annotations"]) {
        a.remove("pv.kubernetes.io/bind-completed");
        a.remove("pv.kubernetes.io/bound-by-controller");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    fn volume(policy: &str) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv-1", "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes", "pv.kubernetes.io/provisioned-by": "csi.example.com"}},
            "spec": {"persistentVolumeReclaimPolicy": policy,
                "claimRef": {"namespace": "ns-1", "name": "data", "uid": "u", "resourceVersion": "7"}}}))
    }

    /// Velero pkg/restore/restore_test.go TestRestorePVWithVolumeInfo ("with ClaimPolicy as
    /// Delete", "as Retain", "with PVB") and Test_resetVolumeBindingInfo.
    #[test]
    fn delete_or_restored_data_provisions_again_and_retain_restores_unbound() {
        let maps = [("ns-1".to_string(), "new-1".to_string())].into();
        let mut pv = volume("Delete");
        assert!(matches!(
            execute(&mut pv, false, &maps),
            Decision::Provision(_)
        ));
        let mut pv = volume("Retain");
        assert!(matches!(
            execute(&mut pv, true, &maps),
            Decision::Provision(_)
        ));
        let mut pv = volume("Retain");
        assert_eq!(execute(&mut pv, false, &maps), Decision::Restore);
        let v = pv.as_value();
        assert_eq!(
            v["spec"]["claimRef"],
            json!({"namespace": "new-1", "name": "data"})
        );
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"pv.kubernetes.io/provisioned-by": "csi.example.com"})
        );
    }
}
