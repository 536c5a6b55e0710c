//! # repo-core: cairn's content-addressed, encrypted, deduplicating repository
//!
//! Data is cut into chunks by content (FastCDC v2020 with a secret gear seed), named by a
//! keyed BLAKE3 hash, compressed with zstd when that helps, sealed with AES-256-GCM and
//! packed into pack files; index files say which pack holds each blob; snapshots name a root
//! tree. All storage goes through [`storage::Storage`] (local directory, S3, GCS, Azure,
//! memory). docs/FORMAT.md describes every byte.
//!
//! The repository is used in states: [`Repository`] after `init`/`open` (keys, snapshots),
//! then [`IndexedRepository`] after [`Repository::load_index`] (read and write data).
//!
//! ```
//! use repo_core::{storage, Repository, InitOptions, OpenOptions, Snapshot, SnapshotFilter,
//!                 WriterOptions, NoProgress, KdfParams};
//! # fn main() -> repo_core::Result<()> {
//! let store = storage::open_url("memory://doc-example", &Default::default())?;
//! // Small KDF parameters keep the example fast; use the defaults for real repositories.
//! let init = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
//! let opts = OpenOptions { no_cache: true, ..Default::default() };
//! Repository::init(store.clone(), b"password", init, opts.clone())?;
//!
//! let repo = Repository::open(store, b"password", opts)?.load_index(&NoProgress)?;
//! let writer = repo.writer(WriterOptions::default())?;
//! let snapshot = Snapshot::new("db-dump", "host-a", vec!["app=shop".into()], Default::default())?;
//! let (id, _) = writer.backup_stream(&b"hello, cairn"[..], "dump.sql", snapshot, &NoProgress)?;
//!
//! let mut out = Vec::new();
//! repo.dump_file(&id, "dump.sql", &mut out)?;
//! assert_eq!(out, b"hello, cairn");
//! assert_eq!(repo.list_snapshots(&SnapshotFilter::default())?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! Calls block; from async code, call them inside `spawn_blocking`.

pub mod blob;
mod budget;
pub mod cache;
pub mod check;
pub mod chunker;
pub mod config;
pub mod crypto;
mod error;
pub mod forget;
pub mod format;
pub mod gcplan;
mod id;
pub mod index;
pub mod keyfile;
pub mod maintenance;
pub mod pack;
mod packcache;
pub mod packread;
pub mod parallel;
mod prefetch;
mod progress;
pub mod reader;
mod repository;
pub mod session;
pub mod snapshot;
pub mod storage;
pub mod time;
pub mod tree;
mod treepacks;
pub mod walk;
mod writer;

pub use check::{CheckOptions, CheckReport, Problem};
pub use config::{ChunkerParams, Config};
pub use crypto::{KdfParams, MasterKey};
pub use error::{Error, Result};
pub use id::{BlobId, ObjectId};
pub use progress::{NoProgress, Progress};
pub use repository::{IndexedRepository, InitOptions, OpenOptions, Repository};
pub use snapshot::{Snapshot, SnapshotFilter, Summary};
pub use writer::{DirSplit, StreamContent, WriteStats, Writer, WriterOptions, SPLIT_DIR_NODES};

impl IndexedRepository {
    /// Writes file `name` of snapshot `id` to `out` (parallel, range-coalesced reads).
    pub fn dump_file(
        &self,
        id: &ObjectId,
        name: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let snap = self.get_snapshot(id)?;
        let node = self.find_node(&snap.root, name)?;
        if node.kind != tree::NodeKind::File {
            return Err(Error::invalid(
                "path",
                format!("{name} in snapshot {} is not a file", id.short()),
            ));
        }
        reader::dump(self, &node.content, out, self.options().threads.max(2) * 2)
    }

    /// The entries of a directory, joining the parts of a split one. Checks the parts hold
    /// names in order and are not split themselves.
    pub fn read_dir(&self, id: &BlobId) -> Result<Vec<tree::Node>> {
        let mut tree = self.read_tree(id)?;
        if tree.parts.is_empty() {
            return Ok(tree.nodes);
        }
        let mut nodes: Vec<tree::Node> = Vec::new();
        self.prefetch_trees(&tree.parts);
        for part in std::mem::take(&mut tree.parts) {
            let t = self.read_tree(&part)?;
            let ordered = match (nodes.last(), t.nodes.first()) {
                (Some(a), Some(b)) => a.name < b.name,
                _ => true,
            };
            if !t.parts.is_empty() || !ordered || t.nodes.is_empty() {
                return Err(Error::corrupt_blob(
                    "tree",
                    part,
                    format!("part of directory tree {id} is nested, empty or out of order"),
                ));
            }
            nodes.extend(t.nodes);
        }
        Ok(nodes)
    }

    /// Finds the node at a `/`-separated path below a root tree.
    pub fn find_node(&self, root: &BlobId, path: &str) -> Result<tree::Node> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut dir = self.read_dir(root)?;
        for (i, part) in parts.iter().enumerate() {
            let node = dir
                .binary_search_by(|n| n.name.0.as_slice().cmp(part.as_bytes()))
                .ok()
                .map(|k| dir[k].clone())
                .ok_or_else(|| Error::NotFound {
                    what: "path in snapshot",
                    object: path.to_string(),
                })?;
            if i + 1 == parts.len() {
                return Ok(node);
            }
            match (node.kind, node.subtree) {
                (tree::NodeKind::Dir, Some(sub)) => dir = self.read_dir(&sub)?,
                _ => {
                    return Err(Error::NotFound {
                        what: "path in snapshot",
                        object: path.to_string(),
                    })
                }
            }
        }
        Err(Error::invalid("path", "empty path"))
    }

    /// Opens an object written by [`Writer::write_object`] as a seekable reader.
    pub fn open_object(&self, id: &BlobId) -> Result<reader::StreamReader<'_>> {
        let list = tree::ContentList::decode(&self.read_blob(id)?, *id)?;
        Ok(reader::StreamReader::new(self, list.chunks))
    }

    /// Runs [`check::check`].
    pub fn check(&self, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
        check::check(self, opts, progress)
    }
}
