//! Against a real S3 server (moto_server on 127.0.0.1, started by tests/run.sh): round trips,
//! create-only races, and damage detection.

use std::sync::Arc;

use bytes::Bytes;
use cairn_tests::*;
use repo_core::storage::{self, WriteMode};
use repo_core::Error;

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

/// Eight threads create the same key at once with different bytes: exactly one wins.
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
    for round in 0..5 {
        let key = format!("race/{round}");
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.put(&key, Bytes::from(vec![i; 1000]).into(), WriteMode::Create)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(Error::AlreadyExists { .. }))),
            "{results:?}"
        );
        let stored = s.get(&key).unwrap();
        let winner = results.iter().position(|r| r.is_ok()).unwrap() as u8;
        assert_eq!(stored.as_ref(), &vec![winner; 1000][..]);
    }
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
