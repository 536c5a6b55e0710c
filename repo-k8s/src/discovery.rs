//! Which resources exist, what they are called, and whether they live in a namespace.
//!
//! A built-in table covers the core API and the well-known groups (including the snapshot
//! and Velero types that Velero's restore order names); it is extended by the
//! CustomResourceDefinitions found in a backup or read from a cluster. Names resolve the way
//! kubectl and Velero accept them: plural (`deployments`), singular, short name (`deploy`),
//! kind (`Deployment`), each optionally qualified by group (`deployments.apps`,
//! `Deployment.apps`) or by version and group (`deployments.v1.apps`).

use std::collections::HashMap;
use std::fmt;

use crate::object::Object;

/// One API resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group; `""` is the core group.
    pub group: String,
    /// Preferred version.
    pub version: String,
    pub kind: String,
    /// Lowercase plural: the resource name in URLs and in Velero's lists.
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
}

impl Resource {
    /// `plural.group` (`deployments.apps`; core resources are just `pods`): how Velero
    /// names a resource in its lists and tarball paths.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `group/version` (`v1` for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.group_resource())
    }
}

/// Kinds whose resource name is not the regular plural: what the API servers and the
/// operators that define them actually serve.
const IRREGULAR_PLURALS: &[(&str, &str)] = &[
    ("Endpoints", "endpoints"),
    ("SecurityContextConstraints", "securitycontextconstraints"),
    ("PodMetrics", "pods"),
    ("NodeMetrics", "nodes"),
];

/// The resource name (lowercase plural) of a kind no discovery describes, by the rules of
/// Kubernetes' code generators (gengo's plural namer), which name the built-in resources
/// and most operators' CRDs: `Prometheus` → `prometheuses`, `PodSecurityPolicy` →
/// `podsecuritypolicies`, `Gateway` → `gateways`, `Ingress` → `ingresses`, `Mesh` →
/// `meshes`; kinds that are already plural (`…Parameters`, `Endpoints`) stay as they are.
pub fn guess_plural(kind: &str) -> String {
    if let Some((_, plural)) = IRREGULAR_PLURALS.iter().find(|(k, _)| *k == kind) {
        return plural.to_string();
    }
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("parameters") || lower.ends_with("metrics") || lower.len() < 2 {
        return lower;
    }
    let b = lower.as_bytes();
    let (last, before) = (b[b.len() - 1], b[b.len() - 2]);
    let vowel = |c: u8| matches!(c, b'a' | b'e' | b'i' | b'o' | b'u');
    let stem = &lower[..lower.len() - 1];
    match last {
        b's' | b'x' | b'z' => format!("{lower}es"),
        b'y' if !vowel(before) => format!("{stem}ies"),
        b'h' if matches!(before, b'c' | b's') => format!("{lower}es"),
        b'e' if before == b'f' => format!("{}ves", &lower[..lower.len() - 2]),
        b'f' => format!("{stem}ves"),
        _ => format!("{lower}s"),
    }
}

/// `(group, version, kind, plural, namespaced, short names)`.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
);

