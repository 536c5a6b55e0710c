//! Keys and authenticated encryption.
//!
//! Every stored secret is a *sealed unit*: `salt (24 random bytes) || ciphertext || tag (16)`,
//! where the ciphertext is plain AES-256-GCM under a one-time key
//! `BLAKE3-derive-key("cairn 2026-11 sealed unit key", key || salt)` and the all-zero nonce.
//! Each unit gets a fresh key, so a (key, nonce) pair is reused only if two 192-bit random salts
//! collide: nonce reuse is impossible by construction, with no counter state to lose in a crash
//! and no bound on the number of messages per repository key (docs/FORMAT.md has the
//! arithmetic). This module never sees storage; it turns bytes into bytes.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use rand::RngCore;

use crate::{BlobId, Error, Result};

/// Length of the random salt in front of each sealed unit.
pub const SALT_LEN: usize = 24;
/// Length of the GCM tag at the end of each sealed unit.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed unit adds to its plaintext.
pub const SEAL_OVERHEAD: usize = SALT_LEN + TAG_LEN;

const UNIT_KEY_CONTEXT: &str = "cairn 2026-11 sealed unit key";
const DATA_KEY_CONTEXT: &str = "cairn 2026-11 data encryption key";
const ID_KEY_CONTEXT: &str = "cairn 2026-11 blob id key";
const CHUNKER_SEED_CONTEXT: &str = "cairn 2026-11 chunker gear seed";

/// The repository's master secret and the keys derived from it.
///
/// The secret is random, made once at `init`, and stored only wrapped by passwords
/// (see [`crate::keyfile`]). Changing a password never changes it, so data is never rewritten.
#[derive(Clone)]
pub struct MasterKey {
    secret: [u8; 32],
    data_key: [u8; 32],
    id_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self::from_secret(secret)
    }

    /// Rebuilds the keys from the 32-byte master secret.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        MasterKey {
            secret,
            data_key: blake3::derive_key(DATA_KEY_CONTEXT, &secret),
            id_key: blake3::derive_key(ID_KEY_CONTEXT, &secret),
        }
    }

    /// The master secret itself (only for wrapping it in a key file).
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The id of a blob with this plaintext: keyed BLAKE3-256.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Seed for the chunker's gear table, so cut points do not reveal content.
    pub fn chunker_seed(&self) -> u64 {
        let k = blake3::derive_key(CHUNKER_SEED_CONTEXT, &self.secret);
        // Seed 0 means "unseeded" to fastcdc; map it away (probability 2^-64).
        u64::from_le_bytes(k[..8].try_into().expect("8 bytes")).max(1)
    }

    /// Seals `plaintext` under the data key with associated data `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.data_key, aad, plaintext)
    }

    /// Seals in place under the data key (see [`seal_in_place`]).
    pub fn seal_in_place(&self, aad: &[u8], buf: &mut Vec<u8>) {
        seal_in_place(&self.data_key, aad, buf)
    }

    /// Opens a sealed unit made by [`MasterKey::seal`]. `object` names it in errors.
    pub fn open(&self, aad: &[u8], sealed: &[u8], object: &str) -> Result<Vec<u8>> {
        open(&self.data_key, aad, sealed).ok_or_else(|| {
            Error::corrupt(
                object,
                "authentication failed (the bytes were changed, truncated, or belong to another repository)",
            )
        })
    }
}

/// The one-time AES-256-GCM key of a sealed unit with this salt.
pub fn unit_key(key: &[u8; 32], salt: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(UNIT_KEY_CONTEXT);
    h.update(key);
    h.update(salt);
    *h.finalize().as_bytes()
}

fn aead(key: &[u8; 32], salt: &[u8]) -> LessSafeKey {
    let unit = unit_key(key, salt);
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &unit).expect("AES-256 key is 32 bytes"))
}

/// Seals `plaintext`: `salt || AES-256-GCM(unit_key(key, salt), nonce 0, aad, plaintext) || tag`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.resize(SALT_LEN, 0);
    out.extend_from_slice(plaintext);
    seal_in_place(key, aad, &mut out);
    out
}

/// Seals in place: `buf` holds [`SALT_LEN`] bytes of room for the salt followed by the
/// plaintext; on return it holds the sealed unit. Saves a copy on the write path.
pub fn seal_in_place(key: &[u8; 32], aad: &[u8], buf: &mut Vec<u8>) {
    assert!(
        buf.len() >= SALT_LEN,
        "seal_in_place needs room for the salt"
    );
    rand::thread_rng().fill_bytes(&mut buf[..SALT_LEN]);
    let unit = aead(key, &buf[..SALT_LEN]);
    let tag = unit
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(aad),
            &mut buf[SALT_LEN..],
        )
        .expect("AES-GCM sealing of an in-memory buffer cannot fail");
    buf.extend_from_slice(tag.as_ref());
}

/// Opens a sealed unit; `None` when it is too short or fails authentication.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let (salt, body) = sealed.split_at(SALT_LEN);
    let mut buf = body.to_vec();
    let key = aead(key, salt);
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?
        .len();
    buf.truncate(n);
    Some(buf)
}

