//! The schedule controller, as Velero's (`schedule_controller.go`): a Schedule is validated
//! (`Enabled`, or `FailedValidation` with the cron error), and when its cron time has come
//! since its last backup (or its creation, or its last skip) it creates a Backup
//! `<schedule>-YYYYMMDDhhmmss` from its template, labelled `velero.io/schedule-name`, and
//! records `lastBackup`. Missed runs are not caught up: one backup, then the next cron time.
//! `paused` schedules are left alone; `skipImmediately` skips the run due now (it is reset
//! and `lastSkipped` set).
//!
//! While one of its backups is New or InProgress a due run waits (Velero's rule, so
//! backups of one schedule never overlap). Velero does that silently (#9559); here each
//! deferred run gets a Warning Event on the Schedule, once, and is counted.

use std::collections::BTreeMap;
use std::time::SystemTime;

use repo_k8s::velero::{resource, Backup, BackupPhase, Schedule, SchedulePhase};
use serde_json::{json, Value};

use crate::backups::{kube_time, Controller};
use crate::cron::CronSchedule;
use crate::events::Level;
use crate::restores::SCHEDULE_NAME_LABEL;

/// What a round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scheduled {
    /// Backups created.
    pub created: Vec<String>,
    /// Schedules whose due run waits for a backup of theirs.
    pub deferred: Vec<String>,
    /// Schedules that failed validation.
    pub invalid: Vec<String>,
}

/// The schedule controller's memory between rounds.
#[derive(Debug, Default)]
pub struct Schedules {
    /// The server's `--schedule-skip-immediately`: for Schedules that do not say.
    pub skip_immediately: bool,
    /// Per schedule, the due time whose deferral was reported.
    reported: BTreeMap<String, SystemTime>,
    /// Deferred runs, per schedule, since the server started.
    pub deferred_runs: BTreeMap<String, u64>,
}

fn time(s: Option<&str>) -> Option<SystemTime> {
    s.and_then(repo_core::time::parse_rfc3339)
}

impl Schedules {
    /// A schedule controller; `skip_immediately` is the server's default.
    pub fn new(skip_immediately: bool) -> Schedules {
        Schedules {
            skip_immediately,
            ..Default::default()
        }
    }

    /// One round over `schedules` at `now`, with the Backups as they are.
    pub fn run(
        &mut self,
        controller: &Controller,
        now: SystemTime,
        schedules: &[Schedule],
        backups: &[Backup],
    ) -> Scheduled {
        let mut out = Scheduled::default();
        for schedule in schedules {
            if schedule.spec.paused {
                continue;
            }
            self.one(controller, now, schedule, backups, &mut out);
        }
        out
    }

