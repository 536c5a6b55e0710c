//! Maintenance: the GC protocol under randomized concurrency, space actually freed, the
//! lease, scheduling, status and repair. Real backends: in-memory, local directory, and
//! (in s3.rs) the S3 test server.

use std::time::Duration;

use cairn_tests::*;
use rand::{Rng, SeedableRng};
use repo_core::maintenance::{self, MaintenanceOptions, Mode, Outcome};
use repo_core::storage::{self, DynStorage};
use repo_core::{
    Error, IndexedRepository, NoProgress, ObjectId, Repository, Snapshot, WriterOptions,
};

fn gc_opts(spill: &std::path::Path) -> MaintenanceOptions {
    MaintenanceOptions {
        mode: Mode::Full,
        force: true,
        orphan_min_age: Duration::ZERO,
        spill_dir: spill.to_path_buf(),
        compact_min_files: 4,
        ..Default::default()
    }
}

fn opened(s: &DynStorage) -> Repository {
    Repository::open(s.clone(), PASSWORD, open_opts()).unwrap()
}

fn indexed(s: &DynStorage) -> IndexedRepository {
    opened(s).load_index(&NoProgress).unwrap()
}

/// Writes `data` as stream "f" and commits it.
fn commit_stream(
    w: repo_core::Writer<'_>,
    data: &[u8],
    source: &str,
) -> repo_core::Result<ObjectId> {
    let snap = Snapshot::new(source, "h", vec![], Default::default())?;
    w.backup_stream(data, "f", snap, &NoProgress)
        .map(|(id, _)| id)
}

fn read_back(s: &DynStorage, id: &ObjectId) -> repo_core::Result<Vec<u8>> {
    let repo = indexed(s);
    let mut out = Vec::new();
    repo.dump_file(id, "f", &mut out)?;
    Ok(out)
}

/// One writer in a schedule: its data and where it is.
enum Actor<'r> {
    Idle,
    Open {
        writer: repo_core::Writer<'r>,
        data: Vec<u8>,
        content: Option<repo_core::StreamContent>,
    },
}

