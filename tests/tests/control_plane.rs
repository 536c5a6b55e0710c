//! The control plane's pieces as processes: the simulated cluster (`fake-apiserver`) with
//! Velero's CRDs from `deploy/crds/`, driven by the real kubectl.

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
