//! The one ed25519 acceptance rule of chains, the same for a signature checked alone and in
//! a batch of any size or company (`docs/chain-format.md` §4, Signatures). It owns the
//! verification equations; it must not depend on what else is in a batch.
//!
//! The rule: the public key `A` and the signature's `R` are canonical encodings of curve
//! points, `A` is not of small order, `S` is a canonical scalar (below the group order `L`),
//! and the **cofactored** equation `[8]([S]B − [k]A − R) = 0` holds, with
//! `k = SHA-512(R ‖ A ‖ message) mod L` (the equation of ZIP-215, with its encodings
//! made strict). Small-order components of `R` or `A` are thereby annihilated in every
//! check. ed25519-dalek's own batch checks the cofactorless equation with random weights,
//! so a signature carrying a torsion component passes or fails depending on the weights;
//! here a batch multiplies by the cofactor too, and so accepts exactly when every
//! signature in it would alone (but for a chance of about 2^-125 per forged batch).
//!
//! A batch's weights come from SHA-512 over everything in it: actors draw no randomness for
//! it, and a signer cannot choose them without changing what they weigh.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// Domain separator of a batch's weights.
const WEIGHTS_DOMAIN: &[u8] = b"cryptosphere/chain/batch-weights/v1";

/// One signature to check: the signer's public key, the message, the signature.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub key: &'a [u8; 32],
    pub message: &'a [u8],
    pub signature: &'a [u8; 64],
}

/// A signature's parts, once its encodings passed.
struct Parsed {
    key: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Is `bytes` the one encoding of its point: `y` (the low 255 bits) below
/// `p = 2^255 − 19`, and no sign bit on a point whose `x` is 0 (`y` = 1 or `y` = −1)? The
/// decoder reduces other encodings silently; this is what compressing the decoded point
/// again would tell, without the field inversion.
fn canonical(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    let sign = bytes[31] >> 7;
    let middle_ones = bytes[1..31].iter().all(|b| *b == 0xff);
    let at_least_p = top == 0x7f && middle_ones && bytes[0] >= 0xed;
    let is_one = bytes[0] == 1 && bytes[1..31].iter().all(|b| *b == 0) && top == 0;
    let is_minus_one = bytes[0] == 0xec && middle_ones && top == 0x7f;
    !at_least_p && !(sign == 1 && (is_one || is_minus_one))
}

/// The point `bytes` encode, if the encoding is the canonical one.
fn point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !canonical(bytes) {
        return None;
    }
    CompressedEdwardsY(*bytes).decompress()
}

/// Keys found usable, with their decoded points, at most this many per thread; when full
/// the memo starts again empty.
pub const KEY_MEMO_ENTRIES_MAX: usize = 1 << 16;

/// The key `bytes` encode, if it is usable: canonical and not of small order. Usable keys
/// are remembered with their points (decoding one costs a field inversion, and a chain names
/// the same few keys on every record).
fn key_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if let Some(known) = KEYS.with(|keys| keys.borrow().get(bytes).copied()) {
        return Some(known);
    }
    let key = point(bytes).filter(|key| !key.is_small_order())?;
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() >= KEY_MEMO_ENTRIES_MAX {
            keys.clear();
        }
        keys.insert(*bytes, key);
    });
    Some(key)
}

/// Is `bytes` a key signatures can be checked under (canonical, not of small order)? The
/// one rule for keys on chains, agreements and fork proofs.
pub fn key_usable(bytes: &[u8; 32]) -> bool {
    key_point(bytes).is_some()
}

fn wide_scalar(digest: impl Into<[u8; 64]>) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&digest.into())
}

/// Parses `item`, its key already parsed (`key`: `None` when it is not usable).
fn parse(item: &Signed<'_>, key: Option<EdwardsPoint>) -> Option<Parsed> {
    let key = key?;
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&item.signature[..32]);
    let r = point(&r_bytes)?;
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&item.signature[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let k = wide_scalar(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(item.key)
            .chain_update(item.message)
            .finalize(),
    );
    Some(Parsed { key, r, s, k })
}

