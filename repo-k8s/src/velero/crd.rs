//! The CustomResourceDefinitions of Velero's kinds, generated from the Rust types (so the
//! types and `deploy/crds/` cannot drift apart), and the check that every field of Velero's
//! own CRDs is one cairn reads or is listed here as deliberately unsupported, with why.

use serde_json::{json, Map, Value};

use super::Kind;

/// The group of Velero's kinds.
pub const GROUP: &str = "velero.io";

/// Fields of Velero's CRDs that cairn does not read, each with why (`kind`, path, reason).
/// A path is `spec.a.b`, with `[]` for list items.
pub const UNSUPPORTED: &[(&str, &str, &str)] = &[];

/// The CRD of one kind, as `deploy/crds/` holds it. Like Velero's: namespaced, version v1
/// served and stored, no status subresource (Velero's controllers write the whole object).
pub fn definition<K: Kind>() -> Value {
    let settings = schemars::generate::SchemaSettings::openapi3().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let schema = settings.into_generator().into_root_schema_for::<K>();
    let mut schema = serde_json::to_value(schema).expect("a schema is JSON");
    structural(&mut schema);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        // The API server owns metadata's schema; a CRD may only say it is an object.
        props.insert("metadata".into(), json!({"type": "object"}));
    }
    if let Some(m) = schema.as_object_mut() {
        m.remove("title");
        m.remove("required");
    }
    let plural = K::PLURAL;
    let mut names = json!({
        "kind": K::KIND,
        "listKind": format!("{}List", K::KIND),
        "plural": plural,
        "singular": K::KIND.to_ascii_lowercase(),
    });
    if !K::SHORT_NAMES.is_empty() {
        names["shortNames"] = json!(K::SHORT_NAMES);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{GROUP}"),
            "labels": {"component": "velero", "app.kubernetes.io/part-of": "cairn"},
        },
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": "Namespaced",
            "versions": [{
                "name": K::VERSION,
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    })
}

/// Every CRD cairn serves, by file name (`velero.io_<plural>.yaml`).
pub fn all() -> Vec<(String, Value)> {
    fn one<K: Kind>() -> (String, Value) {
        (format!("{GROUP}_{}.yaml", K::PLURAL), definition::<K>())
    }
    vec![
        one::<super::Backup>(),
        one::<super::Restore>(),
        one::<super::Schedule>(),
        one::<super::BackupStorageLocation>(),
        one::<super::DeleteBackupRequest>(),
        one::<super::ServerStatusRequest>(),
        one::<super::DownloadRequest>(),
        one::<super::PodVolumeBackup>(),
        one::<super::PodVolumeRestore>(),
        one::<super::DataUpload>(),
        one::<super::DataDownload>(),
    ]
}

/// The CRDs as YAML files' contents, by file name.
pub fn files() -> Vec<(String, String)> {
    all()
        .into_iter()
        .map(|(name, crd)| {
            let text = yaml_serde::to_string(&crd).expect("a CRD is YAML");
            (
                name,
                format!("# Generated from repo-k8s/src/velero by `cairn-server crds`; do not edit.\n{text}"),
            )
        })
        .collect()
}

/// Makes a schemars schema one the API server takes (structural): `Option<T>` as `T` with
/// `nullable`, no `$ref`-free constructs it refuses, and free-form values marked as such.
fn structural(s: &mut Value) {
    let Some(m) = s.as_object_mut() else {
        return;
    };
    // `anyOf: [T, {nullable}]` or `[T, {type: null}]` (an Option of a type with a schema of
    // its own): T, nullable.
    if let Some(Value::Array(any)) = m.get("anyOf").cloned() {
        let (nulls, others): (Vec<Value>, Vec<Value>) = any.into_iter().partition(|v| {
            v.get("type") == Some(&json!("null"))
                || v.get("nullable") == Some(&json!(true)) && v.get("type").is_none()
        });
        if others.len() == 1 && !nulls.is_empty() {
            m.remove("anyOf");
            if let Value::Object(inner) = others.into_iter().next().expect("one") {
                for (k, v) in inner {
                    m.entry(k).or_insert(v);
                }
            }
            m.insert("nullable".into(), true.into());
        }
    }
    // `type: [T, "null"]`.
    if let Some(Value::Array(types)) = m.get("type").cloned() {
        let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if real.len() == 1 {
            m.insert("type".into(), real[0].clone());
            if types.len() > 1 {
                m.insert("nullable".into(), true.into());
            }
        }
    }
    // `const` and `oneOf` of unit variants: a string enum.
    if let Some(Value::Array(one)) = m.get("oneOf").cloned() {
        let consts: Option<Vec<Vec<Value>>> = one
            .iter()
            .map(|v| match (v.get("const"), v.get("enum")) {
                (Some(c), _) => Some(vec![c.clone()]),
                (None, Some(Value::Array(e))) => Some(e.clone()),
                _ => None,
            })
            .collect();
        if let Some(values) = consts.map(|v| v.concat()) {
            m.remove("oneOf");
            m.insert("type".into(), "string".into());
            m.insert("enum".into(), Value::Array(values));
        }
    }
    // `nullable` says it; the API server wants the enum's values only.
    if let Some(Value::Array(values)) = m.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    m.remove("default");
    m.remove("$schema");
    for key in ["items", "additionalProperties"] {
        if let Some(v) = m.get_mut(key).filter(|v| v.is_object()) {
            structural(v);
        }
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        for v in props.values_mut() {
            structural(v);
        }
    }
    let free = !m.contains_key("type") && !m.contains_key("properties") && !m.contains_key("enum");
    if free {
        m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
    }
    if m.get("type") == Some(&json!("object"))
        && m.get("additionalProperties") == Some(&json!(true))
    {
        m.remove("additionalProperties");
        m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
    }
}

