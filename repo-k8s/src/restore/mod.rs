//! Restore planning: which objects to create, in which order, and cleaned how, with
//! Velero's semantics. Plan first (printable with `--dry-run`), then execute.
//!
//! Order: Velero's default resource priorities (CRDs and namespaces first, workloads after
//! what they use), then every other resource alphabetically, then the low-priority list;
//! within a resource, by namespace then name, so the same backup always restores in the
//! same order.

use std::collections::{BTreeMap, BTreeSet};

use repo_core::tree::NodeKind;
use repo_core::walk::WalkBudget;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::discovery::Discovery;
use crate::object::Object;
use crate::restore_filter::{ItemFilter, Take};
use crate::velero::VeleroResult;

mod actions;
pub use actions::restore_wait::{RestoreWait, CONTAINER as RESTORE_WAIT_CONTAINER};

/// Velero's default restore priorities (high), as `resource.group`.
pub const HIGH_PRIORITIES: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "datauploads.velero.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "serviceaccounts",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "secrets",
    "configmaps",
    "limitranges",
    "priorityclasses.scheduling.k8s.io",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
];

/// Velero's low priorities: restored last.
pub const LOW_PRIORITIES: &[&str] = &[
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
    // Carvel's App and PackageInstall: after the workloads they would otherwise recreate.
    "apps.kappctrl.k14s.io",
    "packageinstalls.packaging.carvel.dev",
];

/// Resources a restore never creates: Velero's `nonRestorableResources`, exactly
/// (pkg/controller/restore_controller.go). Schedules, pod volume backups and restores and the
/// request objects are restorable, as in Velero.
pub const NEVER_RESTORED: &[&str] = &[
    "nodes",
    "events",
    "events.events.k8s.io",
    "backups.velero.io",
    "restores.velero.io",
    "resticrepositories.velero.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "backuprepositories.velero.io",
];

pub(crate) use actions::metadata::reset as reset_metadata;
pub use actions::metadata::{valid_label_value, RESTORE_STATUS_ANNOTATION};
pub(crate) use actions::parse_image_name_rule;

/// The labels a restore puts on what it restores.
pub const RESTORE_LABELS: &[&str] = &["velero.io/backup-name", "velero.io/restore-name"];

/// Cluster-scoped resources a restored item can need (Velero's additional items of the PVC
/// and pod actions): held until the plan knows whether a restored item needs them.
const NEEDABLE: &[&str] = &["persistentvolumes", "priorityclasses.scheduling.k8s.io"];

/// Options of a restore plan.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Backup and restore names, recorded as labels on every restored object.
    pub backup_name: String,
    pub restore_name: String,
    /// `old namespace → new namespace`.
    pub namespace_mappings: BTreeMap<String, String>,
    /// Keep Services' node ports.
    pub preserve_node_ports: bool,
    /// Resources (`resource.group`) whose status is restored.
    pub restore_status: Vec<String>,
    /// Priorities replacing Velero's high list (`resource.group` names).
    pub priorities: Option<Vec<String>>,
    /// Which backed-up items to restore (default: all).
    pub filter: ItemFilter,
    /// PersistentVolumes whose data the restore brings back into new volumes (pod volume or
    /// CSI data in the backup): they are not restored, and their claims are provisioned.
    pub volumes_with_data: BTreeSet<String>,
    /// Pod volume data in the backup (file-system backups), by pod as backed up
    /// (namespace, name): the volumes whose data the node-agent restores. Their pods get the
    /// `restore-wait` init container; their claims' PersistentVolumes are provisioned anew
    /// (as `volumes_with_data`).
    pub pod_volumes: BTreeMap<(String, String), Vec<String>>,
    /// Claims (namespace, name, as backed up) whose data is in `pod_volumes`.
    pub claims_with_data: BTreeSet<(String, String)>,
    /// Claims (namespace, name, as backed up) whose data a DataDownload brings back (CSI
    /// snapshot data moved into the repository), with the value of their
    /// `velero.io/dynamic-pv-restore` selector: such a claim is restored without its volume,
    /// selecting the volume the data mover fills and binds to it (Velero's PV re-binding).
    pub claims_moved: BTreeMap<(String, String), String>,
    /// The init container that holds a pod until its volumes' data is back.
    pub restore_wait: Option<actions::restore_wait::RestoreWait>,
    /// The Restore's hooks: their init containers are added to the pods they select.
    pub hooks: crate::hooks::restore::Specs,
    /// Opt-in modifiers: Velero's change-storage-class mapping (`old → new`), its
    /// change-image-name rules (`(old part, new part)`, first match wins), and resource
    /// modifiers.
    pub storage_class_mappings: BTreeMap<String, String>,
    pub image_name_rules: Vec<(String, String)>,
    pub resource_modifiers: Option<crate::modifiers::ResourceModifiers>,
}