/// One seeded schedule of writers, suspensions, forgets and maintenance runs; afterwards
/// every snapshot that was committed and not forgotten must read back byte-identical, also
/// after maintenance runs to completion.
fn schedule(s: DynStorage, seed: u64, spill: &std::path::Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Repository::init(s.clone(), PASSWORD, tiny_init(), open_opts()).unwrap();
    // Segments shared between backups: heavy dedup overlap.
    let segments: Vec<Vec<u8>> = (0..8)
        .map(|i| random_bytes(rng.gen_range(8_000..40_000), seed * 100 + i))
        .collect();
    let content_of = |rng: &mut rand::rngs::StdRng| -> Vec<u8> {
        let n = rng.gen_range(1..=4);
        (0..n)
            .flat_map(|_| segments[rng.gen_range(0..segments.len())].clone())
            .collect()
    };
    let repos: Vec<IndexedRepository> = (0..3).map(|_| indexed(&s)).collect();
    let mut actors: Vec<Actor<'_>> = (0..3).map(|_| Actor::Idle).collect();
    let mut committed: Vec<(ObjectId, Vec<u8>)> = Vec::new();
    let mut opts = gc_opts(spill);
    let steps = rng.gen_range(10..30);
    let trace = |what: String| {
        if std::env::var("CAIRN_TRACE").is_ok() {
            eprintln!("seed {seed}: {what}");
        }
    };
    for _ in 0..steps {
        let a = rng.gen_range(0..actors.len());
        match rng.gen_range(0..10) {
            // A writer advances: start, write, or commit.
            0..=4 => match &mut actors[a] {
                Actor::Idle => {
                    trace(format!("writer {a} starts"));
                    let writer = repos[a].writer(WriterOptions::default()).unwrap();
                    actors[a] = Actor::Open {
                        writer,
                        data: content_of(&mut rng),
                        content: None,
                    };
                }
                Actor::Open {
                    writer,
                    data,
                    content: content @ None,
                } => {
                    trace(format!("writer {a} writes"));
                    *content = Some(writer.write_stream(&data[..], &NoProgress).unwrap());
                }
                Actor::Open { .. } => {
                    let Actor::Open { writer, data, .. } =
                        std::mem::replace(&mut actors[a], Actor::Idle)
                    else {
                        unreachable!()
                    };
                    // Writes again (dedups against itself) and commits.
                    match commit_stream(writer, &data, &format!("w{a}")) {
                        Ok(id) => {
                            trace(format!("writer {a} commits {}", id.short()));
                            committed.push((id, data));
                        }
                        Err(e @ Error::SessionExpired { .. }) => {
                            trace(format!("writer {a} refused to commit: {e}"));
                        }
                        Err(e) => panic!("seed {seed}: writer {a} failed: {e}"),
                    }
                }
            },
            // A writer is suspended past its session's expiry.
            5 => {
                if let Actor::Open { writer, .. } = &actors[a] {
                    trace(format!("writer {a} is suspended"));
                    let id = writer.session_id();
                    writer
                        .session()
                        .unwrap()
                        .backdate(Duration::from_secs(7200));
                    s.delete(&format!("sessions/{id}")).unwrap();
                }
            }
            // Forget a snapshot, or retag one (a new snapshot, the old one deleted).
            6 => {
                if !committed.is_empty() {
                    let i = rng.gen_range(0..committed.len());
                    if rng.gen_bool(0.5) {
                        let (id, _) = committed.remove(i);
                        trace(format!("forget {}", id.short()));
                        opened(&s).delete_snapshot(&id).unwrap();
                    } else {
                        let old = committed[i].0;
                        let tag = format!("n{}", rng.gen_range(0..1000));
                        if let Some(new) = opened(&s).retag(&old, &[tag], &[], None).unwrap() {
                            trace(format!("retag {} as {}", old.short(), new.short()));
                            committed[i].0 = new;
                        }
                    }
                }
            }
            // Maintenance.
            _ => {
                opts.mode = if rng.gen_bool(0.8) {
                    Mode::Full
                } else {
                    Mode::Quick
                };
                opts.repack_threshold = [0.01, 0.2, 0.5][rng.gen_range(0..3)];
                let r = maintenance::run(&opened(&s), &opts, &NoProgress)
                    .unwrap_or_else(|e| panic!("seed {seed}: maintenance failed: {e}"));
                trace(format!(
                    "maintenance {:?}: {}",
                    opts.mode,
                    r.summary.join("; ")
                ));
            }
        }
    }
    // Writers still open finish now (some were suspended).
    for (a, actor) in actors.into_iter().enumerate() {
        if let Actor::Open { writer, data, .. } = actor {
            match commit_stream(writer, &data, &format!("w{a}")) {
                Ok(id) => committed.push((id, data)),
                Err(Error::SessionExpired { .. }) => {}
                Err(e) => panic!("seed {seed}: writer {a} failed at the end: {e}"),
            }
        }
    }
    let verify = |when: &str| {
        for (id, data) in &committed {
            let got = read_back(&s, id).unwrap_or_else(|e| {
                panic!("seed {seed}: snapshot {id} unreadable {when}: {e} (rerun with CAIRN_TRACE=1 CAIRN_SEED={seed})")
            });
            assert!(
                got == *data,
                "seed {seed}: snapshot {id} differs {when} (rerun with CAIRN_TRACE=1 CAIRN_SEED={seed})"
            );
        }
    };
    verify("after the schedule");
    // Maintenance to completion: sweep what is pending, mark, sweep again.
    opts.mode = Mode::Full;
    for _ in 0..3 {
        maintenance::run(&opened(&s), &opts, &NoProgress)
            .unwrap_or_else(|e| panic!("seed {seed}: final maintenance failed: {e}"));
    }
    verify("after maintenance completed");
    let repo = indexed(&s);
    let report = repo
        .check(&repo_core::CheckOptions::read_all(), &NoProgress)
        .unwrap();
    assert!(
        report.is_clean(),
        "seed {seed}: check found {:?}",
        report.problems
    );
}

/// Seeds to run: `CAIRN_SEED` picks one (to reproduce a failure), otherwise `0..n`.
fn seeds(n: u64) -> Vec<u64> {
    match std::env::var("CAIRN_SEED") {
        Ok(s) => vec![s.parse().expect("CAIRN_SEED is a number")],
        Err(_) => (0..n).collect(),
    }
}

/// `CAIRN_SCHEDULES` overrides the number of schedules (for quick local runs).
fn schedule_count(default: u64) -> u64 {
    std::env::var("CAIRN_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs schedules on two threads.
fn run_schedules(n: u64, make: impl Fn(u64) -> DynStorage + Sync) {
    let spill = tempfile::tempdir().unwrap();
    let seeds = seeds(n);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { return };
                schedule(make(seed), seed, spill.path());
            });
        }
    });
}

