//! The workflow file: ordered steps around a backup and a restore.
//!
//! ```yaml
//! timeout: 2h              # the whole operation (default 4h)
//! timeoutReason: backup-operation-timeout
//! cleanupTimeout: 5m       # after a failure or the deadline: `always` steps and the record
//! backup:
//!   - name: onprem
//!     hostPath: {path: /var/onprem, nodes: [node-a]}
//!     timeout: 30m
//!     failureReason: file-system-backup-failed
//!   - name: label
//!     job: {template: {spec: {containers: [{name: l, image: tools, command: [label.sh]}]}}}
//!     failureReason: prehook-failed
//!   - name: kubernetes
//!     objects: {}          # the Backup itself
//! restore:
//!   - name: stop
//!     scale: {namespaces: [shop], replicas: 0}
//!   - name: kubernetes
//!     objects: {phases: [...]}   # `cairn-server restore --phases`' format
//!   - name: start
//!     scale: {undo: stop}
//!     always: true
//! ```
//!
//! A step has exactly one kind; `onError` is `Fail` (default: the operation stops and is
//! Failed with the step's `failureReason`) or `Continue` (its failure is reported, the next
//! step runs). Steps after a failure are not run, except those marked `always`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// The whole operation's default limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
/// How long a failed or timed-out operation has to run its `always` steps and record
/// its outcome.
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_secs(300);
/// A step's default limit (within the operation's).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(3600);

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration ({e}); write e.g. 90s, 30m or 2h"
        ))
    })
}

/// A workflow file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workflow {
    /// Free-form, for people (`apiVersion`, `kind`, `metadata` are accepted and ignored).
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// The reason recorded when the whole operation runs out of time.
    #[serde(default)]
    pub timeout_reason: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub cleanup_timeout: Option<Duration>,
    #[serde(default)]
    pub backup: Vec<Step>,
    #[serde(default)]
    pub restore: Vec<Step>,
}

/// What a failed step does to the operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum OnError {
    #[default]
    Fail,
    Continue,
}

/// One step.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub on_error: OnError,
    /// Recorded on the Backup or Restore when this step fails (default
    /// `<step name>-failed`).
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Runs even after an earlier step failed or the operation's deadline passed (within
    /// the clean-up deadline): putting services back.
    #[serde(default)]
    pub always: bool,
    #[serde(default)]
    pub host_path: Option<HostPath>,
    #[serde(default)]
    pub job: Option<JobStep>,
    #[serde(default)]
    pub objects: Option<ObjectsStep>,
    #[serde(default)]
    pub scale: Option<ScaleStep>,
}

/// A directory on nodes, backed up or restored by the nodes' node-agents.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPath {
    /// An absolute path on the node.
    pub path: String,
    /// The nodes, by name.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Or the nodes a label selector picks.
    #[serde(default)]
    pub node_selector: Option<String>,
}

/// A Kubernetes Job made from a template, waited for.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobStep {
    /// Where the Job runs (default: the server's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The Job's pod template (`metadata`, `spec`), as in a Job's `spec.template`.
    pub template: Value,
    /// Tries before the Job fails (`spec.backoffLimit`, default 0).
    #[serde(default)]
    pub backoff_limit: Option<u32>,
}

/// The backup or restore of Kubernetes objects: the operation's Backup or Restore itself.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectsStep {
    /// A restore's phases, in the format of `cairn-server restore --phases` (each may
    /// carry a `failureReason` for its gate).
    #[serde(default)]
    pub phases: Option<Value>,
}

/// Workloads scaled to a number of replicas (and waited for), or put back as an earlier
/// step found them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleStep {
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Kinds to scale (default: deployments and statefulsets).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// A label selector (default: all of them).
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub replicas: Option<u32>,
    /// The name of an earlier scale step whose changes this one undoes.
    #[serde(default)]
    pub undo: Option<String>,
}

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    HostPath,
    Job,
    Objects,
    Scale,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HostPath => "hostPath",
            Kind::Job => "job",
            Kind::Objects => "objects",
            Kind::Scale => "scale",
        }
    }
}

