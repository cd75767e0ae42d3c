//! The chain side of the reputation filter: this peer's own long-chain certificate, the
//! agreements that put services on it (as requester and as provider, one at a time, since
//! each takes the next position), periodic reading of other peers' chains, and fork proofs,
//! which disqualify a key (while the book keeps the proof) and are passed on to every peer
//! known.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use rand::Rng;

use super::{
    ActorKind, ChainRequest, ChainResponse, Context, Event, Input, KernelConfig, Local,
    Observation, Outcome, PeerId, Refusal, Request, Response, Time,
};
use crate::chain::agreement::{
    accept, complete, finish, propose, Completion, PendingHalf, Proposal,
};
use crate::chain::exchange::{ChainBook, RangeRequest};
use crate::chain::{log, ForkProof, Outcome as ServiceOutcome, Record, Role, Service, Transaction};
use crate::store::Store;
use std::sync::Arc;

const RECORD_TOKEN: u64 = 1;
const EXCHANGE_TOKEN: u64 = 2;
const FORK_TOKEN: u64 = 3;

/// A direct partner is one of the counterparties of this many last records of our chain.
const PARTNERS_FROM_RECORDS: usize = 256;

/// Quantities of services owed one counterparty, not recorded yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Owed {
    bytes: u64,
    creds: u64,
    seconds: u64,
}

impl Owed {
    fn add(&mut self, other: Owed) {
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.creds = self.creds.saturating_add(other.creds);
        self.seconds = self.seconds.saturating_add(other.seconds);
    }
}

/// What a request we sent was for.
#[derive(Debug)]
enum Waiting {
    Agreement {
        peer: PeerId,
        service: Service,
        owed: Owed,
        proposal: Box<Proposal>,
    },
    Range(RangeRequest),
    Countersign {
        peer: PeerId,
        on_provider_half: [u8; 64],
    },
    Other,
}

/// This peer's chain business.
#[derive(Debug)]
pub struct Chains {
    store: Store,
    key: SigningKey,
    /// Only an adversary has one: the accomplice that countersigns its fork.
    accomplice: SigningKey,
    record_interval_us: u64,
    exchange_interval_us: u64,
    fork_at_us: Option<u64>,
    /// Adversary: made-up service recorded with an accomplice every record round
    /// (`Strategy::praise_bytes`), and the accomplices (without this peer).
    praise_bytes: u64,
    accomplices: Vec<PeerId>,
    /// Adversary: reads of other owners' chains get the records that credit others left
    /// out (`Strategy::omits_others_records`).
    omits_others_records: bool,
    /// The reputation filter is on: reads favour the chains it scores by.
    filter: bool,
    own: Vec<Arc<Record>>,
    book: ChainBook,
    /// Services not recorded yet, summed: (counterparty, kind) → quantities.
    owed: BTreeMap<(PeerId, Service), Owed>,
    /// The last (peer, service) recorded: the next record is the one after it, in turn, so
    /// that services owed often to one peer cannot starve the others.
    record_cursor: Option<(PeerId, Service)>,
    proposing: bool,
    providing: Option<(PeerId, Time, PendingHalf)>,
    waiting: BTreeMap<u64, Waiting>,
    /// Countersignatures not yet taken in by their providers, resent every record round.
    pending_countersigns: Vec<(PeerId, [u8; 64])>,
    /// The last record agreed, if the store failed to take it: no signing until it has.
    unsaved: Option<Record>,
    next_tag: u64,
}

impl Chains {
    /// `store` keeps this peer's chain (so a restarted node goes on with it).
    pub fn new(
        key: SigningKey,
        config: &KernelConfig,
        record_interval_us: u64,
        store: Store,
    ) -> Chains {
        let mut accomplice_seed = key.to_bytes();
        accomplice_seed[0] ^= 0xa5;
        let owner = key.verifying_key().to_bytes();
        // A stored chain that does not read back whole is started afresh rather than trusted.
        let own = log::read(&store, &owner, 1, usize::MAX)
            .ok()
            .filter(|records| crate::chain::verify_chain(records).is_ok())
            .unwrap_or_default()
            .into_iter()
            .map(Arc::new)
            .collect();
        Chains {
            store,
            accomplice: SigningKey::from_bytes(&accomplice_seed),
            key,
            record_interval_us: record_interval_us.max(Time::SECOND),
            exchange_interval_us: config.chain_exchange_interval_us.max(Time::SECOND),
            fork_at_us: config.strategy.fork_at_us,
            praise_bytes: config.strategy.praise_bytes,
            accomplices: config
                .strategy
                .accomplices
                .iter()
                .filter(|p| p.0 != owner)
                .copied()
                .collect(),
            omits_others_records: config.strategy.omits_others_records,
            filter: config.trust.is_some(),
            own,
            book: ChainBook::with_records_max(config.chain_book_records_max),
            owed: BTreeMap::new(),
            record_cursor: None,
            proposing: false,
            providing: None,
            waiting: BTreeMap::new(),
            pending_countersigns: Vec::new(),
            unsaved: None,
            next_tag: 1,
        }
    }