/// One object of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Planned {
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The cleaned object as compact JSON: a restore may plan 100,000 objects, and held
    /// parsed they took four times the memory.
    pub object: Box<RawValue>,
    /// Storage classes the change-storage-class mapping gave it: they must exist (in the
    /// cluster, or restored before it) for it to be created.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<String>,
}

impl Planned {
    fn new(obj: &Object, resource: String, namespace: Option<String>) -> Self {
        Planned {
            namespace,
            name: obj.name().to_string(),
            object: obj.to_raw_json(),
            resource,
            storage_classes: Vec::new(),
        }
    }

    /// The cleaned object, parsed.
    pub fn object(&self) -> Object {
        let value = serde_json::from_str(self.object.get()).expect("the planner wrote this JSON");
        Object::from_value(value, &self.name).expect("the planner checked this object")
    }

    /// The cleaned object's labels, read without parsing the rest of it.
    pub fn labels(&self) -> BTreeMap<String, String> {
        #[derive(serde::Deserialize)]
        struct Labels {
            #[serde(default)]
            labels: BTreeMap<String, String>,
        }
        #[derive(serde::Deserialize)]
        struct Metadata {
            metadata: Labels,
        }
        serde_json::from_str::<Metadata>(self.object.get())
            .map(|m| m.metadata.labels)
            .unwrap_or_default()
    }
}

/// A restore plan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub items: Vec<Planned>,
    /// Objects left out, with why.
    pub skipped: Vec<(String, String)>,
    /// Objects a restore item action could not prepare: not restored, and the restore is
    /// PartiallyFailed.
    pub errors: VeleroResult,
}

/// The position of a resource in the restore order: high priorities, then the rest
/// (alphabetically, by the resource name the item carries), then low priorities.
fn rank(gr: &str, high: &[String]) -> (u8, usize) {
    if let Some(i) = high.iter().position(|h| h == gr) {
        return (0, i);
    }
    if let Some(i) = LOW_PRIORITIES.iter().position(|h| *h == gr) {
        return (2, i);
    }
    (1, 0)
}

/// Plans the restore of `objects` (taken, not copied: a restore may hold 100,000 of them).
pub fn plan(objects: Vec<Object>, opts: &RestoreOptions) -> Plan {
    let mut d = Discovery::built_in();
    for o in objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
    {
        let _ = d.add_crd(o);
    }
    let mut planner = Planner::new(&d, opts);
    for o in objects {
        planner.add(o);
    }
    planner.finish()
}

/// `pods shop/web`, `persistentvolumes pv-1`.
fn describe(gr: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{gr} {ns}/{name}"),
        None => format!("{gr} {name}"),
    }
}

