//! Running a restore plan against a cluster, phase by phase.
//!
//! Velero's rules: an object that exists and is the same is left alone (under `update` it
//! gets the restore labels); one that differs is left with Velero's warning (policy unset or
//! `none`) or patched to equal the backed-up one (`update`, see [`crate::existing`]); a
//! service account is merged whatever the policy; an existing namespace is used as it is,
//! and one an item needs is created if the backup does not restore it first. Every failure
//! is an error in the namespace it concerns and the restore goes on. A phase's readiness
//! gate that times out stops the restore (phase `Failed`) and the result names the phase
//! and what was not ready.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::cluster::{Cluster, Created};
use crate::discovery::Resource;
use crate::existing;
use crate::object::Object;
use crate::phases::{ExistingResourcePolicy, Gate, ResolvedPhase, Selected};
use crate::restore::{Plan, Planned};
use crate::velero::{RestorePhase, VeleroResult};

/// What one phase did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    pub name: String,
    pub items: usize,
    pub created: usize,
    /// Existing and the same as in the backup.
    pub unchanged: usize,
    /// Existing, different, patched (`update`).
    pub updated: usize,
    /// Existing, different, left alone (`none`).
    pub skipped_existing: usize,
    pub failed: usize,
    /// `passed`, `failed: …`, `not run`, or `none`.
    pub gate: String,
}

/// Velero's restore result.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    /// `Completed`, `PartiallyFailed` (errors) or `Failed` (a gate failed, or the cluster
    /// could not be used).
    pub phase: RestorePhase,
    pub phases: Vec<PhaseReport>,
    pub warnings: VeleroResult,
    pub errors: VeleroResult,
    /// The pods the restore created (namespace, name): those whose restore hooks run.
    #[serde(skip)]
    pub created_pods: Vec<(String, String)>,
}

/// The resources a cluster serves, by `resource.group`; discovered again when a restored
/// CRD's resource is not served yet.
struct Served {
    by_gr: BTreeMap<String, Resource>,
}

impl Served {
    fn load(cluster: &Cluster) -> crate::Result<Served> {
        Ok(Served {
            by_gr: cluster
                .discover()?
                .into_iter()
                .map(|r| (r.group_resource(), r))
                .collect(),
        })
    }

