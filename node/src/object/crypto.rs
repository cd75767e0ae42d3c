//! Convergent encryption of one chunk: key = SHA-256(plaintext) (or HMAC-SHA-256 under a
//! convergence secret), AES-256-GCM with a nonce derived from the key, id = SHA-256 of the
//! stored ciphertext.
//!
//! A key encrypts exactly one plaintext (the key is derived from it), so a nonce derived from
//! the key never meets a second plaintext: deterministic and safe.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::ids::{ChunkId, ChunkKey};
use crate::limits::{SECRET_BYTES_MAX, SECRET_BYTES_MIN};

/// Domain separator hashed in front of the key to derive the 96-bit GCM nonce.
pub const NONCE_DOMAIN: &[u8] = b"cryptosphere/v1/nonce";

/// A user's convergence secret: with it, keys are HMAC-SHA-256(secret, plaintext), so only
/// holders of the same secret deduplicate against each other (Tahoe-LAFS style).
#[derive(Clone)]
pub struct ConvergenceSecret(Vec<u8>);

impl std::fmt::Debug for ConvergenceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConvergenceSecret(..)")
    }
}

/// Why a convergence secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("the convergence secret is {0} bytes; it must be between {SECRET_BYTES_MIN} and {SECRET_BYTES_MAX}")]
    Length(usize),
}

impl ConvergenceSecret {
    pub fn new(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(Self(bytes))
    }
}

/// Derives a chunk's key from its plaintext (the concatenation of `parts`).
pub fn derive_key(parts: &[&[u8]], secret: Option<&ConvergenceSecret>) -> ChunkKey {
    match secret {
        None => {
            let mut hasher = Sha256::new();
            for part in parts {
                hasher.update(part);
            }
            ChunkKey(hasher.finalize().into())
        }
        Some(secret) => {
            // HMAC accepts keys of any length; the secret's length was checked on creation.
            let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0) else {
                unreachable!("HMAC-SHA-256 takes keys of every length")
            };
            for part in parts {
                mac.update(part);
            }
            ChunkKey(mac.finalize().into_bytes().into())
        }
    }
}

/// The GCM nonce of a key: the first 12 bytes of SHA-256(NONCE_DOMAIN || key).
pub fn nonce_for(key: &ChunkKey) -> [u8; 12] {
    let digest = Sha256::new()
        .chain_update(NONCE_DOMAIN)
        .chain_update(key.0)
        .finalize();
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&digest[..12]);
    nonce
}

/// The id of stored bytes.
pub fn chunk_id(stored: &[u8]) -> ChunkId {
    ChunkId(Sha256::digest(stored).into())
}

/// Encrypts `plaintext` under `key`, authenticating `aad` too. Returns ciphertext || tag.
pub fn seal(key: &ChunkKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(&key.0.into());
    let nonce = nonce_for(key);
    match cipher.encrypt(
        Nonce::from_slice(&nonce),
        Payload {
            msg: plaintext,
            aad,
        },
    ) {
        Ok(ciphertext) => ciphertext,
        // aes-gcm fails only for plaintexts over 64 GiB; chunks are at most 1 MiB.
        Err(_) => unreachable!("AES-GCM refused a {} byte plaintext", plaintext.len()),
    }
}

/// The ciphertext did not authenticate under the key: wrong key or altered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ciphertext does not authenticate under this key")]
pub struct OpenError;

/// Decrypts ciphertext || tag under `key` with `aad`.
pub fn open(key: &ChunkKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
    let cipher = Aes256Gcm::new(&key.0.into());
    let nonce = nonce_for(key);
    cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: sealed, aad })
        .map_err(|_| OpenError)
}

/// One encrypted data chunk.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    pub id: ChunkId,
    pub key: ChunkKey,
    pub plaintext_len: u64,
    pub stored: Vec<u8>,
}

/// Convergently encrypts one data chunk.
pub fn seal_chunk(plaintext: &[u8], secret: Option<&ConvergenceSecret>) -> SealedChunk {
    let key = derive_key(&[plaintext], secret);
    let stored = seal(&key, plaintext, &[]);
    SealedChunk {
        id: chunk_id(&stored),
        key,
        plaintext_len: plaintext.len() as u64,
        stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_plaintext_same_chunk_and_secret_changes_it() {
        let a = seal_chunk(b"hello", None);
        let b = seal_chunk(b"hello", None);
        assert_eq!(a.id, b.id);
        assert_eq!(a.stored, b.stored);
        let secret = ConvergenceSecret::new(vec![7; 32]).unwrap();
        let c = seal_chunk(b"hello", Some(&secret));
        assert_ne!(a.id, c.id);
        assert_eq!(open(&a.key, &a.stored, &[]).unwrap(), b"hello");
        assert_eq!(open(&c.key, &c.stored, &[]).unwrap(), b"hello");
        assert_eq!(open(&a.key, &c.stored, &[]), Err(OpenError));
    }

    #[test]
    fn key_is_sha256_of_plaintext() {
        let key = derive_key(&[b"ab", b"c"], None);
        assert_eq!(key.0, <[u8; 32]>::from(Sha256::digest(b"abc")));
    }

    #[test]
    fn secret_length_is_checked() {
        assert_eq!(
            ConvergenceSecret::new(vec![1; 3]).unwrap_err(),
            SecretError::Length(3)
        );
        assert!(ConvergenceSecret::new(vec![1; SECRET_BYTES_MAX + 1]).is_err());
    }
}
