//! Exchanging chains (sans-IO): asking a peer for a range of some owner's chain,
//! incrementally from what is already held, within size limits; checking every answer
//! before believing any of it; and finding forks when two answers disagree. The transport
//! will carry these requests; this module decides what to ask and what to believe.
//!
//! "Longest chain wins": for each owner the book keeps a run of the longest valid chain it
//! has been shown: its recent end, contiguous (a first read asks for the last
//! [`RECENT_RECORDS`] records; an evicted chain keeps its last [`OVERLAP_RECORDS`]). A record
//! that conflicts with one held at the same position, both signed by the owner, is a fork:
//! the book keeps the proof and the owner is disqualified while it does (up to
//! [`FORKS_MAX`] proofs, the oldest going first).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::record::Record;
use super::rules::{verify_range, verify_run, ChainError, ForkProof};

/// Records already held that every request asks for again, to catch rewritten history.
pub const OVERLAP_RECORDS: u64 = 8;

/// Most records one answer may carry (about 300 KiB).
pub const RANGE_RECORDS_MAX: u32 = 1024;

/// Records a first read of an owner's chain asks for, from its recent end: what scores a
/// peer is what it did lately (services weigh half as much every week), and reading a
/// month-long chain from record 1 costs every reader every signature on it.
pub const RECENT_RECORDS: u32 = 64;

/// Fork proofs a book keeps; past it, the one learned longest ago goes (its forker is a
/// stranger again, as a whitewasher's new key would be). About 40 MiB of proofs.
pub const FORKS_MAX: usize = 65_536;

/// "Send me `owner`'s records from `from_seq` on, at most `max` of them"; `from_seq` 0:
/// "send me the last `max` records of `owner`'s chain".
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
    #[error("the answer is not a valid run of the chain: {0}")]
    Invalid(ChainError),
}

/// What an accepted answer changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// Records added to the held run.
    pub added: usize,
    /// A fork the answer revealed that was not known before, if any.
    pub fork: Option<ForkProof>,
}

/// Other peers' chains as far as they have been shown and checked, and the forks found.
///
/// **Bounded.** The book holds at most `records_max` records in all; past it, the chains
/// extended longest ago are cut back to their last [`OVERLAP_RECORDS`] records (the next
/// read of such an owner goes on from there), and when every other chain is that short,
/// the oldest go whole. Fork proofs are kept up to [`FORKS_MAX`] (a key pair is free to make,
/// so forks are too), the one learned longest ago going first.
#[derive(Debug)]
pub struct ChainBook {
    /// Per owner, a contiguous run of its chain (`run[i].seq == run[0].seq + i`). Records
    /// are shared, not copied: a record read from its owner (or passed on by a reader) is
    /// the same allocation in every book that holds it.
    chains: BTreeMap<[u8; 32], Vec<Arc<Record>>>,
    forks: BTreeMap<[u8; 32], ForkProof>,
    /// The forkers in the order their proofs were learned, for eviction.
    forks_learned: std::collections::VecDeque<[u8; 32]>,
    forks_max: usize,
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

/// The records of `answer` at positions from `seq` on.
fn from_position(answer: &[Arc<Record>], seq: u64) -> &[Arc<Record>] {
    let skip = answer.iter().take_while(|r| r.seq < seq).count();
    &answer[skip..]
}

impl ChainBook {
    pub fn with_records_max(records_max: usize) -> ChainBook {
        ChainBook::with_limits(records_max, FORKS_MAX)
    }

