//! A storage wrapper that fails on purpose: the test kit for crash and fault behaviour.
//!
//! Faults are drawn from a seeded RNG so a failing test can be replayed from its seed.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};

use super::{ObjectInfo, Payload, Storage, WriteMode};
use crate::{Error, Result};

/// What to break, and how often.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Probability that a put fails before writing anything.
    pub put_error_rate: f64,
    /// Probability that a put is written but reported as failed (a lost acknowledgement).
    pub lost_ack_rate: f64,
    /// Probability that a get, range get, head or list fails.
    pub read_error_rate: f64,
    /// After this many successful puts, every operation fails: the process "crashed".
    pub crash_after_puts: Option<u64>,
    /// Latency added to every call.
    pub latency: Option<Duration>,
    /// Whether injected errors are marked transient (retryable).
    pub transient: bool,
    /// Only keys with this prefix are faulted (all when empty).
    pub only_prefix: String,
}

/// Wraps a storage and injects the faults of a [`FaultPlan`].
pub struct FaultyStorage<S> {
    inner: S,
    plan: FaultPlan,
    rng: Mutex<rand::rngs::StdRng>,
    puts: AtomicU64,
    injected: AtomicU64,
}

impl<S: Storage> FaultyStorage<S> {
    pub fn new(inner: S, plan: FaultPlan, seed: u64) -> Self {
        FaultyStorage {
            inner,
            plan,
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            puts: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn roll(&self, key: &str, rate: f64) -> bool {
        if rate <= 0.0 || !key.starts_with(&self.plan.only_prefix) {
            return false;
        }
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gen_bool(rate.min(1.0))
    }

    fn crashed(&self) -> bool {
        matches!(self.plan.crash_after_puts, Some(n) if self.puts.load(Ordering::SeqCst) >= n)
    }

    fn fault(&self, key: &str, what: &str) -> Error {
        self.injected.fetch_add(1, Ordering::Relaxed);
        Error::Storage {
            repo: self.inner.location().into(),
            object: key.into(),
            message: format!("injected fault: {what}"),
            transient: self.plan.transient,
        }
    }

    fn before(&self, key: &str, read_rate: f64) -> Result<()> {
        if let Some(l) = self.plan.latency {
            std::thread::sleep(l);
        }
        if self.crashed() {
            return Err(self.fault(key, "storage gone (crash point reached)"));
        }
        if self.roll(key, read_rate) {
            return Err(self.fault(key, "read failed"));
        }
        Ok(())
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn location(&self) -> &str {
        self.inner.location()
    }

    fn put(&self, key: &str, data: Payload, mode: WriteMode) -> Result<()> {
        self.before(key, 0.0)?;
        if self.roll(key, self.plan.put_error_rate) {
            return Err(self.fault(key, "write failed"));
        }
        self.inner.put(key, data, mode)?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.roll(key, self.plan.lost_ack_rate) {
            return Err(self.fault(key, "write acknowledgement lost"));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        self.before(key, self.plan.read_error_rate)?;
        self.inner.get(key)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.before(key, self.plan.read_error_rate)?;
        self.inner.get_range(key, range)
    }

    fn head(&self, key: &str) -> Result<ObjectInfo> {
        self.before(key, self.plan.read_error_rate)?;
        self.inner.head(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.before(prefix, self.plan.read_error_rate)?;
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.before(key, 0.0)?;
        self.inner.delete(key)
    }
}
