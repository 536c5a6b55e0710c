//! Admission webhook configurations (Velero `admissionwebhook_config_action.go`): in v1,
//! `sideEffects` must be `None` or `NoneOnDryRun`; any other value (v1beta1's `Unknown` or
//! `Some`, or none) becomes `None`, so configurations backed up from older clusters restore.

use serde_json::Value;

use crate::object::Object;

pub(super) fn execute(config: &mut Object) {
    if config.api_version() != "admissionregistration.k8s.io/v1" {
        return;
    }
    if let Some(Value::Array(webhooks)) = config.get_mut(&["webhooks"]) {
        for w in webhooks.iter_mut().filter_map(Value::as_object_mut) {
            let ok = matches!(
                w.get("sideEffects").and_then(Value::as_str),
                Some("None" | "NoneOnDryRun")
            );
            if !ok {
                w.insert("sideEffects".into(), "None".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/admissionwebhook_config_action_test.go.
    #[test]
    fn side_effects_become_none_in_v1() {
        let run = |api: &str, kind: &str, effects: &[Option<&str>]| -> Vec<Value> {
            let hooks: Vec<Value> = effects
                .iter()
                .map(|e| match e {
                    Some(e) => json!({"name": "h", "sideEffects": e}),
                    None => json!({"name": "h"}),
                })
                .collect();
            let mut c = obj(
                json!({"apiVersion": api, "kind": kind, "metadata": {"name": "c"}, "webhooks": hooks}),
            );
            execute(&mut c);
            c.get(&["webhooks"])
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["sideEffects"].clone())
                .collect()
        };
        let v1 = "admissionregistration.k8s.io/v1";
        assert_eq!(
            run(v1, "MutatingWebhookConfiguration", &[Some("Unknown")]),
            [json!("None")]
        );
        assert_eq!(
            run(v1, "ValidatingWebhookConfiguration", &[Some("Some")]),
            [json!("None")]
        );
        assert_eq!(
            run(
                "admissionregistration.k8s.io/v1beta1",
                "ValidatingWebhookConfiguration",
                &[Some("Some")]
            ),
            [json!("Some")]
        );
        assert_eq!(
            run(
                v1,
                "ValidatingWebhookConfiguration",
                &[Some("Some"), Some("Unknown"), Some("NoneOnDryRun"), None]
            ),
            [
                json!("None"),
                json!("None"),
                json!("NoneOnDryRun"),
                json!("None")
            ]
        );
    }
}
