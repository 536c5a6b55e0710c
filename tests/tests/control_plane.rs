//! The control plane's pieces as processes: the simulated cluster (`fake-apiserver`) with
//! Velero's CRDs from `deploy/crds/`, driven by the real kubectl.

use cairn_tests::{eventually, StopOnDrop};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `fake-apiserver` on a free port, killed when dropped.
struct FakeCluster {
    child: Child,
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeCluster {
    fn start() -> FakeCluster {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let kubeconfig = dir.path().join("kubeconfig");
        let child = Command::new(env!("CARGO_BIN_EXE_fake-apiserver"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--kubeconfig"])
            .arg(&kubeconfig)
            .spawn()
            .expect("fake-apiserver starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !kubeconfig.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "fake-apiserver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FakeCluster {
            child,
            kubeconfig,
            _dir: dir,
        }
    }

    /// Runs kubectl against it; returns (success, stdout, stderr).
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self._dir.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl is installed");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl(args, stdin);
        assert!(ok, "kubectl {args:?}: {out}{err}");
        out
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CRDs cairn generates install with kubectl, and Velero objects written as Velero's
/// tools write them (an unknown field, ownership labels, a status in the object, as Velero
/// CRDs have no status subresource) are stored and read back whole.
#[test]
fn the_simulated_cluster_takes_veleros_crds_and_objects_from_kubectl() {
    let cluster = FakeCluster::start();
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds");
    let out = cluster.kubectl_ok(&["apply", "--validate=false", "-f", crds], None);
    assert!(out.contains("backups.velero.io created"), "{out}");
    cluster.kubectl_ok(
        &["apply", "--validate=false", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: velero}\n"),
    );
    let backup = "apiVersion: velero.io/v1\nkind: Backup\nmetadata:\n  name: nightly\n  namespace: velero\n  labels: {app.kubernetes.io/managed-by: platform-api, velero.io/storage-location: default}\n\
        spec:\n  includedNamespaces: [shop]\n  ttl: 720h0m0s\n  someFutureField: kept\n\
        status: {phase: New}\n";
    cluster.kubectl_ok(&["apply", "--validate=false", "-f", "-"], Some(backup));
    let got = cluster.kubectl_ok(
        &[
            "get",
            "backups.velero.io",
            "-n",
            "velero",
            "nightly",
            "-o",
            "json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(v["spec"]["someFutureField"], "kept");
    assert_eq!(
        v["status"]["phase"], "New",
        "no status subresource: the status is the object's"
    );
    // cairn's types read it.
    let typed: repo_k8s::velero::Backup = serde_json::from_value(v).unwrap();
    assert_eq!(
        typed.spec.included_namespaces,
        Some(vec!["shop".to_string()])
    );
    assert_eq!(typed.spec.ttl.as_deref(), Some("720h0m0s"));
    // Every CRD is served: a list of each kind answers.
    for kind in [
        "backups",
        "restores",
        "schedules",
        "backupstoragelocations",
        "deletebackuprequests",
        "serverstatusrequests",
        "downloadrequests",
        "podvolumebackups",
        "podvolumerestores",
    ] {
        cluster.kubectl_ok(&["get", &format!("{kind}.velero.io"), "-n", "velero"], None);
    }
}

/// `deploy/` as an operator installs it, `kubectl apply -k deploy/`, then the example
/// Secrets and location: every object is taken, and applying again changes nothing.
#[test]
fn the_install_in_deploy_applies_with_kubectl() {
    let cluster = FakeCluster::start();
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let out = cluster.kubectl_ok(&["apply", "--validate=false", "-k", deploy], None);
    for made in [
        "namespace/velero created",
        "customresourcedefinition.apiextensions.k8s.io/backups.velero.io created",
        "serviceaccount/cairn-server created",
        "clusterrole.rbac.authorization.k8s.io/cairn-server created",
        "deployment.apps/cairn-server created",
        "service/cairn-server created",
        "daemonset.apps/cairn-node-agent created",
        "cronjob.batch/cairn-maintenance created",
    ] {
        assert!(out.contains(made), "{made} in\n{out}");
    }
    let again = cluster.kubectl_ok(&["apply", "--validate=false", "-k", deploy], None);
    assert!(
        !again.contains("created") && !again.contains("configured"),
        "{again}"
    );
    let examples = format!("{deploy}/secrets.example.yaml");
    let out = cluster.kubectl_ok(&["apply", "--validate=false", "-f", &examples], None);
    assert!(
        out.contains("backupstoragelocation.velero.io/default created"),
        "{out}"
    );
}

/// Velero's CRDs, as cairn generates them, created in an in-process test API server.
fn cluster_with_crds() -> cairn_tests::apiserver::ApiServer {
    let server = cairn_tests::apiserver::ApiServer::start(Default::default());
    let mut objects = vec![
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}),
    ];
    for (_, crd) in repo_k8s::velero::crd::all() {
        objects.push(crd);
    }
    server.seed(&objects);
    server
}

/// Velero pkg/cmd/server/server.go markInProgressCRsFailed: at start, Backups and Restores
/// left InProgress are Failed with Velero's reason; others are left alone.
#[test]
fn a_starting_server_fails_what_a_stopped_one_left_in_progress() {
    use serde_json::json;
    let server = cluster_with_crds();
    let backup = |name: &str, phase: &str| {
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"]}, "status": {"phase": phase}})
    };
    server.seed(&[
        backup("running", "InProgress"),
        backup("done", "Completed"),
        json!({"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "r1", "namespace": "velero"},
            "spec": {"backupName": "done"}, "status": {"phase": "InProgress"}}),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(dir.path())), None).unwrap();
    let now = "2026-12-01T00:00:00Z";
    let got = cairn_server::startup::fail_interrupted(&cluster, "velero", now);
    assert_eq!(got.backups, ["running"]);
    assert_eq!(got.restores, ["r1"]);
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    let b = server
        .get("velero.io/v1", "Backup", Some("velero"), "running")
        .unwrap();
    assert_eq!(b["status"]["phase"], "Failed");
    assert_eq!(
        b["status"]["failureReason"],
        "found a backup with status \"InProgress\" during the server starting, mark it as \"Failed\""
    );
    assert_eq!(b["status"]["completionTimestamp"], now);
    assert_eq!(
        b["spec"]["includedNamespaces"],
        json!(["shop"]),
        "the spec is untouched"
    );
    let r = server
        .get("velero.io/v1", "Restore", Some("velero"), "r1")
        .unwrap();
    assert_eq!(r["status"]["failureReason"], "found a restore with status \"InProgress\" during the server starting, mark it as \"Failed\"");
    let done = server
        .get("velero.io/v1", "Backup", Some("velero"), "done")
        .unwrap();
    assert_eq!(done["status"]["phase"], "Completed");
    // A second start finds nothing to do.
    assert_eq!(
        cairn_server::startup::fail_interrupted(&cluster, "velero", now),
        Default::default()
    );
}

fn connect(
    server: &cairn_tests::apiserver::ApiServer,
    dir: &std::path::Path,
) -> repo_k8s::cluster::Cluster {
    repo_k8s::cluster::Cluster::connect(Some(&server.kubeconfig(dir)), None).unwrap()
}

/// The backup controller of namespace `velero`, without a local cache.
fn controller<'a>(
    cluster: &'a repo_k8s::cluster::Cluster,
    now: &'a (dyn Fn() -> String + Sync),
) -> cairn_server::backups::Controller<'a> {
    let open_options = repo_core::OpenOptions {
        no_cache: true,
        ..Default::default()
    };
    cairn_server::backups::Controller::new(cluster, "velero", open_options, now)
}

/// Namespace `shop` with ConfigMap `cfg`: what most tests back up.
fn shop() -> [serde_json::Value; 2] {
    use serde_json::json;
    [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}, "data": {"k": "v"}}),
    ]
}

/// The repository of the filesystem location in `dir` ([`location_and_secret`]).
fn open_store(dir: &std::path::Path) -> repo_core::Repository {
    cairn_tests::location_repo(dir)
}

