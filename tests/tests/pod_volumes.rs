//! Pod volumes (issue 15): the node-agent's data mover against the tests' API server and a
//! directory laid out like a node's `/var/lib/kubelet/pods`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cairn_tests::{eventually, StopOnDrop};
use serde_json::{json, Value};

fn cluster() -> cairn_tests::apiserver::ApiServer {
    let server = cairn_tests::apiserver::ApiServer::start(Default::default());
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    ];
    for (_, crd) in repo_k8s::velero::crd::all() {
        objects.push(crd);
    }
    server.seed(&objects);
    server
}

fn location(server: &cairn_tests::apiserver::ApiServer, store: &Path) {
    server.seed(&cairn_tests::control_plane::location(store));
}

/// A pod `name` on node-a with claim `data-0` (bound to PV `pv-data`) mounted as `data`
/// and an emptyDir `cache`; its UID, as the API server gave it.
fn pod(server: &cairn_tests::apiserver::ApiServer, name: &str) -> String {
    server.seed(&[json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"nodeName": "node-a", "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                {"name": "cache", "emptyDir": {}}],
            "containers": [{"name": "db", "image": "postgres",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cache", "mountPath": "/cache"}]}]},
        "status": {"phase": "Running"}})]);
    server.get("v1", "Pod", Some("shop"), name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn claim(server: &cairn_tests::apiserver::ApiServer) -> String {
    server.seed(&[
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-data"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/mnt/data"}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-0", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-data", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound"}}),
    ]);
    server
        .get("v1", "PersistentVolumeClaim", Some("shop"), "data-0")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Writes `files` into the volume directory of pod `uid` on the simulated node.
fn volume_dir(
    pods: &Path,
    uid: &str,
    plugin: &str,
    dir: &str,
    files: &[(&str, &[u8])],
) -> std::path::PathBuf {
    let d = pods.join(uid).join("volumes").join(plugin).join(dir);
    std::fs::create_dir_all(&d).unwrap();
    for (name, content) in files {
        std::fs::write(d.join(name), content).unwrap();
    }
    d
}

/// The tests' cluster with a location, claim `data-0` and pod `db-0` (UID `uid`) on
/// node-a; `pods` is node-a's pods directory.
struct Setup {
    server: cairn_tests::apiserver::ApiServer,
    store: tempfile::TempDir,
    pods: tempfile::TempDir,
    claim_uid: String,
    uid: String,
}

fn setup() -> Setup {
    let server = cluster();
    let store = tempfile::tempdir().unwrap();
    location(&server, store.path());
    let claim_uid = claim(&server);
    let uid = pod(&server, "db-0");
    Setup {
        server,
        store,
        pods: tempfile::tempdir().unwrap(),
        claim_uid,
        uid,
    }
}

/// The data mover of node-a.
fn mover<'a>(
    cluster: &'a repo_k8s::cluster::Cluster,
    pods: &Path,
    load_concurrency: usize,
    now: &'a (dyn Fn() -> String + Sync),
) -> node_agent::data_mover::DataMover<'a> {
    node_agent::data_mover::DataMover {
        cluster,
        namespace: "velero".into(),
        node: "node-a".into(),
        pods_dir: pods.to_path_buf(),
        open_options: repo_core::OpenOptions {
            no_cache: true,
            ..Default::default()
        },
        unlocked: Default::default(),
        load_concurrency,
        timeout: Duration::from_secs(600),
        now,
        host_root: None,
        mover_image: "cairn/node-agent:test".into(),
    }
}

fn backup_object(name: &str) -> repo_k8s::velero::Backup {
    let mut b = repo_k8s::velero::Backup::default();
    b.metadata.name = name.into();
    b.metadata.namespace = Some("velero".into());
    b.metadata.uid = Some(format!("{name}-uid"));
    b.spec.storage_location = Some("default".into());
    b
}

