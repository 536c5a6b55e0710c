//! The index: which pack holds each blob.
//!
//! On storage, `index/<id>` files are sealed objects of kind `I` whose payload is
//! `supersedes count (u32) || ids (32 each) || pack count (u32) || per pack: pack id (32) ||
//! record list` (see [`crate::pack::encode_records`]). Index files are immutable; maintenance
//! replaces them by writing a new file that lists the old ones in `supersedes`.
//!
//! In memory, [`Index`] keeps one 44-byte [`Entry`] per blob in a sorted vector (plus the
//! pack table, 32 bytes per pack), so a repository of a million 1 MiB blobs (1 TiB) costs
//! about 46 MB of RAM. Blob lengths after decompression are not kept: the trees that
//! reference data record them.

use std::collections::{HashMap, HashSet};

use crate::gcplan::fingerprint;

use crate::blob::BlobKind;
use crate::format::{self, Kind};
use crate::pack::{decode_records, encode_records, BlobRecord};
use crate::{BlobId, Error, MasterKey, ObjectId, Result};

/// One index file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files this one replaces (written by maintenance).
    pub supersedes: Vec<ObjectId>,
    /// Packs and the blobs in each.
    pub packs: Vec<(ObjectId, Vec<BlobRecord>)>,
}

/// Storage key of an index file.
pub fn index_key(id: &ObjectId) -> String {
    format!("index/{id}")
}

impl IndexFile {
    /// The unsealed payload.
    pub fn encode_payload(&self) -> Vec<u8> {
        let n: usize = self.packs.iter().map(|(_, r)| 36 + r.len() * 48).sum();
        let mut out = Vec::with_capacity(8 + self.supersedes.len() * 32 + n);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(&s.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for (pack, records) in &self.packs {
            out.extend_from_slice(&pack.0);
            encode_records(records, &mut out);
        }
        out
    }

    /// Decodes a payload; every count is checked against the bytes left before allocating.
    pub fn decode_payload(b: &[u8], object: &str) -> Result<Self> {
        let bad = |e: String| Error::corrupt(object, e);
        let read_u32 = |b: &[u8]| -> Result<u32> {
            b.get(..4)
                .map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes")))
                .ok_or_else(|| Error::corrupt(object, "index file truncated"))
        };
        let n_sup = read_u32(b)? as usize;
        let mut rest = &b[4..];
        if n_sup.saturating_mul(32) > rest.len() {
            return Err(bad(format!("{n_sup} superseded ids do not fit")));
        }
        let supersedes = rest[..n_sup * 32]
            .chunks_exact(32)
            .map(|c| ObjectId::from_slice(c).expect("32 bytes"))
            .collect();
        rest = &rest[n_sup * 32..];
        let n_packs = read_u32(rest)? as usize;
        rest = &rest[4..];
        if n_packs.saturating_mul(36) > rest.len() {
            return Err(bad(format!("{n_packs} packs do not fit")));
        }
        let mut packs = Vec::with_capacity(n_packs);
        for _ in 0..n_packs {
            let pack = ObjectId::from_slice(
                rest.get(..32)
                    .ok_or_else(|| bad("truncated pack id".into()))?,
            )
            .expect("32 bytes");
            let (records, r) = decode_records(&rest[32..]).map_err(bad)?;
            packs.push((pack, records));
            rest = r;
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the last pack".into()));
        }
        Ok(IndexFile { supersedes, packs })
    }

    /// The sealed object and its id.
    pub fn seal(&self, key: &MasterKey) -> (ObjectId, Vec<u8>) {
        let bytes = format::seal_object(key, Kind::Index, &self.encode_payload());
        (ObjectId::of(&bytes), bytes)
    }

    /// Opens a sealed index file.
    pub fn open(key: &MasterKey, bytes: &[u8], object: &str) -> Result<Self> {
        let payload = format::open_object(key, Kind::Index, bytes, object)?;
        Self::decode_payload(&payload, object)
    }

    /// Opens the stored bytes of `index/<id>`, checking first that they hash to `id`.
    pub fn open_stored(key: &MasterKey, id: &ObjectId, bytes: &[u8]) -> Result<Self> {
        let object = index_key(id);
        if ObjectId::of(bytes) != *id {
            return Err(Error::corrupt(&object, "content does not match its name"));
        }
        Self::open(key, bytes, &object)
    }
}

/// Where a blob is, as the in-memory index keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: ObjectId,
    pub kind: BlobKind,
    pub offset: u32,
    pub stored_len: u32,
}

