//! Which backed-up items a restore takes, with Velero's restore semantics (each rule is a
//! test below, citing the Velero source or test it follows).
//!
//! - Resources: include/exclude lists, each name resolved through discovery to
//!   `resource.group` (`pv` → `persistentvolumes`); a name discovery does not know is kept as
//!   given and matched as a glob, so it never widens to "everything". An empty include list
//!   or `*` means all; excludes win.
//! - Namespaces: include/exclude lists of names or globs, matched against the namespace an
//!   item was backed up from (before `--namespace-mappings`).
//! - Cluster-scoped items, `include_cluster_resources`: `false` none; `true` all; unset, all
//!   when every namespace is included, otherwise only what a restored item needs: the PV
//!   bound to a restored PVC, and the Namespace objects of the namespaces restored into.
//! - Labels: `label_selector`, or `or_label_selectors` (one of them must match); not both.
//!   Items taken because another needs them are not matched against the selectors.
//! - Velero's must-have resources (`datauploads.velero.io`,
//!   `volumesnapshotcontents.snapshot.storage.k8s.io`) are always taken.
//!
//! Validation follows Velero's restore controller (`validateAndComplete`), with its wording:
//! a non-restorable resource named in the includes, `*` with other includes, `*` in the
//! excludes, an item in both lists, and both selector kinds are errors. cairn also checks
//! namespace patterns as it does for backups (Velero's restore does not, and a malformed
//! glob then silently matches nothing).

use std::collections::BTreeSet;

use crate::discovery::Discovery;
use crate::filter::{validate_lists, Glob, NamespaceFilter};
use crate::restore::NEVER_RESTORED;
use crate::selector::LabelSelector;

/// Resources a restore takes whatever its filters say (Velero's `resourceMustHave`).
pub const MUST_HAVE: &[&str] = &[
    "datauploads.velero.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
];

/// The filters of a restore (Velero's `RestoreSpec` names).
#[derive(Clone, Debug, Default)]
pub struct RestoreFilter {
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    pub include_cluster_resources: Option<bool>,
    pub label_selector: Option<LabelSelector>,
    pub or_label_selectors: Vec<LabelSelector>,
}

/// What a restore does with one backed-up item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Take {
    Yes,
    /// Only if a restored item needs it (a PVC's PV, a namespace's Namespace object).
    IfNeeded,
    No,
}

/// A validated restore filter.
#[derive(Clone, Debug)]
pub struct ItemFilter {
    /// Velero's must-have resources pass (a restore's filters; not a phase's).
    must_have: bool,
    namespaces: NamespaceFilter,
    resources: Resources,
    cluster: Option<bool>,
    selector: Option<LabelSelector>,
    or_selectors: Vec<LabelSelector>,
}

impl Default for ItemFilter {
    /// Everything.
    fn default() -> Self {
        ItemFilter {
            must_have: true,
            namespaces: NamespaceFilter::new(&[], &[]).expect("no lists, no errors"),
            resources: Resources::default(),
            cluster: None,
            selector: None,
            or_selectors: Vec::new(),
        }
    }
}

/// Resource includes and excludes: resolved `resource.group` names, or globs over them.
#[derive(Clone, Debug, Default)]
struct Resources {
    includes: Vec<Glob>,
    excludes: Vec<Glob>,
}

impl Resources {
    fn includes(&self, gr: &str) -> bool {
        !self.excludes.iter().any(|g| g.matches(gr))
            && (self.includes.is_empty() || self.includes.iter().any(|g| g.matches(gr)))
    }
}

