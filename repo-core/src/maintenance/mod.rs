//! Maintenance: garbage collection, index compaction and the bookkeeping around them.
//!
//! [`run`] takes the maintenance lease, does the quick work (index compaction, removal of
//! expired session objects) and, in full mode when due, the GC: sweep the pending plan if
//! no session blocks it, then mark a new one. Every run is recorded in the repository's
//! history (the last 25). [`status`] explains the pending plan, what it waits for, the last
//! runs and the repository's size, without taking the lease.
//!
//! Memory: the mark keeps 8 bytes per reachable blob (spilling beyond
//! [`MaintenanceOptions::memory_budget`]), 8 per condemned blob, and tree locations; never
//! the full index.

pub mod compact;
mod gc;
pub mod history;
pub mod lease;
pub mod markset;
pub mod repair;
mod scan;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::gcplan::{GcPlan, PLANS_PREFIX};
use crate::repository::id_from_key;
use crate::time::format_rfc3339;
use crate::{Error, ObjectId, Progress, Repository, Result};

pub use compact::CompactStats;
pub use gc::{blocked_for_at_most, SweepStats};
pub use history::{History, RunRecord};
pub use lease::{Lease, LeaseRecord, DEFAULT_LEASE_TTL};
pub use scan::SessionInfo;

/// Quick or full maintenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Index compaction and clean-up of expired sessions; cheap, run often.
    Quick,
    /// Quick work plus garbage collection (sweep the pending plan, mark a new one).
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Velero's GC intervals for full maintenance (Kopia's normal, fast and eager GC).
pub const NORMAL_GC: Duration = Duration::from_secs(24 * 3600);
pub const FAST_GC: Duration = Duration::from_secs(12 * 3600);
pub const EAGER_GC: Duration = Duration::from_secs(6 * 3600);

/// Options for [`run`].
#[derive(Clone, Debug)]
pub struct MaintenanceOptions {
    pub mode: Mode,
    /// A full run within this time of the last successful one does nothing.
    pub full_interval: Duration,
    /// Run even if not due.
    pub force: bool,
    /// A pack whose unreachable share of stored bytes reaches this fraction is repacked.
    pub repack_threshold: f64,
    /// Beyond that, packs with the most garbage are repacked until the unreachable bytes
    /// left in kept packs are at most this fraction of the live bytes (restic's
    /// `--max-unused`).
    pub max_unused: f64,
    /// Bytes of reachable fingerprints kept in memory before spilling to disk.
    pub memory_budget: usize,
    /// Where spilled runs go.
    pub spill_dir: PathBuf,
    pub lease_ttl: Duration,
    /// Packs no index lists are deleted only when older than this (an upload in progress
    /// is not yet indexed).
    pub orphan_min_age: Duration,
    /// A session counts as ended this long after its TTL ran out without a refresh.
    pub session_grace: Duration,
    /// Index files smaller than this are merged by compaction ...
    pub small_index_bytes: u64,
    /// ... once there are at least this many.
    pub compact_min_files: usize,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        MaintenanceOptions {
            mode: Mode::Full,
            full_interval: NORMAL_GC,
            force: false,
            repack_threshold: 0.2,
            max_unused: 0.02,
            memory_budget: 64 << 20,
            spill_dir: std::env::temp_dir().join("cairn-gc"),
            lease_ttl: DEFAULT_LEASE_TTL,
            orphan_min_age: Duration::from_secs(3600),
            session_grace: Duration::from_secs(60),
            small_index_bytes: 1 << 20,
            compact_min_files: 8,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    /// Full maintenance was not due; nothing was done.
    NotDue,
}

/// What the mark of a run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MarkReport {
    /// Id of the published plan; `None` when there was nothing to free.
    pub plan: Option<String>,
    pub condemned_blobs: u64,
    pub delete_packs: usize,
    pub repack_packs: usize,
    pub orphan_packs: usize,
    /// Stored bytes the sweep will free.
    pub garbage_bytes: u64,
    /// Stored bytes of all unreachable blobs (some sit in packs below the repack threshold).
    pub unreferenced_bytes: u64,
    pub reachable_blobs: u64,
    pub indexed_blobs: u64,
    pub spilled_to_disk: bool,
}

/// What the sweep of a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SweepReport {
    pub plan: String,
    pub deleted_packs: u64,
    pub repacked_packs: u64,
    pub copied_blobs: u64,
    pub rescued_blobs: u64,
    pub deleted_index_files: u64,
    pub written_index_files: u64,
    pub freed_bytes: i64,
}