/// Creates the PodVolumeBackup of `volume` of pod `pod_name` for `backup`, on `node`;
/// its name.
fn create_pvb_on(
    cluster: &repo_k8s::cluster::Cluster,
    server: &cairn_tests::apiserver::ApiServer,
    backup: &str,
    pod_name: &str,
    volume: &str,
    claim_uid: Option<&str>,
    node: &str,
) -> String {
    let pod = repo_k8s::Object::from_value(
        server.get("v1", "Pod", Some("shop"), pod_name).unwrap(),
        "test",
    )
    .unwrap();
    let claim = claim_uid.map(|_| "data-0".to_string());
    let v = repo_k8s::podvolumes::select::PodVolume {
        name: volume.into(),
        claim,
    };
    let mut pvb = repo_k8s::podvolumes::objects::pod_volume_backup(
        &backup_object(backup),
        &pod,
        &v,
        claim_uid,
    );
    pvb.spec.node = node.into();
    let o = repo_k8s::Object::from_value(serde_json::to_value(&pvb).unwrap(), "test").unwrap();
    match cluster
        .create(
            &repo_k8s::velero::resource::<repo_k8s::velero::PodVolumeBackup>(),
            &o,
        )
        .unwrap()
    {
        repo_k8s::cluster::Created::Created(made) => made.name().to_string(),
        other => panic!("{other:?}"),
    }
}

fn pvb_status(server: &cairn_tests::apiserver::ApiServer, name: &str) -> Value {
    server
        .get("velero.io/v1", "PodVolumeBackup", Some("velero"), name)
        .unwrap()["status"]
        .clone()
}

