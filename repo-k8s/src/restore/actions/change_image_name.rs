//! Change image name (Velero `change_image_name_action.go`, opt-in): in pods and the pod
//! templates of workloads, a container or init container image that contains the old part
//! of a rule has every occurrence replaced by the new part. The first rule that matches
//! wins; rules are tried in the order given (Velero's order is a Go map's, unspecified).

use serde_json::Value;

use crate::object::Object;

/// Resources whose pod specs are rewritten.
pub(super) const APPLIES_TO: &[&str] = &[
    "pods",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "replicasets.apps",
    "replicationcontrollers",
    "jobs.batch",
    "cronjobs.batch",
];

/// Applies `rules` (`(old, new)`).
pub(super) fn execute(item: &mut Object, rules: &[(String, String)]) {
    let spec: &[&str] = match item.kind() {
        "Pod" => &["spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &["spec", "template", "spec"],
    };
    for list in ["containers", "initContainers"] {
        let mut path = spec.to_vec();
        path.push(list);
        if let Some(Value::Array(containers)) = item.get_mut(&path) {
            for c in containers {
                if let Some(Value::String(image)) = c.get_mut("image") {
                    let rule = rules.iter().find(|(old, _)| image.contains(old.as_str()));
                    if let Some((old, new)) = rule {
                        *image = image.replace(old.as_str(), new);
                    }
                }
            }
        }
    }
}

/// Reads Velero's rule values: `old,new` (split at the first comma, both trimmed). Values
/// without a comma or without a new part are not rules (Velero ignores them); an empty old
/// part would match every image, so it is refused.
pub fn parse_rule(value: &str) -> Result<Option<(String, String)>, String> {
    let Some((old, new)) = value.split_once(',') else {
        return Ok(None);
    };
    let (old, new) = (old.trim(), new.trim());
    if new.is_empty() {
        return Ok(None);
    }
    if old.is_empty() {
        return Err(format!(
            "image name rule {value:?} has no old part and would change every image"
        ));
    }
    Ok(Some((old.to_string(), new.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    fn image_after(image: &str, rule: &str) -> String {
        let rules: Vec<_> = parse_rule(rule).unwrap().into_iter().collect();
        let mut pod = obj(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": image}]}}),
        );
        execute(&mut pod, &rules);
        pod.get(&["spec", "containers"]).unwrap()[0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Velero pkg/restore/actions/change_image_name_action_test.go.
    #[test]
    fn images_change_by_their_parts() {
        let image = "1.1.1.1:5000/abc:test";
        assert_eq!(
            image_after(image, "1.1.1.1:5000  ,  2.2.2.2:3000"),
            "2.2.2.2:3000/abc:test"
        );
        assert_eq!(
            image_after(image, "1.1.1.1:5000,2.2.2.2:3000"),
            "2.2.2.2:3000/abc:test"
        );
        assert_eq!(
            image_after(image, "abc:test,myproject:latest"),
            "1.1.1.1:5000/myproject:latest"
        );
        assert_eq!(image_after(image, "5000,3333"), "1.1.1.1:3333/abc:test");
        assert_eq!(image_after(image, "test,latest"), "1.1.1.1:5000/abc:latest");
        assert_eq!(
            image_after("dev/image1:dev", "dev/,test/"),
            "test/image1:dev"
        );
        assert_eq!(parse_rule("no-comma"), Ok(None));
        assert!(parse_rule(",x").is_err());
        // Init containers and CronJobs' templates too.
        let rules = vec![("old".to_string(), "new".to_string())];
        let mut cj = obj(
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"initContainers": [{"name": "i", "image": "old/x"}]}}}}}}),
        );
        execute(&mut cj, &rules);
        assert_eq!(
            cj.as_value()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]
                ["image"],
            "new/x"
        );
    }
}
