//! The PodVolumeBackup the server creates for each volume it backs up, with Velero's fields,
//! labels and tags (`pkg/podvolume/backupper.go` `newPodVolumeBackup`), so Velero's tools
//! see them as they see Velero's.

use std::collections::BTreeMap;

use crate::object::Object;
use crate::velero::{
    Backup, ObjectMeta, ObjectReference, OwnerReference, PodVolumeBackup, PodVolumeBackupSpec,
    PodVolumeRestore, PodVolumeRestoreSpec, Restore, UploaderType,
};

use super::select::PodVolume;

/// Label: the backup a PodVolumeBackup belongs to (its name, made a valid label value).
pub const BACKUP_NAME_LABEL: &str = "velero.io/backup-name";
/// Label: the backup's UID.
pub const BACKUP_UID_LABEL: &str = "velero.io/backup-uid";
/// Label: the UID of the claim a volume is, so a later backup of the same claim (through
/// another pod) finds its parent.
pub const PVC_UID_LABEL: &str = "velero.io/pvc-uid";
/// Annotation: the claim's name (Velero's restore reads it to re-provision the claim's PV).
pub const PVC_NAME_ANNOTATION: &str = "velero.io/pvc-name";

/// The PodVolumeBackup for `volume` of `pod`, a volume of `backup` (in the server's
/// namespace). `claim_uid` is the UID of the volume's claim, if it is one.
pub fn pod_volume_backup(
    backup: &Backup,
    pod: &Object,
    volume: &PodVolume,
    claim_uid: Option<&str>,
) -> PodVolumeBackup {
    let b = &backup.metadata;
    let backup_uid = b.uid.clone().unwrap_or_default();
    let pod_uid = pod
        .get(&["metadata", "uid"])
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string();
    let node = pod
        .get(&["spec", "nodeName"])
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string();
    let pod_ns = pod.namespace().unwrap_or_default().to_string();
    let mut labels = BTreeMap::from([
        (
            BACKUP_NAME_LABEL.to_string(),
            crate::restore::valid_label_value(&b.name),
        ),
        (BACKUP_UID_LABEL.to_string(), backup_uid.clone()),
    ]);
    let mut annotations = BTreeMap::new();
    let mut tags = BTreeMap::from([
        ("backup".to_string(), b.name.clone()),
        ("backup-uid".to_string(), backup_uid.clone()),
        ("pod".to_string(), pod.name().to_string()),
        ("pod-uid".to_string(), pod_uid.clone()),
        ("ns".to_string(), pod_ns.clone()),
        ("volume".to_string(), volume.name.clone()),
    ]);
    if let (Some(claim), Some(uid)) = (&volume.claim, claim_uid) {
        labels.insert(PVC_UID_LABEL.into(), uid.to_string());
        annotations.insert(PVC_NAME_ANNOTATION.into(), claim.clone());
        tags.insert("pvc-uid".into(), uid.to_string());
    }
    PodVolumeBackup {
        api_version: "velero.io/v1".into(),
        kind: "PodVolumeBackup".into(),
        metadata: ObjectMeta {
            namespace: b.namespace.clone(),
            labels,
            annotations,
            owner_references: vec![OwnerReference {
                api_version: "velero.io/v1".into(),
                kind: "Backup".into(),
                name: b.name.clone(),
                uid: backup_uid,
                controller: Some(true),
                ..Default::default()
            }],
            other: BTreeMap::from([(
                "generateName".to_string(),
                serde_json::Value::String(format!("{}-", b.name)),
            )]),
            ..Default::default()
        },
        spec: PodVolumeBackupSpec {
            node,
            pod: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(pod_ns),
                name: Some(pod.name().to_string()),
                uid: Some(pod_uid),
                ..Default::default()
            },
            volume: volume.name.clone(),
            backup_storage_location: backup.spec.storage_location.clone().unwrap_or_default(),
            repo_identifier: String::new(),
            uploader_type: UploaderType::Unset,
            tags,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Label: the Restore a PodVolumeRestore belongs to (its name, made a valid label value).
pub const RESTORE_NAME_LABEL: &str = "velero.io/restore-name";
/// Label: the Restore's UID (the name of the done file).
pub const RESTORE_UID_LABEL: &str = "velero.io/restore-uid";
/// Label: the restored pod's UID.
pub const POD_UID_LABEL: &str = "velero.io/pod-uid";

/// The PodVolumeRestore that writes the data of `pvb` (a volume as backed up) into the
/// same volume of `pod` (restored), for `restore` (Velero's `newPodVolumeRestore`).
pub fn pod_volume_restore(
    restore: &Restore,
    pvb: &PodVolumeBackup,
    pod: &Object,
    claim_uid: Option<&str>,
) -> PodVolumeRestore {
    let r = &restore.metadata;
    let restore_uid = r.uid.clone().unwrap_or_default();
    let pod_uid = pod
        .get(&["metadata", "uid"])
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string();
    let mut labels = BTreeMap::from([
        (
            RESTORE_NAME_LABEL.to_string(),
            crate::restore::valid_label_value(&r.name),
        ),
        (RESTORE_UID_LABEL.to_string(), restore_uid.clone()),
        (POD_UID_LABEL.to_string(), pod_uid.clone()),
    ]);
    if let Some(uid) = claim_uid {
        labels.insert(PVC_UID_LABEL.into(), uid.to_string());
    }
    let status = pvb.status.clone().unwrap_or_default();
    PodVolumeRestore {
        api_version: "velero.io/v1".into(),
        kind: "PodVolumeRestore".into(),
        metadata: ObjectMeta {
            namespace: r.namespace.clone(),
            labels,
            owner_references: vec![OwnerReference {
                api_version: "velero.io/v1".into(),
                kind: "Restore".into(),
                name: r.name.clone(),
                uid: restore_uid,
                controller: Some(true),
                ..Default::default()
            }],
            other: BTreeMap::from([(
                "generateName".to_string(),
                serde_json::Value::String(format!("{}-", r.name)),
            )]),
            ..Default::default()
        },
        spec: PodVolumeRestoreSpec {
            pod: ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace().map(str::to_string),
                name: Some(pod.name().to_string()),
                uid: Some(pod_uid),
                ..Default::default()
            },
            volume: pvb.spec.volume.clone(),
            backup_storage_location: pvb.spec.backup_storage_location.clone(),
            repo_identifier: String::new(),
            uploader_type: UploaderType::Unset,
            snapshot_id: status.snapshot_id.clone(),
            source_namespace: pvb.spec.pod.namespace.clone().unwrap_or_default(),
            snapshot_size: status.progress.map(|p| p.total_bytes).unwrap_or_default(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Velero's newPodVolumeBackup: fields, labels, tags, owner, generateName.
    #[test]
    fn a_pod_volume_backup_has_veleros_fields() {
        let mut backup = Backup::default();
        backup.metadata.name = "nightly".into();
        backup.metadata.namespace = Some("velero".into());
        backup.metadata.uid = Some("b-uid".into());
        backup.spec.storage_location = Some("default".into());
        let pod = Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "db-0", "namespace": "shop", "uid": "p-uid"},
                "spec": {"nodeName": "node-a"}}),
            "test",
        )
        .unwrap();
        let volume = PodVolume {
            name: "data".into(),
            claim: Some("data-db-0".into()),
        };
        let pvb = pod_volume_backup(&backup, &pod, &volume, Some("c-uid"));
        let v = serde_json::to_value(&pvb).unwrap();
        assert_eq!(
            (v["apiVersion"].as_str(), v["kind"].as_str()),
            (Some("velero.io/v1"), Some("PodVolumeBackup"))
        );
        assert_eq!(v["metadata"]["generateName"], "nightly-");
        assert_eq!(v["metadata"]["namespace"], "velero");
        assert_eq!(
            v["metadata"]["labels"],
            json!({"velero.io/backup-name": "nightly", "velero.io/backup-uid": "b-uid", "velero.io/pvc-uid": "c-uid"})
        );
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"velero.io/pvc-name": "data-db-0"})
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Backup");
        assert_eq!(v["metadata"]["ownerReferences"][0]["uid"], "b-uid");
        assert_eq!(v["spec"]["node"], "node-a");
        assert_eq!(
            v["spec"]["pod"],
            json!({"kind": "Pod", "namespace": "shop", "name": "db-0", "uid": "p-uid"})
        );
        assert_eq!(v["spec"]["volume"], "data");
        assert_eq!(v["spec"]["backupStorageLocation"], "default");
        assert_eq!(v["spec"]["uploaderType"], "");
        assert_eq!(v["spec"]["repoIdentifier"], "");
        assert_eq!(
            v["spec"]["tags"],
            json!({"backup": "nightly", "backup-uid": "b-uid", "pod": "db-0", "pod-uid": "p-uid",
                "ns": "shop", "volume": "data", "pvc-uid": "c-uid"})
        );
    }
}
