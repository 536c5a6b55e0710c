//! Velero's pod volume restore action (`pod_volume_restore_action.go`): a restored pod with
//! volume data in the backup gets the `restore-wait` init container first, which holds the
//! pod until the node-agent has written each volume's data (`node-agent restore-wait`).
//! Each such volume is mounted at `/restores/<volume>`; Velero's resources (100m CPU and
//! 128Mi, requests and limits), environment (`POD_NAMESPACE`, `POD_NAME`) and security
//! context (the first container's, else non-root 1000 with nothing to escalate). An old
//! `restore-wait` or `restic-wait` container from the backup is replaced.

use serde_json::{json, Value};

use crate::object::Object;

/// Name of the init container.
pub const CONTAINER: &str = "restore-wait";

/// What the init container runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreWait {
    pub image: String,
    /// The command; the Restore's UID is its argument.
    pub command: Vec<String>,
    pub restore_uid: String,
}

/// Adds the init container for `volumes` (the pod's volumes with data) to `pod`; returns
/// the volumes it waits for (none: the pod is left without it).
pub fn add(pod: &mut Object, volumes: &[String], wait: &RestoreWait) -> Vec<String> {
    if let Some(Value::Array(inits)) = pod.get_mut(&["spec", "initContainers"]) {
        inits.retain(|c| !matches!(c["name"].as_str(), Some("restore-wait" | "restic-wait")));
    }
    let pod_volumes = pod
        .get(&["spec", "volumes"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Old backups have data for projected and downwardAPI volumes (Velero #3863, #4053):
    // those are made by the kubelet and must not be waited for.
    let mut waited: Vec<String> = volumes
        .iter()
        .filter(|v| {
            pod_volumes.iter().any(|pv| {
                pv["name"] == v.as_str()
                    && pv.get("projected").is_none()
                    && pv.get("downwardAPI").is_none()
            })
        })
        .cloned()
        .collect();
    waited.sort();
    waited.dedup();
    if waited.is_empty() {
        return waited;
    }
    let security = pod
        .get(&["spec", "containers"])
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("securityContext"))
        .cloned()
        .unwrap_or_else(|| {
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 1000, "runAsNonRoot": true})
        });
    let mounts: Vec<Value> = waited
        .iter()
        .map(|v| json!({"name": v, "mountPath": format!("/restores/{v}")}))
        .collect();
    let field = |path: &str| json!({"valueFrom": {"fieldRef": {"fieldPath": path}}});
    let mut namespace = field("metadata.namespace");
    namespace["name"] = "POD_NAMESPACE".into();
    let mut name = field("metadata.name");
    name["name"] = "POD_NAME".into();
    let container = json!({
        "name": CONTAINER,
        "image": wait.image,
        "command": wait.command,
        "args": [wait.restore_uid],
        "env": [namespace, name],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": security,
        "volumeMounts": mounts,
    });
    let spec = pod.map_at_mut(&["spec"]);
    let inits = spec.entry("initContainers").or_insert_with(|| json!([]));
    if !inits.is_array() {
        *inits = json!([]);
    }
    inits.as_array_mut().expect("an array").insert(0, container);
    waited
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;

    fn wait() -> RestoreWait {
        RestoreWait {
            image: "cairn:1".into(),
            command: vec!["/node-agent".into(), "restore-wait".into()],
            restore_uid: "r-uid".into(),
        }
    }

    // Velero TestPodVolumeRestoreActionExecute: the container first, each volume at
    // /restores/<vol>, the defaults; an old wait container replaced; projected volumes and
    // volumes the pod does not have are not waited for.
    #[test]
    fn the_wait_container_goes_first_with_veleros_settings() {
        let mut p = obj(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"volumes": [{"name": "data"}, {"name": "cache"}, {"name": "api", "projected": {}}],
                "containers": [{"name": "c"}],
                "initContainers": [{"name": "restic-wait"}, {"name": "setup"}]}}),
        );
        let waited = add(
            &mut p,
            &["data".into(), "cache".into(), "api".into(), "gone".into()],
            &wait(),
        );
        assert_eq!(waited, ["cache", "data"]);
        let inits = p.get(&["spec", "initContainers"]).unwrap();
        assert_eq!(inits.as_array().unwrap().len(), 2, "{inits}");
        let w = &inits[0];
        assert_eq!(w["name"], "restore-wait");
        assert_eq!(w["image"], "cairn:1");
        assert_eq!(w["command"], json!(["/node-agent", "restore-wait"]));
        assert_eq!(w["args"], json!(["r-uid"]));
        assert_eq!(
            w["volumeMounts"],
            json!([{"name": "cache", "mountPath": "/restores/cache"}, {"name": "data", "mountPath": "/restores/data"}])
        );
        assert_eq!(
            w["resources"]["limits"],
            json!({"cpu": "100m", "memory": "128Mi"})
        );
        assert_eq!(w["securityContext"]["runAsUser"], 1000);
        assert_eq!(
            w["env"][0],
            json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
        );
        assert_eq!(inits[1]["name"], "setup");
    }

    #[test]
    fn the_first_containers_security_context_is_copied_and_no_data_means_no_container() {
        let mut p = obj(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"volumes": [{"name": "data"}], "containers": [{"name": "c", "securityContext": {"runAsUser": 5, "runAsGroup": 6}}]}}),
        );
        let mut bare = p.clone();
        add(&mut p, &["data".into()], &wait());
        assert_eq!(
            p.get(&["spec", "initContainers"]).unwrap()[0]["securityContext"],
            json!({"runAsUser": 5, "runAsGroup": 6})
        );
        assert!(add(&mut bare, &[], &wait()).is_empty());
        assert!(bare.get(&["spec", "initContainers"]).is_none());
    }
}
