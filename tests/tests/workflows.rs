//! Workflows (issue 16): a Backup or Restore annotated with a workflow runs its steps (Jobs,
//! scaling, the objects with phases and gates) on the tests' API server with a simulated
//! node, and records each step's state and, when one fails, its reason.

use cairn_tests::apiserver::{ApiServer, NEVER_READY};
use cairn_tests::control_plane::{simulated_cluster, with_control_plane};
use cairn_tests::eventually;
use serde_json::{json, Value};

const WORKFLOW: &str = r#"
timeout: 5m
backup:
  - name: onprem
    hostPath: {path: /var/onprem, nodes: [node-a]}
    failureReason: file-system-backup-failed
  - name: label
    job:
      template:
        spec:
          containers: [{name: label, image: tools, command: [sh, -c, "echo labelled > labelled"]}]
    failureReason: prehook-failed
  - name: kubernetes
    objects: {}
restore:
  - name: stop
    scale: {namespaces: [shop], replicas: 0}
    timeout: 30s
  - name: onprem
    hostPath: {path: /var/onprem, nodeSelector: "kubernetes.io/hostname=node-a"}
    failureReason: file-system-restore-failed
  - name: cleanup
    job:
      template:
        spec:
          containers: [{name: clean, image: tools, command: ["true"]}]
  - name: kubernetes
    objects:
      phases:
        - name: storage
          includeResources: [storageclasses, persistentvolumes, persistentvolumeclaims]
        - name: operators
          includeNamespaces: [ops]
          wait: {timeout: 3s, deploymentsAvailable: [{namespaces: [ops]}]}
          failureReason: "Operator Pods didn't come-up"
        - name: platform
          includeNamespaces: [platform]
          failureReason: platform-pods-not-ready
        - name: apps
          includeNamespaces: [shop]
  - name: start
    scale: {undo: stop}
    always: true
    timeout: 30s
"#;

const FAILING: &str = r#"
backup:
  - name: label
    job:
      template:
        spec:
          containers: [{name: label, image: tools, command: [sh, -c, "echo no labels >&2; exit 4"]}]
    failureReason: prehook-failed
  - name: kubernetes
    objects: {}
"#;

const MISSING_DIR: &str = r#"
backup:
  - name: onprem
    hostPath: {path: /var/nothing, nodes: [node-a]}
    failureReason: file-system-backup-failed
  - name: kubernetes
    objects: {}
"#;

fn workflow_map(name: &str, text: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "velero"},
        "data": {"workflow.yaml": text}})
}

fn deployment(ns: &str, name: &str, replicas: u64, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "app"}]}}}})
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

/// The steps' states as `name=state`.
fn steps(o: &Value) -> Vec<String> {
    let text = o["metadata"]["annotations"]["cairn.io/steps"]
        .as_str()
        .unwrap_or("[]");
    let v: Vec<Value> = serde_json::from_str(text).unwrap();
    v.iter()
        .map(|s| {
            format!(
                "{}={}",
                s["name"].as_str().unwrap(),
                s["state"].as_str().unwrap()
            )
        })
        .collect()
}

fn running_pods(server: &ApiServer, ns: &str, app: &str) -> usize {
    server
        .list("v1", "Pod", Some(ns))
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app && p["status"]["phase"] == "Running")
        .count()
}

