//! How much a set of snapshots holds, and what the repository pays for it: the size a
//! restore would write, the distinct data behind it, what that data takes in storage, and
//! so the savings of deduplication and compression.

use std::collections::HashSet;

use repo_core::tree::NodeKind;
use repo_core::walk::{Walk, WalkBudget};
use repo_core::{BlobId, IndexedRepository, ObjectId, Result, Snapshot};
use serde::Serialize;

/// Sizes of a set of snapshots. Every byte count is exact; ratios are for people.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub snapshots: u64,
    /// Regular files, directories and other entries, counted in every snapshot they are in.
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    /// What restoring every one of the snapshots would write (holes included).
    pub restore_size: u64,
    /// Distinct data chunks the snapshots reference, their plaintext bytes, and what they
    /// take in storage (compressed and sealed).
    pub blobs: u64,
    pub raw_data: u64,
    pub stored_data: u64,
    /// `restore_size / raw_data`: how many times each stored byte is used.
    pub dedup_ratio: f64,
    /// `raw_data / stored_data`.
    pub compression_ratio: f64,
}

/// Adds up `snapshots`. A chunk the index does not have is counted as raw data (its plaintext
/// length is in the tree) but not as stored data: `check` says what is missing.
pub fn stats(repo: &IndexedRepository, snapshots: &[(ObjectId, Snapshot)]) -> Result<Stats> {
    let mut out = Stats {
        snapshots: snapshots.len() as u64,
        ..Default::default()
    };
    let mut seen: HashSet<BlobId> = HashSet::new();
    for (id, snap) in snapshots {
        let budget = WalkBudget::for_snapshot(id, snap);
        for entry in Walk::new(repo, snap.root, Default::default(), true, &budget) {
            let (_, node) = entry?;
            match node.kind {
                NodeKind::File => {
                    out.files += 1;
                    out.restore_size += node.size;
                    let index = repo.index();
                    for c in node.data_chunks() {
                        if seen.insert(c.0) {
                            out.blobs += 1;
                            out.raw_data += c.1 as u64;
                            if let Some(loc) = index.lookup(&c.0) {
                                out.stored_data += loc.stored_len as u64;
                            }
                        }
                    }
                }
                NodeKind::Dir => out.dirs += 1,
                _ => out.others += 1,
            }
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    out.dedup_ratio = ratio(out.restore_size, out.raw_data);
    out.compression_ratio = ratio(out.raw_data, out.stored_data);
    Ok(out)
}
