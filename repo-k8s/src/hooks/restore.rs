//! Restore hooks, as Velero has them:
//! - **init hooks**: init containers added to a restored pod, after `restore-wait` (so they
//!   see the restored data) and before the pod's own. From the annotations
//!   `init.hook.restore.velero.io/{container-image,container-name,command}`, else from each
//!   `spec.hooks.resources[].postHooks[].init.initContainers` that selects the pod (by its
//!   namespace after mapping, and its labels);
//! - **exec hooks**: commands run in a restored pod once its container is running (or
//!   ready), from `post.hook.restore.velero.io/{container,command,on-error,exec-timeout,
//!   wait-timeout,wait-for-ready}`, else from the spec's `postHooks[].exec`. Defaults: the
//!   first container, `Continue`, 30 s to run, no wait limit but the caller's.
//!
//! A pod with an annotation hook of a kind runs only that one. Each container's hooks run in
//! order; a failed hook with `onError: Fail` stops every hook not yet run in the restore
//! (Velero's documented rule). Every failed or unrun hook is an error of the restore
//! (PartiallyFailed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{parse_command, parse_duration, Hook, PodExec, Selector, Source, Tally};
use crate::discovery::Discovery;
use crate::object::Object;
use crate::velero::{HookErrorMode, RestoreResourceHookSpec};

/// Velero's error for an init container that cannot run.
pub const INVALID_INIT_CONTAINER: &str =
    "invalid InitContainer in restore hook, it doesn't have Command, Name or Image field";

/// A Restore's hook specs, checked once.
#[derive(Clone, Debug, Default)]
pub struct Specs {
    specs: Vec<(Selector, RestoreResourceHookSpec)>,
}

impl Specs {
    /// The specs of `spec.hooks.resources`; an error names what is malformed (a selection,
    /// an init container without a name, image or command).
    pub fn new(specs: &[RestoreResourceHookSpec]) -> Result<Specs, String> {
        let d = Discovery::built_in();
        let mut out = Vec::new();
        for s in specs {
            let sel = Selector::new(&s.selection, &d, true)
                .map_err(|e| format!("restore hook {:?}: {e}", s.name))?;
            for h in &s.post_hooks {
                for c in h.init.iter().flat_map(|i| &i.init_containers) {
                    let given = |k: &str| match &c[k] {
                        Value::String(s) => !s.is_empty(),
                        Value::Array(a) => !a.is_empty(),
                        _ => false,
                    };
                    if !(given("name") && given("image") && given("command")) {
                        return Err(format!(
                            "restore hook {:?}: {INVALID_INIT_CONTAINER}",
                            s.name
                        ));
                    }
                }
            }
            out.push((sel, s.clone()));
        }
        Ok(Specs { specs: out })
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The specs that select `pod` in its restored namespace `ns`.
    fn selecting<'a>(
        &'a self,
        pod: &'a Object,
        ns: &'a str,
    ) -> impl Iterator<Item = &'a RestoreResourceHookSpec> {
        self.specs
            .iter()
            .filter(move |(sel, _)| sel.applies_to(pod, ns))
            .map(|(_, s)| s)
    }

    /// Adds the pod's init hooks to `pod` (to be restored in namespace `ns`): after a first
    /// `restore-wait`, before the pod's own init containers.
    pub fn add_init_containers(&self, pod: &mut Object, ns: &str) {
        let added = match init_from_annotations(pod) {
            Some(c) => vec![c],
            None => self
                .selecting(pod, ns)
                .flat_map(|s| &s.post_hooks)
                .flat_map(|h| {
                    h.init
                        .iter()
                        .flat_map(|i| i.init_containers.iter().cloned())
                })
                .collect(),
        };
        if added.is_empty() {
            return;
        }
        let spec = pod.map_at_mut(&["spec"]);
        let inits = spec.entry("initContainers").or_insert_with(|| json!([]));
        if !inits.is_array() {
            *inits = json!([]);
        }
        let inits = inits.as_array_mut().expect("an array");
        let at = usize::from(
            inits.first().and_then(|c| c["name"].as_str())
                == Some(crate::restore::RESTORE_WAIT_CONTAINER),
        );
        inits.splice(at..at, added);
    }

    /// The exec hooks of a restored pod (in namespace `ns`), in the order they run.
    pub fn exec_hooks_of(&self, pod: &Object, ns: &str) -> (Vec<ExecHook>, Vec<String>) {
        let mut warnings = Vec::new();
        if let Some(h) = exec_from_annotations(pod, &mut warnings) {
            return (vec![h], warnings);
        }
        let mut hooks = Vec::new();
        for spec in self.selecting(pod, ns) {
            for (index, h) in spec.post_hooks.iter().enumerate() {
                let Some(e) = &h.exec else { continue };
                let mut duration = |what: &str, v: &Option<String>| {
                    let v = v.as_deref().filter(|v| !v.is_empty())?;
                    let d = parse_duration(v);
                    if d.is_none() {
                        warnings.push(format!(
                            "restore hook {:?}: {what} {v:?} is not a duration; ignored",
                            spec.name
                        ));
                    }
                    d.filter(|d| !d.is_zero())
                };
                let exec_timeout = duration("execTimeout", &e.exec_timeout);
                let wait_timeout = duration("waitTimeout", &e.wait_timeout);
                hooks.push(ExecHook {
                    hook: Hook {
                        source: Source::Spec {
                            name: spec.name.clone(),
                            index,
                        },
                        container: e.container.clone().filter(|c| !c.is_empty()),
                        command: e.command.clone(),
                        on_error: e.on_error.unwrap_or(HookErrorMode::Continue),
                        timeout: exec_timeout.unwrap_or(super::DEFAULT_TIMEOUT),
                    },
                    wait_timeout,
                    wait_for_ready: e.wait_for_ready.unwrap_or(false),
                });
            }
        }
        (hooks, warnings)
    }
}

