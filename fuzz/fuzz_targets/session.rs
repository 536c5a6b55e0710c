//! Fuzz target: writer session objects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::session::SessionRecord::from_json(data, "sessions/fuzz");
    let _ = repo_core::session::SessionRecord::open(&key, data, "sessions/fuzz");
});
