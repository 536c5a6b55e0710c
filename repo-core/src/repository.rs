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
use crate::index::{index_key, Index, IndexFile, Location};
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
    /// Also try key files whose argon2 parameters cost more than cairn allows for new
    /// passwords (up to 4 GiB and 100 passes per try; see [`crate::crypto::KDF_MAX_MEMORY_KIB`]).
    pub allow_costly_kdf: bool,
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
            allow_costly_kdf: false,
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

pub(crate) fn id_from_key(key: &str, prefix: &str) -> Option<ObjectId> {
    key.strip_prefix(prefix)?.parse().ok()
}

/// `init` writes only into an empty location: a directory or prefix that holds anything
/// else is most likely a mistyped path, and a repository mixed into it would be hard to
/// tell apart. Key files alone are allowed: they are what an interrupted `init` leaves.
fn refuse_foreign_objects(storage: &DynStorage) -> Result<()> {
    let objects = storage.list("")?;
    match objects.iter().find(|o| !o.key.starts_with("keys/")) {
        None => Ok(()),
        Some(first) => Err(Error::invalid(
            "repository location",
            format!(
                "{} is not empty ({} object(s), e.g. {}) and holds no cairn repository; \
                 give `init` an empty directory or prefix",
                storage.location(),
                objects.len(),
                first.key
            ),
        )),
    }
}