/// Slots of each digest cache (a direct-mapped table of 32-byte digests, 8 MiB per
/// thread, allocated on first use).
pub const MEMO_SLOTS: usize = 1 << 18;

/// A direct-mapped cache of SHA-256 digests: a digest goes in the slot its first eight
/// bytes name, displacing whatever was there. A miss only costs a check again, so it needs
/// no eviction policy, has no order to leak, and a digest ground to one slot only
/// displaces others.
#[derive(Debug)]
pub(crate) struct DigestCache {
    slots: Vec<[u8; 32]>,
}

impl DigestCache {
    pub(crate) const fn new() -> DigestCache {
        DigestCache { slots: Vec::new() }
    }

    fn slot(digest: &[u8; 32]) -> usize {
        let mut low = [0u8; 8];
        low.copy_from_slice(&digest[..8]);
        (u64::from_le_bytes(low) as usize) & (MEMO_SLOTS - 1)
    }

    pub(crate) fn contains(&self, digest: &[u8; 32]) -> bool {
        // The all-zero digest marks an empty slot, so it is never taken as known.
        *digest != [0; 32] && self.slots.get(Self::slot(digest)) == Some(digest)
    }

    pub(crate) fn insert(&mut self, digest: [u8; 32]) {
        if self.slots.is_empty() {
            self.slots = vec![[0; 32]; MEMO_SLOTS];
        }
        self.slots[Self::slot(&digest)] = digest;
    }

    pub(crate) fn clear(&mut self) {
        self.slots = Vec::new();
    }
}

thread_local! {
    /// Verification is a pure function, so a verdict of "good" is remembered: a record's
    /// signatures are checked once per thread however many peers read it (thousands of
    /// simulated peers share one thread; a node sees a record again in every chain read
    /// that overlaps). A failure is never remembered, so a bad signature costs its full
    /// check each time, and no verdict can differ from the uncached one.
    static MEMO: std::cell::RefCell<DigestCache> = const { std::cell::RefCell::new(DigestCache::new()) };
    /// Usable keys and their points: a pure function's memo too (an unusable key is never
    /// remembered).
    static KEYS: std::cell::RefCell<std::collections::BTreeMap<[u8; 32], EdwardsPoint>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

fn digest(item: &Signed<'_>) -> [u8; 32] {
    let mut hash = sha2::Sha256::new();
    hash.update(item.key);
    hash.update(item.signature);
    hash.update(item.message);
    hash.finalize().into()
}

/// Empties this thread's memos (benchmarks measure the checks themselves).
pub fn forget() {
    MEMO.with(|memo| memo.borrow_mut().clear());
    KEYS.with(|keys| keys.borrow_mut().clear());
    super::rules::forget();
}

fn remembered(digest: &[u8; 32]) -> bool {
    MEMO.with(|memo| memo.borrow().contains(digest))
}

fn remember(digests: impl IntoIterator<Item = [u8; 32]>) {
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        for digest in digests {
            memo.insert(digest);
        }
    });
}

/// Signs `message` with `key`, and remembers the signature as good in this thread: a
/// signature made with the signer's own key passes the rule above by construction (the
/// key, derived from a secret, is canonical and of large order; `R` and `S` come out
/// canonical; the cofactorless equation holds, so the cofactored one does), so checking it
/// later here (the signer's counterparty and readers, in the simulator's one thread) costs
/// a lookup. Debug builds check it in full once. The memo's table (8 MiB) is made on the
/// signing thread if it has none yet.
pub fn sign(key: &ed25519_dalek::SigningKey, message: &[u8]) -> [u8; 64] {
    use ed25519_dalek::Signer;
    let signature = key.sign(message).to_bytes();
    let public = key.verifying_key().to_bytes();
    let item = Signed {
        key: &public,
        message,
        signature: &signature,
    };
    debug_assert!(verify_uncached(&item), "an honest signature passes");
    remember([digest(&item)]);
    signature
}

