//! The repository options both binaries take: where the repository is, how to unlock it,
//! how to reach S3, and the local cache.

use std::path::PathBuf;

use clap::Args;
use repo_core::storage::{self, DynStorage, StorageOptions};
use repo_core::{Error, OpenOptions};

use crate::SecretSource;

/// Where the repository is and how to open it. Shown under its own heading in `--help`,
/// apart from each command's own options.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Repository options")]
pub struct RepoArgs {
    /// Repository: a path, file:///path, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX,
    /// az://CONTAINER/PREFIX or memory://NAME.
    #[arg(long, env = "CAIRN_REPO", global = true)]
    pub repo: Option<String>,
    /// File holding the password (else --password-command, CAIRN_PASSWORD, or a prompt).
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Command that prints the password, run with `sh -c` (e.g. `pass show cairn`).
    #[arg(long, env = "CAIRN_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Local cache directory (default: CAIRN_CACHE_DIR or the user cache directory).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Do not use the local cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// S3 endpoint URL (else AWS_ENDPOINT_URL / AWS_ENDPOINT).
    #[arg(long, global = true)]
    pub s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION).
    #[arg(long, global = true)]
    pub s3_region: Option<String>,
    /// Allow a plain http:// S3 endpoint (else AWS_ALLOW_HTTP=true).
    #[arg(long, global = true)]
    pub s3_allow_http: bool,
    /// Virtual-hosted-style S3 requests (default: path style, which S3-compatibles want).
    #[arg(long, global = true)]
    pub s3_virtual_hosted: bool,
    /// Also try key files whose argon2 parameters cost more than 1 GiB or 10 passes (made
    /// with such settings by an earlier cairn; each try can take minutes and gigabytes).
    #[arg(long, env = "CAIRN_ALLOW_COSTLY_KDF", global = true)]
    pub allow_costly_kdf: bool,
}

impl RepoArgs {
    /// The storage `--repo` names. Opening it creates nothing.
    pub fn storage(&self) -> Result<DynStorage, Error> {
        let url = self.repo.as_deref().ok_or_else(|| {
            Error::invalid("repository", "none given: pass --repo or set CAIRN_REPO")
        })?;
        let opts = StorageOptions {
            s3_endpoint: self.s3_endpoint.clone(),
            s3_region: self.s3_region.clone(),
            s3_allow_http: self.s3_allow_http.then_some(true),
            s3_virtual_hosted: self.s3_virtual_hosted.then_some(true),
            ..Default::default()
        };
        storage::open_url(url, &opts)
    }

    /// The repository's password: from `--password-file`, `--password-command`,
    /// `CAIRN_PASSWORD`, or a prompt on the terminal.
    pub fn password(&self) -> Result<Vec<u8>, String> {
        SecretSource {
            what: "password",
            env: "CAIRN_PASSWORD",
            file: self.password_file.as_deref(),
            file_flag: "--password-file (CAIRN_PASSWORD_FILE)",
            command: self.password_command.as_deref(),
            command_flag: "--password-command (CAIRN_PASSWORD_COMMAND)",
            confirm: false,
        }
        .read()
    }

    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            cache_dir: self.cache_dir.clone(),
            no_cache: self.no_cache,
            allow_costly_kdf: self.allow_costly_kdf,
            ..Default::default()
        }
    }
}
