//! The Noise XX handshake with identity binding, and the encrypted frames that follow it.
//!
//! XX: `-> e`, `<- e, ee, s, es`, `-> s, se`. The responder's second message and the
//! initiator's third carry, encrypted, a 96-byte identity payload: the sender's ed25519
//! public key and its signature over `IDENTITY_DOMAIN ‖ noise static public key`. Each side
//! checks the other's signature against the static key Noise authenticated, so a peer is its
//! ed25519 key and nobody can replay another's binding with a different Noise key.
//!
//! After the handshake a frame is `u32` big-endian length, then that many bytes: the frame's
//! plaintext cut into pieces of at most 65,519 bytes, each sealed as one Noise transport
//! message (plus a 16-byte tag). Both directions count nonces from 0.

use std::sync::Arc;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use snow::{HandshakeState, StatelessTransportState};

use super::{
    WireError, HANDSHAKE_MESSAGE_BYTES_MAX, IDENTITY_DOMAIN, NOISE_MESSAGE_BYTES_MAX, NOISE_PARAMS,
    NOISE_TAG_BYTES, PROLOGUE,
};
use crate::kernel::PeerId;

/// Bytes of the identity payload: ed25519 key (32) and signature (64).
pub const IDENTITY_PAYLOAD_BYTES: usize = 96;
/// Plaintext bytes one Noise transport message carries.
pub const PIECE_PLAINTEXT_BYTES: usize = NOISE_MESSAGE_BYTES_MAX - NOISE_TAG_BYTES;
/// Bytes of a frame's length prefix.
pub const LENGTH_BYTES: usize = 4;

fn noise_error(e: snow::Error) -> WireError {
    WireError::Handshake(e.to_string())
}

fn params() -> snow::params::NoiseParams {
    // The constant is a valid protocol name; a test pins that parsing it succeeds.
    NOISE_PARAMS
        .parse()
        .unwrap_or_else(|_| unreachable!("NOISE_PARAMS parses"))
}

/// The message an identity key signs to bind itself to a Noise static key.
fn binding_message(noise_public: &[u8]) -> Vec<u8> {
    [IDENTITY_DOMAIN, noise_public].concat()
}

/// This node's keys for handshakes: a Noise static key pair and the identity payload that
/// binds it to the node's ed25519 key.
#[derive(Clone)]
pub struct NoiseIdentity {
    private: Vec<u8>,
    peer: PeerId,
    payload: [u8; IDENTITY_PAYLOAD_BYTES],
}

impl std::fmt::Debug for NoiseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoiseIdentity({:?})", self.peer)
    }
}

impl NoiseIdentity {
    /// Binds a fresh Noise static key (from snow's resolver, OS randomness) to `identity`.
    pub fn generate(identity: &SigningKey) -> Result<NoiseIdentity, WireError> {
        let keypair = snow::Builder::new(params())
            .generate_keypair()
            .map_err(noise_error)?;
        Ok(NoiseIdentity::bind(
            identity,
            keypair.private,
            &keypair.public,
        ))
    }

    /// Binds the Noise static key pair (`private`, `public`) to `identity`.
    pub fn bind(identity: &SigningKey, private: Vec<u8>, public: &[u8]) -> NoiseIdentity {
        let signature = identity.sign(&binding_message(public));
        let mut payload = [0u8; IDENTITY_PAYLOAD_BYTES];
        payload[..32].copy_from_slice(identity.verifying_key().as_bytes());
        payload[32..].copy_from_slice(&signature.to_bytes());
        NoiseIdentity {
            private,
            peer: PeerId(identity.verifying_key().to_bytes()),
            payload,
        }
    }

    pub fn peer(&self) -> PeerId {
        self.peer
    }
}

/// Checks a peer's identity payload against the Noise static key the handshake
/// authenticated; the peer's id on success.
fn check_identity(payload: &[u8], noise_public: &[u8]) -> Result<PeerId, WireError> {
    if payload.len() != IDENTITY_PAYLOAD_BYTES {
        return Err(WireError::IdentityLength(payload.len()));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[..32]);
    let verifying = VerifyingKey::from_bytes(&key).map_err(|_| WireError::IdentityKey)?;
    if verifying.is_weak() {
        return Err(WireError::IdentityKey);
    }
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&payload[32..]);
    verifying
        .verify_strict(
            &binding_message(noise_public),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| WireError::IdentitySignature)?;
    Ok(PeerId(key))
}

