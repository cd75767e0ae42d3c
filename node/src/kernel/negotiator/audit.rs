//! Audit challenges, made when a replica is placed. The challenger must be able to check an
//! answer without keeping the chunk, so at placement (when the bytes are in hand) it derives
//! a few challenges for that replica from a secret key of its own, the chunk id, the holder
//! and a counter, and keeps only the first 8 bytes of each expected answer. Each challenge
//! is used once; a replica whose challenges are spent gets new ones from our own copy, if we
//! still keep it, under the next epoch.
//!
//! Why this design: a challenge is a fresh nonce the holder cannot predict (it derives from
//! our secret), the answer covers a range of the bytes (so only a holder of the bytes can
//! give it), and what we keep is 8 bytes per challenge (2⁻⁶⁴ odds for a guess), instead of
//! the chunk.

use sha2::{Digest, Sha256};

use crate::ids::ChunkId;
use crate::kernel::content::audit_proof;
use crate::kernel::strategy::{Economy, AUDIT_CHALLENGES_MAX};
use crate::kernel::{Challenge, Payload, PeerId};

const AUDIT_DOMAIN: &[u8] = b"cryptosphere/audit/challenge/v1";

/// The challenges kept for one replica (one chunk on one holder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replica {
    /// First 8 bytes of each expected answer.
    answers: [u64; AUDIT_CHALLENGES_MAX],
    count: u8,
    used: u8,
    epoch: u8,
    /// The chunk's length (challenges cover a range inside it).
    len: u32,
}

/// The `index`th challenge of `chunk` on `holder` in `epoch`, for a chunk of `len` bytes.
fn challenge(
    secret: &[u8; 32],
    (chunk, holder): (ChunkId, PeerId),
    (epoch, index): (u8, u8),
    len: u32,
    range_bytes: u32,
) -> Challenge {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(AUDIT_DOMAIN)
        .chain_update(secret)
        .chain_update(chunk.0)
        .chain_update(holder.0)
        .chain_update([epoch, index])
        .finalize()
        .into();
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&seed[..16]);
    let range = range_bytes.clamp(1, len.max(1));
    let span = len.saturating_sub(range) + 1;
    let offset = u32::from_le_bytes([seed[16], seed[17], seed[18], seed[19]]) % span;
    Challenge {
        chunk,
        nonce,
        offset,
        len: range,
    }
}

fn short(proof: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&proof[..8]);
    u64::from_le_bytes(first)
}

impl Replica {
    /// Challenges for `chunk` on `holder`, from its payload; the epoch after `previous`'s.
    pub fn make(
        secret: &[u8; 32],
        (chunk, holder): (ChunkId, PeerId),
        payload: &Payload,
        previous: Option<&Replica>,
        economy: &Economy,
    ) -> Replica {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let epoch = previous.map_or(0, |r| r.epoch.wrapping_add(1));
        let count = economy
            .audit_challenges_per_replica
            .min(AUDIT_CHALLENGES_MAX) as u8;
        let mut replica = Replica {
            epoch,
            len,
            ..Replica::default()
        };
        if len == 0 {
            return replica;
        }
        for index in 0..count {
            let c = challenge(
                secret,
                (chunk, holder),
                (epoch, index),
                len,
                economy.audit_range_bytes,
            );
            if let Some(proof) = audit_proof(payload, &c) {
                replica.answers[usize::from(replica.count)] = short(&proof);
                replica.count += 1;
            }
        }
        replica
    }

    pub fn unused(&self) -> bool {
        self.used < self.count
    }

    /// Challenges taken from this replica so far (over every epoch): 0 for a replica never
    /// audited.
    pub fn taken(&self) -> u32 {
        u32::from(self.epoch) * AUDIT_CHALLENGES_MAX as u32 + u32::from(self.used)
    }

    /// The next unused challenge and its expected answer; marks it used.
    pub fn take(
        &mut self,
        secret: &[u8; 32],
        (chunk, holder): (ChunkId, PeerId),
        economy: &Economy,
    ) -> Option<(Challenge, u64)> {
        if !self.unused() {
            return None;
        }
        let index = self.used;
        self.used += 1;
        let c = challenge(
            secret,
            (chunk, holder),
            (self.epoch, index),
            self.len,
            economy.audit_range_bytes,
        );
        Some((c, self.answers[usize::from(index)]))
    }
}

/// Does `proof` answer the challenge whose expected answer starts with `expected`?
pub fn passes(proof: Option<&[u8; 32]>, expected: u64) -> bool {
    proof.is_some_and(|p| short(p) == expected)
}

