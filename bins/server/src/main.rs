//! `cairn-server`: backs up Kubernetes objects into a cairn repository and restores them,
//! with Velero's flags and semantics, from and to a directory of manifests or a cluster,
//! and converts Velero tarballs both ways; `serve` runs the control plane (the library
//! `cairn_server`), which serves Velero's objects in the cluster.
//!
//! Exit codes: 0 success, 1 failure (a restore that is Velero's Failed), 2 usage, 3 wrong
//! password, 5 no repository, 8 written with errors in its results (Velero's
//! PartiallyFailed).

use cairn_cli::{human, outln, Terminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use repo_core::{Error, NoProgress, Repository};
use repo_k8s::backup::{self, BackupOptions};
use repo_k8s::catalog;
use repo_k8s::cluster::Cluster;
use repo_k8s::execute::RestoreResult;
use repo_k8s::filter::BackupFilter;
use repo_k8s::phases::{ExistingResourcePolicy, ResolvedPhase};
use repo_k8s::selector::LabelSelector;
use repo_k8s::velero::{Outcome, RestorePhase, VeleroResult};

#[derive(Parser)]
#[command(
    name = "cairn-server",
    version,
    about = "cairn: Kubernetes backups with Velero's semantics"
)]
struct Cli {
    #[command(flatten)]
    repo: cairn_cli::RepoArgs,
    /// Machine-readable output.
    #[arg(long, global = true, help_heading = "Output options")]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back up Kubernetes objects (from a directory of manifests or a cluster) as backup NAME.
    Backup(Box<BackupArgs>),
    /// Restore backup NAME: plan (Velero's order and clean-up), then create the objects in a
    /// cluster (`--to-cluster`, optionally in `--phases`), write them as numbered files ready
    /// for `kubectl apply` (`--to-dir`), or print the plan (`--dry-run`).
    Restore(Box<RestoreArgs>),
    /// List backups.
    Backups,
    /// Write backup NAME as a Velero-compatible .tar.gz (legacy paths and the
    /// `<version>-preferredversion` copies, format 1.1.0).
    ExportVelero {
        /// The backup to export.
        name: String,
        /// The .tar.gz file to write (written as OUT.partial, then renamed).
        out: PathBuf,
    },
    /// Import a Velero backup tarball (.tar.gz or .tar) as backup NAME (default: the file
    /// name without .tar.gz).
    ImportVelero {
        /// The Velero backup tarball to read.
        input: PathBuf,
        /// The name of the backup it becomes (must not be in use).
        name: Option<String>,
    },
    /// Open the repository and say whether it is reachable.
    Ping,
    /// Run in the cluster: serve the Backup and Restore objects of --namespace (Velero's
    /// velero.io/v1), running each waiting one with its BackupStorageLocation's repository.
    Serve(ServeArgs),
    /// Write the CustomResourceDefinitions of Velero's kinds, generated from cairn's types,
    /// into DIR (`deploy/crds` is made this way).
    Crds {
        /// The directory to write `velero.io_<plural>.yaml` files into (made if missing).
        dir: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// The namespace whose Velero objects the server serves (its locations and Secrets
    /// too).
    #[arg(long, default_value = "velero")]
    namespace: String,
    /// This replica's name in the leader election (default: POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long the leader's Lease lasts without renewal; another replica takes over after.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: std::time::Duration,
    /// How often expired backups are looked for (each gets a DeleteBackupRequest).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    garbage_collection_frequency: std::time::Duration,
    /// Backups run at once. A waiting backup starts only when it shares no namespace with
    /// a running backup or restore or an earlier waiting backup (Velero 1.18's rule).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    concurrent_backups: u16,
    /// Schedules that do not set skipImmediately skip the run due when they are created
    /// or unpaused (Velero's --schedule-skip-immediately).
    #[arg(long)]
    schedule_skip_immediately: bool,
    /// Back up every pod volume file by file unless a pod opts it out (for Backups that do
    /// not set defaultVolumesToFsBackup; Velero's --default-volumes-to-fs-backup).
    #[arg(long)]
    default_volumes_to_fs_backup: bool,
    /// Move the CSI snapshots of claims into the repository (for Backups that do not set
    /// snapshotMoveData; Velero's --default-snapshot-move-data).
    #[arg(long)]
    default_snapshot_move_data: bool,
    /// How long a backup waits for its pod volumes (Velero's --fs-backup-timeout).
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    fs_backup_timeout: std::time::Duration,
    /// The image of restored pods' `restore-wait` init container (it must hold
    /// /node-agent; default: cairn's image as deploy/ installs it).
    #[arg(long, default_value = cairn_server::backups::DEFAULT_IMAGE)]
    restore_helper_image: String,
    /// Where /metrics, /healthz, /readyz and DownloadRequests' files are served
    /// (`:PORT` for every interface, or `IP:PORT`).
    #[arg(long, default_value = ":8085")]
    metrics_address: String,
    /// The base of DownloadRequests' URLs, as Velero's CLI reaches this server (default:
    /// `http://$POD_IP:PORT`, else the host name; behind a Service or port-forward, give
    /// that address).
    #[arg(long)]
    download_url: Option<String>,
    /// Serve the platform API (and its console) here (`:PORT` or `IP:PORT`; default: not
    /// served). Calls need a token of the Secret `cairn-api-tokens`.
    #[arg(long)]
    listen: Option<String>,
    /// How log lines are written to stderr: `text`, or `json` (one object a line, for log
    /// collectors).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct BackupArgs {
    /// The backup's name (like a Velero Backup's; must not be in use).
    name: String,
    /// Read the objects from the manifests (YAML or JSON) below this directory.
    #[arg(
        long,
        required_unless_present = "from_cluster",
        conflicts_with = "from_cluster"
    )]
    from_dir: Option<PathBuf>,
    /// Read the objects from the cluster of the kubeconfig (see --kubeconfig, --context).
    #[arg(long)]
    from_cluster: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Namespaces to include (globs `*`, `?`, `[abc]`; default all).
    #[arg(long, value_delimiter = ',')]
    include_namespaces: Vec<String>,
    /// Namespaces to leave out (globs; they win over includes).
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Resources to include (`resource.group`, short names work; default all).
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Resources to leave out (they win over includes).
    #[arg(long, value_delimiter = ',')]
    exclude_resources: Vec<String>,
    /// Include cluster-scoped resources: true, false, or unset (Velero's default).
    #[arg(long)]
    include_cluster_resources: Option<bool>,
    /// Cluster-scoped resources to include (Velero's newer scoped filters; not with the
    /// old ones).
    #[arg(long, value_delimiter = ',')]
    include_cluster_scoped_resources: Vec<String>,
    /// Cluster-scoped resources to leave out.
    #[arg(long, value_delimiter = ',')]
    exclude_cluster_scoped_resources: Vec<String>,
    /// Namespace-scoped resources to include.
    #[arg(long, value_delimiter = ',')]
    include_namespace_scoped_resources: Vec<String>,
    /// Namespace-scoped resources to leave out.
    #[arg(long, value_delimiter = ',')]
    exclude_namespace_scoped_resources: Vec<String>,
    /// Only objects matching this label selector (`app=web,tier in (a,b)`).
    #[arg(long, short = 'l')]
    selector: Option<String>,
    /// Objects matching any of these selectors (repeatable; not with --selector).
    #[arg(long)]
    or_selector: Vec<String>,
    /// How long the backup is kept (e.g. 720h): `node-agent forget` removes it afterwards.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<std::time::Duration>,
    /// Velero's resource policies (version v1): the ConfigMap manifest, or the document it
    /// holds. Its include/exclude policy joins the scoped resource filters; the backup's own
    /// lists win.
    #[arg(long, value_name = "FILE")]
    resource_policies_configmap: Option<PathBuf>,
    /// Items backed up first, in order: `pods=ns/a,ns/b;persistentvolumes=pv1`.
    #[arg(long)]
    ordered_resources: Option<String>,
}

