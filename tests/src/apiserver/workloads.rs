//! Stand-in workload controllers, with simulated nodes: enough of what Kubernetes' own do
//! for a Deployment or a StatefulSet to have pods (and claims) that the kubelets run.
//!
//! - **Deployment**: one ReplicaSet `<deployment>-<hash of its template>`, owned by it.
//! - **ReplicaSet**: pods `<replicaset>-<5 characters>` until `replicas` pods in its
//!   namespace match its selector's `matchLabels` (a restored pod counts, as a real
//!   ReplicaSet adopts a matching orphan).
//! - **StatefulSet**: for each ordinal `i`, the claims `<template>-<set>-<i>` of its
//!   `volumeClaimTemplates` and the pod `<set>-<i>` mounting them.
//!
//! Not simulated: rollouts, scaling down, deleting what an owner no longer wants, the
//! garbage collector.

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

    /// One round of the Deployment, ReplicaSet and StatefulSet controllers.
    pub(super) fn run_workloads(&mut self) {
        for (key, d) in self.of_kind("apps", "deployments") {
            let template = &d["spec"]["template"];
            let name = format!("{}-{}", key.3, digest(&template.to_string(), 10));
            if self.exists("apps", "replicasets", &key.2, &name) {
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
            let have = self
                .objects
                .iter()
                .filter(|(k, s)| {
                    k.0.is_empty() && k.1 == "pods" && k.2 == key.2 && matches(&s.value)
                })
                .count();
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
