//! The data mover of one node. It takes
//!
//! - the PodVolumeBackups whose `spec.node` is this node: each volume's directory is found
//!   below the kubelet's pods directory (mounted at `/host_pods`) and backed up into the
//!   repository of the PodVolumeBackup's storage location;
//! - the PodVolumeRestores of pods running on this node, once the kubelet has made their
//!   volume directories: the snapshot is written into the volume, then the done file
//!   `.velero/<restore-uid>` that the pod's `restore-wait` init container waits for (or
//!   `.velero/<restore-uid>.failed` with the reason, so it does not wait in vain);
//!
//! with Velero's status fields as it goes:
//!
//! - `New` → `InProgress` (`startTimestamp`, `progress {totalBytes, bytesDone}` every
//!   [`PROGRESS_EVERY`]) → `Completed` (a backup's `snapshotID` and `path`,
//!   `completionTimestamp`), `Failed` (`message` says what and what to do) or `Canceled`
//!   (`spec.cancel`);
//! - a backup's parent is found in the repository, not in objects that may be gone: for a
//!   claim, the newest snapshot with the same `pvc-uid` tag (so a pod recreated under
//!   another name reads only what changed); otherwise the same namespace, pod and volume;
//! - `load_concurrency` volumes at once; each may run at most `timeout`;
//! - at start, what this node left `InProgress` (the node-agent was killed) is `Failed`:
//!   a backup's data was never committed, and nobody must wait for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use repo_core::OpenOptions;
use repo_k8s::cluster::Cluster;
use repo_k8s::informer::{Changes, Informer};
use repo_k8s::velero::{
    resource, BackupStorageLocation, DataDownload, DataMovePhase, DataUpload, Kind,
    PodVolumeBackup, PodVolumeBackupPhase, PodVolumeRestore, PodVolumeRestorePhase,
};
use repo_k8s::{Discovery, Object};
use serde_json::{json, Value};

/// How often a running volume's progress is written.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How often what was made for moves that are gone is looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Velero's default `--fs-backup-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

use repo_k8s::podvolumes::objects::RESTORE_UID_LABEL;

use crate::snapshot_mover::Move;

/// The data mover of one node.
pub struct DataMover<'a> {
    pub cluster: &'a Cluster,
    /// The namespace of Velero's objects.
    pub namespace: String,
    /// This node's name (`NODE_NAME`).
    pub node: String,
    /// The kubelet's pods directory as mounted here (`/host_pods`).
    pub pods_dir: PathBuf,
    pub open_options: OpenOptions,
    pub unlocked: cairn_server::repository::Unlocked,
    /// Volumes moved at once.
    pub load_concurrency: usize,
    /// The longest one volume may take.
    pub timeout: Duration,
    /// The time now, RFC 3339 (a seam for tests).
    pub now: &'a (dyn Fn() -> String + Sync),
    /// The node's root as mounted here (`--host-root`), for workflows' host directories:
    /// PodVolumeBackups and PodVolumeRestores whose `spec.pod` is this Node and whose
    /// `spec.volume` is an absolute path on it. `None`: such requests fail, saying so.
    pub host_root: Option<PathBuf>,
    /// The image of the data-mover pods that hold a snapshot's temporary claim (one with
    /// `/node-agent`: cairn's).
    pub mover_image: String,
}

/// Whether a request is for a directory of the node itself (a workflow's hostPath step),
/// not a pod's volume.
pub fn is_host_path(pod: &repo_k8s::velero::ObjectReference) -> bool {
    pod.kind.as_deref() == Some("Node")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Backup,
    Restore,
    Move(crate::snapshot_mover::Direction),
}

/// A volume being moved.
struct Job<'s> {
    work: Work,
    name: String,
    cancel: Arc<AtomicBool>,
    started: Instant,
    thread: std::thread::ScopedJoinHandle<'s, ()>,
}

/// Why a volume's move stopped.
pub(crate) enum Stop {
    Canceled,
    Failed(String),
}

pub(crate) fn failed(e: impl ToString) -> Stop {
    Stop::Failed(e.to_string())
}

