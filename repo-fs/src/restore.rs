//! Restore of file trees: plan each directory against what the target already holds, then
//! write it, in parallel across files and across the ranges of a large file.
//!
//! Safety: everything below the target goes through directory descriptors and `*at` calls
//! with `O_NOFOLLOW` ([`crate::safe_fs`]): entry names are single components (the tree
//! decoder rejects `/`, `..`, NUL and empty names), and a symlink already in the target is
//! never followed: it is replaced or skipped as the overwrite policy says. Hard links are
//! made only to files this restore wrote.
//!
//! A file is written in place, its data first and its metadata (owner, mode, xattrs, times)
//! last; if writing fails (a full disk, a damaged blob) the partial file is removed and the
//! error names it. A restore killed midway leaves files whose mtime is not the snapshot's,
//! so running it again (`always` or `if-changed`) finishes the job.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use repo_core::reader::{plan_runs, read_run};
use repo_core::tree::{Node, NodeKind};
use repo_core::walk::{check_depth, WalkBudget};
use repo_core::{Error, IndexedRepository, Result, SnapshotFilter};

use crate::meta::parse_time;
use crate::progress::Counters;
use crate::safe_fs as sfs;

mod fill;
use fill::Wave;

/// What to do with an entry that already exists in the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it.
    #[default]
    Always,
    /// Replace it unless it is a regular file with the snapshot's size and mtime.
    IfChanged,
    /// Keep it.
    Never,
}

impl std::str::FromStr for Overwrite {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(Overwrite::Always),
            "if-changed" => Ok(Overwrite::IfChanged),
            "never" => Ok(Overwrite::Never),
            _ => Err(Error::invalid(
                "overwrite policy",
                format!("{s:?}: use always, if-changed or never"),
            )),
        }
    }
}

/// Options of a restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Glob patterns: only matching entries (and what is inside matching directories) are
    /// restored. A pattern with a `/` matches the path from the restore root, one without
    /// matches the entry name at any depth.
    pub include: Vec<String>,
    /// Glob patterns of entries (and their contents) not to restore; wins over `include`.
    pub exclude: Vec<String>,
    pub overwrite: Overwrite,
    /// Remove entries in the target that the snapshot does not have.
    pub delete: bool,
    /// Read every written file back and check it against the snapshot's blob ids.
    pub verify: bool,
    /// Restore owners; default: when running as root.
    pub owners: Option<bool>,
    /// Only plan: report what would be done, write nothing.
    pub dry_run: bool,
    /// After success, create `TARGET/.velero/<uid>` (what Velero's restore-wait init
    /// container waits for).
    pub done_file_uid: Option<String>,
    pub threads: Option<usize>,
    pub cancel: Arc<AtomicBool>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            overwrite: Overwrite::Always,
            delete: false,
            verify: false,
            owners: None,
            dry_run: false,
            done_file_uid: None,
            threads: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What the plan says to do with one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing is there: create it.
    Create,
    /// Something is there: replace it.
    Replace,
    /// A directory is already there: restore into it.
    Merge,
    /// Leave it (the reason says why).
    Skip(String),
    /// An entry of the target that the snapshot lacks (`delete`).
    Delete,
    /// A hard link to a file restored earlier (path from the restore root).
    Link(PathBuf),
}

/// One planned step, reported to the caller's visitor (`--dry-run` prints these).
#[derive(Clone, Debug)]
pub struct Step<'n> {
    pub path: PathBuf,
    pub node: Option<&'n Node>,
    pub action: Action,
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreOutcome {
    /// Regular files written (a backup's summary counts the same).
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, fifos and device nodes made (a backup's `entries` less files and dirs,
    /// less sockets, which are never restored).
    pub others: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub deleted: u64,
    /// Files checked by `verify`.
    pub verified: u64,
    /// Things not restored and why (owners when not root, sockets, device nodes, xattrs
    /// the file system refused).
    pub notes: Vec<String>,
    /// Entries that failed: path and error.
    pub failures: Vec<(PathBuf, String)>,
}

/// Builds the two glob sets of a pattern list: patterns with a `/` (matched against the
/// path from the restore root) and without (matched against the entry name).
fn globs(patterns: &[String]) -> Result<(GlobSet, GlobSet)> {
    let (mut full, mut names) = (GlobSetBuilder::new(), GlobSetBuilder::new());
    for p in patterns {
        let (builder, pat) = if p.contains('/') {
            (&mut full, p.trim_start_matches('/'))
        } else {
            (&mut names, p.as_str())
        };
        let g = GlobBuilder::new(pat)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::invalid("restore pattern", format!("{p}: {e}")))?;
        builder.add(g);
    }
    let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::invalid("restore pattern", e));
    Ok((build(full)?, build(names)?))
}

