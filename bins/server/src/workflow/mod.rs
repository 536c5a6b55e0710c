//! Workflows: a backup or a restore as ordered steps ([`spec`]) around the backup or restore
//! of the Kubernetes objects, as a platform team runs them (host directories through the
//! node-agents, scripts as Jobs, workloads scaled down and back, phased restores with
//! gates), each step with its own timeout, on-error policy and failure reason.
//!
//! A Backup or Restore annotated `cairn.io/workflow: <ConfigMap>` (in the server's
//! namespace, key `workflow.yaml`) runs its workflow's `backup` or `restore` steps; the
//! object itself is the operation (one source of truth): its `objects` step is the backup
//! or restore of the Kubernetes objects it specifies, the steps' states are in its
//! annotation `cairn.io/steps`, and a step that fails with `onError: Fail` makes it Failed
//! with the step's `failureReason`. Later steps are not run, except `always` ones, which get
//! the clean-up deadline, so services are put back and the outcome is recorded even when
//! the operation's own deadline has passed.

pub mod run;
pub mod spec;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use spec::{Kind, OnError, Step, Workflow};

/// Annotation naming an operation's workflow ConfigMap.
pub const WORKFLOW_ANNOTATION: &str = "cairn.io/workflow";
/// Annotation with the steps' states (JSON, [`StepReport`]s).
pub const STEPS_ANNOTATION: &str = "cairn.io/steps";
/// The ConfigMap key holding the workflow.
pub const WORKFLOW_KEY: &str = "workflow.yaml";

/// Where a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    Pending,
    Running,
    Succeeded,
    Failed,
    NotRun,
}

/// One step's state, as the annotation and the API show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: String,
    pub kind: &'static str,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// What it did, or why it failed or did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why a step failed, and the reason to record when it is not the step's own (a phase's
/// gate names its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub reason: Option<String>,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            reason: None,
        }
    }
}

/// Runs one step of an operation (the backup's or the restore's own kinds of work).
pub trait StepRunner {
    /// Runs `step` until done, failed, or `deadline`; what it did, or why it failed.
    fn run(&mut self, step: &Step, deadline: Instant) -> Result<String, Failure>;
}

/// How an operation's steps ended.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub reports: Vec<StepReport>,
    /// The operation failed: the reason to record, and what happened.
    pub failure: Option<(String, String)>,
    /// Steps that failed with `onError: Continue`.
    pub continued: Vec<String>,
}

/// The operation's limits.
pub struct Limits {
    pub deadline: Instant,
    pub cleanup: Duration,
    /// Recorded when the operation's deadline passes.
    pub timeout_reason: String,
}

