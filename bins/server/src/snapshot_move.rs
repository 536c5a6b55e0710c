//! The server's half of CSI snapshot data movement ([`repo_k8s::data_move`] has the whole
//! path):
//!
//! - backup: each claim sent to a snapshot (a volume policy's `snapshot`, or any claim not
//!   backed up file by file when the Backup moves snapshot data) gets a VolumeSnapshot of
//!   the class Velero would choose; once it is ready, a DataUpload that a node-agent moves
//!   into the repository. The backup waits for the DataUploads (cancelling them with the
//!   backup), stores them beside it as [`DATA_UPLOADS_FILE`], and deletes its snapshots
//!   whatever happened;
//! - restore: each claim with moved data is restored selecting a volume the data mover
//!   fills, and gets a DataDownload, waited for like the pod volume restores.
//!
//! Every claim that does not make it is an error of the backup or restore naming the claim
//! and what to do; a claim that cannot be snapshotted (not a CSI volume, or snapshot data
//! movement off) is a warning: its data is not in the backup.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use repo_k8s::data_move::{self, Snapshotted, DEFAULT_SNAPSHOT_TIMEOUT};
use repo_k8s::podvolumes::objects::{BACKUP_UID_LABEL, RESTORE_UID_LABEL};
use repo_k8s::podvolumes::select::PodVolume;
use repo_k8s::velero::{
    go_duration, go_duration_text, Backup, DataDownload, DataMovePhase, DataUpload, Restore,
};
use repo_k8s::{Discovery, Object, Resource};
use serde_json::Value;

use crate::backups::Controller;
use crate::pod_volumes::PodVolumes;

/// The file beside a backup listing its DataUploads as they ended.
pub const DATA_UPLOADS_FILE: &str = "datauploads.json";

/// A claim a backup sends to a snapshot: its namespace, the pod it was seen in, the volume.
pub type SnapshotWanted = (String, String, PodVolume);

fn built_in(plural: &str) -> Resource {
    Discovery::built_in()
        .resolve(plural)
        .expect("built in")
        .clone()
}

fn phase_of(status: Option<DataMovePhase>) -> DataMovePhase {
    status.unwrap_or_default()
}

fn ended(phase: DataMovePhase) -> bool {
    matches!(
        phase,
        DataMovePhase::Completed | DataMovePhase::Failed | DataMovePhase::Canceled
    )
}

pub(crate) fn upload_is_final(d: &DataUpload) -> bool {
    ended(phase_of(d.status.as_ref().and_then(|s| s.phase)))
}

pub(crate) fn download_is_final(d: &DataDownload) -> bool {
    ended(phase_of(d.status.as_ref().and_then(|s| s.phase)))
}

/// The DataUploads stored beside a backup that moved data (Completed, with a snapshot).
pub fn moved(
    repo: &repo_core::IndexedRepository,
    snapshot: &repo_core::ObjectId,
) -> Result<Vec<DataUpload>, String> {
    let Some(bytes) = repo_k8s::catalog::root_file(repo, snapshot, DATA_UPLOADS_FILE)
        .map_err(|e| e.to_string())?
    else {
        return Ok(Vec::new());
    };
    let all: Vec<DataUpload> = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the backup's {DATA_UPLOADS_FILE} is not readable: {e}"))?;
    Ok(all
        .into_iter()
        .filter(|d| {
            d.status.as_ref().is_some_and(|s| {
                s.phase == Some(DataMovePhase::Completed) && !s.snapshot_id.is_empty()
            })
        })
        .collect())
}

/// A snapshot the backup took and waits for.
struct Taking {
    claim: Object,
    snapshot: String,
    class: String,
    driver: String,
}

