//! Velero's restore resource modifiers (`internal/resourcemodifiers`): rules, each with
//! conditions (group-resource glob, name regex, namespaces, label selector, `matches`) and
//! one kind of patch (JSON patches, merge patches or strategic merge patches), applied to
//! every restored item after the restore item actions and before the namespace mapping.
//! The format is Velero's ConfigMap data; the CLI reads it from a file (the ConfigMap
//! manifest itself, or the rules document).

mod json_patch;
mod strategic;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::object::Object;
use crate::selector::LabelSelector;

pub use json_patch::{Op, Operation};

/// A resource modifiers document.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceModifiers {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource_modifier_rules: Vec<Rule>,
    /// Each rule's name regex, compiled once (an invalid one is an error of every item the
    /// rule is tried on, as in Velero).
    #[serde(skip)]
    regexes: Vec<Option<Result<regex::Regex, String>>>,
}

/// One rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub conditions: Conditions,
    #[serde(default)]
    pub patches: Vec<JsonPatch>,
    #[serde(default)]
    pub merge_patches: Vec<PatchData>,
    #[serde(default)]
    pub strategic_patches: Vec<PatchData>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conditions {
    #[serde(default)]
    pub group_resource: String,
    #[serde(default)]
    pub resource_name_regex: String,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    #[serde(default)]
    pub matches: Vec<Match>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub path: String,
    #[serde(default, deserialize_with = "scalar")]
    pub value: String,
}

/// A JSON patch operation as Velero writes it (`operation`, not `op`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPatch {
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub path: String,
    #[serde(default, deserialize_with = "scalar")]
    pub value: String,
}

/// A merge or strategic merge patch, as YAML or JSON text.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchData {
    #[serde(default, deserialize_with = "scalar")]
    pub patch_data: String,
}

/// Velero's fields here are strings; YAML numbers and booleans are read as their text.
fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, found {other}"
            )))
        }
    })
}

impl ResourceModifiers {
    /// Reads a modifiers file: a ConfigMap manifest whose `data` has exactly one key (as
    /// Velero requires), or the rules document itself. Checked as Velero checks it.
    pub fn from_file_text(text: &str) -> crate::Result<Self> {
        let rules = config_map_data(text, "resource modifiers")?.unwrap_or(text.to_string());
        let mut m: ResourceModifiers = yaml_serde::from_str(&rules).map_err(|e| {
            crate::Error::invalid(format!(
                "failed to decode yaml data into resource modifiers, err: {e}"
            ))
        })?;
        m.validate()?;
        m.compile();
        Ok(m)
    }

    fn compile(&mut self) {
        self.regexes = self
            .resource_modifier_rules
            .iter()
            .map(|r| {
                let re = &r.conditions.resource_name_regex;
                (!re.is_empty()).then(|| {
                    regex::Regex::new(re).map_err(|e| format!("error in matching regex {e}"))
                })
            })
            .collect();
    }

    /// Velero's `Validate`, with its wording.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |s: String| Err(crate::Error::invalid(s));
        if !self.version.eq_ignore_ascii_case("v1") {
            return bad(format!(
                "unsupported resource modifier version {}",
                self.version
            ));
        }
        if self.resource_modifier_rules.is_empty() {
            return bad("resource modifier rules cannot be empty".into());
        }
        for r in &self.resource_modifier_rules {
            if r.conditions.group_resource.is_empty() {
                return bad("groupResource cannot be empty".into());
            }
            let kinds = [
                !r.patches.is_empty(),
                !r.merge_patches.is_empty(),
                !r.strategic_patches.is_empty(),
            ];
            if kinds.iter().filter(|k| **k).count() > 1 {
                return bad(
                    "only one of patches, mergePatches, strategicPatches can be specified".into(),
                );
            }
            for p in &r.patches {
                if p.operation.is_empty() {
                    return bad("operation cannot be empty".into());
                }
                if Op::parse(&p.operation).is_none() {
                    return bad(format!("unsupported operation {}", p.operation));
                }
                if p.path.is_empty() {
                    return bad("path cannot be empty".into());
                }
            }
        }
        Ok(())
    }

    /// Applies the rules to an item of resource `gr` (`resource.group`; core resources bare)
    /// in namespace `ns` as backed up. `typed`: a built-in kind, which strategic merge
    /// patches need. Conditions are read on the item as it came; patches add up. Returns
    /// the errors of rules that failed (the item keeps what the others did).
    pub fn apply(&self, gr: &str, ns: Option<&str>, item: &mut Object, typed: bool) -> Vec<String> {
        let rules = &self.resource_modifier_rules;
        // The item as it came, copied only once a rule has patched it and others remain.
        let mut original: Option<Object> = None;
        let mut errors = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let regex = self.regexes.get(i).and_then(Option::as_ref);
            let subject = original.as_ref().unwrap_or(item);
            let outcome = match rule.matches(gr, ns, subject, regex) {
                Ok(true) => {
                    if original.is_none() && i + 1 < rules.len() {
                        original = Some(item.clone());
                    }
                    rule.patch(item, typed)
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                errors.push(format!("resource modifier rule {}: {e}", i + 1));
            }
        }
        errors
    }
}

