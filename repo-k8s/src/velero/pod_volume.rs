//! PodVolumeBackup and PodVolumeRestore (`velero.io/v1`, Velero
//! `pkg/apis/velero/v1/pod_volume_{backup_types,restore_type}.go`): one volume of one pod,
//! copied by the node agent on the pod's node (file system backup).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::{is_zero, velero_kind};

velero_kind!(
    /// A copy of one pod volume's files into a backup repository, and its status.
    PodVolumeBackup,
    PodVolumeBackupSpec,
    PodVolumeBackupStatus,
    "podvolumebackups",
    []
);

velero_kind!(
    /// A restore of one pod volume's files from a backup repository, and its status.
    PodVolumeRestore,
    PodVolumeRestoreSpec,
    PodVolumeRestoreStatus,
    "podvolumerestores",
    []
);

/// Which volume, where it runs, and which repository it goes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeBackupSpec {
    /// The node the pod runs on, whose agent does the copy.
    pub node: String,
    pub pod: ObjectReference,
    /// The volume's name in the pod.
    pub volume: String,
    pub backup_storage_location: String,
    pub repo_identifier: String,
    #[serde(default)]
    pub uploader_type: UploaderType,
    /// Tags put on the snapshot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploader_settings: Option<BTreeMap<String, String>>,
    /// Set to cancel a copy in progress.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
}

/// Which snapshot goes into which volume, and from which repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeRestoreSpec {
    pub pod: ObjectReference,
    /// The volume's name in the pod.
    pub volume: String,
    pub backup_storage_location: String,
    pub repo_identifier: String,
    #[serde(default)]
    pub uploader_type: UploaderType,
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    /// The pod's namespace when it was backed up (before namespace mapping).
    pub source_namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploader_settings: Option<BTreeMap<String, String>>,
    /// Set to cancel a restore in progress.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
    /// The snapshot's logical size in bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub snapshot_size: i64,
}

/// A reference to an object (Kubernetes' ObjectReference); here, the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// The program that copies a volume's files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum UploaderType {
    /// Kopia, Velero's default.
    #[serde(rename = "kopia")]
    Kopia,
    /// Restic, deprecated by Velero.
    #[serde(rename = "restic")]
    Restic,
    /// Not recorded (`""`), as in objects made before Velero recorded it; Velero reads it
    /// as restic.
    #[default]
    #[serde(rename = "")]
    Unset,
}

/// A PodVolumeBackup's `status.phase` (Velero's `PodVolumeBackupPhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PodVolumeBackupPhase {
    /// Not taken yet.
    #[default]
    New,
    /// A node agent took it.
    Accepted,
    /// The volume is ready to be read.
    Prepared,
    /// Copying.
    InProgress,
    /// `spec.cancel` is set; stopping.
    Canceling,
    /// Stopped by `spec.cancel`.
    Canceled,
    /// Done.
    Completed,
    /// Stopped by an error (`status.message` says which).
    Failed,
}

/// A PodVolumeRestore's `status.phase` (Velero's `PodVolumeRestorePhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PodVolumeRestorePhase {
    /// Not taken yet.
    #[default]
    New,
    /// A node agent took it.
    Accepted,
    /// The volume is ready to be written.
    Prepared,
    /// Copying.
    InProgress,
    /// `spec.cancel` is set; stopping.
    Canceling,
    /// Stopped by `spec.cancel`.
    Canceled,
    /// Done.
    Completed,
    /// Stopped by an error (`status.message` says which).
    Failed,
}

/// What happened to a pod volume backup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeBackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodVolumeBackupPhase>,
    /// The volume's path in the node agent's pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The snapshot made in the repository.
    #[serde(
        rename = "snapshotID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub snapshot_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<DataMoveOperationProgress>,
    /// Bytes new or changed since the last backup.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incremental_bytes: i64,
    /// When a node agent took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_timestamp: Option<String>,
}

/// What happened to a pod volume restore.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeRestoreStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodVolumeRestorePhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<DataMoveOperationProgress>,
    /// When a node agent took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_timestamp: Option<String>,
    /// The node whose agent does the restore.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// `status.progress`: bytes copied so far, of how many.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataMoveOperationProgress {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_bytes: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_done: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_volume_kinds_as_velero_writes_them_round_trip() {
        let text = r#"
apiVersion: velero.io/v1
kind: PodVolumeBackup
metadata: {name: b1-x7k2p, namespace: velero}
spec:
  node: worker-1
  pod: {kind: Pod, namespace: shop, name: db-0, uid: 0b7e}
  volume: data
  backupStorageLocation: default
  repoIdentifier: ""
  uploaderType: kopia
  tags: {backup: b1}
status:
  phase: Completed
  snapshotID: 5f1c
  progress: {totalBytes: 100, bytesDone: 100}
"#;
        let b: PodVolumeBackup = yaml_serde::from_str(text).unwrap();
        assert_eq!(b.spec.uploader_type, UploaderType::Kopia);
        assert_eq!(b.spec.pod.name.as_deref(), Some("db-0"));
        let status = b.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(PodVolumeBackupPhase::Completed));
        assert_eq!(status.snapshot_id, "5f1c");
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["status"]["snapshotID"], "5f1c");
        assert_eq!(serde_json::from_value::<PodVolumeBackup>(json).unwrap(), b);

        // An unrecorded uploader is `""`, and is written back, as Go writes it.
        let text = r#"
apiVersion: velero.io/v1
kind: PodVolumeRestore
metadata: {name: r1-q9z, namespace: velero}
spec:
  pod: {kind: Pod, namespace: shop-copy, name: db-0}
  volume: data
  backupStorageLocation: default
  repoIdentifier: ""
  uploaderType: ""
  snapshotID: 5f1c
  sourceNamespace: shop
  snapshotSize: 100
status: {phase: InProgress, node: worker-2}
"#;
        let r: PodVolumeRestore = yaml_serde::from_str(text).unwrap();
        assert_eq!(r.spec.uploader_type, UploaderType::Unset);
        assert_eq!(r.spec.snapshot_id, "5f1c");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["spec"]["uploaderType"], "");
        assert_eq!(json["spec"]["snapshotID"], "5f1c");
        assert_eq!(serde_json::from_value::<PodVolumeRestore>(json).unwrap(), r);
    }
}
