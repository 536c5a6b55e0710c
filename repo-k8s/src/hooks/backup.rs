//! Backup hooks: commands run in a pod before its volumes are read (pre) and after (post),
//! to quiesce an application and resume it. Velero's rules:
//! - the annotations `pre.hook.backup.velero.io/{container,command,on-error,timeout}` (and
//!   `post.…`) give one hook per phase; the unphased `hook.backup.velero.io/…` keys are the
//!   pre hook when there is no `pre.…` command;
//! - a pod with an annotation hook for a phase runs only that hook in that phase; otherwise
//!   the Backup's `spec.hooks.resources` that select the pod run, in order;
//! - defaults: the pod's first container, `Fail`, 30 s;
//! - once a hook with `onError: Fail` fails, the pod's later hooks of that phase are not
//!   run (but are counted as attempted, as Velero counts them); a pod whose pre hooks failed
//!   that way is left out of the backup, volumes and post hooks included.
//!
//! Every failed hook is an error of the backup (PartiallyFailed), whatever its `onError`.

use std::collections::BTreeMap;

use super::{parse_command, parse_duration, run, Hook, PodExec, Selector, Source, Tally};
use crate::discovery::Discovery;
use crate::object::Object;
use crate::velero::{BackupResourceHookSpec, HookErrorMode};

/// Before or after the pod's volumes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    fn prefix(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// A Backup's hook specs, checked once.
pub struct Specs {
    specs: Vec<(Selector, BackupResourceHookSpec)>,
}

impl Specs {
    /// The specs of `spec.hooks.resources`; an error names the spec whose selection is
    /// malformed.
    pub fn new(specs: &[BackupResourceHookSpec], d: &Discovery) -> Result<Specs, String> {
        let specs = specs
            .iter()
            .map(|s| {
                let sel = Selector::new(&s.selection, d, false)
                    .map_err(|e| format!("backup hook {:?}: {e}", s.name))?;
                Ok((sel, s.clone()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Specs { specs })
    }

    /// The hooks of `pod` in `phase`, in the order they run, with warnings about its
    /// annotations (a timeout that is not a duration).
    pub fn hooks_of(&self, pod: &Object, phase: Phase) -> (Vec<Hook>, Vec<String>) {
        let mut warnings = Vec::new();
        if let Some(h) = from_annotations(pod, phase, &mut warnings) {
            return (vec![h], warnings);
        }
        let ns = pod.namespace().unwrap_or_default();
        let mut hooks = Vec::new();
        for (sel, spec) in &self.specs {
            if !sel.applies_to(pod, ns) {
                continue;
            }
            let list = match phase {
                Phase::Pre => &spec.pre,
                Phase::Post => &spec.post,
            };
            for (index, h) in list.iter().enumerate() {
                let Some(e) = &h.exec else { continue };
                let timeout = match e.timeout.as_deref() {
                    None | Some("") => None,
                    Some(t) => parse_duration(t).or_else(|| {
                        warnings.push(format!("backup hook {:?}: timeout {t:?} is not a duration; the default {}s is used", spec.name, super::DEFAULT_TIMEOUT.as_secs()));
                        None
                    }),
                };
                hooks.push(Hook {
                    source: Source::Spec {
                        name: spec.name.clone(),
                        index,
                    },
                    container: e.container.clone().filter(|c| !c.is_empty()),
                    command: e.command.clone(),
                    on_error: e.on_error.unwrap_or(HookErrorMode::Fail),
                    timeout: timeout
                        .filter(|t| !t.is_zero())
                        .unwrap_or(super::DEFAULT_TIMEOUT),
                });
            }
        }
        (hooks, warnings)
    }
}

/// The hook a pod's annotations give for `phase` (the unphased keys for pre).
fn from_annotations(pod: &Object, phase: Phase, warnings: &mut Vec<String>) -> Option<Hook> {
    let annotations: BTreeMap<String, String> = pod
        .get(&["metadata", "annotations"])
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let key_of = |prefix: &str, k: &str| match prefix {
        "" => format!("hook.backup.velero.io/{k}"),
        p => format!("{p}.hook.backup.velero.io/{k}"),
    };
    let has_command = |prefix: &str| {
        annotations
            .get(&key_of(prefix, "command"))
            .is_some_and(|c| !c.is_empty())
    };
    let prefix = match phase {
        _ if has_command(phase.prefix()) => phase.prefix(),
        Phase::Pre if has_command("") => "",
        _ => return None,
    };
    let key = |k: &str| key_of(prefix, k);
    let get = |k: &str| annotations.get(&key(k)).filter(|v| !v.is_empty()).cloned();
    let command = get("command")?;
    let timeout = get("timeout").and_then(|t| {
        parse_duration(&t).or_else(|| {
            warnings.push(format!(
                "pod {}/{}: annotation {} {t:?} is not a duration; the default {}s is used",
                pod.namespace().unwrap_or_default(),
                pod.name(),
                key("timeout"),
                super::DEFAULT_TIMEOUT.as_secs()
            ));
            None
        })
    });
    let on_error = match get("on-error").as_deref() {
        Some("Continue") => HookErrorMode::Continue,
        _ => HookErrorMode::Fail,
    };
    Some(Hook {
        source: Source::Annotation,
        container: get("container"),
        command: parse_command(&command),
        on_error,
        timeout: timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(super::DEFAULT_TIMEOUT),
    })
}

/// What running one pod's hooks of one phase came to.
#[derive(Debug, Default)]
pub struct PodHooks {
    pub tally: Tally,
    /// One message per failed hook, naming the pod, the hook and its container.
    pub errors: Vec<String>,
    /// A hook with `onError: Fail` failed (after a pre hook: leave the pod out).
    pub failed: bool,
}

/// Runs `hooks` (of `phase`) in `pod`, in order, as the module says.
pub fn run_hooks(exec: &dyn PodExec, pod: &Object, phase: Phase, hooks: &[Hook]) -> PodHooks {
    let mut out = PodHooks::default();
    for h in hooks {
        out.tally.attempted += 1;
        if out.failed {
            continue;
        }
        if let Err(e) = run(exec, pod, h) {
            out.tally.failed += 1;
            let container = h.container.as_deref().unwrap_or("(first)");
            out.errors.push(format!(
                "{} hook {} of pod {}/{} in container {container} failed: {e}",
                phase.prefix(),
                h.source.name(),
                pod.namespace().unwrap_or_default(),
                pod.name(),
            ));
            if h.on_error == HookErrorMode::Fail {
                out.failed = true;
            }
        }
    }
    out
}

/// A backup's hooks as they run, pod by pod: what they came to so far.
pub struct Hooks<'a> {
    specs: Specs,
    exec: &'a dyn PodExec,
    pub tally: Tally,
    /// `(namespace, message)` of each failed hook.
    pub errors: Vec<(String, String)>,
    /// `(namespace, message)`: annotations that could not be read.
    pub warnings: Vec<(String, String)>,
}

impl<'a> Hooks<'a> {
    pub fn new(specs: Specs, exec: &'a dyn PodExec) -> Hooks<'a> {
        Hooks {
            specs,
            exec,
            tally: Tally::default(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Runs the hooks of `pod` in `phase`; whether one with `onError: Fail` failed.
    pub fn run(&mut self, pod: &Object, phase: Phase) -> bool {
        let ns = pod.namespace().unwrap_or_default();
        let (hooks, warnings) = self.specs.hooks_of(pod, phase);
        self.warnings
            .extend(warnings.into_iter().map(|w| (ns.to_string(), w)));
        let ran = run_hooks(self.exec, pod, phase, &hooks);
        self.tally.add(&ran.tally);
        self.errors
            .extend(ran.errors.into_iter().map(|e| (ns.to_string(), e)));
        ran.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::tests::Recorder;
    use serde_json::json;
    use std::time::Duration;

    fn pod(annotations: serde_json::Value) -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "annotations": annotations, "labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c"}, {"name": "d"}]}, "status": {"phase": "Running"}}),
            "pods",
        )
        .unwrap()
    }

