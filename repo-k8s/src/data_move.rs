//! CSI snapshot data movement (Velero's "snapshot data mover"): the objects the server and
//! the node-agent make, with Velero's fields and labels, so Velero's tools read them.
//!
//! A backup of a claim on this path:
//! 1. the server takes a `snapshot.storage.k8s.io/v1` VolumeSnapshot of the claim
//!    ([`volume_snapshot`]) and waits until it is ready;
//! 2. it creates a DataUpload ([`data_upload`]); a node-agent accepts it and *exposes* the
//!    snapshot: its content is moved into the server's namespace (a VolumeSnapshot and
//!    VolumeSnapshotContent named after the DataUpload), a temporary claim is made from it,
//!    and a data-mover pod mounts that claim ([`mover_pod`]);
//! 3. the node-agent of the node that runs the pod backs the volume up into the
//!    repository, tagged with the source claim's identity (so the parent is the previous
//!    backup of the same claim), then deletes what it made, the snapshot with it.
//!
//! A restore of it: the claim is restored without its volume, selecting one labelled
//! [`DYNAMIC_PV_RESTORE_LABEL`] ([`select_moved_volume`]); a DataDownload ([`data_download`])
//! makes a temporary claim like it, a data-mover pod writes the data into its volume, and
//! the node-agent then hands that volume to the restored claim (Velero's PV re-binding).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::object::Object;
use crate::podvolumes::objects::{
    BACKUP_NAME_LABEL, BACKUP_UID_LABEL, PVC_UID_LABEL, RESTORE_NAME_LABEL, RESTORE_UID_LABEL,
};
use crate::restore::valid_label_value;
use crate::velero::{
    Backup, CsiSnapshotSpec, DataDownload, DataDownloadSpec, DataUpload, DataUploadSpec,
    ObjectMeta, OwnerReference, Restore, TargetVolumeSpec,
};

/// The claim selector's label that ties a restored claim to the volume its DataDownload
/// fills (Velero's).
pub const DYNAMIC_PV_RESTORE_LABEL: &str = "velero.io/dynamic-pv-restore";
/// Label of the objects a node-agent makes for a DataUpload (their value: its name).
pub const DATA_UPLOAD_LABEL: &str = "velero.io/data-upload";
/// Label of the objects a node-agent makes for a DataDownload.
pub const DATA_DOWNLOAD_LABEL: &str = "velero.io/data-download";
/// Velero's default `csiSnapshotTimeout`: how long a snapshot may take to become ready.
pub const DEFAULT_SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "velero.io/v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        ..Default::default()
    }
}

fn generate_name(prefix: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([("generateName".to_string(), json!(format!("{prefix}-")))])
}

/// The VolumeSnapshot `backup` takes of claim `ns/claim` with class `class`.
pub fn volume_snapshot(backup: &Backup, ns: &str, claim: &str, class: &str) -> Value {
    let b = &backup.metadata;
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"generateName": format!("velero-{claim}-"), "namespace": ns,
            "labels": {BACKUP_NAME_LABEL: valid_label_value(&b.name),
                BACKUP_UID_LABEL: b.uid.clone().unwrap_or_default()}},
        "spec": {"volumeSnapshotClassName": class,
            "source": {"persistentVolumeClaimName": claim}}})
}

/// What the server knows of a claim it snapshotted.
pub struct Snapshotted<'a> {
    pub claim: &'a Object,
    /// The VolumeSnapshot's name (in the claim's namespace).
    pub snapshot: &'a str,
    pub snapshot_class: &'a str,
    pub driver: &'a str,
}