fn typed<K: serde::de::DeserializeOwned>(o: &Object) -> Option<K> {
    serde_json::from_value(Value::Object(o.as_value().clone())).ok()
}

fn backup_phase(p: &PodVolumeBackup) -> PodVolumeBackupPhase {
    p.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

fn restore_phase(p: &PodVolumeRestore) -> PodVolumeRestorePhase {
    p.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

/// The UID of the Restore a PodVolumeRestore belongs to (its label, else its owner).
fn restore_uid(p: &PodVolumeRestore) -> String {
    p.metadata
        .labels
        .get(RESTORE_UID_LABEL)
        .cloned()
        .or_else(|| p.metadata.owner_references.first().map(|o| o.uid.clone()))
        .unwrap_or_default()
}

impl DataMover<'_> {
    /// Moves this node's volumes until `stop` is set (what runs is cancelled then).
    pub fn run(&self, stop: &AtomicBool) {
        let changes = Changes::new();
        let ns = Some(self.namespace.clone());
        let wanted = [
            (resource::<PodVolumeBackup>(), ns.clone()),
            (resource::<PodVolumeRestore>(), ns.clone()),
            (resource::<DataUpload>(), ns.clone()),
            (resource::<DataDownload>(), ns.clone()),
            // Only to wake up when a data-mover pod starts running.
            (
                Discovery::built_in()
                    .resolve("pods")
                    .expect("built in")
                    .clone(),
                ns,
            ),
        ];
        let Ok([pvbs, pvrs, uploads, downloads, pods]) =
            <[Informer; 5]>::try_from(self.cluster.informers(&wanted, changes.clone()))
        else {
            unreachable!("five informers asked for");
        };
        let synced = || {
            [&pvbs, &pvrs, &uploads, &downloads, &pods]
                .iter()
                .all(|i| i.is_synced())
        };
        while !synced() && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let moves = || -> Vec<Move> {
            let up = uploads.objects();
            let down = downloads.objects();
            (up.iter().filter_map(typed).map(|d| Move::of_upload(&d)))
                .chain(down.iter().filter_map(typed).map(|d| Move::of_download(&d)))
                .collect()
        };
        self.fail_interrupted(&pvbs, &pvrs, &moves());
        let mut accepted_at = BTreeMap::new();
        let mut swept = Instant::now();
        std::thread::scope(|s| {
            let mut jobs: Vec<Job> = Vec::new();
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                seen = changes.wait_past(seen, Duration::from_secs(1));
                jobs.retain(|j| !j.thread.is_finished());
                let moves = moves();
                if swept.elapsed() >= SWEEP_EVERY {
                    swept = Instant::now();
                    self.sweep(&moves);
                }
                let backups: Vec<PodVolumeBackup> = pvbs
                    .objects()
                    .iter()
                    .filter_map(typed)
                    .filter(|p: &PodVolumeBackup| p.spec.node == self.node)
                    .collect();
                let restores: Vec<PodVolumeRestore> =
                    pvrs.objects().iter().filter_map(typed).collect();
                for j in &jobs {
                    let asked = match j.work {
                        Work::Backup => backups
                            .iter()
                            .find(|p| p.metadata.name == j.name)
                            .is_none_or(|p| p.spec.cancel),
                        Work::Restore => restores
                            .iter()
                            .find(|p| p.metadata.name == j.name)
                            .is_none_or(|p| p.spec.cancel),
                        Work::Move(d) => moves
                            .iter()
                            .find(|m| m.direction == d && m.name == j.name)
                            .is_none_or(|m| m.cancel),
                    };
                    if asked || j.started.elapsed() > self.timeout {
                        j.cancel.store(true, Ordering::Relaxed);
                    }
                }
                let busy = |jobs: &[Job], name: &str| jobs.iter().any(|j| j.name == name);
                let idle: Vec<Move> = moves
                    .into_iter()
                    .filter(|m| !busy(&jobs, &m.name))
                    .collect();
                for m in self.step_moves(&idle, &mut accepted_at) {
                    if jobs.len() >= self.load_concurrency.max(1) {
                        break;
                    }
                    let cancel = Arc::new(AtomicBool::new(false));
                    let c = cancel.clone();
                    jobs.push(Job {
                        work: Work::Move(m.direction),
                        name: m.name.clone(),
                        cancel,
                        started: Instant::now(),
                        thread: s.spawn(move || self.run_move(&m, &c)),
                    });
                }
                let mut waiting: Vec<&PodVolumeBackup> = backups
                    .iter()
                    .filter(|p| {
                        backup_phase(p) == PodVolumeBackupPhase::New
                            && !busy(&jobs, &p.metadata.name)
                    })
                    .collect();
                waiting.sort_by_key(|p| {
                    (
                        p.metadata.creation_timestamp.clone(),
                        p.metadata.name.clone(),
                    )
                });
                for p in waiting {
                    if p.spec.cancel {
                        self.patch::<PodVolumeBackup>(&p.metadata.name, json!({"phase": "Canceled",
                            "message": "canceled before it started", "completionTimestamp": (self.now)()}));
                        continue;
                    }
                    if jobs.len() >= self.load_concurrency.max(1) {
                        break;
                    }
                    let cancel = Arc::new(AtomicBool::new(false));
                    let (pvb, c) = (p.clone(), cancel.clone());
                    jobs.push(Job {
                        work: Work::Backup,
                        name: p.metadata.name.clone(),
                        cancel,
                        started: Instant::now(),
                        thread: s.spawn(move || self.back_up(&pvb, &c)),
                    });
                }
                for p in restores
                    .iter()
                    .filter(|p| restore_phase(p) == PodVolumeRestorePhase::New)
                {
                    if busy(&jobs, &p.metadata.name) || jobs.len() >= self.load_concurrency.max(1) {
                        continue;
                    }
                    // Another node's pod, or the kubelet has not made the volume yet.
                    let Some(dir) = self.restore_target(p) else {
                        continue;
                    };
                    if p.spec.cancel {
                        self.patch::<PodVolumeRestore>(&p.metadata.name, json!({"phase": "Canceled",
                            "message": "canceled before it started", "completionTimestamp": (self.now)()}));
                        continue;
                    }
                    let cancel = Arc::new(AtomicBool::new(false));
                    let (pvr, c) = (p.clone(), cancel.clone());
                    jobs.push(Job {
                        work: Work::Restore,
                        name: p.metadata.name.clone(),
                        cancel,
                        started: Instant::now(),
                        thread: s.spawn(move || self.restore(&pvr, &dir, &c)),
                    });
                }
            }
            for j in &jobs {
                j.cancel.store(true, Ordering::Relaxed);
            }
        });
    }

    /// Fails what this node left InProgress (a node-agent that stopped), and deletes what
    /// was made for such moves and for moves that are gone.
    fn fail_interrupted(&self, pvbs: &Informer, pvrs: &Informer, moves: &[Move]) {
        for m in moves {
            if m.node == self.node
                && matches!(
                    m.phase,
                    DataMovePhase::InProgress | DataMovePhase::Canceling
                )
            {
                self.end_move(m, "Failed", &format!("the node-agent on node {} stopped while it moved this volume's data; nothing of it was committed, and what was made for it is deleted: run the backup or restore again", self.node));
            }
        }
        self.sweep(moves);
        let why = format!("the node-agent on node {} stopped while it moved this volume; nothing of it was committed: back it up again", self.node);
        for p in pvbs.objects().iter().filter_map(typed::<PodVolumeBackup>) {
            if p.spec.node == self.node
                && matches!(
                    backup_phase(&p),
                    PodVolumeBackupPhase::InProgress | PodVolumeBackupPhase::Canceling
                )
            {
                self.patch::<PodVolumeBackup>(
                    &p.metadata.name,
                    json!({"phase": "Failed", "completionTimestamp": (self.now)(), "message": why}),
                );
            }
        }
        for p in pvrs.objects().iter().filter_map(typed::<PodVolumeRestore>) {
            let mine = p.status.as_ref().is_some_and(|s| s.node == self.node);
            if mine
                && matches!(
                    restore_phase(&p),
                    PodVolumeRestorePhase::InProgress | PodVolumeRestorePhase::Canceling
                )
            {
                let why = format!("the node-agent on node {} stopped while it restored this volume; restore the backup again", self.node);
                self.patch::<PodVolumeRestore>(
                    &p.metadata.name,
                    json!({"phase": "Failed", "completionTimestamp": (self.now)(), "message": why}),
                );
            }
        }
    }

    /// Runs `work` for object `name` of kind `K` with Velero's status: InProgress, progress
    /// every [`PROGRESS_EVERY`], then Completed (with the fields `work` returns), Failed or
    /// Canceled.
    pub(crate) fn run_job<K: Kind>(
        &self,
        name: &str,
        in_progress: Value,
        work: impl FnOnce(&repo_fs::Counters) -> Result<Value, Stop>,
    ) {
        let mut start = json!({"phase": "InProgress", "startTimestamp": (self.now)()});
        if let (Some(s), Some(extra)) = (start.as_object_mut(), in_progress.as_object()) {
            s.extend(extra.clone());
        }
        self.patch::<K>(name, start);
        let began = Instant::now();
        let counters = repo_fs::Counters::default();
        let done = AtomicBool::new(false);
        let outcome = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut last = None;
                while !done.load(Ordering::Relaxed) {
                    std::thread::park_timeout(PROGRESS_EVERY);
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    let c = counters.snapshot();
                    let now = (c.total_bytes, c.bytes_done);
                    if last != Some(now) {
                        self.patch::<K>(
                            name,
                            json!({"progress": {"totalBytes": now.0, "bytesDone": now.1}}),
                        );
                        last = Some(now);
                    }
                }
            });
            let out = work(&counters);
            done.store(true, Ordering::Relaxed);
            writer.thread().unpark();
            out
        });
        let finished = (self.now)();
        let status = match outcome {
            Ok(fields) => {
                let c = counters.snapshot();
                let mut st = json!({"phase": "Completed", "completionTimestamp": finished,
                    "progress": {"totalBytes": c.bytes_done, "bytesDone": c.bytes_done}});
                if let (Some(st), Some(f)) = (st.as_object_mut(), fields.as_object()) {
                    st.extend(f.clone());
                }
                st
            }
            Err(Stop::Canceled) => json!({"phase": "Canceled", "completionTimestamp": finished,
                "message": "canceled while it ran (spec.cancel, its Backup or Restore deleted, or the timeout)"}),
            Err(Stop::Failed(why)) => {
                json!({"phase": "Failed", "completionTimestamp": finished, "message": why})
            }
        };
        eprintln!(
            "node-agent: {} {name} {} in {:.2} s{}",
            K::KIND,
            status["phase"].as_str().unwrap_or_default(),
            began.elapsed().as_secs_f64(),
            status["message"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
        self.patch::<K>(name, status);
    }

    /// Backs up one volume.
    pub fn back_up(&self, pvb: &PodVolumeBackup, cancel: &AtomicBool) {
        self.run_job::<PodVolumeBackup>(&pvb.metadata.name, json!({}), |counters| {
            let spec = &pvb.spec;
            let host = is_host_path(&spec.pod);
            let (dir, claim) = match host {
                true => (self.host_dir(&spec.volume, false)?, None),
                false => self.volume_dir(&spec.pod, &spec.volume)?,
            };
            let repo = self.repository(&spec.backup_storage_location)?;
            let tags: Vec<String> = spec.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let parent_tags = match (host, spec.tags.contains_key("pvc-uid")) {
                (true, _) => vec!["host-path".to_string(), "node".into()],
                (false, true) => vec!["pvc-uid".to_string()],
                (false, false) => vec!["ns".into(), "pod".into(), "volume".into()],
            };
            let pod_ns = spec.pod.namespace.as_deref().unwrap_or_default();
            let pod_name = spec.pod.name.as_deref().unwrap_or_default();
            let source = match host {
                true => format!("{}:{}", self.node, spec.volume),
                false => format!("{pod_ns}/{pod_name}/{}", claim.as_deref().unwrap_or(&spec.volume)),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let opts = repo_fs::BackupOptions {
                source: Some(source),
                host: Some(self.node.clone()),
                tags,
                parent_tags,
                scan: true,
                cancel: stop.clone(),
                ..Default::default()
            };
            let out = forwarding_cancel(cancel, &stop, || {
                repo_fs::backup(&repo, std::slice::from_ref(&dir), &opts, counters)
            });
            match out {
                Ok(o) => {
                    let mut fields = json!({"snapshotID": o.id.to_string(), "path": dir.display().to_string()});
                    if let Some(first) = o.warnings.first() {
                        fields["message"] = format!("{} entries could not be read and are not in the backup, the first: {first}", o.warnings.len()).into();
                    }
                    Ok(fields)
                }
                Err(repo_core::Error::Cancelled) => Err(Stop::Canceled),
                Err(e) => Err(failed(format!("backing up {}: {e}", dir.display()))),
            }
        });
    }

    /// Where a PodVolumeRestore's data goes, if its pod runs on this node and the kubelet
    /// has made the volume.
    fn restore_target(&self, pvr: &PodVolumeRestore) -> Option<PathBuf> {
        if is_host_path(&pvr.spec.pod) {
            // This node's, or another's; a bad path fails in the restore, saying why.
            return (pvr.spec.pod.name.as_deref() == Some(self.node.as_str()))
                .then(|| PathBuf::from(&pvr.spec.volume));
        }
        let pods = Discovery::built_in()
            .resolve("pods")
            .expect("built in")
            .clone();
        let pod = self
            .cluster
            .get(
                &pods,
                pvr.spec.pod.namespace.as_deref(),
                pvr.spec.pod.name.as_deref()?,
            )
            .ok()??;
        let node = pod.get(&["spec", "nodeName"]).and_then(Value::as_str)?;
        (node == self.node).then_some(())?;
        self.volume_dir(&pvr.spec.pod, &pvr.spec.volume)
            .ok()
            .map(|(d, _)| d)
    }

    /// Restores one volume into `dir`, then writes its done file (or its failed file).
    pub fn restore(&self, pvr: &PodVolumeRestore, dir: &Path, cancel: &AtomicBool) {
        if is_host_path(&pvr.spec.pod) {
            self.run_job::<PodVolumeRestore>(
                &pvr.metadata.name,
                json!({"node": self.node}),
                |counters| {
                    let dir = self.host_dir(&pvr.spec.volume, true)?;
                    self.restore_files(pvr, &dir, None, cancel, counters)
                },
            );
            return;
        }
        let uid = restore_uid(pvr);
        let mut failure = None;
        self.run_job::<PodVolumeRestore>(
            &pvr.metadata.name,
            json!({"node": self.node}),
            |counters| {
                let out = self.restore_into(pvr, dir, &uid, cancel, counters);
                if let Err(Stop::Failed(why)) = &out {
                    failure = Some(why.clone());
                }
                if let Err(Stop::Canceled) = &out {
                    failure = Some("the restore of this volume was canceled".to_string());
                }
                out
            },
        );
        if let Some(why) =
            failure.filter(|_| !uid.is_empty() && !uid.contains('/') && !uid.starts_with('.'))
        {
            mark_failed(dir, &uid, &why);
        }
    }

    fn restore_into(
        &self,
        pvr: &PodVolumeRestore,
        dir: &Path,
        uid: &str,
        cancel: &AtomicBool,
        counters: &repo_fs::Counters,
    ) -> Result<Value, Stop> {
        if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
            return Err(failed(format!("PodVolumeRestore {} names no Restore UID (label {RESTORE_UID_LABEL}); its pod's restore-wait cannot be told", pvr.metadata.name)));
        }
        // A done file of this restore that is already there (left by an earlier attempt,
        // or in the data) would let the pod start before its data is back.
        let _ = std::fs::remove_file(crate::restore_wait::done_file(dir, uid));
        let _ = std::fs::remove_file(crate::restore_wait::failed_file(dir, uid));
        let done = self.restore_files(pvr, dir, Some(uid), cancel, counters)?;
        // The helper may run as any user: it must be able to remove its own file.
        open_markers(dir, uid);
        Ok(done)
    }

    /// Restores a PodVolumeRestore's snapshot into `dir`, then writes the done file of
    /// restore `uid` if given.
    fn restore_files(
        &self,
        pvr: &PodVolumeRestore,
        dir: &Path,
        uid: Option<&str>,
        cancel: &AtomicBool,
        counters: &repo_fs::Counters,
    ) -> Result<Value, Stop> {
        self.restore_snapshot(
            &pvr.spec.backup_storage_location,
            &pvr.spec.snapshot_id,
            dir,
            uid,
            cancel,
            counters,
        )
    }

    /// Restores snapshot `snapshot_id` of location `location` into `dir`, then writes the
    /// done file of restore `uid` if given.
    pub(crate) fn restore_snapshot(
        &self,
        location: &str,
        snapshot_id: &str,
        dir: &Path,
        uid: Option<&str>,
        cancel: &AtomicBool,
        counters: &repo_fs::Counters,
    ) -> Result<Value, Stop> {
        let repo = self.repository(location)?;
        let stop = Arc::new(AtomicBool::new(false));
        let opts = repo_fs::RestoreOptions {
            done_file_uid: uid.map(str::to_string),
            cancel: stop.clone(),
            ..Default::default()
        };
        let out = forwarding_cancel(cancel, &stop, || {
            repo_fs::restore(&repo, snapshot_id, "", dir, &opts, counters, &|_| {})
        });
        match out {
            Ok(o) if o.failures.is_empty() => Ok(json!({})),
            Ok(o) => {
                let (path, why) = &o.failures[0];
                Err(failed(format!(
                    "{} entries could not be restored into {}, the first: {}: {why}",
                    o.failures.len(),
                    dir.display(),
                    path.display()
                )))
            }
            Err(repo_core::Error::Cancelled) => Err(Stop::Canceled),
            Err(e) => Err(failed(format!(
                "restoring snapshot {snapshot_id} into {}: {e}",
                dir.display()
            ))),
        }
    }

    /// The directory of a pod's volume on this node, and the volume's claim if it is one.
    pub(crate) fn volume_dir(
        &self,
        pod_ref: &repo_k8s::velero::ObjectReference,
        volume: &str,
    ) -> Result<(PathBuf, Option<String>), Stop> {
        let pod_ns = pod_ref.namespace.clone().unwrap_or_default();
        let pod_name = pod_ref.name.clone().unwrap_or_default();
        let built_in = Discovery::built_in();
        let get = |resource: &str, ns: Option<&str>, name: &str| -> Result<Option<Object>, Stop> {
            let r = built_in.resolve(resource).expect("built in");
            self.cluster.get(r, ns, name).map_err(failed)
        };
        let pod = get("pods", Some(&pod_ns), &pod_name)?.ok_or_else(|| {
            failed(format!("pod {pod_ns}/{pod_name} does not exist any more; the data of its volume {volume} was not moved"))
        })?;
        let uid = pod
            .get(&["metadata", "uid"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        if pod_ref.uid.as_deref().is_some_and(|want| want != uid) {
            return Err(failed(format!("pod {pod_ns}/{pod_name} was replaced (UID {uid}, not {}); the data of its volume {volume} was not moved", pod_ref.uid.as_deref().unwrap_or(""))));
        }
        let claim = pod
            .get(&["spec", "volumes"])
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v["name"] == volume))
            .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .map(str::to_string);
        let pv = match &claim {
            Some(c) => {
                let pvc = get("persistentvolumeclaims", Some(&pod_ns), c)?.ok_or_else(|| {
                    failed(format!(
                        "claim {pod_ns}/{c} of volume {volume} does not exist"
                    ))
                })?;
                match pvc.get(&["spec", "volumeName"]).and_then(Value::as_str) {
                    Some(pv) => get("persistentvolumes", None, pv)?,
                    None => None,
                }
            }
            None => None,
        };
        let name =
            repo_k8s::podvolumes::locate::dir_name(&pod, volume, pv.as_ref()).map_err(failed)?;
        let dir = repo_k8s::podvolumes::locate::find(&self.pods_dir, uid, &name).map_err(|e| {
            failed(format!(
                "volume {volume} of pod {pod_ns}/{pod_name} on node {}: {e}",
                self.node
            ))
        })?;
        Ok((dir, claim))
    }

    /// Where the node's directory `path` is here (below `--host-root`). It must be
    /// absolute, without `..`, and no part of it may be a symlink (which could lead out of
    /// the root). `create`: make it if missing (a restore); else it must exist.
    fn host_dir(&self, path: &str, create: bool) -> Result<PathBuf, Stop> {
        let Some(root) = &self.host_root else {
            return Err(failed(format!("node-agent on node {} serves no host directories: start it with --host-root (the node's / mounted there, see deploy/node-agent.yaml)", self.node)));
        };
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(failed(format!(
                "host path {path:?} must be absolute, without .."
            )));
        }
        let mut dir = root.clone();
        for part in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(failed(format!(
                        "host path {path:?} on node {}: {} is a symlink; name the real directory",
                        self.node,
                        dir.display()
                    )));
                }
                Ok(m) if !m.is_dir() => {
                    return Err(failed(format!(
                        "host path {path:?} on node {}: {} is not a directory",
                        self.node,
                        dir.display()
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    std::fs::create_dir(&dir).map_err(|e| {
                        failed(format!(
                            "creating {} on node {}: {e}",
                            dir.display(),
                            self.node
                        ))
                    })?;
                }
                Err(e) => {
                    return Err(failed(format!(
                        "host path {path:?} on node {}: {e}",
                        self.node
                    )));
                }
            }
        }
        Ok(dir)
    }

    /// The repository of storage location `name`.
    pub(crate) fn repository(&self, name: &str) -> Result<repo_core::IndexedRepository, Stop> {
        let o = self
            .cluster
            .get(
                &resource::<BackupStorageLocation>(),
                Some(&self.namespace),
                name,
            )
            .map_err(failed)?
            .ok_or_else(|| {
                failed(format!(
                    "backup storage location {name:?} does not exist in namespace {}",
                    self.namespace
                ))
            })?;
        let location: BackupStorageLocation = typed(&o)
            .ok_or_else(|| failed(format!("backup storage location {name} is not readable")))?;
        cairn_server::repository::open(
            self.cluster,
            &location,
            &self.namespace,
            &self.open_options,
            &self.unlocked,
        )
        .map_err(Stop::Failed)
    }

    /// Merges `status` into the status of object `name` of kind `K` (Velero's CRDs have no
    /// status subresource: the status is written with the object).
    pub(crate) fn patch<K: Kind>(&self, name: &str, status: Value) {
        let _ = self.cluster.merge_patch(
            &resource::<K>(),
            Some(&self.namespace),
            name,
            &json!({ "status": status }),
        );
    }
}

