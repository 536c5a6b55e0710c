//! The work of one Backup object, as Velero's backup controller does it: validate it
//! (`FailedValidation` with the reasons), mark it `InProgress`, read the cluster, store the
//! backup in its location's repository, and end `Completed`, `PartiallyFailed` or `Failed`
//! with Velero's status fields. Status is written with merge patches of `status` only, so
//! whatever else the object holds (an operator's labels, fields cairn does not know) stays.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use repo_core::OpenOptions;
use repo_k8s::backup::{BackupOptions, FORMAT_VERSION};
use repo_k8s::cluster::Cluster;
use repo_k8s::control::{Control, Progress};
use repo_k8s::hooks::backup as hooks;

use crate::events::Level;
use repo_k8s::filter::{BackupFilter, Filter};
use repo_k8s::velero::{
    resource, Backup, BackupPhase, BackupStorageLocation, BackupStorageLocationAccessMode,
    BackupStorageLocationPhase,
};
use serde_json::{json, Value};

pub use repo_k8s::velero::go_duration;

/// The failure reason of a cancelled backup or restore.
pub const CANCELLED: &str = "cancelled: its object was deleted, or a DeleteBackupRequest named it, while it ran; nothing of it was committed to the repository";

/// Velero's default TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(720 * 3600);

/// What the backup controller needs.
pub struct Controller<'a> {
    pub cluster: &'a Cluster,
    /// The server's namespace: its Backups, locations and Secrets.
    pub namespace: String,
    pub open_options: OpenOptions,
    /// The time now, RFC 3339 (a seam for tests).
    pub now: &'a (dyn Fn() -> String + Sync),
    /// Repositories unlocked so far.
    pub unlocked: crate::repository::Unlocked,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Files prepared for DownloadRequests, and restores' logs and results.
    pub downloads: Arc<crate::downloads::Downloads>,
    pub health: Arc<crate::http::Health>,
    /// Velero's `--default-volumes-to-fs-backup`: for Backups that do not say.
    pub default_volumes_to_fs_backup: bool,
    /// Velero's `--default-snapshot-move-data`: for Backups that do not set
    /// snapshotMoveData.
    pub default_snapshot_move_data: bool,
    /// Velero's `--fs-backup-timeout`: how long a backup waits for its pod volumes.
    pub fs_backup_timeout: Duration,
    /// The image of the `restore-wait` init container of restored pods (one with
    /// `/node-agent`: cairn's).
    pub restore_helper_image: String,
}

/// cairn's image (both binaries), as deploy/ installs it.
pub const DEFAULT_IMAGE: &str = "ghcr.io/cairn-backup/cairn:0.1.0";

impl<'a> Controller<'a> {
    /// The controller of the Velero objects in `namespace`.
    pub fn new(
        cluster: &'a Cluster,
        namespace: &str,
        open_options: OpenOptions,
        now: &'a (dyn Fn() -> String + Sync),
    ) -> Controller<'a> {
        Controller {
            cluster,
            namespace: namespace.to_string(),
            open_options,
            now,
            unlocked: Default::default(),
            metrics: Default::default(),
            downloads: Default::default(),
            health: Default::default(),
            default_volumes_to_fs_backup: false,
            default_snapshot_move_data: false,
            fs_backup_timeout: Duration::from_secs(4 * 3600),
            restore_helper_image: DEFAULT_IMAGE.into(),
        }
    }
}