/// Compiled `--include` or `--exclude` patterns.
struct Patterns {
    full: GlobSet,
    names: GlobSet,
}

impl Patterns {
    fn new(p: &[String]) -> Result<Self> {
        let (full, names) = globs(p)?;
        Ok(Patterns { full, names })
    }
    fn matches(&self, rel: &Path) -> bool {
        self.full.is_match(rel) || rel.file_name().is_some_and(|n| self.names.is_match(n))
    }
}

/// Restores snapshot `snapshot` (an id, prefix or `latest`), or its `subpath`, into
/// `target`. With `dry_run`, only calls `visit` with each planned step.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &str,
    subpath: &str,
    target: &Path,
    opts: &RestoreOptions,
    counters: &Counters,
    visit: &(dyn Fn(&Step) + Sync),
) -> Result<RestoreOutcome> {
    let (id, snap) = repo.find_snapshot(snapshot, &SnapshotFilter::default())?;
    let include = (!opts.include.is_empty())
        .then(|| Patterns::new(&opts.include))
        .transpose()?;
    let exclude = Patterns::new(&opts.exclude)?;
    let owners = opts.owners.unwrap_or_else(sfs::is_root);
    let root_fd = if opts.dry_run {
        sfs::open_root(target).ok()
    } else {
        std::fs::create_dir_all(target)
            .map_err(|e| Error::io(format!("creating restore target {}", target.display()), e))?;
        Some(
            sfs::open_root(target).map_err(|e| {
                Error::io(format!("opening restore target {}", target.display()), e)
            })?,
        )
    };
    let fd = root_fd.as_ref().map(|f| f.as_raw_fd());
    // From object storage, files are filled pack by pack (see `repo_core::packread`); a
    // local repository reads each file's runs directly, which costs microseconds.
    let by_pack = !repo.is_local() && !opts.dry_run;
    let r = Restorer {
        repo,
        opts,
        counters,
        include,
        exclude,
        owners,
        visit,
        first_links: Mutex::new(HashMap::new()),
        deferred_links: Mutex::new(Vec::new()),
        outcome: Mutex::new(RestoreOutcome::default()),
        notes: Mutex::new(HashSet::new()),
        stop: AtomicBool::new(false),
        budget: WalkBudget::for_snapshot(&id, &snap),
        by_pack,
        wave: Mutex::new(Wave::default()),
        wave_dirs: if by_pack { fill::wave_dirs() } else { 0 },
        fatal: Mutex::new(None),
    };
    if !owners && !opts.dry_run {
        r.note("owners not restored: not running as root");
    }
    // The root: a directory's contents go into the target; a single file goes inside it.
    let subpath = subpath.trim_matches('/');
    let nodes = if subpath.is_empty() {
        counters.add(&counters.total_files, snap.summary.files);
        counters.add(&counters.total_bytes, snap.summary.bytes);
        repo.read_dir(&snap.root)?
    } else {
        let node = repo.find_node(&snap.root, subpath)?;
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => repo.read_dir(&sub)?,
            _ => vec![node],
        }
    };
    counters.scan_done.store(true, Ordering::Relaxed);

    let threads = opts.threads.unwrap_or_else(|| default_threads(repo)).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("cairn-restore-{i}"))
        // Directories are walked recursively: room for the deepest tree a path can hold.
        .stack_size(crate::WORKER_STACK)
        .build()
        .map_err(|e| Error::invalid("threads", e))?;

    let everything = r.include.is_none();
    pool.install(|| r.restore_dir(fd, Path::new(""), &nodes, everything, None, false))?;
    r.fill_wave();
    if let Some(e) = r.fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    if let Some(fd) = fd {
        if !opts.dry_run {
            r.make_links(fd)?;
        }
    }
    let mut outcome = r.outcome.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut notes: Vec<String> = r
        .notes
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .collect();
    notes.sort();
    outcome.notes = notes;
    if r.stop.load(Ordering::Relaxed) || opts.cancel.load(Ordering::Relaxed) {
        return match outcome.failures.first() {
            Some((p, e)) => Err(Error::io(
                format!(
                    "restore into {} stopped at {}",
                    target.display(),
                    p.display()
                ),
                std::io::Error::other(format!(
                    "{e}; free space on the target and run the restore again \
                     (--overwrite if-changed skips the files already complete)"
                )),
            )),
            None => Err(Error::Cancelled),
        };
    }
    if let (Some(uid), Some(fd), true) = (&opts.done_file_uid, fd, outcome.failures.is_empty()) {
        if !opts.dry_run {
            write_done_file(fd, uid)
                .map_err(|e| Error::io(format!("writing {}/.velero/{uid}", target.display()), e))?;
        }
    }
    Ok(outcome)
}