#[derive(Args)]
#[command(group(
    clap::ArgGroup::new("mode")
        .args(["to_dir", "to_cluster", "dry_run"])
        .required(true)
        .multiple(true)
))]
struct RestoreArgs {
    /// The backup to restore.
    name: String,
    /// Write the ordered, cleaned objects into this (empty) directory.
    #[arg(long, conflicts_with = "to_cluster")]
    to_dir: Option<PathBuf>,
    /// Restore into the cluster of the kubeconfig (see --kubeconfig, --context).
    #[arg(long)]
    to_cluster: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// When an object exists and differs: unset or none (leave it, warn) or update (make it
    /// equal to the backed-up one). Service accounts are merged either way.
    #[arg(long)]
    existing_resource_policy: Option<ExistingResourcePolicy>,
    /// Restore in the ordered phases of this YAML file, each with its filters, policy and
    /// readiness gate (format: README, "Phased restores").
    #[arg(long, requires = "to_cluster")]
    phases: Option<PathBuf>,
    /// `old:new` namespace renames (comma-separated).
    #[arg(long, value_delimiter = ',')]
    namespace_mappings: Vec<String>,
    /// Keep Services' node ports.
    #[arg(long)]
    preserve_nodeports: bool,
    /// Resources whose status is restored (`resource.group`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    restore_status: Vec<String>,
    /// Name recorded in the `velero.io/restore-name` label (default: NAME-restore).
    #[arg(long)]
    restore_name: Option<String>,
    /// Print the plan and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for a terminating namespace to go before restoring into it.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    resource_terminating_timeout: std::time::Duration,
    #[command(flatten)]
    filter: RestoreFilterArgs,
    #[command(flatten)]
    modifiers: ModifierArgs,
}

