//! Velero's backup resource policies (`internal/resourcepolicies`, the resource-policy
//! ConfigMap, version v1): the include/exclude policy, merged into a backup's scoped
//! resource filters (the backup's own lists win), and volume policies
//! ([`crate::volume_policy`]), which decide what happens to each volume's data. The CLI reads the ConfigMap manifest, or the document
//! it holds, from a file.

use serde::Deserialize;
use serde_json::Value;

use crate::discovery::Discovery;
use crate::filter::BackupFilter;

/// A resource policies document.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourcePolicies {
    #[serde(default)]
    pub version: String,
    /// Per-volume actions (skip, snapshot, fs-backup), first match wins: applied where
    /// volume data is backed up.
    #[serde(default)]
    pub volume_policies: Vec<Value>,
    #[serde(default)]
    pub include_exclude_policy: Option<IncludeExcludePolicy>,
}

/// Resources a backup takes or leaves, by scope.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IncludeExcludePolicy {
    #[serde(default)]
    pub included_cluster_scoped_resources: Vec<String>,
    #[serde(default)]
    pub excluded_cluster_scoped_resources: Vec<String>,
    #[serde(default)]
    pub included_namespace_scoped_resources: Vec<String>,
    #[serde(default)]
    pub excluded_namespace_scoped_resources: Vec<String>,
}

impl ResourcePolicies {
    /// Reads a policies file: Velero's ConfigMap manifest (exactly one data key), or the
    /// document itself; checked as Velero checks it.
    pub fn from_file_text(text: &str) -> crate::Result<Self> {
        let doc = crate::modifiers::config_map_data(text, "resource policies")?
            .unwrap_or(text.to_string());
        let p: ResourcePolicies = yaml_serde::from_str(&doc).map_err(|e| {
            crate::Error::invalid(format!(
                "failed to decode yaml data into resource policies {e}"
            ))
        })?;
        p.validate()?;
        Ok(p)
    }

    /// Velero's checks, with its wording.
    pub fn validate(&self) -> crate::Result<()> {
        if self.version != "v1" {
            return Err(crate::Error::invalid(format!(
                "incompatible version number {} with supported version v1",
                self.version
            )));
        }
        crate::volume_policy::VolumePolicies::parse(&self.volume_policies)?;
        let Some(p) = &self.include_exclude_policy else {
            return Ok(());
        };
        let pairs = [
            (
                &p.included_cluster_scoped_resources,
                &p.excluded_cluster_scoped_resources,
            ),
            (
                &p.included_namespace_scoped_resources,
                &p.excluded_namespace_scoped_resources,
            ),
        ];
        for (inc, exc) in pairs {
            if inc.iter().chain(exc).any(|r| r == "*") {
                return Err(crate::Error::invalid(
                    "cannot use '*' in includes or excludes filters in the policy",
                ));
            }
            if let Some(both) = inc.iter().find(|r| exc.contains(r)) {
                return Err(crate::Error::invalid(format!(
                    "excludes list cannot contain an item in the includes list: {both}"
                )));
            }
        }
        Ok(())
    }