const BUILT_IN: &[Row] = &[
    ("", "v1", "Pod", "pods", true, &["po"]),
    ("", "v1", "Service", "services", true, &["svc"]),
    ("", "v1", "Endpoints", "endpoints", true, &["ep"]),
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
    ("", "v1", "Secret", "secrets", true, &[]),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
    ),
    (
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
    ),
    ("", "v1", "Namespace", "namespaces", false, &["ns"]),
    ("", "v1", "Node", "nodes", false, &["no"]),
    ("", "v1", "Event", "events", true, &["ev"]),
    ("", "v1", "LimitRange", "limitranges", true, &["limits"]),
    (
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
    ),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
        &["rc"],
    ),
    ("", "v1", "PodTemplate", "podtemplates", true, &[]),
    (
        "",
        "v1",
        "ComponentStatus",
        "componentstatuses",
        false,
        &["cs"],
    ),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"]),
    ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"]),
    ("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"]),
    ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"]),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        &[],
    ),
    ("batch", "v1", "Job", "jobs", true, &[]),
    ("batch", "v1", "CronJob", "cronjobs", true, &["cj"]),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
    ),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        &["sc"],
    ),
    (
        "storage.k8s.io",
        "v1",
        "VolumeAttachment",
        "volumeattachments",
        false,
        &[],
    ),
    (
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        "csidrivers",
        false,
        &[],
    ),
    ("storage.k8s.io", "v1", "CSINode", "csinodes", false, &[]),
    (
        "storage.k8s.io",
        "v1",
        "CSIStorageCapacity",
        "csistoragecapacities",
        true,
        &[],
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        false,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        false,
        &[],
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &["pc"],
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
    ),
    ("events.k8s.io", "v1", "Event", "events", true, &["ev"]),
    (
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        false,
        &["csr"],
    ),
    (
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        false,
        &[],
    ),
    (
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        false,
        &[],
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "FlowSchema",
        "flowschemas",
        false,
        &[],
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        false,
        &[],
    ),
    (
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshot",
        "volumesnapshots",
        true,
        &["vs"],
    ),
    (
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotContent",
        "volumesnapshotcontents",
        false,
        &["vsc", "vscs"],
    ),
    (
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotClass",
        "volumesnapshotclasses",
        false,
        &["vsclass", "vsclasses"],
    ),
    ("velero.io", "v1", "Backup", "backups", true, &[]),
    ("velero.io", "v1", "Restore", "restores", true, &[]),
    ("velero.io", "v1", "Schedule", "schedules", true, &[]),
    (
        "velero.io",
        "v1",
        "BackupStorageLocation",
        "backupstoragelocations",
        true,
        &["bsl"],
    ),
    (
        "velero.io",
        "v1",
        "VolumeSnapshotLocation",
        "volumesnapshotlocations",
        true,
        &["vsl"],
    ),
    (
        "velero.io",
        "v1",
        "PodVolumeBackup",
        "podvolumebackups",
        true,
        &[],
    ),
    (
        "velero.io",
        "v1",
        "PodVolumeRestore",
        "podvolumerestores",
        true,
        &[],
    ),
    (
        "velero.io",
        "v1",
        "BackupRepository",
        "backuprepositories",
        true,
        &[],
    ),
    (
        "velero.io",
        "v1",
        "DeleteBackupRequest",
        "deletebackuprequests",
        true,
        &[],
    ),
    (
        "velero.io",
        "v1",
        "DownloadRequest",
        "downloadrequests",
        true,
        &[],
    ),
    (
        "velero.io",
        "v1",
        "ServerStatusRequest",
        "serverstatusrequests",
        true,
        &["ssr"],
    ),
    (
        "velero.io",
        "v2alpha1",
        "DataUpload",
        "datauploads",
        true,
        &[],
    ),
    (
        "velero.io",
        "v2alpha1",
        "DataDownload",
        "datadownloads",
        true,
        &[],
    ),
];

/// Why a name did not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown resource {0:?}: not a built-in resource and no CustomResourceDefinition defines it (give plural, singular, short name or kind, optionally with .group)")]
    Unknown(String),
    #[error("resource {name:?} is ambiguous: it could be {candidates}; qualify it with its group (e.g. {example})")]
    Ambiguous {
        name: String,
        candidates: String,
        example: String,
    },
}

/// The resources known, built-in and from CRDs.
#[derive(Clone, Debug)]
pub struct Discovery {
    resources: Vec<Resource>,
    /// `(group, kind)` → index in `resources`: [`Discovery::for_object`] runs several times
    /// per object, over hundreds of thousands of objects.
    by_kind: HashMap<(String, String), usize>,
}

impl Default for Discovery {
    fn default() -> Self {
        Self::built_in()
    }
}

impl Discovery {
    /// The built-in table.
    pub fn built_in() -> Self {
        let mut d = Discovery {
            by_kind: HashMap::new(),
            resources: BUILT_IN
                .iter()
                .map(|(g, v, k, p, ns, short)| Resource {
                    group: g.to_string(),
                    version: v.to_string(),
                    kind: k.to_string(),
                    plural: p.to_string(),
                    singular: k.to_ascii_lowercase(),
                    short_names: short.iter().map(|s| s.to_string()).collect(),
                    namespaced: *ns,
                })
                .collect(),
        };
        d.reindex();
        d
    }

    fn reindex(&mut self) {
        self.by_kind.clear();
        for (i, r) in self.resources.iter().enumerate() {
            self.by_kind
                .entry((r.group.clone(), r.kind.clone()))
                .or_insert(i);
        }
    }

