//! Fuzz target: key files (plaintext JSON). A key file that decodes must be safe to try a
//! password against: parameters within the hard caps and salt and sealed key of usable lengths,
//! so `unwrap_key` never fails on it and never costs more than the caps allow (it is run
//! when the parameters are cheap; argon2 itself is not what is fuzzed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::crypto::{KDF_HARD_MAX_ITERATIONS, KDF_HARD_MAX_MEMORY_KIB};

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = repo_core::keyfile::KeyFile::decode(data, "keys/fuzz") {
        let p = kf.kdf.params;
        assert!(p.memory_kib <= KDF_HARD_MAX_MEMORY_KIB && p.iterations <= KDF_HARD_MAX_ITERATIONS);
        if p.cost() <= 1024 {
            let opened = kf.unwrap_key(b"password", "keys/fuzz");
            assert!(opened.is_ok(), "a key file that decodes failed to unwrap: {opened:?}");
        }
    }
});