/// Velero's opt-in restore modifiers, read from files in Velero's formats.
#[derive(Args)]
#[command(next_help_heading = "Modifiers")]
struct ModifierArgs {
    /// Resource modifier rules (Velero's format, version v1): the ConfigMap manifest, or
    /// the rules document it holds.
    #[arg(long, value_name = "FILE")]
    resource_modifier_configmap: Option<PathBuf>,
    /// Storage class mapping `old: new` (Velero's change-storage-class ConfigMap manifest,
    /// or a YAML mapping).
    #[arg(long, value_name = "FILE")]
    change_storage_class: Option<PathBuf>,
    /// Image rules `name: "old part,new part"` (Velero's change-image-name ConfigMap
    /// manifest, or a YAML mapping); the first rule, in name order, that matches wins.
    #[arg(long, value_name = "FILE")]
    change_image_name: Option<PathBuf>,
}

impl ModifierArgs {
    /// Reads and checks the files given into `opts`.
    fn read_into(&self, opts: &mut repo_k8s::restore::RestoreOptions) -> Result<(), Failure> {
        use repo_k8s::modifiers;
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map_err(|e| Failure(1, format!("reading {}: {e}", path.display())))
        };
        let bad = |path: &PathBuf| {
            let path = path.display().to_string();
            move |e: repo_k8s::Error| Failure(2, format!("{path}: {e}"))
        };
        if let Some(p) = &self.resource_modifier_configmap {
            opts.resource_modifiers =
                Some(modifiers::ResourceModifiers::from_file_text(&read(p)?).map_err(bad(p))?);
        }
        if let Some(p) = &self.change_storage_class {
            opts.storage_class_mappings =
                modifiers::storage_class_mappings(&read(p)?).map_err(bad(p))?;
        }
        if let Some(p) = &self.change_image_name {
            opts.image_name_rules = modifiers::image_name_rules(&read(p)?).map_err(bad(p))?;
        }
        Ok(())
    }
}

/// Which backed-up items a restore takes (Velero's `velero restore create` flags and
/// semantics: namespaces as backed up, before --namespace-mappings).
#[derive(Args)]
#[command(next_help_heading = "Filters")]
struct RestoreFilterArgs {
    /// Namespaces to restore (names or globs, comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    include_namespaces: Vec<String>,
    /// Namespaces not to restore (names or globs, comma-separated).
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Resources to restore (any name kubectl accepts, comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Resources not to restore (comma-separated).
    #[arg(long, value_delimiter = ',')]
    exclude_resources: Vec<String>,
    /// Cluster-scoped resources: true all, false none; unset, all when every namespace is
    /// restored, otherwise only what restored items need (their PVs and namespaces).
    #[arg(long)]
    include_cluster_resources: Option<bool>,
    /// Only items whose labels match this selector (`app=web,tier!=db`).
    #[arg(long, short = 'l', conflicts_with = "or_selector")]
    selector: Option<String>,
    /// Only items matching one of these selectors, separated by ` or `
    /// (`app=web or app=db`).
    #[arg(long)]
    or_selector: Option<String>,
}

impl RestoreFilterArgs {
    fn filter(&self) -> Result<repo_k8s::restore_filter::RestoreFilter, Failure> {
        use repo_k8s::selector::LabelSelector;
        let parse = |s: &str| LabelSelector::parse(s.trim()).map_err(usage);
        Ok(repo_k8s::restore_filter::RestoreFilter {
            include_namespaces: self.include_namespaces.clone(),
            exclude_namespaces: self.exclude_namespaces.clone(),
            include_resources: self.include_resources.clone(),
            exclude_resources: self.exclude_resources.clone(),
            include_cluster_resources: self.include_cluster_resources,
            label_selector: self.selector.as_deref().map(parse).transpose()?,
            or_label_selectors: self
                .or_selector
                .iter()
                .flat_map(|s| s.split(" or "))
                .map(parse)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Which cluster.
#[derive(Args)]
struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long)]
    context: Option<String>,
}

impl ClusterArgs {
    fn connect(&self) -> Result<Cluster, Failure> {
        Ok(Cluster::connect(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
        )?)
    }
}

struct Failure(u8, String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::WrongPassword { .. } => 3,
            Error::NoRepository { .. } => 5,
            _ => 1,
        };
        Failure(code, e.to_string())
    }
}