    fn specs(v: serde_json::Value) -> Specs {
        let s: Vec<BackupResourceHookSpec> = serde_json::from_value(v).unwrap();
        Specs::new(&s, &Discovery::built_in()).unwrap()
    }

    fn exec(c: Option<&str>, cmd: &[&str], on_error: Option<&str>) -> serde_json::Value {
        json!({"exec": {"container": c, "command": cmd, "onError": on_error}})
    }

    // Velero TestGetPodExecHookFromAnnotations and TestHandleHooks: the legacy keys are the
    // pre hook; phased keys; an annotation replaces the spec hooks; defaults.
    #[test]
    fn annotations_give_one_hook_per_phase_and_replace_the_spec() {
        let none = specs(json!([{"name": "h", "pre": [exec(None, &["spec"], None)]}]));
        let legacy = pod(json!({"hook.backup.velero.io/container": "d",
            "hook.backup.velero.io/command": "/bin/ls", "hook.backup.velero.io/timeout": "5m3s"}));
        let (h, w) = none.hooks_of(&legacy, Phase::Pre);
        assert!(w.is_empty());
        assert_eq!(
            h,
            [Hook {
                source: Source::Annotation,
                container: Some("d".into()),
                command: vec!["/bin/ls".into()],
                on_error: HookErrorMode::Fail,
                timeout: Duration::from_secs(303),
            }]
        );
        // Legacy keys are not post hooks; the spec's post hooks (none here) apply.
        assert!(none.hooks_of(&legacy, Phase::Post).0.is_empty());
        let both = pod(json!({"pre.hook.backup.velero.io/command": r#"["a","b"]"#,
            "pre.hook.backup.velero.io/on-error": "Continue",
            "pre.hook.backup.velero.io/timeout": "invalid",
            "hook.backup.velero.io/command": "legacy",
            "post.hook.backup.velero.io/command": "after"}));
        let (h, w) = none.hooks_of(&both, Phase::Pre);
        assert_eq!(h[0].command, ["a", "b"]);
        assert_eq!(
            (h[0].on_error, h[0].timeout),
            (HookErrorMode::Continue, Duration::from_secs(30))
        );
        assert!(w[0].contains("\"invalid\" is not a duration"), "{w:?}");
        assert_eq!(none.hooks_of(&both, Phase::Post).0[0].command, ["after"]);
        // Only a post annotation: the spec's pre hooks run.
        let post_only = pod(json!({"post.hook.backup.velero.io/command": "after"}));
        let (h, _) = none.hooks_of(&post_only, Phase::Pre);
        assert_eq!(
            h[0].source,
            Source::Spec {
                name: "h".into(),
                index: 0
            }
        );
        // An empty command is no hook.
        let empty = pod(json!({"pre.hook.backup.velero.io/command": ""}));
        assert_eq!(none.hooks_of(&empty, Phase::Pre).0[0].command, ["spec"]);
    }

