//! Repair: rebuild the index from pack headers, and find (or forget) snapshots whose data is
//! gone. Both report before they change anything, and both hold the maintenance lease while
//! they write.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::pack::{decode_header, header_len_from_trailer, pack_key, BlobRecord, TRAILER_LEN};
use crate::{BlobId, Error, IndexedRepository, ObjectId, Progress, Repository, Result};

use super::gc::{write_index_file, SweepStats};
use super::lease::Lease;
use super::scan;

/// Blobs per rebuilt index file.
const BLOBS_PER_FILE: usize = 65_536;

/// A damaged object met by a repair.
#[derive(Clone, Debug, Serialize)]
pub struct Damage {
    pub object: String,
    pub reason: String,
}

/// What `repair index` found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IndexRepair {
    pub packs_read: usize,
    pub blobs: u64,
    /// Packs whose header could not be read: their blobs are not in the new index.
    pub damaged_packs: Vec<Damage>,
    /// Blobs the old index listed that no pack header has.
    pub lost_blobs: u64,
    /// Blobs the pack headers have that the old index lacked.
    pub recovered_blobs: u64,
    pub index_files_written: u64,
    pub index_files_removed: u64,
    pub dry_run: bool,
}

/// Reads the header of a pack of known size.
fn read_pack_header(repo: &Repository, pack: &ObjectId, size: u64) -> Result<Vec<BlobRecord>> {
    let key = pack_key(pack);
    if size < TRAILER_LEN as u64 {
        return Err(Error::corrupt(&key, "pack shorter than its trailer"));
    }
    let trailer = repo
        .storage()
        .get_range(&key, size - TRAILER_LEN as u64..size)?;
    let hlen = header_len_from_trailer(&trailer, size, &key)?;
    let start = size - TRAILER_LEN as u64 - hlen;
    let header = repo
        .storage()
        .get_range(&key, start..size - TRAILER_LEN as u64)?;
    decode_header(repo.key(), &header, start, &key)
}

/// Rebuilds the index from the headers of every pack in storage: new index files are
/// written, then the old ones removed. With `dry_run`, only reports.
pub fn rebuild_index(
    repo: &Repository,
    dry_run: bool,
    lease_ttl: std::time::Duration,
    progress: &dyn Progress,
) -> Result<IndexRepair> {
    let lease = if dry_run {
        None
    } else {
        Some(Lease::acquire(
            repo.storage().clone(),
            repo.key().clone(),
            lease_ttl,
        )?)
    };
    let mut out = IndexRepair {
        dry_run,
        ..Default::default()
    };
    let old_files: Vec<ObjectId> = scan::list_index(repo)?.into_iter().map(|f| f.0).collect();
    // Fingerprint sets (8 bytes a blob) of what the old index and the headers list.
    let mut old_blobs: HashSet<BlobId> = HashSet::new();
    scan::each_index_file(repo, &old_files, |_, f| {
        for (_, records) in &f.packs {
            old_blobs.extend(records.iter().map(|r| r.id));
        }
        Ok(())
    })
    .or_else(|e| match e {
        // A damaged old index is what this repair is for.
        Error::Corrupt { .. } => Ok(()),
        e => Err(e),
    })?;
    let mut packs: Vec<(ObjectId, u64)> = scan::list_packs(repo)?
        .into_iter()
        .map(|(id, (size, _))| (id, size))
        .collect();
    packs.sort();
    progress.start("repair: pack headers", Some(packs.len() as u64));
    let mut batch: Vec<(ObjectId, Vec<BlobRecord>)> = Vec::new();
    let mut in_batch = 0;
    let mut stats = SweepStats::default();
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut written: HashSet<ObjectId> = HashSet::new();
    for (pack, size) in &packs {
        match read_pack_header(repo, pack, *size) {
            Ok(records) => {
                out.packs_read += 1;
                out.blobs += records.len() as u64;
                for r in &records {
                    if seen.insert(r.id) && !old_blobs.remove(&r.id) {
                        out.recovered_blobs += 1;
                    }
                }
                in_batch += records.len();
                batch.push((*pack, records));
                if in_batch >= BLOBS_PER_FILE && !dry_run {
                    written.insert(write_index_file(
                        repo,
                        Vec::new(),
                        std::mem::take(&mut batch),
                        &mut stats,
                    )?);
                    in_batch = 0;
                }
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => out.damaged_packs.push(Damage {
                object: pack_key(pack),
                reason: e.to_string(),
            }),
        }
        progress.advance(1);
    }
    progress.finish();
    out.lost_blobs = old_blobs.len() as u64;
    if dry_run {
        return Ok(out);
    }
    let lease = lease.expect("held when not a dry run");
    if !batch.is_empty() {
        written.insert(write_index_file(
            repo,
            old_files.clone(),
            batch,
            &mut stats,
        )?);
    }
    out.index_files_written = stats.written_index_files;
    lease.ensure_held()?;
    for id in &old_files {
        // Rebuilding an intact index may reproduce an old file byte for byte: keep it.
        if written.contains(id) {
            continue;
        }
        repo.storage().delete(&crate::index::index_key(id))?;
        out.index_files_removed += 1;
    }
    lease.release()?;
    Ok(out)
}

/// A snapshot whose data is (partly) gone.
#[derive(Clone, Debug, Serialize)]
pub struct DamagedSnapshot {
    pub id: String,
    pub time: String,
    pub host: String,
    pub source: String,
    pub missing_blobs: u64,
    /// The first problem, naming the object and blob.
    pub first_problem: String,
}

/// What `repair snapshots` found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SnapshotRepair {
    pub snapshots_checked: usize,
    pub damaged: Vec<DamagedSnapshot>,
    pub forgotten: usize,
}

