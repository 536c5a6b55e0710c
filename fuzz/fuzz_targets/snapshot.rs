//! Fuzz target: snapshot manifests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::Snapshot::from_json(data, "snapshots/fuzz");
    let _ = repo_core::Snapshot::open(&key, data, "snapshots/fuzz");
});
