//! CSI snapshot data movement (issue 17) on two simulated nodes: claims snapshotted by
//! their CSI driver, the snapshots' data moved into the repository by a node-agent through
//! a data-mover pod, and restored into new volumes that the restored claims bind to.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cairn_tests::apiserver::ApiServer;
use cairn_tests::control_plane::{simulated_cluster, with_control_plane};
use cairn_tests::eventually;
use serde_json::{json, Value};

const NODES: [&str; 2] = ["node-a", "node-b"];
const DRIVER: &str = "csi.cairn.test";
const SNAPSHOT: &str = "snapshot.storage.k8s.io/v1";

/// Two storage classes (`fast` a CSI driver's with a snapshot class Velero picks by its
/// label, `slow` local volumes), the node-agent DaemonSet, the volume policies, and pod
/// `db` with claims `data` (fast), `logs` (slow) and `tiny` (fast, 512Ki).
fn cluster(nodes_dir: &Path, store: &Path) -> ApiServer {
    let server = simulated_cluster(&NODES, nodes_dir, store);
    server.seed(&cairn_tests::apiserver::snapshots::crds());
    let claim = |name: &str, class: &str, size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "shop", "labels": {"app": "db"}},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    };
    server.seed(&[
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cairn-node-agent", "namespace": "velero"},
            "spec": {"selector": {"matchLabels": {"role": "node-agent"}},
                "template": {"metadata": {"labels": {"role": "node-agent"}},
                    "spec": {"containers": [{"name": "node-agent", "image": "cairn", "args": ["serve"]}]}}}}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": DRIVER}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "slow"}, "provisioner": "kubernetes.io/no-provisioner"}),
        json!({"apiVersion": SNAPSHOT, "kind": "VolumeSnapshotClass",
            "metadata": {"name": "csi-snap", "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
            "driver": DRIVER, "deletionPolicy": "Delete"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "volumes", "namespace": "velero"},
            "data": {"policies.yaml": "version: v1\nvolumePolicies:\n- conditions: {capacity: \"0,1Mi\"}\n  action: {type: skip}\n- conditions: {storageClass: [fast]}\n  action: {type: snapshot}\n- conditions: {storageClass: [slow]}\n  action: {type: fs-backup}\n"}}),
        claim("data", "fast", "1Gi"),
        claim("logs", "slow", "1Gi"),
        claim("tiny", "fast", "512Ki"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"}},
            "spec": {"volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "logs", "persistentVolumeClaim": {"claimName": "logs"}},
                    {"name": "tiny", "persistentVolumeClaim": {"claimName": "tiny"}}],
                "containers": [{"name": "db", "image": "postgres", "volumeMounts": [
                    {"name": "data", "mountPath": "/data"}, {"name": "logs", "mountPath": "/logs"},
                    {"name": "tiny", "mountPath": "/tiny"}]}]}}),
    ]);
    // The slow class is not the provisioner's: without a StorageClass provisioner the
    // simulation gives local volumes.
    server
}

fn running_pod(server: &ApiServer, ns: &str, name: &str) -> Value {
    eventually(60, &format!("pod {ns}/{name} Running"), || {
        let p = server.get("v1", "Pod", Some(ns), name)?;
        (p["status"]["phase"] == "Running").then_some(p)
    })
}

/// The directory of claim `claim`'s volume as pod `pod` mounts it.
fn mount(server: &ApiServer, pod: &Value, claim: &str) -> PathBuf {
    let ns = pod["metadata"]["namespace"].as_str().unwrap();
    let pvc = server
        .get("v1", "PersistentVolumeClaim", Some(ns), claim)
        .unwrap();
    let pv_name = pvc["spec"]["volumeName"].as_str().unwrap();
    let pv = server.get("v1", "PersistentVolume", None, pv_name).unwrap();
    let node = pod["spec"]["nodeName"].as_str().unwrap();
    let sub = match pv["spec"]["csi"].is_object() {
        true => format!("kubernetes.io~csi/{pv_name}/mount"),
        false => format!("kubernetes.io~local-volume/{pv_name}"),
    };
    server
        .pods_dir(node)
        .unwrap()
        .join(pod["metadata"]["uid"].as_str().unwrap())
        .join("volumes")
        .join(sub)
}

