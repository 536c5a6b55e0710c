//! Fuzz target: tree blobs (directory listings with hostile names, every node kind, holes,
//! split directories) and object content lists. A tree that decodes must hold only safe
//! names, re-encode to a tree that decodes the same, and have times any reader can parse
//! without panicking.
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
        }
        let again = Tree::decode(&tree.encode(), BlobId::default()).expect("re-encoded tree decodes");
        assert_eq!(again, tree);
    }
    let _ = ContentList::decode(data, BlobId::default());
});
