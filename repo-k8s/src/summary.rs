//! What backup selection needs to know of an object, compactly.
//!
//! Selection looks at every object at once (namespaces with items, related items), so a
//! backup of 100,000 objects would otherwise hold them all in memory, parsed: about 8 KB
//! each for a 2 KB object. A summary keeps identity, labels, deletion and the references
//! that pull related items in, in about 300 bytes; the backup reads each selected object in
//! full again when it stores it.

use crate::object::{split_api_version, Object};

/// An object's identity, labels, deletion mark and references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    api_version: Box<str>,
    kind: Box<str>,
    name: Box<str>,
    namespace: Option<Box<str>>,
    labels: Box<[(Box<str>, Box<str>)]>,
    deleting: bool,
    /// A Namespace whose `status.phase` is given and is not `Active` (Terminating).
    inactive: bool,
    /// A pod's claim names; a bound claim's volume name; the cluster role a cluster role
    /// binding names.
    refs: Box<[Box<str>]>,
    /// A pod's priority class (Velero's pod action backs it up with the pod).
    priority_class: Option<Box<str>>,
    /// `(namespace, name)` of the service accounts a binding names.
    service_accounts: Box<[(Box<str>, Box<str>)]>,
}

fn boxed(s: &str) -> Box<str> {
    s.into()
}

impl Summary {
    pub fn of(o: &Object) -> Summary {
        let mut refs: Vec<Box<str>> = Vec::new();
        match o.kind() {
            "Pod" => refs.extend(
                o.get(&["spec", "volumes"])
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.get("persistentVolumeClaim")?.get("claimName")?.as_str())
                    .map(boxed),
            ),
            // Velero's PVC action takes the volume only of a claim that is Bound.
            "PersistentVolumeClaim" if o.str_at(&["status", "phase"]) == Some("Bound") => {
                refs.extend(o.str_at(&["spec", "volumeName"]).map(boxed));
            }
            "ClusterRoleBinding" if o.str_at(&["roleRef", "kind"]) == Some("ClusterRole") => {
                refs.extend(o.str_at(&["roleRef", "name"]).map(boxed));
            }
            _ => {}
        }
        let service_accounts = o
            .get(&["subjects"])
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter(|s| s.get("kind").and_then(|k| k.as_str()) == Some("ServiceAccount"))
            .filter_map(|s| {
                Some((
                    boxed(s.get("namespace")?.as_str()?),
                    boxed(s.get("name")?.as_str()?),
                ))
            })
            .collect();
        Summary {
            api_version: boxed(o.api_version()),
            kind: boxed(o.kind()),
            name: boxed(o.name()),
            namespace: o.namespace().map(boxed),
            labels: o.labels().map(|(k, v)| (boxed(k), boxed(v))).collect(),
            deleting: o.is_being_deleted(),
            inactive: o.kind() == "Namespace"
                && o.str_at(&["status", "phase"])
                    .is_some_and(|p| p != "Active"),
            refs: refs.into(),
            priority_class: (o.kind() == "Pod")
                .then(|| o.str_at(&["spec", "priorityClassName"]))
                .flatten()
                .filter(|p| !p.is_empty())
                .map(boxed),
            service_accounts,
        }
    }

    /// A pod's priority class, if it names one.
    pub fn priority_class(&self) -> Option<&str> {
        self.priority_class.as_deref()
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// `(group, version)`; the core group is `""`.
    pub fn group_version(&self) -> (&str, &str) {
        split_api_version(&self.api_version)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    pub fn is_being_deleted(&self) -> bool {
        self.deleting
    }

    /// A Namespace that is not Active (Velero does not back up its object; its contents are
    /// taken as usual).
    pub fn is_inactive_namespace(&self) -> bool {
        self.inactive
    }

    /// See the field: claim names, a volume name, or a cluster role name by kind.
    pub fn refs(&self) -> impl Iterator<Item = &str> {
        self.refs.iter().map(|r| &**r)
    }

    /// `(namespace, name)` of the service accounts a binding names.
    pub fn service_accounts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.service_accounts.iter().map(|(n, s)| (&**n, &**s))
    }

    /// Whether `o` is the object this summarises (same kind, version, namespace and name).
    pub fn is_of(&self, o: &Object) -> bool {
        self.kind() == o.kind()
            && self.api_version() == o.api_version()
            && self.namespace() == o.namespace()
            && self.name() == o.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_what_selection_reads() {
        let pod = Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "a", "labels": {"app": "web"},
                    "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"volumes": [{"persistentVolumeClaim": {"claimName": "data"}},
                    {"emptyDir": {}}]}}),
            "t",
        )
        .unwrap();
        let s = Summary::of(&pod);
        assert_eq!((s.kind(), s.name(), s.namespace()), ("Pod", "p", Some("a")));
        assert_eq!(s.label("app"), Some("web"));
        assert!(s.is_being_deleted());
        assert_eq!(s.refs().collect::<Vec<_>>(), ["data"]);
        assert!(s.is_of(&pod));
        let crb = Object::from_value(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "ServiceAccount", "namespace": "a", "name": "sa"},
                    {"kind": "User", "name": "u"}]}),
            "t",
        )
        .unwrap();
        let s = Summary::of(&crb);
        assert_eq!(s.refs().collect::<Vec<_>>(), ["admin"]);
        assert_eq!(s.service_accounts().collect::<Vec<_>>(), [("a", "sa")]);
        assert_eq!(s.group_version(), ("rbac.authorization.k8s.io", "v1"));
    }
}
