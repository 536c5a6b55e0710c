//! The `object_store` backend: one implementation for local, S3, GCS, Azure and memory.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{ObjectInfo, Payload, RetryPolicy, Storage, WriteMode};
use crate::{Error, Result};

/// Options for opening a storage; the CLI fills them from flags and the environment.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Most requests in flight at once.
    pub max_concurrency: usize,
    /// S3 endpoint (else `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`).
    pub s3_endpoint: Option<String>,
    /// S3 region (else `AWS_REGION`/`AWS_DEFAULT_REGION`).
    pub s3_region: Option<String>,
    /// Allow plain HTTP to the endpoint (else `AWS_ALLOW_HTTP`).
    pub s3_allow_http: Option<bool>,
    /// Use virtual-hosted-style requests instead of path style (else
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`; path style by default, which S3-compatibles want).
    pub s3_virtual_hosted: Option<bool>,
    /// Retries of transient errors.
    pub retry: RetryPolicy,
    /// S3 keys given directly (else `AWS_ACCESS_KEY_ID` and the rest of the environment):
    /// the control plane reads them from a location's Secret.
    pub s3_credentials: Option<S3Credentials>,
}

/// An S3 access key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    /// The key id only: secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Credentials({})", self.access_key_id)
    }
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_concurrency: 16,
            s3_endpoint: None,
            s3_region: None,
            s3_allow_http: None,
            s3_virtual_hosted: None,
            retry: RetryPolicy::default(),
            s3_credentials: None,
        }
    }
}

/// A [`Storage`] over any `object_store` implementation, under a key prefix.
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    location: String,
    slots: Slots,
    /// Directory of a local repository. Reads go straight to the file system: a read
    /// through object_store's async API costs two thread hand-offs, measured at 23% of a
    /// restore's time. Writes keep object_store's atomic create-only put.
    local_root: Option<std::path::PathBuf>,
}

/// Counting semaphore bounding requests in flight.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// The runtime that drives object_store's async I/O for all backends in this process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-io")
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// `memory://name` stores live for the whole process, so reopening sees the same objects.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    stores
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
        .clone()
}

fn no_retry() -> object_store::RetryConfig {
    // Retries happen in our `Retrying` layer, the same for every backend.
    object_store::RetryConfig {
        max_retries: 0,
        ..Default::default()
    }
}

fn split_bucket(url: &url::Url, scheme: &str) -> Result<(String, Option<Path>)> {
    let bucket = url.host_str().unwrap_or("").to_string();
    if bucket.is_empty() {
        return Err(Error::invalid(
            "repository URL",
            format!("{url} has no bucket; write {scheme}://BUCKET/PREFIX"),
        ));
    }
    let prefix = url.path().trim_matches('/');
    let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
    Ok((bucket, prefix))
}

