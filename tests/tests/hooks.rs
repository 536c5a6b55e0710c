//! Backup and restore hooks (issue 15) on the tests' API server with a simulated node: the
//! commands run through the pods `exec` API in the pod's directory on its node, where its
//! volumes are, so a hook's effect on the data can be seen.

use std::path::{Path, PathBuf};

use cairn_tests::apiserver::ApiServer;
use cairn_tests::control_plane::{simulated_cluster, with_control_plane};
use cairn_tests::eventually;
use serde_json::{json, Value};

/// The simulated cluster with node `node-a` and a node-agent pod on it.
fn cluster(nodes_dir: &Path, store: &Path) -> ApiServer {
    let server = simulated_cluster(&["node-a"], nodes_dir, store);
    server.seed(&[json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "node-agent-a", "namespace": "velero", "labels": {"role": "node-agent"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "node-agent", "image": "cairn"}]}})]);
    server
}

/// A pod on node-a with an emptyDir volume `volume` mounted by container `main`.
fn pod(name: &str, volume: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": labels, "annotations": annotations},
        "spec": {"nodeName": "node-a", "volumes": [{"name": volume, "emptyDir": {}}],
            "containers": [{"name": "main", "image": "app", "volumeMounts": [{"name": volume, "mountPath": "/v"}]},
                {"name": "sidecar", "image": "proxy"}]}})
}

/// The pod's directory on node-a (the hooks' working directory).
fn pod_dir(server: &ApiServer, name: &str) -> PathBuf {
    let pod = server.get("v1", "Pod", Some("shop"), name).unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    server.pods_dir("node-a").unwrap().join(uid)
}

fn running(server: &ApiServer, ns: &str, name: &str) {
    eventually(60, &format!("{ns}/{name} Running"), || {
        (server.get("v1", "Pod", Some(ns), name)?["status"]["phase"] == "Running").then_some(())
    });
}

