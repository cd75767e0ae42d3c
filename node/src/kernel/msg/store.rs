//! The storage protocol: keep a chunk, send one back, say which of some chunks are still
//! held, and prove it holds them (audits). The store actor serves it.

use serde::{Deserialize, Serialize};

use crate::ids::ChunkId;
use crate::kernel::Payload;

/// A storage request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreRequest {
    /// Keep this chunk for me; `announce`: it is a tree's root, so tell the network (with a
    /// provider record) that you hold it.
    Store {
        chunk: ChunkId,
        payload: Payload,
        announce: bool,
    },
    /// Send me this chunk.
    Fetch { chunk: ChunkId },
    /// Do you still hold these chunks?
    Check { chunks: Vec<ChunkId> },
    /// Prove you hold these chunks: answer each challenge with
    /// `SHA-256(nonce ‖ chunk[offset .. offset + len])`.
    Audit { challenges: Vec<Challenge> },
}

/// One audit challenge: a fresh nonce and a range of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub chunk: ChunkId,
    pub nonce: [u8; 16],
    pub offset: u32,
    pub len: u32,
}

/// The answer to a [`StoreRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreResponse {
    Stored,
    Chunk {
        payload: Payload,
    },
    NotFound,
    Holding {
        missing: Vec<ChunkId>,
    },
    /// One answer per challenge, in order: the hash, or `None` for a chunk not held.
    Proofs {
        proofs: Vec<Option<[u8; 32]>>,
    },
}

impl StoreRequest {
    pub(super) fn body_len(&self) -> u64 {
        match self {
            StoreRequest::Store { payload, .. } => 1 + 32 + super::payload_wire_len(payload) + 1,
            StoreRequest::Fetch { .. } => 1 + 32,
            StoreRequest::Check { chunks } => 1 + 4 + 32 * chunks.len() as u64,
            StoreRequest::Audit { challenges } => 1 + 4 + (32 + 16 + 8) * challenges.len() as u64,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            StoreRequest::Store { .. } => 2,
            StoreRequest::Fetch { .. } => 3,
            StoreRequest::Check { .. } => 4,
            StoreRequest::Audit { .. } => 29,
        }
    }

    pub(super) fn admits(&self, response: &StoreResponse) -> bool {
        use StoreResponse as A;
        match self {
            StoreRequest::Store { .. } => matches!(response, A::Stored),
            StoreRequest::Fetch { .. } => matches!(response, A::Chunk { .. } | A::NotFound),
            StoreRequest::Check { .. } => matches!(response, A::Holding { .. }),
            StoreRequest::Audit { challenges } => {
                matches!(response, A::Proofs { proofs } if proofs.len() == challenges.len())
            }
        }
    }
}

impl StoreResponse {
    pub(super) fn body_len(&self) -> u64 {
        match self {
            StoreResponse::Stored | StoreResponse::NotFound => 1,
            StoreResponse::Chunk { payload } => 1 + super::payload_wire_len(payload),
            StoreResponse::Holding { missing } => 1 + 4 + 32 * missing.len() as u64,
            StoreResponse::Proofs { proofs } => 1 + 4 + 33 * proofs.len() as u64,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            StoreResponse::Stored => 12,
            StoreResponse::Chunk { .. } => 14,
            StoreResponse::NotFound => 15,
            StoreResponse::Holding { .. } => 16,
            StoreResponse::Proofs { .. } => 30,
        }
    }
}