/// Runs `work` while a thread forwards `cancel` to `stop` (repo-fs watches its own flag).
pub(crate) fn forwarding_cancel<T>(
    cancel: &AtomicBool,
    stop: &AtomicBool,
    work: impl FnOnce() -> T,
) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let forwarder = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                std::thread::park_timeout(Duration::from_millis(100));
            }
        });
        let out = work();
        done.store(true, Ordering::Relaxed);
        forwarder.thread().unpark();
        out
    })
}

/// Lets the restore-wait container remove its done file whatever user it runs as (Velero's
/// root-owned markers made a non-root helper fail, #7485).
fn open_markers(dir: &Path, uid: &str) {
    use std::os::unix::fs::PermissionsExt;
    let markers = dir.join(".velero");
    let _ = std::fs::set_permissions(&markers, std::fs::Permissions::from_mode(0o777));
    let _ = std::fs::set_permissions(markers.join(uid), std::fs::Permissions::from_mode(0o666));
}

/// Tells the restore-wait container that this volume's data will not come, and why.
fn mark_failed(dir: &Path, uid: &str, why: &str) {
    let markers = dir.join(".velero");
    if std::fs::create_dir_all(&markers).is_ok() {
        let _ = std::fs::write(
            crate::restore_wait::failed_file(dir, uid),
            format!("{why}\n"),
        );
        open_markers(dir, uid);
    }
}