    fn one(
        &mut self,
        controller: &Controller,
        now: SystemTime,
        schedule: &Schedule,
        backups: &[Backup],
        out: &mut Scheduled,
    ) {
        let name = &schedule.metadata.name;
        let status = schedule.status.clone().unwrap_or_default();
        let mut last_skipped = time(status.last_skipped.as_deref());
        let mut patch = json!({});
        if schedule
            .spec
            .skip_immediately
            .unwrap_or(self.skip_immediately)
        {
            patch["spec"] = json!({"skipImmediately": false});
            patch["status"]["lastSkipped"] = kube_time(now).into();
            last_skipped = Some(now);
        }
        // Validated every time: an Enabled Schedule may have been edited since.
        let cron = CronSchedule::parse(&schedule.spec.schedule);
        let (phase, errors) = match &cron {
            Ok(_) => (SchedulePhase::Enabled, Vec::new()),
            Err(e) => (SchedulePhase::FailedValidation, vec![e.clone()]),
        };
        if status.phase != Some(phase) || status.validation_errors != errors {
            patch["status"]["phase"] = phase.to_string().into();
            patch["status"]["validationErrors"] = if errors.is_empty() {
                Value::Null
            } else {
                json!(errors)
            };
            if phase == SchedulePhase::FailedValidation {
                controller.event(
                    schedule,
                    Level::Warning,
                    "FailedValidation",
                    &errors.join("; "),
                );
            }
        }
        if patch != json!({}) {
            controller.patch_schedule(name, &patch);
        }
        let Ok(cron) = cron else {
            out.invalid.push(name.clone());
            return;
        };
        let created = time(schedule.metadata.creation_timestamp.as_deref());
        let mut last = time(status.last_backup.as_deref()).or(created);
        if let Some(skipped) = last_skipped {
            if last.is_none_or(|l| skipped > l) {
                last = Some(skipped);
            }
        }
        let Some(due) = last.and_then(|l| cron.next_after(l)) else {
            return;
        };
        if now <= due {
            return;
        }
        let busy = backups.iter().find(|b| {
            b.metadata.labels.get(SCHEDULE_NAME_LABEL) == Some(name)
                && matches!(
                    b.status.as_ref().and_then(|s| s.phase),
                    None | Some(BackupPhase::New | BackupPhase::InProgress)
                )
        });
        if let Some(busy) = busy {
            out.deferred.push(name.clone());
            if self.reported.get(name) != Some(&due) {
                self.reported.insert(name.clone(), due);
                *self.deferred_runs.entry(name.clone()).or_default() += 1;
                controller
                    .metrics
                    .inc("cairn_schedule_deferred_runs_total", name);
                let message = format!(
                    "the run due at {} waits: backup {} of this schedule is still {}; it runs once that ends (missed runs are not caught up)",
                    kube_time(due),
                    busy.metadata.name,
                    busy.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
                );
                tracing::warn!(schedule = %name, "{message}");
                controller.event(schedule, Level::Warning, "RunDeferred", &message);
            }
            return;
        }
        let backup = backup_for(schedule, now);
        let backup_name = backup["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let made = repo_k8s::Object::from_value(backup, "backups.velero.io")
            .map_err(|e| e.to_string())
            .and_then(|o| {
                controller
                    .cluster
                    .create(&resource::<Backup>(), &o)
                    .map_err(|e| e.to_string())
            });
        match made {
            Ok(_) => {
                controller.patch_schedule(name, &json!({"status": {"lastBackup": kube_time(now)}}));
                controller.event(
                    schedule,
                    Level::Normal,
                    "BackupCreated",
                    &format!("created Backup {backup_name}"),
                );
                tracing::info!(schedule = %name, backup = %backup_name, "scheduled backup created");
                out.created.push(backup_name);
            }
            Err(e) => controller.event(
                schedule,
                Level::Warning,
                "BackupNotCreated",
                &format!(
                    "could not create Backup {backup_name}: {e}; trying again in the next round"
                ),
            ),
        }
    }
}

/// The name of the Backup schedule `schedule` makes at `at`: `<schedule>-YYYYMMDDhhmmss`,
/// in UTC.
pub fn backup_name(schedule: &str, at: SystemTime) -> String {
    let stamp: chrono::DateTime<chrono::Utc> = at.into();
    format!("{schedule}-{}", stamp.format("%Y%m%d%H%M%S"))
}

/// The Backup a schedule makes at `now` (Velero's `FromSchedule`): the template's labels
/// (else the Schedule's) and the schedule-name label, the Schedule's annotations, the
/// template as spec, and the Schedule as owner when asked.
pub fn backup_for(schedule: &Schedule, now: SystemTime) -> Value {
    let m = &schedule.metadata;
    let name = backup_name(&m.name, now);
    let mut labels = match schedule.spec.template.metadata.as_ref() {
        Some(meta) if !meta.labels.is_empty() => meta.labels.clone(),
        _ => m.labels.clone(),
    };
    labels.insert(
        SCHEDULE_NAME_LABEL.into(),
        repo_k8s::restore::valid_label_value(&m.name),
    );
    let mut metadata = json!({"name": name, "namespace": m.namespace, "labels": labels});
    if !m.annotations.is_empty() {
        metadata["annotations"] = json!(m.annotations);
    }
    if schedule.spec.use_owner_references_in_backup == Some(true) {
        metadata["ownerReferences"] = json!([{"apiVersion": "velero.io/v1", "kind": "Schedule",
            "name": m.name, "uid": m.uid, "controller": true}]);
    }
    json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": metadata,
        "spec": schedule.spec.template})
}

impl Controller<'_> {
    fn patch_schedule(&self, name: &str, patch: &Value) {
        let _ =
            self.cluster
                .merge_patch(&resource::<Schedule>(), Some(&self.namespace), name, patch);
    }
}