/// The result of [`run`].
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub repository: String,
    pub mode: Mode,
    pub outcome: Outcome,
    pub started: String,
    pub duration_secs: f64,
    /// What happened, one line per step, for people.
    pub summary: Vec<String>,
    /// When the next full run is due (RFC 3339).
    pub next_full_due: Option<String>,
    pub compaction: CompactStats,
    pub expired_sessions_removed: u64,
    pub swept: Vec<SweepReport>,
    /// Sessions a pending plan waits for.
    pub blocked_by: Vec<SessionInfo>,
    pub marked: Option<MarkReport>,
    /// Net stored bytes freed.
    pub freed_bytes: i64,
}

/// Reclaims space now, for those who run no maintenance job (`forget --prune`): a full
/// run that marks (sweeping any plan already pending), then a second that sweeps what the
/// first marked. The two-phase protocol is unchanged: the second sweep happens only when
/// every writer at work during the mark has finished; otherwise its report says what it
/// waits for, and a later run frees the space.
pub fn collect_now(
    repo: &Repository,
    opts: &MaintenanceOptions,
    progress: &dyn Progress,
) -> Result<Vec<RunReport>> {
    let opts = MaintenanceOptions {
        mode: Mode::Full,
        force: true,
        ..opts.clone()
    };
    let mark = run(repo, &opts, progress)?;
    let sweep = run(repo, &opts, progress)?;
    Ok(vec![mark, sweep])
}

/// Runs maintenance. Fails with [`Error::MaintenanceBusy`] if another run holds the lease.
pub fn run(
    repo: &Repository,
    opts: &MaintenanceOptions,
    progress: &dyn Progress,
) -> Result<RunReport> {
    let clock = Instant::now();
    let lease = Lease::acquire(repo.storage().clone(), repo.key().clone(), opts.lease_ttl)?;
    let now = lease::storage_now(repo.storage())?;
    let mut report = RunReport {
        repository: repo.location().into(),
        mode: opts.mode,
        outcome: Outcome::Success,
        started: format_rfc3339(now),
        duration_secs: 0.0,
        summary: Vec::new(),
        next_full_due: None,
        compaction: CompactStats::default(),
        expired_sessions_removed: 0,
        swept: Vec::new(),
        blocked_by: Vec::new(),
        marked: None,
        freed_bytes: 0,
    };
    let result = run_steps(repo, opts, &lease, now, &mut report, progress);
    report.duration_secs = clock.elapsed().as_secs_f64();
    let record = RunRecord {
        started: report.started.clone(),
        duration_secs: report.duration_secs,
        mode: opts.mode.as_str().into(),
        outcome: match (&result, report.outcome) {
            (Err(_), _) => "failure".into(),
            (Ok(()), Outcome::NotDue) => "not-due".into(),
            (Ok(()), Outcome::Success) => "success".into(),
        },
        summary: match &result {
            Err(e) => format!("failed: {e}"),
            Ok(()) => report.summary.join("; "),
        },
        host: crate::time::hostname(),
        freed_bytes: report.freed_bytes,
        deleted_packs: report.swept.iter().map(|s| s.deleted_packs).sum(),
        repacked_packs: report.swept.iter().map(|s| s.repacked_packs).sum(),
        marked_plan: report.marked.as_ref().and_then(|m| m.plan.clone()),
        swept_plan: report.swept.last().map(|s| s.plan.clone()),
        unreferenced_bytes: report.marked.as_ref().map(|m| m.unreferenced_bytes),
    };
    // A run that was not due did nothing and leaves no trace; a lost lease must not write.
    let lost = matches!(result, Err(Error::LeaseLost { .. }));
    if report.outcome != Outcome::NotDue && !lost {
        let written = History::record(repo.storage(), repo.key(), record);
        if let (Ok(()), Err(e)) = (&result, written) {
            report.summary.push(format!(
                "warning: could not write the maintenance history: {e}"
            ));
        }
    }
    match result {
        Ok(()) => {
            lease.release()?;
            Ok(report)
        }
        Err(e) => Err(e),
    }
}

