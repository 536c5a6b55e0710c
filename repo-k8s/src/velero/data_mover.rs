//! DataUpload and DataDownload (`velero.io/v2alpha1`, Velero
//! `pkg/apis/velero/v2alpha1/data_{upload,download}_types.go`): the snapshot data mover's
//! objects. A DataUpload moves a CSI snapshot of one claim into a backup repository; a
//! DataDownload writes such data into a new volume on restore. Field for field Velero's.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::{is_zero, velero_kind};
use super::pod_volume::{DataMoveOperationProgress, PodVolumeBackupPhase};

velero_kind!(
    /// A move of one claim's CSI snapshot into a backup repository, and its status.
    DataUpload,
    DataUploadSpec,
    DataUploadStatus,
    "datauploads",
    [],
    "v2alpha1"
);

velero_kind!(
    /// A move of one volume's data from a backup repository into a new volume.
    DataDownload,
    DataDownloadSpec,
    DataDownloadStatus,
    "datadownloads",
    [],
    "v2alpha1"
);

/// The phases of a DataUpload or DataDownload (the same as a PodVolumeBackup's: New,
/// Accepted, Prepared, InProgress, Canceling, Canceled, Completed, Failed).
pub type DataMovePhase = PodVolumeBackupPhase;

/// The OS of the node that moves the data (Velero's `NodeOS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeOs {
    Linux,
    Windows,
    Auto,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What to move and where.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataUploadSpec {
    /// `CSI`.
    pub snapshot_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi_snapshot: Option<CsiSnapshotSpec>,
    /// The claim whose snapshot this is.
    #[serde(rename = "sourcePVC")]
    pub source_pvc: String,
    /// Empty or `velero` for the built-in data mover.
    #[serde(
        default,
        rename = "datamover",
        skip_serializing_if = "String::is_empty"
    )]
    pub data_mover: String,
    pub backup_storage_location: String,
    pub source_namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_mover_config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancel: bool,
    /// A Go duration (`10m0s`).
    #[serde(default)]
    pub operation_timeout: String,
}

/// The CSI snapshot to move.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CsiSnapshotSpec {
    /// The VolumeSnapshot's name (in the source namespace).
    pub volume_snapshot: String,
    pub storage_class: String,
    pub snapshot_class: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
}

/// Where a DataUpload is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataUploadStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DataMovePhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(
        default,
        rename = "snapshotID",
        skip_serializing_if = "String::is_empty"
    )]
    pub snapshot_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_mover_result: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<DataMoveOperationProgress>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incremental_bytes: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(default, rename = "nodeOS", skip_serializing_if = "Option::is_none")]
    pub node_os: Option<NodeOs>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub accepted_by_node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_timestamp: Option<String>,
}

/// What to restore and into which volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataDownloadSpec {
    pub target_volume: TargetVolumeSpec,
    pub backup_storage_location: String,
    #[serde(
        default,
        rename = "datamover",
        skip_serializing_if = "String::is_empty"
    )]
    pub data_mover: String,
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    pub source_namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_mover_config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancel: bool,
    #[serde(default)]
    pub operation_timeout: String,
    #[serde(default, rename = "nodeOS", skip_serializing_if = "Option::is_none")]
    pub node_os: Option<NodeOs>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub snapshot_size: i64,
}

/// The volume a DataDownload writes into.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetVolumeSpec {
    pub pvc: String,
    pub pv: String,
    pub namespace: String,
}

/// Where a DataDownload is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataDownloadStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DataMovePhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<DataMoveOperationProgress>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub accepted_by_node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_timestamp: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::velero::{resource, Kind};

    // Objects as Velero writes them read back field for field.
    #[test]
    fn velero_data_uploads_and_downloads_read_and_write_back() {
        let text = r#"
apiVersion: velero.io/v2alpha1
kind: DataUpload
metadata: {name: b1-x7k2p, namespace: velero, labels: {velero.io/backup-name: b1}}
spec:
  snapshotType: CSI
  csiSnapshot: {volumeSnapshot: velero-data-0-abcd, storageClass: fast, snapshotClass: csi-snapclass, driver: hostpath.csi.k8s.io}
  sourcePVC: data-0
  datamover: velero
  backupStorageLocation: default
  sourceNamespace: shop
  operationTimeout: 10m0s
status:
  phase: Completed
  snapshotID: 1a2b3c
  progress: {totalBytes: 100, bytesDone: 100}
  node: node-a
  nodeOS: linux
"#;
        let d: DataUpload = yaml_serde::from_str(text).unwrap();
        assert_eq!(d.spec.source_pvc, "data-0");
        assert_eq!(
            d.spec.csi_snapshot.as_ref().unwrap().driver,
            "hostpath.csi.k8s.io"
        );
        assert_eq!(
            d.status.as_ref().unwrap().phase,
            Some(DataMovePhase::Completed)
        );
        let back = serde_json::to_value(&d).unwrap();
        assert_eq!(back["spec"]["sourcePVC"], "data-0");
        assert_eq!(back["status"]["snapshotID"], "1a2b3c");
        assert_eq!(back["status"]["nodeOS"], "linux");
        let r = resource::<DataUpload>();
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.plural.as_str()),
            ("velero.io", "v2alpha1", "datauploads")
        );
        assert_eq!(DataDownload::VERSION, "v2alpha1");
        let dd = DataDownload::new("r1-a", "velero", DataDownloadSpec::default());
        assert_eq!(dd.api_version, "velero.io/v2alpha1");
        let text = r#"
apiVersion: velero.io/v2alpha1
kind: DataDownload
metadata: {name: r1-a, namespace: velero}
spec: {targetVolume: {pvc: data-0, pv: "", namespace: shop}, backupStorageLocation: default, snapshotID: 1a2b3c, sourceNamespace: shop, operationTimeout: 10m0s}
"#;
        let dd: DataDownload = yaml_serde::from_str(text).unwrap();
        assert_eq!(dd.spec.target_volume.pvc, "data-0");
    }
}
