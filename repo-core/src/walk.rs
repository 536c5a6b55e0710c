//! Walking a snapshot's trees: iteratively (a crafted 20,000-deep tree must not overflow a
//! stack), no deeper than [`MAX_DEPTH`], and within a [`WalkBudget`] (three tree blobs that
//! name each other 8,192 times describe 8,192³ entries: the walk must stop, not run for
//! ever or fill memory).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tree::{Node, NodeKind, MAX_DEPTH};
use crate::{BlobId, Error, IndexedRepository, ObjectId, Result, Snapshot};

/// Entries any one walk may visit, whatever a snapshot's summary claims: far beyond any
/// real file system (a billion files), far below what a crafted tree can describe.
pub const MAX_WALK_ENTRIES: u64 = 4_000_000_000;

/// Slack over a snapshot's recorded entry count: summaries of snapshots made before
/// `entries` was recorded count only files and directories, not symlinks or devices.
const SUMMARY_SLACK: u64 = 1_000_000;

/// How many entries a walk of one snapshot may visit before it is refused as crafted or
/// damaged: twice what its summary records, plus slack, and never more than
/// [`MAX_WALK_ENTRIES`]. Shared by the threads of one walk.
#[derive(Debug)]
pub struct WalkBudget {
    limit: u64,
    used: AtomicU64,
    snapshot: String,
    recorded: u64,
}

/// Environment variable that sets a walk's budget outright, for a genuine snapshot the
/// summary-based budget refuses (one made before `entries` was recorded, holding more than
/// a million symlinks or devices besides its files and directories).
pub const WALK_LIMIT_ENV: &str = "CAIRN_WALK_LIMIT";

impl WalkBudget {
    /// The budget of a walk of snapshot `id`.
    pub fn for_snapshot(id: &ObjectId, snap: &Snapshot) -> Self {
        let s = &snap.summary;
        let recorded = if s.entries > 0 {
            s.entries
        } else {
            s.files.saturating_add(s.dirs)
        };
        let given = std::env::var(WALK_LIMIT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        WalkBudget {
            limit: given.unwrap_or_else(|| {
                recorded
                    .saturating_mul(2)
                    .saturating_add(SUMMARY_SLACK)
                    .min(MAX_WALK_ENTRIES)
            }),
            used: AtomicU64::new(0),
            snapshot: id.to_string(),
            recorded,
        }
    }

    /// A budget of [`MAX_WALK_ENTRIES`], for trees no snapshot describes.
    pub fn unlimited() -> Self {
        WalkBudget {
            limit: MAX_WALK_ENTRIES,
            used: AtomicU64::new(0),
            snapshot: String::new(),
            recorded: 0,
        }
    }

    /// Counts `n` more entries visited; fails once the budget is spent.
    pub fn spend(&self, n: u64) -> Result<()> {
        let used = self.used.fetch_add(n, Ordering::Relaxed) + n;
        if used <= self.limit {
            return Ok(());
        }
        let object = if self.snapshot.is_empty() {
            "tree".to_string()
        } else {
            format!("snapshot {}", self.snapshot)
        };
        Err(Error::corrupt(
            object,
            format!(
                "its trees hold more than {} entries but its summary records {}: its \
                 directories name each other over and over (a crafted or damaged snapshot); \
                 nothing more of it is read. If the snapshot is genuine, set \
                 {WALK_LIMIT_ENV} to the number of entries to allow",
                self.limit, self.recorded
            ),
        ))
    }
}

/// The trees of the directories among `nodes`: what a walk reads next.
pub fn subtrees(nodes: &[Node]) -> Vec<BlobId> {
    nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .filter_map(|n| n.subtree)
        .collect()
}

/// Fails when `depth` directories are nested deeper than [`MAX_DEPTH`].
pub fn check_depth(depth: usize, path: &std::path::Path) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(
            path.display(),
            format!("directories nested deeper than {MAX_DEPTH} (a crafted or damaged tree)"),
        ));
    }
    Ok(())
}

/// The entries below a directory tree, depth-first in name order (each directory before
/// its contents), as paths below `base`. Without `recursive`, only the directory's own.
pub struct Walk<'r> {
    repo: &'r IndexedRepository,
    recursive: bool,
    budget: &'r WalkBudget,
    /// The directories being listed, innermost last: each one's path and entries left.
    stack: Vec<(PathBuf, std::vec::IntoIter<Node>)>,
    /// The root's listing, read on the first call.
    root: Option<(BlobId, PathBuf)>,
}

impl<'r> Walk<'r> {
    pub fn new(
        repo: &'r IndexedRepository,
        root: BlobId,
        base: PathBuf,
        recursive: bool,
        budget: &'r WalkBudget,
    ) -> Self {
        Walk {
            repo,
            recursive,
            budget,
            stack: Vec::new(),
            root: Some((root, base)),
        }
    }

    fn enter(&mut self, tree: &BlobId, path: PathBuf) -> Result<()> {
        check_depth(self.stack.len() + 1, &path)?;
        let nodes = self.repo.read_dir(tree)?;
        self.budget.spend(nodes.len() as u64)?;
        if self.recursive {
            self.repo.prefetch_subdirs(&nodes);
        }
        self.stack.push((path, nodes.into_iter()));
        Ok(())
    }

    fn step(&mut self) -> Result<Option<(PathBuf, Node)>> {
        if let Some((root, base)) = self.root.take() {
            self.enter(&root, base)?;
        }
        loop {
            let Some((dir, entries)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(node) = entries.next() else {
                self.stack.pop();
                continue;
            };
            let path = dir.join(OsStr::from_bytes(&node.name.0));
            if let (true, NodeKind::Dir, Some(sub)) = (self.recursive, node.kind, node.subtree) {
                self.enter(&sub, path.clone())?;
            }
            return Ok(Some((path, node)));
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<(PathBuf, Node)>;

    /// The next entry; after an error, `None`.
    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(next) => next.map(Ok),
            Err(e) => {
                self.stack.clear();
                self.root = None;
                Some(Err(e))
            }
        }
    }
}
