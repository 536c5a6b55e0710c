//! Tree packs: packs that hold only trees, fetched whole and kept in the local cache, so a
//! walk over a repository on object storage reads its directories from disk.
//!
//! A no-change backup to S3 20 ms away spent 2.3 of its 3.0 s reading the parent's 867
//! trees, one range request each, in the order the walk needs them; restic keeps its tree
//! packs in its cache and reads none. Writers put trees in packs of their own (see
//! `writer.rs`), write each such pack into the cache as they upload it, and a reader that
//! misses fetches the whole pack with one request: a few packs hold every directory of a
//! snapshot.
//!
//! Nothing read from the cache is trusted: a pack is used only if the BLAKE3 of its bytes is
//! its id (the name it is stored under), and each blob is still authenticated when opened.
//! A file that fails either check is deleted and the blob read from storage. Packs are held
//! in memory up to [`BUDGET`], oldest out first; without a cache directory they are only held
//! in memory. Deleting the cache directory at any time is safe.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::budget::BudgetStore;
use crate::pack::pack_key;
use crate::storage::{DynStorage, Payload};
use crate::ObjectId;

/// Most bytes of tree packs held in memory at once.
pub const BUDGET: usize = 64 << 20;
/// Tree packs larger than this are read by ranges as other packs are (a repository with a
/// large pack target would otherwise fetch that much for one directory).
pub const MAX_TREE_PACK: u64 = 32 << 20;

pub(crate) struct TreePacks {
    /// `<cache>/<repository id>/trees`, when there is a cache.
    dir: Option<PathBuf>,
    packs: BudgetStore<ObjectId>,
}

impl TreePacks {
    pub fn new(dir: Option<PathBuf>) -> Self {
        TreePacks {
            dir,
            packs: BudgetStore::new(BUDGET),
        }
    }

    fn file(&self, pack: &ObjectId) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(pack.to_string()))
    }

    /// `range` of tree pack `pack`: from memory, else the cache file, else one request for
    /// the whole pack. `None` when the pack cannot be had that way (the caller reads the
    /// range directly, and reports what is wrong with it).
    pub fn read(&self, storage: &DynStorage, pack: &ObjectId, range: Range<u64>) -> Option<Bytes> {
        let b = self.packs.get(pack, || {
            self.load(pack).or_else(|| {
                let b = storage.get(&pack_key(pack)).ok()?;
                if ObjectId::of(&b) != *pack {
                    return None;
                }
                self.save(pack, &b.clone().into());
                Some(b)
            })
        })?;
        (range.end <= b.len() as u64).then(|| b.slice(range.start as usize..range.end as usize))
    }

    /// The pack from the cache file, if it is there and whole.
    fn load(&self, pack: &ObjectId) -> Option<Bytes> {
        let path = self.file(pack)?;
        let b = std::fs::read(&path).ok()?;
        if ObjectId::of(&b) != *pack {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(Bytes::from(b))
    }

    /// Writes a tree pack into the cache (a writer that just uploaded it, or a reader that
    /// fetched it). Best effort: a cache that cannot be written costs requests, not data.
    pub fn save(&self, pack: &ObjectId, payload: &Payload) {
        let Some(path) = self.file(pack) else { return };
        if path.exists() {
            return;
        }
        let write = || -> std::io::Result<()> {
            let dir = path.parent().expect("a file in the cache directory");
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".{pack}.{}", std::process::id()));
            let mut f = std::fs::File::create(&tmp)?;
            for seg in payload.segments() {
                std::io::Write::write_all(&mut f, seg)?;
            }
            // No fsync: a torn file after a crash fails its hash and is fetched again.
            std::fs::rename(&tmp, &path)
        };
        let _ = write();
    }

    /// Drops a pack whose blob failed to open: from memory and from the cache.
    pub fn forget(&self, pack: &ObjectId) {
        self.packs.forget(pack);
        if let Some(p) = self.file(pack) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Removes cached packs that are no longer tree packs of the repository (deleted or
    /// repacked by maintenance).
    pub fn retain(&self, keep: &HashSet<ObjectId>) {
        let Some(dir) = &self.dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            // Another process's pack being written (`.<id>.<pid>`), unless left by a crash.
            let writing = name.to_str().is_some_and(|n| n.starts_with('.'))
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 3600));
            if writing {
                continue;
            }
            let known = name
                .to_str()
                .and_then(|n| n.parse::<ObjectId>().ok())
                .is_some_and(|id| keep.contains(&id));
            if !known {
                let _ = std::fs::remove_file(Path::new(dir).join(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{open_url, WriteMode};

    #[test]
    fn a_tree_pack_is_fetched_once_cached_checked_and_dropped_when_damaged() {
        let s = open_url("memory://treepacks-test", &Default::default()).unwrap();
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let pack = ObjectId::of(&bytes);
        s.put(&pack_key(&pack), bytes.clone().into(), WriteMode::Create)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let trees = TreePacks::new(Some(dir.path().to_path_buf()));
        assert_eq!(&trees.read(&s, &pack, 10..20).unwrap()[..], &bytes[10..20]);
        let file = dir.path().join(pack.to_string());
        assert!(file.exists());

        // A later run reads it from the cache: the stored pack is not needed.
        s.delete(&pack_key(&pack)).unwrap();
        let again = TreePacks::new(Some(dir.path().to_path_buf()));
        assert_eq!(
            &again.read(&s, &pack, 4990..5000).unwrap()[..],
            &bytes[4990..]
        );

        // A damaged cache file is not used, and is removed.
        let mut bad = bytes.clone();
        bad[100] ^= 1;
        std::fs::write(&file, &bad).unwrap();
        let third = TreePacks::new(Some(dir.path().to_path_buf()));
        assert!(third.read(&s, &pack, 10..20).is_none());
        assert!(!file.exists());

        // Packs no longer in the repository go from the cache.
        let fourth = TreePacks::new(Some(dir.path().to_path_buf()));
        fourth.save(&pack, &bytes.clone().into());
        assert!(file.exists());
        fourth.retain(&HashSet::new());
        assert!(!file.exists());
    }
}
