//! RFC 6902 JSON patches (what Velero's resource modifiers send through evanphx/json-patch):
//! add, remove, replace, move, copy and test, on RFC 6901 pointers, applied atomically.

use serde_json::Value;

/// One operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub op: Op,
    pub path: String,
    pub from: String,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

impl Op {
    /// Velero's names, in any case.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "remove" => Op::Remove,
            "replace" => Op::Replace,
            "move" => Op::Move,
            "copy" => Op::Copy,
            "test" => Op::Test,
            _ => return None,
        })
    }
}

/// Why a patch did not apply.
#[derive(Debug, PartialEq, Eq)]
pub enum PatchError {
    /// A `test` operation found another value (or nothing): not an error for a modifier,
    /// which then leaves the object alone.
    TestFailed,
    Failed(String),
}

/// Applies `ops` in order to `doc`. On error `doc` may be half changed: patch a copy to
/// apply a patch atomically.
pub fn apply(doc: &mut Value, ops: &[Operation]) -> Result<(), PatchError> {
    ops.iter().try_for_each(|o| step(doc, o))
}

/// Whether every `test` of `ops` holds in `doc` (a `matches` condition): read only, so the
/// item is not copied to be tested.
pub fn holds(doc: &serde_json::Map<String, Value>, tests: &[Operation]) -> bool {
    tests.iter().all(|t| {
        let mut tokens = t.path.splitn(3, '/').skip(1);
        let first = tokens
            .next()
            .map(|k| k.replace("~1", "/").replace("~0", "~"));
        let found = first
            .and_then(|k| doc.get(&k))
            .and_then(|v| match tokens.next() {
                Some(rest) => v.pointer(&format!("/{rest}")),
                None => Some(v),
            });
        found == Some(&t.value)
    })
}

fn step(doc: &mut Value, o: &Operation) -> Result<(), PatchError> {
    let fail = |why: &str| PatchError::Failed(format!("{:?} {}: {why}", o.op, o.path));
    match o.op {
        Op::Test => match doc.pointer(&o.path) {
            Some(v) if *v == o.value => Ok(()),
            Some(_) => Err(PatchError::TestFailed),
            // A missing value fails the test; a missing parent is an error (evanphx).
            None => match split(&o.path).map(|(parent, _)| doc.pointer(parent).is_some()) {
                Ok(true) => Err(PatchError::TestFailed),
                _ => Err(fail("nothing at its parent path")),
            },
        },
        Op::Add => add(doc, &o.path, o.value.clone()).map_err(|e| fail(&e)),
        Op::Remove => remove(doc, &o.path).map(|_| ()).map_err(|e| fail(&e)),
        Op::Replace => {
            remove(doc, &o.path).map_err(|e| fail(&e))?;
            add(doc, &o.path, o.value.clone()).map_err(|e| fail(&e))
        }
        Op::Move => {
            let v = remove(doc, &o.from).map_err(|e| fail(&e))?;
            add(doc, &o.path, v).map_err(|e| fail(&e))
        }
        Op::Copy => {
            let v = doc
                .pointer(&o.from)
                .cloned()
                .ok_or_else(|| fail(&format!("nothing at {}", o.from)))?;
            add(doc, &o.path, v).map_err(|e| fail(&e))
        }
    }
}

/// Splits a pointer into its parent and its unescaped last token.
fn split(path: &str) -> Result<(&str, String), String> {
    if path.is_empty() {
        return Err("the whole document cannot be changed".into());
    }
    if !path.starts_with('/') {
        return Err("a path starts with /".into());
    }
    let at = path.rfind('/').expect("starts with /");
    let token = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..at], token))
}

fn add(doc: &mut Value, path: &str, v: Value) -> Result<(), String> {
    let (parent, key) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(key, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if key == "-" {
                a.len()
            } else {
                index(&key, a.len() + 1)?
            };
            a.insert(i, v);
            Ok(())
        }
        Some(_) => Err(format!("{parent} is not a mapping or a list")),
        None => Err(format!("nothing at {parent}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => m.remove(&key).ok_or_else(|| format!("nothing at {path}")),
        Some(Value::Array(a)) => {
            let i = index(&key, a.len())?;
            Ok(a.remove(i))
        }
        _ => Err(format!("nothing at {path}")),
    }
}

fn index(token: &str, len: usize) -> Result<usize, String> {
    let bad = || format!("{token:?} is not an index of a list of {len}");
    if token.len() > 1 && token.starts_with('0') {
        return Err(bad());
    }
    let i: usize = token.parse().map_err(|_| bad())?;
    if i < len {
        Ok(i)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(op: Op, path: &str, value: Value) -> Operation {
        Operation {
            op,
            path: path.into(),
            from: String::new(),
            value,
        }
    }

    #[test]
    fn operations_follow_rfc_6902() {
        let doc = json!({"spec": {"replicas": 1, "containers": [{"name": "nginx"}]}, "metadata": {"annotations": {}}});
        let run = |ops: &[Operation]| {
            let mut d = doc.clone();
            apply(&mut d, ops).map(|()| d)
        };
        let out = run(&[
            op(Op::Test, "/spec/replicas", json!(1)),
            op(Op::Replace, "/spec/replicas", json!(2)),
            op(Op::Add, "/spec/containers/1", json!({"name": "mysql"})),
            op(Op::Add, "/spec/containers/-", json!({"name": "last"})),
            op(
                Op::Add,
                "/metadata/annotations/example.com~1owner",
                json!("me"),
            ),
        ])
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 3);
        assert_eq!(out["metadata"]["annotations"]["example.com/owner"], "me");
        // Copy then move.
        let copied = run(&[Operation {
            op: Op::Copy,
            path: "/spec/containers/1".into(),
            from: "/spec/containers/0".into(),
            value: Value::Null,
        }])
        .unwrap();
        assert_eq!(copied["spec"]["containers"][1]["name"], "nginx");
        // A failed test, a missing path: no change, told apart.
        assert_eq!(
            run(&[op(Op::Test, "/spec/replicas", json!(5))]),
            Err(PatchError::TestFailed)
        );
        assert!(matches!(
            run(&[op(Op::Replace, "/spec/nothing", json!(1))]),
            Err(PatchError::Failed(_))
        ));
        assert!(matches!(
            run(&[op(Op::Remove, "/spec/containers/7", Value::Null)]),
            Err(PatchError::Failed(_))
        ));
        // A test of a missing key fails; of a missing parent, it is an error.
        assert_eq!(
            run(&[op(Op::Test, "/spec/nothing", json!(1))]),
            Err(PatchError::TestFailed)
        );
        assert!(matches!(
            run(&[op(Op::Test, "/no/such/path", json!(1))]),
            Err(PatchError::Failed(_))
        ));
        // `holds` reads the same paths without a copy.
        let m = doc.as_object().unwrap();
        assert!(holds(m, &[op(Op::Test, "/spec/replicas", json!(1))]));
        assert!(!holds(m, &[op(Op::Test, "/spec/replicas", json!(2))]));
        assert!(!holds(
            m,
            &[op(Op::Test, "/spec/containers/0/name/x", json!(1))]
        ));
    }
}
