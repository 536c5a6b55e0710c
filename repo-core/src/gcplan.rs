//! GC plans as writers read them: which blobs maintenance has condemned.
//!
//! Maintenance (a later layer) publishes `maintenance/plans/<id>` sealed objects of kind `G`.
//! Writers never deduplicate against a condemned blob (DESIGN.md, step 2); this module only
//! reads and writes the plan format.

use serde::{Deserialize, Serialize};

use crate::format::{self, Kind};
use crate::{BlobId, Error, MasterKey, ObjectId, Result};

/// Prefix under which plans are published.
pub const PLANS_PREFIX: &str = "maintenance/plans/";

/// A published GC plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcPlan {
    pub version: u16,
    /// RFC 3339 time of the mark phase.
    pub created: String,
    /// Blobs no snapshot referenced at mark time.
    pub condemned_blobs: Vec<BlobId>,
    /// Packs that hold only condemned blobs.
    pub condemned_packs: Vec<ObjectId>,
    /// Sessions alive at mark time; the sweep waits for each to end.
    pub live_sessions: Vec<String>,
}

impl GcPlan {
    pub fn seal(&self, key: &MasterKey) -> (ObjectId, Vec<u8>) {
        let bytes = format::seal_object(
            key,
            Kind::GcPlan,
            &serde_json::to_vec(self).expect("serializes"),
        );
        (ObjectId::of(&bytes), bytes)
    }

    pub fn open(key: &MasterKey, bytes: &[u8], object: &str) -> Result<Self> {
        let json = format::open_object(key, Kind::GcPlan, bytes, object)?;
        Self::from_json(&json, object)
    }

    pub fn from_json(json: &[u8], object: &str) -> Result<Self> {
        let p: GcPlan = serde_json::from_slice(json).map_err(|e| Error::corrupt(object, e))?;
        format::check_version(p.version, object, "GC plan")?;
        Ok(p)
    }
}
