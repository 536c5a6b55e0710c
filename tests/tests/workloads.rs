//! Pod volumes of real workload shapes (issue 15): a Deployment and a StatefulSet whose pods
//! the simulated scheduler spreads over two nodes, each node with its own node-agent (a
//! DaemonSet), backed up and, after the namespace is deleted, restored.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cairn_tests::apiserver::ApiServer;
use cairn_tests::control_plane::{simulated_cluster, with_control_plane};
use cairn_tests::eventually;
use serde_json::{json, Value};

const NODES: [&str; 2] = ["node-a", "node-b"];

fn cluster(nodes_dir: &Path, store: &Path) -> ApiServer {
    let server = simulated_cluster(&NODES, nodes_dir, store);
    server.seed(&[
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cairn-node-agent", "namespace": "velero"},
            "spec": {"selector": {"matchLabels": {"role": "node-agent"}},
                "template": {"metadata": {"labels": {"role": "node-agent"}},
                    "spec": {"containers": [{"name": "node-agent", "image": "cairn", "args": ["serve"]}]}}}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop"},
            "data": {"password": "c2VjcmV0"}}),
        // web: opts its volume in, and (for default-on backups) its cache out; a hostPath
        // and a secret are never backed up.
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}, "annotations": {
                        "backup.velero.io/backup-volumes": "www,logs",
                        "backup.velero.io/backup-volumes-excludes": "cache,logs"}},
                    "spec": {"volumes": [
                            {"name": "www", "emptyDir": {}}, {"name": "cache", "emptyDir": {}},
                            {"name": "logs", "hostPath": {"path": "/var/log"}},
                            {"name": "creds", "secret": {"secretName": "creds"}}],
                        "containers": [{"name": "nginx", "image": "nginx", "volumeMounts": [
                            {"name": "www", "mountPath": "/www"}, {"name": "cache", "mountPath": "/cache"},
                            {"name": "logs", "mountPath": "/logs"}, {"name": "creds", "mountPath": "/creds"}]}]}}}}),
        // db: a claim per replica from its template, and a scratch volume left out.
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}, "annotations": {
                        "backup.velero.io/backup-volumes": "data",
                        "backup.velero.io/backup-volumes-excludes": "scratch"}},
                    "spec": {"volumes": [{"name": "scratch", "emptyDir": {}}],
                        "containers": [{"name": "postgres", "image": "postgres", "volumeMounts": [
                            {"name": "data", "mountPath": "/var/lib/postgresql"}, {"name": "scratch", "mountPath": "/tmp"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    ]);
    server
}

/// The Running pods of namespace `ns`, by name.
fn running_pods(server: &ApiServer, ns: &str) -> Vec<Value> {
    server
        .list("v1", "Pod", Some(ns))
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .collect()
}

/// The directory of volume `volume` of `pod` on its node.
fn volume_dir(server: &ApiServer, pod: &Value, volume: &str) -> PathBuf {
    let node = pod["spec"]["nodeName"].as_str().unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let base = server.pods_dir(node).unwrap().join(uid).join("volumes");
    let v = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == volume)
        .unwrap();
    let sub = match v["persistentVolumeClaim"]["claimName"].as_str() {
        Some(claim) => {
            let ns = pod["metadata"]["namespace"].as_str().unwrap();
            let pvc = server
                .get("v1", "PersistentVolumeClaim", Some(ns), claim)
                .unwrap();
            format!(
                "kubernetes.io~local-volume/{}",
                pvc["spec"]["volumeName"].as_str().unwrap()
            )
        }
        None => format!("kubernetes.io~empty-dir/{volume}"),
    };
    base.join(sub)
}

/// Files with content, modes and times of their own (and a subdirectory).
fn fill(dir: &Path, seed: u64) {
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    for (i, (path, mode)) in [
        (dir.join("a.bin"), 0o640),
        (sub.join("b.txt"), 0o600),
        (dir.join("empty"), 0o644),
    ]
    .iter()
    .enumerate()
    {
        let len = if i == 2 { 0 } else { 10_000 + i * 777 };
        std::fs::write(path, cairn_tests::random_bytes(len, seed * 10 + i as u64)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap();
        cairn_tests::set_mtime(path, 1_700_000_000 + i as i64, 123_000_000);
    }
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o750)).unwrap();
    cairn_tests::set_mtime(&sub, 1_600_000_000, 0);
}

fn phase_of(o: &Value) -> Option<&str> {
    o["status"]["phase"].as_str()
}

fn ended(server: &ApiServer, kind: &str, name: &str) -> Value {
    eventually(120, &format!("{kind} {name} ended"), || {
        let o = server.get("velero.io/v1", kind, Some("velero"), name)?;
        matches!(
            phase_of(&o),
            Some("Completed" | "PartiallyFailed" | "Failed" | "FailedValidation")
        )
        .then_some(o)
    })
}

/// `(pod, volume, node)` of each PodVolumeBackup of `backup`.
fn backed_up(server: &ApiServer, backup: &str) -> BTreeSet<(String, String, String)> {
    server
        .list("velero.io/v1", "PodVolumeBackup", Some("velero"))
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["velero.io/backup-name"] == backup)
        .map(|p| {
            assert_eq!(p["status"]["phase"], "Completed", "{p}");
            let s = |v: &Value| v.as_str().unwrap().to_string();
            (
                s(&p["spec"]["pod"]["name"]),
                s(&p["spec"]["volume"]),
                s(&p["spec"]["node"]),
            )
        })
        .collect()
}

