//! Fuzz target: key files (plaintext JSON; unwrapping runs argon2 and is not fuzzed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::keyfile::KeyFile::decode(data, "keys/fuzz");
});
