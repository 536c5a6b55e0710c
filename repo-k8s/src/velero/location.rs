//! BackupStorageLocation (`velero.io/v1`, Velero
//! `pkg/apis/velero/v1/backupstoragelocation_types.go`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::velero_kind;

velero_kind!(
    /// Where backups are stored (a bucket and prefix of an object store), and whether it
    /// is reachable.
    BackupStorageLocation,
    BackupStorageLocationSpec,
    BackupStorageLocationStatus,
    "backupstoragelocations",
    ["bsl"]
);

/// The object store, its credentials, and how often it is synced and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageLocationSpec {
    /// The object store plugin (`aws`, `gcp`, `azure`, ...).
    pub provider: String,
    /// The provider's settings (`region`, `s3Url`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// A key of a Secret (in the location's namespace) holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<SecretKeySelector>,
    pub object_storage: ObjectStorageLocation,
    /// The location used when a backup names none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<BackupStorageLocationAccessMode>,
    /// How often backups in the store are synced into the cluster (a Go duration; `0s`:
    /// never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_sync_period: Option<String>,
    /// How often the store is checked (a Go duration; `0s`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_frequency: Option<String>,
}

/// `spec.objectStorage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorageLocation {
    pub bucket: String,
    /// The path in the bucket under which Velero's objects are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A CA bundle (PEM, base64 as Go writes bytes) for the store's TLS. Velero prefers
    /// `caCertRef`; the two are exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub ca_cert: Option<String>,
    /// A key of a Secret (in the location's namespace) holding the CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<SecretKeySelector>,
}

/// A key of a Secret (Kubernetes' SecretKeySelector).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    pub key: String,
    /// The Secret's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Whether a missing Secret or key is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// What may be done with a location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BackupStorageLocationAccessMode {
    /// Backups are read and restored from, never written or deleted.
    ReadOnly,
    /// Backups are made, read and deleted.
    ReadWrite,
}

/// A BackupStorageLocation's `status.phase` (Velero's `BackupStorageLocationPhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BackupStorageLocationPhase {
    /// The store answered the last check.
    Available,
    /// Not checked yet, or the last check failed (`status.message` says why).
    #[default]
    Unavailable,
}

/// What the last checks and syncs found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageLocationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupStorageLocationPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validation_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Deprecated by Velero, no longer written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_synced_revision: String,
    /// Deprecated by Velero for `spec.accessMode`, unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<BackupStorageLocationAccessMode>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Velero's own example (tilt-resources/examples), and a status it writes.
    #[test]
    fn a_location_as_velero_writes_it_round_trips() {
        let text = r#"
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata:
  creationTimestamp: null
  labels:
    component: velero
  name: default
  namespace: velero
spec:
  config:
    region: minio
    s3ForcePathStyle: "true"
    s3Url: http://minio.velero.svc:9000
  objectStorage:
    bucket: velero
    caCertRef: {name: minio-ca, key: ca.crt}
  provider: aws
  default: true
  accessMode: ReadOnly
status:
  phase: Available
  lastValidationTime: "2025-01-02T01:00:00Z"
"#;
        let l: BackupStorageLocation = yaml_serde::from_str(text).unwrap();
        assert_eq!(l.spec.object_storage.bucket, "velero");
        assert_eq!(l.spec.config["s3ForcePathStyle"], "true");
        assert_eq!(
            l.spec.object_storage.ca_cert_ref.as_ref().unwrap().name,
            "minio-ca"
        );
        assert!(l.spec.default);
        assert_eq!(
            l.spec.access_mode,
            Some(BackupStorageLocationAccessMode::ReadOnly)
        );
        let status = l.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(BackupStorageLocationPhase::Available));
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["spec"]["objectStorage"]["caCertRef"]["key"], "ca.crt");
        assert_eq!(
            serde_json::from_value::<BackupStorageLocation>(json).unwrap(),
            l
        );
    }
}