    // Velero TestHandleHooksSkips: hooks that do not apply, or with no exec.
    #[test]
    fn spec_hooks_that_do_not_select_the_pod_do_not_run() {
        let s = specs(json!([
            {"name": "ns", "excludedNamespaces": ["ns"], "pre": [exec(None, &["x"], None)]},
            {"name": "res", "includedResources": ["widgets.group"], "pre": [exec(None, &["x"], None)]},
            {"name": "labels", "labelSelector": {"matchLabels": {"app": "web"}}, "pre": [exec(None, &["x"], None)]},
            {"name": "no exec", "pre": [{}, {}]},
        ]));
        assert!(s.hooks_of(&pod(json!({})), Phase::Pre).0.is_empty());
    }

    // Velero TestHandleHooks "pod, spec, onError=fail = don't run other hooks" and
    // TestBackupHookTracker's counts (4 attempted, 2 failed).
    #[test]
    fn a_failing_fail_hook_stops_the_pods_later_hooks() {
        let s = specs(json!([
            {"name": "hook1", "pre": [exec(None, &["fail", "1a"], Some("Continue")), exec(None, &["1b"], None)]},
            {"name": "hook2", "pre": [exec(Some("d"), &["fail", "2"], Some("Fail"))]},
            {"name": "hook3", "pre": [exec(None, &["3"], None)]},
        ]));
        let p = pod(json!({}));
        let (hooks, _) = s.hooks_of(&p, Phase::Pre);
        let rec = Recorder::default();
        let out = run_hooks(&rec, &p, Phase::Pre, &hooks);
        assert_eq!(*rec.0.lock().unwrap(), ["c:fail 1a", "c:1b", "d:fail 2"]);
        assert_eq!(
            out.tally,
            Tally {
                attempted: 4,
                failed: 2
            }
        );
        assert!(out.failed);
        assert_eq!(
            out.errors,
            [
                "pre hook hook1 of pod ns/p in container (first) failed: command terminated with exit code 1: it broke",
                "pre hook hook2 of pod ns/p in container d failed: command terminated with exit code 1: it broke",
            ]
        );
    }

    // cairn: an unset onError is Fail (Velero documents it; its code acts as Continue).
    #[test]
    fn an_unset_on_error_is_fail() {
        let s = specs(
            json!([{"name": "h", "post": [exec(None, &["fail"], None), exec(None, &["next"], None)]}]),
        );
        let p = pod(json!({}));
        let rec = Recorder::default();
        let out = run_hooks(&rec, &p, Phase::Post, &s.hooks_of(&p, Phase::Post).0);
        assert_eq!(*rec.0.lock().unwrap(), ["c:fail"]);
        assert_eq!((out.failed, out.tally.attempted), (true, 2));
    }

    // Velero TestPodCompeted: an ended pod runs nothing and that is not a failure; a
    // container the pod does not have is a failure naming it.
    #[test]
    fn ended_pods_and_missing_containers() {
        let s = specs(json!([{"name": "h", "pre": [exec(Some("nope"), &["x"], None)]}]));
        let mut p = pod(json!({}));
        let rec = Recorder::default();
        let out = run_hooks(&rec, &p, Phase::Pre, &s.hooks_of(&p, Phase::Pre).0);
        assert!(out.errors[0].contains(r#"the pod has no container "nope""#));
        p.map_at_mut(&["status"])
            .insert("phase".into(), "Succeeded".into());
        let out = run_hooks(&rec, &p, Phase::Pre, &s.hooks_of(&p, Phase::Pre).0);
        assert_eq!(
            out.tally,
            Tally {
                attempted: 1,
                failed: 0
            }
        );
        assert!(rec.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_malformed_selection_is_an_error_naming_the_spec() {
        let s: Vec<BackupResourceHookSpec> = serde_json::from_value(json!([{"name": "bad",
            "labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]))
        .unwrap();
        let e = Specs::new(&s, &Discovery::built_in()).err().unwrap();
        assert!(e.starts_with("backup hook \"bad\": "), "{e}");
    }
}
