//! Velero's restore item actions (`pkg/restore/actions`), one module each: what happens to
//! an object of a resource between the backup and the cluster. They run after the metadata
//! reset and before the namespace is mapped, so an action sees the namespace the object was
//! backed up in, as Velero's do.

mod admission_webhook;
mod api_service;
mod change_image_name;
mod change_storage_class;
mod crd;
mod job;
mod pod;
mod pvc;
mod role_binding;
mod secret;
mod service;
mod service_account;

pub(crate) mod metadata;
pub(crate) mod namespace;
pub(crate) mod pv;
pub mod restore_wait;

use std::collections::BTreeMap;

use crate::object::Object;

/// A cluster-scoped item a restored item needs (Velero's "additional items"): restored if it
/// is in the backup and the filters allow it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Needed {
    pub resource: &'static str,
    pub name: String,
}

pub(crate) use change_image_name::parse_rule as parse_image_name_rule;

/// What the actions did to an item that is restored.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Done {
    /// Items it needs.
    pub needed: Vec<Needed>,
    /// Storage classes it was changed to (they must exist when it is created).
    pub storage_classes: Vec<String>,
}

/// What an action decided for an item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restore it.
    Restore(Done),
    /// Do not restore it (Velero's `SkipRestore`), with why.
    Skip(String),
    /// The action failed: the item is not restored and the restore has an error.
    Fail(String),
}

/// What the actions need to know of the restore.
pub(crate) struct Context<'a> {
    pub namespace_mappings: &'a BTreeMap<String, String>,
    pub preserve_node_ports: bool,
    /// Whether a service account will exist in a namespace (as backed up) when the
    /// restore reaches secrets.
    pub service_account_exists: &'a dyn Fn(&str, &str) -> bool,
    /// The item's status as backed up (the reset took it out of the item).
    pub backed_up_status: Option<&'a serde_json::Value>,
    /// Opt-in: storage class `old → new`, and image `(old part, new part)` rules.
    pub storage_class_mappings: &'a BTreeMap<String, String>,
    pub image_name_rules: &'a [(String, String)],
}

/// Runs the action for `gr`, if there is one, on an item whose metadata and status were
/// reset, as Velero's actions see it.
pub(crate) fn run(gr: &str, item: &mut Object, ctx: &Context) -> Verdict {
    let mut needed = Vec::new();
    let outcome = match gr {
        "pods" => {
            needed = pod::execute(item);
            Ok(())
        }
        "services" => service::execute(item, ctx.preserve_node_ports),
        "secrets" => secret::execute(item, ctx.service_account_exists),
        "serviceaccounts" => {
            service_account::execute(item);
            Ok(())
        }
        "persistentvolumeclaims" => {
            needed = pvc::execute(item, ctx.backed_up_status);
            Ok(())
        }
        "rolebindings.rbac.authorization.k8s.io"
        | "clusterrolebindings.rbac.authorization.k8s.io" => {
            role_binding::execute(item, ctx.namespace_mappings);
            Ok(())
        }
        "customresourcedefinitions.apiextensions.k8s.io" => {
            crd::execute(item);
            Ok(())
        }
        "mutatingwebhookconfigurations.admissionregistration.k8s.io"
        | "validatingwebhookconfigurations.admissionregistration.k8s.io" => {
            admission_webhook::execute(item);
            Ok(())
        }
        "apiservices.apiregistration.k8s.io" => api_service::execute(item),
        "jobs.batch" => {
            job::execute(item);
            Ok(())
        }
        _ => Ok(()),
    };
    let mut storage_classes = Vec::new();
    if !ctx.storage_class_mappings.is_empty()
        && matches!(
            gr,
            "persistentvolumes" | "persistentvolumeclaims" | "statefulsets.apps"
        )
    {
        storage_classes = change_storage_class::execute(item, ctx.storage_class_mappings);
    }
    if !ctx.image_name_rules.is_empty() && change_image_name::APPLIES_TO.contains(&gr) {
        change_image_name::execute(item, ctx.image_name_rules);
    }
    match outcome {
        Ok(()) => Verdict::Restore(Done {
            needed,
            storage_classes,
        }),
        Err(Stop::Skip(why)) => Verdict::Skip(why),
        Err(Stop::Fail(why)) => Verdict::Fail(why),
    }
}

/// Why an action stops an item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Skip(String),
    Fail(String),
}

/// Removes the map at `path` if it is empty.
pub(crate) fn remove_if_empty(o: &mut Object, path: &[&str]) {
    if o.get(path)
        .and_then(serde_json::Value::as_object)
        .is_some_and(|m| m.is_empty())
    {
        o.remove(path);
    }
}

#[cfg(test)]
pub(crate) fn obj(v: serde_json::Value) -> Object {
    Object::from_value(v, "test").unwrap()
}
