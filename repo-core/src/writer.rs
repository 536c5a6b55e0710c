//! Writing: streams become chunks, chunks become sealed blobs in packs, packs are uploaded,
//! index files make them findable, and a snapshot commits the result.
//!
//! Pipeline: the calling thread reads and chunks (chunking one stream is serial); worker
//! threads hash each chunk, skip it if already stored, and compress and seal it; packs are
//! uploaded by their own threads. Memory is bounded by the channel sizes: a few read buffers,
//! one pack being filled and `upload_concurrency + 1` packs in flight.
//!
//! Commit semantics: [`Writer::flush`] returns once every blob written so far is in a durable
//! pack *and* a durable index file. [`Writer::commit`] flushes, checks the session has not
//! lapsed (re-verifying every referenced blob if it has), and only then writes the snapshot.
//! A crash before the snapshot leaves packs and index files the next backup deduplicates
//! against, and no snapshot that references missing data.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;

use crate::blob::{seal_blob, BlobKind};
use crate::chunker::Chunker;
use crate::index::{index_key, Index, IndexFile};
use crate::pack::{BlobRecord, FinishedPack, PackWriter};
use crate::session::{Session, SessionHandle};
use crate::snapshot::{snapshot_key, Snapshot};
use crate::storage::{DynStorage, WriteMode};
use crate::tree::{ChunkRef, Name, Node, NodeKind, Tree, MAX_TREE_NODES};
use crate::treepacks::TreePacks;
use crate::{BlobId, Error, IndexedRepository, MasterKey, ObjectId, Progress, Result};

/// Tuning for a writer.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Threads hashing, compressing and sealing (default: the repository's `threads`).
    pub threads: Option<usize>,
    /// Packs uploading at once (default: 1 on a local directory, where one thread keeps up
    /// with the disk and each pack in flight costs its size in memory; 3 on object stores,
    /// where requests take long).
    pub upload_concurrency: Option<usize>,
    /// Write an index file after this many packs, so an interrupted backup's uploads are
    /// reused by the next one.
    pub index_every_packs: usize,
    /// Count what would be stored without storing it: blobs are hashed and looked up, never
    /// compressed, sealed or uploaded (`backup --dry-run`). Only the session record is
    /// written, and removed when the writer ends.
    pub dry_run: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            threads: None,
            upload_concurrency: None,
            index_every_packs: 8,
            dry_run: false,
        }
    }
}

/// Counts of what a writer added.
#[derive(Clone, Debug, Default)]
pub struct WriteStats {
    pub new_blobs: u64,
    pub new_bytes: u64,
    pub stored_bytes: u64,
    pub deduplicated_bytes: u64,
}

/// The content of one written stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamContent {
    pub chunks: Vec<ChunkRef>,
    pub size: u64,
}

