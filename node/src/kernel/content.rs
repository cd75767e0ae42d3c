//! Turning content into the chunks a peer publishes, and checking that a payload is the
//! chunk its id names. Content is real bytes (chunked and encrypted by the object writer)
//! or, in the simulator, synthetic: fixed-size chunks whose bytes are never made, under one
//! real manifest object, so a tree is walked by id exactly as a real one is.

use sha2::{Digest, Sha256};

use super::{Challenge, Payload};
use crate::ids::{ChunkId, ChunkKey};
use crate::limits::CHUNK_PLAINTEXT_BYTES_MAX;
use crate::object::crypto::chunk_id;
use crate::object::format::{
    parse_links, ChildRef, Entries, LinkKind, Node, NodeKind, REF_FANOUT_MAX,
};
use crate::object::{WriteConfig, Writer};
use crate::store::Store;

/// Domain separator of synthetic chunk ids.
const SYNTHETIC_DOMAIN: &[u8] = b"cryptosphere/sim/synthetic/v1";

/// Something to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Real bytes, chunked and encrypted as the object format says.
    Bytes(Vec<u8>),
    /// `size` bytes in chunks of `chunk_bytes`, named by `seed`, never materialised.
    Synthetic {
        size: u64,
        seed: u64,
        chunk_bytes: u32,
    },
    /// A tree already in this peer's store (the node writes it there first): its root and
    /// every chunk id it reaches.
    Stored {
        root: ChunkId,
        chunks: Vec<ChunkId>,
        bytes: u64,
    },
}

/// The chunks of a published tree, root first.
#[derive(Debug, Clone)]
pub struct Built {
    pub root: ChunkId,
    pub chunks: Vec<(ChunkId, Payload)>,
    /// Plaintext bytes of the content.
    pub bytes: u64,
}

/// Why content could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    #[error("synthetic chunks of {0} bytes are outside 1 ..= 1 MiB")]
    ChunkSize(u32),
    #[error("synthetic content of {0} bytes needs more chunks than one manifest holds")]
    TooLarge(u64),
    #[error("building the tree failed: {0}")]
    Write(String),
    #[error("a stored tree is already built")]
    AlreadyStored,
}

/// The id of a synthetic chunk.
pub fn synthetic_id(len: u32, seed: u64) -> ChunkId {
    ChunkId(
        Sha256::new()
            .chain_update(SYNTHETIC_DOMAIN)
            .chain_update(len.to_le_bytes())
            .chain_update(seed.to_le_bytes())
            .finalize()
            .into(),
    )
}

/// Does `payload` match `id`? (Real bytes: SHA-256; synthetic: its derived id.)
pub fn payload_matches(id: &ChunkId, payload: &Payload) -> bool {
    match payload {
        Payload::Bytes(bytes) => chunk_id(bytes) == *id,
        Payload::Hashed(hashed) => hashed.id() == *id,
        Payload::Synthetic { len, seed } => synthetic_id(*len, *seed) == *id,
    }
}

/// Domain separator of the audit answer over a synthetic payload.
const SYNTHETIC_AUDIT_DOMAIN: &[u8] = b"cryptosphere/sim/audit/v1";

/// The answer to an audit challenge over `payload`: `SHA-256(nonce ‖ bytes[offset ..
/// offset+len])` for real bytes. A synthetic payload's bytes are never made, so its answer
/// hashes its descriptor (which only a holder has) with the nonce and the range instead.
/// `None` when the range is not inside the payload.
pub fn audit_proof(payload: &Payload, challenge: &Challenge) -> Option<[u8; 32]> {
    let start = challenge.offset as usize;
    let end = start.checked_add(challenge.len as usize)?;
    if challenge.len == 0 || end as u64 > payload.len() {
        return None;
    }
    let hash = match payload {
        Payload::Synthetic { len, seed } => Sha256::new()
            .chain_update(SYNTHETIC_AUDIT_DOMAIN)
            .chain_update(challenge.nonce)
            .chain_update(len.to_le_bytes())
            .chain_update(seed.to_le_bytes())
            .chain_update(challenge.offset.to_le_bytes())
            .chain_update(challenge.len.to_le_bytes())
            .finalize(),
        real => Sha256::new()
            .chain_update(challenge.nonce)
            .chain_update(&real.bytes()?[start..end])
            .finalize(),
    };
    Some(hash.into())
}

