//! One record of a chain: its fields, canonical encoding, hash and signatures.

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// Domain separator in front of every signed record body.
pub const RECORD_SIGNING_DOMAIN: &[u8] = b"cryptosphere/v1/record";
/// Version byte at the front of every record.
pub const RECORD_VERSION: u8 = 1;
/// The signed part of a record.
pub const RECORD_BODY_BYTES: usize = 1 + 32 + 8 + 32 + 32 + 8 + 1 + 1 + 8 + 8 + 8 + 8 + 1 + 32;
/// A whole record: body and two signatures.
pub const RECORD_BYTES: usize = RECORD_BODY_BYTES + 64 + 64;

/// What was provided.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum Service {
    /// A chunk kept for a term (`seconds`), `bytes` long, worth `creds`.
    ChunkStored = 1,
    /// A chunk sent to the requester.
    ChunkServed = 2,
    /// An audit of a stored chunk answered.
    AuditAnswered = 3,
    /// Bandwidth given to the requester.
    BandwidthGiven = 4,
    /// Bandwidth received from the provider.
    BandwidthReceived = 5,
}

/// Which side of the service the record's owner was on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum Role {
    Requester = 1,
    Provider = 2,
}

impl Role {
    pub fn other(self) -> Role {
        match self {
            Role::Requester => Role::Provider,
            Role::Provider => Role::Requester,
        }
    }
}

/// How the service went.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum Outcome {
    Delivered = 1,
    Partial = 2,
    Failed = 3,
}

/// The fields both halves of a matching pair share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transaction {
    pub service: Service,
    pub bytes: u64,
    pub creds: u64,
    pub seconds: u64,
    /// When the service was agreed, microseconds since the Unix epoch (or simulated).
    pub time: u64,
    pub outcome: Outcome,
    /// A salted commitment to what a dispute may need (for example a chunk id), or zeros.
    /// Records never name a chunk.
    pub commitment: [u8; 32],
}

/// One half of a service, on its owner's chain.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: [u8; 32],
    pub seq: u64,
    /// Hash of the owner's previous record (zeros for the first).
    pub prev: [u8; 32],
    pub counterparty: [u8; 32],
    /// Sequence number of the matching half on the counterparty's chain.
    pub counterparty_seq: u64,
    pub role: Role,
    pub tx: Transaction,
    pub owner_sig: [u8; 64],
    pub counterparty_sig: [u8; 64],
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Record({:02x}{:02x}.. #{} {:?} {:?})",
            self.owner[0], self.owner[1], self.seq, self.role, self.tx.service
        )
    }
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("a record is {RECORD_BYTES} bytes; this one is {0}")]
    Length(usize),
    #[error("record format version {0} is not {RECORD_VERSION}")]
    Version(u8),
    #[error("unknown role {0}")]
    Role(u8),
    #[error("unknown service kind {0}")]
    Service(u8),
    #[error("unknown outcome {0}")]
    Outcome(u8),
}

