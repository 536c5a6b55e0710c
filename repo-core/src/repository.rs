//! The repository and its states: [`Repository`] (opened: keys and config read) and
//! [`IndexedRepository`] (index loaded: blobs can be read and written).
//!
//! Opening never writes. `init` writes a key file and then the config; only the config makes
//! a repository, so an interrupted `init` leaves nothing that `open` would accept.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;

use crate::cache::IndexCache;
use crate::config::{
    ChunkerParams, Config, CONFIG_KEY, DEFAULT_COMPRESSION_LEVEL, DEFAULT_PACK_SIZE,
};
use crate::crypto::KdfParams;
use crate::gcplan::{GcPlan, PLANS_PREFIX};
use crate::index::{index_key, Index, IndexFile};
use crate::keyfile::KeyFile;
use crate::snapshot::{snapshot_key, Snapshot, SnapshotFilter};
use crate::storage::{DynStorage, WriteMode};
use crate::tree::Tree;
use crate::{BlobId, Error, MasterKey, ObjectId, Progress, Result};

/// Options for `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_size: u32,
    pub kdf: KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            pack_size: DEFAULT_PACK_SIZE,
            kdf: KdfParams::default(),
        }
    }
}

/// Options for opening.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Cache directory; `None` uses [`crate::cache::default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Run without the local cache.
    pub no_cache: bool,
    /// TTL of writer sessions.
    pub session_ttl: Duration,
    /// Threads for hashing, compression and encryption (default: all cores).
    pub threads: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache_dir: None,
            no_cache: false,
            session_ttl: crate::session::DEFAULT_SESSION_TTL,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// An opened repository: the key is unwrapped and the config read. Snapshots and keys can be
/// managed; reading or writing data needs [`Repository::load_index`].
pub struct Repository {
    storage: DynStorage,
    key: MasterKey,
    config: Config,
    key_id: ObjectId,
    opts: OpenOptions,
}

/// Storage key of a key file.
pub fn key_key(id: &ObjectId) -> String {
    format!("keys/{id}")
}

fn id_from_key(key: &str, prefix: &str) -> Option<ObjectId> {
    key.strip_prefix(prefix)?.parse().ok()
}

