//! Backup of file trees: walk, compare with the parent snapshot, read what changed, write
//! trees bottom-up, commit a snapshot.
//!
//! Many entries are processed at once on a thread pool (directories and files alike, by
//! work stealing); a large file is further split across threads by the repository writer.
//! An entry that cannot be read is a warning, never a failed backup (unless `fail_fast`).
//! An unchanged file (same size, mtime, ctime and inode as in the parent) is not opened; an
//! unchanged directory produces the same tree blob, which costs no write.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use repo_core::tree::{ByteString, ChunkRef, Node, NodeKind};
use repo_core::{
    Error, IndexedRepository, ObjectId, Progress, Result, Snapshot, SnapshotFilter, Writer,
    WriterOptions,
};

use crate::exclude::{ExcludeOptions, Excluder, IgnoreLayer};
use crate::meta::{node_from_meta, read_xattrs, read_xattrs_fd, OwnerNames};
use crate::progress::Counters;

/// Which snapshot a backup compares against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot of the same source (see [`BackupOptions::parent_tags`]).
    #[default]
    Auto,
    /// None: every file is read.
    None,
    /// This snapshot (an id, an id prefix, or `latest`).
    Given(String),
}

/// Options of a file-tree backup.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// What the snapshot says was backed up; default: the absolute path(s).
    pub source: Option<String>,
    /// Default: this machine's host name.
    pub host: Option<String>,
    /// `key=value` tags.
    pub tags: Vec<String>,
    /// RFC 3339 time after which `forget` removes the snapshot (a TTL).
    pub expires: Option<String>,
    pub parent: ParentChoice,
    /// Tag keys that identify the source when finding the parent, instead of the source
    /// string: with `["pvc-uid"]`, the parent is the newest snapshot whose `pvc-uid` tag
    /// equals this backup's, wherever the volume is mounted now.
    pub parent_tags: Vec<String>,
    /// Read every file even when the parent says it is unchanged.
    pub force: bool,
    pub exclude: ExcludeOptions,
    /// Stop at the first entry that cannot be read instead of warning.
    pub fail_fast: bool,
    /// Entries processed at once (default: the repository's thread count).
    pub threads: Option<usize>,
    /// Count files and bytes first (on another thread) so progress has a total.
    pub scan: bool,
    /// Set to stop the backup: what was uploaded is kept (indexed) and no snapshot is made.
    pub cancel: Arc<AtomicBool>,
    /// Read and hash everything as a backup would, and count what it would add, but store
    /// nothing and commit no snapshot (see [`repo_core::Writer::dry_run_id`] for the
    /// outcome's id).
    pub dry_run: bool,
    /// The snapshot's time (RFC 3339) instead of now, e.g. for backups of old data.
    pub time: Option<String>,
    /// Tuning of the writer (its `dry_run` is this backup's `dry_run`).
    pub writer: WriterOptions,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            source: None,
            host: None,
            tags: Vec::new(),
            expires: None,
            parent: ParentChoice::Auto,
            parent_tags: Vec::new(),
            force: false,
            exclude: ExcludeOptions::default(),
            fail_fast: false,
            threads: None,
            scan: false,
            cancel: Arc::new(AtomicBool::new(false)),
            dry_run: false,
            time: None,
            writer: WriterOptions::default(),
        }
    }
}

/// An entry left out of the snapshot because it could not be read, or read while changing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// What a finished backup made.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    pub id: ObjectId,
    pub snapshot: Snapshot,
    pub parent: Option<ObjectId>,
    pub warnings: Vec<Warning>,
}

/// Warnings kept in the snapshot itself; the rest are counted.
const MAX_RECORDED_WARNINGS: usize = 100;
/// Files up to this size are read whole and chunked on the worker's own thread.
const SMALL_FILE: u64 = 8 * 1024 * 1024;
/// Largest hole recorded as one chunk reference.
const MAX_HOLE: u64 = repo_core::tree::MAX_HOLE as u64;