/// A filesystem location in `dir`, the default, and the password Secret.
fn location_and_secret(dir: &std::path::Path, with_secret: bool) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut out = vec![
        json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": {"name": "default", "namespace": "velero"},
        "spec": {"provider": "filesystem", "default": true, "objectStorage": {"bucket": "backups"},
            "config": {"path": dir.to_str().unwrap()}}}),
    ];
    if with_secret {
        // "correct horse" in base64.
        out.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "velero-repo-credentials", "namespace": "velero"},
            "data": {"repository-password": "Y29ycmVjdCBob3JzZQ=="}}));
    }
    out
}

/// The backup controller's work on one Backup, as Velero's: New → InProgress → Completed
/// with Velero's status fields, the backup in the location's repository (created on first
/// use); bad Backups FailedValidation with every reason; no password Secret: Failed, saying
/// what to create (there is no default password).
#[test]
fn a_backup_object_is_validated_run_and_reported_as_velero_does() {
    use serde_json::json;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.extend(shop());
    objects.extend([
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b1", "namespace": "velero", "labels": {"owner": "platform"}},
            "spec": {"includedNamespaces": ["shop"], "ttl": "24h0m0s", "unknownField": 1}}),
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "bad", "namespace": "velero"},
            "spec": {"ttl": "soon", "storageLocation": "nowhere", "excludedNamespaces": ["*"]}}),
    ]);
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || "2026-12-01T00:00:00Z".to_string();
    let controller = controller(&cluster, &now);
    let get = |name: &str| -> repo_k8s::velero::Backup {
        serde_json::from_value(
            server
                .get("velero.io/v1", "Backup", Some("velero"), name)
                .unwrap(),
        )
        .unwrap()
    };
    use repo_k8s::velero::BackupPhase;
    assert_eq!(controller.run(&get("b1")), Some(BackupPhase::Completed));
    let b = get("b1");
    let st = b.status.clone().unwrap();
    assert_eq!(st.phase, Some(BackupPhase::Completed));
    assert_eq!((st.version, st.format_version.as_str()), (1, "1.1.0"));
    assert_eq!(st.start_timestamp.as_deref(), Some("2026-12-01T00:00:00Z"));
    assert_eq!(
        st.expiration.as_deref(),
        Some("2026-12-02T00:00:00Z"),
        "ttl 24h"
    );
    assert_eq!(
        st.progress.unwrap().items_backed_up,
        2,
        "the namespace and the config map"
    );
    assert_eq!(
        b.metadata.labels["owner"], "platform",
        "the object's own fields stay"
    );
    // Done is done: it is not run again.
    assert_eq!(controller.run(&b), None);
    // The backup is in the location's repository, under its name.
    let repo = open_store(store.path());
    assert!(repo_k8s::catalog::find_backup(&repo, "b1")
        .unwrap()
        .is_some());
    // Every problem of a bad Backup, at once.
    assert_eq!(
        controller.run(&get("bad")),
        Some(BackupPhase::FailedValidation)
    );
    let errors = get("bad").status.unwrap().validation_errors.unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("invalid ttl \"soon\"")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("\"nowhere\" does not exist")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("excludes list cannot contain '*'")),
        "{errors:?}"
    );
}

#[test]
fn without_the_password_secret_a_backup_fails_saying_what_to_create() {
    use serde_json::json;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), false);
    objects.push(json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b1", "namespace": "velero"}, "spec": {}}));
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || "2026-12-01T00:00:00Z".to_string();
    let controller = controller(&cluster, &now);
    let b: repo_k8s::velero::Backup = serde_json::from_value(
        server
            .get("velero.io/v1", "Backup", Some("velero"), "b1")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        controller.run(&b),
        Some(repo_k8s::velero::BackupPhase::Failed)
    );
    let got = server
        .get("velero.io/v1", "Backup", Some("velero"), "b1")
        .unwrap();
    let reason = got["status"]["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("Secret velero/velero-repo-credentials does not exist")
            && reason.contains("no default password"),
        "{reason}"
    );
    assert!(
        std::fs::read_dir(store.path()).unwrap().next().is_none(),
        "nothing was written to the store"
    );
}

/// Polls a Backup with kubectl until it has one of `phases`; returns its JSON.
fn wait_for_phase(cluster: &FakeCluster, name: &str, phases: &[&str]) -> serde_json::Value {
    wait_for_kind(cluster, "backups.velero.io", name, phases)
}

fn wait_for_restore(cluster: &FakeCluster, name: &str, phases: &[&str]) -> serde_json::Value {
    wait_for_kind(cluster, "restores.velero.io", name, phases)
}

fn wait_for_kind(
    cluster: &FakeCluster,
    kind: &str,
    name: &str,
    phases: &[&str],
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, _) =
            cluster.kubectl(&["get", kind, "-n", "velero", name, "-o", "json"], None);
        if ok {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            if phases.iter().any(|p| v["status"]["phase"] == *p) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {name} did not reach {phases:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The simulated cluster with cairn's CRDs, the `velero` namespace with a filesystem
/// location in `store` and its password Secret, and a namespace `shop` with a ConfigMap.
fn cluster_for_serve(store: &std::path::Path) -> FakeCluster {
    let cluster = FakeCluster::start();
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds");
    cluster.kubectl_ok(&["apply", "--validate=false", "-f", crds], None);
    let setup = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: velero}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: shop}}\ndata: {{k: v}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: velero-repo-credentials, namespace: velero}}\ndata: {{repository-password: Y29ycmVjdCBob3JzZQ==}}\n---\n\
         apiVersion: velero.io/v1\nkind: BackupStorageLocation\nmetadata: {{name: default, namespace: velero}}\n\
         spec: {{provider: filesystem, default: true, objectStorage: {{bucket: backups}}, config: {{path: {}}}}}\n",
        store.display()
    );
    cluster.kubectl_ok(&["apply", "--validate=false", "-f", "-"], Some(&setup));
    cluster
}