    /// The resource, discovering again once when it is not known, and then for up to
    /// `patience` (a CRD created moments ago is served once the API server has set it up).
    fn find(&mut self, cluster: &Cluster, gr: &str, patience: Duration) -> Option<Resource> {
        let start = Instant::now();
        let mut reloaded = false;
        loop {
            if let Some(r) = self.by_gr.get(gr) {
                return Some(r.clone());
            }
            if reloaded {
                if start.elapsed() >= patience {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if let Ok(s) = Served::load(cluster) {
                *self = s;
            }
            reloaded = true;
        }
    }
}

/// Runs `plan` against `cluster` in `phases` (see [`crate::phases`]).
pub fn execute(
    cluster: &Cluster,
    plan: &Plan,
    phases: &[ResolvedPhase],
    default_policy: Option<ExistingResourcePolicy>,
    terminating_timeout: Duration,
    control: &crate::control::Control,
) -> RestoreResult {
    let mut result = RestoreResult {
        errors: plan.errors.clone(),
        ..Default::default()
    };
    let mut served = match Served::load(cluster) {
        Ok(s) => s,
        Err(e) => {
            result.errors.add("", format!("{e}; nothing was restored"));
            result.phase = RestorePhase::Failed;
            return result;
        }
    };
    // Items to phases: the first that takes each. A Namespace no phase takes is created
    // from the plan when an item first needs it.
    let mut assigned: Vec<Vec<&Planned>> = vec![Vec::new(); phases.len()];
    let mut namespaces = Namespaces::new(terminating_timeout);
    for item in &plan.items {
        if item.resource == "namespaces" {
            namespaces.planned.insert(item.name.clone(), item);
        }
        match phases.iter().position(|p| p.takes(item)) {
            Some(i) => assigned[i].push(item),
            None if item.resource == "namespaces" => {}
            None => result.warnings.add(
                item.namespace.as_deref().unwrap_or(""),
                format!("{}: no phase takes it; not restored", describe_item(item)),
            ),
        }
    }
    let mut classes = StorageClasses::default();
    let mut crds_restored = false;
    let mut failed_gate = false;
    let total: usize = assigned.iter().map(Vec::len).sum();
    let mut done = 0;
    let count = phases.len();
    let reports = |r: &RestoreResult| serde_json::to_value(&r.phases).expect("JSON");
    for (n, (phase, items)) in phases.iter().zip(&assigned).enumerate() {
        let name = &phase.phase.name;
        if count > 1 && !failed_gate {
            let current = format!(
                "{name} ({} of {count}): restoring {} items",
                n + 1,
                items.len()
            );
            control.phase(&current, &reports(&result));
        }
        let mut report = PhaseReport {
            name: phase.phase.name.clone(),
            items: items.len(),
            gate: "none".into(),
            ..Default::default()
        };
        if failed_gate {
            report.gate = "not run".into();
            result.phases.push(report);
            continue;
        }
        let policy = phase.phase.existing_resource_policy.or(default_policy);
        let mut restored_namespaces = BTreeSet::new();
        let mut restored_crds = Vec::new();
        for item in items {
            if control.cancelled() {
                break;
            }
            control.report(done, total);
            done += 1;
            let ns = item.namespace.as_deref().unwrap_or("");
            let Some(r) = served.find(cluster, &item.resource, patience(crds_restored)) else {
                fail(&mut result, &mut report, ns, format!("{}: the cluster does not serve {} (restore its CRD first, or install the API it belongs to)", describe_item(item), item.resource));
                continue;
            };
            if let Some(ns) = &item.namespace {
                restored_namespaces.insert(ns.clone());
            }
            // A Namespace is made sure of as an item's namespace is (Velero never compares
            // it): created, used as it is, or waited for while it terminates.
            if item.resource == "namespaces" {
                match namespaces.ensure(cluster, &mut served, &item.name) {
                    Ok(true) => report.created += 1,
                    Ok(false) => report.unchanged += 1,
                    Err(e) => fail(
                        &mut result,
                        &mut report,
                        "",
                        format!("{}: {e}", describe_item(item)),
                    ),
                }
                continue;
            }
            let ready = match &item.namespace {
                Some(ns) => namespaces.ensure(cluster, &mut served, ns).map(|_| ()),
                None => Ok(()),
            };
            let ready = ready
                .and_then(|()| classes.check(cluster, &mut served, plan, &item.storage_classes));
            let object = match ready.map(|()| item.object()) {
                Ok(o) => o,
                Err(e) => {
                    let msg = format!("{}: {e}", describe_item(item));
                    fail(&mut result, &mut report, ns, msg);
                    continue;
                }
            };
            match cluster.create(&r, &object) {
                Ok(created) => {
                    if r.kind == "CustomResourceDefinition" {
                        restored_crds.push(object.name().to_string());
                        crds_restored = true;
                    }
                    match created {
                        Created::Created(made) => {
                            report.created += 1;
                            if r.group.is_empty() && r.plural == "pods" {
                                let name = made.name().to_string();
                                result.created_pods.push((ns.to_string(), name));
                            }
                            // Velero's order: the status, then the managedFields (the status
                            // write would add a manager of its own).
                            if let Err(w) = restore_status(cluster, &r, &object, &made) {
                                result.warnings.add(ns, w);
                            }
                            match restore_managed_fields(cluster, &r, &object, &made) {
                                Ok(()) => {}
                                Err(Outcome::Warning(w)) => result.warnings.add(ns, w),
                                Err(Outcome::Error(e)) => result.errors.add(ns, e),
                            }
                        }
                        Created::AlreadyExists(existing) => {
                            let (counter, outcomes) =
                                reconcile(cluster, &r, &object, &existing, policy);
                            *counter(&mut report) += 1;
                            for o in outcomes {
                                match o {
                                    Outcome::Warning(w) => result.warnings.add(ns, w),
                                    Outcome::Error(e) => result.errors.add(ns, e),
                                }
                            }
                        }
                    }
                }
                Err(e) => fail(&mut result, &mut report, ns, e.to_string()),
            }
        }
        if control.cancelled() {
            result.errors.add(
                "",
                format!("the restore was cancelled in phase {:?}, after {done} of {total} objects; objects created before are left in the cluster", phase.phase.name),
            );
            result.phases.push(report);
            failed_gate = true;
            break;
        }
        if let Some(gate) = &phase.phase.wait {
            let current = format!(
                "{name} ({} of {count}): waiting for its gate (timeout {})",
                n + 1,
                humantime::format_duration(gate.timeout)
            );
            control.phase(&current, &reports(&result));
            match wait(
                cluster,
                &mut served,
                gate,
                &restored_namespaces,
                &restored_crds,
            ) {
                Ok(()) => report.gate = "passed".into(),
                Err(not_ready) => {
                    report.gate = format!("failed: {not_ready}");
                    result.errors.add(
                        "",
                        format!(
                            "phase {:?}: not ready after {}: {not_ready}; later phases were not run",
                            phase.phase.name,
                            humantime::format_duration(gate.timeout)
                        ),
                    );
                    failed_gate = true;
                }
            }
        }
        result.phases.push(report);
    }
    control.report(done, total);
    if count > 1 {
        control.phase("done", &reports(&result));
    }
    result.phase = if failed_gate {
        RestorePhase::Failed
    } else if !result.errors.is_empty() {
        RestorePhase::PartiallyFailed
    } else {
        RestorePhase::Completed
    };
    result
}

/// Which count of a [`PhaseReport`] an outcome adds to.
type Counter = fn(&mut PhaseReport) -> &mut usize;

/// What to do with an object that exists (Velero's existing-object path): see the module
/// documentation. Returns the count it adds to, and its warnings and errors.
fn reconcile(
    cluster: &Cluster,
    r: &Resource,
    backup: &Object,
    existing: &Object,
    policy: Option<ExistingResourcePolicy>,
) -> (Counter, Vec<Outcome>) {
    let update = policy == Some(ExistingResourcePolicy::Update);
    let patch =
        |p: &serde_json::Value| cluster.merge_patch(r, existing.namespace(), existing.name(), p);
    // Labels only, when a full update is not made or failed: an error if that fails too.
    let relabel = || -> Option<Outcome> {
        let p = existing::labels_patch(backup)?;
        let e = patch(&p).err()?;
        Some(Outcome::Error(format!(
            "could not update the backup and restore labels of {}: {e}",
            velero_name(backup)
        )))
    };
    // A namespace that exists is used as it is (Velero never compares it).
    if r.group_resource() == "namespaces" {
        return (|p| &mut p.unchanged, Vec::new());
    }
    // A refused patch is a warning; under `update` the labels alone are tried then.
    let refused = |warning: String| -> Vec<Outcome> {
        let mut out = vec![Outcome::Warning(warning)];
        out.extend(update.then(relabel).flatten());
        out
    };
    if existing::is_same(existing, backup) {
        let relabelled = update.then(relabel).flatten();
        return (|p| &mut p.unchanged, relabelled.into_iter().collect());
    }
    if r.group_resource() == "serviceaccounts" {
        let Some(p) = existing::service_account_patch(existing, backup) else {
            return (|p| &mut p.unchanged, Vec::new());
        };
        return match patch(&p) {
            Ok(_) => (|p| &mut p.updated, Vec::new()),
            Err(e) => (
                |p| &mut p.skipped_existing,
                refused(format!(
                    "could not merge the backed-up {} into the one in the cluster: {e}",
                    velero_name(backup)
                )),
            ),
        };
    }
    if !update {
        // Velero's two wordings: policy unset, and `none`.
        let what = match policy {
            None => format!("{}:{}", backup.kind(), backup.name()),
            Some(_) => format!("{} {:?}", backup.kind(), backup.name()),
        };
        let warning = format!(
            "could not restore, {what} already exists. Warning: the in-cluster version is different than the backed-up version"
        );
        return (|p| &mut p.skipped_existing, vec![Outcome::Warning(warning)]);
    }
    let Some(p) = existing::update_patch(existing, backup) else {
        return (|p| &mut p.unchanged, Vec::new());
    };
    match patch(&p) {
        Ok(_) => (|p| &mut p.updated, Vec::new()),
        Err(e) => (
            |p| &mut p.skipped_existing,
            refused(format!("could not update {}: {e}", velero_name(backup))),
        ),
    }
}

/// A warning or an error of one item.
enum Outcome {
    Warning(String),
    Error(String),
}

/// `ConfigMap shop/cfg`, as Velero names objects in its messages.
fn velero_name(o: &Object) -> String {
    match o.namespace() {
        Some(ns) => format!("{} {ns}/{}", o.kind(), o.name()),
        None => format!("{} {}", o.kind(), o.name()),
    }
}

/// A planned object that carries its status (`--restore-status`, or the object's
/// `velero.io/restore-status` annotation) gets it through the status subresource, which is
/// the only way the API server takes a status. Err is a warning, as in Velero.
fn restore_status(
    cluster: &Cluster,
    r: &Resource,
    backup: &Object,
    created: &Object,
) -> Result<(), String> {
    let Some(status) = backup.get(&["status"]) else {
        return Ok(());
    };
    if created.get(&["status"]) == Some(status) {
        return Ok(());
    }
    cluster
        .patch_status(r, created.namespace(), created.name(), status)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "could not restore the status of {}: {e}",
                velero_name(backup)
            )
        })
}

