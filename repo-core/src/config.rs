//! The repository config: format version, required features, chunker and compression.
//!
//! Written once at `init` as the sealed object `config`. A reader refuses a config whose
//! version is newer than [`FORMAT_VERSION`] or that requires a feature it does not know,
//! rather than misreading the repository.

use serde::{Deserialize, Serialize};

use crate::format::{self, Kind, FORMAT_VERSION};
use crate::{Error, MasterKey, Result};

/// Features this cairn understands. A repository listing any other in
/// `required_features` is refused.
pub const KNOWN_FEATURES: &[&str] = &[];

/// Storage key of the config object.
pub const CONFIG_KEY: &str = "config";

/// Content-defined chunking parameters (FastCDC v2020, normalization level 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// avg 1 MiB, min 256 KiB, max 4 MiB: few enough blobs that the index stays small
    /// (about 48 bytes of RAM per MiB stored), small enough that a local edit re-uploads
    /// about a megabyte.
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checks the sizes are ones FastCDC v2020 supports.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "chunker sizes",
                format!(
                    "min {min}, avg {avg}, max {max}: need even sizes with min in {}..={}, avg in {}..={}, max in {}..={} and min <= avg <= max",
                    f::MINIMUM_MIN, f::MINIMUM_MAX, f::AVERAGE_MIN, f::AVERAGE_MAX, f::MAXIMUM_MIN, f::MAXIMUM_MAX
                ),
            ))
        }
    }
}

/// The repository config as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version the repository was created with.
    pub version: u16,
    /// Random repository id (hex), for caches and messages.
    pub id: String,
    /// Features a reader must understand.
    #[serde(default)]
    pub required_features: Vec<String>,
    /// Chunker algorithm name; always `fastcdc-v2020`.
    pub chunker_algorithm: String,
    pub chunker: ChunkerParams,
    /// zstd level for blobs; 0 stores everything raw.
    pub compression_level: i32,
    /// Target size of pack files in bytes.
    pub pack_target_size: u32,
}

impl Config {
    /// The largest plaintext a blob of `kind` may have: a data chunk never exceeds the
    /// chunker's maximum; trees (and content lists) are bounded by the payload limit.
    pub fn max_blob_len(&self, kind: crate::blob::BlobKind) -> usize {
        match kind {
            crate::blob::BlobKind::Data => self.chunker.max_size as usize,
            crate::blob::BlobKind::Tree => crate::format::MAX_PAYLOAD,
        }
    }
}

/// Default zstd level. Level 1 keeps the write path at a few hundred MB/s per core on text
/// (level 3 halves that for a few percent of size); docs/FORMAT.md has the measurement.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 1;
/// Default pack size: 16 MiB, in the range object stores handle well, and small enough that
/// a writer holding a few packs in flight stays far under its memory budget.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

impl Config {
    /// A new config with a random id.
    pub fn new(
        chunker: ChunkerParams,
        compression_level: i32,
        pack_target_size: u32,
    ) -> Result<Self> {
        chunker.validate()?;
        if !(0..=22).contains(&compression_level) {
            return Err(Error::invalid(
                "compression level",
                format!("{compression_level} (zstd takes 0 to 22)"),
            ));
        }
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&pack_target_size) {
            return Err(Error::invalid(
                "pack size",
                format!("{pack_target_size} bytes (1 MiB to 1 GiB)"),
            ));
        }
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Ok(Config {
            version: FORMAT_VERSION,
            id: hex::encode(id),
            required_features: Vec::new(),
            chunker_algorithm: "fastcdc-v2020".into(),
            chunker,
            compression_level,
            pack_target_size,
        })
    }

    /// The sealed bytes of this config.
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("config serializes");
        format::seal_object(key, Kind::Config, &json)
    }

    /// Opens and validates a stored config.
    pub fn decode(key: &MasterKey, bytes: &[u8]) -> Result<Self> {
        let json = format::open_object(key, Kind::Config, bytes, CONFIG_KEY)?;
        Self::from_json(&json)
    }

    /// Parses the config payload, refusing versions and features this cairn does not know.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| Error::corrupt(CONFIG_KEY, e))?;
        if let Some(v) = value.get("version").and_then(|v| v.as_u64()) {
            if v > FORMAT_VERSION as u64 {
                return Err(Error::NewerFormat {
                    object: CONFIG_KEY.into(),
                    what: format!("format version {v}"),
                    supported: FORMAT_VERSION,
                });
            }
        }
        if let Some(features) = value.get("required_features").and_then(|v| v.as_array()) {
            let unknown: Vec<String> = features
                .iter()
                .map(|f| f.as_str().unwrap_or("?").to_string())
                .filter(|f| !KNOWN_FEATURES.contains(&f.as_str()))
                .collect();
            if !unknown.is_empty() {
                return Err(Error::NewerFormat {
                    object: CONFIG_KEY.into(),
                    what: format!("the feature(s) {}", unknown.join(", ")),
                    supported: FORMAT_VERSION,
                });
            }
        }
        let config: Config =
            serde_json::from_value(value).map_err(|e| Error::corrupt(CONFIG_KEY, e))?;
        if config.chunker_algorithm != "fastcdc-v2020" {
            return Err(Error::NewerFormat {
                object: CONFIG_KEY.into(),
                what: format!("chunker {:?}", config.chunker_algorithm),
                supported: FORMAT_VERSION,
            });
        }
        config
            .chunker
            .validate()
            .map_err(|e| Error::corrupt(CONFIG_KEY, e))?;
        // The same ranges `new` enforces: a pack past 1 GiB would overflow the 32-bit
        // offsets of pack headers and index entries.
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&config.pack_target_size)
            || !(0..=22).contains(&config.compression_level)
        {
            return Err(Error::corrupt(
                CONFIG_KEY,
                "pack size or compression level out of range",
            ));
        }
        // The id names the local cache directory: only what `new` writes (hex) is taken.
        if config.id.is_empty()
            || config.id.len() > 64
            || !config.id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(Error::corrupt(
                CONFIG_KEY,
                format!("repository id {:?} is not hex", config.id),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_hex_and_oversized_packs_are_refused() {
        let c = Config::new(ChunkerParams::default(), 1, DEFAULT_PACK_SIZE).unwrap();
        for (field, value) in [
            ("id", serde_json::json!("../../etc")),
            ("id", serde_json::json!("")),
            ("pack_target_size", serde_json::json!(4u64 << 30 >> 1)),
        ] {
            let mut v = serde_json::to_value(&c).unwrap();
            v[field] = value;
            let err = Config::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(err.is_corrupt(), "{field}: {err}");
        }
    }

    #[test]
    fn newer_version_and_unknown_features_are_refused() {
        let c = Config::new(ChunkerParams::default(), 1, DEFAULT_PACK_SIZE).unwrap();
        let mut v = serde_json::to_value(&c).unwrap();
        v["required_features"] = serde_json::json!(["time-travel"]);
        let err = Config::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("time-travel"), "{err}");
        v["required_features"] = serde_json::json!([]);
        v["version"] = serde_json::json!(2);
        assert!(matches!(
            Config::from_json(&serde_json::to_vec(&v).unwrap()),
            Err(Error::NewerFormat { .. })
        ));
    }

    #[test]
    fn chunker_validation() {
        assert!(ChunkerParams {
            min_size: 1,
            avg_size: 2,
            max_size: 3
        }
        .validate()
        .is_err());
        assert!(ChunkerParams::default().validate().is_ok());
    }
}
