//! `node-agent`: cairn's data mover and command-line interface.
//!
//! Parses arguments, calls repo-core and repo-fs, prints. Exit codes: 0 success, 1 failure,
//! 2 usage, 3 wrong password, 4 `check` found problems, 5 no repository at the location,
//! 6 corrupt data, 7 repository written by a newer cairn, 8 backup done with warnings (the
//! snapshot was written; some entries could not be read), 9 restore incomplete (some
//! entries failed), 10 another maintenance run holds the lease, 130 cancelled by
//! SIGINT/SIGTERM.

mod files;
mod inspect;
mod maintenance;
mod report;
mod retention;

use cairn_cli::{human, outln, Terminal};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use repo_core::storage;
use repo_core::{
    CheckOptions, ChunkerParams, Error, IndexedRepository, InitOptions, KdfParams, NoProgress,
    ObjectId, OpenOptions, Repository, SnapshotFilter,
};

#[derive(Parser)]
#[command(
    name = "node-agent",
    version,
    about = "cairn: encrypted, deduplicated backups"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
pub struct Global {
    #[command(flatten)]
    repo: cairn_cli::RepoArgs,
    /// Machine-readable output (and errors as JSON on standard error).
    #[arg(long, global = true, help_heading = "Output options")]
    json: bool,
    /// Print only what was asked for (ids, listings) and errors: no progress, no summaries.
    #[arg(
        long,
        short = 'q',
        global = true,
        help_heading = "Output options",
        conflicts_with = "verbose"
    )]
    quiet: bool,
    /// Print more: each entry a restore handles, and the backup's dedup figures.
    #[arg(long, short = 'v', global = true, help_heading = "Output options")]
    verbose: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The namespace of Velero's objects (its PodVolumeBackups, locations and Secrets).
    #[arg(long, default_value = "velero")]
    namespace: String,
    /// This node's name: the PodVolumeBackups whose spec.node it is are this agent's.
    #[arg(long, env = "NODE_NAME")]
    node: String,
    /// The kubelet's pods directory as mounted in this container.
    #[arg(long, default_value = "/host_pods")]
    pods_dir: PathBuf,
    /// The node's root directory as mounted in this container, for workflows' host
    /// directories (hostPath steps; default: none served).
    #[arg(long)]
    host_root: Option<PathBuf>,
    /// Volumes moved at once on this node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    load_concurrency: u16,
    /// The longest one volume may take (Velero's --fs-backup-timeout).
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// The image of the data-mover pods that hold a CSI snapshot's temporary claim while
    /// its data moves (it must hold /node-agent; default: cairn's image).
    #[arg(long, default_value = cairn_server::backups::DEFAULT_IMAGE)]
    mover_image: String,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long)]
    context: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository.
    Init(InitArgs),
    /// Manage passwords.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Back up directories and files (or standard input with --stdin); prints the snapshot id.
    Backup(BackupArgs),
    /// Restore a snapshot (or SNAPSHOT:SUBPATH) into a directory.
    Restore(files::RestoreArgs),
    /// List snapshots.
    Snapshots(FilterArgs),
    /// Remove snapshots by id or by a keep policy (data is freed later by maintenance).
    Forget(retention::ForgetArgs),
    /// List the entries of a snapshot (SNAPSHOT or SNAPSHOT:PATH).
    Ls {
        /// SNAPSHOT or SNAPSHOT:PATH (id, prefix or `latest`).
        spec: String,
        /// Everything below, not just one level.
        #[arg(long, short = 'r')]
        recursive: bool,
    },
    /// Show what changed between two snapshots.
    Diff {
        /// The older snapshot (id, prefix or `latest`).
        a: String,
        /// The newer snapshot.
        b: String,
    },
    /// Write a file of a snapshot to standard output, or a directory as a tar stream
    /// (`node-agent dump latest etc | tar -x`).
    Dump {
        /// Snapshot id, unique id prefix, or `latest`.
        snapshot: String,
        /// Path in the snapshot: a file (the stream name for `backup --stdin`) or a
        /// directory; `/` for the whole snapshot.
        name: String,
    },
    /// Sizes of snapshots: what a restore writes, the distinct data behind it, what it
    /// takes stored, and the savings of deduplication and compression.
    Stats(inspect::StatsArgs),
    /// Find files by name or path across snapshots.
    Find(inspect::FindArgs),
    /// Add, remove or set tags of snapshots.
    Tag(inspect::TagArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell), e.g.
    /// `node-agent completion bash > /etc/bash_completion.d/node-agent`.
    Completion {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Garbage collection and upkeep (run it as a job; one runs at a time).
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Rebuild the index from packs, or find snapshots whose data is gone.
    #[command(subcommand)]
    Repair(maintenance::RepairCommand),
    /// Run on a node of a cluster (the DaemonSet): back up the pod volumes of this node's
    /// PodVolumeBackups into their locations' repositories.
    Serve(ServeArgs),
    /// Run in a restored pod's `restore-wait` init container: wait until the data of every
    /// volume under /restores is back (its done file), then remove this restore's markers.
    /// Exits 1 with the reason when a volume's restore failed or the timeout passed.
    RestoreWait {
        /// The Restore's UID (the name of the done files).
        restore_uid: String,
        /// Where the volumes are mounted.
        #[arg(long, default_value = "/restores")]
        restores_dir: PathBuf,
        /// The longest to wait.
        #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Run in a data-mover pod: hold its volume mounted (the node-agent of the pod's node
    /// moves the data) until the pod is deleted.
    Pause,
    /// Verify the repository.
    Check {
        /// Also download and verify every pack.
        #[arg(long)]
        read_data: bool,
        /// Download and verify a deterministic share of the packs: `10%`, or slice `n/t`
        /// (`1/5` … `5/5` over five runs read every pack once).
        #[arg(long, value_parser = parse_subset)]
        read_data_subset: Option<repo_core::check::DataSubset>,
    },
}

#[derive(Args)]
struct InitArgs {
    /// Average chunk size in KiB (min = avg/4, max = avg*4).
    #[arg(long, default_value_t = 1024)]
    chunk_avg_kib: u32,
    /// zstd level for data (0 = store raw).
    #[arg(long, default_value_t = repo_core::config::DEFAULT_COMPRESSION_LEVEL)]
    compression_level: i32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16)]
    pack_size_mib: u32,
    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(Args, Clone)]
