//! How the steps of an operation run in the cluster: Jobs made from templates and waited
//! for, workloads scaled and waited for (and put back), host directories through the
//! node-agents, and the operation's own backup or restore of objects (given by the caller).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use repo_k8s::{Discovery, Object};
use serde_json::{json, Value};

use super::spec::{HostPath, JobStep, ScaleStep};
use super::{Failure, Kind, Step, StepRunner, Workflow, WORKFLOW_ANNOTATION, WORKFLOW_KEY};
use crate::backups::Controller;
use repo_k8s::podvolumes::objects::{
    BACKUP_NAME_LABEL, BACKUP_UID_LABEL, RESTORE_NAME_LABEL, RESTORE_UID_LABEL,
};
use repo_k8s::velero::{Backup, PodVolumeBackup, PodVolumeRestore, Restore};

/// Label on what a step creates: the operation (`backup-<name>` or `restore-<name>`).
pub const OPERATION_LABEL: &str = "cairn.io/operation";
/// Label on what a step creates: the step.
pub const STEP_LABEL: &str = "cairn.io/step";
/// Annotation on a scaled workload: its replicas before, for a person putting it back
/// after a server died mid-operation.
pub const REPLICAS_BEFORE_ANNOTATION: &str = "cairn.io/replicas-before";

/// How often a step looks at what it waits for.
const POLL: Duration = Duration::from_millis(500);

/// A workload a scale step changed.
#[derive(Clone, Debug)]
struct Scaled {
    resource: String,
    namespace: String,
    name: String,
    before: u64,
}

/// What a hostPath step moves: a Backup's directories into its location, or a Restore's
/// back from the snapshots `snapshot` finds for (node, path).
pub enum HostPaths<'r> {
    Backup(&'r Backup),
    Restore {
        restore: &'r Restore,
        location: String,
        snapshot: &'r dyn Fn(&str, &str) -> Result<String, String>,
    },
}

/// Runs an operation's steps: its objects step by `objects`, the others here.
pub struct Runner<'r, 'a> {
    pub controller: &'r Controller<'a>,
    pub host_paths: HostPaths<'r>,
    /// `backup-<name>` or `restore-<name>`: names and labels what the steps create.
    pub operation: String,
    /// Whether the operation was cancelled (its object deleted).
    pub cancelled: &'r (dyn Fn() -> bool + Sync),
    pub objects: &'r mut dyn FnMut(Instant) -> Result<String, Failure>,
    scaled: BTreeMap<String, Vec<Scaled>>,
}

impl<'r, 'a> Runner<'r, 'a> {
    pub fn new(
        controller: &'r Controller<'a>,
        host_paths: HostPaths<'r>,
        operation: String,
        cancelled: &'r (dyn Fn() -> bool + Sync),
        objects: &'r mut dyn FnMut(Instant) -> Result<String, Failure>,
    ) -> Self {
        Runner {
            controller,
            host_paths,
            operation,
            cancelled,
            objects,
            scaled: BTreeMap::new(),
        }
    }
}

impl StepRunner for Runner<'_, '_> {
    fn run(&mut self, step: &Step, deadline: Instant) -> Result<String, Failure> {
        if (self.cancelled)() {
            return Err(String::from("the operation was cancelled").into());
        }
        match step.kind() {
            Kind::Objects => (self.objects)(deadline),
            Kind::Job => Ok(self.job(step, step.job.as_ref().expect("a job step"), deadline)?),
            Kind::Scale => {
                Ok(self.scale(step, step.scale.as_ref().expect("a scale step"), deadline)?)
            }
            Kind::HostPath => {
                Ok(self.host_path(step.host_path.as_ref().expect("a hostPath step"), deadline)?)
            }
        }
    }
}

fn resource(name: &str) -> repo_k8s::Resource {
    Discovery::built_in()
        .resolve(name)
        .expect("a built-in resource")
        .clone()
}

/// The job's condition of `kind` (`Complete`, `Failed`) if it is true: its message.
fn job_condition(job: &Object, kind: &str) -> Option<String> {
    job.get(&["status", "conditions"])?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
        .map(|c| {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            [reason, message]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(": ")
        })
}

