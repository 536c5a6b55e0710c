//! Fuzz target: pack headers and trailers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::pack::decode_records(data);
    let _ = repo_core::pack::decode_pack(&key, data, "data/fuzz");
});
