//! The real `node-agent maintenance run`, SIGKILLed at random points again and again while
//! backups and forgets go on between runs: afterwards another run and `check --read-data`
//! are clean and every remaining snapshot reads back byte-identical.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_tests::*;
use rand::{Rng, SeedableRng};
use repo_core::storage::{self, DynStorage};
use repo_core::{NoProgress, ObjectId, Repository, Snapshot, WriterOptions};

fn add_snapshot(
    s: &DynStorage,
    segments: &[Vec<u8>],
    rng: &mut rand::rngs::StdRng,
) -> (ObjectId, Vec<u8>) {
    let data: Vec<u8> = (0..6)
        .flat_map(|_| segments[rng.gen_range(0..segments.len())].clone())
        .collect();
    let repo = Repository::open(s.clone(), PASSWORD, open_opts())
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    let snap = Snapshot::new("f", "h", vec![], Default::default()).unwrap();
    let (id, _) = repo
        .writer(WriterOptions::default())
        .unwrap()
        .backup_stream(&data[..], "f", snap, &NoProgress)
        .unwrap();
    (id, data)
}

#[test]
fn sigkill_during_maintenance_then_another_run_and_check_are_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let url = path.to_str().unwrap().to_string();
    let cache = dir.path().join("cache");
    let s = storage::open_url(&url, &Default::default()).unwrap();
    Repository::init(s.clone(), PASSWORD, tiny_init(), open_opts()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let segments: Vec<Vec<u8>> = (0..24).map(|i| random_bytes(200_000, 500 + i)).collect();
    let mut kept: BTreeMap<ObjectId, Vec<u8>> = BTreeMap::new();
    for _ in 0..8 {
        let (id, d) = add_snapshot(&s, &segments, &mut rng);
        kept.insert(id, d);
    }
    let run = || {
        let mut c = agent(&url, &cache);
        c.args([
            "maintenance",
            "run",
            "--force",
            "--orphan-age",
            "0s",
            "--lease-ttl",
            "1s",
            "--repack-threshold",
            "0.05",
            "--max-unused",
            "0",
        ]);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    };
    // How long an undisturbed run takes, to spread the kills over it.
    let t = Instant::now();
    let out = run().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut full = t.elapsed().max(Duration::from_millis(50));
    let mut killed = 0;
    let mut round = 0;
    while killed < 22 && round < 80 {
        round += 1;
        // Change something so every run has garbage to mark, sweep or repack.
        if kept.len() > 4 {
            let victim = *kept.keys().nth(rng.gen_range(0..kept.len())).unwrap();
            kept.remove(&victim);
            Repository::open(s.clone(), PASSWORD, open_opts())
                .unwrap()
                .delete_snapshot(&victim)
                .unwrap();
        }
        let (id, d) = add_snapshot(&s, &segments, &mut rng);
        kept.insert(id, d);
        let started = Instant::now();
        let mut child = run().spawn().unwrap();
        std::thread::sleep(full.mul_f64(rng.gen_range(0.0..0.9)));
        if child.try_wait().unwrap().is_some() {
            // Finished before the kill: runs take longer now than measured.
            full = full.max(started.elapsed());
        } else {
            child.kill().unwrap();
            killed += 1;
        }
        let status = child.wait().unwrap();
        eprintln!("round {round}: {status:?}");
        // A killed run's lease expires after its 1 s TTL.
        std::thread::sleep(Duration::from_millis(1300));
    }
    assert!(
        killed >= 20,
        "only {killed} runs of {round} were killed mid-way"
    );
    // Runs to completion: sweep what the killed runs left, mark, sweep.
    for _ in 0..3 {
        let out = run().output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = agent(&url, &cache)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = Repository::open(s.clone(), PASSWORD, open_opts())
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    let mut ids = repo.snapshot_ids().unwrap();
    ids.sort();
    assert_eq!(ids, kept.keys().copied().collect::<Vec<_>>());
    for (id, d) in &kept {
        let mut got = Vec::new();
        repo.dump_file(id, "f", &mut got).unwrap();
        assert!(got == *d, "snapshot {id} differs after the killed runs");
    }
    // Space was actually reclaimed along the way: no pack is all garbage.
    assert!(maintenance_status_clean(&url, &cache));
}

/// `maintenance status` runs and reports no pending plan.
fn maintenance_status_clean(url: &str, cache: &std::path::Path) -> bool {
    let out = agent(url, cache)
        .args(["maintenance", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    out.status.success() && text.contains("Last ")
}
