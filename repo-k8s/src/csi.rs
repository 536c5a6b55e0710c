//! CSI snapshots as Velero takes them: which VolumeSnapshotClass snapshots a claim
//! (`pkg/util/csi/volume_snapshot.go` `GetVolumeSnapshotClass`).
//!
//! In order:
//! 1. the claim's annotation `velero.io/csi-volumesnapshot-class` names the class (which
//!    must be for the claim's driver);
//! 2. else the Backup's annotation `velero.io/csi-volumesnapshot-class_<driver>`;
//! 3. else, among the classes of the driver: the first labelled
//!    `velero.io/csi-volumesnapshot-class`, else the first annotated
//!    `snapshot.storage.kubernetes.io/is-default-class`, else the only one.
//!
//! A class named in an annotation that is missing or for another driver is passed over (as
//! Velero does, which only logs it), and the error at the end says why each was.

use crate::object::Object;

/// The label that picks a driver's class for Velero (any value).
pub const CLASS_LABEL: &str = "velero.io/csi-volumesnapshot-class";
/// The claim's annotation naming its class; also the Backup's annotation prefix
/// (`<prefix>_<driver>`).
pub const CLASS_ANNOTATION: &str = "velero.io/csi-volumesnapshot-class";
/// Kubernetes' default class of a driver.
pub const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";

fn driver(class: &Object) -> &str {
    class.str_at(&["driver"]).unwrap_or("")
}

fn annotation<'a>(o: &'a Object, key: &str) -> Option<&'a str> {
    o.get(&["metadata", "annotations", key])
        .and_then(|v| v.as_str())
}

/// The class named `name` (any case, as Velero compares) if it is for `provisioner`.
fn named<'a>(
    classes: &'a [Object],
    name: &str,
    provisioner: &str,
    whose: &str,
) -> Result<&'a Object, String> {
    match classes.iter().find(|c| c.name().eq_ignore_ascii_case(name)) {
        Some(c) if driver(c).eq_ignore_ascii_case(provisioner) => Ok(c),
        Some(c) => Err(format!(
            "Incorrect VolumeSnapshotClass {} is not for driver {provisioner}{whose}",
            c.name()
        )),
        None => Err(format!(
            "No CSI VolumeSnapshotClass found with name {name} for driver {provisioner}{whose}"
        )),
    }
}

