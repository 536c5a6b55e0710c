//! The data mover of one node: it takes the PodVolumeBackups whose `spec.node` is this
//! node, finds each volume's directory below the kubelet's pods directory (mounted at
//! `/host_pods`), and backs it up into the repository of the PodVolumeBackup's storage
//! location, with Velero's status fields as it goes:
//!
//! - `New` → `InProgress` (`startTimestamp`, `progress {totalBytes, bytesDone}` every
//!   [`PROGRESS_EVERY`]) → `Completed` (`snapshotID`, `path`, `completionTimestamp`),
//!   `Failed` (`message` says what and what to do) or `Canceled` (`spec.cancel`);
//! - the parent is found in the repository, not in objects that may be gone: for a claim,
//!   the newest snapshot with the same `pvc-uid` tag (so a pod recreated under another name
//!   reads only what changed); otherwise the same namespace, pod and volume;
//! - `load_concurrency` volumes at once; each may run at most `timeout`;
//! - at start, a PodVolumeBackup this node left `InProgress` (the node-agent was killed) is
//!   `Failed`: its data was never committed, and the Backup must not wait for it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use repo_core::OpenOptions;
use repo_k8s::cluster::Cluster;
use repo_k8s::informer::{Changes, Informer};
use repo_k8s::velero::{resource, BackupStorageLocation, PodVolumeBackup, PodVolumeBackupPhase};
use repo_k8s::{Discovery, Object};
use serde_json::{json, Value};

/// How often a running volume's progress is written.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Velero's default `--fs-backup-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

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
}

/// A volume being moved.
struct Job<'s> {
    name: String,
    cancel: Arc<AtomicBool>,
    started: Instant,
    thread: std::thread::ScopedJoinHandle<'s, ()>,
}

