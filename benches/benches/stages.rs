//! One criterion group per write-path stage, on 1 MiB chunks of text-like and random data:
//! chunking, keyed hashing, compression (levels 1 and 3), sealing, opening.
//!
//! `cargo bench -p cairn-benches --bench stages`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use repo_core::chunker::Chunker;
use repo_core::{ChunkerParams, MasterKey};

const LEN: usize = 32 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

fn stages(c: &mut Criterion) {
    let key = MasterKey::from_secret([1; 32]);
    let inputs = [
        ("text", cairn_benches::text(LEN)),
        ("random", cairn_benches::random(LEN)),
    ];
    let chunker = Chunker::new(ChunkerParams::default(), key.chunker_seed());

    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    for (name, data) in &inputs {
        g.bench_with_input(BenchmarkId::from_parameter(name), data, |b, d| {
            b.iter(|| chunker.cut_all(d).len())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    for (name, data) in &inputs {
        g.bench_with_input(BenchmarkId::from_parameter(name), &data[..CHUNK], |b, d| {
            b.iter(|| key.blob_id(d))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("compress");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    for (name, data) in &inputs {
        for level in [1, 3] {
            g.bench_with_input(
                BenchmarkId::new(format!("{name}-level{level}"), CHUNK),
                &data[..CHUNK],
                |b, d| b.iter(|| repo_core::format::encode_payload(level, d).len()),
            );
        }
    }
    g.finish();

    let mut g = c.benchmark_group("seal");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    let plain = &inputs[1].1[..CHUNK];
    g.bench_function("seal", |b| b.iter(|| key.seal(b"aad", plain).len()));
    let sealed = key.seal(b"aad", plain);
    g.bench_function("open", |b| {
        b.iter(|| key.open(b"aad", &sealed, "x").unwrap().len())
    });
    g.finish();

    let mut g = c.benchmark_group("decompress");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    let enc = repo_core::format::encode_payload(1, &inputs[0].1[..CHUNK]);
    g.bench_function("text-level1", |b| {
        b.iter(|| {
            repo_core::format::decode_payload(&enc, 1 << 30)
                .unwrap()
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
