//! Heads: signed, sequence-numbered mutable pointers to a read capability, so a publisher can
//! update what a name points at. Readers verify the ed25519 signature and refuse rollbacks.
//!
//! A head carries its capability in the clear: whoever sees the head can read what it points
//! at, so heads name public content. Publishing heads to the network comes with a later issue.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::ids::{ChunkId, ChunkKey};
use crate::object::capability::ReadCap;

pub const HEAD_MAGIC: [u8; 4] = *b"CSHD";
pub const HEAD_VERSION: u8 = 1;
/// Domain separator in front of every signed head message.
pub const HEAD_SIGNING_DOMAIN: &[u8] = b"cryptosphere/v1/head";
/// magic, version, public key, sequence, root id, root key, signature.
pub const HEAD_BYTES: usize = 4 + 1 + 32 + 8 + 32 + 32 + 64;

/// A signed pointer: `public_key` says that, at `seq`, its name points at `cap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub public_key: [u8; 32],
    pub seq: u64,
    pub cap: ReadCap,
    pub signature: [u8; 64],
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    #[error("a head is {HEAD_BYTES} bytes; this one is {0}")]
    Length(usize),
    #[error("it does not start with the head magic \"CSHD\"")]
    BadMagic,
    #[error("it has head format version {0}; this program reads version {HEAD_VERSION}")]
    UnsupportedVersion(u8),
    #[error("its public key is not a valid ed25519 point")]
    BadPublicKey,
    #[error("its signature does not verify under its public key")]
    BadSignature,
    #[error("rollback refused: sequence {offered} is older than the {current} already seen")]
    Rollback { current: u64, offered: u64 },
    #[error("equivocation: two different heads carry sequence {0} under the same key")]
    Equivocation(u64),
}

fn signed_message(public_key: &[u8; 32], seq: u64, cap: &ReadCap) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEAD_SIGNING_DOMAIN.len() + 32 + 8 + 64);
    message.extend_from_slice(HEAD_SIGNING_DOMAIN);
    message.extend_from_slice(public_key);
    message.extend_from_slice(&seq.to_le_bytes());
    message.extend_from_slice(&cap.id.0);
    message.extend_from_slice(&cap.key.0);
    message
}

impl Head {
    /// Signs a head for `cap` at `seq`.
    pub fn sign(signing_key: &SigningKey, seq: u64, cap: ReadCap) -> Head {
        let public_key = signing_key.verifying_key().to_bytes();
        let signature = signing_key
            .sign(&signed_message(&public_key, seq, &cap))
            .to_bytes();
        Head {
            public_key,
            seq,
            cap,
            signature,
        }
    }

    /// Checks the signature, strictly (no small-order keys, no malleable signatures).
    pub fn verify(&self) -> Result<(), HeadError> {
        let key =
            VerifyingKey::from_bytes(&self.public_key).map_err(|_| HeadError::BadPublicKey)?;
        key.verify_strict(
            &signed_message(&self.public_key, self.seq, &self.cap),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| HeadError::BadSignature)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_BYTES);
        out.extend_from_slice(&HEAD_MAGIC);
        out.push(HEAD_VERSION);
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.cap.id.0);
        out.extend_from_slice(&self.cap.key.0);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes and verifies a head.
    pub fn from_bytes(bytes: &[u8]) -> Result<Head, HeadError> {
        if bytes.len() != HEAD_BYTES {
            return Err(HeadError::Length(bytes.len()));
        }
        if bytes[..4] != HEAD_MAGIC {
            return Err(HeadError::BadMagic);
        }
        if bytes[4] != HEAD_VERSION {
            return Err(HeadError::UnsupportedVersion(bytes[4]));
        }
        let mut at = 5;
        let mut next = |len: usize| {
            let slice = &bytes[at..at + len];
            at += len;
            slice
        };
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(next(32));
        let mut seq = [0u8; 8];
        seq.copy_from_slice(next(8));
        let mut id = [0u8; 32];
        id.copy_from_slice(next(32));
        let mut key = [0u8; 32];
        key.copy_from_slice(next(32));
        let mut signature = [0u8; 64];
        signature.copy_from_slice(next(64));
        let head = Head {
            public_key,
            seq: u64::from_le_bytes(seq),
            cap: ReadCap {
                id: ChunkId(id),
                key: ChunkKey(key),
            },
            signature,
        };
        head.verify()?;
        Ok(head)
    }
}