/// Builds the chunks of `content`.
pub fn build(content: &Content) -> Result<Built, ContentError> {
    match content {
        Content::Bytes(bytes) => build_real(bytes),
        Content::Synthetic {
            size,
            seed,
            chunk_bytes,
        } => build_synthetic(*size, *seed, *chunk_bytes),
        Content::Stored { .. } => Err(ContentError::AlreadyStored),
    }
}

fn build_real(bytes: &[u8]) -> Result<Built, ContentError> {
    let scratch = Store::memory();
    // Actors never start threads: build sequentially.
    let config = WriteConfig {
        parallel: false,
        ..WriteConfig::default()
    };
    let mut writer = Writer::new(&scratch, config, None);
    let (cap, size) = writer
        .put_file(bytes, &mut |_| {})
        .map_err(|e| ContentError::Write(e.to_string()))?;
    writer
        .finish(None)
        .map_err(|e| ContentError::Write(e.to_string()))?;
    let mut chunks = Vec::new();
    let mut objects = vec![cap.id];
    let get = |id: &ChunkId| {
        scratch
            .get(id)
            .map_err(|e| ContentError::Write(e.to_string()))
    };
    while let Some(id) = objects.pop() {
        let stored = get(&id)?;
        let (links, _) = parse_links(&stored).map_err(|e| ContentError::Write(e.to_string()))?;
        chunks.push((id, Payload::Bytes(stored)));
        for link in links {
            match link.kind {
                LinkKind::Object => objects.push(link.id),
                LinkKind::Data => chunks.push((link.id, Payload::Bytes(get(&link.id)?))),
            }
        }
    }
    Ok(Built {
        root: cap.id,
        chunks,
        bytes: size,
    })
}

fn build_synthetic(size: u64, seed: u64, chunk_bytes: u32) -> Result<Built, ContentError> {
    if chunk_bytes == 0 || chunk_bytes as usize > CHUNK_PLAINTEXT_BYTES_MAX {
        return Err(ContentError::ChunkSize(chunk_bytes));
    }
    let count = size.div_ceil(u64::from(chunk_bytes));
    if count > REF_FANOUT_MAX as u64 {
        return Err(ContentError::TooLarge(size));
    }
    let mut refs = Vec::with_capacity(count as usize);
    let mut data = Vec::with_capacity(count as usize);
    let mut remaining = size;
    for index in 0..count {
        let len = remaining.min(u64::from(chunk_bytes)) as u32;
        remaining -= u64::from(len);
        let chunk_seed = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let id = synthetic_id(len, chunk_seed);
        // Synthetic chunks are never decrypted; the key only has to be well-formed.
        refs.push(ChildRef {
            id,
            key: ChunkKey(id.0),
            covered: u64::from(len),
        });
        data.push((
            id,
            Payload::Synthetic {
                len,
                seed: chunk_seed,
            },
        ));
    }
    let node = Node {
        kind: NodeKind::File,
        level: 0,
        total: size,
        entries: Entries::Refs(refs),
    };
    let root = node.seal(None);
    let mut chunks = vec![(root.id, Payload::Bytes(root.stored))];
    chunks.extend(data);
    Ok(Built {
        root: root.id,
        chunks,
        bytes: size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_content_build_trees_walkable_by_id() {
        for content in [
            Content::Bytes((0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect()),
            Content::Synthetic {
                size: 1_000_000,
                seed: 9,
                chunk_bytes: 262_144,
            },
        ] {
            let built = build(&content).unwrap();
            assert_eq!(built.chunks[0].0, built.root);
            assert!(built.chunks.len() >= 3, "{}", built.chunks.len());
            for (id, payload) in &built.chunks {
                assert!(payload_matches(id, payload));
            }
            let Payload::Bytes(root) = &built.chunks[0].1 else {
                panic!("root is real")
            };
            let (links, _) = parse_links(root).unwrap();
            assert_eq!(links.len() + 1, built.chunks.len());
        }
        assert_eq!(
            build(&Content::Synthetic {
                size: 10,
                seed: 1,
                chunk_bytes: 0
            })
            .unwrap_err(),
            ContentError::ChunkSize(0)
        );
    }
}
