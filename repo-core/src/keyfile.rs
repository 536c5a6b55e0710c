//! Key files: the master key wrapped by one password each.
//!
//! `keys/<id>` holds JSON (not sealed: a reader needs the KDF parameters before it has a key)
//! with the argon2id parameters and salt and the master secret sealed under the password-derived
//! key. The id is the BLAKE3 of the file's bytes. Adding, changing or removing a password
//! writes or deletes one key file and never touches data.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, KdfParams, KDF_MIN_SALT, SEAL_OVERHEAD};
use crate::format::{self, FORMAT_VERSION};
use crate::{Error, MasterKey, Result};

/// Associated data of the sealed master secret.
const KEY_AAD: &[u8] = b"cairn key v1";
/// The sealed 32-byte master secret: nonce, ciphertext and tag.
const SEALED_MASTER_LEN: usize = 32 + SEAL_OVERHEAD;

/// One key file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u16,
    /// RFC 3339 time the key was added.
    pub created: String,
    /// Host and user that added it, for `key list`.
    pub host: String,
    pub username: String,
    pub kdf: Kdf,
    /// Hex of the sealed unit holding the 32-byte master secret.
    pub master_key: String,
}

/// The password-to-key derivation recorded in a key file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    #[serde(flatten)]
    pub params: KdfParams,
    /// Hex of the 16-byte random salt.
    pub salt: String,
}

impl KeyFile {
    /// Wraps `master` with `password`. Parameters beyond what a reader accepts are refused.
    pub fn wrap(master: &MasterKey, password: &[u8], params: KdfParams) -> Result<Self> {
        params
            .validate_new()
            .map_err(|e| Error::invalid("argon2 parameters", e))?;
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        let kek = params
            .derive(password, &salt)
            .map_err(|e| Error::invalid("argon2 parameters", e))?;
        let sealed = crypto::seal(&kek, KEY_AAD, master.secret());
        Ok(KeyFile {
            version: FORMAT_VERSION,
            created: crate::time::now_rfc3339(),
            host: crate::time::hostname(),
            username: std::env::var("USER").unwrap_or_default(),
            kdf: Kdf {
                algorithm: "argon2id".into(),
                params,
                salt: hex::encode(salt),
            },
            master_key: hex::encode(sealed),
        })
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serializes")
    }

    /// Parses a key file; `object` names it in errors.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Self> {
        let kf: KeyFile = serde_json::from_slice(bytes).map_err(|e| Error::corrupt(object, e))?;
        format::check_version(kf.version, object, "key file")?;
        if kf.kdf.algorithm != "argon2id" {
            return Err(Error::corrupt(
                object,
                format!("unknown KDF {:?}", kf.kdf.algorithm),
            ));
        }
        kf.kdf
            .params
            .validate()
            .map_err(|e| Error::corrupt(object, e))?;
        // Everything `unwrap_key` needs is checked here, so a damaged key file is found
        // before any password is tried against it.
        match hex::decode(&kf.kdf.salt) {
            Ok(salt) if salt.len() >= KDF_MIN_SALT => {}
            Ok(salt) => {
                return Err(Error::corrupt(
                    object,
                    format!("salt of {} bytes, fewer than {KDF_MIN_SALT}", salt.len()),
                ))
            }
            Err(e) => return Err(Error::corrupt(object, format!("salt is not hex: {e}"))),
        }
        match hex::decode(&kf.master_key) {
            Ok(sealed) if sealed.len() == SEALED_MASTER_LEN => {}
            Ok(sealed) => {
                return Err(Error::corrupt(
                    object,
                    format!(
                        "sealed master key of {} bytes, expected {SEALED_MASTER_LEN}",
                        sealed.len()
                    ),
                ))
            }
            Err(e) => {
                return Err(Error::corrupt(
                    object,
                    format!("master key is not hex: {e}"),
                ))
            }
        }
        Ok(kf)
    }

    /// The master key, if `password` is the right one. `Ok(None)` means a wrong password;
    /// errors mean the key file itself is damaged.
    pub fn unwrap_key(&self, password: &[u8], object: &str) -> Result<Option<MasterKey>> {
        let salt = hex::decode(&self.kdf.salt).map_err(|e| Error::corrupt(object, e))?;
        let sealed = hex::decode(&self.master_key).map_err(|e| Error::corrupt(object, e))?;
        let kek = self
            .kdf
            .params
            .derive(password, &salt)
            .map_err(|e| Error::corrupt(object, e))?;
        // A wrong password and a flipped byte look the same to GCM: report "wrong password"
        // and let `check` verify key files by their content hash.
        Ok(crypto::open(&kek, KEY_AAD, &sealed).and_then(|secret| {
            <[u8; 32]>::try_from(secret.as_slice())
                .ok()
                .map(MasterKey::from_secret)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn wrap_unwrap() {
        let m = MasterKey::generate();
        let kf = KeyFile::wrap(&m, b"secret", fast()).unwrap();
        let bytes = kf.encode();
        let back = KeyFile::decode(&bytes, "k").unwrap();
        let got = back.unwrap_key(b"secret", "k").unwrap().unwrap();
        assert_eq!(got.secret(), m.secret());
        assert!(back.unwrap_key(b"wrong", "k").unwrap().is_none());
    }
}