fn ended(server: &cairn_tests::apiserver::ApiServer, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let st = pvb_status(server, name);
        if matches!(
            st["phase"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        ) {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} did not end: {st}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open_store(dir: &Path) -> repo_core::IndexedRepository {
    cairn_tests::location_repo(dir)
        .load_index(&repo_core::NoProgress)
        .unwrap()
}

/// The data mover of node-a backs up its PodVolumeBackups' volumes with Velero's tags; a
/// pod recreated under another name with the same claim finds its parent by the claim's
/// UID (only what changed is read); other nodes' PodVolumeBackups are left alone; what
/// cannot be found fails with the reason; one left InProgress by a stopped agent is failed.
#[test]
fn the_data_mover_backs_up_its_nodes_volumes_with_parents_found_by_claim() {
    let Setup {
        server,
        store,
        pods,
        claim_uid,
        uid,
    } = setup();
    let big = vec![7u8; 300_000];
    volume_dir(
        pods.path(),
        &uid,
        "kubernetes.io~local-volume",
        "pv-data",
        &[("table.dat", &big), ("small.txt", b"one")],
    );
    volume_dir(
        pods.path(),
        &uid,
        "kubernetes.io~empty-dir",
        "cache",
        &[("c", b"cache")],
    );
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(dir.path())), None).unwrap();
    // Left InProgress by an agent that was killed.
    let stale = create_pvb_on(&cluster, &server, "old", "db-0", "cache", None, "node-a");
    let r = repo_k8s::velero::resource::<repo_k8s::velero::PodVolumeBackup>();
    cluster
        .merge_patch(
            &r,
            Some("velero"),
            &stale,
            &json!({"status": {"phase": "InProgress"}}),
        )
        .unwrap();
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let mover = mover(&cluster, pods.path(), 2, &now);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| mover.run(&stop));
        let st = ended(&server, &stale);
        assert_eq!(st["phase"], "Failed");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains("stopped while it moved this volume"),
            "{st}"
        );

        let first = create_pvb_on(
            &cluster,
            &server,
            "b1",
            "db-0",
            "data",
            Some(&claim_uid),
            "node-a",
        );
        let cache = create_pvb_on(&cluster, &server, "b1", "db-0", "cache", None, "node-a");
        let st = ended(&server, &first);
        assert_eq!(st["phase"], "Completed", "{st}");
        assert_eq!(st["progress"]["bytesDone"], 300_003);
        assert!(
            st["path"]
                .as_str()
                .unwrap()
                .ends_with("kubernetes.io~local-volume/pv-data"),
            "{st}"
        );
        let first_id = st["snapshotID"].as_str().unwrap().to_string();
        assert_eq!(ended(&server, &cache)["phase"], "Completed");

        // The pod is recreated under another name (a new UID), the claim stays; one file
        // changed.
        // The volume is the same directory on the node, now below the new pod's UID.
        let uid2 = pod(&server, "db-1");
        let plugin = |uid: &str| {
            pods.path()
                .join(uid)
                .join("volumes/kubernetes.io~local-volume")
        };
        std::fs::create_dir_all(plugin(&uid2)).unwrap();
        std::fs::rename(plugin(&uid).join("pv-data"), plugin(&uid2).join("pv-data")).unwrap();
        std::fs::write(plugin(&uid2).join("pv-data/small.txt"), b"two").unwrap();
        let second = create_pvb_on(
            &cluster,
            &server,
            "b2",
            "db-1",
            "data",
            Some(&claim_uid),
            "node-a",
        );
        let st = ended(&server, &second);
        assert_eq!(st["phase"], "Completed", "{st}");
        let repo = open_store(store.path());
        let snap = repo
            .get_snapshot(&st["snapshotID"].as_str().unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(
            snap.parent.map(|p| p.to_string()),
            Some(first_id.clone()),
            "the parent is found by pvc-uid"
        );
        assert_eq!(snap.summary.files_unchanged, 1, "{:?}", snap.summary);
        for tag in [
            "backup=b2",
            "pod=db-1",
            "ns=shop",
            "volume=data",
            &format!("pvc-uid={claim_uid}"),
            "backup-uid=b2-uid",
        ] {
            assert!(
                snap.tags.iter().any(|t| t == tag),
                "{tag} in {:?}",
                snap.tags
            );
        }

        // Another node's is not this agent's.
        let other = create_pvb_on(&cluster, &server, "b3", "db-1", "cache", None, "node-b");
        // What cannot be found: no cache directory for db-1, a gone pod, a symlink.
        let missing = create_pvb_on(
            &cluster,
            &server,
            "b3",
            "db-1",
            "data",
            Some(&claim_uid),
            "node-a",
        );
        std::fs::rename(
            pods.path()
                .join(&uid2)
                .join("volumes/kubernetes.io~local-volume/pv-data"),
            pods.path()
                .join(&uid2)
                .join("volumes/kubernetes.io~local-volume/elsewhere"),
        )
        .unwrap();
        let st = ended(&server, &missing);
        assert_eq!(st["phase"], "Failed");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains("expected one directory matching"),
            "{st}"
        );
        std::fs::remove_dir_all(
            pods.path()
                .join(&uid2)
                .join("volumes/kubernetes.io~local-volume/elsewhere"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "/etc",
            pods.path()
                .join(&uid2)
                .join("volumes/kubernetes.io~local-volume/pv-data"),
        )
        .unwrap();
        let linked = create_pvb_on(
            &cluster,
            &server,
            "b4",
            "db-1",
            "data",
            Some(&claim_uid),
            "node-a",
        );
        let st = ended(&server, &linked);
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains("is a symbolic link"),
            "{st}"
        );
        server.delete("v1", "Pod", Some("shop"), "db-0");
        let gone = create_pvb_on(&cluster, &server, "b5", "db-1", "cache", None, "node-a");
        server.delete("v1", "Pod", Some("shop"), "db-1");
        let st = ended(&server, &gone);
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains("does not exist any more"),
            "{st}"
        );
        assert!(
            pvb_status(&server, &other).get("phase").is_none(),
            "node-b's was not touched"
        );
    });
    let repo = open_store(store.path());
    let report = repo
        .check(&repo_core::CheckOptions::read_all(), &repo_core::NoProgress)
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A Backup object with `defaultVolumesToFsBackup`: the server creates a PodVolumeBackup
/// for each volume of each pod it takes (Velero's rules: the secret volume, the opted-out
/// volume and the unmounted one are not), the node-agent of node-a moves them, the Backup
/// waits and completes, and their list is stored beside the backup. A pod on a node with no
/// node-agent makes the backup PartiallyFailed, naming the node. Then the namespace's pod,
/// claim and data are lost, and a Restore brings them back: the pod holds `restore-wait`
/// first, its claim is provisioned anew, PodVolumeRestores write the data into the new
/// volumes with the done files, and the wait ends and removes them.
#[test]
fn a_backup_object_backs_up_its_pods_volumes_and_a_restore_brings_them_back() {
    let Setup {
        server,
        store,
        pods,
        claim_uid,
        uid,
    } = setup();
    volume_dir(
        pods.path(),
        &uid,
        "kubernetes.io~local-volume",
        "pv-data",
        &[("table.dat", b"rows")],
    );
    volume_dir(
        pods.path(),
        &uid,
        "kubernetes.io~empty-dir",
        "cache",
        &[("c", b"cache")],
    );
    server.seed(&[
        // The node-agent of node-a, as its DaemonSet's pod.
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cairn-node-agent-a", "namespace": "velero", "labels": {"role": "node-agent"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "node-agent", "image": "cairn"}]}, "status": {"phase": "Running"}}),
        // Volumes that are not backed up: a secret, one opted out, one not mounted.
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "shop",
                "annotations": {"backup.velero.io/backup-volumes-excludes": "scratch"}},
            "spec": {"nodeName": "node-a", "volumes": [
                    {"name": "creds", "secret": {"secretName": "s"}},
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "spare", "emptyDir": {}}],
                "containers": [{"name": "web", "image": "nginx",
                    "volumeMounts": [{"name": "creds", "mountPath": "/c"}, {"name": "scratch", "mountPath": "/s"}]}]},
            "status": {"phase": "Running"}}),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(dir.path())), None).unwrap();
    let agent_cluster =
        repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(dir.path())), None).unwrap();
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let no_cache = || repo_core::OpenOptions {
        no_cache: true,
        ..Default::default()
    };
    let controller = cairn_server::backups::Controller::new(&cluster, "velero", no_cache(), &now);
    let mover = mover(&agent_cluster, pods.path(), 1, &now);
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let options = cairn_server::serve::Options::default();
    let phase = |name: &str| -> Option<String> {
        server.get("velero.io/v1", "Backup", Some("velero"), name)?["status"]["phase"]
            .as_str()
            .map(str::to_string)
    };
    let ended = |name: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some("Completed" | "PartiallyFailed" | "Failed" | "FailedValidation") =
                phase(name).as_deref()
            {
                return server
                    .get("velero.io/v1", "Backup", Some("velero"), name)
                    .unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "{name} did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        s.spawn(|| mover.run(&stop));
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b1", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "defaultVolumesToFsBackup": true}})]);
        let b = ended("b1");
        let errors_of = |name: &str| -> Vec<String> {
            let repo = open_store(store.path());
            let snap = repo_k8s::catalog::backup_snapshot(&repo, name).unwrap();
            let results = repo_k8s::catalog::results(&repo, &snap).unwrap();
            results
                .errors
                .messages()
                .map(|(_, m)| m.to_string())
                .collect()
        };
        assert_eq!(
            b["status"]["phase"],
            "Completed",
            "{b} {:?}",
            errors_of("b1")
        );
        let pvbs: Vec<Value> = server
            .list("velero.io/v1", "PodVolumeBackup", Some("velero"))
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["velero.io/backup-name"] == "b1")
            .collect();
        let mut volumes: Vec<(String, String)> = pvbs
            .iter()
            .map(|p| {
                (
                    p["spec"]["pod"]["name"].as_str().unwrap().to_string(),
                    p["spec"]["volume"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        volumes.sort();
        assert_eq!(
            volumes,
            [
                ("db-0".to_string(), "cache".to_string()),
                ("db-0".into(), "data".into())
            ]
        );
        assert!(
            pvbs.iter().all(|p| p["status"]["phase"] == "Completed"),
            "{pvbs:?}"
        );
        let data = pvbs.iter().find(|p| p["spec"]["volume"] == "data").unwrap();
        assert_eq!(
            data["metadata"]["labels"]["velero.io/pvc-uid"],
            claim_uid.as_str()
        );
        // Stored beside the backup.
        let repo = open_store(store.path());
        let snap = repo_k8s::catalog::backup_snapshot(&repo, "b1").unwrap();
        let listed = repo_k8s::catalog::root_file(&repo, &snap, "podvolumebackups.json")
            .unwrap()
            .unwrap();
        let listed = String::from_utf8(listed).unwrap();
        assert!(
            listed.contains(data["status"]["snapshotID"].as_str().unwrap()),
            "{listed}"
        );

        // A pod on node-b, where no node-agent runs.
        server.seed(&[json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "far-0", "namespace": "shop"},
            "spec": {"nodeName": "node-b", "volumes": [{"name": "logs", "emptyDir": {}}],
                "containers": [{"name": "far", "image": "busybox", "volumeMounts": [{"name": "logs", "mountPath": "/logs"}]}]},
            "status": {"phase": "Running"}})]);
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b2", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "defaultVolumesToFsBackup": true}})]);
        let b = ended("b2");
        assert_eq!(b["status"]["phase"], "PartiallyFailed", "{b}");
        assert_eq!(b["status"]["errors"], 1, "{b}");
        let repo = open_store(store.path());
        let snap = repo_k8s::catalog::backup_snapshot(&repo, "b2").unwrap();
        let results = repo_k8s::catalog::results(&repo, &snap).unwrap();
        let errors: Vec<&str> = results.errors.messages().map(|(_, m)| m).collect();
        assert!(
            errors[0].contains("no node-agent runs on node node-b") && errors[0].contains("far-0"),
            "{errors:?}"
        );

        // Disaster: the pod, its claim and volume, and their data are gone.
        for (v, kind, ns, name) in [
            ("v1", "Pod", Some("shop"), "db-0"),
            ("v1", "Pod", Some("shop"), "web-0"),
            ("v1", "Pod", Some("shop"), "far-0"),
            ("v1", "PersistentVolumeClaim", Some("shop"), "data-0"),
            ("v1", "PersistentVolume", None, "pv-data"),
        ] {
            server.delete(v, kind, ns, name);
        }
        std::fs::remove_dir_all(pods.path().join(&uid)).unwrap();
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "r1", "namespace": "velero"},
            "spec": {"backupName": "b1"}})]);
        // The restored pod holds restore-wait first; its claim is provisioned anew.
        let restored = eventually(60, "the condition", || {
            server.get("v1", "Pod", Some("shop"), "db-0")
        });
        let init = &restored["spec"]["initContainers"][0];
        assert_eq!(init["name"], "restore-wait", "{restored}");
        assert_eq!(init["command"], json!(["/node-agent", "restore-wait"]));
        let restore_uid = server
            .get("velero.io/v1", "Restore", Some("velero"), "r1")
            .unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(init["args"], json!([restore_uid]));
        let claim = eventually(60, "the condition", || {
            server.get("v1", "PersistentVolumeClaim", Some("shop"), "data-0")
        });
        assert!(
            claim["spec"].get("volumeName").is_none(),
            "provisioned anew: {claim}"
        );
        // The simulated provisioner binds it; the simulated kubelet runs the pod on node-a
        // and makes its volumes.
        server.seed(&[json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-new"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/mnt/new"}}})]);
        let k = |r: &str| repo_k8s::Discovery::built_in().resolve(r).unwrap().clone();
        cluster
            .merge_patch(
                &k("persistentvolumeclaims"),
                Some("shop"),
                "data-0",
                &json!({"spec": {"volumeName": "pv-new"}}),
            )
            .unwrap();
        cluster
            .merge_patch(
                &k("pods"),
                Some("shop"),
                "db-0",
                &json!({"spec": {"nodeName": "node-a"}}),
            )
            .unwrap();
        let new_uid = restored["metadata"]["uid"].as_str().unwrap();
        let data_dir = volume_dir(
            pods.path(),
            new_uid,
            "kubernetes.io~local-volume",
            "pv-new",
            &[],
        );
        let cache_dir = volume_dir(
            pods.path(),
            new_uid,
            "kubernetes.io~empty-dir",
            "cache",
            &[],
        );
        let restored = eventually(60, "the condition", || {
            let r = server.get("velero.io/v1", "Restore", Some("velero"), "r1")?;
            matches!(
                r["status"]["phase"].as_str(),
                Some("Completed" | "PartiallyFailed" | "Failed")
            )
            .then_some(r)
        });
        assert_eq!(restored["status"]["phase"], "Completed", "{restored}");
        assert_eq!(std::fs::read(data_dir.join("table.dat")).unwrap(), b"rows");
        assert_eq!(std::fs::read(cache_dir.join("c")).unwrap(), b"cache");
        let pvrs = server.list("velero.io/v1", "PodVolumeRestore", Some("velero"));
        assert_eq!(pvrs.len(), 2, "{pvrs:?}");
        for p in &pvrs {
            assert_eq!(p["status"]["phase"], "Completed", "{p}");
            assert_eq!(
                p["metadata"]["labels"]["velero.io/restore-uid"],
                restore_uid.as_str()
            );
            assert_eq!(p["spec"]["pod"]["uid"], new_uid);
        }
        // The init container's wait: both done files are there; it removes them.
        let restores = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&data_dir, restores.path().join("data")).unwrap();
        std::os::unix::fs::symlink(&cache_dir, restores.path().join("cache")).unwrap();
        let waited = node_agent::restore_wait::wait(
            restores.path(),
            &restore_uid,
            Duration::from_secs(5),
            Duration::from_millis(50),
        )
        .unwrap();
        assert_eq!(waited, ["cache", "data"]);
        assert!(!data_dir.join(".velero").exists(), "done file removed");
    });
}