/// Argon2id parameters for wrapping the master key with a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// m = 64 MiB, t = 3, p = 4: about a quarter second here, and a cost per guess that makes
    /// offline password guessing expensive.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

/// What a new password's derivation may cost, and what `open` tries by default: what a real
/// machine uses for a password (16 times the default's memory, a few times its passes), a
/// few seconds at worst. A hostile key file at the hard limits below costs 120 s and 4 GiB
/// per try, so key files past these are tried only when the caller allows it
/// ([`crate::OpenOptions::allow_costly_kdf`]).
pub const KDF_MAX_MEMORY_KIB: u32 = 1024 * 1024;
pub const KDF_MAX_ITERATIONS: u32 = 10;
pub const KDF_MAX_PARALLELISM: u32 = 16;
/// Beyond these a key file is damaged, whatever the caller allows: earlier cairn wrote
/// nothing past them.
pub const KDF_HARD_MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
pub const KDF_HARD_MAX_ITERATIONS: u32 = 100;
pub const KDF_HARD_MAX_PARALLELISM: u32 = 64;
/// Smallest salt accepted (argon2 requires 8 bytes; cairn writes 16).
pub const KDF_MIN_SALT: usize = 16;

impl KdfParams {
    /// Checks the parameters are ones argon2 accepts and within the hard limits.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.memory_kib > KDF_HARD_MAX_MEMORY_KIB
            || self.iterations > KDF_HARD_MAX_ITERATIONS
            || self.parallelism > KDF_HARD_MAX_PARALLELISM
        {
            return Err(format!(
                "argon2 parameters {self:?} exceed the limits (memory {KDF_HARD_MAX_MEMORY_KIB} KiB, {KDF_HARD_MAX_ITERATIONS} iterations, {KDF_HARD_MAX_PARALLELISM} lanes)"
            ));
        }
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map(|_| ())
            .map_err(|e| format!("argon2 parameters {self:?} are invalid: {e}"))
    }

    /// Whether one derivation costs more than a real machine spends on a password
    /// (`KDF_MAX_*`): such parameters are refused for new passwords and tried only on
    /// request.
    pub fn is_costly(&self) -> bool {
        self.memory_kib > KDF_MAX_MEMORY_KIB
            || self.iterations > KDF_MAX_ITERATIONS
            || self.parallelism > KDF_MAX_PARALLELISM
    }

    /// Checks parameters for a new password: valid and not costly.
    pub fn validate_new(&self) -> std::result::Result<(), String> {
        self.validate()?;
        if self.is_costly() {
            return Err(format!(
                "argon2 parameters {self:?} cost more than cairn allows for a password (memory {KDF_MAX_MEMORY_KIB} KiB, {KDF_MAX_ITERATIONS} iterations, {KDF_MAX_PARALLELISM} lanes)"
            ));
        }
        Ok(())
    }

    /// Relative cost of one derivation (memory times passes), to try cheap key files first.
    pub fn cost(&self) -> u64 {
        self.memory_kib as u64 * self.iterations as u64
    }

    /// Derives the 32-byte key-encryption key from a password.
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> std::result::Result<[u8; 32], String> {
        self.validate()?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| e.to_string())?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(password, salt, &mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"aad", b"hello world");
        assert_eq!(sealed.len(), 11 + SEAL_OVERHEAD);
        assert_eq!(open(&key, b"aad", &sealed).unwrap(), b"hello world");
        assert!(open(&key, b"other aad", &sealed).is_none());
        assert!(open(&[8u8; 32], b"aad", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open(&key, b"aad", &bad).is_none(), "flip at {i} undetected");
        }
        assert!(open(&key, b"aad", &sealed[..sealed.len() - 1]).is_none());
        assert!(open(&key, b"aad", &sealed[..10]).is_none());
    }

    #[test]
    fn salts_differ_so_ciphertexts_differ() {
        let key = [1u8; 32];
        assert_ne!(seal(&key, b"", b"same"), seal(&key, b"", b"same"));
    }

    /// The format is plain AES-256-GCM: the RustCrypto implementation opens what aws-lc-rs sealed.
    #[test]
    fn rustcrypto_aes_gcm_opens_our_units() {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let key = [42u8; 32];
        let plaintext = vec![0xabu8; 100_000];
        let sealed = seal(&key, b"cairn/test", &plaintext);
        let unit = unit_key(&key, &sealed[..SALT_LEN]);
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(&unit).unwrap();
        let nonce = aes_gcm::Nonce::try_from(&[0u8; 12][..]).unwrap();
        let opened = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed[SALT_LEN..],
                    aad: b"cairn/test",
                },
            )
            .unwrap();
        assert_eq!(opened, plaintext);
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::from_secret([1; 32]);
        let b = MasterKey::from_secret([2; 32]);
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
    }

    #[test]
    fn kdf_rejects_hostile_parameters() {
        let p = KdfParams {
            memory_kib: u32::MAX,
            iterations: 1,
            parallelism: 1,
        };
        assert!(p.derive(b"pw", b"saltsaltsaltsalt").is_err());
    }
}
