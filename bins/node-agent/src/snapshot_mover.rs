//! The node-agent's half of CSI snapshot data movement ([`repo_k8s::data_move`] has the
//! whole path): DataUploads and DataDownloads, with Velero's phases.
//!
//! - `New`: every node-agent tries to accept it; the write carries the resourceVersion it
//!   read, so exactly one wins (`Accepted`, `acceptedByNode`). The winner *exposes* it:
//!   - an upload's snapshot is moved into the server's namespace (a VolumeSnapshotContent
//!     on the same snapshot and a VolumeSnapshot bound to it, both named after the
//!     DataUpload; the source snapshot is let go with its content kept), a temporary claim
//!     is made from it, and a data-mover pod mounts that claim;
//!   - a download gets an empty temporary claim like its target, and the pod.
//! - `Prepared` (`node`): the pod runs; the node-agent of that node takes it from here.
//! - `InProgress` → `Completed` / `Failed` / `Canceled`: the volume, as the pod's node
//!   mounts it, is backed up with the source claim's identity (its parent is the previous
//!   backup of the same claim), or the data is restored into it and the volume is handed
//!   to the restored claim (Velero's PV re-binding).
//!
//! Whatever happens, what was made for it is deleted (the snapshot with it): when it ends,
//! when it is cancelled or times out while being prepared, when its node-agent finds it
//! left `InProgress` at start (that one is `Failed`: nothing of it was committed), and when
//! its DataUpload or DataDownload is gone.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use repo_k8s::data_move::{
    mover_claim, mover_pod, DATA_DOWNLOAD_LABEL, DATA_UPLOAD_LABEL, DYNAMIC_PV_RESTORE_LABEL,
};
use repo_k8s::podvolumes::objects::PVC_UID_LABEL;
use repo_k8s::velero::{
    go_duration, resource, DataDownload, DataMovePhase, DataUpload, Kind, ObjectReference,
};
use repo_k8s::{Discovery, Object, Resource};
use serde_json::{json, Value};

use crate::data_mover::{failed, forwarding_cancel, DataMover, Stop};

/// How long a prepared move may wait for its pod when its object does not say.
pub const DEFAULT_PREPARE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long a restored claim may take to bind to the volume handed to it.
const BIND_TIMEOUT: Duration = Duration::from_secs(120);

fn built_in(plural: &str) -> Resource {
    Discovery::built_in()
        .resolve(plural)
        .expect("built in")
        .clone()
}

/// Which of the two a move is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

impl Direction {
    /// The label of the objects made for it.
    fn label(self) -> &'static str {
        match self {
            Direction::Upload => DATA_UPLOAD_LABEL,
            Direction::Download => DATA_DOWNLOAD_LABEL,
        }
    }
}

/// What the loop needs of a DataUpload or a DataDownload.
#[derive(Clone, Debug)]
pub struct Move {
    pub direction: Direction,
    pub name: String,
    pub phase: DataMovePhase,
    pub cancel: bool,
    pub accepted_by: String,
    pub node: String,
    pub resource_version: String,
    pub prepare_timeout: Duration,
}

impl Move {
    pub fn of_upload(d: &DataUpload) -> Move {
        let s = d.status.clone().unwrap_or_default();
        Move {
            direction: Direction::Upload,
            name: d.metadata.name.clone(),
            phase: s.phase.unwrap_or_default(),
            cancel: d.spec.cancel,
            accepted_by: s.accepted_by_node,
            node: s.node,
            resource_version: d.metadata.resource_version.clone().unwrap_or_default(),
            prepare_timeout: timeout(&d.spec.operation_timeout),
        }
    }

    pub fn of_download(d: &DataDownload) -> Move {
        let s = d.status.clone().unwrap_or_default();
        Move {
            direction: Direction::Download,
            name: d.metadata.name.clone(),
            phase: s.phase.unwrap_or_default(),
            cancel: d.spec.cancel,
            accepted_by: s.accepted_by_node,
            node: s.node,
            resource_version: d.metadata.resource_version.clone().unwrap_or_default(),
            prepare_timeout: timeout(&d.spec.operation_timeout),
        }
    }

