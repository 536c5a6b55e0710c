//! The whole write path (chunk → hash → dedup → compress → seal → pack → store) and read path
//! (index → range read → open → decompress → verify) through the library, on an in-memory
//! store so storage speed does not hide the pipeline's.
//!
//! `cargo bench -p cairn-benches --bench paths`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use repo_core::{
    storage, InitOptions, KdfParams, NoProgress, OpenOptions, Repository, Snapshot, WriterOptions,
};

const LEN: usize = 128 * 1024 * 1024;

/// A fresh in-memory repository holding `data` as stream `f`.
fn repo_with(url: &str, data: &[u8]) -> (repo_core::IndexedRepository, repo_core::ObjectId) {
    let s = storage::open_url(url, &Default::default()).unwrap();
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let opts = OpenOptions {
        no_cache: true,
        ..Default::default()
    };
    let repo = Repository::init(s, b"pw", init, opts)
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    let snap = Snapshot::new("bench", "h", vec![], Default::default()).unwrap();
    let (id, _) = repo
        .writer(WriterOptions::default())
        .unwrap()
        .backup_stream(data, "f", snap, &NoProgress)
        .unwrap();
    (repo, id)
}

fn paths(c: &mut Criterion) {
    let inputs = [
        ("text", cairn_benches::text(LEN)),
        ("random", cairn_benches::random(LEN)),
    ];
    let mut g = c.benchmark_group("write-path");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    for (name, data) in &inputs {
        g.bench_function(*name, |b| {
            let mut round = 0;
            b.iter(|| {
                // A fresh repository each time: every byte is new, nothing deduplicates.
                round += 1;
                let (repo, _) = repo_with(&format!("memory://bench-{name}-{round}"), data);
                for o in repo.storage().list("").unwrap() {
                    repo.storage().delete(&o.key).unwrap();
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("read-path");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    for (name, data) in &inputs {
        let (repo, id) = repo_with(&format!("memory://bench-read-{name}"), data);
        g.bench_function(*name, |b| {
            b.iter(|| repo.dump_file(&id, "f", &mut std::io::sink()).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, paths);
criterion_main!(benches);
