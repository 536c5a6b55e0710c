//! Fuzz target: blob payloads: codec byte, zstd frames with an output bound, sealed blobs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::format::decode_payload(data, 1 << 24);
    let id = repo_core::BlobId::default();
    let config = repo_core::Config::new(Default::default(), 1, 1 << 20).expect("default config");
    let _ = repo_core::blob::open_blob(
        &key,
        &config,
        repo_core::blob::BlobKind::Data,
        &id,
        data,
        "data/fuzz",
    );
});