/// The Backup or Restore `name` once it has ended.
fn ended(server: &ApiServer, kind: &str, name: &str) -> Value {
    eventually(60, &format!("{kind} {name} ended"), || {
        let o = server.get("velero.io/v1", kind, Some("velero"), name)?;
        matches!(
            o["status"]["phase"].as_str(),
            Some("Completed" | "PartiallyFailed" | "Failed" | "FailedValidation")
        )
        .then_some(o)
    })
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

/// Pre and post backup hooks, from annotations and from the Backup's spec:
/// - the pre hook's dump is in the volume's backup and the post hook, which removes it,
///   ran only after the volume was read (Velero #8159);
/// - a spec hook with `onError: Fail` that fails leaves its pod out (object and volumes)
///   and runs none of its later hooks;
/// - an annotation hook with `on-error: Continue` that fails is an error, and the pod is
///   backed up;
/// - a hook that outlives its timeout fails, naming the timeout;
/// - `hookStatus` counts what Velero counts, and the Backup is PartiallyFailed.
#[test]
fn backup_hooks_run_around_the_pods_volumes_with_veleros_rules() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    let sh = |script: &str| json!(["sh", "-c", script]).to_string();
    server.seed(&[
        pod(
            "db",
            "data",
            json!({"app": "db"}),
            json!({
                "pre.hook.backup.velero.io/command": sh("echo rows > volumes/kubernetes.io~empty-dir/data/dump.sql"),
                "pre.hook.backup.velero.io/container": "main",
                "post.hook.backup.velero.io/command": sh("rm volumes/kubernetes.io~empty-dir/data/dump.sql && echo resumed > post-ran"),
            }),
        ),
        pod("web", "www", json!({"app": "web"}), json!({})),
        pod(
            "slow",
            "tmp",
            json!({"app": "slow"}),
            json!({"pre.hook.backup.velero.io/command": r#"["sleep","5"]"#,
                "pre.hook.backup.velero.io/timeout": "1s",
                "pre.hook.backup.velero.io/on-error": "Continue"}),
        ),
        pod(
            "cache",
            "tmp",
            json!({"app": "cache"}),
            json!({"hook.backup.velero.io/command": sh("echo not today >&2; exit 3"),
                "hook.backup.velero.io/on-error": "Continue"}),
        ),
    ]);
    for p in ["db", "web", "slow", "cache"] {
        running(&server, "shop", p);
    }
    running(&server, "velero", "node-agent-a");
    let backup = with_control_plane(&server, &["node-a"], |_| {
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "defaultVolumesToFsBackup": true,
                "hooks": {"resources": [
                    {"name": "freeze", "labelSelector": {"matchLabels": {"app": "web"}},
                        "pre": [{"exec": {"command": ["false"], "onError": "Fail"}},
                            {"exec": {"command": ["touch", "never"]}}],
                        "post": [{"exec": {"command": ["touch", "never-post"]}}]},
                    // Replaced by db's and cache's pre annotations; after freeze on web.
                    {"name": "everyone", "includedNamespaces": ["shop"],
                        "pre": [{"exec": {"container": "sidecar", "command": ["touch", "spec-pre"]}}]}]}}})]);
        ended(&server, "Backup", "b1")
    });
    assert_eq!(backup["status"]["phase"], "PartiallyFailed", "{backup}");
    // db: pre and post (annotations); web: freeze's two pre and everyone's (the last two
    // not run, but counted as Velero counts them); cache and slow: their pre (annotations).
    assert_eq!(
        backup["status"]["hookStatus"],
        json!({"hooksAttempted": 7, "hooksFailed": 3}),
        "{backup}"
    );
    let repo = cairn_tests::location_repo(store.path())
        .load_index(&repo_core::NoProgress)
        .unwrap();
    let snap = repo_k8s::catalog::backup_snapshot(&repo, "b1").unwrap();
    let errors = backup_errors(store.path(), "b1");
    assert_eq!(
        errors,
        [
            "pre hook <from-annotation> of pod shop/cache in container (first) failed: command terminated with exit code 3: not today",
            "pre hook <from-annotation> of pod shop/slow in container (first) failed: running [\"sleep\", \"5\"] in pod shop/slow: timed out after 1s",
            "pre hook freeze of pod shop/web in container (first) failed: command terminated with exit code 1",
            "pod shop/web was left out of the backup (its volumes too): a pre hook with onError Fail failed",
        ]
    );
    let pods = &repo_k8s::catalog::resource_list(&repo, &snap).unwrap()["v1/Pod"];
    assert_eq!(
        pods,
        &["shop/cache", "shop/db", "shop/slow"],
        "web is left out"
    );
    let mut volumes: Vec<String> = server
        .list("velero.io/v1", "PodVolumeBackup", Some("velero"))
        .iter()
        .map(|p| format!("{}/{}", p["spec"]["pod"]["name"], p["spec"]["volume"]))
        .collect();
    volumes.sort();
    assert_eq!(
        volumes,
        [r#""cache"/"tmp""#, r#""db"/"data""#, r#""slow"/"tmp""#]
    );
    // The dump was read before the post hook removed it.
    let data = server
        .list("velero.io/v1", "PodVolumeBackup", Some("velero"))
        .into_iter()
        .find(|p| p["spec"]["volume"] == "data")
        .unwrap();
    let mut files = Vec::new();
    repo_fs::browse::list(
        &repo,
        data["status"]["snapshotID"].as_str().unwrap(),
        "",
        true,
        &mut |p, _| files.push(p.display().to_string()),
    )
    .unwrap();
    assert_eq!(files, ["dump.sql"]);
    let db = pod_dir(&server, "db");
    assert!(!db
        .join("volumes/kubernetes.io~empty-dir/data/dump.sql")
        .exists());
    assert_eq!(
        std::fs::read_to_string(db.join("post-ran")).unwrap(),
        "resumed\n"
    );
    let web = pod_dir(&server, "web");
    for never in ["never", "never-post", "spec-pre"] {
        assert!(!web.join(never).exists(), "{never}");
    }
    assert!(
        !db.join("spec-pre").exists(),
        "annotations replace spec hooks"
    );
}

