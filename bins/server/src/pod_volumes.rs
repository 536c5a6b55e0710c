//! A backup's pod volumes (Velero's file-system backup): for each pod the backup takes,
//! the volumes chosen by Velero's rules ([`repo_k8s::podvolumes::select`]) get a
//! PodVolumeBackup that the node-agent on the pod's node moves; the backup waits for them
//! all (cancelling them if it is cancelled, or after `--fs-backup-timeout`), and each that
//! did not complete is an error of the backup (PartiallyFailed), naming the pod and volume.
//!
//! The volumes are read after the objects were listed and before the objects are stored,
//! so the backup's results include the volumes' errors, and the PodVolumeBackups (with
//! their snapshots) are stored beside the backup as `podvolumebackups.json`, for restores
//! in a cluster that no longer has them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use repo_k8s::filter::{BackupFilter, Filter};
use repo_k8s::podvolumes::objects::{
    pod_volume_backup, pod_volume_restore, BACKUP_UID_LABEL, PVC_NAME_ANNOTATION, RESTORE_UID_LABEL,
};
use repo_k8s::podvolumes::select::{choose, Claims, Context};
use repo_k8s::velero::{
    resource, Backup, Kind, PodVolumeBackup, PodVolumeBackupPhase, PodVolumeRestore,
    PodVolumeRestorePhase, Restore,
};
use repo_k8s::{Discovery, Object};
use serde_json::{json, Value};

use crate::backups::Controller;

/// The file beside a backup listing its PodVolumeBackups as they ended.
pub const POD_VOLUME_BACKUPS_FILE: &str = "podvolumebackups.json";

/// How long cancelled PodVolumeBackups are given to stop before the backup goes on.
const CANCEL_GRACE: Duration = Duration::from_secs(30);

/// Label of the node-agent's pods (Velero's), by which a node with a node-agent is found.
pub const NODE_AGENT_LABEL: &str = "role=node-agent";

/// What the pod volumes of one backup came to.
#[derive(Debug, Default)]
pub struct PodVolumes {
    /// The PodVolumeBackups as they ended.
    pub ended: Vec<PodVolumeBackup>,
    /// `(namespace, error)`: volumes that were not backed up, and why.
    pub errors: Vec<(String, String)>,
    /// Volumes skipped by the rules, with why (for the log).
    pub skipped: Vec<String>,
    /// `(namespace, warning)`: volumes whose data is not in the backup by choice (a
    /// snapshot that cannot be taken or moved).
    pub warnings: Vec<(String, String)>,
    /// The DataUploads of claims moved through CSI snapshots, as they ended.
    pub uploads: Vec<repo_k8s::velero::DataUpload>,
}

pub(crate) fn is_final(p: &PodVolumeBackup) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase),
        Some(
            PodVolumeBackupPhase::Completed
                | PodVolumeBackupPhase::Failed
                | PodVolumeBackupPhase::Canceled
        )
    )
}

/// Whether a backup's filter leaves PersistentVolumeClaims out (Velero's
/// `ShouldInclude("persistentvolumeclaims")`, which looks at the resource lists only).
pub fn claims_excluded(f: &BackupFilter, d: &Discovery) -> bool {
    let is_claims = |n: &String| {
        n == "*"
            || d.resolve(n)
                .is_ok_and(|r| r.group_resource() == "persistentvolumeclaims")
    };
    let excluded = f
        .exclude_resources
        .iter()
        .chain(&f.exclude_namespace_scoped_resources)
        .any(|n| n != "*" && is_claims(n));
    let includes: Vec<&String> = f
        .include_resources
        .iter()
        .chain(&f.include_namespace_scoped_resources)
        .collect();
    excluded || (!includes.is_empty() && !includes.iter().any(|n| is_claims(n)))
}