impl Controller<'_> {
    /// What the HTTP port serves.
    pub fn http_shared(&self) -> crate::http::Shared {
        crate::http::Shared {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            downloads: self.downloads.clone(),
        }
    }

    /// Runs `backup` if it is waiting (phase empty or `New`); returns the phase it ended in,
    /// or `None` if it was not one to run.
    pub fn run(&self, backup: &Backup) -> Option<BackupPhase> {
        self.run_cancellable(backup, &Arc::default())
    }

    /// [`Controller::run`], stopped once `cancel` is set: the backup then ends `Failed`
    /// (if its object still exists) and commits nothing.
    pub fn run_cancellable(
        &self,
        backup: &Backup,
        cancel: &Arc<AtomicBool>,
    ) -> Option<BackupPhase> {
        let phase = backup.status.as_ref().and_then(|s| s.phase);
        if !matches!(phase, None | Some(BackupPhase::New)) {
            return None;
        }
        let name = &backup.metadata.name;
        let schedule = schedule_of(&backup.metadata);
        let m = &self.metrics;
        m.inc("velero_backup_attempt_total", schedule);
        let (location, mut problems) = self.validate(backup);
        let workflow = match self.workflow_of(&backup.metadata) {
            Ok(w) => w.filter(|w| !w.backup.is_empty()),
            Err(e) => {
                problems.push(e);
                None
            }
        };
        let Some(location) = location.filter(|_| problems.is_empty()) else {
            self.patch(
                name,
                json!({"phase": "FailedValidation", "validationErrors": problems}),
            );
            m.inc("velero_backup_validation_failure_total", schedule);
            tracing::warn!(backup = %name, problems = %problems.join("; "), "backup failed validation");
            self.event(
                backup,
                Level::Warning,
                "FailedValidation",
                &problems.join("; "),
            );
            return Some(BackupPhase::FailedValidation);
        };
        let ttl = ttl(backup).expect("validated");
        let start = (self.now)();
        let expiration = repo_core::time::parse_rfc3339(&start).map(|t| kube_time(t + ttl));
        // As Velero: the location is recorded in the spec and a label.
        let r = resource::<Backup>();
        let loc = &location.metadata.name;
        let _ = self.cluster.merge_patch(
            &r,
            Some(&self.namespace),
            name,
            &json!({"metadata": {"labels": {"velero.io/storage-location": repo_k8s::restore::valid_label_value(loc)}},
                "spec": {"storageLocation": loc}}),
        );
        self.patch(
            name,
            json!({"phase": "InProgress", "startTimestamp": start, "expiration": expiration,
                "version": 1, "formatVersion": FORMAT_VERSION}),
        );
        let write = |p: Progress| {
            self.patch(
                name,
                json!({"progress": {"totalItems": p.total, "itemsBackedUp": p.done}}),
            )
        };
        tracing::info!(backup = %name, location = %loc, "backup started");
        let began = std::time::Instant::now();
        let writers = crate::progress::Writers {
            progress: &write,
            phase: &|_| {},
        };
        let ended = crate::progress::reporting(cancel, &writers, |control| match &workflow {
            None => self.back_up(backup, &location, ttl, control),
            Some(w) => self.back_up_in_steps(backup, w, &location, ttl, control),
        });
        let done = (self.now)();
        m.observe(
            "velero_backup_duration_seconds",
            schedule,
            began.elapsed().as_secs_f64(),
        );
        match ended {
            Ok(out) => {
                let phase = out.phase();
                // Its sizes are written before its phase says it ended: whoever sees the
                // phase finds them.
                let _ = self.cluster.merge_patch(
                    &resource::<Backup>(),
                    Some(&self.namespace),
                    name,
                    &json!({"metadata": {"annotations": {
                        crate::api::operations::NEW_BYTES_ANNOTATION: out.new_bytes.to_string(),
                        crate::api::operations::STORED_BYTES_ANNOTATION: out.stored_bytes.to_string()}}}),
                );

                let items = out.items as i64;
                let (warnings, errors) = (out.results.warnings.len(), out.results.errors.len());
                self.patch(
                    name,
                    json!({"phase": phase.to_string(), "completionTimestamp": done,
                        "warnings": warnings, "errors": errors,
                        "progress": {"totalItems": items, "itemsBackedUp": items}}),
                );
                let counter = match phase {
                    BackupPhase::Completed => "velero_backup_success_total",
                    _ => "velero_backup_partial_failure_total",
                };
                m.inc(counter, schedule);
                if warnings > 0 {
                    m.inc("velero_backup_warning_total", schedule);
                }
                m.set("velero_backup_items_total", schedule, items as f64);
                m.set("velero_backup_items_errors", schedule, errors as f64);
                m.set("velero_backup_last_status", schedule, 1.0);
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                m.set("velero_backup_last_successful_timestamp", schedule, unix);
                m.set(
                    "velero_backup_tarball_size_bytes",
                    schedule,
                    out.stored_bytes as f64,
                );
                m.set(
                    "cairn_backup_stored_bytes",
                    schedule,
                    out.stored_bytes as f64,
                );
                m.set("cairn_backup_new_bytes", schedule, out.new_bytes as f64);
                let summary = format!(
                    "{phase}: {items} items, {} new bytes in the repository, {warnings} warnings, {errors} errors",
                    out.new_bytes
                );
                let level = match phase {
                    BackupPhase::Completed => Level::Normal,
                    _ => Level::Warning,
                };
                tracing::info!(backup = %name, %phase, items, new_bytes = out.new_bytes, warnings, errors, seconds = began.elapsed().as_secs_f64(), "backup ended");
                self.event(backup, level, &phase.to_string(), &summary);
                Some(phase)
            }
            Err(reason) => {
                self.patch(
                    name,
                    json!({"phase": "Failed", "completionTimestamp": done, "failureReason": reason}),
                );
                m.inc("velero_backup_failure_total", schedule);
                m.set("velero_backup_last_status", schedule, 0.0);
                if reason == CANCELLED {
                    m.inc("cairn_backup_cancelled_total", schedule);
                }
                tracing::warn!(backup = %name, %reason, "backup failed");
                self.event(backup, Level::Warning, "Failed", &reason);
                Some(BackupPhase::Failed)
            }
        }
    }

    /// The location the backup goes to, and every problem with the Backup.
    fn validate(&self, backup: &Backup) -> (Option<BackupStorageLocation>, Vec<String>) {
        let mut problems = Vec::new();
        if let Err(e) = ttl(backup) {
            problems.push(e);
        }
        if let Err(e) = Filter::new(&filter(backup), &repo_k8s::Discovery::built_in()) {
            problems.extend(match e {
                repo_k8s::Error::Invalid(p) => p,
                other => vec![other.to_string()],
            });
        }
        if let Err(e) = self.resource_policies(backup) {
            problems.push(e);
        }
        let location = match self.location(backup.spec.storage_location.as_deref()) {
            Ok(l) => Some(l),
            Err(e) => {
                problems.push(e);
                None
            }
        };
        if let Some(l) = &location {
            if l.spec.access_mode == Some(BackupStorageLocationAccessMode::ReadOnly) {
                problems.push(format!(
                    "backup can't be created because backup storage location {} is currently in read-only mode",
                    l.metadata.name
                ));
            }
            let phase = l.status.as_ref().and_then(|s| s.phase);
            if phase == Some(BackupStorageLocationPhase::Unavailable) {
                let why = l.status.as_ref().map(|s| s.message.as_str()).unwrap_or("");
                problems.push(format!(
                    "backup can't be created because BackupStorageLocation {} is in Unavailable status. ({why})",
                    l.metadata.name
                ));
            }
        }
        (location, problems)
    }

    /// The resource policies the Backup's `spec.resourcePolicy` names (Velero's
    /// ConfigMap, in the server's namespace), read and checked; `None` without one.
    pub(crate) fn resource_policies(
        &self,
        backup: &Backup,
    ) -> Result<Option<repo_k8s::resource_policy::ResourcePolicies>, String> {
        let Some(r) = &backup.spec.resource_policy else {
            return Ok(None);
        };
        if !r.kind.eq_ignore_ascii_case("configmap") {
            return Err(format!(
                "resource policy kind {:?} is not supported: only configmap",
                r.kind
            ));
        }
        let text = self.config_map_text(&r.name, "the Backup's spec.resourcePolicy")?;
        repo_k8s::resource_policy::ResourcePolicies::from_file_text(&text)
            .map(Some)
            .map_err(|e| {
                format!(
                    "resource policies in ConfigMap {}/{}: {e}",
                    self.namespace, r.name
                )
            })
    }

    /// The repository of `location` (see [`crate::repository::open`]).
    pub(crate) fn open_repository(
        &self,
        location: &BackupStorageLocation,
    ) -> Result<repo_core::IndexedRepository, String> {
        crate::repository::open(
            self.cluster,
            location,
            &self.namespace,
            &self.open_options,
            &self.unlocked,
        )
    }

    /// The named location, or the default one.
    pub(crate) fn location(&self, name: Option<&str>) -> Result<BackupStorageLocation, String> {
        let r = resource::<BackupStorageLocation>();
        let all = self
            .cluster
            .list(&r, Some(&self.namespace))
            .map_err(|e| e.to_string())?;
        let mut locations = Vec::new();
        for o in all {
            let l: BackupStorageLocation =
                serde_json::from_value(Value::Object(o.as_value().clone())).map_err(|e| {
                    format!("backup storage location {}: not readable: {e}", o.name())
                })?;
            locations.push(l);
        }
        match name {
            Some(n) => locations.into_iter().find(|l| l.metadata.name == n).ok_or_else(|| {
                format!("a backup storage location named {n:?} does not exist in namespace {}; create it, or name an existing one", self.namespace)
            }),
            None => locations.into_iter().find(|l| l.spec.default).ok_or_else(|| {
                format!("no storage location was named and none in namespace {} is the default (spec.default: true); name one, or make one the default", self.namespace)
            }),
        }
    }

    fn back_up(
        &self,
        backup: &Backup,
        location: &BackupStorageLocation,
        ttl: Duration,
        control: Control,
    ) -> Result<repo_k8s::backup::BackupOutcome, String> {
        let repo = self.open_repository(location)?;
        let mut contents = self.cluster.read_all_spooled().map_err(|e| e.to_string())?;
        if control.cancelled() {
            return Err(CANCELLED.into());
        }
        // The pods' hooks and volumes, after the objects were listed and before they are
        // stored: pre hooks, then each pod's volumes, then its post hooks as soon as its
        // volumes were read (not before: Velero #8159).
        let d = &contents.discovery;
        let mut pods = self.pods_of(backup, d)?;
        let no_hooks = Vec::new();
        let specs = backup
            .spec
            .hooks
            .as_ref()
            .and_then(|h| h.resources.as_ref())
            .unwrap_or(&no_hooks);
        let mut hooks = hooks::Hooks::new(hooks::Specs::new(specs, d)?, self.cluster);
        // A pod whose pre hooks failed with onError Fail is left out, volumes included.
        let mut left_out = std::collections::BTreeSet::new();
        pods.retain(|pod| {
            if !hooks.run(pod, hooks::Phase::Pre) {
                return true;
            }
            let ns = pod.namespace().unwrap_or_default().to_string();
            hooks.errors.push((ns.clone(), format!(
                "pod {ns}/{} was left out of the backup (its volumes too): a pre hook with onError Fail failed", pod.name())));
            left_out.insert((ns, pod.name().to_string()));
            false
        });
        let policies = self.resource_policies(backup)?;
        let volume_policies = match &policies {
            Some(p) => Some(
                repo_k8s::volume_policy::VolumePolicies::parse(&p.volume_policies)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let excluded = crate::pod_volumes::claims_excluded(&filter(backup), d);
        let mut located = backup.clone();
        located.spec.storage_location = Some(location.metadata.name.clone());
        let volumes = self.back_up_pod_volumes(
            &located,
            &pods,
            excluded,
            volume_policies.as_ref(),
            &|| control.cancelled(),
            &mut |pod| {
                hooks.run(pod, hooks::Phase::Post);
            },
        );
        self.patch(
            &backup.metadata.name,
            json!({"hookStatus": hooks.tally.status()}),
        );
        for why in &volumes.skipped {
            tracing::info!(backup = %backup.metadata.name, "pod volume not backed up: {why}");
        }
        if control.cancelled() {
            return Err(CANCELLED.into());
        }
        let mut errors = hooks.errors;
        errors.extend(volumes.errors.iter().cloned());
        let mut warnings = hooks.warnings;
        warnings.extend(volumes.warnings.iter().cloned());
        // The Backup as asked for (no status, no server fields), kept beside the backup.
        let mut asked = backup.clone();
        asked.status = None;
        asked.metadata = repo_k8s::velero::ObjectMeta {
            name: backup.metadata.name.clone(),
            namespace: backup.metadata.namespace.clone(),
            labels: backup.metadata.labels.clone(),
            annotations: backup.metadata.annotations.clone(),
            ..Default::default()
        };
        asked.spec.storage_location = Some(location.metadata.name.clone());
        let opts = BackupOptions {
            filter: filter(backup),
            ttl: Some(ttl),
            discovery: contents.discovery,
            backup_object: Some(serde_json::to_vec(&asked).expect("a Backup is JSON")),
            extra_files: volumes_files(&volumes),
            errors,
            warnings,
            resource_policies: policies,
            left_out_pods: left_out,
            control,
            ..Default::default()
        };
        let name = &backup.metadata.name;
        let spooled = &mut contents.objects;
        let (inventory, source) = (&spooled.inventory, &mut spooled.source);
        match repo_k8s::backup::backup_from(&repo, name, inventory, source, &opts) {
            Ok(out) => Ok(out),
            Err(repo_k8s::Error::Cancelled) => Err(CANCELLED.into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// [`Controller::back_up`] as the objects step of the Backup's workflow (see
    /// [`crate::workflow`]); `Err` is the failure reason to record.
    fn back_up_in_steps(
        &self,
        backup: &Backup,
        w: &crate::workflow::Workflow,
        location: &BackupStorageLocation,
        ttl: Duration,
        control: Control,
    ) -> Result<repo_k8s::backup::BackupOutcome, String> {
        let mut outcome = None;
        let mut objects = |deadline| {
            let bounded = control.until(deadline);
            match self.back_up(backup, location, ttl, bounded.clone()) {
                Ok(o) => {
                    let what = format!("{} items, {} new bytes", o.items, o.new_bytes);
                    outcome = Some(o);
                    Ok(what)
                }
                Err(_) if bounded.timed_out() && !control.cancelled() => Err(String::from(
                    "the backup of the objects did not finish in time; nothing of it was committed",
                )
                .into()),
                Err(e) => Err(e.into()),
            }
        };
        let cancelled = || control.cancelled();
        let mut located = backup.clone();
        located.spec.storage_location = Some(location.metadata.name.clone());
        let host_paths = crate::workflow::run::HostPaths::Backup(&located);
        let continued =
            self.run_workflow(backup, "backup", w, host_paths, &cancelled, &mut objects)?;
        let mut out = outcome.ok_or("the workflow has no objects step")?;
        for c in continued {
            out.results.errors.add("", c);
        }
        Ok(out)
    }

    /// Merges `status` into the Backup's status.
    fn patch(&self, name: &str, status: Value) {
        let r = resource::<Backup>();
        // A refused status write leaves the Backup as it was; the next start or run sees it.
        let _ = self.cluster.merge_patch(
            &r,
            Some(&self.namespace),
            name,
            &json!({ "status": status }),
        );
    }
}

/// The PodVolumeBackups and DataUploads of a backup as files stored beside it (none
/// without any).
fn volumes_files(v: &crate::pod_volumes::PodVolumes) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    if !v.ended.is_empty() {
        let json = serde_json::to_vec(&v.ended).expect("JSON");
        files.push((
            crate::pod_volumes::POD_VOLUME_BACKUPS_FILE.to_string(),
            json,
        ));
    }
    if !v.uploads.is_empty() {
        let json = serde_json::to_vec(&v.uploads).expect("JSON");
        files.push((crate::snapshot_move::DATA_UPLOADS_FILE.to_string(), json));
    }
    files
}

/// The schedule an object came from (its `velero.io/schedule-name` label; empty for one
/// made by hand), as Velero labels its metrics.
pub fn schedule_of(meta: &repo_k8s::velero::ObjectMeta) -> &str {
    meta.labels
        .get(crate::restores::SCHEDULE_NAME_LABEL)
        .map(String::as_str)
        .unwrap_or("")
}

/// A time as Kubernetes writes `metav1.Time`: RFC 3339 to the second.
pub fn kube_time(t: std::time::SystemTime) -> String {
    let full = repo_core::time::format_rfc3339(t);
    match full.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => full,
    }
}

/// The Backup's filters, as cairn's backup reads them.
pub fn filter(b: &Backup) -> BackupFilter {
    let s = &b.spec;
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    BackupFilter {
        include_namespaces: list(&s.included_namespaces),
        exclude_namespaces: list(&s.excluded_namespaces),
        include_resources: list(&s.included_resources),
        exclude_resources: list(&s.excluded_resources),
        include_cluster_resources: s.include_cluster_resources,
        include_cluster_scoped_resources: list(&s.included_cluster_scoped_resources),
        exclude_cluster_scoped_resources: list(&s.excluded_cluster_scoped_resources),
        include_namespace_scoped_resources: list(&s.included_namespace_scoped_resources),
        exclude_namespace_scoped_resources: list(&s.excluded_namespace_scoped_resources),
        label_selector: s.label_selector.clone(),
        or_label_selectors: s.or_label_selectors.clone().unwrap_or_default(),
    }
}

/// The Backup's TTL (Velero's default 720h when unset).
pub fn ttl(b: &Backup) -> Result<Duration, String> {
    match b.spec.ttl.as_deref() {
        None | Some("") => Ok(DEFAULT_TTL),
        Some(t) => go_duration(t)
            .ok_or_else(|| format!("invalid ttl {t:?}: expected a duration such as 720h0m0s")),
    }
}

/// Whether periodic work is due at `now`: never done (`last` none), or `period` (a Go
/// duration, `default` when unset; `0s`: never) has passed since.
pub fn is_due(
    period: Option<&str>,
    default: Duration,
    last: Option<&str>,
    now: std::time::SystemTime,
) -> bool {
    let every = match period {
        None | Some("") => default,
        Some(p) => go_duration(p).unwrap_or(default),
    };
    if every.is_zero() {
        return false;
    }
    let last = last.and_then(repo_core::time::parse_rfc3339);
    last.is_none_or(|t| t + every <= now)
}