impl Record {
    /// The bytes both parties sign (after the domain separator).
    pub fn body(&self) -> [u8; RECORD_BODY_BYTES] {
        let mut out = [0u8; RECORD_BODY_BYTES];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&[RECORD_VERSION]);
        put(&self.owner);
        put(&self.seq.to_le_bytes());
        put(&self.prev);
        put(&self.counterparty);
        put(&self.counterparty_seq.to_le_bytes());
        put(&[self.role as u8, self.tx.service as u8]);
        put(&self.tx.bytes.to_le_bytes());
        put(&self.tx.creds.to_le_bytes());
        put(&self.tx.seconds.to_le_bytes());
        put(&self.tx.time.to_le_bytes());
        put(&[self.tx.outcome as u8]);
        put(&self.tx.commitment);
        out
    }

    /// The message each signature covers: domain separator and body.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = RECORD_SIGNING_DOMAIN.to_vec();
        message.extend_from_slice(&self.body());
        message
    }

    pub fn to_bytes(&self) -> [u8; RECORD_BYTES] {
        let mut out = [0u8; RECORD_BYTES];
        out[..RECORD_BODY_BYTES].copy_from_slice(&self.body());
        out[RECORD_BODY_BYTES..RECORD_BODY_BYTES + 64].copy_from_slice(&self.owner_sig);
        out[RECORD_BODY_BYTES + 64..].copy_from_slice(&self.counterparty_sig);
        out
    }

    /// The hash the next record's `prev` holds: SHA-256 of the whole record.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// Decodes a record. Signatures are not checked here (see [`Record::verify_signatures`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Record, RecordError> {
        let bytes: &[u8; RECORD_BYTES] = bytes
            .try_into()
            .map_err(|_| RecordError::Length(bytes.len()))?;
        if bytes[0] != RECORD_VERSION {
            return Err(RecordError::Version(bytes[0]));
        }
        let array32 = |at: usize| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes[at..at + 32]);
            out
        };
        let u64_at = |at: usize| -> u64 {
            let mut out = [0u8; 8];
            out.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(out)
        };
        let role = match bytes[113] {
            1 => Role::Requester,
            2 => Role::Provider,
            other => return Err(RecordError::Role(other)),
        };
        let service = match bytes[114] {
            1 => Service::ChunkStored,
            2 => Service::ChunkServed,
            3 => Service::AuditAnswered,
            4 => Service::BandwidthGiven,
            5 => Service::BandwidthReceived,
            other => return Err(RecordError::Service(other)),
        };
        let outcome = match bytes[147] {
            1 => Outcome::Delivered,
            2 => Outcome::Partial,
            3 => Outcome::Failed,
            other => return Err(RecordError::Outcome(other)),
        };
        let mut owner_sig = [0u8; 64];
        owner_sig.copy_from_slice(&bytes[RECORD_BODY_BYTES..RECORD_BODY_BYTES + 64]);
        let mut counterparty_sig = [0u8; 64];
        counterparty_sig.copy_from_slice(&bytes[RECORD_BODY_BYTES + 64..]);
        Ok(Record {
            owner: array32(1),
            seq: u64_at(33),
            prev: array32(41),
            counterparty: array32(73),
            counterparty_seq: u64_at(105),
            role,
            tx: Transaction {
                service,
                bytes: u64_at(115),
                creds: u64_at(123),
                seconds: u64_at(131),
                time: u64_at(139),
                outcome,
                commitment: array32(148),
            },
            owner_sig,
            counterparty_sig,
        })
    }

    /// Signs the record's body with `key` (the owner's or the counterparty's).
    pub fn sign(&self, key: &SigningKey) -> [u8; 64] {
        super::signature::sign(key, &self.signed_message())
    }

    /// Checks both signatures (see [`signature_ok`]): exactly what chain verification accepts.
    pub fn verify_signatures(&self) -> Result<(), SignatureFault> {
        let message = self.signed_message();
        for (key, signature, fault) in [
            (&self.owner, &self.owner_sig, SignatureFault::Owner),
            (
                &self.counterparty,
                &self.counterparty_sig,
                SignatureFault::Counterparty,
            ),
        ] {
            if !signature_ok(key, &message, signature) {
                return Err(fault);
            }
        }
        Ok(())
    }

    /// Does `other` match this record as the other half of the same service?
    pub fn matches(&self, other: &Record) -> bool {
        self.owner == other.counterparty
            && self.counterparty == other.owner
            && self.counterparty_seq == other.seq
            && other.counterparty_seq == self.seq
            && self.role == other.role.other()
            && self.tx == other.tx
    }
}

/// Does `signature` verify `message` under `key`, by the one rule every chain check uses
/// ([`super::signature`]: cofactored, strict encodings, small-order keys refused)? Chains are
/// verified in batches by the same rule, so single records, fork proofs, disagreements and
/// agreements accept exactly what a chain accepts, whatever else a batch holds.
pub fn signature_ok(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    super::signature::verify(&super::signature::Signed {
        key,
        message,
        signature,
    })
}

/// Whose signature on a record fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFault {
    #[error("the owner's signature does not verify")]
    Owner,
    #[error("the counterparty's signature does not verify")]
    Counterparty,
}