/// The pod volume backups stored beside a backup that hold data (Completed, with a
/// snapshot), as they ended.
pub fn backed_up(
    repo: &repo_core::IndexedRepository,
    snapshot: &repo_core::ObjectId,
) -> Result<Vec<PodVolumeBackup>, String> {
    let Some(bytes) = repo_k8s::catalog::root_file(repo, snapshot, POD_VOLUME_BACKUPS_FILE)
        .map_err(|e| e.to_string())?
    else {
        return Ok(Vec::new());
    };
    let all: Vec<PodVolumeBackup> = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the backup's {POD_VOLUME_BACKUPS_FILE} is not readable: {e}"))?;
    Ok(all
        .into_iter()
        .filter(|p| {
            p.status.as_ref().is_some_and(|s| {
                s.phase == Some(PodVolumeBackupPhase::Completed) && !s.snapshot_id.is_empty()
            })
        })
        .collect())
}

pub(crate) fn restore_is_final(p: &PodVolumeRestore) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase),
        Some(
            PodVolumeRestorePhase::Completed
                | PodVolumeRestorePhase::Failed
                | PodVolumeRestorePhase::Canceled
        )
    )
}

impl Controller<'_> {
    /// Tells the restore plan which pods have volume data (they get the restore-wait init
    /// container) and which claims (their volumes are provisioned anew).
    pub(crate) fn plan_pod_volumes(
        &self,
        restore: &Restore,
        volumes: &[PodVolumeBackup],
        opts: &mut repo_k8s::restore::RestoreOptions,
    ) {
        if volumes.is_empty() {
            return;
        }
        for p in volumes {
            let ns = p.spec.pod.namespace.clone().unwrap_or_default();
            let pod = p.spec.pod.name.clone().unwrap_or_default();
            opts.pod_volumes
                .entry((ns.clone(), pod))
                .or_default()
                .push(p.spec.volume.clone());
            if let Some(claim) = p.metadata.annotations.get(PVC_NAME_ANNOTATION) {
                opts.claims_with_data.insert((ns, claim.clone()));
            }
        }
        opts.restore_wait = Some(repo_k8s::restore::RestoreWait {
            image: self.restore_helper_image.clone(),
            command: vec!["/node-agent".into(), "restore-wait".into()],
            restore_uid: restore.metadata.uid.clone().unwrap_or_default(),
        });
    }

    /// After the objects are restored: a PodVolumeRestore for each volume with data of each
    /// restored pod, waited for (cancelled with the restore, or after the timeout); returns
    /// `(namespace, error)` for each volume whose data did not come back.
    pub(crate) fn restore_pod_volumes(
        &self,
        restore: &Restore,
        volumes: &[PodVolumeBackup],
        cancel: &dyn Fn() -> bool,
    ) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let built_in = Discovery::built_in();
        let get = |resource: &str, ns: Option<&str>, name: &str| {
            let r = built_in.resolve(resource).expect("built in");
            self.cluster.get(r, ns, name).ok().flatten()
        };
        let mut created = Vec::new();
        for pvb in volumes {
            let source_ns = pvb.spec.pod.namespace.clone().unwrap_or_default();
            let ns = restore
                .spec
                .namespace_mapping
                .get(&source_ns)
                .cloned()
                .unwrap_or(source_ns);
            let pod_name = pvb.spec.pod.name.clone().unwrap_or_default();
            // A pod the restore left out (its filters) has nothing to receive the data.
            let Some(pod) = get("pods", Some(&ns), &pod_name) else {
                continue;
            };
            let claim_uid = pod
                .get(&["spec", "volumes"])
                .and_then(Value::as_array)
                .and_then(|vs| vs.iter().find(|v| v["name"] == pvb.spec.volume.as_str()))
                .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str())
                .and_then(|c| get("persistentvolumeclaims", Some(&ns), c))
                .and_then(|c| {
                    c.get(&["metadata", "uid"])
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            let pvr = pod_volume_restore(restore, pvb, &pod, claim_uid.as_deref());
            match self.create(&pvr) {
                Ok(name) => created.push(name),
                Err(e) => errors.push((ns.clone(), format!(
                    "volume {} of pod {ns}/{pod_name}: the PodVolumeRestore could not be created: {e}", pvb.spec.volume))),
            }
        }
        if created.is_empty() {
            return errors;
        }
        let uid = restore.metadata.uid.clone().unwrap_or_default();
        let selector = format!("{RESTORE_UID_LABEL}={uid}");
        let ended: Vec<PodVolumeRestore> = self.wait_for_ended(
            &selector,
            &created,
            restore_is_final,
            cancel,
            &mut errors,
            &mut |_| {},
        );
        for p in &ended {
            let phase = p.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
            if phase != PodVolumeRestorePhase::Completed {
                let ns = p.spec.pod.namespace.clone().unwrap_or_default();
                let message = p.status.as_ref().map(|s| s.message.as_str()).unwrap_or("");
                errors.push((
                    ns.clone(),
                    format!(
                        "pod volume restore of volume {} of pod {ns}/{} {}: {message}",
                        p.spec.volume,
                        p.spec.pod.name.as_deref().unwrap_or_default(),
                        match phase {
                            PodVolumeRestorePhase::Canceled => "canceled",
                            _ => "failed",
                        },
                    ),
                ));
            }
        }
        errors
    }

    /// Creates `object` (named by `generateName`); its name.
    pub(crate) fn create<K: Kind + serde::Serialize>(&self, object: &K) -> Result<String, String> {
        let value = serde_json::to_value(object).expect("JSON");
        let o = Object::from_value(value, K::PLURAL).map_err(|e| e.to_string())?;
        match self
            .cluster
            .create(&resource::<K>(), &o)
            .map_err(|e| e.to_string())?
        {
            repo_k8s::cluster::Created::Created(o)
            | repo_k8s::cluster::Created::AlreadyExists(o) => Ok(o.name().to_string()),
        }
    }

    /// The pods `backup` takes (its filters over the cluster's pods).
    pub(crate) fn pods_of(&self, backup: &Backup, d: &Discovery) -> Result<Vec<Object>, String> {
        let pods_resource = d.resolve("pods").map_err(|e| e.to_string())?.clone();
        let pods = self
            .cluster
            .list(&pods_resource, None)
            .map_err(|e| e.to_string())?;
        let filter = Filter::new(&crate::backups::filter(backup), d).map_err(|e| e.to_string())?;
        let selected = filter.select(&pods, d);
        Ok(selected
            .items
            .iter()
            .map(|(i, _)| pods[*i].clone())
            .collect())
    }

    /// Backs up the volumes of `pods` for `backup` and waits for them (see the module
    /// documentation). `volumes_read` is called once for each pod, as soon as its volumes
    /// have ended (at once for a pod without any): where its post hooks run.
    pub(crate) fn back_up_pod_volumes(
        &self,
        backup: &Backup,
        pods: &[Object],
        claims_excluded: bool,
        volume_policies: Option<&repo_k8s::volume_policy::VolumePolicies>,
        cancel: &dyn Fn() -> bool,
        volumes_read: &mut dyn FnMut(&Object),
    ) -> PodVolumes {
        let mut out = PodVolumes::default();
        let default_to_fs = backup
            .spec
            .default_volumes_to_fs_backup
            .unwrap_or(self.default_volumes_to_fs_backup);
        let built_in = Discovery::built_in();
        let get = |resource: &str, ns: Option<&str>, name: &str| {
            let r = built_in.resolve(resource).expect("built in");
            self.cluster.get(r, ns, name).ok().flatten()
        };
        let agents = self.nodes_with_agents();
        let move_data = backup
            .spec
            .snapshot_move_data
            .unwrap_or(self.default_snapshot_move_data);
        let snapshot_claims = move_data && backup.spec.snapshot_volumes != Some(false);
        let mut claims = Claims::default();
        let mut created = Vec::new();
        // What each pod's volumes take, by the pod's place in `pods`.
        let mut chosen_of: Vec<Vec<repo_k8s::podvolumes::select::PodVolume>> = Vec::new();
        let mut snapshots = Vec::new();
        for pod in pods {
            let ns = pod.namespace().unwrap_or_default().to_string();
            let volume_of_claim = |c: &str| {
                let pvc = get("persistentvolumeclaims", Some(&ns), c)?;
                let pv = pvc.get(&["spec", "volumeName"])?.as_str()?.to_string();
                get("persistentvolumes", None, &pv)
            };
            // A pod volume as the policies see it: with its claim and the claim's volume.
            let policy = |v: &Value| {
                let vp = volume_policies?;
                let claim = v["persistentVolumeClaim"]["claimName"].as_str();
                let pvc = claim.and_then(|c| get("persistentvolumeclaims", Some(&ns), c));
                let pv = claim.and_then(&volume_of_claim);
                let volume = repo_k8s::volume_policy::Volume {
                    pv: pv.as_ref(),
                    pod_volume: Some(v),
                    pvc: pvc.as_ref(),
                };
                vp.action_for(&volume).cloned()
            };
            let cx = Context {
                default_to_fs_backup: default_to_fs,
                exclude_claims: claims_excluded,
                volume_of_claim: &volume_of_claim,
                policy: volume_policies.map(|_| &policy as &repo_k8s::podvolumes::select::PolicyOf),
                snapshot_claims,
            };
            let mut chosen = choose(pod, &cx);
            let pod_name = pod.name().to_string();
            snapshots.extend(
                chosen
                    .snapshot
                    .drain(..)
                    .map(|v| (ns.clone(), pod_name.clone(), v)),
            );
            claims.apply(pod, &mut chosen);
            out.skipped
                .extend(chosen.skipped.iter().map(|(_, why)| why.clone()));
            chosen_of.push(chosen.volumes);
        }
        // The snapshots first: a pod's post hooks run once its snapshots are taken and its
        // file-by-file volumes read.
        let uploads = self.snapshot_claims(backup, &snapshots, cancel, &mut out);
        // The PodVolumeBackups of each pod, by the pod's place in `pods`.
        let mut of_pod: Vec<Vec<String>> = vec![Vec::new(); pods.len()];
        for (at, pod) in pods.iter().enumerate() {
            let ns = pod.namespace().unwrap_or_default().to_string();
            let volumes = &chosen_of[at];
            if volumes.is_empty() {
                continue;
            }
            let node = pod
                .get(&["spec", "nodeName"])
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !agents.contains(node) {
                let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
                out.errors.push((ns.clone(), format!(
                    "no node-agent runs on node {node} (a Running pod labelled {NODE_AGENT_LABEL} in namespace {}): volumes {} of pod {ns}/{} were not backed up; run the node-agent DaemonSet (deploy/node-agent.yaml) on that node",
                    self.namespace, names.join(", "), pod.name())));
                continue;
            }
            for v in volumes {
                let claim_uid = v.claim.as_deref().and_then(|c| {
                    get("persistentvolumeclaims", Some(&ns), c)?
                        .get(&["metadata", "uid"])?
                        .as_str()
                        .map(str::to_string)
                });
                let pvb = pod_volume_backup(backup, pod, v, claim_uid.as_deref());
                match self.create(&pvb) {
                    Ok(name) => {
                        created.push(name.clone());
                        of_pod[at].push(name);
                    }
                    Err(e) => out.errors.push((ns.clone(), format!(
                        "volume {} of pod {ns}/{}: the PodVolumeBackup could not be created: {e}", v.name, pod.name()))),
                }
            }
        }
        let mut told = vec![false; pods.len()];
        let mut tell = |ended: &[PodVolumeBackup]| {
            for (at, pod) in pods.iter().enumerate() {
                let done = of_pod[at]
                    .iter()
                    .all(|n| ended.iter().any(|p| &p.metadata.name == n && is_final(p)));
                if !told[at] && done {
                    told[at] = true;
                    volumes_read(pod);
                }
            }
        };
        tell(&[]);
        let uid = backup.metadata.uid.clone().unwrap_or_default();
        let selector = format!("{BACKUP_UID_LABEL}={uid}");
        let ended = match created.is_empty() {
            true => Vec::new(),
            false => self.wait_for_ended(
                &selector,
                &created,
                is_final,
                cancel,
                &mut out.errors,
                &mut tell,
            ),
        };
        // Whatever did not end (a timeout, a cancelled backup): the pods' post hooks run
        // all the same, as an application left quiesced is worse than a late resume.
        for (at, pod) in pods.iter().enumerate() {
            if !told[at] {
                told[at] = true;
                volumes_read(pod);
            }
        }
        for p in &ended {
            let phase = p.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
            if phase != PodVolumeBackupPhase::Completed {
                let ns = p.spec.pod.namespace.clone().unwrap_or_default();
                let message = p.status.as_ref().map(|s| s.message.as_str()).unwrap_or("");
                out.errors.push((
                    ns.clone(),
                    format!(
                        "pod volume backup of volume {} of pod {ns}/{} {}: {message}",
                        p.spec.volume,
                        p.spec.pod.name.as_deref().unwrap_or_default(),
                        match phase {
                            PodVolumeBackupPhase::Canceled => "canceled",
                            _ => "failed",
                        },
                    ),
                ));
            }
        }
        out.ended = ended;
        self.wait_for_uploads(backup, &uploads, cancel, &mut out);
        out
    }

    /// The nodes where a node-agent pod is Running.
    fn nodes_with_agents(&self) -> BTreeSet<String> {
        let pods = Discovery::built_in()
            .resolve("pods")
            .expect("built in")
            .clone();
        self.cluster
            .list_selected(&pods, Some(&self.namespace), Some(NODE_AGENT_LABEL))
            .unwrap_or_default()
            .iter()
            .filter(|p| p.get(&["status", "phase"]).and_then(Value::as_str) == Some("Running"))
            .filter_map(|p| {
                p.get(&["spec", "nodeName"])
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }

    /// Waits until the objects `names` of kind `K` (matching `selector`) end; cancels them
    /// (`spec.cancel`) when `cancel` says so or the timeout passes. Returns them as they
    /// ended. `each_step` sees them as they are, every step of the wait.
    pub(crate) fn wait_for_ended<K: Kind>(
        &self,
        selector: &str,
        names: &[String],
        is_final: fn(&K) -> bool,
        cancel: &dyn Fn() -> bool,
        errors: &mut Vec<(String, String)>,
        each_step: &mut dyn FnMut(&[K]),
    ) -> Vec<K> {
        let r = resource::<K>();
        let ns = Some(self.namespace.as_str());
        let ours = |objects: &[Object]| -> Vec<K> {
            objects
                .iter()
                .filter(|o| names.iter().any(|n| n == o.name()))
                .filter_map(crate::typed)
                .collect()
        };
        let deadline = Instant::now() + self.fs_backup_timeout;
        let mut cancelled_at: Option<Instant> = None;
        loop {
            // Short steps: a cancelled backup stops its volumes within a fraction of a second.
            let step =
                (Instant::now() + Duration::from_millis(250)).min(deadline.max(Instant::now()));
            // Deleted ones (their Backup or Restore deleted, the garbage collector) have
            // ended too.
            let done = |objects: &[Object]| ours(objects).iter().all(is_final);
            match self.cluster.wait_for(&r, ns, Some(selector), step, &done) {
                Ok(()) => break,
                Err(now) => each_step(&ours(&now)),
            }
            let over = Instant::now() >= deadline;
            if cancelled_at.is_none() && (over || cancel()) {
                cancelled_at = Some(Instant::now());
                if over {
                    errors.push((String::new(), format!(
                        "timed out after {} waiting for all {} to complete; those not done were cancelled",
                        humantime::format_duration(self.fs_backup_timeout), K::PLURAL)));
                }
                for n in names {
                    let _ = self
                        .cluster
                        .merge_patch(&r, ns, n, &json!({"spec": {"cancel": true}}));
                }
            }
            // Cancelled ones are given a while to stop (a node-agent that is gone never
            // answers).
            if cancelled_at.is_some_and(|t| t.elapsed() >= CANCEL_GRACE) {
                break;
            }
        }
        let listed = self
            .cluster
            .list_selected(&r, ns, Some(selector))
            .unwrap_or_default();
        let ended = ours(&listed);
        for n in names {
            if !listed.iter().any(|o| o.name() == n) {
                errors.push((
                    String::new(),
                    format!("{} {n} was deleted before it ended", K::KIND),
                ));
            }
        }
        ended
    }
}
