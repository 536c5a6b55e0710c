//! The work of one Restore object, as Velero's restore controller does it: validate it
//! (`FailedValidation` with every reason, in Velero's words), mark it `InProgress`, plan
//! the backup's restore with the Restore's filters, mappings and policies, create the
//! objects, and end `Completed`, `PartiallyFailed` or `Failed` with Velero's status fields.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use repo_k8s::control::{Control, Progress};
use repo_k8s::hooks::restore as hooks;
use repo_k8s::hooks::Tally;

use repo_k8s::phases::{ExistingResourcePolicy, ResolvedPhase};
use repo_k8s::restore::RestoreOptions;
use repo_k8s::restore_filter::RestoreFilter;
use repo_k8s::velero::{resource, Backup, BackupPhase, Restore, RestorePhase};
use serde_json::{json, Value};

use crate::backups::Controller;
use crate::events::Level;

/// Annotation naming the ConfigMap (in the server's namespace) of a phased restore's
/// phases, in the format of `cairn-server restore --phases`.
pub const PHASES_ANNOTATION: &str = "cairn.io/phases";
/// Annotation saying which phase a phased restore is in (`done` at the end).
pub const CURRENT_PHASE_ANNOTATION: &str = "cairn.io/current-phase";
/// Annotation with each phase's report so far: counts and its gate (`passed`, `failed:
/// …`, `not run`, `none`), as JSON.
pub const PHASE_REPORT_ANNOTATION: &str = "cairn.io/phase-report";

/// Label Velero puts on the Backups a Schedule makes.
pub const SCHEDULE_NAME_LABEL: &str = "velero.io/schedule-name";