/// The source string recorded for `paths` when none is given: each absolute, without `.`
/// components or a trailing slash, so `/data/`, `/data/.` and `/data` are one source with one
/// history.
pub fn default_source(paths: &[PathBuf]) -> Result<String> {
    let abs = paths
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .map(|a| a.components().collect::<PathBuf>())
                .map(|a| a.to_string_lossy().into_owned())
                .map_err(|e| Error::io(format!("resolving {}", p.display()), e))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(abs.join(","))
}

/// Whether two recorded sources name the same paths. Snapshots made before sources were
/// normalized may end a path with `/`.
fn same_source(a: &str, b: &str) -> bool {
    fn trimmed(path: &str) -> &str {
        match path.trim_end_matches('/') {
            "" if path.starts_with('/') => "/",
            t => t,
        }
    }
    a.split(',').map(trimmed).eq(b.split(',').map(trimmed))
}

/// Finds the snapshot a backup with these options compares against.
pub fn find_parent(
    repo: &IndexedRepository,
    source: &str,
    opts: &BackupOptions,
) -> Result<Option<(ObjectId, Snapshot)>> {
    match &opts.parent {
        ParentChoice::None => Ok(None),
        ParentChoice::Given(id) => {
            let (id, snap) = repo.find_snapshot(id, &SnapshotFilter::default())?;
            Ok(Some((id, snap)))
        }
        ParentChoice::Auto => {
            let wanted: Vec<(&str, &str)> = opts
                .parent_tags
                .iter()
                .map(|k| {
                    let k = k.split('=').next().unwrap_or(k);
                    let v = opts
                        .tags
                        .iter()
                        .filter_map(|t| t.split_once('='))
                        .find(|(tk, _)| *tk == k)
                        .map(|(_, v)| v)
                        .ok_or_else(|| {
                            Error::invalid(
                                "parent tag",
                                format!(
                                    "{k:?} identifies the parent, so give it a value: --tag {k}=…"
                                ),
                            )
                        })?;
                    Ok((k, v))
                })
                .collect::<Result<_>>()?;
            let mut all = repo.list_snapshots_lenient(&SnapshotFilter::default())?.0;
            all.retain(|(_, s)| {
                if wanted.is_empty() {
                    same_source(&s.source, source)
                } else {
                    wanted.iter().all(|(k, v)| s.tag(k) == Some(*v))
                }
            });
            // The list is oldest first (by the instant, then id): the last is the newest.
            Ok(all.pop())
        }
    }
}

