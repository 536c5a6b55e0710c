//! Services (Velero `service_action.go`): the cluster IPs go (unless headless), and node
//! ports go unless the user chose them: `--preserve-nodeports`, or the port's node port is
//! in the `kubectl.kubernetes.io/last-applied-configuration` annotation, or (without that
//! annotation) a managedFields entry owns it. A LoadBalancer with
//! `externalTrafficPolicy: Local` keeps its `healthCheckNodePort` the same way.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Stop;
use crate::object::Object;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub(super) fn execute(svc: &mut Object, preserve_node_ports: bool) -> Result<(), Stop> {
    if svc.str_at(&["spec", "clusterIP"]) != Some("None") {
        svc.remove(&["spec", "clusterIP"]);
        svc.remove(&["spec", "clusterIPs"]);
    }
    if preserve_node_ports {
        return Ok(());
    }
    let name = svc.name().to_string();
    let fail = |why: String| Stop::Fail(format!("service {name}: {why}"));
    let last_applied = match svc.annotation(LAST_APPLIED) {
        Some(text) => Some(serde_json::from_str::<Value>(text).map_err(|e| {
            fail(format!(
                "the {LAST_APPLIED} annotation is not JSON ({e}); fix or remove it, or restore with --preserve-nodeports"
            ))
        })?),
        None => None,
    };
    let owned = owned_fields(svc).map_err(fail)?;
    if svc.str_at(&["spec", "type"]) != Some("ExternalName") {
        let keep = match &last_applied {
            Some(applied) => KeepPorts::from_last_applied(applied).map_err(fail)?,
            None => KeepPorts::from_managed_fields(&owned),
        };
        if let Some(Value::Array(ports)) = svc.get_mut(&["spec", "ports"]) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if !keep.keeps(p) {
                    p.remove("nodePort");
                }
            }
        }
    }
    let local_load_balancer = svc.str_at(&["spec", "type"]) == Some("LoadBalancer")
        && svc.str_at(&["spec", "externalTrafficPolicy"]) == Some("Local");
    if local_load_balancer {
        let in_annotation = last_applied
            .as_ref()
            .and_then(|a| a.pointer("/spec/healthCheckNodePort"))
            .and_then(port_number)
            .is_some_and(|n| n > 0);
        let owned = owned
            .iter()
            .any(|f| f.pointer("/f:spec/f:healthCheckNodePort").is_some());
        if !in_annotation && !owned {
            svc.remove(&["spec", "healthCheckNodePort"]);
        }
    }
    Ok(())
}

/// The `fieldsV1` of every managedFields entry, whatever its manager.
fn owned_fields(svc: &Object) -> Result<Vec<Value>, String> {
    let Some(Value::Array(entries)) = svc.get(&["metadata", "managedFields"]) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries {
        match e.get("fieldsV1") {
            Some(Value::Object(_)) => out.push(e["fieldsV1"].clone()),
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(format!(
                    "a managedFields entry's fieldsV1 is not a mapping ({other}); fix it, or restore with --preserve-nodeports"
                ))
            }
        }
    }
    Ok(out)
}

/// A node port as a number: JSON numbers, and numeric strings as kubectl may have written.
fn port_number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The ports whose node ports the user chose.
enum KeepPorts {
    /// From last-applied-configuration: named ports by name, unnamed ones by node port.
    Applied {
        named: BTreeSet<String>,
        unnamed: BTreeSet<i64>,
    },
    /// From managedFields: `k:{"port":N,"protocol":"P"}` keys that own `f:nodePort`.
    Owned(BTreeSet<String>),
}