/// `cairn-server serve` for the cluster, as replica `identity` with a 2-second Lease; its
/// JSON log goes to [`serve_log`].
fn spawn_serve(cluster: &FakeCluster, identity: &str) -> Child {
    let bin = cairn_tests::node_agent().with_file_name("cairn-server");
    let log = std::fs::File::create(serve_log(cluster, identity)).unwrap();
    Command::new(bin)
        .args([
            "serve",
            "--namespace",
            "velero",
            "--no-cache",
            "--lease-duration",
            "2s",
        ])
        .args(["--identity", identity, "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .args(["--metrics-address", &format!("127.0.0.1:{}", free_port())])
        .args(["--log-format", "json"])
        .env_remove("CAIRN_REPO")
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Where [`spawn_serve`] writes replica `identity`'s log.
fn serve_log(cluster: &FakeCluster, identity: &str) -> std::path::PathBuf {
    cluster.kubeconfig.with_file_name(format!("{identity}.log"))
}

/// `cairn-server serve` as a process against the simulated cluster, driven with kubectl as
/// an operator would: a Backup left InProgress by a killed server is failed with Velero's
/// reason at start; Backups applied before and while it runs complete.
#[test]
fn cairn_server_serve_runs_backups_applied_with_kubectl() {
    let store = tempfile::tempdir().unwrap();
    let cluster = cluster_for_serve(store.path());
    cluster.kubectl_ok(
        &["apply", "--validate=false", "-f", "-"],
        Some(
            "apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: left, namespace: velero}\nspec: {}\nstatus: {phase: InProgress}\n---\n\
             apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: nightly, namespace: velero}\nspec: {includedNamespaces: [shop]}\n",
        ),
    );
    let mut server = spawn_serve(&cluster, "replica-a");
    let left = wait_for_phase(&cluster, "left", &["Failed"]);
    assert_eq!(
        left["status"]["failureReason"],
        "found a backup with status \"InProgress\" during the server starting, mark it as \"Failed\""
    );
    let nightly = wait_for_phase(
        &cluster,
        "nightly",
        &["Completed", "PartiallyFailed", "Failed"],
    );
    assert_eq!(nightly["status"]["phase"], "Completed", "{nightly}");
    assert_eq!(
        nightly["status"]["progress"]["itemsBackedUp"], 2,
        "{nightly}"
    );
    // One applied while it runs: the watch wakes it.
    cluster.kubectl_ok(
        &["apply", "--validate=false", "-f", "-"],
        Some("apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: later, namespace: velero}\nspec: {includedNamespaces: [shop]}\n"),
    );
    let later = wait_for_phase(
        &cluster,
        "later",
        &["Completed", "PartiallyFailed", "Failed"],
    );
    assert_eq!(later["status"]["phase"], "Completed", "{later}");
    // Disaster: the namespace goes. A Restore brings it back; another copies it elsewhere
    // (namespaceMapping, existingResourcePolicy none); one naming no backup fails validation.
    cluster.kubectl_ok(&["delete", "namespace", "shop"], None);
    cluster.kubectl_ok(
        &["apply", "--validate=false", "-f", "-"],
        Some(
            "apiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: back, namespace: velero}\nspec: {backupName: nightly}\n---\n\
             apiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: copy, namespace: velero}\n\
             spec: {backupName: nightly, namespaceMapping: {shop: shop-copy}, existingResourcePolicy: none}\n---\n\
             apiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: nothing, namespace: velero}\nspec: {}\n",
        ),
    );
    for (name, phase) in [
        ("back", "Completed"),
        ("copy", "Completed"),
        ("nothing", "FailedValidation"),
    ] {
        let r = wait_for_restore(
            &cluster,
            name,
            &["Completed", "PartiallyFailed", "Failed", "FailedValidation"],
        );
        assert_eq!(r["status"]["phase"], phase, "{r}");
    }
    let cfg = cluster.kubectl_ok(
        &["get", "configmap", "cfg", "-n", "shop", "-o", "json"],
        None,
    );
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["metadata"]["labels"]["velero.io/restore-name"], "back");
    cluster.kubectl_ok(&["get", "configmap", "cfg", "-n", "shop-copy"], None);
    let _ = server.kill();
    let _ = server.wait();
    // `--log-format json`: one JSON object a line, with the objects as fields.
    let log = std::fs::read_to_string(serve_log(&cluster, "replica-a")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["backup"] == "nightly"
            && l["fields"]["message"] == "backup ended"
            && l["fields"]["phase"] == "Completed"),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["backup"] == "left" && l["level"] == "WARN"),
        "{log}"
    );
}

/// Leader election (coordination.k8s.io/v1 Lease): one replica holds it and renews it; the
/// other follows; once renewals are overdue by the lease's duration the other takes over,
/// and the first then follows. Time is given, not waited for.
#[test]
fn of_two_replicas_one_leads_and_the_other_takes_over_when_it_stops() {
    use cairn_server::lease::{Elector, Leadership};
    use std::time::{Duration, SystemTime};
    let server = cluster_with_crds();
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let d = Duration::from_secs(15);
    let a = Elector::new(&cluster, "velero", "replica-a", d);
    let b = Elector::new(&cluster, "velero", "replica-b", d);
    let t0 = SystemTime::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(a.try_lead(at(0)).unwrap(), Leadership::Leader);
    assert_eq!(
        b.try_lead(at(1)).unwrap(),
        Leadership::Follower("replica-a".into())
    );
    assert_eq!(a.try_lead(at(10)).unwrap(), Leadership::Leader, "a renews");
    assert_eq!(
        b.try_lead(at(20)).unwrap(),
        Leadership::Follower("replica-a".into()),
        "renewed at 10: held until 25"
    );
    // a stops renewing.
    assert_eq!(b.try_lead(at(26)).unwrap(), Leadership::Leader);
    assert_eq!(
        a.try_lead(at(27)).unwrap(),
        Leadership::Follower("replica-b".into())
    );
    let lease = server
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("velero"),
            "cairn-server",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

/// Two `cairn-server serve` replicas: only the Lease holder runs Backups; kill it and the
/// other takes over within the Lease's duration and runs the next one.
#[test]
fn two_serving_replicas_one_acts_and_the_other_takes_over() {
    let store = tempfile::tempdir().unwrap();
    let cluster = cluster_for_serve(store.path());
    let holder = || {
        let (ok, out, _) = cluster.kubectl(
            &[
                "get",
                "leases.coordination.k8s.io",
                "cairn-server",
                "-n",
                "velero",
                "-o",
                "json",
            ],
            None,
        );
        ok.then(|| {
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    };
    let wait_holder = |who: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while holder().as_deref() != Some(who) {
            assert!(
                Instant::now() < deadline,
                "{who} never held the Lease (holder {:?})",
                holder()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut a = spawn_serve(&cluster, "replica-a");
    wait_holder("replica-a");
    let mut b = spawn_serve(&cluster, "replica-b");
    let apply_backup = |name: &str| {
        cluster.kubectl_ok(
            &["apply", "--validate=false", "-f", "-"],
            Some(&format!("apiVersion: velero.io/v1\nkind: Backup\nmetadata: {{name: {name}, namespace: velero}}\nspec: {{includedNamespaces: [shop]}}\n")),
        );
    };
    apply_backup("first");
    let first = wait_for_phase(
        &cluster,
        "first",
        &["Completed", "PartiallyFailed", "Failed"],
    );
    assert_eq!(first["status"]["phase"], "Completed", "{first}");
    assert_eq!(
        holder().as_deref(),
        Some("replica-a"),
        "the follower did not take the Lease"
    );
    let _ = a.kill();
    let _ = a.wait();
    wait_holder("replica-b");
    apply_backup("second");
    let second = wait_for_phase(
        &cluster,
        "second",
        &["Completed", "PartiallyFailed", "Failed"],
    );
    assert_eq!(second["status"]["phase"], "Completed", "{second}");
    let _ = b.kill();
    let _ = b.wait();
}

/// Velero's location controller: locations are checked every validationFrequency (a minute
/// by default) and marked Available, or Unavailable with what failed; a prefix holding a
/// repository made with another password is refused, never overwritten; a Backup to an
/// Unavailable location fails validation in Velero's words.
#[test]
fn locations_are_checked_and_an_unavailable_one_refuses_backups() {
    use serde_json::json;
    use std::time::{Duration, SystemTime};
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    // A repository made with another password where "other" points.
    let theirs = store.path().join("theirs");
    repo_core::Repository::init(
        repo_core::storage::open_url(theirs.to_str().unwrap(), &Default::default()).unwrap(),
        b"not ours",
        repo_core::InitOptions {
            kdf: repo_core::KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        },
        repo_core::OpenOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.push(json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": {"name": "other", "namespace": "velero"},
        "spec": {"provider": "filesystem", "objectStorage": {"bucket": "theirs"}, "config": {"path": store.path().to_str().unwrap()}}}));
    objects.push(json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "to-other", "namespace": "velero"},
        "spec": {"storageLocation": "other"}}));
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || "2026-12-01T00:00:00Z".to_string();
    let controller = controller(&cluster, &now);
    let t0 = SystemTime::now();
    let mut checked = controller.check_locations(t0);
    checked.sort();
    assert_eq!(
        checked,
        [("default".to_string(), true), ("other".to_string(), false)]
    );
    let bsl = |n: &str| {
        server
            .get("velero.io/v1", "BackupStorageLocation", Some("velero"), n)
            .unwrap()
    };
    assert_eq!(bsl("default")["status"]["phase"], "Available");
    let other = bsl("other");
    assert_eq!(other["status"]["phase"], "Unavailable");
    assert!(
        other["status"]["message"]
            .as_str()
            .unwrap()
            .contains("another password"),
        "{other}"
    );
    assert!(other["status"]["lastValidationTime"].is_string());
    // Not due again before the minute is out; due after it.
    assert!(controller
        .check_locations(t0 + Duration::from_secs(10))
        .is_empty());
    assert_eq!(
        controller
            .check_locations(t0 + Duration::from_secs(61))
            .len(),
        2
    );
    // Their repository is untouched: still opens with its own password.
    repo_core::Repository::open(
        repo_core::storage::open_url(theirs.to_str().unwrap(), &Default::default()).unwrap(),
        b"not ours",
        repo_core::OpenOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .unwrap();
    let b: repo_k8s::velero::Backup = serde_json::from_value(
        server
            .get("velero.io/v1", "Backup", Some("velero"), "to-other")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        controller.run(&b),
        Some(repo_k8s::velero::BackupPhase::FailedValidation)
    );
    let got = server
        .get("velero.io/v1", "Backup", Some("velero"), "to-other")
        .unwrap();
    assert!(
        got["status"]["validationErrors"][0]
            .as_str()
            .unwrap()
            .starts_with(
            "backup can't be created because BackupStorageLocation other is in Unavailable status."
        ),
        "{got}"
    );
}

/// Velero's garbage collection and backup deletion: an expired Backup gets a
/// DeleteBackupRequest (labelled with its name and uid); the request goes Processed, the
/// backup's snapshots are forgotten in the repository, and its Backup object and the
/// Restores made from it are deleted.
#[test]
fn expired_backups_are_deleted_through_delete_backup_requests() {
    use serde_json::json;
    use std::time::{Duration, SystemTime};
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.extend([
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}}),
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "old", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "ttl": "1h"}}),
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "young", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"], "ttl": "720h"}}),
        json!({"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "from-old", "namespace": "velero"},
            "spec": {"backupName": "old"}, "status": {"phase": "Completed"}}),
    ]);
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let t0 = SystemTime::now();
    let now = move || cairn_server::backups::kube_time(t0);
    let controller = controller(&cluster, &now);
    let get = |kind: &str, name: &str| server.get("velero.io/v1", kind, Some("velero"), name);
    for name in ["old", "young"] {
        let b: repo_k8s::velero::Backup =
            serde_json::from_value(get("Backup", name).unwrap()).unwrap();
        assert_eq!(
            controller.run(&b),
            Some(repo_k8s::velero::BackupPhase::Completed)
        );
    }
    assert!(
        controller
            .collect_expired(t0 + Duration::from_secs(1800))
            .is_empty(),
        "not yet"
    );
    assert_eq!(
        controller.collect_expired(t0 + Duration::from_secs(7200)),
        ["old"]
    );
    assert!(
        controller
            .collect_expired(t0 + Duration::from_secs(7200))
            .is_empty(),
        "one request is enough"
    );
    // The request, as Velero labels it.
    let dir2 = tempfile::tempdir().unwrap();
    let c2 = connect(&server, dir2.path());
    let list = c2
        .list(
            &repo_k8s::velero::resource::<repo_k8s::velero::DeleteBackupRequest>(),
            Some("velero"),
        )
        .unwrap();
    assert_eq!(list.len(), 1);
    let req: repo_k8s::velero::DeleteBackupRequest =
        serde_json::from_value(serde_json::Value::Object(list[0].as_value().clone())).unwrap();
    assert_eq!(req.metadata.labels["velero.io/backup-name"], "old");
    assert!(!req.metadata.labels["velero.io/backup-uid"].is_empty());
    assert_eq!(
        controller.run_deletion(&req),
        Some(repo_k8s::velero::DeleteBackupRequestPhase::Processed)
    );
    let processed = server
        .get(
            "velero.io/v1",
            "DeleteBackupRequest",
            Some("velero"),
            &req.metadata.name,
        )
        .unwrap();
    assert_eq!(processed["status"]["phase"], "Processed");
    assert!(
        processed["status"]["errors"]
            .as_array()
            .is_none_or(|e| e.is_empty()),
        "{processed}"
    );
    assert!(get("Backup", "old").is_none() && get("Restore", "from-old").is_none());
    assert!(get("Backup", "young").is_some());
    let repo = open_store(store.path());
    assert!(repo_k8s::catalog::find_backup(&repo, "old")
        .unwrap()
        .is_none());
    assert!(repo_k8s::catalog::find_backup(&repo, "young")
        .unwrap()
        .is_some());
}

