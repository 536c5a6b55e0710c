//! `fake-apiserver`: the tests' Kubernetes API server as a process, for demos and for
//! running the control plane on one machine. It keeps resourceVersions, watches and
//! conflicts honestly and serves built-in resources and any CRD created in it; it is not a
//! real cluster (see tests/src/apiserver.rs for what it does and does not do).

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_tests::apiserver::{ApiServer, Options};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "fake-apiserver",
    version,
    about = "A simulated Kubernetes API server for tests and demos (not a real cluster)"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Write a kubeconfig for it here (kubectl and kube-rs accept it).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// How long after creation Deployments become Available and Pods Ready.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    ready_after: std::time::Duration,
    /// Simulated nodes, comma-separated (`node-a,node-b`): a scheduler, a provisioner, a
    /// DaemonSet controller and a kubelet each (see cairn_tests::apiserver::nodes).
    #[arg(long, value_delimiter = ',', requires = "nodes_dir")]
    nodes: Vec<String>,
    /// Where the simulated kubelets keep pods: `<DIR>/<node>/pods` (required with --nodes).
    #[arg(long, requires = "nodes")]
    nodes_dir: Option<PathBuf>,
    /// Objects to start with: every `.json` file below this directory (an object, or a
    /// `kind: List` as `kubectl get -o json` writes), CRDs and Namespaces first.
    #[arg(long)]
    seed: Option<PathBuf>,
}

/// The objects of the `.json` files below `dir`, CRDs first, then Namespaces, then the rest.
fn seed_objects(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut objects = Vec::new();
    for f in files {
        let text = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let v: serde_json::Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", f.display()));
        match v["items"].as_array() {
            Some(items) if v["kind"] == "List" => objects.extend(items.iter().cloned()),
            _ => objects.push(v),
        }
    }
    let rank = |o: &serde_json::Value| match o["kind"].as_str() {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    };
    objects.sort_by_key(rank);
    objects
}

fn main() {
    let cli = Cli::parse();
    let server = ApiServer::start(Options {
        listen: Some(cli.listen),
        ready_after: cli.ready_after,
        nodes: cli.nodes.clone(),
        nodes_dir: cli.nodes_dir.clone(),
        ..Default::default()
    });
    // Simulated nodes come with the CSI snapshotter's CRDs (their stand-in serves them).
    if !cli.nodes.is_empty() {
        server.seed(&cairn_tests::apiserver::snapshots::crds());
    }
    if let Some(dir) = &cli.seed {
        let objects = seed_objects(dir);
        server.seed(&objects);
        println!(
            "fake-apiserver: seeded {} objects from {}",
            objects.len(),
            dir.display()
        );
    }
    server.write_kubeconfig(&cli.kubeconfig);
    println!(
        "fake-apiserver: serving on {} (kubeconfig {}); stop it with Ctrl-C",
        server.url(),
        cli.kubeconfig.display()
    );
    // Serves until the process is killed.
    loop {
        std::thread::park();
    }
}