impl RestoreFilter {
    /// Validates the filter (every problem, in Velero's words) and resolves resource names.
    pub fn resolve(&self, d: &Discovery) -> crate::Result<ItemFilter> {
        let mut errs = Vec::new();
        let resolve = |name: &str| match d.resolve(name) {
            Ok(r) => r.group_resource(),
            Err(_) => name.to_string(),
        };
        // Velero adds every non-restorable resource to the excludes first, so naming one in
        // the includes is reported twice: as non-restorable, and as in both lists.
        let mut excludes = self.exclude_resources.clone();
        for r in &self.include_resources {
            let gr = resolve(r);
            if NEVER_RESTORED.contains(&gr.as_str()) || NEVER_RESTORED.contains(&r.as_str()) {
                errs.push(format!("{r} are non-restorable resources"));
                excludes.push(r.clone());
            }
        }
        for e in validate_lists(&self.include_resources, &excludes) {
            errs.push(format!("Invalid included/excluded resource lists: {e}"));
        }
        for e in validate_lists(&self.include_namespaces, &self.exclude_namespaces) {
            errs.push(format!("Invalid included/excluded namespace lists: {e}"));
        }
        let namespaces =
            match NamespaceFilter::new(&self.include_namespaces, &self.exclude_namespaces) {
                Ok(f) => f,
                Err(e) => {
                    // The list rules are reported above; add what only cairn checks.
                    let listed: BTreeSet<String> = errs.iter().cloned().collect();
                    errs.extend(
                        e.into_iter()
                            .filter(|m| !listed.iter().any(|l| l.ends_with(m.as_str()))),
                    );
                    NamespaceFilter::default()
                }
            };
        if self.label_selector.is_some() && !self.or_label_selectors.is_empty() {
            errs.push("encountered labelSelector as well as orLabelSelectors in restore spec, only one can be specified".into());
        }
        for s in self.label_selector.iter().chain(&self.or_label_selectors) {
            if let Err(e) = s.validate() {
                errs.push(e.to_string());
            }
        }
        let mut globs = |list: &[String]| -> Vec<Glob> {
            list.iter()
                .filter(|s| *s != "*")
                .filter_map(|s| {
                    Glob::new(&resolve(s))
                        .map_err(|e| errs.push(format!("resource {s:?}: {e}")))
                        .ok()
                })
                .collect()
        };
        let resources = Resources {
            includes: globs(&self.include_resources),
            excludes: globs(&self.exclude_resources),
        };
        if !errs.is_empty() {
            return Err(crate::Error::Invalid(errs));
        }
        let all_resources = self.include_resources.iter().any(|r| r == "*");
        Ok(ItemFilter {
            must_have: true,
            namespaces,
            resources: Resources {
                // `*` among the includes wins, as in Velero.
                includes: if all_resources {
                    Vec::new()
                } else {
                    resources.includes
                },
                excludes: resources.excludes,
            },
            cluster: self.include_cluster_resources,
            selector: self.label_selector.clone(),
            or_selectors: self.or_label_selectors.clone(),
        })
    }
}

impl ItemFilter {
    /// Everything (a restore without filters).
    pub fn everything() -> Self {
        Self::default()
    }

    /// A phase's filter (`phases.rs`): namespaces, resolved `resource.group` names and a
    /// selector, with no must-have resources. Cluster-scoped items go only to phases that do
    /// not narrow namespaces, as unset `include_cluster_resources` has it.
    pub(crate) fn for_phase(
        namespaces: NamespaceFilter,
        include: &[String],
        exclude: &[String],
        selector: Option<LabelSelector>,
    ) -> ItemFilter {
        let globs = |l: &[String]| l.iter().filter_map(|r| Glob::new(r).ok()).collect();
        ItemFilter {
            must_have: false,
            namespaces,
            resources: Resources {
                includes: globs(include),
                excludes: globs(exclude),
            },
            cluster: None,
            selector,
            or_selectors: Vec::new(),
        }
    }

    /// What the restore does with an item of resource `gr` (`resource.group`) backed up in
    /// namespace `ns` (`None`: cluster-scoped), whose labels `label` reads.
    pub fn decide<'a>(
        &self,
        gr: &str,
        ns: Option<&str>,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> Take {
        if self.must_have && MUST_HAVE.contains(&gr) {
            return Take::Yes;
        }
        if !self.resources.includes(gr) {
            return Take::No;
        }
        match ns {
            Some(ns) if !self.namespaces.includes(ns) => return Take::No,
            Some(_) => {}
            None => match self.cluster {
                Some(false) => return Take::No,
                None if !self.namespaces.includes_everything() => return Take::IfNeeded,
                _ => {}
            },
        }
        let matches = |s: &LabelSelector| s.matches_labels(&label);
        let selected = self.selector.as_ref().is_none_or(matches)
            && (self.or_selectors.is_empty() || self.or_selectors.iter().any(matches));
        match (selected, ns) {
            (true, _) => Take::Yes,
            // Selectors do not apply to what restored items need (a claim's volume).
            (false, None) => Take::IfNeeded,
            (false, Some(_)) => Take::No,
        }
    }