/// The VolumeSnapshotClass (its name) that snapshots claim `pvc`, whose volume's CSI driver
/// is `provisioner`, for the Backup named `backup` with annotations `backup_annotations`.
pub fn snapshot_class(
    provisioner: &str,
    classes: &[Object],
    backup: &str,
    backup_annotations: &std::collections::BTreeMap<String, String>,
    pvc: &Object,
) -> Result<String, String> {
    let mut passed_over = Vec::new();
    if let Some(name) = annotation(pvc, CLASS_ANNOTATION) {
        let whose = format!(" for PVC {}", pvc.name());
        match named(classes, name, provisioner, &whose) {
            Ok(c) => return Ok(c.name().to_string()),
            Err(e) => passed_over.push(e),
        }
    }
    let key = format!("{CLASS_ANNOTATION}_{}", provisioner.to_lowercase());
    if let Some(name) = backup_annotations.get(&key) {
        let whose = format!(" for backup {backup}");
        match named(classes, name, provisioner, &whose) {
            Ok(c) => return Ok(c.name().to_string()),
            Err(e) => passed_over.push(e),
        }
    }
    let of_driver: Vec<&Object> = classes
        .iter()
        .filter(|c| driver(c) == provisioner)
        .collect();
    let labelled = of_driver.iter().find(|c| c.label(CLASS_LABEL).is_some());
    let default = of_driver
        .iter()
        .find(|c| annotation(c, DEFAULT_CLASS_ANNOTATION).is_some());
    let only = (of_driver.len() == 1).then(|| &of_driver[0]);
    if let Some(c) = labelled.or(default).or(only) {
        return Ok(c.name().to_string());
    }
    let mut why = format!(
        "failed to get VolumeSnapshotClass for provisioner {provisioner}: ensure that the desired VolumeSnapshotClass has the {CLASS_LABEL} label or {DEFAULT_CLASS_ANNOTATION} annotation, and that its driver matches the StorageClass provisioner"
    );
    for p in passed_over {
        why.push_str("; ");
        why.push_str(&p);
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn class(name: &str, driver: &str, labelled: bool, default: bool) -> Object {
        let mut v = json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": name}, "driver": driver, "deletionPolicy": "Delete"});
        if labelled {
            v["metadata"]["labels"] = json!({CLASS_LABEL: "true"});
        }
        if default {
            v["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        Object::from_value(v, "test").unwrap()
    }

    fn pvc(class: Option<&str>) -> Object {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "shop"}, "spec": {}});
        if let Some(c) = class {
            v["metadata"]["annotations"] = json!({CLASS_ANNOTATION: c});
        }
        Object::from_value(v, "test").unwrap()
    }

    // Velero TestGetVolumeSnapshotClass's cases: the claim's annotation, then the
    // Backup's, then the label, the default annotation, the only class; errors.
    #[test]
    fn the_class_is_chosen_as_velero_chooses_it() {
        let classes = [
            class("aws-labelled", "ebs.csi.aws.com", true, false),
            class("aws-plain", "ebs.csi.aws.com", false, false),
            class("aws-default", "ebs.csi.aws.com", false, true),
            class("gce-only", "pd.csi.storage.gke.io", false, false),
            class("azure-default", "disk.csi.azure.com", false, true),
            class("azure-other", "disk.csi.azure.com", false, false),
            class("two-a", "two.csi", false, false),
            class("two-b", "two.csi", false, false),
        ];
        let none = BTreeMap::new();
        let pick = |driver: &str, annotations: &BTreeMap<String, String>, p: &Object| {
            snapshot_class(driver, &classes, "b1", annotations, p)
        };
        assert_eq!(
            pick("ebs.csi.aws.com", &none, &pvc(None)).unwrap(),
            "aws-labelled"
        );
        assert_eq!(
            pick("disk.csi.azure.com", &none, &pvc(None)).unwrap(),
            "azure-default"
        );
        assert_eq!(
            pick("pd.csi.storage.gke.io", &none, &pvc(None)).unwrap(),
            "gce-only"
        );
        assert_eq!(
            pick("ebs.csi.aws.com", &none, &pvc(Some("AWS-PLAIN"))).unwrap(),
            "aws-plain"
        );
        let backup: BTreeMap<String, String> = [(
            format!("{CLASS_ANNOTATION}_ebs.csi.aws.com"),
            "aws-default".to_string(),
        )]
        .into();
        assert_eq!(
            pick("ebs.csi.aws.com", &backup, &pvc(None)).unwrap(),
            "aws-default"
        );
        assert_eq!(
            pick("ebs.csi.aws.com", &backup, &pvc(Some("aws-plain"))).unwrap(),
            "aws-plain",
            "the claim's annotation comes first"
        );
        // A claim naming another driver's class falls back, as Velero does.
        assert_eq!(
            pick("ebs.csi.aws.com", &none, &pvc(Some("gce-only"))).unwrap(),
            "aws-labelled"
        );
        let e = pick("two.csi", &none, &pvc(Some("missing"))).unwrap_err();
        assert!(
            e.starts_with("failed to get VolumeSnapshotClass for provisioner two.csi"),
            "{e}"
        );
        assert!(e.contains("No CSI VolumeSnapshotClass found with name missing for driver two.csi for PVC data"), "{e}");
        let e = pick("nobody.csi", &none, &pvc(None)).unwrap_err();
        assert!(e.contains("provisioner nobody.csi"), "{e}");
    }
}
