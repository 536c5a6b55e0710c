//! The control plane in this process, against the tests' API server: `cairn-server`'s serve
//! loop and a node-agent data mover for each simulated node.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::apiserver::ApiServer;

/// Runs `f` while the server's serve loop (its controller given to `f`) and a node-agent for
/// each of `nodes` run (Velero's namespace `velero`; repositories opened without a cache).
pub fn with_control_plane<T>(
    server: &ApiServer,
    nodes: &[&str],
    f: impl FnOnce(&cairn_server::backups::Controller) -> T,
) -> T {
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(work.path());
    let connect = || repo_k8s::cluster::Cluster::connect(Some(&kubeconfig), None).unwrap();
    let cluster = connect();
    let agent_clusters: Vec<_> = nodes.iter().map(|_| connect()).collect();
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let no_cache = || repo_core::OpenOptions {
        no_cache: true,
        ..Default::default()
    };
    let controller = cairn_server::backups::Controller::new(&cluster, "velero", no_cache(), &now);
    let movers: Vec<_> = nodes
        .iter()
        .zip(&agent_clusters)
        .map(|(node, cluster)| node_agent::data_mover::DataMover {
            cluster,
            namespace: "velero".into(),
            node: node.to_string(),
            pods_dir: server.pods_dir(node).expect("a simulated node"),
            open_options: no_cache(),
            unlocked: Default::default(),
            load_concurrency: 1,
            timeout: Duration::from_secs(600),
            now: &now,
            host_root: Some(host_root(server, node)),
            mover_image: "cairn/node-agent:test".into(),
        })
        .collect();
    let (stop, leading) = (AtomicBool::new(false), AtomicBool::new(true));
    let options = cairn_server::serve::Options::default();
    std::thread::scope(|s| {
        let _stop = crate::StopOnDrop(&stop);
        s.spawn(|| cairn_server::serve::run(&controller, &stop, &leading, &options, &|_| {}));
        for m in &movers {
            s.spawn(|| m.run(&stop));
        }
        f(&controller)
    })
}

/// Where a simulated node's root directory is (its node-agent's `--host-root`):
/// `<nodes_dir>/<node>/root`.
pub fn host_root(server: &ApiServer, node: &str) -> std::path::PathBuf {
    let pods = server.pods_dir(node).expect("a simulated node");
    pods.parent()
        .expect("below the node's directory")
        .join("root")
}

/// A cluster with `nodes` simulated below `nodes_dir` and what the control plane needs:
/// namespaces `velero` and `shop`, the Velero CRDs, the default location on the directory
/// `store` and its repository's password.
pub fn simulated_cluster(
    nodes: &[&str],
    nodes_dir: &std::path::Path,
    store: &std::path::Path,
) -> ApiServer {
    use serde_json::json;
    let server = ApiServer::start(crate::apiserver::Options {
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        nodes_dir: Some(nodes_dir.to_path_buf()),
        ..Default::default()
    });
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    ];
    objects.extend(repo_k8s::velero::crd::all().into_iter().map(|(_, c)| c));
    objects.extend(location(store));
    server.seed(&objects);
    server
}

/// The default BackupStorageLocation on the directory `store`, and its repository's
/// password Secret, in namespace `velero`.
pub fn location(store: &std::path::Path) -> [serde_json::Value; 2] {
    use serde_json::json;
    [
        json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": "velero"},
            "spec": {"provider": "filesystem", "default": true, "objectStorage": {"bucket": "backups"},
                "config": {"path": store.to_str().unwrap()}}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "velero-repo-credentials", "namespace": "velero"},
            "data": {"repository-password": "Y29ycmVjdCBob3JzZQ=="}}),
    ]
}