/// The Deployment's and StatefulSet's pods over two nodes: opted-in (then opted-out)
/// volumes are backed up by the node-agent of their pod's node and nothing else is; the
/// namespace is deleted and restored: each volume's files come back byte- and
/// metadata-identical in the restored pods, which ran once restore-wait let them (the done
/// files are gone).
#[test]
fn a_deployment_and_a_statefulset_over_two_nodes_round_trip() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    let pods = eventually(60, "four shop pods and two node-agents Running", || {
        let shop = running_pods(&server, "shop");
        (shop.len() == 4 && running_pods(&server, "velero").len() == 2).then_some(shop)
    });
    let on: BTreeSet<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(on.len(), 2, "the pods are spread over both nodes");
    // What each pod's backed-up volume holds, and what the volumes left out hold.
    let mut before = std::collections::BTreeMap::new();
    for (i, p) in pods.iter().enumerate() {
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        let (kept, left) = match p["metadata"]["labels"]["app"].as_str() {
            Some("web") => ("www", "cache"),
            _ => ("data", "scratch"),
        };
        let dir = volume_dir(&server, p, kept);
        fill(&dir, i as u64);
        fill(&volume_dir(&server, p, left), 100 + i as u64);
        before.insert(name, (kept, cairn_tests::tree_state(&dir)));
    }
    let expected: BTreeSet<(String, String, String)> = pods
        .iter()
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap().to_string();
            let name = s(&p["metadata"]["name"]);
            (
                name.clone(),
                before[&name].0.to_string(),
                s(&p["spec"]["nodeName"]),
            )
        })
        .collect();

    let restored = with_control_plane(&server, &NODES, |_| {
        // Opt-in (the server's default), then opt-out.
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "opt-in", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"]}})]);
        let b = ended(&server, "Backup", "opt-in");
        assert_eq!(phase_of(&b), Some("Completed"), "{b}");
        assert_eq!(backed_up(&server, "opt-in"), expected);
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "opt-out", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "defaultVolumesToFsBackup": true}})]);
        let b = ended(&server, "Backup", "opt-out");
        assert_eq!(phase_of(&b), Some("Completed"), "{b}");
        assert_eq!(backed_up(&server, "opt-out"), expected);

        // The namespace goes, with its pods, claims and their data.
        server.delete("v1", "Namespace", None, "shop");
        for p in &pods {
            let node = p["spec"]["nodeName"].as_str().unwrap();
            let uid = p["metadata"]["uid"].as_str().unwrap();
            assert!(!server.pods_dir(node).unwrap().join(uid).exists());
        }
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "velero"}, "spec": {"backupName": "opt-out"}})]);
        let r = ended(&server, "Restore", "r1");
        assert_eq!(phase_of(&r), Some("Completed"), "{r}");
        eventually(60, "the restored pods Running", || {
            let shop = running_pods(&server, "shop");
            (shop.len() == 4).then_some(shop)
        })
    });
    let names = |ps: &[Value]| -> BTreeSet<String> {
        ps.iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&restored),
        names(&pods),
        "the same pods, no extra ones"
    );
    for p in &restored {
        let name = p["metadata"]["name"].as_str().unwrap();
        let (kept, state) = &before[name];
        let dir = volume_dir(&server, p, kept);
        assert_eq!(&cairn_tests::tree_state(&dir), state, "{name}/{kept}");
        assert!(
            !dir.join(".velero").exists(),
            "{name}: the done file is gone"
        );
        let inits = &p["spec"]["initContainers"];
        assert_eq!(inits[0]["name"], "restore-wait", "{p}");
        assert_eq!(
            inits[0]["volumeMounts"],
            json!([{"name": kept, "mountPath": format!("/restores/{kept}")}])
        );
    }
    let pvrs = server.list("velero.io/v1", "PodVolumeRestore", Some("velero"));
    assert_eq!(pvrs.len(), 4, "{pvrs:?}");
    assert!(pvrs.iter().all(|p| p["status"]["phase"] == "Completed"));
}

/// Volume policies (the Backup's spec.resourcePolicy ConfigMap) decide before the pods'
/// annotations: emptyDir volumes are skipped even when opted in, the StatefulSet's claims
/// (by their labels) are backed up file by file.
#[test]
fn volume_policies_choose_the_volumes() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    server.seed(&[json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "volumes", "namespace": "velero"},
        "data": {"policies.yaml": "version: v1\nvolumePolicies:\n- conditions: {volumeTypes: [emptyDir]}\n  action: {type: skip}\n- conditions: {pvcLabels: {app: db}}\n  action: {type: fs-backup}\n"}})]);
    let pods = eventually(60, "four shop pods and two node-agents Running", || {
        let shop = running_pods(&server, "shop");
        (shop.len() == 4 && running_pods(&server, "velero").len() == 2).then_some(shop)
    });
    let expected: BTreeSet<(String, String, String)> = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "db")
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap().to_string();
            (
                s(&p["metadata"]["name"]),
                "data".to_string(),
                s(&p["spec"]["nodeName"]),
            )
        })
        .collect();
    with_control_plane(&server, &NODES, |_| {
        // web's pods opt their www (an emptyDir) in: the policy skips it all the same.
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "by-policy", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "resourcePolicy": {"kind": "configmap", "name": "volumes"}}})]);
        let b = ended(&server, "Backup", "by-policy");
        assert_eq!(phase_of(&b), Some("Completed"), "{b}");
        assert_eq!(backed_up(&server, "by-policy"), expected);
        // A policy ConfigMap that is not there is the Backup's validation error.
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "no-policy", "namespace": "velero"},
            "spec": {"resourcePolicy": {"kind": "configmap", "name": "nope"}}})]);
        let b = ended(&server, "Backup", "no-policy");
        assert_eq!(phase_of(&b), Some("FailedValidation"), "{b}");
        assert!(
            b["status"]["validationErrors"][0]
                .as_str()
                .unwrap()
                .contains("nope"),
            "{b}"
        );
    });
}
