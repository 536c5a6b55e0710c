//! The cluster path against the in-process API server (`cairn_tests::apiserver`): no real
//! kube-apiserver runs on these machines. The server is first checked against the real
//! `kubectl` client, so what cairn is tested against speaks the real protocol.

use std::process::Command;

use cairn_tests::apiserver::{ApiServer, Options};
use serde_json::{json, Value};

fn kubectl(server: &ApiServer, dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", server.kubeconfig(dir))
        .env("HOME", dir)
        .args(args)
        .output()
        .expect("kubectl is installed (Debian's kubernetes-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_test_api_server_speaks_kubectls_protocol() {
    let server = ApiServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\n  labels: {app: web}\ndata:\n  a: \"1\"\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: nginx}]\n",
    )
    .unwrap();
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &[
            "apply",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("namespace/shop created"), "{out}");
    assert!(out.contains("configmap/cfg created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &["get", "cm", "-n", "shop", "-o", "json"],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "cfg");
    assert_eq!(v["items"][0]["data"]["a"], "1");
    // A second apply with a change patches; kubectl reports it.
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\n  labels: {app: web}\ndata:\n  a: \"2\"\n",
    )
    .unwrap();
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &[
            "apply",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("configmap/cfg configured"), "{out}");
    let (ok, out, _) = kubectl(
        &server,
        dir.path(),
        &[
            "get",
            "configmap",
            "cfg",
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.a}",
        ],
    );
    assert!(ok);
    assert_eq!(out, "2");
    // Creating what exists is the real AlreadyExists error; a missing namespace is NotFound.
    // (`kubectl create -f`, which sends JSON: `kubectl create namespace` sends protobuf,
    // which this server does not speak.)
    let file = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let ns = file(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".into(),
    );
    let (ok, _, err) = kubectl(&server, dir.path(), &["create", "--validate=false", "-f", &ns]);
    assert!(
        !ok && err.contains("AlreadyExists") && err.contains("already exists"),
        "{err}"
    );
    let cm = |n: &str, ns: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}, namespace: {ns}}}\n")
    };
    let lost = file("lost.yaml", cm("x", "nope"));
    let (ok, _, err) = kubectl(&server, dir.path(), &["create", "--validate=false", "-f", &lost]);
    assert!(
        !ok && err.contains("namespaces \"nope\" not found"),
        "{err}"
    );
    // Paging: kubectl lists in chunks of --chunk-size with limit/continue.
    for i in 0..7 {
        let f = file(&format!("c{i}.yaml"), cm(&format!("c{i}"), "shop"));
        let (ok, _, err) = kubectl(&server, dir.path(), &["create", "--validate=false", "-f", &f]);
        assert!(ok, "{err}");
    }
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &["get", "cm", "-n", "shop", "--chunk-size=3", "-o", "name"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 8, "{out}");
    assert!(
        server.log().iter().any(|l| l.contains("continue=")),
        "paged"
    );
    // Label selectors and deployments' simulated status.
    let (ok, out, _) = kubectl(
        &server,
        dir.path(),
        &["get", "cm", "-n", "shop", "-l", "app=web", "-o", "name"],
    );
    assert!(ok);
    assert_eq!(out.trim(), "configmap/cfg");
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.status.availableReplicas}",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "2");
    // CRDs extend discovery.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
    std::fs::write(&manifest, serde_json::to_string(&crd).unwrap()).unwrap();
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &[
            "apply",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    std::fs::write(&manifest, r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"shop"},"spec":{"size":3}}"#).unwrap();
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &[
            "apply",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = kubectl(
        &server,
        dir.path(),
        &["get", "widgets", "-n", "shop", "-o", "name"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "widget.example.com/w");
}
