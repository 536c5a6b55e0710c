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

/// Runs kubectl and expects it to succeed; returns what it printed.
fn kubectl_ok(server: &ApiServer, dir: &std::path::Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(server, dir, args);
    assert!(ok, "kubectl {args:?} failed: {out}{err}");
    out
}

/// `kubectl apply` of a file (no schema validation: the test server serves no OpenAPI).
fn apply(
    server: &ApiServer,
    dir: &std::path::Path,
    file: &std::path::Path,
) -> (bool, String, String) {
    kubectl(
        server,
        dir,
        &["apply", "--validate=false", "-f", file.to_str().unwrap()],
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
    let (ok, out, err) = apply(&server, dir.path(), &manifest);
    assert!(ok, "{out}{err}");
    assert!(out.contains("namespace/shop created"), "{out}");
    assert!(out.contains("configmap/cfg created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = kubectl_ok(
        &server,
        dir.path(),
        &["get", "cm", "-n", "shop", "-o", "json"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "cfg");
    assert_eq!(v["items"][0]["data"]["a"], "1");
    // A second apply with a change patches; kubectl reports it.
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\n  labels: {app: web}\ndata:\n  a: \"2\"\n",
    )
    .unwrap();
    let (ok, out, err) = apply(&server, dir.path(), &manifest);
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
    let (ok, _, err) = kubectl(
        &server,
        dir.path(),
        &["create", "--validate=false", "-f", &ns],
    );
    assert!(
        !ok && err.contains("AlreadyExists") && err.contains("already exists"),
        "{err}"
    );
    let cm = |n: &str, ns: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}, namespace: {ns}}}\n")
    };
    let lost = file("lost.yaml", cm("x", "nope"));
    let (ok, _, err) = kubectl(
        &server,
        dir.path(),
        &["create", "--validate=false", "-f", &lost],
    );
    assert!(
        !ok && err.contains("namespaces \"nope\" not found"),
        "{err}"
    );
    // Paging: kubectl lists in chunks of --chunk-size with limit/continue.
    for i in 0..7 {
        let f = file(&format!("c{i}.yaml"), cm(&format!("c{i}"), "shop"));
        kubectl_ok(
            &server,
            dir.path(),
            &["create", "--validate=false", "-f", &f],
        );
    }
    let out = kubectl_ok(
        &server,
        dir.path(),
        &["get", "cm", "-n", "shop", "--chunk-size=3", "-o", "name"],
    );
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
    let out = kubectl_ok(
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
    assert_eq!(out, "2");
    // CRDs extend discovery.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
    std::fs::write(&manifest, serde_json::to_string(&crd).unwrap()).unwrap();
    let (ok, out, err) = apply(&server, dir.path(), &manifest);
    assert!(ok, "{out}{err}");
    std::fs::write(&manifest, r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"shop"},"spec":{"size":3}}"#).unwrap();
    let (ok, out, err) = apply(&server, dir.path(), &manifest);
    assert!(ok, "{out}{err}");
    let out = kubectl_ok(
        &server,
        dir.path(),
        &["get", "widgets", "-n", "shop", "-o", "name"],
    );
    assert_eq!(out.trim(), "widget.example.com/w");
    // Updates are checked against resourceVersion: a replace with a stale one is a 409.
    let out = kubectl_ok(
        &server,
        dir.path(),
        &["get", "cm", "cfg", "-n", "shop", "-o", "json"],
    );
    let mut current: Value = serde_json::from_str(&out).unwrap();
    current["data"]["a"] = json!("3");
    let f = file("replace.json", current.to_string());
    kubectl_ok(
        &server,
        dir.path(),
        &["replace", "--validate=false", "-f", &f],
    );
    let (ok, _, err) = kubectl(
        &server,
        dir.path(),
        &["replace", "--validate=false", "-f", &f],
    );
    assert!(!ok && err.contains("the object has been modified"), "{err}");
    // Watches: kubectl sees an object created while it watches.
    let watch = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            server.seed(&[json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "late", "namespace": "shop"}})]);
        });
        Command::new("timeout")
            .args([
                "4",
                "kubectl",
                "get",
                "configmaps",
                "-n",
                "shop",
                "--watch-only",
                "-o",
                "name",
            ])
            .env("KUBECONFIG", server.kubeconfig(dir.path()))
            .env("HOME", dir.path())
            .output()
            .unwrap()
    });
    let seen = String::from_utf8_lossy(&watch.stdout);
    assert_eq!(
        seen.trim(),
        "configmap/late",
        "{}",
        String::from_utf8_lossy(&watch.stderr)
    );
}