/// State shared with upload threads.
struct Shared {
    storage: DynStorage,
    key: MasterKey,
    index: Arc<RwLock<Index>>,
    /// The repository's set of index files in `index`: ours go in too, so a later refresh
    /// notices when maintenance replaces them.
    loaded: Arc<RwLock<HashSet<ObjectId>>>,
    /// Blobs added by this writer that are not yet in `index`.
    pending: Mutex<HashSet<BlobId>>,
    /// The pack being filled with data blobs, and the one with trees: trees get packs of
    /// their own, which readers on object storage fetch whole and cache (`treepacks.rs`).
    packers: [Mutex<PackWriter>; 2],
    pack_target: usize,
    /// Where tree packs go as they are uploaded (object storage only).
    trees: Option<Arc<TreePacks>>,
    /// Uploaded packs not yet listed in an index file.
    uploaded: Mutex<Vec<(ObjectId, Vec<BlobRecord>)>>,
    /// Packs handed to uploaders and not finished.
    outstanding: Mutex<usize>,
    idle: Condvar,
    failure: Mutex<Option<Error>>,
    /// Checked before each index file is published: a writer whose session lapsed must not
    /// publish packs a sweep may have deleted as orphans meanwhile.
    session: SessionHandle,
    /// Every pack this writer uploaded (checked again at a lapsed commit).
    all_uploaded: Mutex<Vec<ObjectId>>,
    index_every_packs: usize,
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    dedup_bytes: AtomicU64,
    /// See [`WriterOptions::dry_run`].
    dry_run: bool,
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn check_failed(&self) -> Result<()> {
        match self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn known(&self, id: &BlobId) -> bool {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .has_for_dedup(id)
            || self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(id)
    }

    /// Stores a blob unless it is already stored. Returns whether it was new.
    fn store(
        &self,
        id: BlobId,
        kind: BlobKind,
        plaintext: &[u8],
        level: i32,
        tx: &SyncSender<PackWriter>,
    ) -> Result<bool> {
        if self.known(&id) {
            self.dedup_bytes
                .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
            return Ok(false);
        }
        if self.dry_run {
            // Counted once, as a real write would store it once; nothing is stored.
            let new = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id);
            if new {
                self.new_blobs.fetch_add(1, Ordering::Relaxed);
                self.new_bytes
                    .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
            }
            return Ok(new);
        }
        let sealed = seal_blob(&self.key, kind, &id, plaintext, level);
        let mut packer = self.packers[(kind == BlobKind::Tree) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Another worker may have stored the same blob meanwhile.
        if !self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
        {
            return Ok(false);
        }
        packer.add(id, kind, Bytes::from(sealed), plaintext.len() as u32);
        self.new_blobs.fetch_add(1, Ordering::Relaxed);
        self.new_bytes
            .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
        let target = match kind {
            // A tree pack fills slowly (a directory's listing at a time) and is held in memory
            // all the while; readers fetch it whole. Smaller ones cost less of both.
            BlobKind::Tree => self.pack_target.min(TREE_PACK_TARGET),
            _ => self.pack_target,
        };
        if packer.len() >= target || packer.blob_count() >= MAX_PACK_BLOBS {
            // Hand the full pack over while still holding the packer: when uploads fall
            // behind, every writer waits here instead of each filling another pack (with
            // six writer threads that was 100 MB of packs waiting, measured with massif).
            let full = std::mem::take(&mut *packer);
            self.send_pack(full, tx)?;
        }
        Ok(true)
    }

    fn send_pack(&self, pack: PackWriter, tx: &SyncSender<PackWriter>) -> Result<()> {
        // An upload failed (a full disk, storage gone): stop filling packs that cannot be
        // stored; the caller's error path indexes what was stored.
        self.check_failed()?;
        *self.outstanding.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        // The uploader seals the header and hashes the pack for its name: done here, under
        // the packer's lock, that stalled every other writer for the 16 MiB hash.
        tx.send(pack).map_err(|_| Error::Cancelled)?;
        Ok(())
    }

    fn upload(&self, pack: FinishedPack) -> Result<()> {
        let len = pack.payload.len() as u64;
        match self
            .storage
            .put(&pack.key(), pack.payload.clone(), WriteMode::Create)
        {
            // Same name means same bytes: a retried upload that had succeeded.
            Ok(()) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(trees) = &self.trees {
            if pack.records.iter().all(|r| r.kind == BlobKind::Tree) {
                trees.save(&pack.id, &pack.payload);
            }
        }
        self.stored_bytes.fetch_add(len, Ordering::Relaxed);
        self.all_uploaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pack.id);
        let ready = {
            let mut up = self.uploaded.lock().unwrap_or_else(|e| e.into_inner());
            up.push((pack.id, pack.records));
            up.len() >= self.index_every_packs
                || up.iter().map(|(_, r)| r.len()).sum::<usize>() >= INDEX_EVERY_BLOBS
        };
        if ready {
            self.write_index()?;
        }
        Ok(())
    }

    /// Fails with [`Error::SessionExpired`] if any of these packs is gone from storage.
    fn packs_exist(&self, packs: &[ObjectId]) -> Result<()> {
        let mut gone = Vec::new();
        for p in packs {
            match self.storage.head(&crate::pack::pack_key(p)) {
                Ok(_) => {}
                Err(Error::NotFound { .. }) => gone.push(*p),
                Err(e) => return Err(e),
            }
        }
        match gone.first() {
            None => Ok(()),
            Some(first) => Err(Error::SessionExpired {
                session: self.session.id(),
                missing: gone.len(),
                first: BlobId(first.0),
            }),
        }
    }

    /// Writes an index file for every uploaded pack not yet indexed, then makes those blobs
    /// visible in the in-memory index.
    fn write_index(&self) -> Result<()> {
        let packs = std::mem::take(&mut *self.uploaded.lock().unwrap_or_else(|e| e.into_inner()));
        if packs.is_empty() {
            return Ok(());
        }
        if self.session.lapsed()? {
            let ids: Vec<ObjectId> = packs.iter().map(|(p, _)| *p).collect();
            self.packs_exist(&ids)?;
        }
        let file = IndexFile {
            supersedes: Vec::new(),
            packs,
        };
        let (id, bytes) = file.seal(&self.key);
        let len = bytes.len() as u64;
        match self.storage.put(
            &index_key(&id),
            Bytes::from(bytes).into(),
            WriteMode::Create,
        ) {
            Ok(()) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => {
                // Keep them for the next attempt.
                self.uploaded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(file.packs);
                return Err(e);
            }
        }
        self.stored_bytes.fetch_add(len, Ordering::Relaxed);
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            for (pack, records) in &file.packs {
                index.add_pack(*pack, records);
            }
            self.loaded
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id);
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (_, records) in &file.packs {
            for r in records {
                pending.remove(&r.id);
            }
        }
        Ok(())
    }
}