impl Runner<'_, '_> {
    /// Waits until `done` says so (`Some(result)`), the deadline passes or the operation
    /// is cancelled; `on_stop` says why it stopped waiting.
    fn wait<T>(
        &self,
        deadline: Instant,
        mut done: impl FnMut() -> Option<Result<T, String>>,
        what: &str,
    ) -> Result<T, String> {
        loop {
            if let Some(r) = done() {
                return r;
            }
            if (self.cancelled)() {
                return Err(format!(
                    "the operation was cancelled while waiting for {what}"
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("{what} did not happen in time"));
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    /// A Job from the step's template, waited for; deleted (with its pods) if it runs out
    /// of time or the operation is cancelled.
    fn job(&self, step: &Step, j: &JobStep, deadline: Instant) -> Result<String, String> {
        let c = self.controller;
        let ns = j.namespace.clone().unwrap_or_else(|| c.namespace.clone());
        let mut template = j.template.clone();
        if template["spec"]["restartPolicy"].is_null() {
            template["spec"]["restartPolicy"] = json!("Never");
        }
        let labels = json!({OPERATION_LABEL: repo_k8s::restore::valid_label_value(&self.operation),
            STEP_LABEL: repo_k8s::restore::valid_label_value(&step.name)});
        let seconds = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"generateName": format!("{}-{}-", short(&self.operation), short(&step.name)),
                "namespace": ns, "labels": labels},
            "spec": {"backoffLimit": j.backoff_limit.unwrap_or(0), "activeDeadlineSeconds": seconds,
                "ttlSecondsAfterFinished": 86400, "template": template}});
        let r = resource("jobs");
        let o = Object::from_value(job, "jobs")
            .map_err(|e| format!("the job template is not an object: {e}"))?;
        let name = match c.cluster.create(&r, &o) {
            Ok(repo_k8s::cluster::Created::Created(made)) => made.name().to_string(),
            Ok(repo_k8s::cluster::Created::AlreadyExists(o)) => o.name().to_string(),
            Err(e) => {
                return Err(format!(
                    "the Job could not be created in namespace {ns}: {e}"
                ))
            }
        };
        let what = format!("Job {ns}/{name}");
        let ended = self.wait(
            deadline,
            || {
                let job = c.cluster.get(&r, Some(&ns), &name).ok().flatten()?;
                if job_condition(&job, "Complete").is_some() {
                    return Some(Ok(()));
                }
                job_condition(&job, "Failed").map(|why| {
                    Err(format!(
                        "{what} failed ({why}); see `kubectl logs -n {ns} job/{name}`"
                    ))
                })
            },
            &format!("{what} to complete"),
        );
        if ended.is_err() {
            let _ = c.cluster.delete(&r, Some(&ns), &name);
        }
        ended.map(|()| format!("{what} completed"))
    }

    /// Workloads scaled to the step's replicas, or put back as an earlier step found them;
    /// waits until their pods are gone (0) or ready.
    fn scale(&mut self, step: &Step, s: &ScaleStep, deadline: Instant) -> Result<String, String> {
        let c = self.controller;
        let targets: Vec<(Scaled, u64)> = match (&s.undo, s.replicas) {
            (Some(undo), _) => self
                .scaled
                .get(undo)
                .into_iter()
                .flatten()
                .map(|w| (w.clone(), w.before))
                .collect(),
            (None, Some(to)) => {
                let kinds = match s.kinds.is_empty() {
                    true => vec!["deployments".to_string(), "statefulsets".into()],
                    false => s.kinds.clone(),
                };
                let mut found = Vec::new();
                for ns in &s.namespaces {
                    for k in &kinds {
                        let listed = c
                            .cluster
                            .list_selected(&resource(k), Some(ns), s.selector.as_deref())
                            .map_err(|e| format!("listing {k} in {ns}: {e}"))?;
                        for o in listed {
                            let before = o
                                .get(&["spec", "replicas"])
                                .and_then(Value::as_u64)
                                .unwrap_or(1);
                            let w = Scaled {
                                resource: k.clone(),
                                namespace: ns.clone(),
                                name: o.name().to_string(),
                                before,
                            };
                            found.push((w, u64::from(to)));
                        }
                    }
                }
                found
            }
            _ => return Err("a scale step gives replicas or undo".into()),
        };
        for (w, to) in &targets {
            let mut patch = json!({"spec": {"replicas": to}});
            if s.undo.is_none() {
                patch["metadata"] =
                    json!({"annotations": {REPLICAS_BEFORE_ANNOTATION: w.before.to_string()}});
            }
            c.cluster
                .merge_patch(&resource(&w.resource), Some(&w.namespace), &w.name, &patch)
                .map_err(|e| {
                    format!(
                        "scaling {} {}/{} to {to}: {e}",
                        w.resource, w.namespace, w.name
                    )
                })?;
        }
        if s.undo.is_none() {
            self.scaled.insert(
                step.name.clone(),
                targets.iter().map(|(w, _)| w.clone()).collect(),
            );
        }
        for (w, to) in &targets {
            let what = format!("{} {}/{} at {to} replicas", w.resource, w.namespace, w.name);
            self.wait(
                deadline,
                || self.at_replicas(w, *to).then_some(Ok(())),
                &what,
            )?;
        }
        let names: Vec<String> = targets
            .iter()
            .map(|(w, to)| format!("{}/{} to {to}", w.namespace, w.name))
            .collect();
        Ok(match names.is_empty() {
            true => "nothing to scale".into(),
            false => format!("scaled {}", names.join(", ")),
        })
    }

    /// Whether the workload runs `to` ready pods (none at 0), counted by its selector.
    fn at_replicas(&self, w: &Scaled, to: u64) -> bool {
        let c = &self.controller.cluster;
        let Ok(Some(o)) = c.get(&resource(&w.resource), Some(&w.namespace), &w.name) else {
            // Gone: nothing runs.
            return to == 0;
        };
        let labels = o
            .get(&["spec", "selector", "matchLabels"])
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let Ok(pods) = c.list_selected(&resource("pods"), Some(&w.namespace), Some(&labels)) else {
            return false;
        };
        let ready = |p: &Object| {
            p.get(&["status", "conditions"])
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        };
        match to {
            0 => pods.is_empty(),
            n => pods.iter().filter(|p| ready(p)).count() as u64 >= n,
        }
    }
}

/// Label on the PodVolumeBackups and PodVolumeRestores of host directories.
pub const HOST_PATH_LABEL: &str = "cairn.io/host-path";

fn owner(kind: &str, meta: &repo_k8s::velero::ObjectMeta) -> Value {
    json!([{"apiVersion": "velero.io/v1", "kind": kind, "name": meta.name,
        "uid": meta.uid.clone().unwrap_or_default(), "controller": true}])
}

impl Runner<'_, '_> {
    /// The nodes a hostPath step names, or its selector picks.
    fn nodes_of(&self, h: &HostPath) -> Result<Vec<String>, String> {
        if !h.nodes.is_empty() {
            return Ok(h.nodes.clone());
        }
        let selector = h.node_selector.as_deref().unwrap_or_default();
        let nodes = self
            .controller
            .cluster
            .list_selected(&resource("nodes"), None, Some(selector))
            .map_err(|e| format!("listing the nodes {selector:?} selects: {e}"))?;
        match nodes.is_empty() {
            true => Err(format!("no node matches the selector {selector:?}")),
            false => Ok(nodes.iter().map(|n| n.name().to_string()).collect()),
        }
    }