/// The absolute form of a directory that does not exist yet, as the kernel will resolve it
/// once created: its deepest existing ancestor resolved (symlinks and all), then the rest
/// with `.` and `..` applied (`init ../new-repo`).
fn resolve_missing(path: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::path::Component;
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(existing)?;
    for c in rest.into_iter().rev() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A plain `http://` S3 endpoint that is not allowed would fail every request with an
/// error a retry cannot fix: say so at once, with the flag that allows it.
fn refuse_plain_http(opts: &StorageOptions) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let endpoint = opts
        .s3_endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| env("AWS_ENDPOINT"));
    let allowed = opts
        .s3_allow_http
        .unwrap_or_else(|| env("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true")));
    match endpoint {
        Some(ep) if ep.to_ascii_lowercase().starts_with("http://") && !allowed => {
            Err(Error::invalid(
                "S3 endpoint",
                format!(
                    "{ep} is plain HTTP, which is refused unless allowed: pass --s3-allow-http \
                     (or set AWS_ALLOW_HTTP=true) for a test or in-cluster endpoint, or use https://"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// What a repository location may be, for messages.
const SUPPORTED: &str = "use a path (/srv/repo, ./repo), file:///path, s3://BUCKET/PREFIX, \
                         gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or memory://NAME";

/// A location written `scheme:rest` (`sftp:user@host:/x`, `rest:http://…`, as other backup
/// tools write theirs) is a backend cairn does not have, not a local directory named
/// `sftp:user@host:`. A local path with a colon in its first component can be written
/// `./name:…`.
fn refuse_unknown_scheme(location: &str) -> Result<()> {
    let Some((scheme, _)) = location.split_once(':') else {
        return Ok(());
    };
    let looks_like_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if looks_like_scheme {
        return Err(Error::invalid(
            "repository URL",
            format!(
                "{location}: {scheme:?} is not a storage cairn supports; {SUPPORTED} \
                 (a local directory whose name has a colon: write ./{location})"
            ),
        ));
    }
    Ok(())
}

fn build_error(url: &str, e: object_store::Error) -> Error {
    Error::invalid("repository URL", format!("{url}: {e}"))
}

impl ObjectStoreBackend {
    /// Wraps an existing object store (used by tests and embedders).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: Option<Path>,
        location: String,
        max_concurrency: usize,
    ) -> Self {
        ObjectStoreBackend {
            store,
            prefix,
            location,
            slots: Slots {
                free: Mutex::new(max_concurrency.max(1)),
                cv: Condvar::new(),
            },
            local_root: None,
        }
    }

    /// Reads `key` (or a range of it) from a local repository directory. A short file
    /// returns what it has, so the caller's length check reports the truncation.
    fn local_read(
        &self,
        root: &std::path::Path,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let fail = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: "object",
                object: key.to_string(),
            },
            _ => Error::Storage {
                repo: self.location.clone(),
                object: key.to_string(),
                message: e.to_string(),
                transient: e.kind() == std::io::ErrorKind::Interrupted,
            },
        };
        let file = std::fs::File::open(root.join(key)).map_err(fail)?;
        let Some(range) = range else {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut buf).map_err(fail)?;
            return Ok(Bytes::from(buf));
        };
        let mut buf = vec![0u8; range.end.saturating_sub(range.start) as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], range.start + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(e)),
            }
        }
        buf.truncate(got);
        Ok(Bytes::from(buf))
    }

    /// A local directory. Opening never creates it: a read-only command given a mistyped
    /// path must leave nothing behind. A directory that does not exist yet is addressed from
    /// the file system's root, and the first write (only `init` writes first) creates it.
    fn local(path: &std::path::Path, n: usize) -> object_store::Result<Self> {
        use object_store::local::LocalFileSystem;
        let location = path.display().to_string();
        if path.is_dir() {
            let store = LocalFileSystem::new_with_prefix(path)?
                .with_automatic_cleanup(false)
                .with_fsync(true);
            return Ok(Self::new(Arc::new(store), None, location, n));
        }
        let absolute = resolve_missing(path).map_err(|source| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(source),
        })?;
        let prefix = Path::from_absolute_path(absolute)?;
        let store = LocalFileSystem::new()
            .with_automatic_cleanup(false)
            .with_fsync(true);
        Ok(Self::new(Arc::new(store), Some(prefix), location, n))
    }

    /// Opens the backend a repository URL names (see [`super::open_url`]).
    pub fn open(url_str: &str, opts: &StorageOptions) -> Result<Self> {
        let n = opts.max_concurrency;
        if let Some(name) = url_str.strip_prefix("memory://") {
            return Ok(Self::new(memory_store(name), None, url_str.into(), n));
        }
        let looks_like_url = url_str.contains("://");
        if !looks_like_url {
            refuse_unknown_scheme(url_str)?;
        }
        if !looks_like_url || url_str.starts_with("file://") {
            let path = if looks_like_url {
                url::Url::parse(url_str)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .ok_or_else(|| {
                        Error::invalid(
                            "repository URL",
                            format!("{url_str} is not a file:// URL with an absolute path"),
                        )
                    })?
            } else {
                std::path::PathBuf::from(url_str)
            };
            let mut backend = Self::local(&path, n).map_err(|e| build_error(url_str, e))?;
            backend.local_root = Some(path);
            return Ok(backend);
        }
        let url = url::Url::parse(url_str)
            .map_err(|e| Error::invalid("repository URL", format!("{url_str}: {e}")))?;
        match url.scheme() {
            "s3" => {
                let (bucket, prefix) = split_bucket(&url, "s3")?;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_retry(no_retry())
                    .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                if let Ok(ep) = std::env::var("AWS_ENDPOINT_URL") {
                    b = b.with_endpoint(ep);
                }
                if let Some(ep) = &opts.s3_endpoint {
                    b = b.with_endpoint(ep);
                }
                if let Some(r) = &opts.s3_region {
                    b = b.with_region(r);
                }
                if let Some(h) = opts.s3_allow_http {
                    b = b.with_allow_http(h);
                }
                refuse_plain_http(opts)?;
                if let Some(v) = opts.s3_virtual_hosted {
                    b = b.with_virtual_hosted_style_request(v);
                }
                if let Some(c) = &opts.s3_credentials {
                    b = b
                        .with_access_key_id(&c.access_key_id)
                        .with_secret_access_key(&c.secret_access_key);
                    if let Some(t) = &c.session_token {
                        b = b.with_token(t);
                    }
                }
                let s = b.build().map_err(|e| build_error(url_str, e))?;
                Ok(Self::new(Arc::new(s), prefix, url_str.into(), n))
            }
            "gs" => {
                let (bucket, prefix) = split_bucket(&url, "gs")?;
                let s = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(no_retry())
                    .build()
                    .map_err(|e| build_error(url_str, e))?;
                Ok(Self::new(Arc::new(s), prefix, url_str.into(), n))
            }
            "az" | "azure" => {
                let (container, prefix) = split_bucket(&url, "az")?;
                let s = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(no_retry())
                    .build()
                    .map_err(|e| build_error(url_str, e))?;
                Ok(Self::new(Arc::new(s), prefix, url_str.into(), n))
            }
            other => Err(Error::invalid(
                "repository URL",
                format!("{url_str}: unknown scheme {other:?}; {SUPPORTED}"),
            )),
        }
    }

    fn path(&self, key: &str) -> Path {
        match &self.prefix {
            Some(p) => Path::from(format!("{p}/{key}")),
            None => Path::from(key),
        }
    }

    fn key_of(&self, path: &Path) -> String {
        let s = path.as_ref();
        match &self.prefix {
            Some(p) => s
                .strip_prefix(p.as_ref())
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(s)
                .to_string(),
            None => s.to_string(),
        }
    }

    fn run<T>(
        &self,
        key: &str,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<T> {
        let _slot = self.slots.acquire();
        runtime()
            .block_on(fut)
            .map_err(|e| map_error(&self.location, key, e))
    }
}

