//! Builds a local repository of N blobs (default 1,000,000) for the maintenance benchmark,
//! through the library: two snapshots of N·0.6 small files each, overlapping by a fifth,
//! then the first is forgotten, so a full GC finds 40% of the blobs unreferenced.
//!
//! `gc-repo DIR [N]` (password from CAIRN_PASSWORD; a light KDF, so the measured memory is
//! the maintenance's own and not argon2's 64 MiB). See benches/gc.sh.

use rayon::prelude::*;
use repo_core::blob::BlobKind;
use repo_core::tree::{ChunkRef, Name, Node, NodeKind, Tree};
use repo_core::{InitOptions, KdfParams, NoProgress, OpenOptions, Repository, Snapshot};

/// Files per directory tree blob.
const PER_DIR: usize = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: gc-repo DIR [BLOBS]")?;
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let password = std::env::var("CAIRN_PASSWORD").unwrap_or_else(|_| "bench".into());
    let storage = repo_core::storage::open_url(&dir, &Default::default())?;
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let opts = OpenOptions {
        no_cache: true,
        ..Default::default()
    };
    Repository::init(storage.clone(), password.as_bytes(), init, opts.clone())?;
    let repo = Repository::open(storage, password.as_bytes(), opts)?.load_index(&NoProgress)?;
    let writer = repo.writer(Default::default())?;
    // Blob i: 64 bytes unique to i (a small file's whole content).
    let started = std::time::Instant::now();
    let ids: Vec<ChunkRef> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut data = [0u8; 64];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let h = blake3::hash(&(i as u64).to_le_bytes());
            data[8..40].copy_from_slice(h.as_bytes());
            writer
                .write_blob(BlobKind::Data, &data)
                .map(|id| ChunkRef(id, 64))
        })
        .collect::<repo_core::Result<_>>()?;
    let snapshot_of = |range: std::ops::Range<usize>| -> repo_core::Result<repo_core::BlobId> {
        let dirs: Vec<Node> = ids[range]
            .chunks(PER_DIR)
            .enumerate()
            .map(|(d, files)| {
                let nodes = files
                    .iter()
                    .enumerate()
                    .map(|(f, c)| Node {
                        name: Name(format!("f{f:04}").into_bytes()),
                        kind: NodeKind::File,
                        size: 64,
                        content: vec![*c],
                        ..Default::default()
                    })
                    .collect();
                let id = writer.write_tree(&Tree {
                    nodes,
                    ..Default::default()
                })?;
                Ok(Node {
                    name: Name(format!("d{d:05}").into_bytes()),
                    kind: NodeKind::Dir,
                    subtree: Some(id),
                    ..Default::default()
                })
            })
            .collect::<repo_core::Result<_>>()?;
        writer.write_dir(dirs)
    };
    let cut = n * 6 / 10;
    let first = snapshot_of(0..cut)?;
    let second = snapshot_of(n - cut..n)?;
    writer.flush()?;
    let mut snap = Snapshot::new("first", "bench", vec![], first)?;
    snap.summary.files = cut as u64;
    // One writer commits one snapshot; the second goes through a second writer.
    let first_id = writer.commit(snap)?;
    let w2 = repo.writer(Default::default())?;
    let mut snap = Snapshot::new("second", "bench", vec![], second)?;
    snap.summary.files = cut as u64;
    w2.commit(snap)?;
    repo.delete_snapshot(&first_id)?;
    eprintln!(
        "gc-repo: {n} data blobs in {:.1} s; snapshot 'first' forgotten, {} blobs unreferenced",
        started.elapsed().as_secs_f64(),
        n - cut
    );
    Ok(())
}
