//! Pods (Velero `pod_action.go`): the node and the resolved priority go (the scheduler and
//! the admission controller set them again); volumes and mounts of the legacy service
//! account token secret (`<serviceAccountName>-token-…`) go, since that secret is made
//! anew; the pod's PriorityClass comes along.

use serde_json::Value;

use super::Needed;
use crate::object::Object;

pub(super) fn execute(pod: &mut Object) -> Vec<Needed> {
    pod.remove(&["spec", "nodeName"]);
    pod.remove(&["spec", "priority"]);
    // Velero matches by name prefix only: projected `kube-api-access-*` volumes stay.
    let prefix = format!(
        "{}-token-",
        pod.str_at(&["spec", "serviceAccountName"]).unwrap_or("")
    );
    let is_token = |v: &Value| {
        v.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with(&prefix))
    };
    if let Some(Value::Array(volumes)) = pod.get_mut(&["spec", "volumes"]) {
        volumes.retain(|v| !is_token(v));
    }
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = pod.get_mut(&["spec", list]) {
            for c in containers {
                if let Some(Value::Array(mounts)) = c.get_mut("volumeMounts") {
                    mounts.retain(|m| !is_token(m));
                }
            }
        }
    }
    match pod.str_at(&["spec", "priorityClassName"]) {
        Some(pc) if !pc.is_empty() => vec![Needed {
            resource: "priorityclasses.scheduling.k8s.io",
            name: pc.to_string(),
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/pod_action_test.go TestPodActionExecute.
    #[test]
    fn node_priority_and_token_volumes_go_and_the_priority_class_comes_along() {
        let mut p = obj(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "foo", "priority": 1, "serviceAccountName": "foo", "priorityClassName": "testPriorityClass",
                "volumes": [{"name": "foo"}, {"name": "foo-token-foo"}, {"name": "kube-api-access-x", "projected": {}}],
                "containers": [{"name": "c", "volumeMounts": [{"name": "foo"}, {"name": "foo-token-foo"}]}],
                "initContainers": [{"name": "i", "volumeMounts": [{"name": "foo-token-foo"}]}, {"name": "bare"}]}}),
        );
        let needed = execute(&mut p);
        let v = p.as_value();
        assert!(v["spec"].get("nodeName").is_none() && v["spec"].get("priority").is_none());
        assert_eq!(v["spec"]["serviceAccountName"], "foo");
        assert_eq!(v["spec"]["priorityClassName"], "testPriorityClass");
        assert_eq!(
            v["spec"]["volumes"],
            json!([{"name": "foo"}, {"name": "kube-api-access-x", "projected": {}}])
        );
        assert_eq!(
            v["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "foo"}])
        );
        assert_eq!(v["spec"]["initContainers"][0]["volumeMounts"], json!([]));
        assert_eq!(
            needed,
            [Needed {
                resource: "priorityclasses.scheduling.k8s.io",
                name: "testPriorityClass".into()
            }]
        );
        // No priority class, no additional item; no spec, no error.
        let mut bare = obj(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}));
        assert!(execute(&mut bare).is_empty());
    }
}