#[test]
fn randomized_schedules_in_memory() {
    run_schedules(schedule_count(1000), |seed| {
        storage::open_url(&format!("memory://gc-schedule-{seed}"), &Default::default()).unwrap()
    });
}

#[test]
fn randomized_schedules_on_local_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    run_schedules(schedule_count(1000), move |seed| {
        let p = root.join(format!("r{seed}"));
        storage::open_url(p.to_str().unwrap(), &Default::default()).unwrap()
    });
}

/// Stored bytes under `data/` and `index/`.
fn stored_bytes(s: &DynStorage) -> u64 {
    ["data/", "index/"]
        .iter()
        .flat_map(|p| s.list(p).unwrap())
        .map(|o| o.size)
        .sum()
}

#[test]
fn a_full_cycle_frees_space_to_within_5_percent_of_a_fresh_repository() {
    let s = storage::open_url("memory://gc-frees", &Default::default()).unwrap();
    let repo = init(s.clone());
    // Ten backups of a slowly changing data set, then keep only the last two.
    let mut data = text_bytes(3_000_000, 1);
    let mut ids = Vec::new();
    for i in 0..10u64 {
        let patch = random_bytes(300_000, 100 + i);
        let at = (i as usize * 270_000) % (data.len() - patch.len());
        data[at..at + patch.len()].copy_from_slice(&patch);
        ids.push((backup(&repo, &data, "f", &[]).0, data.clone()));
    }
    let before = stored_bytes(&s);
    for (id, _) in &ids[..8] {
        repo.delete_snapshot(id).unwrap();
    }
    // A reader that loaded the index before the sweep moved blobs around.
    let stale = indexed(&s);
    let spill = tempfile::tempdir().unwrap();
    let opts = gc_opts(spill.path());
    let first = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert!(
        first.marked.as_ref().unwrap().plan.is_some(),
        "{:?}",
        first.summary
    );
    let second = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert_eq!(second.swept.len(), 1, "{:?}", second.summary);
    let after = stored_bytes(&s);

    // What the kept snapshots need: their blobs as stored, plus the index listing them. A
    // fresh repository would hold the same, but cut by another secret chunker seed its
    // size varies by a few percent from run to run, so it is shown, not compared.
    let kept = indexed(&s);
    let mut live = 0u64;
    let mut seen = std::collections::HashSet::new();
    for (id, _) in &ids[8..] {
        let root = kept.get_snapshot(id).unwrap().root;
        let tree = kept.read_tree(&root).unwrap();
        let blobs = std::iter::once(root)
            .chain(tree.nodes.iter().flat_map(|n| n.data_chunks().map(|c| c.0)));
        for b in blobs.filter(|b| seen.insert(*b)) {
            live += kept.index().lookup(&b).unwrap().stored_len as u64;
        }
    }
    let index_bytes: u64 = s.list("index/").unwrap().iter().map(|o| o.size).sum();
    let fresh = storage::open_url("memory://gc-frees-fresh", &Default::default()).unwrap();
    let fresh_repo = init(fresh.clone());
    for (_, d) in &ids[8..] {
        backup(&fresh_repo, d, "f", &[]);
    }
    let fresh_bytes = stored_bytes(&fresh);
    eprintln!("stored before {before}, after GC {after}, live {live}, fresh {fresh_bytes}");
    assert!(
        (after - index_bytes) as f64 <= live as f64 * 1.05,
        "after GC {after} bytes ({index_bytes} of index), the kept snapshots' blobs {live}"
    );
    assert!(second.swept[0].repacked_packs > 0, "{:?}", second.summary);
    // Repacking keeps trees and data in packs of their own, as writers do.
    let mut kinds: std::collections::HashMap<_, std::collections::HashSet<_>> = Default::default();
    for (_, loc) in kept.index().iter() {
        kinds.entry(loc.pack).or_default().insert(loc.kind);
    }
    assert!(
        kinds.values().all(|k| k.len() == 1),
        "a pack mixes trees and data"
    );
    for (id, d) in &ids[8..] {
        assert_eq!(&read_back(&s, id).unwrap(), d);
        let mut out = Vec::new();
        stale.dump_file(id, "f", &mut out).unwrap();
        assert_eq!(&out, d, "a reader with the index of before the sweep");
    }
    assert_clean(&indexed(&s));
}