/// Builds a plan one object at a time, keeping only what each planned object restores as.
/// `discovery` must already know the backup's CRDs: they name its custom resources.
///
/// Each object goes the way Velero's `restoreItem` takes it: skip rules, filters, the
/// PersistentVolume decision, the metadata reset, the restore item action of its resource
/// (`actions`), the status decision, the namespace mapping and the restore labels. What
/// depends on objects seen later waits for [`Planner::finish`]: items only needed by others
/// (PVs, PriorityClasses, Namespaces), token secrets (are their accounts restored?), and
/// claims of volumes that are provisioned again.
pub struct Planner<'a> {
    discovery: &'a Discovery,
    opts: &'a RestoreOptions,
    high: Vec<String>,
    items: Vec<((u8, usize), Planned)>,
    skipped: Vec<(String, String)>,
    errors: VeleroResult,
    /// Cluster-scoped items the filters take only if a restored item needs them
    /// ([`Take::IfNeeded`]), by (resource, name); and Namespace objects by the name they
    /// were backed up under.
    needable: BTreeMap<(&'static str, String), Object>,
    needed_namespaces: BTreeMap<String, Object>,
    /// What restored items need, and the namespaces (as backed up) they come from.
    wanted: BTreeSet<(&'static str, String)>,
    used_namespaces: BTreeSet<String>,
    /// Service account token secrets, planned once every service account is known.
    token_secrets: Vec<(Object, String, Option<String>)>,
    /// Service accounts restored, by namespace as backed up and name.
    service_accounts: BTreeSet<(String, String)>,
    /// PersistentVolumes provisioned again, and the planned claims (index in `items`, the
    /// volume they name).
    provisioned: BTreeSet<String>,
    claims: Vec<(usize, String)>,
}

impl<'a> Planner<'a> {
    pub fn new(discovery: &'a Discovery, opts: &'a RestoreOptions) -> Self {
        let high = opts
            .priorities
            .clone()
            .unwrap_or_else(|| HIGH_PRIORITIES.iter().map(|s| s.to_string()).collect());
        Planner {
            discovery,
            opts,
            high,
            items: Vec::new(),
            skipped: Vec::new(),
            errors: VeleroResult::default(),
            needable: BTreeMap::new(),
            needed_namespaces: BTreeMap::new(),
            wanted: BTreeSet::new(),
            used_namespaces: BTreeSet::new(),
            token_secrets: Vec::new(),
            service_accounts: BTreeSet::new(),
            provisioned: BTreeSet::new(),
            claims: Vec::new(),
        }
    }

    /// Plans `obj` if the restore's filters take it: skips it with the reason, or prepares
    /// it as Velero does. Items left out by the filters are not reported (a restore of one
    /// namespace would list every other object of the backup).
    pub fn add(&mut self, obj: Object) {
        let gr = self.discovery.group_resource_of(&obj);
        let ns = self.discovery.namespace_of(&obj).map(str::to_string);
        let filter = &self.opts.filter;
        let mut take = filter.decide(&gr, ns.as_deref(), |k| obj.label(k));
        if gr == "namespaces" {
            // Velero creates the namespace of a restored item from the backup whatever the
            // cluster-scoped and label filters say; a namespace filtered out stays out.
            take = match take {
                _ if !filter.namespace_wanted(obj.name()) => Take::No,
                Take::Yes => Take::Yes,
                _ => Take::IfNeeded,
            };
        }
        if take != Take::No {
            // Reported only for items the filters take.
            if let Some(why) = skip_reason(&obj, &gr) {
                let id = describe(&gr, ns.as_deref(), obj.name());
                self.skipped.push((id, why));
                return;
            }
        }
        match take {
            Take::No => {}
            Take::IfNeeded if gr == "namespaces" => {
                self.needed_namespaces.insert(obj.name().to_string(), obj);
            }
            Take::IfNeeded => {
                if let Some(r) = NEEDABLE.iter().find(|r| **r == gr) {
                    self.needable.insert((r, obj.name().to_string()), obj);
                }
            }
            Take::Yes => {
                if let Some(ns) = &ns {
                    self.used_namespaces.insert(ns.clone());
                    if gr == "serviceaccounts" {
                        self.service_accounts
                            .insert((ns.clone(), obj.name().to_string()));
                    }
                }
                if gr == "secrets"
                    && obj.str_at(&["type"]) == Some("kubernetes.io/service-account-token")
                {
                    self.token_secrets.push((obj, gr, ns));
                } else {
                    self.plan(obj, gr, ns);
                }
            }
        }
    }

    /// The namespace an item of namespace `ns` (as backed up) is restored into.
    fn target(&self, ns: &str) -> String {
        self.opts
            .namespace_mappings
            .get(ns)
            .cloned()
            .unwrap_or_else(|| ns.to_string())
    }

    /// Prepares `obj` and adds it to the plan.
    fn plan(&mut self, mut obj: Object, gr: String, ns: Option<String>) {
        let opts = self.opts;
        if gr == "namespaces" {
            let made = actions::namespace::from_backup(&obj, &self.target(obj.name()));
            self.push(&made, gr, None);
            return;
        }
        if gr == "persistentvolumes" {
            let claim = (
                obj.str_at(&["spec", "claimRef", "namespace"])
                    .unwrap_or_default()
                    .to_string(),
                obj.str_at(&["spec", "claimRef", "name"])
                    .unwrap_or_default()
                    .to_string(),
            );
            let data = opts.volumes_with_data.contains(obj.name())
                || opts.claims_with_data.contains(&claim)
                || opts.claims_moved.contains_key(&claim);
            let mappings = &opts.namespace_mappings;
            if let actions::pv::Decision::Provision(why) =
                actions::pv::execute(&mut obj, data, mappings)
            {
                self.provisioned.insert(obj.name().to_string());
                self.skipped
                    .push((describe(&gr, None, obj.name()), why.to_string()));
                return;
            }
        }
        let status = actions::metadata::reset(&mut obj);
        let accounts = &self.service_accounts;
        // Kubernetes makes `default` in every namespace.
        let account_exists = |ns: &str, name: &str| {
            name == "default" || accounts.contains(&(ns.to_string(), name.to_string()))
        };
        let ctx = actions::Context {
            namespace_mappings: &opts.namespace_mappings,
            preserve_node_ports: opts.preserve_node_ports,
            service_account_exists: &account_exists,
            backed_up_status: status.as_ref(),
            storage_class_mappings: &opts.storage_class_mappings,
            image_name_rules: &opts.image_name_rules,
        };
        let verdict = actions::run(&gr, &mut obj, &ctx);
        let id = |o: &Object| describe(&gr, ns.as_deref(), o.name());
        let target = ns.as_deref().map(|n| self.target(n)).unwrap_or_default();
        let storage_classes = match verdict {
            actions::Verdict::Restore(done) => {
                let needed = done.needed.into_iter().map(|n| (n.resource, n.name));
                self.wanted.extend(needed);
                done.storage_classes
            }
            actions::Verdict::Skip(why) => {
                self.skipped.push((id(&obj), why));
                return;
            }
            actions::Verdict::Fail(why) => {
                let msg = format!("{}: not restored: {why}", id(&obj));
                self.errors.add(&target, msg);
                return;
            }
        };
        if gr == "pods" {
            let key = (ns.clone().unwrap_or_default(), obj.name().to_string());
            if let (Some(wait), Some(volumes)) = (&opts.restore_wait, opts.pod_volumes.get(&key)) {
                actions::restore_wait::add(&mut obj, volumes, wait);
            }
            opts.hooks.add_init_containers(&mut obj, &target);
        }
        // Velero's claim fix-up (volumeName itself is settled in `finish`), then its resource
        // modifiers, before the namespace mapping.
        if gr == "persistentvolumeclaims" {
            if let Some(volume) = obj.str_at(&["spec", "volumeName"]).map(str::to_string) {
                actions::pv::reset_binding(&mut obj);
                // A claim whose data the node-agent restores gets a new volume, whether or
                // not the backup has its old one.
                let key = (ns.clone().unwrap_or_default(), obj.name().to_string());
                if opts.claims_with_data.contains(&key) || opts.claims_moved.contains_key(&key) {
                    self.provisioned.insert(volume.clone());
                }
                if let Some(label) = opts.claims_moved.get(&key) {
                    crate::data_move::select_moved_volume(&mut obj, label);
                }
                self.claims.push((self.items.len(), volume));
            }
        }
        if let Some(m) = &opts.resource_modifiers {
            let typed = self.discovery.is_built_in(&gr);
            for e in m.apply(&gr, ns.as_deref(), &mut obj, typed) {
                self.errors.add(&target, format!("{}: {e}", id(&obj)));
            }
        }
        let by_resource = opts.restore_status.iter().any(|r| r == &gr || r == "*");
        if let Some(status) = status {
            if actions::metadata::restores_status(&obj, by_resource) {
                obj.map_at_mut(&[]).insert("status".into(), status);
            }
        }
        let new_ns = ns.as_deref().map(|n| self.target(n));
        obj.set_namespace(new_ns.as_deref());
        actions::metadata::add_restore_labels(&mut obj, &opts.backup_name, &opts.restore_name);
        self.push(&obj, gr, new_ns);
        if let Some((_, planned)) = self.items.last_mut() {
            planned.storage_classes = storage_classes;
        }
    }

    fn push(&mut self, obj: &Object, gr: String, ns: Option<String>) {
        let planned = Planned::new(obj, gr, ns);
        self.items
            .push((rank(&planned.resource, &self.high), planned));
    }

    /// The plan: items in restore order (resource rank, namespace, name).
    pub fn finish(mut self) -> Plan {
        // Token secrets, now that the restored service accounts are known.
        for (obj, gr, ns) in std::mem::take(&mut self.token_secrets) {
            self.plan(obj, gr, ns);
        }
        // What restored items need: the PVs of their claims and their PriorityClasses
        // (Velero's additional items), and the namespaces they are restored into.
        for ((resource, name), obj) in std::mem::take(&mut self.needable) {
            if self.wanted.contains(&(resource, name)) {
                self.plan(obj, resource.to_string(), None);
            }
        }
        for (name, ns) in std::mem::take(&mut self.needed_namespaces) {
            if self.used_namespaces.contains(&name) {
                self.plan(ns, "namespaces".into(), None);
            }
        }
        // Claims of volumes provisioned again lose `volumeName` (Velero's PVC fix-up).
        for (i, volume) in std::mem::take(&mut self.claims) {
            if self.provisioned.contains(&volume) {
                let planned = &mut self.items[i].1;
                let mut claim = planned.object();
                claim.remove(&["spec", "volumeName"]);
                planned.object = claim.to_raw_json();
            }
        }
        let mut items = self.items;
        fn key(p: &Planned) -> (&str, &str, &str) {
            let ns = p.namespace.as_deref().unwrap_or("");
            (&p.resource, ns, &p.name)
        }
        items.sort_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| key(a).cmp(&key(b))));
        Plan {
            items: items.into_iter().map(|(_, p)| p).collect(),
            skipped: self.skipped,
            errors: self.errors,
        }
    }
}

