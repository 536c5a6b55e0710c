//! Simulated nodes (when [`super::Options::nodes`] names some): what a cluster's scheduler,
//! storage provisioner, DaemonSet controller and kubelets do, enough for pod volumes to be
//! backed up and restored on one machine.
//!
//! - **Nodes**: a Node object each, Ready.
//! - **Scheduler**: a pod created without `spec.nodeName` is put on a node (the same pod
//!   name always on the same node).
//! - **DaemonSets**: one pod per node, named `<daemonset>-<node>`, from the template.
//! - **Provisioner**: a claim without a volume gets a new PersistentVolume `pvc-<uid>` and
//!   is Bound to it; a claim named by a volume's `claimRef` (and matching the claim's
//!   selector) is bound to that one instead, and a claim with a selector is never
//!   provisioned. A deleted claim's volume is deleted (reclaim policy `Delete`) or
//!   `Released` (`Retain`).
//! - **Kubelet** of each node, with its pods directory at `<nodes_dir>/<node>/pods`, laid
//!   out as `/var/lib/kubelet/pods`: a pod on the node gets its volume directories
//!   (`<uid>/volumes/kubernetes.io~empty-dir/<volume>` for emptyDir volumes,
//!   `kubernetes.io~local-volume/<pv>` for bound claims) and becomes Running once they
//!   exist and its `restore-wait` init container would end: every volume it mounts has the
//!   restore's done file (which it then removes, as `node-agent restore-wait` does). A
//!   volume whose restore failed leaves the pod Pending with the init container terminated
//!   and the reason in its status; once Running, each container is running and ready
//!   (`containerStatuses`). A deleted pod's directory is removed.
//!
//! - **CSI snapshots** ([`super::snapshots`]): VolumeSnapshots made ready with a copy of
//!   their claim's volume; claims from a snapshot start as that copy.
//! - **Workloads** ([`super::workloads`]): Deployments, ReplicaSets and StatefulSets get
//!   their pods and claims.
//!
//! Not simulated: images, containers' processes, resource limits, node failures.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{Key, State, Stored};

impl State {
    /// The node a new pod goes on (none without simulated nodes).
    pub(super) fn schedule(&self, pod_name: &str) -> Option<String> {
        let nodes = &self.opts.nodes;
        if nodes.is_empty() {
            return None;
        }
        let h = pod_name
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        Some(nodes[h % nodes.len()].clone())
    }

    /// The Node objects of the simulated nodes.
    pub(super) fn node_objects(&self) -> Vec<Value> {
        self.opts
            .nodes
            .iter()
            .map(|n| {
                json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
            })
            .collect()
    }

