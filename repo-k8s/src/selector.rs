//! Label selectors: `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist)
//! as in Kubernetes' `metav1.LabelSelector`, parsed from kubectl's string syntax
//! (`app=web,tier!=db,env in (prod,stage),!legacy`) or from JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::object::Object;

/// One requirement of `matchExpressions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses kubectl's selector syntax. Errors name the offending term.
    pub fn parse(s: &str) -> crate::Result<Self> {
        Self::parse_terms(s).map_err(crate::Error::invalid)
    }

    fn parse_terms(s: &str) -> Result<Self, String> {
        let mut sel = LabelSelector::default();
        for term in split_terms(s)? {
            let term = term.trim();
            if term.is_empty() {
                return Err(format!("invalid selector {s:?}: empty term"));
            }
            let bad = |why: &str| format!("invalid selector term {term:?}: {why}");
            if let Some(key) = term.strip_prefix('!') {
                check_key(key.trim()).map_err(|e| bad(&e))?;
                sel.match_expressions.push(Requirement {
                    key: key.trim().into(),
                    operator: Operator::DoesNotExist,
                    values: vec![],
                });
            } else if let Some((k, v)) = term.split_once("!=") {
                check_key(k.trim()).map_err(|e| bad(&e))?;
                check_value(v.trim()).map_err(|e| bad(&e))?;
                sel.match_expressions.push(Requirement {
                    key: k.trim().into(),
                    operator: Operator::NotIn,
                    values: vec![v.trim().into()],
                });
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                check_key(k.trim()).map_err(|e| bad(&e))?;
                check_value(v.trim()).map_err(|e| bad(&e))?;
                sel.match_labels.insert(k.trim().into(), v.trim().into());
            } else if let Some((k, op, rest)) = set_term(term) {
                check_key(k).map_err(|e| bad(&e))?;
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad("expected a parenthesized list of values"))?;
                let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
                if values.iter().any(|v| v.is_empty()) {
                    return Err(bad("empty value in the list"));
                }
                for v in &values {
                    check_value(v).map_err(|e| bad(&e))?;
                }
                sel.match_expressions.push(Requirement {
                    key: k.into(),
                    operator: op,
                    values,
                });
            } else {
                check_key(term).map_err(|e| bad(&e))?;
                sel.match_expressions.push(Requirement {
                    key: term.into(),
                    operator: Operator::Exists,
                    values: vec![],
                });
            }
        }
        Ok(sel)
    }

    /// Checks expressions are well formed (In/NotIn need values, Exists/DoesNotExist none).
    pub fn validate(&self) -> crate::Result<()> {
        self.check_expressions().map_err(crate::Error::invalid)
    }

    fn check_expressions(&self) -> Result<(), String> {
        for r in &self.match_expressions {
            match r.operator {
                Operator::In | Operator::NotIn if r.values.is_empty() => {
                    return Err(format!(
                        "label selector requirement on {:?}: {:?} needs at least one value",
                        r.key, r.operator
                    ))
                }
                Operator::Exists | Operator::DoesNotExist if !r.values.is_empty() => {
                    return Err(format!(
                        "label selector requirement on {:?}: {:?} takes no values",
                        r.key, r.operator
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether the object's labels satisfy every term.
    pub fn matches(&self, o: &Object) -> bool {
        self.matches_labels(|k| o.label(k))
    }

    /// Whether labels, looked up by `label`, match.
    pub fn matches_labels<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| label(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|r| {
                let got = label(&r.key);
                match r.operator {
                    Operator::In => got.is_some_and(|g| r.values.iter().any(|v| v == g)),
                    Operator::NotIn => got.is_none_or(|g| r.values.iter().all(|v| v != g)),
                    Operator::Exists => got.is_some(),
                    Operator::DoesNotExist => got.is_none(),
                }
            })
    }
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("invalid selector {s:?}: unbalanced parentheses"));
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("invalid selector {s:?}: unbalanced parentheses"));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// `key in (…)` / `key notin (…)`.
fn set_term(term: &str) -> Option<(&str, Operator, &str)> {
    let (key, rest) = term.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix("notin") {
        return Some((key, Operator::NotIn, r));
    }
    rest.strip_prefix("in").map(|r| (key, Operator::In, r))
}

/// A label key: optional DNS prefix and `/`, then a name of 1 to 63 characters of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn check_key(k: &str) -> Result<(), String> {
    let name = match k.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return Err(format!(
                    "label key prefix of {k:?} must be 1 to 253 characters"
                ));
            }
            name
        }
        None => k,
    };
    check_name(name).map_err(|e| format!("label key {k:?}: {e}"))
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    check_name(v).map_err(|e| format!("label value {v:?}: {e}"))
}

fn check_name(n: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if n.is_empty() || n.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if !n.chars().all(ok_char)
        || !n.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !n.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(
            "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: serde_json::Value) -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels}}),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn kubectl_syntax_and_matching() {
        let s =
            LabelSelector::parse("app=web, tier!=db,env in (prod, stage),!legacy,team").unwrap();
        assert_eq!(s.match_labels.len(), 1);
        assert_eq!(s.match_expressions.len(), 4);
        assert!(s.matches(&obj(json!({"app": "web", "env": "prod", "team": "a"}))));
        assert!(!s.matches(&obj(
            json!({"app": "web", "env": "prod", "team": "a", "legacy": "1"})
        )));
        assert!(!s.matches(&obj(json!({"app": "web", "env": "dev", "team": "a"}))));
        assert!(!s.matches(&obj(
            json!({"app": "web", "env": "prod", "team": "a", "tier": "db"})
        )));
        let notin = LabelSelector::parse("env notin (prod)").unwrap();
        assert!(
            notin.matches(&obj(json!({}))),
            "NotIn matches a missing label"
        );
        assert!(LabelSelector::parse("").is_err());
        for bad in [
            "a=b,",
            "env in prod",
            "env in (a,)",
            "-a=b",
            "a=(b",
            "a b c",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        let json: LabelSelector =
            serde_json::from_value(json!({"matchExpressions": [{"key": "a", "operator": "In"}]}))
                .unwrap();
        assert!(json.validate().is_err());
    }
}