    pub fn own(&self) -> &[Arc<Record>] {
        &self.own
    }

    pub fn book(&self) -> &ChainBook {
        &self.book
    }

    fn me(&self) -> PeerId {
        PeerId(self.key.verifying_key().to_bytes())
    }

    fn send(&mut self, ctx: &mut Context<'_>, to: PeerId, body: Request, waiting: Waiting) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.waiting.insert(tag, waiting);
        ctx.local(
            ActorKind::Transport,
            Local::Send {
                to,
                body,
                reply_to: ActorKind::Reputation,
                tag,
            },
        );
    }

    /// Appends an agreed record; `false`: the store did not take it (it is kept in memory,
    /// and nothing is signed until the store has it, see [`Chains::save_unsaved`]).
    fn append(&mut self, ctx: &mut Context<'_>, record: Record) -> bool {
        let fits = record.seq == self.own.len() as u64 + 1
            && record.prev == self.own.last().map_or([0; 32], |r| r.hash());
        assert!(fits, "the agreement was built on this chain's head");
        // Only a store that failed (a full disk, say) halts signing; a chain the store holds
        // otherwise than memory (the forker's deliberate rewrite) is not the store's failure.
        let saved = !matches!(
            log::append_durable(&self.store, &record),
            Err(log::LogError::Store(_))
        );
        if !saved {
            self.unsaved = Some(record.clone());
        }
        ctx.event(Event::ChainAppended { seq: record.seq });
        self.own.push(Arc::new(record));
        saved
    }

    /// Tries again to store the record the store failed to take; `true` once the chain on
    /// the disk is the chain in memory again. Until then this peer signs nothing: neither a
    /// new record (it would be built on a head the disk lacks, and after a restart the
    /// position would be signed again, a fork) nor a countersignature of the unsaved one.
    fn save_unsaved(&mut self) -> bool {
        if let Some(record) = self.unsaved.take() {
            if let Err(log::LogError::Store(_)) = log::append_durable(&self.store, &record) {
                self.unsaved = Some(record);
            }
        }
        self.unsaved.is_none()
    }

    fn countersign(&mut self, ctx: &mut Context<'_>, peer: PeerId, on_provider_half: [u8; 64]) {
        let body = Request::Chain(ChainRequest::Countersign { on_provider_half });
        self.send(
            ctx,
            peer,
            body,
            Waiting::Countersign {
                peer,
                on_provider_half,
            },
        );
    }

    fn busy(&self) -> bool {
        self.proposing || self.providing.is_some() || self.unsaved.is_some()
    }