#[test]
fn a_second_maintainer_is_refused_while_the_lease_is_held() {
    let s = storage::open_url("memory://gc-lease", &Default::default()).unwrap();
    let repo = init(s.clone());
    let lease =
        maintenance::Lease::acquire(s.clone(), repo.key().clone(), Duration::from_secs(600))
            .unwrap();
    let spill = tempfile::tempdir().unwrap();
    let e = maintenance::run(&opened(&s), &gc_opts(spill.path()), &NoProgress).unwrap_err();
    assert!(matches!(e, Error::MaintenanceBusy { .. }), "{e}");
    let status = maintenance::status(&opened(&s), &Default::default()).unwrap();
    assert!(status.explain().contains("Maintenance is running now"));
    lease.release().unwrap();
    maintenance::run(&opened(&s), &gc_opts(spill.path()), &NoProgress).unwrap();
}

#[test]
fn a_run_that_is_not_due_does_nothing_and_says_so() {
    let s = storage::open_url("memory://gc-due", &Default::default()).unwrap();
    let repo = init(s.clone());
    let (id, _) = backup(&repo, &random_bytes(200_000, 3), "f", &[]);
    let spill = tempfile::tempdir().unwrap();
    let mut opts = gc_opts(spill.path());
    maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    repo.delete_snapshot(&id).unwrap();
    opts.force = false;
    let r = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert_eq!(r.outcome, Outcome::NotDue);
    assert!(r.summary[0].contains("not due"), "{:?}", r.summary);
    assert!(r.marked.is_none() && r.swept.is_empty());
    assert!(maintenance::load_plans(&opened(&s)).unwrap().is_empty());
    // An eager interval of zero makes it due.
    opts.full_interval = Duration::ZERO;
    let r = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert_eq!(r.outcome, Outcome::Success);
    assert!(r.marked.unwrap().plan.is_some());
    let h = maintenance::History::load(&s, repo.key()).unwrap();
    assert_eq!(h.runs.len(), 2, "not-due runs leave no trace");
}

#[test]
fn status_explains_a_plan_waiting_for_a_writer() {
    let s = storage::open_url("memory://gc-status", &Default::default()).unwrap();
    let repo = init(s.clone());
    let (id, _) = backup(&repo, &random_bytes(500_000, 4), "f", &[]);
    repo.delete_snapshot(&id).unwrap();
    // A writer starts before the mark and is still writing.
    let other = indexed(&s);
    let w = other.writer(WriterOptions::default()).unwrap();
    let spill = tempfile::tempdir().unwrap();
    let opts = gc_opts(spill.path());
    maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    let r = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert!(r.swept.is_empty());
    assert_eq!(r.blocked_by.len(), 1);
    assert!(
        r.summary.iter().any(|l| l.contains("waits for 1 session")),
        "{:?}",
        r.summary
    );
    let st = maintenance::status(&opened(&s), &opts).unwrap();
    let text = st.explain();
    eprintln!("{text}");
    assert!(text.contains("Pending plan"), "{text}");
    assert!(text.contains("waits for 1 writer session"), "{text}");
    assert!(text.contains(&w.session_id()[..12]), "{text}");
    assert!(text.contains("frees about"), "{text}");
    assert_eq!(st.history.len(), 2);
    // The writer finishes; the next run sweeps.
    commit_stream(w, &random_bytes(10_000, 5), "late").unwrap();
    let r = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert_eq!(r.swept.len(), 1, "{:?}", r.summary);
    assert!(maintenance::status(&opened(&s), &opts)
        .unwrap()
        .explain()
        .contains("No garbage collection plan is pending"));
}