/// Velero patches the backed-up managedFields onto a created object (the API server
/// writes its own on create). A refusal is an error, a vanished object a warning, as in
/// Velero.
fn restore_managed_fields(
    cluster: &Cluster,
    r: &Resource,
    backup: &Object,
    created: &Object,
) -> Result<(), Outcome> {
    let Some(fields) = backup.get(&["metadata", "managedFields"]) else {
        return Ok(());
    };
    // Already the backup's (an API server that took them on create): nothing to send.
    if created.get(&["metadata", "managedFields"]) == Some(fields) {
        return Ok(());
    }
    let p = serde_json::json!({"metadata": {"managedFields": fields}});
    match cluster.merge_patch(r, created.namespace(), created.name(), &p) {
        Ok(_) => Ok(()),
        Err(e) => {
            let msg = format!(
                "could not restore the managedFields of {}: {e}",
                velero_name(backup)
            );
            let gone = matches!(&e, crate::Error::Cluster(c) if c.reason == "NotFound");
            Err(if gone {
                Outcome::Warning(msg)
            } else {
                Outcome::Error(msg)
            })
        }
    }
}

/// Records a failed item.
fn fail(result: &mut RestoreResult, report: &mut PhaseReport, ns: &str, msg: String) {
    result.errors.add(ns, msg);
    report.failed += 1;
}

