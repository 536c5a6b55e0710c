//! Streaming reads for maintenance: index files one at a time, tree locations only, tree
//! walks, and the sessions in the repository. Nothing here holds the whole index.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use crate::blob::BlobKind;
use crate::index::{index_key, IndexFile};
use crate::pack::BlobRecord;
use crate::repository::id_from_key;
use crate::session::SessionRecord;
use crate::tree::Tree;
use crate::{BlobId, Error, ObjectId, Repository, Result};

/// Index files in storage with their sizes.
pub(crate) fn list_index(repo: &Repository) -> Result<Vec<(ObjectId, u64)>> {
    Ok(repo
        .storage()
        .list("index/")?
        .into_iter()
        .filter_map(|i| id_from_key(&i.key, "index/").map(|id| (id, i.size)))
        .collect())
}

/// Packs in storage: size and modification time.
pub(crate) fn list_packs(repo: &Repository) -> Result<HashMap<ObjectId, (u64, SystemTime)>> {
    Ok(repo
        .storage()
        .list("data/")?
        .into_iter()
        .filter_map(|i| {
            crate::pack::pack_id_from_key(&i.key).map(|id| (id, (i.size, i.last_modified)))
        })
        .collect())
}

/// Reads and verifies one index file from storage.
pub(crate) fn read_index_file(repo: &Repository, id: &ObjectId) -> Result<IndexFile> {
    let bytes = repo.storage().get(&index_key(id))?;
    IndexFile::open_stored(repo.key(), id, &bytes)
}

/// Calls `f` with each index file, in order, reading a few ahead in parallel. A file that
/// vanished meanwhile is skipped (only the lease holder deletes index files, and compaction
/// by an earlier holder may still be visible in a stale listing).
pub(crate) fn each_index_file(
    repo: &Repository,
    files: &[ObjectId],
    mut f: impl FnMut(ObjectId, IndexFile) -> Result<()>,
) -> Result<()> {
    let threads = repo.read_parallelism();
    let mut failure = None;
    crate::parallel::ordered_map(
        files.len(),
        threads,
        threads,
        |i| match read_index_file(repo, &files[i]) {
            Ok(file) => Ok(Some(file)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        |i, r| {
            let r = r.and_then(|file| match file {
                Some(file) => f(files[i], file),
                None => Ok(()),
            });
            r.map_err(|e| {
                failure = Some(e);
            })
        },
    )
    .ok();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Where tree blobs are: only trees, 44 bytes each, so a walk needs no full index.
#[derive(Default)]
pub(crate) struct TreeMap {
    packs: Vec<ObjectId>,
    pack_numbers: HashMap<ObjectId, u32>,
    entries: Vec<([u8; 32], u32, u32, u32)>,
}

impl TreeMap {
    pub fn add(&mut self, pack: ObjectId, records: &[BlobRecord]) {
        let mut number = None;
        for r in records.iter().filter(|r| r.kind == BlobKind::Tree) {
            let n = *number.get_or_insert_with(|| {
                *self.pack_numbers.entry(pack).or_insert_with(|| {
                    self.packs.push(pack);
                    (self.packs.len() - 1) as u32
                })
            });
            self.entries.push((r.id.0, n, r.offset, r.stored_len));
        }
    }

    pub fn finish(&mut self) {
        self.entries.sort_unstable_by_key(|e| e.0);
        self.entries.dedup_by_key(|e| e.0);
        self.entries.shrink_to_fit();
        self.pack_numbers = HashMap::new();
    }

    /// Pack, offset and stored length of a tree blob.
    pub fn lookup(&self, id: &BlobId) -> Option<(ObjectId, u32, u32)> {
        self.entries
            .binary_search_by(|e| e.0.cmp(&id.0))
            .ok()
            .map(|i| {
                let e = &self.entries[i];
                (self.packs[e.1 as usize], e.2, e.3)
            })
    }

    /// Builds the map from every index file in `files`.
    pub fn build(repo: &Repository, files: &[ObjectId]) -> Result<Self> {
        let mut map = TreeMap::default();
        each_index_file(repo, files, |_, file| {
            for (pack, records) in &file.packs {
                map.add(*pack, records);
            }
            Ok(())
        })?;
        map.finish();
        Ok(map)
    }
}

/// Reads a tree blob through the tree map.
fn read_tree(repo: &Repository, map: &TreeMap, id: &BlobId, context: &str) -> Result<Tree> {
    let (pack, offset, len) = map.lookup(id).ok_or_else(|| Error::NotFound {
        what: "tree blob (not in the index)",
        object: format!("{id}, {context}"),
    })?;
    let key = crate::pack::pack_key(&pack);
    let stored = repo
        .storage()
        .get_range(&key, offset as u64..offset as u64 + len as u64)
        .map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: "pack",
                object: format!("{key} (holding tree {id}, {context})"),
            },
            e => e,
        })?;
    let plain =
        crate::blob::open_blob(repo.key(), repo.config(), BlobKind::Tree, id, &stored, &key)?;
    Tree::decode(&plain, *id)
}