/// Backs up `paths` into `repo` and commits a snapshot. One directory becomes the snapshot's
/// root (its contents at the top, so it restores into any target); several paths, or a
/// file, appear at the root under their own names.
pub fn backup(
    repo: &IndexedRepository,
    paths: &[PathBuf],
    opts: &BackupOptions,
    counters: &Counters,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    if paths.is_empty() {
        return Err(Error::invalid(
            "paths",
            "nothing to back up: give at least one path",
        ));
    }
    let source = match &opts.source {
        Some(s) => s.clone(),
        None => default_source(paths)?,
    };
    let host = opts.host.clone().unwrap_or_else(repo_core::time::hostname);
    let mut snapshot = Snapshot::new(&source, &host, opts.tags.clone(), Default::default())?;
    snapshot.expires = opts.expires.clone();
    if let Some(t) = &opts.time {
        let instant = repo_core::time::parse_rfc3339(t)
            .ok_or_else(|| Error::invalid("time", format!("{t:?} is not an RFC 3339 time")))?;
        // Recorded in the one format snapshots use.
        snapshot.time = repo_core::time::format_rfc3339(instant);
    }
    let parent = find_parent(repo, &source, opts)?;
    // The parent is only an optimisation: if its data is lost, read everything.
    let mut warnings = Vec::new();
    let parent_root = match parent.as_ref().map(|(_, s)| repo.read_dir(&s.root)) {
        Some(Ok(nodes)) => nodes,
        Some(Err(e)) if e.is_data_loss() => {
            counters.add(&counters.errors, 1);
            warnings.push(Warning {
                path: PathBuf::from(&source),
                message: format!("parent snapshot unreadable, reading all: {e}"),
            });
            Vec::new()
        }
        Some(Err(e)) => return Err(e),
        None => Vec::new(),
    };

    let threads = opts.threads.unwrap_or(repo.options().threads).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("cairn-backup-{i}"))
        // Directories are walked recursively: room for the deepest tree a path can hold.
        .stack_size(crate::WORKER_STACK)
        .build()
        .map_err(|e| Error::invalid("threads", e))?;
    let writer = repo.writer(WriterOptions {
        dry_run: opts.dry_run,
        ..opts.writer.clone()
    })?;
    let job = Job {
        repo,
        writer: &writer,
        opts,
        counters,
        owners: OwnerNames::default(),
        warnings: Mutex::new(warnings),
        entries: AtomicU64::new(0),
    };

    // The scan runs beside the backup and stops when it ends, whichever finishes first.
    let scan_stop = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        if opts.scan {
            s.spawn(|| scan(paths, &opts.exclude, counters, &[&opts.cancel, &scan_stop]));
        }
        let r = pool
            .install(|| job.root_nodes(paths, parent_root))
            .and_then(|nodes| writer.write_dir(nodes));
        scan_stop.store(true, Ordering::Relaxed);
        r
    });
    let root = match result {
        Ok(root) => root,
        Err(e) => {
            // Index what was uploaded so the next backup does not upload it again.
            let _ = writer.flush();
            return Err(e);
        }
    };

    writer.flush()?;
    let stats = writer.stats();
    let counts = counters.snapshot();
    let warnings = job.warnings.into_inner().unwrap_or_else(|e| e.into_inner());
    snapshot.root = root;
    snapshot.parent = parent.as_ref().map(|p| p.0);
    let s = &mut snapshot.summary;
    s.files = counts.files_new + counts.files_changed + counts.files_unchanged;
    s.bytes = counts.bytes_done;
    s.dirs = counts.dirs;
    s.entries = job.entries.load(Ordering::Relaxed);
    s.files_new = counts.files_new;
    s.files_changed = counts.files_changed;
    s.files_unchanged = counts.files_unchanged;
    s.new_blobs = stats.new_blobs;
    s.new_bytes = stats.new_bytes;
    s.stored_bytes = stats.stored_bytes;
    s.duration_secs = started.elapsed().as_secs_f64();
    s.warnings = warnings
        .iter()
        .take(MAX_RECORDED_WARNINGS)
        .map(|w| w.to_string())
        .collect();
    if warnings.len() > MAX_RECORDED_WARNINGS {
        s.warnings.push(format!(
            "… and {} more",
            warnings.len() - MAX_RECORDED_WARNINGS
        ));
    }
    let id = if opts.dry_run {
        writer.dry_run_id(&snapshot)
    } else {
        writer.commit(snapshot.clone())?
    };
    Ok(BackupOutcome {
        id,
        snapshot,
        parent: parent.map(|p| p.0),
        warnings,
    })
}

/// Shared state of one backup's workers.
struct Job<'a> {
    repo: &'a IndexedRepository,
    writer: &'a Writer<'a>,
    opts: &'a BackupOptions,
    counters: &'a Counters,
    owners: OwnerNames,
    warnings: Mutex<Vec<Warning>>,
    /// Entries of every kind put in the snapshot's trees.
    entries: AtomicU64,
}

/// Where in the walk an entry is: its root's rules and device.
struct Context<'e> {
    excluder: &'e Excluder,
    layer: Option<Arc<IgnoreLayer>>,
    root_dev: u64,
}

/// What reading one file gave.
struct FileRead {
    content: Vec<ChunkRef>,
    size: u64,
    /// Why the file is suspect, when it changed while being read.
    changed: Option<String>,
    xattrs: std::io::Result<Vec<repo_core::tree::Xattr>>,
}

