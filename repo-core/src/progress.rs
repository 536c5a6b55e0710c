//! Progress reporting: a trait the library calls and binaries implement (a bar on a
//! terminal, JSON lines in a pod). Every method has a no-op default.

/// Receives progress from long operations. Called from worker threads.
pub trait Progress: Send + Sync {
    /// A phase begins (`"backup"`, `"index"`, `"check"`, …), with its size if known.
    fn start(&self, _phase: &str, _total: Option<u64>) {}
    /// `n` more units (bytes or items, as the phase says) are done.
    fn advance(&self, _n: u64) {}
    /// A human-readable note (a warning, a skipped item).
    fn message(&self, _msg: &str) {}
    /// The phase ended.
    fn finish(&self) {}
}

/// Discards all progress.
pub struct NoProgress;

impl Progress for NoProgress {}