impl super::Negotiator {
    /// One audit round: the next holders in turn (at most `audit_holders_per_round_max`) get
    /// one challenge for each of a few of our chunks they hold.
    pub(super) fn audit_round(&mut self, ctx: &mut crate::kernel::Context<'_>) {
        use crate::kernel::{Request, StoreRequest};
        let economy = self.config.economy.clone();
        let mut by_holder: std::collections::BTreeMap<PeerId, Vec<ChunkId>> = Default::default();
        for (chunk, owned) in &self.owned {
            for holder in owned.holders.keys() {
                by_holder.entry(*holder).or_default().push(*chunk);
            }
        }
        let taken = |owned: &std::collections::BTreeMap<ChunkId, super::Owned>,
                     chunk: &ChunkId,
                     holder: &PeerId| {
            owned
                .get(chunk)
                .and_then(|o| o.holders.get(holder))
                .map_or(u32::MAX, Replica::taken)
        };
        // Holders after the cursor first, then from the start: every holder gets its turn.
        let cursor = self.audit_cursor;
        let in_turn: Vec<PeerId> = by_holder
            .range(cursor..)
            .filter(|(peer, _)| **peer != cursor)
            .chain(by_holder.range(..=cursor))
            .map(|(peer, _)| *peer)
            .take(economy.audit_holders_per_round_max)
            .collect();
        if let Some(last) = in_turn.last() {
            self.audit_cursor = *last;
        }
        // A replica is first challenged in the first round after it was placed, whatever
        // the turn: its holder is audited this round too.
        let mut order = in_turn;
        for (holder, chunks) in &by_holder {
            if !order.contains(holder) && chunks.iter().any(|c| taken(&self.owned, c, holder) == 0)
            {
                order.push(*holder);
            }
        }
        for holder in order {
            let Some(chunks) = by_holder.get_mut(&holder) else {
                continue;
            };
            // Least audited first (never audited before all others), then by id.
            chunks.sort_by_cached_key(|c| (taken(&self.owned, c, &holder), *c));
            let mut challenges = Vec::new();
            let mut items = Vec::new();
            let mut spent = None;
            for chunk in chunks.iter() {
                let fresh = taken(&self.owned, chunk, &holder) == 0;
                let full = challenges.len() >= economy.audit_chunks_per_holder;
                if (full && !fresh) || challenges.len() >= self.config.check_chunks_max.max(1) {
                    break;
                }
                let Some(replica) = self
                    .owned
                    .get_mut(chunk)
                    .and_then(|owned| owned.holders.get_mut(&holder))
                else {
                    continue;
                };
                match replica.take(&self.audit_key, (*chunk, holder), &economy) {
                    Some((challenge, expected)) => {
                        challenges.push(challenge);
                        items.push((*chunk, expected));
                        let chunk = *chunk;
                        ctx.event(crate::kernel::Event::Challenged { chunk, holder });
                    }
                    None => spent = spent.or(Some(*chunk)),
                }
            }
            // A replica whose challenges are spent gets new ones from our own copy.
            if let Some(chunk) = spent {
                let tag = self.tag(super::Purpose::Refresh { holder });
                ctx.local(
                    crate::kernel::ActorKind::Store,
                    crate::kernel::Local::Read { chunk, tag },
                );
            }
            if !challenges.is_empty() {
                let body = Request::Store(StoreRequest::Audit { challenges });
                self.send(ctx, holder, body, super::Purpose::Audit { holder, items });
            }
        }
    }

    /// Our copy of `chunk` came back: new challenges for its replica on `holder`.
    pub(super) fn refreshed(&mut self, chunk: ChunkId, holder: PeerId, payload: Option<Payload>) {
        let Some(payload) = payload else {
            return;
        };
        let economy = &self.config.economy;
        let key = self.audit_key;
        if let Some(replica) = self
            .owned
            .get_mut(&chunk)
            .and_then(|owned| owned.holders.get_mut(&holder))
        {
            *replica = Replica::make(&key, (chunk, holder), &payload, Some(replica), economy);
        }
    }

    /// Audits `holder` at once for `chunks` (replicas it says it lost); returns those with no
    /// challenge left, which are simply lost.
    pub(super) fn audit_now(
        &mut self,
        ctx: &mut crate::kernel::Context<'_>,
        holder: PeerId,
        chunks: Vec<ChunkId>,
    ) -> Vec<ChunkId> {
        use crate::kernel::{Request, StoreRequest};
        let economy = self.config.economy.clone();
        let mut challenges = Vec::new();
        let mut items = Vec::new();
        let mut lost = Vec::new();
        for chunk in chunks {
            let taken = self
                .owned
                .get_mut(&chunk)
                .and_then(|owned| owned.holders.get_mut(&holder))
                .and_then(|replica| replica.take(&self.audit_key, (chunk, holder), &economy));
            match taken {
                Some((challenge, expected))
                    if challenges.len() < self.config.check_chunks_max.max(1) =>
                {
                    challenges.push(challenge);
                    items.push((chunk, expected));
                    ctx.event(crate::kernel::Event::Challenged { chunk, holder });
                }
                _ => lost.push(chunk),
            }
        }
        if !challenges.is_empty() {
            let body = Request::Store(StoreRequest::Audit { challenges });
            self.send(ctx, holder, body, super::Purpose::Audit { holder, items });
        }
        lost
    }

