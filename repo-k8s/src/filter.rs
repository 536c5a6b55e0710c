//! Which objects a backup takes, with Velero's semantics (each rule is a test below, citing
//! the Velero behaviour it follows).
//!
//! - Namespaces: include/exclude lists of names or globs (`*`, `?`, `[abc]`, `[a-z]`); an
//!   empty include list or `*` means all; excludes win. Validation as Velero's: `*` in the
//!   excludes, `*` with other includes, a name in both lists, and unsupported glob syntax
//!   (`**`, `|`, `(`, `)`, `!`, `{`, `}`, `,`, empty or unclosed brackets) are errors. An
//!   include glob that matches no namespace is a warning.
//! - Resources, old style: `include_resources`/`exclude_resources` (names resolved through
//!   discovery, `*` for all) and `include_cluster_resources` (true: all cluster-scoped
//!   resources; false: none; unset: all when every namespace is included, otherwise only
//!   those related to included items, such as the PVs of included PVCs).
//! - Resources, new style: included/excluded cluster-scoped and namespace-scoped lists.
//!   Mixing the styles is an error.
//! - Labels: `label_selector` or `or_label_selectors` (not both); the label
//!   `velero.io/exclude-from-backup=true` excludes an item or a namespace object; items
//!   being deleted are skipped.
//! - Related items: a pod's PVCs and PriorityClass, a Bound PVC's PV, the cluster role bindings naming an included
//!   service account and their cluster roles, a custom resource's CRD.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::discovery::{Discovery, Resource};
use crate::object::Object;
use crate::selector::LabelSelector;
use crate::summary::Summary;

/// Label that keeps an item out of every backup.
pub const EXCLUDE_LABEL: &str = "velero.io/exclude-from-backup";

/// The filters of a backup (Velero's `BackupSpec` names).
#[derive(Clone, Debug, Default)]
pub struct BackupFilter {
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    pub include_cluster_resources: Option<bool>,
    pub include_cluster_scoped_resources: Vec<String>,
    pub exclude_cluster_scoped_resources: Vec<String>,
    pub include_namespace_scoped_resources: Vec<String>,
    pub exclude_namespace_scoped_resources: Vec<String>,
    pub label_selector: Option<LabelSelector>,
    pub or_label_selectors: Vec<LabelSelector>,
}