impl Controller<'_> {
    /// Takes a VolumeSnapshot of each claim in `wanted` and, as each becomes ready, creates
    /// its DataUpload; the DataUploads' names. Problems go into `out`.
    pub(crate) fn snapshot_claims(
        &self,
        backup: &Backup,
        wanted: &[SnapshotWanted],
        cancel: &dyn Fn() -> bool,
        out: &mut PodVolumes,
    ) -> Vec<String> {
        let move_data = backup
            .spec
            .snapshot_move_data
            .unwrap_or(self.default_snapshot_move_data);
        let mut seen = BTreeSet::new();
        let mut taking = Vec::new();
        let classes_resource = built_in("volumesnapshotclasses.snapshot.storage.k8s.io");
        let mut classes: Option<Result<Vec<Object>, String>> = None;
        for (ns, pod, v) in wanted {
            let what = format!("volume {} of pod {ns}/{pod}", v.name);
            let Some(claim_name) = &v.claim else {
                out.warnings.push((ns.clone(), format!(
                    "{what}: a volume policy asks for a snapshot, but only persistent volume claims can be snapshotted; its data is not in this backup (back it up with action fs-backup)")));
                continue;
            };
            if !seen.insert((ns.clone(), claim_name.clone())) {
                continue;
            }
            if !move_data {
                out.warnings.push((ns.clone(), format!(
                    "{what}: claim {ns}/{claim_name} is to be snapshotted, but the Backup does not move snapshot data (spec.snapshotMoveData) and cairn keeps no snapshots in the cluster; its data is not in this backup: set snapshotMoveData: true, or back it up with a volume policy's fs-backup")));
                continue;
            }
            let claim = match self.cluster.get(
                &built_in("persistentvolumeclaims"),
                Some(ns),
                claim_name,
            ) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    out.errors.push((ns.clone(), format!("{what}: claim {ns}/{claim_name} does not exist; nothing was snapshotted")));
                    continue;
                }
                Err(e) => {
                    out.errors.push((
                        ns.clone(),
                        format!("{what}: reading claim {ns}/{claim_name}: {e}"),
                    ));
                    continue;
                }
            };
            let pv = claim.str_at(&["spec", "volumeName"]).and_then(|pv| {
                self.cluster
                    .get(&built_in("persistentvolumes"), None, pv)
                    .ok()
                    .flatten()
            });
            let Some(driver) = pv
                .as_ref()
                .and_then(|pv| pv.str_at(&["spec", "csi", "driver"]))
            else {
                out.warnings.push((ns.clone(), format!(
                    "{what}: claim {ns}/{claim_name} is not bound to a CSI volume, so it cannot be snapshotted; its data is not in this backup: back it up file by file (a volume policy with action fs-backup)")));
                continue;
            };
            let classes = classes.get_or_insert_with(|| {
                self.cluster.list(&classes_resource, None).map_err(|e| format!(
                    "VolumeSnapshotClasses could not be listed ({e}); are the snapshot.storage.k8s.io CRDs installed?"))
            });
            let class = match classes {
                Ok(all) => repo_k8s::csi::snapshot_class(
                    driver,
                    all,
                    &backup.metadata.name,
                    &backup.metadata.annotations,
                    &claim,
                ),
                Err(e) => Err(e.clone()),
            };
            let class = match class {
                Ok(c) => c,
                Err(e) => {
                    out.errors.push((ns.clone(), format!(
                        "claim {ns}/{claim_name} ({what}) was not snapshotted: no VolumeSnapshotClass for CSI driver {driver}: {e}; create one for driver {driver} labelled {}: \"true\"",
                        repo_k8s::csi::CLASS_LABEL)));
                    continue;
                }
            };
            let snapshot = data_move::volume_snapshot(backup, ns, claim_name, &class);
            let created = Object::from_value(snapshot, "volumesnapshots")
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    self.cluster
                        .create(&built_in("volumesnapshots.snapshot.storage.k8s.io"), &o)
                        .map_err(|e| e.to_string())
                });
            match created {
                Ok(repo_k8s::cluster::Created::Created(s) | repo_k8s::cluster::Created::AlreadyExists(s)) => {
                    taking.push(Taking { claim, snapshot: s.name().to_string(), class, driver: driver.to_string() });
                }
                Err(e) => out.errors.push((ns.clone(), format!(
                    "claim {ns}/{claim_name} ({what}) was not snapshotted: the VolumeSnapshot could not be created: {e}"))),
            }
        }
        self.upload_when_ready(backup, taking, cancel, out)
    }

    /// Waits for each snapshot to be ready (at most the Backup's `csiSnapshotTimeout`) and
    /// creates its DataUpload; a snapshot that fails or does not become ready in time is an
    /// error, and is deleted.
    fn upload_when_ready(
        &self,
        backup: &Backup,
        mut taking: Vec<Taking>,
        cancel: &dyn Fn() -> bool,
        out: &mut PodVolumes,
    ) -> Vec<String> {
        let timeout = backup
            .spec
            .csi_snapshot_timeout
            .as_deref()
            .and_then(go_duration)
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_SNAPSHOT_TIMEOUT);
        let timeout_text = go_duration_text(timeout);
        let snapshots = built_in("volumesnapshots.snapshot.storage.k8s.io");
        let deadline = Instant::now() + timeout;
        let mut uploads = Vec::new();
        while !taking.is_empty() {
            let over = Instant::now() >= deadline || cancel();
            let mut waiting = Vec::new();
            for t in taking {
                let ns = t.claim.namespace().unwrap_or_default().to_string();
                let about = format!(
                    "VolumeSnapshot {ns}/{} of claim {ns}/{}",
                    t.snapshot,
                    t.claim.name()
                );
                let now = self.cluster.get(&snapshots, Some(&ns), &t.snapshot);
                let status = now
                    .as_ref()
                    .ok()
                    .and_then(|s| s.as_ref())
                    .and_then(|s| s.get(&["status"]).cloned())
                    .unwrap_or(Value::Null);
                let failure = if let Err(e) = &now {
                    Some(format!("{about} could not be read: {e}"))
                } else if now.as_ref().is_ok_and(|s| s.is_none()) {
                    Some(format!("{about} was deleted before it was ready"))
                } else if let Some(m) = status["error"]["message"].as_str() {
                    Some(format!(
                        "{about} failed: {m}; check the CSI driver {}'s snapshotter",
                        t.driver
                    ))
                } else if status["readyToUse"] == true {
                    let up = data_move::data_upload(
                        backup,
                        &Snapshotted {
                            claim: &t.claim,
                            snapshot: &t.snapshot,
                            snapshot_class: &t.class,
                            driver: &t.driver,
                        },
                        &timeout_text,
                    );
                    match self.create(&up) {
                        Ok(name) => {
                            uploads.push(name);
                            continue;
                        }
                        Err(e) => Some(format!(
                            "{about} is ready, but its DataUpload could not be created: {e}"
                        )),
                    }
                } else if over {
                    Some(match cancel() {
                        true => format!("{about} was not ready when the backup was cancelled"),
                        false => format!("{about} was not ready after {timeout_text} (the Backup's csiSnapshotTimeout); check the CSI driver {}'s snapshotter, or raise csiSnapshotTimeout", t.driver),
                    })
                } else {
                    waiting.push(t);
                    continue;
                };
                if let Some(why) = failure {
                    let _ = self.cluster.delete(&snapshots, Some(&ns), &t.snapshot);
                    out.errors
                        .push((ns, format!("{why}; the claim's data is not in this backup")));
                }
            }
            taking = waiting;
            if !taking.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        uploads
    }

    /// Waits for DataUploads `names` of `backup` to end (cancelling them with the backup,
    /// or after `--fs-backup-timeout`); puts them in `out.uploads`, each that did not
    /// complete an error. Then deletes the backup's VolumeSnapshots, whatever happened.
    pub(crate) fn wait_for_uploads(
        &self,
        backup: &Backup,
        names: &[String],
        cancel: &dyn Fn() -> bool,
        out: &mut PodVolumes,
    ) {
        let uid = backup.metadata.uid.clone().unwrap_or_default();
        if !names.is_empty() {
            let selector = format!("{BACKUP_UID_LABEL}={uid}");
            let ended: Vec<DataUpload> = self.wait_for_ended(
                &selector,
                names,
                upload_is_final,
                cancel,
                &mut out.errors,
                &mut |_| {},
            );
            for d in &ended {
                let status = d.status.clone().unwrap_or_default();
                let phase = phase_of(status.phase);
                if phase != DataMovePhase::Completed {
                    let ns = d.spec.source_namespace.clone();
                    out.errors.push((
                        ns.clone(),
                        format!(
                            "data upload {} of claim {ns}/{} {}: {}",
                            d.metadata.name,
                            d.spec.source_pvc,
                            if phase == DataMovePhase::Canceled {
                                "canceled"
                            } else {
                                "failed"
                            },
                            status.message
                        ),
                    ));
                }
            }
            out.uploads = ended;
        }
        // The node-agents move the snapshots they take over; what is left (a DataUpload not
        // taken, a failure before) goes now.
        let snapshots = built_in("volumesnapshots.snapshot.storage.k8s.io");
        let selector = format!("{BACKUP_UID_LABEL}={uid}");
        for s in self
            .cluster
            .list_selected(&snapshots, None, Some(&selector))
            .unwrap_or_default()
        {
            let _ = self.cluster.delete(&snapshots, s.namespace(), s.name());
        }
    }

    /// Tells the restore plan which claims a DataDownload fills.
    pub(crate) fn plan_moved_claims(
        &self,
        restore: &Restore,
        uploads: &[DataUpload],
        opts: &mut repo_k8s::restore::RestoreOptions,
    ) {
        let uid = restore.metadata.uid.clone().unwrap_or_default();
        let nonce: String = uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        for d in uploads {
            let source_ns = d.spec.source_namespace.clone();
            let ns = restore
                .spec
                .namespace_mapping
                .get(&source_ns)
                .cloned()
                .unwrap_or(source_ns.clone());
            let label = data_move::dynamic_pv_label(&ns, &d.spec.source_pvc, &nonce);
            opts.claims_moved
                .insert((source_ns, d.spec.source_pvc.clone()), label);
        }
    }

    /// Creates a DataDownload for each moved claim the restore created (one it left alone,
    /// existing already, keeps its data); their names, and `(namespace, error)`s.
    pub(crate) fn start_downloads(
        &self,
        restore: &Restore,
        uploads: &[DataUpload],
        opts: &repo_k8s::restore::RestoreOptions,
    ) -> (Vec<String>, Vec<(String, String)>) {
        let (mut names, mut errors) = (Vec::new(), Vec::new());
        let claims = built_in("persistentvolumeclaims");
        for d in uploads {
            let source_ns = d.spec.source_namespace.clone();
            let Some(label) = opts
                .claims_moved
                .get(&(source_ns.clone(), d.spec.source_pvc.clone()))
            else {
                continue;
            };
            let ns = restore
                .spec
                .namespace_mapping
                .get(&source_ns)
                .cloned()
                .unwrap_or(source_ns);
            let claim = self
                .cluster
                .get(&claims, Some(&ns), &d.spec.source_pvc)
                .ok()
                .flatten();
            let ours = claim.as_ref().and_then(|c| {
                c.str_at(&[
                    "spec",
                    "selector",
                    "matchLabels",
                    data_move::DYNAMIC_PV_RESTORE_LABEL,
                ])
            }) == Some(label.as_str());
            if !ours {
                continue;
            }
            let timeout = restore
                .spec
                .item_operation_timeout
                .clone()
                .unwrap_or_else(|| "4h0m0s".into());
            let down = data_move::data_download(restore, d, &ns, &timeout);
            match self.create(&down) {
                Ok(name) => names.push(name),
                Err(e) => errors.push((ns.clone(), format!(
                    "claim {ns}/{}: the DataDownload could not be created, its data is not restored: {e}", d.spec.source_pvc))),
            }
        }
        (names, errors)
    }

    /// Waits for DataDownloads `names` of `restore` to end; `(namespace, error)` for each
    /// that did not complete.
    pub(crate) fn wait_for_downloads(
        &self,
        restore: &Restore,
        names: &[String],
        cancel: &dyn Fn() -> bool,
    ) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if names.is_empty() {
            return errors;
        }
        let uid = restore.metadata.uid.clone().unwrap_or_default();
        let selector = format!("{RESTORE_UID_LABEL}={uid}");
        let ended: Vec<DataDownload> = self.wait_for_ended(
            &selector,
            names,
            download_is_final,
            cancel,
            &mut errors,
            &mut |_| {},
        );
        for d in &ended {
            let status = d.status.clone().unwrap_or_default();
            let phase = phase_of(status.phase);
            if phase != DataMovePhase::Completed {
                let t = &d.spec.target_volume;
                errors.push((
                    t.namespace.clone(),
                    format!(
                        "data download {} into claim {}/{} {}: {}",
                        d.metadata.name,
                        t.namespace,
                        t.pvc,
                        if phase == DataMovePhase::Canceled {
                            "canceled"
                        } else {
                            "failed"
                        },
                        status.message
                    ),
                ));
            }
        }
        errors
    }
}
