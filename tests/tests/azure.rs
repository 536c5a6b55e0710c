//! Against a real Azure Blob emulator (Azurite on 127.0.0.1, started by tests/run.sh):
//! round trip, create-only race, concurrent writers, a missing container.

use cairn_tests::*;
use repo_core::storage;

#[test]
fn azure_roundtrip_race_and_missing_container() {
    let Some(endpoint) = azure_endpoint() else {
        return;
    };
    let url = azure_container(&endpoint, "roundtrip");
    let s = storage::open_url(&url, &Default::default()).unwrap();
    let repo = init(s.clone());
    let data = text_bytes(3_000_000, 4);
    let (id, _) = backup(&repo, &data, "f", &[]);
    let repo = open(s.clone());
    assert_restores(&repo, &id, "f", &data);

    let race = storage::open_url(
        &azure_container(&endpoint, "race"),
        &storage::StorageOptions {
            retry: storage::RetryPolicy::none(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_create_only_race(&race);

    let missing = storage::open_url(
        "az://no-such-container/x",
        &storage::StorageOptions {
            retry: storage::RetryPolicy::none(),
            ..Default::default()
        },
    )
    .unwrap();
    let e = repo_core::Repository::init(missing, PASSWORD, small_init(), open_opts())
        .err()
        .unwrap();
    assert!(e.to_string().contains("container does not exist"), "{e}");
}