/// Disaster recovery (Velero's backup sync): a fresh cluster given the same location and
/// password lists the backups its repository holds as Backup objects, and restores one; a
/// Backup object whose backup is gone from the repository is removed.
#[test]
fn a_new_cluster_on_the_same_bucket_lists_and_restores_the_old_backups() {
    use serde_json::json;
    use std::time::{Duration, SystemTime};
    let store = tempfile::tempdir().unwrap();
    let now = || "2026-12-01T00:00:00Z".to_string();
    // The old cluster backs up.
    let old = cluster_with_crds();
    let mut objects = location_and_secret(store.path(), true);
    objects.extend(shop());
    objects.extend([
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "before-the-fire", "namespace": "velero", "labels": {"owner": "platform"}},
            "spec": {"includedNamespaces": ["shop"], "ttl": "48h0m0s"}}),
    ]);
    old.seed(&objects);
    let d1 = tempfile::tempdir().unwrap();
    let c1 = connect(&old, d1.path());
    let b: repo_k8s::velero::Backup = serde_json::from_value(
        old.get("velero.io/v1", "Backup", Some("velero"), "before-the-fire")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        controller(&c1, &now).run(&b),
        Some(repo_k8s::velero::BackupPhase::Completed)
    );
    drop(old);
    // A new cluster: the same location and Secret, nothing else.
    let new = cluster_with_crds();
    new.seed(&location_and_secret(store.path(), true));
    let d2 = tempfile::tempdir().unwrap();
    let c2 = connect(&new, d2.path());
    let ctl = controller(&c2, &now);
    let t0 = SystemTime::now();
    ctl.check_locations(t0);
    let synced = ctl.sync(t0);
    assert_eq!(synced.created, ["before-the-fire"], "{synced:?}");
    let listed = new
        .get("velero.io/v1", "Backup", Some("velero"), "before-the-fire")
        .unwrap();
    assert_eq!(listed["status"]["phase"], "Completed", "{listed}");
    assert_eq!(
        listed["metadata"]["labels"]["velero.io/storage-location"],
        "default"
    );
    // As it was asked for in the old cluster: its spec and labels came with it.
    assert_eq!(
        listed["metadata"]["labels"]["owner"], "platform",
        "{listed}"
    );
    assert_eq!(listed["spec"]["includedNamespaces"], json!(["shop"]));
    assert_eq!(listed["spec"]["ttl"], "48h0m0s");
    assert!(
        ctl.sync(t0 + Duration::from_secs(5)).created.is_empty(),
        "not due, and nothing new"
    );
    // Restore it in the new cluster.
    new.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "after-the-fire", "namespace": "velero"},
        "spec": {"backupName": "before-the-fire"}})]);
    let r: repo_k8s::velero::Restore = serde_json::from_value(
        new.get("velero.io/v1", "Restore", Some("velero"), "after-the-fire")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        ctl.run_restore(&r),
        Some(repo_k8s::velero::RestorePhase::Completed)
    );
    assert_eq!(
        new.get("v1", "ConfigMap", Some("shop"), "cfg").unwrap()["data"]["k"],
        "v"
    );
    // The backup leaves the repository (forgotten elsewhere): its object goes at the next sync.
    let repo = open_store(store.path());
    let (id, _) = repo_k8s::catalog::find_backup(&repo, "before-the-fire")
        .unwrap()
        .unwrap();
    repo.delete_snapshot(&id).unwrap();
    let synced = ctl.sync(t0 + Duration::from_secs(61));
    assert_eq!(synced.removed, ["before-the-fire"], "{synced:?}");
    assert!(new
        .get("velero.io/v1", "Backup", Some("velero"), "before-the-fire")
        .is_none());
}

