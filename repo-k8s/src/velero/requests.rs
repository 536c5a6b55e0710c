//! The request kinds (`velero.io/v1`): DeleteBackupRequest, ServerStatusRequest and
//! DownloadRequest (Velero `pkg/apis/velero/v1/{delete_backup_request,server_status_request,
//! download_request}_types.go`). A client creates one; the server processes it once and
//! answers in its status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::velero_kind;

velero_kind!(
    /// A request to delete a backup: its objects in the cluster, its files and snapshots.
    DeleteBackupRequest,
    DeleteBackupRequestSpec,
    DeleteBackupRequestStatus,
    "deletebackuprequests",
    []
);

/// Which backup to delete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteBackupRequestSpec {
    pub backup_name: String,
}

/// A DeleteBackupRequest's `status.phase` (Velero's `DeleteBackupRequestPhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeleteBackupRequestPhase {
    #[default]
    New,
    InProgress,
    Processed,
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteBackupRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DeleteBackupRequestPhase>,
    /// What failed; empty when the backup is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
}

velero_kind!(
    /// A request for the server's version and plugins (`velero version`).
    ServerStatusRequest,
    ServerStatusRequestSpec,
    ServerStatusRequestStatus,
    "serverstatusrequests",
    ["ssr"]
);

/// Nothing: the request asks for everything there is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServerStatusRequestSpec {}

/// A ServerStatusRequest's `status.phase` (Velero's `ServerStatusRequestPhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ServerStatusRequestPhase {
    #[default]
    New,
    Processed,
}

/// The answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatusRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ServerStatusRequestPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginInfo>>,
}

/// A plugin the server runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PluginInfo {
    pub name: String,
    /// What it is (`ObjectStore`, `BackupItemAction`, ...).
    pub kind: String,
}

velero_kind!(
    /// A request for a URL from which to download a file of a backup or restore (its log,
    /// contents, results, ...).
    DownloadRequest,
    DownloadRequestSpec,
    DownloadRequestStatus,
    "downloadrequests",
    []
);

/// What to download.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DownloadRequestSpec {
    pub target: DownloadTarget,
}

/// A file, and the backup or restore it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DownloadTarget {
    pub kind: DownloadTargetKind,
    /// The Backup's or Restore's name.
    pub name: String,
}

/// Which file of a backup or restore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DownloadTargetKind {
    // The default only because every spec has one (Velero has none); not a doc comment, so
    // that the CRD lists the values in Velero's order.
    #[default]
    BackupLog,
    BackupContents,
    BackupVolumeSnapshots,
    BackupItemOperations,
    BackupResourceList,
    BackupResults,
    RestoreLog,
    RestoreResults,
    RestoreResourceList,
    RestoreItemOperations,
    #[serde(rename = "CSIBackupVolumeSnapshots")]
    CsiBackupVolumeSnapshots,
    #[serde(rename = "CSIBackupVolumeSnapshotContents")]
    CsiBackupVolumeSnapshotContents,
    BackupVolumeInfos,
    RestoreVolumeInfo,
}

/// A DownloadRequest's `status.phase` (Velero's `DownloadRequestPhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DownloadRequestPhase {
    #[default]
    New,
    Processed,
}

/// The answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DownloadRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DownloadRequestPhase>,
    /// A pre-signed URL of the file.
    #[serde(
        rename = "downloadURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub download_url: String,
    /// When the URL stops working and the request may be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_as_velero_writes_them_round_trip() {
        let text = r#"
apiVersion: velero.io/v1
kind: DownloadRequest
metadata: {name: b1-log, namespace: velero}
spec:
  target: {kind: CSIBackupVolumeSnapshots, name: b1}
status:
  phase: Processed
  downloadURL: https://store.example/b1?sig=x
  expiration: "2025-01-02T01:10:00Z"
"#;
        let d: DownloadRequest = yaml_serde::from_str(text).unwrap();
        assert_eq!(
            d.spec.target.kind,
            DownloadTargetKind::CsiBackupVolumeSnapshots
        );
        let status = d.status.as_ref().unwrap();
        assert_eq!(status.download_url, "https://store.example/b1?sig=x");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["spec"]["target"]["kind"], "CSIBackupVolumeSnapshots");
        assert_eq!(
            json["status"]["downloadURL"],
            "https://store.example/b1?sig=x"
        );
        assert_eq!(serde_json::from_value::<DownloadRequest>(json).unwrap(), d);

        let text = r#"
apiVersion: velero.io/v1
kind: ServerStatusRequest
metadata: {name: s1, namespace: velero}
spec: {}
status:
  phase: Processed
  serverVersion: v1.18.1
  plugins: [{name: velero.io/aws, kind: ObjectStore}]
"#;
        let s: ServerStatusRequest = yaml_serde::from_str(text).unwrap();
        assert_eq!(
            s.status.as_ref().unwrap().plugins.as_ref().unwrap()[0].kind,
            "ObjectStore"
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap()["spec"],
            serde_json::json!({})
        );

        let text = r#"
apiVersion: velero.io/v1
kind: DeleteBackupRequest
metadata: {name: b1-x, namespace: velero}
spec: {backupName: b1}
status: {phase: InProgress}
"#;
        let r: DeleteBackupRequest = yaml_serde::from_str(text).unwrap();
        assert_eq!(r.spec.backup_name, "b1");
        let phase = r.status.as_ref().unwrap().phase;
        assert_eq!(phase, Some(DeleteBackupRequestPhase::InProgress));
    }
}