/// How long to wait for a resource to be served: a while if the restore created CRDs (the
/// API server serves a new CRD's resource moments later), else one more discovery.
fn patience(crds_restored: bool) -> Duration {
    if crds_restored {
        Duration::from_secs(30)
    } else {
        Duration::ZERO
    }
}

fn describe_item(item: &Planned) -> String {
    match &item.namespace {
        Some(ns) => format!("{} {ns}/{}", item.resource, item.name),
        None => format!("{} {}", item.resource, item.name),
    }
}

/// Storage classes the change-storage-class mapping set, checked once each: they must exist
/// in the cluster or be restored by the plan (Velero asks the API for the class).
#[derive(Default)]
struct StorageClasses {
    known: BTreeMap<String, bool>,
}

impl StorageClasses {
    fn check(
        &mut self,
        cluster: &Cluster,
        served: &mut Served,
        plan: &Plan,
        classes: &[String],
    ) -> Result<(), String> {
        const GR: &str = "storageclasses.storage.k8s.io";
        for c in classes {
            let exists = match self.known.get(c) {
                Some(e) => *e,
                None => {
                    let restored = plan.items.iter().any(|i| i.resource == GR && &i.name == c);
                    let mut in_cluster = || {
                        let r = served.find(cluster, GR, Duration::ZERO)?;
                        cluster.get(&r, None, c).ok().flatten()
                    };
                    let e = restored || in_cluster().is_some();
                    self.known.insert(c.clone(), e);
                    e
                }
            };
            if !exists {
                return Err(format!(
                    "error getting storage class {c} from API: {GR} {c:?} not found (create it, or change the storage class mapping)"
                ));
            }
        }
        Ok(())
    }
}

/// The namespaces a restore has made sure of, and the planned Namespace objects (as the
/// backup has them, name mapped) by name.
struct Namespaces<'p> {
    known: BTreeSet<String>,
    planned: BTreeMap<String, &'p Planned>,
    /// How long to wait for a terminating namespace to go (Velero's
    /// `--resource-terminating-timeout`), and those that did not go in time (their items
    /// fail at once).
    terminating_timeout: Duration,
    stuck: BTreeSet<String>,
}

impl<'p> Namespaces<'p> {
    fn new(terminating_timeout: Duration) -> Self {
        Namespaces {
            known: BTreeSet::new(),
            planned: BTreeMap::new(),
            terminating_timeout,
            stuck: BTreeSet::new(),
        }
    }

