//! `cairn-server`: will take backup and restore requests over HTTP (later issues). For now
//! it opens the repository and reports whether it is reachable, so deployments can be wired.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "cairn-server",
    version,
    about = "cairn's backup and restore server (grows in later issues)"
)]
struct Cli {
    /// Repository URL.
    #[arg(long, env = "CAIRN_REPO")]
    repo: String,
    /// Password (else CAIRN_PASSWORD).
    #[arg(long, env = "CAIRN_PASSWORD", hide_env_values = true)]
    password: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = repo_core::storage::open_url(&cli.repo, &Default::default())
        .and_then(|s| repo_core::Repository::open(s, cli.password.as_bytes(), Default::default()));
    match result {
        Ok(repo) => {
            println!(
                "repository {} at {} is reachable",
                repo.config().id,
                repo.location()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairn-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
