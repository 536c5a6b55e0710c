//! The mark set: fingerprints of reachable blobs, 8 bytes each, within a memory budget.
//!
//! Inserts go to a buffer that is sorted and deduplicated when full. If the distinct
//! fingerprints outgrow the budget, sorted runs are spilled to files in a temporary
//! directory and merged at [`MarkSet::finish`] into one sorted file, searched through a
//! sparse in-memory index of its 4 KiB blocks (one read per lookup). A fingerprint collision
//! only makes a dead blob look reachable, which is safe (see [`crate::gcplan`]).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Fingerprints per block of the spilled file.
const BLOCK: usize = 512;

/// A set of `u64` fingerprints with a memory budget.
pub struct MarkSet {
    buf: Vec<u64>,
    /// Entries the buffer may hold before it is compacted.
    cap: usize,
    /// Sorted prefix of `buf` after the last compaction.
    sorted: usize,
    spill_dir: PathBuf,
    runs: Vec<PathBuf>,
    disk: Option<DiskSet>,
    finished: bool,
}

/// The merged, sorted file and the first fingerprint of each of its blocks.
struct DiskSet {
    file: File,
    path: PathBuf,
    firsts: Vec<u64>,
    len: u64,
}

impl MarkSet {
    /// A set that keeps at most about `budget_bytes` of fingerprints in memory, spilling
    /// into `spill_dir` (created if needed) beyond that.
    pub fn new(budget_bytes: usize, spill_dir: &Path) -> Self {
        MarkSet {
            buf: Vec::new(),
            cap: (budget_bytes / 8).max(2 * BLOCK),
            sorted: 0,
            spill_dir: spill_dir.to_path_buf(),
            runs: Vec::new(),
            disk: None,
            finished: false,
        }
    }

