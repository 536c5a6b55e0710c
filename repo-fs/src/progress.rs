//! Live counters of a backup or restore. The library bumps them from its worker threads
//! (plain atomics, no locks on the hot path); a front-end reads a [`Counts`] snapshot as
//! often as it likes to draw a bar or print JSON lines (Velero's `totalBytes`/`bytesDone`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters shared between the library and whoever displays progress.
#[derive(Default)]
pub struct Counters {
    /// Files and bytes found by the scan so far (the total, once `scan_done`).
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
    pub scan_done: AtomicBool,
    /// Files and bytes handled so far (read, reused, or restored).
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unchanged: AtomicU64,
    pub dirs: AtomicU64,
    /// Entries skipped because of an error (a warning each).
    pub errors: AtomicU64,
    /// The file being worked on (for a progress bar; best effort).
    pub current: Mutex<String>,
}

/// A point-in-time copy of [`Counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total_files: u64,
    pub total_bytes: u64,
    pub scan_done: bool,
    pub files_done: u64,
    pub bytes_done: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub errors: u64,
}

impl Counters {
    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Counts {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            total_files: l(&self.total_files),
            total_bytes: l(&self.total_bytes),
            scan_done: self.scan_done.load(Ordering::Relaxed),
            files_done: l(&self.files_done),
            bytes_done: l(&self.bytes_done),
            files_new: l(&self.files_new),
            files_changed: l(&self.files_changed),
            files_unchanged: l(&self.files_unchanged),
            dirs: l(&self.dirs),
            errors: l(&self.errors),
        }
    }

    pub(crate) fn set_current(&self, path: &std::path::Path) {
        if let Ok(mut c) = self.current.try_lock() {
            c.clear();
            c.push_str(&path.to_string_lossy());
        }
    }
}