impl Step {
    /// The step's kind (checked by [`Workflow::parse`]: exactly one).
    pub fn kind(&self) -> Kind {
        if self.host_path.is_some() {
            Kind::HostPath
        } else if self.job.is_some() {
            Kind::Job
        } else if self.scale.is_some() {
            Kind::Scale
        } else {
            Kind::Objects
        }
    }

    /// The reason recorded when it fails.
    pub fn reason(&self) -> String {
        self.failure_reason
            .clone()
            .unwrap_or_else(|| format!("{}-failed", self.name))
    }
}

impl Workflow {
    /// Reads a workflow file; every problem is listed, naming the step.
    pub fn parse(text: &str) -> Result<Workflow, Vec<String>> {
        let w: Workflow = yaml_serde::from_str(text)
            .map_err(|e| vec![format!("the workflow is not readable: {e}")])?;
        let mut problems = Vec::new();
        for (operation, steps) in [("backup", &w.backup), ("restore", &w.restore)] {
            check_steps(operation, steps, &mut problems);
        }
        match problems.is_empty() {
            true => Ok(w),
            false => Err(problems),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn cleanup_timeout(&self) -> Duration {
        self.cleanup_timeout.unwrap_or(DEFAULT_CLEANUP_TIMEOUT)
    }

    /// The reason recorded when the operation runs out of time.
    pub fn timeout_reason(&self, operation: &str) -> String {
        self.timeout_reason
            .clone()
            .unwrap_or_else(|| format!("{operation}-operation-timeout"))
    }
}

fn check_steps(operation: &str, steps: &[Step], problems: &mut Vec<String>) {
    let mut names = BTreeSet::new();
    let mut scales = BTreeSet::new();
    let mut objects = 0;
    for s in steps {
        let at = format!("{operation} step {:?}", s.name);
        if s.name.is_empty() {
            problems.push(format!("a {operation} step has no name; name every step"));
        }
        if !names.insert(s.name.clone()) {
            problems.push(format!(
                "{at}: a step of that name comes earlier; names must differ"
            ));
        }
        let kinds = [
            s.host_path.is_some(),
            s.job.is_some(),
            s.objects.is_some(),
            s.scale.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            1 => {}
            0 => problems.push(format!(
                "{at}: says nothing to do; give one of hostPath, job, objects or scale"
            )),
            _ => problems.push(format!(
                "{at}: gives more than one of hostPath, job, objects and scale; make them separate steps"
            )),
        }
        if s.objects.is_some() {
            objects += 1;
        }
        if let Some(h) = &s.host_path {
            if !h.path.starts_with('/') || h.path.split('/').any(|c| c == "..") {
                problems.push(format!(
                    "{at}: hostPath.path {:?} must be absolute, without ..",
                    h.path
                ));
            }
            if h.nodes.is_empty() == h.node_selector.is_none() {
                problems.push(format!(
                    "{at}: give either hostPath.nodes or hostPath.nodeSelector"
                ));
            }
        }
        if let Some(j) = &s.job {
            let containers = j.template["spec"]["containers"].as_array();
            if containers.is_none_or(|c| c.is_empty()) {
                problems.push(format!(
                    "{at}: job.template.spec.containers is empty; the Job needs a container to run"
                ));
            }
        }
        if let Some(o) = &s.objects {
            if operation == "backup" && o.phases.is_some() {
                problems.push(format!(
                    "{at}: phases are for restores; a backup's objects step takes none"
                ));
            }
        }
        if let Some(sc) = &s.scale {
            match (&sc.undo, sc.replicas) {
                (Some(u), None) if scales.contains(u) => {}
                (Some(u), None) => problems.push(format!(
                    "{at}: scale.undo names {u:?}, which is not an earlier scale step"
                )),
                (None, Some(_)) if !sc.namespaces.is_empty() => {}
                (None, Some(_)) => problems.push(format!(
                    "{at}: scale.namespaces is empty; name the namespaces whose workloads to scale"
                )),
                _ => problems.push(format!(
                    "{at}: give scale.replicas (with namespaces), or scale.undo naming an earlier scale step"
                )),
            }
            for k in &sc.kinds {
                if !matches!(k.as_str(), "deployments" | "statefulsets" | "replicasets") {
                    problems.push(format!(
                        "{at}: scale.kinds: {k:?} is not deployments, statefulsets or replicasets"
                    ));
                }
            }
            scales.insert(s.name.clone());
        }
    }
    if !steps.is_empty() && objects != 1 {
        problems.push(format!(
            "the {operation} steps have {objects} objects steps; exactly one is the {operation} of the Kubernetes objects"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_reads_with_its_defaults() {
        let w = Workflow::parse(
            r#"
timeout: 2h
backup:
  - name: onprem
    hostPath: {path: /var/onprem, nodes: [node-a]}
    failureReason: file-system-backup-failed
  - name: label
    job: {template: {spec: {containers: [{name: l, image: tools}]}}}
    onError: Continue
  - name: kubernetes
    objects: {}
restore:
  - name: stop
    scale: {namespaces: [shop], replicas: 0}
  - name: kubernetes
    objects: {phases: [{name: all}]}
  - name: start
    scale: {undo: stop}
    always: true
"#,
        )
        .unwrap();
        assert_eq!(w.timeout(), Duration::from_secs(7200));
        assert_eq!(w.cleanup_timeout(), DEFAULT_CLEANUP_TIMEOUT);
        assert_eq!(w.timeout_reason("restore"), "restore-operation-timeout");
        let kinds: Vec<Kind> = w.backup.iter().map(Step::kind).collect();
        assert_eq!(kinds, [Kind::HostPath, Kind::Job, Kind::Objects]);
        assert_eq!(w.backup[0].reason(), "file-system-backup-failed");
        assert_eq!(w.backup[1].reason(), "label-failed");
        assert_eq!(w.backup[1].on_error, OnError::Continue);
        assert!(w.restore[2].always);
    }

    /// The example shipped in deploy/ reads, phases and all.
    #[test]
    fn the_shipped_platform_workflow_reads() {
        let text = include_str!("../../../../deploy/workflows/platform.yaml");
        let w = Workflow::parse(text).unwrap();
        assert_eq!(w.backup.len(), 3);
        assert_eq!(w.restore.len(), 6);
        let phases = w.restore[3]
            .objects
            .as_ref()
            .unwrap()
            .phases
            .clone()
            .unwrap();
        let text = serde_json::json!({ "phases": phases }).to_string();
        let parsed = repo_k8s::phases::parse(&text, &repo_k8s::Discovery::built_in()).unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[1].phase.failure_reason.as_deref(),
            Some("Operator Pods didn't come-up")
        );
    }

    #[test]
    fn every_problem_is_named() {
        let e = Workflow::parse(
            r#"
backup:
  - name: a
  - name: a
    job: {template: {spec: {}}}
    scale: {undo: nothing}
  - name: b
    hostPath: {path: "../etc"}
restore:
  - name: s
    scale: {replicas: 0}
  - name: k
    objects: {}
  - name: k2
    objects: {}
"#,
        )
        .unwrap_err();
        let all = e.join("\n");
        for want in [
            r#"backup step "a": says nothing to do"#,
            r#"backup step "a": a step of that name comes earlier"#,
            r#"backup step "a": gives more than one of"#,
            "job.template.spec.containers is empty",
            r#"scale.undo names "nothing""#,
            r#"hostPath.path "../etc" must be absolute"#,
            "give either hostPath.nodes or hostPath.nodeSelector",
            "the backup steps have 0 objects steps",
            "scale.namespaces is empty",
            "the restore steps have 2 objects steps",
        ] {
            assert!(all.contains(want), "{want} in\n{all}");
        }
        let e = Workflow::parse("backup: [{name: a, objects: {}, timeout: soon}]").unwrap_err();
        assert!(e[0].contains(r#""soon" is not a duration"#), "{e:?}");
        let e = Workflow::parse("backup: [{name: a, objects: {}, retries: 3}]").unwrap_err();
        assert!(e[0].contains("retries"), "{e:?}");
    }
}
