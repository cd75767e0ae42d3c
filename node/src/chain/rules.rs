//! The rules a chain follows, fork proofs and disagreements between matching halves.
//!
//! A chain is valid when its records all belong to one owner, sequence numbers start at 1
//! (or continue a known record) and increase by one, each `prev` is the hash of the record
//! before, no record deals with its own owner, and both signatures of every record verify.
//! Signatures are checked in one batch, by the rule of [`super::signature`] (the same verdict
//! as one by one); when the batch fails, the first bad record is found one by one so the
//! error can name it.

use std::borrow::Borrow;

use super::record::{signature_ok, Record, SignatureFault};
use super::signature::{self, DigestCache, Signed};

/// What is wrong with a record of a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainFault {
    #[error("it belongs to another owner")]
    Owner,
    #[error("its sequence number is {found}, where {expected} belongs")]
    Sequence { expected: u64, found: u64 },
    #[error("its previous-record hash does not match the record before it")]
    Prev,
    #[error("its counterparty is its own owner")]
    SelfDealing,
    #[error("a public key on it is not a valid, strong ed25519 key")]
    Key,
    #[error(transparent)]
    Signature(#[from] SignatureFault),
}

/// The first bad record of a chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {seq} (position {index}) is invalid: {fault}")]
pub struct ChainError {
    pub index: usize,
    pub seq: u64,
    pub fault: ChainFault,
}

/// Checks a whole chain (its first record must be number 1).
pub fn verify_chain<R: Borrow<Record>>(records: &[R]) -> Result<(), ChainError> {
    verify_range(None, records)
}

/// Checks `records` as the continuation of `before` (or as a chain's start if `None`).
pub fn verify_range<R: Borrow<Record>>(
    before: Option<&Record>,
    records: &[R],
) -> Result<(), ChainError> {
    let Some(first) = records.first().map(Borrow::borrow) else {
        return Ok(());
    };
    let owner = before.map_or(first.owner, |b| b.owner);
    let first_seq = before.map_or(1, |b| b.seq.saturating_add(1));
    let expected_prev = before.map_or([0u8; 32], Record::hash);
    verify_from(owner, first_seq, expected_prev, records)
}

/// Checks `records` as a run from anywhere in a chain (its recent end, say): the first is
/// taken where it says it stands (any position from 1 on, its `prev` not checked, since the
/// record before is not at hand); the rest must continue it, and every signature verify.
pub fn verify_run<R: Borrow<Record>>(records: &[R]) -> Result<(), ChainError> {
    let Some(first) = records.first().map(Borrow::borrow) else {
        return Ok(());
    };
    let first_seq = first.seq.max(1);
    let expected_prev = if first.seq == 1 {
        [0u8; 32]
    } else {
        first.prev
    };
    verify_from(first.owner, first_seq, expected_prev, records)
}

fn verify_from<R: Borrow<Record>>(
    owner: [u8; 32],
    first_seq: u64,
    mut expected_prev: [u8; 32],
    records: &[R],
) -> Result<(), ChainError> {
    let mut hashes = Vec::with_capacity(records.len());
    // No chain reaches the last position (nothing could follow it).
    if let Some(index) = records.iter().position(|r| r.borrow().seq == u64::MAX) {
        return Err(ChainError {
            index,
            seq: u64::MAX,
            fault: ChainFault::Sequence {
                expected: first_seq.saturating_add(index as u64),
                found: u64::MAX,
            },
        });
    }
    let fail = |index: usize, record: &Record, fault| ChainError {
        index,
        seq: record.seq,
        fault,
    };
    let mut structural: Option<ChainError> = None;
    let mut checked = records.len();
    for (expected_seq, (index, record)) in (first_seq..).zip(records.iter().enumerate()) {
        let record: &Record = record.borrow();
        let fault = if record.owner != owner {
            Some(ChainFault::Owner)
        } else if record.seq != expected_seq {
            Some(ChainFault::Sequence {
                expected: expected_seq,
                found: record.seq,
            })
        } else if record.prev != expected_prev {
            Some(ChainFault::Prev)
        } else if record.counterparty == record.owner {
            Some(ChainFault::SelfDealing)
        } else {
            [record.owner, record.counterparty]
                .iter()
                .any(|key| !signature::key_usable(key))
                .then_some(ChainFault::Key)
        };
        if let Some(fault) = fault {
            structural = Some(fail(index, record, fault));
            checked = index;
            break;
        }
        expected_prev = record.hash();
        hashes.push(expected_prev);
    }
    // A record altered after signing also breaks the next record's link: check the
    // signatures of everything before a structural fault, so the first bad record is named.
    verify_signatures(&records[..checked], &hashes[..checked])?;
    structural.map_or(Ok(()), Err)
}

thread_local! {
    /// Records whose two signatures were found good, by record hash (which covers both
    /// signatures): a chain read that overlaps one checked before costs a lookup per record,
    /// not two signature digests. Like the signature memo, it never remembers a failure.
    static RECORDS: std::cell::RefCell<DigestCache> = const { std::cell::RefCell::new(DigestCache::new()) };
}

