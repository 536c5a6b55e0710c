//! Pod volumes: the data in a pod's volumes, backed up file by file by the node-agent on
//! the pod's node (Velero's file-system backup), and restored into the restored pod's
//! volumes before its containers start.
//!
//! - [`select`]: which volumes of a pod are backed up, by Velero's rules;
//! - [`objects`]: the PodVolumeBackup and PodVolumeRestore objects the server creates;
//! - [`locate`]: where a volume is on its node (`/host_pods/<pod-uid>/volumes/*/<dir>`).

pub mod locate;
pub mod objects;
pub mod select;

/// Pod annotation: the volumes to back up (comma-separated), when volumes are not backed up
/// by default.
pub const BACKUP_VOLUMES: &str = "backup.velero.io/backup-volumes";
/// Pod annotation: the volumes not to back up (comma-separated), when they are by default.
pub const BACKUP_VOLUMES_EXCLUDES: &str = "backup.velero.io/backup-volumes-excludes";
