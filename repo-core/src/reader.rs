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
            if c.is_hole() {
                self.current = Some((i, vec![0; c.1 as usize]));
            }
        }
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

/// One blob of a [`Run`]: where it is in the pack and where its bytes go in the stream.
#[derive(Clone, Debug)]
pub struct RunBlob {
    pub id: BlobId,
    kind: BlobKind,
    start: u64,
    end: u64,
    /// Plaintext length the tree promises.
    pub len: u32,
    /// Offset of the blob's first byte in the stream.
    pub offset: u64,
}

/// Adjacent blobs of one pack, read with one range request.
#[derive(Clone, Debug)]
pub struct Run {
    pub pack: ObjectId,
    start: u64,
    end: u64,
    pub blobs: Vec<RunBlob>,
}

impl Run {
    /// Bytes read from storage for this run.
    pub fn stored_len(&self) -> u64 {
        self.end - self.start
    }
}

/// Largest range read when coalescing: big enough that a sequential dump makes few requests,
/// small enough that `window × MAX_RUN` (plus the decoded copies) stays far below the memory
/// budget of a node agent.
const MAX_RUN: u64 = 8 * 1024 * 1024;

/// Plans the reads of a stream: its stored chunks grouped into range reads of adjacent
/// blobs, in stream order. Holes need no read and are left out; each blob carries its
/// stream offset.
pub fn plan_runs(repo: &IndexedRepository, chunks: &[ChunkRef]) -> Result<Vec<Run>> {
    let index = repo.index();
    let mut runs: Vec<Run> = Vec::new();
    let mut offset = 0u64;
    for c in chunks {
        let at = offset;
        offset += c.1 as u64;
        if c.is_hole() {
            continue;
        }
        let loc = index.lookup(&c.0).ok_or_else(|| Error::NotFound {
            what: "blob (not in the index)",
            object: c.0.to_string(),
        })?;
        let (s, e) = (loc.offset as u64, loc.offset as u64 + loc.stored_len as u64);
        let blob = RunBlob {
            id: c.0,
            kind: loc.kind,
            start: s,
            end: e,
            len: c.1,
            offset: at,
        };
        match runs.last_mut() {
            Some(r) if r.pack == loc.pack && r.end == s && e - r.start <= MAX_RUN => {
                r.end = e;
                r.blobs.push(blob);
            }
            _ => runs.push(Run {
                pack: loc.pack,
                start: s,
                end: e,
                blobs: vec![blob],
            }),
        }
    }
    Ok(runs)
}

/// Reads one run with a single range request; returns each blob's plaintext, verified
/// against its id and length, in order.
pub fn read_run(repo: &IndexedRepository, run: &Run) -> Result<Vec<Vec<u8>>> {
    let key = pack_key(&run.pack);
    let bytes = match repo.read_pack_range(&run.pack, run.start..run.end) {
        Ok(b) => b,
        // A sweep repacked these blobs since the index was loaded: read each by id, which
        // reloads the index once and finds the new copies.
        Err(Error::NotFound { .. }) => {
            return run
                .blobs
                .iter()
                .map(|b| checked_len(repo.read_blob(&b.id)?, b, &key))
                .collect()
        }
        Err(e) => return Err(e),
    };
    run.blobs
        .iter()
        .map(|b| {
            let plain = open_blob(
                repo.key(),
                repo.config(),
                b.kind,
                &b.id,
                &bytes[(b.start - run.start) as usize..(b.end - run.start) as usize],
                &key,
            )?;
            checked_len(plain, b, &key)
        })
        .collect()
}

/// The plaintext, if it has the length the tree promises.
fn checked_len(plain: Vec<u8>, b: &RunBlob, key: &str) -> Result<Vec<u8>> {
    if plain.len() != b.len as usize {
        return Err(Error::corrupt_blob(
            key,
            b.id,
            format!("blob has {} bytes, the tree says {}", plain.len(), b.len),
        ));
    }
    Ok(plain)
}

/// Writes `n` zero bytes (a hole) to a sequential output.
fn write_zeros(out: &mut dyn Write, mut n: u64) -> Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k])
            .map_err(|e| Error::io("writing output", e))?;
        n -= k as u64;
    }
    Ok(())
}

/// Reads a whole (small) stream into memory on the calling thread; holes come out as zeros.
/// For callers that read many small files and spread them over threads themselves
/// (a backup of Kubernetes objects is 100,000 files of 2 KB). A stream longer than `limit`
/// bytes is refused before anything is allocated: a crafted entry's hole of a terabyte
/// would otherwise be a terabyte of zeros in memory.
pub fn read_all(repo: &IndexedRepository, chunks: &[ChunkRef], limit: u64) -> Result<Vec<u8>> {
    let total: u64 = chunks.iter().map(|c| c.1 as u64).sum();
    if total > limit {
        return Err(Error::invalid(
            "stream",
            format!("{total} bytes is more than the {limit} this reader holds in memory"),
        ));
    }
    let mut out = Vec::with_capacity(total as usize);
    for run in plan_runs(repo, chunks)? {
        for (blob, data) in run.blobs.iter().zip(read_run(repo, &run)?) {
            out.resize(blob.offset as usize, 0);
            out.extend_from_slice(&data);
        }
    }
    out.resize(total as usize, 0);
    Ok(out)
}

/// Writes a stream's content to `out`, reading `threads` ranges at once; holes come out as
/// zeros. Returns bytes written.
pub fn dump(
    repo: &IndexedRepository,
    chunks: &[ChunkRef],
    out: &mut dyn Write,
    threads: usize,
) -> Result<u64> {
    let runs = plan_runs(repo, chunks)?;
    let total: u64 = chunks.iter().map(|c| c.1 as u64).sum();
    let mut written = 0u64;
    crate::parallel::ordered_map(
        runs.len(),
        threads,
        threads + 2,
        |i| read_run(repo, &runs[i]),
        |i, r| {
            for (blob, data) in runs[i].blobs.iter().zip(r?) {
                write_zeros(out, blob.offset - written)?;
                out.write_all(&data)
                    .map_err(|e| Error::io("writing output", e))?;
                written = blob.offset + data.len() as u64;
            }
            Ok(())
        },
    )?;
    write_zeros(out, total - written)?;
    out.flush().map_err(|e| Error::io("writing output", e))?;
    Ok(total)
}
