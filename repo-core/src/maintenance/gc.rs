//! Garbage collection in two phases (DESIGN.md, "GC protocol").
//!
//! **Mark** walks every snapshot into a [`MarkSet`] of reachable fingerprints, then streams
//! the index to find packs whose blobs are all unreachable (deleted by the sweep) or whose
//! unreachable share reaches the repack threshold (their live blobs are copied first), plus
//! packs no index lists that are older than the orphan age. It publishes a [`GcPlan`] that
//! condemns the unreachable blobs *of those packs only* (garbage left in packs below the
//! threshold stays usable for dedup) and records the snapshots and sessions of the moment.
//!
//! **Sweep**, in a later run, proceeds only when no live session could have deduplicated
//! against a condemned blob without seeing the plan (a live session that does not list the
//! plan among those it loaded). It walks every snapshot committed since the mark and
//! rescues what they reference, copies the live blobs out of doomed packs, writes index
//! files that replace the ones listing doomed packs, and only then deletes the old index
//! files, the doomed packs and finally the plan. Each step is idempotent, so a sweep killed
//! anywhere is finished by the next run.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::format::FORMAT_VERSION;
use crate::gcplan::{fingerprint, plan_key, GcPlan};
use crate::index::{index_key, IndexFile};
use crate::pack::{pack_key, BlobRecord, PackWriter};
use crate::storage::WriteMode;
use crate::{BlobId, Error, ObjectId, Progress, Repository, Result};

use super::lease::Lease;
use super::markset::MarkSet;
use super::scan::{self, SessionInfo, TreeMap};
use super::MaintenanceOptions;

/// Blobs per index file the sweep writes for repacked packs (as many as a writer's).
const BLOBS_PER_INDEX_FILE: usize = 65_536;

/// Per-pack accounting during the mark.
#[derive(Clone, Copy, Default)]
struct PackStat {
    stored: u64,
    blobs: u64,
    garbage: u64,
    garbage_blobs: u64,
}

/// What a mark found.
pub struct MarkOutcome {
    /// The published plan, if there was anything to free.
    pub plan: Option<(ObjectId, GcPlan)>,
    /// Stored bytes of unreachable blobs anywhere (including packs below the threshold).
    pub unreferenced_bytes: u64,
    pub reachable_blobs: u64,
    pub indexed_blobs: u64,
    /// Whether the mark set spilled to disk.
    pub spilled: bool,
}

