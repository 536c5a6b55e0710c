//! `check`: verifies the repository's structure and, optionally, every byte of data.
//!
//! Structure: key files, index files and snapshots match their names and decrypt; every
//! indexed pack exists and is large enough; every snapshot's trees read and every blob they
//! reference is indexed. With `read_data`: every pack is downloaded, matches its name, its
//! header matches the index, and every blob decrypts and matches its id. Problems are listed,
//! each naming the object and blob; check never stops at the first one and never writes.

use std::collections::{HashMap, HashSet};

use crate::pack::{decode_pack, pack_key};
use crate::snapshot::snapshot_key;
use crate::tree::NodeKind;
use crate::{BlobId, Error, IndexedRepository, ObjectId, Progress};

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Download and verify packs (all of them, or `subset`).
    pub read_data: bool,
    /// Which packs `read_data` reads.
    pub subset: DataSubset,
}

impl CheckOptions {
    /// Check everything and read every pack (`check --read-data`).
    pub fn read_all() -> Self {
        CheckOptions {
            read_data: true,
            subset: DataSubset::All,
        }
    }
}

/// A deterministic share of the packs, chosen by pack id: the same packs every run, so
/// `1/5` … `5/5` on five runs read everything exactly once.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum DataSubset {
    #[default]
    All,
    /// Slice `n` of `of` (1-based): packs whose id, first four bytes as a little-endian
    /// number, is `n - 1` modulo `of`.
    Slice { n: u32, of: u32 },
    /// About this percentage of the packs: those whose id's first four bytes fall in the
    /// lowest `percent`% of their range.
    Percent(f64),
}