    pub fn insert(&mut self, fp: u64) -> Result<()> {
        debug_assert!(!self.finished, "insert after finish");
        self.buf.push(fp);
        if self.buf.len() >= self.cap {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<()> {
        self.buf.sort_unstable();
        self.buf.dedup();
        self.sorted = self.buf.len();
        // Less than half freed: duplicates are not what fills the buffer, spill it.
        if self.buf.len() > self.cap / 2 {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.spill_dir)
            .map_err(|e| Error::io(format!("creating {}", self.spill_dir.display()), e))?;
        let path = self
            .spill_dir
            .join(format!("run-{}-{}", std::process::id(), self.runs.len()));
        write_run(&path, &self.buf)?;
        self.runs.push(path);
        self.buf.clear();
        self.buf.shrink_to(self.cap);
        self.sorted = 0;
        Ok(())
    }

    /// Ends inserting: sorts, and merges spilled runs into one file.
    pub fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.buf.sort_unstable();
        self.buf.dedup();
        if self.runs.is_empty() {
            self.buf.shrink_to_fit();
            return Ok(());
        }
        self.spill()?;
        self.buf = Vec::new();
        let path = self
            .spill_dir
            .join(format!("marked-{}", std::process::id()));
        let (firsts, len) = merge_runs(&self.runs, &path)?;
        for r in self.runs.drain(..) {
            let _ = std::fs::remove_file(r);
        }
        let file =
            File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        self.disk = Some(DiskSet {
            file,
            path,
            firsts,
            len,
        });
        Ok(())
    }

    /// Whether the set holds `fp` (after [`MarkSet::finish`]).
    pub fn contains(&self, fp: u64) -> Result<bool> {
        debug_assert!(self.finished, "contains before finish");
        match &self.disk {
            None => Ok(self.buf.binary_search(&fp).is_ok()),
            Some(d) => d.contains(fp),
        }
    }

    /// Distinct fingerprints (after [`MarkSet::finish`]).
    pub fn len(&self) -> u64 {
        match &self.disk {
            None => self.buf.len() as u64,
            Some(d) => d.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the set spilled to disk.
    pub fn spilled(&self) -> bool {
        self.disk.is_some() || !self.runs.is_empty()
    }
}

impl Drop for MarkSet {
    fn drop(&mut self) {
        for r in &self.runs {
            let _ = std::fs::remove_file(r);
        }
        if let Some(d) = &self.disk {
            let _ = std::fs::remove_file(&d.path);
        }
    }
}

impl DiskSet {
    fn contains(&self, fp: u64) -> Result<bool> {
        let block = match self.firsts.binary_search(&fp) {
            Ok(_) => return Ok(true),
            Err(0) => return Ok(false),
            Err(i) => i - 1,
        };
        let start = block as u64 * BLOCK as u64;
        let n = (self.len - start).min(BLOCK as u64) as usize;
        let mut bytes = vec![0u8; n * 8];
        self.file
            .read_exact_at(&mut bytes, start * 8)
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let v = u64::from_le_bytes(bytes[mid * 8..mid * 8 + 8].try_into().expect("8"));
            match v.cmp(&fp) {
                std::cmp::Ordering::Equal => return Ok(true),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(false)
    }
}

fn write_run(path: &Path, sorted: &[u64]) -> Result<()> {
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    for v in sorted {
        w.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    w.flush().map_err(io)
}

/// A sorted run read sequentially.
struct RunReader {
    r: BufReader<File>,
    head: Option<u64>,
}

impl RunReader {
    fn advance(&mut self) -> std::io::Result<()> {
        let mut b = [0u8; 8];
        self.head = match self.r.read_exact(&mut b) {
            Ok(()) => Some(u64::from_le_bytes(b)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(e),
        };
        Ok(())
    }
}

/// Merges sorted runs into `out` without duplicates. Returns each block's first value and
/// the count.
fn merge_runs(runs: &[PathBuf], out: &Path) -> Result<(Vec<u64>, u64)> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| Error::io(format!("merging mark runs ({p})"), e)
    };
    let mut readers = Vec::with_capacity(runs.len());
    for p in runs {
        let mut r = RunReader {
            r: BufReader::with_capacity(64 * 1024, File::open(p).map_err(io(p))?),
            head: None,
        };
        r.advance().map_err(io(p))?;
        readers.push(r);
    }
    let mut w = BufWriter::new(File::create(out).map_err(io(out))?);
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>> = readers
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.head.map(|h| std::cmp::Reverse((h, i))))
        .collect();
    let (mut firsts, mut n, mut last) = (Vec::new(), 0u64, None);
    while let Some(std::cmp::Reverse((v, i))) = heap.pop() {
        if last != Some(v) {
            if n % BLOCK as u64 == 0 {
                firsts.push(v);
            }
            w.write_all(&v.to_le_bytes()).map_err(io(out))?;
            n += 1;
            last = Some(v);
        }
        readers[i].advance().map_err(io(&runs[i]))?;
        if let Some(h) = readers[i].head {
            heap.push(std::cmp::Reverse((h, i)));
        }
    }
    w.flush().map_err(io(out))?;
    Ok((firsts, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn check(budget: usize, n: usize, expect_spill: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
        let values: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
        let mut set = MarkSet::new(budget, dir.path());
        for v in values.iter().chain(values.iter().step_by(3)) {
            set.insert(*v).unwrap();
        }
        set.finish().unwrap();
        assert_eq!(set.spilled(), expect_spill);
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(set.len(), distinct.len() as u64);
        for v in &values {
            assert!(set.contains(*v).unwrap(), "{v} missing");
        }
        for _ in 0..n {
            let v: u64 = rng.gen();
            assert_eq!(set.contains(v).unwrap(), distinct.binary_search(&v).is_ok());
        }
        assert!(!set.contains(0).unwrap() || distinct.contains(&0));
        assert!(!set.contains(u64::MAX).unwrap() || distinct.contains(&u64::MAX));
        drop(set);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "leftovers"
        );
    }

    #[test]
    fn in_memory() {
        check(1 << 20, 50_000, false);
    }

    #[test]
    fn spills_and_merges() {
        check(64 * 1024, 100_000, true);
    }
}