pub(crate) fn mark(
    repo: &Repository,
    opts: &MaintenanceOptions,
    lease: &Lease,
    now: SystemTime,
    progress: &dyn Progress,
) -> Result<MarkOutcome> {
    // Sessions first: a writer that starts after this listing either sees the plan or is
    // caught by the sweep's rule (its session will not list the plan).
    let live_sessions: Vec<String> = scan::list_sessions(repo, now, opts.session_grace)?
        .into_iter()
        .filter(|s| !s.expired)
        .map(|s| s.id)
        .collect();
    // Snapshots, then packs, then index files: every listed snapshot's index files are
    // listed (they were written before it), and a listed pack that no listed index file
    // names really was unindexed after the listing.
    let mut snapshots = repo.snapshot_ids()?;
    snapshots.sort();
    let stored_packs = scan::list_packs(repo)?;
    let files: Vec<ObjectId> = scan::list_index(repo)?.into_iter().map(|f| f.0).collect();

    progress.start("mark: snapshots", Some(snapshots.len() as u64));
    let mut marked = MarkSet::new(opts.memory_budget, &opts.spill_dir);
    let walked = walk_snapshots(repo, &files, &snapshots, progress, |b| {
        marked.insert(fingerprint(b))
    })?;
    marked.finish()?;
    progress.finish();

    // Per-pack garbage.
    progress.start("mark: index", Some(files.len() as u64));
    let mut stats: HashMap<ObjectId, PackStat> = HashMap::new();
    let mut indexed_blobs = 0u64;
    scan::each_index_file(repo, &files, |_, file| {
        for (pack, records) in &file.packs {
            let st = stats.entry(*pack).or_default();
            for r in records {
                indexed_blobs += 1;
                st.stored += r.stored_len as u64;
                st.blobs += 1;
                if !marked.contains(fingerprint(&r.id))? {
                    st.garbage += r.stored_len as u64;
                    st.garbage_blobs += 1;
                }
            }
        }
        progress.advance(1);
        Ok(())
    })?;
    progress.finish();

    let unreferenced_bytes: u64 = stats.values().map(|s| s.garbage).sum();
    let live_bytes: u64 = stats.values().map(|s| s.stored - s.garbage).sum();
    let mut delete_packs = Vec::new();
    let mut repack_packs = Vec::new();
    let mut garbage_bytes = 0u64;
    let mut repack_live_bytes = 0u64;
    let mut mixed = Vec::new();
    for (pack, st) in &stats {
        if st.garbage_blobs == 0 {
            continue;
        }
        let size = stored_packs.get(pack).map(|p| p.0).unwrap_or(st.stored);
        if st.garbage_blobs == st.blobs {
            delete_packs.push(*pack);
            garbage_bytes += size;
        } else if st.garbage as f64 >= opts.repack_threshold * st.stored as f64 {
            repack_packs.push(*pack);
            garbage_bytes += st.garbage;
            repack_live_bytes += st.stored - st.garbage;
        } else {
            mixed.push((*pack, *st));
        }
    }
    // Then the packs with the largest garbage share, until what stays unreferenced is
    // within `max_unused` of the live bytes.
    let mut left: u64 = mixed.iter().map(|(_, st)| st.garbage).sum();
    mixed.sort_by(|a, b| {
        let share = |st: &PackStat| st.garbage as f64 / st.stored.max(1) as f64;
        share(&b.1).total_cmp(&share(&a.1)).then(a.0.cmp(&b.0))
    });
    for (pack, st) in mixed {
        if left as f64 <= opts.max_unused * live_bytes as f64 {
            break;
        }
        repack_packs.push(pack);
        garbage_bytes += st.garbage;
        repack_live_bytes += st.stored - st.garbage;
        left -= st.garbage;
    }
    let mut orphan_packs = Vec::new();
    for (pack, (size, modified)) in &stored_packs {
        let age = now.duration_since(*modified).unwrap_or_default();
        if !stats.contains_key(pack) && age >= opts.orphan_min_age {
            orphan_packs.push(*pack);
            garbage_bytes += size;
        }
    }
    delete_packs.sort();
    repack_packs.sort();
    orphan_packs.sort();

    // Condemn the unreachable blobs of the doomed packs only.
    let doomed: HashSet<ObjectId> = delete_packs.iter().chain(&repack_packs).copied().collect();
    let mut condemned = Vec::new();
    let mut garbage_blobs = 0u64;
    if !doomed.is_empty() {
        scan::each_index_file(repo, &files, |_, file| {
            for (pack, records) in &file.packs {
                if !doomed.contains(pack) {
                    continue;
                }
                for r in records {
                    let fp = fingerprint(&r.id);
                    if !marked.contains(fp)? {
                        condemned.push(fp);
                        garbage_blobs += 1;
                    }
                }
            }
            Ok(())
        })?;
    }
    condemned.sort_unstable();
    condemned.dedup();
    let reachable_blobs = marked.len();
    let spilled = marked.spilled();
    drop(marked);

    let outcome = |plan| MarkOutcome {
        plan,
        unreferenced_bytes,
        reachable_blobs,
        indexed_blobs,
        spilled,
    };
    if doomed.is_empty() && orphan_packs.is_empty() {
        return Ok(outcome(None));
    }
    let plan = GcPlan {
        version: FORMAT_VERSION,
        created: crate::time::format_rfc3339(now),
        condemned,
        delete_packs,
        repack_packs,
        orphan_packs,
        snapshots: walked,
        live_sessions,
        garbage_bytes,
        garbage_blobs,
        repack_live_bytes,
    };
    lease.ensure_held()?;
    let (id, bytes) = plan.seal(repo.key());
    match repo
        .storage()
        .put(&plan_key(&id), Bytes::from(bytes).into(), WriteMode::Create)
    {
        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(outcome(Some((id, plan))))
}

/// Calls `f` for every blob reachable from `snapshots` (each tree walked once), reading trees
/// through the index `files`. A snapshot forgotten since the listing is skipped (its blobs
/// need not be kept); one that cannot be read completely stops everything. Returns the
/// snapshots walked.
fn walk_snapshots(
    repo: &Repository,
    files: &[ObjectId],
    snapshots: &[ObjectId],
    progress: &dyn Progress,
    mut f: impl FnMut(&BlobId) -> Result<()>,
) -> Result<Vec<ObjectId>> {
    let trees = TreeMap::build(repo, files)?;
    let mut visited = HashSet::new();
    let mut walked = Vec::with_capacity(snapshots.len());
    for id in snapshots {
        let snap = match repo.get_snapshot(id) {
            Ok(s) => s,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(refuse(e, id)),
        };
        let context = format!("snapshot {id}");
        scan::walk(repo, &trees, snap.root, &context, &mut visited, &mut f)
            .map_err(|e| refuse(e, id))?;
        walked.push(*id);
        progress.advance(1);
    }
    Ok(walked)
}

/// A mark that cannot read a snapshot completely must not publish anything.
fn refuse(e: Error, snapshot: &ObjectId) -> Error {
    match e {
        Error::NotFound { what, object } => Error::NotFound {
            what,
            object: format!(
                "{object}; garbage collection refused to run because snapshot {snapshot} cannot be read completely: run `node-agent check`, then `node-agent repair snapshots`"
            ),
        },
        e => e,
    }
}

/// What a sweep did.
pub enum SweepOutcome {
    /// Live sessions that have not seen the plan: the sweep must wait for them.
    Blocked(Vec<SessionInfo>),
    Done(SweepStats),
}

#[derive(Clone, Debug, Default)]
pub struct SweepStats {
    pub deleted_packs: u64,
    pub repacked_packs: u64,
    pub rescued_blobs: u64,
    pub copied_blobs: u64,
    pub deleted_index_files: u64,
    pub written_index_files: u64,
    /// Bytes deleted minus bytes written.
    pub freed_bytes: i64,
}

/// Live sessions that block the sweep of `plan_id`.
pub(crate) fn blockers(
    repo: &Repository,
    opts: &MaintenanceOptions,
    plan_id: &ObjectId,
    now: SystemTime,
) -> Result<Vec<SessionInfo>> {
    let id = plan_id.to_string();
    Ok(scan::list_sessions(repo, now, opts.session_grace)?
        .into_iter()
        .filter(|s| !s.expired && !s.seen_plans.contains(&id))
        .collect())
}

pub(crate) fn sweep(
    repo: &Repository,
    opts: &MaintenanceOptions,
    lease: &Lease,
    plan_id: &ObjectId,
    plan: &GcPlan,
    now: SystemTime,
    progress: &dyn Progress,
) -> Result<SweepOutcome> {
    let blocking = blockers(repo, opts, plan_id, now)?;
    if !blocking.is_empty() {
        return Ok(SweepOutcome::Blocked(blocking));
    }
    let mut stats = SweepStats::default();
    // Snapshots before index files: a snapshot is committed only after its index files, so
    // every tree a listed snapshot references is in a listed index file.
    let marked: HashSet<ObjectId> = plan.snapshots.iter().copied().collect();
    let new_snapshots: Vec<ObjectId> = repo
        .snapshot_ids()?
        .into_iter()
        .filter(|s| !marked.contains(s))
        .collect();
    let index_sizes: HashMap<ObjectId, u64> = scan::list_index(repo)?.into_iter().collect();
    let files: Vec<ObjectId> = index_sizes.keys().copied().collect();
    let stored_packs = scan::list_packs(repo)?;

    // Rescue what snapshots committed since the mark reference.
    let mut rescued: HashSet<u64> = HashSet::new();
    let mut listed: HashSet<ObjectId> = marked.clone();
    let (mut to_walk, mut walk_files) = (new_snapshots, files.clone());
    while !to_walk.is_empty() {
        progress.start("sweep: rescue", Some(to_walk.len() as u64));
        let walked = walk_snapshots(repo, &walk_files, &to_walk, progress, |b| {
            let fp = fingerprint(b);
            if plan.condemned.binary_search(&fp).is_ok() {
                rescued.insert(fp);
            }
            Ok(())
        })?;
        progress.finish();
        listed.extend(to_walk.iter().copied());
        if walked.len() == to_walk.len() {
            break;
        }
        // A snapshot vanished since the listing. It may have been rewritten (`tag` writes
        // the new snapshot before deleting the old), and the new one references the same
        // blobs: list again, with the index files written meanwhile, until nothing new
        // appears.
        to_walk = repo
            .snapshot_ids()?
            .into_iter()
            .filter(|s| !listed.contains(s))
            .collect();
        walk_files = scan::list_index(repo)?.into_iter().map(|f| f.0).collect();
    }
    stats.rescued_blobs = rescued.len() as u64;
    let dead = |id: &BlobId| {
        let fp = fingerprint(id);
        plan.condemned.binary_search(&fp).is_ok() && !rescued.contains(&fp)
    };

    // Which index files list doomed packs, and the live blobs in doomed packs, sorted, by
    // the first 16 bytes of their ids (half the memory of full ids; two of a billion blobs
    // share a 128-bit prefix with odds of about 1e-21, far below those of a memory error).
    let doomed: HashSet<ObjectId> = plan
        .delete_packs
        .iter()
        .chain(&plan.repack_packs)
        .copied()
        .collect();
    let mut affected = Vec::new();
    let mut indexed_packs: HashSet<ObjectId> = HashSet::new();
    let mut with_live: Vec<ObjectId> = Vec::new();
    let mut live: Vec<u128> = Vec::new();
    scan::each_index_file(repo, &files, |file_id, file| {
        let mut touches = false;
        for (pack, records) in &file.packs {
            indexed_packs.insert(*pack);
            if doomed.contains(pack) {
                touches = true;
                let before = live.len();
                live.extend(
                    records
                        .iter()
                        .filter(|r| !dead(&r.id))
                        .map(|r| prefix(&r.id)),
                );
                if live.len() > before {
                    with_live.push(*pack);
                }
            }
        }
        if touches {
            affected.push(file_id);
        }
        Ok(())
    })?;
    live.sort_unstable();
    live.dedup();
    with_live.sort();
    with_live.dedup();

    // Live blobs already stored in a pack that stays (an earlier, interrupted sweep copied
    // them, or a writer stored them again) need no copy; neither does a blob copied once
    // from another doomed pack. One bit per live blob records both.
    let mut done = vec![false; live.len()];
    if !live.is_empty() {
        scan::each_index_file(repo, &files, |_, file| {
            for (pack, records) in &file.packs {
                if !doomed.contains(pack) {
                    for r in records {
                        if let Ok(i) = live.binary_search(&prefix(&r.id)) {
                            done[i] = true;
                        }
                    }
                }
            }
            Ok(())
        })?;
    }

    // Copy live blobs into new packs, verifying each, and index them every
    // `BLOBS_PER_INDEX_FILE` blobs. The records come from each pack's own header.
    if done.iter().any(|d| !d) {
        progress.start("sweep: repack", Some(with_live.len() as u64));
        let target = repo.config().pack_target_size as usize;
        // Trees and data go to packs of their own, as writers keep them (a reader on
        // object storage fetches a pack of trees whole: `treepacks.rs`).
        let mut writers: [PackWriter; 2] = Default::default();
        let mut new_packs: Vec<(ObjectId, Vec<BlobRecord>)> = Vec::new();
        let mut new_blobs = 0;
        for pack in &with_live {
            let key = pack_key(pack);
            let bytes = repo.storage().get(&key)?;
            let records = crate::pack::decode_pack(repo.key(), &bytes, &key)?;
            lease.ensure_held()?;
            for r in &records {
                let Ok(i) = live.binary_search(&prefix(&r.id)) else {
                    continue; // dead
                };
                if std::mem::replace(&mut done[i], true) {
                    continue;
                }
                let sealed = &bytes[r.offset as usize..r.end() as usize];
                // Never copy damage forward silently.
                crate::blob::open_blob(repo.key(), repo.config(), r.kind, &r.id, sealed, &key)?;
                let writer = &mut writers[(r.kind == crate::blob::BlobKind::Tree) as usize];
                writer.add(r.id, r.kind, Bytes::copy_from_slice(sealed), r.raw_len);
                stats.copied_blobs += 1;
                if writer.len() >= target {
                    let full = std::mem::take(writer);
                    new_blobs += full.blob_count();
                    new_packs.push(upload_pack(repo, full, &mut stats)?);
                }
            }
            if new_blobs >= BLOBS_PER_INDEX_FILE {
                write_index_file(repo, Vec::new(), std::mem::take(&mut new_packs), &mut stats)?;
                new_blobs = 0;
            }
            progress.advance(1);
        }
        for writer in writers {
            if !writer.is_empty() {
                new_packs.push(upload_pack(repo, writer, &mut stats)?);
            }
        }
        if !new_packs.is_empty() {
            write_index_file(repo, Vec::new(), new_packs, &mut stats)?;
        }
        progress.finish();
    }
    // A live blob of a doomed pack that is neither stored elsewhere nor was found in its
    // pack's header: deleting the pack would lose it.
    if let Some(i) = done.iter().position(|d| !d) {
        return Err(Error::corrupt(
            "sweep",
            format!("the index lists live blob {:032x}… in a pack scheduled for deletion, but the pack's header does not hold it; nothing was deleted: run `node-agent repair index`, then maintenance again", live[i]),
        ));
    }
    drop(live);
    drop(done);

    // Replace every index file that lists a doomed pack.
    progress.start("sweep: index", Some(affected.len() as u64));
    for file_id in &affected {
        let file = match scan::read_index_file(repo, file_id) {
            Ok(f) => f,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let kept: Vec<_> = file
            .packs
            .into_iter()
            .filter(|(p, _)| !doomed.contains(p))
            .collect();
        if !kept.is_empty() {
            write_index_file(repo, vec![*file_id], kept, &mut stats)?;
        }
        progress.advance(1);
    }
    progress.finish();

    // Only now delete: old index files first, then packs, then the plan.
    for chunk in affected.chunks(256) {
        lease.ensure_held()?;
        for file_id in chunk {
            repo.storage().delete(&index_key(file_id))?;
            stats.deleted_index_files += 1;
            stats.freed_bytes += index_sizes.get(file_id).copied().unwrap_or(0) as i64;
        }
    }
    let mut to_delete: Vec<ObjectId> = doomed.iter().copied().collect();
    // New packs get new names (their content differs from any pack of the mark's time), so
    // an orphan of the plan is never one of ours.
    to_delete.extend(
        plan.orphan_packs
            .iter()
            .filter(|p| !indexed_packs.contains(p)),
    );
    to_delete.sort();
    to_delete.dedup();
    stats.repacked_packs = plan
        .repack_packs
        .iter()
        .filter(|p| stored_packs.contains_key(p))
        .count() as u64;
    for chunk in to_delete.chunks(256) {
        lease.ensure_held()?;
        for pack in chunk {
            if let Some((size, _)) = stored_packs.get(pack) {
                repo.storage().delete(&pack_key(pack))?;
                stats.deleted_packs += 1;
                stats.freed_bytes += *size as i64;
            }
        }
    }
    lease.ensure_held()?;
    repo.storage().delete(&plan_key(plan_id))?;
    Ok(SweepOutcome::Done(stats))
}

/// The first 16 bytes of a blob id.
fn prefix(id: &BlobId) -> u128 {
    u128::from_be_bytes(id.0[..16].try_into().expect("16 bytes"))
}

fn upload_pack(
    repo: &Repository,
    writer: PackWriter,
    stats: &mut SweepStats,
) -> Result<(ObjectId, Vec<BlobRecord>)> {
    let pack = writer.finish(repo.key());
    match repo
        .storage()
        .put(&pack.key(), pack.payload.clone(), WriteMode::Create)
    {
        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    stats.freed_bytes -= pack.payload.len() as i64;
    Ok((pack.id, pack.records))
}

/// Writes an index file (create-only; the same content twice is the same object).
pub(crate) fn write_index_file(
    repo: &Repository,
    supersedes: Vec<ObjectId>,
    packs: Vec<(ObjectId, Vec<BlobRecord>)>,
    stats: &mut SweepStats,
) -> Result<ObjectId> {
    let file = IndexFile { supersedes, packs };
    let (id, bytes) = file.seal(repo.key());
    let len = bytes.len() as i64;
    match repo.storage().put(
        &index_key(&id),
        Bytes::from(bytes).into(),
        WriteMode::Create,
    ) {
        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    stats.written_index_files += 1;
    stats.freed_bytes -= len;
    Ok(id)
}

/// How long until a session-blocked sweep can go ahead at the latest (the longest time any
/// blocking session needs to expire if it stops refreshing).
pub fn blocked_for_at_most(blocking: &[SessionInfo], grace: Duration) -> Duration {
    blocking
        .iter()
        .map(|s| Duration::from_secs(s.ttl_secs.saturating_sub(s.idle_secs)) + grace)
        .max()
        .unwrap_or_default()
}