/// The DataUpload that moves `s` into the repository of `backup`'s storage location.
/// `timeout` bounds how long exposing the snapshot may take (Velero's `operationTimeout`).
pub fn data_upload(backup: &Backup, s: &Snapshotted, timeout: &str) -> DataUpload {
    let b = &backup.metadata;
    let backup_uid = b.uid.clone().unwrap_or_default();
    let claim_uid = s.claim.str_at(&["metadata", "uid"]).unwrap_or_default();
    let labels = BTreeMap::from([
        (BACKUP_NAME_LABEL.to_string(), valid_label_value(&b.name)),
        (BACKUP_UID_LABEL.to_string(), backup_uid.clone()),
        (PVC_UID_LABEL.to_string(), claim_uid.to_string()),
    ]);
    DataUpload {
        api_version: "velero.io/v2alpha1".into(),
        kind: "DataUpload".into(),
        metadata: ObjectMeta {
            namespace: b.namespace.clone(),
            labels,
            owner_references: vec![owner("Backup", &b.name, &backup_uid)],
            other: generate_name(&b.name),
            ..Default::default()
        },
        spec: DataUploadSpec {
            snapshot_type: "CSI".into(),
            csi_snapshot: Some(CsiSnapshotSpec {
                volume_snapshot: s.snapshot.into(),
                storage_class: s
                    .claim
                    .str_at(&["spec", "storageClassName"])
                    .unwrap_or_default()
                    .into(),
                snapshot_class: s.snapshot_class.into(),
                driver: s.driver.into(),
            }),
            source_pvc: s.claim.name().into(),
            data_mover: String::new(),
            backup_storage_location: backup.spec.storage_location.clone().unwrap_or_default(),
            source_namespace: s.claim.namespace().unwrap_or_default().into(),
            operation_timeout: timeout.into(),
            ..Default::default()
        },
        status: None,
    }
}

/// The DataDownload that writes the data `upload` moved into claim `ns/claim`, restored by
/// `restore`.
pub fn data_download(
    restore: &Restore,
    upload: &DataUpload,
    ns: &str,
    timeout: &str,
) -> DataDownload {
    let r = &restore.metadata;
    let restore_uid = r.uid.clone().unwrap_or_default();
    let labels = BTreeMap::from([
        (RESTORE_NAME_LABEL.to_string(), valid_label_value(&r.name)),
        (RESTORE_UID_LABEL.to_string(), restore_uid.clone()),
    ]);
    let status = upload.status.clone().unwrap_or_default();
    DataDownload {
        api_version: "velero.io/v2alpha1".into(),
        kind: "DataDownload".into(),
        metadata: ObjectMeta {
            namespace: r.namespace.clone(),
            labels,
            owner_references: vec![owner("Restore", &r.name, &restore_uid)],
            other: generate_name(&r.name),
            ..Default::default()
        },
        spec: DataDownloadSpec {
            target_volume: TargetVolumeSpec {
                pvc: upload.spec.source_pvc.clone(),
                pv: String::new(),
                namespace: ns.into(),
            },
            backup_storage_location: upload.spec.backup_storage_location.clone(),
            data_mover: upload.spec.data_mover.clone(),
            snapshot_id: status.snapshot_id,
            source_namespace: upload.spec.source_namespace.clone(),
            operation_timeout: timeout.into(),
            node_os: status.node_os,
            snapshot_size: status.progress.map(|p| p.total_bytes).unwrap_or_default(),
            ..Default::default()
        },
        status: None,
    }
}

/// The selector value tying restored claim `ns/claim` to its volume (`nonce` makes it
/// unique to one restore).
pub fn dynamic_pv_label(ns: &str, claim: &str, nonce: &str) -> String {
    valid_label_value(&format!("{ns}.{claim}.{nonce}"))
}

/// Prepares a restored claim whose data a DataDownload brings: no volume, no data source,
/// and a selector that only the volume the data mover fills matches (so no provisioner
/// makes it an empty one meanwhile).
pub fn select_moved_volume(claim: &mut Object, label: &str) {
    let spec = claim.map_at_mut(&["spec"]);
    spec.remove("volumeName");
    spec.remove("dataSource");
    spec.remove("dataSourceRef");
    let labels = claim.map_at_mut(&["spec", "selector", "matchLabels"]);
    labels.insert(DYNAMIC_PV_RESTORE_LABEL.into(), json!(label));
}