    fn is_final(&self) -> bool {
        matches!(
            self.phase,
            DataMovePhase::Completed | DataMovePhase::Failed | DataMovePhase::Canceled
        )
    }
}

fn timeout(text: &str) -> Duration {
    go_duration(text)
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_PREPARE_TIMEOUT)
}

impl DataMover<'_> {
    fn resource_of(direction: Direction) -> Resource {
        match direction {
            Direction::Upload => resource::<DataUpload>(),
            Direction::Download => resource::<DataDownload>(),
        }
    }

    /// Merges `status` into move `m`'s object.
    fn patch_move(&self, m: &Move, status: Value) {
        match m.direction {
            Direction::Upload => self.patch::<DataUpload>(&m.name, status),
            Direction::Download => self.patch::<DataDownload>(&m.name, status),
        }
    }

    /// Ends move `m` with `phase` and `message`, after deleting what was made for it.
    pub(crate) fn end_move(&self, m: &Move, phase: &str, message: &str) {
        self.clean_up(m.direction, &m.name);
        // What the loop saw may be behind: a move that has ended keeps how it ended.
        let now = self
            .cluster
            .get(
                &Self::resource_of(m.direction),
                Some(&self.namespace),
                &m.name,
            )
            .ok()
            .flatten();
        let phase_now = now.as_ref().and_then(|o| o.str_at(&["status", "phase"]));
        if matches!(phase_now, Some("Completed" | "Failed" | "Canceled")) {
            return;
        }
        eprintln!(
            "node-agent: {} {} {phase}: {message}",
            kind_of(m.direction),
            m.name
        );
        self.patch_move(
            m,
            json!({"phase": phase, "message": message, "completionTimestamp": (self.now)()}),
        );
    }

    /// One round over the moves not yet running here: accepts and exposes new ones, marks
    /// exposed ones Prepared once their pod runs, cancels and times them out. Returns the
    /// moves this node should run now (Prepared on this node).
    pub(crate) fn step_moves(
        &self,
        moves: &[Move],
        accepted_at: &mut BTreeMap<String, Instant>,
    ) -> Vec<Move> {
        let mut ready = Vec::new();
        for m in moves {
            let mine = m.accepted_by == self.node;
            match m.phase {
                DataMovePhase::New if m.cancel => {
                    self.end_move(m, "Canceled", "canceled before it started")
                }
                // Another node-agent may take it first: then this one leaves it be.
                DataMovePhase::New if self.accept(m) => {
                    accepted_at.insert(m.name.clone(), Instant::now());
                    if let Err(why) = self.expose(m) {
                        self.end_move(m, "Failed", &why);
                    }
                }
                DataMovePhase::Accepted | DataMovePhase::Prepared if m.cancel && mine => {
                    self.end_move(m, "Canceled", "canceled before its data moved")
                }
                DataMovePhase::Accepted if mine => {
                    let since = *accepted_at
                        .entry(m.name.clone())
                        .or_insert_with(Instant::now);
                    match self.mover_pod_state(m) {
                        Ok(Some(node)) => self.patch_move(
                            m,
                            json!({"phase": "Prepared", "node": node}),
                        ),
                        Ok(None) if since.elapsed() < m.prepare_timeout => {}
                        Ok(None) => self.end_move(m, "Failed", &format!(
                            "its data-mover pod {}/{} did not run within {} (operationTimeout): check that the storage class can provision the temporary claim {}/{} and that a node can run the pod",
                            self.namespace, m.name, humantime::format_duration(m.prepare_timeout), self.namespace, m.name)),
                        Err(why) => self.end_move(m, "Failed", &why),
                    }
                }
                DataMovePhase::Prepared if m.node == self.node && !m.cancel => {
                    ready.push(m.clone())
                }
                _ => {}
            }
        }
        accepted_at.retain(|name, _| moves.iter().any(|m| &m.name == name && !m.is_final()));
        ready
    }

    /// Takes move `m` for this node; false if another node-agent did first.
    fn accept(&self, m: &Move) -> bool {
        let patch = json!({"metadata": {"resourceVersion": m.resource_version},
            "status": {"phase": "Accepted", "acceptedByNode": self.node,
                "acceptedTimestamp": (self.now)()}});
        self.cluster
            .merge_patch(
                &Self::resource_of(m.direction),
                Some(&self.namespace),
                &m.name,
                &patch,
            )
            .is_ok()
    }

    /// The node of `m`'s data-mover pod once it runs (`None` while it does not yet).
    fn mover_pod_state(&self, m: &Move) -> Result<Option<String>, String> {
        let pod = self
            .cluster
            .get(&built_in("pods"), Some(&self.namespace), &m.name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "its data-mover pod {}/{} was deleted before it ran",
                    self.namespace, m.name
                )
            })?;
        let phase = pod.str_at(&["status", "phase"]).unwrap_or("");
        if phase == "Failed" {
            return Err(format!(
                "its data-mover pod {}/{} failed: {}",
                self.namespace,
                m.name,
                pod.str_at(&["status", "message"]).unwrap_or("no message")
            ));
        }
        Ok((phase == "Running")
            .then(|| pod.str_at(&["spec", "nodeName"]).map(str::to_string))
            .flatten())
    }

    /// Makes what move `m` needs: for an upload its snapshot moved here and a claim from
    /// it, for a download an empty claim like its target; then the pod that mounts it.
    fn expose(&self, m: &Move) -> Result<(), String> {
        let ns = self.namespace.as_str();
        let label = (m.direction.label(), m.name.as_str());
        let source = match m.direction {
            Direction::Upload => {
                let o = self.get_typed::<DataUpload>(&m.name)?;
                self.move_snapshot_here(&o)?;
                let claim = self
                    .cluster
                    .get(
                        &built_in("persistentvolumeclaims"),
                        Some(&o.spec.source_namespace),
                        &o.spec.source_pvc,
                    )
                    .map_err(|e| e.to_string())?;
                // The source claim may be gone; its class is in the DataUpload.
                let class = o
                    .spec
                    .csi_snapshot
                    .as_ref()
                    .map(|c| c.storage_class.clone())
                    .unwrap_or_default();
                let source = claim
                    .map(|c| Value::Object(c.as_value().clone()))
                    .unwrap_or_else(|| json!({"spec": {"storageClassName": class}}));
                mover_claim(&m.name, ns, label, &source, Some(&m.name))
            }
            Direction::Download => {
                let o = self.get_typed::<DataDownload>(&m.name)?;
                let t = &o.spec.target_volume;
                let target = self
                    .cluster
                    .get(
                        &built_in("persistentvolumeclaims"),
                        Some(&t.namespace),
                        &t.pvc,
                    )
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "the restored claim {}/{} does not exist; nothing to restore into",
                            t.namespace, t.pvc
                        )
                    })?;
                mover_claim(
                    &m.name,
                    ns,
                    label,
                    &Value::Object(target.as_value().clone()),
                    None,
                )
            }
        };
        self.create_value("persistentvolumeclaims", source)?;
        self.create_value("pods", mover_pod(&m.name, ns, label, &self.mover_image))?;
        Ok(())
    }

    /// Moves a DataUpload's snapshot into this namespace: a content on the same snapshot and
    /// a VolumeSnapshot bound to it (named after the DataUpload); the source snapshot is
    /// deleted with its content retained, so the data stays until the copy here goes.
    fn move_snapshot_here(&self, du: &DataUpload) -> Result<(), String> {
        let snapshots = built_in("volumesnapshots.snapshot.storage.k8s.io");
        let contents = built_in("volumesnapshotcontents.snapshot.storage.k8s.io");
        let csi = du.spec.csi_snapshot.clone().unwrap_or_default();
        let src_ns = du.spec.source_namespace.as_str();
        let about = format!("VolumeSnapshot {src_ns}/{}", csi.volume_snapshot);
        let source = self
            .cluster
            .get(&snapshots, Some(src_ns), &csi.volume_snapshot)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{about} does not exist any more; back the claim up again"))?;
        let content_name = source
            .str_at(&["status", "boundVolumeSnapshotContentName"])
            .ok_or_else(|| format!("{about} is bound to no VolumeSnapshotContent"))?
            .to_string();
        let content = self
            .cluster
            .get(&contents, None, &content_name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("VolumeSnapshotContent {content_name} of {about} does not exist")
            })?;
        let handle = content
            .str_at(&["status", "snapshotHandle"])
            .ok_or_else(|| {
                format!("VolumeSnapshotContent {content_name} of {about} has no snapshotHandle yet")
            })?;
        let label = json!({DATA_UPLOAD_LABEL: du.metadata.name});
        self.create_value("volumesnapshotcontents.snapshot.storage.k8s.io", json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
            "metadata": {"name": du.metadata.name, "labels": label},
            "spec": {"driver": csi.driver, "deletionPolicy": "Delete",
                "volumeSnapshotClassName": csi.snapshot_class,
                "source": {"snapshotHandle": handle},
                "volumeSnapshotRef": {"kind": "VolumeSnapshot", "namespace": self.namespace, "name": du.metadata.name}}}))?;
        self.create_value(
            "volumesnapshots.snapshot.storage.k8s.io",
            json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": du.metadata.name, "namespace": self.namespace, "labels": label},
            "spec": {"volumeSnapshotClassName": csi.snapshot_class,
                "source": {"volumeSnapshotContentName": du.metadata.name}}}),
        )?;
        // The source goes, its content first retained: the snapshot is now ours alone.
        self.cluster
            .merge_patch(
                &contents,
                None,
                &content_name,
                &json!({"spec": {"deletionPolicy": "Retain"}}),
            )
            .map_err(|e| e.to_string())?;
        self.cluster
            .delete(&snapshots, Some(src_ns), &csi.volume_snapshot)
            .map_err(|e| e.to_string())?;
        self.cluster
            .delete(&contents, None, &content_name)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Deletes what was made for move `name`: the pod, the claim and, for an upload, the
    /// snapshot (whose content's policy deletes the data).
    pub(crate) fn clean_up(&self, direction: Direction, name: &str) {
        let ns = Some(self.namespace.as_str());
        let _ = self.cluster.delete(&built_in("pods"), ns, name);
        let _ = self
            .cluster
            .delete(&built_in("persistentvolumeclaims"), ns, name);
        if direction == Direction::Upload {
            let snapshots = built_in("volumesnapshots.snapshot.storage.k8s.io");
            let contents = built_in("volumesnapshotcontents.snapshot.storage.k8s.io");
            let _ = self.cluster.delete(&snapshots, ns, name);
            let _ = self.cluster.delete(&contents, None, name);
        }
    }

    /// Deletes what was made for moves that no longer exist or have ended (their
    /// DataUpload or DataDownload deleted with its Backup or Restore, or a node-agent that
    /// stopped between the end and the clean-up).
    pub(crate) fn sweep(&self, moves: &[Move]) {
        let live = |direction: Direction, name: &str| {
            moves
                .iter()
                .any(|m| m.direction == direction && m.name == name && !m.is_final())
        };
        for direction in [Direction::Upload, Direction::Download] {
            let label = direction.label();
            for plural in ["pods", "persistentvolumeclaims"] {
                let r = built_in(plural);
                let found = self
                    .cluster
                    .list_selected(&r, Some(&self.namespace), Some(label))
                    .unwrap_or_default();
                for o in found {
                    let owner = o.label(label).unwrap_or_default().to_string();
                    // What this loop saw may be older than the object: ask again.
                    if !live(direction, &owner) && !self.is_live(direction, &owner) {
                        self.clean_up(direction, &owner);
                    }
                }
            }
        }
    }

    /// Whether move `name` exists now and has not ended (an error reading it: yes).
    fn is_live(&self, direction: Direction, name: &str) -> bool {
        match self
            .cluster
            .get(&Self::resource_of(direction), Some(&self.namespace), name)
        {
            Ok(Some(o)) => !matches!(
                o.str_at(&["status", "phase"]),
                Some("Completed" | "Failed" | "Canceled")
            ),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Moves the data of `m` (Prepared on this node), with Velero's status; cleans up after.
    pub(crate) fn run_move(&self, m: &Move, cancel: &AtomicBool) {
        match m.direction {
            Direction::Upload => self.run_job::<DataUpload>(
                &m.name,
                json!({"node": self.node, "nodeOS": "linux"}),
                |counters| self.upload(&m.name, cancel, counters),
            ),
            Direction::Download => {
                self.run_job::<DataDownload>(&m.name, json!({"node": self.node}), |counters| {
                    self.download(&m.name, cancel, counters)
                })
            }
        }
        self.clean_up(m.direction, &m.name);
    }

    /// Where the data-mover pod of move `name` has its volume on this node.
    fn mover_volume(&self, name: &str) -> Result<std::path::PathBuf, Stop> {
        let pod = ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(self.namespace.clone()),
            name: Some(name.into()),
            ..Default::default()
        };
        Ok(self.volume_dir(&pod, name)?.0)
    }

    fn upload(
        &self,
        name: &str,
        cancel: &AtomicBool,
        counters: &repo_fs::Counters,
    ) -> Result<Value, Stop> {
        let du = self.get_typed::<DataUpload>(name).map_err(failed)?;
        let dir = self.mover_volume(name)?;
        let repo = self.repository(&du.spec.backup_storage_location)?;
        let (ns, pvc) = (&du.spec.source_namespace, &du.spec.source_pvc);
        let mut tags = vec![
            format!("ns={ns}"),
            format!("pvc={pvc}"),
            format!("data-upload={name}"),
            "snapshot-type=CSI".to_string(),
        ];
        for (tag, label) in [
            ("backup", repo_k8s::podvolumes::objects::BACKUP_NAME_LABEL),
            (
                "backup-uid",
                repo_k8s::podvolumes::objects::BACKUP_UID_LABEL,
            ),
            ("pvc-uid", PVC_UID_LABEL),
        ] {
            if let Some(v) = du.metadata.labels.get(label).filter(|v| !v.is_empty()) {
                tags.push(format!("{tag}={v}"));
            }
        }
        // The previous backup of the same claim (through a snapshot or file by file) is the
        // parent; without its UID, the same namespace and name.
        let parent_tags = match du.metadata.labels.contains_key(PVC_UID_LABEL) {
            true => vec!["pvc-uid".to_string()],
            false => vec!["ns".to_string(), "pvc".to_string()],
        };
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let opts = repo_fs::BackupOptions {
            source: Some(format!("{ns}/{pvc}")),
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
                let mut fields =
                    json!({"snapshotID": o.id.to_string(), "path": dir.display().to_string()});
                if let Some(first) = o.warnings.first() {
                    fields["message"] = format!("{} entries could not be read and are not in the backup, the first: {first}", o.warnings.len()).into();
                }
                Ok(fields)
            }
            Err(repo_core::Error::Cancelled) => Err(Stop::Canceled),
            Err(e) => Err(failed(format!(
                "backing up the snapshot of claim {ns}/{pvc} (at {}): {e}",
                dir.display()
            ))),
        }
    }

    fn download(
        &self,
        name: &str,
        cancel: &AtomicBool,
        counters: &repo_fs::Counters,
    ) -> Result<Value, Stop> {
        let dd = self.get_typed::<DataDownload>(name).map_err(failed)?;
        let dir = self.mover_volume(name)?;
        self.restore_snapshot(
            &dd.spec.backup_storage_location,
            &dd.spec.snapshot_id,
            &dir,
            None,
            cancel,
            counters,
        )?;
        self.hand_over(&dd).map_err(failed)?;
        Ok(json!({}))
    }

    /// Gives the volume the data was written into to the restored claim: kept while the
    /// temporary claim and pod go, then bound to the target (its `claimRef`, and the label
    /// the target's selector asks for), its reclaim policy as it was.
    fn hand_over(&self, dd: &DataDownload) -> Result<(), String> {
        let ns = Some(self.namespace.as_str());
        let name = dd.metadata.name.as_str();
        let (claims, pvs) = (
            built_in("persistentvolumeclaims"),
            built_in("persistentvolumes"),
        );
        let t = &dd.spec.target_volume;
        let temp = self
            .cluster
            .get(&claims, ns, name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "the temporary claim {}/{name} is gone; the data cannot be handed over",
                    self.namespace
                )
            })?;
        let pv = temp
            .str_at(&["spec", "volumeName"])
            .ok_or("the temporary claim has no volume")?
            .to_string();
        let volume = self
            .cluster
            .get(&pvs, None, &pv)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("volume {pv} is gone"))?;
        let policy = volume
            .str_at(&["spec", "persistentVolumeReclaimPolicy"])
            .unwrap_or("Delete")
            .to_string();
        let target = self
            .cluster
            .get(&claims, Some(&t.namespace), &t.pvc)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the restored claim {}/{} was deleted", t.namespace, t.pvc))?;
        let selector = target
            .str_at(&["spec", "selector", "matchLabels", DYNAMIC_PV_RESTORE_LABEL])
            .unwrap_or_default()
            .to_string();
        self.cluster
            .merge_patch(
                &pvs,
                None,
                &pv,
                &json!({"spec": {"persistentVolumeReclaimPolicy": "Retain"}}),
            )
            .map_err(|e| format!("keeping volume {pv}: {e}"))?;
        let _ = self.cluster.delete(&built_in("pods"), ns, name);
        let _ = self.cluster.delete(&claims, ns, name);
        let patch = json!({"metadata": {"labels": {DYNAMIC_PV_RESTORE_LABEL: selector}},
            "spec": {"persistentVolumeReclaimPolicy": policy,
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": t.namespace,
                    "name": t.pvc, "uid": null, "resourceVersion": null}}});
        self.cluster
            .merge_patch(&pvs, None, &pv, &patch)
            .map_err(|e| {
                format!(
                    "binding volume {pv} to claim {}/{}: {e}",
                    t.namespace, t.pvc
                )
            })?;
        let deadline = Instant::now() + BIND_TIMEOUT;
        loop {
            let bound = self
                .cluster
                .get(&claims, Some(&t.namespace), &t.pvc)
                .ok()
                .flatten()
                .is_some_and(|c| c.str_at(&["spec", "volumeName"]) == Some(pv.as_str()));
            if bound {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the data is in volume {pv}, but claim {}/{} did not bind to it within {}; bind it by hand (the volume's claimRef names it)",
                    t.namespace, t.pvc, humantime::format_duration(BIND_TIMEOUT)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn get_typed<K: Kind + serde::de::DeserializeOwned>(&self, name: &str) -> Result<K, String> {
        let o = self
            .cluster
            .get(&resource::<K>(), Some(&self.namespace), name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} {}/{name} was deleted", K::KIND, self.namespace))?;
        serde_json::from_value(Value::Object(o.as_value().clone()))
            .map_err(|e| format!("{} {}/{name} is not readable: {e}", K::KIND, self.namespace))
    }

    fn create_value(&self, resource: &str, value: Value) -> Result<(), String> {
        let r = built_in(resource);
        let o = Object::from_value(value, &r.plural).map_err(|e| e.to_string())?;
        self.cluster
            .create(&r, &o)
            .map(|_| ())
            .map_err(|e| format!("creating {} {}: {e}", r.kind, o.name()))
    }
}

fn kind_of(d: Direction) -> &'static str {
    match d {
        Direction::Upload => DataUpload::KIND,
        Direction::Download => DataDownload::KIND,
    }
}
