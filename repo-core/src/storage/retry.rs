//! Retries of transient storage errors, with exponential backoff and full jitter.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

use super::{ObjectInfo, Payload, Storage, WriteMode};
use crate::Result;

/// How often and how patiently to retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// First backoff; doubles each attempt.
    pub base_delay: Duration,
    /// Largest single backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 retries from 100 ms doubling to 10 s: rides out about half a minute of outage.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries (tests that want to see every fault).
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_delay);
        // Full jitter: uniform in [0, cap], so many writers retrying at once spread out.
        cap.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }
}

/// Wraps a storage and retries its transient errors.
///
/// A `Create` put that is retried after a lost acknowledgement may answer `AlreadyExists`
/// for an object the first attempt wrote; callers that name objects by content hash treat
/// that as success.
pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S: Storage> Retrying<S> {
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Retrying { inner, policy }
    }

    fn retry<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match op() {
                Err(e) if e.is_transient() && attempt < self.policy.max_retries => {
                    std::thread::sleep(self.policy.delay(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

impl<S: Storage> Storage for Retrying<S> {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn put(&self, key: &str, data: Payload, mode: WriteMode) -> Result<()> {
        self.retry(|| self.inner.put(key, data.clone(), mode))
    }
    fn get(&self, key: &str) -> Result<Bytes> {
        self.retry(|| self.inner.get(key))
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.retry(|| self.inner.get_range(key, range.clone()))
    }
    fn head(&self, key: &str) -> Result<ObjectInfo> {
        self.retry(|| self.inner.head(key))
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.retry(|| self.inner.list(prefix))
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.retry(|| self.inner.delete(key))
    }
}

impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    fn location(&self) -> &str {
        (**self).location()
    }
    fn put(&self, key: &str, data: Payload, mode: WriteMode) -> Result<()> {
        (**self).put(key, data, mode)
    }
    fn get(&self, key: &str) -> Result<Bytes> {
        (**self).get(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        (**self).get_range(key, range)
    }
    fn head(&self, key: &str) -> Result<ObjectInfo> {
        (**self).head(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        (**self).list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        (**self).delete(key)
    }
}
