//! Newtypes for the two 32-byte hashes everything is addressed by, and their text form
//! (lowercase RFC 4648 base32 without padding, 52 characters).

use std::fmt;

use data_encoding::BASE32_NOPAD;

/// SHA-256 of a stored chunk's bytes (its ciphertext). Knowing it lets you find, store,
/// serve and verify the chunk, never read it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChunkId(pub [u8; 32]);

/// Byte order of two 32-byte values (what `[u8; 32]`'s `Ord` gives), four words at a time:
/// ids are the keys of most tables, and this compare stays inline.
#[inline]
pub fn cmp32(a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
    for i in 0..4 {
        let word = |x: &[u8; 32]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&x[i * 8..i * 8 + 8]);
            u64::from_be_bytes(w)
        };
        match word(a).cmp(&word(b)) {
            std::cmp::Ordering::Equal => {}
            other => return other,
        }
    }
    std::cmp::Ordering::Equal
}

impl Ord for ChunkId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        cmp32(&self.0, &other.0)
    }
}

impl PartialOrd for ChunkId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The AES-256 key of one chunk: SHA-256 (or HMAC-SHA-256) of its plaintext.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChunkKey(pub [u8; 32]);

/// Text form of a 32-byte hash: lowercase base32, no padding.
pub fn encode_base32(bytes: &[u8; 32]) -> String {
    BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
}

/// Why a base32 field did not decode to 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base32Error {
    #[error("is {0} characters long; a 32-byte hash is 52")]
    Length(usize),
    #[error("is not valid base32 ({0})")]
    Invalid(String),
}

/// Parses the text form written by [`encode_base32`]. Only lowercase is accepted, so each
/// hash (and so each capability) has exactly one spelling.
pub fn decode_base32(text: &str) -> Result<[u8; 32], Base32Error> {
    if text.len() != 52 {
        return Err(Base32Error::Length(text.len()));
    }
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Base32Error::Invalid(
            "uppercase letters; the text form is lowercase".into(),
        ));
    }
    let upper = text.to_ascii_uppercase();
    let bytes = BASE32_NOPAD
        .decode(upper.as_bytes())
        .map_err(|e| Base32Error::Invalid(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|v: Vec<u8>| Base32Error::Length(v.len()))
}

impl ChunkId {
    pub fn to_base32(&self) -> String {
        encode_base32(&self.0)
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.to_base32())
    }
}

impl fmt::Debug for ChunkKey {
    // Keys are secrets: never print them by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word-wise compare is the byte order.
        #[test]
        fn cmp32_is_byte_order(
            a in proptest::array::uniform32(proptest::num::u8::ANY),
            b in proptest::array::uniform32(proptest::num::u8::ANY),
            shared in 0usize..32,
        ) {
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            proptest::prop_assert_eq!(cmp32(&a, &b), a.cmp(&b));
            proptest::prop_assert_eq!(cmp32(&a, &a), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn base32_round_trips_and_rejects_bad_text() {
        let bytes = [0xA5u8; 32];
        let text = encode_base32(&bytes);
        assert_eq!(text.len(), 52);
        assert_eq!(decode_base32(&text), Ok(bytes));
        assert!(matches!(
            decode_base32(&text.to_ascii_uppercase()),
            Err(Base32Error::Invalid(_))
        ));
        assert_eq!(decode_base32("abc"), Err(Base32Error::Length(3)));
        let bad = format!("{}1", &text[..51]);
        assert!(matches!(decode_base32(&bad), Err(Base32Error::Invalid(_))));
    }

    #[test]
    fn base32_rejects_nonzero_trailing_bits() {
        // 52 characters carry 260 bits; the last 4 must be zero or two strings would name
        // the same hash.
        let text = encode_base32(&[0u8; 32]);
        let bad = format!("{}b", &text[..51]);
        assert!(decode_base32(&bad).is_err());
    }
}