/// Workers of a restore from object storage: each spends most of its time waiting on a
/// request (a tree, a pack range), so more of them than cores keep the network busy.
/// Measured on SeaweedFS over loopback, /usr/share/doc (110 MB, 4,060 files), 2 cores:
/// 2 workers 3.17 s, 8 2.24 s, 16 1.62 s, 32 1.79 s.
const REMOTE_RESTORE_THREADS: usize = 16;

/// Workers when the caller sets none: the cores on a local directory, where a restore is
/// bound by the CPU and the disk; [`REMOTE_RESTORE_THREADS`] at least on object storage.
fn default_threads(repo: &IndexedRepository) -> usize {
    let cores = repo.options().threads;
    if repo.is_local() {
        cores
    } else {
        cores.max(REMOTE_RESTORE_THREADS)
    }
}

/// Velero's restore-wait contract: an empty file `.velero/<uid>` in the volume root.
fn write_done_file(root: RawFd, uid: &str) -> std::io::Result<()> {
    match sfs::mkdir_at(root, b".velero", 0o755) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let dir = sfs::open_dir(root, b".velero")?;
    let f = sfs::create_file(dir.as_raw_fd(), uid.as_bytes())?;
    f.sync_all()
}

struct Restorer<'a> {
    repo: &'a IndexedRepository,
    opts: &'a RestoreOptions,
    counters: &'a Counters,
    include: Option<Patterns>,
    exclude: Patterns,
    owners: bool,
    visit: &'a (dyn Fn(&Step) + Sync),
    /// First restored path of each hard-linked inode.
    first_links: Mutex<HashMap<(u64, u64), PathBuf>>,
    /// Links to make once every file is written: existing name, new name, and the time to
    /// set again on the new name's directory (linking changes it).
    deferred_links: Mutex<Vec<(PathBuf, PathBuf, Option<libc::timespec>)>>,
    outcome: Mutex<RestoreOutcome>,
    notes: Mutex<HashSet<String>>,
    /// Set on an error that dooms the rest (a full disk).
    stop: AtomicBool,
    /// Entries the snapshot may hold: a crafted one that expands without end is refused.
    budget: WalkBudget,
    /// Files are created during the walk and filled pack by pack, a wave at a time.
    by_pack: bool,
    wave: Mutex<Wave>,
    /// Most directories a wave holds open (see `restore/fill.rs`).
    wave_dirs: usize,
    /// An error that is not about one file (storage unreachable): ends the restore.
    fatal: Mutex<Option<Error>>,
}

/// One unit of restore work in a directory.
enum Work<'s, 'n> {
    One(&'s Step<'n>),
    /// Small files restored together.
    Batch(Vec<&'s Step<'n>>),
}

/// Largest total size of a batch of small files, and most files in one.
const BATCH_BYTES: u64 = 8 * 1024 * 1024;
const BATCH_FILES: usize = 512;

/// Groups consecutive small, plain files to create (no holes, no hard links) into batches.
fn batch_small_files<'s, 'n>(steps: &'s [Step<'n>]) -> Vec<Work<'s, 'n>> {
    let mut work = Vec::new();
    let mut batch: Vec<&Step> = Vec::new();
    let mut bytes = 0u64;
    for s in steps {
        let small = matches!(s.action, Action::Create | Action::Replace)
            && s.node.is_some_and(|n| {
                n.kind == NodeKind::File
                    && n.size < BATCH_BYTES
                    && n.links <= 1
                    && !n.content.iter().any(|c| c.is_hole())
            });
        if !small {
            work.push(Work::One(s));
            continue;
        }
        let size = s.node.map_or(0, |n| n.size);
        if !batch.is_empty() && (bytes + size > BATCH_BYTES || batch.len() >= BATCH_FILES) {
            work.push(Work::Batch(std::mem::take(&mut batch)));
            bytes = 0;
        }
        bytes += size;
        batch.push(s);
    }
    if !batch.is_empty() {
        work.push(Work::Batch(batch));
    }
    work
}