/// The white paper's shape: a backup after a labelling Job; a restore that stops the
/// services, runs a clean-up Job, restores in phases with a gate, and starts the services
/// again whatever happened. A Job that fails, and a gate that never passes, end the
/// operation Failed with the step's (or phase's) reason; later steps are not run, the
/// `always` step is.
#[test]
fn workflows_run_their_steps_and_record_the_reason_of_a_failure() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = simulated_cluster(&["node-a"], nodes.path(), store.path());
    server.seed(&[
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}}),
        deployment("shop", "web", 2, json!({})),
        deployment("ops", "operator", 1, json!({NEVER_READY: "true"})),
        workflow_map("platform", WORKFLOW),
        workflow_map("failing", FAILING),
        workflow_map("missing-dir", MISSING_DIR),
    ]);
    // The node's directory the workflow backs up first.
    let onprem = cairn_tests::control_plane::host_root(&server, "node-a").join("var/onprem");
    std::fs::create_dir_all(onprem.join("db")).unwrap();
    std::fs::write(
        onprem.join("db/data.bin"),
        cairn_tests::random_bytes(50_000, 1),
    )
    .unwrap();
    std::fs::write(onprem.join("exports"), "/srv *(rw)\n").unwrap();
    let before = cairn_tests::tree_state(&onprem);
    eventually(60, "web's two pods", || {
        (running_pods(&server, "shop", "web") == 2).then_some(())
    });
    with_control_plane(&server, &["node-a"], |_| {
        // The backup: the Job ran (in its pod's directory on the node), then the objects.
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "velero", "annotations": {"cairn.io/workflow": "platform"}},
            "spec": {"includedNamespaces": ["shop", "ops"]}})]);
        let b = ended(&server, "Backup", "b1");
        assert_eq!(b["status"]["phase"], "Completed", "{b}");
        assert_eq!(
            steps(&b),
            [
                "onprem=succeeded",
                "label=succeeded",
                "kubernetes=succeeded"
            ]
        );
        let host = server
            .list("velero.io/v1", "PodVolumeBackup", Some("velero"))
            .into_iter()
            .find(|p| p["spec"]["pod"]["kind"] == "Node")
            .unwrap();
        assert_eq!(host["status"]["phase"], "Completed", "{host}");
        assert_eq!(host["spec"]["tags"]["host-path"], "/var/onprem");
        let jobs = server.list("batch/v1", "Job", Some("velero"));
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0]["status"]["conditions"][0]["type"], "Complete");
        assert_eq!(jobs[0]["metadata"]["labels"]["cairn.io/step"], "label");

        // A failing Job: Failed with its reason; the objects step not run, nothing stored.
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b2", "namespace": "velero", "annotations": {"cairn.io/workflow": "failing"}},
            "spec": {"includedNamespaces": ["shop"]}})]);
        let b = ended(&server, "Backup", "b2");
        assert_eq!(b["status"]["phase"], "Failed", "{b}");
        assert_eq!(b["status"]["failureReason"], "prehook-failed");
        assert_eq!(steps(&b), ["label=failed", "kubernetes=notRun"]);
        let text = b["metadata"]["annotations"]["cairn.io/steps"]
            .as_str()
            .unwrap();
        assert!(text.contains("BackoffLimitExceeded"), "{text}");
        let repo = cairn_tests::location_repo(store.path())
            .load_index(&repo_core::NoProgress)
            .unwrap();
        assert!(repo_k8s::catalog::backup_snapshot(&repo, "b2").is_err());
        // A directory that is not there fails the first step, with its reason.
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b3", "namespace": "velero", "annotations": {"cairn.io/workflow": "missing-dir"}},
            "spec": {"includedNamespaces": ["shop"]}})]);
        let b = ended(&server, "Backup", "b3");
        assert_eq!(
            b["status"]["failureReason"], "file-system-backup-failed",
            "{b}"
        );
        let text = b["metadata"]["annotations"]["cairn.io/steps"]
            .as_str()
            .unwrap();
        assert!(text.contains("/var/nothing"), "{text}");

        // The node's directory is damaged.
        std::fs::remove_file(onprem.join("db/data.bin")).unwrap();
        std::fs::write(onprem.join("exports"), "changed").unwrap();

        // The restore: the operators' namespace is gone, and its deployment never becomes
        // available: the gate fails with the phase's reason; apps are not restored; the
        // services are started again.
        server.delete("v1", "Namespace", None, "ops");
        server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "velero", "annotations": {"cairn.io/workflow": "platform"}},
            "spec": {"backupName": "b1"}})]);
        let r = ended(&server, "Restore", "r1");
        assert_eq!(r["status"]["phase"], "Failed", "{r}");
        assert_eq!(r["status"]["failureReason"], "Operator Pods didn't come-up");
        // The four phases: storage passed, operators' gate failed, the others not run.
        let report: Value = serde_json::from_str(
            r["metadata"]["annotations"]["cairn.io/phase-report"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let gates: Vec<String> = report
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}={}",
                    p["name"].as_str().unwrap(),
                    p["gate"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(gates.len(), 4, "{gates:?}");
        assert!(gates[1].starts_with("operators=failed"), "{gates:?}");
        assert_eq!(
            gates[2..],
            ["platform=not run", "apps=not run"],
            "{gates:?}"
        );
        assert_eq!(
            steps(&r),
            [
                "stop=succeeded",
                "onprem=succeeded",
                "cleanup=succeeded",
                "kubernetes=failed",
                "start=succeeded"
            ]
        );
        let web = server
            .get("apps/v1", "Deployment", Some("shop"), "web")
            .unwrap();
        assert_eq!(web["spec"]["replicas"], 2, "put back: {web}");
        assert_eq!(
            web["metadata"]["annotations"]["cairn.io/replicas-before"],
            "2"
        );
        eventually(60, "web's two pods again", || {
            (running_pods(&server, "shop", "web") == 2).then_some(())
        });
        assert!(server
            .get("apps/v1", "Deployment", Some("ops"), "operator")
            .is_some());
        assert_eq!(
            cairn_tests::tree_state(&onprem),
            before,
            "the host directory is back"
        );
    });
}

/// A workflow that cannot be used is the operation's validation error, naming it.
#[test]
fn a_bad_workflow_fails_validation_naming_the_problem() {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = simulated_cluster(&["node-a"], nodes.path(), store.path());
    server.seed(&[workflow_map("broken", "backup: [{name: a}]")]);
    with_control_plane(&server, &["node-a"], |_| {
        for (name, workflow) in [("b1", "broken"), ("b2", "missing")] {
            server.seed(&[json!({"apiVersion": "velero.io/v1", "kind": "Backup",
                "metadata": {"name": name, "namespace": "velero", "annotations": {"cairn.io/workflow": workflow}},
                "spec": {}})]);
        }
        let b = ended(&server, "Backup", "b1");
        assert_eq!(b["status"]["phase"], "FailedValidation");
        let why = b["status"]["validationErrors"].to_string();
        assert!(
            why.contains(r#"backup step \"a\": says nothing to do"#),
            "{why}"
        );
        let b = ended(&server, "Backup", "b2");
        let why = b["status"]["validationErrors"].to_string();
        assert!(
            why.contains(r#"names ConfigMap \"missing\", which does not exist"#),
            "{why}"
        );
    });
}
