//! Kubernetes strategic merge patches, for the built-in kinds (Velero applies them with the
//! built-in types' schemas, and refuses other kinds). Mappings merge as in a JSON merge
//! patch; lists with a merge key (containers by `name`, container ports by `containerPort`,
//! volume mounts by `mountPath`, …) merge element by element; other lists are replaced. The
//! directives `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>` are honoured.

use serde_json::{Map, Value};

/// The merge key of a list field, by its name and what its elements hold. `None`: the list
/// is replaced whole.
fn merge_key(field: &str, elements: &[&Value]) -> Option<&'static str> {
    let has = |k: &str| elements.iter().any(|e| e.get(k).is_some());
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "readinessGates"
        | "schedulingGates" => {
            if field == "readinessGates" {
                "conditionType"
            } else {
                "name"
            }
        }
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" if has("containerPort") => "containerPort",
        "ports" => "port",
        "hostAliases" => "ip",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars that merge as sets.
const MERGED_SCALAR_LISTS: &[&str] = &["finalizers"];

/// Applies `patch` to `doc`.
pub fn apply(doc: &Value, patch: &Value) -> Result<Value, String> {
    let mut out = doc.clone();
    merge(&mut out, patch)?;
    Ok(out)
}

fn merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut whole = p.clone();
            whole.remove("$patch");
            *target = Value::Object(whole);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown $patch directive {other:?}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made a mapping above");
    let mut orders = Vec::new();
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(list) = k.strip_prefix("$setElementOrder/") {
            orders.push((list.to_string(), v));
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let gone = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(a)) = t.get_mut(list) {
                a.retain(|x| !gone.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) => {
                let existing = t.remove(k);
                let merged = merge_list(k, existing, items)?;
                t.insert(k.clone(), merged);
            }
            Value::Object(m) if m.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            _ => merge(t.entry(k.clone()).or_insert(Value::Null), v)?,
        }
    }
    for (list, order) in orders {
        if let Some(Value::Array(a)) = t.get_mut(&list) {
            set_order(&list, a, order);
        }
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list(field: &str, existing: Option<Value>, items: &[Value]) -> Result<Value, String> {
    let mut have = match existing {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    if MERGED_SCALAR_LISTS.contains(&field) {
        for i in items {
            if !have.contains(i) {
                have.push(i.clone());
            }
        }
        return Ok(Value::Array(have));
    }
    let elements: Vec<&Value> = have.iter().chain(items).collect();
    let Some(key) = merge_key(field, &elements) else {
        // Replaced whole; directives in the elements mean nothing here.
        return Ok(Value::Array(items.to_vec()));
    };
    // `$patch: replace` as an element replaces the list with the other elements.
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let rest = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(Value::Array(rest));
    }
    for item in items {
        let Some(id) = item.get(key) else {
            return Err(format!(
                "an element of {field} has no {key}, which strategic merge patches use to find it"
            ));
        };
        let at = have.iter().position(|h| h.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (at, delete) {
            (Some(i), true) => {
                have.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => merge(&mut have[i], item)?,
            (None, false) => {
                let mut fresh = Value::Null;
                merge(&mut fresh, item)?;
                have.push(fresh);
            }
        }
    }
    Ok(Value::Array(have))
}

/// `$setElementOrder/<list>`: the listed elements (by merge key) in that order, others after.
fn set_order(field: &str, list: &mut [Value], order: &Value) {
    let Some(order) = order.as_array() else {
        return;
    };
    let key = {
        let elements: Vec<&Value> = list.iter().chain(order).collect();
        merge_key(field, &elements)
    };
    let pos = |v: &Value| -> usize {
        let found = match key {
            Some(key) => order.iter().position(|o| o.get(key) == v.get(key)),
            None => order.iter().position(|o| o == v),
        };
        found.unwrap_or(usize::MAX)
    };
    list.sort_by_key(|v| pos(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Velero internal/resourcemodifiers/strategic_merge_patch_test.go.
    #[test]
    fn merges_as_kubectl_patch_does() {
        let pod = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx"}, {"name": "side", "image": "s"}],
            "volumes": [{"name": "vol1", "nfs": {"server": "s", "path": "/p"}}]}});
        // Update an image by container name.
        let out = apply(
            &pod,
            &json!({"spec": {"containers": [{"name": "nginx", "image": "nginx1"}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx1"}, {"name": "side", "image": "s"}])
        );
        // Replace an NFS volume source with a PVC: by null, or by $retainKeys.
        let pvc = json!({"claimName": "data"});
        for patch in [
            json!({"spec": {"volumes": [{"name": "vol1", "nfs": null, "persistentVolumeClaim": pvc}]}}),
            json!({"spec": {"volumes": [{"name": "vol1", "$retainKeys": ["name", "persistentVolumeClaim"], "persistentVolumeClaim": pvc}]}}),
        ] {
            let out = apply(&pod, &patch).unwrap();
            assert_eq!(
                out["spec"]["volumes"],
                json!([{"name": "vol1", "persistentVolumeClaim": pvc}]),
                "{patch}"
            );
        }
        // A service port: delete one, add one, in the order given.
        let svc = json!({"spec": {"ports": [{"port": 8000}, {"port": 8001}, {"port": 8002}]}});
        let out = apply(
            &svc,
            &json!({"spec": {
            "$setElementOrder/ports": [{"port": 8001}, {"port": 9000}, {"port": 8002}],
            "ports": [{"port": 9000}, {"port": 8000, "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 8001}, {"port": 9000}, {"port": 8002}])
        );
        // Lists without a merge key are replaced; finalizers merge as a set.
        let out = apply(
            &json!({"spec": {"args": ["a"]}, "metadata": {"finalizers": ["x"]}}),
            &json!({"spec": {"args": ["b"]}, "metadata": {"finalizers": ["y", "x"]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"args": ["b"]}, "metadata": {"finalizers": ["x", "y"]}})
        );
    }
}
