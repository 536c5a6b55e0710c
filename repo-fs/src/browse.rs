//! Looking into snapshots without restoring: list a directory (or a whole subtree) and
//! compare two snapshots. Unchanged subtrees are skipped by id, so a diff of two backups
//! reads only the directories that differ.

use std::path::{Path, PathBuf};

use repo_core::tree::{Node, NodeKind};
use repo_core::{BlobId, IndexedRepository, Result, SnapshotFilter};

/// Root tree of a snapshot and the node at `path` below it (`None` for the root itself).
fn locate(repo: &IndexedRepository, snapshot: &str, path: &str) -> Result<(BlobId, Option<Node>)> {
    let (_, snap) = repo.find_snapshot(snapshot, &SnapshotFilter::default())?;
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok((snap.root, None));
    }
    Ok((snap.root, Some(repo.find_node(&snap.root, path)?)))
}

/// Calls `visit` with each entry at `path` in a snapshot (the entry itself if it is not a
/// directory), depth-first and in name order; with `recursive`, everything below too.
pub fn list(
    repo: &IndexedRepository,
    snapshot: &str,
    path: &str,
    recursive: bool,
    visit: &mut dyn FnMut(&Path, &Node),
) -> Result<()> {
    let (root, node) = locate(repo, snapshot, path)?;
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
    walk(repo, &dir, &base, recursive, visit)
}

fn walk(
    repo: &IndexedRepository,
    dir: &BlobId,
    base: &Path,
    recursive: bool,
    visit: &mut dyn FnMut(&Path, &Node),
) -> Result<()> {
    for node in repo.read_dir(dir)? {
        let path = base.join(node.name.display());
        visit(&path, &node);
        if let (true, NodeKind::Dir, Some(sub)) = (recursive, node.kind, node.subtree) {
            walk(repo, &sub, &path, recursive, visit)?;
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
    let (ra, _) = locate(repo, a, "")?;
    let (rb, _) = locate(repo, b, "")?;
    diff_dirs(repo, Some(ra), Some(rb), Path::new(""), visit)
}

fn diff_dirs(
    repo: &IndexedRepository,
    a: Option<BlobId>,
    b: Option<BlobId>,
    base: &Path,
    visit: &mut dyn FnMut(&Path, Change),
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<BlobId>| -> Result<Vec<Node>> {
        id.map(|i| repo.read_dir(&i))
            .transpose()
            .map(|n| n.unwrap_or_default())
    };
    let (na, nb) = (load(a)?, load(b)?);
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
                removed_or_added(repo, &na[i], &path, Change::Removed, visit)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let path = base.join(nb[j].name.display());
                removed_or_added(repo, &nb[j], &path, Change::Added, visit)?;
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
                    diff_dirs(repo, x.subtree, y.subtree, &path, visit)?;
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

fn same_meta(x: &Node, y: &Node) -> bool {
    x.mode == y.mode
        && x.uid == y.uid
        && x.gid == y.gid
        && x.mtime == y.mtime
        && x.xattrs == y.xattrs
}

/// Reports an entry and, for a directory, everything below it.
fn removed_or_added(
    repo: &IndexedRepository,
    node: &Node,
    path: &Path,
    change: Change,
    visit: &mut dyn FnMut(&Path, Change),
) -> Result<()> {
    visit(path, change);
    if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
        for child in repo.read_dir(&sub)? {
            removed_or_added(
                repo,
                &child,
                &path.join(child.name.display()),
                change,
                visit,
            )?;
        }
    }
    Ok(())
}
