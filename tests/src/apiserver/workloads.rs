//! Stand-in workload controllers, with simulated nodes: enough of what Kubernetes' own do
//! for a Deployment or a StatefulSet to have pods (and claims) that the kubelets run.
//!
//! - **Deployment**: one ReplicaSet `<deployment>-<hash of its template>`, owned by it.
//! - **ReplicaSet**: pods `<replicaset>-<5 characters>` until `replicas` pods in its
//!   namespace match its selector's `matchLabels` (a restored pod counts, as a real
//!   ReplicaSet adopts a matching orphan).
//! - **StatefulSet**: for each ordinal `i`, the claims `<template>-<set>-<i>` of its
//!   `volumeClaimTemplates` and the pod `<set>-<i>` mounting them; pods past `replicas` are
//!   deleted (scaling down). A Deployment's replicas are its ReplicaSet's, and a ReplicaSet
//!   with too many pods deletes the extra ones.
//! - **Job**: a pod `<job>-<5 characters>` from its template; once the simulated kubelet
//!   has run it (its containers' commands, on this machine, in the pod's directory) the Job
//!   is `Complete`, or `Failed` (`BackoffLimitExceeded`) after `backoffLimit + 1` failed
//!   pods, or (`DeadlineExceeded`) past `activeDeadlineSeconds`.
//!
//! Not simulated: rollouts, the garbage collector beyond deleting an owner's direct
//! dependents.

use serde_json::{json, Value};

use super::{Key, State};

/// A short, stable digest of `s` (lowercase hex).
fn digest(s: &str, len: usize) -> String {
    blake3::hash(s.as_bytes()).to_hex()[..len].to_string()
}

