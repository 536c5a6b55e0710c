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