fn uploader(shared: Arc<Shared>, rx: Arc<Mutex<Receiver<PackWriter>>>) {
    loop {
        let pack = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(p) => p,
            Err(_) => return,
        };
        if let Err(e) = shared.upload(pack.finish(&shared.key)) {
            shared.fail(e);
        }
        *shared.outstanding.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        shared.idle.notify_all();
    }
}

/// Writes blobs, trees and snapshots to an [`IndexedRepository`] within one session.
pub struct Writer<'r> {
    repo: &'r IndexedRepository,
    shared: Arc<Shared>,
    tx: Option<SyncSender<PackWriter>>,
    uploaders: Vec<std::thread::JoinHandle<()>>,
    session: Option<Session>,
    threads: usize,
    level: i32,
}

/// Most bytes in a pack of trees (at most the repository's pack target). 1M files of 100
/// bytes in 1,000 directories: 16 MiB tree packs added 26 MB to the first backup's peak.
const TREE_PACK_TARGET: usize = 4 << 20;

/// Most blobs in one pack. A 16 MiB pack of 100-byte files holds 119k blobs, and each blob
/// in a pack not yet indexed costs its record and its place in the pending set (about 90
/// bytes, more than the blob): 1M such files peaked at 150 MB with three packs in flight,
/// and 32k-blob packs (4.5 MB of tiny files) bring that down to 103 MB in the same time.
const MAX_PACK_BLOBS: usize = 32 * 1024;

/// An index file is written at least every this many blobs: packs of tiny files hold ~100k
/// blobs each, and every blob waiting for its index file costs memory (its record and its
/// place in the pending set).
const INDEX_EVERY_BLOBS: usize = 65_536;

/// Directories with more entries than this are split into parts.
pub const SPLIT_DIR_NODES: usize = 4096;

/// How a large directory is cut into parts (see [`Writer::write_dir_split`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirSplit {
    /// Directories with more entries than this are split.
    pub above: usize,
    /// Fewest entries in a part (except the last), so parts are never tiny.
    pub min_part: usize,
    /// One name in this many ends a part.
    pub average: u16,
}

impl DirSplit {
    /// For file trees: about 1,000 entries (~200 KB of JSON) per part, directories of
    /// up to 4,096 entries whole.
    pub const FILES: DirSplit = DirSplit {
        above: SPLIT_DIR_NODES,
        min_part: 256,
        average: 1024,
    };

