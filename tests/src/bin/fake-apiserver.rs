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
}

fn main() {
    let cli = Cli::parse();
    let server = ApiServer::start(Options {
        listen: Some(cli.listen),
        ready_after: cli.ready_after,
        ..Default::default()
    });
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
