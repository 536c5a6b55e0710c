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
use serde_json::Value;

use crate::discovery::Discovery;
use crate::object::Object;
use crate::restore_filter::{ItemFilter, Take};

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

/// Annotation asking for an object's status to be restored.
pub const RESTORE_STATUS_ANNOTATION: &str = "velero.io/restore-status";

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
}

impl Planned {
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

/// Builds a plan one object at a time, keeping only what each planned object restores as.
/// `discovery` must already know the backup's CRDs: they name its custom resources.
pub struct Planner<'a> {
    discovery: &'a Discovery,
    opts: &'a RestoreOptions,
    high: Vec<String>,
    items: Vec<((u8, usize), Planned)>,
    skipped: Vec<(String, String)>,
    /// Items the filters take only if a restored item needs them ([`Take::IfNeeded`]): PVs
    /// by name, Namespace objects by the name they were backed up under.
    needed_pvs: BTreeMap<String, Object>,
    needed_namespaces: BTreeMap<String, Object>,
    /// PVs named by restored PVCs, and the namespaces restored items come from.
    claimed_pvs: BTreeSet<String>,
    used_namespaces: BTreeSet<String>,
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
            needed_pvs: BTreeMap::new(),
            needed_namespaces: BTreeMap::new(),
            claimed_pvs: BTreeSet::new(),
            used_namespaces: BTreeSet::new(),
        }
    }

    /// Plans `obj` if the restore's filters take it: skips it with the reason, or cleans it
    /// as Velero does. Items left out by the filters are not reported (a restore of one
    /// namespace would list every other object of the backup).
    pub fn add(&mut self, obj: Object) {
        let gr = self.discovery.group_resource_of(&obj);
        let ns = self.discovery.namespace_of(&obj).map(str::to_string);
        if let Some(why) = skip_reason(&obj, &gr) {
            let id = format!(
                "{gr} {}{}",
                ns.as_deref().map(|n| format!("{n}/")).unwrap_or_default(),
                obj.name()
            );
            self.skipped.push((id, why));
            return;
        }
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
        match take {
            Take::No => {}
            Take::IfNeeded if gr == "persistentvolumes" => {
                self.needed_pvs.insert(obj.name().to_string(), obj);
            }
            Take::IfNeeded if gr == "namespaces" => {
                self.needed_namespaces.insert(obj.name().to_string(), obj);
            }
            Take::IfNeeded => {}
            Take::Yes => {
                if let Some(ns) = &ns {
                    self.used_namespaces.insert(ns.clone());
                }
                if gr == "persistentvolumeclaims" {
                    if let Some(pv) = obj.str_at(&["spec", "volumeName"]) {
                        self.claimed_pvs.insert(pv.to_string());
                    }
                }
                self.plan(obj, gr, ns);
            }
        }
    }

    /// Cleans `obj` and adds it to the plan.
    fn plan(&mut self, mut obj: Object, gr: String, ns: Option<String>) {
        let new_ns = ns.as_deref().map(|n| {
            self.opts
                .namespace_mappings
                .get(n)
                .map(String::as_str)
                .unwrap_or(n)
                .to_string()
        });
        sanitize(&mut obj, &gr, self.opts, new_ns.as_deref());
        let planned = Planned {
            namespace: new_ns,
            name: obj.name().to_string(),
            object: obj.to_raw_json(),
            resource: gr,
        };
        self.items
            .push((rank(&planned.resource, &self.high), planned));
    }

    /// The plan: items in restore order (resource rank, namespace, name).
    pub fn finish(mut self) -> Plan {
        // What restored items need: the PVs their PVCs are bound to (Velero's PVC action
        // adds them) and the namespaces they are restored into.
        for (name, pv) in std::mem::take(&mut self.needed_pvs) {
            if self.claimed_pvs.contains(&name) {
                self.plan(pv, "persistentvolumes".into(), None);
            }
        }
        for (name, ns) in std::mem::take(&mut self.needed_namespaces) {
            if self.used_namespaces.contains(&name) {
                self.plan(ns, "namespaces".into(), None);
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

/// Velero's clean-up of a backed-up object before it is created again.
fn sanitize(o: &mut Object, gr: &str, opts: &RestoreOptions, ns: Option<&str>) {
    let restore_status = opts.restore_status.iter().any(|r| r == gr || r == "*")
        || o.annotation(RESTORE_STATUS_ANNOTATION).is_some();
    // Metadata: only name, generateName, namespace, labels and annotations survive.
    let meta = o.map_at_mut(&["metadata"]);
    meta.retain(|k, _| {
        matches!(
            k.as_str(),
            "name" | "generateName" | "namespace" | "labels" | "annotations"
        )
    });
    if !restore_status {
        o.remove(&["status"]);
    }
    o.set_namespace(ns);
    let labels = o.map_at_mut(&["metadata", "labels"]);
    if !opts.backup_name.is_empty() {
        labels.insert(
            "velero.io/backup-name".into(),
            opts.backup_name.clone().into(),
        );
    }
    if !opts.restore_name.is_empty() {
        labels.insert(
            "velero.io/restore-name".into(),
            opts.restore_name.clone().into(),
        );
    }
    match gr {
        "namespaces" => {
            let name = o.name().to_string();
            if let Some(new) = opts.namespace_mappings.get(&name) {
                o.map_at_mut(&["metadata"])
                    .insert("name".into(), new.clone().into());
            }
            o.remove(&["spec", "finalizers"]);
        }
        "pods" => {
            o.remove(&["spec", "nodeName"]);
            o.remove(&["spec", "priority"]);
        }
        "services" => {
            let headless = o.str_at(&["spec", "clusterIP"]) == Some("None");
            if !headless {
                o.remove(&["spec", "clusterIP"]);
                o.remove(&["spec", "clusterIPs"]);
            }
            if !opts.preserve_node_ports {
                if let Some(Value::Array(ports)) = o.map_at_mut(&["spec"]).get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        p.remove("nodePort");
                    }
                }
            }
        }
        "persistentvolumeclaims" => {
            let ann = o.map_at_mut(&["metadata", "annotations"]);
            for k in [
                "pv.kubernetes.io/bind-completed",
                "pv.kubernetes.io/bound-by-controller",
                "volume.kubernetes.io/selected-node",
            ] {
                ann.remove(k);
            }
        }
        "persistentvolumes" => {
            if let Some(old) = o
                .str_at(&["spec", "claimRef", "namespace"])
                .map(str::to_string)
            {
                if let Some(new) = opts.namespace_mappings.get(&old) {
                    o.map_at_mut(&["spec", "claimRef"])
                        .insert("namespace".into(), new.clone().into());
                }
            }
            for k in ["uid", "resourceVersion"] {
                o.remove(&["spec", "claimRef", k]);
            }
        }
        "jobs.batch" => {
            for path in [
                &["spec", "selector", "matchLabels"][..],
                &["spec", "template", "metadata", "labels"][..],
            ] {
                let m = o.map_at_mut(path);
                m.remove("controller-uid");
                m.remove("batch.kubernetes.io/controller-uid");
            }
            // An empty selector would select every pod; without one, Kubernetes generates
            // a fresh one for the new job.
            remove_if_empty(o, &["spec", "selector", "matchLabels"]);
            remove_if_empty(o, &["spec", "selector"]);
            remove_if_empty(o, &["spec", "template", "metadata", "labels"]);
        }
        _ => {}
    }
    // An annotation map emptied above goes (it may not have been there).
    if o.get(&["metadata", "annotations"])
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty())
    {
        o.remove(&["metadata", "annotations"]);
    }
}