impl KeepPorts {
    fn from_last_applied(applied: &Value) -> Result<Self, String> {
        let mut named = BTreeSet::new();
        let mut unnamed = BTreeSet::new();
        let ports = applied.pointer("/spec/ports").and_then(Value::as_array);
        for p in ports.into_iter().flatten() {
            let node_port = match p.get("nodePort") {
                Some(Value::String(s)) => s.parse::<i64>().map_err(|_| {
                    format!("the {LAST_APPLIED} annotation has nodePort {s:?}, not a number")
                })?,
                Some(v) => port_number(v).unwrap_or(0),
                None => 0,
            };
            if node_port <= 0 {
                continue;
            }
            match p.get("name").and_then(Value::as_str) {
                Some(name) => named.insert(name.to_string()),
                None => unnamed.insert(node_port),
            };
        }
        Ok(KeepPorts::Applied { named, unnamed })
    }

    fn from_managed_fields(owned: &[Value]) -> Self {
        let mut keys = BTreeSet::new();
        for f in owned {
            if let Some(ports) = f.pointer("/f:spec/f:ports").and_then(Value::as_object) {
                for (key, fields) in ports {
                    if fields.get("f:nodePort").is_some() {
                        keys.insert(key.clone());
                    }
                }
            }
        }
        KeepPorts::Owned(keys)
    }

