//! Pack files: many sealed blobs in one object, followed by an encrypted header listing them.
//!
//! Layout: `blob_0 || … || blob_n-1 || header object || header length (u32 LE) || "CAIRNPAK"`.
//! The header object is a sealed object of kind `H` whose payload is
//! `count (u32 LE) || count × BlobRecord (48 bytes)`. The pack's id (its storage name under
//! `data/`) is the BLAKE3 of all its bytes. Because every pack carries its own header, the
//! index can be rebuilt from packs alone.

use bytes::Bytes;

use crate::blob::BlobKind;
use crate::format::{self, Kind};
use crate::{BlobId, Error, MasterKey, ObjectId, Result};

/// Magic at the very end of a pack.
pub const PACK_MAGIC: &[u8; 8] = b"CAIRNPAK";
/// Length of the trailer: header length + magic.
pub const TRAILER_LEN: usize = 12;
/// Size of one encoded [`BlobRecord`].
pub const RECORD_LEN: usize = 48;

/// Where one blob sits in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    pub id: BlobId,
    pub kind: BlobKind,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub stored_len: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

impl BlobRecord {
    /// `kind (u8) || 3 zero bytes || offset || stored_len || raw_len (u32 LE each) || id (32)`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.id.0);
    }

    /// Decodes one 48-byte record.
    pub fn decode(b: &[u8]) -> std::result::Result<Self, String> {
        if b.len() != RECORD_LEN {
            return Err(format!(
                "record of {} bytes, expected {RECORD_LEN}",
                b.len()
            ));
        }
        let kind =
            BlobKind::from_byte(b[0]).ok_or_else(|| format!("unknown blob kind {}", b[0]))?;
        if b[1..4] != [0, 0, 0] {
            return Err("reserved record bytes are not zero".into());
        }
        let u = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Ok(BlobRecord {
            kind,
            offset: u(4),
            stored_len: u(8),
            raw_len: u(12),
            id: BlobId::from_slice(&b[16..48]).expect("32 bytes"),
        })
    }

    /// End offset of the sealed blob.
    pub fn end(&self) -> u64 {
        self.offset as u64 + self.stored_len as u64
    }
}

/// Encodes `count || records`.
pub fn encode_records(records: &[BlobRecord], out: &mut Vec<u8>) {
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        r.encode(out);
    }
}

/// Decodes `count || records` from the front of `b`; returns the records and the rest.
pub fn decode_records(b: &[u8]) -> std::result::Result<(Vec<BlobRecord>, &[u8]), String> {
    if b.len() < 4 {
        return Err("record list shorter than its count".into());
    }
    let count = u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as usize;
    let rest = &b[4..];
    let need = count
        .checked_mul(RECORD_LEN)
        .filter(|&n| n <= rest.len())
        .ok_or_else(|| format!("{count} records do not fit in {} bytes", rest.len()))?;
    let records = rest[..need]
        .chunks_exact(RECORD_LEN)
        .map(BlobRecord::decode)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((records, &rest[need..]))
}

/// Builds one pack in memory, as the list of its sealed blobs (no concatenation: storage
/// writes the segments in order).
pub struct PackWriter {
    segments: Vec<Bytes>,
    /// Small sealed blobs, copied together so a pack of tiny files is a few large buffers,
    /// not one allocation per blob.
    tail: Vec<u8>,
    len: usize,
    records: Vec<BlobRecord>,
}

/// Sealed blobs smaller than this are copied into a shared buffer instead of kept as their
/// own segment.
const SMALL_BLOB: usize = 16 * 1024;
/// Size of each shared buffer of small blobs.
const TAIL_BUFFER: usize = 256 * 1024;

/// A finished pack ready to upload.
pub struct FinishedPack {
    pub id: ObjectId,
    /// The pack's bytes, in segments.
    pub payload: crate::storage::Payload,
    pub records: Vec<BlobRecord>,
}

impl FinishedPack {
    /// The storage key of the pack: `data/<first 2 hex>/<id>`.
    pub fn key(&self) -> String {
        pack_key(&self.id)
    }
}

/// Storage key of a pack.
pub fn pack_key(id: &ObjectId) -> String {
    let h = id.to_hex();
    format!("data/{}/{}", &h[..2], h)
}

/// The pack a `data/…` key names, if it names one.
pub fn pack_id_from_key(key: &str) -> Option<ObjectId> {
    key.rsplit('/').next()?.parse().ok()
}

