//! Service accounts (Velero `service_account_action.go`): the reference to the legacy token
//! secret (`<name>-token-…`, the last one listed) goes; Kubernetes makes a new one.

use serde_json::Value;

use crate::object::Object;

pub(super) fn execute(sa: &mut Object) {
    let prefix = format!("{}-token-", sa.name());
    if let Some(Value::Array(secrets)) = sa.get_mut(&["secrets"]) {
        let is_token = |s: &Value| {
            s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with(&prefix))
        };
        if let Some(i) = secrets.iter().rposition(is_token) {
            secrets.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/service_account_action_test.go
    /// TestServiceAccountActionExecute.
    #[test]
    fn the_token_secret_reference_goes() {
        let names = |list: &[&str]| -> Vec<String> {
            let mut sa = obj(
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bar", "namespace": "foo"},
                "secrets": list.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}),
            );
            execute(&mut sa);
            sa.get(&["secrets"])
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&[]), Vec::<String>::new());
        assert_eq!(
            names(&["a", "bar-TOKN-nomatch", "baz"]),
            ["a", "bar-TOKN-nomatch", "baz"]
        );
        assert_eq!(names(&["bar-token-a1b2c", "a", "baz"]), ["a", "baz"]);
        assert_eq!(names(&["a", "bar-token-a1b2c", "baz"]), ["a", "baz"]);
        assert_eq!(names(&["a", "baz", "bar-token-a1b2c"]), ["a", "baz"]);
        // Only the last of two goes, as in Velero.
        assert_eq!(names(&["bar-token-1", "bar-token-2"]), ["bar-token-1"]);
    }
}