fn annotations(pod: &Object) -> BTreeMap<String, String> {
    pod.get(&["metadata", "annotations"])
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

/// The init container the pod's annotations give: one with an image. Unnamed, it is named
/// after the pod (the same each time the restore is planned); without a command, the
/// image's own entrypoint runs.
fn init_from_annotations(pod: &Object) -> Option<Value> {
    let a = annotations(pod);
    let get = |k: &str| {
        a.get(&format!("init.hook.restore.velero.io/{k}"))
            .filter(|v| !v.is_empty())
    };
    let image = get("container-image")?;
    let name = match get("container-name") {
        Some(n) => n.clone(),
        None => {
            let id = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name());
            let digest = blake3::hash(id.as_bytes()).to_hex();
            format!("restore-init-{}", &digest[..8])
        }
    };
    let mut c = json!({"name": name, "image": image});
    if let Some(cmd) = get("command") {
        c["command"] = json!(parse_command(cmd));
    }
    Some(c)
}

/// The exec hook the pod's annotations give (Velero's rules for each value: one that cannot
/// be read is ignored with a warning).
fn exec_from_annotations(pod: &Object, warnings: &mut Vec<String>) -> Option<ExecHook> {
    let a = annotations(pod);
    let key = |k: &str| format!("post.hook.restore.velero.io/{k}");
    let get = |k: &str| a.get(&key(k)).filter(|v| !v.is_empty());
    let command = get("command")?;
    let id = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name());
    let mut duration = |k: &str| {
        let v = get(k)?;
        let d = parse_duration(v);
        if d.is_none() {
            warnings.push(format!(
                "pod {id}: annotation {} {v:?} is not a duration; ignored",
                key(k)
            ));
        }
        d.filter(|d| !d.is_zero())
    };
    let exec_timeout = duration("exec-timeout");
    let wait_timeout = duration("wait-timeout");
    let wait_for_ready = match get("wait-for-ready").map(String::as_str) {
        None => false,
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
        Some(v) => {
            warnings.push(format!(
                "pod {id}: annotation {} {v:?} is not true or false; false is used",
                key("wait-for-ready")
            ));
            false
        }
    };
    Some(ExecHook {
        hook: Hook {
            source: Source::Annotation,
            container: get("container").cloned(),
            command: parse_command(command),
            on_error: match get("on-error").map(String::as_str) {
                Some("Fail") => HookErrorMode::Fail,
                _ => HookErrorMode::Continue,
            },
            timeout: exec_timeout.unwrap_or(super::DEFAULT_TIMEOUT),
        },
        wait_timeout,
        wait_for_ready,
    })
}