impl From<repo_k8s::Error> for Failure {
    fn from(e: repo_k8s::Error) -> Self {
        match e {
            repo_k8s::Error::Repository(e) => e.into(),
            repo_k8s::Error::Invalid(_) => usage(e),
            e => Failure(1, e.to_string()),
        }
    }
}

/// Input the user can fix: exit 2.
fn usage(e: repo_k8s::Error) -> Failure {
    Failure(2, e.to_string())
}

/// Exit code of a finished backup or restore: PartiallyFailed 8, Failed 1.
fn finished(outcome: Outcome) -> Result<(), Failure> {
    match outcome {
        Outcome::Completed => Ok(()),
        Outcome::PartiallyFailed => Err(Failure(8, String::new())),
        Outcome::Failed | Outcome::Running => Err(Failure(1, String::new())),
    }
}

fn open(cli: &Cli) -> Result<Repository, Failure> {
    let storage = cli.repo.storage()?;
    let password = cli.repo.password().map_err(|e| Failure(1, e))?;
    Ok(Repository::open(
        storage,
        &password,
        cli.repo.open_options(),
    )?)
}

fn selectors(a: &BackupArgs) -> Result<(Option<LabelSelector>, Vec<LabelSelector>), Failure> {
    let parse = |s: &str| LabelSelector::parse(s).map_err(usage);
    Ok((
        a.selector.as_deref().map(parse).transpose()?,
        a.or_selector
            .iter()
            .map(|s| parse(s))
            .collect::<Result<_, _>>()?,
    ))
}

fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Ping => {
            let repo = open(cli)?;
            outln!(
                "repository {} at {} is reachable",
                repo.config().id,
                repo.location()
            );
        }
        Command::Backup(a) => {
            let (label_selector, or_label_selectors) = selectors(a)?;
            let mut opts = BackupOptions {
                filter: BackupFilter {
                    include_namespaces: a.include_namespaces.clone(),
                    exclude_namespaces: a.exclude_namespaces.clone(),
                    include_resources: a.include_resources.clone(),
                    exclude_resources: a.exclude_resources.clone(),
                    include_cluster_resources: a.include_cluster_resources,
                    include_cluster_scoped_resources: a.include_cluster_scoped_resources.clone(),
                    exclude_cluster_scoped_resources: a.exclude_cluster_scoped_resources.clone(),
                    include_namespace_scoped_resources: a
                        .include_namespace_scoped_resources
                        .clone(),
                    exclude_namespace_scoped_resources: a
                        .exclude_namespace_scoped_resources
                        .clone(),
                    label_selector,
                    or_label_selectors,
                },
                ttl: a.ttl,
                ordered_resources: match &a.ordered_resources {
                    Some(s) => {
                        repo_k8s::resource_policy::parse_ordered_resources(s).map_err(usage)?
                    }
                    None => Default::default(),
                },
                ..Default::default()
            };
            if let Some(path) = &a.resource_policies_configmap {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Failure(1, format!("reading {}: {e}", path.display())))?;
                let bad = |e: repo_k8s::Error| Failure(2, format!("{}: {e}", path.display()));
                opts.resource_policies = Some(
                    repo_k8s::resource_policy::ResourcePolicies::from_file_text(&text)
                        .map_err(bad)?,
                );
            }
            let out = match &a.from_dir {
                Some(dir) => {
                    if !dir.is_dir() {
                        return Err(Failure(
                            1,
                            format!("--from-dir {}: not a directory", dir.display()),
                        ));
                    }
                    let repo = open(cli)?.load_index(&NoProgress)?;
                    backup::backup_dir(&repo, &a.name, dir, &opts)?
                }
                None => {
                    let mut snap = a.cluster.connect()?.read_all_spooled()?;
                    let repo = open(cli)?.load_index(&NoProgress)?;
                    let opts = BackupOptions {
                        discovery: snap.discovery,
                        ..opts
                    };
                    let (inventory, source) = (&snap.objects.inventory, &mut snap.objects.source);
                    backup::backup_from(&repo, &a.name, inventory, source, &opts)?
                }
            };
            report_backup(cli, &a.name, &out)?;
        }
        Command::Restore(a) => restore(cli, a)?,
        Command::Serve(a) => serve(cli, a)?,
        Command::Crds { dir } => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure(1, format!("creating {}: {e}", dir.display())))?;
            let files = repo_k8s::velero::crd::files();
            for (name, text) in &files {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .map_err(|e| Failure(1, format!("writing {}: {e}", path.display())))?;
            }
            outln!(
                "{} CustomResourceDefinitions written to {}",
                files.len(),
                dir.display()
            );
        }
        Command::ExportVelero { name, out } => export_velero(cli, name, out)?,
        Command::ImportVelero { input, name } => import_velero(cli, input, name.as_deref())?,
        Command::Backups => {
            let listing = catalog::list_backups(&open(cli)?)?;
            for (id, e) in &listing.unreadable {
                eprintln!("cairn-server: snapshot {id} is unreadable and not listed: {e}");
            }
            if cli.json {
                outln!(
                    "{}",
                    serde_json::to_string(&listing.backups).expect("serializes")
                );
            } else {
                outln!(
                    "{:<30} {:<19}  {:>8}  {:<12} expires",
                    "name",
                    "time",
                    "items",
                    "snapshot"
                );
                for b in &listing.backups {
                    outln!(
                        "{:<30} {:<19}  {:>8}  {:<12} {}",
                        Terminal::safe(&b.name),
                        human::local_time(&b.time),
                        b.items,
                        b.snapshot.short(),
                        b.expires.as_deref().map_or("-".into(), human::local_time)
                    );
                }
            }
        }
    }
    Ok(())
}

