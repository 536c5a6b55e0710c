//! Writer sessions: the writer's half of the GC protocol (docs/FORMAT.md, DESIGN.md).
//!
//! A writer registers `sessions/<id>` before it deduplicates against anything and refreshes
//! it every `ttl / 3` while it works. Maintenance records live sessions in its GC plan and does
//! not sweep until they end. A session whose refreshes stopped for longer than its TTL (a
//! suspended laptop, a paused pod) has *lapsed*: maintenance may have gone ahead, so before
//! committing, the writer checks [`Session::lapsed`] and re-verifies what it deduplicated.
//! Times are the storage's (`last_modified` of the session object), not the local clock.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::format::{self, Kind, FORMAT_VERSION};
use crate::storage::{DynStorage, WriteMode};
use crate::{Error, MasterKey, Result};

/// Default session TTL: 10 minutes without a refresh and the session counts as ended.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(600);

/// The stored record of a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub version: u16,
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339, writer's clock (informational).
    pub started: String,
    pub refreshed: String,
    pub ttl_secs: u64,
    /// GC plans this writer had loaded when it began deduplicating. A sweep waits for a live
    /// session that has not seen its plan (it might deduplicate against condemned blobs).
    #[serde(default)]
    pub seen_plans: Vec<String>,
}

impl SessionRecord {
    pub fn seal(&self, key: &MasterKey) -> Vec<u8> {
        format::seal_object(
            key,
            Kind::Session,
            &serde_json::to_vec(self).expect("serializes"),
        )
    }

    pub fn open(key: &MasterKey, bytes: &[u8], object: &str) -> Result<Self> {
        let json = format::open_object(key, Kind::Session, bytes, object)?;
        Self::from_json(&json, object)
    }

    /// Parses a session payload.
    pub fn from_json(json: &[u8], object: &str) -> Result<Self> {
        let r: SessionRecord =
            serde_json::from_slice(json).map_err(|e| Error::corrupt(object, e))?;
        format::check_version(r.version, object, "session")?;
        Ok(r)
    }
}

/// Storage key of a session.
pub fn session_key(id: &str) -> String {
    format!("sessions/{id}")
}

struct State {
    /// Storage time of the last refresh that succeeded.
    last_ok: SystemTime,
    /// Set when a refresh found the gap since the previous one longer than the TTL.
    lapsed: bool,
    stop: bool,
}

struct Shared {
    storage: DynStorage,
    key: MasterKey,
    record: Mutex<SessionRecord>,
    ttl: Duration,
    state: Mutex<State>,
    wake: Condvar,
}

/// A second handle on a live session, for the writer's upload threads: they check the
/// session has not lapsed before they publish an index file.
#[derive(Clone)]
pub struct SessionHandle(Arc<Shared>);

impl SessionHandle {
    /// See [`Session::lapsed`].
    pub fn lapsed(&self) -> Result<bool> {
        self.0.lapsed()
    }

    pub fn id(&self) -> String {
        self.0
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id
            .clone()
    }
}

/// A live writer session with a heartbeat thread. Dropping it ends the session.
pub struct Session {
    shared: Arc<Shared>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl Shared {
    /// Writes the session object and returns the storage's time for it.
    fn refresh(&self) -> Result<SystemTime> {
        let key = session_key(&self.record.lock().unwrap_or_else(|e| e.into_inner()).id);
        let bytes = {
            let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
            r.refreshed = crate::time::now_rfc3339();
            r.seal(&self.key)
        };
        self.storage
            .put(&key, Bytes::from(bytes).into(), WriteMode::Overwrite)?;
        Ok(self.storage.head(&key)?.last_modified)
    }

    /// Refreshes now and says whether the session lapsed at any point (a refresh gap longer
    /// than the TTL, as the storage's clock saw it, or the session object was removed).
    fn lapsed(&self) -> Result<bool> {
        let key = session_key(&self.record.lock().unwrap_or_else(|e| e.into_inner()).id);
        let gone = matches!(self.storage.head(&key), Err(Error::NotFound { .. }));
        self.beat()?;
        Ok(gone || self.state.lock().unwrap_or_else(|e| e.into_inner()).lapsed)
    }

    /// Refreshes and records whether the gap since the last success exceeded the TTL.
    fn beat(&self) -> Result<()> {
        let t = self.refresh()?;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if t.duration_since(s.last_ok).unwrap_or_default() > self.ttl {
            s.lapsed = true;
        }
        s.last_ok = s.last_ok.max(t);
        Ok(())
    }
}

impl Session {
    /// Registers a new session and starts its heartbeat.
    pub fn start(storage: DynStorage, key: MasterKey, ttl: Duration) -> Result<Self> {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let now = crate::time::now_rfc3339();
        let record = SessionRecord {
            version: FORMAT_VERSION,
            id: hex::encode(id),
            host: crate::time::hostname(),
            pid: std::process::id(),
            started: now.clone(),
            refreshed: now,
            ttl_secs: ttl.as_secs().max(1),
            seen_plans: Vec::new(),
        };
        let shared = Arc::new(Shared {
            storage,
            key,
            record: Mutex::new(record),
            ttl,
            state: Mutex::new(State {
                last_ok: SystemTime::UNIX_EPOCH,
                lapsed: false,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let first = shared.refresh()?;
        shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_ok = first;
        let hb = shared.clone();
        let heartbeat = std::thread::Builder::new()
            .name("cairn-session".into())
            .spawn(move || loop {
                let period = hb.ttl / 3;
                {
                    let s = hb.state.lock().unwrap_or_else(|e| e.into_inner());
                    let (s, _) = hb
                        .wake
                        .wait_timeout_while(s, period, |s| !s.stop)
                        .unwrap_or_else(|e| e.into_inner());
                    if s.stop {
                        return;
                    }
                }
                // A failed refresh is retried next period; if they keep failing the session
                // lapses and the commit-time check catches it.
                let _ = hb.beat();
            })
            .map_err(|e| Error::io("starting the session heartbeat", e))?;
        Ok(Session {
            shared,
            heartbeat: Some(heartbeat),
        })
    }

    pub fn id(&self) -> String {
        self.shared
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id
            .clone()
    }

    /// Refreshes now and says whether the session lapsed at any point (a refresh gap longer
    /// than the TTL, as the storage's clock saw it, or the session object was removed).
    pub fn lapsed(&self) -> Result<bool> {
        self.shared.lapsed()
    }

    /// Records the GC plans the writer loaded, and refreshes so maintenance sees them.
    pub fn set_seen_plans(&self, plans: &[crate::ObjectId]) -> Result<()> {
        self.shared
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen_plans = plans.iter().map(|p| p.to_string()).collect();
        self.shared.beat()
    }

    /// A handle the writer's threads can check the session with.
    pub fn handle(&self) -> SessionHandle {
        SessionHandle(self.shared.clone())
    }

    /// Pretends the last refresh happened `ago` earlier (tests of suspended writers).
    #[doc(hidden)]
    pub fn backdate(&self, ago: Duration) {
        let mut s = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        s.last_ok -= ago;
    }

    /// Stops the heartbeat and deletes the session object.
    pub fn end(mut self) -> Result<()> {
        self.stop();
        self.shared.storage.delete(&session_key(&self.id()))
    }

    fn stop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.heartbeat.is_some() {
            self.stop();
            let _ = self.shared.storage.delete(&session_key(&self.id()));
        }
    }
}
