//! Local cache of index files in redb, so opening a repository does not download every
//! index file again.
//!
//! The cache stores index files exactly as stored (sealed), keyed by id. Nothing read from it
//! is trusted: an entry is used only if its BLAKE3 equals its id and it opens under the
//! repository key; anything else is dropped and fetched again. A cache that cannot be opened
//! (corrupt file, another process holding it) is deleted and rebuilt, or skipped for this run.
//! Deleting the cache directory at any time is safe.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// redb's in-memory page cache for the index cache file.
const CACHE_PAGES_BYTES: usize = 4 * 1024 * 1024;

use crate::ObjectId;

const INDEX_FILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("index_files");

/// The default cache directory: `CAIRN_CACHE_DIR`, else `$XDG_CACHE_HOME/cairn`, else
/// `$HOME/.cache/cairn`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CAIRN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("cairn"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("cairn"))
}

enum Opening {
    InUse,
    Broken(String),
}

/// A repository's index cache.
pub struct IndexCache {
    db: redb::Database,
    path: PathBuf,
}

impl IndexCache {
    /// Opens (or creates, or rebuilds) the cache for repository `repo_id` under `dir`.
    /// Returns `None`, with the reason, when no cache can be used this run.
    pub fn open(dir: &Path, repo_id: &str) -> Result<Self, String> {
        let dir = dir.join(repo_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create cache directory {}: {e}", dir.display()))?;
        let path = dir.join("index.redb");
        match Self::try_open(&path) {
            Ok(db) => Ok(IndexCache { db, path }),
            Err(Opening::InUse) => Err(format!(
                "cache {} is in use by another process; running without it",
                path.display()
            )),
            Err(Opening::Broken(first)) => {
                // Corrupt or from an incompatible version: rebuild from scratch.
                let _ = std::fs::remove_file(&path);
                match Self::try_open(&path) {
                    Ok(db) => Ok(IndexCache { db, path }),
                    Err(Opening::InUse) => Err("cache is in use by another process".into()),
                    Err(Opening::Broken(e)) => Err(format!(
                        "cache {} was unusable ({first}) and could not be rebuilt: {e}",
                        path.display()
                    )),
                }
            }
        }
    }

    fn try_open(path: &Path) -> Result<redb::Database, Opening> {
        // Each index file is read once per process: redb's page cache (1 GiB by default)
        // would only keep a second copy of the index in memory.
        let db = redb::Database::builder()
            .set_cache_size(CACHE_PAGES_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => Opening::InUse,
                other => Opening::Broken(other.to_string()),
            })?;
        // Make sure the table exists so readers never fail on a fresh file.
        let created = (|| -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(INDEX_FILES)?;
            txn.commit()?;
            Ok(())
        })();
        created.map_err(|e| Opening::Broken(e.to_string()))?;
        Ok(db)
    }

    /// Where the cache file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored bytes of an index file, if cached and intact (BLAKE3 matches the id).
    pub fn get(&self, id: &ObjectId) -> Option<Vec<u8>> {
        let txn = self.db.begin_read().ok()?;
        let table = txn.open_table(INDEX_FILES).ok()?;
        let bytes = table.get(id.0.as_slice()).ok()??.value().to_vec();
        (ObjectId::of(&bytes) == *id).then_some(bytes)
    }

    /// Caches index files. Failures are ignored: the cache is an optimisation.
    pub fn put_many(&self, items: &[(ObjectId, Vec<u8>)]) {
        let _ = (|| -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut t = txn.open_table(INDEX_FILES)?;
                for (id, bytes) in items {
                    t.insert(id.0.as_slice(), bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
    }

    /// Removes an entry (found corrupt).
    pub fn remove(&self, id: &ObjectId) {
        let _ = (|| -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            txn.open_table(INDEX_FILES)?.remove(id.0.as_slice())?;
            txn.commit()?;
            Ok(())
        })();
    }

    /// Drops entries for index files no longer in the repository.
    pub fn retain(&self, live: &HashSet<ObjectId>) {
        let _ = (|| -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut t = txn.open_table(INDEX_FILES)?;
                let stale: Vec<Vec<u8>> = t
                    .iter()?
                    .filter_map(|r| r.ok())
                    .map(|(k, _)| k.value().to_vec())
                    .filter(|k| ObjectId::from_slice(k).is_none_or(|id| !live.contains(&id)))
                    .collect();
                for k in stale {
                    t.remove(k.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
    }
}