/// Calls `f` for every blob reachable from `root` (trees and data), skipping trees already
/// in `visited` (and adding those it walks). Trees are read a level at a time, in parallel.
/// Any tree that cannot be read fails the walk: maintenance never guesses.
pub(crate) fn walk(
    repo: &Repository,
    map: &TreeMap,
    root: BlobId,
    context: &str,
    visited: &mut HashSet<BlobId>,
    mut f: impl FnMut(&BlobId) -> Result<()>,
) -> Result<()> {
    if !visited.insert(root) {
        return Ok(());
    }
    let mut frontier = vec![root];
    let threads = repo.read_parallelism() * 2;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        let mut failure = None;
        crate::parallel::ordered_map(
            frontier.len(),
            threads,
            threads * 4,
            |i| read_tree(repo, map, &frontier[i], context),
            |i, r| {
                let step = r.and_then(|tree| {
                    f(&frontier[i])?;
                    for node in &tree.nodes {
                        for c in node.data_chunks() {
                            f(&c.0)?;
                        }
                    }
                    for sub in tree.child_trees() {
                        if visited.insert(sub) {
                            next.push(sub);
                        }
                    }
                    Ok(())
                });
                step.map_err(|e| {
                    failure = Some(e);
                })
            },
        )
        .ok();
        if let Some(e) = failure {
            return Err(e);
        }
        frontier = next;
    }
    Ok(())
}

/// A writer session as maintenance sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started: String,
    /// Last refresh, storage clock (RFC 3339).
    pub refreshed: String,
    /// Seconds since the last refresh.
    pub idle_secs: u64,
    pub ttl_secs: u64,
    /// Past its TTL plus the grace period: it counts as ended.
    pub expired: bool,
    pub seen_plans: Vec<String>,
}

/// The sessions in storage. An unreadable session object counts as a live session with the
/// default TTL until it expires (never as an ended one).
pub(crate) fn list_sessions(
    repo: &Repository,
    now: SystemTime,
    grace: Duration,
) -> Result<Vec<SessionInfo>> {
    let mut out = Vec::new();
    for info in repo.storage().list("sessions/")? {
        let rec = match repo.storage().get(&info.key) {
            Ok(b) => SessionRecord::open(repo.key(), &b, &info.key).ok(),
            Err(Error::NotFound { .. }) => continue, // ended meanwhile
            Err(e) => return Err(e),
        };
        let idle = now.duration_since(info.last_modified).unwrap_or_default();
        let ttl = rec
            .as_ref()
            .map(|r| r.ttl_secs)
            .unwrap_or(crate::session::DEFAULT_SESSION_TTL.as_secs());
        let id = info
            .key
            .strip_prefix("sessions/")
            .unwrap_or(&info.key)
            .to_string();
        out.push(SessionInfo {
            id,
            host: rec.as_ref().map(|r| r.host.clone()).unwrap_or_default(),
            pid: rec.as_ref().map(|r| r.pid).unwrap_or_default(),
            started: rec.as_ref().map(|r| r.started.clone()).unwrap_or_default(),
            refreshed: crate::time::format_rfc3339(info.last_modified),
            idle_secs: idle.as_secs(),
            ttl_secs: ttl,
            expired: idle > Duration::from_secs(ttl) + grace,
            seen_plans: rec.map(|r| r.seen_plans).unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.started.cmp(&b.started));
    Ok(out)
}
