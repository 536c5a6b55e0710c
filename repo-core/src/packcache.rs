//! Pack windows: large aligned pieces of packs kept in memory for a restore from object
//! storage.
//!
//! A restore reads each file (or each batch of a directory's small files) with its own range
//! request, and files that were backed up together sit together in packs: restoring
//! /usr/share/doc from S3 made about a thousand requests for 47 MB in three packs, where
//! restic reads each pack once. Reading an aligned window of [`WINDOW`] bytes around a range
//! and keeping it serves the neighbouring files from memory. Threads wanting the same window
//! wait for the one fetching it. Memory stays within [`BUDGET`] (the oldest windows go
//! first); a range across two windows, or a failed window read, is read directly as before.
//! A local repository reads directly: its reads cost microseconds.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use bytes::Bytes;

use crate::budget::BudgetStore;
use crate::pack::pack_key;
use crate::storage::DynStorage;
use crate::ObjectId;

/// Size and alignment of a window, and most bytes of windows held at once. Measured on
/// SeaweedFS over loopback, 2 cores, 16 restore workers. /usr/share/doc (110 MB): 4 MiB
/// windows in 48 MiB 0.57–0.59 s, 8 in 96 0.61–0.69 s, 16 in 96 0.57–0.61 s; without windows
/// 1.45 s, restic 1.15 s. The Linux tree (1.3 GB, 78,579 files), 4 MiB windows: in 48 MiB
/// 6.99 s and 159 MB peak (windows evicted before their neighbours were read, and read
/// again), in 96 MiB 5.08–6.07 s and 175–208 MB, in 192 MiB 5.29–5.38 s and 273–279 MB;
/// restic 5.47 s and 194 MB. Restores now fill files below 16 MiB pack by pack
/// (`packread.rs`); the windows serve larger files and single-stream reads.
pub const WINDOW: u64 = 4 << 20;
pub const BUDGET: usize = 96 << 20;

pub(crate) struct PackWindows {
    windows: BudgetStore<(ObjectId, u64)>,
    sizes: Mutex<HashMap<ObjectId, u64>>,
}

impl Default for PackWindows {
    fn default() -> Self {
        PackWindows {
            windows: BudgetStore::new(BUDGET),
            sizes: Mutex::default(),
        }
    }
}

impl PackWindows {
    /// `range` of `pack` from a cached window, fetching the window when needed; `None` when
    /// the range cannot be served that way (the caller reads it directly).
    pub fn read(&self, storage: &DynStorage, pack: &ObjectId, range: Range<u64>) -> Option<Bytes> {
        if range.is_empty() {
            return None;
        }
        let index = range.start / WINDOW;
        if (range.end - 1) / WINDOW != index {
            return None;
        }
        let window = self.windows.get(&(*pack, index), || {
            let start = index * WINDOW;
            let size = self.size(storage, pack)?;
            let end = (start + WINDOW).min(size);
            storage.get_range(&pack_key(pack), start..end).ok()
        })?;
        let (from, to) = (
            (range.start % WINDOW) as usize,
            (range.end - index * WINDOW) as usize,
        );
        (to <= window.len()).then(|| window.slice(from..to))
    }

    /// The size of a pack, asked once.
    fn size(&self, storage: &DynStorage, pack: &ObjectId) -> Option<u64> {
        let known = self
            .sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pack)
            .copied();
        if known.is_some() {
            return known;
        }
        let size = storage.head(&pack_key(pack)).ok()?.size;
        self.sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*pack, size);
        Some(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{open_url, WriteMode};

    #[test]
    fn ranges_come_from_one_window_read_and_match_a_direct_read() {
        let s = open_url("memory://packcache-test", &Default::default()).unwrap();
        let pack = ObjectId([7; 32]);
        let len = WINDOW as usize + 1000;
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        s.put(&pack_key(&pack), data.clone().into(), WriteMode::Create)
            .unwrap();
        let w = PackWindows::default();
        for r in [
            0..10u64,
            100..5000,
            WINDOW - 10..WINDOW,
            WINDOW..WINDOW + 1000,
        ] {
            let got = w.read(&s, &pack, r.clone()).unwrap();
            assert_eq!(&got[..], &data[r.start as usize..r.end as usize], "{r:?}");
        }
        // Across two windows: not served, read directly by the caller.
        assert!(w.read(&s, &pack, WINDOW - 5..WINDOW + 5).is_none());
        // Past the end of the pack: not served either.
        assert!(w.read(&s, &pack, WINDOW + 500..WINDOW + 2000).is_none());
        assert_eq!(w.windows.len(), 2);
    }
}