/// Why Velero would not restore this object.
fn skip_reason(o: &Object, gr: &str) -> Option<String> {
    if NEVER_RESTORED.contains(&gr) {
        return Some(format!("{gr} are never restored"));
    }
    if gr == "pods" {
        if o.annotation("kubernetes.io/config.mirror").is_some() {
            return Some("mirror pod (the kubelet recreates it)".into());
        }
        if matches!(o.str_at(&["status", "phase"]), Some("Succeeded" | "Failed")) {
            return Some("pod has completed".into());
        }
    }
    if gr == "jobs.batch"
        && o.get(&["status", "completionTime"])
            .is_some_and(|v| !v.is_null())
    {
        return Some("job has completed".into());
    }
    None
}

/// The top-level trees of a backup snapshot, and the budget of a walk of it.
struct BackupTrees {
    resources: Option<repo_core::BlobId>,
    duplicates: Option<repo_core::BlobId>,
    budget: WalkBudget,
}

/// Finds `resources/` and `duplicates/` in a backup snapshot.
fn backup_trees(
    repo: &repo_core::IndexedRepository,
    snapshot: &repo_core::ObjectId,
) -> repo_core::Result<BackupTrees> {
    let snap = repo.get_snapshot(snapshot)?;
    let mut trees = BackupTrees {
        resources: None,
        duplicates: None,
        budget: WalkBudget::for_snapshot(snapshot, &snap),
    };
    for top in repo.read_dir(&snap.root)? {
        match (top.name.display().as_str(), top.kind) {
            ("resources", NodeKind::Dir) => trees.resources = top.subtree,
            ("duplicates", NodeKind::Dir) => trees.duplicates = top.subtree,
            _ => {}
        }
    }
    Ok(trees)
}