    /// Creates a namespace an item needs unless it exists: from the backup's Namespace
    /// object when the plan has it, else bare (as Velero's `getNamespace` does). One that
    /// is terminating is waited for, then created again. Returns whether it created it.
    fn ensure(&mut self, cluster: &Cluster, served: &mut Served, ns: &str) -> Result<bool, String> {
        if self.known.contains(ns) {
            return Ok(false);
        }
        if self.stuck.contains(ns) {
            return Err(format!(
                "namespace {ns} is still terminating; not restored (see the first error of {ns})"
            ));
        }
        let r = served
            .find(cluster, "namespaces", Duration::ZERO)
            .ok_or("the cluster does not serve namespaces")?;
        let o = match self.planned.get(ns) {
            Some(p) => p.object(),
            None => Object::from_value(
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                ns,
            )
            .map_err(|e| e.to_string())?,
        };
        let mut created = true;
        if let Created::AlreadyExists(existing) =
            cluster.create(&r, &o).map_err(|e| e.to_string())?
        {
            created = false;
            if is_terminating(&existing) {
                let deadline = Instant::now() + self.terminating_timeout;
                let gone = |all: &[Object]| all.iter().all(|n| n.name() != ns);
                if cluster.wait_for(&r, None, None, deadline, &gone).is_err() {
                    self.stuck.insert(ns.to_string());
                    return Err(format!(
                        "timed out after {} waiting for terminating namespace {ns} to disappear before restoring; wait for it to go (its finalizers) and restore again",
                        humantime::format_duration(self.terminating_timeout)
                    ));
                }
                cluster.create(&r, &o).map_err(|e| e.to_string())?;
                created = true;
            }
        }
        self.known.insert(ns.to_string());
        Ok(created)
    }
}

/// A namespace being deleted (its deletionTimestamp set, or phase Terminating).
fn is_terminating(ns: &Object) -> bool {
    ns.is_being_deleted() || ns.str_at(&["status", "phase"]) == Some("Terminating")
}

/// Waits for a gate, watching each thing it names until the shared deadline; `Err` says
/// what was not ready then.
fn wait(
    cluster: &Cluster,
    served: &mut Served,
    gate: &Gate,
    namespaces: &BTreeSet<String>,
    crds: &[String],
) -> Result<(), String> {
    let deadline = Instant::now() + gate.timeout;
    let mut not_ready = Vec::new();
    let namespaces_of = |s: &Selected| -> Vec<String> {
        if s.namespaces.is_empty() {
            namespaces.iter().cloned().collect()
        } else {
            s.namespaces.clone()
        }
    };
    let mut watch = |gr: &str, s: &Selected, ready: &dyn Fn(&Object) -> bool, what: &str| {
        let Some(r) = served.find(cluster, gr, Duration::ZERO) else {
            not_ready.push(format!("the cluster does not serve {gr}"));
            return;
        };
        for ns in namespaces_of(s) {
            let all_ready = |objs: &[Object]| !objs.is_empty() && objs.iter().all(ready);
            let sel = s.selector.as_deref();
            if let Err(objs) = cluster.wait_for(&r, Some(&ns), sel, deadline, &all_ready) {
                let shown = match sel {
                    Some(sel) => format!("{what} in {ns} matching {sel:?}"),
                    None => format!("{what} in {ns}"),
                };
                let waiting: Vec<&str> = objs
                    .iter()
                    .filter(|o| !ready(o))
                    .map(|o| o.name())
                    .collect();
                not_ready.push(if objs.is_empty() {
                    format!("{shown}: none exist yet")
                } else {
                    format!(
                        "{shown}: {} of {} not ready ({})",
                        waiting.len(),
                        objs.len(),
                        waiting.join(", ")
                    )
                });
            }
        }
    };
    for s in &gate.pods_ready {
        watch("pods", s, &|o| condition_true(o, "Ready"), "pods");
    }
    let available = |o: &Object| {
        let want = o
            .get(&["spec", "replicas"])
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let have = o
            .get(&["status", "availableReplicas"])
            .and_then(Value::as_u64)
            .unwrap_or(0);
        condition_true(o, "Available") && have >= want
    };
    for s in &gate.deployments_available {
        watch("deployments.apps", s, &available, "deployments");
    }
    if gate.crds_established && !crds.is_empty() {
        let gr = "customresourcedefinitions.apiextensions.k8s.io";
        match served.find(cluster, gr, Duration::ZERO) {
            Some(r) => {
                let established = |objs: &[Object], name: &str| {
                    objs.iter()
                        .any(|o| o.name() == name && condition_true(o, "Established"))
                };
                let all = |objs: &[Object]| crds.iter().all(|n| established(objs, n));
                if let Err(objs) = cluster.wait_for(&r, None, None, deadline, &all) {
                    for n in crds.iter().filter(|n| !established(&objs, n)) {
                        not_ready.push(format!("CRD {n} not Established"));
                    }
                }
            }
            None => not_ready.push("the cluster does not serve CRDs".into()),
        }
    }
    if not_ready.is_empty() {
        Ok(())
    } else {
        Err(not_ready.join("; "))
    }
}

fn condition_true(o: &Object, kind: &str) -> bool {
    o.get(&["status", "conditions"])
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}