struct KdfArgs {
    /// argon2id memory in KiB for the new password.
    #[arg(long, default_value_t = KdfParams::default().memory_kib)]
    argon2_memory_kib: u32,
    /// argon2id iterations for the new password.
    #[arg(long, default_value_t = KdfParams::default().iterations)]
    argon2_iterations: u32,
    /// argon2id lanes for the new password.
    #[arg(long, default_value_t = KdfParams::default().parallelism)]
    argon2_parallelism: u32,
}

impl KdfArgs {
    fn params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Add a password (from --new-password-file, --new-password-command,
    /// CAIRN_NEW_PASSWORD or a prompt).
    Add(NewPasswordArgs),
    /// List key files.
    List,
    /// Remove a key file by id (or unique prefix).
    Remove {
        /// The key's id or a unique prefix (`key list` shows them).
        id: String,
    },
    /// Change the password used to open the repository.
    Passwd(NewPasswordArgs),
}

#[derive(Args)]
struct NewPasswordArgs {
    /// File holding the new password (else --new-password-command, CAIRN_NEW_PASSWORD,
    /// or a prompt).
    #[arg(long, env = "CAIRN_NEW_PASSWORD_FILE")]
    new_password_file: Option<PathBuf>,
    /// Command that prints the new password, run with `sh -c`.
    #[arg(long, env = "CAIRN_NEW_PASSWORD_COMMAND")]
    new_password_command: Option<String>,
    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(Args)]
struct BackupArgs {
    /// Directories and files to back up (one directory: its contents become the snapshot).
    #[arg(
        required_unless_present_any = ["stdin", "files_from"],
        conflicts_with = "stdin"
    )]
    paths: Vec<PathBuf>,
    /// Read the data from standard input instead (the options that choose and read files
    /// do not apply to a stream).
    #[arg(long, conflicts_with_all = [
        "dry_run", "files_from", "exclude", "exclude_file", "exclude_if_present",
        "exclude_larger_than", "exclude_caches", "one_file_system", "parent", "parent_tags",
        "force", "fail_fast",
    ])]
    stdin: bool,
    /// Name of the stream in the snapshot.
    #[arg(long, default_value = "stdin", requires = "stdin")]
    stdin_name: String,
    #[command(flatten)]
    tree: files::TreeBackupArgs,
    /// Tag: `key=value`, or a plain tag like `weekly` (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Time recorded in the snapshot instead of now: RFC 3339 (`2026-01-31T22:00:00Z`) or
    /// `YYYY-MM-DD HH:MM:SS` in local time.
    #[arg(long, value_parser = parse_time)]
    time: Option<String>,
    /// Source recorded in the snapshot (default: the absolute paths, or the stream name).
    #[arg(long)]
    source: Option<String>,
    /// Host recorded in the snapshot (default: this host).
    #[arg(long)]
    host: Option<String>,
    /// Time to live (e.g. 720h, 30d): `forget` removes the snapshot once it has passed,
    /// whatever the keep rules say (Velero's backup TTL).
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<std::time::Duration>,
}

