//! The simulated cluster's CSI snapshots (issue 17's groundwork): a VolumeSnapshot holds its
//! claim's data as it was when taken; a claim made from it starts as that copy; a class
//! that does not exist is the snapshot's error.

use cairn_tests::apiserver::ApiServer;
use cairn_tests::control_plane::simulated_cluster;
use cairn_tests::eventually;
use serde_json::{json, Value};

fn running(server: &ApiServer, name: &str) -> Value {
    eventually(60, &format!("pod {name} Running"), || {
        let p = server.get("v1", "Pod", Some("shop"), name)?;
        (p["status"]["phase"] == "Running").then_some(p)
    })
}

/// The directory of claim `claim`'s volume in pod `pod` (a CSI volume's mount).
fn mount(server: &ApiServer, pod: &Value, claim: &str) -> std::path::PathBuf {
    let pvc = server
        .get("v1", "PersistentVolumeClaim", Some("shop"), claim)
        .unwrap();
    let pv = pvc["spec"]["volumeName"].as_str().unwrap();
    server
        .pods_dir("node-a")
        .unwrap()
        .join(pod["metadata"]["uid"].as_str().unwrap())
        .join("volumes/kubernetes.io~csi")
        .join(pv)
        .join("mount")
}

fn pod_of(name: &str, claim: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            "containers": [{"name": "c", "image": "db", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}})
}

fn snapshot(name: &str, class: Option<&str>) -> Value {
    let mut s = json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"source": {"persistentVolumeClaimName": "data"}}});
    if let Some(c) = class {
        s["spec"]["volumeSnapshotClassName"] = json!(c);
    }
    s
}

#[test]
fn snapshots_hold_their_claims_data_as_it_was_and_claims_start_from_them() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = simulated_cluster(&["node-a"], nodes.path(), store.path());
    server.seed(&cairn_tests::apiserver::snapshots::crds());
    server.seed(&[
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "hostpath.csi.k8s.io"}),
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": "csi-hostpath", "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
            "driver": "hostpath.csi.k8s.io", "deletionPolicy": "Delete"}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        pod_of("db", "data"),
    ]);
    let db = running(&server, "db");
    let dir = mount(&server, &db, "data");
    std::fs::write(dir.join("before"), "taken").unwrap();
    server.seed(&[snapshot("snap-1", None)]);
    let snap = eventually(30, "snap-1 ready", || {
        let s = server.get(
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshot",
            Some("shop"),
            "snap-1",
        )?;
        (s["status"]["readyToUse"] == true).then_some(s)
    });
    let content = snap["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap();
    let c = server
        .get(
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshotContent",
            None,
            content,
        )
        .unwrap();
    assert_eq!(c["spec"]["driver"], "hostpath.csi.k8s.io");
    // Written after the snapshot: not in it.
    std::fs::write(dir.join("after"), "later").unwrap();
    server.seed(&[
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "copy", "namespace": "shop"},
            "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap-1"}}}),
        pod_of("reader", "copy"),
    ]);
    let reader = running(&server, "reader");
    let copied = mount(&server, &reader, "copy");
    assert_eq!(
        std::fs::read_to_string(copied.join("before")).unwrap(),
        "taken"
    );
    assert!(
        !copied.join("after").exists(),
        "the snapshot is a point in time"
    );
    // A class that does not exist.
    server.seed(&[snapshot("snap-2", Some("missing"))]);
    let err = eventually(30, "snap-2's error", || {
        let s = server.get(
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshot",
            Some("shop"),
            "snap-2",
        )?;
        s["status"]["error"]["message"].as_str().map(str::to_string)
    });
    assert!(err.contains("\\\"missing\\\" not found"), "{err}");
}