impl Rule {
    fn matches(
        &self,
        gr: &str,
        ns: Option<&str>,
        o: &Object,
        regex: Option<&Result<regex::Regex, String>>,
    ) -> Result<bool, String> {
        let c = &self.conditions;
        if let Some(ns) = ns {
            let wanted =
                c.namespaces.is_empty() || c.namespaces.iter().any(|p| glob_match(p, ns, None));
            if !wanted {
                return Ok(false);
            }
        }
        if !glob_match(&c.group_resource, gr, Some('.')) {
            return Ok(false);
        }
        let compiled;
        let regex = match regex {
            Some(r) => Some(r),
            None if !c.resource_name_regex.is_empty() => {
                compiled = regex::Regex::new(&c.resource_name_regex)
                    .map_err(|e| format!("error in matching regex {e}"));
                Some(&compiled)
            }
            None => None,
        };
        if let Some(re) = regex {
            if !re.as_ref().map_err(String::clone)?.is_match(o.name()) {
                return Ok(false);
            }
        }
        if let Some(sel) = &c.label_selector {
            sel.validate()
                .map_err(|e| format!("error in creating label selector {e}"))?;
            if !sel.matches(o) {
                return Ok(false);
            }
        }
        if c.matches.is_empty() {
            return Ok(true);
        }
        let mut tests = Vec::new();
        for m in &c.matches {
            if m.path.is_empty() {
                return Err("path is required for match rule".into());
            }
            tests.push(Operation {
                op: Op::Test,
                path: m.path.clone(),
                from: String::new(),
                value: patch_value(&m.value)?,
            });
        }
        Ok(json_patch::holds(o.as_value(), &tests))
    }

