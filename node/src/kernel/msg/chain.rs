//! The chain protocol: the three steps of a chain agreement, reading ranges of a chain, and
//! fork proofs (`docs/chain-format.md`). The reputation filter serves it.

use serde::{Deserialize, Serialize};

use crate::chain::agreement::{Acceptance, Proposal};
use crate::chain::exchange::RangeRequest;
use crate::chain::{ForkProof, Record, RECORD_BYTES};

/// A chain request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainRequest {
    /// Let us record a service on both our chains (step 1 of the chain agreement).
    Agree(Box<Proposal>),
    /// My signature on your half (step 3 of the chain agreement).
    Countersign {
        #[serde(with = "crate::wire::fixed::bytes64")]
        on_provider_half: [u8; 64],
    },
    /// Send me these records of this owner's chain.
    Range(RangeRequest),
    /// Proof that a key forked its chain.
    Fork(Box<ForkProof>),
}

/// The answer to a [`ChainRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainResponse {
    /// Step 2 of the chain agreement.
    Accepted(Box<Acceptance>),
    /// Records are shared: the simulator passes an owner's record to every reader without
    /// copying it (on the wire, each is its encoding; `docs/wire-protocol.md`).
    Records(Vec<std::sync::Arc<Record>>),
    /// Done (a countersignature or a fork proof taken in).
    Noted,
}

impl ChainRequest {
    pub(super) fn body_len(&self) -> u64 {
        match self {
            // Keys, positions and the transaction (kind, quantities, time, outcome,
            // commitment).
            ChainRequest::Agree(_) => 1 + 32 + 8 + 32 + 32 + (1 + 8 * 4 + 1 + 32),
            ChainRequest::Countersign { .. } => 1 + 64,
            ChainRequest::Range(_) => 1 + 32 + 8 + 4,
            ChainRequest::Fork(_) => 1 + 2 * RECORD_BYTES as u64,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            ChainRequest::Agree(_) => 5,
            ChainRequest::Countersign { .. } => 6,
            ChainRequest::Range(_) => 7,
            ChainRequest::Fork(_) => 8,
        }
    }

    pub(super) fn admits(&self, response: &ChainResponse) -> bool {
        use ChainResponse as A;
        match self {
            ChainRequest::Agree(_) => matches!(response, A::Accepted(_)),
            ChainRequest::Countersign { .. } | ChainRequest::Fork(_) => {
                matches!(response, A::Noted)
            }
            ChainRequest::Range(_) => matches!(response, A::Records(_)),
        }
    }
}

impl ChainResponse {
    pub(super) fn body_len(&self) -> u64 {
        match self {
            ChainResponse::Accepted(_) => 1 + 8 + 32 + 64 + 64,
            ChainResponse::Records(records) => 1 + 4 + RECORD_BYTES as u64 * records.len() as u64,
            ChainResponse::Noted => 1,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            ChainResponse::Accepted(_) => 17,
            ChainResponse::Records(_) => 19,
            ChainResponse::Noted => 20,
        }
    }
}
