//! Hooks, as Velero has them: commands run in a pod's containers before and after the pod
//! is backed up ([`backup`]), and after it is restored, plus init containers added to a
//! restored pod ([`restore`]). A hook comes from the pod's annotations, or else from the
//! Backup's or Restore's `spec.hooks.resources`; hooks run on pods only.
//!
//! Where cairn departs from Velero's code (each a bug report there), it says so:
//! - an unset `onError` of a backup hook is `Fail`, as Velero documents (its code acts as
//!   `Continue`);
//! - a restore hook whose container the pod does not have fails at once (Velero leaves it
//!   unrecorded and the restore hangs in Finalizing, #9749);
//! - a restore hook whose wait expired is not run (Velero runs a `Continue` one anyway).

pub mod backup;
pub mod restore;

use std::time::Duration;

use crate::discovery::Discovery;
use crate::filter::Glob;
use crate::object::Object;
use crate::velero::{HookErrorMode, HookSelection, HookStatus};

/// The hook name Velero gives a hook from annotations.
pub const FROM_ANNOTATION: &str = "<from-annotation>";

/// How long a hook's command may run when its hook does not say (Velero's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A hook's command as an annotation gives it: a JSON array of strings (`["sh", "-c",
/// "…"]`), else the whole value as one word. Nothing is split on spaces: no shell runs it.
pub fn parse_command(s: &str) -> Vec<String> {
    if s.starts_with('[') {
        if let Ok(words) = serde_json::from_str::<Vec<String>>(s) {
            return words;
        }
    }
    vec![s.to_string()]
}

/// A duration as a hook annotation gives it (a Go duration: `30s`, `5m3s`); `None` when it
/// is not one (the caller warns and uses its default).
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::velero::go_duration(s)
}

/// Velero's includes and excludes of one list: an exclude wins; no includes, or `*`,
/// includes everything; patterns are globs.
#[derive(Clone, Debug, Default)]
struct IncludesExcludes {
    includes: Vec<Glob>,
    excludes: Vec<Glob>,
    all: bool,
}

impl IncludesExcludes {
    fn new(
        includes: &[String],
        excludes: &[String],
        name: &dyn Fn(&str) -> String,
    ) -> Result<Self, String> {
        let globs = |list: &[String]| -> Result<Vec<Glob>, String> {
            list.iter()
                .filter(|s| *s != "*")
                .map(|s| Glob::new(&name(s)))
                .collect()
        };
        Ok(IncludesExcludes {
            all: includes.is_empty() || includes.iter().any(|s| s == "*"),
            includes: globs(includes)?,
            excludes: globs(excludes)?,
        })
    }

    fn includes(&self, s: &str) -> bool {
        !self.excludes.iter().any(|g| g.matches(s))
            && (self.all || self.includes.iter().any(|g| g.matches(s)))
    }
}

/// Which pods a hook spec's hooks run on: its namespaces, resources and label selector.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    namespaces: IncludesExcludes,
    resources: IncludesExcludes,
    labels: Option<crate::selector::LabelSelector>,
}

impl Selector {
    /// The selector of `s`; resource names are resolved through `d` (`po`, `pod` and `pods`
    /// are all `pods`). `pods_only`: restore hooks ignore the resource lists, as Velero's.
    pub fn new(s: &HookSelection, d: &Discovery, pods_only: bool) -> Result<Selector, String> {
        let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
        let same = |n: &str| n.to_string();
        let resource = |n: &str| match d.resolve(n) {
            Ok(r) => r.group_resource(),
            Err(_) => n.to_string(),
        };
        let namespaces = IncludesExcludes::new(
            &list(&s.included_namespaces),
            &list(&s.excluded_namespaces),
            &same,
        )?;
        let resources = if pods_only {
            IncludesExcludes::new(&["pods".into()], &[], &same)?
        } else {
            IncludesExcludes::new(
                &list(&s.included_resources),
                &list(&s.excluded_resources),
                &resource,
            )?
        };
        if let Some(l) = &s.label_selector {
            l.validate().map_err(|e| e.to_string())?;
        }
        Ok(Selector {
            namespaces,
            resources,
            labels: s.label_selector.clone(),
        })
    }

