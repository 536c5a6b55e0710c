//! Index compaction (quick maintenance): many small index files, as every backup writes at
//! least one, are merged into few large ones. The merged files are written first and the
//! small ones deleted after, so a reader always finds every blob (readers that see a file
//! vanish reload, see [`crate::IndexedRepository::refresh`]).

use std::collections::HashSet;

use crate::index::index_key;
use crate::pack::BlobRecord;
use crate::{Error, ObjectId, Repository, Result};

use super::gc::{write_index_file, SweepStats};
use super::lease::Lease;
use super::{scan, MaintenanceOptions};

/// Blobs per merged index file (as many as a writer puts in one).
const MERGED_BLOBS: usize = 65_536;

/// What compaction did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CompactStats {
    pub merged_files: u64,
    pub written_files: u64,
}

pub(crate) fn compact_index(
    repo: &Repository,
    opts: &MaintenanceOptions,
    lease: &Lease,
) -> Result<CompactStats> {
    let mut small: Vec<ObjectId> = scan::list_index(repo)?
        .into_iter()
        .filter(|(_, size)| *size < opts.small_index_bytes)
        .map(|(id, _)| id)
        .collect();
    let mut out = CompactStats::default();
    if small.len() < opts.compact_min_files {
        return Ok(out);
    }
    small.sort();
    let mut scratch = SweepStats::default();
    let mut packs: Vec<(ObjectId, Vec<BlobRecord>)> = Vec::new();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut inputs = Vec::new();
    let mut done = Vec::new();
    let mut blobs = 0;
    for id in &small {
        let file = match scan::read_index_file(repo, id) {
            Ok(f) => f,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        inputs.push(*id);
        for (pack, records) in file.packs {
            if seen.insert(pack) {
                blobs += records.len();
                packs.push((pack, records));
            }
        }
        if blobs >= MERGED_BLOBS {
            write_index_file(
                repo,
                inputs.clone(),
                std::mem::take(&mut packs),
                &mut scratch,
            )?;
            done.append(&mut inputs);
            seen.clear();
            blobs = 0;
        }
    }
    if !packs.is_empty() || !inputs.is_empty() {
        write_index_file(repo, inputs.clone(), packs, &mut scratch)?;
        done.append(&mut inputs);
    }
    out.written_files = scratch.written_index_files;
    lease.ensure_held()?;
    // A merged file lists its inputs in `supersedes`, so it never has an input's name.
    for id in &done {
        repo.storage().delete(&index_key(id))?;
        out.merged_files += 1;
    }
    Ok(out)
}