/// The temporary claim a node-agent makes for a DataUpload (from its exposed snapshot
/// `snapshot`) or a DataDownload (empty): named `name` in namespace `ns`, like `source`
/// (its class, size and access modes).
pub fn mover_claim(
    name: &str,
    ns: &str,
    label: (&str, &str),
    source: &Value,
    snapshot: Option<&str>,
) -> Value {
    let spec = &source["spec"];
    let size = spec["resources"]["requests"]["storage"]
        .as_str()
        .or(source["status"]["capacity"]["storage"].as_str())
        .unwrap_or("1Gi");
    let mut claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns, "labels": {label.0: label.1}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    if spec["storageClassName"].is_string() {
        claim["spec"]["storageClassName"] = spec["storageClassName"].clone();
    }
    if spec["volumeMode"].is_string() {
        claim["spec"]["volumeMode"] = spec["volumeMode"].clone();
    }
    if let Some(s) = snapshot {
        claim["spec"]["dataSource"] =
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": s});
    }
    claim
}

/// The data-mover pod that mounts temporary claim `name` (the same name) at `/<name>`;
/// it only holds the volume while the node-agent of its node moves the data.
pub fn mover_pod(name: &str, ns: &str, label: (&str, &str), image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {label.0: label.1}},
        "spec": {"restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [{"name": name, "image": image,
                "command": ["/node-agent", "pause"],
                "volumeMounts": [{"name": name, "mountPath": format!("/{name}")}]}],
            "volumes": [{"name": name, "persistentVolumeClaim": {"claimName": name}}]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data-0", "namespace": "shop", "uid": "c1"},
                "spec": {"storageClassName": "fast", "volumeName": "pvc-c1",
                    "dataSource": {"kind": "VolumeSnapshot", "name": "s"},
                    "resources": {"requests": {"storage": "2Gi"}}}}),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn uploads_downloads_and_claims_carry_what_velero_puts_there() {
        let mut backup = Backup::new("nightly", "velero", Default::default());
        backup.metadata.uid = Some("b1".into());
        backup.spec.storage_location = Some("default".into());
        let c = claim();
        let s = Snapshotted {
            claim: &c,
            snapshot: "velero-data-0-x",
            snapshot_class: "csi-snap",
            driver: "csi.example.com",
        };
        let up = data_upload(&backup, &s, "10m0s");
        let v = serde_json::to_value(&up).unwrap();
        assert_eq!(v["metadata"]["generateName"], "nightly-");
        assert_eq!(v["metadata"]["labels"][PVC_UID_LABEL], "c1");
        assert_eq!(v["spec"]["csiSnapshot"]["storageClass"], "fast");
        assert_eq!(v["spec"]["sourceNamespace"], "shop");
        assert_eq!(v["spec"]["backupStorageLocation"], "default");
        let mut restore = Restore::new("r1", "velero", Default::default());
        restore.metadata.uid = Some("r-uid".into());
        let mut done = up.clone();
        done.status = Some(crate::velero::DataUploadStatus {
            snapshot_id: "abc".into(),
            ..Default::default()
        });
        let down = data_download(&restore, &done, "shop-2", "10m0s");
        assert_eq!(down.spec.target_volume.pvc, "data-0");
        assert_eq!(down.spec.target_volume.namespace, "shop-2");
        assert_eq!(down.spec.snapshot_id, "abc");
        assert_eq!(down.metadata.labels[RESTORE_UID_LABEL], "r-uid");

        let mut restored = claim();
        select_moved_volume(&mut restored, "shop.data-0.ab12c");
        assert!(restored.get(&["spec", "volumeName"]).is_none());
        assert!(restored.get(&["spec", "dataSource"]).is_none());
        assert_eq!(
            restored.str_at(&["spec", "selector", "matchLabels", DYNAMIC_PV_RESTORE_LABEL]),
            Some("shop.data-0.ab12c")
        );
        let temp = mover_claim(
            "d1",
            "velero",
            (DATA_UPLOAD_LABEL, "d1"),
            &serde_json::to_value(claim().as_value()).unwrap(),
            Some("d1"),
        );
        assert_eq!(temp["spec"]["storageClassName"], "fast");
        assert_eq!(temp["spec"]["resources"]["requests"]["storage"], "2Gi");
        assert_eq!(temp["spec"]["dataSource"]["name"], "d1");
        assert_eq!(dynamic_pv_label("a", "b", "c"), "a.b.c");
    }
}