    /// A book of at most `records_max` records and `forks_max` fork proofs.
    pub fn with_limits(records_max: usize, forks_max: usize) -> ChainBook {
        ChainBook {
            chains: BTreeMap::new(),
            forks: BTreeMap::new(),
            forks_learned: std::collections::VecDeque::new(),
            forks_max: forks_max.max(1),
            records: 0,
            records_max: records_max.max(OVERLAP_RECORDS as usize + 1),
            touched: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Records held, over every owner.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The run of `owner`'s longest valid chain held: its recent end, contiguous (from
    /// record 1 only if it was read from there and never cut back).
    pub fn chain(&self, owner: &[u8; 32]) -> &[Arc<Record>] {
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

    /// Every chain held, by owner in order (one pass, no lookup per owner).
    pub fn chains(&self) -> impl Iterator<Item = (&[u8; 32], &[Arc<Record>])> + '_ {
        self.chains
            .iter()
            .filter(|(_, chain)| !chain.is_empty())
            .map(|(owner, chain)| (owner, chain.as_slice()))
    }

    pub fn fork(&self, owner: &[u8; 32]) -> Option<&ForkProof> {
        self.forks.get(owner)
    }

    /// A key proven to have forked its chain is not trusted while its proof is kept.
    pub fn disqualified(&self, owner: &[u8; 32]) -> bool {
        self.forks.contains_key(owner)
    }

    /// The next request for `owner`'s chain: the last [`OVERLAP_RECORDS`] records held again
    /// (so that a rewritten recent history shows up as a fork), then whatever follows; for an
    /// owner nothing is held of, the last [`RECENT_RECORDS`] of its chain.
    pub fn next_request(&self, owner: [u8; 32]) -> RangeRequest {
        let run = self.chain(&owner);
        match (run.first(), run.last()) {
            (Some(first), Some(last)) => RangeRequest {
                owner,
                from_seq: last.seq.saturating_sub(OVERLAP_RECORDS - 1).max(first.seq),
                max: RANGE_RECORDS_MAX,
            },
            _ => RangeRequest {
                owner,
                from_seq: 0,
                max: RECENT_RECORDS,
            },
        }
    }

    /// Answers a request from `chain` (the run of the owner's chain this side holds: all of
    /// it for the owner itself). From `from_seq` on, or from the run's start if it starts
    /// later; when the run ends before `from_seq`, its last [`OVERLAP_RECORDS`] records, so a
    /// history that was cut back shows where it now differs; for `from_seq` 0, its last
    /// `max` records. At most `max` (and [`RANGE_RECORDS_MAX`]) records.
    pub fn serve(chain: &[Arc<Record>], request: &RangeRequest) -> Vec<Arc<Record>> {
        let max = request.max.min(RANGE_RECORDS_MAX) as usize;
        let Some(first) = chain.first() else {
            return Vec::new();
        };
        let start = if request.from_seq == 0 {
            chain.len().saturating_sub(max)
        } else {
            let asked = request.from_seq.saturating_sub(first.seq);
            usize::try_from(asked)
                .unwrap_or(usize::MAX)
                .min(chain.len().saturating_sub(OVERLAP_RECORDS as usize))
        };
        chain.iter().skip(start).take(max).cloned().collect()
    }

    /// Records a fork proof received from someone else, after checking it.
    pub fn learn_fork(&mut self, proof: ForkProof) -> bool {
        if proof.verify().is_err() {
            return false;
        }
        self.keep_fork(proof)
    }

    /// Keeps a checked proof unless its forker is known already; within the bound.
    fn keep_fork(&mut self, proof: ForkProof) -> bool {
        let offender = proof.offender();
        if self.forks.contains_key(&offender) {
            return false;
        }
        while self.forks.len() >= self.forks_max {
            let Some(oldest) = self.forks_learned.pop_front() else {
                break;
            };
            self.forks.remove(&oldest);
        }
        self.forks.insert(offender, proof);
        self.forks_learned.push_back(offender);
        true
    }

    /// Checks an answer to `request` and believes it only if it is valid; then keeps the
    /// book within its bound.
    pub fn receive(
        &mut self,
        request: &RangeRequest,
        records: Vec<Arc<Record>>,
    ) -> Result<Received, ExchangeError> {
        let owner = request.owner;
        let before = self.chain(&owner).len();
        let result = self.believe(request, records);
        let after = self.chain(&owner).len();
        self.records = (self.records + after).saturating_sub(before);
        if after == 0 {
            self.chains.remove(&owner);
            self.touched.remove(&owner);
        }
        if result.as_ref().is_ok_and(|r| r.added > 0) {
            self.clock += 1;
            self.touched.insert(owner, self.clock);
        }
        self.evict(&owner);
        result
    }

    /// Cuts the chains extended longest ago back to their tails, then drops the oldest
    /// tails, until the book is within its bound; `keep`'s chain (just read) goes last, and
    /// then only its oldest records.
    fn evict(&mut self, keep: &[u8; 32]) {
        let tail = OVERLAP_RECORDS as usize;
        while self.records > self.records_max {
            let oldest = |long: bool| {
                self.touched
                    .iter()
                    .filter(|(o, _)| *o != keep)
                    .filter(|(o, _)| !long || self.chains.get(*o).is_some_and(|c| c.len() > tail))
                    .min_by_key(|(o, at)| (**at, **o))
                    .map(|(o, _)| *o)
            };
            let (long, any) = match oldest(true) {
                Some(owner) => (Some(owner), None),
                None => (None, oldest(false)),
            };
            if let Some(owner) = long {
                if let Some(chain) = self.chains.get_mut(&owner) {
                    let cut = chain.len() - tail;
                    chain.drain(..cut);
                    // What was cut is given back (a run read long ago keeps 8 records, not
                    // the room of all it once held).
                    chain.shrink_to_fit();
                    self.records -= cut;
                }
            } else if let Some(owner) = any {
                self.touched.remove(&owner);
                if let Some(chain) = self.chains.remove(&owner) {
                    self.records -= chain.len();
                }
            } else {
                // `keep`'s run alone is over the bound: its oldest records go.
                let Some(chain) = self.chains.get_mut(keep) else {
                    break;
                };
                let cut = (self.records - self.records_max).min(chain.len());
                chain.drain(..cut);
                chain.shrink_to_fit();
                self.records -= cut;
                if cut == 0 {
                    break;
                }
            }
        }
    }

    fn believe(
        &mut self,
        request: &RangeRequest,
        records: Vec<Arc<Record>>,
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
        // Every record must be the owner's, and the answer a run: consecutive positions
        // from 1 on (what is dropped or compared below is then where it says it is).
        if let Some(index) = records.iter().position(|r| r.owner != request.owner) {
            let fault = super::rules::ChainFault::Owner;
            return Err(ExchangeError::Invalid(ChainError {
                index,
                seq: records[index].seq,
                fault,
            }));
        }
        let out_of_place = (first.seq == 0).then_some(0).or_else(|| {
            records
                .windows(2)
                .position(|w| w[0].seq.checked_add(1) != Some(w[1].seq))
                .map(|i| i + 1)
        });
        if let Some(index) = out_of_place {
            let expected = index
                .checked_sub(1)
                .map_or(1, |i| records[i].seq.saturating_add(1));
            return Err(ExchangeError::Invalid(ChainError {
                index,
                seq: records[index].seq,
                fault: super::rules::ChainFault::Sequence {
                    expected,
                    found: records[index].seq,
                },
            }));
        }
        let held = self.chains.entry(request.owner).or_default();
        let (Some(held_first), Some(held_end)) =
            (held.first().map(|r| r.seq), held.last().map(|r| r.seq))
        else {
            // Nothing held: the answer is a run of its own.
            verify_run(&records).map_err(ExchangeError::Invalid)?;
            *held = records;
            return Ok(Received {
                added: held.len(),
                fork: None,
            });
        };
        if first.seq > held_end.saturating_add(1) {
            // A later run, with a gap after what is held: it replaces it (nothing overlaps to
            // compare, and the longer history wins).
            verify_run(&records).map_err(ExchangeError::Invalid)?;
            let added = records.len();
            *held = records;
            return Ok(Received { added, fork: None });
        }
        // What comes before the run held is not kept (the book keeps one run per owner).
        let answer = from_position(&records, held_first);
        let Some(start) = answer.first().map(|r| r.seq) else {
            return Ok(Received::default());
        };
        let at = (start - held_first) as usize;
        let overlap = held.len().saturating_sub(at).min(answer.len());
        // A record at a position already held that differs from it, both signed by the owner,
        // proves a fork by itself, however far back the branches split.
        let conflict = answer
            .iter()
            .take(overlap)
            .enumerate()
            .find_map(|(offset, record)| {
                let held_record = &held[at + offset];
                (held_record != record).then(|| {
                    let (a, b) = (Record::clone(held_record), Record::clone(record));
                    (offset, ForkProof::new(a, b))
                })
            });
        if let Some((offset, Ok(proof))) = &conflict {
            // Longest chain wins: a longer valid history replaces the shorter one from where
            // they differ.
            let before = at.checked_sub(1).and_then(|i| held.get(i));
            let longer = answer.last().is_some_and(|r| r.seq > held_end);
            let valid = match before {
                Some(before) => verify_range(Some(before), answer).is_ok(),
                None => verify_run(answer).is_ok(),
            };
            let mut added = 0;
            if longer && valid {
                held.truncate(at + offset);
                held.extend(answer[*offset..].iter().cloned());
                added = answer.len() - offset;
            }
            let new = self.keep_fork(proof.clone());
            return Ok(Received {
                added,
                fork: new.then(|| proof.clone()),
            });
        }
        // Otherwise what the answer adds must be a valid continuation of what is held. The
        // overlap is byte for byte what was verified before, so it is not verified again.
        // (An overlap that differs without proving a fork is verified whole, and fails.)
        let skip = if conflict.is_some() { 0 } else { overlap };
        let before = (at + skip).checked_sub(1).and_then(|i| held.get(i));
        let fresh = &answer[skip..];
        let checked = match before {
            Some(before) => verify_range(Some(before), fresh),
            None => verify_run(fresh),
        };
        let offset = records.len() - answer.len();
        checked.map_err(|mut error| {
            error.index += offset + skip;
            ExchangeError::Invalid(error)
        })?;
        if conflict.is_some() {
            // A differing record that is valid in sequence but not owner-signed twice cannot
            // happen (the owner's signatures were checked); keep what is held.
            return Ok(Received::default());
        }
        held.extend(fresh.iter().cloned());
        Ok(Received {
            added: fresh.len(),
            fork: None,
        })
    }
}