    /// A key proven to have forked is disqualified here and named to the negotiator.
    fn learned(
        &mut self,
        ctx: &mut Context<'_>,
        proof: ForkProof,
        peers: &dyn Fn() -> Vec<PeerId>,
    ) {
        let offender = PeerId(proof.offender());
        ctx.event(Event::ForkLearned { offender });
        ctx.local(
            ActorKind::Negotiator,
            Local::Standing {
                peer: offender,
                score: 0.0,
            },
        );
        for peer in peers().iter().filter(|p| **p != offender) {
            self.send(
                ctx,
                *peer,
                Request::Chain(ChainRequest::Fork(Box::new(proof.clone()))),
                Waiting::Other,
            );
        }
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input, peers: &dyn Fn() -> Vec<PeerId>) {
        match input {
            Input::Start { .. } => {
                // Answers to what was asked before a restart will not come.
                self.waiting.clear();
                self.proposing = false;
                self.providing = None;
                let first = ctx.rng().gen_range(0..self.record_interval_us);
                ctx.timer(first, RECORD_TOKEN);
                let first = ctx.rng().gen_range(0..self.exchange_interval_us);
                ctx.timer(first, EXCHANGE_TOKEN);
                if let Some(at) = self.fork_at_us {
                    ctx.timer(at.saturating_sub(ctx.now().micros()), FORK_TOKEN);
                }
            }
            Input::Local(Local::Served {
                peer,
                service,
                bytes,
                creds,
                seconds,
            }) => {
                self.owed.entry((peer, service)).or_default().add(Owed {
                    bytes,
                    creds,
                    seconds,
                });
            }
            Input::Timer {
                token: RECORD_TOKEN,
            } => {
                if self.save_unsaved() {
                    for (peer, signature) in std::mem::take(&mut self.pending_countersigns) {
                        self.countersign(ctx, peer, signature);
                    }
                }
                if self.praise_bytes > 0 && !self.accomplices.is_empty() {
                    // The adversary's praise: a record that an accomplice served us, which
                    // it did not (it signs whatever we propose, as anyone would).
                    let accomplice =
                        self.accomplices[ctx.rng().gen_range(0..self.accomplices.len())];
                    self.owed
                        .entry((accomplice, Service::ChunkServed))
                        .or_default()
                        .add(Owed {
                            bytes: self.praise_bytes,
                            creds: 0,
                            seconds: 0,
                        });
                }
                self.record_next(ctx);
                ctx.timer(self.record_interval_us, RECORD_TOKEN);
            }
            Input::Timer {
                token: EXCHANGE_TOKEN,
            } => {
                let peers = peers();
                if !peers.is_empty() {
                    // Ask a peer for its own chain, or (half the time) for the chain of another
                    // owner we have read, so a forker that shows each peer a different branch
                    // is caught when the branches meet. With the filter on, a third of the
                    // reads go to a direct partner's own chain (one of the last counterparties
                    // on ours): what our partners gave and got is what scores the peers two
                    // hops away.
                    let partner = self.filter && ctx.rng().gen_range(0..3) == 0;
                    let recent = self.own.len().saturating_sub(PARTNERS_FROM_RECORDS);
                    let partners = &self.own[recent..];
                    let peer = if partner && !partners.is_empty() {
                        PeerId(partners[ctx.rng().gen_range(0..partners.len())].counterparty)
                    } else {
                        peers[ctx.rng().gen_range(0..peers.len())]
                    };
                    let owners = self.book.owners();
                    let owner = if !partner && !owners.is_empty() && ctx.rng().gen_bool(0.5) {
                        owners[ctx.rng().gen_range(0..owners.len())]
                    } else {
                        peer.0
                    };
                    if owner != peer.0 || owner != self.me().0 {
                        let request = self.book.next_request(owner);
                        self.send(
                            ctx,
                            peer,
                            Request::Chain(ChainRequest::Range(request)),
                            Waiting::Range(request),
                        );
                    }
                }
                ctx.timer(self.exchange_interval_us, EXCHANGE_TOKEN);
            }
            Input::Timer { token: FORK_TOKEN } => self.fork(ctx),
            Input::Local(Local::Incoming { from, id, body }) => {
                let answer = match body {
                    Request::Chain(request) => match self.serve(ctx, from, request, peers) {
                        Ok(answer) => Response::Chain(answer),
                        Err(refusal) => Response::Refused(refusal),
                    },
                    Request::Route(_) | Request::Store(_) | Request::Trade(_) => {
                        Response::Refused(Refusal::NotServed)
                    }
                };
                ctx.local(
                    ActorKind::Transport,
                    Local::Respond {
                        to: from,
                        id,
                        body: answer,
                    },
                );
            }
            Input::Local(Local::Done { tag, from, outcome }) => {
                self.done(ctx, tag, from, outcome, peers)
            }
            _ => {}
        }
    }