/// Counts bytes read into the backup's counters.
struct BytesRead<'a>(&'a Counters);

impl Progress for BytesRead<'_> {
    fn advance(&self, n: u64) {
        self.0.add(&self.0.bytes_done, n);
    }
}

fn find<'n>(nodes: &'n [Node], name: &[u8]) -> Option<&'n Node> {
    nodes
        .binary_search_by(|n| n.name.0.as_slice().cmp(name))
        .ok()
        .map(|i| &nodes[i])
}

/// Whether a file can be taken from the parent without reading it.
fn unchanged(now: &Node, parent: &Node) -> bool {
    parent.kind == NodeKind::File
        && now.size == parent.size
        && now.mtime == parent.mtime
        && now.ctime == parent.ctime
        && now.inode == parent.inode
}

impl Job<'_> {
    /// Records a warning; with `fail_fast`, fails instead.
    fn warn(&self, path: &Path, message: impl Into<String>) -> Result<()> {
        let message = message.into();
        if self.opts.fail_fast {
            return Err(Error::invalid(
                "backup",
                format!("{}: {message} (stopped by --fail-fast)", path.display()),
            ));
        }
        self.counters.add(&self.counters.errors, 1);
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Warning {
                path: path.to_path_buf(),
                message,
            });
        Ok(())
    }

    fn cancelled(&self) -> Result<()> {
        if self.opts.cancel.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    fn root_nodes(&self, paths: &[PathBuf], parent_root: Vec<Node>) -> Result<Vec<Node>> {
        if let [only] = paths {
            let meta = std::fs::metadata(only)
                .map_err(|e| Error::io(format!("backing up {}", only.display()), e))?;
            if meta.is_dir() {
                let excluder = Excluder::new(&self.opts.exclude, only)?;
                let ctx = Context {
                    excluder: &excluder,
                    layer: None,
                    root_dev: meta.dev(),
                };
                return self.dir_nodes(only, &parent_root, &ctx);
            }
        }
        let mut nodes = Vec::new();
        for path in paths {
            let name = path.file_name().ok_or_else(|| {
                Error::invalid("path", format!("{} has no file name", path.display()))
            })?;
            let meta = std::fs::symlink_metadata(path)
                .map_err(|e| Error::io(format!("backing up {}", path.display()), e))?;
            let base = path.parent().unwrap_or(Path::new("/"));
            let excluder = Excluder::new(&self.opts.exclude, path)?;
            let ctx = Context {
                excluder: &excluder,
                layer: None,
                root_dev: meta.dev(),
            };
            let parent = find(&parent_root, name.as_bytes());
            if let Some(node) = self.entry(base, name.as_bytes(), parent, &ctx)? {
                nodes.push(node);
            }
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.entries
            .fetch_add(nodes.len() as u64, Ordering::Relaxed);
        if let Some(w) = nodes.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::invalid(
                "paths",
                format!(
                    "two paths are named {:?}; back them up separately",
                    w[0].name.display()
                ),
            ));
        }
        Ok(nodes)
    }

    /// The entries of directory `dir`, sorted, each backed up.
    fn dir_nodes(&self, dir: &Path, parent: &[Node], ctx: &Context) -> Result<Vec<Node>> {
        self.cancelled()?;
        // The parent's subdirectories are compared next: read them ahead (object storage).
        self.repo.prefetch_subdirs(parent);
        let mut names: Vec<Vec<u8>> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.file_name().as_bytes().to_vec()))
                .collect(),
            Err(e) => {
                self.warn(dir, format!("cannot list directory: {e}"))?;
                return Ok(Vec::new());
            }
        };
        names.sort();
        let layer = match ctx.excluder.layer_for(dir, &names, &ctx.layer) {
            Ok(l) => l,
            Err(e) => {
                self.warn(dir, format!("ignore file not used: {e}"))?;
                ctx.layer.clone()
            }
        };
        let inner = Context {
            excluder: ctx.excluder,
            layer,
            root_dev: ctx.root_dev,
        };
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|name| self.entry(dir, name, find(parent, name), &inner))
            .collect::<Result<_>>()?;
        let nodes: Vec<Node> = nodes.into_iter().flatten().collect();
        self.entries
            .fetch_add(nodes.len() as u64, Ordering::Relaxed);
        Ok(nodes)
    }

    /// Backs up one entry; `None` when it is excluded or could not be read (a warning).
    fn entry(
        &self,
        dir: &Path,
        name: &[u8],
        parent: Option<&Node>,
        ctx: &Context,
    ) -> Result<Option<Node>> {
        self.cancelled()?;
        let path = dir.join(OsStr::from_bytes(name));
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.warn(&path, "vanished before it could be read")?;
                return Ok(None);
            }
            Err(e) => {
                self.warn(&path, format!("cannot stat: {e}"))?;
                return Ok(None);
            }
        };
        let mut node = node_from_meta(name, &meta, &self.owners);
        let is_dir = node.kind == NodeKind::Dir;
        if ctx.excluder.excluded_by_patterns(&ctx.layer, &path, is_dir) {
            return Ok(None);
        }
        let ex = ctx.excluder.options();
        match node.kind {
            NodeKind::File => {
                if ex.larger_than.is_some_and(|l| node.size > l) {
                    return Ok(None);
                }
                return self.file(&path, node, &meta, parent);
            }
            NodeKind::Dir => {
                if (ex.one_file_system && meta.dev() != ctx.root_dev)
                    || ctx.excluder.has_marker(&path)
                {
                    return Ok(None);
                }
                let parent_nodes = match parent {
                    Some(Node {
                        kind: NodeKind::Dir,
                        subtree: Some(sub),
                        ..
                    }) => match self.repo.read_dir(sub) {
                        Ok(n) => n,
                        Err(e) if !e.is_data_loss() => return Err(e),
                        Err(e) => {
                            // The parent is only an optimisation: read everything instead.
                            self.warn(&path, format!("parent tree unreadable, reading all: {e}"))?;
                            Vec::new()
                        }
                    },
                    _ => Vec::new(),
                };
                self.counters.set_current(&path);
                let nodes = self.dir_nodes(&path, &parent_nodes, ctx)?;
                node.subtree = Some(self.writer.write_dir(nodes)?);
                self.counters.add(&self.counters.dirs, 1);
            }
            NodeKind::Symlink => match std::fs::read_link(&path) {
                Ok(t) => node.link_target = Some(ByteString(t.as_os_str().as_bytes().to_vec())),
                Err(e) => {
                    self.warn(&path, format!("cannot read symlink: {e}"))?;
                    return Ok(None);
                }
            },
            _ => {}
        }
        node.xattrs = self.xattrs(&path)?;
        Ok(Some(node))
    }

    fn xattrs(&self, path: &Path) -> Result<Vec<repo_core::tree::Xattr>> {
        match read_xattrs(path) {
            Ok(x) => Ok(x),
            Err(e) => {
                self.warn(path, format!("extended attributes not read: {e}"))?;
                Ok(Vec::new())
            }
        }
    }

    /// Whether a writer may still use every stored chunk of a parent's file entry: indexed
    /// and not condemned by a published GC plan. Reusing an entry is deduplication, and a
    /// condemned blob may be swept before this snapshot is committed (the parent may have
    /// been forgotten). After data loss (a pack deleted, then `repair index`) a chunk may not
    /// be indexed at all. Either way the file is read again, so the new snapshot never
    /// references data the repository no longer has (a condemned blob is stored afresh).
    fn still_usable(&self, parent: &Node) -> bool {
        let index = self.repo.index();
        parent.data_chunks().all(|c| index.has_for_dedup(&c.0))
    }

    /// A regular file: reused from the parent when unchanged, read otherwise.
    fn file(
        &self,
        path: &Path,
        mut node: Node,
        meta: &Metadata,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        let c = self.counters;
        let reusable = |p: &&Node| !self.opts.force && unchanged(&node, p) && self.still_usable(p);
        if let Some(p) = parent.filter(reusable) {
            // Same size, times and inode: any change to content, owner, mode or xattrs
            // would have moved ctime. Take the parent's entry as it was.
            let mut reused = p.clone();
            reused.user = node.user;
            reused.group = node.group;
            c.add(&c.files_unchanged, 1);
            c.add(&c.files_done, 1);
            c.add(&c.bytes_done, reused.size);
            return Ok(Some(reused));
        }
        match self.read_content(path, meta) {
            Ok(Ok(read)) => {
                if let Some(why) = read.changed {
                    self.warn(path, why)?;
                }
                node.content = read.content;
                node.size = read.size;
                node.xattrs = match read.xattrs {
                    Ok(x) => x,
                    Err(e) => {
                        self.warn(path, format!("extended attributes not read: {e}"))?;
                        Vec::new()
                    }
                };
                let counter = if parent.is_some() {
                    &c.files_changed
                } else {
                    &c.files_new
                };
                c.add(counter, 1);
                c.add(&c.files_done, 1);
                Ok(Some(node))
            }
            Ok(Err(message)) => {
                self.warn(path, message)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads and stores a file's content. The outer error is fatal (the repository); the
    /// inner one is a warning (the file).
    fn read_content(
        &self,
        path: &Path,
        before: &Metadata,
    ) -> Result<std::result::Result<FileRead, String>> {
        let c = self.counters;
        c.set_current(path);
        let file = match open_for_backup(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err("vanished before it could be read".into()))
            }
            Err(e) => return Ok(Err(format!("cannot open: {e}"))),
        };
        // Size and sparseness come from the lstat just taken; one fstat after reading says
        // whether the file changed or was replaced meanwhile (two syscalls fewer per file
        // than checking before and after, which shows with a million small files).
        let expected = before.size();
        let sparse = expected > 0 && (before.blocks() * 512) < expected;
        let read = if sparse {
            self.read_sparse(&file, expected)
        } else if expected <= SMALL_FILE {
            let mut buf = Vec::with_capacity(expected as usize);
            match (&file).take(expected).read_to_end(&mut buf) {
                Ok(_) => {
                    c.add(&c.bytes_done, buf.len() as u64);
                    self.writer
                        .write_bytes(&buf)
                        .map(|chunks| Ok((chunks, buf.len() as u64)))
                }
                Err(e) => Ok(Err(e)),
            }
        } else {
            match self.writer.write_stream(&file, &BytesRead(c)) {
                Ok(s) => Ok(Ok((s.chunks, s.size))),
                Err(Error::Io { source, .. }) => Ok(Err(source)),
                Err(e) => Err(e),
            }
        };
        let (content, size) = match read? {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("read failed: {e}"))),
        };
        let changed = match file.metadata() {
            Ok(after)
                if after.size() != size
                    || after.mtime() != before.mtime()
                    || after.mtime_nsec() != before.mtime_nsec()
                    || after.ino() != before.ino() =>
            {
                Some("changed while being read; the snapshot holds what was read".to_string())
            }
            _ => None,
        };
        let xattrs = read_xattrs_fd(file.as_raw_fd());
        Ok(Ok(FileRead {
            content,
            size,
            changed,
            xattrs,
        }))
    }

    /// Reads a sparse file's data segments (found with SEEK_DATA/SEEK_HOLE) and records the
    /// holes between them without reading them.
    fn read_sparse(
        &self,
        file: &File,
        size: u64,
    ) -> Result<std::result::Result<(Vec<ChunkRef>, u64), std::io::Error>> {
        let fd = file.as_raw_fd();
        let seek = |off: u64, whence| -> std::io::Result<u64> {
            let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(r as u64)
            }
        };
        let mut chunks = Vec::new();
        let mut pos = 0u64;
        while pos < size {
            let data = match seek(pos, libc::SEEK_DATA) {
                Ok(d) => d.min(size),
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => size,
                Err(e) => return Ok(Err(e)),
            };
            self.counters.add(&self.counters.bytes_done, data - pos);
            while pos < data {
                let n = (data - pos).min(MAX_HOLE);
                chunks.push(ChunkRef::hole(n as u32));
                pos += n;
            }
            if data >= size {
                break;
            }
            let hole = match seek(data, libc::SEEK_HOLE) {
                Ok(h) => h.min(size),
                Err(e) => return Ok(Err(e)),
            };
            let mut f = file;
            if let Err(e) = f.seek(SeekFrom::Start(data)) {
                return Ok(Err(e));
            }
            let want = hole - data;
            let s = match self
                .writer
                .write_stream(f.take(want), &BytesRead(self.counters))
            {
                Ok(s) => s,
                Err(Error::Io { source, .. }) => return Ok(Err(source)),
                Err(e) => return Err(e),
            };
            chunks.extend(s.chunks);
            pos = data + s.size;
            if s.size < want {
                break; // the file shrank while we read it
            }
        }
        Ok(Ok((chunks, pos)))
    }
}