    /// Merges the include/exclude policy into `f`, as Velero does: not with the old filters
    /// (an error); with the scoped ones, each policy item is added unless the backup's own
    /// lists of that scope already say something of it (they win).
    pub fn merge_into(&self, f: &mut BackupFilter, d: &Discovery) -> crate::Result<()> {
        let Some(p) = &self.include_exclude_policy else {
            return Ok(());
        };
        let old = !f.include_resources.is_empty()
            || !f.exclude_resources.is_empty()
            || f.include_cluster_resources.is_some();
        if old {
            return Err(crate::Error::invalid(
                "include-resources, exclude-resources and include-cluster-resources are old filter parameters. They cannot be used with include-exclude policies.",
            ));
        }
        let gr = |name: &str| {
            d.resolve(name)
                .map(|r| r.group_resource())
                .unwrap_or_else(|_| name.to_string())
        };
        // A resource listed in the other scope's list is dropped, as Velero does.
        let wrong_scope =
            |name: &str, cluster: bool| d.resolve(name).is_ok_and(|r| r.namespaced == cluster);
        let says = |inc: &[String], exc: &[String], item: &str| {
            let item = gr(item);
            inc.iter().chain(exc).any(|x| x == "*" || gr(x) == item)
        };
        // Velero's order: namespaced excludes, includes, then cluster-scoped.
        let steps: [(&[String], bool, bool); 4] = [
            (&p.excluded_namespace_scoped_resources, false, false),
            (&p.included_namespace_scoped_resources, false, true),
            (&p.excluded_cluster_scoped_resources, true, false),
            (&p.included_cluster_scoped_resources, true, true),
        ];
        for (items, cluster, include) in steps {
            for item in items {
                let (inc, exc) = if cluster {
                    (
                        &mut f.include_cluster_scoped_resources,
                        &mut f.exclude_cluster_scoped_resources,
                    )
                } else {
                    (
                        &mut f.include_namespace_scoped_resources,
                        &mut f.exclude_namespace_scoped_resources,
                    )
                };
                if wrong_scope(item, cluster) || says(inc, exc, item) {
                    continue;
                }
                if include {
                    inc.push(item.clone());
                } else {
                    exc.push(item.clone());
                }
            }
        }
        Ok(())
    }
}

