//! APIServices (Velero `apiservice_action.go`): those Kubernetes manages itself (labelled
//! `kube-aggregator.kubernetes.io/automanaged`, any value) are not restored; the API
//! server registers them.

use super::Stop;
use crate::object::Object;

pub(super) fn execute(service: &mut Object) -> Result<(), Stop> {
    if service
        .label("kube-aggregator.kubernetes.io/automanaged")
        .is_some()
    {
        return Err(Stop::Skip(
            "managed by the API server, which registers it again".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    /// Velero pkg/restore/actions/apiservice_action_test.go (and its label selector).
    #[test]
    fn automanaged_api_services_are_skipped() {
        let mut managed = obj(
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1.test.velero.io", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}}}),
        );
        assert!(matches!(execute(&mut managed), Err(Stop::Skip(_))));
        let mut own = obj(
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"}}),
        );
        assert_eq!(execute(&mut own), Ok(()));
    }
}