#[derive(Args)]
pub struct FilterArgs {
    /// Only snapshots with this tag (repeatable; all must match).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only snapshots of this source (the paths a backup was given, as recorded).
    #[arg(long)]
    source: Option<String>,
    /// Only snapshots made on this host.
    #[arg(long)]
    host: Option<String>,
}

impl FilterArgs {
    /// Whether no filter was given (every snapshot matches).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.source.is_none() && self.host.is_none()
    }

    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            source: self.source.clone(),
            host: self.host.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// Backup finished and committed, but some entries could not be read.
pub const EXIT_WARNINGS: u8 = 8;
/// Restore finished, but some entries failed.
pub const EXIT_INCOMPLETE: u8 = 9;
/// Stopped by SIGINT or SIGTERM.
pub const EXIT_CANCELLED: u8 = 130;

/// A failure with its exit code.
pub struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::WrongPassword { .. } => 3,
            Error::NoRepository { .. } => 5,
            Error::Corrupt { .. } => 6,
            Error::NewerFormat { .. } => 7,
            Error::MaintenanceBusy { .. } => maintenance::EXIT_BUSY,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// `node-agent serve`: moves this node's volumes until killed.
fn serve(g: &Global, a: &ServeArgs) -> CliResult {
    let cluster =
        repo_k8s::cluster::Cluster::connect(a.kubeconfig.as_deref(), a.context.as_deref())
            .map_err(|e| fail(1, e.to_string()))?;
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let mover = node_agent::data_mover::DataMover {
        cluster: &cluster,
        namespace: a.namespace.clone(),
        node: a.node.clone(),
        pods_dir: a.pods_dir.clone(),
        open_options: g.open_options(),
        unlocked: Default::default(),
        load_concurrency: a.load_concurrency.into(),
        timeout: a.timeout,
        now: &now,
        host_root: a.host_root.clone(),
        mover_image: a.mover_image.clone(),
    };
    eprintln!(
        "node-agent: moving the pod volumes and snapshots of node {} (PodVolumeBackups, PodVolumeRestores, DataUploads and DataDownloads in namespace {}), {} at once",
        a.node, a.namespace, a.load_concurrency
    );
    mover.run(&std::sync::atomic::AtomicBool::new(false));
    Ok(())
}

pub fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

pub type CliResult<T = ()> = Result<T, Failure>;

impl Global {
    /// How progress is shown: as `--json` and `--quiet` say, else a bar on a terminal.
    pub fn progress_mode(&self) -> report::Mode {
        if self.quiet && !self.json {
            report::Mode::Quiet
        } else {
            report::Mode::choose(self.json)
        }
    }

    fn storage(&self) -> CliResult<storage::DynStorage> {
        Ok(self.repo.storage()?)
    }

    fn password(&self) -> CliResult<Vec<u8>> {
        self.repo.password().map_err(|e| fail(1, e))
    }

    fn open_options(&self) -> OpenOptions {
        self.repo.open_options()
    }

    fn open(&self) -> CliResult<Repository> {
        Ok(Repository::open(
            self.storage()?,
            &self.password()?,
            self.open_options(),
        )?)
    }

    pub fn open_indexed(&self) -> CliResult<IndexedRepository> {
        let repo = self.open()?.load_index(&NoProgress)?;
        release_loading_buffers();
        Ok(repo)
    }
}

/// Hands memory freed after loading the index (decoded index files) back to the OS. glibc
/// otherwise keeps it cached: measured 53 resident bytes per indexed blob instead of the 46 the
/// index holds (`cargo run --release -p cairn-benches --bin index-memory`). One call per
/// process, nothing on the hot path.
fn release_loading_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only returns free heap pages to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes glibc serve every allocation of 1 MiB or more (read buffers, sealed chunks, pack
/// buffers) with its own mapping, returned to the OS when freed. glibc otherwise raises the
/// threshold after the first such free and keeps freed buffers in its arenas: a backup of
/// the Linux source peaked at 187 MB resident with 70 MB live, and at 70 MB with this
/// (`MALLOC_MMAP_THRESHOLD_=1048576`, same CPU time).
fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    configure_allocator();
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            cairn_cli::report_failure("node-agent", &f.message, f.code, json);
            ExitCode::from(f.code)
        }
    }
}

