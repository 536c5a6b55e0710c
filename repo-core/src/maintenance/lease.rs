//! The maintenance lease: one maintainer at a time, with create-only writes only.
//!
//! Leases are numbered generations, `maintenance/lease/<generation>`. Whoever creates the
//! next generation (a create-only write, so exactly one contender wins) holds the lease
//! until that object's last write is older than its TTL by the storage's clock, or until it
//! marks it released. The holder renews by rewriting its generation and then listing: a
//! higher generation means the lease was taken over (we were suspended past the TTL) and
//! the run must stop. Every destructive step of maintenance first calls
//! [`Lease::ensure_held`].
//!
//! No conditional update is needed, so this works on every backend including the local
//! directory (object_store has no `PutMode::Update` there).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::format::{self, Kind, FORMAT_VERSION};
use crate::storage::{DynStorage, WriteMode};
use crate::{Error, MasterKey, Result};

/// Prefix of lease generations.
pub const LEASE_PREFIX: &str = "maintenance/lease/";

/// Default lease TTL.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(600);

/// The stored lease record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub version: u16,
    /// Random id of the holding run.
    pub holder: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339, storage clock, of the acquisition.
    pub acquired: String,
    pub ttl_secs: u64,
    /// Set when the holder finished: the next maintainer need not wait for expiry.
    #[serde(default)]
    pub released: bool,
}

impl LeaseRecord {
    pub fn seal(&self, key: &MasterKey) -> Vec<u8> {
        format::seal_object(
            key,
            Kind::Lease,
            &serde_json::to_vec(self).expect("serializes"),
        )
    }

    pub fn open(key: &MasterKey, bytes: &[u8], object: &str) -> Result<Self> {
        let json = format::open_object(key, Kind::Lease, bytes, object)?;
        Self::from_json(&json, object)
    }

    pub fn from_json(json: &[u8], object: &str) -> Result<Self> {
        let r: LeaseRecord = serde_json::from_slice(json).map_err(|e| Error::corrupt(object, e))?;
        format::check_version(r.version, object, "maintenance lease")?;
        Ok(r)
    }
}

fn lease_key(generation: u64) -> String {
    format!("{LEASE_PREFIX}{generation:020}")
}

/// Generations present, ascending.
fn generations(storage: &DynStorage) -> Result<Vec<(u64, SystemTime)>> {
    let mut g: Vec<(u64, SystemTime)> = storage
        .list(LEASE_PREFIX)?
        .into_iter()
        .filter_map(|i| {
            i.key
                .strip_prefix(LEASE_PREFIX)?
                .parse()
                .ok()
                .map(|n| (n, i.last_modified))
        })
        .collect();
    g.sort();
    Ok(g)
}

/// The current time by the storage's clock: writes a tiny probe object and reads its
/// modification time. Falls back to the local clock if the probe cannot be written
/// (read-only credentials), which only `status` tolerates.
pub fn storage_now(storage: &DynStorage) -> Result<SystemTime> {
    const CLOCK: &str = "maintenance/clock";
    storage.put(
        CLOCK,
        Bytes::from_static(b"clock").into(),
        WriteMode::Overwrite,
    )?;
    Ok(storage.head(CLOCK)?.last_modified)
}