/// Velero's ServerStatusRequest (what `velero version` creates): Processed with the
/// server's version at once, removed a minute later.
#[test]
fn server_status_requests_are_answered_and_then_removed() {
    use std::time::{Duration, SystemTime};
    let server = cluster_with_crds();
    server.seed(&[
        serde_json::json!({"apiVersion": "velero.io/v1", "kind": "ServerStatusRequest",
        "metadata": {"name": "velero-cli-abc", "namespace": "velero"}, "spec": {}}),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || "2026-12-01T00:00:00Z".to_string();
    let ctl = controller(&cluster, &now);
    let t0 = SystemTime::now();
    assert_eq!(ctl.serve_status_requests(t0), (1, 0));
    let got = server
        .get(
            "velero.io/v1",
            "ServerStatusRequest",
            Some("velero"),
            "velero-cli-abc",
        )
        .unwrap();
    assert_eq!(got["status"]["phase"], "Processed");
    assert_eq!(
        got["status"]["serverVersion"],
        cairn_server::status_requests::server_version()
    );
    assert_eq!(
        ctl.serve_status_requests(t0 + Duration::from_secs(30)),
        (0, 0)
    );
    assert_eq!(
        ctl.serve_status_requests(t0 + Duration::from_secs(61)),
        (0, 1)
    );
    assert!(server
        .get(
            "velero.io/v1",
            "ServerStatusRequest",
            Some("velero"),
            "velero-cli-abc"
        )
        .is_none());
}

fn phase_of(server: &cairn_tests::apiserver::ApiServer, kind: &str, name: &str) -> Option<String> {
    let o = server.get("velero.io/v1", kind, Some("velero"), name)?;
    o["status"]["phase"].as_str().map(str::to_string)
}

/// Velero #2098 (no way to cancel a backup): deleting a running Backup stops it within
/// seconds and commits nothing; a DeleteBackupRequest for a running backup cancels it
/// (Velero refuses) and then deletes it; the repository checks clean, sync does not bring
/// either back, and the next backup is fine.
#[test]
fn a_running_backup_is_cancelled_by_deleting_it_or_by_a_delete_backup_request() {
    use serde_json::json;
    use std::sync::atomic::AtomicBool;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "big"}}));
    // Enough objects that a backup runs for seconds.
    for i in 0..30_000 {
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "big"}, "data": {"i": i.to_string()}}));
    }
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let controller = controller(&cluster, &now);
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let backup = |name: &str| {
        json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "velero"}, "spec": {"includedNamespaces": ["big"]}})
    };
    let options = cairn_server::serve::Options::default();
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        // Deleted while it runs.
        server.seed(&[backup("deleted")]);
        eventually(30, "deleted InProgress", || {
            (phase_of(&server, "Backup", "deleted").as_deref() == Some("InProgress")).then_some(())
        });
        server.delete("velero.io/v1", "Backup", Some("velero"), "deleted");
        // A DeleteBackupRequest for a running backup.
        server.seed(&[backup("requested")]);
        eventually(60, "requested InProgress", || {
            (phase_of(&server, "Backup", "requested").as_deref() == Some("InProgress"))
                .then_some(())
        });
        let asked = std::time::Instant::now();
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
            "metadata": {"name": "del-requested", "namespace": "velero"}, "spec": {"backupName": "requested"}})]);
        eventually(30, "the request processed", || {
            (phase_of(&server, "DeleteBackupRequest", "del-requested").as_deref()
                == Some("Processed"))
            .then_some(())
        });
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(10),
            "cancelled within seconds, not run to its end: {:?}",
            asked.elapsed()
        );
        let req = server
            .get(
                "velero.io/v1",
                "DeleteBackupRequest",
                Some("velero"),
                "del-requested",
            )
            .unwrap();
        assert_eq!(req["status"]["errors"], json!([]), "{req}");
        assert!(server
            .get("velero.io/v1", "Backup", Some("velero"), "requested")
            .is_none());
        // The next backup runs to its end.
        server.seed(&[backup("after")]);
        eventually(120, "after Completed", || {
            (phase_of(&server, "Backup", "after").as_deref() == Some("Completed")).then_some(())
        });
    });
    let repo = open_store(store.path());
    let names: Vec<String> = repo_k8s::catalog::list_backups(&repo)
        .unwrap()
        .backups
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["after"], "cancelled backups commit nothing");
    let report = repo
        .load_index(&repo_core::NoProgress)
        .unwrap()
        .check(&repo_core::CheckOptions::read_all(), &repo_core::NoProgress)
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    // Sync finds nothing to bring back.
    let synced =
        controller.sync(std::time::SystemTime::now() + std::time::Duration::from_secs(3600));
    assert!(synced.created.is_empty(), "{synced:?}");
}

/// Velero #487 with 1.18's rule: 200 Backups created at once with `--concurrent-backups 4`
/// all complete, none is lost, at most four run at once, and two backups sharing a
/// namespace never run at the same time. The states are read from the watch stream, so
/// every state the API server went through is checked.
#[test]
fn two_hundred_backups_run_four_at_a_time_never_two_on_one_namespace() {
    use serde_json::json;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    for n in 0..10 {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns{n}")}}));
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": format!("ns{n}")}, "data": {"n": n.to_string()}}));
    }
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let watcher = connect(&server, dir.path());
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let controller = controller(&cluster, &now);
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let total = 200;
    let backups: Vec<serde_json::Value> = (0..total)
        .map(|i| {
            json!({"apiVersion": "velero.io/v1", "kind": "Backup",
                "metadata": {"name": format!("b{i:03}"), "namespace": "velero"},
                "spec": {"includedNamespaces": [format!("ns{}", i % 10), format!("ns{}", (i + 3) % 10)]}})
        })
        .collect();
    let violations = Mutex::new(Vec::new());
    let most_at_once = Mutex::new(0usize);
    let options = cairn_server::serve::Options {
        concurrent_backups: 4,
        ..Default::default()
    };
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        server.seed(&backups);
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        let r = repo_k8s::velero::resource::<repo_k8s::velero::Backup>();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let done = |objects: &[repo_k8s::Object]| {
            let running: Vec<&repo_k8s::Object> = objects
                .iter()
                .filter(|o| {
                    o.get(&["status", "phase"]).and_then(|p| p.as_str()) == Some("InProgress")
                })
                .collect();
            let mut most = most_at_once.lock().unwrap();
            *most = (*most).max(running.len());
            if running.len() > 4 {
                violations
                    .lock()
                    .unwrap()
                    .push(format!("{} at once", running.len()));
            }
            let mut seen = std::collections::BTreeMap::new();
            for o in &running {
                for ns in o
                    .get(&["spec", "includedNamespaces"])
                    .and_then(|v| v.as_array())
                    .unwrap()
                {
                    if let Some(other) =
                        seen.insert(ns.as_str().unwrap().to_string(), o.name().to_string())
                    {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("{other} and {} both on {ns}", o.name()));
                    }
                }
            }
            objects.len() == total
                && objects.iter().all(|o| {
                    o.get(&["status", "phase"]).and_then(|p| p.as_str()) == Some("Completed")
                })
        };
        let finished = watcher.wait_for(&r, Some("velero"), None, deadline, &done);
        assert!(finished.is_ok(), "not all backups completed");
    });
    assert_eq!(*violations.lock().unwrap(), Vec::<String>::new());
    let most = *most_at_once.lock().unwrap();
    assert!(
        most > 1,
        "backups ran side by side (at most {most} at once)"
    );
    let repo = open_store(store.path());
    assert_eq!(
        repo_k8s::catalog::list_backups(&repo)
            .unwrap()
            .backups
            .len(),
        total
    );
}