/// Finds snapshots referencing blobs that are not indexed or whose pack is gone, and with
/// `forget` deletes them (their intact data stays for other snapshots until maintenance).
pub fn check_snapshots(
    repo: &IndexedRepository,
    forget: bool,
    progress: &dyn Progress,
) -> Result<SnapshotRepair> {
    let packs: HashMap<ObjectId, (u64, std::time::SystemTime)> = scan::list_packs(repo)?;
    let mut out = SnapshotRepair::default();
    let snaps = repo.list_snapshots(&Default::default())?;
    progress.start("repair: snapshots", Some(snaps.len() as u64));
    // Per tree: missing blob count below it, and the first problem.
    let mut verdicts: HashMap<BlobId, (u64, Option<String>)> = HashMap::new();
    for (id, snap) in &snaps {
        out.snapshots_checked += 1;
        let (missing, first) = tree_damage(repo, &packs, snap.root, &mut verdicts);
        if missing > 0 {
            out.damaged.push(DamagedSnapshot {
                id: id.to_string(),
                time: snap.time.clone(),
                host: snap.host.clone(),
                source: snap.source.clone(),
                missing_blobs: missing,
                first_problem: first.unwrap_or_default(),
            });
        }
        progress.advance(1);
    }
    progress.finish();
    if forget {
        for d in &out.damaged {
            let id: ObjectId = d.id.parse().expect("our own id");
            repo.delete_snapshot(&id)?;
            out.forgotten += 1;
        }
    }
    Ok(out)
}

fn blob_problem(
    repo: &IndexedRepository,
    packs: &HashMap<ObjectId, (u64, std::time::SystemTime)>,
    id: &BlobId,
) -> Option<String> {
    match repo.index().lookup(id) {
        None => Some(format!("blob {id} is not in the index")),
        Some(loc) if !packs.contains_key(&loc.pack) => Some(format!(
            "blob {id} is in pack {}, which is missing",
            pack_key(&loc.pack)
        )),
        Some(loc) => {
            let size = packs[&loc.pack].0;
            (loc.offset as u64 + loc.stored_len as u64 > size).then(|| {
                format!(
                    "blob {id} lies past the end of pack {} (truncated)",
                    pack_key(&loc.pack)
                )
            })
        }
    }
}

/// Missing blobs below a tree (memoized per tree), and the first problem.
fn tree_damage(
    repo: &IndexedRepository,
    packs: &HashMap<ObjectId, (u64, std::time::SystemTime)>,
    root: BlobId,
    verdicts: &mut HashMap<BlobId, (u64, Option<String>)>,
) -> (u64, Option<String>) {
    if let Some(v) = verdicts.get(&root) {
        return v.clone();
    }
    let verdict = match blob_problem(repo, packs, &root) {
        Some(p) => (1, Some(p)),
        None => match repo.read_tree(&root) {
            Err(e) => (1, Some(format!("tree {root}: {e}"))),
            Ok(tree) => {
                let mut missing = 0;
                let mut first = None;
                for node in &tree.nodes {
                    for c in node.data_chunks() {
                        if let Some(p) = blob_problem(repo, packs, &c.0) {
                            missing += 1;
                            first.get_or_insert(format!("{} (file {})", p, node.name.display()));
                        }
                    }
                }
                for sub in tree.child_trees() {
                    let (m, f) = tree_damage(repo, packs, sub, verdicts);
                    missing += m;
                    if first.is_none() {
                        first = f;
                    }
                }
                (missing, first)
            }
        },
    };
    verdicts.insert(root, verdict.clone());
    verdict
}