    /// Whether the hooks apply to `pod` (in namespace `ns`, which a restore maps).
    pub fn applies_to(&self, pod: &Object, ns: &str) -> bool {
        self.namespaces.includes(ns)
            && self.resources.includes("pods")
            && self.labels.as_ref().is_none_or(|l| l.matches(pod))
    }
}

/// Where a hook came from, as Velero's hook tracker keys it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Annotation,
    /// The hook spec's name and the hook's place in its list.
    Spec {
        name: String,
        index: usize,
    },
}

impl Source {
    /// The hook's name in messages (Velero's `<from-annotation>` or the spec's name).
    pub fn name(&self) -> &str {
        match self {
            Source::Annotation => FROM_ANNOTATION,
            Source::Spec { name, .. } => name,
        }
    }
}

/// One command to run in a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub source: Source,
    /// `None`: the pod's first container.
    pub container: Option<String>,
    pub command: Vec<String>,
    pub on_error: HookErrorMode,
    pub timeout: Duration,
}

/// What a command run in a container (the pods `exec` API) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The command's exit code (0: success).
    pub exit_code: i32,
}

/// Runs commands in pods' containers (the pods `exec` API; a stand-in in unit tests).
pub trait PodExec: Sync {
    fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, String>;
}

#[cfg(feature = "cluster")]
impl PodExec for crate::cluster::Cluster {
    fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, String> {
        let run = crate::cluster::Cluster::exec(self, ns, pod, Some(container), command, timeout);
        run.map_err(|e| e.to_string())
    }
}

/// The container a hook runs in: its own, which the pod must have, else the pod's first.
pub fn container_of(pod: &Object, hook: &Hook) -> Result<String, String> {
    let names: Vec<&str> = pod
        .get(&["spec", "containers"])
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match &hook.container {
        Some(c) if names.contains(&c.as_str()) => Ok(c.clone()),
        Some(c) => Err(format!(
            "the pod has no container {c:?} (it has {}); name one of them in the hook",
            names.join(", ")
        )),
        None => names
            .first()
            .map(|c| c.to_string())
            .ok_or_else(|| "the pod has no containers".to_string()),
    }
}

/// Runs `hook` in `pod`; an error says what failed, with the end of the command's error
/// output. A pod that has ended (Succeeded or Failed) has nothing to run in: that is not a
/// failure (Velero's rule).
pub fn run(exec: &dyn PodExec, pod: &Object, hook: &Hook) -> Result<(), String> {
    if matches!(
        pod.str_at(&["status", "phase"]),
        Some("Succeeded" | "Failed")
    ) {
        return Ok(());
    }
    let container = container_of(pod, hook)?;
    if hook.command.is_empty() {
        return Err("the hook has no command".into());
    }
    let ns = pod.namespace().unwrap_or_default();
    let out = exec.exec(ns, pod.name(), &container, &hook.command, hook.timeout)?;
    if out.exit_code == 0 {
        return Ok(());
    }
    let stderr = out.stderr.trim();
    let tail: String = {
        let chars: Vec<char> = stderr.chars().collect();
        chars[chars.len().saturating_sub(500)..].iter().collect()
    };
    Err(if tail.is_empty() {
        format!("command terminated with exit code {}", out.exit_code)
    } else {
        format!(
            "command terminated with exit code {}: {tail}",
            out.exit_code
        )
    })
}