fn owner(o: &Value) -> Value {
    json!([{"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
        "uid": o["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
}

impl State {
    fn of_kind(&self, group: &str, plural: &str) -> Vec<(Key, Value)> {
        self.objects
            .iter()
            .filter(|(k, _)| k.0 == group && k.1 == plural)
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect()
    }

    fn exists(&self, group: &str, plural: &str, ns: &str, name: &str) -> bool {
        let key = (group.into(), plural.into(), ns.into(), name.into());
        self.objects.contains_key(&key)
    }

    fn create_in(&mut self, group: &str, plural: &str, ns: &str, v: Value) {
        let r = self.served(group, plural).expect("built in");
        let _ = self.create(&r, Some(ns), v);
    }

    fn delete_pod(&mut self, key: &Key) {
        let r = self.served("", "pods").expect("built in");
        let _ = self.delete(&r, Some(&key.2), &key.3);
    }

    /// One round of the Deployment, ReplicaSet, StatefulSet and Job controllers.
    pub(super) fn run_workloads(&mut self) {
        self.run_jobs();
        for (key, d) in self.of_kind("apps", "deployments") {
            let template = &d["spec"]["template"];
            let name = format!("{}-{}", key.3, digest(&template.to_string(), 10));
            if self.exists("apps", "replicasets", &key.2, &name) {
                let rs_key: Key = ("apps".into(), "replicasets".into(), key.2.clone(), name);
                let want = d["spec"]["replicas"].as_u64().unwrap_or(1);
                let mut rs = self.objects[&rs_key].value.clone();
                if rs["spec"]["replicas"].as_u64() != Some(want) {
                    rs["spec"]["replicas"] = json!(want);
                    self.store_modified(&rs_key, rs);
                }
                continue;
            }
            let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": key.2, "labels": template["metadata"]["labels"],
                    "ownerReferences": owner(&d)},
                "spec": {"replicas": d["spec"]["replicas"].as_u64().unwrap_or(1),
                    "selector": d["spec"]["selector"], "template": template}});
            self.create_in("apps", "replicasets", &key.2, rs);
        }
        for (key, rs) in self.of_kind("apps", "replicasets") {
            let want = rs["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
            let selector = rs["spec"]["selector"]["matchLabels"].as_object().cloned();
            let matches = |pod: &Value| {
                selector
                    .iter()
                    .flatten()
                    .all(|(k, v)| pod["metadata"]["labels"][k] == *v)
            };
            let mine: Vec<Key> = self
                .objects
                .iter()
                .filter(|(k, s)| {
                    k.0.is_empty() && k.1 == "pods" && k.2 == key.2 && matches(&s.value)
                })
                .map(|(k, _)| k.clone())
                .collect();
            let have = mine.len();
            for extra in mine.iter().skip(want) {
                self.delete_pod(extra);
            }
            let template = &rs["spec"]["template"];
            for n in have..want {
                let seed = format!("{}{n}", rs["metadata"]["uid"]);
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{}-{}", key.3, digest(&seed, 5)), "namespace": key.2,
                        "labels": template["metadata"]["labels"], "annotations": template["metadata"]["annotations"],
                        "ownerReferences": owner(&rs)},
                    "spec": template["spec"]});
                self.create_in("", "pods", &key.2, pod);
            }
        }
        for (key, set) in self.of_kind("apps", "statefulsets") {
            let replicas = set["spec"]["replicas"].as_u64().unwrap_or(1);
            let template = &set["spec"]["template"];
            let claims = set["spec"]["volumeClaimTemplates"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let past: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.0.is_empty() && k.1 == "pods" && k.2 == key.2)
                .filter(|k| {
                    k.3.strip_prefix(&format!("{}-", key.3))
                        .and_then(|i| i.parse::<u64>().ok())
                        .is_some_and(|i| i >= replicas)
                })
                .cloned()
                .collect();
            for k in past {
                self.delete_pod(&k);
            }
            for i in 0..replicas {
                let pod_name = format!("{}-{i}", key.3);
                let mut volumes = template["spec"]["volumes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for c in &claims {
                    let t = c["metadata"]["name"].as_str().unwrap_or("data");
                    let claim = format!("{t}-{pod_name}");
                    volumes.push(json!({"name": t, "persistentVolumeClaim": {"claimName": claim}}));
                    if !self.exists("", "persistentvolumeclaims", &key.2, &claim) {
                        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": {"name": claim, "namespace": key.2,
                                "labels": set["spec"]["selector"]["matchLabels"]},
                            "spec": c["spec"]});
                        self.create_in("", "persistentvolumeclaims", &key.2, pvc);
                    }
                }
                if self.exists("", "pods", &key.2, &pod_name) {
                    continue;
                }
                let mut spec = template["spec"].clone();
                spec["volumes"] = json!(volumes);
                let mut labels = template["metadata"]["labels"].clone();
                labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod_name, "namespace": key.2, "labels": labels,
                        "annotations": template["metadata"]["annotations"], "ownerReferences": owner(&set)},
                    "spec": spec});
                self.create_in("", "pods", &key.2, pod);
            }
        }
    }
}

/// A Job's pod to run: its key, each container's command, and where.
pub struct JobRun {
    pub pod: Key,
    pub commands: Vec<Vec<String>>,
    pub dir: std::path::PathBuf,
}