impl DataSubset {
    /// Parses `P%` (0 < P <= 100) or `n/t` (1 <= n <= t).
    pub fn parse(s: &str) -> crate::Result<Self> {
        let bad = |why: &str| crate::Error::invalid("read-data subset", format!("{s:?}: {why}"));
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad("not a percentage"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad("the percentage must be above 0 and at most 100"));
            }
            return Ok(DataSubset::Percent(p));
        }
        let (n, t) = s.split_once('/').ok_or_else(|| bad("use P% or n/t"))?;
        let (n, of): (u32, u32) = (
            n.trim().parse().map_err(|_| bad("n is not a number"))?,
            t.trim().parse().map_err(|_| bad("t is not a number"))?,
        );
        if n == 0 || of == 0 || n > of {
            return Err(bad("n/t needs 1 <= n <= t"));
        }
        Ok(DataSubset::Slice { n, of })
    }

    /// Whether a pack is in the subset.
    pub fn contains(&self, pack: &ObjectId) -> bool {
        let x = u32::from_le_bytes([pack.0[0], pack.0[1], pack.0[2], pack.0[3]]);
        match *self {
            DataSubset::All => true,
            DataSubset::Slice { n, of } => x % of == n - 1,
            DataSubset::Percent(p) => (x as f64) < p / 100.0 * 4_294_967_296.0,
        }
    }
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The storage object (`data/ab/…`, `index/…`, `snapshots/…`).
    pub object: String,
    pub blob: Option<BlobId>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.object)?;
        if let Some(b) = self.blob {
            write!(f, " blob {b}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The result of a check.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub index_files: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    /// Damage: anything here makes `check` fail.
    pub problems: Vec<Problem>,
    /// Harmless findings (packs no index lists, left by an interrupted backup).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(object: impl Into<String>, blob: Option<BlobId>, message: impl Into<String>) -> Problem {
    Problem {
        object: object.into(),
        blob,
        message: message.into(),
    }
}

fn from_error(object: &str, e: &Error) -> Problem {
    match e {
        Error::Corrupt {
            object,
            blob,
            reason,
        } => problem(object.clone(), *blob, reason.clone()),
        other => problem(object, None, other.to_string()),
    }
}

/// Runs the check. Errors are returned only when the storage cannot be listed at all.
pub fn check(
    repo: &IndexedRepository,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> crate::Result<CheckReport> {
    let storage = repo.storage();
    let key = repo.key();
    let mut report = CheckReport::default();

    // Key files must match their names.
    for info in storage.list("keys/")? {
        match storage.get(&info.key) {
            Ok(b)
                if info
                    .key
                    .strip_prefix("keys/")
                    .and_then(|s| s.parse::<ObjectId>().ok())
                    == Some(ObjectId::of(&b)) => {}
            Ok(_) => report.problems.push(problem(
                &info.key,
                None,
                "content does not match its name (damaged key file)",
            )),
            Err(e) => report.problems.push(from_error(&info.key, &e)),
        }
    }

    // Index files, read fresh from storage: packs they list, with the largest offset used.
    let mut indexed: HashMap<ObjectId, (u64, Vec<crate::pack::BlobRecord>)> = HashMap::new();
    // Every indexed blob with its plaintext length (content entries must agree with it).
    let mut blob_ids: HashMap<BlobId, u32> = HashMap::new();
    for info in storage.list("index/")? {
        report.index_files += 1;
        let bytes = match storage.get(&info.key) {
            Ok(b) => b,
            Err(e) => {
                report.problems.push(from_error(&info.key, &e));
                continue;
            }
        };
        if info
            .key
            .strip_prefix("index/")
            .and_then(|s| s.parse::<ObjectId>().ok())
            != Some(ObjectId::of(&bytes))
        {
            report.problems.push(problem(
                &info.key,
                None,
                "content does not match its name (damaged index file)",
            ));
            continue;
        }
        match crate::index::IndexFile::open(key, &bytes, &info.key) {
            Ok(f) => {
                for (pack, records) in f.packs {
                    let end = records.iter().map(|r| r.end()).max().unwrap_or(0);
                    blob_ids.extend(records.iter().map(|r| (r.id, r.raw_len)));
                    let e = indexed.entry(pack).or_insert((0, Vec::new()));
                    e.0 = e.0.max(end);
                    e.1.extend(records);
                }
            }
            Err(e) => report.problems.push(from_error(&info.key, &e)),
        }
    }
    report.blobs = blob_ids.len();

    // Packs: every indexed one exists and is long enough.
    let stored: HashMap<ObjectId, u64> = storage
        .list("data/")?
        .into_iter()
        .filter_map(|i| crate::pack::pack_id_from_key(&i.key).map(|id| (id, i.size)))
        .collect();
    report.packs = stored.len();
    let mut sorted_packs: Vec<_> = indexed.keys().copied().collect();
    sorted_packs.sort();
    for pack in &sorted_packs {
        let (end, _) = &indexed[pack];
        match stored.get(pack) {
            None => report.problems.push(problem(
                pack_key(pack),
                None,
                "pack is listed in the index but missing from storage",
            )),
            Some(&size) if size < *end => report.problems.push(problem(
                pack_key(pack),
                None,
                format!("pack has {size} bytes but the index points to byte {end} (truncated)"),
            )),
            _ => {}
        }
    }
    let unindexed = stored.keys().filter(|p| !indexed.contains_key(p)).count();
    if unindexed > 0 {
        report.notes.push(format!("{unindexed} pack(s) are not in any index (left by an interrupted backup; maintenance reclaims them)"));
    }

    // Snapshots and their trees.
    let ids = repo.snapshot_ids()?;
    report.snapshots = ids.len();
    progress.start("snapshots", Some(ids.len() as u64));
    let mut trees_seen: HashSet<BlobId> = HashSet::new();
    for id in &ids {
        let skey = snapshot_key(id);
        let snap = match repo.get_snapshot(id) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(from_error(&skey, &e));
                continue;
            }
        };
        // Directories are read as a restore reads them (`read_dir`: parts joined, in order,
        // not nested, names unique), so `check` rejects what a restore would.
        let mut stack = vec![(snap.root, String::from("/"))];
        while let Some((tree_id, path)) = stack.pop() {
            if !trees_seen.insert(tree_id) {
                continue;
            }
            if path.matches('/').count() > crate::tree::MAX_DEPTH {
                report.problems.push(problem(
                    &skey,
                    Some(tree_id),
                    format!(
                        "{path}: directories nested deeper than {}",
                        crate::tree::MAX_DEPTH
                    ),
                ));
                continue;
            }
            if !blob_ids.contains_key(&tree_id) {
                report.problems.push(problem(
                    &skey,
                    Some(tree_id),
                    format!("tree of {path} is not in the index"),
                ));
                continue;
            }
            let nodes = match repo.read_dir(&tree_id) {
                Ok(n) => n,
                Err(e) => {
                    let mut p = from_error(&skey, &e);
                    if p.object == "tree" {
                        // A tree that does not decode: the snapshot is what a person acts on.
                        p.object = skey.clone();
                    }
                    p.message = format!("tree of {path}: {}", p.message);
                    report.problems.push(p);
                    continue;
                }
            };
            let mut unseen = crate::walk::subtrees(&nodes);
            unseen.retain(|t| !trees_seen.contains(t));
            repo.prefetch_trees(&unseen);
            for node in &nodes {
                let child = format!("{}{}", path, node.name.display());
                for c in node.data_chunks() {
                    match blob_ids.get(&c.0) {
                        None => report.problems.push(problem(
                            &skey,
                            Some(c.0),
                            format!("data of {child} is not in the index"),
                        )),
                        Some(&len) if len != c.1 => report.problems.push(problem(
                            &skey,
                            Some(c.0),
                            format!(
                                "{child} says its chunk has {} bytes, the blob has {len}",
                                c.1
                            ),
                        )),
                        Some(_) => {}
                    }
                }
                if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                    stack.push((sub, format!("{child}/")));
                }
            }
        }
        progress.advance(1);
    }
    progress.finish();

    if opts.read_data {
        let sorted_packs: Vec<ObjectId> = sorted_packs
            .into_iter()
            .filter(|p| opts.subset.contains(p))
            .collect();
        progress.start("read-data", Some(sorted_packs.len() as u64));
        let threads = repo.options().threads.max(2);
        let mut found = Vec::new();
        crate::parallel::ordered_map(
            sorted_packs.len(),
            threads,
            threads * 2,
            |i| read_pack(repo, &sorted_packs[i], &indexed[&sorted_packs[i]].1),
            |_, mut p| {
                found.append(&mut p);
                progress.advance(1);
                Ok::<_, ()>(())
            },
        )
        .ok();
        report.packs_read = sorted_packs.len();
        report.problems.extend(found);
        progress.finish();
    }
    Ok(report)
}