/// Is `item` a good signature by the rule above?
pub fn verify(item: &Signed<'_>) -> bool {
    let digest = digest(item);
    if remembered(&digest) {
        return true;
    }
    let good = verify_uncached(item);
    if good {
        remember([digest]);
    }
    good
}

/// Are all of `items` good signatures? The same verdict as [`verify`] on each; those not
/// remembered are checked in one batch ([`batch_uncached`]).
pub fn verify_batch(items: &[Signed<'_>]) -> bool {
    let (digests, unknown): (Vec<[u8; 32]>, Vec<Signed<'_>>) = items
        .iter()
        .map(|item| (digest(item), *item))
        .filter(|(digest, _)| !remembered(digest))
        .unzip();
    if unknown.is_empty() {
        return true;
    }
    let good = batch_uncached(&unknown);
    if good {
        remember(digests);
    }
    good
}

fn verify_uncached(item: &Signed<'_>) -> bool {
    let Some(p) = parse(item, key_point(item.key)) else {
        return false;
    };
    // [S]B − [k]A − R, times the cofactor.
    let difference = EdwardsPoint::vartime_double_scalar_mul_basepoint(&-p.k, &p.key, &p.s) - p.r;
    difference.mul_by_cofactor().is_identity()
}

/// Are all of `items` good signatures? The same verdict as [`verify_uncached`] on each, in
/// one multiscalar multiplication (the terms of a key that signs many items are summed
/// first).
pub fn batch_uncached(items: &[Signed<'_>]) -> bool {
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        match parse(item, key_point(item.key)) {
            Some(p) => parsed.push(p),
            None => return false,
        }
    }
    if parsed.is_empty() {
        return true;
    }
    // The weights: 128-bit scalars from a hash of the whole batch.
    let mut transcript = Sha512::new().chain_update(WEIGHTS_DOMAIN);
    for item in items {
        transcript.update(item.key);
        transcript.update(item.signature);
        transcript.update(Sha512::digest(item.message));
    }
    let seed = transcript.finalize();
    // Σ z_i ([S_i]B − [k_i]A_i − R_i): B's scalar, each R_i's, and each distinct key's.
    let mut b_scalar = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(parsed.len() + 4);
    let mut points = Vec::with_capacity(parsed.len() + 4);
    let mut key_terms: std::collections::BTreeMap<&[u8; 32], (Scalar, EdwardsPoint)> =
        std::collections::BTreeMap::new();
    for (index, (p, item)) in parsed.iter().zip(items).enumerate() {
        let weight: [u8; 64] = Sha512::new()
            .chain_update(seed)
            .chain_update((index as u64).to_le_bytes())
            .finalize()
            .into();
        let mut z_bytes = [0u8; 32];
        z_bytes[..16].copy_from_slice(&weight[..16]);
        let z = Scalar::from_bytes_mod_order(z_bytes);
        b_scalar += z * p.s;
        scalars.push(-z);
        points.push(p.r);
        let term = key_terms.entry(item.key).or_insert((Scalar::ZERO, p.key));
        term.0 -= z * p.k;
    }
    scalars.push(b_scalar);
    points.push(ED25519_BASEPOINT_POINT);
    for (scalar, point) in key_terms.into_values() {
        scalars.push(scalar);
        points.push(point);
    }
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    /// A signature made here is remembered as good, and is good by the rule itself; the
    /// memo holds exactly it: another message, key or signature byte is checked in full
    /// and fails.
    #[test]
    fn a_signature_made_here_is_remembered_and_nothing_near_it_is() {
        forget();
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        let message = b"a record's signed body".to_vec();
        let signature = sign(&key, &message);
        let item = Signed {
            key: &public,
            message: &message,
            signature: &signature,
        };
        assert!(remembered(&digest(&item)));
        assert!(verify_uncached(&item));
        assert!(verify(&item) && verify_batch(&[item]));
        let mut altered = message.clone();
        altered[0] ^= 1;
        // S out of range (its top byte), S still canonical (its low bit), and R.
        let (mut bad_top, mut bad_low, mut bad_r) = (signature, signature, signature);
        bad_top[63] ^= 0x10;
        bad_low[32] ^= 1;
        bad_r[0] ^= 1;
        for (key, message, signature) in [
            (&public, &altered, &signature),
            (&other, &message, &signature),
            (&public, &message, &bad_top),
            (&public, &message, &bad_low),
            (&public, &message, &bad_r),
        ] {
            let item = Signed {
                key,
                message,
                signature,
            };
            assert!(!remembered(&digest(&item)));
            assert!(!verify(&item) && !verify_batch(&[item]));
        }
        forget();
    }

    #[test]
    fn honest_signatures_pass_and_altered_ones_fail_alone_and_in_batches() {
        let keys: Vec<SigningKey> = (1..=3u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let messages: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let signed: Vec<([u8; 32], [u8; 64])> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let key = &keys[i % keys.len()];
                (key.verifying_key().to_bytes(), key.sign(m).to_bytes())
            })
            .collect();
        let items: Vec<Signed<'_>> = signed
            .iter()
            .zip(&messages)
            .map(|((key, signature), message)| Signed {
                key,
                message,
                signature,
            })
            .collect();
        assert!(items.iter().all(verify));
        assert!(items.iter().all(verify_uncached) && batch_uncached(&items));
        assert!(verify_batch(&items));
        assert!(verify_batch(&[]));
        let mut bad = signed[3].1;
        bad[40] ^= 1;
        let mut altered = items.clone();
        altered[3].signature = &bad;
        assert!(!verify(&altered[3]) && !verify_uncached(&altered[3]));
        assert!(!verify_batch(&altered) && !batch_uncached(&altered));
        // A good signature remembered does not make a bad one pass.
        assert!(verify(&items[3]) && !verify(&altered[3]));
        // S at or above the group order is refused, though it would satisfy the equation.
        let mut high = signed[0].1;
        let s = Scalar::from_canonical_bytes(high[32..].try_into().unwrap()).unwrap();
        let l_plus_s = add_order(&s);
        high[32..].copy_from_slice(&l_plus_s);
        let item = Signed {
            signature: &high,
            ..items[0]
        };
        assert!(!verify(&item) && !verify_batch(&[item]));
    }

    /// The byte test of canonical encodings says what compressing the decoded point says.
    #[test]
    fn canonical_encodings_are_told_from_the_bytes() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        let mut samples: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|p| p.compress().to_bytes())
            .collect();
        // y = p − 1 + k (k = 0..=20) and y = k, with either sign bit.
        for k in 0u8..=20 {
            let mut high = [0xffu8; 32];
            high[31] = 0x7f;
            high[0] = 0xec_u8.wrapping_add(k);
            if k > 0x13 {
                continue;
            }
            let mut low = [0u8; 32];
            low[0] = k;
            samples.extend([high, low]);
        }
        for seed in 0u8..64 {
            samples.push(Sha512::digest([seed]).as_slice()[..32].try_into().unwrap());
        }
        for bytes in samples {
            for sign in [0u8, 0x80] {
                let mut b = bytes;
                b[31] = (b[31] & 0x7f) | sign;
                let by_compressing = CompressedEdwardsY(b)
                    .decompress()
                    .map(|p| p.compress().to_bytes() == b);
                if let Some(same) = by_compressing {
                    assert_eq!(canonical(&b), same, "{b:02x?}");
                }
            }
        }
    }

    /// `s + L` as 32 little-endian bytes (it fits: s < L < 2^253).
    fn add_order(s: &Scalar) -> [u8; 32] {
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for (i, (a, b)) in s.as_bytes().iter().zip(L).enumerate() {
            let sum = u16::from(*a) + u16::from(b) + carry;
            out[i] = sum as u8;
            carry = sum >> 8;
        }
        out
    }
}