    /// Proposes to record the oldest service owed, if no agreement is in progress.
    fn record_next(&mut self, ctx: &mut Context<'_>) {
        // A position promised to a requester (we signed its half, which names it) is never
        // given to anyone else: the requester's countersignature is awaited for as long as it
        // takes (it retries), so an honest provider never signs two records for one position.
        if self.busy() {
            return;
        }
        let after = self.record_cursor.and_then(|cursor| {
            self.owed
                .range((
                    std::ops::Bound::Excluded(cursor),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .map(|(key, _)| *key)
        });
        let Some(key) = after.or_else(|| self.owed.keys().next().copied()) else {
            return;
        };
        let Some(owed) = self.owed.remove(&key) else {
            return;
        };
        self.record_cursor = Some(key);
        let (peer, service) = key;
        let tx = Transaction {
            service,
            bytes: owed.bytes,
            creds: owed.creds,
            seconds: owed.seconds,
            time: ctx.now().micros(),
            outcome: ServiceOutcome::Delivered,
            commitment: [0; 32],
        };
        let proposal = propose(&self.key, self.own.last().map(|r| &**r), peer.0, tx);
        self.proposing = true;
        self.send(
            ctx,
            peer,
            Request::Chain(ChainRequest::Agree(Box::new(proposal.clone()))),
            Waiting::Agreement {
                peer,
                service,
                owed,
                proposal: Box::new(proposal),
            },
        );
    }

    fn serve(
        &mut self,
        ctx: &mut Context<'_>,
        from: PeerId,
        request: ChainRequest,
        peers: &dyn Fn() -> Vec<PeerId>,
    ) -> Result<ChainResponse, Refusal> {
        match request {
            ChainRequest::Agree(proposal) => {
                if proposal.requester != from.0 {
                    ctx.observe(from, Observation::Misbehaved);
                    return Err(Refusal::Invalid);
                }
                if self.busy() {
                    return Err(Refusal::Busy);
                }
                match accept(&self.key, self.own.last().map(|r| &**r), &proposal) {
                    Ok((acceptance, pending)) => {
                        self.providing = Some((from, ctx.now(), pending));
                        Ok(ChainResponse::Accepted(Box::new(acceptance)))
                    }
                    // Built on another head of ours than we have (a stale view): try again.
                    Err(_) => Err(Refusal::Busy),
                }
            }
            ChainRequest::Countersign { on_provider_half } => match self.providing.take() {
                Some((peer, _, pending)) if peer == from => {
                    match finish(pending, &Completion { on_provider_half }) {
                        Ok(record) => {
                            self.append(ctx, record);
                            Ok(ChainResponse::Noted)
                        }
                        Err(_) => {
                            ctx.observe(from, Observation::Misbehaved);
                            Err(Refusal::Invalid)
                        }
                    }
                }
                other => {
                    self.providing = other;
                    // A resent countersignature we already took in (our answer was lost).
                    let known = self.own.iter().rev().take(4).any(|r| {
                        r.counterparty == from.0 && r.counterparty_sig == on_provider_half
                    });
                    if known {
                        Ok(ChainResponse::Noted)
                    } else {
                        Err(Refusal::Busy)
                    }
                }
            },
            ChainRequest::Range(request) => {
                let records = if request.owner == self.me().0 {
                    ChainBook::serve(&self.own, &request)
                } else {
                    let mut records = ChainBook::serve(self.book.chain(&request.owner), &request);
                    if self.omits_others_records {
                        leave_out_others_credit(&mut records, &self.me().0);
                    }
                    records
                };
                Ok(ChainResponse::Records(records))
            }
            ChainRequest::Fork(proof) => {
                if self.book.learn_fork((*proof).clone()) {
                    self.learned(ctx, *proof, peers);
                }
                Ok(ChainResponse::Noted)
            }
        }
    }

    fn done(
        &mut self,
        ctx: &mut Context<'_>,
        tag: u64,
        from: PeerId,
        outcome: Outcome,
        peers: &dyn Fn() -> Vec<PeerId>,
    ) {
        let Some(waiting) = self.waiting.remove(&tag) else {
            return;
        };
        match waiting {
            Waiting::Agreement {
                peer,
                service,
                owed,
                proposal,
            } => {
                self.proposing = false;
                let finished = match outcome {
                    Outcome::Answered(Response::Chain(ChainResponse::Accepted(acceptance))) => {
                        complete(&self.key, &proposal, &acceptance).ok()
                    }
                    _ => None,
                };
                match finished {
                    // Our head may have moved while we waited (we never provide while
                    // proposing, so it has not): append, then countersign their half.
                    Some((record, completion)) => {
                        if self.append(ctx, record) {
                            self.countersign(ctx, peer, completion.on_provider_half);
                        } else {
                            // Sent once the record is on the disk.
                            let half = completion.on_provider_half;
                            self.pending_countersigns.push((peer, half));
                        }
                    }
                    // Busy, refused or silent: owe it still, and try later.
                    None => self.owed.entry((peer, service)).or_default().add(owed),
                }
            }
            Waiting::Range(request) => {
                let Outcome::Answered(Response::Chain(ChainResponse::Records(records))) = outcome
                else {
                    return;
                };
                match self.book.receive(&request, records) {
                    Ok(received) => {
                        ctx.event(Event::ChainVerified {
                            records: received.added as u64,
                        });
                        if let Some(proof) = received.fork {
                            self.learned(ctx, proof, peers);
                        }
                    }
                    Err(_) => ctx.observe(from, Observation::Misbehaved),
                }
            }
            Waiting::Countersign {
                peer,
                on_provider_half,
            } => {
                // Until the provider has it, keep sending: it keeps our half's position for us.
                if !matches!(
                    outcome,
                    Outcome::Answered(Response::Chain(ChainResponse::Noted))
                ) {
                    self.pending_countersigns.push((peer, on_provider_half));
                }
            }
            Waiting::Other => {}
        }
    }

    /// The adversary's move: rewrite its history from the middle on. It drops the second
    /// half of its chain (it cannot re-sign its counterparties' halves), replaces the record
    /// before with one an accomplice countersigned, and serves that history from now on.
    fn fork(&mut self, ctx: &mut Context<'_>) {
        let keep = (self.own.len() / 2).max(1);
        self.own.truncate(keep);
        let Some(last) = self.own.last().map(|r| Record::clone(r)) else {
            return;
        };
        let mut forged = Record {
            counterparty: self.accomplice.verifying_key().to_bytes(),
            counterparty_seq: 1,
            role: Role::Requester,
            tx: Transaction {
                bytes: last.tx.bytes.wrapping_add(1),
                ..last.tx
            },
            ..last
        };
        forged.owner_sig = forged.sign(&self.key);
        forged.counterparty_sig = forged.sign(&self.accomplice);
        self.own.pop();
        self.own.push(Arc::new(forged));
        ctx.event(Event::Forked);
    }
}

/// The liar about others' answer (`Strategy::omits_others_records`): `records` (a run of
/// another owner's chain) only up to the first that credits a provider other than `me`.
/// A run is linked record to record, so nothing can be left out of its middle.
fn leave_out_others_credit(records: &mut Vec<Arc<Record>>, me: &[u8; 32]) {
    let credits_another = |r: &Arc<Record>| match r.role {
        Role::Provider => r.owner != *me,
        Role::Requester => r.counterparty != *me,
    };
    let keep = records.iter().position(credits_another);
    records.truncate(keep.unwrap_or(records.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(owner: u8, seq: u64, counterparty: u8, role: Role) -> Arc<Record> {
        Arc::new(Record {
            owner: [owner; 32],
            seq,
            prev: [0; 32],
            counterparty: [counterparty; 32],
            counterparty_seq: 1,
            role,
            tx: Transaction {
                service: Service::ChunkServed,
                bytes: 1 << 20,
                creds: 0,
                seconds: 0,
                time: seq,
                outcome: ServiceOutcome::Delivered,
                commitment: [0; 32],
            },
            owner_sig: [0; 64],
            counterparty_sig: [0; 64],
        })
    }

    #[test]
    fn a_liar_about_others_cuts_the_run_at_the_first_record_crediting_another() {
        let liar = [9u8; 32];
        // Owner 1's chain: the liar served it, it served the liar, then it served peer 3,
        // then the liar served it again.
        let run = vec![
            record(1, 1, 9, Role::Requester),
            record(1, 2, 9, Role::Provider),
            record(1, 3, 3, Role::Provider),
            record(1, 4, 9, Role::Requester),
        ];
        let mut answer = run.clone();
        leave_out_others_credit(&mut answer, &liar);
        // Record 2 credits owner 1 (a provider other than the liar): the run stops before it.
        assert_eq!(answer, run[..1].to_vec());
        let mut credits_only_the_liar = vec![run[0].clone(), run[3].clone()];
        leave_out_others_credit(&mut credits_only_the_liar, &liar);
        assert_eq!(credits_only_the_liar.len(), 2);
        let mut none: Vec<Arc<Record>> = Vec::new();
        leave_out_others_credit(&mut none, &liar);
        assert!(none.is_empty());
    }
}
