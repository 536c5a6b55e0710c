//! The envelope every sealed repository object shares, and blob payload compression.
//!
//! A sealed object is `header (8 bytes) || sealed unit`, where the header is the ASCII magic
//! `cairn`, one kind byte and the format version as u16 little-endian. The header is the
//! associated data of the seal, so an object cannot be passed off as another kind or version.
//! The sealed plaintext starts with a codec byte (0 raw, 1 zstd) followed by the payload.
//! docs/FORMAT.md is the normative description; this module must match it byte for byte.

use crate::{Error, MasterKey, Result};

/// The format version this cairn writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the object header.
pub const HEADER_LEN: usize = 8;
const MAGIC: &[u8; 5] = b"cairn";

/// Largest decompressed payload accepted from any object or blob (1 GiB): a hostile but
/// authentic object cannot make a reader allocate more.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// What a sealed object is; the byte is part of the authenticated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Config = b'C' as isize,
    Index = b'I' as isize,
    Snapshot = b'S' as isize,
    Session = b'E' as isize,
    GcPlan = b'G' as isize,
    PackHeader = b'H' as isize,
    Lease = b'L' as isize,
    History = b'R' as isize,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Index => "index file",
            Kind::Snapshot => "snapshot",
            Kind::Session => "session",
            Kind::GcPlan => "GC plan",
            Kind::PackHeader => "pack header",
            Kind::Lease => "maintenance lease",
            Kind::History => "maintenance history",
        }
    }
}

/// The 8-byte header of an object of this kind at the current version.
pub fn header(kind: Kind) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..5].copy_from_slice(MAGIC);
    h[5] = kind as u8;
    h[6..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Checks a header and returns the rest of the object.
pub fn check_header<'a>(kind: Kind, bytes: &'a [u8], object: &str) -> Result<&'a [u8]> {
    if bytes.len() < HEADER_LEN || &bytes[..5] != MAGIC {
        return Err(Error::corrupt(
            object,
            "missing the `cairn` magic; this is not a cairn object",
        ));
    }
    if bytes[5] != kind as u8 {
        return Err(Error::corrupt(
            object,
            format!(
                "expected a {}, found kind byte {:#04x}",
                kind.name(),
                bytes[5]
            ),
        ));
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            object: object.to_string(),
            what: format!("format version {version}"),
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(Error::corrupt(object, "format version 0 does not exist"));
    }
    Ok(&bytes[HEADER_LEN..])
}

/// Refuses a JSON object whose own `version` field is newer than this cairn.
pub fn check_version(version: u16, object: &str, what: &str) -> Result<()> {
    if version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            object: object.into(),
            what: format!("{what} version {version}"),
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Seals a payload as an object of `kind`, compressing it with zstd when that helps.
pub fn seal_object(key: &MasterKey, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let h = header(kind);
    let body = encode_payload(3, payload);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + crate::crypto::SEAL_OVERHEAD);
    out.extend_from_slice(&h);
    out.extend_from_slice(&key.seal(&h, &body));
    out
}

/// Opens an object of `kind` and returns its payload.
pub fn open_object(key: &MasterKey, kind: Kind, bytes: &[u8], object: &str) -> Result<Vec<u8>> {
    let sealed = check_header(kind, bytes, object)?;
    let body = key.open(&bytes[..HEADER_LEN], sealed, object)?;
    decode_payload(&body, MAX_PAYLOAD).map_err(|e| Error::corrupt(object, e))
}

/// Codec byte: stored as is.
pub const CODEC_RAW: u8 = 0;
/// Codec byte: zstd frame.
pub const CODEC_ZSTD: u8 = 1;

/// Sample size for the compressibility check.
const SAMPLE_LEN: usize = 64 * 1024;
/// Below this Shannon entropy (bits per byte) of the sample we try compression. Random and
/// already-compressed data measure 7.99+; text and binaries measure 4–6.5, so one cheap pass
/// over 64 KiB avoids spending a full zstd pass on data that cannot shrink.
const ENTROPY_LIMIT: f64 = 7.9;

/// `codec byte || payload`: zstd at `level` when the data looks compressible and the frame
/// is smaller, raw otherwise. Level 0 disables compression.
pub fn encode_payload(level: i32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_payload_into(level, data, 0, &mut out);
    out
}

/// Appends `codec byte || payload` to `out` (see [`encode_payload`]), reserving exactly that
/// plus `room` bytes (for a tag to follow). Compression goes through a per-thread scratch
/// buffer, so no large buffer is allocated per blob.
pub fn encode_payload_into(level: i32, data: &[u8], room: usize, out: &mut Vec<u8>) {
    if level != 0 && looks_compressible(data) {
        let done = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let bound = zstd::zstd_safe::compress_bound(data.len());
            if scratch.len() < bound {
                scratch.resize(bound, 0);
            }
            let n = with_compressor(level, |c| {
                c.compress_to_buffer(data, &mut scratch[..bound]).ok()
            })?;
            (n < data.len()).then(|| {
                out.reserve_exact(1 + n + room);
                out.push(CODEC_ZSTD);
                out.extend_from_slice(&scratch[..n]);
            })
        });
        if done.is_some() {
            return;
        }
    }
    out.reserve_exact(1 + data.len() + room);
    out.push(CODEC_RAW);
    out.extend_from_slice(data);
}

