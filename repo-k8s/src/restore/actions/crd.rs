//! CustomResourceDefinitions (Velero `crd_v1_preserve_unknown_fields_action.go`): a v1 CRD
//! with `preserveUnknownFields: true`, which apiextensions v1 no longer accepts, is restored
//! with it false and `x-kubernetes-preserve-unknown-fields: true` on each version's root
//! schema: the same meaning in the form v1 takes.

use serde_json::Value;

use crate::object::Object;

pub(super) fn execute(crd: &mut Object) {
    if crd.api_version() != "apiextensions.k8s.io/v1"
        || crd.get(&["spec", "preserveUnknownFields"]) != Some(&Value::Bool(true))
    {
        return;
    }
    crd.map_at_mut(&["spec"])
        .insert("preserveUnknownFields".into(), false.into());
    if let Some(Value::Array(versions)) = crd.get_mut(&["spec", "versions"]) {
        for v in versions {
            if let Some(Value::Object(schema)) = v.pointer_mut("/schema/openAPIV3Schema") {
                schema.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/crd_v1_preserve_unknown_fields_action_test.go (an integer
    /// on a float field survives: values are kept as JSON, never converted).
    #[test]
    fn preserve_unknown_fields_becomes_the_v1_form() {
        let crd = |api: &str| {
            obj(
                json!({"apiVersion": api, "kind": "CustomResourceDefinition", "metadata": {"name": "w.example.com"},
                "spec": {"preserveUnknownFields": true, "versions": [
                    {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {"n": {"type": "number", "maximum": 5}}}}},
                    {"name": "v2"}]}}),
            )
        };
        let mut v1 = crd("apiextensions.k8s.io/v1");
        execute(&mut v1);
        let v = v1.as_value();
        assert_eq!(v["spec"]["preserveUnknownFields"], false);
        let schema = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(schema["properties"]["n"]["maximum"], 5);
        assert!(v["spec"]["versions"][1].get("schema").is_none());
        // v1beta1: unchanged.
        let mut beta = crd("apiextensions.k8s.io/v1beta1");
        let before = beta.clone();
        execute(&mut beta);
        assert_eq!(beta, before);
    }
}