/// Serves until killed (SIGTERM or SIGINT end it: the process stops, and a Backup it was
/// running is failed at the next start, as Velero does).
fn serve(cli: &Cli, a: &ServeArgs) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match a.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let cluster = a.cluster.connect()?;
    let now = || cairn_server::backups::kube_time(std::time::SystemTime::now());
    let mut controller = cairn_server::backups::Controller::new(
        &cluster,
        &a.namespace,
        cli.repo.open_options(),
        &now,
    );
    controller.default_volumes_to_fs_backup = a.default_volumes_to_fs_backup;
    controller.default_snapshot_move_data = a.default_snapshot_move_data;
    controller.fs_backup_timeout = a.fs_backup_timeout;
    controller.restore_helper_image = a.restore_helper_image.clone();
    tracing::info!(
        namespace = %a.namespace,
        concurrent_backups = a.concurrent_backups,
        version = %cairn_server::status_requests::server_version(),
        "serving Backups, Restores, Schedules, DeleteBackupRequests, DownloadRequests, ServerStatusRequests and BackupStorageLocations"
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let leading = std::sync::atomic::AtomicBool::new(false);
    let identity = a.identity.clone().unwrap_or_else(repo_core::time::hostname);
    let address =
        cairn_server::http::parse_address(&a.metrics_address).map_err(|e| Failure(2, e))?;
    let base_url = a.download_url.clone().unwrap_or_else(|| {
        let host = std::env::var("POD_IP").unwrap_or_else(|_| repo_core::time::hostname());
        format!("http://{host}:{}", address.port())
    });
    *controller.downloads.base_url.lock().expect("not poisoned") = base_url;
    // The Lease is renewed on a connection of its own, so a long backup never delays it.
    let lease_cluster = a.cluster.connect()?;
    // The API answers on every replica, leading or not, on its own connection too.
    let api = match &a.listen {
        Some(l) => {
            let at = cairn_server::http::parse_address(l).map_err(|e| Failure(2, e))?;
            let api = cairn_server::api::Api::new(a.cluster.connect()?, &a.namespace);
            Some((at, std::sync::Arc::new(api)))
        }
        None => None,
    };
    std::thread::scope(|s| {
        let shared = controller.http_shared();
        s.spawn(|| {
            if let Err(e) = cairn_server::http::serve(address, shared, &stop) {
                tracing::error!("{e}; metrics, probes and downloads are not served");
            }
        });
        if let Some((at, api)) = api {
            let stop = &stop;
            s.spawn(move || {
                tracing::info!(address = %at, "serving the platform API");
                if let Err(e) = cairn_server::api::serve(at, api, stop) {
                    tracing::error!("{e}; the platform API is not served");
                }
            });
        }
        s.spawn(|| {
            let elector = cairn_server::lease::Elector::new(
                &lease_cluster,
                &a.namespace,
                &identity,
                a.lease_duration,
            );
            let report = |l: &cairn_server::lease::Leadership| match l {
                cairn_server::lease::Leadership::Leader => {
                    tracing::info!(%identity, lease = %format!("{}/cairn-server", a.namespace), "this replica leads")
                }
                cairn_server::lease::Leadership::Follower(h) => {
                    tracing::info!(%identity, leader = %h, "this replica follows; it acts when the Lease is free")
                }
            };
            cairn_server::serve::keep_leading(&elector, &stop, &leading, &report);
        });
        let on_lead = |found: &cairn_server::startup::Interrupted| {
            for name in &found.backups {
                tracing::warn!(backup = %name, "was InProgress when the last leader stopped: marked Failed");
            }
            for name in &found.restores {
                tracing::warn!(restore = %name, "was InProgress when the last leader stopped: marked Failed");
            }
            for p in &found.problems {
                tracing::error!("{p}");
            }
        };
        let options = cairn_server::serve::Options {
            gc_every: a.garbage_collection_frequency,
            concurrent_backups: a.concurrent_backups.into(),
            schedule_skip_immediately: a.schedule_skip_immediately,
        };
        cairn_server::serve::run(&controller, &stop, &leading, &options, &on_lead);
    });
    Ok(())
}

/// Prints a backup's results; a backup with errors is Velero's PartiallyFailed (exit 8).
fn report_backup(cli: &Cli, name: &str, out: &backup::BackupOutcome) -> Result<(), Failure> {
    let phase = out.phase();
    if cli.json {
        outln!(
            "{}",
            serde_json::json!({"name": name, "phase": phase, "snapshot_id": out.snapshot.to_string(),
                        "items": out.items, "newBytes": out.new_bytes, "storedBytes": out.stored_bytes, "results": out.results})
        );
    } else {
        print_messages(&out.results.warnings, &out.results.errors);
        outln!(
            "backup {} {phase}: {} item(s), {} new bytes, snapshot {}",
            name,
            out.items,
            out.new_bytes,
            out.snapshot
        );
    }
    finished(phase.outcome())
}

/// Writes the tarball next to `out` and renames it into place once complete, so a failed
/// export leaves no half tarball under the name asked for.
fn export_velero(cli: &Cli, name: &str, out: &Path) -> Result<(), Failure> {
    let repo = open(cli)?.load_index(&NoProgress)?;
    let id = catalog::backup_snapshot(&repo, name)?;
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = PathBuf::from(tmp_name);
    let written = (|| -> Result<_, Failure> {
        let file = std::fs::File::create(&tmp)
            .map_err(|e| Failure(1, format!("creating {}: {e}", tmp.display())))?;
        let mut w = std::io::BufWriter::new(file);
        let done = repo_k8s::tarball::export(&repo, &id, &mut w)?;
        std::io::Write::flush(&mut w)
            .and_then(|()| w.get_ref().sync_all())
            .and_then(|()| std::fs::rename(&tmp, out))
            .map_err(|e| Failure(1, format!("writing {}: {e}", out.display())))?;
        Ok(done)
    })();
    let done = written.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    if cli.json {
        outln!(
            "{}",
            serde_json::json!({"name": name, "out": out, "items": done.items,
                "duplicatesLeftOut": done.duplicates_left_out})
        );
    } else {
        if done.duplicates_left_out > 0 {
            outln!(
                "note: {} second copies of objects (kept under duplicates/ in the backup) are \
                 not in the tarball, which holds one object per identity",
                done.duplicates_left_out
            );
        }
        outln!(
            "backup {name} exported to {}: {} item(s)",
            out.display(),
            done.items
        );
    }
    Ok(())
}