/// What a backup's objects are called: the built-in resources plus the backup's CRDs.
/// Reads only `resources/customresourcedefinitions.apiextensions.k8s.io/`.
pub fn backup_discovery(
    repo: &repo_core::IndexedRepository,
    snapshot: &repo_core::ObjectId,
) -> crate::Result<Discovery> {
    const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
    let mut d = Discovery::built_in();
    let trees = backup_trees(repo, snapshot)?;
    let Some(resources) = trees.resources else {
        return Ok(d);
    };
    for node in repo.read_dir(&resources)? {
        if let (CRDS, NodeKind::Dir, Some(tree)) =
            (node.name.display().as_str(), node.kind, node.subtree)
        {
            let path = format!("resources/{CRDS}");
            crate::backup::for_each_file(repo, tree, &path, &trees.budget, &mut |here, bytes| {
                // A CRD that does not parse is reported by `plan_backup`, which reads it again.
                if let Ok(o) = parse_object(here, &bytes) {
                    let _ = d.add_crd(&o);
                }
                Ok(())
            })?;
        }
    }
    Ok(d)
}

/// Plans the restore of a backup snapshot (`resources/…`), one object at a time, so only
/// the cleaned objects' compact JSON is held. `discovery` comes from [`backup_discovery`].
/// Returns notes too: objects that cannot be restored, and objects kept under
/// `duplicates/` (the backup had two different objects with one identity, and only the
/// first can exist in a cluster).
pub fn plan_backup(
    repo: &repo_core::IndexedRepository,
    snapshot: &repo_core::ObjectId,
    discovery: &Discovery,
    opts: &RestoreOptions,
) -> crate::Result<(Plan, Vec<String>)> {
    let trees = backup_trees(repo, snapshot)?;
    let mut planner = Planner::new(discovery, opts);
    let mut notes = Vec::new();
    if let Some(tree) = trees.resources {
        let budget = &trees.budget;
        crate::backup::for_each_file(repo, tree, "resources", budget, &mut |here, bytes| {
            if here.ends_with(".json") {
                match parse_object(here, &bytes) {
                    Ok(o) => planner.add(o),
                    Err(e) => notes.push(format!("{here}: not restorable: {e}")),
                }
            }
            Ok(())
        })?;
    }
    if let Some(tree) = trees.duplicates {
        // duplicates/<n>/resources/…: the path names the identity, namespace included (an
        // object that named none was filed under `default`).
        for (path, _) in crate::backup::list_files(repo, tree, "duplicates", &trees.budget)? {
            let identity = path.splitn(3, '/').nth(2).unwrap_or(&path);
            notes.push(format!(
                "{path}: a second, different object with the identity {identity} is in the backup; only the first is restored"
            ));
        }
    }
    Ok((planner.finish(), notes))
}