/// What accepting a head changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadUpdate {
    /// First head seen for this key, or a newer sequence than the last.
    Advanced,
    /// The very head already held.
    Unchanged,
}

/// The newest verified head per public key; refuses rollbacks and equivocation.
#[derive(Debug, Default)]
pub struct HeadTracker {
    latest: BTreeMap<[u8; 32], Head>,
}

impl HeadTracker {
    pub fn latest(&self, public_key: &[u8; 32]) -> Option<&Head> {
        self.latest.get(public_key)
    }

    /// Verifies `head` and keeps it if it is newer than what is held.
    pub fn accept(&mut self, head: Head) -> Result<HeadUpdate, HeadError> {
        head.verify()?;
        if let Some(current) = self.latest.get(&head.public_key) {
            if head.seq < current.seq {
                return Err(HeadError::Rollback {
                    current: current.seq,
                    offered: head.seq,
                });
            }
            if head.seq == current.seq {
                // Compare what the heads say, not their signature bytes: another signer may
                // produce a different valid signature over the same statement.
                return if current.cap == head.cap {
                    Ok(HeadUpdate::Unchanged)
                } else {
                    Err(HeadError::Equivocation(head.seq))
                };
            }
        }
        self.latest.insert(head.public_key, head);
        Ok(HeadUpdate::Advanced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(byte: u8) -> ReadCap {
        ReadCap {
            id: ChunkId([byte; 32]),
            key: ChunkKey([byte; 32]),
        }
    }

    #[test]
    fn heads_round_trip_and_verify() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let head = Head::sign(&key, 7, cap(1));
        let bytes = head.to_bytes();
        assert_eq!(bytes.len(), HEAD_BYTES);
        assert_eq!(Head::from_bytes(&bytes), Ok(head));
    }

    #[test]
    fn every_bit_flip_is_refused() {
        let head = Head::sign(&SigningKey::from_bytes(&[2; 32]), 1, cap(2));
        let bytes = head.to_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Head::from_bytes(&bad).is_err(), "bit {bit} accepted");
        }
        assert_eq!(Head::from_bytes(&bytes[..10]), Err(HeadError::Length(10)));
    }

    #[test]
    fn tracker_refuses_rollback_and_equivocation() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut tracker = HeadTracker::default();
        assert_eq!(
            tracker.accept(Head::sign(&key, 5, cap(1))),
            Ok(HeadUpdate::Advanced)
        );
        assert_eq!(
            tracker.accept(Head::sign(&key, 5, cap(1))),
            Ok(HeadUpdate::Unchanged)
        );
        assert_eq!(
            tracker.accept(Head::sign(&key, 4, cap(9))),
            Err(HeadError::Rollback {
                current: 5,
                offered: 4
            })
        );
        assert_eq!(
            tracker.accept(Head::sign(&key, 5, cap(2))),
            Err(HeadError::Equivocation(5))
        );
        assert_eq!(
            tracker.accept(Head::sign(&key, 6, cap(2))),
            Ok(HeadUpdate::Advanced)
        );
        assert_eq!(
            tracker
                .latest(&key.verifying_key().to_bytes())
                .map(|h| h.seq),
            Some(6)
        );
        // A head signed by another key cannot pose as this one.
        let mut forged = Head::sign(&SigningKey::from_bytes(&[4; 32]), 9, cap(3));
        forged.public_key = key.verifying_key().to_bytes();
        assert_eq!(tracker.accept(forged), Err(HeadError::BadSignature));
    }
}
