//! Measures resident memory per indexed blob: builds an in-memory index of N blobs (default
//! 1,000,000) in packs of 16, and reports the index's own heap accounting and the growth of
//! the process's resident set, before and after returning freed loading buffers to the OS.
//!
//! `cargo run --release -p cairn-benches --bin index-memory -- 1000000`

use repo_core::blob::BlobKind;
use repo_core::index::Index;
use repo_core::pack::BlobRecord;
use repo_core::{BlobId, ObjectId};

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let per_pack = 16u32;
    let before = rss_bytes();
    let mut index = Index::new();
    // As `load_index` does from the index files' sizes.
    index.reserve_staged(n as usize);
    let mut batch = Vec::with_capacity(per_pack as usize);
    for i in 0..n {
        let id = *blake3::hash(&i.to_le_bytes()).as_bytes();
        batch.push(BlobRecord {
            id: BlobId(id),
            kind: BlobKind::Data,
            offset: (i % per_pack) * 1_000_000,
            stored_len: 1_000_000,
            raw_len: 1_000_000,
        });
        if batch.len() == per_pack as usize {
            let pack = ObjectId(*blake3::hash(&(i / per_pack).to_be_bytes()).as_bytes());
            index.add_pack(pack, &batch);
            batch.clear();
        }
    }
    index.shrink();
    let after = rss_bytes();
    // node-agent trims once after loading the index (see its `release_loading_buffers`).
    // SAFETY: malloc_trim takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
    let trimmed = rss_bytes();
    println!("blobs: {}", index.len());
    println!("entry size: {} bytes", Index::ENTRY_BYTES);
    println!(
        "index heap per blob: {:.1} bytes",
        index.heap_bytes() as f64 / index.len() as f64
    );
    println!(
        "resident growth per blob: {:.1} bytes (with glibc's cache of freed loading buffers)",
        after.saturating_sub(before) as f64 / index.len() as f64
    );
    println!(
        "resident growth per blob after malloc_trim, as node-agent runs: {:.1} bytes",
        trimmed.saturating_sub(before) as f64 / index.len() as f64
    );
}