/// Real processes on simulated nodes: `cairn-server serve` and a `node-agent serve` per
/// node. The node-agent moving a large volume is killed with SIGKILL and started again:
/// its PodVolumeBackup ends Failed with the reason, the Backup is PartiallyFailed naming
/// the volume, nothing of the volume is committed, the repository checks clean, and the
/// next backup (the restarted agent) completes.
#[test]
fn a_node_agent_killed_mid_volume_fails_it_and_the_next_backup_is_fine() {
    use std::process::{Child, Command, Stdio};
    let nodes_dir = tempfile::tempdir().unwrap();
    let server = cairn_tests::apiserver::ApiServer::start(cairn_tests::apiserver::Options {
        nodes: vec!["node-a".into(), "node-b".into()],
        nodes_dir: Some(nodes_dir.path().to_path_buf()),
        ..Default::default()
    });
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    ];
    objects.extend(repo_k8s::velero::crd::all().into_iter().map(|(_, crd)| crd));
    server.seed(&objects);
    let store = tempfile::tempdir().unwrap();
    location(&server, store.path());
    server.seed(&[
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cairn-node-agent", "namespace": "velero"},
            "spec": {"selector": {"matchLabels": {"role": "node-agent"}},
                "template": {"metadata": {"labels": {"role": "node-agent"}}, "spec": {"containers": [{"name": "node-agent", "image": "cairn"}]}}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "big", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "big"}}],
                "containers": [{"name": "db", "image": "postgres", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}),
    ]);
    let pod = eventually(60, "the condition", || {
        let p = server.get("v1", "Pod", Some("shop"), "db")?;
        (p["status"]["phase"] == "Running").then_some(p)
    });
    let node = pod["spec"]["nodeName"].as_str().unwrap().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let volumes = server
        .pods_dir(&node)
        .unwrap()
        .join(uid)
        .join("volumes/kubernetes.io~local-volume");
    let dir = std::fs::read_dir(&volumes)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Large enough that the agent is still reading it when it is killed.
    for i in 0..32 {
        std::fs::write(
            dir.join(format!("part-{i}")),
            cairn_tests::random_bytes(8 << 20, i),
        )
        .unwrap();
    }
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
    let mut serve = Command::new(bin.with_file_name("cairn-server"))
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
    let other = if node == "node-a" { "node-b" } else { "node-a" };
    let (mut moving, mut idle) = (agent(&node), agent(other));
    let backup = |name: &str| {
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "defaultVolumesToFsBackup": true}})]);
    };
    let pvb_of = |b: &str| {
        server
            .list("velero.io/v1", "PodVolumeBackup", Some("velero"))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["velero.io/backup-name"] == b)
    };
    backup("b1");
    eventually(60, "the condition", || {
        pvb_of("b1").filter(|p| p["status"]["phase"] == "InProgress")
    });
    moving.kill().unwrap();
    moving.wait().unwrap();
    let killed = pvb_of("b1").unwrap();
    assert_eq!(
        killed["status"]["phase"], "InProgress",
        "killed before it ended"
    );
    let mut moving = agent(&node);
    let pvb = eventually(60, "the condition", || {
        pvb_of("b1").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert!(
        pvb["status"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped while it moved this volume"),
        "{pvb}"
    );
    let b1 = eventually(60, "the condition", || {
        let b = server.get("velero.io/v1", "Backup", Some("velero"), "b1")?;
        matches!(
            b["status"]["phase"].as_str(),
            Some("Completed" | "PartiallyFailed" | "Failed")
        )
        .then_some(b)
    });
    assert_eq!(b1["status"]["phase"], "PartiallyFailed", "{b1}");
    backup("b2");
    let b2 = eventually(60, "the condition", || {
        let b = server.get("velero.io/v1", "Backup", Some("velero"), "b2")?;
        matches!(
            b["status"]["phase"].as_str(),
            Some("Completed" | "PartiallyFailed" | "Failed")
        )
        .then_some(b)
    });
    for child in [&mut serve, &mut moving, &mut idle] {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(b2["status"]["phase"], "Completed", "{b2}");
    let repo = open_store(store.path());
    let results = repo_k8s::catalog::results(
        &repo,
        &repo_k8s::catalog::backup_snapshot(&repo, "b1").unwrap(),
    )
    .unwrap();
    let errors: Vec<&str> = results.errors.messages().map(|(_, m)| m).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("volume data of pod shop/db failed")),
        "{errors:?}"
    );
    let volume_snapshots = repo
        .list_snapshots(&repo_core::SnapshotFilter {
            tags: vec!["backup=b1".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(
        volume_snapshots.is_empty(),
        "nothing of the killed volume committed: {volume_snapshots:?}"
    );
    let report = repo
        .check(&repo_core::CheckOptions::read_all(), &repo_core::NoProgress)
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Deleting a Backup while its volumes upload cancels it: its PodVolumeBackups are deleted
/// with it (their owner) or cancelled by the server (`spec.cancel`), the node-agent stops,
/// nothing is committed, and the repository checks clean.
#[test]
fn deleting_a_backup_while_its_volumes_upload_cancels_them() {
    let Setup {
        server,
        store,
        pods,
        claim_uid: _,
        uid,
    } = setup();
    let dir = volume_dir(pods.path(), &uid, "kubernetes.io~empty-dir", "cache", &[]);
    // Many files, each a little work, and some large ones: the volume takes a while.
    for i in 0..16 {
        std::fs::write(
            dir.join(format!("part-{i}")),
            cairn_tests::random_bytes(8 << 20, i),
        )
        .unwrap();
    }
    for d in 0..20u64 {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir(&sub).unwrap();
        for i in 0..1000u64 {
            let bytes = cairn_tests::random_bytes(1024, d * 1000 + i);
            std::fs::write(sub.join(i.to_string()), bytes).unwrap();
        }
    }
    volume_dir(
        pods.path(),
        &uid,
        "kubernetes.io~local-volume",
        "pv-data",
        &[("f", b"x")],
    );
    server.seed(&[json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-a", "namespace": "velero", "labels": {"role": "node-agent"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "a", "image": "cairn"}]}, "status": {"phase": "Running"}})]);
    let work = tempfile::tempdir().unwrap();
    let cluster =
        repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(work.path())), None).unwrap();
    let agent_cluster =
        repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(work.path())), None).unwrap();
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let no_cache = repo_core::OpenOptions {
        no_cache: true,
        ..Default::default()
    };
    let controller = cairn_server::backups::Controller::new(&cluster, "velero", no_cache, &now);
    let mover = mover(&agent_cluster, pods.path(), 1, &now);
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let options = cairn_server::serve::Options::default();
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        s.spawn(|| mover.run(&stop));
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "big", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "backup.velero.io/x": null, "defaultVolumesToFsBackup": true}})]);
        let pvb = eventually(60, "the condition", || {
            server
                .list("velero.io/v1", "PodVolumeBackup", Some("velero"))
                .into_iter()
                .find(|p| p["spec"]["volume"] == "cache" && p["status"]["phase"] == "InProgress")
        });
        let name = pvb["metadata"]["name"].as_str().unwrap().to_string();
        server.delete("velero.io/v1", "Backup", Some("velero"), "big");
        // The garbage collector deletes the Backup's PodVolumeBackups with it (their owner),
        // or the server cancels them first: either way the agent stops the volume.
        let gone_or_ended = eventually(60, "the PodVolumeBackup deleted or ended", || match server
            .get("velero.io/v1", "PodVolumeBackup", Some("velero"), &name)
        {
            None => Some(Value::Null),
            Some(p) => matches!(
                p["status"]["phase"].as_str(),
                Some("Completed" | "Failed" | "Canceled")
            )
            .then(|| p["status"].clone()),
        });
        assert!(
            gone_or_ended.is_null() || gone_or_ended["phase"] == "Canceled",
            "{gone_or_ended}"
        );
    });
    let repo = open_store(store.path());
    let snaps = repo
        .list_snapshots(&repo_core::SnapshotFilter::default())
        .unwrap();
    assert!(
        snaps
            .iter()
            .all(|(_, s)| !s.tags.iter().any(|t| t == "volume=cache")),
        "nothing of the cancelled volume committed"
    );
    let report = repo
        .check(&repo_core::CheckOptions::read_all(), &repo_core::NoProgress)
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// The pods `exec` API (what hooks run through), on the simulated server: kube-rs and the
/// real kubectl run a command in a pod (in its directory on its simulated node) and get
/// its output and exit code; a container the pod does not have is refused, naming it.
#[test]
fn commands_run_in_pods_through_the_exec_api_with_kube_rs_and_kubectl() {
    let nodes_dir = tempfile::tempdir().unwrap();
    let server = cairn_tests::apiserver::ApiServer::start(cairn_tests::apiserver::Options {
        nodes: vec!["node-a".into()],
        nodes_dir: Some(nodes_dir.path().to_path_buf()),
        ..Default::default()
    });
    server.seed(&[
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [{"name": "db", "image": "postgres", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}),
    ]);
    eventually(60, "the condition", || {
        (server.get("v1", "Pod", Some("shop"), "db")?["status"]["phase"] == "Running").then_some(())
    });
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(work.path());
    let cluster = repo_k8s::cluster::Cluster::connect(Some(&kubeconfig), None).unwrap();
    let cmd = |c: &str| vec!["sh".to_string(), "-c".to_string(), c.to_string()];
    let out = cluster
        .exec(
            "shop",
            "db",
            Some("db"),
            &cmd("echo out; echo err >&2; ls volumes; exit 3"),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.stdout, "out\nkubernetes.io~empty-dir\n", "{out:?}");
    assert_eq!((out.stderr.as_str(), out.exit_code), ("err\n", 3));
    let ok = cluster
        .exec(
            "shop",
            "db",
            None,
            &["true".to_string()],
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(ok.exit_code, 0);
    let e = cluster
        .exec(
            "shop",
            "db",
            Some("nope"),
            &["true".to_string()],
            Duration::from_secs(10),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("container nope is not valid for pod db"),
        "{e}"
    );
    // The real kubectl.
    let kubectl = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "exec",
            "-n",
            "shop",
            "db",
            "-c",
            "db",
            "--",
            "sh",
            "-c",
            "echo hello from $(basename $PWD); exit 4",
        ])
        .output()
        .unwrap();
    assert_eq!(kubectl.status.code(), Some(4), "{kubectl:?}");
    let uid = server.get("v1", "Pod", Some("shop"), "db").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        String::from_utf8_lossy(&kubectl.stdout),
        format!("hello from {uid}\n")
    );
}