    /// Creates `made` (per node, objects of kind `K`), adding their names to `names`, and
    /// waits until they end.
    #[allow(clippy::too_many_arguments)]
    fn create_and_wait<K>(
        &self,
        path: &str,
        made: Vec<(String, Value)>,
        selector: &str,
        is_final: fn(&K) -> bool,
        stop: &dyn Fn() -> bool,
        names: &mut Vec<String>,
        errors: &mut Vec<(String, String)>,
    ) -> Result<Vec<K>, String>
    where
        K: repo_k8s::velero::Kind + serde::Serialize + serde::de::DeserializeOwned,
    {
        let c = self.controller;
        for (node, v) in made {
            let typed: K = serde_json::from_value(v).expect("a Velero object");
            let name = c.create(&typed).map_err(|e| {
                format!(
                    "the {} for {path} on node {node} could not be created: {e}",
                    K::KIND
                )
            })?;
            names.push(name);
        }
        Ok(c.wait_for_ended::<K>(selector, names, is_final, stop, errors, &mut |_| {}))
    }

    /// A directory on the step's nodes, moved by their node-agents (a PodVolumeBackup or
    /// PodVolumeRestore each, with the Node as its pod), waited for.
    fn host_path(&self, h: &HostPath, deadline: Instant) -> Result<String, String> {
        let c = self.controller;
        let nodes = self.nodes_of(h)?;
        let stop = || (self.cancelled)() || Instant::now() >= deadline;
        let mut errors = Vec::new();
        let mut names = Vec::new();
        let ended: Vec<(String, String, String)> = match &self.host_paths {
            HostPaths::Backup(b) => {
                let uid = b.metadata.uid.clone().unwrap_or_default();
                let mut made = Vec::new();
                for node in &nodes {
                    let pvb = json!({"apiVersion": "velero.io/v1", "kind": "PodVolumeBackup",
                        "metadata": {"generateName": format!("{}-", short(&b.metadata.name)), "namespace": c.namespace,
                            "labels": {BACKUP_NAME_LABEL: repo_k8s::restore::valid_label_value(&b.metadata.name),
                                BACKUP_UID_LABEL: uid, HOST_PATH_LABEL: "true"},
                            "ownerReferences": owner("Backup", &b.metadata)},
                        "spec": {"node": node, "pod": {"kind": "Node", "name": node}, "volume": h.path,
                            "backupStorageLocation": b.spec.storage_location.clone().unwrap_or_default(),
                            "repoIdentifier": "", "uploaderType": "",
                            "tags": {"backup": b.metadata.name, "backup-uid": uid, "host-path": h.path, "node": node}}});
                    made.push((node.clone(), pvb));
                }
                let selector = format!("{BACKUP_UID_LABEL}={uid}");
                self.create_and_wait::<PodVolumeBackup>(
                    &h.path,
                    made,
                    &selector,
                    crate::pod_volumes::is_final,
                    &stop,
                    &mut names,
                    &mut errors,
                )?
                .into_iter()
                .map(|p| {
                    let st = p.status.unwrap_or_default();
                    let phase = st.phase.map(|p| p.to_string()).unwrap_or_default();
                    let what = if st.snapshot_id.is_empty() {
                        st.message
                    } else {
                        format!(
                            "snapshot {}",
                            &st.snapshot_id[..st.snapshot_id.len().min(12)]
                        )
                    };
                    (p.spec.node, phase, what)
                })
                .collect()
            }
            HostPaths::Restore {
                restore,
                location,
                snapshot,
            } => {
                let uid = restore.metadata.uid.clone().unwrap_or_default();
                let mut made = Vec::new();
                for node in &nodes {
                    let id = snapshot(node, &h.path)?;
                    let pvr = json!({"apiVersion": "velero.io/v1", "kind": "PodVolumeRestore",
                        "metadata": {"generateName": format!("{}-", short(&restore.metadata.name)), "namespace": c.namespace,
                            "labels": {RESTORE_NAME_LABEL: repo_k8s::restore::valid_label_value(&restore.metadata.name),
                                RESTORE_UID_LABEL: uid, HOST_PATH_LABEL: "true"},
                            "ownerReferences": owner("Restore", &restore.metadata)},
                        "spec": {"pod": {"kind": "Node", "name": node}, "volume": h.path,
                            "backupStorageLocation": location, "repoIdentifier": "", "uploaderType": "",
                            "snapshotID": id, "sourceNamespace": ""}});
                    made.push((node.clone(), pvr));
                }
                let selector = format!("{RESTORE_UID_LABEL}={uid}");
                self.create_and_wait::<PodVolumeRestore>(
                    &h.path,
                    made,
                    &selector,
                    crate::pod_volumes::restore_is_final,
                    &stop,
                    &mut names,
                    &mut errors,
                )?
                .into_iter()
                .map(|p| {
                    let st = p.status.unwrap_or_default();
                    let phase = st.phase.map(|p| p.to_string()).unwrap_or_default();
                    (p.spec.pod.name.unwrap_or_default(), phase, st.message)
                })
                .collect()
            }
        };
        let failed: Vec<String> = ended
            .iter()
            .filter(|(_, phase, _)| phase != "Completed")
            .map(|(node, phase, why)| format!("{} on node {node}: {phase}: {why}", h.path))
            .chain(errors.into_iter().map(|(_, e)| e))
            .collect();
        if !failed.is_empty() || ended.len() < names.len() {
            let mut why = failed;
            if why.is_empty() {
                why.push(format!("{} did not finish in time on every node", h.path));
            }
            return Err(why.join("; "));
        }
        let done: Vec<String> = ended
            .iter()
            .map(|(node, _, what)| {
                format!(
                    "node {node}{}",
                    if what.is_empty() {
                        String::new()
                    } else {
                        format!(" ({what})")
                    }
                )
            })
            .collect();
        Ok(format!("{} on {}", h.path, done.join(", ")))
    }
}

/// A name cut to fit in a generated object name.
fn short(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(24)
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

impl Controller<'_> {
    /// The workflow an object's annotation names: `Ok(None)` without one; `Err` says why it
    /// cannot be used.
    pub fn workflow_of(
        &self,
        meta: &repo_k8s::velero::ObjectMeta,
    ) -> Result<Option<Workflow>, String> {
        let Some(name) = meta.annotations.get(WORKFLOW_ANNOTATION) else {
            return Ok(None);
        };
        let cm = self
            .cluster
            .get(&resource("configmaps"), Some(&self.namespace), name)
            .map_err(|e| format!("the workflow ConfigMap {name:?} could not be read: {e}"))?
            .ok_or_else(|| {
                format!(
                    "annotation {WORKFLOW_ANNOTATION} names ConfigMap {name:?}, which does not exist in namespace {}; create it (key {WORKFLOW_KEY})",
                    self.namespace
                )
            })?;
        let text = cm
            .get(&["data", WORKFLOW_KEY])
            .and_then(Value::as_str)
            .ok_or_else(|| {
                format!("ConfigMap {name:?} has no key {WORKFLOW_KEY}; put the workflow there")
            })?;
        Workflow::parse(text)
            .map(Some)
            .map_err(|p| format!("workflow {name:?}: {}", p.join("; ")))
    }
}

impl Controller<'_> {
    /// Runs the `operation` (`backup` or `restore`) steps of `w` for `object` (its Backup
    /// or Restore), its objects step by `objects`, writing the steps' states into its
    /// annotation [`super::STEPS_ANNOTATION`] as they change. `Ok`: the steps that failed
    /// with `onError: Continue`; `Err`: the failure reason to record (also told as an Event).
    pub(crate) fn run_workflow<K: repo_k8s::velero::Kind>(
        &self,
        object: &K,
        operation: &str,
        w: &Workflow,
        host_paths: HostPaths,
        cancelled: &(dyn Fn() -> bool + Sync),
        objects: &mut dyn FnMut(Instant) -> Result<String, Failure>,
    ) -> Result<Vec<String>, String> {
        let name = &object.metadata().name;
        let steps = match operation {
            "backup" => &w.backup,
            _ => &w.restore,
        };
        let limits = super::Limits {
            deadline: Instant::now() + w.timeout(),
            cleanup: w.cleanup_timeout(),
            timeout_reason: w.timeout_reason(operation),
        };
        let r = repo_k8s::velero::resource::<K>();
        let report = |reports: &[super::StepReport]| {
            let text = serde_json::to_string(reports).expect("JSON");
            let patch = json!({"metadata": {"annotations": {super::STEPS_ANNOTATION: text}}});
            // A refused write leaves the last state; the outcome is written with the status.
            let _ = self
                .cluster
                .merge_patch(&r, Some(&self.namespace), name, &patch);
        };
        let operation_name = format!("{operation}-{name}");
        let mut runner = Runner::new(self, host_paths, operation_name, cancelled, objects);
        let ran = super::run_steps(steps, &limits, &mut runner, &report, self.now);
        match ran.failure {
            Some((reason, message)) => {
                let level = crate::events::Level::Warning;
                self.event(
                    object,
                    level,
                    "WorkflowFailed",
                    &format!("{reason}: {message}"),
                );
                Err(reason)
            }
            None => Ok(ran.continued),
        }
    }
}