/// Backs up `objects` (written as one manifest) as backup `name`.
fn backup_objects(
    run: &impl Fn(&[&str]) -> std::process::Output,
    dir: &std::path::Path,
    name: &str,
    objects: &[Value],
) {
    let manifests = dir.join(format!("manifests-{name}"));
    std::fs::create_dir(&manifests).unwrap();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(
        manifests.join("all.json"),
        serde_json::to_vec(&list).unwrap(),
    )
    .unwrap();
    let out = run(&["backup", name, "--from-dir", manifests.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cairn-server restore NAME --to-cluster` into the cluster of kubeconfig `kc`.
fn restore_to(
    run: &impl Fn(&[&str]) -> std::process::Output,
    kc: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "restore",
        name,
        "--to-cluster",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ];
    args.extend(extra);
    run(&args)
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn cm(ns: &str, name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
        "data": {"v": data}})
}

fn ns(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn deployment(ns: &str, name: &str, never_ready: bool) -> Value {
    let mut labels = json!({"app": name});
    if never_ready {
        labels[cairn_tests::apiserver::NEVER_READY] = json!("true");
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

fn widget_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}})
}

fn widget(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "namespace": ns}, "spec": {"size": 3}})
}

#[test]
fn backup_from_a_cluster_pages_retries_and_round_trips_into_another() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    // The source cluster throttles its first requests: the client must retry.
    let source = ApiServer::start(Options {
        throttle_first: 3,
        ..Default::default()
    });
    let mut objects = vec![ns("shop"), ns("ops"), widget_crd()];
    objects.extend((0..1203).map(|i| cm("shop", &format!("cm-{i:04}"), "x")));
    objects.push(deployment("shop", "web", false));
    objects.push(widget("shop", "w1"));
    source.seed(&objects);
    let src_dir = dir.path().join("src");
    std::fs::create_dir(&src_dir).unwrap();
    let kc = source.kubeconfig(&src_dir);
    let out = run(&[
        "backup",
        "nightly",
        "--from-cluster",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--json",
    ]);
    let v = json_of(&out);
    assert_eq!(v["phase"], "Completed", "{v}");
    assert_eq!(v["items"], objects.len());
    let log = source.log();
    assert!(
        log[1..4].iter().all(|l| *l == log[0]),
        "the throttled first request was retried: {:?}",
        &log[..4]
    );
    let cm_pages: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET /api/v1/configmaps?"))
        .collect();
    assert_eq!(
        cm_pages.len(),
        3,
        "1203 config maps in pages of 500: {cm_pages:?}"
    );
    assert!(cm_pages.iter().all(|l| l.contains("limit=500")));

    // Restore into an empty cluster: everything, in Velero's order, labelled.
    let target = ApiServer::start(Options::default());
    let dst_dir = dir.path().join("dst");
    std::fs::create_dir(&dst_dir).unwrap();
    let kc = target.kubeconfig(&dst_dir);
    let out = restore_to(&run, &kc, "nightly", &["--json"]);
    let v = json_of(&out);
    assert_eq!(v["result"]["phase"], "Completed", "{v}");
    assert_eq!(target.len(), objects.len());
    let posts: Vec<String> = target
        .log()
        .into_iter()
        .filter(|l| l.starts_with("POST"))
        .collect();
    let first = |p: &str| {
        posts
            .iter()
            .position(|l| l.contains(p))
            .unwrap_or_else(|| panic!("no {p} in {posts:?}"))
    };
    assert!(first("customresourcedefinitions") < first("POST /api/v1/namespaces?"));
    assert!(first("POST /api/v1/namespaces?") < first("/configmaps"));
    assert!(first("/configmaps") < first("/deployments"));
    assert!(
        first("/deployments") < first("/widgets"),
        "the rest alphabetically: deployments.apps < widgets.example.com"
    );
    let w = target
        .get("example.com/v1", "Widget", Some("shop"), "w1")
        .unwrap();
    assert_eq!(w["metadata"]["labels"]["velero.io/backup-name"], "nightly");
    assert_eq!(
        w["metadata"]["labels"]["velero.io/restore-name"],
        "nightly-restore"
    );
    assert_eq!(w["spec"]["size"], 3);
}

/// Velero pkg/restore/restore_test.go TestRestoreItems (existing objects: identical ones
/// skipped, and relabelled under `update`; different ones warned about, or made equal to
/// the backup under `update`; service accounts merged whatever the policy) and
/// merge_service_account_test.go.
#[test]
fn existing_objects_are_left_with_a_warning_or_updated() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    let sa = |secrets: &[&str], labels: Value| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "shop", "labels": labels},
            "secrets": secrets.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()})
    };
    backup_objects(
        &run,
        dir.path(),
        "b",
        &[
            ns("shop"),
            cm("shop", "same", "1"),
            cm("shop", "changed", "backup"),
            cm("shop", "new", "1"),
            sa(&["from-backup"], json!({"team": "backup", "tier": "web"})),
        ],
    );
    let restore = |policy: Option<&str>| {
        let server = ApiServer::start(Options::default());
        let mut same = cm("shop", "same", "1");
        same["metadata"]["labels"] =
            json!({"velero.io/backup-name": "b", "velero.io/restore-name": "earlier"});
        let mut changed = cm("shop", "changed", "in-cluster");
        changed["data"]["only-in-cluster"] = json!("x");
        changed["metadata"]["labels"] = json!({"added": "later"});
        server.seed(&[
            ns("shop"),
            same,
            changed,
            sa(&["in-cluster"], json!({"team": "cluster"})),
        ]);
        let d = tempfile::tempdir().unwrap();
        let kc = server.kubeconfig(d.path());
        let mut args = vec!["--json"];
        if let Some(p) = policy {
            args.extend(["--existing-resource-policy", p]);
        }
        let out = restore_to(&run, &kc, "b", &args);
        (server, json_of(&out), out.status.code())
    };
    let get = |server: &ApiServer, kind: &str, name: &str| {
        server.get("v1", kind, Some("shop"), name).unwrap()
    };
    for (policy, wording) in [
        (None, "could not restore, ConfigMap:changed already exists."),
        (
            Some("none"),
            "could not restore, ConfigMap \\\"changed\\\" already exists.",
        ),
    ] {
        let (server, v, code) = restore(policy);
        assert_eq!(code, Some(0), "warnings only: Completed");
        let r = &v["result"];
        assert_eq!(r["phase"], "Completed");
        assert_eq!(r["phases"][0]["created"], 1, "{v}");
        assert_eq!(
            r["phases"][0]["unchanged"], 2,
            "the namespace and the same config map"
        );
        assert_eq!(r["phases"][0]["skippedExisting"], 1);
        assert_eq!(r["phases"][0]["updated"], 1, "the service account, merged");
        let warnings = r["warnings"]["namespaces"]["shop"].to_string();
        assert!(warnings.contains(wording), "{warnings}");
        assert!(
            warnings.contains(
                "Warning: the in-cluster version is different than the backed-up version"
            ),
            "{warnings}"
        );
        assert_eq!(
            get(&server, "ConfigMap", "changed")["data"]["v"],
            "in-cluster"
        );
        // Identical: left alone, stale labels and all.
        assert_eq!(
            get(&server, "ConfigMap", "same")["metadata"]["labels"]["velero.io/restore-name"],
            "earlier"
        );
        // The service account gains the backup's secret and the labels it lacked; its own
        // stay, and it gets no restore labels.
        let account = get(&server, "ServiceAccount", "app");
        assert_eq!(
            account["secrets"],
            json!([{"name": "in-cluster"}, {"name": "from-backup"}])
        );
        assert_eq!(
            account["metadata"]["labels"],
            json!({"team": "cluster", "tier": "web"})
        );
    }
    let (server, v, _) = restore(Some("update"));
    assert_eq!(v["result"]["phases"][0]["updated"], 2, "{v}");
    assert!(
        v["result"]["warnings"]
            .as_object()
            .is_none_or(|w| w.is_empty()),
        "{v}"
    );
    // Equal to the backup: keys only the cluster had are gone.
    let changed = get(&server, "ConfigMap", "changed");
    assert_eq!(changed["data"], json!({"v": "backup"}));
    assert_eq!(
        changed["metadata"]["labels"],
        json!({"velero.io/backup-name": "b", "velero.io/restore-name": "b-restore"})
    );
    // Identical: only the restore labels change.
    let same = get(&server, "ConfigMap", "same");
    assert_eq!(
        same["metadata"]["labels"]["velero.io/restore-name"],
        "b-restore"
    );
    assert_eq!(same["data"], json!({"v": "1"}));
}

#[test]
fn a_phased_restore_waits_for_each_gate_and_stops_at_a_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    backup_objects(
        &run,
        dir.path(),
        "b",
        &[
            ns("ops"),
            ns("shop"),
            widget_crd(),
            deployment("ops", "operator", false),
            deployment("shop", "web", false),
            deployment("shop", "stuck", true),
            widget("shop", "w1"),
            cm("shop", "cfg", "1"),
        ],
    );
    let phases = |stuck_gate: &str| {
        format!(
            "phases:\n\
             - name: operators\n  includeNamespaces: [ops]\n  wait:\n    timeout: 20s\n    deploymentsAvailable: [{{namespaces: [ops]}}]\n\
             - name: platform\n  includeResources: [crd, namespaces]\n  wait: {{timeout: 20s, crdsEstablished: true}}\n\
             - name: apps\n  includeNamespaces: [shop]\n  excludeResources: [widgets.example.com]\n  wait:\n    timeout: {stuck_gate}\n    deploymentsAvailable: [{{selector: app=web}}]\n    podsReady: []\n\
             - name: widgets\n  includeResources: [widgets.example.com]\n"
        )
    };
    // All gates pass: deployments become available 300 ms after creation.
    let server = ApiServer::start(Options {
        ready_after: std::time::Duration::from_millis(300),
        ..Default::default()
    });
    let d = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(d.path());
    let file = d.path().join("phases.yaml");
    std::fs::write(&file, phases("20s")).unwrap();
    let out = restore_to(
        &run,
        &kc,
        "b",
        &["--phases", file.to_str().unwrap(), "--json"],
    );
    let v = json_of(&out);
    let r = &v["result"];
    assert_eq!(r["phase"], "Completed", "{v}");
    let names: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["operators", "platform", "apps", "widgets"]);
    assert_eq!(r["phases"][0]["gate"], "passed");
    // The ops namespace is created for the operator (as Velero does), so the platform
    // phase finds it there, unchanged.
    assert_eq!(r["phases"][0]["created"], 1);
    assert_eq!(r["phases"][1]["unchanged"], 1);
    assert_eq!(
        r["phases"][1]["created"], 2,
        "the CRD and the shop namespace"
    );
    assert_eq!(
        r["phases"][2]["created"], 3,
        "two deployments and the config map"
    );
    assert_eq!(r["phases"][3]["created"], 1);
    // The operator was created only after nothing else, and the web gate waited for it.
    let posts: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.starts_with("POST"))
        .collect();
    assert!(
        posts[1].contains("/namespaces/ops/deployments"),
        "{posts:?}"
    );
    // Gates list, then watch from the list's resourceVersion.
    let log = server.log();
    assert!(
        log.iter().any(
            |l| l.starts_with("GET /apis/apps/v1/namespaces/ops/deployments?")
                && l.contains("watch=true")
                && l.contains("resourceVersion=")
        ),
        "{log:?}"
    );

    // A gate that cannot pass: `stuck` is never ready and the apps gate waits for all
    // deployments in shop.
    let server = ApiServer::start(Options::default());
    let kc = server.kubeconfig(d.path());
    std::fs::write(
        &file,
        phases("1s").replace(
            "deploymentsAvailable: [{selector: app=web}]",
            "deploymentsAvailable: [{}]",
        ),
    )
    .unwrap();
    let out = restore_to(
        &run,
        &kc,
        "b",
        &["--phases", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "Failed");
    let v = json_of(&out);
    let r = &v["result"];
    assert_eq!(r["phase"], "Failed");
    let err = r["errors"]["cluster"][0].as_str().unwrap();
    assert!(
        err.starts_with(
            "phase \"apps\": not ready after 1s: deployments in shop: 1 of 2 not ready (stuck)"
        ),
        "{err}"
    );
    assert!(err.contains("later phases were not run"));
    assert_eq!(r["phases"][3]["gate"], "not run");
    assert!(
        server
            .get("example.com/v1", "Widget", Some("shop"), "w1")
            .is_none(),
        "nothing of a later phase"
    );
    // And the text output names it for the operator.
    let server = ApiServer::start(Options::default());
    let kc = server.kubeconfig(d.path());
    let out = restore_to(&run, &kc, "b", &["--phases", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("phase apps: 3 item(s): 3 created"), "{text}");
    assert!(
        text.contains("gate failed: deployments in shop: 1 of 2 not ready (stuck)"),
        "{text}"
    );
    assert!(
        text.contains("phase widgets: 1 item(s): 0 created") && text.contains("gate not run"),
        "{text}"
    );
    assert!(text.contains("restore of b Failed"), "{text}");
}

/// Velero pkg/restore/restore_test.go TestRestoreItems ("metadata managedFields gets
/// restored") and TestDetermineRestoreStatus: the status of an object the restore-status
/// annotation asks for (in any case) is set through the status subresource after create;
/// others are created without one; managedFields come back.
#[test]
fn status_and_managed_fields_are_restored_as_velero_does() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    let mut with = widget("shop", "with-status");
    with["metadata"]["annotations"] = json!({"velero.io/restore-status": " True "});
    with["metadata"]["managedFields"] = json!([{"manager": "widget-operator", "operation": "Update", "apiVersion": "example.com/v1"}]);
    with["status"] = json!({"phase": "Ready"});
    let mut without = widget("shop", "without-status");
    without["status"] = json!({"phase": "Ready"});
    backup_objects(
        &run,
        dir.path(),
        "b",
        &[ns("shop"), widget_crd(), with, without],
    );
    let server = ApiServer::start(Options::default());
    let d = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(d.path());
    let out = restore_to(&run, &kc, "b", &["--json"]);
    let v = json_of(&out);
    assert_eq!(v["result"]["phase"], "Completed", "{v}");
    let get = |name: &str| {
        server
            .get("example.com/v1", "Widget", Some("shop"), name)
            .unwrap()
    };
    let restored = get("with-status");
    assert_eq!(restored["status"], json!({"phase": "Ready"}));
    assert_eq!(
        restored["metadata"]["managedFields"][0]["manager"],
        "widget-operator"
    );
    assert!(
        get("without-status")
            .get("status")
            .is_none_or(|s| s.is_null()),
        "{}",
        get("without-status")
    );
}

/// Velero pkg/restore/restore_test.go TestIsAlreadyExistsError ("Get already allocated
/// error and the service exists"): a Service refused because its own node port is taken
/// is an existing object, and the existing-resource policy applies.
#[test]
fn a_service_refused_for_its_own_node_port_counts_as_existing() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    let svc = |app: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "NodePort", "selector": {"app": app}, "ports": [{"port": 80, "nodePort": 30080}]}})
    };
    backup_objects(&run, dir.path(), "b", &[ns("shop"), svc("web")]);
    let server = ApiServer::start(Options::default());
    server.seed(&[ns("shop"), svc("old")]);
    let d = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(d.path());
    let out = restore_to(
        &run,
        &kc,
        "b",
        &[
            "--preserve-nodeports",
            "--existing-resource-policy",
            "update",
            "--json",
        ],
    );
    let v = json_of(&out);
    assert_eq!(v["result"]["phase"], "Completed", "{v}");
    assert_eq!(v["result"]["phases"][0]["updated"], 1, "{v}");
    let web = server.get("v1", "Service", Some("shop"), "web").unwrap();
    assert_eq!(web["spec"]["selector"], json!({"app": "web"}));
}

/// Velero pkg/restore/restore.go getNamespace: a namespace an item needs before its
/// Namespace object's turn (here, a phase of config maps only) is made from the backed-up
/// Namespace, labels and annotations included.
#[test]
fn a_namespace_made_for_an_item_is_the_backed_up_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    let mut shop = ns("shop");
    shop["metadata"]["labels"] = json!({"team": "payments"});
    shop["metadata"]["annotations"] = json!({"owner": "ops@example.com"});
    backup_objects(&run, dir.path(), "b", &[shop, cm("shop", "cfg", "1")]);
    let server = ApiServer::start(Options::default());
    let d = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(d.path());
    let phases = d.path().join("phases.yaml");
    std::fs::write(
        &phases,
        "phases:\n- name: config\n  includeResources: [configmaps]\n",
    )
    .unwrap();
    let out = restore_to(
        &run,
        &kc,
        "b",
        &["--phases", phases.to_str().unwrap(), "--json"],
    );
    let v = json_of(&out);
    assert_eq!(v["result"]["phase"], "Completed", "{v}");
    assert!(
        v["result"]["warnings"]
            .as_object()
            .is_none_or(|w| w.is_empty()),
        "{v}"
    );
    let made = server.get("v1", "Namespace", None, "shop").unwrap();
    assert_eq!(made["metadata"]["labels"]["team"], "payments");
    assert_eq!(made["metadata"]["annotations"]["owner"], "ops@example.com");
}

/// Velero pkg/util/kube/utils.go EnsureNamespaceExistsAndIsReady: a namespace that is
/// terminating is waited for, then made again from the backup; one that does not go in
/// time fails its items with a message that says what to do.
#[test]
fn a_terminating_namespace_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    let mut shop = ns("shop");
    shop["metadata"]["labels"] = json!({"team": "payments"});
    backup_objects(&run, dir.path(), "b", &[shop, cm("shop", "cfg", "1")]);
    let terminating = || {
        let server = ApiServer::start(Options::default());
        let mut going = ns("shop");
        going["metadata"]["deletionTimestamp"] = json!("2026-11-30T00:00:00Z");
        going["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
        server.seed(&[going]);
        server
    };
    // It goes after a moment: the restore waits, then restores into a new one.
    let server = terminating();
    let d = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(d.path());
    let out = std::thread::scope(|s| {
        let restore = s.spawn(|| restore_to(&run, &kc, "b", &["--json"]));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        server.delete("v1", "Namespace", None, "shop");
        restore.join().unwrap()
    });
    let v = json_of(&out);
    assert_eq!(v["result"]["phase"], "Completed", "{v}");
    let made = server.get("v1", "Namespace", None, "shop").unwrap();
    assert_eq!(made["metadata"]["labels"]["team"], "payments");
    assert!(made["metadata"].get("deletionTimestamp").is_none());
    assert!(server.get("v1", "ConfigMap", Some("shop"), "cfg").is_some());
    // It stays: the items fail, naming the namespace and what to do.
    let server = terminating();
    let kc = server.kubeconfig(d.path());
    let out = restore_to(
        &run,
        &kc,
        "b",
        &["--resource-terminating-timeout", "1s", "--json"],
    );
    let v = json_of(&out);
    assert_eq!(v["result"]["phase"], "PartiallyFailed", "{v}");
    let errors = v["result"]["errors"].to_string();
    assert!(errors.contains("terminating namespace shop"), "{errors}");
}