/// Every field path of a schema (`spec.a.b`, `[]` for list items), with its enum values.
pub fn field_paths(schema: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

fn walk(s: &Value, at: &str, out: &mut Vec<(String, Vec<String>)>) {
    if let Some(items) = s.get("items") {
        walk(items, &format!("{at}[]"), out);
    }
    let Some(Value::Object(props)) = s.get("properties") else {
        return;
    };
    for (k, v) in props {
        let here = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        let values = v
            .get("enum")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.push((here.clone(), values));
        walk(v, &here, out);
    }
}

/// What of a Velero CRD cairn's doesn't have: field paths, and enum values (`path=value`),
/// less [`UNSUPPORTED`]. Empty when cairn reads every field of it.
pub fn not_understood(velero: &Value, kind: &str, ours: &Value) -> Vec<String> {
    let schema = |crd: &Value| {
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let our: Map<String, Value> = field_paths(&schema(ours))
        .into_iter()
        .map(|(p, e)| (p, json!(e)))
        .collect();
    let mut missing = Vec::new();
    for (path, values) in field_paths(&schema(velero)) {
        if path == "metadata" || path.starts_with("metadata.") {
            continue;
        }
        let listed = UNSUPPORTED
            .iter()
            .any(|(k, p, _)| *k == kind && (path == *p || path.starts_with(&format!("{p}."))));
        if listed {
            continue;
        }
        match our.get(&path) {
            None => missing.push(path),
            Some(Value::Array(ours)) if !ours.is_empty() || !values.is_empty() => {
                for v in values {
                    if !ours.contains(&json!(v)) {
                        missing.push(format!("{path}={v}"));
                    }
                }
            }
            Some(_) => {}
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn velero_crd(plural: &str, version: &str) -> Option<Value> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/k8s-corpus/velero");
        let text = std::fs::read_to_string(dir.join(format!(
            "config__crd__{version}__bases__velero.io_{plural}.yaml"
        )))
        .ok()?;
        Some(yaml_serde::from_str(&text).expect("Velero's CRD is YAML"))
    }

    /// Every spec and status field of Velero's own CRDs (in ../shared/k8s-corpus/velero)
    /// is read by cairn, or listed in UNSUPPORTED with the reason: an object Velero's tools
    /// write is never misread.
    #[test]
    fn every_field_of_veleros_crds_is_understood_or_listed() {
        let mut problems = Vec::new();
        let mut compared = 0;
        for (file, ours) in all() {
            let kind = ours["spec"]["names"]["kind"].as_str().unwrap().to_string();
            let plural = ours["spec"]["names"]["plural"]
                .as_str()
                .unwrap()
                .to_string();
            let version = ours["spec"]["versions"][0]["name"].as_str().unwrap();
            let Some(velero) = velero_crd(&plural, version) else {
                problems.push(format!(
                    "{file}: Velero's CRD of {plural} is not in the corpus"
                ));
                continue;
            };
            compared += 1;
            for m in not_understood(&velero, &kind, &ours) {
                problems.push(format!("{kind}: {m}"));
            }
        }
        assert!(compared > 0);
        assert!(
            problems.is_empty(),
            "not understood:\n{}",
            problems.join("\n")
        );
        for (kind, path, why) in UNSUPPORTED {
            assert!(!why.is_empty(), "{kind} {path}: say why it is unsupported");
        }
    }

    /// `deploy/crds/` is what the types generate; regenerate with `cairn-server crds deploy/crds`.
    #[test]
    fn deploy_crds_are_generated_from_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
        for (name, text) in files() {
            let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            assert!(
                on_disk == text,
                "deploy/crds/{name} is stale or missing: run `cargo run -p cairn-server -- crds deploy/crds`"
            );
        }
    }

    /// The generated schemas are structural (what the API server requires of a CRD): every
    /// node typed or marked free-form, no anyOf/oneOf left from Option and enum types.
    #[test]
    fn schemas_are_structural() {
        fn check(s: &Value, at: &str, bad: &mut Vec<String>) {
            if let Some(m) = s.as_object() {
                for k in ["anyOf", "oneOf", "allOf", "$ref", "const"] {
                    if m.contains_key(k) {
                        bad.push(format!("{at}: {k}"));
                    }
                }
                let typed = m.contains_key("type")
                    || m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
                if !typed {
                    bad.push(format!("{at}: no type"));
                }
                if let Some(Value::Object(p)) = m.get("properties") {
                    for (k, v) in p {
                        check(v, &format!("{at}.{k}"), bad);
                    }
                }
                if let Some(i) = m.get("items") {
                    check(i, &format!("{at}[]"), bad);
                }
            }
        }
        for (name, crd) in all() {
            let mut bad = Vec::new();
            check(
                &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
                "",
                &mut bad,
            );
            assert!(bad.is_empty(), "{name}: {bad:?}");
        }
    }
}
