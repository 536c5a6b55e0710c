//! Sync, for disaster recovery into a new cluster (Velero's backup sync controller): every
//! `backupSyncPeriod` (a minute by default; `0s`: never) the backups in an Available
//! location's repository that have no Backup object get one, Completed or PartiallyFailed
//! from their stored results; and Completed or PartiallyFailed Backup objects of the
//! location whose backups are gone from it are removed. A fresh cluster pointed at the same
//! bucket thus lists the old backups and can restore them.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use repo_k8s::velero::{
    resource, Backup, BackupPhase, BackupStorageLocation, BackupStorageLocationPhase, Kind,
};
use repo_k8s::Object;
use serde_json::json;

use crate::backups::{is_due, kube_time, Controller};
use crate::typed;

/// Velero's default sync period.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(60);

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Backup objects made for backups found in a repository.
    pub created: Vec<String>,
    /// Backup objects removed because their backup is gone.
    pub removed: Vec<String>,
    pub problems: Vec<String>,
}

impl Controller<'_> {
    /// Syncs every Available location that is due at `now`.
    pub fn sync(&self, now: SystemTime) -> Synced {
        let mut out = Synced::default();
        let ns = Some(self.namespace.as_str());
        let locations = self
            .cluster
            .list(&resource::<BackupStorageLocation>(), ns)
            .unwrap_or_default();
        for l in locations.iter().filter_map(typed::<BackupStorageLocation>) {
            let status = l.status.clone().unwrap_or_default();
            if status.phase != Some(BackupStorageLocationPhase::Available) || !due(&l, now) {
                continue;
            }
            if let Err(e) = self.sync_location(&l, &mut out) {
                out.problems
                    .push(format!("syncing location {}: {e}", l.metadata.name));
            }
            let _ = self.cluster.merge_patch(
                &resource::<BackupStorageLocation>(),
                ns,
                &l.metadata.name,
                &json!({"status": {"lastSyncedTime": kube_time(now)}}),
            );
        }
        out
    }

    fn sync_location(&self, l: &BackupStorageLocation, out: &mut Synced) -> Result<(), String> {
        let ns = Some(self.namespace.as_str());
        let repo = self.open_repository(l)?;
        let stored = repo_k8s::catalog::list_backups(&repo).map_err(|e| e.to_string())?;
        let objects: Vec<Backup> = self
            .cluster
            .list(&resource::<Backup>(), ns)
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(typed)
            .collect();
        let have: BTreeSet<&str> = objects.iter().map(|b| b.metadata.name.as_str()).collect();
        let in_repo: BTreeSet<&str> = stored.backups.iter().map(|b| b.name.as_str()).collect();
        let location = &l.metadata.name;
        for b in stored
            .backups
            .iter()
            .filter(|b| !have.contains(b.name.as_str()))
        {
            let results = repo_k8s::catalog::results(&repo, &b.snapshot).unwrap_or_default();
            let phase = if results.errors.is_empty() {
                BackupPhase::Completed
            } else {
                BackupPhase::PartiallyFailed
            };
            let start = repo_core::time::parse_rfc3339(&b.time).map(kube_time);
            let expiration = b
                .expires
                .as_deref()
                .and_then(repo_core::time::parse_rfc3339)
                .map(kube_time);
            // The Backup as it was asked for, when the control plane made it.
            let asked = repo_k8s::catalog::backup_object(&repo, &b.snapshot)
                .ok()
                .flatten();
            let mut labels = asked
                .as_ref()
                .map(|a| a.metadata.labels.clone())
                .unwrap_or_default();
            labels.insert(
                "velero.io/storage-location".into(),
                repo_k8s::restore::valid_label_value(location),
            );
            let annotations = asked
                .as_ref()
                .map(|a| a.metadata.annotations.clone())
                .unwrap_or_default();
            let mut spec = asked.map(|a| a.spec).unwrap_or_default();
            spec.storage_location = Some(location.clone());
            let object = json!({"apiVersion": "velero.io/v1", "kind": Backup::KIND,
                "metadata": {"name": b.name, "namespace": self.namespace,
                    "labels": labels, "annotations": annotations},
                "spec": spec,
                "status": {"phase": phase.to_string(), "version": 1, "formatVersion": repo_k8s::backup::FORMAT_VERSION,
                    "startTimestamp": start, "completionTimestamp": start, "expiration": expiration,
                    "warnings": results.warnings.len(), "errors": results.errors.len(),
                    "progress": {"totalItems": b.items, "itemsBackedUp": b.items}}});
            let created = Object::from_value(object, &b.name)
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    self.cluster
                        .create(&resource::<Backup>(), &o)
                        .map_err(|e| e.to_string())
                });
            match created {
                Ok(repo_k8s::cluster::Created::Created(made)) => {
                    // Velero's CRDs have no status subresource, but a server may drop the
                    // status on create: set it again.
                    if made.get(&["status", "phase"]).is_none() {
                        let status = json!({"status": {"phase": phase.to_string()}});
                        let _ =
                            self.cluster
                                .merge_patch(&resource::<Backup>(), ns, &b.name, &status);
                    }
                    out.created.push(b.name.clone());
                }
                Ok(_) => {}
                Err(e) => out.problems.push(e),
            }
        }
        for b in &objects {
            let of_here = b.spec.storage_location.as_deref() == Some(location);
            let finished = matches!(
                b.status.as_ref().and_then(|s| s.phase),
                Some(BackupPhase::Completed | BackupPhase::PartiallyFailed)
            );
            if of_here && finished && !in_repo.contains(b.metadata.name.as_str()) {
                match self
                    .cluster
                    .delete(&resource::<Backup>(), ns, &b.metadata.name)
                {
                    Ok(_) => out.removed.push(b.metadata.name.clone()),
                    Err(e) => out.problems.push(e.to_string()),
                }
            }
        }
        Ok(())
    }
}

/// Whether a location's sync is due: never synced, or its period has passed.
fn due(l: &BackupStorageLocation, now: SystemTime) -> bool {
    let last = l
        .status
        .as_ref()
        .and_then(|s| s.last_synced_time.as_deref());
    is_due(
        l.spec.backup_sync_period.as_deref(),
        DEFAULT_SYNC_PERIOD,
        last,
        now,
    )
}
