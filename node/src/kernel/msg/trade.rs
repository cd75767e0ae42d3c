//! The trade protocol: storage contracts between two peers. A requester proposes terms
//! ("hold `bytes` for me for `term_s`; I hold `reciprocal_bytes` for you"); the provider's
//! strategy accepts them, counters with terms it would accept, or refuses
//! ([`super::Refusal::Declined`]). Either side may end a contract; a holder that restarts
//! without chunks it held tells their owner. The negotiator serves it.

use serde::{Deserialize, Serialize};

/// The terms of a storage contract, from the requester's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// Bytes the provider holds for the requester.
    pub bytes: u64,
    /// Bytes the requester holds for the provider in return (storage for storage); the rest
    /// is drawn on the provider's credit.
    pub reciprocal_bytes: u64,
    /// Length of a term, seconds; the contract is judged and renewed (or not) at its end.
    pub term_s: u32,
}

/// A trade request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeRequest {
    /// Let us make (or change) a contract on these terms.
    Propose(Terms),
    /// I end our contract: each side's quota for the other falls to the stranger allowance.
    End,
    /// I held these chunks for you and no longer do: they were not on my disk when I
    /// restarted. Place them elsewhere.
    Lost { chunks: Vec<crate::ids::ChunkId> },
}

/// The answer to a [`TradeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeResponse {
    /// The contract stands on these terms (the ones proposed).
    Accepted(Terms),
    /// Not these terms, but these (the provider's strategy would accept them).
    Countered(Terms),
    /// The contract is ended.
    Ended,
    /// The loss is taken note of.
    NotedLost,
}

impl TradeRequest {
    pub(super) fn body_len(&self) -> u64 {
        match self {
            TradeRequest::Propose(_) => 1 + 8 + 8 + 4,
            TradeRequest::End => 1,
            TradeRequest::Lost { chunks } => 1 + 4 + 32 * chunks.len() as u64,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            TradeRequest::Propose(_) => 24,
            TradeRequest::End => 25,
            TradeRequest::Lost { .. } => 54,
        }
    }

    pub(super) fn admits(&self, response: &TradeResponse) -> bool {
        use TradeResponse as A;
        match self {
            TradeRequest::Propose(_) => matches!(response, A::Accepted(_) | A::Countered(_)),
            TradeRequest::End => matches!(response, A::Ended),
            TradeRequest::Lost { .. } => matches!(response, A::NotedLost),
        }
    }
}

impl TradeResponse {
    pub(super) fn body_len(&self) -> u64 {
        match self {
            TradeResponse::Accepted(_) | TradeResponse::Countered(_) => 1 + 8 + 8 + 4,
            TradeResponse::Ended | TradeResponse::NotedLost => 1,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            TradeResponse::Accepted(_) => 26,
            TradeResponse::Countered(_) => 27,
            TradeResponse::Ended => 28,
            TradeResponse::NotedLost => 55,
        }
    }
}
