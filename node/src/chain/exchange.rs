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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    #[error("the answer starts at record {found}, after the {asked} asked for")]
    WrongStart { asked: u64, found: u64 },
    #[error("the answer is not a valid continuation: {0}")]
    Invalid(ChainError),
}

/// What an accepted answer changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// Records added to the held chain.
    pub added: usize,
    /// A fork the answer revealed that was not known before, if any.
    pub fork: Option<ForkProof>,
}

/// Other peers' chains as far as they have been shown and checked, and the forks found.
///
/// **Bounded.** The book holds at most `records_max` records in all; past it, the chains
/// extended longest ago go first, whole (the next read of such an owner starts again from
/// its first record). Fork proofs are never evicted: forgetting one would trust a forker
/// again, and each is two records.
#[derive(Debug)]
pub struct ChainBook {
    chains: BTreeMap<[u8; 32], Vec<Record>>,
    forks: BTreeMap<[u8; 32], ForkProof>,
    records: usize,
    records_max: usize,
    /// When each owner's chain was last extended (a counter), for eviction.
    touched: BTreeMap<[u8; 32], u64>,
    clock: u64,
}

impl Default for ChainBook {
    fn default() -> Self {
        ChainBook::with_records_max(usize::MAX)
    }
}

impl ChainBook {
    pub fn with_records_max(records_max: usize) -> ChainBook {
        ChainBook {
            chains: BTreeMap::new(),
            forks: BTreeMap::new(),
            records: 0,
            records_max: records_max.max(1),
            touched: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Records held, over every owner.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The longest valid chain of `owner` shown so far.
    pub fn chain(&self, owner: &[u8; 32]) -> &[Record] {
        self.chains.get(owner).map_or(&[], Vec::as_slice)
    }

    /// Every owner whose chain is held, in order.
    pub fn owners(&self) -> Vec<[u8; 32]> {
        self.chains
            .iter()
            .filter(|(_, chain)| !chain.is_empty())
            .map(|(owner, _)| *owner)
            .collect()
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

    /// Answers a request from `chain` (the owner's chain as this side holds it). When the
    /// chain is shorter than `from_seq`, its last [`OVERLAP_RECORDS`] records are sent, so a
    /// history that was cut back shows where it now differs.
    pub fn serve(chain: &[Record], request: &RangeRequest) -> Vec<Record> {
        let asked = usize::try_from(request.from_seq.saturating_sub(1)).unwrap_or(usize::MAX);
        let start = asked.min(chain.len().saturating_sub(OVERLAP_RECORDS as usize));
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

    /// Checks an answer to `request` and believes it only if it is valid; then keeps the
    /// book within its bound.
    pub fn receive(
        &mut self,
        request: &RangeRequest,
        records: Vec<Record>,
    ) -> Result<Received, ExchangeError> {
        let owner = request.owner;
        let before = self.chain(&owner).len();
        let result = self.believe(request, records);
        let after = self.chain(&owner).len();
        self.records = (self.records + after).saturating_sub(before);
        if after == 0 {
            self.chains.remove(&owner);
        }
        if after != before {
            self.clock += 1;
            self.touched.insert(owner, self.clock);
        }
        while self.records > self.records_max {
            let Some(oldest) = self
                .touched
                .iter()
                .filter(|(o, _)| **o != owner)
                .min_by_key(|(o, at)| (**at, **o))
                .map(|(o, _)| *o)
            else {
                break;
            };
            self.touched.remove(&oldest);
            if let Some(chain) = self.chains.remove(&oldest) {
                self.records -= chain.len();
            }
        }
        result
    }

    fn believe(
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
        // An answer may start before the position asked for (more overlap), never after.
        if first.seq > request.from_seq || first.seq == 0 {
            return Err(ExchangeError::WrongStart {
                asked: request.from_seq,
                found: first.seq,
            });
        }
        // Every record must be the owner's.
        if let Some(index) = records.iter().position(|r| r.owner != request.owner) {
            let fault = super::rules::ChainFault::Owner;
            return Err(ExchangeError::Invalid(ChainError {
                index,
                seq: records[index].seq,
                fault,
            }));
        }
        let held = self.chains.entry(request.owner).or_default();
        // The chain was evicted while this answer was on its way (it was asked for from where
        // the book then stood): nothing to continue from, and the sender did nothing wrong.
        if first.seq as usize - 1 > held.len() {
            return Ok(Received::default());
        }
        let overlap = held
            .len()
            .saturating_sub(first.seq as usize - 1)
            .min(records.len());
        // A record at a position already held that differs from it, both signed by the owner,
        // proves a fork by itself, however far back the branches split.
        let conflict = records
            .iter()
            .take(overlap)
            .enumerate()
            .find_map(|(offset, record)| {
                let held_record = &held[first.seq as usize - 1 + offset];
                (held_record != record)
                    .then(|| (offset, ForkProof::new(held_record.clone(), record.clone())))
            });
        if let Some((_, Ok(proof))) = &conflict {
            let new = !self.forks.contains_key(&proof.offender());
            self.forks
                .entry(proof.offender())
                .or_insert_with(|| proof.clone());
            let mut received = Received {
                added: 0,
                fork: new.then(|| proof.clone()),
            };
            // Longest chain wins: a longer valid history replaces the shorter one.
            let before = (first.seq as usize)
                .checked_sub(2)
                .and_then(|i| held.get(i));
            let longer = first.seq as usize - 1 + records.len() > held.len();
            if longer && verify_range(before, &records).is_ok() {
                let offset = conflict.as_ref().map_or(0, |(offset, _)| *offset);
                held.truncate(first.seq as usize - 1 + offset);
                held.extend(records[offset..].iter().cloned());
                received.added = records.len() - offset;
            }
            return Ok(received);
        }
        // Otherwise what the answer adds must be a valid continuation of what is held. The
        // overlap is byte for byte what was verified before, so it is not verified again.
        // (An overlap that differs without proving a fork is verified whole, and fails.)
        let skip = if conflict.is_some() { 0 } else { overlap };
        let fresh_from = first.seq as usize - 1 + skip;
        let before = fresh_from.checked_sub(1).and_then(|i| held.get(i));
        verify_range(before, &records[skip..]).map_err(|mut error| {
            error.index += skip;
            ExchangeError::Invalid(error)
        })?;
        let mut received = Received::default();
        if conflict.is_some() {
            // A differing record that is valid in sequence but not owner-signed twice cannot
            // happen (verify_range checked the owner's signatures); keep what is held.
            return Ok(received);
        }
        received.added = records.len() - overlap;
        held.extend(records.into_iter().skip(overlap));
        Ok(received)
    }
}