/// Files with content, modes and times of their own, in a subdirectory too.
fn fill(dir: &Path, seed: u64) {
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    for (i, path) in [dir.join("a.bin"), sub.join("b.txt"), dir.join("marker")]
        .iter()
        .enumerate()
    {
        let bytes = cairn_tests::random_bytes(20_000 + i * 999, seed * 10 + i as u64);
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
        cairn_tests::set_mtime(path, 1_700_000_000 + i as i64, 5_000);
    }
    cairn_tests::set_mtime(&sub, 1_600_000_000, 0);
}

fn ended(server: &ApiServer, kind: &str, name: &str) -> Value {
    eventually(120, &format!("{kind} {name} ended"), || {
        let o = server.get("velero.io/v1", kind, Some("velero"), name)?;
        matches!(
            o["status"]["phase"].as_str(),
            Some("Completed" | "PartiallyFailed" | "Failed" | "FailedValidation")
        )
        .then_some(o)
    })
}

fn listed(server: &ApiServer, api: &str, kind: &str, ns: Option<&str>) -> Vec<String> {
    server
        .list(api, kind, ns)
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Nothing the data movers made is left: no snapshots, no contents, no snapshot data, no
/// temporary claims or pods (the node-agents' pods aside).
fn nothing_left(server: &ApiServer, nodes_dir: &Path) {
    let left = || {
        let mut left = listed(server, SNAPSHOT, "VolumeSnapshot", None);
        left.extend(listed(server, SNAPSHOT, "VolumeSnapshotContent", None));
        left.extend(listed(
            server,
            "v1",
            "PersistentVolumeClaim",
            Some("velero"),
        ));
        left.extend(
            listed(server, "v1", "Pod", Some("velero"))
                .into_iter()
                .filter(|p| !p.starts_with("cairn-node-agent")),
        );
        let data = std::fs::read_dir(nodes_dir.join("snapshots"));
        left.extend(
            data.into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().display().to_string()),
        );
        left
    };
    eventually(30, "nothing the data movers made left", || {
        left().is_empty().then_some(())
    });
}