    /// Whether a part ends after this name: decided by the name alone, so the cut points
    /// of a directory do not move when an entry elsewhere is added or removed.
    fn ends_part(&self, name: &Name) -> bool {
        let h = blake3::hash(&name.0);
        u16::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1]]) % self.average == 0
    }
}

/// Size of each read from the input: several average chunks, so workers stay busy.
const READ_BUFFER: usize = 8 * 1024 * 1024;

impl<'r> Writer<'r> {
    /// Registers a session, reloads the index and GC plans (so nothing condemned before the
    /// session existed is deduplicated against), and starts the upload threads.
    pub fn new(repo: &'r IndexedRepository, opts: WriterOptions) -> Result<Self> {
        let session = Session::start(
            repo.storage().clone(),
            repo.key().clone(),
            repo.options().session_ttl,
        )?;
        repo.refresh(&crate::NoProgress)?;
        session.set_seen_plans(&repo.plans_seen())?;
        let pack_target = repo.config().pack_target_size as usize;
        let shared = Arc::new(Shared {
            storage: repo.storage().clone(),
            key: repo.key().clone(),
            index: repo.index.clone(),
            loaded: repo.loaded.clone(),
            pending: Mutex::new(HashSet::new()),
            packers: Default::default(),
            pack_target,
            trees: (!repo.is_local()).then(|| repo.trees.clone()),
            uploaded: Mutex::new(Vec::new()),
            outstanding: Mutex::new(0),
            idle: Condvar::new(),
            failure: Mutex::new(None),
            session: session.handle(),
            all_uploaded: Mutex::new(Vec::new()),
            index_every_packs: opts.index_every_packs.max(1),
            new_blobs: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            dedup_bytes: AtomicU64::new(0),
            dry_run: opts.dry_run,
        });
        // No queue: a full pack waits in the hands of the writer that finished it until an
        // uploader is free, and writers wait with it. 1M files of 100 bytes: a queue of one
        // pack cost 16 MB more at the peak (149 → 133 MB) and no time.
        let (tx, rx) = sync_channel::<PackWriter>(0);
        let rx = Arc::new(Mutex::new(rx));
        let uploading = opts
            .upload_concurrency
            .unwrap_or(if repo.is_local() { 1 } else { 3 })
            .max(1);
        let uploaders = (0..uploading)
            .map(|i| {
                let (s, r) = (shared.clone(), rx.clone());
                std::thread::Builder::new()
                    .name(format!("cairn-upload-{i}"))
                    .spawn(move || uploader(s, r))
                    .map_err(|e| Error::io("starting upload threads", e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Writer {
            repo,
            shared,
            tx: Some(tx),
            uploaders,
            session: Some(session),
            threads: opts.threads.unwrap_or(repo.options().threads).max(1),
            level: repo.config().compression_level,
        })
    }

    /// This writer's session id.
    pub fn session_id(&self) -> String {
        self.session.as_ref().map(|s| s.id()).unwrap_or_default()
    }

    /// The session (tests simulate suspension through it).
    #[doc(hidden)]
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// What this writer added so far.
    pub fn stats(&self) -> WriteStats {
        let s = &self.shared;
        WriteStats {
            new_blobs: s.new_blobs.load(Ordering::Relaxed),
            new_bytes: s.new_bytes.load(Ordering::Relaxed),
            stored_bytes: s.stored_bytes.load(Ordering::Relaxed),
            deduplicated_bytes: s.dedup_bytes.load(Ordering::Relaxed),
        }
    }

    fn tx(&self) -> Result<&SyncSender<PackWriter>> {
        self.tx.as_ref().ok_or(Error::Cancelled)
    }

    /// Stores one blob (deduplicated) and returns its id.
    pub fn write_blob(&self, kind: BlobKind, plaintext: &[u8]) -> Result<BlobId> {
        self.shared.check_failed()?;
        let id = self.repo.key().blob_id(plaintext);
        self.shared
            .store(id, kind, plaintext, self.level, self.tx()?)?;
        Ok(id)
    }

    /// Stores a tree and returns its id.
    pub fn write_tree(&self, tree: &Tree) -> Result<BlobId> {
        self.write_blob(BlobKind::Tree, &tree.encode())
    }

    /// Stores a directory: one tree blob, or, beyond [`SPLIT_DIR_NODES`] entries, parts cut
    /// where a name's hash says so (content-defined, so an insertion changes one or two
    /// parts, not every one after it) and a tree listing them. `nodes` must be sorted.
    pub fn write_dir(&self, nodes: Vec<Node>) -> Result<BlobId> {
        self.write_dir_split(nodes, DirSplit::FILES)
    }

    /// [`Writer::write_dir`] with other part sizes: a directory of many small files that
    /// change a few at a time (Kubernetes objects) costs less per change in small parts.
    pub fn write_dir_split(&self, nodes: Vec<Node>, split: DirSplit) -> Result<BlobId> {
        // Parts number at most entries / min_part (+1); keep them within one listing tree.
        let split = if nodes.len() / split.min_part.max(1) >= MAX_TREE_NODES {
            DirSplit::FILES
        } else {
            split
        };
        if nodes.len() <= split.above {
            return self.write_tree(&Tree {
                nodes,
                ..Default::default()
            });
        }
        let mut parts = Vec::new();
        let mut part = Vec::new();
        for node in nodes {
            let len = part.len() + 1;
            let cut =
                (len >= split.min_part && split.ends_part(&node.name)) || len >= MAX_TREE_NODES;
            part.push(node);
            if cut {
                parts.push(self.write_tree(&Tree {
                    nodes: std::mem::take(&mut part),
                    ..Default::default()
                })?);
            }
        }
        if !part.is_empty() {
            parts.push(self.write_tree(&Tree {
                nodes: part,
                ..Default::default()
            })?);
        }
        self.write_tree(&Tree {
            nodes: Vec::new(),
            parts,
        })
    }

    /// Chunks and stores an in-memory buffer on the calling thread (small files: many run at
    /// once, so per-call threads would cost more than they give).
    pub fn write_bytes(&self, data: &[u8]) -> Result<Vec<ChunkRef>> {
        let chunker = Chunker::new(self.repo.config().chunker, self.repo.key().chunker_seed());
        let mut chunks = Vec::new();
        let mut pos = 0;
        for cut in chunker.cut_all(data) {
            let piece = &data[pos..pos + cut];
            chunks.push(ChunkRef(
                self.write_blob(BlobKind::Data, piece)?,
                cut as u32,
            ));
            pos += cut;
        }
        Ok(chunks)
    }

    /// Chunks, deduplicates and stores a whole stream. `progress` gets bytes read.
    pub fn write_stream(
        &self,
        mut reader: impl Read,
        progress: &dyn Progress,
    ) -> Result<StreamContent> {
        let chunker = Chunker::new(self.repo.config().chunker, self.repo.key().chunker_seed());
        let tx = self.tx()?.clone();
        let (work_tx, work_rx) = sync_channel::<(usize, Bytes)>(self.threads * 2);
        let work_rx = Mutex::new(work_rx);
        let results: Mutex<Vec<Option<ChunkRef>>> = Mutex::new(Vec::new());
        let shared = &self.shared;
        let level = self.level;
        let key = self.repo.key();
        let mut size = 0u64;
        let read_result: Result<()> = std::thread::scope(|s| {
            for _ in 0..self.threads {
                s.spawn(|| loop {
                    let item = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((seq, data)) = item else { return };
                    let id = key.blob_id(&data);
                    if let Err(e) = shared.store(id, BlobKind::Data, &data, level, &tx) {
                        shared.fail(e);
                        continue;
                    }
                    let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                    if r.len() <= seq {
                        r.resize(seq + 1, None);
                    }
                    r[seq] = Some(ChunkRef(id, data.len() as u32));
                });
            }
            let mut seq = 0usize;
            let mut carry: Vec<u8> = Vec::new();
            let result = (|| loop {
                // Zeroed once (calloc: fresh pages cost nothing until touched); zeroing
                // before every read cost a full 8 MiB memset per call.
                let mut buf = vec![0u8; READ_BUFFER + carry.len()];
                buf[..carry.len()].copy_from_slice(&carry);
                let mut filled = carry.len();
                let mut eof = false;
                while filled < buf.len() {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            filled += n;
                            progress.advance(n as u64);
                            size += n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Error::io("reading the input stream", e)),
                    }
                }
                buf.truncate(filled);
                let data = Bytes::from(buf);
                let mut pos = 0;
                while let Some(n) = chunker.next_cut(&data[pos..], eof) {
                    work_tx
                        .send((seq, data.slice(pos..pos + n)))
                        .map_err(|_| Error::Cancelled)?;
                    seq += 1;
                    pos += n;
                }
                carry = data[pos..].to_vec();
                shared.check_failed()?;
                if eof {
                    return Ok(());
                }
            })();
            drop(work_tx);
            result
        });
        read_result?;
        self.shared.check_failed()?;
        let chunks = results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::invalid("stream", "a chunk was lost in the pipeline"))?;
        Ok(StreamContent { chunks, size })
    }