/// Removes the map at `path` if it is empty.
fn remove_if_empty(o: &mut Object, path: &[&str]) {
    if o.get(path)
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty())
    {
        o.remove(path);
    }
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
    use serde_json::json;

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
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "ns-1"}, "spec": {"volumeName": "pv-1"}}),
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
        // A selector that takes nothing in ns-2 leaves its Namespace object out too.
        let selected = with(
            crate::restore_filter::RestoreFilter {
                label_selector: Some(crate::selector::LabelSelector::parse("team=a").unwrap()),
                ..Default::default()
            },
            &[],
        );
        assert_eq!(selected, ["namespaces -/ns-1"]);
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

    #[test]
    fn sanitization_and_namespace_mapping() {
        let opts = RestoreOptions {
            backup_name: "nightly".into(),
            restore_name: "r1".into(),
            namespace_mappings: [("shop".to_string(), "shop-copy".to_string())].into(),
            ..Default::default()
        };
        let objects = vec![
            o(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "uid": "u"}, "spec": {"finalizers": ["kubernetes"]}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "uid": "u", "resourceVersion": "5",
                     "generation": 2, "creationTimestamp": "x", "selfLink": "/x", "ownerReferences": [{"name": "rs"}], "managedFields": []},
                     "spec": {"nodeName": "n1", "priority": 10, "containers": []}, "status": {"phase": "Running"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "shop"},
                     "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "nodePort": 30080}]}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": "shop"}, "spec": {"clusterIP": "None"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d", "namespace": "shop",
                     "annotations": {"pv.kubernetes.io/bind-completed": "yes", "keep": "me"}}, "spec": {"volumeName": "pv1"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
                     "spec": {"claimRef": {"namespace": "shop", "name": "d", "uid": "u", "resourceVersion": "1"}}}),
            ),
            o(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "shop"},
                     "spec": {"selector": {"matchLabels": {"controller-uid": "u"}}, "template": {"metadata": {"labels": {"controller-uid": "u", "app": "j"}}}}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "st", "namespace": "shop", "annotations": {RESTORE_STATUS_ANNOTATION: "true"}}, "status": {"x": 1}}),
            ),
        ];
        let p = plan(objects.clone(), &opts);
        let get = |name: &str| {
            let item = p.items.iter().find(|i| i.name == name).unwrap();
            item.object().into_value()
        };
        let ns = get("shop-copy");
        assert!(ns["spec"].get("finalizers").is_none() && ns["metadata"].get("uid").is_none());
        let pod = get("p");
        assert_eq!(pod["metadata"]["namespace"], "shop-copy");
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "selfLink",
            "ownerReferences",
            "managedFields",
        ] {
            assert!(pod["metadata"].get(k).is_none(), "{k}");
        }
        assert!(pod.get("status").is_none());
        assert!(pod["spec"].get("nodeName").is_none() && pod["spec"].get("priority").is_none());
        assert_eq!(
            pod["metadata"]["labels"]["velero.io/backup-name"],
            "nightly"
        );
        assert_eq!(pod["metadata"]["labels"]["velero.io/restore-name"], "r1");
        let svc = get("s");
        assert!(svc["spec"].get("clusterIP").is_none() && svc["spec"].get("clusterIPs").is_none());
        assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(
            get("h")["spec"]["clusterIP"],
            "None",
            "headless keeps clusterIP: None"
        );
        let pvc = get("d");
        assert!(pvc["metadata"]["annotations"]
            .get("pv.kubernetes.io/bind-completed")
            .is_none());
        assert_eq!(pvc["metadata"]["annotations"]["keep"], "me");
        let pv = get("pv1");
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "shop-copy");
        assert!(pv["spec"]["claimRef"].get("uid").is_none());
        let job = get("j");
        assert!(job["spec"].get("selector").is_none());
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"app": "j"})
        );
        assert_eq!(
            get("st")["status"]["x"],
            1,
            "the restore-status annotation keeps status"
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
        let svc = svc.as_value();
        assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30080);
    }
}
