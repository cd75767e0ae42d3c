//! The wire protocol, byte for byte as `docs/wire-protocol.md` gives it: the Noise XX
//! handshake that binds each side's ed25519 identity to its Noise static key
//! ([`noise`]), the length-prefixed encrypted frames ([`noise::Sealer`], [`noise::Opener`]),
//! the versioned encoding of the kernel's [`Frame`](crate::kernel::Frame)s ([`codec`]), and
//! the connection limits a listener enforces ([`gate`]).
//!
//! Pure computation over bytes: the real host moves them over TCP. Every decoder here takes
//! bytes from a stranger and answers with a [`WireError`] that names the problem; none of
//! them panics or allocates more than the frame limit allows.

pub mod codec;
pub mod fixed;
pub mod gate;
pub mod noise;

use crate::kernel::WireFault;

/// The protocol version carried first in every frame.
/// Version 2 nests each message in its protocol (route, store, chain).
pub const VERSION: u8 = 2;
/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";
/// The Noise prologue: both sides must use the same one, or the handshake fails.
pub const PROLOGUE: &[u8] = b"cryptosphere/wire/1";
/// Domain separator of the signature that binds an ed25519 identity to a Noise static key.
pub const IDENTITY_DOMAIN: &[u8] = b"cryptosphere/wire/identity/v1";
/// Largest Noise message (the Noise specification's limit).
pub const NOISE_MESSAGE_BYTES_MAX: usize = 65_535;
/// Authentication tag appended to each Noise transport message.
pub const NOISE_TAG_BYTES: usize = 16;
/// Largest handshake message accepted (the real ones are 32, 192 and 160 bytes).
pub const HANDSHAKE_MESSAGE_BYTES_MAX: usize = 1_024;

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("handshake message of {0} bytes is over the limit of {HANDSHAKE_MESSAGE_BYTES_MAX}")]
    HandshakeTooLarge(usize),
    #[error("the peer's identity payload is {0} bytes; it must be 96 (key and signature)")]
    IdentityLength(usize),
    #[error("the peer's identity key is not a valid ed25519 key")]
    IdentityKey,
    #[error("the peer's signature does not bind its identity to its Noise key")]
    IdentitySignature,
    #[error("frame of {len} bytes is over the limit of {max}")]
    Oversized { len: usize, max: usize },
    #[error("frame is truncated: {0}")]
    Truncated(&'static str),
    #[error("frame does not decrypt (tampered, reordered or from another session)")]
    Decrypt,
    #[error("protocol version {0} is not spoken here (this node speaks {VERSION})")]
    Version(u8),
    #[error("message does not decode: {0}")]
    Undecodable(String),
    #[error("message does not encode: {0}")]
    Unencodable(String),
}

impl WireError {
    /// The fault the transport actor is told about.
    pub fn fault(&self) -> WireFault {
        match self {
            WireError::Oversized { .. } | WireError::HandshakeTooLarge(_) => WireFault::Oversized,
            WireError::Truncated(_) => WireFault::Truncated,
            _ => WireFault::Undecodable,
        }
    }
}