/// Runs `steps` in order with `runner` (see the module); `report` is told every change
/// of the steps' states, `now` gives the time to record.
pub fn run_steps(
    steps: &[Step],
    limits: &Limits,
    runner: &mut dyn StepRunner,
    report: &dyn Fn(&[StepReport]),
    now: &dyn Fn() -> String,
) -> Outcome {
    let mut out = Outcome {
        reports: steps
            .iter()
            .map(|s| StepReport {
                name: s.name.clone(),
                kind: s.kind().as_str(),
                state: State::Pending,
                started: None,
                ended: None,
                message: None,
            })
            .collect(),
        ..Default::default()
    };
    // Set once the operation has failed or run out of time: `always` steps get until then.
    let mut cleanup_until: Option<Instant> = None;
    for (i, step) in steps.iter().enumerate() {
        let at = Instant::now();
        if out.failure.is_none() && at >= limits.deadline {
            out.failure = Some((
                limits.timeout_reason.clone(),
                format!("the operation's timeout passed before step {:?}", step.name),
            ));
        }
        if out.failure.is_some() {
            cleanup_until.get_or_insert(at + limits.cleanup);
        }
        if out.failure.is_some() && !step.always {
            out.reports[i].state = State::NotRun;
            out.reports[i].message =
                Some("an earlier step failed, or the operation's timeout passed".into());
            continue;
        }
        let step_limit = at + step.timeout.unwrap_or(spec::DEFAULT_STEP_TIMEOUT);
        let deadline = match cleanup_until {
            Some(c) => step_limit.min(c),
            None => step_limit.min(limits.deadline),
        };
        out.reports[i].state = State::Running;
        out.reports[i].started = Some(now());
        report(&out.reports);
        let ran = runner.run(step, deadline);
        let r = &mut out.reports[i];
        r.ended = Some(now());
        match ran {
            Ok(what) => {
                r.state = State::Succeeded;
                r.message = Some(what).filter(|m| !m.is_empty());
            }
            Err(Failure {
                message: why,
                reason,
            }) => {
                r.state = State::Failed;
                r.message = Some(why.clone());
                tracing::warn!(step = %step.name, %why, "workflow step failed");
                if step.on_error == OnError::Continue {
                    out.continued
                        .push(format!("step {:?} failed: {why}", step.name));
                } else if out.failure.is_none() {
                    // Out of the operation's time, not the step's own: the operation's reason.
                    let reason =
                        if Instant::now() >= limits.deadline && step_limit > limits.deadline {
                            limits.timeout_reason.clone()
                        } else {
                            reason.unwrap_or_else(|| step.reason())
                        };
                    out.failure = Some((reason, format!("step {:?}: {why}", step.name)));
                }
            }
        }
        report(&out.reports);
    }
    report(&out.reports);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs steps by name: `fail*` fails, `slow*` waits out its deadline, others succeed.
    struct Scripted(Vec<String>);

    impl StepRunner for Scripted {
        fn run(&mut self, step: &Step, deadline: Instant) -> Result<String, Failure> {
            self.0.push(step.name.clone());
            if step.name.starts_with("fail") {
                return Err(String::from("it broke").into());
            }
            if step.name.starts_with("slow") {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                return Err(String::from("timed out").into());
            }
            Ok(format!("{} done", step.name))
        }
    }

    fn steps(yaml: &str) -> Vec<Step> {
        Workflow::parse(yaml).unwrap().backup
    }

    fn limits(secs: u64) -> Limits {
        Limits {
            deadline: Instant::now() + Duration::from_secs(secs),
            cleanup: Duration::from_secs(5),
            timeout_reason: "backup-operation-timeout".into(),
        }
    }

    fn states(o: &Outcome) -> Vec<(String, State)> {
        o.reports
            .iter()
            .map(|r| (r.name.clone(), r.state))
            .collect()
    }

    #[test]
    fn a_failed_step_stops_all_but_always_steps_and_gives_its_reason() {
        let s = steps(
            r#"backup:
  - {name: ok, scale: {namespaces: [a], replicas: 0}}
  - {name: fail-soft, job: {template: {spec: {containers: [{name: c}]}}}, onError: Continue}
  - {name: fail-hard, job: {template: {spec: {containers: [{name: c}]}}}, failureReason: prehook-failed}
  - {name: objects, objects: {}}
  - {name: back, scale: {undo: ok}, always: true}"#,
        );
        let mut r = Scripted(Vec::new());
        let seen = std::sync::Mutex::new(Vec::new());
        let o = run_steps(
            &s,
            &limits(60),
            &mut r,
            &|rs| seen.lock().unwrap().push(rs.to_vec()),
            &|| "t".into(),
        );
        assert_eq!(r.0, ["ok", "fail-soft", "fail-hard", "back"]);
        assert_eq!(
            states(&o),
            [
                ("ok".into(), State::Succeeded),
                ("fail-soft".into(), State::Failed),
                ("fail-hard".into(), State::Failed),
                ("objects".into(), State::NotRun),
                ("back".into(), State::Succeeded),
            ]
        );
        assert_eq!(
            o.failure,
            Some((
                "prehook-failed".into(),
                r#"step "fail-hard": it broke"#.into()
            ))
        );
        assert_eq!(o.continued, [r#"step "fail-soft" failed: it broke"#]);
        assert!(seen
            .lock()
            .unwrap()
            .iter()
            .any(|rs| rs[0].state == State::Running));
    }

    #[test]
    fn the_operations_deadline_gives_its_own_reason_and_always_steps_still_run() {
        let s = steps(
            r#"backup:
  - {name: slow, job: {template: {spec: {containers: [{name: c}]}}}, timeout: 1h, failureReason: job-failed}
  - {name: objects, objects: {}}
  - {name: back, scale: {namespaces: [a], replicas: 1}, always: true}"#,
        );
        let mut r = Scripted(Vec::new());
        let began = Instant::now();
        let mut l = limits(0);
        l.deadline = began + Duration::from_millis(200);
        let o = run_steps(&s, &l, &mut r, &|_| {}, &|| "t".into());
        assert!(began.elapsed() < Duration::from_secs(5));
        assert_eq!(o.failure.as_ref().unwrap().0, "backup-operation-timeout");
        assert_eq!(r.0, ["slow", "back"]);
        assert_eq!(o.reports[2].state, State::Succeeded);
        // A step's own timeout gives the step's reason.
        let s = steps(
            r#"backup:
  - {name: slow, job: {template: {spec: {containers: [{name: c}]}}}, timeout: 100ms, failureReason: job-failed}
  - {name: objects, objects: {}}"#,
        );
        let o = run_steps(&s, &limits(60), &mut Scripted(Vec::new()), &|_| {}, &|| {
            "t".into()
        });
        assert_eq!(o.failure.unwrap().0, "job-failed");
    }
}
