//! Namespaces (Velero `restore.go` `getNamespace`): a namespace is created from the backed-up
//! one's name (mapped), labels, annotations and spec, and nothing else. It gets no restore
//! labels, as in Velero. An existing namespace is used as it is.

use serde_json::{Map, Value};

use crate::object::Object;

/// The namespace to create, named `name`, from the backed-up Namespace.
pub(crate) fn from_backup(backed_up: &Object, name: &str) -> Object {
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    for k in ["labels", "annotations"] {
        if let Some(v) = backed_up.get(&["metadata", k]) {
            meta.insert(k.into(), v.clone());
        }
    }
    let mut v = Map::new();
    v.insert("apiVersion".into(), backed_up.api_version().into());
    v.insert("kind".into(), backed_up.kind().into());
    v.insert("metadata".into(), Value::Object(meta));
    if let Some(spec) = backed_up.get(&["spec"]) {
        v.insert("spec".into(), spec.clone());
    }
    Object::from_value(Value::Object(v), name).expect("apiVersion, kind and name are set")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/restore.go getNamespace, as TestRestoreNamespaceMapping and
    /// TestRestoreItems exercise it.
    #[test]
    fn name_labels_annotations_and_spec_only() {
        let ns = obj(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "uid": "u", "finalizers": ["x"], "labels": {"team": "a"}, "annotations": {"note": "n"}, "ownerReferences": []},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
        let made = from_backup(&ns, "shop-copy");
        assert_eq!(
            made.into_value(),
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "shop-copy", "labels": {"team": "a"}, "annotations": {"note": "n"}},
                "spec": {"finalizers": ["kubernetes"]}})
        );
    }
}
