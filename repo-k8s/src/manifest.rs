//! Reading manifests: JSON or YAML, several documents per file, `kind: List` (and any
//! `…List` kind with `items`) flattened. Every problem names the file and document; one bad
//! document does not hide the good ones around it (a YAML syntax error ends the file, since
//! the parser cannot find the next document boundary reliably after it).

use serde::Deserialize;
use serde_json::Value;

use crate::object::{Object, ObjectError};

/// Largest manifest file accepted (a guard against reading something that is not one).
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// What reading one file gave.
#[derive(Debug, Default)]
pub struct Manifest {
    /// Objects with where each came from (`file (document n)`, `file (document n, item k)`).
    pub objects: Vec<(Object, String)>,
    /// Documents or items that are not usable objects.
    pub problems: Vec<ObjectError>,
}

/// Reads a manifest's bytes; `name` is used in messages.
pub fn read(bytes: &[u8], name: &str) -> Manifest {
    let mut out = Manifest::default();
    if bytes.len() > MAX_MANIFEST_BYTES {
        out.problems.push(ObjectError {
            origin: name.into(),
            reason: format!(
                "{} bytes is more than the {} a manifest may have",
                bytes.len(),
                MAX_MANIFEST_BYTES
            ),
        });
        return out;
    }
    let text = match std::str::from_utf8(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)) {
        Ok(t) => t,
        Err(e) => {
            out.problems.push(ObjectError {
                origin: name.into(),
                reason: format!("not UTF-8 text ({e})"),
            });
            return out;
        }
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON, possibly several values one after another.
        let mut n = 0;
        for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            n += 1;
            let origin = format!("{name} (document {n})");
            match v {
                Ok(v) => add(v, &origin, &mut out),
                Err(e) => {
                    out.problems.push(ObjectError {
                        origin,
                        reason: format!("invalid JSON: {e}"),
                    });
                    break;
                }
            }
        }
        return out;
    }
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let origin = format!("{name} (document {})", i + 1);
        match Value::deserialize(doc) {
            Ok(v) => add(v, &origin, &mut out),
            Err(e) => {
                let syntax = e.location().is_some();
                out.problems.push(ObjectError {
                    origin,
                    reason: format!("invalid YAML: {e}"),
                });
                if syntax {
                    break;
                }
            }
        }
    }
    out
}

/// Adds a document: nothing for an empty one, its items for a list, else the object.
fn add(v: Value, origin: &str, out: &mut Manifest) {
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for (k, item) in items.into_iter().enumerate() {
                add(item, &item_origin(origin, k), out);
            }
        }
        Value::Object(ref m)
            if m.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && m.get("items").is_some_and(Value::is_array) =>
        {
            let Value::Object(mut m) = v else {
                unreachable!()
            };
            let Some(Value::Array(items)) = m.remove("items") else {
                unreachable!()
            };
            // A typed list (`ServiceList`) as an API server returns it: items may leave out
            // their kind and apiVersion, which are the list's (kubectl fills them in too).
            let list_kind = m.get("kind").and_then(Value::as_str).unwrap_or_default();
            let item_kind = list_kind.strip_suffix("List").filter(|k| !k.is_empty());
            let list_version = m.get("apiVersion").and_then(Value::as_str);
            for (k, mut item) in items.into_iter().enumerate() {
                let origin = item_origin(origin, k);
                if let (Some(kind), Value::Object(o)) = (item_kind, &mut item) {
                    o.entry("kind").or_insert_with(|| kind.into());
                    if let Some(v) = list_version {
                        o.entry("apiVersion").or_insert_with(|| v.into());
                    }
                }
                match item {
                    Value::Array(_) => out.problems.push(ObjectError {
                        origin,
                        reason: "a list inside a list".into(),
                    }),
                    item => add(item, &origin, out),
                }
            }
        }
        v => match Object::from_value(v, origin) {
            Ok(o) => out.objects.push((o, origin.to_string())),
            Err(e) => out.problems.push(e),
        },
    }
}

/// `file (document 3)` and item index 0 give `file (document 3, item 1)`.
fn item_origin(origin: &str, k: usize) -> String {
    match origin.strip_suffix(')') {
        Some(o) => format!("{o}, item {})", k + 1),
        None => format!("{origin} (item {})", k + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_lists_and_json() {
        let yaml = "# comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n- kind: Broken\n---\nkind: NoVersion\nmetadata: {name: x}\n";
        let m = read(yaml.as_bytes(), "f.yaml");
        let names: Vec<_> = m
            .objects
            .iter()
            .map(|(o, _)| (o.kind(), o.name()))
            .collect();
        assert_eq!(names, vec![("ConfigMap", "a"), ("Secret", "s")]);
        assert_eq!(m.objects[1].1, "f.yaml (document 3, item 1)");
        assert_eq!(m.problems.len(), 2, "{:?}", m.problems);
        assert!(m.problems[0].to_string().contains("document 3, item 2"));
        assert!(m.problems[1]
            .to_string()
            .contains("`apiVersion` is missing"));

        let json = br#"{"apiVersion":"v1","kind":"PodList","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n"}}]}"#;
        let m = read(json, "f.json");
        assert_eq!(m.objects.len(), 1);
        assert_eq!(m.objects[0].0.namespace(), Some("n"));
    }

    #[test]
    fn malformed_input_is_a_named_problem_never_a_panic() {
        for (bytes, why) in [
            (&b"apiVersion: v1\nkind: [unclosed\n"[..], "invalid YAML"),
            (&b"{\"apiVersion\": "[..], "invalid JSON"),
            (&b"\xff\xfe"[..], "not UTF-8"),
            (&b"- 1\n- 2\n"[..], "expected a mapping"),
            (&b"a: &x [*x]\n"[..], ""),
        ] {
            let m = read(bytes, "bad.yaml");
            assert!(m.objects.is_empty());
            assert!(
                m.problems
                    .iter()
                    .any(|p| p.to_string().contains(why) && p.origin.starts_with("bad.yaml")),
                "{:?}",
                m.problems
            );
        }
    }
}
