//! Against a real S3 server (moto_server on 127.0.0.1, started by tests/run.sh): round trips,
//! create-only races, and damage detection.

use cairn_tests::*;
use repo_core::storage;

#[test]
fn s3_roundtrip_and_check() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let url = s3_bucket(&endpoint, "roundtrip");
    let s = storage::open_url(&url, &Default::default()).unwrap();
    let repo = init(s.clone());
    let data = text_bytes(4_000_000, 3);
    let (id, _) = backup(&repo, &data, "f", &[]);
    let repo = open(s.clone());
    assert_restores(&repo, &id, "f", &data);
    // Objects live under the prefix.
    assert!(s
        .list("data/")
        .unwrap()
        .iter()
        .all(|o| o.key.starts_with("data/")));
}

#[test]
fn s3_create_only_race() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let url = s3_bucket(&endpoint, "race");
    let s = storage::open_url(
        &url,
        &storage::StorageOptions {
            retry: storage::RetryPolicy::none(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_create_only_race(&s);
}

#[test]
fn s3_missing_bucket_is_a_clear_error() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    s3_bucket(&endpoint, "exists");
    let s = storage::open_url(
        "s3://no-such-bucket-cairn/x",
        &storage::StorageOptions {
            retry: storage::RetryPolicy::none(),
            ..Default::default()
        },
    )
    .unwrap();
    let e = repo_core::Repository::open(s, PASSWORD, open_opts())
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-bucket-cairn") || msg.contains("config"),
        "{msg}"
    );
}

/// A file tree backed up to S3 and restored from a fresh open (trees from their tree
/// packs, file data pack by pack): byte and metadata identical.
#[test]
fn s3_file_tree_round_trips_pack_by_pack() {
    use repo_fs::{backup, restore, BackupOptions, Counters, RestoreOptions};
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let url = s3_bucket(&endpoint, "tree");
    let s = storage::open_url(&url, &Default::default()).unwrap();
    let repo = init(s.clone());
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for i in 0..300u64 {
        let p = src.join(format!("d{}/f{i:03}", i % 7));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text_bytes(1000 + i as usize * 997, i)).unwrap();
    }
    std::fs::write(src.join("large"), random_bytes(3 << 20, 9)).unwrap();
    let out = backup(
        &repo,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &Counters::default(),
    )
    .unwrap();
    let repo = open(s);
    let target = t.path().join("restored");
    let r = restore(
        &repo,
        &out.id.to_string(),
        "",
        &target,
        &RestoreOptions {
            verify: true,
            ..Default::default()
        },
        &Counters::default(),
        &|_| {},
    )
    .unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.files, 301);
    assert_eq!(tree_state(&src), tree_state(&target));
}
