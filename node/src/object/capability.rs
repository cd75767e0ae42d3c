//! Capabilities: the printable strings that grant access to a tree.
//!
//! - read capability `cs:r:<id>:<key>`: the root object's id (to find it) and key (to read it);
//! - verify capability `cs:v:<id>`: the id alone, enough to check and repair, never to read.
//!
//! `cs:r:` and `cs:v:` are the version-1 tags; ids and keys are lowercase base32 (52 chars).

use std::fmt;
use std::str::FromStr;

use crate::ids::{decode_base32, encode_base32, Base32Error, ChunkId, ChunkKey};

/// Longest string a capability parser looks at; anything longer is refused before parsing.
pub const CAPABILITY_CHARS_MAX: usize = 128;

/// Read access to a tree: the id and the key of its root object.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReadCap {
    pub id: ChunkId,
    pub key: ChunkKey,
}

/// Check-only access to a tree: the id of its root object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyCap {
    pub id: ChunkId,
}

/// Either kind of capability, as parsed from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Read(ReadCap),
    Verify(VerifyCap),
}

/// Why a capability string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    #[error("a capability is at most {CAPABILITY_CHARS_MAX} bytes long; this one has {0}")]
    TooLong(usize),
    #[error("a capability starts with \"cs:\"")]
    MissingPrefix,
    #[error("unknown capability kind {0:?}: expected \"r\" (read) or \"v\" (verify)")]
    UnknownKind(String),
    #[error("a {kind} capability has {expected} fields after its kind, this one has {found}")]
    FieldCount {
        kind: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("its {field} {source}")]
    Field {
        field: &'static str,
        source: Base32Error,
    },
    #[error("this is a verify capability: it can check a tree but not read it; a read capability (cs:r:...) is needed")]
    NotReadable,
}

impl ReadCap {
    /// The verify capability that this read capability implies.
    pub fn verify_cap(&self) -> VerifyCap {
        VerifyCap { id: self.id }
    }
}

impl Capability {
    pub fn id(&self) -> ChunkId {
        match self {
            Capability::Read(cap) => cap.id,
            Capability::Verify(cap) => cap.id,
        }
    }

    /// The read capability, or a clear refusal for a verify capability.
    pub fn readable(&self) -> Result<ReadCap, CapError> {
        match self {
            Capability::Read(cap) => Ok(*cap),
            Capability::Verify(_) => Err(CapError::NotReadable),
        }
    }
}

fn field(text: &str, name: &'static str) -> Result<[u8; 32], CapError> {
    decode_base32(text).map_err(|source| CapError::Field {
        field: name,
        source,
    })
}

impl FromStr for Capability {
    type Err = CapError;

    fn from_str(text: &str) -> Result<Self, CapError> {
        if text.len() > CAPABILITY_CHARS_MAX {
            return Err(CapError::TooLong(text.len()));
        }
        let rest = text.strip_prefix("cs:").ok_or(CapError::MissingPrefix)?;
        let mut parts = rest.split(':');
        let kind = parts.next().unwrap_or_default();
        let fields: Vec<&str> = parts.collect();
        match kind {
            "r" => {
                if fields.len() != 2 {
                    return Err(CapError::FieldCount {
                        kind: "read",
                        expected: 2,
                        found: fields.len(),
                    });
                }
                Ok(Capability::Read(ReadCap {
                    id: ChunkId(field(fields[0], "id")?),
                    key: ChunkKey(field(fields[1], "key")?),
                }))
            }
            "v" => {
                if fields.len() != 1 {
                    return Err(CapError::FieldCount {
                        kind: "verify",
                        expected: 1,
                        found: fields.len(),
                    });
                }
                Ok(Capability::Verify(VerifyCap {
                    id: ChunkId(field(fields[0], "id")?),
                }))
            }
            other => Err(CapError::UnknownKind(other.chars().take(16).collect())),
        }
    }
}

impl fmt::Display for ReadCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cs:r:{}:{}",
            encode_base32(&self.id.0),
            encode_base32(&self.key.0)
        )
    }
}

impl fmt::Debug for ReadCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadCap({}, ..)", self.id)
    }
}

impl fmt::Display for VerifyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cs:v:{}", encode_base32(&self.id.0))
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Read(cap) => cap.fmt(f),
            Capability::Verify(cap) => cap.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ReadCap {
        ReadCap {
            id: ChunkId([3; 32]),
            key: ChunkKey([9; 32]),
        }
    }

    #[test]
    fn read_and_verify_caps_round_trip() {
        let cap = sample();
        let text = cap.to_string();
        assert!(text.starts_with("cs:r:"));
        assert_eq!(text.parse::<Capability>(), Ok(Capability::Read(cap)));
        let verify = cap.verify_cap().to_string();
        assert_eq!(
            verify.parse::<Capability>(),
            Ok(Capability::Verify(cap.verify_cap()))
        );
        assert_eq!(
            verify.parse::<Capability>().unwrap().readable(),
            Err(CapError::NotReadable)
        );
    }

    #[test]
    fn malformed_caps_say_what_is_wrong() {
        let good = sample().to_string();
        let id = &good[5..57];
        let cases: Vec<(String, CapError)> = vec![
            ("".into(), CapError::MissingPrefix),
            ("hello".into(), CapError::MissingPrefix),
            ("cs:x:abc".into(), CapError::UnknownKind("x".into())),
            (
                format!("cs:r:{id}"),
                CapError::FieldCount {
                    kind: "read",
                    expected: 2,
                    found: 1,
                },
            ),
            (
                format!("cs:v:{id}:{id}"),
                CapError::FieldCount {
                    kind: "verify",
                    expected: 1,
                    found: 2,
                },
            ),
            (
                format!("cs:r:{id}:short"),
                CapError::Field {
                    field: "key",
                    source: Base32Error::Length(5),
                },
            ),
            ("x".repeat(500), CapError::TooLong(500)),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Capability>(), Err(expected), "{text}");
        }
        let bad_char = format!("cs:v:{}0", &id[..51]);
        assert!(matches!(
            bad_char.parse::<Capability>(),
            Err(CapError::Field { field: "id", .. })
        ));
        // Messages are sentences a user can act on.
        let message = format!("cs:r:{id}")
            .parse::<Capability>()
            .unwrap_err()
            .to_string();
        assert!(message.contains("2 fields"), "{message}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = text.parse::<Capability>();
        }

        #[test]
        fn any_cap_round_trips(id in any::<[u8; 32]>(), key in any::<[u8; 32]>()) {
            let cap = ReadCap { id: ChunkId(id), key: ChunkKey(key) };
            prop_assert_eq!(cap.to_string().parse::<Capability>(), Ok(Capability::Read(cap)));
        }
    }
}