impl State {
    fn run_jobs(&mut self) {
        for (key, job) in self.of_kind("batch", "jobs") {
            let conditions = job["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if conditions.iter().any(|c| c["status"] == "True") {
                continue;
            }
            let uid = job["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let pods: Vec<Value> = self
                .objects
                .iter()
                .filter(|(k, s)| {
                    k.0.is_empty()
                        && k.1 == "pods"
                        && k.2 == key.2
                        && s.value["metadata"]["ownerReferences"][0]["uid"] == uid.as_str()
                })
                .map(|(_, s)| s.value.clone())
                .collect();
            let phase = |p: &Value, want: &str| p["status"]["phase"] == want;
            let failed = pods.iter().filter(|p| phase(p, "Failed")).count() as u64;
            let limit = job["spec"]["backoffLimit"].as_u64().unwrap_or(6);
            let deadline = job["spec"]["activeDeadlineSeconds"].as_u64();
            let age = self.objects[&key].created.elapsed().as_secs();
            let condition = if pods.iter().any(|p| phase(p, "Succeeded")) {
                Some(("Complete", "", ""))
            } else if failed > limit {
                Some((
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ))
            } else if deadline.is_some_and(|d| age >= d) {
                Some((
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ))
            } else {
                None
            };
            if let Some((kind, reason, message)) = condition {
                let mut done = job.clone();
                done["status"] = json!({"conditions": [{"type": kind, "status": "True", "reason": reason, "message": message}],
                    "succeeded": u64::from(kind == "Complete"), "failed": failed});
                self.store_modified(&key, done);
                continue;
            }
            if !pods.iter().any(|p| !phase(p, "Failed")) {
                let template = &job["spec"]["template"];
                let mut labels = template["metadata"]["labels"].clone();
                if !labels.is_object() {
                    labels = json!({});
                }
                labels["job-name"] = json!(key.3);
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{}-{}", key.3, digest(&format!("{uid}{failed}"), 5)),
                        "namespace": key.2, "labels": labels, "ownerReferences": owner(&job)},
                    "spec": template["spec"]});
                self.create_in("", "pods", &key.2, pod);
            }
        }
    }

    /// Job pods on simulated nodes that are due to run (marked Running here); the caller
    /// runs them outside the lock and reports with [`State::job_pod_ended`].
    pub(super) fn job_pods_to_run(&mut self) -> Vec<JobRun> {
        let due: Vec<(Key, Value)> = self
            .objects
            .iter()
            .filter(|(k, s)| {
                k.0.is_empty()
                    && k.1 == "pods"
                    && s.value["metadata"]["labels"]["job-name"].is_string()
                    && s.value["status"]["phase"].is_null()
            })
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect();
        let mut out = Vec::new();
        for (key, pod) in due {
            let Some(node) = pod["spec"]["nodeName"].as_str() else {
                continue;
            };
            let Some(dir) = self.pods_dir(node) else {
                continue;
            };
            let dir = dir.join(pod["metadata"]["uid"].as_str().unwrap_or_default());
            if std::fs::create_dir_all(&dir).is_err() {
                continue;
            }
            let commands = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let words = c["command"].as_array().into_iter().flatten();
                    let args = c["args"].as_array().into_iter().flatten();
                    words
                        .chain(args)
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect()
                })
                .collect();
            let mut running = pod.clone();
            running["status"] = json!({"phase": "Running"});
            self.store_modified(&key, running);
            out.push(JobRun {
                pod: key,
                commands,
                dir,
            });
        }
        out
    }

    /// A Job's pod ended with `code` (0: every container succeeded).
    pub(super) fn job_pod_ended(&mut self, key: &Key, code: i32, message: &str) {
        let Some(s) = self.objects.get(key) else {
            return;
        };
        let mut pod = s.value.clone();
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        pod["status"] = json!({"phase": phase, "containerStatuses": [{"name": pod["spec"]["containers"][0]["name"],
            "ready": false, "state": {"terminated": {"exitCode": code, "message": message}}}]});
        self.store_modified(key, pod);
    }
}

/// Runs a Job pod's containers one after another (the first failure ends it): the exit
/// code and the end of the error output.
pub fn run_job_pod(run: &JobRun) -> (i32, String) {
    for command in &run.commands {
        let Some((program, args)) = command.split_first() else {
            return (
                128,
                "a container without a command (images are not simulated)".into(),
            );
        };
        let out = match std::process::Command::new(program)
            .args(args)
            .current_dir(&run.dir)
            .output()
        {
            Ok(o) => o,
            Err(e) => return (127, format!("{program}: {e}")),
        };
        let code = out.status.code().unwrap_or(128);
        if code != 0 {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return (code, text);
        }
    }
    (0, String::new())
}