fn import_velero(cli: &Cli, input: &Path, name: Option<&str>) -> Result<(), Failure> {
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let file = input.file_name().and_then(|f| f.to_str()).unwrap_or("");
            [".tar.gz", ".tgz", ".tar"]
                .iter()
                .find_map(|ext| file.strip_suffix(ext))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    Failure(
                        2,
                        format!(
                            "cannot name the backup after {}; give NAME",
                            input.display()
                        ),
                    )
                })?
                .to_string()
        }
    };
    let file = std::fs::File::open(input)
        .map_err(|e| Failure(1, format!("opening {}: {e}", input.display())))?;
    let imported = repo_k8s::tarball::read(file, &repo_k8s::tarball::Limits::default())
        .map_err(|e| Failure(1, format!("{}: {e}", input.display())))?;
    if imported.other_versions > 0 && !cli.json {
        // Velero writes them with EnableAPIGroupVersions; the preferred copy is the object.
        outln!(
            "note: {} copies of objects in non-preferred API versions were not imported",
            imported.other_versions
        );
    }
    let repo = open(cli)?.load_index(&NoProgress)?;
    let opts = BackupOptions {
        discovery: imported.discovery,
        ..Default::default()
    };
    let mut held = imported.objects;
    held.inventory.problems.extend(imported.problems);
    let out = backup::backup_from(&repo, &name, &held.inventory, &mut &held, &opts)?;
    report_backup(cli, &name, &out)
}

fn restore(cli: &Cli, a: &RestoreArgs) -> Result<(), Failure> {
    let mut mappings = std::collections::BTreeMap::new();
    for m in &a.namespace_mappings {
        let (from, to) = m
            .split_once(':')
            .filter(|(f, t)| !f.is_empty() && !t.is_empty())
            .ok_or_else(|| Failure(2, format!("--namespace-mappings {m:?}: expected old:new")))?;
        mappings.insert(from.to_string(), to.to_string());
    }
    let repo = open(cli)?.load_index(&NoProgress)?;
    let id = catalog::backup_snapshot(&repo, &a.name)?;
    let discovery = repo_k8s::restore::backup_discovery(&repo, &id)?;
    let phases = match &a.phases {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure(1, format!("reading {}: {e}", path.display())))?;
            repo_k8s::phases::parse(&text, &discovery)
                .map_err(|e| Failure(2, format!("{}: {e}", path.display())))?
        }
        None => vec![ResolvedPhase::everything(a.existing_resource_policy)],
    };
    let mut opts = repo_k8s::restore::RestoreOptions {
        backup_name: a.name.clone(),
        restore_name: a
            .restore_name
            .clone()
            .unwrap_or_else(|| format!("{}-restore", a.name)),
        namespace_mappings: mappings,
        preserve_node_ports: a.preserve_nodeports,
        // Any name kubectl accepts, as the filters take them.
        restore_status: a
            .restore_status
            .iter()
            .map(|n| match discovery.resolve(n) {
                Ok(r) => r.group_resource(),
                Err(_) => n.clone(),
            })
            .collect(),
        priorities: None,
        filter: a
            .filter
            .filter()?
            .resolve(&discovery)
            .map_err(|e| Failure(2, format!("restore filters are not valid: {e}")))?,
        storage_class_mappings: Default::default(),
        image_name_rules: Vec::new(),
        resource_modifiers: None,
        // Volume data is restored by node-agents, which the control plane drives.
        ..Default::default()
    };
    a.modifiers.read_into(&mut opts)?;
    let (plan, notes) = repo_k8s::restore::plan_backup(&repo, &id, &discovery, &opts)?;
    if a.to_cluster && !a.dry_run {
        let cluster = a.cluster.connect()?;
        let result = repo_k8s::execute::execute(
            &cluster,
            &plan,
            &phases,
            a.existing_resource_policy,
            a.resource_terminating_timeout,
            &repo_k8s::control::Control::default(),
        );
        return report_restore(cli, &a.name, &result, &notes, &plan.skipped);
    }
    if cli.json {
        // Borrowed rows, not a JSON value tree: that doubled the memory of a large plan.
        #[derive(serde::Serialize)]
        struct Row<'a> {
            name: &'a str,
            namespace: Option<&'a str>,
            resource: &'a str,
        }
        #[derive(serde::Serialize)]
        struct DryRun<'a> {
            backup: &'a str,
            items: Vec<Row<'a>>,
            notes: &'a [String],
            skipped: &'a [(String, String)],
            errors: &'a VeleroResult,
        }
        let items = plan.items.iter().map(|i| Row {
            name: &i.name,
            namespace: i.namespace.as_deref(),
            resource: &i.resource,
        });
        let out = DryRun {
            backup: &a.name,
            items: items.collect(),
            notes: &notes,
            skipped: &plan.skipped,
            errors: &plan.errors,
        };
        outln!("{}", serde_json::to_string(&out).expect("serializes"));
    } else {
        print_notes(&notes, &plan.skipped);
        print_messages(&VeleroResult::default(), &plan.errors);
        if a.dry_run {
            for (i, item) in plan.items.iter().enumerate() {
                outln!(
                    "{:>5} {} {}{}",
                    i + 1,
                    Terminal::safe(&item.resource),
                    item.namespace
                        .as_deref()
                        .map(|n| format!("{}/", Terminal::safe(n)))
                        .unwrap_or_default(),
                    Terminal::safe(&item.name)
                );
            }
        }
    }
    if let Some(dir) = a.to_dir.as_ref().filter(|_| !a.dry_run) {
        let n = repo_k8s::restore::write_to_dir(&plan, dir)
            .map_err(|e| Failure(1, format!("writing {}: {e}", dir.display())))?;
        let phase = if plan.errors.is_empty() {
            RestorePhase::Completed
        } else {
            RestorePhase::PartiallyFailed
        };
        if !cli.json {
            outln!(
                "restore of {} {phase}: {n} object(s) written to {}",
                a.name,
                dir.display()
            );
        }
        return finished(phase.outcome());
    }
    Ok(())
}