/// One side of a handshake in progress.
pub struct Handshake {
    state: HandshakeState,
    initiator: bool,
    payload: [u8; IDENTITY_PAYLOAD_BYTES],
    writes: u8,
    reads: u8,
    remote: Option<PeerId>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("initiator", &self.initiator)
            .field("remote", &self.remote)
            .finish()
    }
}

impl Handshake {
    pub fn new(identity: &NoiseIdentity, initiator: bool) -> Result<Handshake, WireError> {
        let builder = snow::Builder::new(params())
            .local_private_key(&identity.private)
            .prologue(PROLOGUE);
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(noise_error)?;
        Ok(Handshake {
            state,
            initiator,
            payload: identity.payload,
            writes: 0,
            reads: 0,
            remote: None,
        })
    }

    /// Is it our turn to write?
    pub fn my_turn(&self) -> bool {
        self.state.is_my_turn()
    }

    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// Our next handshake message.
    pub fn write(&mut self) -> Result<Vec<u8>, WireError> {
        // The initiator's first message is sent before any key is shared: no identity in it.
        let payload: &[u8] = if self.initiator && self.writes == 0 {
            &[]
        } else {
            &self.payload
        };
        let mut out = vec![0u8; HANDSHAKE_MESSAGE_BYTES_MAX];
        let len = self
            .state
            .write_message(payload, &mut out)
            .map_err(noise_error)?;
        out.truncate(len);
        self.writes += 1;
        Ok(out)
    }

    /// Takes the peer's next handshake message, checking its identity when it carries one.
    pub fn read(&mut self, message: &[u8]) -> Result<(), WireError> {
        if message.len() > HANDSHAKE_MESSAGE_BYTES_MAX {
            return Err(WireError::HandshakeTooLarge(message.len()));
        }
        let mut payload = vec![0u8; HANDSHAKE_MESSAGE_BYTES_MAX];
        let len = self
            .state
            .read_message(message, &mut payload)
            .map_err(noise_error)?;
        self.reads += 1;
        // The responder's first read is the initiator's `e`: no identity yet, and none allowed
        // in clear.
        let carries_identity = self.initiator || self.reads == 2;
        if !carries_identity {
            if len != 0 {
                return Err(WireError::Handshake(
                    "the first message must carry no payload".into(),
                ));
            }
            return Ok(());
        }
        let noise_public = self
            .state
            .get_remote_static()
            .ok_or_else(|| WireError::Handshake("no static key from the peer".into()))?;
        self.remote = Some(check_identity(&payload[..len], noise_public)?);
        Ok(())
    }

    /// The encrypted session and the peer's identity, once the handshake is finished.
    pub fn finish(self, plaintext_max: usize) -> Result<(Sealer, Opener, PeerId), WireError> {
        let remote = self
            .remote
            .filter(|_| self.state.is_handshake_finished())
            .ok_or_else(|| WireError::Handshake("the handshake is not finished".into()))?;
        let state = Arc::new(
            self.state
                .into_stateless_transport_mode()
                .map_err(noise_error)?,
        );
        let sealer = Sealer {
            state: state.clone(),
            nonce: 0,
        };
        let opener = Opener {
            state,
            nonce: 0,
            plaintext_max,
        };
        Ok((sealer, opener, remote))
    }
}

/// Ciphertext bytes of a frame whose plaintext is `plaintext` bytes.
pub fn sealed_len(plaintext: usize) -> usize {
    plaintext + NOISE_TAG_BYTES * plaintext.div_ceil(PIECE_PLAINTEXT_BYTES).max(1)
}

/// The sending half of a session.
pub struct Sealer {
    state: Arc<StatelessTransportState>,
    nonce: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(nonce {})", self.nonce)
    }
}

impl Sealer {
    /// Appends the sealed frame (length prefix and pieces) for `plaintext` to `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        let len = sealed_len(plaintext.len());
        let prefix = u32::try_from(len).map_err(|_| WireError::Oversized {
            len,
            max: u32::MAX as usize,
        })?;
        out.extend_from_slice(&prefix.to_be_bytes());
        let mut pieces: Vec<&[u8]> = plaintext.chunks(PIECE_PLAINTEXT_BYTES).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        for piece in pieces {
            let start = out.len();
            out.resize(start + piece.len() + NOISE_TAG_BYTES, 0);
            let nonce = self.nonce;
            self.nonce = nonce
                .checked_add(1)
                .ok_or_else(|| WireError::Handshake("nonces exhausted".into()))?;
            self.state
                .write_message(nonce, piece, &mut out[start..])
                .map_err(|e| WireError::Unencodable(e.to_string()))?;
        }
        Ok(())
    }
}