    /// Patches the item, whole or not at all.
    fn patch(&self, item: &mut Object, typed: bool) -> Result<(), String> {
        let mut doc = Value::Object(item.as_value().clone());
        let patched = if !self.patches.is_empty() {
            let ops = self
                .patches
                .iter()
                .map(|p| {
                    Ok(Operation {
                        op: Op::parse(&p.operation)
                            .ok_or_else(|| format!("unsupported operation {}", p.operation))?,
                        path: p.path.clone(),
                        from: p.from.clone(),
                        value: patch_value(&p.value)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            match json_patch::apply(&mut doc, &ops) {
                Ok(()) => doc,
                // A failed test is the conditional-patch idiom: no change, no error.
                Err(json_patch::PatchError::TestFailed) => return Ok(()),
                Err(json_patch::PatchError::Failed(e)) => {
                    return Err(format!("error in applying JSON Patch {e}"))
                }
            }
        } else if !self.merge_patches.is_empty() {
            let mut v = doc;
            for p in &self.merge_patches {
                merge_patch(&mut v, &yaml_to_json(&p.patch_data)?);
            }
            v
        } else if !self.strategic_patches.is_empty() {
            if !typed {
                return Err(format!(
                    "error in applying patch: strategic merge patches need a built-in kind, and {} is not one; use mergePatches or patches",
                    item.kind()
                ));
            }
            let mut v = doc;
            for p in &self.strategic_patches {
                v = strategic::apply(&v, &yaml_to_json(&p.patch_data)?)
                    .map_err(|e| format!("error in applying patch {e}"))?;
            }
            v
        } else {
            return Err("no patch data found".into());
        };
        *item = Object::from_value(patched, item.name())
            .map_err(|e| format!("the patched object is not an object: {e}"))?;
        Ok(())
    }
}

fn yaml_to_json(text: &str) -> Result<Value, String> {
    yaml_serde::from_str(text).map_err(|e| format!("error in converting YAML to JSON {e}"))
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let t = target.as_object_mut().expect("made a mapping above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Velero's reading of a patch value written as a string: `""` empty, `"…"` quoted a
/// string, `null`, booleans, `{…}`/`[…]` and numbers as JSON, anything else a string.
pub fn patch_value(s: &str) -> Result<Value, String> {
    if s.is_empty() {
        return Ok(Value::String(String::new()));
    }
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return Ok(Value::String(s[1..s.len() - 1].to_string()));
    }
    let json = |s: &str| {
        serde_json::from_str(s)
            .map_err(|e| format!("error in decoding json patch value {s:?}: {e}"))
    };
    if s == "null" || s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
        return json(s);
    }
    if s.starts_with('{') || s.starts_with('[') || s.parse::<f64>().is_ok() {
        return json(s);
    }
    Ok(Value::String(s.to_string()))
}

/// A glob as Velero's gobwas globs read it: with `sep`, `*` stays within a segment and `**`
/// crosses them; `?` one character (not `sep`); `[abc]`, `[a-z]`, `[!a]` classes; `{a,b}`
/// alternatives. Matching takes time bounded by the pattern and the text (a hostile
/// pattern of many stars cannot stall a restore); a pattern of more than 256 alternatives
/// matches nothing.
pub fn glob_match(pattern: &str, text: &str, sep: Option<char>) -> bool {
    let t: Vec<char> = text.chars().collect();
    let Some(patterns) = expand_braces(pattern, 256) else {
        return false;
    };
    patterns.iter().any(|p| {
        let mut failed = std::collections::HashSet::new();
        glob_at(p, 0, &t, 0, sep, &mut failed)
    })
}

/// `a{b,c}d` → `abd`, `acd` (nested too); `None` past `limit` patterns. An unclosed `{` is
/// a letter.
fn expand_braces(pattern: &str, limit: usize) -> Option<Vec<Vec<char>>> {
    let p: Vec<char> = pattern.chars().collect();
    let Some(open) = p.iter().position(|&c| c == '{') else {
        return Some(vec![p]);
    };
    // The matching close, and the top-level commas between.
    let mut depth = 0;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, &c) in p.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return Some(vec![p]);
    };
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let mut q: String = p[..open].iter().collect();
        q.extend(&p[w[0] + 1..w[1]]);
        q.extend(&p[close + 1..]);
        out.extend(expand_braces(&q, limit)?);
        if out.len() > limit {
            return None;
        }
    }
    Some(out)
}

/// Whether `p[pi..]` matches `t[ti..]`; `failed` remembers positions that do not, so each
/// is tried once.
fn glob_at(
    p: &[char],
    pi: usize,
    t: &[char],
    ti: usize,
    sep: Option<char>,
    failed: &mut std::collections::HashSet<(usize, usize)>,
) -> bool {
    if failed.contains(&(pi, ti)) {
        return false;
    }
    let matched = match p.get(pi) {
        None => ti == t.len(),
        Some('*') => {
            let (next, crosses) = if p.get(pi + 1) == Some(&'*') {
                (pi + 2, true)
            } else {
                (pi + 1, sep.is_none())
            };
            let mut end = ti;
            loop {
                if glob_at(p, next, t, end, sep, failed) {
                    break true;
                }
                if end == t.len() || (!crosses && Some(t[end]) == sep) {
                    break false;
                }
                end += 1;
            }
        }
        Some('?') => {
            ti < t.len() && Some(t[ti]) != sep && glob_at(p, pi + 1, t, ti + 1, sep, failed)
        }
        Some('[') => match p[pi..].iter().position(|&x| x == ']') {
            None => t.get(ti) == Some(&'[') && glob_at(p, pi + 1, t, ti + 1, sep, failed),
            Some(len) => {
                let end = pi + len;
                let Some(&ch) = t.get(ti) else {
                    return false;
                };
                let (negate, class) = match p[pi + 1..end].split_first() {
                    Some(('!', rest)) => (true, rest),
                    _ => (false, &p[pi + 1..end]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= ch && ch <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == ch;
                        i += 1;
                    }
                }
                hit != negate && glob_at(p, end + 1, t, ti + 1, sep, failed)
            }
        },
        Some(&c) => t.get(ti) == Some(&c) && glob_at(p, pi + 1, t, ti + 1, sep, failed),
    };
    if !matched {
        failed.insert((pi, ti));
    }
    matched
}

/// Reads a change-storage-class mapping: Velero's plugin ConfigMap manifest (its `data`,
/// `old: new`), or a YAML mapping `old: new`.
pub fn storage_class_mappings(text: &str) -> crate::Result<BTreeMap<String, String>> {
    string_map(text, "change-storage-class")
}

/// Reads change-image-name rules: Velero's plugin ConfigMap manifest (each `data` value
/// `old,new`), or a YAML mapping of such values. Rules are kept in key order.
pub fn image_name_rules(text: &str) -> crate::Result<Vec<(String, String)>> {
    let mut rules = Vec::new();
    for (key, value) in string_map(text, "change-image-name")? {
        match crate::restore::parse_image_name_rule(&value) {
            Ok(Some(rule)) => rules.push(rule),
            Ok(None) => {}
            Err(e) => return Err(crate::Error::invalid(format!("{key}: {e}"))),
        }
    }
    Ok(rules)
}

/// A ConfigMap manifest's `data`, or the document as a mapping of strings.
fn string_map(text: &str, what: &str) -> crate::Result<BTreeMap<String, String>> {
    let v: Value = yaml_serde::from_str(text)
        .map_err(|e| crate::Error::invalid(format!("{what} mapping: {e}")))?;
    let map = match v.get("kind").and_then(Value::as_str) {
        Some("ConfigMap") => v.get("data").cloned().unwrap_or(Value::Null),
        _ => v,
    };
    let Value::Object(m) = map else {
        return Err(crate::Error::invalid(format!(
            "{what} mapping: expected a mapping of names (or a ConfigMap with one in its data)"
        )));
    };
    m.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(crate::Error::invalid(format!(
                "{what} mapping: {k}: expected a string, found {other}"
            ))),
        })
        .collect()
}

