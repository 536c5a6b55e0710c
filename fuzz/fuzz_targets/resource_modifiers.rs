//! Fuzz target: Velero's resource modifiers and resource policies (volume policies matched
//! against volumes too) as a restore or backup
//! reads them (from a ConfigMap in the cluster, once the controller runs): parsing,
//! validation, and applying what parses to a few objects must never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_k8s::modifiers::ResourceModifiers;
use repo_k8s::resource_policy::ResourcePolicies;
use repo_k8s::volume_policy::{Volume, VolumePolicies};
use repo_k8s::Object;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = ResourcePolicies::from_file_text(text) {
        // What validated, matched against volumes of each kind.
        let policies = VolumePolicies::parse(&p.volume_policies).expect("validated");
        let pv = Object::from_value(
            serde_json::from_str(r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv"},
                "spec":{"capacity":{"storage":"10Gi"},"storageClassName":"gp2","csi":{"driver":"d","volumeAttributes":{"a":"b"}}}}"#).unwrap(),
            "fuzz",
        )
        .unwrap();
        let pvc = Object::from_value(
            serde_json::from_str(r#"{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c","namespace":"ns","labels":{"app":"db"}},
                "spec":{},"status":{"phase":"Bound"}}"#).unwrap(),
            "fuzz",
        )
        .unwrap();
        let pod_volume: serde_json::Value = serde_json::from_str(r#"{"name":"v","nfs":{"server":"s","path":"/p"}}"#).unwrap();
        for v in [
            Volume { pv: Some(&pv), pvc: Some(&pvc), pod_volume: None },
            Volume { pv: None, pvc: None, pod_volume: Some(&pod_volume) },
            Volume { pv: None, pvc: Some(&pvc), pod_volume: None },
        ] {
            let _ = policies.action_for(&v);
        }
    }
    let Ok(m) = ResourceModifiers::from_file_text(text) else {
        return;
    };
    let objects = [
        (
            "deployments.apps",
            Some("shop"),
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},
               "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"web","image":"nginx","ports":[{"containerPort":80}]}],
               "volumes":[{"name":"v","emptyDir":{}}]}}}}"#,
        ),
        (
            "persistentvolumeclaims",
            Some("shop"),
            r#"{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data","namespace":"shop"},"spec":{"storageClassName":"gp2"}}"#,
        ),
        (
            "storageclasses.storage.k8s.io",
            None,
            r#"{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"gp2"},"provisioner":"x"}"#,
        ),
    ];
    for (gr, ns, json) in objects {
        let mut o = Object::from_value(serde_json::from_str(json).unwrap(), "fuzz").unwrap();
        for typed in [true, false] {
            let _ = m.apply(gr, ns, &mut o, typed);
            // Whatever the rules did, the item is still an object with a kind.
            assert!(!o.kind().is_empty());
        }
    }
});