#[test]
fn the_mark_spills_to_disk_under_a_small_budget_and_frees_the_same() {
    let s = storage::open_url("memory://gc-spill", &Default::default()).unwrap();
    Repository::init(s.clone(), PASSWORD, tiny_init(), open_opts()).unwrap();
    let repo = indexed(&s);
    let keep = random_bytes(8_000_000, 6);
    let (kept, _) = backup(&repo, &keep, "f", &[]);
    let (gone, _) = backup(&repo, &random_bytes(2_000_000, 7), "b", &[]);
    repo.delete_snapshot(&gone).unwrap();
    let spill = tempfile::tempdir().unwrap();
    let mut opts = gc_opts(spill.path());
    opts.memory_budget = 4 * 1024;
    let m = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    let marked = m.marked.unwrap();
    assert!(marked.spilled_to_disk);
    assert!(marked.reachable_blobs > 1500, "{marked:?}");
    maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert_eq!(read_back(&s, &kept).unwrap(), keep);
    assert_eq!(
        std::fs::read_dir(spill.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn quick_maintenance_compacts_small_index_files() {
    let s = storage::open_url("memory://gc-compact", &Default::default()).unwrap();
    let repo = init(s.clone());
    let mut ids = Vec::new();
    for i in 0..6 {
        let d = random_bytes(100_000, 20 + i);
        ids.push((backup(&repo, &d, "f", &[]).0, d));
    }
    assert!(s.list("index/").unwrap().len() >= 6);
    let spill = tempfile::tempdir().unwrap();
    let mut opts = gc_opts(spill.path());
    opts.mode = Mode::Quick;
    let r = maintenance::run(&opened(&s), &opts, &NoProgress).unwrap();
    assert!(r.compaction.merged_files >= 6, "{r:?}");
    assert_eq!(s.list("index/").unwrap().len(), 1);
    // A long-lived repository handle notices and reloads.
    for (id, d) in &ids {
        let mut out = Vec::new();
        repo.dump_file(id, "f", &mut out).unwrap();
        assert_eq!(&out, d);
    }
    let w = repo.writer(WriterOptions::default()).unwrap();
    commit_stream(w, &ids[0].1, "again").unwrap();
    assert_clean(&indexed(&s));
}

#[test]
fn repair_index_rebuilds_from_pack_headers() {
    let s = storage::open_url("memory://gc-repair-index", &Default::default()).unwrap();
    let repo = init(s.clone());
    let d = random_bytes(1_500_000, 8);
    let (id, _) = backup(&repo, &d, "f", &[]);
    for o in s.list("index/").unwrap() {
        s.delete(&o.key).unwrap();
    }
    let dry =
        maintenance::repair::rebuild_index(&opened(&s), true, Duration::from_secs(60), &NoProgress)
            .unwrap();
    assert!(dry.recovered_blobs > 0 && dry.index_files_written == 0);
    assert!(s.list("index/").unwrap().is_empty(), "a dry run wrote");
    let r = maintenance::repair::rebuild_index(
        &opened(&s),
        false,
        Duration::from_secs(60),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.recovered_blobs, dry.recovered_blobs);
    assert!(r.damaged_packs.is_empty());
    assert_eq!(read_back(&s, &id).unwrap(), d);
    // Repairing an intact index changes nothing a reader sees.
    maintenance::repair::rebuild_index(&opened(&s), false, Duration::from_secs(60), &NoProgress)
        .unwrap();
    assert_eq!(read_back(&s, &id).unwrap(), d);
    assert_clean(&indexed(&s));
}

#[test]
fn repair_snapshots_names_and_forgets_snapshots_whose_data_is_gone() {
    let s = storage::open_url("memory://gc-repair-snaps", &Default::default()).unwrap();
    let repo = init(s.clone());
    let (a, _) = backup(&repo, &random_bytes(600_000, 9), "a", &[]);
    let before: std::collections::HashSet<String> = s
        .list("data/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let (b, _) = backup(&repo, &random_bytes(600_000, 10), "b", &[]);
    let victim = s
        .list("data/")
        .unwrap()
        .into_iter()
        .find(|o| !before.contains(&o.key))
        .unwrap();
    s.delete(&victim.key).unwrap();
    let repo = indexed(&s);
    let r = maintenance::repair::check_snapshots(&repo, false, &NoProgress).unwrap();
    assert_eq!(r.damaged.len(), 1);
    assert_eq!(r.damaged[0].id, b.to_string());
    assert!(
        r.damaged[0].first_problem.contains(&victim.key),
        "{:?}",
        r.damaged
    );
    assert_eq!(r.forgotten, 0);
    assert_eq!(repo.snapshot_ids().unwrap().len(), 2, "report only");
    let r = maintenance::repair::check_snapshots(&repo, true, &NoProgress).unwrap();
    assert_eq!(r.forgotten, 1);
    assert_eq!(repo.snapshot_ids().unwrap(), vec![a]);
}

#[test]
fn randomized_schedules_on_the_s3_test_server() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let url = s3_bucket(&endpoint, "gc-schedules");
    run_schedules(schedule_count(40), |seed| {
        storage::open_url(&format!("{url}/r{seed}"), &Default::default()).unwrap()
    });
}
