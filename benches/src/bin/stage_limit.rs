//! The pipeline limit of a first backup of a directory: the CPU time of its stages alone
//! (content-defined chunking, keyed BLAKE3, the compressibility check and zstd, AES-256-GCM),
//! measured on the directory's own files, one thread, and divided by the cores. A backup
//! cannot be faster than that on this machine; `benches/compare` reports how close it gets.
//!
//!     stage-limit DIR [CORES] [LEVEL]
//!
//! Files are read before their stages are timed (reading is not a stage); duplicates are not
//! skipped (the Linux tree has few). Prints one JSON object.

use std::path::Path;
use std::time::{Duration, Instant};

use repo_core::chunker::Chunker;
use repo_core::{ChunkerParams, MasterKey};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: stage-limit DIR [CORES] [LEVEL]");
        std::process::exit(2);
    };
    let cores: f64 = args
        .get(2)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64);
    let level: i32 = args.get(3).and_then(|l| l.parse().ok()).unwrap_or(1);
    let key = MasterKey::from_secret([7; 32]);
    let chunker = Chunker::new(ChunkerParams::default(), key.chunker_seed());
    let mut t = Stages::default();
    let mut files = Vec::new();
    collect(Path::new(dir), &mut files);
    let mut payload = Vec::new();
    for f in &files {
        let Ok(data) = std::fs::read(f) else { continue };
        t.files += 1;
        t.bytes += data.len() as u64;
        let at = Instant::now();
        let cuts = chunker.cut_all(&data);
        t.chunk += at.elapsed();
        let mut rest = &data[..];
        for n in cuts {
            let (piece, next) = rest.split_at(n);
            rest = next;
            t.chunks += 1;
            let at = Instant::now();
            let id = key.blob_id(piece);
            t.hash += at.elapsed();
            payload.clear();
            payload.resize(repo_core::crypto::SALT_LEN, 0);
            let at = Instant::now();
            repo_core::format::encode_payload_into(
                level,
                piece,
                repo_core::crypto::TAG_LEN,
                &mut payload,
            );
            t.compress += at.elapsed();
            let at = Instant::now();
            key.seal_in_place(&id.0, &mut payload);
            t.seal += at.elapsed();
        }
    }
    let sum = t.chunk + t.hash + t.compress + t.seal;
    println!(
        "{{\"files\":{},\"bytes\":{},\"chunks\":{},\"chunk_s\":{:.3},\"hash_s\":{:.3},\
         \"compress_s\":{:.3},\"seal_s\":{:.3},\"cpu_s\":{:.3},\"cores\":{},\"limit_s\":{:.3}}}",
        t.files,
        t.bytes,
        t.chunks,
        t.chunk.as_secs_f64(),
        t.hash.as_secs_f64(),
        t.compress.as_secs_f64(),
        t.seal.as_secs_f64(),
        sum.as_secs_f64(),
        cores,
        sum.as_secs_f64() / cores,
    );
}

#[derive(Default)]
struct Stages {
    files: u64,
    bytes: u64,
    chunks: u64,
    chunk: Duration,
    hash: Duration,
    compress: Duration,
    seal: Duration,
}

/// Regular files below `dir`, in a stable order.
fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}