/// A PodVolumeRestore's target with leftovers: this restore's done file from an earlier
/// attempt is replaced (the pod must not start on it before the data is back), another
/// restore's files are left alone; a `.velero` that is a file, not a directory, fails the
/// volume with the reason instead of leaving the pod waiting.
#[test]
fn done_files_already_present_in_the_target() {
    let Setup {
        server,
        store: _store,
        pods,
        claim_uid: _,
        uid,
    } = setup();
    volume_dir(
        pods.path(),
        &uid,
        "kubernetes.io~empty-dir",
        "cache",
        &[("c", b"cache")],
    );
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(dir.path())), None).unwrap();
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let mover = mover(&cluster, pods.path(), 1, &now);
    let name = create_pvb_on(&cluster, &server, "b1", "db-0", "cache", None, "node-a");
    let typed = |kind: &str, name: &str| {
        server
            .get("velero.io/v1", kind, Some("velero"), name)
            .unwrap()
    };
    let pvb: repo_k8s::velero::PodVolumeBackup =
        serde_json::from_value(typed("PodVolumeBackup", &name)).unwrap();
    let never = AtomicBool::new(false);
    mover.back_up(&pvb, &never);
    let snapshot = pvb_status(&server, &name)["snapshotID"]
        .as_str()
        .unwrap()
        .to_string();
    let restore = |target: &Path, pvr_name: &str| -> Value {
        let pvr = json!({"apiVersion": "velero.io/v1", "kind": "PodVolumeRestore",
            "metadata": {"name": pvr_name, "namespace": "velero", "labels": {"velero.io/restore-uid": "r-uid"}},
            "spec": {"pod": {"kind": "Pod", "namespace": "shop", "name": "db-0", "uid": uid},
                "volume": "cache", "backupStorageLocation": "default", "repoIdentifier": "",
                "uploaderType": "", "snapshotID": snapshot, "sourceNamespace": "shop"}});
        let o = repo_k8s::Object::from_value(pvr.clone(), "test").unwrap();
        let r = repo_k8s::velero::resource::<repo_k8s::velero::PodVolumeRestore>();
        cluster.create(&r, &o).unwrap();
        let typed_pvr: repo_k8s::velero::PodVolumeRestore = serde_json::from_value(pvr).unwrap();
        mover.restore(&typed_pvr, target, &never);
        typed("PodVolumeRestore", pvr_name)["status"].clone()
    };

    let target = tempfile::tempdir().unwrap();
    let marks = target.path().join(".velero");
    std::fs::create_dir(&marks).unwrap();
    std::fs::write(marks.join("r-uid"), "left by an earlier attempt").unwrap();
    std::fs::write(marks.join("other-uid"), "").unwrap();
    let st = restore(target.path(), "pvr-1");
    assert_eq!(st["phase"], "Completed", "{st}");
    assert_eq!(std::fs::read(target.path().join("c")).unwrap(), b"cache");
    assert_eq!(
        std::fs::read(marks.join("r-uid")).unwrap(),
        b"",
        "written anew"
    );
    assert!(
        marks.join("other-uid").exists(),
        "another restore's file stays"
    );

    let hostile = tempfile::tempdir().unwrap();
    std::fs::write(hostile.path().join(".velero"), "not a directory").unwrap();
    let st = restore(hostile.path(), "pvr-2");
    assert_eq!(st["phase"], "Failed", "{st}");
    let message = st["message"].as_str().unwrap();
    assert!(message.contains(".velero"), "{message}");
}