/// Velero's schedule controller with a controllable clock (the rounds are given their
/// time; nothing sleeps): `@every 1h` makes five backups an hour apart, named
/// `<schedule>-YYYYMMDDhhmmss` with Velero's labels and owner; a due run waits while the
/// schedule's backup is New, with one Warning Event (Velero is silent, #9559); paused
/// schedules make nothing; skipImmediately skips the run due now; an invalid cron is
/// FailedValidation; the backups expire by their TTL and are deleted through
/// DeleteBackupRequests.
#[test]
fn schedules_run_on_a_controlled_clock_defer_while_busy_and_expire() {
    use repo_k8s::velero::{Backup, DeleteBackupRequest, Schedule};
    use serde_json::json;
    use std::time::Duration;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.extend(shop());
    objects.extend([
        json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
            "metadata": {"name": "hourly", "namespace": "velero", "labels": {"team": "shop"}, "annotations": {"note": "n"}},
            "spec": {"schedule": "@every 1h", "useOwnerReferencesInBackup": true,
                "template": {"includedNamespaces": ["shop"], "ttl": "3h"}}}),
        json!({"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "paused", "namespace": "velero"},
            "spec": {"schedule": "@every 1m", "paused": true, "template": {"includedNamespaces": ["shop"]}}}),
        // Last ran long ago: due at once, but told to skip that run.
        json!({"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "skipper", "namespace": "velero"},
            "spec": {"schedule": "@every 1h", "skipImmediately": true, "template": {"includedNamespaces": ["shop"]}},
            "status": {"phase": "Enabled", "lastBackup": "2020-01-01T00:00:00Z"}}),
        json!({"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "broken", "namespace": "velero"},
            "spec": {"schedule": "61 * * * *", "template": {}}}),
    ]);
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let created = server
        .get("velero.io/v1", "Schedule", Some("velero"), "hourly")
        .unwrap()["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = repo_core::time::parse_rfc3339(&created).unwrap();
    let clock = std::sync::Mutex::new(t0);
    let now = || cairn_server::backups::kube_time(*clock.lock().unwrap());
    let controller = controller(&cluster, &now);
    let mut schedules = cairn_server::schedules::Schedules::new(false);
    let typed = |kind: &str| -> Vec<serde_json::Value> {
        let res = match kind {
            "Schedule" => repo_k8s::velero::resource::<Schedule>(),
            _ => repo_k8s::velero::resource::<Backup>(),
        };
        cluster
            .list(&res, Some("velero"))
            .unwrap()
            .into_iter()
            .map(|o| serde_json::Value::Object(o.as_value().clone()))
            .collect()
    };
    let mut round = |minutes: u64| {
        let at = t0 + Duration::from_secs(minutes * 60);
        *clock.lock().unwrap() = at;
        let s: Vec<Schedule> = typed("Schedule")
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect();
        let b: Vec<Backup> = typed("Backup")
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect();
        schedules.run(&controller, at, &s, &b)
    };
    let schedule = |name: &str| {
        server
            .get("velero.io/v1", "Schedule", Some("velero"), name)
            .unwrap()
    };
    let named = |schedule: &str, minutes: u64| {
        cairn_server::schedules::backup_name(schedule, t0 + Duration::from_secs(minutes * 60))
    };

    // Half an hour in: nothing due; skipper's due run is skipped; broken is refused.
    let r = round(30);
    assert_eq!(r.created, Vec::<String>::new());
    assert_eq!(r.invalid, ["broken"]);
    let skipper = schedule("skipper");
    assert_eq!(
        skipper["spec"]["skipImmediately"],
        json!(false),
        "reset, as Velero does"
    );
    assert_eq!(
        skipper["status"]["lastSkipped"],
        json!(cairn_server::backups::kube_time(
            t0 + Duration::from_secs(1800)
        ))
    );
    let broken = schedule("broken");
    assert_eq!(broken["status"]["phase"], "FailedValidation");
    assert!(
        broken["status"]["validationErrors"][0]
            .as_str()
            .unwrap()
            .starts_with("invalid schedule: "),
        "{broken}"
    );
    assert_eq!(schedule("hourly")["status"]["phase"], "Enabled");
    assert!(
        schedule("paused").get("status").is_none(),
        "paused schedules are left alone"
    );

    // An hour and a minute in: hourly's first backup; skipper's (an hour after its skip) not yet.
    let r = round(61);
    let first = named("hourly", 61);
    assert_eq!(r.created, std::slice::from_ref(&first));
    let b = server
        .get("velero.io/v1", "Backup", Some("velero"), &first)
        .unwrap();
    assert_eq!(
        b["metadata"]["labels"],
        json!({"team": "shop", "velero.io/schedule-name": "hourly"})
    );
    assert_eq!(b["metadata"]["annotations"], json!({"note": "n"}));
    assert_eq!(b["metadata"]["ownerReferences"][0]["kind"], "Schedule");
    assert_eq!(
        b["metadata"]["ownerReferences"][0]["uid"],
        schedule("hourly")["metadata"]["uid"]
    );
    assert_eq!(b["spec"]["includedNamespaces"], json!(["shop"]));
    assert_eq!(
        schedule("hourly")["status"]["lastBackup"],
        json!(cairn_server::backups::kube_time(
            t0 + Duration::from_secs(61 * 60)
        ))
    );
    let r = round(91);
    assert_eq!(r.created, [named("skipper", 91)], "an hour after the skip");

    // Due again while the first backup is still New: deferred, one Event however many rounds.
    assert_eq!(round(125).deferred, ["hourly"]);
    assert_eq!(round(126).deferred, ["hourly"]);
    let events: Vec<repo_k8s::Object> = cluster
        .list(
            repo_k8s::Discovery::built_in().resolve("events").unwrap(),
            Some("velero"),
        )
        .unwrap();
    let deferred: Vec<&repo_k8s::Object> = events
        .iter()
        .filter(|e| e.get(&["reason"]).and_then(|r| r.as_str()) == Some("RunDeferred"))
        .collect();
    assert_eq!(deferred.len(), 1, "{events:?}");
    assert_eq!(
        deferred[0].get(&["involvedObject", "name"]).unwrap(),
        "hourly"
    );
    assert!(deferred[0]
        .get(&["message"])
        .unwrap()
        .as_str()
        .unwrap()
        .contains(&first));
    assert!(events
        .iter()
        .any(|e| e.get(&["reason"]).and_then(|r| r.as_str()) == Some("FailedValidation")));

    // Run each backup as it comes: five in all, no catch-up of the deferred hour.
    let get_backup = |name: &str| -> Backup {
        serde_json::from_value(
            server
                .get("velero.io/v1", "Backup", Some("velero"), name)
                .unwrap(),
        )
        .unwrap()
    };
    *clock.lock().unwrap() = t0 + Duration::from_secs(127 * 60);
    assert_eq!(
        controller.run(&get_backup(&first)),
        Some(repo_k8s::velero::BackupPhase::Completed)
    );
    let mut made = vec![first];
    let mut minute = 127;
    while made.len() < 5 {
        let r = round(minute);
        assert!(r.created.len() <= 1, "{r:?}");
        if let Some(name) = r.created.first() {
            assert_eq!(name, &named("hourly", minute));
            assert_eq!(
                controller.run(&get_backup(name)),
                Some(repo_k8s::velero::BackupPhase::Completed)
            );
            made.push(name.clone());
            minute += 61;
        } else {
            minute += 1;
        }
        assert!(minute < 127 + 61 * 6, "five runs in six hours");
    }
    assert_eq!(
        round(minute - 60).created,
        Vec::<String>::new(),
        "not due an hour early"
    );

    // Expiry: three hours after each ran, its backup is deleted through a request.
    let expired = controller.collect_expired(t0 + Duration::from_secs((minute + 4 * 60) * 60));
    for name in &made {
        assert!(expired.contains(name), "{name} expired: {expired:?}");
    }
    let requests: Vec<DeleteBackupRequest> = cluster
        .list(
            &repo_k8s::velero::resource::<DeleteBackupRequest>(),
            Some("velero"),
        )
        .unwrap()
        .iter()
        .map(|o| serde_json::from_value(serde_json::Value::Object(o.as_value().clone())).unwrap())
        .collect();
    for req in &requests {
        controller.run_deletion(req);
    }
    for name in &made {
        assert!(
            server
                .get("velero.io/v1", "Backup", Some("velero"), name)
                .is_none(),
            "{name} deleted"
        );
    }
    let repo = open_store(store.path());
    let left: Vec<String> = repo_k8s::catalog::list_backups(&repo)
        .unwrap()
        .backups
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(made.iter().all(|m| !left.contains(m)), "{left:?}");
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs `url` (`http://host:port/path`); the status code and body.
fn http_get(url: &str) -> (u16, Vec<u8>) {
    try_http_get(url).unwrap_or_else(|| panic!("nothing listens at {url}"))
}

/// [`http_get`], `None` when nothing listens.
fn try_http_get(url: &str) -> Option<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut conn = std::net::TcpStream::connect(host).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&reply[..end]).to_string();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Some((code, reply[end + 4..].to_vec()))
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// The server's HTTP port as Velero's tools use it: `/metrics` with Velero's names after a
/// backup and a restore, the probes, and DownloadRequests (what `velero backup logs`,
/// `describe --details`, `download` and `velero restore describe` create) answered with an
/// unguessable URL on this server that serves the gzipped log, results and resource list
/// and the backup's tarball; kinds cairn has no data for answer 404 ("none").
#[test]
fn metrics_probes_and_download_requests_are_served_over_http() {
    use serde_json::json;
    use std::sync::atomic::AtomicBool;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.extend(shop());
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let controller = controller(&cluster, &now);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    *controller.downloads.base_url.lock().unwrap() = base.clone();
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let options = cairn_server::serve::Options::default();
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let shared = controller.http_shared();
        let address = format!("127.0.0.1:{port}").parse().unwrap();
        let stop_ref = &stop;
        s.spawn(move || cairn_server::http::serve(address, shared, stop_ref).unwrap());
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        eventually(30, "ready", || {
            try_http_get(&format!("{base}/readyz")).filter(|r| r.0 == 200)
        });
        assert_eq!(
            http_get(&format!("{base}/healthz")),
            (200, b"ok\n".to_vec())
        );
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "velero"}, "spec": {"includedNamespaces": ["shop"]}})]);
        eventually(30, "b1 Completed", || {
            (phase_of(&server, "Backup", "b1").as_deref() == Some("Completed")).then_some(())
        });
        server.delete("v1", "ConfigMap", Some("shop"), "cfg");
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "velero"}, "spec": {"backupName": "b1"}})]);
        eventually(30, "r1 Completed", || {
            (phase_of(&server, "Restore", "r1").as_deref() == Some("Completed")).then_some(())
        });

        let (code, text) = http_get(&format!("{base}/metrics"));
        let text = String::from_utf8(text).unwrap();
        assert_eq!(code, 200);
        for line in [
            "velero_backup_attempt_total{schedule=\"\"} 1",
            "velero_backup_success_total{schedule=\"\"} 1",
            "velero_backup_duration_seconds_count{schedule=\"\"} 1",
            "velero_backup_location_status_gauge{backup_location_name=\"default\"} 1",
            "velero_restore_success_total{schedule=\"\"} 1",
            "velero_backup_total 1",
            "cairn_server_leader 1",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in\n{text}");
        }

        let request = |name: &str, kind: &str, target: &str| -> (u16, Vec<u8>) {
            server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "DownloadRequest",
                "metadata": {"name": name, "namespace": "velero"}, "spec": {"target": {"kind": kind, "name": target}}})]);
            let url = eventually(30, "downloadURL", || {
                let o = server.get("velero.io/v1", "DownloadRequest", Some("velero"), name)?;
                assert!(
                    o["status"]["phase"] != "Processed" || o["status"]["expiration"].is_string(),
                    "{o}"
                );
                o["status"]["downloadURL"].as_str().map(str::to_string)
            });
            assert!(url.starts_with(&base), "{url}");
            http_get(&url)
        };
        let (code, log) = request("b1-log", "BackupLog", "b1");
        assert_eq!(code, 200);
        let log = gunzip(&log);
        assert!(log.contains("info: 2 objects selected"), "{log}");
        let (_, results) = request("b1-results", "BackupResults", "b1");
        let results: serde_json::Value = serde_json::from_str(&gunzip(&results)).unwrap();
        assert!(results.get("errors").is_some(), "{results}");
        let (_, list) = request("b1-list", "BackupResourceList", "b1");
        let list: serde_json::Value = serde_json::from_str(&gunzip(&list)).unwrap();
        assert_eq!(list["v1/ConfigMap"], json!(["shop/cfg"]), "{list}");
        let (code, tarball) = request("b1-contents", "BackupContents", "b1");
        assert_eq!(code, 200);
        assert_eq!(&tarball[..2], &[0x1f, 0x8b], "a gzipped tarball");
        let (_, restore) = request("r1-results", "RestoreResults", "r1");
        let restore: serde_json::Value = serde_json::from_str(&gunzip(&restore)).unwrap();
        assert!(restore.get("warnings").is_some(), "{restore}");
        let (code, _) = request("b1-snapshots", "BackupVolumeSnapshots", "b1");
        assert_eq!(code, 404, "no volume snapshots: the CLI reads 404 as none");
        // A guessed token finds nothing.
        assert_eq!(
            http_get(&format!("{base}/download/{}", "0".repeat(64))).0,
            404
        );
    });
}

