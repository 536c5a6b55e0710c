//! Kubernetes objects as JSON: a thin, validated view over `serde_json::Value`.
//!
//! Objects are kept as the JSON the API server (or a manifest) gave, so nothing a newer
//! Kubernetes adds is lost; accessors read the few fields backup and restore need.

use serde_json::{Map, Value};

/// Why an object cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct ObjectError {
    /// Where the object came from: `file.yaml (document 3)`, `tarball path`, `apiserver`.
    pub origin: String,
    pub reason: String,
}

/// One Kubernetes object.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    value: Map<String, Value>,
}

impl Object {
    /// Checks `apiVersion`, `kind` and `metadata.name` (or `generateName`) are present
    /// strings, and a present `metadata.namespace` is a string.
    pub fn from_value(value: Value, origin: &str) -> Result<Self, ObjectError> {
        let bad = |reason: String| ObjectError {
            origin: origin.to_string(),
            reason,
        };
        let Value::Object(map) = value else {
            return Err(bad(format!(
                "expected a mapping (an object), found {}",
                kind_of(&value)
            )));
        };
        let o = Object { value: map };
        for field in ["apiVersion", "kind"] {
            match o.value.get(field) {
                Some(Value::String(s)) if !s.is_empty() => {}
                Some(v) => {
                    return Err(bad(format!(
                        "`{field}` must be a non-empty string, found {}",
                        kind_of(v)
                    )))
                }
                None => return Err(bad(format!("`{field}` is missing"))),
            }
        }
        let meta = match o.value.get("metadata") {
            Some(Value::Object(m)) => m,
            Some(v) => {
                return Err(bad(format!(
                    "`metadata` must be a mapping, found {}",
                    kind_of(v)
                )))
            }
            None => return Err(bad(format!("{} has no `metadata`", o.kind()))),
        };
        match (meta.get("name"), meta.get("generateName")) {
            (Some(Value::String(s)), _) if !s.is_empty() => {}
            (None, Some(Value::String(s))) if !s.is_empty() => {}
            _ => {
                return Err(bad(format!(
                    "{} has no `metadata.name` (a non-empty string)",
                    o.kind()
                )))
            }
        }
        match meta.get("namespace") {
            None | Some(Value::String(_)) | Some(Value::Null) => {}
            Some(v) => {
                return Err(bad(format!(
                    "`metadata.namespace` must be a string, found {}",
                    kind_of(v)
                )))
            }
        }
        Ok(o)
    }

    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"]).unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.str_at(&["kind"]).unwrap_or_default()
    }

    /// The API group (`""` for the core group) and version.
    pub fn group_version(&self) -> (&str, &str) {
        split_api_version(self.api_version())
    }

    /// `metadata.name`, or `generateName` when there is no name.
    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"])
            .or_else(|| self.str_at(&["metadata", "generateName"]))
            .unwrap_or_default()
    }

    /// `metadata.namespace`, if set and not empty.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at(&["metadata", "namespace"])
            .filter(|s| !s.is_empty())
    }

    pub fn set_namespace(&mut self, ns: Option<&str>) {
        let meta = self.metadata_mut();
        match ns {
            Some(ns) => {
                meta.insert("namespace".into(), Value::String(ns.into()));
            }
            None => {
                meta.remove("namespace");
            }
        }
    }

    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.string_map(&["metadata", "labels"])
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.string_map(&["metadata", "annotations"])
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Whether the object is being deleted (`metadata.deletionTimestamp` set).
    pub fn is_being_deleted(&self) -> bool {
        matches!(self.get(&["metadata", "deletionTimestamp"]), Some(v) if !v.is_null())
    }

    /// The value at a path of keys.
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.value.get(*first)?;
        for k in rest {
            v = v.as_object()?.get(*k)?;
        }
        Some(v)
    }

    /// The string at a path of keys.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.get(path)?.as_str()
    }

    /// Removes the value at a path of keys; returns whether it was there.
    pub fn remove(&mut self, path: &[&str]) -> bool {
        self.take(path).is_some()
    }

    /// Removes the value at a path of keys and returns it.
    pub fn take(&mut self, path: &[&str]) -> Option<Value> {
        let (last, parents) = path.split_last()?;
        let mut map = &mut self.value;
        for k in parents {
            map = map.get_mut(*k)?.as_object_mut()?;
        }
        map.remove(*last)
    }

    /// The value at a path of keys, to change in place; nothing is created.
    pub fn get_mut(&mut self, path: &[&str]) -> Option<&mut Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.value.get_mut(*first)?;
        for k in rest {
            v = v.as_object_mut()?.get_mut(*k)?;
        }
        Some(v)
    }

    /// The mapping at a path, created (replacing a non-mapping) if needed.
    pub fn map_at_mut(&mut self, path: &[&str]) -> &mut Map<String, Value> {
        let mut map = &mut self.value;
        for k in path {
            let entry = map
                .entry(k.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().expect("made a mapping above");
        }
        map
    }

    fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        self.map_at_mut(&["metadata"])
    }

    fn string_map(&self, path: &[&str]) -> impl Iterator<Item = (&str, &str)> {
        self.get(path)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    pub fn as_value(&self) -> &Map<String, Value> {
        &self.value
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.value)
    }

    /// Canonical JSON bytes: keys sorted (serde_json's map is ordered by key), no
    /// whitespace, so an unchanged object always gives the same blob.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.value).expect("JSON values serialize")
    }

    /// The same JSON, held as text: a compact way to keep many objects in memory (parsed,
    /// they take about five times the space).
    pub fn to_raw_json(&self) -> Box<serde_json::value::RawValue> {
        serde_json::value::to_raw_value(&self.value).expect("JSON values serialize")
    }
}

/// Splits `group/version` (`v1` is the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_and_validation() {
        let o = Object::from_value(
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                                "annotations": {"a": "b"}}}),
            "t",
        )
        .unwrap();
        assert_eq!(o.group_version(), ("apps", "v1"));
        assert_eq!((o.name(), o.namespace()), ("web", Some("shop")));
        assert_eq!(o.label("app"), Some("web"));
        assert_eq!(o.annotation("a"), Some("b"));
        assert!(!o.is_being_deleted());
        for (bad, why) in [
            (json!([1]), "expected a mapping"),
            (
                json!({"kind": "Pod", "metadata": {"name": "p"}}),
                "`apiVersion` is missing",
            ),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "p"}}),
                "`kind` is missing",
            ),
            (json!({"apiVersion": "v1", "kind": "Pod"}), "no `metadata`"),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
                "no `metadata.name`",
            ),
            (
                json!({"apiVersion": 1, "kind": "Pod", "metadata": {"name": "p"}}),
                "non-empty string",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": 3}}),
                "namespace` must be a string",
            ),
        ] {
            let e = Object::from_value(bad, "file.yaml (document 2)").unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
            assert!(e.to_string().starts_with("file.yaml (document 2): "), "{e}");
        }
    }
}