/// Who holds the lease now, if anyone (for `status`): the record and when it expires.
pub fn current(
    storage: &DynStorage,
    key: &MasterKey,
    now: SystemTime,
) -> Result<Option<(LeaseRecord, SystemTime)>> {
    let Some(&(generation, modified)) = generations(storage)?.last() else {
        return Ok(None);
    };
    let k = lease_key(generation);
    let bytes = match storage.get(&k) {
        Ok(b) => b,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let rec = LeaseRecord::open(key, &bytes, &k)?;
    let expires = modified + Duration::from_secs(rec.ttl_secs);
    if rec.released || expires <= now {
        return Ok(None);
    }
    Ok(Some((rec, expires)))
}

struct State {
    lost: Option<String>,
    stop: bool,
}

struct Inner {
    storage: DynStorage,
    key: MasterKey,
    generation: u64,
    record: LeaseRecord,
    state: Mutex<State>,
    wake: Condvar,
}

/// A held lease, renewed by a background thread until released or dropped.
pub struct Lease {
    inner: Arc<Inner>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Inner {
    /// Rewrites our generation, then checks nobody took a later one.
    fn renew(&self) -> Result<()> {
        if let Some(why) = &self.state.lock().unwrap_or_else(|e| e.into_inner()).lost {
            return Err(self.lost(why.clone()));
        }
        let k = lease_key(self.generation);
        let before = self
            .storage
            .head(&k)
            .map(|i| i.last_modified)
            .map_err(|e| self.lose(format!("reading our lease {k}: {e}")))?;
        let now = storage_now(&self.storage)?;
        let ttl = Duration::from_secs(self.record.ttl_secs);
        if now.duration_since(before).unwrap_or_default() > ttl {
            return Err(self.lose(format!(
                "the last renewal was {} s ago, more than the {} s TTL (was this process suspended?)",
                now.duration_since(before).unwrap_or_default().as_secs(),
                ttl.as_secs()
            )));
        }
        self.storage.put(
            &k,
            Bytes::from(self.record.seal(&self.key)).into(),
            WriteMode::Overwrite,
        )?;
        if let Some(&(g, _)) = generations(&self.storage)?.last() {
            if g > self.generation {
                return Err(self.lose(format!(
                    "another maintainer took generation {g} after ours ({})",
                    self.generation
                )));
            }
        }
        Ok(())
    }

    fn lose(&self, why: String) -> Error {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).lost = Some(why.clone());
        self.lost(why)
    }

    fn lost(&self, reason: String) -> Error {
        Error::LeaseLost {
            repo: self.storage.location().into(),
            reason,
        }
    }
}

impl Lease {
    /// Takes the lease, or fails with [`Error::MaintenanceBusy`] naming the holder.
    pub fn acquire(storage: DynStorage, key: MasterKey, ttl: Duration) -> Result<Self> {
        let mut holder = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut holder);
        for _ in 0..5 {
            let gens = generations(&storage)?;
            let next = match gens.last() {
                None => 1,
                Some(&(g, modified)) => {
                    let k = lease_key(g);
                    let rec = match storage.get(&k) {
                        Ok(b) => Some(LeaseRecord::open(&key, &b, &k)?),
                        Err(Error::NotFound { .. }) => None,
                        Err(e) => return Err(e),
                    };
                    if let Some(rec) = rec {
                        let now = storage_now(&storage)?;
                        let expires = modified + Duration::from_secs(rec.ttl_secs);
                        if !rec.released && expires > now {
                            return Err(Error::MaintenanceBusy {
                                repo: storage.location().into(),
                                holder: rec.holder,
                                host: rec.host,
                                pid: rec.pid,
                                since: rec.acquired,
                                expires_in_secs: expires
                                    .duration_since(now)
                                    .unwrap_or_default()
                                    .as_secs(),
                            });
                        }
                    }
                    g + 1
                }
            };
            let record = LeaseRecord {
                version: FORMAT_VERSION,
                holder: hex::encode(holder),
                host: crate::time::hostname(),
                pid: std::process::id(),
                acquired: crate::time::format_rfc3339(storage_now(&storage)?),
                ttl_secs: ttl.as_secs().max(1),
                released: false,
            };
            match storage.put(
                &lease_key(next),
                Bytes::from(record.seal(&key)).into(),
                WriteMode::Create,
            ) {
                Ok(()) => {}
                Err(Error::AlreadyExists { .. }) => continue, // someone else won this round
                Err(e) => return Err(e),
            }
            // Older generations are history now.
            for (g, _) in gens {
                let _ = storage.delete(&lease_key(g));
            }
            let inner = Arc::new(Inner {
                storage,
                key,
                generation: next,
                record,
                state: Mutex::new(State {
                    lost: None,
                    stop: false,
                }),
                wake: Condvar::new(),
            });
            let r = inner.clone();
            let renewer = std::thread::Builder::new()
                .name("cairn-lease".into())
                .spawn(move || loop {
                    let period = Duration::from_secs(r.record.ttl_secs) / 3;
                    {
                        let s = r.state.lock().unwrap_or_else(|e| e.into_inner());
                        let (s, _) = r
                            .wake
                            .wait_timeout_while(s, period, |s| !s.stop)
                            .unwrap_or_else(|e| e.into_inner());
                        if s.stop {
                            return;
                        }
                    }
                    // A failed renewal is retried next period; ensure_held sees a lost lease.
                    let _ = r.renew();
                })
                .map_err(|e| Error::io("starting the lease renewer", e))?;
            return Ok(Lease {
                inner,
                renewer: Some(renewer),
            });
        }
        Err(Error::invalid(
            "maintenance lease",
            "other maintainers keep taking the lease; try again later",
        ))
    }

    /// Renews now and fails with [`Error::LeaseLost`] if the lease is no longer ours. Call
    /// before every destructive step.
    pub fn ensure_held(&self) -> Result<()> {
        self.inner.renew()
    }

    /// The lease record (holder id and so on).
    pub fn record(&self) -> &LeaseRecord {
        &self.inner.record
    }

    fn stop(&mut self) {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.renewer.take() {
            let _ = h.join();
        }
    }

    /// Marks the lease released so the next maintainer need not wait for it to expire.
    pub fn release(mut self) -> Result<()> {
        self.stop();
        self.release_inner()
    }

    fn release_inner(&self) -> Result<()> {
        if self
            .inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lost
            .is_some()
        {
            return Ok(());
        }
        let mut rec = self.inner.record.clone();
        rec.released = true;
        self.inner.storage.put(
            &lease_key(self.inner.generation),
            Bytes::from(rec.seal(&self.inner.key)).into(),
            WriteMode::Overwrite,
        )
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.renewer.is_some() {
            self.stop();
            let _ = self.release_inner();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(name: &str) -> DynStorage {
        crate::storage::open_url(&format!("memory://lease-{name}"), &Default::default()).unwrap()
    }

    #[test]
    fn one_holder_at_a_time_and_release_hands_over() {
        let s = mem("one");
        let key = MasterKey::from_secret([1; 32]);
        let a = Lease::acquire(s.clone(), key.clone(), DEFAULT_LEASE_TTL).unwrap();
        let e = Lease::acquire(s.clone(), key.clone(), DEFAULT_LEASE_TTL)
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::MaintenanceBusy { holder, .. } if *holder == a.record().holder),
            "{e}"
        );
        assert!(e.to_string().contains("already running"), "{e}");
        a.ensure_held().unwrap();
        a.release().unwrap();
        let b = Lease::acquire(s.clone(), key.clone(), DEFAULT_LEASE_TTL).unwrap();
        b.ensure_held().unwrap();
        assert!(current(&s, &key, SystemTime::now()).unwrap().is_some());
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_the_old_holder_notices() {
        let s = mem("expired");
        let key = MasterKey::from_secret([1; 32]);
        // A TTL of one second, and a holder that stops renewing (suspended).
        let mut a = Lease::acquire(s.clone(), key.clone(), Duration::from_secs(1)).unwrap();
        a.stop();
        std::thread::sleep(Duration::from_millis(2100));
        let b = Lease::acquire(s.clone(), key.clone(), DEFAULT_LEASE_TTL).unwrap();
        let e = a.ensure_held().unwrap_err();
        assert!(matches!(e, Error::LeaseLost { .. }), "{e}");
        b.ensure_held().unwrap();
        drop(a);
        // The old holder's drop must not release the new holder's lease.
        assert!(Lease::acquire(s.clone(), key.clone(), DEFAULT_LEASE_TTL).is_err());
    }
}
