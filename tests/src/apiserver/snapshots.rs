//! Stand-ins for CSI snapshots, with simulated nodes: what the external snapshot
//! controller, a CSI driver and its provisioner do, enough for snapshot data movement to run
//! on one machine.
//!
//! - **CRDs**: `snapshot.storage.k8s.io/v1` VolumeSnapshot, VolumeSnapshotContent and
//!   VolumeSnapshotClass ([`crds`]; seed them to serve them).
//! - **Snapshot controller and driver**: a VolumeSnapshot of a bound claim whose class
//!   exists (named, or the default one of the volume's driver) is made ready: its content is
//!   a copy of the claim's volume directory at that moment, kept under
//!   `<nodes_dir>/snapshots/<snapshot uid>`, with a VolumeSnapshotContent bound to it. A
//!   class that does not exist is the snapshot's `status.error`.
//! - **Pre-provisioned snapshots**: a VolumeSnapshot whose source is a
//!   VolumeSnapshotContent (as a data mover makes to move a snapshot into its namespace) is
//!   ready once that content exists; its data is the content's `snapshotHandle`.
//! - **Deletion**: deleting a VolumeSnapshot deletes its bound content if the content's
//!   `deletionPolicy` is `Delete`; deleting such a content deletes the snapshot's copy.
//!   `Retain` keeps both, as a real snapshotter does.
//! - **Provisioner**: a claim whose `dataSource` is a ready VolumeSnapshot gets a new
//!   volume whose directory starts as a copy of the snapshot's, when a pod first mounts it.
//! - **Class parameter `cairn.test/never-ready: "true"`**: snapshots of that class never
//!   become ready (a driver that hangs), for tests of the timeout.
//!
//! A real driver snapshots blocks or a filesystem atomically; here the copy is made file by
//! file while nothing writes (the tests do not write during a snapshot).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Key, State};

/// The CRDs of `snapshot.storage.k8s.io/v1` (schemas left open).
pub fn crds() -> Vec<Value> {
    [
        ("VolumeSnapshot", "volumesnapshots", "Namespaced"),
        ("VolumeSnapshotContent", "volumesnapshotcontents", "Cluster"),
        ("VolumeSnapshotClass", "volumesnapshotclasses", "Cluster"),
    ]
    .iter()
    .map(|(kind, plural, scope)| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.snapshot.storage.k8s.io")},
            "spec": {"group": "snapshot.storage.k8s.io", "scope": scope,
                "names": {"kind": kind, "plural": plural, "singular": kind.to_ascii_lowercase(), "listKind": format!("{kind}List")},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
    })
    .collect()
}

/// Annotation on a simulated volume made from a snapshot: the directory to copy into it.
pub const FROM_SNAPSHOT: &str = "cairn.test/from-snapshot";

/// Copies the tree `from` into `to` (modes and times kept), as `cp -a`.
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()?;
    match status.success() {
        true => Ok(()),
        false => Err(std::io::Error::other(format!(
            "cp -a {} {} failed",
            from.display(),
            to.display()
        ))),
    }
}

impl State {
    /// Where a snapshot's copy is kept.
    pub(super) fn snapshot_dir(&self, uid: &str) -> Option<PathBuf> {
        Some(self.opts.nodes_dir.as_ref()?.join("snapshots").join(uid))
    }

    /// The directory of volume `pv` on whichever simulated node has it.
    fn volume_dir_of(&self, pv: &str) -> Option<PathBuf> {
        self.opts.nodes.iter().find_map(|n| {
            let pods = self.pods_dir(n)?;
            std::fs::read_dir(&pods).ok()?.find_map(|uid| {
                let volumes = uid.ok()?.path().join("volumes");
                [
                    volumes.join("kubernetes.io~csi").join(pv).join("mount"),
                    volumes.join("kubernetes.io~local-volume").join(pv),
                ]
                .into_iter()
                .find(|d| d.is_dir())
            })
        })
    }

    fn find(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let key: Key = (group.into(), plural.into(), ns.into(), name.into());
        self.objects.get(&key).map(|s| s.value.clone())
    }

