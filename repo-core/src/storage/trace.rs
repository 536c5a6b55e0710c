//! A storage wrapper that prints one line per request to standard error: what, which key,
//! how many bytes, how long. Turned on with `CAIRN_TRACE_STORAGE=1`; for finding out where a
//! slow backup or restore waits (request counts, sizes, sequential round trips), with no
//! tracing stack in between.

use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;

use super::{ObjectInfo, Payload, Storage, WriteMode};
use crate::Result;

pub struct Traced<S> {
    inner: S,
    start: Instant,
}

impl<S: Storage> Traced<S> {
    pub fn new(inner: S) -> Self {
        Traced {
            inner,
            start: Instant::now(),
        }
    }

    /// Runs one request and prints its line: start time since open, duration, thread,
    /// operation, key, bytes, and the error if it failed.
    fn traced<T>(
        &self,
        op: &str,
        key: &str,
        f: impl FnOnce() -> Result<T>,
        len: impl Fn(&T) -> u64,
    ) -> Result<T> {
        let at = self.start.elapsed();
        let t = Instant::now();
        let r = f();
        let took = t.elapsed();
        let outcome = match &r {
            Ok(v) => format!("{} B", len(v)),
            Err(e) => format!("error: {e}"),
        };
        eprintln!(
            "storage {:>9.3}s {:>8.1}ms {:<12} {op} {key} {outcome}",
            at.as_secs_f64(),
            took.as_secs_f64() * 1e3,
            std::thread::current().name().unwrap_or("-"),
        );
        r
    }
}

impl<S: Storage> Storage for Traced<S> {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn put(&self, key: &str, data: Payload, mode: WriteMode) -> Result<()> {
        let n = data.len() as u64;
        self.traced("put", key, || self.inner.put(key, data, mode), |_| n)
    }
    fn get(&self, key: &str) -> Result<Bytes> {
        self.traced("get", key, || self.inner.get(key), |b| b.len() as u64)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let what = format!("{key} {}..{}", range.start, range.end);
        self.traced(
            "get_range",
            &what,
            || self.inner.get_range(key, range),
            |b| b.len() as u64,
        )
    }
    fn head(&self, key: &str) -> Result<ObjectInfo> {
        self.traced("head", key, || self.inner.head(key), |_| 0)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.traced(
            "list",
            prefix,
            || self.inner.list(prefix),
            |v| v.len() as u64,
        )
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.traced("delete", key, || self.inner.delete(key), |_| 0)
    }
}
