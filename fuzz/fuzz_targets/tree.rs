//! Fuzz target: tree blobs (directory listings with hostile names) and object content lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::MasterKey;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret([7; 32]);
    let _ = &key;
    let _ = repo_core::tree::Tree::decode(data, repo_core::BlobId::default());
    let _ = repo_core::tree::ContentList::decode(data, repo_core::BlobId::default());
});