    /// Writes a stream as an object: its chunks, then its chunk list as a blob whose id is
    /// the object's id (read it back with [`IndexedRepository::open_object`]). Equal streams
    /// give equal ids. Like every write, it is durable only after [`Writer::flush`] or
    /// [`Writer::commit`].
    pub fn write_object(&self, reader: impl Read, progress: &dyn Progress) -> Result<BlobId> {
        let content = self.write_stream(reader, progress)?;
        let list = crate::tree::ContentList {
            size: content.size,
            chunks: content.chunks,
        };
        self.write_blob(BlobKind::Tree, &list.encode())
    }

    /// Returns once everything written so far is in durable packs listed by durable index
    /// files.
    pub fn flush(&self) -> Result<()> {
        // A failure to send the last packs (an earlier upload failed) must not skip
        // indexing what was uploaded: it is reported after that.
        let mut sent = Ok(());
        for packer in &self.shared.packers {
            let pack = {
                let mut packer = packer.lock().unwrap_or_else(|e| e.into_inner());
                (!packer.is_empty()).then(|| std::mem::take(&mut *packer))
            };
            if let (Some(p), Ok(())) = (pack, &sent) {
                sent = self.tx().and_then(|tx| self.shared.send_pack(p, tx));
            }
        }
        let mut n = self
            .shared
            .outstanding
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = self.shared.idle.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        drop(n);
        // Packs that reached storage are indexed even when another upload failed (a full
        // disk, a lost connection): unindexed they would be uploaded again by the next
        // backup and strand their space until maintenance finds them as orphans.
        let failed = sent.and(self.shared.check_failed());
        let indexed = self.shared.write_index();
        failed.and(indexed)
    }

