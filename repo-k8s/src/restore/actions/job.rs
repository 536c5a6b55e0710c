//! Jobs (Velero `job_action.go`): the controller-uid labels of the old Job go from the
//! selector and the pod template, so the API server gives the new Job its own.

use super::remove_if_empty;
use crate::object::Object;

const CONTROLLER_UID: &[&str] = &["controller-uid", "batch.kubernetes.io/controller-uid"];

pub(super) fn execute(job: &mut Object) {
    for path in [
        &["spec", "selector", "matchLabels"][..],
        &["spec", "template", "metadata", "labels"][..],
    ] {
        if let Some(m) = job.get_mut(path).and_then(|v| v.as_object_mut()) {
            for k in CONTROLLER_UID {
                m.remove(*k);
            }
        }
    }
    // An empty selector would select every pod; without one, Kubernetes generates a fresh
    // one for the new Job (Velero keeps the empty map, which the API server rejects for
    // Jobs without manualSelector, so cairn drops it).
    remove_if_empty(job, &["spec", "selector", "matchLabels"]);
    remove_if_empty(job, &["spec", "selector"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/job_action_test.go TestJobActionExecute.
    #[test]
    fn controller_uid_labels_go() {
        let mut j = obj(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"selector": {"matchLabels": {"controller-uid": "foo", "hello": "world"}},
                "template": {"metadata": {"labels": {"controller-uid": "foo", "batch.kubernetes.io/controller-uid": "foo", "hello": "world"}}}}}),
        );
        execute(&mut j);
        let v = j.as_value();
        assert_eq!(
            v["spec"]["selector"]["matchLabels"],
            json!({"hello": "world"})
        );
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"],
            json!({"hello": "world"})
        );
        // Missing selector or template: nothing to do, no error.
        let mut bare =
            obj(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}));
        execute(&mut bare);
        assert!(bare.get(&["spec"]).is_none());
        // Only controller-uid: the selector goes.
        let mut only = obj(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"selector": {"matchLabels": {"controller-uid": "foo"}}}}),
        );
        execute(&mut only);
        assert!(only.get(&["spec", "selector"]).is_none());
    }
}