fn parse_object(path: &str, bytes: &[u8]) -> Result<Object, crate::ObjectError> {
    let value = serde_json::from_slice(bytes).map_err(|e| crate::ObjectError {
        origin: path.to_string(),
        reason: format!("not JSON: {e}"),
    })?;
    Object::from_value(value, path)
}

/// Writes the plan as numbered files (`0001-namespaces-shop.json`, …) into `dir`, which
/// must be empty or absent, ready for `kubectl apply -f` in name order.
pub fn write_to_dir(plan: &Plan, dir: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        return Err(std::io::Error::other(format!(
            "{} is not empty; restore into an empty directory",
            dir.display()
        )));
    }
    let width = plan.items.len().max(1).to_string().len().max(4);
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._:-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    for (i, item) in plan.items.iter().enumerate() {
        let mut name = format!("{:0width$}-{}", i + 1, safe(&item.resource));
        if let Some(ns) = &item.namespace {
            name.push('-');
            name.push_str(&safe(ns));
        }
        name.push('-');
        name.push_str(&safe(&item.name));
        name.push_str(".json");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(&name))?;
        std::io::Write::write_all(
            &mut f,
            &serde_json::to_vec_pretty(&item.object().as_value()).expect("serializes"),
        )?;
    }
    Ok(plan.items.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn o(v: Value) -> Object {
        Object::from_value(v, "t").unwrap()
    }

    fn order(objects: &[Object], opts: &RestoreOptions) -> Vec<String> {
        plan(objects.to_vec(), opts)
            .items
            .iter()
            .map(|p| {
                format!(
                    "{} {}/{}",
                    p.resource,
                    p.namespace.as_deref().unwrap_or("-"),
                    p.name
                )
            })
            .collect()
    }

    /// Velero pkg/restore/restore_test.go TestRestoreActionAdditionalItems ("include ns-1
    /// with nil: the cluster-scoped PV of a restored PVC is restored") and
    /// TestRestoreNamespaceMapping (filters name the namespace backed up from), with the
    /// namespace of restored items created from the backup (restore.go `getNamespace`).
    #[test]
    fn filters_take_a_namespace_with_the_pvs_its_claims_need_and_its_namespace_object() {
        let objects = vec![
            o(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-1", "labels": {"team": "a"}}}),
            ),
            o(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-2"}})),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "ns-1"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2", "namespace": "ns-2"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "ns-1", "labels": {"team": "a"}}, "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-2"}}),
            ),
            o(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}),
            ),
        ];
        let d = Discovery::default();
        let with = |f: crate::restore_filter::RestoreFilter, maps: &[(&str, &str)]| {
            let opts = RestoreOptions {
                filter: f.resolve(&d).unwrap(),
                namespace_mappings: maps
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                ..Default::default()
            };
            order(&objects, &opts)
        };
        let ns1 = crate::restore_filter::RestoreFilter {
            include_namespaces: vec!["ns-1".into()],
            ..Default::default()
        };
        assert_eq!(
            with(ns1.clone(), &[]),
            [
                "namespaces -/ns-1",
                "persistentvolumes -/pv-1",
                "persistentvolumeclaims ns-1/data",
                "pods ns-1/p1",
            ]
        );
        // Mapped: the filter still names the source namespace; the objects go to the new one.
        assert_eq!(
            with(ns1.clone(), &[("ns-1", "new-1")]),
            [
                "namespaces -/new-1",
                "persistentvolumes -/pv-1",
                "persistentvolumeclaims new-1/data",
                "pods new-1/p1",
            ]
        );
        // includeClusterResources: true brings every cluster-scoped item; false none, not
        // even the claimed PV.
        let all_cluster = with(
            crate::restore_filter::RestoreFilter {
                include_cluster_resources: Some(true),
                ..ns1.clone()
            },
            &[],
        );
        assert!(all_cluster.contains(&"persistentvolumes -/pv-2".to_string()));
        assert!(
            all_cluster.contains(&"clusterroles.rbac.authorization.k8s.io -/reader".to_string())
        );
        let none = with(
            crate::restore_filter::RestoreFilter {
                include_cluster_resources: Some(false),
                ..ns1
            },
            &[],
        );
        assert_eq!(
            none,
            [
                "namespaces -/ns-1",
                "persistentvolumeclaims ns-1/data",
                "pods ns-1/p1"
            ]
        );
        // A selector that takes nothing in ns-2 leaves its Namespace object out too; the
        // volume of a selected claim comes whatever its labels (selectors do not apply to
        // what restored items need).
        let selected = with(
            crate::restore_filter::RestoreFilter {
                label_selector: Some(crate::selector::LabelSelector::parse("team=a").unwrap()),
                ..Default::default()
            },
            &[],
        );
        assert_eq!(
            selected,
            [
                "namespaces -/ns-1",
                "persistentvolumes -/pv-1",
                "persistentvolumeclaims ns-1/data"
            ]
        );
    }

    #[test]
    fn velero_priorities_then_alphabetical_then_low_and_deterministic_within_a_type() {
        let objects = vec![
            o(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "b"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"}}),
            ),
            o(
                json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": {"name": "c1", "namespace": "a"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "z", "namespace": "b"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "b"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "a"}}),
            ),
            o(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}})),
            o(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "clusters.cluster.x-k8s.io"},
                     "spec": {"group": "cluster.x-k8s.io", "scope": "Namespaced", "names": {"plural": "clusters", "kind": "Cluster"}, "versions": [{"name": "v1beta1", "storage": true}]}}),
            ),
            o(
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj", "namespace": "a"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d", "namespace": "a"}}),
            ),
        ];
        let got = order(&objects, &RestoreOptions::default());
        assert_eq!(
            got,
            vec![
                "customresourcedefinitions.apiextensions.k8s.io -/clusters.cluster.x-k8s.io",
                "namespaces -/b",
                "persistentvolumeclaims a/d",
                "configmaps a/m",
                "configmaps b/a",
                "configmaps b/z",
                "services a/web",
                "cronjobs.batch a/cj",
                "deployments.apps b/web",
                "clusters.cluster.x-k8s.io a/c1",
            ]
        );
        // The same objects in another input order give the same plan.
        let mut rev = objects.clone();
        rev.reverse();
        assert_eq!(order(&rev, &RestoreOptions::default()), got);
        // Configurable priorities.
        let custom = RestoreOptions {
            priorities: Some(vec!["deployments.apps".into()]),
            ..Default::default()
        };
        assert_eq!(order(&objects, &custom)[0], "deployments.apps b/web");
    }

    #[test]
    fn skip_rules() {
        let objects = vec![
            o(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})),
            o(
                json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "a"}}),
            ),
            o(
                json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b", "namespace": "velero"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mirror", "namespace": "a", "annotations": {"kubernetes.io/config.mirror": "x"}}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "done", "namespace": "a"}, "status": {"phase": "Succeeded"}}),
            ),
            o(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "a"}, "status": {"completionTime": "2026-01-01T00:00:00Z"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "live", "namespace": "a"}, "status": {"phase": "Running"}}),
            ),
        ];
        let p = plan(objects.clone(), &RestoreOptions::default());
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].name, "live");
        assert_eq!(p.skipped.len(), 6, "{:?}", p.skipped);
    }

    /// Velero pkg/restore/restore_test.go TestRestoreItems (metadata reset, restore labels,
    /// managedFields and finalizers kept, status removed), TestRestorePersistentVolumes /
    /// TestRestorePVWithVolumeInfo (reclaim Delete: not restored, the claim provisioned
    /// again), TestRestoreNamespaceMapping, and the restore item actions end to end.
    #[test]
    fn objects_are_prepared_as_velero_prepares_them() {
        let opts = RestoreOptions {
            backup_name: "nightly".into(),
            restore_name: "r1".into(),
            namespace_mappings: [("shop".to_string(), "shop-copy".to_string())].into(),
            ..Default::default()
        };
        let objects = vec![
            o(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "uid": "u", "labels": {"team": "a"}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "uid": "u", "resourceVersion": "5",
                     "generation": 2, "creationTimestamp": "x", "selfLink": "/x", "generateName": "p-", "ownerReferences": [{"name": "rs"}],
                     "managedFields": [{"manager": "kubectl"}], "finalizers": ["example.com/f"]},
                     "spec": {"nodeName": "n1", "priority": 10, "priorityClassName": "high", "containers": []}, "status": {"phase": "Running"}}),
            ),
            o(
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "shop"},
                     "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "nodePort": 30080}]}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d", "namespace": "shop",
                     "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/selected-node": "n1", "keep": "me"}},
                     "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
                     "spec": {"persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "shop", "name": "d", "uid": "u", "resourceVersion": "1"}}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "scratch", "namespace": "shop"},
                     "spec": {"volumeName": "pv2", "storageClassName": "fast"}, "status": {"phase": "Bound"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv2"},
                     "spec": {"persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": "shop", "name": "scratch"}}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "shop"},
                     "secrets": [{"name": "app-token-x1"}, {"name": "other"}]}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-token-x1", "namespace": "shop"}, "type": "kubernetes.io/service-account-token"}),
            ),
            o(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "shop"},
                     "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "shop"}]}),
            ),
            o(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "shop"},
                     "spec": {"selector": {"matchLabels": {"controller-uid": "u"}}, "template": {"metadata": {"labels": {"controller-uid": "u", "app": "j"}}}}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "st", "namespace": "shop", "annotations": {RESTORE_STATUS_ANNOTATION: "TRUE"}}, "status": {"x": 1}}),
            ),
        ];
        let p = plan(objects.clone(), &opts);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let get = |name: &str| {
            let item = p
                .items
                .iter()
                .find(|i| i.name == name)
                .unwrap_or_else(|| panic!("{name} not planned: {:?}", p.skipped));
            item.object().into_value()
        };
        // The namespace: mapped name, labels and spec; no restore labels.
        assert_eq!(
            get("shop-copy"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop-copy", "labels": {"team": "a"}},
                "spec": {"finalizers": ["kubernetes"]}})
        );
        let pod = get("p");
        assert_eq!(pod["metadata"]["namespace"], "shop-copy");
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "selfLink",
            "generateName",
            "ownerReferences",
        ] {
            assert!(pod["metadata"].get(k).is_none(), "{k}");
        }
        assert_eq!(
            pod["metadata"]["managedFields"],
            json!([{"manager": "kubectl"}])
        );
        assert_eq!(pod["metadata"]["finalizers"], json!(["example.com/f"]));
        assert!(pod.get("status").is_none());
        assert!(pod["spec"].get("nodeName").is_none() && pod["spec"].get("priority").is_none());
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"velero.io/backup-name": "nightly", "velero.io/restore-name": "r1"})
        );
        // The pod's PriorityClass comes along.
        assert_eq!(get("high")["value"], 1000);
        let svc = get("s");
        assert!(svc["spec"].get("clusterIP").is_none() && svc["spec"].get("clusterIPs").is_none());
        assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
        // A Retain volume is restored with its binding reset; its claim keeps volumeName.
        let pvc = get("d");
        assert_eq!(pvc["metadata"]["annotations"], json!({"keep": "me"}));
        assert_eq!(pvc["spec"]["volumeName"], "pv1");
        let pv = get("pv1");
        assert_eq!(
            pv["spec"]["claimRef"],
            json!({"namespace": "shop-copy", "name": "d"})
        );
        // A Delete volume is not restored; its claim is provisioned again.
        assert!(p.items.iter().all(|i| i.name != "pv2"));
        assert!(p
            .skipped
            .iter()
            .any(|(id, why)| id == "persistentvolumes pv2" && why.contains("Delete")));
        assert!(get("scratch")["spec"].get("volumeName").is_none());
        // The token secret of a restored account is left to Kubernetes, and so is the
        // account's reference to it.
        assert!(p
            .skipped
            .iter()
            .any(|(id, _)| id == "secrets shop/app-token-x1"));
        assert_eq!(get("app")["secrets"], json!([{"name": "other"}]));
        // Role binding subjects follow the mapping.
        assert_eq!(get("rb")["subjects"][0]["namespace"], "shop-copy");
        let job = get("j");
        assert!(job["spec"].get("selector").is_none());
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"app": "j"})
        );
        assert_eq!(
            get("st")["status"]["x"],
            1,
            "the restore-status annotation, in any case, keeps status"
        );
        // Preserving node ports.
        let keep = plan(
            objects.clone(),
            &RestoreOptions {
                preserve_node_ports: true,
                ..Default::default()
            },
        );
        let svc = keep.items.iter().find(|i| i.name == "s").unwrap().object();
        assert_eq!(svc.as_value()["spec"]["ports"][0]["nodePort"], 30080);
        // A long backup name labels what it restored, shortened as Velero does.
        let long = plan(
            objects,
            &RestoreOptions {
                backup_name: "this_is_a_very_long_label_value_that_will_be_rejected_by_Kubernetes"
                    .into(),
                ..Default::default()
            },
        );
        let pod = long.items.iter().find(|i| i.name == "p").unwrap();
        assert_eq!(
            pod.labels()["velero.io/backup-name"],
            "this_is_a_very_long_label_value_that_will_be_rejected_by_8d0722"
        );
    }

    /// A restore item action that cannot prepare an item fails that item only.
    #[test]
    fn an_action_failure_is_an_error_of_that_item() {
        let objects = vec![
            o(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": "a",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{oops"}},
                "spec": {"ports": [{"port": 80, "nodePort": 30000}]}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fine", "namespace": "a"}}),
            ),
        ];
        let p = plan(objects, &RestoreOptions::default());
        assert_eq!(p.items.len(), 1);
        let msgs: Vec<_> = p.errors.messages().collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, Some("a"));
        assert!(
            msgs[0].1.starts_with("services a/bad: not restored: "),
            "{}",
            msgs[0].1
        );
    }
}