fn parse_subset(s: &str) -> Result<repo_core::check::DataSubset, String> {
    repo_core::check::DataSubset::parse(s).map_err(|e| e.to_string())
}

/// `--time`: RFC 3339 as given, or `YYYY-MM-DD HH:MM:SS` in local time, as RFC 3339.
fn parse_time(s: &str) -> Result<String, String> {
    let instant = if s.contains('T') {
        repo_core::time::parse_rfc3339(s)
    } else {
        cairn_cli::human::parse_local_time(s)
    };
    instant.map(repo_core::time::format_rfc3339).ok_or_else(|| {
        format!("{s:?}: give RFC 3339 (2026-01-31T22:00:00Z) or YYYY-MM-DD HH:MM:SS")
    })
}

/// The RFC 3339 time a TTL from now ends.
fn expiry(ttl: std::time::Duration) -> String {
    repo_core::time::format_rfc3339(std::time::SystemTime::now() + ttl)
}

pub fn print_json(v: &serde_json::Value) {
    outln!("{}", serde_json::to_string(v).expect("JSON serializes"));
}

fn run(cli: Cli) -> CliResult {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => {
            let avg = a.chunk_avg_kib.saturating_mul(1024);
            let init = InitOptions {
                chunker: ChunkerParams {
                    min_size: avg / 4,
                    avg_size: avg,
                    max_size: avg.saturating_mul(4),
                },
                compression_level: a.compression_level,
                pack_size: a.pack_size_mib.saturating_mul(1024 * 1024),
                kdf: a.kdf.params(),
            };
            let repo = Repository::init(g.storage()?, &g.password()?, init, g.open_options())?;
            if g.json {
                print_json(
                    &serde_json::json!({"repository": repo.location(), "id": repo.config().id}),
                );
            } else {
                outln!(
                    "created repository {} at {}",
                    repo.config().id,
                    repo.location()
                );
            }
        }
        Command::Key(k) => key_command(g, k)?,
        Command::Backup(a) => files::backup(
            g,
            &a.paths,
            files::Common {
                tags: &a.tags,
                source: a.source.clone(),
                host: a.host.clone(),
                expires: a.ttl.map(expiry),
                time: a.time.clone(),
                stdin_name: a.stdin.then_some(a.stdin_name.as_str()),
            },
            &a.tree,
        )?,
        Command::Restore(a) => files::restore(g, a)?,
        Command::Forget(a) => retention::forget(g, a)?,
        Command::Maintenance(c) => maintenance::maintenance(g, c)?,
        Command::Repair(c) => maintenance::repair(g, c)?,
        Command::Serve(a) => serve(g, a)?,
        Command::RestoreWait {
            restore_uid,
            restores_dir,
            timeout,
        } => {
            let every = std::time::Duration::from_secs(1);
            match node_agent::restore_wait::wait(restores_dir, restore_uid, *timeout, every) {
                Ok(volumes) => {
                    eprintln!("restore-wait: the data of {} is back", volumes.join(", "))
                }
                Err(e) => return Err(fail(1, format!("restore-wait: {e}"))),
            }
        }
        Command::Pause => loop {
            std::thread::park();
        },
        Command::Ls { spec, recursive } => files::ls(g, spec, *recursive)?,
        Command::Diff { a, b } => files::diff(g, a, b)?,
        Command::Snapshots(f) => {
            let repo = g.open()?;
            let (list, unreadable) = repo.list_snapshots_lenient(&f.filter())?;
            if g.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(id, s)| {
                        let mut o = serde_json::to_value(s).expect("serializes");
                        o["id"] = serde_json::Value::String(id.to_string());
                        o
                    })
                    .collect();
                print_json(&serde_json::Value::Array(v));
            } else {
                outln!(
                    "{:<10} {:<19}  {:<16} {:<24} {:>10}  tags",
                    "id",
                    "time",
                    "host",
                    "source",
                    "size"
                );
                for (id, s) in &list {
                    outln!(
                        "{:<10} {:<19}  {:<16} {:<24} {:>10}  {}",
                        id.short(),
                        human::local_time(&s.time),
                        Terminal::safe(&s.host),
                        Terminal::safe(&s.source),
                        human::bytes(s.summary.bytes),
                        Terminal::safe(&s.tags.join(","))
                    );
                }
                outln!("{} snapshot(s)", list.len());
            }
            for (id, e) in &unreadable {
                eprintln!("node-agent: snapshot {id} is unreadable and not listed: {e}");
            }
        }
        Command::Dump { snapshot, name } => inspect::dump(g, snapshot, name)?,
        Command::Stats(a) => inspect::stats(g, a)?,
        Command::Find(a) => inspect::find(g, a)?,
        Command::Tag(a) => inspect::tag(g, a)?,
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = cairn_cli::Stdout::new();
            clap_complete::generate(*shell, &mut cmd, "node-agent", &mut out);
            let _ = out.flush();
        }
        Command::Check {
            read_data,
            read_data_subset,
        } => {
            let read_data = &(*read_data || read_data_subset.is_some());
            let repo = g.open_indexed()?;
            let report = repo.check(
                &CheckOptions {
                    read_data: *read_data,
                    subset: read_data_subset.unwrap_or_default(),
                },
                &NoProgress,
            )?;
            if g.json {
                print_json(&serde_json::to_value(&report).expect("serializes"));
            } else {
                for p in &report.problems {
                    outln!("problem: {p}");
                }
                for n in &report.notes {
                    outln!("note: {n}");
                }
                outln!(
                    "checked {} snapshot(s), {} index file(s), {} pack(s), {} blob(s){}: {}",
                    report.snapshots,
                    report.index_files,
                    report.packs,
                    report.blobs,
                    if *read_data {
                        format!(", read {} pack(s)", report.packs_read)
                    } else {
                        String::new()
                    },
                    if report.is_clean() {
                        "no problems".to_string()
                    } else {
                        format!("{} problem(s)", report.problems.len())
                    }
                );
            }
            if !report.is_clean() {
                return Err(fail(4, ""));
            }
        }
    }
    Ok(())
}