    /// One round of the snapshot controller and driver.
    pub(super) fn run_snapshots(&mut self) {
        let waiting: Vec<(Key, Value)> = self
            .objects
            .iter()
            .filter(|(k, s)| {
                k.0 == "snapshot.storage.k8s.io"
                    && k.1 == "volumesnapshots"
                    && s.value["status"]["readyToUse"] != true
                    && s.value["status"]["error"].is_null()
            })
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect();
        for (key, snap) in waiting {
            if let Some(content) = snap["spec"]["source"]["volumeSnapshotContentName"].as_str() {
                self.bind_pre_provisioned(&key, snap.clone(), content);
                continue;
            }
            let Some(claim_name) = snap["spec"]["source"]["persistentVolumeClaimName"].as_str()
            else {
                continue;
            };
            let Some(claim) = self.find("", "persistentvolumeclaims", &key.2, claim_name) else {
                continue;
            };
            let Some(pv_name) = claim["spec"]["volumeName"].as_str() else {
                continue;
            };
            let Some(pv) = self.find("", "persistentvolumes", "", pv_name) else {
                continue;
            };
            let driver = pv["spec"]["csi"]["driver"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let classes: Vec<Value> = self
                .objects
                .iter()
                .filter(|(k, _)| k.0 == "snapshot.storage.k8s.io" && k.1 == "volumesnapshotclasses")
                .map(|(_, s)| s.value.clone())
                .collect();
            let class = match snap["spec"]["volumeSnapshotClassName"].as_str() {
                Some(name) => classes.iter().find(|c| c["metadata"]["name"] == name),
                None => classes.iter().find(|c| {
                    c["driver"] == driver.as_str()
                        && c["metadata"]["annotations"]
                            ["snapshot.storage.kubernetes.io/is-default-class"]
                            == "true"
                }),
            };
            let mut updated = snap.clone();
            let Some(class) = class.cloned() else {
                let why = match snap["spec"]["volumeSnapshotClassName"].as_str() {
                    Some(n) => format!("failed to get input parameters to create snapshot {}: \"volumesnapshotclass.snapshot.storage.k8s.io \\\"{n}\\\" not found\"", key.3),
                    None => format!("cannot find default snapshot class for driver {driver:?}"),
                };
                updated["status"] = json!({"readyToUse": false, "error": {"message": why}});
                self.store_modified(&key, updated);
                continue;
            };
            if class["parameters"]["cairn.test/never-ready"] == "true" {
                continue;
            }
            let uid = snap["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (Some(from), Some(to)) = (self.volume_dir_of(pv_name), self.snapshot_dir(&uid))
            else {
                continue;
            };
            if let Err(e) = copy_tree(&from, &to) {
                updated["status"] =
                    json!({"readyToUse": false, "error": {"message": e.to_string()}});
                self.store_modified(&key, updated);
                continue;
            }
            let content_name = format!("snapcontent-{uid}");
            let content = json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name},
                "spec": {"driver": driver, "deletionPolicy": class["deletionPolicy"].as_str().unwrap_or("Delete"),
                    "volumeSnapshotClassName": class["metadata"]["name"],
                    "source": {"volumeHandle": pv["spec"]["csi"]["volumeHandle"].as_str().unwrap_or(pv_name)},
                    "volumeSnapshotRef": {"kind": "VolumeSnapshot", "namespace": key.2, "name": key.3, "uid": uid}},
                "status": {"readyToUse": true, "snapshotHandle": to.display().to_string(),
                    "restoreSize": 0}});
            if let Some(r) = self.served("snapshot.storage.k8s.io", "volumesnapshotcontents") {
                // A create drops the status (a status subresource): the driver sets it after.
                let status = content["status"].clone();
                let _ = self.create(&r, None, content);
                let key: Key = (
                    r.group.clone(),
                    r.plural.clone(),
                    String::new(),
                    content_name.clone(),
                );
                if let Some(mut made) = self.objects.get(&key).map(|c| c.value.clone()) {
                    made["status"] = status;
                    self.store_modified(&key, made);
                }
            }
            updated["status"] = json!({"readyToUse": true, "boundVolumeSnapshotContentName": content_name,
                "creationTime": super::now_rfc3339(), "restoreSize": pv["spec"]["capacity"]["storage"]});
            self.store_modified(&key, updated);
        }
    }

    /// Makes a snapshot whose source is an existing content ready, bound to it.
    fn bind_pre_provisioned(&mut self, key: &Key, mut snap: Value, content_name: &str) {
        let content_key: Key = (
            "snapshot.storage.k8s.io".into(),
            "volumesnapshotcontents".into(),
            String::new(),
            content_name.into(),
        );
        let Some(content) = self.objects.get(&content_key).map(|c| c.value.clone()) else {
            return;
        };
        let handle = content["spec"]["source"]["snapshotHandle"].clone();
        if content["status"]["readyToUse"] != true {
            let mut ready = content;
            ready["status"] =
                json!({"readyToUse": true, "snapshotHandle": handle, "restoreSize": 0});
            self.store_modified(&content_key, ready);
        }
        snap["status"] = json!({"readyToUse": true, "boundVolumeSnapshotContentName": content_name,
            "creationTime": super::now_rfc3339()});
        self.store_modified(key, snap);
    }

    /// The directory holding the data of a ready snapshot (its content's handle).
    fn snapshot_data(&self, snap: &Value) -> Option<PathBuf> {
        if snap["status"]["readyToUse"] != true {
            return None;
        }
        let content = self.find(
            "snapshot.storage.k8s.io",
            "volumesnapshotcontents",
            "",
            snap["status"]["boundVolumeSnapshotContentName"].as_str()?,
        )?;
        let handle = content["status"]["snapshotHandle"]
            .as_str()
            .or(content["spec"]["source"]["snapshotHandle"].as_str())?;
        Some(PathBuf::from(handle))
    }

    /// The snapshot directory a claim's `dataSource` names, if it is a ready snapshot.
    pub(super) fn snapshot_source(&self, claim: &Value, ns: &str) -> Option<PathBuf> {
        let source = &claim["spec"]["dataSource"];
        if source["kind"] != "VolumeSnapshot" {
            return None;
        }
        let snap = self.find(
            "snapshot.storage.k8s.io",
            "volumesnapshots",
            ns,
            source["name"].as_str()?,
        )?;
        self.snapshot_data(&snap)
    }

    /// What deleting a snapshot object does beyond itself: a VolumeSnapshot takes its bound
    /// content with it, a content its data, when the content's policy is `Delete`.
    pub(super) fn snapshot_gone(&mut self, plural: &str, gone: &Value) {
        let content_name = match plural {
            "volumesnapshots" => gone["status"]["boundVolumeSnapshotContentName"].as_str(),
            _ => None,
        };
        if let Some(name) = content_name {
            let content_key: Key = (
                "snapshot.storage.k8s.io".into(),
                "volumesnapshotcontents".into(),
                String::new(),
                name.into(),
            );
            let delete = self
                .objects
                .get(&content_key)
                .is_some_and(|c| c.value["spec"]["deletionPolicy"] == "Delete");
            if let (true, Some(r)) = (
                delete,
                self.served("snapshot.storage.k8s.io", "volumesnapshotcontents"),
            ) {
                let _ = self.delete(&r, None, name);
            }
        }
        if plural == "volumesnapshotcontents" && gone["spec"]["deletionPolicy"] == "Delete" {
            let handle = gone["status"]["snapshotHandle"]
                .as_str()
                .or(gone["spec"]["source"]["snapshotHandle"].as_str());
            let ours = self.opts.nodes_dir.as_ref().map(|d| d.join("snapshots"));
            if let (Some(handle), Some(ours)) = (handle, ours) {
                let dir = PathBuf::from(handle);
                // Only a copy this stand-in made, never anything a name could point at.
                if dir.parent() == Some(ours.as_path()) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}