    /// The pods a new DaemonSet makes: one per simulated node.
    pub(super) fn daemon_pods(&self, ds: &Value) -> Vec<Value> {
        let template = &ds["spec"]["template"];
        let ns = ds["metadata"]["namespace"].clone();
        self.opts
            .nodes
            .iter()
            .map(|n| {
                let mut spec = template["spec"].clone();
                spec["nodeName"] = json!(n);
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{}-{n}", ds["metadata"]["name"].as_str().unwrap_or("ds")),
                        "namespace": ns, "labels": template["metadata"]["labels"].clone()},
                    "spec": spec})
            })
            .collect()
    }

    /// Where node `node`'s kubelet keeps pods.
    pub fn pods_dir(&self, node: &str) -> Option<PathBuf> {
        Some(self.opts.nodes_dir.as_ref()?.join(node).join("pods"))
    }

    /// One round of the provisioner and the kubelets.
    pub(super) fn simulate_nodes(&mut self) {
        if self.opts.nodes.is_empty() {
            return;
        }
        self.run_workloads();
        self.provision();
        self.run_snapshots();
        let pods: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.0.is_empty() && k.1 == "pods")
            .cloned()
            .collect();
        for key in pods {
            self.run_pod(&key);
        }
    }

    /// Binds each claim without a volume to a new one.
    fn provision(&mut self) {
        let waiting: Vec<Key> = self
            .objects
            .iter()
            .filter(|(k, s)| {
                k.0.is_empty()
                    && k.1 == "persistentvolumeclaims"
                    && s.value["spec"]["volumeName"]
                        .as_str()
                        .is_none_or(str::is_empty)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            let claim = self.objects[&key].value.clone();
            if self.bind_pre_bound(&key, &claim) {
                continue;
            }
            // A claim with a selector is not provisioned: it waits for a volume that matches.
            if claim["spec"]["selector"].is_object() {
                continue;
            }
            // A claim from a snapshot waits until the snapshot is ready, then starts as its copy.
            let from_snapshot = self.snapshot_source(&claim, &key.2);
            if claim["spec"]["dataSource"]["kind"] == "VolumeSnapshot" && from_snapshot.is_none() {
                continue;
            }
            let uid = claim["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let pv_name = format!("pvc-{uid}");
            let annotations = match &from_snapshot {
                Some(d) => json!({super::snapshots::FROM_SNAPSHOT: d.display().to_string()}),
                None => json!({}),
            };
            // A class whose provisioner is a CSI driver gives CSI volumes (which can be
            // snapshotted); others local ones.
            let class_key: Key = (
                "storage.k8s.io".into(),
                "storageclasses".into(),
                String::new(),
                claim["spec"]["storageClassName"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
            let driver = self
                .objects
                .get(&class_key)
                .and_then(|c| c.value["provisioner"].as_str().map(str::to_string));
            let (source_key, source) = match &driver {
                Some(d) => ("csi", json!({"driver": d, "volumeHandle": pv_name})),
                None => ("local", json!({"path": format!("/simulated/{pv_name}")})),
            };
            let mut pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name, "annotations": annotations},
                "spec": {"capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("1Gi")},
                    "accessModes": claim["spec"]["accessModes"].clone(),
                    "storageClassName": claim["spec"]["storageClassName"].clone(),
                    "persistentVolumeReclaimPolicy": "Delete",
                    "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": key.2, "name": key.3, "uid": uid}},
                "status": {"phase": "Bound"}});
            pv["spec"][source_key] = source;
            let pvs = self.served("", "persistentvolumes").expect("built in");
            let _ = self.create(&pvs, None, pv);
            let mut bound = claim;
            bound["spec"]["volumeName"] = json!(pv_name);
            bound["status"] = json!({"phase": "Bound", "capacity": bound["spec"]["resources"]["requests"].clone()});
            self.store_modified(&key, bound);
        }
    }

    /// Binds a claim to a volume made for it (whose `claimRef` names it, as a data mover's
    /// restore leaves one, and whose labels match the claim's selector), as the
    /// PersistentVolume controller does. Whether it did.
    fn bind_pre_bound(&mut self, key: &Key, claim: &Value) -> bool {
        let uid = claim["metadata"]["uid"].clone();
        let wanted = &claim["spec"]["selector"]["matchLabels"];
        let found = self.objects.iter().find(|(k, s)| {
            let r = &s.value["spec"]["claimRef"];
            k.0.is_empty()
                && k.1 == "persistentvolumes"
                && r["namespace"] == key.2.as_str()
                && r["name"] == key.3.as_str()
                && (r["uid"].is_null() || r["uid"] == uid)
                && s.value["status"]["phase"] != "Bound"
                && wanted
                    .as_object()
                    .into_iter()
                    .flatten()
                    .all(|(l, v)| &s.value["metadata"]["labels"][l] == v)
        });
        let Some((pv_key, pv)) = found.map(|(k, s)| (k.clone(), s.value.clone())) else {
            return false;
        };
        let mut bound_pv = pv.clone();
        bound_pv["spec"]["claimRef"]["uid"] = uid;
        bound_pv["status"] = json!({"phase": "Bound"});
        self.store_modified(&pv_key, bound_pv);
        let mut bound = claim.clone();
        bound["spec"]["volumeName"] = json!(pv_key.3);
        bound["status"] = json!({"phase": "Bound", "capacity": pv["spec"]["capacity"].clone()});
        self.store_modified(key, bound);
        true
    }

    /// Where a volume's data is kept while no pod mounts it.
    fn kept_volume_dir(&self, pv: &str) -> Option<PathBuf> {
        (!pv.is_empty() && !pv.contains('/'))
            .then(|| Some(self.opts.nodes_dir.as_ref()?.join("volumes").join(pv)))
            .flatten()
    }

    /// A deleted claim's volume goes if its reclaim policy is `Delete`; else it is
    /// `Released`, its data kept.
    pub(super) fn claim_gone(&mut self, claim: &Value) {
        let Some(pv) = claim["spec"]["volumeName"].as_str() else {
            return;
        };
        let key: Key = (
            String::new(),
            "persistentvolumes".into(),
            String::new(),
            pv.into(),
        );
        let Some(volume) = self.objects.get(&key).map(|s| s.value.clone()) else {
            return;
        };
        if volume["spec"]["claimRef"]["uid"] != claim["metadata"]["uid"] {
            return;
        }
        if volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
            let r = self.served("", "persistentvolumes").expect("built in");
            let _ = self.delete(&r, None, pv);
        } else {
            let mut released = volume;
            released["status"] = json!({"phase": "Released"});
            self.store_modified(&key, released);
        }
    }

    /// A deleted volume's data goes.
    pub(super) fn volume_gone(&mut self, pv: &Value) {
        if let Some(dir) = self.kept_volume_dir(pv["metadata"]["name"].as_str().unwrap_or("")) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// A pod's kubelet: volumes made, restore-wait run, Running.
    fn run_pod(&mut self, key: &Key) {
        let pod = self.objects[key].value.clone();
        // A Job's pod is run by the Job stand-in ([`super::workloads`]).
        if pod["status"]["phase"] == "Running"
            || pod["metadata"]["labels"][super::NEVER_READY] == "true"
            || pod["metadata"]["labels"]["job-name"].is_string()
        {
            return;
        }
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            return;
        };
        let Some(pods_dir) = self.pods_dir(node) else {
            return;
        };
        if !self.opts.nodes.iter().any(|n| n == node) {
            return;
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let mut dirs = std::collections::BTreeMap::new();
        for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or_default();
            let sub = if v.get("emptyDir").is_some() {
                format!("kubernetes.io~empty-dir/{name}")
            } else if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                let ckey = (
                    String::new(),
                    "persistentvolumeclaims".to_string(),
                    key.2.clone(),
                    claim.to_string(),
                );
                match self
                    .objects
                    .get(&ckey)
                    .and_then(|c| c.value["spec"]["volumeName"].as_str().map(str::to_string))
                {
                    Some(pv) => {
                        let pv_key: Key = (
                            String::new(),
                            "persistentvolumes".into(),
                            String::new(),
                            pv.clone(),
                        );
                        let pv_object = self.objects.get(&pv_key).map(|p| p.value.clone());
                        // A CSI volume is mounted at kubernetes.io~csi/<pv>/mount, as a kubelet does.
                        let sub = match pv_object
                            .as_ref()
                            .is_some_and(|p| p["spec"]["csi"].is_object())
                        {
                            true => format!("kubernetes.io~csi/{pv}/mount"),
                            false => format!("kubernetes.io~local-volume/{pv}"),
                        };
                        let dir = pods_dir.join(uid).join("volumes").join(&sub);
                        // A CSI volume's data follows it from pod to pod (network storage).
                        let kept = self.kept_volume_dir(&pv).filter(|k| k.is_dir());
                        if let (false, Some(kept)) = (dir.exists(), kept) {
                            let moved = dir
                                .parent()
                                .is_some_and(|p| std::fs::create_dir_all(p).is_ok())
                                && std::fs::rename(&kept, &dir).is_ok();
                            if !moved {
                                return;
                            }
                        }
                        // A volume made from a snapshot starts as its copy.
                        let source = pv_object.as_ref().and_then(|p| {
                            p["metadata"]["annotations"][super::snapshots::FROM_SNAPSHOT]
                                .as_str()
                                .map(PathBuf::from)
                        });
                        if let (false, Some(source)) = (dir.exists(), source) {
                            if super::snapshots::copy_tree(&source, &dir).is_err() {
                                return;
                            }
                        }
                        sub
                    }
                    // Not bound yet: the pod waits, as on a real node.
                    None => return,
                }
            } else {
                continue;
            };
            let dir = pods_dir.join(uid).join("volumes").join(sub);
            if std::fs::create_dir_all(&dir).is_err() {
                return;
            }
            dirs.insert(name.to_string(), dir);
        }
        let wait = pod["spec"]["initContainers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "restore-wait"))
            .cloned();
        // Every container running and ready (what restore exec hooks wait for).
        let containers: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "ready": true, "started": true,
                "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
            })
            .collect();
        let mut status = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": containers});
        if let Some(w) = wait {
            let restore_uid = w["args"][0].as_str().unwrap_or_default();
            let mounted: Vec<&PathBuf> = w["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| dirs.get(m["name"].as_str().unwrap_or_default()))
                .collect();
            let marker = |d: &PathBuf, suffix: &str| {
                d.join(".velero").join(format!("{restore_uid}{suffix}"))
            };
            if let Some(why) = mounted
                .iter()
                .find_map(|d| std::fs::read_to_string(marker(d, ".failed")).ok())
            {
                let failed = json!({"phase": "Pending", "initContainerStatuses": [{"name": "restore-wait",
                    "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": why.trim()}}}]});
                if pod["status"] != failed {
                    self.store_modified(key, with_status(pod, failed));
                }
                return;
            }
            if !mounted.iter().all(|d| marker(d, "").exists()) {
                return;
            }
            for d in &mounted {
                let _ = std::fs::remove_file(marker(d, ""));
                let _ = std::fs::remove_dir(d.join(".velero"));
            }
            status["initContainerStatuses"] = json!([{"name": "restore-wait", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
        }
        self.store_modified(key, with_status(pod, status));
    }

    /// A deleted pod's directory goes, as its kubelet removes it: its emptyDir data and
    /// local volumes' data with it (a simplification); a CSI volume's data is kept under
    /// `<nodes_dir>/volumes/<pv>` while the volume exists, and moves into the next pod
    /// that mounts it.
    pub(super) fn pod_gone(&self, pod: &Value) {
        let (Some(node), Some(uid)) = (
            pod["spec"]["nodeName"].as_str(),
            pod["metadata"]["uid"].as_str(),
        ) else {
            return;
        };
        let Some(dir) = self.pods_dir(node) else {
            return;
        };
        if uid.is_empty() || uid.contains('/') {
            return;
        }
        // The data of CSI volumes that still exist is kept for the next pod to mount them.
        let csi = dir.join(uid).join("volumes").join("kubernetes.io~csi");
        for entry in std::fs::read_dir(&csi).into_iter().flatten().flatten() {
            let pv = entry.file_name().to_string_lossy().to_string();
            let key: Key = (
                String::new(),
                "persistentvolumes".into(),
                String::new(),
                pv.clone(),
            );
            if let (true, Some(kept)) = (self.objects.contains_key(&key), self.kept_volume_dir(&pv))
            {
                let _ = std::fs::remove_dir_all(&kept);
                if kept
                    .parent()
                    .is_some_and(|p| std::fs::create_dir_all(p).is_ok())
                {
                    let _ = std::fs::rename(entry.path().join("mount"), &kept);
                }
            }
        }
        let _ = std::fs::remove_dir_all(dir.join(uid));
    }

    /// Stores a changed object and tells the watches.
    pub(super) fn store_modified(&mut self, key: &Key, mut value: Value) {
        value["metadata"]["resourceVersion"] = json!(self.next_rv());
        let created = self.objects[key].created;
        self.objects.insert(
            key.clone(),
            Stored {
                value: value.clone(),
                created,
            },
        );
        self.notify("MODIFIED", key, value);
    }
}

fn with_status(mut pod: Value, status: Value) -> Value {
    pod["status"] = status;
    pod
}