/// The receiving half of a session.
pub struct Opener {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    plaintext_max: usize,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opener(nonce {})", self.nonce)
    }
}

impl Opener {
    /// The ciphertext length a frame's prefix announces, refused if over the limit.
    pub fn announced(&self, prefix: [u8; LENGTH_BYTES]) -> Result<usize, WireError> {
        let len = u32::from_be_bytes(prefix) as usize;
        let max = sealed_len(self.plaintext_max);
        if len > max {
            return Err(WireError::Oversized { len, max });
        }
        if len < NOISE_TAG_BYTES {
            return Err(WireError::Truncated("a frame is shorter than one tag"));
        }
        Ok(len)
    }

    /// Opens the `sealed` bytes of one frame (after its prefix) into its plaintext.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, WireError> {
        self.announced((sealed.len() as u32).to_be_bytes())?;
        let mut plain = vec![0u8; sealed.len()];
        let mut written = 0;
        for piece in sealed.chunks(NOISE_MESSAGE_BYTES_MAX) {
            if piece.len() < NOISE_TAG_BYTES {
                return Err(WireError::Truncated("a piece is shorter than its tag"));
            }
            let nonce = self.nonce;
            self.nonce = nonce.checked_add(1).ok_or(WireError::Decrypt)?;
            written += self
                .state
                .read_message(nonce, piece, &mut plain[written..])
                .map_err(|_| WireError::Decrypt)?;
        }
        plain.truncate(written);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn handshake(
        a: &NoiseIdentity,
        b: &NoiseIdentity,
    ) -> Result<[(Sealer, Opener, PeerId); 2], WireError> {
        let mut i = Handshake::new(a, true)?;
        let mut r = Handshake::new(b, false)?;
        r.read(&i.write()?)?;
        i.read(&r.write()?)?;
        r.read(&i.write()?)?;
        assert!(i.is_finished() && r.is_finished());
        Ok([i.finish(1 << 20)?, r.finish(1 << 20)?])
    }

    #[test]
    fn params_parse_and_handshakes_bind_identities() {
        let a = NoiseIdentity::generate(&key(1)).unwrap();
        let b = NoiseIdentity::generate(&key(2)).unwrap();
        let [(mut seal_a, _, seen_by_a), (_, mut open_b, seen_by_b)] = handshake(&a, &b).unwrap();
        assert_eq!(seen_by_a, b.peer());
        assert_eq!(seen_by_b, a.peer());
        for len in [
            0,
            1,
            PIECE_PLAINTEXT_BYTES,
            PIECE_PLAINTEXT_BYTES + 1,
            300_000,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut sealed = Vec::new();
            seal_a.seal(&plain, &mut sealed).unwrap();
            let announced = open_b.announced(sealed[..4].try_into().unwrap()).unwrap();
            assert_eq!(announced, sealed.len() - 4);
            assert_eq!(open_b.open(&sealed[4..]).unwrap(), plain);
        }
    }

    #[test]
    fn a_binding_made_for_another_noise_key_is_refused() {
        let honest = NoiseIdentity::generate(&key(3)).unwrap();
        let other = snow::Builder::new(params()).generate_keypair().unwrap();
        // The identity payload of `honest`, presented with someone else's Noise key.
        let mut thief = NoiseIdentity::bind(&key(4), other.private, &other.public);
        thief.payload = honest.payload;
        let b = NoiseIdentity::generate(&key(5)).unwrap();
        assert!(matches!(
            handshake(&thief, &b),
            Err(WireError::IdentitySignature)
        ));
        assert!(matches!(
            handshake(&b, &thief),
            Err(WireError::IdentitySignature)
        ));
    }

    #[test]
    fn oversized_and_tampered_frames_are_refused() {
        let a = NoiseIdentity::generate(&key(6)).unwrap();
        let b = NoiseIdentity::generate(&key(7)).unwrap();
        let [(mut seal_a, _, _), (_, mut open_b, _)] = handshake(&a, &b).unwrap();
        assert!(matches!(
            open_b.announced(u32::MAX.to_be_bytes()),
            Err(WireError::Oversized { .. })
        ));
        let mut sealed = Vec::new();
        seal_a.seal(b"hello", &mut sealed).unwrap();
        sealed[6] ^= 1;
        assert_eq!(open_b.open(&sealed[4..]), Err(WireError::Decrypt));
    }
}