/// A glob over names (Velero's namespace patterns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Checks the pattern uses only supported syntax.
    pub fn new(p: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("invalid namespace pattern {p:?}: {why}"));
        if p.is_empty() {
            return bad("empty");
        }
        if p.contains("**") {
            return bad("consecutive asterisks are not supported");
        }
        if let Some(c) = p.chars().find(|c| "|()!{},".contains(*c)) {
            return bad(&format!("{c:?} is not supported (only *, ? and [...] are)"));
        }
        let mut in_class = false;
        let mut class_len = 0;
        for c in p.chars() {
            match (c, in_class) {
                ('[', false) => {
                    in_class = true;
                    class_len = 0;
                }
                ('[', true) => return bad("nested brackets"),
                (']', true) => {
                    if class_len == 0 {
                        return bad("empty brackets");
                    }
                    in_class = false;
                }
                (']', false) => return bad("unmatched ]"),
                (_, true) => class_len += 1,
                _ => {}
            }
        }
        if in_class {
            return bad("unclosed [");
        }
        Ok(Glob(p.to_string()))
    }

    pub fn is_pattern(&self) -> bool {
        self.0.contains(['*', '?', '['])
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob_match(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob_match(&p[1..], &s[1..]),
        Some(b'[') => {
            let end = p.iter().position(|&c| c == b']').expect("validated");
            let class = &p[1..end];
            let Some(&c) = s.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit && glob_match(&p[end + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && glob_match(&p[1..], &s[1..]),
    }
}

/// Velero's `ValidateIncludesExcludes`: `*` alone or not at all in the includes, never in
/// the excludes, and no item in both lists (compared as written).
pub(crate) fn validate_lists(includes: &[String], excludes: &[String]) -> Vec<String> {
    let mut errs = Vec::new();
    if includes.len() > 1 && includes.iter().any(|i| i == "*") {
        errs.push(
            "includes list must either contain '*' only, or a non-empty list of items".into(),
        );
    }
    if excludes.iter().any(|e| e == "*") {
        errs.push("excludes list cannot contain '*'".into());
    }
    for e in excludes {
        if includes.contains(e) {
            errs.push(format!(
                "excludes list cannot contain an item in the includes list: {e}"
            ));
        }
    }
    errs
}

/// Velero's `validateNamespaceName`: with the glob characters `* ? [ ]` read as a letter,
/// the name must be a Kubernetes namespace name (an RFC 1123 label), in Kubernetes' words.
fn check_namespace_name(ns: &str) -> Result<(), String> {
    let name: String = ns
        .chars()
        .map(|c| if "*?[]".contains(c) { 'x' } else { c })
        .collect();
    let bad = |why: &str| Err(format!("invalid namespace {ns:?}: {why}"));
    if name.len() > 63 {
        return bad("must be no more than 63 characters");
    }
    let b = name.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !b.iter().all(inner) || !edge(b.first()) || !edge(b.last()) {
        return bad("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')");
    }
    Ok(())
}

/// Namespace includes and excludes.
#[derive(Clone, Debug, Default)]
pub struct NamespaceFilter {
    includes: Vec<Glob>,
    excludes: Vec<Glob>,
    all: bool,
}

impl NamespaceFilter {
    /// Validates as Velero's `ValidateNamespaceIncludesExcludes` does.
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Self, Vec<String>> {
        let mut errs = validate_lists(includes, excludes);
        let mut parse = |list: &[String]| -> Vec<Glob> {
            list.iter()
                // `""` is allowed, as in Velero: it names no namespace.
                .filter(|s| *s != "*" && !s.is_empty())
                .filter_map(|s| {
                    let glob = Glob::new(s).map_err(|e| errs.push(e)).ok()?;
                    check_namespace_name(s).map_err(|e| errs.push(e)).ok()?;
                    Some(glob)
                })
                .collect()
        };
        let inc = parse(includes);
        let exc = parse(excludes);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(NamespaceFilter {
            all: includes.is_empty() || includes.iter().any(|i| i == "*"),
            includes: inc,
            excludes: exc,
        })
    }

    pub fn includes(&self, ns: &str) -> bool {
        !self.excludes.iter().any(|g| g.matches(ns))
            && (self.all || self.includes.iter().any(|g| g.matches(ns)))
    }

    /// All namespaces, nothing excluded.
    pub fn includes_everything(&self) -> bool {
        self.all && self.excludes.is_empty()
    }

    /// Include patterns that match none of `namespaces`.
    pub fn unmatched_includes<'a>(
        &self,
        namespaces: impl Iterator<Item = &'a str> + Clone,
    ) -> Vec<String> {
        self.includes
            .iter()
            .filter(|g| g.is_pattern() && !namespaces.clone().any(|n| g.matches(n)))
            .map(|g| g.0.clone())
            .collect()
    }
}

/// Resource includes and excludes by group-resource (`*` for all).
#[derive(Clone, Debug, Default)]
struct ResourceSet {
    includes: BTreeSet<String>,
    excludes: BTreeSet<String>,
    all: bool,
    /// The scoped excludes are `*`: none of this scope.
    exclude_all: bool,
}

impl ResourceSet {
    /// `scoped`: the new cluster- or namespace-scoped lists, whose excludes may be `*` alone
    /// (Velero's `ValidateScopedIncludesExcludes`: the documented way to say "no
    /// cluster-scoped resources").
    fn new(
        d: &Discovery,
        includes: &[String],
        excludes: &[String],
        scoped: bool,
        errs: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Self {
        let star = |l: &[String]| l.iter().any(|i| i == "*");
        if includes.len() > 1 && star(includes) {
            errs.push(
                "includes list must either contain '*' only, or a non-empty list of items"
                    .to_string(),
            );
        }
        match (scoped, star(excludes)) {
            (false, true) => errs.push("excludes list cannot contain '*'".to_string()),
            (true, true) if excludes.len() > 1 => errs.push(
                "excludes list must either contain '*' only, or a non-empty list of items"
                    .to_string(),
            ),
            (true, true) if !includes.is_empty() => {
                errs.push("when exclude is '*', include cannot have value".to_string())
            }
            _ => {}
        }
        // A name no resource has is kept as it is, matching nothing, with a warning (Velero
        // keeps it silently): an include list of only such names includes nothing.
        let mut resolve = |list: &[String]| -> BTreeSet<String> {
            list.iter()
                .filter(|s| *s != "*")
                .filter_map(|s| match d.resolve(s) {
                    Ok(r) => Some(r.group_resource()),
                    Err(crate::discovery::ResolveError::Unknown(_)) => {
                        warnings.push(format!(
                            "resource {s:?} is not a built-in resource and no CRD defines it; it matches nothing"
                        ));
                        Some(s.clone())
                    }
                    Err(e) => {
                        errs.push(e.to_string());
                        None
                    }
                })
                .collect()
        };
        let inc = resolve(includes);
        let exc = resolve(excludes);
        for e in exc.intersection(&inc) {
            errs.push(format!(
                "excludes list cannot contain an item in the includes list: {e}"
            ));
        }
        ResourceSet {
            all: includes.is_empty() || star(includes),
            includes: inc,
            excludes: exc,
            exclude_all: scoped && star(excludes),
        }
    }

    fn excluded(&self, gr: &str) -> bool {
        self.exclude_all || self.excludes.contains(gr)
    }

    fn includes(&self, gr: &str) -> bool {
        !self.excluded(gr) && (self.all || self.includes.contains(gr))
    }

    fn explicitly_includes(&self, gr: &str) -> bool {
        !self.excluded(gr) && self.includes.contains(gr)
    }
}

/// How cluster-scoped and namespaced resources are chosen.
#[derive(Clone, Debug)]
enum Scope {
    Old {
        resources: ResourceSet,
        cluster: Option<bool>,
    },
    New {
        cluster: ResourceSet,
        cluster_given: bool,
        namespaced: ResourceSet,
    },
}

/// Why an item is in the backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Selected,
    /// The namespace object of an included namespace.
    Namespace,
    /// Pulled in by an included item (a PVC's PV, a CR's CRD, …).
    Related,
}

/// The outcome of filtering.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Indexes into the input, with the reason, in input order.
    pub items: Vec<(usize, Reason)>,
    /// Per namespace (`""` for cluster-scoped), what was odd but not fatal.
    pub warnings: BTreeMap<String, Vec<String>>,
    /// Skipped items and why, for `--dry-run` style reports.
    pub skipped: Vec<(usize, String)>,
}

impl Selection {
    fn warn(&mut self, ns: &str, w: String) {
        self.warnings.entry(ns.to_string()).or_default().push(w);
    }
}

/// A validated filter.
pub struct Filter {
    namespaces: NamespaceFilter,
    scope: Scope,
    selectors: Vec<LabelSelector>,
    /// Warnings about the filter itself, given with every selection.
    warnings: Vec<String>,
}

impl Filter {
    /// Validates the filter; every problem is reported, not just the first.
    pub fn new(f: &BackupFilter, d: &Discovery) -> crate::Result<Self> {
        let mut errs = Vec::new();
        let mut warnings = Vec::new();
        let namespaces = NamespaceFilter::new(&f.include_namespaces, &f.exclude_namespaces)
            .unwrap_or_else(|e| {
                errs.extend(e);
                NamespaceFilter::default()
            });
        let old = !f.include_resources.is_empty()
            || !f.exclude_resources.is_empty()
            || f.include_cluster_resources.is_some();
        let new = !f.include_cluster_scoped_resources.is_empty()
            || !f.exclude_cluster_scoped_resources.is_empty()
            || !f.include_namespace_scoped_resources.is_empty()
            || !f.exclude_namespace_scoped_resources.is_empty();
        if old && new {
            errs.push("include-resources, exclude-resources and include-cluster-resources are the old filter parameters; include-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources are the new ones: they cannot be used together".into());
        }
        let scope = if new {
            Scope::New {
                cluster: ResourceSet::new(
                    d,
                    &f.include_cluster_scoped_resources,
                    &f.exclude_cluster_scoped_resources,
                    true,
                    &mut errs,
                    &mut warnings,
                ),
                cluster_given: !f.include_cluster_scoped_resources.is_empty(),
                namespaced: ResourceSet::new(
                    d,
                    &f.include_namespace_scoped_resources,
                    &f.exclude_namespace_scoped_resources,
                    true,
                    &mut errs,
                    &mut warnings,
                ),
            }
        } else {
            Scope::Old {
                resources: ResourceSet::new(
                    d,
                    &f.include_resources,
                    &f.exclude_resources,
                    false,
                    &mut errs,
                    &mut warnings,
                ),
                cluster: f.include_cluster_resources,
            }
        };
        if f.label_selector.is_some() && !f.or_label_selectors.is_empty() {
            errs.push("encountered labelSelector as well as orLabelSelectors in backup spec, only one can be specified".into());
        }
        let selectors: Vec<LabelSelector> = f
            .label_selector
            .iter()
            .chain(&f.or_label_selectors)
            .cloned()
            .collect();
        for s in &selectors {
            if let Err(e) = s.validate() {
                errs.push(e.to_string());
            }
        }
        if !errs.is_empty() {
            return Err(crate::Error::Invalid(errs));
        }
        Ok(Filter {
            namespaces,
            scope,
            selectors,
            warnings,
        })
    }

    fn labels_match(&self, o: &Summary) -> bool {
        self.selectors.is_empty()
            || self
                .selectors
                .iter()
                .any(|s| s.matches_labels(|k| o.label(k)))
    }

    /// Whether a resource passes the resource filters; for cluster-scoped ones also whether
    /// they come in by themselves (`Some(true)`), only as related items (`Some(false)`), or
    /// never (`None`).
    fn resource_rule(&self, r: &Resource) -> Option<bool> {
        let gr = r.group_resource();
        match &self.scope {
            Scope::Old { resources, cluster } => {
                if !resources.includes(&gr) {
                    return None;
                }
                if !r.namespaced {
                    return match cluster {
                        Some(false) => None,
                        Some(true) => Some(true),
                        // Unset: everything when all namespaces are included, or when the
                        // resource is named explicitly; otherwise only related items.
                        None => Some(
                            self.namespaces.includes_everything()
                                || resources.explicitly_includes(&gr),
                        ),
                    };
                }
                Some(true)
            }
            Scope::New {
                cluster,
                cluster_given,
                namespaced,
            } => {
                if r.namespaced {
                    return namespaced.includes(&gr).then_some(true);
                }
                if cluster.excluded(&gr) {
                    return None;
                }
                // Velero's ScopeIncludesExcludes: with no cluster-scoped lists at all, every
                // cluster-scoped resource when the namespaces and the namespace-scoped
                // resources are "everything", else only related items; with lists, theirs.
                let no_lists = !*cluster_given && cluster.excludes.is_empty();
                if no_lists {
                    let everything = self.namespaces.includes_everything()
                        && namespaced.all
                        && namespaced.excludes.is_empty()
                        && !namespaced.exclude_all;
                    return Some(everything);
                }
                Some(cluster.includes(&gr))
            }
        }
    }

    /// Velero exempts namespace objects from the cluster-scoped rules ("if the resource is
    /// NOT namespaces and it is cluster-scoped, check whether it should be skipped"): they
    /// follow the namespace filter and explicit resource excludes only.
    fn namespace_objects_allowed(&self) -> bool {
        match &self.scope {
            Scope::Old { resources, .. } => resources.includes("namespaces"),
            Scope::New { cluster, .. } => !cluster.excludes.contains("namespaces"),
        }
    }

    /// Chooses the items of `objects` a backup takes. CRDs among the objects must already
    /// be in `d` (see [`Discovery::add_crd`]).
    pub fn select<O: std::borrow::Borrow<Object>>(
        &self,
        objects: &[O],
        d: &Discovery,
    ) -> Selection {
        let summaries: Vec<Summary> = objects.iter().map(|o| Summary::of(o.borrow())).collect();
        self.select_summaries(&summaries, d)
    }

    /// [`Filter::select`] over summaries: what a backup of many objects holds in memory.
    pub fn select_summaries(&self, objects: &[Summary], d: &Discovery) -> Selection {
        let mut sel = Selection::default();
        for w in &self.warnings {
            sel.warn("", w.clone());
        }
        let is_namespace_object = |o: &Summary| {
            d.for_summary(o)
                .is_some_and(|r| r.group.is_empty() && r.plural == "namespaces")
        };
        // A namespace labelled to be excluded takes its contents with it (Velero adds it to
        // the excluded namespaces).
        let excluded_by_label: BTreeSet<&str> = objects
            .iter()
            .filter(|o| is_namespace_object(o) && o.label(EXCLUDE_LABEL) == Some("true"))
            .map(|o| o.name())
            .collect();
        let namespaces: BTreeSet<&str> = objects
            .iter()
            .filter_map(|o| match o.kind() {
                "Namespace" if o.group_version().0.is_empty() => Some(o.name()),
                _ => o.namespace(),
            })
            .collect();
        for p in self
            .namespaces
            .unmatched_includes(namespaces.iter().copied())
        {
            sel.warn(
                "",
                format!(
                    "namespace pattern {p:?} matches no namespace; nothing is backed up for it"
                ),
            );
        }
        let mut chosen: Vec<Option<Reason>> = vec![None; objects.len()];
        let mut related_only: Vec<usize> = Vec::new();
        let mut used_namespaces: BTreeSet<String> = BTreeSet::new();
        for (i, o) in objects.iter().enumerate() {
            let ns = o.namespace().unwrap_or_default();
            let r = d.for_summary(o);
            let namespaced = match r {
                Some(r) => r.namespaced,
                None => {
                    sel.warn(ns, format!("{} {}/{}: unknown resource (no built-in entry and no CRD in the backup); kept as {}", o.api_version(), o.kind(), o.name(), if o.namespace().is_some() { "namespaced" } else { "cluster-scoped" }));
                    o.namespace().is_some()
                }
            };
            if o.label(EXCLUDE_LABEL) == Some("true") {
                sel.skipped.push((i, format!("label {EXCLUDE_LABEL}=true")));
                continue;
            }
            if o.is_being_deleted() {
                sel.skipped
                    .push((i, "being deleted (deletionTimestamp set)".into()));
                continue;
            }
            if is_namespace_object(o) {
                // Decided below, once we know which namespaces have items.
                continue;
            }
            if namespaced && excluded_by_label.contains(ns) {
                sel.skipped.push((
                    i,
                    format!("namespace {ns} is labelled {EXCLUDE_LABEL}=true"),
                ));
                continue;
            }
            if namespaced && !self.namespaces.includes(ns) {
                sel.skipped
                    .push((i, format!("namespace {ns} not included")));
                continue;
            }
            let rule = match r {
                Some(r) => self.resource_rule(r),
                // Unknown resources follow the "all resources" default unless lists were given.
                None => match &self.scope {
                    Scope::Old { resources, .. } if resources.all => {
                        Some(namespaced || self.namespaces.includes_everything())
                    }
                    Scope::New { namespaced: n, .. } if namespaced && n.all => Some(true),
                    _ => None,
                },
            };
            match rule {
                None => sel.skipped.push((i, "resource not included".into())),
                Some(_) if !self.labels_match(o) => sel
                    .skipped
                    .push((i, "labels do not match the selector".into())),
                Some(true) => {
                    chosen[i] = Some(Reason::Selected);
                    if namespaced {
                        used_namespaces.insert(ns.to_string());
                    }
                }
                Some(false) => related_only.push(i),
            }
        }
        // Namespace objects: those of included namespaces that hold an item, or all included
        // ones when no label selector narrows the backup.
        for (i, o) in objects.iter().enumerate() {
            if !is_namespace_object(o)
                || o.label(EXCLUDE_LABEL) == Some("true")
                || o.is_being_deleted()
            {
                continue;
            }
            if o.is_inactive_namespace() {
                sel.skipped.push((i, "namespace is not Active".into()));
                continue;
            }
            let name = o.name();
            let wanted = self.namespaces.includes(name)
                && self.namespace_objects_allowed()
                && (self.selectors.is_empty()
                    || used_namespaces.contains(name)
                    || self.labels_match(o));
            if wanted {
                chosen[i] = Some(Reason::Namespace);
            } else {
                sel.skipped.push((i, "namespace not included".into()));
            }
        }
        self.add_related(objects, d, &mut chosen, &related_only);
        for (i, c) in chosen.iter().enumerate() {
            if let Some(reason) = c {
                sel.items.push((i, *reason));
            }
        }
        let taken: BTreeSet<usize> = sel.items.iter().map(|(i, _)| *i).collect();
        sel.skipped.retain(|(i, _)| !taken.contains(i));
        for &i in &related_only {
            if chosen[i].is_none() {
                sel.skipped.push((i, "cluster-scoped and not related to an included item (include-cluster-resources is unset and not all namespaces are included)".into()));
            }
        }
        sel
    }

    /// Follows relations from chosen items to the candidates in `pool` (cluster-scoped items
    /// that only come in as related items), and on from what they bring in. Each item is
    /// visited once: relations are looked up in maps built up front, never by scanning.
    fn add_related(
        &self,
        objects: &[Summary],
        d: &Discovery,
        chosen: &mut [Option<Reason>],
        pool: &[usize],
    ) {
        type Key = (String, String, String);
        let key =
            |kind: &str, ns: &str, name: &str| -> Key { (kind.into(), ns.into(), name.into()) };
        let by_key: HashMap<Key, usize> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    key(o.kind(), o.namespace().unwrap_or_default(), o.name()),
                    i,
                )
            })
            .collect();
        let crd_of: HashMap<&str, usize> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.kind() == "CustomResourceDefinition")
            .map(|(i, o)| (o.name(), i))
            .collect();
        // Cluster role bindings by the service accounts (namespace, name) they name.
        let mut bindings_of: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (j, b) in objects
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind() == "ClusterRoleBinding")
        {
            for (ns, name) in b.service_accounts() {
                bindings_of.entry((ns, name)).or_default().push(j);
            }
        }
        let mut in_pool = vec![false; objects.len()];
        for &i in pool {
            in_pool[i] = true;
        }
        let mut queue: Vec<usize> = (0..objects.len())
            .filter(|&i| chosen[i].is_some())
            .collect();
        while let Some(i) = queue.pop() {
            let o = &objects[i];
            let ns = o.namespace().unwrap_or_default();
            let mut wants: Vec<usize> = Vec::new();
            match o.kind() {
                "Pod" => {
                    for claim in o.refs() {
                        wants.extend(by_key.get(&key("PersistentVolumeClaim", ns, claim)));
                    }
                    if let Some(p) = o.priority_class() {
                        wants.extend(by_key.get(&key("PriorityClass", "", p)));
                    }
                }
                "PersistentVolumeClaim" => {
                    for pv in o.refs() {
                        wants.extend(by_key.get(&key("PersistentVolume", "", pv)));
                    }
                }
                "ServiceAccount" => {
                    wants.extend(bindings_of.get(&(ns, o.name())).into_iter().flatten());
                }
                "ClusterRoleBinding" => {
                    for role in o.refs() {
                        wants.extend(by_key.get(&key("ClusterRole", "", role)));
                    }
                }
                _ => {}
            }
            // A custom resource brings its CRD.
            if let Some(r) = d.for_summary(o) {
                if let Some(&c) = crd_of.get(r.group_resource().as_str()) {
                    wants.push(c);
                }
            }
            for j in wants {
                if chosen[j].is_none() && (in_pool[j] || self.related_allowed(&objects[j], d)) {
                    chosen[j] = Some(Reason::Related);
                    queue.push(j);
                }
            }
        }
    }

    /// Whether an item not selected by itself may come in as related: it must pass the
    /// resource filters (related items never override an explicit exclusion).
    fn related_allowed(&self, o: &Summary, d: &Discovery) -> bool {
        if o.label(EXCLUDE_LABEL) == Some("true") || o.is_being_deleted() {
            return false;
        }
        match d.for_summary(o) {
            Some(r) if r.namespaced => {
                self.namespaces.includes(o.namespace().unwrap_or_default())
                    && self.resource_rule(r).is_some()
            }
            Some(r) => self.resource_rule(r).is_some(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn o(v: serde_json::Value) -> Object {
        Object::from_value(v, "t").unwrap()
    }

    fn ns(name: &str) -> Object {
        o(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    }

    fn cm(ns: &str, name: &str, labels: serde_json::Value) -> Object {
        o(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels}}),
        )
    }

    /// A small cluster: namespaces a, b, kube-system; a pod with a PVC bound to a PV; a
    /// service account bound by a cluster role binding; a CRD and one of its resources; a
    /// storage class.
    fn cluster() -> Vec<Object> {
        vec![
            ns("app-a"),
            ns("app-b"),
            ns("kube-system"),
            cm("app-a", "c1", json!({"tier": "web"})),
            cm("app-b", "c2", json!({"tier": "db"})),
            cm("kube-system", "c3", json!({})),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "app-a"},
                     "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "app-a"},
                     "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-other"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "op", "namespace": "app-a"}}),
            ),
            o(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "op-binding"},
                     "roleRef": {"kind": "ClusterRole", "name": "op-role"},
                     "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "app-a"}]}),
            ),
            o(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "op-role"}}),
            ),
            o(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "unrelated"}}),
            ),
            o(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
                     "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                              "versions": [{"name": "v1", "served": true, "storage": true}]}}),
            ),
            o(
                json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "app-b"}}),
            ),
            o(
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}}),
            ),
        ]
    }

    fn discovery(objects: &[Object]) -> Discovery {
        let mut d = Discovery::built_in();
        for x in objects
            .iter()
            .filter(|x| x.kind() == "CustomResourceDefinition")
        {
            d.add_crd(x).unwrap();
        }
        d
    }

    /// `kind/namespace/name` of the selected items.
    fn run(f: BackupFilter) -> (Vec<String>, Selection) {
        let objects = cluster();
        let d = discovery(&objects);
        let filter = Filter::new(&f, &d).unwrap_or_else(|e| panic!("{e:?}"));
        let sel = filter.select(&objects, &d);
        let names = sel
            .items
            .iter()
            .map(|(i, _)| {
                let x = &objects[*i];
                format!("{}/{}/{}", x.kind(), x.namespace().unwrap_or("-"), x.name())
            })
            .collect();
        (names, sel)
    }

    fn errors(f: BackupFilter) -> Vec<String> {
        Filter::new(&f, &Discovery::built_in())
            .err()
            .map(|e| e.problems().to_vec())
            .unwrap_or_default()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_filter_takes_everything() {
        // Velero: "By default, Velero includes all objects in a backup".
        let (got, _) = run(BackupFilter::default());
        assert_eq!(got.len(), cluster().len());
    }

    #[test]
    fn namespace_globs_and_excludes_win() {
        // Velero namespace glob patterns: *, ?, [abc], [a-z]; excludes win
        // (IncludesExcludes.ShouldInclude checks excludes first).
        let (got, _) = run(BackupFilter {
            include_namespaces: strings(&["app-*"]),
            exclude_namespaces: strings(&["app-[b]"]),
            ..Default::default()
        });
        assert!(got.contains(&"ConfigMap/app-a/c1".to_string()));
        assert!(!got.iter().any(|g| g.contains("app-b")), "{got:?}");
        assert!(!got.iter().any(|g| g.contains("kube-system")));
        assert!(got.contains(&"Namespace/-/app-a".to_string()));
        let g = Glob::new("ns?").unwrap();
        assert!(g.matches("ns1") && !g.matches("ns10"));
        let g = Glob::new("ns[a-c]").unwrap();
        assert!(g.matches("nsb") && !g.matches("nsd"));
    }

    #[test]
    fn namespace_validation_errors_are_velero_s() {
        // ValidateNamespaceIncludesExcludes.
        let e = errors(BackupFilter {
            exclude_namespaces: strings(&["*"]),
            ..Default::default()
        });
        assert_eq!(e, vec!["excludes list cannot contain '*'"]);
        let e = errors(BackupFilter {
            include_namespaces: strings(&["*", "a"]),
            ..Default::default()
        });
        assert_eq!(
            e,
            vec!["includes list must either contain '*' only, or a non-empty list of items"]
        );
        let e = errors(BackupFilter {
            include_namespaces: strings(&["a"]),
            exclude_namespaces: strings(&["a"]),
            ..Default::default()
        });
        assert_eq!(
            e,
            vec!["excludes list cannot contain an item in the includes list: a"]
        );
        // Unsupported glob syntax (Velero's namespace glob docs).
        for bad in [
            "a**", "a|b", "(a)", "!a", "{a,b}", "a,b", "ns[]", "ns[a", "ns]",
        ] {
            let e = errors(BackupFilter {
                include_namespaces: strings(&[bad]),
                ..Default::default()
            });
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(e[0].contains("invalid namespace pattern"), "{e:?}");
        }
    }

    /// Velero pkg/backup/actions/backup_pv_action.go (a PVC brings its PV only when Bound)
    /// and pkg/util/actionhelpers/pod_helper.go (a pod brings its PriorityClass and PVCs).
    #[test]
    fn a_pod_brings_its_priority_class_and_only_a_bound_claim_its_volume() {
        let objects = vec![
            ns("app"),
            o(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "app"},
                "spec": {"priorityClassName": "high",
                         "volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "bound"}},
                                     {"name": "b", "persistentVolumeClaim": {"claimName": "pending"}}]}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bound", "namespace": "app"},
                "spec": {"volumeName": "pv-bound"}, "status": {"phase": "Bound"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pending", "namespace": "app"},
                "spec": {"volumeName": "pv-pending"}, "status": {"phase": "Pending"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-bound"}}),
            ),
            o(
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-pending"}}),
            ),
            o(
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000}),
            ),
            o(
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "low"}, "value": 1}),
            ),
        ];
        let d = discovery(&objects);
        let f = BackupFilter {
            include_namespaces: strings(&["app"]),
            ..Default::default()
        };
        let sel = Filter::new(&f, &d).unwrap().select(&objects, &d);
        let got: Vec<String> = sel
            .items
            .iter()
            .map(|(i, _)| format!("{}/{}", objects[*i].kind(), objects[*i].name()))
            .collect();
        for want in [
            "PersistentVolume/pv-bound",
            "PriorityClass/high",
            "PersistentVolumeClaim/pending",
        ] {
            assert!(got.contains(&want.to_string()), "{want} missing: {got:?}");
        }
        for not in ["PersistentVolume/pv-pending", "PriorityClass/low"] {
            assert!(!got.contains(&not.to_string()), "{not} taken: {got:?}");
        }
    }

    /// Velero includes_excludes_test.go TestValidateNamespaceIncludesExcludes: names must be
    /// RFC 1123 labels once glob characters are read as letters; `""` is allowed.
    #[test]
    fn namespace_names_are_validated_as_velero_does() {
        for good in [
            "foobar",
            "bar-321",
            "foo123bar",
            "",
            "nginx-ingress-*",
            "*-bar",
            "*kube*",
            "test-?",
            "ns-[0-9]",
        ] {
            let f = BackupFilter {
                include_namespaces: strings(&[good]),
                exclude_namespaces: strings(&["123bar"]),
                ..Default::default()
            };
            assert!(Filter::new(&f, &Discovery::default()).is_ok(), "{good:?}");
        }
        let f = BackupFilter {
            exclude_namespaces: strings(&[""]),
            ..Default::default()
        };
        assert!(Filter::new(&f, &Discovery::default()).is_ok());
        for bad in [
            "-123foo", "foo321-", "foo.bar", "bar_321", "$foo", "foo>bar", "bar=321",
        ] {
            let e = errors(BackupFilter {
                include_namespaces: strings(&[bad]),
                ..Default::default()
            });
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(
                e[0].starts_with(&format!("invalid namespace {bad:?}"))
                    && e[0].contains("RFC 1123"),
                "{e:?}"
            );
        }
    }

    /// Velero includes_excludes.go ValidateScopedIncludesExcludes: a scoped exclude list may
    /// be `*` alone (no resources of that scope), with no includes beside it.
    #[test]
    fn scoped_excludes_accept_a_lone_star() {
        let (got, _) = run(BackupFilter {
            exclude_cluster_scoped_resources: strings(&["*"]),
            ..Default::default()
        });
        assert!(got.iter().any(|g| g.starts_with("ConfigMap/")), "{got:?}");
        assert!(
            !got.iter()
                .any(|g| g.starts_with("StorageClass/") || g.starts_with("PersistentVolume/")),
            "{got:?}"
        );
        let e = errors(BackupFilter {
            exclude_cluster_scoped_resources: strings(&["*", "storageclasses"]),
            ..Default::default()
        });
        assert_eq!(
            e,
            vec!["excludes list must either contain '*' only, or a non-empty list of items"]
        );
        let e = errors(BackupFilter {
            include_cluster_scoped_resources: strings(&["storageclasses"]),
            exclude_cluster_scoped_resources: strings(&["*"]),
            ..Default::default()
        });
        assert_eq!(e, vec!["when exclude is '*', include cannot have value"]);
        // The old lists still refuse it, as Velero's ValidateIncludesExcludes does.
        let e = errors(BackupFilter {
            exclude_resources: strings(&["*"]),
            ..Default::default()
        });
        assert_eq!(e, vec!["excludes list cannot contain '*'"]);
    }

    #[test]
    fn a_wildcard_matching_nothing_backs_up_nothing_with_a_warning() {
        let (got, sel) = run(BackupFilter {
            include_namespaces: strings(&["nothing-*"]),
            ..Default::default()
        });
        assert!(got.iter().all(|g| !g.starts_with("ConfigMap")), "{got:?}");
        assert!(
            sel.warnings[""]
                .iter()
                .any(|w| w.contains("matches no namespace")),
            "{:?}",
            sel.warnings
        );
    }

    #[test]
    fn include_and_exclude_resources_resolve_names() {
        // --include-resources takes resource.group names (short names resolve too);
        // excludes win.
        let (got, _) = run(BackupFilter {
            include_resources: strings(&["cm", "pods"]),
            ..Default::default()
        });
        assert!(
            got.iter()
                .all(|g| g.starts_with("ConfigMap/") || g.starts_with("Pod/")),
            "{got:?}"
        );
        assert_eq!(got.len(), 4);
        let (got, _) = run(BackupFilter {
            include_resources: strings(&["*"]),
            exclude_resources: strings(&["po", "namespaces"]),
            ..Default::default()
        });
        assert!(
            !got.iter()
                .any(|g| g.starts_with("Pod/") || g.starts_with("Namespace/")),
            "{got:?}"
        );
        // A name in both lists is an error once resolved (`pod` and `pods` are one resource).
        let e = errors(BackupFilter {
            include_resources: strings(&["pods"]),
            exclude_resources: strings(&["pod"]),
            ..Default::default()
        });
        assert_eq!(
            e,
            vec!["excludes list cannot contain an item in the includes list: pods"]
        );
        // An unknown name is no error (a warning: see
        // unresolvable_resource_names_match_nothing_with_a_warning).
        let e = errors(BackupFilter {
            include_resources: strings(&["widgets"]),
            ..Default::default()
        });
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn include_cluster_resources_true_false_unset() {
        // Velero: unset includes cluster-scoped resources when backing up all namespaces,
        // otherwise only those related to included items (the PV of an included PVC).
        let (got, _) = run(BackupFilter {
            include_namespaces: strings(&["app-a"]),
            ..Default::default()
        });
        assert!(
            got.contains(&"PersistentVolume/-/pv-1".to_string()),
            "{got:?}"
        );
        assert!(!got.contains(&"PersistentVolume/-/pv-other".to_string()));
        assert!(!got.contains(&"StorageClass/-/fast".to_string()));
        assert!(
            got.contains(&"ClusterRoleBinding/-/op-binding".to_string()),
            "SA → CRB"
        );
        assert!(
            got.contains(&"ClusterRole/-/op-role".to_string()),
            "CRB → ClusterRole"
        );
        assert!(!got.contains(&"ClusterRole/-/unrelated".to_string()));
        // true: every cluster-scoped resource.
        let (got, _) = run(BackupFilter {
            include_namespaces: strings(&["app-a"]),
            include_cluster_resources: Some(true),
            ..Default::default()
        });
        assert!(
            got.contains(&"StorageClass/-/fast".to_string())
                && got.contains(&"PersistentVolume/-/pv-other".to_string())
        );
        // false: none, not even related PVs.
        let (got, _) = run(BackupFilter {
            include_cluster_resources: Some(false),
            ..Default::default()
        });
        assert!(
            !got.iter().any(|g| g.starts_with("PersistentVolume/")
                || g.starts_with("StorageClass/")
                || g.starts_with("ClusterRole")),
            "{got:?}"
        );
        assert!(
            got.contains(&"Namespace/-/app-a".to_string()),
            "namespaces of included items stay"
        );
    }

    #[test]
    fn new_scoped_resource_filters_and_no_mixing() {
        let (got, _) = run(BackupFilter {
            include_cluster_scoped_resources: strings(&["storageclasses"]),
            include_namespace_scoped_resources: strings(&["configmaps"]),
            ..Default::default()
        });
        assert!(got.contains(&"StorageClass/-/fast".to_string()));
        assert!(
            !got.iter()
                .any(|g| g.starts_with("Pod/") || g.starts_with("PersistentVolume/-/pv-other")),
            "{got:?}"
        );
        assert!(got.iter().any(|g| g.starts_with("ConfigMap/")));
        let e = errors(BackupFilter {
            include_resources: strings(&["pods"]),
            include_cluster_scoped_resources: strings(&["storageclasses"]),
            ..Default::default()
        });
        assert!(e[0].contains("cannot be used together"), "{e:?}");
        let e = errors(BackupFilter {
            include_cluster_resources: Some(true),
            exclude_namespace_scoped_resources: strings(&["pods"]),
            ..Default::default()
        });
        assert!(e[0].contains("cannot be used together"), "{e:?}");
    }

    #[test]
    fn label_selectors_and_or_selectors() {
        let (got, _) = run(BackupFilter {
            label_selector: Some(LabelSelector::parse("tier=web").unwrap()),
            ..Default::default()
        });
        assert!(got.contains(&"ConfigMap/app-a/c1".to_string()));
        assert!(!got.contains(&"ConfigMap/app-b/c2".to_string()));
        assert!(
            got.contains(&"Namespace/-/app-a".to_string()),
            "the namespace of a selected item comes along"
        );
        assert!(!got.contains(&"Namespace/-/kube-system".to_string()));
        let (got, _) = run(BackupFilter {
            or_label_selectors: vec![
                LabelSelector::parse("tier=web").unwrap(),
                LabelSelector::parse("tier in (db)").unwrap(),
            ],
            ..Default::default()
        });
        assert!(
            got.contains(&"ConfigMap/app-a/c1".to_string())
                && got.contains(&"ConfigMap/app-b/c2".to_string())
        );
        let e = errors(BackupFilter {
            label_selector: Some(LabelSelector::parse("a=b").unwrap()),
            or_label_selectors: vec![LabelSelector::parse("c=d").unwrap()],
            ..Default::default()
        });
        assert_eq!(e, vec!["encountered labelSelector as well as orLabelSelectors in backup spec, only one can be specified"]);
    }

    /// Velero pkg/backup/backup_test.go ("resources with velero.io/exclude-from-backup=true
    /// label are not included", "…label specified but not 'true' are included", "terminating
    /// resources are not backed up"), the backup controller's exclusion of labelled
    /// namespaces, and item_collector's "terminating ns should not tracked".
    #[test]
    fn exclude_label_and_deleting_items() {
        let mut objects = cluster();
        objects.push(cm("app-a", "secret-sauce", json!({EXCLUDE_LABEL: "true"})));
        objects.push(cm("app-a", "not-true", json!({EXCLUDE_LABEL: "false"})));
        objects.push(o(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dying", "namespace": "app-a", "deletionTimestamp": "2026-01-01T00:00:00Z"}})));
        objects.push(o(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hidden", "labels": {EXCLUDE_LABEL: "true"}}})));
        objects.push(cm("hidden", "inside-hidden", json!({})));
        objects.push(o(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "going"}, "status": {"phase": "Terminating"}})));
        objects.push(cm("going", "inside-going", json!({})));
        let d = discovery(&objects);
        let sel = Filter::new(&BackupFilter::default(), &d)
            .unwrap()
            .select(&objects, &d);
        let names: Vec<&str> = sel.items.iter().map(|(i, _)| objects[*i].name()).collect();
        assert!(
            !names.contains(&"secret-sauce")
                && !names.contains(&"dying")
                && !names.contains(&"hidden")
                && !names.contains(&"inside-hidden")
                && !names.contains(&"going"),
            "{names:?}"
        );
        // Only "true" excludes; a Terminating namespace's contents are taken (Velero skips
        // only its object).
        assert!(
            names.contains(&"not-true") && names.contains(&"inside-going"),
            "{names:?}"
        );
        assert!(sel
            .skipped
            .iter()
            .any(|(_, why)| why.contains(EXCLUDE_LABEL)));
        assert!(sel
            .skipped
            .iter()
            .any(|(_, why)| why.contains("being deleted")));
    }

    /// Velero pkg/util/collections/includes_excludes.go ScopeIncludesExcludes.ShouldInclude:
    /// with no cluster-scoped lists, cluster-scoped resources come when namespaces and
    /// namespace-scoped resources are "everything", else only as related items; with only
    /// cluster excludes, every other cluster-scoped resource.
    #[test]
    fn scoped_filters_take_cluster_scoped_resources_as_velero_does() {
        let has = |f: BackupFilter, what: &str| run(f).0.contains(&what.to_string());
        let star = BackupFilter {
            include_namespace_scoped_resources: strings(&["*"]),
            ..Default::default()
        };
        assert!(has(star, "ClusterRole/-/unrelated"));
        let pods = BackupFilter {
            include_namespace_scoped_resources: strings(&["pods"]),
            ..Default::default()
        };
        assert!(!has(pods, "ClusterRole/-/unrelated"));
        let no_roles = BackupFilter {
            exclude_cluster_scoped_resources: strings(&["clusterroles"]),
            ..Default::default()
        };
        assert!(has(no_roles.clone(), "StorageClass/-/fast"));
        assert!(!has(no_roles, "ClusterRole/-/unrelated"));
    }

    /// Velero pkg/backup/backup_test.go TestBackupOldResourceFiltering ("unresolvable
    /// included resources are ignored", "when all included resources are unresolvable,
    /// nothing is included", "unresolvable excluded resources are ignored").
    #[test]
    fn unresolvable_resource_names_match_nothing_with_a_warning() {
        let objects = cluster();
        let d = discovery(&objects);
        let select = |inc: &[&str], exc: &[&str]| {
            let f = BackupFilter {
                include_resources: strings(inc),
                exclude_resources: strings(exc),
                ..Default::default()
            };
            let sel = Filter::new(&f, &d).unwrap().select(&objects, &d);
            let kinds: BTreeSet<&str> = sel.items.iter().map(|(i, _)| objects[*i].kind()).collect();
            let warned = sel
                .warnings
                .values()
                .flatten()
                .any(|w| w.contains("nosuchthing"));
            (kinds, warned)
        };
        let (kinds, warned) = select(&["pods", "nosuchthing"], &[]);
        assert!(
            warned && kinds.contains("Pod") && !kinds.contains("ConfigMap"),
            "{kinds:?}"
        );
        let (kinds, warned) = select(&["nosuchthing"], &[]);
        assert!(warned && kinds.is_empty(), "{kinds:?}");
        let (all, _) = select(&[], &[]);
        let (kinds, warned) = select(&[], &["nosuchthing"]);
        assert!(warned);
        assert_eq!(kinds, all);
    }

    #[test]
    fn custom_resources_bring_their_crd_and_unknown_kinds_warn() {
        let (got, _) = run(BackupFilter {
            include_namespaces: strings(&["app-b"]),
            ..Default::default()
        });
        assert!(got.contains(&"Widget/app-b/w".to_string()));
        assert!(
            got.contains(&"CustomResourceDefinition/-/widgets.example.com".to_string()),
            "{got:?}"
        );
        let objects = vec![o(
            json!({"apiVersion": "mystery.io/v1", "kind": "Thing", "metadata": {"name": "t", "namespace": "x"}}),
        )];
        let d = Discovery::built_in();
        let sel = Filter::new(&BackupFilter::default(), &d)
            .unwrap()
            .select(&objects, &d);
        assert_eq!(sel.items.len(), 1, "an unknown kind is kept, not dropped");
        assert!(sel.warnings["x"][0].contains("unknown resource"));
    }
}