/// A phased restore from a Restore object: the ConfigMap its `cairn.io/phases` annotation
/// names holds `restore --phases` YAML; the Restore's annotations show the current phase
/// while it runs and each phase's report and gate at the end. A gate that fails fails the
/// Restore, names the phase, and leaves later phases not run; a missing ConfigMap fails
/// validation.
#[test]
fn a_restore_object_restores_in_phases_with_gates_visible_on_it() {
    use serde_json::json;
    use std::sync::atomic::AtomicBool;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.extend(shop());
    objects.extend([
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two-phases", "namespace": "velero"},
            "data": {"phases.yaml": "phases:\n- name: config\n  includeResources: [namespaces, configmaps]\n- name: apps\n  includeResources: [deployments]\n  wait: {timeout: 30s, deploymentsAvailable: [{namespaces: [shop]}]}\n"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad-gate", "namespace": "velero"},
            "data": {"phases.yaml": "phases:\n- name: config\n  includeResources: [namespaces, configmaps]\n  wait: {timeout: 1s, podsReady: [{namespaces: [shop], selector: \"app=never\"}]}\n- name: apps\n  includeResources: [deployments]\n"}}),
    ]);
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let controller = controller(&cluster, &now);
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let options = cairn_server::serve::Options::default();
    let restore = |name: &str, phases: &str, ns: &str| {
        json!({"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": name, "namespace": "velero", "annotations": {"cairn.io/phases": phases}},
            "spec": {"backupName": "b1", "namespaceMapping": {"shop": ns}}})
    };
    let ended = |name: &str| {
        eventually(60, name, || {
            let o = server.get("velero.io/v1", "Restore", Some("velero"), name)?;
            let phase = o["status"]["phase"].as_str()?;
            (!matches!(phase, "New" | "InProgress")).then_some(o)
        })
    };
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "velero"}, "spec": {"includedNamespaces": ["shop"]}})]);
        eventually(30, "b1 Completed", || {
            (phase_of(&server, "Backup", "b1").as_deref() == Some("Completed")).then_some(())
        });

        server.seed(&[restore("phased", "two-phases", "shop-a")]);
        let r = ended("phased");
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        let annotations = &r["metadata"]["annotations"];
        assert_eq!(annotations["cairn.io/current-phase"], "done", "{r}");
        let report: serde_json::Value =
            serde_json::from_str(annotations["cairn.io/phase-report"].as_str().unwrap()).unwrap();
        assert_eq!(report[0]["name"], "config");
        assert_eq!(report[0]["gate"], "none");
        assert_eq!(report[1]["name"], "apps");
        assert_eq!(report[1]["gate"], "passed", "{report}");
        assert_eq!(report[1]["created"], 1);
        assert!(server
            .get("apps/v1", "Deployment", Some("shop-a"), "web")
            .is_some());

        server.seed(&[restore("gated", "bad-gate", "shop-b")]);
        let r = ended("gated");
        assert_eq!(r["status"]["phase"], "Failed", "{r}");
        assert!(
            r["status"]["failureReason"]
                .as_str()
                .unwrap()
                .contains("phase \"config\": not ready after 1s"),
            "{r}"
        );
        let report: serde_json::Value = serde_json::from_str(
            r["metadata"]["annotations"]["cairn.io/phase-report"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert!(
            report[0]["gate"].as_str().unwrap().starts_with("failed: "),
            "{report}"
        );
        assert_eq!(report[1]["gate"], "not run");
        assert!(
            server
                .get("apps/v1", "Deployment", Some("shop-b"), "web")
                .is_none(),
            "later phases not run"
        );

        server.seed(&[restore("missing", "no-such-config-map", "shop-c")]);
        let r = ended("missing");
        assert_eq!(r["status"]["phase"], "FailedValidation", "{r}");
        assert!(r["status"]["validationErrors"][0].as_str().unwrap().contains("ConfigMap velero/no-such-config-map, named by the cairn.io/phases annotation, does not exist"), "{r}");
    });
}