    fn keeps(&self, port: &serde_json::Map<String, Value>) -> bool {
        match self {
            KeepPorts::Applied { named, unnamed } => {
                match port
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                {
                    Some(name) => named.contains(name),
                    None => port
                        .get("nodePort")
                        .and_then(port_number)
                        .is_some_and(|n| unnamed.contains(&n)),
                }
            }
            KeepPorts::Owned(keys) => {
                let key = format!(
                    "k:{{\"port\":{},\"protocol\":\"{}\"}}",
                    port.get("port").and_then(port_number).unwrap_or(0),
                    port.get("protocol").and_then(Value::as_str).unwrap_or("")
                );
                keys.contains(&key)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::actions::obj;
    use serde_json::json;

    fn svc(spec: Value, annotations: Value, managed: Value) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns", "annotations": annotations, "managedFields": managed},
            "spec": spec}))
    }

    fn applied(ports: Value) -> Value {
        json!({LAST_APPLIED: json!({"spec": {"healthCheckNodePort": 8080, "ports": ports}}).to_string()})
    }

    fn node_ports(s: &Object) -> Vec<Option<i64>> {
        s.get(&["spec", "ports"])
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|p| p.get("nodePort").and_then(Value::as_i64))
            .collect()
    }

    fn run(mut s: Object, preserve: bool) -> Object {
        execute(&mut s, preserve).unwrap();
        s
    }

    /// Velero pkg/restore/actions/service_action_test.go TestServiceActionExecute: cluster
    /// IPs.
    #[test]
    fn cluster_ips_go_unless_headless() {
        let s = run(
            svc(
                json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "loadBalancerIP": "1.2.3.4"}),
                json!({}),
                json!([]),
            ),
            false,
        );
        assert_eq!(
            s.get(&["spec"]).unwrap(),
            &json!({"loadBalancerIP": "1.2.3.4"})
        );
        let s = run(
            svc(
                json!({"clusterIP": "None", "clusterIPs": ["None"]}),
                json!({}),
                json!([]),
            ),
            false,
        );
        assert_eq!(s.str_at(&["spec", "clusterIP"]), Some("None"));
        assert!(s.get(&["spec", "clusterIPs"]).is_some());
    }

    /// The node-port cases of TestServiceActionExecute.
    #[test]
    fn node_ports_are_kept_only_where_the_user_chose_them() {
        let ports = |p: &Value| json!({"ports": p});
        let unnamed = json!([{"port": 80, "nodePort": 8080}, {"port": 81, "nodePort": 9090}]);
        let named = json!([{"name": "http", "port": 80, "nodePort": 8080}, {"name": "admin", "port": 81, "nodePort": 9090}]);
        // Nothing says the user set them: all go.
        let s = run(svc(ports(&unnamed), json!({}), json!([])), false);
        assert_eq!(node_ports(&s), [None, None]);
        // Annotation without ports: unnamed node ports go.
        let s = run(svc(ports(&unnamed), applied(json!([])), json!([])), false);
        assert_eq!(node_ports(&s), [None, None]);
        // Unnamed node port in the annotation: that one stays.
        let s = run(
            svc(
                ports(&unnamed),
                applied(json!([{"port": 80, "nodePort": 8080}])),
                json!([]),
            ),
            false,
        );
        assert_eq!(node_ports(&s), [Some(8080), None]);
        // A named entry (number or string) does not protect an unnamed port.
        for np in [json!(8080), json!("8080")] {
            let s = run(
                svc(
                    ports(&unnamed),
                    applied(json!([{"name": "http", "nodePort": np}])),
                    json!([]),
                ),
                false,
            );
            assert_eq!(node_ports(&s), [None, None]);
        }
        // Named: by name.
        let s = run(
            svc(
                ports(&named),
                applied(json!([{"name": "http", "nodePort": 8080}])),
                json!([]),
            ),
            false,
        );
        assert_eq!(node_ports(&s), [Some(8080), None]);
        // --preserve-nodeports keeps them all.
        let s = run(svc(ports(&named), json!({}), json!([])), true);
        assert_eq!(node_ports(&s), [Some(8080), Some(9090)]);
        // managedFields: kept where a manager owns f:nodePort under the port's key.
        let tcp = json!([{"port": 443, "protocol": "TCP", "nodePort": 30000}, {"port": 80, "protocol": "TCP", "nodePort": 30002}]);
        let without = json!([{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:ports": {
            "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}},
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}}}]);
        let with = json!([{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:ports": {
            "k:{\"port\":443,\"protocol\":\"TCP\"}": {"f:nodePort": {}},
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:nodePort": {}}}}}}]);
        let s = run(svc(ports(&tcp), json!({}), without), false);
        assert_eq!(node_ports(&s), [None, None]);
        let s = run(svc(ports(&tcp), json!({}), with), false);
        assert_eq!(node_ports(&s), [Some(30000), Some(30002)]);
    }

    /// The healthCheckNodePort cases of TestServiceActionExecute.
    #[test]
    fn health_check_node_port_of_a_local_load_balancer() {
        let lb = |policy: &str| {
            json!({"type": "LoadBalancer", "externalTrafficPolicy": policy, "healthCheckNodePort": 8080,
                "ports": [{"name": "http", "port": 80, "nodePort": 8080}]})
        };
        let hc = |s: &Object| s.get(&["spec", "healthCheckNodePort"]).cloned();
        assert_eq!(
            hc(&run(svc(lb("Local"), json!({}), json!([])), true)),
            Some(json!(8080))
        );
        assert_eq!(
            hc(&run(svc(lb("Local"), json!({}), json!([])), false)),
            None
        );
        assert_eq!(
            hc(&run(svc(lb("Cluster"), json!({}), json!([])), false)),
            Some(json!(8080))
        );
        assert_eq!(
            hc(&run(svc(lb("Local"), applied(json!([])), json!([])), false)),
            Some(json!(8080))
        );
        let owned =
            json!([{"manager": "m", "fieldsV1": {"f:spec": {"f:healthCheckNodePort": {}}}}]);
        assert_eq!(
            hc(&run(svc(lb("Local"), json!({}), owned), false)),
            Some(json!(8080))
        );
        // A null in the annotation is no choice (Velero main; v1.18.1 failed the item).
        let null = json!({LAST_APPLIED: r#"{"spec":{"healthCheckNodePort":null}}"#});
        assert_eq!(hc(&run(svc(lb("Local"), null, json!([])), false)), None);
    }

    #[test]
    fn a_bad_annotation_fails_the_item_with_the_fix() {
        let mut s = svc(
            json!({"ports": [{"port": 80, "nodePort": 8080}]}),
            json!({LAST_APPLIED: "{not json"}),
            json!([]),
        );
        let Err(Stop::Fail(why)) = execute(&mut s, false) else {
            panic!("expected a failure")
        };
        assert!(why.contains("--preserve-nodeports"), "{why}");
    }
}
