//! The last maintenance runs, kept in the repository (`maintenance/history`, sealed, kind
//! `R`), so any machine can tell an operator what maintenance did and when full maintenance
//! is next due. Only the lease holder rewrites it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::format::{self, Kind, FORMAT_VERSION};
use crate::storage::{DynStorage, WriteMode};
use crate::{Error, MasterKey, Result};

/// Storage key of the history.
pub const HISTORY_KEY: &str = "maintenance/history";

/// How many runs are kept.
pub const HISTORY_LEN: usize = 25;

/// One maintenance run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// RFC 3339, storage clock.
    pub started: String,
    pub duration_secs: f64,
    /// `quick` or `full`.
    pub mode: String,
    /// `success`, `failure` or `not-due`.
    pub outcome: String,
    /// What happened, in words.
    pub summary: String,
    pub host: String,
    /// Stored bytes deleted (packs, index files) minus bytes written (repacked packs).
    pub freed_bytes: i64,
    pub deleted_packs: u64,
    pub repacked_packs: u64,
    /// Plan published by this run's mark phase.
    #[serde(default)]
    pub marked_plan: Option<String>,
    /// Plan carried out by this run's sweep.
    #[serde(default)]
    pub swept_plan: Option<String>,
    /// Stored bytes of unreachable blobs the mark found.
    #[serde(default)]
    pub unreferenced_bytes: Option<u64>,
}

/// The stored history, newest run last.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub version: u16,
    pub runs: Vec<RunRecord>,
}

impl History {
    /// Reads the history; an absent one is empty.
    pub fn load(storage: &DynStorage, key: &MasterKey) -> Result<Self> {
        match storage.get(HISTORY_KEY) {
            Ok(b) => Self::open(key, &b, HISTORY_KEY),
            Err(Error::NotFound { .. }) => Ok(History {
                version: FORMAT_VERSION,
                runs: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    pub fn open(key: &MasterKey, bytes: &[u8], object: &str) -> Result<Self> {
        let json = format::open_object(key, Kind::History, bytes, object)?;
        Self::from_json(&json, object)
    }

    pub fn from_json(json: &[u8], object: &str) -> Result<Self> {
        let h: History = serde_json::from_slice(json).map_err(|e| Error::corrupt(object, e))?;
        format::check_version(h.version, object, "maintenance history")?;
        Ok(h)
    }

    /// Appends a run (keeping the last [`HISTORY_LEN`]) and writes the history.
    pub fn record(storage: &DynStorage, key: &MasterKey, run: RunRecord) -> Result<Self> {
        // A damaged history must not block maintenance: start a new one.
        let mut h = Self::load(storage, key).unwrap_or_default();
        h.version = FORMAT_VERSION;
        h.runs.push(run);
        let excess = h.runs.len().saturating_sub(HISTORY_LEN);
        h.runs.drain(..excess);
        let bytes = format::seal_object(
            key,
            Kind::History,
            &serde_json::to_vec(&h).expect("serializes"),
        );
        storage.put(HISTORY_KEY, Bytes::from(bytes).into(), WriteMode::Overwrite)?;
        Ok(h)
    }

    /// The last successful full run.
    pub fn last_full(&self) -> Option<&RunRecord> {
        self.runs
            .iter()
            .rev()
            .find(|r| r.mode == "full" && r.outcome == "success")
    }

    /// When full maintenance is next due: `interval` after the last successful full run
    /// (`None`: never ran, due now).
    pub fn next_full_due(&self, interval: std::time::Duration) -> Option<std::time::SystemTime> {
        self.last_full()
            .and_then(|r| crate::time::parse_rfc3339(&r.started))
            .map(|t| t + interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_25() {
        let s = crate::storage::open_url("memory://history-25", &Default::default()).unwrap();
        let key = MasterKey::from_secret([2; 32]);
        for i in 0..30 {
            History::record(
                &s,
                &key,
                RunRecord {
                    mode: if i % 2 == 0 { "full" } else { "quick" }.into(),
                    outcome: "success".into(),
                    summary: format!("run {i}"),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        let h = History::load(&s, &key).unwrap();
        assert_eq!(h.runs.len(), HISTORY_LEN);
        assert_eq!(h.runs[0].summary, "run 5");
        assert_eq!(h.last_full().unwrap().summary, "run 28");
    }
}
