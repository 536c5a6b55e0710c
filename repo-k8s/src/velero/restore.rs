//! Restore (`velero.io/v1`, Velero `pkg/apis/velero/v1/restore_types.go`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::meta::{is_zero, velero_kind, TypedLocalObjectReference};
use super::{HookErrorMode, HookSelection, HookStatus, RestorePhase};
use crate::selector::LabelSelector;

velero_kind!(
    /// A request for a restore from a backup, and its status.
    Restore,
    RestoreSpec,
    RestoreStatus,
    "restores",
    []
);

/// What to restore, from which backup, and how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    /// Restore from this schedule's latest successful backup (when `backupName` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_resources: Option<Vec<String>>,
    /// `backed-up namespace → namespace to restore into`; others keep their names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_mapping: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub or_label_selectors: Option<Vec<LabelSelector>>,
    /// Whether volumes are restored from their snapshots.
    #[serde(
        rename = "restorePVs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub restore_pvs: Option<bool>,
    /// Which resources get their `status` restored (none when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_status: Option<RestoreStatusSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_node_ports: Option<bool>,
    /// Unset: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_cluster_resources: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RestoreHooks>,
    /// `none` or `update` ([`crate::phases::ExistingResourcePolicy`]). A string here, as in
    /// Velero's CRD, so that a wrong value fails the restore's validation with a reason
    /// instead of making the whole object unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_resource_policy: Option<String>,
    /// How long to wait for restore item actions' operations (a Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_operation_timeout: Option<String>,
    /// A ConfigMap of resource modifiers (JSON patches applied before objects are created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_modifier: Option<TypedLocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploader_config: Option<UploaderConfigForRestore>,
}

/// `spec.restoreStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatusSpec {
    /// Empty: every resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_resources: Option<Vec<String>>,
}

/// `spec.uploaderConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploaderConfigForRestore {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_sparse_files: Option<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parallel_files_download: i64,
}

/// `spec.hooks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RestoreHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<RestoreResourceHookSpec>,
}

/// Hooks run on the restored pods a selection names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResourceHookSpec {
    pub name: String,
    /// The items whose pods run the hooks.
    #[serde(flatten)]
    pub selection: HookSelection,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_hooks: Vec<RestoreResourceHook>,
}

/// One restore hook: a command run in a restored pod, or init containers added to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RestoreResourceHook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecRestoreHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitRestoreHook>,
}

/// A command run in a container of a restored pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecRestoreHook {
    /// Unset: the pod's first container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<HookErrorMode>,
    /// How long the command may run (a Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_timeout: Option<String>,
    /// How long to wait for the container to be running or ready (a Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<String>,
    /// Wait for the container to be ready, not only running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_ready: Option<bool>,
}

/// Init containers added to a restored pod, to run before its own containers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitRestoreHook {
    /// Containers as Kubernetes spells them, kept whole (Velero keeps them as raw JSON too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Value>,
    /// How long to wait for the init containers to finish (a Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_errors: Option<Vec<String>>,
    /// How many warnings; the messages are in the restore's results in object storage.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warnings: i64,
    /// How many errors; the messages are in the restore's results in object storage.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub errors: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RestoreProgress>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restore_item_operations_attempted: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restore_item_operations_completed: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restore_item_operations_failed: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_status: Option<HookStatus>,
}

/// `status.progress`: best effort, may lag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreProgress {
    /// May grow as item actions add items.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_items: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub items_restored: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Velero's odd spellings (`restorePVs`) are read and written back, and init containers
    /// come through whole.
    #[test]
    fn a_restore_as_velero_writes_it_round_trips() {
        let text = r#"
apiVersion: velero.io/v1
kind: Restore
metadata: {name: r1, namespace: velero}
spec:
  backupName: b1
  restorePVs: false
  namespaceMapping: {shop: shop-copy}
  existingResourcePolicy: update
  hooks:
    resources:
    - name: seed
      postHooks:
      - init:
          initContainers:
          - name: seed
            image: busybox
            command: [sh, -c, "echo hi"]
            resources: {limits: {cpu: 100m}}
          timeout: 2m
      - exec:
          command: [/bin/true]
          onError: Fail
          waitForReady: true
status:
  phase: PartiallyFailed
  errors: 2
  progress: {totalItems: 10, itemsRestored: 9}
"#;
        let r: Restore = yaml_serde::from_str(text).unwrap();
        assert_eq!(r.spec.restore_pvs, Some(false));
        let hook = &r.spec.hooks.as_ref().unwrap().resources[0];
        let init = hook.post_hooks[0].init.as_ref().unwrap();
        assert_eq!(
            init.init_containers[0]["resources"]["limits"]["cpu"],
            "100m"
        );
        let exec = hook.post_hooks[1].exec.as_ref().unwrap();
        assert_eq!(exec.on_error, Some(HookErrorMode::Fail));
        let status = r.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(RestorePhase::PartiallyFailed));

        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["spec"]["restorePVs"], false);
        assert_eq!(
            json["spec"]["hooks"]["resources"][0]["postHooks"][0]["init"]["timeout"],
            "2m"
        );
        let back: Restore = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