/// Empties this thread's record memo.
pub(crate) fn forget() {
    RECORDS.with(|memo| memo.borrow_mut().clear());
}

/// Batch-verifies both signatures of every record (`hashes[i]` is `records[i]`'s hash) but
/// those already found good; on failure names the first bad one.
fn verify_signatures<R: Borrow<Record>>(
    records: &[R],
    hashes: &[[u8; 32]],
) -> Result<(), ChainError> {
    let Some(first) = records.first().map(Borrow::borrow) else {
        return Ok(());
    };
    let unknown: Vec<usize> = RECORDS.with(|memo| {
        let memo = memo.borrow();
        (0..records.len())
            .filter(|i| !memo.contains(&hashes[*i]))
            .collect()
    });
    if unknown.is_empty() {
        return Ok(());
    }
    let fail = |index: usize, record: &Record, fault| ChainError {
        index,
        seq: record.seq,
        fault,
    };
    // Two signatures per record over the same message.
    let messages: Vec<Vec<u8>> = unknown
        .iter()
        .map(|i| records[*i].borrow().signed_message())
        .collect();
    let mut items = Vec::with_capacity(unknown.len() * 2);
    for (record, message) in unknown.iter().map(|i| records[*i].borrow()).zip(&messages) {
        for (key, signature) in [
            (&record.owner, &record.owner_sig),
            (&record.counterparty, &record.counterparty_sig),
        ] {
            items.push(Signed {
                key,
                message,
                signature,
            });
        }
    }
    if signature::verify_batch(&items) {
        RECORDS.with(|memo| {
            let mut memo = memo.borrow_mut();
            for i in &unknown {
                memo.insert(hashes[*i]);
            }
        });
        return Ok(());
    }
    for (index, record) in records.iter().map(Borrow::borrow).enumerate() {
        record
            .verify_signatures()
            .map_err(|fault| fail(index, record, fault.into()))?;
    }
    // The batch failed although every signature verifies alone: with the same acceptance
    // rule on both paths this cannot happen; refuse rather than accept.
    Err(fail(0, first, ChainFault::Signature(SignatureFault::Owner)))
}

/// Two different records at the same position of one chain, both signed by its owner:
/// portable proof that the owner forked its chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForkProof {
    pub a: Record,
    pub b: Record,
}

/// Why two records are not a fork proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForkError {
    #[error("the records belong to different owners")]
    Owners,
    #[error("the records are at different positions")]
    Positions,
    #[error("the records say the same thing")]
    Same,
    #[error("the owner's signature on record {0} does not verify")]
    Signature(u8),
}

impl ForkProof {
    /// A proof from two records, if they are one.
    pub fn new(a: Record, b: Record) -> Result<ForkProof, ForkError> {
        let proof = ForkProof { a, b };
        proof.verify()?;
        Ok(proof)
    }

    /// Checks the proof from the two records alone.
    pub fn verify(&self) -> Result<(), ForkError> {
        if self.a.owner != self.b.owner {
            return Err(ForkError::Owners);
        }
        if self.a.seq != self.b.seq {
            return Err(ForkError::Positions);
        }
        if self.a.body() == self.b.body() {
            return Err(ForkError::Same);
        }
        for (which, record) in [(0u8, &self.a), (1, &self.b)] {
            if !signature_ok(&record.owner, &record.signed_message(), &record.owner_sig) {
                return Err(ForkError::Signature(which));
            }
        }
        Ok(())
    }

    /// The key that forked.
    pub fn offender(&self) -> [u8; 32] {
        self.a.owner
    }
}

/// A record and the record its link names on the counterparty's chain, which do not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    pub record: Record,
    pub other: Record,
    /// Every party whose valid signature is on both records: each signed two incompatible
    /// statements.
    pub responsible: Vec<[u8; 32]>,
}

/// Compares `record` with `other`, the record at (`record.counterparty`,
/// `record.counterparty_seq`). `None` if they match or `other` is not at that position.
pub fn disagreement(record: &Record, other: &Record) -> Option<Disagreement> {
    if other.owner != record.counterparty
        || other.seq != record.counterparty_seq
        || record.matches(other)
    {
        return None;
    }
    let signed = |party: &[u8; 32], r: &Record| -> bool {
        let signature = if r.owner == *party {
            &r.owner_sig
        } else if r.counterparty == *party {
            &r.counterparty_sig
        } else {
            return false;
        };
        signature_ok(party, &r.signed_message(), signature)
    };
    let mut responsible: Vec<[u8; 32]> = [record.owner, record.counterparty, other.counterparty]
        .into_iter()
        .filter(|party| signed(party, record) && signed(party, other))
        .collect();
    responsible.sort();
    responsible.dedup();
    Some(Disagreement {
        record: record.clone(),
        other: other.clone(),
        responsible,
    })
}
