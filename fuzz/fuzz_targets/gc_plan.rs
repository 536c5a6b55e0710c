//! Fuzz target: the maintenance objects other machines write and maintenance reads: GC
//! plans (also read by every writer), the lease, and the run history.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::maintenance::{History, LeaseRecord};
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    if let Ok(p) = repo_core::gcplan::GcPlan::from_json(data, "maintenance/plans/fuzz") {
        // A plan that parses is sorted, so lookups are well defined.
        assert!(p.condemned.windows(2).all(|w| w[0] < w[1]));
        let _ = p.condemns(&repo_core::BlobId([0; 32]));
    }
    let _ = repo_core::gcplan::GcPlan::open(&key, data, "maintenance/plans/fuzz");
    let _ = LeaseRecord::from_json(data, "maintenance/lease/fuzz");
    let _ = LeaseRecord::open(&key, data, "maintenance/lease/fuzz");
    let _ = History::from_json(data, "maintenance/history");
    let _ = History::open(&key, data, "maintenance/history");
});
