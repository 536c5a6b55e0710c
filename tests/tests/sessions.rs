//! The writer side of the GC protocol: no dedup against condemned blobs, and a writer whose
//! session lapsed notices before it commits.

use std::time::Duration;

use bytes::Bytes;
use cairn_tests::*;
use repo_core::gcplan::{fingerprint, GcPlan, PLANS_PREFIX};
use repo_core::storage::{self, WriteMode};
use repo_core::{Error, NoProgress, Snapshot, WriterOptions};

fn setup(
    name: &str,
) -> (
    storage::DynStorage,
    repo_core::IndexedRepository,
    Vec<u8>,
    repo_core::ObjectId,
) {
    let s = storage::open_url(&format!("memory://{name}"), &Default::default()).unwrap();
    let repo = init(s.clone());
    let data = random_bytes(3_000_000, 42);
    let (id, _) = backup(&repo, &data, "f", &[]);
    (s, repo, data, id)
}

/// What a sweep would do: condemn everything indexed now, delete the snapshot, packs and
/// index files.
fn condemn_and_sweep(
    s: &storage::DynStorage,
    repo: &repo_core::IndexedRepository,
    snapshot: &repo_core::ObjectId,
    sweep: bool,
) {
    let mut condemned: Vec<u64> = repo
        .index()
        .iter()
        .map(|(id, _)| fingerprint(&id))
        .collect();
    condemned.sort_unstable();
    condemned.dedup();
    let plan = GcPlan {
        version: 1,
        created: repo_core::time::now_rfc3339(),
        condemned,
        ..Default::default()
    };
    let (pid, bytes) = plan.seal(repo.key());
    s.put(
        &format!("{PLANS_PREFIX}{pid}"),
        Bytes::from(bytes).into(),
        WriteMode::Create,
    )
    .unwrap();
    repo.delete_snapshot(snapshot).unwrap();
    if sweep {
        for prefix in ["data/", "index/"] {
            for o in s.list(prefix).unwrap() {
                s.delete(&o.key).unwrap();
            }
        }
    }
}

#[test]
fn lapsed_writer_whose_blobs_were_swept_refuses_to_commit() {
    let (s, repo, data, old) = setup("lapsed-swept");
    let w = repo.writer(WriterOptions::default()).unwrap();
    let content = w.write_stream(&data[..], &NoProgress).unwrap();
    assert_eq!(
        w.stats().new_blobs,
        0,
        "should have deduplicated everything"
    );
    // The writer is suspended past its TTL; maintenance condemns and sweeps meanwhile.
    w.session().unwrap().backdate(Duration::from_secs(3600));
    condemn_and_sweep(&s, &repo, &old, true);
    let node = repo_core::tree::Node {
        name: repo_core::tree::Name(b"f".to_vec()),
        kind: repo_core::tree::NodeKind::File,
        size: content.size,
        mode: 0o644,
        mtime: String::new(),
        content: content.chunks,
        subtree: None,
        ..Default::default()
    };
    let root = w
        .write_tree(&repo_core::tree::Tree {
            nodes: vec![node],
            ..Default::default()
        })
        .unwrap();
    let mut snap = Snapshot::new("v", "h", vec![], root).unwrap();
    snap.summary.files = 1;
    let err = w.commit(snap).unwrap_err();
    assert!(
        matches!(err, Error::SessionExpired { missing, .. } if missing > 0),
        "{err}"
    );
    assert!(err.to_string().contains("run the backup again"), "{err}");
    assert!(
        repo.snapshot_ids().unwrap().is_empty(),
        "a snapshot with missing data was committed"
    );
}

#[test]
fn lapsed_writer_commits_when_its_blobs_survive() {
    let (_s, repo, data, _old) = setup("lapsed-ok");
    let w = repo.writer(WriterOptions::default()).unwrap();
    w.session().unwrap().backdate(Duration::from_secs(3600));
    let snap = Snapshot::new("v", "h", vec![], Default::default()).unwrap();
    let (id, _) = w.backup_stream(&data[..], "f", snap, &NoProgress).unwrap();
    let mut out = Vec::new();
    repo.dump_file(&id, "f", &mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn writers_do_not_deduplicate_against_condemned_blobs() {
    let (s, repo, data, old) = setup("condemned");
    condemn_and_sweep(&s, &repo, &old, false);
    let old_objects: Vec<String> = ["data/", "index/"]
        .iter()
        .flat_map(|p| s.list(p).unwrap())
        .map(|o| o.key)
        .collect();
    let repo = open(s.clone());
    let snap = Snapshot::new("v", "h", vec![], Default::default()).unwrap();
    let (id, summary) = repo
        .writer(WriterOptions::default())
        .unwrap()
        .backup_stream(&data[..], "f", snap, &NoProgress)
        .unwrap();
    assert!(
        summary.summary.new_bytes >= data.len() as u64,
        "deduplicated against condemned blobs: {:?}",
        summary.summary
    );
    // The sweep deletes every condemned pack and the index files listing them; the new
    // snapshot must not notice.
    for k in &old_objects {
        s.delete(k).unwrap();
    }
    let repo = open(s.clone());
    assert_restores(&repo, &id, "f", &data);
}

#[test]
fn sessions_are_registered_and_removed() {
    let (s, repo, data, _) = setup("session-objects");
    let w = repo.writer(WriterOptions::default()).unwrap();
    assert_eq!(s.list("sessions/").unwrap().len(), 1);
    let snap = Snapshot::new("v", "h", vec![], Default::default()).unwrap();
    w.backup_stream(&data[..], "f", snap, &NoProgress).unwrap();
    assert!(s.list("sessions/").unwrap().is_empty());
}