/// Hooks attempted and failed, for `status.hookStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub attempted: usize,
    pub failed: usize,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.attempted += other.attempted;
        self.failed += other.failed;
    }

    /// As Velero writes it (zero counts are left out).
    pub fn status(&self) -> HookStatus {
        HookStatus {
            hooks_attempted: self.attempted as i64,
            hooks_failed: self.failed as i64,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records what it was asked to run; a command whose first word is `fail` exits 1.
    #[derive(Default)]
    pub(crate) struct Recorder(pub Mutex<Vec<String>>);

    impl PodExec for Recorder {
        fn exec(
            &self,
            _ns: &str,
            _pod: &str,
            container: &str,
            command: &[String],
            _timeout: Duration,
        ) -> Result<ExecOutput, String> {
            self.0
                .lock()
                .unwrap()
                .push(format!("{container}:{}", command.join(" ")));
            Ok(ExecOutput {
                stdout: String::new(),
                stderr: "it broke".into(),
                exit_code: if command[0] == "fail" { 1 } else { 0 },
            })
        }
    }

    // Velero TestGetPodExecHookFromAnnotations: JSON arrays, a single word, malformed JSON
    // whole, no splitting on spaces.
    #[test]
    fn commands_are_a_json_array_or_one_word() {
        assert_eq!(parse_command(r#"["a","b","c"]"#), ["a", "b", "c"]);
        assert_eq!(parse_command("/usr/bin/foo"), ["/usr/bin/foo"]);
        assert_eq!(parse_command("[blarg"), ["[blarg"]);
        assert_eq!(
            parse_command("/usr/bin/data-populator /user-data full"),
            ["/usr/bin/data-populator /user-data full"]
        );
        assert_eq!(parse_command(r#" ["a"]"#), [r#" ["a"]"#]);
        assert_eq!(parse_command("[1, 2]"), ["[1, 2]"]);
    }

    fn pod(ns: &str, labels: serde_json::Value) -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            "pods",
        )
        .unwrap()
    }

    // Velero TestResourceHookApplicableTo.
    #[test]
    fn selectors_apply_as_veleros() {
        let d = Discovery::built_in();
        let sel = |v: serde_json::Value| {
            Selector::new(&serde_json::from_value(v).unwrap(), &d, false).unwrap()
        };
        let p = pod("b", json!({"a": "b"}));
        assert!(sel(json!({})).applies_to(&p, "b"));
        let ns = sel(json!({"includedNamespaces": ["a", "b"], "excludedNamespaces": ["c", "d"]}));
        assert!(ns.applies_to(&p, "b"));
        assert!(!ns.applies_to(&p, "c"));
        assert!(!sel(json!({"excludedNamespaces": ["a", "b"]})).applies_to(&p, "a"));
        assert!(sel(json!({"includedNamespaces": ["b*"]})).applies_to(&p, "bee"));
        assert!(sel(json!({"includedResources": ["po"]})).applies_to(&p, "b"));
        assert!(!sel(json!({"includedResources": ["deployments"]})).applies_to(&p, "b"));
        assert!(!sel(json!({"excludedResources": ["pods"]})).applies_to(&p, "b"));
        assert!(sel(json!({"includedResources": ["*"]})).applies_to(&p, "b"));
        assert!(sel(json!({"labelSelector": {"matchLabels": {"a": "b"}}})).applies_to(&p, "b"));
        assert!(!sel(json!({"labelSelector": {"matchLabels": {"a": "c"}}})).applies_to(&p, "b"));
        // Restore hooks: the resource lists do not count.
        let restore = Selector::new(
            &serde_json::from_value(json!({"includedResources": ["deployments"]})).unwrap(),
            &d,
            true,
        )
        .unwrap();
        assert!(restore.applies_to(&p, "b"));
    }

    #[test]
    fn a_hook_runs_in_its_container_or_the_first() {
        let p = pod("ns", json!({}));
        let hook = |c: Option<&str>| Hook {
            source: Source::Annotation,
            container: c.map(str::to_string),
            command: vec!["true".into()],
            on_error: HookErrorMode::Fail,
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(container_of(&p, &hook(None)).unwrap(), "a");
        assert_eq!(container_of(&p, &hook(Some("b"))).unwrap(), "b");
        let e = container_of(&p, &hook(Some("c"))).unwrap_err();
        assert!(e.contains(r#"no container "c" (it has a, b)"#), "{e}");
    }
}
