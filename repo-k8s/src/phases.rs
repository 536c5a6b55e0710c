//! Phased restores: a plan file of ordered phases, each with its own filters, existing
//! resource policy and readiness gate.
//!
//! ```yaml
//! phases:
//!   - name: storage
//!     includeResources: [storageclasses, persistentvolumes, persistentvolumeclaims]
//!   - name: operators
//!     includeNamespaces: [operators]
//!     wait:
//!       timeout: 5m
//!       crdsEstablished: true
//!       deploymentsAvailable: [{namespaces: [operators]}]
//!   - name: apps
//!     includeNamespaces: ["shop-*"]
//!     existingResourcePolicy: update
//!     wait:
//!       timeout: 10m
//!       podsReady: [{namespaces: [shop-a], selector: "app=web"}]
//! ```
//!
//! Each item of the restore plan goes to the first phase whose filters take it (namespace
//! globs apply to the namespace restored into, after mappings; resources by any name
//! kubectl accepts). Items no phase takes are not restored, with a warning naming them.

use std::time::Duration;

use serde::Deserialize;

use crate::discovery::Discovery;
use crate::filter::NamespaceFilter;
use crate::restore::Planned;
use crate::restore_filter::{ItemFilter, Take};
use crate::selector::LabelSelector;

/// What to do when an object to restore already exists and differs (Velero's
/// `existingResourcePolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingResourcePolicy {
    /// Leave it, with a warning.
    #[default]
    None,
    /// Patch it to the backed-up version.
    Update,
}

impl std::str::FromStr for ExistingResourcePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(ExistingResourcePolicy::None),
            "update" => Ok(ExistingResourcePolicy::Update),
            other => Err(format!(
                "existing resource policy {other:?}: expected none or update"
            )),
        }
    }
}

/// Pods or deployments to wait for.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selected {
    /// Namespaces to look in (default: the namespaces the phase restored into).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Label selector (default: all).
    #[serde(default)]
    pub selector: Option<String>,
}

/// A readiness gate: what must be ready before the next phase starts.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gate {
    /// How long to wait (`90s`, `5m`).
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub pods_ready: Vec<Selected>,
    #[serde(default)]
    pub deployments_available: Vec<Selected>,
    /// Every CRD this phase restored is Established.
    #[serde(default)]
    pub crds_established: bool,
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
}

/// One phase.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    #[serde(default)]
    pub include_namespaces: Vec<String>,
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    #[serde(default)]
    pub include_resources: Vec<String>,
    #[serde(default)]
    pub exclude_resources: Vec<String>,
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Default: the restore's.
    #[serde(default)]
    pub existing_resource_policy: Option<ExistingResourcePolicy>,
    #[serde(default)]
    pub wait: Option<Gate>,
    /// What a workflow records when this phase's gate fails (cairn-server workflows).
    #[serde(default)]
    pub failure_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhasesFile {
    phases: Vec<Phase>,
}

/// A phase with its filters resolved: the same filter a restore's own filters resolve to
/// ([`ItemFilter`]), matched against the namespace restored into.
#[derive(Clone, Debug)]
pub struct ResolvedPhase {
    pub phase: Phase,
    filter: ItemFilter,
}

impl ResolvedPhase {
    /// A single phase taking everything.
    pub fn everything(policy: Option<ExistingResourcePolicy>) -> ResolvedPhase {
        ResolvedPhase {
            phase: Phase {
                name: "restore".into(),
                include_namespaces: Vec::new(),
                exclude_namespaces: Vec::new(),
                include_resources: Vec::new(),
                exclude_resources: Vec::new(),
                label_selector: None,
                existing_resource_policy: policy,
                wait: None,
                failure_reason: None,
            },
            filter: ItemFilter::everything(),
        }
    }

    /// Whether this phase takes an item.
    pub fn takes(&self, item: &Planned) -> bool {
        let labels = item.labels();
        let take = self
            .filter
            .decide(&item.resource, item.namespace.as_deref(), |k| {
                labels.get(k).map(String::as_str)
            });
        take == Take::Yes
    }
}

