//! Fuzz target: tree blobs (directory listings with hostile names, every node kind, holes,
//! split directories) and object content lists. A tree that decodes must hold only safe
//! names and sizes a restore can make, re-encode to a tree that decodes the same, and have
//! times any reader can parse without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_core::tree::{ContentList, Tree};
use repo_core::BlobId;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data, BlobId::default()) {
        for n in &tree.nodes {
            assert!(n.name.validate().is_ok(), "unsafe name accepted");
            let _ = repo_core::time::parse_unix(&n.mtime);
            let _ = repo_core::time::parse_unix(&n.ctime);
            let total: u64 = n.content.iter().map(|c| c.1 as u64).sum();
            assert!(n.kind != repo_core::tree::NodeKind::File || total == n.size);
            // What a restore can make: a file no larger than a file can be, holes no
            // longer than one entry records.
            assert!(n.size <= i64::MAX as u64 || n.kind != repo_core::tree::NodeKind::File);
            assert!(n
                .content
                .iter()
                .all(|c| !c.is_hole() || c.1 <= repo_core::tree::MAX_HOLE));
        }
        let again = Tree::decode(&tree.encode(), BlobId::default()).expect("re-encoded tree decodes");
        assert_eq!(again, tree);
    }
    let _ = ContentList::decode(data, BlobId::default());
});