/// Prints Velero-style warnings and errors, per namespace. Names and messages come from
/// the objects, so they are made safe for a terminal.
fn print_messages(warnings: &VeleroResult, errors: &VeleroResult) {
    for (label, r) in [("warning", warnings), ("error", errors)] {
        for (ns, m) in r.messages() {
            match ns {
                Some(ns) => outln!(
                    "{label}: namespace {}: {}",
                    Terminal::safe(ns),
                    Terminal::safe(m)
                ),
                None => outln!("{label}: {}", Terminal::safe(m)),
            }
        }
    }
}

/// Prints a restore plan's notes and skipped objects.
fn print_notes(notes: &[String], skipped: &[(String, String)]) {
    for n in notes {
        outln!("note: {}", Terminal::safe(n));
    }
    for (what, why) in skipped {
        outln!("skip: {}: {}", Terminal::safe(what), Terminal::safe(why));
    }
}

/// Prints a restore's result: per phase, then warnings and errors. PartiallyFailed exits
/// 8, Failed 1.
fn report_restore(
    cli: &Cli,
    name: &str,
    result: &RestoreResult,
    notes: &[String],
    skipped: &[(String, String)],
) -> Result<(), Failure> {
    if cli.json {
        outln!(
            "{}",
            serde_json::json!({"backup": name, "result": result, "notes": notes, "skipped": skipped})
        );
    } else {
        print_notes(notes, skipped);
        for p in &result.phases {
            outln!(
                "phase {}: {} item(s): {} created, {} unchanged, {} updated, {} left as they were, {} failed; gate {}",
                p.name, p.items, p.created, p.unchanged, p.updated, p.skipped_existing, p.failed, p.gate
            );
        }
        print_messages(&result.warnings, &result.errors);
        outln!("restore of {name} {}", result.phase);
    }
    finished(result.phase.outcome())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            cairn_cli::report_failure("cairn-server", &msg, code, cli.json);
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_and_flag_has_help() {
        let cmd = <super::Cli as clap::CommandFactory>::command();
        assert_eq!(cairn_cli::undocumented(cmd), Vec::<String>::new());
    }
}