    /// An id for a dry run's outcome: the hash of `snapshot` as it stands. It is not the id
    /// a commit would give (a commit also records the session and the time it ends), and
    /// nothing is written; the session ends when the writer is dropped.
    pub fn dry_run_id(&self, snapshot: &Snapshot) -> ObjectId {
        snapshot.seal(self.repo.key()).0
    }

    /// Flushes, verifies the session, and writes `snapshot`. Returns the snapshot id.
    /// A dry-run writer refuses: it has stored nothing a snapshot could name.
    ///
    /// If the session lapsed (before the snapshot was written, or while it was being
    /// written), maintenance may have swept meanwhile: the index and GC plans are loaded
    /// again from scratch and every referenced blob must be indexed, not condemned and in a
    /// pack that still exists. A snapshot that fails that check after it was written is
    /// deleted again, so none that references missing data stays.
    pub fn commit(mut self, mut snapshot: Snapshot) -> Result<ObjectId> {
        if self.shared.dry_run {
            return Err(Error::invalid(
                "writer",
                "a dry run stores nothing, so it commits no snapshot",
            ));
        }
        self.flush()?;
        let session = self.session.take().ok_or(Error::Cancelled)?;
        snapshot.session = session.id();
        if session.lapsed()? {
            self.verify_after_lapse(&snapshot.root, &session.id())?;
        }
        let (id, bytes) = snapshot.seal(self.repo.key());
        let key = snapshot_key(&id);
        match self
            .repo
            .storage()
            .put(&key, Bytes::from(bytes).into(), WriteMode::Create)
        {
            Ok(()) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        if session.lapsed()? {
            if let Err(e) = self.verify_after_lapse(&snapshot.root, &session.id()) {
                let _ = self.repo.storage().delete(&key);
                return Err(e);
            }
        }
        // The snapshot is durable: failing to delete the session object now must not turn a
        // committed backup into a reported failure. An undeleted session simply expires.
        let _ = session.end();
        Ok(id)
    }

    /// After a lapse: reload everything and check the snapshot's blobs and our packs.
    fn verify_after_lapse(&self, root: &BlobId, session: &str) -> Result<()> {
        self.repo.reload(&crate::NoProgress)?;
        let ours = self
            .shared
            .all_uploaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.shared.packs_exist(&ours)?;
        self.verify_reachable(root, session)
    }

    /// Checks every blob under `root` is indexed and not condemned.
    fn verify_reachable(&self, root: &BlobId, session: &str) -> Result<()> {
        let index = self.repo.index();
        let mut missing = Vec::new();
        let mut stack = vec![*root];
        let mut trees = Vec::new();
        while let Some(t) = stack.pop() {
            if !index.has_for_dedup(&t) {
                missing.push(t);
                continue;
            }
            trees.push(t);
        }
        drop(index);
        let mut i = 0;
        while i < trees.len() {
            let tree = self.repo.read_tree(&trees[i])?;
            let index = self.repo.index();
            for node in &tree.nodes {
                for c in node.data_chunks() {
                    if !index.has_for_dedup(&c.0) {
                        missing.push(c.0);
                    }
                }
            }
            for sub in tree.child_trees() {
                if index.has_for_dedup(&sub) {
                    trees.push(sub);
                } else {
                    missing.push(sub);
                }
            }
            i += 1;
        }
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(Error::SessionExpired {
                session: session.into(),
                missing: missing.len(),
                first: *first,
            }),
        }
    }