    /// `holder` answered (or not) an audit: each proof passes or fails; a failure loses that
    /// replica, and a score under the threshold disqualifies the holder.
    pub(super) fn audited(
        &mut self,
        ctx: &mut crate::kernel::Context<'_>,
        holder: PeerId,
        items: Vec<(ChunkId, u64)>,
        outcome: crate::kernel::Outcome,
    ) {
        use crate::kernel::{Outcome, Response, StoreResponse};
        let proofs = match outcome {
            Outcome::Answered(Response::Store(StoreResponse::Proofs { proofs })) => proofs,
            // It holds nothing for us any more (our contract or stranger's term ended on its
            // side, and its word of it was lost): our replicas there go elsewhere.
            Outcome::Answered(Response::Refused(crate::kernel::Refusal::Declined)) => {
                if self.contracts.contains_key(&holder) {
                    self.end_contract(ctx, holder, false, false);
                } else {
                    self.lose_holder(ctx, holder);
                }
                return;
            }
            // Any other refusal is service refused; silence may be churn.
            Outcome::Answered(_) => {
                if let Some(ledger) = self.ledgers.get_mut(&holder) {
                    ledger.term_failed += 1;
                }
                return;
            }
            Outcome::TimedOut | Outcome::NotSent => return,
        };
        let economy = self.config.economy.clone();
        let mut lost = Vec::new();
        let mut passed_bytes = 0u64;
        let Some(ledger) = self.ledgers.get_mut(&holder) else {
            return;
        };
        // The score is judged after every answer: passes later in the same batch do not
        // undo a failure that took it under the threshold.
        let mut fell_under = false;
        for ((chunk, expected), proof) in items.iter().zip(&proofs) {
            let passed = passes(proof.as_ref(), *expected);
            ledger.audit.update(passed, &economy);
            fell_under |= ledger.audit.score() < economy.audit_disqualify_below;
            if passed {
                ledger.audits_passed += 1;
                ledger.term_served += 1;
                passed_bytes += u64::from(economy.audit_range_bytes);
            } else {
                ledger.audits_failed += 1;
                ledger.term_failed += 1;
                lost.push(*chunk);
            }
        }
        let disqualify = !ledger.disqualified && fell_under;
        if passed_bytes > 0 {
            let served = crate::kernel::Local::Served {
                peer: holder,
                service: crate::chain::Service::AuditAnswered,
                bytes: passed_bytes,
                creds: 0,
                seconds: 0,
            };
            ctx.local(crate::kernel::ActorKind::Reputation, served);
        }
        if disqualify {
            ledger.disqualified = true;
            ctx.observe(holder, crate::kernel::Observation::Misbehaved);
            ctx.event(crate::kernel::Event::Disqualified { holder });
            if self.contracts.contains_key(&holder) {
                self.end_contract(ctx, holder, true, true);
            } else {
                self.lose_holder(ctx, holder);
            }
            return;
        }
        for chunk in lost {
            if let Some(owned) = self.owned.get_mut(&chunk) {
                owned.holders.remove(&holder);
            }
            self.place(ctx, chunk, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bytes_answer_a_challenge() {
        let economy = Economy::default();
        let secret = [7u8; 32];
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 31) as u8).collect();
        let payload = Payload::Bytes(bytes.clone());
        let chunk = ChunkId([1; 32]);
        let holder = PeerId([2; 32]);
        let mut replica = Replica::make(&secret, (chunk, holder), &payload, None, &economy);
        let mut taken = 0;
        while let Some((c, expected)) = replica.take(&secret, (chunk, holder), &economy) {
            taken += 1;
            assert!(c.offset + c.len <= 5000);
            let proof = audit_proof(&payload, &c).unwrap();
            assert!(passes(Some(&proof), expected));
            let mut other = bytes.clone();
            other[(c.offset + c.len / 2) as usize] ^= 1;
            let wrong = audit_proof(&Payload::Bytes(other), &c).unwrap();
            assert!(!passes(Some(&wrong), expected));
            assert!(!passes(None, expected));
        }
        assert_eq!(taken, economy.audit_challenges_per_replica);
        let next = Replica::make(&secret, (chunk, holder), &payload, Some(&replica), &economy);
        assert!(next.unused());
        assert_ne!(next.epoch, replica.epoch);
    }
}