fn key_command(g: &Global, k: &KeyCommand) -> CliResult {
    let new_password = |a: &NewPasswordArgs| {
        cairn_cli::SecretSource {
            what: "new password",
            env: "CAIRN_NEW_PASSWORD",
            file: a.new_password_file.as_deref(),
            file_flag: "--new-password-file (CAIRN_NEW_PASSWORD_FILE)",
            command: a.new_password_command.as_deref(),
            command_flag: "--new-password-command (CAIRN_NEW_PASSWORD_COMMAND)",
            confirm: true,
        }
        .read()
        .map_err(|e| fail(1, e))
    };
    match k {
        KeyCommand::Add(a) => {
            let repo = g.open()?;
            let id = repo.add_key(&new_password(a)?, a.kdf.params())?;
            outln!("added key {id}");
        }
        KeyCommand::List => {
            let repo = g.open()?;
            let keys = repo.list_keys()?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|(id, k)| serde_json::json!({"id": id.to_string(), "created": k.created, "host": k.host, "username": k.username, "current": *id == repo.current_key()}))
                    .collect();
                print_json(&serde_json::Value::Array(v));
            } else {
                for (id, k) in &keys {
                    let cur = if *id == repo.current_key() { "*" } else { " " };
                    outln!(
                        "{cur} {:<10} {:<30} {}@{}",
                        id.short(),
                        k.created,
                        k.username,
                        k.host
                    );
                }
            }
        }
        KeyCommand::Remove { id } => {
            let repo = g.open()?;
            let keys = repo.list_keys()?;
            let matching: Vec<ObjectId> = keys
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| k.to_hex().starts_with(&id.to_ascii_lowercase()))
                .collect();
            let target = match matching.as_slice() {
                [one] => *one,
                [] => {
                    return Err(fail(
                        1,
                        format!("no key matches {id:?}; see `node-agent key list`"),
                    ))
                }
                _ => {
                    return Err(fail(
                        1,
                        format!(
                            "{id:?} matches {} keys; give more characters",
                            matching.len()
                        ),
                    ))
                }
            };
            repo.remove_key(&target)?;
            outln!("removed key {target}");
        }
        KeyCommand::Passwd(a) => {
            let mut repo = g.open()?;
            let id = repo.change_password(&new_password(a)?, a.kdf.params())?;
            outln!("password changed; new key {id}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_and_flag_has_help() {
        let cmd = <super::Cli as clap::CommandFactory>::command();
        assert_eq!(cairn_cli::undocumented(cmd), Vec::<String>::new());
    }
}
