//! Fuzz target: GC plans as writers read them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::gcplan::GcPlan::from_json(data, "maintenance/plans/fuzz");
    let _ = repo_core::gcplan::GcPlan::open(&key, data, "maintenance/plans/fuzz");
});
