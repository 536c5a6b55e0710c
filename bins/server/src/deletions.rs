//! Deleting backups, as Velero does it: a DeleteBackupRequest goes New, InProgress,
//! Processed (with its errors); the backup's snapshots are forgotten in the repository (the
//! maintenance job frees their data), the Restores made from it and its Backup object are
//! deleted. Expired backups get a DeleteBackupRequest from the garbage collector.

use std::time::SystemTime;

use repo_k8s::cluster::Created;
use repo_k8s::velero::{
    resource, Backup, BackupPhase, BackupStorageLocationAccessMode, DeleteBackupRequest,
    DeleteBackupRequestPhase, Kind, Restore,
};
use repo_k8s::Object;
use serde_json::{json, Value};

use crate::backups::Controller;
use crate::typed;

/// Labels Velero puts on a DeleteBackupRequest.
pub const BACKUP_NAME_LABEL: &str = "velero.io/backup-name";
pub const BACKUP_UID_LABEL: &str = "velero.io/backup-uid";

impl Controller<'_> {
    /// Runs a DeleteBackupRequest that waits (phase empty or New).
    pub fn run_deletion(&self, req: &DeleteBackupRequest) -> Option<DeleteBackupRequestPhase> {
        let phase = req.status.as_ref().and_then(|s| s.phase);
        if !matches!(phase, None | Some(DeleteBackupRequestPhase::New)) {
            return None;
        }
        let r = resource::<DeleteBackupRequest>();
        let name = &req.metadata.name;
        let patch = |status: Value| {
            let _ = self.cluster.merge_patch(
                &r,
                Some(&self.namespace),
                name,
                &json!({ "status": status }),
            );
        };
        patch(json!({"phase": "InProgress"}));
        let backup_name = &req.spec.backup_name;
        let schedule = self
            .cluster
            .get(&resource::<Backup>(), Some(&self.namespace), backup_name)
            .ok()
            .flatten()
            .as_ref()
            .and_then(typed::<Backup>)
            .map(|b| crate::backups::schedule_of(&b.metadata).to_string())
            .unwrap_or_default();
        self.metrics
            .inc("velero_backup_deletion_attempt_total", &schedule);
        let errors = self.delete_backup(backup_name);
        patch(json!({"phase": "Processed", "errors": errors}));
        if errors.is_empty() {
            self.metrics
                .inc("velero_backup_deletion_success_total", &schedule);
        } else {
            self.metrics
                .inc("velero_backup_deletion_failure_total", &schedule);
            let message = format!(
                "backup {backup_name} was not deleted: {}",
                errors.join("; ")
            );
            self.event(
                req,
                crate::events::Level::Warning,
                "DeletionFailed",
                &message,
            );
        }
        Some(DeleteBackupRequestPhase::Processed)
    }

    /// Deletes backup `name` everywhere; returns what failed.
    fn delete_backup(&self, name: &str) -> Vec<String> {
        let ns = Some(self.namespace.as_str());
        let backups = resource::<Backup>();
        let object = match self.cluster.get(&backups, ns, name) {
            Ok(o) => o,
            Err(e) => return vec![e.to_string()],
        };
        let backup: Option<Backup> = object.as_ref().and_then(typed);
        if let Some(b) = &backup {
            if b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::InProgress) {
                return vec![format!(
                    "backup {name} is InProgress but no backup of that name runs on this server (a server that stopped left it so); the next server to lead marks it Failed, ask again then"
                )];
            }
        }
        let location_name = backup
            .as_ref()
            .and_then(|b| b.spec.storage_location.clone());
        let location = match self.location(location_name.as_deref()) {
            Ok(l) => l,
            Err(e) => return vec![e],
        };
        if location.spec.access_mode == Some(BackupStorageLocationAccessMode::ReadOnly) {
            return vec![format!(
                "cannot delete backup because backup storage location {} is currently in read-only mode",
                location.metadata.name
            )];
        }
        let mut errors = Vec::new();
        match self.open_repository(&location) {
            Ok(repo) => {
                let tag = format!("{}={name}", repo_k8s::catalog::BACKUP_NAME_TAG);
                let filter = repo_core::SnapshotFilter {
                    tags: vec![tag],
                    ..Default::default()
                };
                match repo.list_snapshots_lenient(&filter) {
                    Ok((snapshots, _)) => {
                        for (id, _) in snapshots {
                            if let Err(e) = repo.delete_snapshot(&id) {
                                errors.push(format!(
                                    "forgetting snapshot {id} of backup {name}: {e}"
                                ));
                            }
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            Err(e) => errors.push(e),
        }
        if !errors.is_empty() {
            // The Backup object stays while its data does: nothing is lost half-way.
            return errors;
        }
        let restores = resource::<Restore>();
        for o in self.cluster.list(&restores, ns).unwrap_or_default() {
            let made_from = typed::<Restore>(&o)
                .and_then(|r| r.spec.backup_name)
                .as_deref()
                == Some(name);
            if made_from {
                if let Err(e) = self.cluster.delete(&restores, ns, o.name()) {
                    errors.push(e.to_string());
                }
            }
        }
        if let Err(e) = self.cluster.delete(&backups, ns, name) {
            errors.push(e.to_string());
        }
        errors
    }

    /// The garbage collector: a DeleteBackupRequest for each Backup expired at `now` that
    /// has none waiting and whose location may be written. Returns the backups it asked to
    /// delete.
    pub fn collect_expired(&self, now: SystemTime) -> Vec<String> {
        let ns = Some(self.namespace.as_str());
        let backups = self
            .cluster
            .list(&resource::<Backup>(), ns)
            .unwrap_or_default();
        let requests: Vec<DeleteBackupRequest> = self
            .cluster
            .list(&resource::<DeleteBackupRequest>(), ns)
            .unwrap_or_default()
            .iter()
            .filter_map(typed)
            .collect();
        let mut asked = Vec::new();
        for b in backups.iter().filter_map(typed::<Backup>) {
            let status = b.status.clone().unwrap_or_default();
            let expired = status
                .expiration
                .as_deref()
                .and_then(repo_core::time::parse_rfc3339)
                .is_some_and(|t| t <= now);
            let busy = matches!(
                status.phase,
                None | Some(BackupPhase::New | BackupPhase::InProgress | BackupPhase::Deleting)
            );
            let pending = requests.iter().any(|r| {
                r.spec.backup_name == b.metadata.name
                    && !matches!(
                        r.status.as_ref().and_then(|s| s.phase),
                        Some(DeleteBackupRequestPhase::Processed)
                    )
            });
            if !expired || busy || pending {
                continue;
            }
            let read_only = self
                .location(b.spec.storage_location.as_deref())
                .is_ok_and(|l| {
                    l.spec.access_mode == Some(BackupStorageLocationAccessMode::ReadOnly)
                });
            if read_only {
                continue;
            }
            let req = json!({"apiVersion": "velero.io/v1", "kind": DeleteBackupRequest::KIND,
                "metadata": {"generateName": format!("{}-", b.metadata.name), "namespace": self.namespace,
                    "labels": {BACKUP_NAME_LABEL: repo_k8s::restore::valid_label_value(&b.metadata.name),
                        BACKUP_UID_LABEL: b.metadata.uid.clone().unwrap_or_default()}},
                "spec": {"backupName": b.metadata.name}});
            let Ok(o) = Object::from_value(req, "gc") else {
                continue;
            };
            if let Ok(Created::Created(_)) =
                self.cluster.create(&resource::<DeleteBackupRequest>(), &o)
            {
                asked.push(b.metadata.name.clone());
            }
        }
        asked
    }
}
