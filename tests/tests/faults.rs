//! A storage that fails some writes and reads never yields a snapshot that references missing
//! data; with retries, transient faults are ridden out; a crash mid-backup leaves a repository
//! that checks clean and whose next backup succeeds.

use std::sync::Arc;

use cairn_tests::*;
use repo_core::storage::{self, FaultPlan, FaultyStorage, RetryPolicy, Retrying};
use repo_core::{CheckOptions, NoProgress, Repository, Snapshot, WriterOptions};

fn try_backup(s: storage::DynStorage, data: &[u8]) -> repo_core::Result<repo_core::ObjectId> {
    let repo = Repository::open(s, PASSWORD, open_opts())?.load_index(&NoProgress)?;
    let snap = Snapshot::new("faulty", "h", vec![], Default::default())?;
    let w = repo.writer(WriterOptions {
        upload_concurrency: Some(2),
        index_every_packs: 2,
        ..Default::default()
    })?;
    Ok(w.backup_stream(data, "f", snap, &NoProgress)?.0)
}

/// After any sequence of faults, the repository as stored verifies and every snapshot in it
/// reads back exactly.
///
/// `attempted` holds the data of backups that reported failure: a snapshot may still have
/// been committed for one of them (a lost acknowledgement of the snapshot write), and it must
/// then read back as exactly that data.
fn assert_consistent(
    clean: &storage::DynStorage,
    expected: &[(repo_core::ObjectId, Vec<u8>)],
    attempted: &[Vec<u8>],
    seed: u64,
) {
    let repo = open(clean.clone());
    let report = repo.check(&CheckOptions::read_all(), &NoProgress).unwrap();
    assert!(report.is_clean(), "seed {seed}: {:?}", report.problems);
    let ids = repo.snapshot_ids().unwrap();
    for id in &ids {
        let mut out = Vec::new();
        repo.dump_file(id, "f", &mut out).unwrap();
        match expected.iter().find(|(i, _)| i == id) {
            Some((_, data)) => assert_eq!(&out, data, "seed {seed}"),
            None => assert!(
                attempted.contains(&out),
                "seed {seed}: snapshot {id} matches no backup"
            ),
        }
    }
    for (id, _) in expected {
        assert!(
            ids.contains(id),
            "seed {seed}: committed snapshot {id} is gone"
        );
    }
}

#[test]
fn permanent_faults_never_commit_missing_data() {
    let mut committed = 0;
    let mut failed = 0;
    for seed in 0..40u64 {
        let clean =
            storage::open_url(&format!("memory://faults-{seed}"), &Default::default()).unwrap();
        init(clean.clone());
        let plan = FaultPlan {
            put_error_rate: 0.04,
            lost_ack_rate: 0.04,
            read_error_rate: 0.01,
            transient: false,
            ..Default::default()
        };
        let faulty: storage::DynStorage = Arc::new(FaultyStorage::new(clean.clone(), plan, seed));
        let mut expected = Vec::new();
        let mut attempted = Vec::new();
        for round in 0..3u64 {
            let data = text_bytes(1_500_000, seed * 10 + round);
            match try_backup(faulty.clone(), &data) {
                Ok(id) => {
                    committed += 1;
                    expected.push((id, data));
                }
                Err(e) => {
                    failed += 1;
                    assert!(
                        e.to_string().contains("injected fault"),
                        "seed {seed}: unexpected error {e}"
                    );
                    attempted.push(data);
                }
            }
        }
        assert_consistent(&clean, &expected, &attempted, seed);
    }
    assert!(
        committed > 5 && failed > 5,
        "faults too rare or too common: {committed} committed, {failed} failed"
    );
}

#[test]
fn transient_faults_are_retried_to_success() {
    for seed in 0..10u64 {
        let clean =
            storage::open_url(&format!("memory://transient-{seed}"), &Default::default()).unwrap();
        init(clean.clone());
        let plan = FaultPlan {
            put_error_rate: 0.15,
            lost_ack_rate: 0.1,
            read_error_rate: 0.1,
            transient: true,
            ..Default::default()
        };
        let policy = RetryPolicy {
            max_retries: 20,
            base_delay: std::time::Duration::from_micros(100),
            max_delay: std::time::Duration::from_millis(2),
        };
        let faulty = Arc::new(FaultyStorage::new(clean.clone(), plan, seed));
        let retrying: storage::DynStorage = Arc::new(Retrying::new(faulty.clone(), policy));
        let data = random_bytes(2_000_000, seed);
        let id = try_backup(retrying, &data).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(faulty.injected() > 0, "seed {seed}: no fault injected");
        assert_consistent(&clean, &[(id, data)], &[], seed);
    }
}

#[test]
fn crash_mid_backup_then_next_backup_reuses_uploads() {
    for crash_after in [1u64, 3, 5, 8, 11] {
        let clean = storage::open_url(
            &format!("memory://crash-{crash_after}"),
            &Default::default(),
        )
        .unwrap();
        init(clean.clone());
        let data = random_bytes(8_000_000, crash_after);
        let plan = FaultPlan {
            crash_after_puts: Some(crash_after),
            ..Default::default()
        };
        let crashing: storage::DynStorage = Arc::new(FaultyStorage::new(clean.clone(), plan, 0));
        assert!(
            try_backup(crashing, &data).is_err(),
            "crash point {crash_after} not reached"
        );
        assert_consistent(&clean, &[], std::slice::from_ref(&data), crash_after);
        let uploaded_before = clean.list("index/").unwrap().len();
        let repo = open(clean.clone());
        let snap = Snapshot::new("faulty", "h", vec![], Default::default()).unwrap();
        let (id, s) = repo
            .writer(WriterOptions::default())
            .unwrap()
            .backup_stream(&data[..], "f", snap, &NoProgress)
            .unwrap();
        if uploaded_before > 0 {
            assert!(
                s.summary.new_bytes < data.len() as u64,
                "crash point {crash_after}: nothing reused"
            );
        }
        assert_consistent(&clean, &[(id, data.clone())], &[data], crash_after);
    }
}
