//! Snapshot manifests: what was backed up, when, from where.
//!
//! `snapshots/<id>` is a sealed object of kind `S` holding JSON; the id is the BLAKE3 of the
//! stored bytes. A snapshot is the commit point of a backup: it is written only after every
//! blob it references is in a durable pack listed by a durable index file.

use serde::{Deserialize, Serialize};

use crate::format::{self, Kind, FORMAT_VERSION};
use crate::{BlobId, Error, MasterKey, ObjectId, Result};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Counts recorded at the end of a backup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Files (or streams) in the snapshot.
    pub files: u64,
    /// Bytes of content in the snapshot.
    pub bytes: u64,
    /// Blobs this backup added to the repository.
    pub new_blobs: u64,
    /// Plaintext bytes of those new blobs (Velero's incremental size).
    pub new_bytes: u64,
    /// Bytes this backup added to storage (packs and index files).
    pub stored_bytes: u64,
    /// Directories in the snapshot (file-tree backups).
    #[serde(default)]
    pub dirs: u64,
    /// Entries of every kind in the snapshot's trees (files, directories, symlinks,
    /// devices, …); 0 in snapshots made before it was recorded. Readers bound their walks by
    /// it ([`crate::walk::WalkBudget`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub entries: u64,
    /// Files read because they are new, changed, or (unchanged) reused from the parent.
    #[serde(default)]
    pub files_new: u64,
    #[serde(default)]
    pub files_changed: u64,
    #[serde(default)]
    pub files_unchanged: u64,
    /// Wall time of the backup in seconds.
    pub duration_secs: f64,
    /// Warnings recorded while backing up (files that could not be read, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A snapshot manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u16,
    /// RFC 3339 time the backup started.
    pub time: String,
    pub host: String,
    /// What was backed up: a path, a stream name, a volume.
    pub source: String,
    /// `key=value` tags, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The snapshot this one was made incrementally from.
    #[serde(default)]
    pub parent: Option<ObjectId>,
    /// Root tree blob.
    pub root: BlobId,
    pub summary: Summary,
    /// The writer session that committed it (maintenance uses it to rescue blobs).
    #[serde(default)]
    pub session: String,
    /// RFC 3339 time after which `forget` removes the snapshot (a backup's TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// Storage key of a snapshot.
pub fn snapshot_key(id: &ObjectId) -> String {
    format!("snapshots/{id}")
}

/// Checks a tag is `key=value` with a non-empty key of letters, digits and `._-/`.
pub fn validate_tag(tag: &str) -> Result<()> {
    // `key=value`, or a plain tag (`weekly`): a key alone.
    let k = tag.split_once('=').map_or(tag, |(k, _)| k);
    if k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        return Err(Error::invalid(
            "tag",
            format!("{tag:?}: give `key=value` or a plain tag; a key is letters, digits and ._-/"),
        ));
    }
    Ok(())
}

impl Snapshot {
    /// A new manifest stamped now, with tags validated and sorted.
    pub fn new(source: &str, host: &str, mut tags: Vec<String>, root: BlobId) -> Result<Self> {
        for t in &tags {
            validate_tag(t)?;
        }
        tags.sort();
        tags.dedup();
        Ok(Snapshot {
            version: FORMAT_VERSION,
            time: crate::time::now_rfc3339(),
            host: host.into(),
            source: source.into(),
            tags,
            parent: None,
            root,
            summary: Summary::default(),
            session: String::new(),
            expires: None,
        })
    }

    pub fn seal(&self, key: &MasterKey) -> (ObjectId, Vec<u8>) {
        let json = serde_json::to_vec(self).expect("snapshot serializes");
        let bytes = format::seal_object(key, Kind::Snapshot, &json);
        (ObjectId::of(&bytes), bytes)
    }

    pub fn open(key: &MasterKey, bytes: &[u8], object: &str) -> Result<Self> {
        let json = format::open_object(key, Kind::Snapshot, bytes, object)?;
        Self::from_json(&json, object)
    }

    pub fn from_json(json: &[u8], object: &str) -> Result<Self> {
        let s: Snapshot = serde_json::from_slice(json).map_err(|e| Error::corrupt(object, e))?;
        format::check_version(s.version, object, "snapshot")?;
        Ok(s)
    }

    /// Value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .filter_map(|t| t.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Which snapshots a listing keeps.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    pub source: Option<String>,
    pub host: Option<String>,
    /// Every one of these `key=value` tags must be present.
    pub tags: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.source.as_ref().is_none_or(|x| *x == s.source)
            && self.host.as_ref().is_none_or(|x| *x == s.host)
            && self.tags.iter().all(|t| s.tags.contains(t))
    }
}