/// Files at least this large are written by several threads, one pack range each.
const PARALLEL_FILE: u64 = 16 * 1024 * 1024;

fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Restorer<'_> {
    fn note(&self, n: impl Into<String>) {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n.into());
    }

    fn tally(&self, f: impl FnOnce(&mut RestoreOutcome)) {
        f(&mut self.outcome.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn fail(&self, path: &Path, e: impl std::fmt::Display) {
        self.counters.add(&self.counters.errors, 1);
        self.tally(|o| o.failures.push((path.to_path_buf(), e.to_string())));
    }

    fn halted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.opts.cancel.load(Ordering::Relaxed)
    }

    /// Whether the filters select `rel` (`inside`: an ancestor directory was selected).
    fn selected(&self, rel: &Path, inside: bool) -> bool {
        !self.exclude.matches(rel)
            && (inside || self.include.as_ref().is_none_or(|i| i.matches(rel)))
    }

    /// Plans one directory: an action per snapshot entry, then deletions. A `fresh`
    /// directory was just made by this restore: nothing is in it to look at (one `fstatat`
    /// a file fewer).
    fn plan_dir<'n>(
        &self,
        dir: Option<RawFd>,
        rel: &Path,
        nodes: &'n [Node],
        inside: bool,
        fresh: bool,
    ) -> Result<Vec<Step<'n>>> {
        let mut steps = Vec::with_capacity(nodes.len());
        for node in nodes {
            let path = rel.join(std::ffi::OsStr::from_bytes(&node.name.0));
            let chosen = self.selected(&path, inside);
            let is_dir = node.kind == NodeKind::Dir;
            // A directory that is not selected is still entered to look for included
            // entries below it, unless it is excluded.
            let searched = is_dir && self.include.is_some() && !self.exclude.matches(&path);
            if !(chosen || searched) {
                continue;
            }
            let existing = match dir {
                Some(fd) if !fresh => sfs::stat_at(fd, &node.name.0)
                    .map_err(|e| Error::io(format!("looking at {}", path.display()), e))?,
                _ => None,
            };
            let action = match existing {
                _ if node.kind == NodeKind::Socket => {
                    Action::Skip("sockets are created by the program that listens on them".into())
                }
                None => Action::Create,
                Some(st) => {
                    let there = st.st_mode & libc::S_IFMT;
                    match (is_dir, there == libc::S_IFDIR, self.opts.overwrite) {
                        (true, true, _) => Action::Merge,
                        (_, _, Overwrite::Never) => Action::Skip("exists".into()),
                        (false, true, _) => Action::Skip(
                            "a directory is in the way; remove it to restore this entry".into(),
                        ),
                        (false, false, Overwrite::IfChanged)
                            if there == libc::S_IFREG
                                && node.kind == NodeKind::File
                                && st.st_size as u64 == node.size
                                && parse_time(&node.mtime).is_some_and(|t| {
                                    t.tv_sec == st.st_mtime && t.tv_nsec == st.st_mtime_nsec
                                }) =>
                        {
                            Action::Skip("unchanged".into())
                        }
                        _ => Action::Replace,
                    }
                }
            };
            let action = match (&action, node.kind, node.links > 1) {
                (Action::Create | Action::Replace, NodeKind::File, true) => {
                    let mut first = self.first_links.lock().unwrap_or_else(|e| e.into_inner());
                    match first.get(&(node.device, node.inode)) {
                        Some(p) => Action::Link(p.clone()),
                        None => {
                            first.insert((node.device, node.inode), path.clone());
                            action
                        }
                    }
                }
                _ => action,
            };
            steps.push(Step {
                path,
                node: Some(node),
                action,
            });
        }
        if self.opts.delete && !fresh {
            if let Some(fd) = dir {
                let names: HashSet<&[u8]> = nodes.iter().map(|n| n.name.0.as_slice()).collect();
                let list = sfs::list_dir(fd)
                    .map_err(|e| Error::io(format!("listing {}", rel.display()), e))?;
                for name in list {
                    let path = rel.join(std::ffi::OsStr::from_bytes(&name));
                    let protected = rel.as_os_str().is_empty()
                        && name == b".velero"
                        && self.opts.done_file_uid.is_some();
                    if !names.contains(name.as_slice())
                        && !protected
                        && self.selected(&path, inside)
                    {
                        steps.push(Step {
                            path,
                            node: None,
                            action: Action::Delete,
                        });
                    }
                }
            }
        }
        Ok(steps)
    }

    /// Restores the entries `nodes` into directory `dir` (`None`: it does not exist, which
    /// only happens in a dry run; `fresh`: this restore just made it).
    fn restore_dir(
        &self,
        dir: Option<RawFd>,
        rel: &Path,
        nodes: &[Node],
        inside: bool,
        dir_mtime: Option<libc::timespec>,
        fresh: bool,
    ) -> Result<()> {
        if self.halted() {
            return Ok(());
        }
        check_depth(rel.components().count(), rel)?;
        self.budget.spend(nodes.len() as u64)?;
        self.repo.prefetch_subdirs(nodes);
        let steps = self.plan_dir(dir, rel, nodes, inside, fresh)?;
        if self.opts.dry_run {
            // A printed plan reads best in order.
            return steps
                .iter()
                .try_for_each(|step| self.apply(dir, step, inside, dir_mtime));
        }
        let work = match dir {
            Some(fd) if self.by_pack => {
                // Files go into the wave, to be filled pack by pack; the rest is done now.
                let (later, now): (Vec<&Step>, Vec<&Step>) =
                    steps.iter().partition(|s| fill::fills_later(s));
                self.queue_files(fd, rel, &later)?;
                now.into_iter().map(Work::One).collect()
            }
            Some(_) => batch_small_files(&steps),
            None => steps.iter().map(Work::One).collect(),
        };
        work.par_iter().try_for_each(|w| match w {
            Work::One(step) => self.apply(dir, step, inside, dir_mtime),
            Work::Batch(batch) => self.batch(dir, batch, inside, dir_mtime),
        })
    }

    /// Restores a run of small files with one read per pack range instead of one per file:
    /// files backed up one after another sit side by side in packs. Any read error sends
    /// the files down the one-by-one path, so the error names the right file.
    fn batch(
        &self,
        dir: Option<RawFd>,
        steps: &[&Step],
        inside: bool,
        dir_mtime: Option<libc::timespec>,
    ) -> Result<()> {
        let (Some(fd), false) = (dir, self.halted()) else {
            return Ok(());
        };
        let mut chunks = Vec::new();
        let mut starts = Vec::with_capacity(steps.len());
        let mut total = 0usize;
        for s in steps {
            let node = s.node.expect("batched steps are files");
            starts.push(total);
            chunks.extend_from_slice(&node.content);
            total += node.size as usize;
        }
        let read = || -> Result<Vec<u8>> {
            let mut buf = vec![0u8; total];
            for run in plan_runs(self.repo, &chunks)? {
                for (b, data) in run.blobs.iter().zip(read_run(self.repo, &run)?) {
                    buf[b.offset as usize..b.offset as usize + data.len()].copy_from_slice(&data);
                }
            }
            Ok(buf)
        };
        let Ok(buf) = read() else {
            return steps
                .iter()
                .try_for_each(|s| self.apply(dir, s, inside, dir_mtime));
        };
        for (s, start) in steps.iter().zip(starts) {
            (self.visit)(s);
            let node = s.node.expect("batched steps are files");
            let data = &buf[start..start + node.size as usize];
            let name = s.path.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
            self.file_with(fd, s, node, name, |f| {
                use std::io::Write;
                let mut f = f;
                f.write_all(data)
                    .map_err(|e| Error::io("writing restored file", e))?;
                self.counters
                    .add(&self.counters.bytes_done, data.len() as u64);
                Ok(())
            })?;
        }
        Ok(())
    }

    fn apply(
        &self,
        dir: Option<RawFd>,
        step: &Step,
        inside: bool,
        dir_mtime: Option<libc::timespec>,
    ) -> Result<()> {
        if self.halted() {
            return Ok(());
        }
        (self.visit)(step);
        let name = step.path.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
        if let Action::Skip(_) = step.action {
            self.tally(|o| o.skipped += 1);
            if let Some(n) = step.node.filter(|n| n.kind == NodeKind::File) {
                self.counters.add(&self.counters.files_done, 1);
                self.counters.add(&self.counters.bytes_done, n.size);
            }
            return Ok(());
        }
        let Some(node) = step.node else {
            // Delete.
            if !self.opts.dry_run {
                if let Some(fd) = dir {
                    let r = match sfs::stat_at(fd, name) {
                        Ok(Some(st)) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                            sfs::remove_tree_at(fd, name)
                        }
                        Ok(Some(_)) => sfs::unlink_at(fd, name),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                    match r {
                        Ok(()) => self.tally(|o| o.deleted += 1),
                        Err(e) => self.fail(&step.path, format!("not deleted: {e}")),
                    }
                }
            }
            return Ok(());
        };
        if node.kind == NodeKind::Dir {
            return self.dir(dir, step, node, name, inside);
        }
        if self.opts.dry_run {
            return Ok(());
        }
        let Some(fd) = dir else { return Ok(()) };
        if let Action::Link(first) = &step.action {
            self.deferred_links
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((first.clone(), step.path.clone(), dir_mtime));
            return Ok(());
        }
        if step.action == Action::Replace && node.kind != NodeKind::File {
            // A symlink, fifo or device is created fresh; what was there goes first.
            let _ = sfs::unlink_at(fd, name);
        }
        let result = match node.kind {
            NodeKind::File => return self.file(fd, step, node, name),
            NodeKind::Symlink => {
                let target = node
                    .link_target
                    .as_ref()
                    .map(|t| t.0.as_slice())
                    .unwrap_or(b"");
                sfs::symlink_at(fd, name, target)
            }
            NodeKind::Fifo => sfs::mknod_at(fd, name, libc::S_IFIFO | node.mode, 0),
            NodeKind::BlockDev | NodeKind::CharDev if sfs::is_root() => {
                let t = if node.kind == NodeKind::BlockDev {
                    libc::S_IFBLK
                } else {
                    libc::S_IFCHR
                };
                sfs::mknod_at(fd, name, t | node.mode, node.rdev)
            }
            NodeKind::BlockDev | NodeKind::CharDev => {
                self.note("device nodes not restored: not running as root");
                return Ok(());
            }
            NodeKind::Socket => return Ok(()), // planned as a skip
            NodeKind::Dir => unreachable!("directories are handled above"),
        };
        match result {
            Ok(()) => {
                self.special_meta(fd, name, node, &step.path);
                self.tally(|o| o.others += 1);
            }
            Err(e) => self.fail(&step.path, e),
        }
        Ok(())
    }

    /// Owner, mode and times of a symlink, fifo or device (never followed).
    fn special_meta(&self, fd: RawFd, name: &[u8], node: &Node, path: &Path) {
        if self.owners {
            if let Err(e) = sfs::chown_at(fd, Some(name), node.uid, node.gid) {
                self.fail(path, format!("owner not set: {e}"));
            }
        }
        // mknod applies the umask: set the recorded mode again (after chown, which may
        // clear set-id bits). A symlink's mode means nothing on Linux.
        if node.kind != NodeKind::Symlink {
            if let Err(e) = sfs::chmod_special_at(fd, name, node.mode) {
                self.fail(path, format!("mode not set: {e}"));
            }
        }
        if let Some(t) = parse_time(&node.mtime) {
            let _ = sfs::set_times_at(fd, Some(name), t);
        }
    }

    fn dir(
        &self,
        dir: Option<RawFd>,
        step: &Step,
        node: &Node,
        name: &[u8],
        inside: bool,
    ) -> Result<()> {
        let chosen = self.selected(&step.path, inside);
        let children = match node.subtree.map(|sub| self.repo.read_dir(&sub)) {
            Some(Ok(children)) => children,
            Some(Err(e)) if e.is_data_loss() => {
                self.fail(&step.path, format!("directory not restored: {e}"));
                return Ok(());
            }
            Some(Err(e)) => return Err(e),
            None => Vec::new(),
        };
        if self.opts.dry_run {
            let sub = dir.and_then(|fd| sfs::open_dir(fd, name).ok());
            let sub = sub.as_ref().map(|s| s.as_raw_fd());
            return self.restore_dir(sub, &step.path, &children, chosen, None, false);
        }
        let Some(fd) = dir else { return Ok(()) };
        if step.action == Action::Replace {
            // A file or symlink stands where the directory goes: remove it (never follow).
            if let Err(e) = sfs::unlink_at(fd, name) {
                self.fail(&step.path, format!("cannot replace with a directory: {e}"));
                return Ok(());
            }
        }
        let created = matches!(step.action, Action::Create | Action::Replace);
        if created {
            if let Err(e) = sfs::mkdir_at(fd, name, 0o700) {
                self.fail(&step.path, e);
                return Ok(());
            }
        }
        let sub: OwnedFd = match sfs::open_dir(fd, name) {
            Ok(s) => s,
            Err(e)
                if e.raw_os_error() == Some(libc::ELOOP)
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                self.fail(&step.path, "is a symlink in the target; not followed");
                return Ok(());
            }
            Err(e) => {
                self.fail(&step.path, e);
                return Ok(());
            }
        };
        let mtime = parse_time(&node.mtime);
        self.restore_dir(
            Some(sub.as_raw_fd()),
            &step.path,
            &children,
            chosen,
            mtime,
            created,
        )?;
        if !chosen && created {
            // Only descended to look for included entries: drop it again if none were.
            if sfs::list_dir(sub.as_raw_fd())
                .map(|l| l.is_empty())
                .unwrap_or(false)
            {
                drop(sub);
                let _ = sfs::unlink_dir(fd, name);
                return Ok(());
            }
        }
        self.tally(|o| o.dirs += 1);
        self.counters.add(&self.counters.dirs, 1);
        if self.by_pack {
            // Its files may still be waiting for data: metadata after they are filled.
            self.dir_meta_later(sub, node, &step.path);
        } else {
            self.fd_meta(sub.as_raw_fd(), node, &step.path);
        }
        Ok(())
    }

    /// Owner, mode, xattrs and times of an open file or directory, in that order (chown
    /// clears set-id bits, so mode comes after it; times come last).
    fn fd_meta(&self, fd: RawFd, node: &Node, path: &Path) {
        if self.owners {
            if let Err(e) = sfs::chown_at(fd, None, node.uid, node.gid) {
                self.fail(path, format!("owner not set: {e}"));
            }
        }
        if let Err(e) = sfs::chmod_fd(fd, node.mode) {
            self.fail(path, format!("mode not set: {e}"));
        }
        for x in &node.xattrs {
            if let Err(e) = sfs::set_xattr_fd(fd, &x.name.0, &x.value.0) {
                self.note(format!(
                    "extended attribute {} not restored on some entries ({e})",
                    x.name.display()
                ));
            }
        }
        if let Some(t) = parse_time(&node.mtime) {
            if let Err(e) = sfs::set_times_at(fd, None, t) {
                self.fail(path, format!("times not set: {e}"));
            }
        }
    }

    fn file(&self, dir: RawFd, step: &Step, node: &Node, name: &[u8]) -> Result<()> {
        self.file_with(dir, step, node, name, |f| self.write_content(f, node))
    }

    /// Creates (or truncates) a file, replacing, never following, a symlink in the way
    /// when `replace`. A failure is recorded against `path`.
    fn create(&self, dir: RawFd, name: &[u8], replace: bool, path: &Path) -> Option<std::fs::File> {
        let mut file = sfs::create_file(dir, name);
        if let Err(e) = &file {
            if e.raw_os_error() == Some(libc::ELOOP) && replace {
                // A symlink is in the way: remove it rather than follow it.
                let _ = sfs::unlink_at(dir, name);
                file = sfs::create_file(dir, name);
            }
        }
        match file {
            Ok(f) => Some(f),
            Err(e) => {
                if is_disk_full(&e) {
                    self.stop.store(true, Ordering::Relaxed);
                }
                self.fail(path, format!("cannot create: {e}"));
                None
            }
        }
    }

    /// A file whose data is written: verified if asked, then its metadata set.
    fn finish(&self, file: &std::fs::File, node: &Node, path: &Path) {
        if self.opts.verify {
            match self.verify(file, node) {
                Ok(()) => self.tally(|o| o.verified += 1),
                Err(e) => self.fail(path, format!("verification failed: {e}")),
            }
        }
        self.fd_meta(file.as_raw_fd(), node, path);
        self.tally(|o| {
            o.files += 1;
            o.bytes += node.size;
        });
        self.counters.add(&self.counters.files_done, 1);
    }

    /// Creates a file (replacing, never following, a symlink in the way), fills it with
    /// `write`, then verifies it and sets its metadata. A failed write removes the file.
    fn file_with(
        &self,
        dir: RawFd,
        step: &Step,
        node: &Node,
        name: &[u8],
        write: impl FnOnce(&std::fs::File) -> Result<()>,
    ) -> Result<()> {
        let path = &step.path;
        let Some(file) = self.create(dir, name, step.action == Action::Replace, path) else {
            return Ok(());
        };
        match write(&file) {
            Ok(()) => {}
            Err(e) => {
                drop(file);
                // Never leave a partial file that looks restored.
                let _ = sfs::unlink_at(dir, name);
                if let Error::Io { source, .. } = &e {
                    if is_disk_full(source) {
                        self.stop.store(true, Ordering::Relaxed);
                    }
                }
                if e.is_data_loss() || matches!(e, Error::Io { .. }) {
                    self.fail(path, format!("not restored: {e}"));
                    return Ok(());
                }
                return Err(e);
            }
        }
        self.finish(&file, node, path);
        Ok(())
    }

    /// Writes a file's data at its offsets; holes are left unwritten (the file is sized
    /// first, so they read as zeros and take no space).
    fn write_content(&self, file: &std::fs::File, node: &Node) -> Result<()> {
        let io = |e| Error::io("writing restored file", e);
        file.set_len(node.size).map_err(io)?;
        let runs = plan_runs(self.repo, &node.content)?;
        let write_run = |run| -> Result<()> {
            let blobs = read_run(self.repo, run)?;
            for (b, data) in run.blobs.iter().zip(blobs) {
                file.write_all_at(&data, b.offset).map_err(io)?;
                self.counters
                    .add(&self.counters.bytes_done, data.len() as u64);
            }
            Ok(())
        };
        if node.size >= PARALLEL_FILE && runs.len() > 1 {
            runs.par_iter().try_for_each(write_run)
        } else {
            runs.iter().try_for_each(write_run)
        }
    }

    /// Reads a written file back and checks every chunk against its blob id.
    fn verify(&self, file: &std::fs::File, node: &Node) -> Result<()> {
        let mut offset = 0u64;
        let mut buf = Vec::new();
        for c in &node.content {
            buf.resize(c.1 as usize, 0);
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| Error::io("reading back", e))?;
            let ok = if c.is_hole() {
                buf.iter().all(|&b| b == 0)
            } else {
                self.repo.key().blob_id(&buf) == c.0
            };
            if !ok {
                return Err(Error::invalid(
                    "restored file",
                    format!("bytes at offset {offset} differ from the snapshot"),
                ));
            }
            offset += c.1 as u64;
        }
        Ok(())
    }

    /// Makes the hard links deferred during the restore, each to the first restored name
    /// of its inode; both sides are reached without following symlinks.
    fn make_links(&self, root: RawFd) -> Result<()> {
        let links = std::mem::take(
            &mut *self
                .deferred_links
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (first, this, dir_mtime) in links {
            let r = (|| -> std::io::Result<()> {
                let (fd1, n1) = open_parent(root, &first)?;
                let (fd2, n2) = open_parent(root, &this)?;
                let _ = sfs::unlink_at(fd2.as_raw_fd(), &n2);
                sfs::link_at(fd1.as_raw_fd(), &n1, fd2.as_raw_fd(), &n2)?;
                match dir_mtime {
                    Some(t) => sfs::set_times_at(fd2.as_raw_fd(), None, t),
                    None => Ok(()),
                }
            })();
            match r {
                Ok(()) => self.tally(|o| o.files += 1),
                Err(e) => self.fail(
                    &this,
                    format!("hard link to {} not made: {e}", first.display()),
                ),
            }
        }
        Ok(())
    }
}

/// Opens the directory holding `rel` (relative to `root`), component by component without
/// following symlinks; returns it and the last name.
fn open_parent(root: RawFd, rel: &Path) -> std::io::Result<(OwnedFd, Vec<u8>)> {
    let parts: Vec<&[u8]> = rel.iter().map(|c| c.as_bytes()).collect();
    let (last, dirs) = parts
        .split_last()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty path"))?;
    let mut fd = sfs::dup_dir(root)?;
    for d in dirs {
        fd = sfs::open_dir(fd.as_raw_fd(), d)?;
    }
    Ok((fd, last.to_vec()))
}