/// The policy sends `data` (fast) to a snapshot whose data is moved, `logs` (slow) to a
/// file-by-file backup, and skips `tiny` (small). The pre hook runs before the snapshot and
/// the post hook right after it: what the post hook writes is not in the backup (a point in
/// time), what the pre hook wrote is. The namespace and its volumes are deleted and
/// restored: the data is back byte- and metadata-identical, the claims bound to new
/// volumes, and nothing the data movers made is left.
#[test]
fn a_moved_snapshot_and_a_file_system_backup_round_trip_chosen_by_policy() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    let db = running_pod(&server, "shop", "db");
    let (data, logs) = (mount(&server, &db, "data"), mount(&server, &db, "logs"));
    fill(&data, 1);
    fill(&logs, 2);
    std::fs::write(mount(&server, &db, "tiny").join("t"), "small").unwrap();
    let logs_state = cairn_tests::tree_state(&logs);
    let hook = |line: String| json!([{"exec": {"container": "db", "command": ["/bin/sh", "-c", line], "onError": "Fail"}}]);
    // The pre hook rewrites a file that exists (the directory's time stays), the post hook
    // adds one.
    let (marker, after) = (data.join("marker"), data.join("after"));
    let pre = hook(format!("echo quiesced > {}", marker.display()));
    let post = hook(format!("echo resumed > {}", after.display()));
    let mut data_state = None;
    with_control_plane(&server, &NODES, |_| {
        running_pod(&server, "velero", "cairn-node-agent-node-a");
        running_pod(&server, "velero", "cairn-node-agent-node-b");
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b1", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "snapshotMoveData": true,
                "resourcePolicy": {"kind": "configmap", "name": "volumes"},
                "hooks": {"resources": [{"name": "quiesce", "pre": pre, "post": post}]}}})]);
        let b = ended(&server, "Backup", "b1");
        assert_eq!(b["status"]["phase"], "Completed", "{b}");
        assert!(after.exists(), "the post hook ran");
        // The data as it was snapshotted: the live volume without the post hook's file.
        std::fs::remove_file(&after).unwrap();
        let mut state = cairn_tests::tree_state(&data);
        state.remove(Path::new("marker"));
        data_state = Some(state);
        let uploads = server.list("velero.io/v2alpha1", "DataUpload", Some("velero"));
        assert_eq!(uploads.len(), 1, "{uploads:?}");
        let up = &uploads[0];
        assert_eq!(up["spec"]["sourcePVC"], "data");
        assert_eq!(up["spec"]["csiSnapshot"]["snapshotClass"], "csi-snap");
        assert_eq!(up["spec"]["csiSnapshot"]["driver"], DRIVER);
        assert_eq!(up["status"]["phase"], "Completed", "{up}");
        assert!(up["status"]["acceptedByNode"].is_string(), "{up}");
        assert!(
            up["status"]["progress"]["bytesDone"].as_u64().unwrap() > 40_000,
            "{up}"
        );
        let pvbs = server.list("velero.io/v1", "PodVolumeBackup", Some("velero"));
        let fs: Vec<&str> = pvbs
            .iter()
            .map(|p| p["spec"]["volume"].as_str().unwrap())
            .collect();
        assert_eq!(fs, ["logs"], "only the slow class's claim file by file");
        nothing_left(&server, nodes.path());

        // The namespace goes, its claims' volumes with it.
        server.delete("v1", "Namespace", None, "shop");
        for pv in listed(&server, "v1", "PersistentVolume", None) {
            server.delete("v1", "PersistentVolume", None, &pv);
        }
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "r1", "namespace": "velero"},
            "spec": {"backupName": "b1"}})]);
        let r = ended(&server, "Restore", "r1");
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        let downloads = server.list("velero.io/v2alpha1", "DataDownload", Some("velero"));
        assert_eq!(downloads.len(), 1, "{downloads:?}");
        assert_eq!(
            downloads[0]["status"]["phase"], "Completed",
            "{downloads:?}"
        );
        assert_eq!(downloads[0]["spec"]["targetVolume"]["pvc"], "data");
        nothing_left(&server, nodes.path());
    });
    let db = running_pod(&server, "shop", "db");
    let claim = server
        .get("v1", "PersistentVolumeClaim", Some("shop"), "data")
        .unwrap();
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
    let restored = mount(&server, &db, "data");
    let mut state = cairn_tests::tree_state(&restored);
    assert_eq!(
        std::fs::read_to_string(restored.join("marker")).unwrap(),
        "quiesced\n",
        "the pre hook ran before the snapshot"
    );
    state.remove(Path::new("marker"));
    assert!(
        !restored.join("after").exists(),
        "written after the snapshot: not in the backup"
    );
    assert_eq!(Some(state), data_state);
    assert_eq!(
        cairn_tests::tree_state(&mount(&server, &db, "logs")),
        logs_state
    );
    assert!(
        !mount(&server, &db, "tiny").join("t").exists(),
        "the small claim was skipped"
    );
}

/// A namespace `edge` with pod `app` and a claim of each class `classes` names
/// (`(claim, class, driver)`), whose StorageClasses are made.
fn edge(server: &ApiServer, classes: &[(&str, &str, &str)]) -> Value {
    let mut objects =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edge"}})];
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (claim, class, driver) in classes {
        objects.push(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": class}, "provisioner": driver}));
        objects.push(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": "edge"},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}));
        volumes.push(json!({"name": claim, "persistentVolumeClaim": {"claimName": claim}}));
        mounts.push(json!({"name": claim, "mountPath": format!("/{claim}")}));
    }
    objects.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "edge"},
        "spec": {"volumes": volumes, "containers": [{"name": "app", "image": "app", "volumeMounts": mounts}]}}));
    server.seed(&objects);
    running_pod(server, "edge", "app")
}

/// The errors in the results of backup `name`.
fn backup_errors(store: &Path, name: &str) -> Vec<String> {
    let repo = cairn_tests::location_repo(store)
        .load_index(&repo_core::NoProgress)
        .unwrap();
    let snap = repo_k8s::catalog::backup_snapshot(&repo, name).unwrap();
    repo_k8s::catalog::results(&repo, &snap)
        .unwrap()
        .errors
        .messages()
        .map(|(_, m)| m.to_string())
        .collect()
}