/// Reads and checks a phases file. Every problem is listed, naming the phase.
pub fn parse(yaml: &str, d: &Discovery) -> crate::Result<Vec<ResolvedPhase>> {
    let file: PhasesFile = yaml_serde::from_str(yaml)
        .map_err(|e| crate::Error::invalid(format!("phases file: {e}")))?;
    if file.phases.is_empty() {
        return Err(crate::Error::invalid("phases file: `phases` is empty"));
    }
    let mut errs = Vec::new();
    let mut out = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for p in file.phases {
        let at = format!("phase {:?}", p.name);
        if p.name.is_empty() {
            errs.push("a phase has no name".into());
        }
        if !names.insert(p.name.clone()) {
            errs.push(format!("{at}: the name is used twice"));
        }
        let namespaces = NamespaceFilter::new(&p.include_namespaces, &p.exclude_namespaces)
            .unwrap_or_else(|e| {
                errs.extend(e.into_iter().map(|e| format!("{at}: {e}")));
                NamespaceFilter::default() // not used: the errors are returned
            });
        let mut resolve = |list: &[String]| -> Vec<String> {
            list.iter()
                .filter(|n| *n != "*")
                .filter_map(|n| match d.resolve(n) {
                    Ok(r) => Some(r.group_resource()),
                    Err(e) => {
                        errs.push(format!("{at}: {e}"));
                        None
                    }
                })
                .collect()
        };
        let include = resolve(&p.include_resources);
        let exclude = resolve(&p.exclude_resources);
        let selector = match p.label_selector.as_deref().map(LabelSelector::parse) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                errs.push(format!("{at}: labelSelector: {e}"));
                None
            }
            None => None,
        };
        if let Some(g) = &p.wait {
            for s in g.pods_ready.iter().chain(&g.deployments_available) {
                if let Some(Err(e)) = s.selector.as_deref().map(LabelSelector::parse) {
                    errs.push(format!("{at}: wait selector: {e}"));
                }
            }
        }
        let filter = ItemFilter::for_phase(namespaces, &include, &exclude, selector);
        out.push(ResolvedPhase { phase: p, filter });
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(crate::Error::Invalid(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(resource: &str, ns: Option<&str>, labels: serde_json::Value) -> Planned {
        Planned {
            resource: resource.into(),
            namespace: ns.map(str::to_string),
            name: "x".into(),
            object: serde_json::value::to_raw_value(&json!({"metadata": {"labels": labels}}))
                .unwrap(),
            storage_classes: Vec::new(),
        }
    }

    #[test]
    fn phases_take_items_by_namespace_resource_and_labels() {
        let d = Discovery::built_in();
        let phases = parse(
            "phases:\n- name: storage\n  includeResources: [sc, pv, pvc]\n\
             - name: ops\n  includeNamespaces: [\"op*\"]\n  wait: {timeout: 30s, crdsEstablished: true}\n\
             - name: web\n  labelSelector: app=web\n  existingResourcePolicy: update\n",
            &d,
        )
        .unwrap();
        assert_eq!(phases.len(), 3);
        let pvc = item("persistentvolumeclaims", Some("shop"), json!({}));
        assert!(phases[0].takes(&pvc));
        assert!(!phases[1].takes(&pvc));
        let op = item("deployments.apps", Some("operators"), json!({}));
        assert!(!phases[0].takes(&op) && phases[1].takes(&op));
        let crd = item(
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            json!({}),
        );
        assert!(
            !phases[1].takes(&crd),
            "a namespace filter leaves cluster items out"
        );
        let web = item("deployments.apps", Some("shop"), json!({"app": "web"}));
        assert!(phases[2].takes(&web));
        assert!(!phases[2].takes(&item("deployments.apps", Some("shop"), json!({}))));
        assert_eq!(
            phases[2].phase.existing_resource_policy,
            Some(ExistingResourcePolicy::Update)
        );
        assert_eq!(
            phases[1].phase.wait.as_ref().unwrap().timeout,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn the_default_phase_takes_everything() {
        let all = ResolvedPhase::everything(None);
        assert!(all.takes(&item("configmaps", Some("shop"), json!({}))));
        assert!(all.takes(&item("namespaces", None, json!({}))));
    }

    #[test]
    fn bad_phase_files_name_every_problem() {
        let d = Discovery::built_in();
        let errs = parse(
            "phases:\n- name: a\n  includeResources: [nosuchthing]\n  includeNamespaces: [\"*\", b]\n\
             - name: a\n  labelSelector: \"app in (\"\n",
            &d,
        )
        .unwrap_err().problems().to_vec();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("nosuchthing")));
        assert!(errs.iter().any(|e| e.contains("used twice")));
        let errs = parse("phases:\n- name: a\n  wait: {timeout: soon}\n", &d)
            .unwrap_err()
            .problems()
            .to_vec();
        assert!(errs[0].contains("soon"), "{errs:?}");
        let errs = parse("phases:\n- name: a\n  includeNamespace: [x]\n", &d)
            .unwrap_err()
            .problems()
            .to_vec();
        assert!(errs[0].contains("includeNamespace"), "{errs:?}");
    }
}
