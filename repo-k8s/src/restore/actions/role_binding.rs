//! RoleBindings and ClusterRoleBindings (Velero `rolebinding_action.go`,
//! `clusterrolebinding_action.go`): subjects in a mapped namespace follow the mapping, of
//! every kind, so a binding restored elsewhere still grants its accounts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::Object;

pub(super) fn execute(binding: &mut Object, mappings: &BTreeMap<String, String>) {
    if mappings.is_empty() {
        return;
    }
    if let Some(Value::Array(subjects)) = binding.get_mut(&["subjects"]) {
        for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let mapped = s
                .get("namespace")
                .and_then(Value::as_str)
                .and_then(|ns| mappings.get(ns));
            if let Some(new) = mapped {
                s.insert("namespace".into(), new.clone().into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/rolebinding_action_test.go TestRoleBindingActionExecute
    /// and clusterrolebinding_action_test.go TestClusterRoleBindingActionExecute.
    #[test]
    fn subjects_follow_the_namespace_mappings() {
        let run = |kind: &str, namespaces: &[&str], maps: &[(&str, &str)]| -> Vec<String> {
            let mut b = obj(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": "b", "namespace": "foo"},
                "roleRef": {"kind": "Role", "name": "r"},
                "subjects": namespaces.iter().map(|ns| json!({"kind": "ServiceAccount", "name": "sa", "namespace": ns})).collect::<Vec<_>>()}),
            );
            let maps = maps
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            execute(&mut b, &maps);
            b.get(&["subjects"])
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["namespace"].as_str().unwrap().to_string())
                .collect()
        };
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            assert_eq!(run(kind, &["foo"], &[]), ["foo"]);
            assert_eq!(
                run(kind, &["foo"], &[("foo", "bar"), ("fizz", "buzz")]),
                ["bar"]
            );
            assert_eq!(
                run(kind, &["foo", "xyz"], &[("foo", "bar"), ("fizz", "buzz")]),
                ["bar", "xyz"]
            );
            assert_eq!(
                run(kind, &["foo", "xyz"], &[("a", "b"), ("c", "d")]),
                ["foo", "xyz"]
            );
        }
    }
}