impl Controller<'_> {
    /// Runs `restore` if it is waiting (phase empty or `New`); returns the phase it ended
    /// in, or `None` if it was not one to run.
    pub fn run_restore(&self, restore: &Restore) -> Option<RestorePhase> {
        self.run_restore_cancellable(restore, &Arc::default())
    }

    /// [`Controller::run_restore`], stopped between objects once `cancel` is set (what
    /// was created stays; the Restore ends `Failed` if it still exists).
    pub fn run_restore_cancellable(
        &self,
        restore: &Restore,
        cancel: &Arc<AtomicBool>,
    ) -> Option<RestorePhase> {
        let phase = restore.status.as_ref().and_then(|s| s.phase);
        if !matches!(phase, None | Some(RestorePhase::New)) {
            return None;
        }
        let name = &restore.metadata.name;
        // Velero labels restore metrics with the Restore's schedule.
        let schedule = restore.spec.schedule_name.as_deref().unwrap_or("");
        let m = &self.metrics;
        m.inc("velero_restore_attempt_total", schedule);
        let (backup, mut problems) = self.validate_restore(restore);
        let workflow = match self.workflow_of(&restore.metadata) {
            Ok(w) => w.filter(|w| !w.restore.is_empty()),
            Err(e) => {
                problems.push(e);
                None
            }
        };
        let Some(backup) = backup.filter(|_| problems.is_empty()) else {
            self.patch_restore(
                name,
                json!({"phase": "FailedValidation", "validationErrors": problems}),
            );
            m.inc("velero_restore_validation_failed_total", schedule);
            tracing::warn!(restore = %name, problems = %problems.join("; "), "restore failed validation");
            self.event(
                restore,
                Level::Warning,
                "FailedValidation",
                &problems.join("; "),
            );
            return Some(RestorePhase::FailedValidation);
        };
        self.patch_restore(
            name,
            json!({"phase": "InProgress", "startTimestamp": (self.now)()}),
        );
        let write = |p: Progress| {
            self.patch_restore(
                name,
                json!({"progress": {"totalItems": p.total, "itemsRestored": p.done}}),
            )
        };
        let phase_written = |(current, reports): &crate::progress::PhaseState| {
            self.annotate_phases(name, current, reports)
        };
        let writers = crate::progress::Writers {
            progress: &write,
            phase: &phase_written,
        };
        let ended = crate::progress::reporting(cancel, &writers, |control| match &workflow {
            None => self.restore_backup(restore, &backup, &control),
            Some(w) => self.restore_in_steps(restore, &backup, w, &control),
        });
        if let Ok(r) = &ended {
            if r.phases.len() > 1 {
                let reports = serde_json::to_value(&r.phases).expect("JSON");
                self.annotate_phases(name, "done", &reports);
            }
        }
        let kept = ended.as_ref().ok().cloned();
        let (phase, status) = match ended {
            Ok(r) => {
                let restored = r
                    .phases
                    .iter()
                    .map(|p| p.created + p.updated + p.unchanged)
                    .sum::<usize>();
                let total = r.phases.iter().map(|p| p.items).sum::<usize>();
                let mut status = json!({"warnings": r.warnings.len(), "errors": r.errors.len(),
                    "progress": {"totalItems": total, "itemsRestored": restored}});
                if r.phase == RestorePhase::Failed {
                    let reason = r
                        .errors
                        .messages()
                        .map(|(_, m)| m)
                        .collect::<Vec<_>>()
                        .join("; ");
                    status["failureReason"] = reason.into();
                }
                (r.phase, status)
            }
            Err(reason) => (RestorePhase::Failed, json!({"failureReason": reason})),
        };
        let mut status = status;
        status["phase"] = phase.to_string().into();
        status["completionTimestamp"] = (self.now)().into();
        let (counter, level) = match phase {
            RestorePhase::Completed => ("velero_restore_success_total", Level::Normal),
            RestorePhase::PartiallyFailed => {
                ("velero_restore_partial_failure_total", Level::Warning)
            }
            _ => ("velero_restore_failed_total", Level::Warning),
        };
        m.inc(counter, schedule);
        let summary = match status["failureReason"].as_str() {
            Some(reason) => format!("{phase}: {reason}"),
            None => format!(
                "{phase}: {} of {} items restored, {} warnings, {} errors",
                status["progress"]["itemsRestored"],
                status["progress"]["totalItems"],
                status["warnings"],
                status["errors"]
            ),
        };
        tracing::info!(restore = %name, %phase, "{summary}");
        let results = json!({"warnings": kept.as_ref().map(|r| &r.warnings), "errors": kept.as_ref().map(|r| &r.errors)});
        let mut log = format!("info: restore {name}: {summary}\n");
        if let Some(r) = &kept {
            for p in &r.phases {
                log.push_str(&format!("info: phase {:?}: {} items, {} created, {} unchanged, {} updated, {} skipped (existing), {} failed, gate {}\n",
                    p.name, p.items, p.created, p.unchanged, p.updated, p.skipped_existing, p.failed, p.gate));
            }
            log.push_str(&r.warnings.log_lines("warning"));
            log.push_str(&r.errors.log_lines("error"));
        }
        // Its log and results are kept before its phase says it ended: whoever sees the
        // phase finds them.
        self.downloads.keep_restore(name, &log, &results);
        self.patch_restore(name, status.clone());
        self.event(restore, level, &phase.to_string(), &summary);
        Some(phase)
    }

    /// The Backup the Restore restores, and every problem with the Restore.
    fn validate_restore(&self, restore: &Restore) -> (Option<Backup>, Vec<String>) {
        let spec = &restore.spec;
        let mut problems = Vec::new();
        if let Some(p) = spec
            .existing_resource_policy
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            if p.parse::<ExistingResourcePolicy>().is_err() {
                problems.push(format!("Invalid ExistingResourcePolicy: {p}"));
            }
        }
        // The filters' syntax, checked with the built-in resources (names of the backup's
        // own custom resources are resolved when it is opened, and match nothing if unknown).
        if let Err(e) = filter(restore).resolve(&repo_k8s::Discovery::built_in()) {
            problems.extend(match e {
                repo_k8s::Error::Invalid(p) => p,
                other => vec![other.to_string()],
            });
        }
        if let Err(e) = self.phases(restore, &repo_k8s::Discovery::built_in()) {
            problems.push(e);
        }
        if let Err(e) = restore_hook_specs(restore) {
            problems.push(e);
        }
        let named = |s: &Option<String>| s.as_deref().is_some_and(|n| !n.is_empty());
        let backup = match (named(&spec.backup_name), named(&spec.schedule_name)) {
            (true, false) => self.backup_object(spec.backup_name.as_deref().unwrap()),
            (false, true) => self.latest_of_schedule(spec.schedule_name.as_deref().unwrap()),
            _ => Err("Either a backup or schedule must be specified as a source for the restore, but not both".into()),
        };
        let backup = match backup {
            Ok(b) => {
                let phase = b.status.as_ref().and_then(|s| s.phase);
                if !matches!(
                    phase,
                    Some(BackupPhase::Completed | BackupPhase::PartiallyFailed)
                ) {
                    problems.push(format!(
                        "backup {:?} is in phase {}; only Completed or PartiallyFailed backups can be restored",
                        b.metadata.name,
                        phase.map(|p| p.to_string()).unwrap_or_else(|| "New".into())
                    ));
                }
                Some(b)
            }
            Err(e) => {
                problems.push(e);
                None
            }
        };
        (backup, problems)
    }

    fn backup_object(&self, name: &str) -> Result<Backup, String> {
        let r = resource::<Backup>();
        let o = self
            .cluster
            .get(&r, Some(&self.namespace), name)
            .map_err(|e| format!("Error retrieving backup: {e}"))?
            .ok_or_else(|| {
                format!("Error retrieving backup: backups.velero.io {name:?} not found")
            })?;
        serde_json::from_value(Value::Object(o.as_value().clone()))
            .map_err(|e| format!("Error retrieving backup: backup {name} is not readable: {e}"))
    }

    /// The newest Completed Backup of a Schedule (Velero: by its label, newest first).
    fn latest_of_schedule(&self, schedule: &str) -> Result<Backup, String> {
        let r = resource::<Backup>();
        let list = self
            .cluster
            .list_selected(
                &r,
                Some(&self.namespace),
                Some(&format!("{SCHEDULE_NAME_LABEL}={schedule}")),
            )
            .map_err(|_| "Unable to list backups for schedule".to_string())?;
        let mut backups: Vec<Backup> = list
            .into_iter()
            .filter_map(|o| serde_json::from_value(Value::Object(o.as_value().clone())).ok())
            .collect();
        if backups.is_empty() {
            return Err("No backups found for schedule".into());
        }
        backups.retain(|b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed));
        let start = |b: &Backup| {
            b.status
                .as_ref()
                .and_then(|s| s.start_timestamp.clone())
                .unwrap_or_default()
        };
        backups.sort_by_key(start);
        backups
            .pop()
            .ok_or_else(|| "No completed backups found for schedule".into())
    }

    fn restore_backup(
        &self,
        restore: &Restore,
        backup: &Backup,
        control: &Control,
    ) -> Result<repo_k8s::execute::RestoreResult, String> {
        let spec = &restore.spec;
        let location = self.location(backup.spec.storage_location.as_deref())?;
        let repo = self.open_repository(&location)?;
        let backup_name = &backup.metadata.name;
        let snapshot =
            repo_k8s::catalog::backup_snapshot(&repo, backup_name).map_err(|e| e.to_string())?;
        let discovery =
            repo_k8s::restore::backup_discovery(&repo, &snapshot).map_err(|e| e.to_string())?;
        let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
        let filter = filter(restore)
            .resolve(&discovery)
            .map_err(|e| e.to_string())?;
        let resolve = |n: &String| match discovery.resolve(n) {
            Ok(r) => r.group_resource(),
            Err(_) => n.clone(),
        };
        let restore_status = spec
            .restore_status
            .as_ref()
            .map(|s| list(&s.included_resources).iter().map(resolve).collect())
            .unwrap_or_default();
        let mut opts = RestoreOptions {
            backup_name: backup_name.clone(),
            restore_name: restore.metadata.name.clone(),
            namespace_mappings: spec.namespace_mapping.clone(),
            preserve_node_ports: spec.preserve_node_ports.unwrap_or(false),
            restore_status,
            filter,
            ..Default::default()
        };
        if let Some(m) = &spec.resource_modifier {
            opts.resource_modifiers = Some(self.resource_modifiers(&m.kind, &m.name)?);
        }
        opts.hooks = restore_hook_specs(restore)?;
        let volumes = crate::pod_volumes::backed_up(&repo, &snapshot)?;
        self.plan_pod_volumes(restore, &volumes, &mut opts);
        let uploads = crate::snapshot_move::moved(&repo, &snapshot)?;
        self.plan_moved_claims(restore, &uploads, &mut opts);
        let (plan, _notes) = repo_k8s::restore::plan_backup(&repo, &snapshot, &discovery, &opts)
            .map_err(|e| e.to_string())?;
        let policy = spec
            .existing_resource_policy
            .as_deref()
            .filter(|p| !p.is_empty())
            .and_then(|p| p.parse().ok());
        let phases = self
            .phases(restore, &discovery)?
            .unwrap_or_else(|| vec![ResolvedPhase::everything(policy)]);
        let mut result = repo_k8s::execute::execute(
            self.cluster,
            &plan,
            &phases,
            policy,
            TERMINATING_TIMEOUT,
            control,
        );
        if result.phase != RestorePhase::Failed {
            // The DataDownloads first: a pod whose claim they fill may also wait for its
            // pod volumes.
            let (downloads, mut errors) = self.start_downloads(restore, &uploads, &opts);
            if !volumes.is_empty() {
                errors.extend(self.restore_pod_volumes(restore, &volumes, &|| control.cancelled()));
            }
            errors.extend(self.wait_for_downloads(restore, &downloads, &|| control.cancelled()));
            if !errors.is_empty() && result.phase == RestorePhase::Completed {
                result.phase = RestorePhase::PartiallyFailed;
            }
            for (ns, e) in errors {
                result.errors.add(&ns, e);
            }
        }
        if !result.created_pods.is_empty() {
            let (tally, errors, warnings) =
                self.run_exec_hooks(&opts.hooks, &result.created_pods, control);
            self.patch_restore(
                &restore.metadata.name,
                json!({"hookStatus": tally.status()}),
            );
            if !errors.is_empty() && result.phase == RestorePhase::Completed {
                result.phase = RestorePhase::PartiallyFailed;
            }
            for (ns, e) in errors {
                result.errors.add(&ns, e);
            }
            for (ns, w) in warnings {
                result.warnings.add(&ns, w);
            }
        }
        Ok(result)
    }

    /// [`Controller::restore_backup`] as the objects step of the Restore's workflow (see
    /// [`crate::workflow`]); `Err` is the failure reason to record. A phase whose gate
    /// fails gives its own `failureReason`.
    fn restore_in_steps(
        &self,
        restore: &Restore,
        backup: &Backup,
        w: &crate::workflow::Workflow,
        control: &Control,
    ) -> Result<repo_k8s::execute::RestoreResult, String> {
        use crate::workflow::Failure;
        let mut result = None;
        let mut objects = |deadline| {
            let bounded = control.until(deadline);
            let restored = self.restore_backup(restore, backup, &bounded);
            // The phases' final report, whatever the workflow makes of the outcome.
            if let Ok(r) = &restored {
                if r.phases.len() > 1 {
                    let reports = serde_json::to_value(&r.phases).expect("JSON");
                    self.annotate_phases(&restore.metadata.name, "done", &reports);
                }
            }
            match restored {
                Ok(r) if r.phase == RestorePhase::Failed => {
                    let reason = r
                        .phases
                        .iter()
                        .find(|p| p.gate.starts_with("failed"))
                        .and_then(|p| phase_failure_reason(w, &p.name));
                    let message = r
                        .errors
                        .messages()
                        .map(|(_, m)| m)
                        .collect::<Vec<_>>()
                        .join("; ");
                    result = Some(r);
                    Err(Failure { message, reason })
                }
                Ok(r) => {
                    let restored: usize = r
                        .phases
                        .iter()
                        .map(|p| p.created + p.updated + p.unchanged)
                        .sum();
                    let what = format!(
                        "{restored} items restored, {} errors, {} warnings",
                        r.errors.len(),
                        r.warnings.len()
                    );
                    result = Some(r);
                    Ok(what)
                }
                Err(_) if bounded.timed_out() && !control.cancelled() => {
                    Err(String::from("the restore of the objects did not finish in time").into())
                }
                Err(e) => Err(e.into()),
            }
        };
        let cancelled = || control.cancelled();
        let location = self.location(backup.spec.storage_location.as_deref())?;
        let snapshot = |node: &str, path: &str| -> Result<String, String> {
            let repo = self.open_repository(&location)?;
            let filter = repo_core::SnapshotFilter {
                tags: vec![
                    format!("backup={}", backup.metadata.name),
                    format!("host-path={path}"),
                    format!("node={node}"),
                ],
                ..Default::default()
            };
            let found = repo.list_snapshots(&filter).map_err(|e| e.to_string())?;
            found
                .iter()
                .max_by(|a, b| a.1.time.cmp(&b.1.time))
                .map(|(id, _)| id.to_string())
                .ok_or_else(|| {
                    format!(
                        "backup {} holds no copy of {path} from node {node}",
                        backup.metadata.name
                    )
                })
        };
        let host_paths = crate::workflow::run::HostPaths::Restore {
            restore,
            location: location.metadata.name.clone(),
            snapshot: &snapshot,
        };
        let continued =
            self.run_workflow(restore, "restore", w, host_paths, &cancelled, &mut objects)?;
        let mut r = result.ok_or("the workflow has no objects step")?;
        for c in &continued {
            r.errors.add("", c.clone());
        }
        if !continued.is_empty() && r.phase == RestorePhase::Completed {
            r.phase = RestorePhase::PartiallyFailed;
        }
        Ok(r)
    }

    /// Runs the exec hooks of the pods the restore created, each pod's as its containers
    /// come up, the pods side by side; their tally, and `(namespace, message)` errors and
    /// warnings.
    #[allow(clippy::type_complexity)]
    fn run_exec_hooks(
        &self,
        specs: &hooks::Specs,
        pods: &[(String, String)],
        control: &Control,
    ) -> (Tally, Vec<(String, String)>, Vec<(String, String)>) {
        let resource = repo_k8s::Discovery::built_in()
            .resolve("pods")
            .expect("built in")
            .clone();
        let read =
            |ns: &str, name: &str| self.cluster.get(&resource, Some(ns), name).ok().flatten();
        // One list, not a read per pod: a restore may create thousands.
        let listed: std::collections::HashMap<(String, String), repo_k8s::Object> = self
            .cluster
            .list(&resource, None)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                (
                    (
                        p.namespace().unwrap_or_default().to_string(),
                        p.name().to_string(),
                    ),
                    p,
                )
            })
            .collect();
        let mut work = Vec::new();
        let mut warnings = Vec::new();
        for (ns, name) in pods {
            let Some(pod) = listed.get(&(ns.clone(), name.clone())) else {
                continue;
            };
            let (hooks, w) = specs.exec_hooks_of(pod, ns);
            warnings.extend(w.into_iter().map(|w| (ns.clone(), w)));
            if !hooks.is_empty() {
                work.push((ns, name, hooks));
            }
        }
        // A cancelled restore stops its hooks as a failed Fail hook does.
        let stop = std::sync::atomic::AtomicBool::new(false);
        let ran: Vec<(String, hooks::Ran)> = std::thread::scope(|s| {
            let threads: Vec<_> = work
                .iter()
                .map(|(ns, name, hooks)| {
                    let (read, stop) = (&read, &stop);
                    s.spawn(move || {
                        let id = format!("{ns}/{name}");
                        let pod = || {
                            if control.cancelled() {
                                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            read(ns, name)
                        };
                        let ran = hooks::run_exec_hooks(
                            self.cluster,
                            &pod,
                            &id,
                            hooks,
                            self.fs_backup_timeout,
                            stop,
                        );
                        (ns.to_string(), ran)
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a hook thread does not panic"))
                .collect()
        });
        let mut tally = Tally::default();
        let mut errors = Vec::new();
        for (ns, r) in ran {
            tally.add(&r.tally);
            errors.extend(r.errors.into_iter().map(|e| (ns.clone(), e)));
        }
        (tally, errors, warnings)
    }

    /// The resource modifiers of the ConfigMap a Restore names (Velero: in the Restore's
    /// namespace, kind `configmap` in any case).
    fn resource_modifiers(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<repo_k8s::modifiers::ResourceModifiers, String> {
        if !kind.eq_ignore_ascii_case("configmap") {
            return Err(format!(
                "resourceModifier kind {kind:?} is not supported; name a ConfigMap"
            ));
        }
        let ns = &self.namespace;
        let values = self
            .config_map_values(name)?
            .ok_or_else(|| format!("failed to get resource modifiers configmap {ns}/{name}"))?;
        let [text] = &values[..] else {
            return Err(format!("illegal resource modifiers {ns}/{name} configmap: its data must have exactly one key"));
        };
        repo_k8s::modifiers::ResourceModifiers::from_file_text(text).map_err(|e| {
            format!("Validation error in resource modifiers provided in configmap {ns}/{name}: {e}")
        })
    }

    /// The phases of the ConfigMap the Restore names in its `cairn.io/phases` annotation
    /// (`None` without one), resolved with `discovery`.
    fn phases(
        &self,
        restore: &Restore,
        discovery: &repo_k8s::Discovery,
    ) -> Result<Option<Vec<ResolvedPhase>>, String> {
        if let Ok(Some(w)) = self.workflow_of(&restore.metadata) {
            if let Some(p) = w
                .restore
                .iter()
                .find_map(|s| s.objects.as_ref()?.phases.clone())
            {
                let text = json!({ "phases": p }).to_string();
                return repo_k8s::phases::parse(&text, discovery)
                    .map(Some)
                    .map_err(|e| format!("the phases of the restore's workflow: {e}"));
            }
        }
        let Some(cm_name) = restore.metadata.annotations.get(PHASES_ANNOTATION) else {
            return Ok(None);
        };
        let text = self.config_map_text(cm_name, &format!("the {PHASES_ANNOTATION} annotation"))?;
        repo_k8s::phases::parse(&text, discovery)
            .map(Some)
            .map_err(|e| {
                format!(
                    "phases in ConfigMap {}/{cm_name} (annotation {PHASES_ANNOTATION}): {e}",
                    self.namespace
                )
            })
    }

    /// The single value of ConfigMap `name` in the server's namespace, which `why` names.
    pub(crate) fn config_map_text(&self, name: &str, why: &str) -> Result<String, String> {
        let ns = &self.namespace;
        let values = self.config_map_values(name)?.ok_or_else(|| {
            format!("ConfigMap {ns}/{name}, named by {why}, does not exist; create it in namespace {ns}")
        })?;
        match <[String; 1]>::try_from(values) {
            Ok([text]) => Ok(text),
            Err(_) => Err(format!(
                "ConfigMap {ns}/{name}, named by {why}: its data must have exactly one key"
            )),
        }
    }

    /// The values of ConfigMap `name` in the server's namespace; `None` if it does not
    /// exist.
    fn config_map_values(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        let cms = repo_k8s::Discovery::built_in()
            .resolve("configmaps")
            .expect("built in")
            .clone();
        let Some(cm) = self
            .cluster
            .get(&cms, Some(&self.namespace), name)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let values = cm
            .get(&["data"])
            .and_then(Value::as_object)
            .map(|d| {
                d.values()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(values))
    }

    /// Shows where a phased restore is on the Restore (annotations: Velero's status schema
    /// has no place for it, and an API server would drop unknown status fields).
    fn annotate_phases(&self, name: &str, current: &str, reports: &Value) {
        let patch = json!({"metadata": {"annotations": {
            CURRENT_PHASE_ANNOTATION: current,
            PHASE_REPORT_ANNOTATION: reports.to_string(),
        }}});
        let _ =
            self.cluster
                .merge_patch(&resource::<Restore>(), Some(&self.namespace), name, &patch);
    }

    fn patch_restore(&self, name: &str, status: Value) {
        let r = resource::<Restore>();
        let _ = self.cluster.merge_patch(
            &r,
            Some(&self.namespace),
            name,
            &json!({ "status": status }),
        );
    }
}

/// The `failureReason` the workflow's restore phases give phase `phase`.
fn phase_failure_reason(w: &crate::workflow::Workflow, phase: &str) -> Option<String> {
    let phases = w
        .restore
        .iter()
        .find_map(|s| s.objects.as_ref()?.phases.clone())?;
    phases
        .as_array()?
        .iter()
        .find(|p| p["name"] == phase)?
        .get("failureReason")?
        .as_str()
        .map(str::to_string)
}

/// The Restore's hook specs, checked.
fn restore_hook_specs(restore: &Restore) -> Result<hooks::Specs, String> {
    let specs = restore.spec.hooks.as_ref().map(|h| h.resources.as_slice());
    hooks::Specs::new(specs.unwrap_or_default())
}

/// The Restore's filters, as cairn's restore reads them.
pub fn filter(restore: &Restore) -> RestoreFilter {
    let spec = &restore.spec;
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    RestoreFilter {
        include_namespaces: list(&spec.included_namespaces),
        exclude_namespaces: list(&spec.excluded_namespaces),
        include_resources: list(&spec.included_resources),
        exclude_resources: list(&spec.excluded_resources),
        include_cluster_resources: spec.include_cluster_resources,
        label_selector: spec.label_selector.clone(),
        or_label_selectors: spec.or_label_selectors.clone().unwrap_or_default(),
    }
}

/// How long a restore waits for a terminating namespace (Velero's default).
const TERMINATING_TIMEOUT: Duration = Duration::from_secs(600);