/// Opens a file for reading without following a symlink, and without updating its access
/// time where the kernel allows that (only the owner or root may).
fn open_for_backup(path: &Path) -> std::io::Result<File> {
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(libc::O_NOFOLLOW | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_NOFOLLOW),
        r => r,
    }
}

/// Counts files and bytes a backup will see, for a progress total. Honours the same
/// excludes; best effort (errors just leave things uncounted).
fn scan(paths: &[PathBuf], exclude: &ExcludeOptions, c: &Counters, stop: &[&AtomicBool]) {
    fn walk(
        dir: &Path,
        ex: &Excluder,
        layer: &Option<Arc<IgnoreLayer>>,
        c: &Counters,
        stop: &[&AtomicBool],
    ) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<Vec<u8>> = rd
            .filter_map(|e| e.ok().map(|e| e.file_name().as_bytes().to_vec()))
            .collect();
        names.sort();
        let layer = ex.layer_for(dir, &names, layer).unwrap_or(layer.clone());
        for name in names {
            if stop.iter().any(|s| s.load(Ordering::Relaxed)) {
                return;
            }
            let path = dir.join(OsStr::from_bytes(&name));
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if ex.excluded_by_patterns(&layer, &path, meta.is_dir()) {
                continue;
            }
            if meta.is_dir() {
                if !ex.has_marker(&path) {
                    walk(&path, ex, &layer, c, stop);
                }
            } else if meta.is_file() && ex.options().larger_than.is_none_or(|l| meta.len() <= l) {
                c.add(&c.total_files, 1);
                c.add(&c.total_bytes, meta.len());
            }
        }
    }
    for p in paths {
        let Ok(ex) = Excluder::new(exclude, p) else {
            continue;
        };
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &ex, &None, c, stop),
            Ok(m) => {
                c.add(&c.total_files, 1);
                c.add(&c.total_bytes, m.len());
            }
            Err(_) => {}
        }
    }
    c.scan_done.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_or_dot_is_the_same_source() {
        let with_slash = default_source(&[PathBuf::from("/data/")]).unwrap();
        let with_dot = default_source(&[PathBuf::from("/data/./")]).unwrap();
        assert_eq!(with_slash, "/data");
        assert_eq!(with_dot, "/data");
        assert_eq!(default_source(&[PathBuf::from("/")]).unwrap(), "/");
        assert!(same_source("/data/", "/data"));
        assert!(same_source("/a/,/b", "/a,/b/"));
        assert!(same_source("/", "/"));
        assert!(!same_source("/data", "/data2"));
        assert!(!same_source("/a,/b", "/a"));
    }
}