    /// Whether `gr` (`resource.group`) is a Kubernetes type with a built-in schema (what
    /// strategic merge patches need), not a custom resource.
    pub fn is_built_in(&self, gr: &str) -> bool {
        BUILT_IN.iter().any(|(g, _, _, plural, _, _)| {
            !g.ends_with("velero.io")
                && !g.starts_with("snapshot.storage")
                && match g.is_empty() {
                    true => gr == *plural,
                    false => gr.strip_prefix(plural).and_then(|r| r.strip_prefix('.')) == Some(*g),
                }
        })
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// Adds (or replaces) a resource.
    pub fn add(&mut self, r: Resource) {
        self.resources
            .retain(|o| !(o.group == r.group && o.plural == r.plural));
        self.resources.push(r);
        self.reindex();
    }

    /// Adds the resource a CustomResourceDefinition defines. Returns it, or why the CRD is
    /// not usable.
    pub fn add_crd(&mut self, crd: &Object) -> crate::Result<Resource> {
        let r = Self::crd_resource(crd).map_err(|reason| crate::ObjectError {
            origin: format!("CustomResourceDefinition {}", crd.name()),
            reason,
        })?;
        self.add(r.clone());
        Ok(r)
    }

    /// The resource a CustomResourceDefinition defines.
    fn crd_resource(crd: &Object) -> Result<Resource, String> {
        let s = |path: &[&str]| crd.str_at(path).map(str::to_string);
        let group = s(&["spec", "group"]).ok_or("CRD without spec.group")?;
        let plural = s(&["spec", "names", "plural"]).ok_or("CRD without spec.names.plural")?;
        let kind = s(&["spec", "names", "kind"]).ok_or("CRD without spec.names.kind")?;
        let namespaced = match crd.str_at(&["spec", "scope"]) {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            other => {
                return Err(format!(
                    "CRD {plural}.{group} has scope {other:?}, expected Namespaced or Cluster"
                ))
            }
        };
        // The storage version, else the first served one, else the first listed.
        let versions = crd
            .get(&["spec", "versions"])
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let pick = |key: &str| {
            versions
                .iter()
                .find(|v| v.get(key).and_then(|b| b.as_bool()) == Some(true))
                .and_then(|v| v.get("name")?.as_str().map(str::to_string))
        };
        let version = pick("storage")
            .or_else(|| pick("served"))
            .or_else(|| {
                versions
                    .first()
                    .and_then(|v| v.get("name")?.as_str().map(str::to_string))
            })
            .or_else(|| s(&["spec", "version"]))
            .ok_or_else(|| format!("CRD {plural}.{group} lists no version"))?;
        let short_names = crd
            .get(&["spec", "names", "shortNames"])
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Resource {
            singular: s(&["spec", "names", "singular"])
                .unwrap_or_else(|| kind.to_ascii_lowercase()),
            group,
            version,
            kind,
            plural,
            short_names,
            namespaced,
        })
    }

    /// The resource of an object, by its apiVersion group and kind.
    pub fn for_object(&self, o: &Object) -> Option<&Resource> {
        self.for_group_kind(o.group_version().0, o.kind())
    }

    /// The resource of a summarised object.
    pub fn for_summary(&self, s: &crate::summary::Summary) -> Option<&Resource> {
        self.for_group_kind(s.group_version().0, s.kind())
    }

    /// The resource of a kind in an API group.
    pub fn for_group_kind(&self, group: &str, kind: &str) -> Option<&Resource> {
        self.by_kind
            .get(&(group.to_string(), kind.to_string()))
            .map(|&i| &self.resources[i])
    }

    /// The `resource.group` of an object: its resource's, or for an unknown one the plural
    /// Kubernetes' code generators would give its kind ([`guess_plural`]).
    pub fn group_resource_of(&self, o: &Object) -> String {
        if let Some(r) = self.for_object(o) {
            return r.group_resource();
        }
        let (group, _) = o.group_version();
        let plural = guess_plural(o.kind());
        if group.is_empty() {
            plural
        } else {
            format!("{plural}.{group}")
        }
    }