/// Why a hook did not run once the restore's hooks were stopped.
pub const STOPPED: &str =
    "not run: the restore's hooks were stopped (a hook with onError Fail failed, or the restore was cancelled)";

/// A command run in a restored pod once its container is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecHook {
    pub hook: Hook,
    /// How long to wait for the container (from when the pod's hooks began waiting).
    pub wait_timeout: Option<Duration>,
    /// Wait for the container to be ready, not only running.
    pub wait_for_ready: bool,
}

/// Whether `container` of `pod` is running (or ready, with `ready`).
fn is_up(pod: &Object, container: &str, ready: bool) -> bool {
    pod.get(&["status", "containerStatuses"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container)
        .is_some_and(|s| match ready {
            true => s["ready"] == true,
            false => s["state"]["running"].is_object(),
        })
}

/// What running one pod's exec hooks came to.
#[derive(Debug, Default)]
pub struct Ran {
    pub tally: Tally,
    /// One message per hook that failed or did not run.
    pub errors: Vec<String>,
}

/// Runs the exec hooks of the pod `ns/name` as its containers come up (`pod` reads it
/// afresh: `None` once it is gone). Waits at most `limit` for a container that has no
/// wait timeout of its own; stops when `stop` says so (set here when a `Fail` hook fails).
pub fn run_exec_hooks(
    exec: &dyn PodExec,
    pod: &dyn Fn() -> Option<Object>,
    id: &str,
    hooks: &[ExecHook],
    limit: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Ran {
    use std::sync::atomic::Ordering;
    let mut ran = Ran::default();
    let began = Instant::now();
    // Each container's hooks, in the order of their first hook.
    let mut pending: Vec<(String, Vec<&ExecHook>)> = Vec::new();
    let first_container = pod().and_then(|p| {
        p.get(&["spec", "containers"])?.get(0)?["name"]
            .as_str()
            .map(str::to_string)
    });
    for h in hooks {
        ran.tally.attempted += 1;
        let c = h
            .hook
            .container
            .clone()
            .or_else(|| first_container.clone())
            .unwrap_or_else(|| "(first)".into());
        match pending.iter_mut().find(|(n, _)| *n == c) {
            Some((_, list)) => list.push(h),
            None => pending.push((c, vec![h])),
        }
    }
    // Errors by the hook's place, so they read in the hooks' order whatever order the
    // containers came up in.
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut fail = |h: &ExecHook, container: &str, why: String| {
        let at = hooks.iter().position(|x| std::ptr::eq(x, h)).unwrap_or(0);
        let name = h.hook.source.name();
        failed.push((
            at,
            format!("restore hook {name} in container {container} of pod {id} {why}"),
        ));
    };
    while !pending.is_empty() {
        let why_not = if stop.load(Ordering::Relaxed) {
            Some(STOPPED.to_string())
        } else {
            match pod() {
                None => Some("not run: the pod was deleted first".to_string()),
                Some(p) => match p.str_at(&["status", "phase"]) {
                    Some(phase @ ("Succeeded" | "Failed")) => {
                        Some(format!("not run: the pod ended ({phase}) first"))
                    }
                    _ => {
                        run_ready(exec, &p, &mut pending, began, limit, stop, &mut fail);
                        None
                    }
                },
            }
        };
        if let Some(why) = why_not {
            for (c, hs) in pending.drain(..) {
                for h in hs {
                    fail(h, &c, why.clone());
                }
            }
        }
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    failed.sort_by_key(|(at, _)| *at);
    ran.tally.failed = failed.len();
    ran.errors = failed.into_iter().map(|(_, e)| e).collect();
    ran
}

/// One look at the pod: runs the hooks of each container that is up, and fails those whose
/// wait is over; removes what it settled from `pending`.
fn run_ready(
    exec: &dyn PodExec,
    pod: &Object,
    pending: &mut Vec<(String, Vec<&ExecHook>)>,
    began: Instant,
    limit: Duration,
    stop: &std::sync::atomic::AtomicBool,
    fail: &mut dyn FnMut(&ExecHook, &str, String),
) {
    use std::sync::atomic::Ordering;
    let has = |c: &str| {
        pod.get(&["spec", "containers"])
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|x| x["name"] == c))
    };
    let waited = began.elapsed();
    pending.retain(|(container, hooks)| {
        if !has(container) {
            for h in hooks {
                fail(
                    h,
                    container,
                    "not run: the pod has no such container; name one of its containers".into(),
                );
            }
            return false;
        }
        let ready = hooks.iter().any(|h| h.wait_for_ready);
        if !is_up(pod, container, ready) {
            let wait = |h: &ExecHook| h.wait_timeout.unwrap_or(limit);
            if hooks.iter().all(|h| waited > wait(h)) {
                let state = if ready { "ready" } else { "running" };
                for h in hooks {
                    fail(
                        h,
                        container,
                        format!(
                            "not run: the container was not {state} within {}",
                            humantime::format_duration(wait(h))
                        ),
                    );
                }
                return false;
            }
            return true;
        }
        for h in hooks {
            if stop.load(Ordering::Relaxed) {
                fail(h, container, STOPPED.into());
                continue;
            }
            if h.wait_timeout.is_some_and(|w| began.elapsed() > w) {
                fail(
                    h,
                    container,
                    "not run: its wait timeout passed before its turn".into(),
                );
            } else if let Err(e) = super::run(exec, pod, &with_container(&h.hook, container)) {
                fail(h, container, format!("failed: {e}"));
            } else {
                continue;
            }
            if h.hook.on_error == HookErrorMode::Fail {
                stop.store(true, Ordering::Relaxed);
            }
        }
        false
    });
}

fn with_container(h: &Hook, container: &str) -> Hook {
    let mut h = h.clone();
    h.container = Some(container.to_string());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::tests::Recorder;
    use std::sync::atomic::AtomicBool;

    fn pod(annotations: Value, inits: Value) -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default", "annotations": annotations, "labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c1"}, {"name": "c2"}], "initContainers": inits}}),
            "pods",
        )
        .unwrap()
    }

    fn specs(v: Value) -> Specs {
        Specs::new(&serde_json::from_value::<Vec<RestoreResourceHookSpec>>(v).unwrap()).unwrap()
    }

    fn init_names(p: &Object) -> Vec<String> {
        p.get(&["spec", "initContainers"])
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn container(name: &str) -> Value {
        json!({"name": name, "image": "busybox", "command": ["true"]})
    }

    // Velero TestHandleRestoreHooks: restore-wait first, then the hooks, then the pod's own;
    // an annotation replaces the spec; the spec selects by the restored namespace.
    #[test]
    fn init_hooks_go_after_restore_wait_and_before_the_pods_own() {
        let s = specs(json!([{"name": "h", "includedNamespaces": ["new"],
            "postHooks": [{"init": {"initContainers": [container("hook-1"), container("hook-2")]}}]}]));
        let mut p = pod(
            json!({}),
            json!([{"name": "restore-wait"}, {"name": "init-app-step1"}, {"name": "init-app-step2"}]),
        );
        s.add_init_containers(&mut p, "new");
        assert_eq!(
            init_names(&p),
            [
                "restore-wait",
                "hook-1",
                "hook-2",
                "init-app-step1",
                "init-app-step2"
            ]
        );
        // The namespace before mapping does not select it.
        let mut p = pod(json!({}), json!([{"name": "own"}]));
        s.add_init_containers(&mut p, "default");
        assert_eq!(init_names(&p), ["own"]);
        // An annotation: one container, named after the pod when unnamed, its command a
        // JSON array or one word.
        let mut p = pod(
            json!({"init.hook.restore.velero.io/container-image": "nginx",
                "init.hook.restore.velero.io/command": r#"["a","b","c"]"#}),
            json!([]),
        );
        s.add_init_containers(&mut p, "new");
        let inits = p.get(&["spec", "initContainers"]).unwrap();
        assert_eq!(inits[0]["image"], "nginx");
        assert_eq!(inits[0]["command"], json!(["a", "b", "c"]));
        assert!(inits[0]["name"]
            .as_str()
            .unwrap()
            .starts_with("restore-init-"));
        assert_eq!(inits.as_array().unwrap().len(), 1, "the spec is replaced");
        // No image: no annotation hook; an empty command: the image's entrypoint.
        let mut p = pod(
            json!({"init.hook.restore.velero.io/container-image": "nginx",
                "init.hook.restore.velero.io/container-name": "x",
                "init.hook.restore.velero.io/command": ""}),
            json!([]),
        );
        s.add_init_containers(&mut p, "other");
        assert_eq!(
            p.get(&["spec", "initContainers"]).unwrap(),
            &json!([{"name": "x", "image": "nginx"}])
        );
    }

    // Velero TestValidateContainer.
    #[test]
    fn init_containers_need_a_name_an_image_and_a_command() {
        for c in [
            json!({"image": "i", "command": ["c"]}),
            json!({"name": "n", "command": ["c"]}),
            json!({"name": "n", "image": "i"}),
            json!({"name": "n", "image": "i", "command": []}),
        ] {
            let v = json!([{"name": "h", "postHooks": [{"init": {"initContainers": [c]}}]}]);
            let e = Specs::new(&serde_json::from_value::<Vec<RestoreResourceHookSpec>>(v).unwrap())
                .unwrap_err();
            assert_eq!(e, format!("restore hook \"h\": {INVALID_INIT_CONTAINER}"));
        }
    }

    // Velero TestGetPodExecRestoreHookFromAnnotations and TestGroupRestoreExecHooks.
    #[test]
    fn exec_hooks_from_annotations_or_the_spec() {
        let s = specs(json!([
            {"name": "hook1", "postHooks": [
                {"exec": {"container": "c1", "command": ["foo"], "onError": "Fail", "execTimeout": "1s", "waitTimeout": "1m"}},
                {"init": {"initContainers": [container("i")]}},
                {"exec": {"command": ["bar"], "waitForReady": true}}]},
            {"name": "other-ns", "includedNamespaces": ["other"], "postHooks": [{"exec": {"command": ["no"]}}]}]));
        let p = pod(json!({}), json!([]));
        let (hooks, w) = s.exec_hooks_of(&p, "default");
        assert!(w.is_empty());
        assert_eq!(hooks.len(), 2);
        assert_eq!(
            hooks[0],
            ExecHook {
                hook: Hook {
                    source: Source::Spec {
                        name: "hook1".into(),
                        index: 0
                    },
                    container: Some("c1".into()),
                    command: vec!["foo".into()],
                    on_error: HookErrorMode::Fail,
                    timeout: Duration::from_secs(1),
                },
                wait_timeout: Some(Duration::from_secs(60)),
                wait_for_ready: false,
            }
        );
        assert_eq!(
            (
                &hooks[1].hook.source,
                hooks[1].hook.on_error,
                hooks[1].hook.timeout,
                hooks[1].wait_for_ready
            ),
            (
                &Source::Spec {
                    name: "hook1".into(),
                    index: 2
                },
                HookErrorMode::Continue,
                Duration::from_secs(30),
                true
            )
        );
        let p = pod(
            json!({"post.hook.restore.velero.io/command": r#"["a","b"]"#,
                "post.hook.restore.velero.io/exec-timeout": "45s",
                "post.hook.restore.velero.io/wait-timeout": "none",
                "post.hook.restore.velero.io/wait-for-ready": "maybe"}),
            json!([]),
        );
        let (hooks, w) = s.exec_hooks_of(&p, "default");
        assert_eq!(hooks.len(), 1, "the annotation replaces the spec");
        let h = &hooks[0];
        assert_eq!(
            (
                &h.hook.command,
                h.hook.timeout,
                h.wait_timeout,
                h.wait_for_ready,
                &h.hook.container
            ),
            (
                &vec!["a".to_string(), "b".into()],
                Duration::from_secs(45),
                None,
                false,
                &None
            )
        );
        assert_eq!(w.len(), 2, "{w:?}");
    }

    fn hook(container: Option<&str>, cmd: &str, on_error: HookErrorMode) -> ExecHook {
        ExecHook {
            hook: Hook {
                source: Source::Spec {
                    name: "h".into(),
                    index: 0,
                },
                container: container.map(str::to_string),
                command: vec![cmd.into()],
                on_error,
                timeout: Duration::from_secs(1),
            },
            wait_timeout: None,
            wait_for_ready: false,
        }
    }

    fn with_status(statuses: Value) -> Object {
        let mut p = pod(json!({}), json!([]));
        p.map_at_mut(&[]).insert(
            "status".into(),
            json!({"phase": "Running", "containerStatuses": statuses}),
        );
        p
    }

    // Velero TestWaitExecHandleHooks and TestIsContainerUp: hooks wait for their container;
    // a Fail hook stops the rest; a container the pod lacks fails at once (not a hang,
    // Velero #9749); a wait that is over fails the hook without running it.
    #[test]
    fn exec_hooks_wait_for_their_container_and_stop_after_a_fail() {
        let running = json!({"running": {}});
        let rec = Recorder::default();
        let stop = AtomicBool::new(false);
        // c2 comes up on the third look.
        let looks = std::sync::atomic::AtomicUsize::new(0);
        let read = || {
            let n = looks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let c2 = if n >= 2 {
                running.clone()
            } else {
                json!({"waiting": {}})
            };
            Some(with_status(json!([
                {"name": "c1", "state": running, "ready": false},
                {"name": "c2", "state": c2, "ready": true}])))
        };
        let hooks = [
            hook(None, "first", HookErrorMode::Continue),
            hook(Some("c2"), "later", HookErrorMode::Continue),
            hook(Some("nope"), "x", HookErrorMode::Continue),
            hook(None, "fail", HookErrorMode::Continue),
        ];
        let ran = run_exec_hooks(
            &rec,
            &read,
            "default/p",
            &hooks,
            Duration::from_secs(60),
            &stop,
        );
        assert_eq!(*rec.0.lock().unwrap(), ["c1:first", "c1:fail", "c2:later"]);
        assert_eq!(
            ran.tally,
            Tally {
                attempted: 4,
                failed: 2
            }
        );
        assert_eq!(
            ran.errors,
            [
                "restore hook h in container nope of pod default/p not run: the pod has no such container; name one of its containers",
                "restore hook h in container c1 of pod default/p failed: command terminated with exit code 1: it broke",
            ]
        );
        assert!(!stop.load(std::sync::atomic::Ordering::Relaxed));

        // A Fail hook that fails stops the rest, here and in other pods.
        let rec = Recorder::default();
        let all_up = || {
            Some(with_status(json!([
                {"name": "c1", "state": running, "ready": true},
                {"name": "c2", "state": running, "ready": true}])))
        };
        let hooks = [
            hook(None, "fail", HookErrorMode::Fail),
            hook(None, "after", HookErrorMode::Continue),
        ];
        let ran = run_exec_hooks(
            &rec,
            &all_up,
            "default/p",
            &hooks,
            Duration::from_secs(60),
            &stop,
        );
        assert_eq!(*rec.0.lock().unwrap(), ["c1:fail"]);
        assert_eq!(
            ran.tally,
            Tally {
                attempted: 2,
                failed: 2
            }
        );
        assert!(ran.errors[1].ends_with(STOPPED));
        assert!(stop.load(std::sync::atomic::Ordering::Relaxed));

        // A container that never comes up: its hooks fail when their wait is over; a
        // ready wait wants the container ready.
        let stop = AtomicBool::new(false);
        let rec = Recorder::default();
        let mut h = hook(Some("c1"), "x", HookErrorMode::Continue);
        h.wait_for_ready = true;
        h.wait_timeout = Some(Duration::from_millis(300));
        let never_ready = || {
            Some(with_status(
                json!([{"name": "c1", "state": running, "ready": false}]),
            ))
        };
        let ran = run_exec_hooks(
            &rec,
            &never_ready,
            "default/p",
            &[h],
            Duration::from_secs(60),
            &stop,
        );
        assert!(rec.0.lock().unwrap().is_empty());
        assert_eq!(
            ran.errors,
            ["restore hook h in container c1 of pod default/p not run: the container was not ready within 300ms"]
        );
        // A pod that is gone.
        let ran = run_exec_hooks(
            &rec,
            &|| None,
            "default/p",
            &[hook(None, "x", HookErrorMode::Continue)],
            Duration::from_secs(60),
            &stop,
        );
        assert!(
            ran.errors[0].ends_with("not run: the pod was deleted first"),
            "{:?}",
            ran.errors
        );
    }
}