/// Without policies, a Backup that moves snapshot data snapshots every claim. A driver
/// without a VolumeSnapshotClass is an error naming the driver; a snapshot that is not
/// ready within the Backup's csiSnapshotTimeout is an error saying so, and is deleted; a
/// claim of another class is still moved.
#[test]
fn snapshots_that_cannot_be_taken_are_errors_that_say_why() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    server.seed(&[json!({"apiVersion": SNAPSHOT, "kind": "VolumeSnapshotClass",
        "metadata": {"name": "stuck-snap", "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
        "driver": "csi.stuck", "deletionPolicy": "Delete", "parameters": {"cairn.test/never-ready": "true"}})]);
    let app = edge(
        &server,
        &[
            ("good", "fast-edge", DRIVER),
            ("orphan", "other", "csi.other"),
            ("stuck", "stuck", "csi.stuck"),
        ],
    );
    std::fs::write(mount(&server, &app, "good").join("f"), "kept").unwrap();
    with_control_plane(&server, &NODES, |_| {
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b1", "namespace": "velero"},
            "spec": {"includedNamespaces": ["edge"], "snapshotMoveData": true, "csiSnapshotTimeout": "2s"}})]);
        let b = ended(&server, "Backup", "b1");
        assert_eq!(b["status"]["phase"], "PartiallyFailed", "{b}");
        let uploads = server.list("velero.io/v2alpha1", "DataUpload", Some("velero"));
        let moved: Vec<(&str, &str)> = uploads
            .iter()
            .map(|u| {
                (
                    u["spec"]["sourcePVC"].as_str().unwrap(),
                    u["status"]["phase"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(moved, [("good", "Completed")]);
        nothing_left(&server, nodes.path());
    });
    let errors = backup_errors(store.path(), "b1");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("claim edge/orphan")
            && e.contains("no VolumeSnapshotClass for CSI driver csi.other")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("claim edge/stuck") && e.contains("was not ready after 2s")),
        "{errors:?}"
    );
}

/// Large enough that its data is still moving when the test acts.
fn fill_large(dir: &Path) {
    for i in 0..12 {
        let bytes = cairn_tests::random_bytes(8 << 20, 100 + i);
        std::fs::write(dir.join(format!("part-{i}")), bytes).unwrap();
    }
}

fn upload_in_progress(server: &ApiServer) -> Value {
    eventually(120, "a DataUpload InProgress", || {
        server
            .list("velero.io/v2alpha1", "DataUpload", Some("velero"))
            .into_iter()
            .find(|u| u["status"]["phase"] == "InProgress")
    })
}

/// The store's repository checks clean and holds no data of claim `claim`.
fn nothing_of(store: &Path, claim: &str) {
    let repo = cairn_tests::location_repo(store)
        .load_index(&repo_core::NoProgress)
        .unwrap();
    let snaps = repo
        .list_snapshots(&repo_core::SnapshotFilter::default())
        .unwrap();
    let tag = format!("pvc={claim}");
    assert!(
        snaps.iter().all(|(_, s)| !s.tags.contains(&tag)),
        "nothing of the stopped upload committed"
    );
    let report = repo
        .check(&repo_core::CheckOptions::read_all(), &repo_core::NoProgress)
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Deleting a Backup while its snapshot's data moves stops the upload: the DataUpload is
/// cancelled (or deleted with its Backup), and the temporary claim, pod and snapshot go.
#[test]
fn deleting_a_backup_mid_upload_cancels_it_and_cleans_up() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    let db = running_pod(&server, "shop", "db");
    fill_large(&mount(&server, &db, "data"));
    with_control_plane(&server, &NODES, |_| {
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "big", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "snapshotMoveData": true,
                "resourcePolicy": {"kind": "configmap", "name": "volumes"}}})]);
        let up = upload_in_progress(&server);
        let name = up["metadata"]["name"].as_str().unwrap().to_string();
        server.delete("velero.io/v1", "Backup", Some("velero"), "big");
        let gone_or_ended = eventually(60, "the DataUpload deleted or ended", || {
            match server.get("velero.io/v2alpha1", "DataUpload", Some("velero"), &name) {
                None => Some(Value::Null),
                Some(u) => matches!(
                    u["status"]["phase"].as_str(),
                    Some("Completed" | "Failed" | "Canceled")
                )
                .then(|| u["status"].clone()),
            }
        });
        assert!(
            gone_or_ended.is_null() || gone_or_ended["phase"] == "Canceled",
            "{gone_or_ended}"
        );
        nothing_left(&server, nodes.path());
    });
    nothing_of(store.path(), "data");
}