/// Downloads one pack and verifies it completely.
fn read_pack(
    repo: &IndexedRepository,
    pack: &ObjectId,
    records: &[crate::pack::BlobRecord],
) -> Vec<Problem> {
    let key = pack_key(pack);
    let bytes = match repo.storage().get(&key) {
        Ok(b) => b,
        Err(Error::NotFound { .. }) => return Vec::new(), // already reported
        Err(e) => return vec![from_error(&key, &e)],
    };
    let mut out = Vec::new();
    if ObjectId::of(&bytes) != *pack {
        out.push(problem(
            &key,
            None,
            "content does not match its name (damaged pack)",
        ));
    }
    match decode_pack(repo.key(), &bytes, &key) {
        Ok(header) => {
            let in_header: HashSet<_> = header
                .iter()
                .map(|r| (r.id, r.offset, r.stored_len))
                .collect();
            for r in records {
                if !in_header.contains(&(r.id, r.offset, r.stored_len)) {
                    out.push(problem(
                        &key,
                        Some(r.id),
                        "index entry does not match the pack header",
                    ));
                }
            }
        }
        Err(e) => out.push(from_error(&key, &e)),
    }
    for r in records {
        let Some(stored) = bytes.get(r.offset as usize..r.end() as usize) else {
            out.push(problem(
                &key,
                Some(r.id),
                "blob lies past the end of the pack",
            ));
            continue;
        };
        match crate::blob::open_blob(repo.key(), repo.config(), r.kind, &r.id, stored, &key) {
            Ok(plain) if plain.len() != r.raw_len as usize => out.push(problem(
                &key,
                Some(r.id),
                format!(
                    "blob has {} bytes, the index says {}",
                    plain.len(),
                    r.raw_len
                ),
            )),
            Ok(_) => {}
            Err(e) => out.push(from_error(&key, &e)),
        }
    }
    out
}