/// Restore hooks, from annotations and from the Restore's spec, on pods whose volume data
/// comes back through the node-agent:
/// - init hooks go after `restore-wait` (an annotation's replaces the spec's);
/// - an exec hook runs once its container is ready, after the data is back (it reads it);
/// - a failing hook (Continue) and one naming a container the pod lacks are errors, not a
///   hang (Velero #9749); the next hook still runs; `hookStatus` counts them and the
///   Restore is PartiallyFailed.
#[test]
fn restore_hooks_run_after_the_data_is_back() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = cluster(nodes.path(), store.path());
    let sh = |script: &str| json!(["sh", "-c", script]).to_string();
    server.seed(&[
        pod(
            "db",
            "data",
            json!({"app": "db"}),
            json!({
                "init.hook.restore.velero.io/container-image": "busybox",
                "init.hook.restore.velero.io/command": sh("true"),
                "post.hook.restore.velero.io/command": sh("cat volumes/kubernetes.io~empty-dir/data/f > hook-saw"),
                "post.hook.restore.velero.io/wait-for-ready": "true",
            }),
        ),
        pod("web", "www", json!({"app": "web"}), json!({})),
    ]);
    for p in ["db", "web"] {
        running(&server, "shop", p);
    }
    running(&server, "velero", "node-agent-a");
    let file = |pod: &str, volume: &str| {
        pod_dir(&server, pod).join(format!("volumes/kubernetes.io~empty-dir/{volume}/f"))
    };
    std::fs::write(file("db", "data"), "rows").unwrap();
    std::fs::write(file("web", "www"), "page").unwrap();
    let (restore, restored, results) = with_control_plane(&server, &["node-a"], |controller| {
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "defaultVolumesToFsBackup": true}})]);
        let b = ended(&server, "Backup", "b1");
        assert_eq!(
            b["status"]["phase"],
            "Completed",
            "{b} {:?}",
            backup_errors(store.path(), "b1")
        );
        // The pods and their data are lost.
        for p in ["db", "web"] {
            server.delete("v1", "Pod", Some("shop"), p);
        }
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "velero"},
            "spec": {"backupName": "b1", "hooks": {"resources": [
                {"name": "web-hooks", "labelSelector": {"matchLabels": {"app": "web"}}, "postHooks": [
                    {"exec": {"command": ["false"]}},
                    {"exec": {"container": "nope", "command": ["true"]}},
                    {"exec": {"container": "sidecar", "command": ["touch", "sidecar-ran"], "waitTimeout": "1m"}}]},
                {"name": "warm", "includedNamespaces": ["shop"], "postHooks": [
                    {"init": {"initContainers": [{"name": "warm", "image": "busybox", "command": ["true"]}]}}]}]}}})]);
        let r = ended(&server, "Restore", "r1");
        let pods: Vec<Value> = ["db", "web"]
            .iter()
            .map(|p| server.get("v1", "Pod", Some("shop"), p).unwrap())
            .collect();
        (r, pods, controller.downloads.restore_results("r1").unwrap())
    });
    assert_eq!(restore["status"]["phase"], "PartiallyFailed", "{restore}");
    assert_eq!(
        restore["status"]["hookStatus"],
        json!({"hooksAttempted": 4, "hooksFailed": 2}),
        "{restore}"
    );
    let inits = |p: &Value| -> Vec<String> {
        p["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let db_inits = inits(&restored[0]);
    assert_eq!(db_inits.len(), 2, "{db_inits:?}");
    assert_eq!(db_inits[0], "restore-wait");
    assert!(db_inits[1].starts_with("restore-init-"), "{db_inits:?}");
    assert_eq!(inits(&restored[1]), ["restore-wait", "warm"]);
    assert_eq!(
        std::fs::read_to_string(pod_dir(&server, "db").join("hook-saw")).unwrap(),
        "rows",
        "the hook ran after the data was back"
    );
    assert_eq!(std::fs::read_to_string(file("web", "www")).unwrap(), "page");
    assert!(pod_dir(&server, "web").join("sidecar-ran").exists());
    assert_eq!(
        results["errors"]["namespaces"]["shop"],
        json!([
            "restore hook web-hooks in container main of pod shop/web failed: command terminated with exit code 1",
            "restore hook web-hooks in container nope of pod shop/web not run: the pod has no such container; name one of its containers",
        ]),
        "{results}"
    );
}