    /// The namespace an object lives in: its own, or `default` for a namespaced object that
    /// names none (a manifest applied with kubectl lands there); `None` for cluster-scoped
    /// ones (an unknown resource counts as namespaced when it names a namespace).
    pub fn namespace_of<'a>(&self, o: &'a Object) -> Option<&'a str> {
        let namespaced = self
            .for_object(o)
            .map(|r| r.namespaced)
            .unwrap_or(o.namespace().is_some());
        namespaced.then(|| o.namespace().unwrap_or("default"))
    }

    /// Resolves a user-given name (see the module docs).
    pub fn resolve(&self, name: &str) -> Result<&Resource, ResolveError> {
        let lower = name.to_ascii_lowercase();
        // Try the whole name unqualified first (core resources have dots in no name), then
        // `name.group` and `name.version.group` splits.
        let mut splits = vec![(lower.as_str(), None, None)];
        if let Some((n, rest)) = lower.split_once('.') {
            splits.push((n, None, Some(rest)));
            if let Some((v, g)) = rest.split_once('.') {
                splits.push((n, Some(v), Some(g)));
            }
        }
        for (n, version, group) in splits {
            let found: Vec<&Resource> = self
                .resources
                .iter()
                .filter(|r| {
                    (r.plural == n
                        || r.singular == n
                        || r.kind.eq_ignore_ascii_case(n)
                        || r.short_names.iter().any(|s| s == n))
                        && group.is_none_or(|g| r.group == g)
                        && version.is_none_or(|v| r.version == v)
                })
                .collect();
            match found.as_slice() {
                [] => continue,
                [one] => return Ok(one),
                many => {
                    // The core group wins, as kubectl prefers it (`events`).
                    if let Some(core) = many.iter().find(|r| r.group.is_empty()) {
                        return Ok(core);
                    }
                    return Err(ResolveError::Ambiguous {
                        name: name.into(),
                        candidates: many
                            .iter()
                            .map(|r| r.group_resource())
                            .collect::<Vec<_>>()
                            .join(", "),
                        example: many[0].group_resource(),
                    });
                }
            }
        }
        Err(ResolveError::Unknown(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_of_unknown_kinds_follow_kubernetes_code_generators() {
        for (kind, plural) in [
            ("Prometheus", "prometheuses"),
            ("PodSecurityPolicy", "podsecuritypolicies"),
            ("ResourceClaimParameters", "resourceclaimparameters"),
            ("Gateway", "gateways"),
            ("Ingress", "ingresses"),
            ("Mesh", "meshes"),
            ("Box", "boxes"),
            ("Alertmanager", "alertmanagers"),
            ("Endpoints", "endpoints"),
            ("PodMetrics", "pods"),
            ("Leaf", "leaves"),
            ("Knife", "knives"),
            ("Widget", "widgets"),
        ] {
            assert_eq!(guess_plural(kind), plural, "{kind}");
        }
        // Every built-in resource's plural is what the rules give, but for the irregular
        // table: the rules are Kubernetes' own.
        for r in Discovery::built_in().resources() {
            if IRREGULAR_PLURALS.iter().all(|(k, _)| *k != r.kind) {
                assert_eq!(guess_plural(&r.kind), r.plural, "{}", r.kind);
            }
        }
    }
    use serde_json::json;

    #[test]
    fn names_resolve_like_kubectl() {
        let d = Discovery::built_in();
        for (name, expect) in [
            ("ns", "namespaces"),
            ("deploy", "deployments.apps"),
            ("po", "pods"),
            ("Deployment", "deployments.apps"),
            ("deployment.apps", "deployments.apps"),
            ("deployments.v1.apps", "deployments.apps"),
            ("pvc", "persistentvolumeclaims"),
            ("crds", "customresourcedefinitions.apiextensions.k8s.io"),
            ("events", "events"),
            ("events.events.k8s.io", "events.events.k8s.io"),
            (
                "volumesnapshotclass.snapshot.storage.k8s.io",
                "volumesnapshotclasses.snapshot.storage.k8s.io",
            ),
        ] {
            assert_eq!(d.resolve(name).unwrap().group_resource(), expect, "{name}");
        }
        assert!(matches!(
            d.resolve("widgets"),
            Err(ResolveError::Unknown(_))
        ));
        assert!(!d.resolve("pv").unwrap().namespaced);
    }

    #[test]
    fn crds_extend_the_table() {
        let mut d = Discovery::built_in();
        let crd = Object::from_value(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "widgets.example.com"},
                   "spec": {"group": "example.com", "scope": "Namespaced",
                            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                            "versions": [{"name": "v1beta1", "served": true, "storage": false},
                                         {"name": "v1", "served": true, "storage": true}]}}),
            "t",
        )
        .unwrap();
        let r = d.add_crd(&crd).unwrap();
        assert_eq!((r.version.as_str(), r.namespaced), ("v1", true));
        assert_eq!(
            d.resolve("wd").unwrap().group_resource(),
            "widgets.example.com"
        );
        let obj = Object::from_value(
            json!({"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": {"name": "w"}}),
            "t",
        )
        .unwrap();
        assert_eq!(d.for_object(&obj).unwrap().plural, "widgets");
    }
}