/// A node-agent killed (SIGKILL) while it uploads a snapshot's data: started again, it
/// fails the DataUpload with the reason and deletes what was made for it; the Backup is
/// PartiallyFailed naming the claim, nothing of it is committed, the repository checks
/// clean, and the next backup moves the claim.
#[test]
fn a_node_agent_killed_mid_upload_fails_it_and_cleans_up() {
    use std::process::{Child, Command, Stdio};
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    let db = running_pod(&server, "shop", "db");
    fill_large(&mount(&server, &db, "data"));
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(work.path());
    let bin = cairn_tests::node_agent();
    let agent = |n: &str| -> Child {
        Command::new(&bin)
            .args(["--no-cache", "serve", "--node", n, "--kubeconfig"])
            .arg(&kubeconfig)
            .arg("--pods-dir")
            .arg(server.pods_dir(n).unwrap())
            .env_remove("CAIRN_REPO")
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let serve = Command::new(bin.with_file_name("cairn-server"))
        .args([
            "--no-cache",
            "serve",
            "--identity",
            "only",
            "--metrics-address",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .env_remove("CAIRN_REPO")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut agents: Vec<(String, Child)> =
        NODES.iter().map(|n| (n.to_string(), agent(n))).collect();
    let backup = |name: &str| {
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "snapshotMoveData": true,
                "resourcePolicy": {"kind": "configmap", "name": "volumes"}}})]);
    };
    backup("b1");
    let up = upload_in_progress(&server);
    let node = up["status"]["node"].as_str().unwrap().to_string();
    let at = agents.iter().position(|(n, _)| *n == node).unwrap();
    agents[at].1.kill().unwrap();
    agents[at].1.wait().unwrap();
    let name = up["metadata"]["name"].as_str().unwrap();
    let killed = server
        .get("velero.io/v2alpha1", "DataUpload", Some("velero"), name)
        .unwrap();
    assert_eq!(
        killed["status"]["phase"], "InProgress",
        "killed before it ended"
    );
    agents[at].1 = agent(&node);
    let failed = eventually(60, "the DataUpload Failed", || {
        let u = server.get("velero.io/v2alpha1", "DataUpload", Some("velero"), name)?;
        (u["status"]["phase"] == "Failed").then_some(u)
    });
    assert!(
        failed["status"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped while it moved this volume's data"),
        "{failed}"
    );
    let b1 = ended(&server, "Backup", "b1");
    assert_eq!(b1["status"]["phase"], "PartiallyFailed", "{b1}");
    nothing_left(&server, nodes.path());
    backup("b2");
    let b2 = ended(&server, "Backup", "b2");
    for (_, child) in agents.iter_mut().chain([(String::new(), serve)].iter_mut()) {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(b2["status"]["phase"], "Completed", "{b2}");
    let errors = backup_errors(store.path(), "b1");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("claim shop/data") && e.contains("failed")),
        "{errors:?}"
    );
    let repo = cairn_tests::location_repo(store.path())
        .load_index(&repo_core::NoProgress)
        .unwrap();
    let of = |backup: &str| {
        repo.list_snapshots(&repo_core::SnapshotFilter {
            tags: vec![format!("backup={backup}"), "pvc=data".into()],
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    assert_eq!(
        (of("b1"), of("b2")),
        (0, 1),
        "nothing of the killed upload committed"
    );
    let report = repo
        .check(&repo_core::CheckOptions::read_all(), &repo_core::NoProgress)
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}