/// The single `data` value of a ConfigMap manifest, if `text` is one. Velero requires
/// exactly one key in such ConfigMaps.
pub(crate) fn config_map_data(text: &str, what: &str) -> crate::Result<Option<String>> {
    let Ok(v) = yaml_serde::from_str::<Value>(text) else {
        return Ok(None);
    };
    if v.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
        return Ok(None);
    }
    let data = v.get("data").and_then(Value::as_object);
    match data.map(|d| d.values().collect::<Vec<_>>()).as_deref() {
        Some([Value::String(s)]) => Ok(Some(s.clone())),
        _ => Err(crate::Error::invalid(format!(
            "illegal {what} configmap: its data must have exactly one key, whose value is the document"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn modifiers(yaml: &str) -> ResourceModifiers {
        ResourceModifiers::from_file_text(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn deployment(replicas: u64, labels: Value) -> Object {
        Object::from_value(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "test-deployment", "namespace": "foo", "labels": labels},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}}),
            "t",
        )
        .unwrap()
    }

    fn pvc(class: &str) -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "test-pvc", "namespace": "foo"},
                "spec": {"storageClassName": class}}),
            "t",
        )
        .unwrap()
    }

    /// Velero internal/resourcemodifiers/resource_modifiers_validator_test.go and
    /// resource_modifiers_test.go TestGetResourceModifiersFromConfig.
    #[test]
    fn documents_are_checked_as_velero_checks_them() {
        let err = |y: &str| {
            ResourceModifiers::from_file_text(y)
                .unwrap_err()
                .to_string()
        };
        let rule = "resourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: replace, path: /x, value: '1'}]\n";
        assert!(err(&format!("version: v2\n{rule}"))
            .contains("unsupported resource modifier version v2"));
        assert!(err("version: v1\nresourceModifierRules: []\n")
            .contains("resource modifier rules cannot be empty"));
        assert!(
            err("version1: v1\n").contains("failed to decode yaml data into resource modifiers")
        );
        assert!(err("version: v1\nresourceModifierRules:\n- conditions: {}\n  patches: [{operation: add, path: /a}]\n")
            .contains("groupResource cannot be empty"));
        assert!(err("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: invalid, path: /a}]\n")
            .contains("unsupported operation invalid"));
        assert!(err("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: add}]\n")
            .contains("path cannot be empty"));
        assert!(err("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: add, path: /a}]\n  mergePatches: [{patchData: '{}'}]\n")
            .contains("only one of patches, mergePatches, strategicPatches can be specified"));
        // The ConfigMap form: exactly one data key.
        let cm = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\ndata:\n  rules.yaml: |\n    version: v1\n{}", rule.lines().map(|l| format!("    {l}\n")).collect::<String>());
        assert_eq!(modifiers(&cm).resource_modifier_rules.len(), 1);
        assert!(
            err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata: {a: x, b: y}\n")
                .contains("exactly one key")
        );
        // Booleans and numbers are read as text; quoted text stays a string.
        let m = modifiers("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n  - {operation: replace, path: /a, value: true}\n  - {operation: replace, path: /b, value: '\"true\"'}\n");
        let p = &m.resource_modifier_rules[0].patches;
        assert_eq!(patch_value(&p[0].value).unwrap(), json!(true));
        assert_eq!(patch_value(&p[1].value).unwrap(), json!("true"));
    }

    /// TestResourceModifiers_ApplyResourceModifierRules (JSON patches).
    #[test]
    fn json_patches_with_conditions() {
        let premium = "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: persistentvolumeclaims\n    resourceNameRegex: \".*\"\n    namespaces: [bar, foo]\n  patches:\n  - {operation: test, path: /spec/storageClassName, value: standard}\n  - {operation: replace, path: /spec/storageClassName, value: premium}\n";
        let mut c = pvc("standard");
        assert!(modifiers(premium)
            .apply("persistentvolumeclaims", Some("foo"), &mut c, true)
            .is_empty());
        assert_eq!(c.str_at(&["spec", "storageClassName"]), Some("premium"));
        // Rules read the item as it came: [standard → premium, premium → gold] ends at premium;
        // [standard → premium, standard → gold] at gold.
        let chain = |second_from: &str| {
            format!("version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: persistentvolumeclaims\n    matches: [{{path: /spec/storageClassName, value: standard}}]\n  patches: [{{operation: replace, path: /spec/storageClassName, value: premium}}]\n- conditions:\n    groupResource: persistentvolumeclaims\n    matches: [{{path: /spec/storageClassName, value: {second_from}}}]\n  patches: [{{operation: replace, path: /spec/storageClassName, value: gold}}]\n")
        };
        let mut c = pvc("standard");
        modifiers(&chain("premium")).apply("persistentvolumeclaims", Some("foo"), &mut c, true);
        assert_eq!(c.str_at(&["spec", "storageClassName"]), Some("premium"));
        let mut c = pvc("standard");
        modifiers(&chain("standard")).apply("persistentvolumeclaims", Some("foo"), &mut c, true);
        assert_eq!(c.str_at(&["spec", "storageClassName"]), Some("gold"));
        // Replicas 1 → 2, a failed test skips without error, another namespace is not matched,
        // a label selector must match, a bad regex is an error.
        let scale = |test: u64, extra: &str| {
            format!("version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: deployments.apps\n{extra}  patches:\n  - {{operation: test, path: /spec/replicas, value: \"{test}\"}}\n  - {{operation: replace, path: /spec/replicas, value: \"2\"}}\n")
        };
        let replicas = |m: &str, labels: Value| {
            let mut d = deployment(1, labels);
            let errors = modifiers(m).apply("deployments.apps", Some("foo"), &mut d, true);
            (d.get(&["spec", "replicas"]).cloned().unwrap(), errors.len())
        };
        assert_eq!(replicas(&scale(1, ""), json!({})), (json!(2), 0));
        assert_eq!(replicas(&scale(5, ""), json!({})), (json!(1), 0));
        assert_eq!(
            replicas(&scale(1, "    namespaces: [bar]\n"), json!({})),
            (json!(1), 0)
        );
        assert_eq!(
            replicas(
                &scale(1, "    labelSelector: {matchLabels: {app: nginx}}\n"),
                json!({"app": "nginx"})
            ),
            (json!(2), 0)
        );
        assert_eq!(
            replicas(
                &scale(
                    1,
                    "    labelSelector: {matchLabels: {app: nginx-mismatch}}\n"
                ),
                json!({"app": "nginx"})
            ),
            (json!(1), 0)
        );
        assert_eq!(
            replicas(&scale(1, "    resourceNameRegex: \"[a-z\"\n"), json!({})),
            (json!(1), 1)
        );
        // Add a container, then copy and change it.
        let add = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: deployments.apps, resourceNameRegex: \"^test-.*$\", namespaces: [bar, foo]}\n  patches:\n  - {operation: add, path: /spec/template/spec/containers/1, value: '{\"name\": \"mysql\", \"image\": \"mysql\"}'}\n";
        let mut d = deployment(1, json!({}));
        modifiers(add).apply("deployments.apps", Some("foo"), &mut d, true);
        assert_eq!(
            d.get(&["spec", "template", "spec", "containers"]).unwrap()[1]["name"],
            "mysql"
        );
    }

    /// TestResourceModifiers_wildcard_in_GroupResource, the merge- and strategic-patch tests,
    /// and TestResourceModifiers_conditional_patches.
    #[test]
    fn group_resource_globs_and_the_other_patch_kinds() {
        assert!(glob_match("*", "configmaps", Some('.')));
        assert!(!glob_match("*", "deployments.apps", Some('.')));
        assert!(glob_match("*.apps", "fake.apps", Some('.')));
        assert!(!glob_match("*.*", "ingresses.networking.k8s.io", Some('.')));
        assert!(glob_match("**", "ingresses.networking.k8s.io", Some('.')));
        assert!(glob_match("{pods,configmaps}", "pods", Some('.')));
        assert!(glob_match(
            "{deploy,stateful}*.apps",
            "statefulsets.apps",
            Some('.')
        ));
        assert!(glob_match("ns-[0-9]", "ns-7", None) && !glob_match("ns-[!0-9]", "ns-7", None));
        // Many stars against a long name that does not match: answered at once.
        let hostile = "*a".repeat(40) + "b";
        assert!(!glob_match(&hostile, &"a".repeat(200), None));
        assert!(
            !glob_match(&"{a,b}".repeat(20), "ab", None),
            "too many alternatives"
        );
        let cm = |labels: Value| {
            Object::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "fake", "labels": labels}}), "t").unwrap()
        };
        let merge = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: configmaps, matches: [{path: /metadata/labels/a, value: b}]}\n  mergePatches:\n  - patchData: |\n      metadata:\n        labels:\n          a: null\n          c: d\n";
        let mut c = cm(json!({"a": "b"}));
        assert!(modifiers(merge)
            .apply("configmaps", Some("fake"), &mut c, true)
            .is_empty());
        assert_eq!(c.get(&["metadata", "labels"]).unwrap(), &json!({"c": "d"}));
        // Mismatched or missing condition paths: skipped, no error.
        for labels in [json!({"a": "c"}), json!({"a": {"b": "x"}})] {
            let mut c = cm(labels.clone());
            assert!(modifiers(merge)
                .apply("configmaps", Some("fake"), &mut c, true)
                .is_empty());
            assert_eq!(c.get(&["metadata", "labels"]).unwrap(), &labels);
        }
        let smp = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: deployments.apps}\n  strategicPatches:\n  - patchData: '{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx1\"}]}}}}'\n";
        let mut d = deployment(1, json!({}));
        assert!(modifiers(smp)
            .apply("deployments.apps", Some("foo"), &mut d, true)
            .is_empty());
        assert_eq!(
            d.get(&["spec", "template", "spec", "containers"]).unwrap(),
            &json!([{"name": "nginx", "image": "nginx1"}])
        );
        // A kind without a built-in schema: an error, the item unchanged.
        let mut d = deployment(1, json!({}));
        let errors = modifiers(smp).apply("deployments.apps", Some("foo"), &mut d, false);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            d.get(&["spec", "template", "spec", "containers"]).unwrap()[0]["image"],
            "nginx"
        );
    }
}