/// Bad input, each with a clear status and the server staying up: fields of the wrong type
/// (FailedValidation naming the field, never silently ignored), an invalid cron, a huge
/// object, a wrong repository password in the Secret (never overwritten); a good Backup
/// after all of them completes.
#[test]
fn bad_objects_get_clear_statuses_and_the_server_stays_up() {
    use serde_json::json;
    use std::sync::atomic::AtomicBool;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.extend(shop());
    // A second location whose Secret holds another password than its repository's.
    let other = tempfile::tempdir().unwrap();
    objects.push(json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": {"name": "other", "namespace": "velero", "annotations": {"cairn.io/repository-password-secret": "wrong-password"}},
        "spec": {"provider": "filesystem", "objectStorage": {"bucket": "backups"}, "config": {"path": other.path().to_str().unwrap()}}}));
    server.seed(&objects);
    // The "other" repository, made with the right password first.
    drop(
        repo_core::Repository::init(
            repo_core::storage::open_url(
                other.path().join("backups").to_str().unwrap(),
                &Default::default(),
            )
            .unwrap(),
            b"the real one",
            Default::default(),
            repo_core::OpenOptions {
                no_cache: true,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    server.seed(&[json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong-password", "namespace": "velero"},
        "data": {"repository-password": "bm90IGl0"}})]);
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect(&server, dir.path());
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let controller = controller(&cluster, &now);
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let options = cairn_server::serve::Options::default();
    let status_of = |kind: &str, name: &str| {
        eventually(60, name, || {
            let o = server.get("velero.io/v1", kind, Some("velero"), name)?;
            let phase = o["status"]["phase"].as_str()?;
            (!matches!(phase, "New" | "InProgress")).then_some(o["status"].clone())
        })
    };
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        server.seed(&[
            json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "ttl-number", "namespace": "velero"},
                "spec": {"ttl": 5}}),
            json!({"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "ns-string", "namespace": "velero"},
                "spec": {"backupName": "x", "includedNamespaces": "shop"}}),
            json!({"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "paused-yes", "namespace": "velero"},
                "spec": {"schedule": "@daily", "paused": "yes", "template": {}}}),
            json!({"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "bad-cron", "namespace": "velero"},
                "spec": {"schedule": "every day at noon", "template": {}}}),
            json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "huge", "namespace": "velero",
                "annotations": {"note": "x".repeat(900_000)}}, "spec": {"includedNamespaces": ["shop"]}}),
            json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "wrong-password", "namespace": "velero"},
                "spec": {"storageLocation": "other"}}),
        ]);
        let st = status_of("Backup", "ttl-number");
        assert_eq!(st["phase"], "FailedValidation", "{st}");
        assert!(
            st["validationErrors"][0]
                .as_str()
                .unwrap()
                .contains("field spec.ttl"),
            "{st}"
        );
        let st = status_of("Restore", "ns-string");
        assert_eq!(st["phase"], "FailedValidation", "{st}");
        assert!(
            st["validationErrors"][0]
                .as_str()
                .unwrap()
                .contains("spec.includedNamespaces"),
            "{st}"
        );
        let st = status_of("Schedule", "paused-yes");
        assert!(
            st["validationErrors"][0]
                .as_str()
                .unwrap()
                .contains("spec.paused"),
            "{st}"
        );
        let st = status_of("Schedule", "bad-cron");
        assert_eq!(st["phase"], "FailedValidation", "{st}");
        assert!(
            st["validationErrors"][0]
                .as_str()
                .unwrap()
                .starts_with("invalid schedule: "),
            "{st}"
        );
        assert_eq!(status_of("Backup", "huge")["phase"], "Completed");
        // Refused before it starts (the location's check found it Unavailable) or when it
        // opens the repository: either way the status says what is wrong.
        let st = status_of("Backup", "wrong-password");
        let why = match st["phase"].as_str() {
            Some("FailedValidation") => st["validationErrors"][0].as_str(),
            _ => st["failureReason"].as_str(),
        };
        let expected = "another password than the one in Secret velero/wrong-password";
        assert!(why.unwrap().contains(expected), "{st}");
        // Still serving.
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "fine", "namespace": "velero"},
            "spec": {"includedNamespaces": ["shop"]}})]);
        assert_eq!(status_of("Backup", "fine")["phase"], "Completed");
    });
}

/// Velero #7568 with a real process: `cairn-server serve` killed with SIGKILL in the middle
/// of a backup, then started again: the backup is Failed with Velero's reason, the
/// repository checks clean (nothing half-written is referenced), and the next backup
/// completes.
#[test]
fn a_server_killed_mid_backup_fails_it_on_restart_and_the_repository_checks_clean() {
    use serde_json::json;
    let server = cluster_with_crds();
    let store = tempfile::tempdir().unwrap();
    let mut objects = location_and_secret(store.path(), true);
    objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "big"}}));
    for i in 0..30_000 {
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "big"}, "data": {"i": i.to_string()}}));
    }
    server.seed(&objects);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path());
    let spawn = || {
        let bin = cairn_tests::node_agent().with_file_name("cairn-server");
        Command::new(bin)
            .args(["serve", "--namespace", "velero", "--no-cache"])
            .args(["--identity", "only", "--lease-duration", "2s"])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--metrics-address", &format!("127.0.0.1:{}", free_port())])
            .env_remove("CAIRN_REPO")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "interrupted", "namespace": "velero"}, "spec": {"includedNamespaces": ["big"]}})]);
    eventually(60, "InProgress", || {
        (phase_of(&server, "Backup", "interrupted").as_deref() == Some("InProgress")).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        phase_of(&server, "Backup", "interrupted").as_deref(),
        Some("InProgress"),
        "killed before it ended"
    );
    // The Lease of the killed replica runs out (2 s), then the new one fails what it left.
    let mut second = spawn();
    let failed = eventually(60, "Failed", || {
        let o = server.get("velero.io/v1", "Backup", Some("velero"), "interrupted")?;
        (o["status"]["phase"] == "Failed").then_some(o)
    });
    assert_eq!(
        failed["status"]["failureReason"],
        "found a backup with status \"InProgress\" during the server starting, mark it as \"Failed\""
    );
    server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "next", "namespace": "velero"}, "spec": {"includedNamespaces": ["velero"]}})]);
    eventually(60, "next Completed", || {
        (phase_of(&server, "Backup", "next").as_deref() == Some("Completed")).then_some(())
    });
    second.kill().unwrap();
    second.wait().unwrap();
    let repo = open_store(store.path());
    let names: Vec<String> = repo_k8s::catalog::list_backups(&repo)
        .unwrap()
        .backups
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["next"]);
    let report = repo
        .load_index(&repo_core::NoProgress)
        .unwrap()
        .check(&repo_core::CheckOptions::read_all(), &repo_core::NoProgress)
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}
