//! Reading a directory's subdirectories ahead, for walks over object storage.
//!
//! A walk reads one tree blob per directory, each a request: over a network that is one
//! round trip per directory, in sequence (823 directories of /usr/share/doc took 1.25 s on
//! a loopback S3). When a walk enters a directory it hands the ids of the subdirectories to
//! [`TreePrefetch::fetch`], which reads them in parallel into a bounded store; reading one
//! of them then takes it from there. A local repository does not prefetch: its reads cost
//! microseconds. The store never holds more than [`PREFETCH_BYTES`] (the oldest go first);
//! what is not there is read when needed, as before.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::BlobId;

/// Most bytes of prefetched tree blobs held at once.
pub const PREFETCH_BYTES: usize = 32 << 20;

/// Requests in flight while prefetching: as for the restore's workers, a loopback S3 gave
/// its best at 16.
const PREFETCH_REQUESTS: usize = 16;

/// Prefetched plaintext tree blobs, each taken out when it is read. When full, the oldest
/// go first: a walk that stopped, or skipped a directory, must not leave the store full.
#[derive(Default)]
pub(crate) struct TreePrefetch {
    blobs: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    blobs: HashMap<BlobId, Vec<u8>>,
    /// Insertion order (ids already taken are skipped when evicting).
    order: VecDeque<BlobId>,
    bytes: usize,
}

impl Store {
    fn take(&mut self, id: &BlobId) -> Option<Vec<u8>> {
        let blob = self.blobs.remove(id)?;
        self.bytes -= blob.len();
        Some(blob)
    }

    fn insert(&mut self, id: BlobId, blob: Vec<u8>) {
        if blob.len() > PREFETCH_BYTES || self.blobs.contains_key(&id) {
            return;
        }
        while self.bytes + blob.len() > PREFETCH_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.take(&old);
        }
        self.bytes += blob.len();
        self.order.push_back(id);
        self.blobs.insert(id, blob);
    }
}

impl TreePrefetch {
    /// The blob of `id` if it was prefetched (and removes it: a walk reads each once).
    pub fn take(&self, id: &BlobId) -> Option<Vec<u8>> {
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(id)
    }

    /// Reads `ids` with `read` in parallel and keeps what fits. Errors are dropped: the
    /// walk reads the blob again when it needs it, and reports the error then.
    pub fn fetch(&self, ids: &[BlobId], read: &(dyn Fn(&BlobId) -> Option<Vec<u8>> + Sync)) {
        let wanted: Vec<BlobId> = {
            // Once each (directories with the same content share a tree), in walk order.
            let g = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
            let mut once = std::collections::HashSet::new();
            ids.iter()
                .filter(|id| !g.blobs.contains_key(id) && once.insert(**id))
                .copied()
                .collect()
        };
        if wanted.len() < 2 {
            return; // one read ahead saves nothing over reading it when needed
        }
        let next = AtomicUsize::new(0);
        let worker = || {
            while let Some(id) = wanted.get(next.fetch_add(1, Ordering::Relaxed)) {
                if let Some(blob) = read(id) {
                    let mut g = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
                    g.insert(*id, blob);
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 0..PREFETCH_REQUESTS.min(wanted.len()) {
                s.spawn(worker);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetched_blobs_are_taken_once_and_the_store_stays_bounded() {
        let p = TreePrefetch::default();
        let ids: Vec<BlobId> = (0..4u8).map(|i| BlobId([i; 32])).collect();
        p.fetch(&ids, &|id| Some(vec![id.0[0]; 10]));
        assert_eq!(p.take(&ids[2]), Some(vec![2; 10]));
        assert_eq!(p.take(&ids[2]), None, "taken twice");
        // The store stays within its budget: the oldest go first.
        let big: Vec<BlobId> = (10..14u8).map(|i| BlobId([i; 32])).collect();
        p.fetch(&big, &|_| Some(vec![0; PREFETCH_BYTES / 3]));
        let kept = big.iter().filter(|id| p.take(id).is_some()).count();
        assert_eq!(
            kept, 3,
            "three thirds fit, the fourth pushed out the oldest"
        );
        assert!(p.take(&ids[0]).is_none(), "the oldest was not evicted");
        // A failed read is simply not kept.
        let failing = [BlobId([20; 32]), BlobId([21; 32])];
        p.fetch(&failing, &|_| None);
        assert!(p.take(&failing[0]).is_none());
    }
}
