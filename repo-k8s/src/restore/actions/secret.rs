//! Secrets (Velero `secret_action.go`): a legacy service account token secret
//! (`kubernetes.io/service-account-token`) named `<account>-token-…` of an account that will
//! exist is not restored: Kubernetes makes the account a new one. Other token secrets are
//! restored without the token, the CA and the old account's uid, for the token controller
//! to fill in.

use serde_json::Value;

use super::Stop;
use crate::object::Object;

const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

pub(super) fn execute(
    secret: &mut Object,
    account_exists: &dyn Fn(&str, &str) -> bool,
) -> Result<(), Stop> {
    if secret.str_at(&["type"]) != Some(TOKEN_TYPE) {
        return Ok(());
    }
    let ns = secret.namespace().unwrap_or("").to_string();
    // An account's name may hold `-token-` too: try each place the name could split.
    let name = secret.name();
    for (at, _) in name.match_indices("-token-") {
        let account = &name[..at];
        if account_exists(&ns, account) {
            return Err(Stop::Skip(format!(
                "token secret of service account {account}, which Kubernetes gives a new one"
            )));
        }
    }
    if let Some(Value::Object(a)) = secret.get_mut(&["metadata", "annotations"]) {
        a.remove("kubernetes.io/service-account.uid");
    }
    if let Some(Value::Object(d)) = secret.get_mut(&["data"]) {
        d.remove("token");
        d.remove("ca.crt");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/secret_action_test.go TestSecretActionExecute.
    #[test]
    fn auto_created_token_secrets_are_skipped_and_manual_ones_stripped() {
        let only_default = |ns: &str, sa: &str| ns == "foo" && sa == "default";
        // Not a token secret: unchanged, whatever its name.
        let mut opaque = obj(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "default-token-sfafa", "namespace": "foo"}, "type": "Opaque", "data": {"token": "x"}}),
        );
        let before = opaque.clone();
        assert_eq!(execute(&mut opaque, &only_default), Ok(()));
        assert_eq!(opaque, before);
        // The token secret of an account that exists: skipped.
        let mut auto = obj(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "default-token-sfafa", "namespace": "foo"}, "type": TOKEN_TYPE}),
        );
        assert!(matches!(
            execute(&mut auto, &only_default),
            Err(Stop::Skip(_))
        ));
        // A manual token secret: token, CA and uid go; the rest stays.
        let mut manual = obj(
            json!({"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": "my-token", "namespace": "foo", "annotations": {"kubernetes.io/service-account.uid": "u", "key": "value"}},
            "data": {"token": "t", "ca.crt": "c", "key": "value"}}),
        );
        assert_eq!(execute(&mut manual, &only_default), Ok(()));
        assert_eq!(
            manual.get(&["metadata", "annotations"]).unwrap(),
            &json!({"key": "value"})
        );
        assert_eq!(manual.get(&["data"]).unwrap(), &json!({"key": "value"}));
    }
}
