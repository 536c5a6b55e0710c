//! Fuzz target: the Velero tarball importer (tar, gzip detection, paths, sizes, objects).
//! Small limits so the size checks are reached, and whatever it accepts must be sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_k8s::tarball::{read, Limits, TarballError};
use repo_k8s::Error;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_entry_bytes: 64 << 10,
        max_total_bytes: 4 << 20,
        max_entries: 1000,
    };
    match read(data, &limits) {
        Ok(got) => {
            assert!(got.version.starts_with('1'));
            for (o, origin) in got.objects.iter() {
                assert!(origin.starts_with("resources/") && !origin.contains(".."));
                assert!(!o.name().is_empty());
                let _ = got.discovery.group_resource_of(&o);
            }
        }
        Err(e) => {
            // Every refusal says what to do or what was wrong.
            let msg = e.to_string();
            assert!(!msg.is_empty());
            if let Error::Tarball(TarballError::Hostile { entry, .. }) = e {
                assert!(msg.contains(&format!("{entry:?}")));
            }
        }
    }
});