    /// Whether the Namespace object of backed-up namespace `ns` may be created for the
    /// items restored into it. Velero creates it from the backup whatever the cluster-scoped
    /// and label filters say, keeping its labels and annotations.
    pub fn namespace_wanted(&self, ns: &str) -> bool {
        self.namespaces.includes(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Discovery;

    fn d() -> Discovery {
        Discovery::default()
    }

    fn filter(f: RestoreFilter) -> ItemFilter {
        f.resolve(&d()).unwrap()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const NO_LABELS: fn(&str) -> Option<&'static str> = |_| None;

    /// Velero pkg/restore/restore_test.go TestRestoreResourceFiltering: the fixture has
    /// pods and deployments in ns-1 and ns-2 and two PVs.
    #[test]
    fn resource_and_namespace_filters_follow_velero_restore_resource_filtering() {
        // "no filters": everything.
        let f = ItemFilter::everything();
        assert_eq!(f.decide("pods", Some("ns-1"), NO_LABELS), Take::Yes);
        assert_eq!(f.decide("persistentvolumes", None, NO_LABELS), Take::Yes);
        // "included resources filter": pods only.
        let f = filter(RestoreFilter {
            include_resources: strs(&["pods"]),
            ..Default::default()
        });
        assert_eq!(f.decide("pods", Some("ns-1"), NO_LABELS), Take::Yes);
        assert_eq!(
            f.decide("deployments.apps", Some("ns-1"), NO_LABELS),
            Take::No
        );
        assert_eq!(f.decide("persistentvolumes", None, NO_LABELS), Take::No);
        // "excluded resources filter", by kubectl's short name: `pv` is persistentvolumes.
        let f = filter(RestoreFilter {
            exclude_resources: strs(&["pv"]),
            ..Default::default()
        });
        assert_eq!(f.decide("persistentvolumes", None, NO_LABELS), Take::No);
        assert_eq!(f.decide("pods", Some("ns-2"), NO_LABELS), Take::Yes);
        // "included namespaces filter": ns-1 only, no PVs unless a restored PVC needs them.
        let f = filter(RestoreFilter {
            include_namespaces: strs(&["ns-1"]),
            ..Default::default()
        });
        assert_eq!(f.decide("pods", Some("ns-1"), NO_LABELS), Take::Yes);
        assert_eq!(f.decide("pods", Some("ns-2"), NO_LABELS), Take::No);
        assert_eq!(
            f.decide("persistentvolumes", None, NO_LABELS),
            Take::IfNeeded
        );
        // "excluded namespaces filter".
        let f = filter(RestoreFilter {
            exclude_namespaces: strs(&["ns-2"]),
            ..Default::default()
        });
        assert_eq!(f.decide("pods", Some("ns-2"), NO_LABELS), Take::No);
        assert_eq!(
            f.decide("persistentvolumes", None, NO_LABELS),
            Take::IfNeeded
        );
        // "IncludeClusterResources=false": namespaced items, no PVs.
        let f = filter(RestoreFilter {
            include_cluster_resources: Some(false),
            ..Default::default()
        });
        assert_eq!(f.decide("pods", Some("ns-2"), NO_LABELS), Take::Yes);
        assert_eq!(f.decide("persistentvolumes", None, NO_LABELS), Take::No);
        // "ns-1 + true": ns-1 items and every PV.
        let f = filter(RestoreFilter {
            include_namespaces: strs(&["ns-1"]),
            include_cluster_resources: Some(true),
            ..Default::default()
        });
        assert_eq!(f.decide("persistentvolumes", None, NO_LABELS), Take::Yes);
        assert_eq!(f.decide("pods", Some("ns-2"), NO_LABELS), Take::No);
        // "include `*` and `pods`" would be invalid; `*` alone: everything.
        let f = filter(RestoreFilter {
            include_resources: strs(&["*"]),
            ..Default::default()
        });
        assert_eq!(
            f.decide("deployments.apps", Some("ns-1"), NO_LABELS),
            Take::Yes
        );
        // "include pods + unresolvable": pods only, the unknown name widens nothing.
        let f = filter(RestoreFilter {
            include_resources: strs(&["pods", "unresolvable"]),
            ..Default::default()
        });
        assert_eq!(f.decide("pods", Some("ns-1"), NO_LABELS), Take::Yes);
        assert_eq!(
            f.decide("deployments.apps", Some("ns-1"), NO_LABELS),
            Take::No
        );
        // Velero's must-have resources pass any filter.
        assert_eq!(
            f.decide("datauploads.velero.io", Some("velero"), NO_LABELS),
            Take::Yes
        );
    }

    /// Velero TestRestoreResourceFiltering "label selector" and "OrLabelSelectors" cases.
    #[test]
    fn label_selectors_follow_velero() {
        let f = filter(RestoreFilter {
            label_selector: Some(sel("a=b")),
            ..Default::default()
        });
        let ab = |k: &str| (k == "a").then_some("b");
        assert_eq!(f.decide("pods", Some("ns-1"), ab), Take::Yes);
        assert_eq!(f.decide("pods", Some("ns-1"), NO_LABELS), Take::No);
        assert_eq!(f.decide("persistentvolumes", None, ab), Take::Yes);
        let f = filter(RestoreFilter {
            or_label_selectors: vec![sel("a=b"), sel("c=d")],
            ..Default::default()
        });
        let cd = |k: &str| (k == "c").then_some("d");
        assert_eq!(f.decide("pods", Some("ns-1"), cd), Take::Yes);
        assert_eq!(f.decide("pods", Some("ns-1"), NO_LABELS), Take::No);
    }

    /// Velero pkg/controller/restore_controller_test.go TestRestoreReconcile validation
    /// cases, and pkg/util/collections/includes_excludes_test.go TestValidateIncludesExcludes.
    #[test]
    fn validation_uses_velero_rules_and_wording() {
        let errs = |f: RestoreFilter| f.resolve(&d()).unwrap_err().problems().to_vec();
        let e = errs(RestoreFilter {
            include_namespaces: strs(&["another-1"]),
            exclude_namespaces: strs(&["another-1"]),
            ..Default::default()
        });
        assert_eq!(e, vec!["Invalid included/excluded namespace lists: excludes list cannot contain an item in the includes list: another-1"]);
        for never in [
            "nodes",
            "events",
            "events.events.k8s.io",
            "backups.velero.io",
            "restores.velero.io",
        ] {
            let e = errs(RestoreFilter {
                include_resources: strs(&[never]),
                ..Default::default()
            });
            assert_eq!(
                e,
                vec![
                    format!("{never} are non-restorable resources"),
                    format!("Invalid included/excluded resource lists: excludes list cannot contain an item in the includes list: {never}"),
                ],
                "{never}"
            );
        }
        let e = errs(RestoreFilter {
            include_resources: strs(&["*", "pods"]),
            exclude_namespaces: strs(&["*"]),
            ..Default::default()
        });
        assert!(e.contains(&"Invalid included/excluded resource lists: includes list must either contain '*' only, or a non-empty list of items".to_string()), "{e:?}");
        assert!(
            e.contains(
                &"Invalid included/excluded namespace lists: excludes list cannot contain '*'"
                    .to_string()
            ),
            "{e:?}"
        );
        let e = errs(RestoreFilter {
            label_selector: Some(sel("a=b")),
            or_label_selectors: vec![sel("c=d")],
            ..Default::default()
        });
        assert_eq!(e, vec!["encountered labelSelector as well as orLabelSelectors in restore spec, only one can be specified"]);
        // Schedules are restorable (Velero's list does not name them).
        assert!(RestoreFilter {
            include_resources: strs(&["schedules.velero.io"]),
            ..Default::default()
        }
        .resolve(&d())
        .is_ok());
        // What only cairn checks: a namespace pattern Velero's glob library cannot mean.
        let e = errs(RestoreFilter {
            include_namespaces: strs(&["kube-**"]),
            ..Default::default()
        });
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("consecutive asterisks"), "{e:?}");
    }

    /// Velero includes_excludes_test.go TestShouldInclude: globs in both lists, excludes win.
    #[test]
    fn namespace_globs_follow_velero_should_include() {
        let f = filter(RestoreFilter {
            include_namespaces: strs(&["*"]),
            exclude_namespaces: strs(&["*-bar"]),
            ..Default::default()
        });
        assert_eq!(f.decide("pods", Some("foo-bar"), NO_LABELS), Take::No);
        assert_eq!(f.decide("pods", Some("bar-foo"), NO_LABELS), Take::Yes);
        let f = filter(RestoreFilter {
            include_namespaces: strs(&["kube-*", "ns-[0-9]"]),
            ..Default::default()
        });
        assert_eq!(f.decide("pods", Some("kube-system"), NO_LABELS), Take::Yes);
        assert_eq!(f.decide("pods", Some("ns-7"), NO_LABELS), Take::Yes);
        assert_eq!(f.decide("pods", Some("ns-x"), NO_LABELS), Take::No);
        assert!(f.namespace_wanted("kube-public") && !f.namespace_wanted("default"));
    }
}