/// Classifies an object_store error: what is missing, what exists, and what a retry may fix.
fn map_error(location: &str, key: &str, e: object_store::Error) -> Error {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Error::NotFound {
            what: "object",
            object: key.to_string(),
        },
        E::AlreadyExists { .. } | E::Precondition { .. } => Error::AlreadyExists {
            object: key.to_string(),
        },
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::NotImplemented { .. }
        | E::NotSupported { .. }
        | E::InvalidPath { .. } => Error::Storage {
            repo: location.into(),
            object: key.into(),
            message: e.to_string(),
            transient: false,
        },
        other => {
            let transient = !is_permanent_io(&other);
            Error::Storage {
                repo: location.into(),
                object: key.into(),
                message: describe(&other),
                transient,
            }
        }
    }
}

/// Local I/O errors that no retry fixes: a full disk, a read-only or refused file system.
fn is_permanent_io(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return matches!(
                io.kind(),
                K::StorageFull
                    | K::PermissionDenied
                    | K::ReadOnlyFilesystem
                    | K::QuotaExceeded
                    | K::InvalidInput
                    | K::NotADirectory
                    | K::IsADirectory
                    | K::FileTooLarge
            );
        }
        cur = err.source();
    }
    false
}

/// A storage error in words: for a local file system failure, the operating system's
/// reason and what to do about it, not object_store's wrapping (`Generic LocalFileSystem
/// error …`); otherwise the whole chain of causes.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            let hint = match io.kind() {
                K::PermissionDenied => {
                    "; check that this user may read and write the repository's directory"
                }
                K::StorageFull | K::QuotaExceeded => {
                    "; free space (or raise the quota), then run again: what was stored is kept"
                }
                K::ReadOnlyFilesystem => "; the file system is mounted read-only",
                _ => "",
            };
            return format!("{io}{hint}");
        }
        cur = err.source();
    }
    error_chain(e)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let m = err.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = err.source();
    }
    s
}