impl Repository {
    /// Creates a repository protected by `password`. Fails if one exists, or if the
    /// location holds anything else.
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
        refuse_foreign_objects(&storage)?;
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
        // Damaged key files are skipped (one bad file must not lock everyone out), and the
        // cheapest ones are tried first, so a costly hostile file delays only a wrong password.
        let mut key_files = Vec::new();
        let mut damaged = None;
        let mut damaged_count = 0;
        let mut costly = 0;
        let mut newer = None;
        for info in storage.list("keys/")? {
            let Some(id) = id_from_key(&info.key, "keys/") else {
                continue;
            };
            let decoded = storage
                .get(&info.key)
                .and_then(|bytes| KeyFile::decode(&bytes, &info.key));
            match decoded {
                Ok(kf) if kf.kdf.params.is_costly() && !opts.allow_costly_kdf => costly += 1,
                Ok(kf) => key_files.push((id, kf, info.key)),
                Err(e @ Error::NewerFormat { .. }) => newer = Some(e),
                Err(e) => {
                    damaged_count += 1;
                    damaged = Some(e);
                }
            }
        }
        key_files.sort_by_key(|(id, kf, _)| (kf.kdf.params.cost(), *id));
        let mut tried = 0;
        for (id, kf, object) in key_files {
            tried += 1;
            if let Some(key) = kf.unwrap_key(password, &object)? {
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
        if tried == 0 && costly == 0 {
            if let Some(e) = newer.or(damaged) {
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
            damaged: damaged_count,
            costly,
            newer: newer.is_some(),
        })
    }

    /// The repository opened again with the key already unlocked, for processes that open
    /// it many times (a server): no password and no key derivation, but the config is read
    /// afresh, so a repository removed since is `NoRepository` again, and one replaced by
    /// a repository with another key does not open.
    pub fn reopen(&self) -> Result<Self> {
        let config_bytes = match self.storage.get(CONFIG_KEY) {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => {
                return Err(Error::NoRepository {
                    repo: self.storage.location().into(),
                })
            }
            Err(e) => return Err(e),
        };
        Ok(Repository {
            storage: self.storage.clone(),
            key: self.key.clone(),
            config: Config::decode(&self.key, &config_bytes)?,
            key_id: self.key_id,
            opts: self.opts.clone(),
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

    /// Whether the repository is a local directory (no URL scheme): reads and writes are
    /// then cheap, so fewer run at once.
    pub fn is_local(&self) -> bool {
        !self.location().contains("://")
    }

    /// Reads parallel to use for many small objects (index files, trees): 2 on a local
    /// directory, where more only contend for the disk, 8 on object stores, where each
    /// request waits on the network.
    pub fn read_parallelism(&self) -> usize {
        if self.is_local() {
            2
        } else {
            8
        }
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

    /// Snapshots matching `filter`, oldest first. Fails if any snapshot cannot be read:
    /// what decides about data (maintenance, repair) must see every one.
    pub fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<(ObjectId, Snapshot)>> {
        let (snapshots, mut unreadable) = self.list_snapshots_lenient(filter)?;
        match unreadable.pop() {
            Some((_, e)) => Err(e),
            None => Ok(snapshots),
        }
    }

    /// Snapshots matching `filter`, oldest first, and apart from them those that could not
    /// be read, with why: one damaged snapshot must not hide the others from a listing.
    #[allow(clippy::type_complexity)]
    pub fn list_snapshots_lenient(
        &self,
        filter: &SnapshotFilter,
    ) -> Result<(Vec<(ObjectId, Snapshot)>, Vec<(ObjectId, Error)>)> {
        let ids = self.snapshot_ids()?;
        let mut out = Vec::with_capacity(ids.len());
        let mut unreadable = Vec::new();
        crate::parallel::ordered_map(
            ids.len(),
            8,
            64,
            |i| self.get_snapshot(&ids[i]),
            |i, r| {
                match r {
                    Ok(s) if filter.matches(&s) => out.push((ids[i], s)),
                    Ok(_) => {}
                    Err(e) => unreadable.push((ids[i], e)),
                }
                Ok::<_, ()>(())
            },
        )
        .ok();
        // By the time each was taken (parsed: the text of two valid RFC 3339 times need not
        // sort like the times), then by id so the order is total.
        out.sort_by_cached_key(|(id, s)| (crate::time::parse_rfc3339(&s.time), *id));
        Ok((out, unreadable))
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

    /// Changes a snapshot's tags: removes those in `remove`, then adds those in `add`; with
    /// `set`, the tags become exactly `set`. A snapshot is named by its content, so the
    /// changed one is written as a new snapshot and the old one deleted after it (a crash
    /// in between leaves both, never neither). Returns the new id, or `None` when nothing
    /// changed.
    pub fn retag(
        &self,
        id: &ObjectId,
        add: &[String],
        remove: &[String],
        set: Option<&[String]>,
    ) -> Result<Option<ObjectId>> {
        let mut snap = self.get_snapshot(id)?;
        let mut tags = match set {
            Some(set) => set.to_vec(),
            None => snap.tags.clone(),
        };
        tags.retain(|t| !remove.contains(t));
        tags.extend(add.iter().cloned());
        for t in &tags {
            crate::snapshot::validate_tag(t)?;
        }
        tags.sort();
        tags.dedup();
        if tags == snap.tags {
            return Ok(None);
        }
        snap.tags = tags;
        let (new_id, bytes) = snap.seal(&self.key);
        match self.storage.put(
            &snapshot_key(&new_id),
            Bytes::from(bytes).into(),
            WriteMode::Create,
        ) {
            Ok(()) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        self.delete_snapshot(id)?;
        Ok(Some(new_id))
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
        let dir = match self.opts.no_cache {
            true => None,
            false => self
                .opts
                .cache_dir
                .clone()
                .or_else(crate::cache::default_cache_dir),
        };
        let cache = dir
            .as_ref()
            .and_then(|d| match IndexCache::open(d, &self.config.id) {
                Ok(c) => Some(c),
                Err(why) => {
                    progress.message(&why);
                    None
                }
            });
        // Tree packs are worth caching only when reading them costs a request.
        let trees_dir = match self.is_local() {
            true => None,
            false => dir.map(|d| d.join(&self.config.id).join("trees")),
        };
        let repo = IndexedRepository {
            repo: self,
            index: Arc::new(RwLock::new(Index::new())),
            loaded: Arc::new(RwLock::new(HashSet::new())),
            plans_seen: RwLock::new(Vec::new()),
            cache,
            prefetch: Default::default(),
            windows: Default::default(),
            trees: Arc::new(crate::treepacks::TreePacks::new(trees_dir)),
        };
        repo.refresh(progress)?;
        repo.trees.retain(&repo.index().tree_packs());
        Ok(repo)
    }
}

/// Index files fetched from storage go into the local cache this many at a time.
const CACHE_BATCH: usize = 16;

/// A repository with its index loaded: read and write blobs, trees and snapshots.
pub struct IndexedRepository {
    repo: Repository,
    pub(crate) index: Arc<RwLock<Index>>,
    /// Index files whose entries are in `index` (writers add the files they write).
    pub(crate) loaded: Arc<RwLock<HashSet<ObjectId>>>,
    plans_seen: RwLock<Vec<ObjectId>>,
    cache: Option<IndexCache>,
    /// Tree blobs read ahead for walks over object storage.
    prefetch: crate::prefetch::TreePrefetch,
    /// Pieces of packs kept for restores from object storage.
    windows: crate::packcache::PackWindows,
    /// Packs of trees, fetched whole and cached locally (see `treepacks.rs`).
    pub(crate) trees: Arc<crate::treepacks::TreePacks>,
}

impl std::ops::Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl IndexedRepository {
    /// Brings the in-memory index and condemned set up to date with storage.
    ///
    /// The GC plans are read *before* the index files: a blob condemned by a plan is then
    /// either known as condemned, or its plan was already swept, which happens only after
    /// the index files listing it were deleted. If any index file loaded earlier is gone, or
    /// one vanishes while being read, maintenance replaced files: the index is then rebuilt
    /// from scratch (into a new table swapped in at once), so no location of a swept blob
    /// survives in memory.
    pub fn refresh(&self, progress: &dyn Progress) -> Result<()> {
        let (condemned, plans) = self.load_condemned()?;
        for _ in 0..8 {
            let listing = self.storage.list("index/")?;
            let listed: HashSet<ObjectId> = listing
                .iter()
                .filter_map(|i| id_from_key(&i.key, "index/"))
                .collect();
            let vanished = self
                .loaded
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|id| !listed.contains(id));
            let complete = if vanished {
                let fresh = RwLock::new(Index::new());
                fresh
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_condemned(condemned.clone());
                let mut loaded = HashSet::new();
                let ok = self.load_files(&fresh, &mut loaded, &listing, progress)?;
                if ok {
                    *self.index.write().unwrap_or_else(|e| e.into_inner()) =
                        fresh.into_inner().unwrap_or_else(|e| e.into_inner());
                    *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = loaded;
                }
                ok
            } else {
                self.index
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_condemned(condemned.clone());
                let mut loaded = self
                    .loaded
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let ok = self.load_files(&self.index, &mut loaded, &listing, progress)?;
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = loaded;
                if !ok {
                    // Entries already staged from this listing may point at replaced packs.
                    self.loaded
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(ObjectId([0; 32]));
                }
                ok
            };
            if complete {
                if let Some(cache) = &self.cache {
                    cache.retain(&listed);
                }
                *self.plans_seen.write().unwrap_or_else(|e| e.into_inner()) = plans;
                return Ok(());
            }
        }
        Err(Error::invalid(
            "index",
            "index files kept changing while loading (maintenance compacting?); run again",
        ))
    }

    /// Forgets the loaded index and loads it again from scratch: locations a sweep moved or
    /// deleted are gone afterwards.
    pub fn reload(&self, progress: &dyn Progress) -> Result<()> {
        // A loaded id that is never listed forces the rebuild path of `refresh`.
        self.loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ObjectId([0; 32]));
        self.refresh(progress)
    }

    /// Loads into `index` the files of `listing` not in `loaded` (and adds them there).
    /// Returns false if one vanished before it could be read.
    fn load_files(
        &self,
        index: &RwLock<Index>,
        loaded: &mut HashSet<ObjectId>,
        listing: &[crate::storage::ObjectInfo],
        progress: &dyn Progress,
    ) -> Result<bool> {
        let fresh: Vec<(ObjectId, u64)> = listing
            .iter()
            .filter_map(|i| id_from_key(&i.key, "index/").map(|id| (id, i.size)))
            .filter(|(id, _)| !loaded.contains(id))
            .collect();
        let new: Vec<ObjectId> = fresh.iter().map(|(id, _)| *id).collect();
        let new_bytes: u64 = fresh.iter().map(|(_, s)| s).sum();
        // Every blob costs at least one 48-byte record in an index file: an upper bound that
        // lets the index allocate its staging table once.
        index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .reserve_staged((new_bytes / crate::pack::RECORD_LEN as u64) as usize);
        progress.start("index", Some(new.len() as u64));
        // Each file is staged by the thread that decoded it, so at most `threads` decoded
        // files exist at once (an ordered hand-off held up to 64 of them: 100 MB at a
        // million blobs). Staging order does not matter: the table is sorted once at the end.
        let threads = self.read_parallelism();
        let mut fetched = Vec::new();
        let mut failure = None;
        let mut vanished = false;
        crate::parallel::ordered_map(
            new.len(),
            threads,
            threads,
            |i| {
                let (file, bytes, from_storage) = match self.read_index_file(&new[i]) {
                    Ok(x) => x,
                    Err(Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let mut index = index.write().unwrap_or_else(|e| e.into_inner());
                for (pack, records) in &file.packs {
                    index.stage(*pack, records);
                }
                drop(index);
                Ok(Some(
                    (from_storage && self.cache.is_some()).then_some(bytes),
                ))
            },
            |i, r: Result<Option<Option<Vec<u8>>>>| match r {
                Ok(None) => {
                    vanished = true;
                    Err(())
                }
                Ok(Some(bytes)) => {
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
        let mut index = index.write().unwrap_or_else(|e| e.into_inner());
        index.commit_staged();
        index.shrink();
        drop(index);
        progress.finish();
        if vanished {
            return Ok(false);
        }
        loaded.extend(new.iter().copied());
        if let Some(cache) = &self.cache {
            cache.put_many(&fetched);
        }
        Ok(true)
    }

    /// Ids of the GC plans the last refresh loaded (a writer's session records them).
    pub fn plans_seen(&self) -> Vec<ObjectId> {
        self.plans_seen
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        let f = IndexFile::open_stored(&self.key, id, &bytes)?;
        Ok((f, bytes, true))
    }

    /// Fingerprints condemned by every published GC plan, and the plans' ids.
    fn load_condemned(&self) -> Result<(HashSet<u64>, Vec<ObjectId>)> {
        let mut out = HashSet::new();
        let mut plans = Vec::new();
        for info in self.storage.list(PLANS_PREFIX)? {
            let Some(id) = id_from_key(&info.key, PLANS_PREFIX) else {
                continue;
            };
            let bytes = match self.storage.get(&info.key) {
                Ok(b) => b,
                Err(Error::NotFound { .. }) => continue, // swept meanwhile
                Err(e) => return Err(e),
            };
            out.extend(GcPlan::open(&self.key, &bytes, &info.key)?.condemned);
            plans.push(id);
        }
        Ok((out, plans))
    }

    /// The in-memory index (read access).
    pub fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads, decrypts and verifies one blob. If its pack is gone (a sweep moved the blob
    /// since the index was loaded), the index is loaded again and the read retried once.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        match self.read_blob_once(id) {
            Err(Error::NotFound { what: "pack", .. }) => {
                self.reload(&crate::NoProgress)?;
                self.read_blob_once(id)
            }
            r => r,
        }
    }

    fn read_blob_once(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.index().lookup(id).ok_or_else(|| Error::NotFound {
            what: "blob (not in the index)",
            object: id.to_string(),
        })?;
        let key = crate::pack::pack_key(&loc.pack);
        if let Some(plain) = self.read_from_tree_pack(id, &loc, &key) {
            return Ok(plain);
        }
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
        crate::blob::open_blob(&self.key, &self.config, loc.kind, id, &stored, &key)
    }

    /// A tree blob from its tree pack, fetched whole or taken from the cache (see
    /// `treepacks.rs`); `None` when it is not in a tree pack, or the pack could not be had
    /// or did not hold it intact (the caller reads the blob directly and reports what it
    /// finds).
    fn read_from_tree_pack(&self, id: &BlobId, loc: &Location, key: &str) -> Option<Vec<u8>> {
        // The kind first: data blobs, most reads, cost one comparison here.
        if loc.kind != crate::blob::BlobKind::Tree || self.is_local() {
            return None;
        }
        let len = self.index().tree_pack_len(&loc.pack)?;
        if len > crate::treepacks::MAX_TREE_PACK {
            return None;
        }
        let range = loc.offset as u64..loc.offset as u64 + loc.stored_len as u64;
        let stored = self.trees.read(self.storage(), &loc.pack, range)?;
        match crate::blob::open_blob(&self.key, &self.config, loc.kind, id, &stored, key) {
            Ok(plain) => Some(plain),
            Err(_) => {
                self.trees.forget(&loc.pack);
                None
            }
        }
    }

    /// Reads and decodes a tree blob (taking it from what [`Self::prefetch_trees`] read
    /// ahead, when it is there).
    pub fn read_tree(&self, id: &BlobId) -> Result<Tree> {
        let blob = match self.prefetch.take(id) {
            Some(b) => b,
            None => self.read_blob(id)?,
        };
        Tree::decode(&blob, *id)
    }

    /// Bytes `range` of `pack`: on object storage from a cached window of the pack where
    /// the range fits one (see `packcache.rs`), else with one range request.
    pub fn read_pack_range(&self, pack: &ObjectId, range: std::ops::Range<u64>) -> Result<Bytes> {
        if !self.is_local() {
            if let Some(b) = self.windows.read(self.storage(), pack, range.clone()) {
                return Ok(b);
            }
        }
        self.storage()
            .get_range(&crate::pack::pack_key(pack), range)
    }

    /// Reads these tree blobs ahead, in parallel, when the repository is on object storage
    /// (a walk about to enter these directories; see `prefetch.rs`). Does nothing locally.
    pub fn prefetch_trees(&self, ids: &[BlobId]) {
        if self.is_local() {
            return;
        }
        self.prefetch.fetch(ids, &|id| self.read_blob(id).ok());
    }

    /// Reads ahead the trees of the directories among `nodes` (a walk about to enter
    /// them). Does nothing locally, without so much as listing them.
    pub fn prefetch_subdirs(&self, nodes: &[crate::tree::Node]) {
        if !self.is_local() {
            self.prefetch_trees(&crate::walk::subtrees(nodes));
        }
    }

    /// Starts a writer session (see [`crate::Writer`]).
    pub fn writer(&self, opts: crate::WriterOptions) -> Result<crate::Writer<'_>> {
        crate::Writer::new(self, opts)
    }
}