impl Repository {
    /// Creates a repository protected by `password`. Fails if one exists.
    pub fn init(
        storage: DynStorage,
        password: &[u8],
        init: InitOptions,
        opts: OpenOptions,
    ) -> Result<Self> {
        let config = Config::new(init.chunker, init.compression_level, init.pack_size)?;
        match storage.head(CONFIG_KEY) {
            Ok(_) => {
                return Err(Error::AlreadyInitialized {
                    repo: storage.location().into(),
                })
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let key = MasterKey::generate();
        let kf = KeyFile::wrap(&key, password, init.kdf)?;
        let kf_bytes = kf.encode();
        let key_id = ObjectId::of(&kf_bytes);
        storage.put(
            &key_key(&key_id),
            Bytes::from(kf_bytes).into(),
            WriteMode::Create,
        )?;
        match storage.put(
            CONFIG_KEY,
            Bytes::from(config.encode(&key)).into(),
            WriteMode::Create,
        ) {
            Ok(()) => {}
            Err(Error::AlreadyExists { .. }) => {
                let _ = storage.delete(&key_key(&key_id));
                return Err(Error::AlreadyInitialized {
                    repo: storage.location().into(),
                });
            }
            Err(e) => return Err(e),
        }
        Ok(Repository {
            storage,
            key,
            config,
            key_id,
            opts,
        })
    }

    /// Opens a repository with `password`.
    pub fn open(storage: DynStorage, password: &[u8], opts: OpenOptions) -> Result<Self> {
        let config_bytes = match storage.get(CONFIG_KEY) {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => {
                return Err(Error::NoRepository {
                    repo: storage.location().into(),
                })
            }
            Err(e) => return Err(e),
        };
        let keys = storage.list("keys/")?;
        let mut tried = 0;
        let mut damaged = None;
        for info in &keys {
            let Some(id) = id_from_key(&info.key, "keys/") else {
                continue;
            };
            let bytes = storage.get(&info.key)?;
            let kf = match KeyFile::decode(&bytes, &info.key) {
                Ok(kf) => kf,
                Err(e @ Error::NewerFormat { .. }) => return Err(e),
                Err(e) => {
                    damaged = Some(e);
                    continue;
                }
            };
            tried += 1;
            if let Some(key) = kf.unwrap_key(password, &info.key)? {
                let config = Config::decode(&key, &config_bytes)?;
                return Ok(Repository {
                    storage,
                    key,
                    config,
                    key_id: id,
                    opts,
                });
            }
        }
        if tried == 0 {
            if let Some(e) = damaged {
                return Err(e);
            }
            return Err(Error::NotFound {
                what: "key file",
                object: format!("{}/keys/", storage.location()),
            });
        }
        Err(Error::WrongPassword {
            repo: storage.location().into(),
            tried,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn storage(&self) -> &DynStorage {
        &self.storage
    }

    pub fn options(&self) -> &OpenOptions {
        &self.opts
    }

    /// Where the repository is, for messages.
    pub fn location(&self) -> &str {
        self.storage.location()
    }

    /// The key file this repository was opened with.
    pub fn current_key(&self) -> ObjectId {
        self.key_id
    }

    /// Adds a password. Returns the new key file's id.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        let bytes = KeyFile::wrap(&self.key, password, kdf)?.encode();
        let id = ObjectId::of(&bytes);
        self.storage
            .put(&key_key(&id), Bytes::from(bytes).into(), WriteMode::Create)?;
        Ok(id)
    }

    /// All key files.
    pub fn list_keys(&self) -> Result<Vec<(ObjectId, KeyFile)>> {
        let mut out = Vec::new();
        for info in self.storage.list("keys/")? {
            let Some(id) = id_from_key(&info.key, "keys/") else {
                continue;
            };
            let bytes = self.storage.get(&info.key)?;
            out.push((id, KeyFile::decode(&bytes, &info.key)?));
        }
        out.sort_by(|a, b| a.1.created.cmp(&b.1.created));
        Ok(out)
    }

    /// Removes a password. Refuses to remove the last key or the one in use.
    pub fn remove_key(&self, id: &ObjectId) -> Result<()> {
        let keys = self.list_keys()?;
        if !keys.iter().any(|(k, _)| k == id) {
            return Err(Error::NotFound {
                what: "key",
                object: key_key(id),
            });
        }
        if *id == self.key_id {
            return Err(Error::invalid("key", format!("{id} is the key this command opened the repository with; open with another password to remove it, or use `key passwd`")));
        }
        if keys.len() <= 1 {
            return Err(Error::invalid(
                "key",
                "cannot remove the last key: the repository would be unreadable",
            ));
        }
        self.storage.delete(&key_key(id))
    }

    /// Replaces the current password: adds a key for the new one, then removes the old key.
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        let new_id = self.add_key(new_password, kdf)?;
        let old = std::mem::replace(&mut self.key_id, new_id);
        self.storage.delete(&key_key(&old))?;
        Ok(new_id)
    }

    /// Reads one snapshot.
    pub fn get_snapshot(&self, id: &ObjectId) -> Result<Snapshot> {
        let key = snapshot_key(id);
        let bytes = self.storage.get(&key).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: "snapshot",
                object: id.to_string(),
            },
            e => e,
        })?;
        if ObjectId::of(&bytes) != *id {
            return Err(Error::corrupt(&key, "content does not match its name"));
        }
        Snapshot::open(&self.key, &bytes, &key)
    }

    /// Ids of all snapshots.
    pub fn snapshot_ids(&self) -> Result<Vec<ObjectId>> {
        Ok(self
            .storage
            .list("snapshots/")?
            .iter()
            .filter_map(|i| id_from_key(&i.key, "snapshots/"))
            .collect())
    }