/// One in-memory entry: 44 bytes.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Entry {
    id: [u8; 32],
    pack: u32,
    offset: u32,
    /// Stored length in the low 31 bits, blob kind in the top bit.
    len_kind: u32,
}

const KIND_BIT: u32 = 1 << 31;

impl Entry {
    fn new(r: &BlobRecord, pack: u32) -> Self {
        let kind_bit = if r.kind == BlobKind::Tree {
            KIND_BIT
        } else {
            0
        };
        Entry {
            id: r.id.0,
            pack,
            offset: r.offset,
            len_kind: (r.stored_len & !KIND_BIT) | kind_bit,
        }
    }
}

/// Id order (the order of the bytes), 8 bytes at a time: ids are random, so the first word
/// nearly always decides. The 32-byte `memcmp` call of `[u8; 32]`'s order was 3% of a restore.
#[inline]
fn cmp_id(a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
    for i in (0..32).step_by(8) {
        let x = u64::from_be_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

/// Above this many unsorted additions the index merges them into the sorted table, so the
/// hash map of recent additions never dominates memory.
const MERGE_MIN: usize = 64 * 1024;

/// The in-memory index.
#[derive(Default)]
pub struct Index {
    /// Pack table. A pack listed twice (by two index files) gets two numbers; that costs 32
    /// bytes and saves a pack-to-number map that would cost more than the table.
    packs: Vec<ObjectId>,
    /// Sorted by id, no duplicates.
    sorted: Vec<Entry>,
    /// Bulk-loaded entries not yet sorted in (see [`Index::stage`]).
    staged: Vec<Entry>,
    /// Added since the last merge.
    recent: HashMap<[u8; 32], Entry>,
    /// Fingerprints of blobs condemned by a published GC plan: readable, but never
    /// deduplicated against (see [`crate::gcplan`]).
    condemned: HashSet<u64>,
    /// Packs that hold only trees, with the end of their last blob: a reader on object
    /// storage fetches such a pack whole and keeps it (see `treepacks.rs`).
    tree_packs: HashMap<ObjectId, u32>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    fn pack_number(&mut self, pack: ObjectId, records: &[BlobRecord]) -> u32 {
        if !records.is_empty() && records.iter().all(|r| r.kind == BlobKind::Tree) {
            let end = records.iter().map(|r| r.end()).max().unwrap_or(0);
            self.tree_packs
                .insert(pack, end.min(u32::MAX as u64) as u32);
        }
        self.packs.push(pack);
        (self.packs.len() - 1) as u32
    }

    /// Stages a pack's entries for [`Index::commit_staged`] (bulk loading of index files):
    /// entries go straight into one vector that is sorted once, so loading needs no hash map
    /// and little memory beyond the 44-byte entries. Staged entries are not visible to
    /// lookups until committed.
    pub fn stage(&mut self, pack: ObjectId, records: &[BlobRecord]) {
        let n = self.pack_number(pack, records);
        self.staged.extend(records.iter().map(|r| Entry::new(r, n)));
    }

    /// Reserves room for `n` more staged entries, so bulk loading allocates once instead of
    /// growing by doubling (which leaves freed buffers behind in the allocator).
    pub fn reserve_staged(&mut self, n: usize) {
        self.staged.reserve_exact(n);
    }

    /// Makes staged entries visible. A blob already indexed keeps its location.
    pub fn commit_staged(&mut self) {
        let mut add = std::mem::take(&mut self.staged);
        // In place: no scratch buffer. Which location of a duplicated blob survives does not
        // matter (any copy is valid), but one already in the table wins in the merge.
        add.sort_unstable_by_key(|e| e.id);
        add.dedup_by_key(|e| e.id);
        if !self.recent.is_empty() {
            add.retain(|e| !self.recent.contains_key(&e.id));
        }
        self.merge_sorted(add);
    }

    /// Adds the blobs of one pack a writer just indexed; they are visible at once. A blob
    /// already indexed keeps its first location, unless it was condemned: then this fresh
    /// copy replaces it (the old one may be swept) and may be deduplicated against.
    pub fn add_pack(&mut self, pack: ObjectId, records: &[BlobRecord]) {
        let n = self.pack_number(pack, records);
        for r in records {
            let fresh_copy = self.condemned.remove(&fingerprint(&r.id));
            if fresh_copy || self.find(&r.id).is_none() {
                self.recent.insert(r.id.0, Entry::new(r, n));
            }
        }
        if self.recent.len() >= MERGE_MIN.max(self.sorted.len() / 8) {
            self.merge();
        }
    }

    /// Moves recent additions into the sorted table.
    pub fn merge(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        let mut add: Vec<Entry> = self.recent.drain().map(|(_, e)| e).collect();
        add.sort_unstable_by_key(|e| e.id);
        // Recent entries for ids already in the table are fresh copies of condemned blobs:
        // they replace the old location.
        add.retain(
            |e| match self.sorted.binary_search_by(|o| cmp_id(&o.id, &e.id)) {
                Ok(i) => {
                    self.sorted[i] = *e;
                    false
                }
                Err(_) => true,
            },
        );
        self.merge_sorted(add);
    }

    /// Merges a sorted, duplicate-free vector into the sorted table; existing entries win.
    /// The merge runs backwards inside the grown table, so it never holds a second copy of
    /// the index (a large `Vec` grows by `mremap`, without copying).
    fn merge_sorted(&mut self, mut add: Vec<Entry>) {
        if self.sorted.is_empty() {
            self.sorted = add;
            return;
        }
        add.retain(|e| {
            self.sorted
                .binary_search_by(|o| cmp_id(&o.id, &e.id))
                .is_err()
        });
        let Some(&filler) = add.first() else { return };
        let old_len = self.sorted.len();
        self.sorted.reserve_exact(add.len());
        self.sorted.resize(old_len + add.len(), filler);
        let (mut i, mut j, mut k) = (old_len, add.len(), old_len + add.len());
        while j > 0 {
            k -= 1;
            if i > 0 && self.sorted[i - 1].id > add[j - 1].id {
                self.sorted[k] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k] = add[j - 1];
                j -= 1;
            }
        }
    }

    fn find(&self, id: &BlobId) -> Option<&Entry> {
        if let Some(e) = self.recent.get(&id.0) {
            return Some(e);
        }
        self.sorted
            .binary_search_by(|e| cmp_id(&e.id, &id.0))
            .ok()
            .map(|i| &self.sorted[i])
    }

    /// Where a blob is stored, condemned or not (readers may still read condemned blobs
    /// until maintenance sweeps them).
    pub fn lookup(&self, id: &BlobId) -> Option<Location> {
        self.find(id).map(|e| Location {
            pack: self.packs[e.pack as usize],
            kind: if e.len_kind & KIND_BIT != 0 {
                BlobKind::Tree
            } else {
                BlobKind::Data
            },
            offset: e.offset,
            stored_len: e.len_kind & !KIND_BIT,
        })
    }

    /// For a pack holding only trees, the length of its blobs (the pack less its header).
    pub fn tree_pack_len(&self, pack: &ObjectId) -> Option<u64> {
        self.tree_packs.get(pack).map(|&n| n as u64)
    }

    /// Every pack that holds only trees.
    pub fn tree_packs(&self) -> HashSet<ObjectId> {
        self.tree_packs.keys().copied().collect()
    }

    /// Whether a writer may deduplicate against this blob: indexed and not condemned.
    pub fn has_for_dedup(&self, id: &BlobId) -> bool {
        self.find(id).is_some() && !self.condemned.contains(&fingerprint(id))
    }

    /// Whether a published plan condemns this blob's fingerprint.
    pub fn is_condemned(&self, id: &BlobId) -> bool {
        self.condemned.contains(&fingerprint(id))
    }

    /// Replaces the set of condemned fingerprints.
    pub fn set_condemned(&mut self, condemned: HashSet<u64>) {
        self.condemned = condemned;
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All indexed packs.
    pub fn packs(&self) -> &[ObjectId] {
        &self.packs
    }

    /// Every blob with its location, in id order of the sorted part then the rest.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, Location)> + '_ {
        self.sorted
            .iter()
            .chain(self.recent.values())
            .map(move |e| {
                let id = BlobId(e.id);
                (id, self.lookup(&id).expect("entry is indexed"))
            })
    }

    /// Bytes of heap this index holds per blob (entries plus pack table), for the
    /// memory figures in the README.
    pub fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * std::mem::size_of::<Entry>()
            + self.recent.capacity() * (std::mem::size_of::<Entry>() + 32 + 8)
            + self.packs.capacity() * 32
    }

    /// Size of one entry (44 bytes).
    pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

    /// Frees spare capacity after loading.
    pub fn shrink(&mut self) {
        self.commit_staged();
        self.merge();
        self.sorted.shrink_to_fit();
        self.recent.shrink_to_fit();
        self.packs.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32, kind: BlobKind) -> BlobRecord {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        id[31] = 0xaa;
        BlobRecord {
            id: BlobId(id),
            kind,
            offset: i * 10,
            stored_len: 10 + i,
            raw_len: 5,
        }
    }

    #[test]
    fn entry_is_44_bytes() {
        assert_eq!(Index::ENTRY_BYTES, 44);
    }

    #[test]
    fn lookup_across_merges() {
        let mut idx = Index::new();
        let pack_a = ObjectId([1; 32]);
        let pack_b = ObjectId([2; 32]);
        let a: Vec<_> = (0..100_000).map(|i| rec(i, BlobKind::Data)).collect();
        idx.add_pack(pack_a, &a);
        let b: Vec<_> = (50_000..150_000).map(|i| rec(i, BlobKind::Tree)).collect();
        idx.add_pack(pack_b, &b);
        idx.shrink();
        assert_eq!(idx.len(), 150_000);
        let l = idx.lookup(&rec(60_000, BlobKind::Data).id).unwrap();
        assert_eq!(l.pack, pack_a, "first location wins");
        assert_eq!(l.kind, BlobKind::Data);
        let l = idx.lookup(&rec(149_999, BlobKind::Tree).id).unwrap();
        assert_eq!(
            (l.pack, l.kind, l.offset, l.stored_len),
            (pack_b, BlobKind::Tree, 1_499_990, 150_009)
        );
        assert!(idx.lookup(&BlobId([9; 32])).is_none());
        // A third pack interleaving with both merges in place; every id stays findable.
        let c: Vec<_> = (0..300_000)
            .step_by(3)
            .map(|i| rec(i, BlobKind::Data))
            .collect();
        idx.add_pack(ObjectId([3; 32]), &c);
        idx.shrink();
        assert_eq!(idx.len(), 200_000);
        for i in 0..300_000u32 {
            let found = idx.lookup(&rec(i, BlobKind::Data).id).is_some();
            assert_eq!(found, i < 150_000 || i % 3 == 0, "blob {i}");
        }
        let per_blob = idx.heap_bytes() as f64 / idx.len() as f64;
        assert!(per_blob <= 48.0, "{per_blob} bytes per blob");
    }

    #[test]
    fn condemned_blobs_are_not_deduplicated() {
        let mut idx = Index::new();
        let r = rec(1, BlobKind::Data);
        idx.add_pack(ObjectId([1; 32]), &[r]);
        assert!(idx.has_for_dedup(&r.id));
        idx.set_condemned([fingerprint(&r.id)].into_iter().collect());
        assert!(!idx.has_for_dedup(&r.id));
        assert!(idx.lookup(&r.id).is_some());
        // A fresh copy (a writer stored it again) replaces the condemned one, also after a
        // merge into the sorted table.
        let mut fresh = r;
        fresh.offset = 999;
        idx.add_pack(ObjectId([2; 32]), &[fresh]);
        assert!(idx.has_for_dedup(&r.id));
        idx.merge();
        assert_eq!(idx.lookup(&r.id).unwrap().pack, ObjectId([2; 32]));
    }

    #[test]
    fn index_file_roundtrip_and_truncation() {
        let key = MasterKey::from_secret([4; 32]);
        let f = IndexFile {
            supersedes: vec![ObjectId([7; 32])],
            packs: vec![(
                ObjectId([1; 32]),
                vec![rec(1, BlobKind::Data), rec(2, BlobKind::Tree)],
            )],
        };
        let (id, bytes) = f.seal(&key);
        assert_eq!(id, ObjectId::of(&bytes));
        assert_eq!(IndexFile::open(&key, &bytes, "i").unwrap(), f);
        let p = f.encode_payload();
        for n in 0..p.len() {
            assert!(
                IndexFile::decode_payload(&p[..n], "i").is_err(),
                "truncated at {n}"
            );
        }
    }
}