/// Velero's `--ordered-resources`: `resource=ns/name,ns/name;resource=name` (names of
/// cluster-scoped items without a namespace). Keys and values are trimmed; the names in a
/// value are not (as in Velero).
pub fn parse_ordered_resources(
    s: &str,
) -> crate::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in s.split(';').filter(|e| !e.trim().is_empty()) {
        let parts: Vec<&str> = entry.split('=').collect();
        let [key, value] = parts[..] else {
            return Err(crate::Error::invalid(format!(
                "invalid OrderedResources '{entry}'"
            )));
        };
        let names = value
            .trim()
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        out.insert(key.trim().to_string(), names);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    /// Velero internal/resourcepolicies/resource_policies_test.go TestValidate (the
    /// include/exclude cases) and the version check.
    #[test]
    fn policies_are_checked_as_velero_checks_them() {
        let err = |y: &str| ResourcePolicies::from_file_text(y).unwrap_err().to_string();
        assert!(err("version: v2\n")
            .contains("incompatible version number v2 with supported version v1"));
        assert!(err(
            "version: v1\nincludeExcludePolicy: {includedClusterScopedResources: ['*']}\n"
        )
        .contains("cannot use '*' in includes or excludes filters in the policy"));
        assert!(err(
            "version: v1\nincludeExcludePolicy: {excludedNamespaceScopedResources: ['*']}\n"
        )
        .contains("cannot use '*'"));
        assert!(err("version: v1\nincludeExcludePolicy: {includedNamespaceScopedResources: [pods], excludedNamespaceScopedResources: [pods]}\n")
            .contains("excludes list cannot contain an item in the includes list: pods"));
        assert!(err("version: v1\nunknown: 1\n")
            .contains("failed to decode yaml data into resource policies"));
        assert!(err(
            "version: v1\nvolumePolicies: [{conditions: {}, action: {type: unsupported}}]\n"
        )
        .contains("invalid action type unsupported"));
        let ok = ResourcePolicies::from_file_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\ndata:\n  policy.yaml: |\n    version: v1\n    volumePolicies: [{conditions: {capacity: '0,5Gi'}, action: {type: snapshot}}]\n    includeExcludePolicy: {includedNamespaceScopedResources: [deployments]}\n",
        )
        .unwrap();
        assert_eq!(ok.volume_policies.len(), 1);
    }

    /// Velero pkg/util/collections/includes_excludes_test.go
    /// TestScopeIncludesExcludes_CombineWithPolicy and TestUseOldResourceFilters.
    #[test]
    fn the_policy_merges_into_the_scoped_filters_and_the_backup_wins() {
        let d = Discovery::built_in();
        let policy = |p: IncludeExcludePolicy| ResourcePolicies {
            version: "v1".into(),
            include_exclude_policy: Some(p),
            ..Default::default()
        };
        // No conflict: merged.
        let mut f = BackupFilter {
            include_namespace_scoped_resources: strings(&["pods"]),
            exclude_namespace_scoped_resources: strings(&["configmaps"]),
            exclude_cluster_scoped_resources: strings(&["crds"]),
            ..Default::default()
        };
        policy(IncludeExcludePolicy {
            included_namespace_scoped_resources: strings(&["deployments"]),
            excluded_namespace_scoped_resources: strings(&["secrets"]),
            included_cluster_scoped_resources: strings(&["persistentvolumes"]),
            ..Default::default()
        })
        .merge_into(&mut f, &d)
        .unwrap();
        assert_eq!(
            f.include_namespace_scoped_resources,
            strings(&["pods", "deployments"])
        );
        assert_eq!(
            f.exclude_namespace_scoped_resources,
            strings(&["configmaps", "secrets"])
        );
        assert_eq!(
            f.include_cluster_scoped_resources,
            strings(&["persistentvolumes"])
        );
        // Conflicts: the backup's lists stand (pod is pods).
        let mut f = BackupFilter {
            include_namespace_scoped_resources: strings(&["pods", "deployments"]),
            exclude_namespace_scoped_resources: strings(&["configmaps"]),
            ..Default::default()
        };
        policy(IncludeExcludePolicy {
            excluded_namespace_scoped_resources: strings(&["pod", "secrets"]),
            included_namespace_scoped_resources: strings(&["configmaps"]),
            ..Default::default()
        })
        .merge_into(&mut f, &d)
        .unwrap();
        assert_eq!(
            f.exclude_namespace_scoped_resources,
            strings(&["configmaps", "secrets"])
        );
        assert_eq!(
            f.include_namespace_scoped_resources,
            strings(&["pods", "deployments"])
        );
        // A resource in the wrong scope's list is dropped.
        let mut f = BackupFilter::default();
        policy(IncludeExcludePolicy {
            included_cluster_scoped_resources: strings(&["pods", "persistentvolumes"]),
            ..Default::default()
        })
        .merge_into(&mut f, &d)
        .unwrap();
        assert_eq!(
            f.include_cluster_scoped_resources,
            strings(&["persistentvolumes"])
        );
        // '*' in the backup's includes swallows the policy.
        let mut f = BackupFilter {
            include_namespace_scoped_resources: strings(&["*"]),
            ..Default::default()
        };
        policy(IncludeExcludePolicy {
            excluded_namespace_scoped_resources: strings(&["configmaps", "secrets"]),
            ..Default::default()
        })
        .merge_into(&mut f, &d)
        .unwrap();
        assert!(f.exclude_namespace_scoped_resources.is_empty());
        // Old filters and a policy: refused.
        let mut f = BackupFilter {
            include_resources: strings(&["pods"]),
            ..Default::default()
        };
        let e = policy(IncludeExcludePolicy::default())
            .merge_into(&mut f, &d)
            .unwrap_err();
        assert!(e.to_string().contains("old filter parameters"), "{e}");
    }

    /// Velero pkg/cmd/cli/backup/create_test.go TestCreateOptions_OrderedResources.
    #[test]
    fn ordered_resources_parse_as_velero_parses_them() {
        assert!(parse_ordered_resources(
            "pods= ns1/p1; ns1/p2; persistentvolumeclaims=ns2/pvc1,ns2/pvc2"
        )
        .unwrap_err()
        .to_string()
        .contains("invalid OrderedResources ' ns1/p2'"));
        let got = parse_ordered_resources(
            "pods= ns1/p1,ns1/p2 ; persistentvolumeclaims=ns2/pvc1,ns2/pvc2",
        )
        .unwrap();
        assert_eq!(got["pods"], strings(&["ns1/p1", "ns1/p2"]));
        assert_eq!(
            got["persistentvolumeclaims"],
            strings(&["ns2/pvc1", "ns2/pvc2"])
        );
        let got =
            parse_ordered_resources("pods= ns1/p1,ns1/p2 ; persistentvolumes=pv1,pv2").unwrap();
        assert_eq!(got["persistentvolumes"], strings(&["pv1", "pv2"]));
    }
}