fn phase(p: &PodVolumeBackup) -> PodVolumeBackupPhase {
    p.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

impl DataMover<'_> {
    /// Moves this node's volumes until `stop` is set (what runs is cancelled then).
    pub fn run(&self, stop: &AtomicBool) {
        let changes = Changes::new();
        let ns = Some(self.namespace.as_str());
        let pvbs = self
            .cluster
            .informer(&resource::<PodVolumeBackup>(), ns, changes.clone());
        while !pvbs.is_synced() && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.fail_interrupted(&pvbs);
        std::thread::scope(|s| {
            let mut jobs: Vec<Job> = Vec::new();
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                seen = changes.wait_past(seen, Duration::from_secs(1));
                jobs.retain(|j| !j.thread.is_finished());
                let mine: Vec<PodVolumeBackup> = pvbs
                    .objects()
                    .iter()
                    .filter_map(typed)
                    .filter(|p: &PodVolumeBackup| p.spec.node == self.node)
                    .collect();
                for j in &jobs {
                    let asked = mine
                        .iter()
                        .find(|p| p.metadata.name == j.name)
                        .is_none_or(|p| p.spec.cancel);
                    if asked || j.started.elapsed() > self.timeout {
                        j.cancel.store(true, Ordering::Relaxed);
                    }
                }
                let mut waiting: Vec<&PodVolumeBackup> = mine
                    .iter()
                    .filter(|p| phase(p) == PodVolumeBackupPhase::New)
                    .filter(|p| jobs.iter().all(|j| j.name != p.metadata.name))
                    .collect();
                waiting.sort_by_key(|p| {
                    (
                        p.metadata.creation_timestamp.clone(),
                        p.metadata.name.clone(),
                    )
                });
                for p in waiting {
                    if p.spec.cancel {
                        self.patch(&p.metadata.name, json!({"phase": "Canceled",
                            "message": "canceled before it started", "completionTimestamp": (self.now)()}));
                        continue;
                    }
                    if jobs.len() >= self.load_concurrency.max(1) {
                        break;
                    }
                    let cancel = Arc::new(AtomicBool::new(false));
                    let (pvb, c) = (p.clone(), cancel.clone());
                    jobs.push(Job {
                        name: p.metadata.name.clone(),
                        cancel,
                        started: Instant::now(),
                        thread: s.spawn(move || self.move_volume(&pvb, &c)),
                    });
                }
            }
            for j in &jobs {
                j.cancel.store(true, Ordering::Relaxed);
            }
        });
    }

    /// Fails this node's PodVolumeBackups left InProgress by a node-agent that stopped.
    fn fail_interrupted(&self, pvbs: &Informer) {
        for p in pvbs.objects().iter().filter_map(typed::<PodVolumeBackup>) {
            if p.spec.node == self.node
                && matches!(
                    phase(&p),
                    PodVolumeBackupPhase::InProgress | PodVolumeBackupPhase::Canceling
                )
            {
                self.patch(&p.metadata.name, json!({"phase": "Failed", "completionTimestamp": (self.now)(),
                    "message": format!("the node-agent on node {} stopped while it backed up this volume; nothing of it was committed: back it up again", self.node)}));
            }
        }
    }

    /// Backs up one volume, writing the PodVolumeBackup's status as it goes.
    pub fn move_volume(&self, pvb: &PodVolumeBackup, cancel: &AtomicBool) {
        let name = &pvb.metadata.name;
        self.patch(
            name,
            json!({"phase": "InProgress", "startTimestamp": (self.now)()}),
        );
        let counters = Arc::new(repo_fs::Counters::default());
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
                        self.patch(
                            name,
                            json!({"progress": {"totalBytes": now.0, "bytesDone": now.1}}),
                        );
                        last = Some(now);
                    }
                }
            });
            let out = self.back_up(pvb, cancel, &counters);
            done.store(true, Ordering::Relaxed);
            writer.thread().unpark();
            out
        });
        let finished = (self.now)();
        let status = match outcome {
            Ok((snapshot, path, warnings)) => {
                let c = counters.snapshot();
                let mut st = json!({"phase": "Completed", "snapshotID": snapshot, "path": path,
                    "completionTimestamp": finished,
                    "progress": {"totalBytes": c.bytes_done, "bytesDone": c.bytes_done}});
                if !warnings.is_empty() {
                    st["message"] = warnings.into();
                }
                st
            }
            Err(Stop::Canceled) => json!({"phase": "Canceled", "completionTimestamp": finished,
                "message": "canceled while it ran (spec.cancel, the Backup deleted, or the timeout); nothing of it was committed"}),
            Err(Stop::Failed(why)) => {
                json!({"phase": "Failed", "completionTimestamp": finished, "message": why})
            }
        };
        self.patch(name, status);
    }

    /// The backup proper: the snapshot's ID, the directory read, and a warning sentence
    /// (empty without warnings).
    fn back_up(
        &self,
        pvb: &PodVolumeBackup,
        cancel: &AtomicBool,
        counters: &repo_fs::Counters,
    ) -> Result<(String, String, String), Stop> {
        let spec = &pvb.spec;
        let pod_ns = spec.pod.namespace.clone().unwrap_or_default();
        let pod_name = spec.pod.name.clone().unwrap_or_default();
        let built_in = Discovery::built_in();
        let get = |resource: &str, ns: Option<&str>, name: &str| -> Result<Option<Object>, Stop> {
            let r = built_in.resolve(resource).expect("built in");
            self.cluster
                .get(r, ns, name)
                .map_err(|e| Stop::Failed(e.to_string()))
        };
        let pod = get("pods", Some(&pod_ns), &pod_name)?.ok_or_else(|| {
            Stop::Failed(format!(
                "pod {pod_ns}/{pod_name} does not exist any more; its volume {} was not backed up",
                spec.volume
            ))
        })?;
        let uid = pod
            .get(&["metadata", "uid"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        if spec.pod.uid.as_deref().is_some_and(|want| want != uid) {
            return Err(Stop::Failed(format!("pod {pod_ns}/{pod_name} was replaced (UID {uid}, not {}); its volume {} was not backed up", spec.pod.uid.as_deref().unwrap_or(""), spec.volume)));
        }
        let claim = pod
            .get(&["spec", "volumes"])
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v["name"] == spec.volume.as_str()))
            .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .map(str::to_string);
        let pv = match &claim {
            Some(c) => {
                let pvc = get("persistentvolumeclaims", Some(&pod_ns), c)?.ok_or_else(|| {
                    Stop::Failed(format!(
                        "claim {pod_ns}/{c} of volume {} does not exist",
                        spec.volume
                    ))
                })?;
                match pvc.get(&["spec", "volumeName"]).and_then(Value::as_str) {
                    Some(pv) => get("persistentvolumes", None, pv)?,
                    None => None,
                }
            }
            None => None,
        };
        let dir_name = repo_k8s::podvolumes::locate::dir_name(&pod, &spec.volume, pv.as_ref())
            .map_err(Stop::Failed)?;
        let dir =
            repo_k8s::podvolumes::locate::find(&self.pods_dir, uid, &dir_name).map_err(|e| {
                Stop::Failed(format!(
                    "volume {} of pod {pod_ns}/{pod_name} on node {}: {e}",
                    spec.volume, self.node
                ))
            })?;
        let location = get_location(self, &spec.backup_storage_location)?;
        let repo = cairn_server::repository::open(
            self.cluster,
            &location,
            &self.namespace,
            &self.open_options,
            &self.unlocked,
        )
        .map_err(Stop::Failed)?;
        let tags: Vec<String> = spec.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let parent_tags = match spec.tags.contains_key("pvc-uid") {
            true => vec!["pvc-uid".to_string()],
            false => vec!["ns".into(), "pod".into(), "volume".into()],
        };
        let source = format!(
            "{pod_ns}/{pod_name}/{}",
            claim.as_deref().unwrap_or(&spec.volume)
        );
        let cancel_flag = Arc::new(AtomicBool::new(false));
        let opts = repo_fs::BackupOptions {
            source: Some(source),
            host: Some(self.node.clone()),
            tags,
            parent_tags,
            scan: true,
            cancel: cancel_flag.clone(),
            ..Default::default()
        };
        // repo-fs watches its own flag; this thread forwards ours to it.
        let done = AtomicBool::new(false);
        let out = std::thread::scope(|s| {
            let forwarder = s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if cancel.load(Ordering::Relaxed) {
                        cancel_flag.store(true, Ordering::Relaxed);
                        break;
                    }
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            });
            let out = repo_fs::backup(&repo, std::slice::from_ref(&dir), &opts, counters);
            done.store(true, Ordering::Relaxed);
            forwarder.thread().unpark();
            out
        });
        match out {
            Ok(o) => {
                let warnings = match o.warnings.first() {
                    None => String::new(),
                    Some(first) => format!("{} entries could not be read and are not in the backup, the first: {first}", o.warnings.len()),
                };
                Ok((o.id.to_string(), dir.display().to_string(), warnings))
            }
            Err(repo_core::Error::Cancelled) => Err(Stop::Canceled),
            Err(e) => Err(Stop::Failed(format!("backing up {}: {e}", dir.display()))),
        }
    }

    /// Merges `status` into a PodVolumeBackup's status (Velero's CRDs have no status
    /// subresource: the status is written with the object).
    fn patch(&self, name: &str, status: Value) {
        let _ = self.cluster.merge_patch(
            &resource::<PodVolumeBackup>(),
            Some(&self.namespace),
            name,
            &json!({ "status": status }),
        );
    }
}

fn get_location(m: &DataMover, name: &str) -> Result<BackupStorageLocation, Stop> {
    let o = m
        .cluster
        .get(
            &resource::<BackupStorageLocation>(),
            Some(&m.namespace),
            name,
        )
        .map_err(|e| Stop::Failed(e.to_string()))?
        .ok_or_else(|| {
            Stop::Failed(format!(
                "backup storage location {name:?} does not exist in namespace {}",
                m.namespace
            ))
        })?;
    typed(&o).ok_or_else(|| Stop::Failed(format!("backup storage location {name} is not readable")))
}

/// Why a volume's backup stopped.
enum Stop {
    Canceled,
    Failed(String),
}

fn typed<K: serde::de::DeserializeOwned>(o: &Object) -> Option<K> {
    serde_json::from_value(Value::Object(o.as_value().clone())).ok()
}
