//! Fuzz target: the repository config (payload parser and sealed object).
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::Config::from_json(data);
    let _ = repo_core::Config::decode(&key, data);
});
