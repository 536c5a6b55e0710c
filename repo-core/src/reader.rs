//! Reading streams back: a seekable reader, and a parallel dump that coalesces adjacent
//! blobs of a pack into one range read.
//!
//! Every byte returned has been authenticated and checked against its blob id; damage is an
//! error naming the pack and blob, never wrong bytes.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::blob::{open_blob, BlobKind};
use crate::pack::pack_key;
use crate::tree::ChunkRef;
use crate::{BlobId, Error, IndexedRepository, ObjectId, Result};

/// A `Read + Seek` view of a stream's content.
pub struct StreamReader<'r> {
    repo: &'r IndexedRepository,
    chunks: Vec<ChunkRef>,
    /// Offset of each chunk's first byte.
    starts: Vec<u64>,
    size: u64,
    pos: u64,
    current: Option<(usize, Vec<u8>)>,
}

impl<'r> StreamReader<'r> {
    pub fn new(repo: &'r IndexedRepository, chunks: Vec<ChunkRef>) -> Self {
        let mut starts = Vec::with_capacity(chunks.len());
        let mut at = 0u64;
        for c in &chunks {
            starts.push(at);
            at += c.1 as u64;
        }
        StreamReader {
            repo,
            chunks,
            starts,
            size: at,
            pos: 0,
            current: None,
        }
    }

    /// Total length.
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e)
}

impl Read for StreamReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let i = self.starts.partition_point(|&s| s <= self.pos) - 1;
        if self.current.as_ref().is_none_or(|(ci, _)| *ci != i) {
            let c = self.chunks[i];
            let data = self.repo.read_blob(&c.0).map_err(to_io)?;
            if data.len() != c.1 as usize {
                return Err(to_io(Error::corrupt_blob(
                    "stream",
                    c.0,
                    format!("blob has {} bytes, the tree says {}", data.len(), c.1),
                )));
            }
            self.current = Some((i, data));
        }
        let (_, data) = self.current.as_ref().expect("loaded above");
        let off = (self.pos - self.starts[i]) as usize;
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for StreamReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => self.size as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the stream",
            ));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}

/// Adjacent blobs of one pack, read with one range request.
struct Run {
    pack: ObjectId,
    start: u64,
    end: u64,
    blobs: Vec<(BlobId, BlobKind, u64, u64, u32)>,
}

/// Largest range read when coalescing: big enough that a sequential dump makes few requests,
/// small enough that `window × MAX_RUN` (plus the decoded copies) stays far below the memory
/// budget of a node agent.
const MAX_RUN: u64 = 8 * 1024 * 1024;

fn plan_runs(repo: &IndexedRepository, chunks: &[ChunkRef]) -> Result<Vec<Run>> {
    let index = repo.index();
    let mut runs: Vec<Run> = Vec::new();
    for c in chunks {
        let loc = index.lookup(&c.0).ok_or_else(|| Error::NotFound {
            what: "blob (not in the index)",
            object: c.0.to_string(),
        })?;
        let (s, e) = (loc.offset as u64, loc.offset as u64 + loc.stored_len as u64);
        match runs.last_mut() {
            Some(r) if r.pack == loc.pack && r.end == s && e - r.start <= MAX_RUN => {
                r.end = e;
                r.blobs.push((c.0, loc.kind, s, e, c.1));
            }
            _ => runs.push(Run {
                pack: loc.pack,
                start: s,
                end: e,
                blobs: vec![(c.0, loc.kind, s, e, c.1)],
            }),
        }
    }
    Ok(runs)
}

fn read_run(repo: &IndexedRepository, run: &Run) -> Result<Vec<Vec<u8>>> {
    let key = pack_key(&run.pack);
    let bytes = repo.storage().get_range(&key, run.start..run.end)?;
    run.blobs
        .iter()
        .map(|&(id, kind, s, e, raw)| {
            let plain = open_blob(
                repo.key(),
                kind,
                &id,
                &bytes[(s - run.start) as usize..(e - run.start) as usize],
                &key,
            )?;
            if plain.len() != raw as usize {
                return Err(Error::corrupt_blob(
                    &key,
                    id,
                    format!("blob has {} bytes, the tree says {raw}", plain.len()),
                ));
            }
            Ok(plain)
        })
        .collect()
}

/// Writes a stream's content to `out`, reading `threads` ranges at once. Returns bytes
/// written.
pub fn dump(
    repo: &IndexedRepository,
    chunks: &[ChunkRef],
    out: &mut dyn Write,
    threads: usize,
) -> Result<u64> {
    let runs = plan_runs(repo, chunks)?;
    let mut written = 0u64;
    crate::parallel::ordered_map(
        runs.len(),
        threads,
        threads + 2,
        |i| read_run(repo, &runs[i]),
        |_, r| {
            for blob in r? {
                out.write_all(&blob)
                    .map_err(|e| Error::io("writing output", e))?;
                written += blob.len() as u64;
            }
            Ok(())
        },
    )?;
    out.flush().map_err(|e| Error::io("writing output", e))?;
    Ok(written)
}