fn run_steps(
    repo: &Repository,
    opts: &MaintenanceOptions,
    lease: &Lease,
    now: SystemTime,
    report: &mut RunReport,
    progress: &dyn Progress,
) -> Result<()> {
    let history = History::load(repo.storage(), repo.key()).unwrap_or_default();
    let due_at = history.next_full_due(opts.full_interval);
    if opts.mode == Mode::Full && !opts.force {
        if let Some(due) = due_at.filter(|d| *d > now) {
            report.outcome = Outcome::NotDue;
            report.next_full_due = Some(format_rfc3339(due));
            report.summary.push(format!(
                "full maintenance is not due: the last one ran at {}, the interval is {}, next due at {} (use --force to run now)",
                history.last_full().map(|r| r.started.as_str()).unwrap_or("?"),
                humantime::format_duration(opts.full_interval),
                format_rfc3339(due),
            ));
            return Ok(());
        }
    }

    // Quick work.
    report.expired_sessions_removed = remove_expired_sessions(repo, opts, lease, now)?;
    if report.expired_sessions_removed > 0 {
        report.summary.push(format!(
            "removed {} expired session object(s) of writers that stopped without ending",
            report.expired_sessions_removed
        ));
    }
    report.compaction = compact::compact_index(repo, opts, lease)?;
    if report.compaction.merged_files > 0 {
        report.summary.push(format!(
            "merged {} small index files into {}",
            report.compaction.merged_files, report.compaction.written_files
        ));
    }
    if opts.mode == Mode::Quick {
        if report.summary.is_empty() {
            report
                .summary
                .push("quick maintenance: nothing to do".into());
        }
        return Ok(());
    }

    // Full: sweep pending plans, oldest first, then mark if none is left waiting.
    let mut waiting = false;
    for (plan_id, plan) in load_plans(repo)? {
        match gc::sweep(repo, opts, lease, &plan_id, &plan, now, progress)? {
            gc::SweepOutcome::Blocked(sessions) => {
                report.summary.push(format!(
                    "plan {} ({} to free) waits for {} session(s) that started before it and are still writing: {}",
                    plan_id.short(),
                    human_bytes(plan.garbage_bytes),
                    sessions.len(),
                    sessions
                        .iter()
                        .map(|s| format!("{} on {} (pid {})", &s.id[..s.id.len().min(8)], s.host, s.pid))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                report.blocked_by.extend(sessions);
                waiting = true;
            }
            gc::SweepOutcome::Done(s) => {
                report.summary.push(format!(
                    "swept plan {}: deleted {} pack(s), repacked {} (copied {} live blob(s)), rescued {} blob(s) referenced by newer snapshots, freed {}",
                    plan_id.short(),
                    s.deleted_packs,
                    s.repacked_packs,
                    s.copied_blobs,
                    s.rescued_blobs,
                    human_bytes(s.freed_bytes.max(0) as u64)
                ));
                report.freed_bytes += s.freed_bytes;
                report.swept.push(SweepReport {
                    plan: plan_id.to_string(),
                    deleted_packs: s.deleted_packs,
                    repacked_packs: s.repacked_packs,
                    copied_blobs: s.copied_blobs,
                    rescued_blobs: s.rescued_blobs,
                    deleted_index_files: s.deleted_index_files,
                    written_index_files: s.written_index_files,
                    freed_bytes: s.freed_bytes,
                });
            }
        }
    }
    if !waiting {
        let m = gc::mark(repo, opts, lease, now, progress)?;
        let mut mr = MarkReport {
            unreferenced_bytes: m.unreferenced_bytes,
            reachable_blobs: m.reachable_blobs,
            indexed_blobs: m.indexed_blobs,
            spilled_to_disk: m.spilled,
            ..Default::default()
        };
        match &m.plan {
            Some((id, p)) => {
                mr.plan = Some(id.to_string());
                mr.condemned_blobs = p.garbage_blobs;
                mr.delete_packs = p.delete_packs.len();
                mr.repack_packs = p.repack_packs.len();
                mr.orphan_packs = p.orphan_packs.len();
                mr.garbage_bytes = p.garbage_bytes;
                report.summary.push(format!(
                    "marked plan {}: {} unreferenced blob(s) in {} pack(s) to delete and {} to repack, {} orphan pack(s); the next full run frees about {} once every writer that started before now has finished",
                    id.short(),
                    p.garbage_blobs,
                    p.delete_packs.len(),
                    p.repack_packs.len(),
                    p.orphan_packs.len(),
                    human_bytes(p.garbage_bytes)
                ));
            }
            None => report.summary.push(format!(
                "mark: nothing to free ({} of {} indexed blobs reachable; {} unreferenced below the repack threshold)",
                m.reachable_blobs,
                m.indexed_blobs,
                human_bytes(m.unreferenced_bytes)
            )),
        }
        report.marked = Some(mr);
    }
    report.next_full_due = Some(format_rfc3339(now + opts.full_interval));
    Ok(())
}

/// Deletes session objects that expired (writers killed without ending their session).
fn remove_expired_sessions(
    repo: &Repository,
    opts: &MaintenanceOptions,
    lease: &Lease,
    now: SystemTime,
) -> Result<u64> {
    let expired: Vec<SessionInfo> = scan::list_sessions(repo, now, opts.session_grace)?
        .into_iter()
        .filter(|s| s.expired)
        .collect();
    if expired.is_empty() {
        return Ok(0);
    }
    lease.ensure_held()?;
    for s in &expired {
        repo.storage().delete(&crate::session::session_key(&s.id))?;
    }
    Ok(expired.len() as u64)
}

/// Published plans, oldest first.
pub fn load_plans(repo: &Repository) -> Result<Vec<(ObjectId, GcPlan)>> {
    let mut out = Vec::new();
    for info in repo.storage().list(PLANS_PREFIX)? {
        let Some(id) = id_from_key(&info.key, PLANS_PREFIX) else {
            continue;
        };
        let bytes = match repo.storage().get(&info.key) {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        out.push((id, GcPlan::open(repo.key(), &bytes, &info.key)?));
    }
    out.sort_by(|a, b| a.1.created.cmp(&b.1.created));
    Ok(out)
}

/// Bytes for people: `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A pending plan, explained.
#[derive(Clone, Debug, Serialize)]
pub struct PlanStatus {
    pub id: String,
    pub created: String,
    pub condemned_blobs: u64,
    pub delete_packs: usize,
    pub repack_packs: usize,
    pub orphan_packs: usize,
    /// Stored bytes the sweep frees.
    pub frees_bytes: u64,
    /// Live bytes the sweep copies out of repacked packs.
    pub repack_live_bytes: u64,
    /// Snapshots committed since the mark (their blobs will be rescued).
    pub snapshots_since: usize,
    /// Live sessions that started before the plan: the sweep waits for them.
    pub waits_for: Vec<SessionInfo>,
    /// Whether the next full run can sweep it.
    pub sweepable: bool,
}

/// Repository statistics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepoStats {
    pub snapshots: usize,
    pub index_files: usize,
    pub blobs: u64,
    pub packs: usize,
    pub pack_bytes: u64,
    pub index_bytes: u64,
    /// Unreferenced stored bytes as measured by the last mark, and when.
    pub unreferenced_bytes: Option<u64>,
    pub unreferenced_measured: Option<String>,
}

/// What [`status`] reports.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub repository: String,
    /// Storage clock.
    pub now: String,
    /// The maintenance run holding the lease, if one is running.
    pub running: Option<LeaseRecord>,
    pub plans: Vec<PlanStatus>,
    pub sessions: Vec<SessionInfo>,
    /// Newest last.
    pub history: Vec<RunRecord>,
    pub next_full_due: Option<String>,
    pub stats: RepoStats,
}

/// Explains the repository's maintenance state. Reads only (plus a tiny clock probe).
pub fn status(repo: &Repository, opts: &MaintenanceOptions) -> Result<Status> {
    let now = lease::storage_now(repo.storage()).unwrap_or_else(|_| SystemTime::now());
    let running = lease::current(repo.storage(), repo.key(), now)?.map(|(r, _)| r);
    let sessions = scan::list_sessions(repo, now, opts.session_grace)?;
    let snapshot_ids = repo.snapshot_ids()?;
    let mut plans = Vec::new();
    for (id, p) in load_plans(repo)? {
        let marked: std::collections::HashSet<_> = p.snapshots.iter().collect();
        let waits_for: Vec<SessionInfo> = sessions
            .iter()
            .filter(|s| !s.expired && !s.seen_plans.contains(&id.to_string()))
            .cloned()
            .collect();
        plans.push(PlanStatus {
            id: id.to_string(),
            created: p.created.clone(),
            condemned_blobs: p.garbage_blobs,
            delete_packs: p.delete_packs.len(),
            repack_packs: p.repack_packs.len(),
            orphan_packs: p.orphan_packs.len(),
            frees_bytes: p.garbage_bytes,
            repack_live_bytes: p.repack_live_bytes,
            snapshots_since: snapshot_ids.iter().filter(|s| !marked.contains(s)).count(),
            sweepable: waits_for.is_empty(),
            waits_for,
        });
    }
    let history = History::load(repo.storage(), repo.key()).unwrap_or_default();
    let next_full_due = history
        .next_full_due(opts.full_interval)
        .map(format_rfc3339);
    let history = history.runs;
    let measured = history
        .iter()
        .rev()
        .find(|r| r.unreferenced_bytes.is_some());
    let index = scan::list_index(repo)?;
    let mut blobs = 0u64;
    let ids: Vec<ObjectId> = index.iter().map(|f| f.0).collect();
    scan::each_index_file(repo, &ids, |_, f| {
        blobs += f.packs.iter().map(|(_, r)| r.len() as u64).sum::<u64>();
        Ok(())
    })?;
    let packs = scan::list_packs(repo)?;
    let stats = RepoStats {
        snapshots: snapshot_ids.len(),
        index_files: index.len(),
        blobs,
        packs: packs.len(),
        pack_bytes: packs.values().map(|p| p.0).sum(),
        index_bytes: index.iter().map(|f| f.1).sum(),
        unreferenced_bytes: measured.and_then(|r| r.unreferenced_bytes),
        unreferenced_measured: measured.map(|r| r.started.clone()),
    };
    Ok(Status {
        repository: repo.location().into(),
        now: format_rfc3339(now),
        running,
        plans,
        sessions,
        history,
        next_full_due,
        stats,
    })
}

impl Status {
    /// The status in words an operator understands.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "Repository {} (storage time {})",
            self.repository, self.now
        ));
        if let Some(r) = &self.running {
            line(format!(
                "Maintenance is running now: {} on host {} (pid {}) since {}.",
                r.holder, r.host, r.pid, r.acquired
            ));
        }
        let s = &self.stats;
        line(format!(
            "Contents: {} snapshot(s); {} blob(s) in {} pack(s), {} of packs and {} of index in {} index file(s).",
            s.snapshots,
            s.blobs,
            s.packs,
            human_bytes(s.pack_bytes),
            human_bytes(s.index_bytes),
            s.index_files
        ));
        match (s.unreferenced_bytes, &s.unreferenced_measured) {
            (Some(u), Some(t)) => line(format!(
                "Unreferenced data: {} as measured by the mark at {}.",
                human_bytes(u),
                t
            )),
            _ => line("Unreferenced data: not measured yet (no full maintenance has run).".into()),
        }
        if self.plans.is_empty() {
            line("No garbage collection plan is pending.".into());
        }
        for p in &self.plans {
            line(format!(
                "Pending plan {} (marked {}): {} unreferenced blob(s); {} pack(s) to delete, {} to repack ({} of live data to copy), {} orphan pack(s). Sweeping it frees about {}.",
                &p.id[..12],
                p.created,
                p.condemned_blobs,
                p.delete_packs,
                p.repack_packs,
                human_bytes(p.repack_live_bytes),
                p.orphan_packs,
                human_bytes(p.frees_bytes)
            ));
            if p.snapshots_since > 0 {
                line(format!(
                    "  {} snapshot(s) were committed since; anything they reference is kept.",
                    p.snapshots_since
                ));
            }
            if p.sweepable {
                line("  It can be swept now: the next full maintenance run (`node-agent maintenance run --mode full --force` to run it at once) deletes it.".into());
            } else {
                line(format!(
                    "  It waits for {} writer session(s) that started before the plan and may still use the data it condemns:",
                    p.waits_for.len()
                ));
                for w in &p.waits_for {
                    line(format!(
                        "    session {} on host {} (pid {}), started {}, last refreshed {} s ago; it ends when that backup finishes, or counts as ended {} s after its last refresh if the writer died",
                        &w.id[..w.id.len().min(12)],
                        w.host,
                        w.pid,
                        w.started,
                        w.idle_secs,
                        w.ttl_secs
                    ));
                }
            }
        }
        let live = self.sessions.iter().filter(|s| !s.expired).count();
        let expired = self.sessions.len() - live;
        line(format!(
            "Writer sessions: {live} live, {expired} expired (removed by the next maintenance run)."
        ));
        match &self.next_full_due {
            Some(t) => line(format!("Next full maintenance is due at {t}.")),
            None => line("Full maintenance has never run; it is due now.".into()),
        }
        if self.history.is_empty() {
            line("No maintenance runs recorded.".into());
        } else {
            line(format!("Last {} run(s), newest last:", self.history.len()));
            for r in &self.history {
                line(format!(
                    "  {} {} {} in {:.1} s: {}",
                    r.started, r.mode, r.outcome, r.duration_secs, r.summary
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_a_person_would_say_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1_320_000_000), "1.2 GiB");
        assert_eq!(human_bytes(50 << 20), "50.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }
}
