//! Blobs: the unit of dedup. A blob is stored sealed inside a pack; its plaintext is a chunk
//! of file data or a serialized tree.
//!
//! A stored blob is a sealed unit (see [`crate::crypto`]) whose associated data is
//! `"cairnB" || version (u16 LE) || kind byte || blob id`, binding the ciphertext to its id and
//! kind, and whose plaintext is `codec byte || payload` (see [`crate::format`]).

use crate::format::{self, FORMAT_VERSION};
use crate::{BlobId, Config, Error, MasterKey, Result};

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BlobKind {
    /// A chunk of file or stream content.
    Data = 0,
    /// A serialized directory tree (or other metadata).
    Tree = 1,
}

impl BlobKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

fn aad(kind: BlobKind, id: &BlobId) -> [u8; 41] {
    let mut a = [0u8; 41];
    a[..6].copy_from_slice(b"cairnB");
    a[6..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    a[8] = kind as u8;
    a[9..].copy_from_slice(&id.0);
    a
}

/// Compresses (when it helps) and seals a blob's plaintext.
pub fn seal_blob(
    key: &MasterKey,
    kind: BlobKind,
    id: &BlobId,
    plaintext: &[u8],
    level: i32,
) -> Vec<u8> {
    // One buffer: room for the salt, the payload, sealed in place, then the tag. It is sized
    // after compression, so a pack's blobs hold no unused capacity.
    let mut buf = vec![0u8; crate::crypto::SALT_LEN];
    format::encode_payload_into(level, plaintext, crate::crypto::TAG_LEN, &mut buf);
    key.seal_in_place(&aad(kind, id), &mut buf);
    buf
}

/// Opens, decompresses and verifies a stored blob. `object` is the pack it came from;
/// `config` bounds its size ([`Config::max_blob_len`]): a chunk that would decompress past
/// the repository's largest chunk is refused before any memory is taken for it.
pub fn open_blob(
    key: &MasterKey,
    config: &Config,
    kind: BlobKind,
    id: &BlobId,
    stored: &[u8],
    object: &str,
) -> Result<Vec<u8>> {
    let body = key
        .open(&aad(kind, id), stored, object)
        .map_err(|_| Error::corrupt_blob(object, *id, "blob failed authentication"))?;
    let plain = format::decode_payload(&body, config.max_blob_len(kind))
        .map_err(|e| Error::corrupt_blob(object, *id, e))?;
    if key.blob_id(&plain) != *id {
        return Err(Error::corrupt_blob(
            object,
            *id,
            "content does not match its id",
        ));
    }
    Ok(plain)
}