fn looks_compressible(data: &[u8]) -> bool {
    if data.len() < 64 {
        return false;
    }
    let sample = &data[..data.len().min(SAMPLE_LEN)];
    // Four interleaved histograms: one table stalls on every repeated byte (each increment
    // waits for the previous store), which made this check 5% of a text backup's time.
    let mut tables = [[0u32; 256]; 4];
    let mut quads = sample.chunks_exact(4);
    for q in &mut quads {
        tables[0][q[0] as usize] += 1;
        tables[1][q[1] as usize] += 1;
        tables[2][q[2] as usize] += 1;
        tables[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        tables[0][b as usize] += 1;
    }
    let mut counts = [0u32; 256];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = tables[0][i] + tables[1][i] + tables[2][i] + tables[3][i];
    }
    let n = sample.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    // A short sample cannot show full entropy; scale the limit by what it could reach.
    entropy < ENTROPY_LIMIT.min(n.log2() * 0.95)
}

thread_local! {
    /// One zstd compression context per thread, reused across blobs (a context costs
    /// allocations of several hundred KiB to create).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// Output buffer for compression, reused across blobs.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> Option<T>,
) -> Option<T> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        f(&mut slot.as_mut()?.1)
    })
}

fn with_decompressor<T>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        f(slot.as_mut().expect("set above"))
    })
}

/// Inverse of [`encode_payload`]; refuses to produce more than `limit` bytes.
pub fn decode_payload(body: &[u8], limit: usize) -> std::result::Result<Vec<u8>, String> {
    let (&codec, payload) = body.split_first().ok_or("empty payload")?;
    match codec {
        CODEC_RAW => {
            if payload.len() > limit {
                return Err(format!(
                    "payload of {} bytes exceeds {limit}",
                    payload.len()
                ));
            }
            Ok(payload.to_vec())
        }
        CODEC_ZSTD => {
            // Frames we write state their size: decompress straight into a buffer of exactly
            // that size (bounded by `limit`). Anything else takes the bounded streaming path.
            if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(payload) {
                if size > limit as u64 {
                    return Err(format!("decompresses to {size} bytes, more than {limit}"));
                }
                let mut out = Vec::with_capacity(size as usize);
                let n = with_decompressor(|d| d.decompress_to_buffer(payload, &mut out))
                    .map_err(|e| format!("zstd: {e}"))?;
                if n as u64 != size {
                    return Err(format!("zstd frame says {size} bytes but holds {n}"));
                }
                return Ok(out);
            }
            use std::io::Read;
            let dec = zstd::stream::read::Decoder::new(payload).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            dec.take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("zstd: {e}"))?;
            if out.len() > limit {
                return Err(format!("decompresses to more than {limit} bytes"));
            }
            Ok(out)
        }
        other => Err(format!("unknown codec {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_roundtrip_and_raw_fallback() {
        let text = b"the quick brown fox jumps over the lazy dog\n".repeat(2000);
        let enc = encode_payload(3, &text);
        assert_eq!(enc[0], CODEC_ZSTD);
        assert!(enc.len() < text.len() / 10);
        assert_eq!(decode_payload(&enc, MAX_PAYLOAD).unwrap(), text);

        let mut random = vec![0u8; 200_000];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut random);
        let enc = encode_payload(3, &random);
        assert_eq!(enc[0], CODEC_RAW);
        assert_eq!(decode_payload(&enc, MAX_PAYLOAD).unwrap(), random);
    }

    #[test]
    fn decode_refuses_oversized_output() {
        let zeros = vec![0u8; 1 << 20];
        let enc = encode_payload(3, &zeros);
        assert!(decode_payload(&enc, 1000).is_err());
        assert!(decode_payload(&[9, 1, 2], 10).is_err());
        assert!(decode_payload(&[], 10).is_err());
    }

    #[test]
    fn header_checks() {
        let key = MasterKey::from_secret([3; 32]);
        let obj = seal_object(&key, Kind::Snapshot, b"{}");
        assert_eq!(open_object(&key, Kind::Snapshot, &obj, "s").unwrap(), b"{}");
        assert!(open_object(&key, Kind::Index, &obj, "s").is_err());
        let mut newer = obj.clone();
        newer[6] = 9;
        assert!(matches!(
            open_object(&key, Kind::Snapshot, &newer, "s"),
            Err(Error::NewerFormat { .. })
        ));
    }
}
