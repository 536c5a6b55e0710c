//! What every Velero kind has: the object's metadata and the kind macro.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An object's metadata: the fields a controller reads and writes, and the rest (managed
/// fields and whatever a newer Kubernetes adds) kept as it came.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Everything else, kept.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `metadata.ownerReferences[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// A reference to an object by kind and name (Kubernetes' TypedLocalObjectReference).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypedLocalObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    pub kind: String,
    pub name: String,
}

/// A Velero kind: its names, for the CRD and the API paths.
pub trait Kind: JsonSchema + Serialize + for<'de> Deserialize<'de> {
    const KIND: &'static str;
    /// The API version within `velero.io` (`v1`; the data movers' are `v2alpha1`).
    const VERSION: &'static str = "v1";
    const PLURAL: &'static str;
    const SHORT_NAMES: &'static [&'static str];
    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;
}

/// The API resource of a Velero kind, for the cluster adapter.
pub fn resource<K: Kind>() -> crate::Resource {
    crate::Resource {
        group: "velero.io".into(),
        version: K::VERSION.into(),
        kind: K::KIND.into(),
        plural: K::PLURAL.into(),
        singular: K::KIND.to_ascii_lowercase(),
        short_names: K::SHORT_NAMES.iter().map(|s| s.to_string()).collect(),
        namespaced: true,
    }
}

pub(crate) fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Declares a Velero kind: the object (apiVersion, kind, metadata, spec, status) and its
/// names.
macro_rules! velero_kind {
    ($(#[$doc:meta])* $kind:ident, $spec:ty, $status:ty, $plural:literal, [$($short:literal),*]) => {
        $crate::velero::meta::velero_kind!($(#[$doc])* $kind, $spec, $status, $plural, [$($short),*], "v1");
    };
    ($(#[$doc:meta])* $kind:ident, $spec:ty, $status:ty, $plural:literal, [$($short:literal),*], $version:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $kind {
            #[serde(default)]
            pub api_version: String,
            #[serde(default)]
            pub kind: String,
            #[serde(default)]
            pub metadata: $crate::velero::ObjectMeta,
            #[serde(default)]
            pub spec: $spec,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl $crate::velero::Kind for $kind {
            const KIND: &'static str = stringify!($kind);
            const VERSION: &'static str = $version;
            const PLURAL: &'static str = $plural;
            const SHORT_NAMES: &'static [&'static str] = &[$($short),*];
            fn metadata(&self) -> &$crate::velero::ObjectMeta {
                &self.metadata
            }
        }

        impl $kind {
            /// A new object named `name` in `namespace`.
            pub fn new(name: &str, namespace: &str, spec: $spec) -> Self {
                $kind {
                    api_version: concat!("velero.io/", $version).into(),
                    kind: stringify!($kind).into(),
                    metadata: $crate::velero::ObjectMeta {
                        name: name.into(),
                        namespace: Some(namespace.into()),
                        ..Default::default()
                    },
                    spec,
                    status: None,
                }
            }
        }
    };
}
pub(crate) use velero_kind;
