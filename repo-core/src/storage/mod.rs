//! Storage: where repository objects live.
//!
//! [`Storage`] is the one small trait every backend implements; it knows keys and bytes,
//! nothing about encryption or formats. Backends: [`ObjectStoreBackend`] (local directory,
//! S3 and compatibles, GCS, Azure, in-memory, all through `object_store`), wrapped by
//! [`Retrying`] for transient errors; [`FaultyStorage`] injects failures for tests.
//!
//! Calls block the calling thread. Do not call them from inside an async runtime's worker
//! thread (use `spawn_blocking`).

mod backend;
mod faults;
mod retry;
mod trace;

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

pub use backend::{ObjectStoreBackend, S3Credentials, StorageOptions};
pub use faults::{FaultPlan, FaultyStorage};
pub use retry::{RetryPolicy, Retrying};
pub use trace::Traced;

use crate::Result;

/// How a put treats an existing object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail with [`crate::Error::AlreadyExists`] if the key exists. Atomic: at most one
    /// concurrent creator succeeds, and nobody ever sees a partial object.
    Create,
    /// Replace whatever is there, atomically.
    Overwrite,
}

/// The bytes of an object being written, as one or more segments (a pack is written from
/// its sealed blobs without concatenating them). Cloning is cheap: segments are shared.
#[derive(Clone, Debug, Default)]
pub struct Payload(Vec<Bytes>);

impl Payload {
    /// The segments in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.0
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.0.iter().map(|b| b.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes as one buffer (copies when there are several segments).
    pub fn to_bytes(&self) -> Bytes {
        match self.0.as_slice() {
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload(vec![b])
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload(vec![Bytes::from(v)])
    }
}

impl From<Vec<Bytes>> for Payload {
    fn from(v: Vec<Bytes>) -> Self {
        Payload(v)
    }
}

/// What a listing or `head` returns about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the repository root, e.g. `snapshots/ab12…`.
    pub key: String,
    pub size: u64,
    /// Modification time as the storage reports it (the storage's clock, not ours).
    pub last_modified: SystemTime,
}

/// A flat key-value store of immutable-ish objects.
///
/// Contract for every implementation:
/// - `put` returns only once the object is durable (fsynced on the local backend, acknowledged
///   by the service on clouds) and is atomic: readers see the old state or the whole new object.
/// - `get`/`get_range` return [`crate::Error::NotFound`] for a missing key; a range past the
///   end is an error, never silently short.
/// - `delete` of a missing key succeeds (deletes are idempotent).
/// - `list` returns every object whose key starts with `prefix`, in no particular order.
/// - Errors are [`crate::Error::Storage`] with `transient` set when a retry may succeed
///   (timeouts, resets, 5xx); [`Retrying`] retries those, the backends themselves do not.
pub trait Storage: Send + Sync + 'static {
    /// Where this storage is, for messages (`/srv/repo`, `s3://bucket/prefix`).
    fn location(&self) -> &str;
    fn put(&self, key: &str, data: Payload, mode: WriteMode) -> Result<()>;
    fn get(&self, key: &str) -> Result<Bytes>;
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    fn head(&self, key: &str) -> Result<ObjectInfo>;
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    fn delete(&self, key: &str) -> Result<()>;
}

/// Shared handle to a storage.
pub type DynStorage = Arc<dyn Storage>;

/// Opens the storage a repository URL names, with retries.
///
/// Accepted: a path or `file:///path` (local directory, the default), `s3://bucket/prefix`,
/// `gs://bucket/prefix`, `az://container/prefix`, `memory://name` (process-wide, for tests).
pub fn open_url(url: &str, options: &StorageOptions) -> Result<DynStorage> {
    let backend = ObjectStoreBackend::open(url, options)?;
    let retrying = Retrying::new(backend, options.retry.clone());
    // Requests are traced as the repository sees them: one line per call, retries inside.
    if std::env::var_os("CAIRN_TRACE_STORAGE").is_some_and(|v| v == "1") {
        return Ok(Arc::new(Traced::new(retrying)));
    }
    Ok(Arc::new(retrying))
}
