//! Exchanging chains (sans-IO): asking a peer for a range of some owner's chain,
//! incrementally from what is already held, within size limits; checking every answer
//! before believing any of it; and finding forks when two answers disagree. The transport
//! will carry these requests; this module decides what to ask and what to believe.
//!
//! "Longest chain wins": for each owner the book keeps the longest valid chain it has been
//! shown. A record that conflicts with one held at the same position, both signed by the
//! owner, is a fork: the book keeps the proof and the owner is disqualified for good.

use std::collections::BTreeMap;

use super::record::Record;
use super::rules::{verify_range, ChainError, ForkProof};

/// Records already held that every request asks for again, to catch rewritten history.
pub const OVERLAP_RECORDS: u64 = 8;

/// Most records one answer may carry (about 300 KiB).
pub const RANGE_RECORDS_MAX: u32 = 1024;

/// "Send me `owner`'s records from `from_seq` on, at most `max` of them."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRequest {
    pub owner: [u8; 32],
    pub from_seq: u64,
    pub max: u32,
}

/// Why an answer was not believed. The peer that sent it should be marked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    #[error("the answer holds {found} records, more than the {asked} asked for")]
    TooMany { asked: u32, found: usize },
    #[error("the answer starts at record {found}, not at the {asked} asked for")]
    WrongStart { asked: u64, found: u64 },
    #[error("the answer is not a valid continuation: {0}")]
    Invalid(ChainError),
}

/// What an accepted answer changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// Records added to the held chain.
    pub added: usize,
    /// A fork the answer revealed, if any.
    pub fork: Option<ForkProof>,
}

/// Other peers' chains as far as they have been shown and checked, and the forks found.
#[derive(Debug, Default)]
pub struct ChainBook {
    chains: BTreeMap<[u8; 32], Vec<Record>>,
    forks: BTreeMap<[u8; 32], ForkProof>,
}

impl ChainBook {
    /// The longest valid chain of `owner` shown so far.
    pub fn chain(&self, owner: &[u8; 32]) -> &[Record] {
        self.chains.get(owner).map_or(&[], Vec::as_slice)
    }

    pub fn fork(&self, owner: &[u8; 32]) -> Option<&ForkProof> {
        self.forks.get(owner)
    }

    /// A key proven to have forked its chain is never trusted again.
    pub fn disqualified(&self, owner: &[u8; 32]) -> bool {
        self.forks.contains_key(owner)
    }

    /// The next request for `owner`'s chain: the last [`OVERLAP_RECORDS`] records held again
    /// (so that a rewritten recent history shows up as a fork), then whatever follows.
    pub fn next_request(&self, owner: [u8; 32]) -> RangeRequest {
        let held = self.chain(&owner).len() as u64;
        RangeRequest {
            owner,
            from_seq: held.saturating_sub(OVERLAP_RECORDS - 1).max(1),
            max: RANGE_RECORDS_MAX,
        }
    }

    /// Answers a request from `chain` (the owner's chain as this side holds it).
    pub fn serve(chain: &[Record], request: &RangeRequest) -> Vec<Record> {
        let start = usize::try_from(request.from_seq.saturating_sub(1)).unwrap_or(usize::MAX);
        let max = request.max.min(RANGE_RECORDS_MAX) as usize;
        chain.iter().skip(start).take(max).cloned().collect()
    }

    /// Records a fork proof received from someone else, after checking it.
    pub fn learn_fork(&mut self, proof: ForkProof) -> bool {
        if proof.verify().is_err() || self.forks.contains_key(&proof.offender()) {
            return false;
        }
        self.forks.insert(proof.offender(), proof);
        true
    }

    /// Checks an answer to `request` and believes it only if it is valid.
    pub fn receive(
        &mut self,
        request: &RangeRequest,
        records: Vec<Record>,
    ) -> Result<Received, ExchangeError> {
        if records.len() > request.max.min(RANGE_RECORDS_MAX) as usize {
            return Err(ExchangeError::TooMany {
                asked: request.max,
                found: records.len(),
            });
        }
        let Some(first) = records.first() else {
            return Ok(Received::default());
        };
        if first.seq != request.from_seq {
            return Err(ExchangeError::WrongStart {
                asked: request.from_seq,
                found: first.seq,
            });
        }
        let held = self.chains.entry(request.owner).or_default();
        // Records at positions already held: identical ones confirm, a different one signed
        // by the owner is a fork.
        let overlap = held
            .len()
            .saturating_sub(first.seq as usize - 1)
            .min(records.len());
        let before = (first.seq as usize)
            .checked_sub(2)
            .and_then(|i| held.get(i));
        // Every record must be the owner's, and the whole answer a valid continuation of what
        // precedes it.
        if let Some(index) = records.iter().position(|r| r.owner != request.owner) {
            let fault = super::rules::ChainFault::Owner;
            return Err(ExchangeError::Invalid(ChainError {
                index,
                seq: records[index].seq,
                fault,
            }));
        }
        verify_range(before, &records).map_err(ExchangeError::Invalid)?;
        let mut received = Received::default();
        for (offset, record) in records.iter().take(overlap).enumerate() {
            let position = first.seq as usize - 1 + offset;
            if held[position] != *record {
                let proof = ForkProof::new(held[position].clone(), record.clone()).ok();
                if let Some(proof) = proof.clone() {
                    self.forks.entry(proof.offender()).or_insert(proof);
                }
                received.fork = proof;
                // Longest chain wins: a longer valid history replaces the shorter one.
                if first.seq as usize - 1 + records.len() > held.len() {
                    held.truncate(position);
                    held.extend(records[offset..].iter().cloned());
                    received.added = records.len() - offset;
                }
                return Ok(received);
            }
        }
        received.added = records.len() - overlap;
        held.extend(records.into_iter().skip(overlap));
        Ok(received)
    }
}
