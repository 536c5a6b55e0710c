//! Looking into snapshots without restoring: list a directory (or a whole subtree) and
//! compare two snapshots. Unchanged subtrees are skipped by id, so a diff of two backups
//! reads only the directories that differ.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use repo_core::tree::{Node, NodeKind};
use repo_core::walk::{check_depth, Walk, WalkBudget};
use repo_core::{BlobId, IndexedRepository, Result, SnapshotFilter};

/// A snapshot's root tree, the node at `path` below it (`None` for the root itself), and
/// the budget of a walk of it.
fn locate(
    repo: &IndexedRepository,
    snapshot: &str,
    path: &str,
) -> Result<(BlobId, Option<Node>, WalkBudget)> {
    let (id, snap) = repo.find_snapshot(snapshot, &SnapshotFilter::default())?;
    let budget = WalkBudget::for_snapshot(&id, &snap);
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok((snap.root, None, budget));
    }
    Ok((snap.root, Some(repo.find_node(&snap.root, path)?), budget))
}

/// Calls `visit` with each entry at `path` in a snapshot (the entry itself if it is not a
/// directory), depth-first and in name order; with `recursive`, everything below too. The
/// walk is iterative and bounded by the snapshot's summary ([`WalkBudget`]).
pub fn list(
    repo: &IndexedRepository,
    snapshot: &str,
    path: &str,
    recursive: bool,
    visit: &mut dyn FnMut(&Path, &Node),
) -> Result<()> {
    let (root, node, budget) = locate(repo, snapshot, path)?;
    let base = PathBuf::from(path.trim_matches('/'));
    let dir = match node {
        None => root,
        Some(n) => match (n.kind, n.subtree) {
            (NodeKind::Dir, Some(sub)) => sub,
            _ => {
                visit(&base, &n);
                return Ok(());
            }
        },
    };
    for entry in Walk::new(repo, dir, base, recursive, &budget) {
        let (path, node) = entry?;
        visit(&path, &node);
    }
    Ok(())
}

/// Calls `visit` with every entry of `snapshots` whose name (or, for a pattern with a `/`,
/// whose path from the snapshot root) matches `pattern`, a glob (`*.conf`,
/// `etc/**/passwd`), snapshot by snapshot in the order given, each in name order.
pub fn find(
    repo: &IndexedRepository,
    snapshots: &[(repo_core::ObjectId, repo_core::Snapshot)],
    pattern: &str,
    visit: &mut dyn FnMut(&repo_core::ObjectId, &Path, &Node),
) -> Result<()> {
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| repo_core::Error::invalid("pattern", format!("{pattern:?}: {e}")))?
        .compile_matcher();
    let on_path = pattern.contains('/');
    for (id, snap) in snapshots {
        let budget = WalkBudget::for_snapshot(id, snap);
        for entry in Walk::new(repo, snap.root, PathBuf::new(), true, &budget) {
            let (path, node) = entry?;
            let hit = if on_path {
                glob.is_match(&path)
            } else {
                glob.is_match(std::ffi::OsStr::from_bytes(&node.name.0))
            };
            if hit {
                visit(id, &path, &node);
            }
        }
    }
    Ok(())
}

/// How an entry differs between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    /// Content differs.
    Modified,
    /// Only metadata (mode, owner, times, xattrs, link target) differs.
    Metadata,
    /// The entry changed type (a file became a directory, …).
    TypeChanged,
}

impl Change {
    /// One-character marker, as in `diff` listings.
    pub fn marker(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
            Change::TypeChanged => 'T',
        }
    }
}

/// Calls `visit` with every difference between two snapshots, in path order.
pub fn diff(
    repo: &IndexedRepository,
    a: &str,
    b: &str,
    visit: &mut dyn FnMut(&Path, Change),
) -> Result<()> {
    let (ra, _, budget_a) = locate(repo, a, "")?;
    let (rb, _, budget_b) = locate(repo, b, "")?;
    let d = Diff {
        repo,
        budget_a,
        budget_b,
    };
    d.dirs(Some(ra), Some(rb), Path::new(""), 0, visit)
}

/// One diff: the repository and each side's walk budget. Directories recurse, no deeper
/// than [`repo_core::tree::MAX_DEPTH`] (a thread's stack holds that many levels).
struct Diff<'r> {
    repo: &'r IndexedRepository,
    budget_a: WalkBudget,
    budget_b: WalkBudget,
}

impl Diff<'_> {
    fn dirs(
        &self,
        a: Option<BlobId>,
        b: Option<BlobId>,
        base: &Path,
        depth: usize,
        visit: &mut dyn FnMut(&Path, Change),
    ) -> Result<()> {
        if a == b {
            return Ok(());
        }
        check_depth(depth, base)?;
        let repo = self.repo;
        let load = |id: Option<BlobId>| -> Result<Vec<Node>> {
            id.map(|i| repo.read_dir(&i))
                .transpose()
                .map(|n| n.unwrap_or_default())
        };
        let (na, nb) = (load(a)?, load(b)?);
        self.budget_a.spend(na.len() as u64)?;
        self.budget_b.spend(nb.len() as u64)?;
        let (mut i, mut j) = (0, 0);
        while i < na.len() || j < nb.len() {
            let order = match (na.get(i), nb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let path = base.join(na[i].name.display());
                    self.removed_or_added(&na[i], &path, Change::Removed, &self.budget_a, visit)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let path = base.join(nb[j].name.display());
                    self.removed_or_added(&nb[j], &path, Change::Added, &self.budget_b, visit)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&na[i], &nb[j]);
                    let path = base.join(x.name.display());
                    if x.kind != y.kind {
                        visit(&path, Change::TypeChanged);
                    } else if x.kind == NodeKind::Dir {
                        if !same_meta(x, y) {
                            visit(&path, Change::Metadata);
                        }
                        self.dirs(x.subtree, y.subtree, &path, depth + 1, visit)?;
                    } else if x.content != y.content || x.link_target != y.link_target {
                        visit(&path, Change::Modified);
                    } else if !same_meta(x, y) {
                        visit(&path, Change::Metadata);
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// Reports an entry and, for a directory, everything below it.
    fn removed_or_added(
        &self,
        node: &Node,
        path: &Path,
        change: Change,
        budget: &WalkBudget,
        visit: &mut dyn FnMut(&Path, Change),
    ) -> Result<()> {
        visit(path, change);
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            for entry in Walk::new(self.repo, sub, path.to_path_buf(), true, budget) {
                visit(&entry?.0, change);
            }
        }
        Ok(())
    }
}

fn same_meta(x: &Node, y: &Node) -> bool {
    x.mode == y.mode
        && x.uid == y.uid
        && x.gid == y.gid
        && x.mtime == y.mtime
        && x.xattrs == y.xattrs
}