impl Storage for ObjectStoreBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn put(&self, key: &str, data: Payload, mode: WriteMode) -> Result<()> {
        let opts = PutOptions {
            mode: match mode {
                WriteMode::Create => PutMode::Create,
                WriteMode::Overwrite => PutMode::Overwrite,
            },
            ..Default::default()
        };
        let path = self.path(key);
        let result = self.run(
            key,
            self.store.put_opts(
                &path,
                data.segments().iter().cloned().collect::<PutPayload>(),
                opts,
            ),
        );
        match result {
            Ok(_) => Ok(()),
            // Writing never needs the object to exist: "not found" means the bucket or
            // container itself is missing.
            Err(Error::NotFound { .. }) => Err(Error::Storage {
                repo: self.location.clone(),
                object: key.to_string(),
                message: "the bucket or container does not exist; create it first (cairn does not create buckets)".into(),
                transient: false,
            }),
            Err(e) => Err(e),
        }
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        if let Some(root) = &self.local_root {
            return self.local_read(root, key, None);
        }
        let path = self.path(key);
        self.run(key, async { self.store.get(&path).await?.bytes().await })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key);
        let want = range.end.saturating_sub(range.start);
        let got = match &self.local_root {
            Some(root) => self.local_read(root, key, Some(range.clone()))?,
            None => self.run(key, self.store.get_range(&path, range.clone()))?,
        };
        if got.len() as u64 != want {
            return Err(Error::corrupt(
                key,
                format!(
                    "asked for bytes {}..{}, storage returned {} bytes (object truncated?)",
                    range.start,
                    range.end,
                    got.len()
                ),
            ));
        }
        Ok(got)
    }

    fn head(&self, key: &str) -> Result<ObjectInfo> {
        let path = self.path(key);
        let meta = self.run(key, self.store.head(&path))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: meta.size,
            last_modified: meta.last_modified.into(),
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let path = self.path(prefix.trim_end_matches('/'));
        let metas: Vec<object_store::ObjectMeta> =
            self.run(prefix, self.store.list(Some(&path)).try_collect())?;
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: self.key_of(&m.location),
                size: m.size,
                last_modified: m.last_modified.into(),
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match self.run(key, self.store.delete(&path)) {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_failure_says_the_reason_and_the_fix_not_the_wrapping() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let wrapped = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(io),
        };
        let e = map_error("/srv/repo", "keys/x", wrapped);
        let m = e.to_string();
        assert!(
            !m.contains("Generic") && !m.contains("LocalFileSystem"),
            "{m}"
        );
        assert!(
            m.contains("permission denied") && m.contains("may read and write"),
            "{m}"
        );
        assert!(!e.is_transient(), "{m}");
        let full = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)),
        };
        let m = map_error("/srv/repo", "data/ab/cd", full).to_string();
        assert!(m.contains("free space"), "{m}");
    }

    #[test]
    fn a_directory_to_be_created_is_resolved_as_the_kernel_will() {
        let t = std::env::temp_dir().join(format!("cairn-resolve-{}", std::process::id()));
        std::fs::create_dir_all(t.join("a")).unwrap();
        let got = resolve_missing(&t.join("a/../new/./repo")).unwrap();
        assert_eq!(got, std::fs::canonicalize(&t).unwrap().join("new/repo"));
        let got = resolve_missing(&t.join("a/x/../../y")).unwrap();
        assert_eq!(got, std::fs::canonicalize(&t).unwrap().join("y"));
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn other_tools_locations_and_unallowed_http_are_refused_with_what_to_do() {
        for location in ["sftp:user@host:/x", "rest:http://h/", "rclone:remote:path"] {
            let e = refuse_unknown_scheme(location).unwrap_err().to_string();
            assert!(e.contains("s3://") && e.contains("./"), "{e}");
        }
        for fine in ["/srv/repo", "./a:b", "relative/dir", "C"] {
            assert!(refuse_unknown_scheme(fine).is_ok(), "{fine}");
        }
        let opts = StorageOptions {
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
            s3_allow_http: Some(false),
            ..Default::default()
        };
        let e = refuse_plain_http(&opts).unwrap_err().to_string();
        assert!(e.contains("--s3-allow-http"), "{e}");
        let allowed = StorageOptions {
            s3_allow_http: Some(true),
            ..opts
        };
        assert!(refuse_plain_http(&allowed).is_ok());
    }
}
