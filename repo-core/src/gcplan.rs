//! GC plans: what the mark phase of maintenance condemned, as writers and the sweep read it.
//!
//! Maintenance publishes `maintenance/plans/<id>` sealed objects of kind `G`. Writers never
//! deduplicate against a condemned blob (DESIGN.md, step 2); the sweep (a later run) deletes
//! what is still condemned once every writer that could have missed the plan has ended.
//!
//! Condemned blobs are recorded by *fingerprint*: the first 8 bytes of the blob id (ids are
//! keyed hashes, so fingerprints are uniform and cannot be steered without the key). A
//! fingerprint shared by a live and a dead blob errs on the safe side everywhere: the mark
//! never condemns a fingerprint it saw reachable, and a writer that finds a fingerprint
//! condemned merely stores its blob again. Eight bytes per condemned blob keeps plans and the
//! writer's view of them small at millions of blobs.

use serde::{Deserialize, Serialize};

use crate::format::{self, Kind};
use crate::{BlobId, Error, MasterKey, ObjectId, Result};

/// Prefix under which plans are published.
pub const PLANS_PREFIX: &str = "maintenance/plans/";

/// Storage key of a plan.
pub fn plan_key(id: &ObjectId) -> String {
    format!("{PLANS_PREFIX}{id}")
}

/// The fingerprint of a blob id: its first 8 bytes, big-endian.
pub fn fingerprint(id: &BlobId) -> u64 {
    u64::from_be_bytes(id.0[..8].try_into().expect("8 bytes"))
}

/// A published GC plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcPlan {
    pub version: u16,
    /// RFC 3339 time of the mark phase, by the storage's clock.
    pub created: String,
    /// Fingerprints of the blobs no snapshot referenced at mark time, sorted.
    #[serde(with = "fingerprint_hex")]
    pub condemned: Vec<u64>,
    /// Packs holding only condemned blobs: deleted by the sweep.
    pub delete_packs: Vec<ObjectId>,
    /// Packs whose condemned share reached the repack threshold: their live blobs are
    /// copied into new packs, then they are deleted.
    pub repack_packs: Vec<ObjectId>,
    /// Packs in storage that no index file listed at mark time and older than the orphan
    /// age (left by interrupted writers): deleted if still unindexed at sweep time.
    pub orphan_packs: Vec<ObjectId>,
    /// Snapshots the mark walked; the sweep walks every other snapshot to rescue blobs.
    pub snapshots: Vec<ObjectId>,
    /// Sessions alive at mark time (for the operator; the sweep's rule is in
    /// `repo_core::maintenance`).
    pub live_sessions: Vec<String>,
    /// What the sweep is expected to free, in stored bytes (condemned blobs and orphans).
    pub garbage_bytes: u64,
    /// Number of condemned blobs (may exceed `condemned.len()` when fingerprints repeat).
    pub garbage_blobs: u64,
    /// Live bytes the sweep will copy out of `repack_packs`.
    pub repack_live_bytes: u64,
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
        if p.condemned.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::corrupt(
                object,
                "condemned fingerprints are not sorted",
            ));
        }
        Ok(p)
    }

    /// Whether the plan condemns this blob's fingerprint.
    pub fn condemns(&self, id: &BlobId) -> bool {
        self.condemned.binary_search(&fingerprint(id)).is_ok()
    }
}

/// Fingerprints as one hex string (16 characters each): a JSON array of numbers would be
/// twice the size and slow to parse at millions of entries.
mod fingerprint_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(v.len() * 8);
        for f in v {
            bytes.extend_from_slice(&f.to_be_bytes());
        }
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.len() % 16 != 0 {
            return Err(serde::de::Error::custom(
                "fingerprint list length is not a multiple of 16 hex digits",
            ));
        }
        let bytes = hex::decode(s.as_bytes()).map_err(serde::de::Error::custom)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_roundtrip_and_sorted_check() {
        let key = MasterKey::from_secret([3; 32]);
        let plan = GcPlan {
            version: 1,
            created: "2026-01-01T00:00:00Z".into(),
            condemned: vec![1, 7, u64::MAX],
            delete_packs: vec![ObjectId([1; 32])],
            ..Default::default()
        };
        let (id, bytes) = plan.seal(&key);
        assert_eq!(id, ObjectId::of(&bytes));
        assert_eq!(GcPlan::open(&key, &bytes, "p").unwrap(), plan);
        let mut json = serde_json::to_value(&plan).unwrap();
        json["condemned"] = "00000000000000070000000000000001".into();
        let e = GcPlan::from_json(json.to_string().as_bytes(), "p").unwrap_err();
        assert!(e.to_string().contains("not sorted"), "{e}");
        json["condemned"] = "123".into();
        assert!(GcPlan::from_json(json.to_string().as_bytes(), "p").is_err());
    }
}