    /// Snapshots matching `filter`, oldest first.
    pub fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<(ObjectId, Snapshot)>> {
        let ids = self.snapshot_ids()?;
        let mut out = Vec::with_capacity(ids.len());
        let mut first_err = None;
        crate::parallel::ordered_map(
            ids.len(),
            8,
            64,
            |i| self.get_snapshot(&ids[i]),
            |i, r| {
                match r {
                    Ok(s) if filter.matches(&s) => out.push((ids[i], s)),
                    Ok(_) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
                Ok::<_, ()>(())
            },
        )
        .ok();
        if let Some(e) = first_err {
            return Err(e);
        }
        out.sort_by(|a, b| (&a.1.time, a.0).cmp(&(&b.1.time, b.0)));
        Ok(out)
    }

    /// Resolves `latest`, a full id, or a unique id prefix (at least 4 hex characters).
    pub fn find_snapshot(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
    ) -> Result<(ObjectId, Snapshot)> {
        if spec == "latest" {
            return self
                .list_snapshots(filter)?
                .pop()
                .ok_or_else(|| Error::NotFound {
                    what: "snapshot",
                    object: "latest (no snapshot matches)".into(),
                });
        }
        if spec.len() < 4 || !spec.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "snapshot",
                format!("{spec:?}: give `latest` or at least 4 hex characters of an id"),
            ));
        }
        let spec_lower = spec.to_ascii_lowercase();
        let matches: Vec<ObjectId> = self
            .snapshot_ids()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec_lower))
            .collect();
        match matches.as_slice() {
            [id] => Ok((*id, self.get_snapshot(id)?)),
            [] => Err(Error::NotFound {
                what: "snapshot",
                object: spec.into(),
            }),
            _ => Err(Error::invalid(
                "snapshot",
                format!(
                    "{spec:?} matches {} snapshots; give more characters",
                    matches.len()
                ),
            )),
        }
    }

    /// Deletes a snapshot manifest (its data stays until maintenance collects it).
    pub fn delete_snapshot(&self, id: &ObjectId) -> Result<()> {
        self.storage.delete(&snapshot_key(id))
    }

    /// Carries out a retention plan: deletes the snapshots it removes (their data stays
    /// until maintenance collects it). Returns how many were deleted; a snapshot already
    /// gone (another `forget` ran) counts as done.
    pub fn forget(&self, plan: &crate::forget::ForgetPlan) -> Result<usize> {
        let mut n = 0;
        for d in plan.removals() {
            match self.delete_snapshot(&d.id) {
                Ok(()) | Err(Error::NotFound { .. }) => n += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Loads the index (from the local cache where possible) and the published GC plans.
    pub fn load_index(self, progress: &dyn Progress) -> Result<IndexedRepository> {
        let cache = if self.opts.no_cache {
            None
        } else {
            let dir = self
                .opts
                .cache_dir
                .clone()
                .or_else(crate::cache::default_cache_dir);
            dir.and_then(|d| match IndexCache::open(&d, &self.config.id) {
                Ok(c) => Some(c),
                Err(why) => {
                    progress.message(&why);
                    None
                }
            })
        };
        let repo = IndexedRepository {
            repo: self,
            index: Arc::new(RwLock::new(Index::new())),
            loaded: RwLock::new(HashSet::new()),
            cache,
        };
        repo.refresh(progress)?;
        Ok(repo)
    }
}

/// Index files fetched from storage go into the local cache this many at a time.
const CACHE_BATCH: usize = 16;

/// A repository with its index loaded: read and write blobs, trees and snapshots.
pub struct IndexedRepository {
    repo: Repository,
    pub(crate) index: Arc<RwLock<Index>>,
    loaded: RwLock<HashSet<ObjectId>>,
    cache: Option<IndexCache>,
}

impl std::ops::Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl IndexedRepository {
    /// Reads index files not loaded yet and the current GC plans.
    pub fn refresh(&self, progress: &dyn Progress) -> Result<()> {
        let listing = self.storage.list("index/")?;
        let listed: Vec<ObjectId> = listing
            .iter()
            .filter_map(|i| id_from_key(&i.key, "index/"))
            .collect();
        let (new, new_bytes): (Vec<ObjectId>, u64) = {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            let fresh: Vec<_> = listing
                .iter()
                .filter_map(|i| id_from_key(&i.key, "index/").map(|id| (id, i.size)))
                .filter(|(id, _)| !loaded.contains(id))
                .collect();
            (
                fresh.iter().map(|(id, _)| *id).collect(),
                fresh.iter().map(|(_, s)| s).sum(),
            )
        };
        // Every blob costs at least one 48-byte record in an index file: an upper bound that
        // lets the index allocate its staging table once.
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .reserve_staged((new_bytes / crate::pack::RECORD_LEN as u64) as usize);
        progress.start("index", Some(new.len() as u64));
        // Each file is staged by the thread that decoded it, so at most `threads` decoded
        // files exist at once (an ordered hand-off held up to 64 of them: 100 MB at a
        // million blobs). Staging order does not matter: the table is sorted once at the end.
        let local = !self.storage.location().contains("://");
        let threads = if local { 2 } else { 8 };
        let mut fetched = Vec::new();
        let mut failure = None;
        crate::parallel::ordered_map(
            new.len(),
            threads,
            threads,
            |i| {
                let (file, bytes, from_storage) = self.read_index_file(&new[i])?;
                let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
                for (pack, records) in &file.packs {
                    index.stage(*pack, records);
                }
                drop(index);
                Ok((from_storage && self.cache.is_some()).then_some(bytes))
            },
            |i, r: Result<Option<Vec<u8>>>| match r {
                Ok(bytes) => {
                    if let Some(bytes) = bytes {
                        fetched.push((new[i], bytes));
                        // Into the cache in batches, not all at the end.
                        if fetched.len() >= CACHE_BATCH {
                            if let Some(cache) = &self.cache {
                                cache.put_many(&fetched);
                            }
                            fetched.clear();
                        }
                    }
                    progress.advance(1);
                    Ok(())
                }
                Err(e) => {
                    failure = Some(e);
                    Err(())
                }
            },
        )
        .ok();
        if let Some(e) = failure {
            return Err(e);
        }
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .commit_staged();
        self.loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(new.iter().copied());
        if let Some(cache) = &self.cache {
            cache.put_many(&fetched);
            if !new.is_empty() {
                cache.retain(&listed.iter().copied().collect());
            }
        }
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .shrink();
        progress.finish();
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_condemned(self.load_condemned()?);
        Ok(())
    }

    /// Reads an index file from the cache or storage. Returns it, its stored bytes and
    /// whether they came from storage.
    fn read_index_file(&self, id: &ObjectId) -> Result<(IndexFile, Vec<u8>, bool)> {
        let key = index_key(id);
        if let Some(bytes) = self.cache.as_ref().and_then(|c| c.get(id)) {
            match IndexFile::open(&self.key, &bytes, &key) {
                Ok(f) => return Ok((f, bytes, false)),
                Err(_) => {
                    if let Some(c) = &self.cache {
                        c.remove(id);
                    }
                }
            }
        }
        let bytes = self.storage.get(&key)?.to_vec();
        if ObjectId::of(&bytes) != *id {
            return Err(Error::corrupt(&key, "content does not match its name"));
        }
        let f = IndexFile::open(&self.key, &bytes, &key)?;
        Ok((f, bytes, true))
    }

    /// Blobs condemned by every published GC plan.
    fn load_condemned(&self) -> Result<HashSet<BlobId>> {
        let mut out = HashSet::new();
        for info in self.storage.list(PLANS_PREFIX)? {
            let bytes = match self.storage.get(&info.key) {
                Ok(b) => b,
                Err(Error::NotFound { .. }) => continue, // swept meanwhile
                Err(e) => return Err(e),
            };
            out.extend(GcPlan::open(&self.key, &bytes, &info.key)?.condemned_blobs);
        }
        Ok(out)
    }

    /// The in-memory index (read access).
    pub fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.index().lookup(id).ok_or_else(|| Error::NotFound {
            what: "blob (not in the index)",
            object: id.to_string(),
        })?;
        let key = crate::pack::pack_key(&loc.pack);
        let stored = self
            .storage
            .get_range(
                &key,
                loc.offset as u64..loc.offset as u64 + loc.stored_len as u64,
            )
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::NotFound {
                    what: "pack",
                    object: format!("{key} (holding blob {id})"),
                },
                e => e,
            })?;
        crate::blob::open_blob(&self.key, loc.kind, id, &stored, &key)
    }

    /// Reads and decodes a tree blob.
    pub fn read_tree(&self, id: &BlobId) -> Result<Tree> {
        Tree::decode(&self.read_blob(id)?, *id)
    }

    /// Starts a writer session (see [`crate::Writer`]).
    pub fn writer(&self, opts: crate::WriterOptions) -> Result<crate::Writer<'_>> {
        crate::Writer::new(self, opts)
    }
}