impl PackWriter {
    pub fn new() -> Self {
        PackWriter {
            segments: Vec::new(),
            tail: Vec::new(),
            len: 0,
            records: Vec::new(),
        }
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Blobs so far.
    pub fn blob_count(&self) -> usize {
        self.records.len()
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, id: BlobId, kind: BlobKind, sealed: Bytes, raw_len: u32) {
        self.records.push(BlobRecord {
            id,
            kind,
            offset: self.len as u32,
            stored_len: sealed.len() as u32,
            raw_len,
        });
        self.len += sealed.len();
        if sealed.len() < SMALL_BLOB {
            if self.tail.capacity() - self.tail.len() < sealed.len() {
                self.flush_tail();
                self.tail.reserve_exact(TAIL_BUFFER);
            }
            self.tail.extend_from_slice(&sealed);
        } else {
            self.flush_tail();
            self.segments.push(sealed);
        }
    }

    fn flush_tail(&mut self) {
        let mut tail = std::mem::take(&mut self.tail);
        if tail.is_empty() {
            return;
        }
        // A large blob ends the shared buffer early; without shrinking, each such buffer
        // would pin its whole reservation for a few small blobs.
        if tail.capacity() > 2 * tail.len() {
            tail.shrink_to_fit();
        }
        self.segments.push(Bytes::from(tail));
    }

    /// Appends the header and trailer and names the pack.
    pub fn finish(mut self, key: &MasterKey) -> FinishedPack {
        self.flush_tail();
        let mut payload = Vec::with_capacity(4 + self.records.len() * RECORD_LEN);
        encode_records(&self.records, &mut payload);
        let mut tail = format::seal_object(key, Kind::PackHeader, &payload);
        let header_len = tail.len() as u32;
        tail.extend_from_slice(&header_len.to_le_bytes());
        tail.extend_from_slice(PACK_MAGIC);
        self.segments.push(Bytes::from(tail));
        let mut hasher = blake3::Hasher::new();
        for s in &self.segments {
            hasher.update(s);
        }
        FinishedPack {
            id: ObjectId(*hasher.finalize().as_bytes()),
            payload: self.segments.into(),
            records: self.records,
        }
    }
}

impl Default for PackWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads the header length from a pack's trailer (the last [`TRAILER_LEN`] bytes).
pub fn header_len_from_trailer(trailer: &[u8], pack_size: u64, object: &str) -> Result<u64> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != PACK_MAGIC {
        return Err(Error::corrupt(
            object,
            "pack trailer missing (truncated or not a pack)",
        ));
    }
    let len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as u64;
    if len + TRAILER_LEN as u64 > pack_size {
        return Err(Error::corrupt(
            object,
            format!("pack header length {len} exceeds the pack size {pack_size}"),
        ));
    }
    Ok(len)
}

/// Decodes a pack's header object and checks every record lies before the header.
pub fn decode_header(
    key: &MasterKey,
    header: &[u8],
    header_start: u64,
    object: &str,
) -> Result<Vec<BlobRecord>> {
    let payload = format::open_object(key, Kind::PackHeader, header, object)?;
    let (records, rest) = decode_records(&payload).map_err(|e| Error::corrupt(object, e))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(
            object,
            "trailing bytes after pack header records",
        ));
    }
    for r in &records {
        if r.end() > header_start {
            return Err(Error::corrupt_blob(
                object,
                r.id,
                "pack header points past the blobs",
            ));
        }
    }
    Ok(records)
}

/// Decodes the header of a whole pack held in memory.
pub fn decode_pack(key: &MasterKey, pack: &[u8], object: &str) -> Result<Vec<BlobRecord>> {
    if pack.len() < TRAILER_LEN {
        return Err(Error::corrupt(object, "pack shorter than its trailer"));
    }
    let size = pack.len() as u64;
    let hlen = header_len_from_trailer(&pack[pack.len() - TRAILER_LEN..], size, object)?;
    let start = size - TRAILER_LEN as u64 - hlen;
    decode_header(
        key,
        &pack[start as usize..pack.len() - TRAILER_LEN],
        start,
        object,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip() {
        let key = MasterKey::from_secret([5; 32]);
        let mut w = PackWriter::new();
        let mut ids = Vec::new();
        for i in 0..10u8 {
            let plain = vec![i; 1000 + i as usize];
            let id = key.blob_id(&plain);
            let sealed = crate::blob::seal_blob(&key, BlobKind::Data, &id, &plain, 1);
            w.add(id, BlobKind::Data, Bytes::from(sealed), plain.len() as u32);
            ids.push((id, plain));
        }
        let p = w.finish(&key);
        let bytes = p.payload.to_bytes();
        assert_eq!(ObjectId::of(&bytes), p.id);
        let records = decode_pack(&key, &bytes, "pack").unwrap();
        assert_eq!(records, p.records);
        for (r, (id, plain)) in records.iter().zip(&ids) {
            let stored = &bytes[r.offset as usize..r.end() as usize];
            let config = crate::Config::new(Default::default(), 1, 1 << 20).unwrap();
            let got = crate::blob::open_blob(&key, &config, r.kind, id, stored, "pack").unwrap();
            assert_eq!(&got, plain);
        }
        // Truncation anywhere is detected.
        for cut in [1, 5, 12, 100, bytes.len() - 1] {
            assert!(decode_pack(&key, &bytes[..bytes.len() - cut], "pack").is_err());
        }
    }
}