    /// Convenience: writes one stream as the only file of a snapshot and commits it.
    pub fn backup_stream(
        self,
        reader: impl Read,
        name: &str,
        mut snapshot: Snapshot,
        progress: &dyn Progress,
    ) -> Result<(ObjectId, Snapshot)> {
        let started = Instant::now();
        progress.start("backup", None);
        let content = self.write_stream(reader, progress)?;
        let node = crate::tree::Node {
            name: crate::tree::Name(name.as_bytes().to_vec()),
            kind: NodeKind::File,
            size: content.size,
            mode: 0o644,
            mtime: snapshot.time.clone(),
            content: content.chunks,
            ..Default::default()
        };
        node.name
            .validate()
            .map_err(|e| Error::invalid("stream name", e))?;
        let root = self.write_tree(&Tree {
            nodes: vec![node],
            ..Default::default()
        })?;
        self.flush()?;
        let stats = self.stats();
        snapshot.root = root;
        snapshot.summary.files = 1;
        snapshot.summary.bytes = content.size;
        snapshot.summary.new_blobs = stats.new_blobs;
        snapshot.summary.new_bytes = stats.new_bytes;
        snapshot.summary.stored_bytes = stats.stored_bytes;
        snapshot.summary.duration_secs = started.elapsed().as_secs_f64();
        snapshot.session = self.session_id();
        let id = self.commit(snapshot.clone())?;
        progress.finish();
        Ok((id, snapshot))
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.tx.take();
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
    }
}
