//! Storage contracts and the grants that enforce them. A requester proposes terms to a
//! peer it wants to place chunks on; the provider's strategy accepts them, counters, or
//! declines. Both sides keep the contract, tell their store actor what the other may use
//! ([`Local::Grant`]), and judge it at the end of each term: a partner that failed audits,
//! refused service beyond what altruism tolerates, or drew more credit than it may is not
//! renewed. Creds are counted on the reservations: what each side holds for the other.

use super::ledger::Creds;
use super::{Negotiator, Owned, Purpose};
use crate::ids::ChunkId;
use crate::kernel::strategy::Economy;
use crate::kernel::{
    ActorKind, Context, Local, Observation, Outcome, PeerId, Refusal, Request, Response,
    StoreResponse, Terms, Time, TradeRequest, TradeResponse,
};

/// A storage contract with one peer, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    /// Bytes it holds for us (its promise).
    pub for_me_bytes: u64,
    /// Bytes we hold for it (ours).
    pub for_them_bytes: u64,
    pub term_us: u64,
    /// When the current term ends (and the contract is judged).
    pub ends: Time,
    /// When it was made (or restored at a restart).
    pub made: Time,
}

/// Longest term we agree to.
pub(super) const TERM_US_MAX: u64 = 7 * Time::DAY;

impl Negotiator {
    pub fn contracts(&self) -> impl Iterator<Item = (&PeerId, &Contract)> {
        self.contracts.iter()
    }

    /// How many contracts this peer has now (without walking them).
    pub fn contracts_len(&self) -> usize {
        self.contracts.len()
    }

    pub fn ledgers(&self) -> &super::ledger::Ledgers {
        &self.ledgers
    }

    fn economy(&self) -> &Economy {
        &self.config.economy
    }

    /// How often creds are counted and ended terms judged: four times a term, and at least
    /// every upkeep round, so that a contract is judged within a quarter term of its end.
    pub(super) fn term_interval_us(&self) -> u64 {
        (self.economy().contract_term_us / 4).clamp(
            Time::SECOND,
            self.config.check_interval_us.max(Time::SECOND),
        )
    }

    pub(super) fn audit_interval_us(&self) -> u64 {
        self.config.strategy.audit_interval_us(&self.config.economy)
    }

    /// Creds a partner may owe us at a term's end and still be renewed.
    fn credit_creds(&self) -> Creds {
        let bytes = self.config.strategy.credit_bytes(self.economy());
        Creds::for_storage(bytes, self.economy().contract_term_us)
    }

    /// Bytes we have promised to hold for others, leaving `except` out.
    fn promised_bytes(&self, except: &PeerId) -> u64 {
        self.contracts
            .iter()
            .filter(|(peer, _)| *peer != except)
            .map(|(_, c)| c.for_them_bytes)
            .sum()
    }

    /// Where a chunk's replicas go: with routing on, contract partners with room first
    /// (nearest the chunk's ring point, so chunks spread over partners), then the ring;
    /// without routing, the ring alone (fetchers find holders there).
    pub(super) fn placement_candidates(
        &self,
        ctx: &Context<'_>,
        owned: &Owned,
        skip: &dyn Fn(&PeerId) -> bool,
    ) -> Vec<PeerId> {
        let declined = |peer: &PeerId| {
            self.ledgers.get(peer).is_some_and(|l| {
                l.declined_lately(ctx.now(), self.economy())
                    || l.refused_at
                        .is_some_and(|at| ctx.now().since(at) < self.economy().propose_interval_us)
            }) && !self.contracts.contains_key(peer)
        };
        let skip_all = |peer: &PeerId| skip(peer) || declined(peer);
        // Every chunk of a tree goes where its root went, so finding the root's holders
        // finds the tree: once the root has its holders, the other chunks wait for room
        // there (a contract that grows) rather than spill elsewhere.
        let root = ChunkId(owned.point.0);
        let mut picked = Vec::new();
        if let Some(tree) = self.owned.get(&root) {
            // A holder that declines (it has no room left for us) is not waited for: the
            // rest of the tree goes elsewhere.
            let declines = |peer: &PeerId| {
                !self.contracts.contains_key(peer)
                    && self
                        .ledgers
                        .get(peer)
                        .is_some_and(|l| l.declined_lately(ctx.now(), self.economy()))
            };
            picked.extend(tree.holders.keys().filter(|peer| {
                !skip(peer)
                    && !declines(peer)
                    && !self.ledgers.disqualified(peer)
                    && !self.recently_unreachable(ctx.now(), peer)
            }));
            if tree.holders.len() >= self.config.replication {
                return picked;
            }
        }
        if self.config.lookups {
            let mut partners: Vec<(PeerId, [u8; 32])> = self
                .contracts
                .iter()
                .filter(|(peer, contract)| {
                    let used = self.ledgers.get(peer).map_or(0, |l| l.held_by_them_bytes);
                    used + owned.len <= contract.for_me_bytes
                        && !skip_all(peer)
                        && !self.ledgers.disqualified(peer)
                        && !self.recently_unreachable(ctx.now(), peer)
                })
                .map(|(peer, _)| {
                    let mut distance = [0u8; 32];
                    for (d, (a, b)) in distance.iter_mut().zip(peer.0.iter().zip(owned.point.0)) {
                        *d = a ^ b;
                    }
                    (*peer, distance)
                })
                .collect();
            partners.sort_by_key(|(peer, distance)| (*distance, *peer));
            for (peer, _) in partners {
                if !picked.contains(&peer) {
                    picked.push(peer);
                }
            }
        }
        for peer in self.candidates(ctx, owned.point, &skip_all) {
            if !picked.contains(&peer) {
                picked.push(peer);
            }
        }
        picked
    }

    /// A placement on `from` was answered: count it, and seek a contract where we lack one.
    pub(super) fn placement_answered(
        &mut self,
        ctx: &mut Context<'_>,
        from: PeerId,
        bytes: u64,
        outcome: &Outcome,
    ) {
        let contracted = self.contracts.get(&from).copied();
        let contracts = &self.contracts;
        let Some(ledger) = self
            .ledgers
            .entry(from, ctx.now(), &self.config.economy, &|p| {
                contracts.contains_key(p)
            })
        else {
            return;
        };
        match outcome {
            Outcome::Answered(Response::Store(StoreResponse::Stored)) => {
                ledger.held_by_them_bytes += bytes;
                ledger.term_served += 1;
                let used = ledger.held_by_them_bytes;
                match contracted {
                    None => self.want_contract(ctx, from, bytes),
                    Some(c) if used + bytes > c.for_me_bytes => {
                        self.want_contract(ctx, from, bytes)
                    }
                    Some(_) => {}
                }
            }
            Outcome::Answered(Response::Refused(Refusal::QuotaFull)) => {
                let used = ledger.held_by_them_bytes;
                match contracted {
                    // Within its promise, it fell short; unless the contract was only just
                    // made: a node's store and negotiator are separate actors, and its
                    // store may take our first requests before it hears of the contract
                    // its negotiator just made (the chunk goes elsewhere all the same).
                    Some(c) if used + bytes <= c.for_me_bytes => {
                        if ctx.now().since(c.made) >= self.config.contract_grace_us {
                            ledger.term_failed += 1;
                        }
                    }
                    Some(_) => self.want_contract(ctx, from, bytes),
                    None => {
                        ledger.refused_at = Some(ctx.now());
                        self.want_contract(ctx, from, bytes);
                    }
                }
            }
            Outcome::Answered(Response::Refused(Refusal::Declined)) => match contracted {
                Some(_) => ledger.term_failed += 1,
                // It holds nothing for us without a contract, and will not make one: as a
                // declined proposal, it is not asked again for a while.
                None => {
                    ledger.declined_at = Some(ctx.now());
                    ledger.declines = ledger.declines.saturating_add(1);
                }
            },
            _ => {}
        }
    }

    /// Proposes a contract to `peer` big enough for what we hold there and `need` more.
    fn want_contract(&mut self, ctx: &mut Context<'_>, peer: PeerId, need: u64) {
        let recently = self
            .ledgers
            .get(&peer)
            .and_then(|l| l.proposed_at)
            .is_some_and(|at| ctx.now().since(at) < self.config.economy.propose_interval_us);
        if recently
            || self.config.strategy.stranger_only
            || self.proposing.contains(&peer)
            || self.ledgers.disqualified(&peer)
            || (!self.contracts.contains_key(&peer)
                && self.contracts.len() >= self.economy().contracts_max)
        {
            return;
        }
        let used = self.ledgers.get(&peer).map_or(0, |l| l.held_by_them_bytes);
        let current = self.contracts.get(&peer).map_or(0, |c| c.for_me_bytes);
        let bytes = self
            .economy()
            .contract_bytes_min
            .max(used.saturating_add(need).saturating_mul(2))
            .max(current.saturating_mul(2));
        let free = self
            .config
            .storage_for_others_bytes
            .saturating_sub(self.promised_bytes(&peer));
        let offer = if self.config.strategy.freeloads_storage(ctx.now())
            || !self.config.strategy.deals_with(&peer)
        {
            0
        } else {
            bytes.min(free)
        };
        let terms = Terms {
            bytes,
            reciprocal_bytes: offer,
            term_s: (self.economy().contract_term_us / Time::SECOND) as u32,
        };
        self.propose(ctx, peer, terms, false);
    }

    /// Proposes `terms` to `peer`; a `renewal` asks it to promise again what our contract
    /// already says, which a partner that no longer gives storage refuses.
    fn propose(&mut self, ctx: &mut Context<'_>, peer: PeerId, terms: Terms, renewal: bool) {
        self.proposing.insert(peer);
        if let Some(ledger) = self.ledgers.get_mut(&peer).filter(|_| !renewal) {
            ledger.proposed_at = Some(ctx.now());
        }
        let body = Request::Trade(TradeRequest::Propose(terms));
        let purpose = Purpose::Propose {
            peer,
            terms,
            renewal,
        };
        self.send(ctx, peer, body, purpose);
    }

    pub(super) fn proposal_answered(
        &mut self,
        ctx: &mut Context<'_>,
        peer: PeerId,
        (terms, renewal): (Terms, bool),
        outcome: Outcome,
    ) {
        self.proposing.remove(&peer);
        match outcome {
            // It will not promise its side again: the contract ends now, not a term later.
            Outcome::Answered(Response::Refused(Refusal::Declined))
                if renewal && self.contracts.contains_key(&peer) =>
            {
                self.end_contract(ctx, peer, true, false);
            }
            // It promised again; our contract was renewed already.
            Outcome::Answered(_) if renewal => {}
            Outcome::Answered(Response::Trade(TradeResponse::Accepted(agreed)))
                if agreed == terms =>
            {
                let contract = Contract {
                    for_me_bytes: terms.bytes,
                    for_them_bytes: terms.reciprocal_bytes,
                    term_us: u64::from(terms.term_s) * Time::SECOND,
                    ends: ctx.now().plus(u64::from(terms.term_s) * Time::SECOND),
                    made: ctx.now(),
                };
                self.contract_made(ctx, peer, contract);
            }
            // Terms it would accept: take them if they are less than we asked (so this ends)
            // and more than we have.
            Outcome::Answered(Response::Trade(TradeResponse::Countered(countered)))
                if countered.bytes > 0
                    && countered.bytes < terms.bytes
                    && countered.bytes
                        > self.contracts.get(&peer).map_or(0, |c| c.for_me_bytes) =>
            {
                let terms = Terms {
                    reciprocal_bytes: countered.reciprocal_bytes.min(terms.reciprocal_bytes),
                    ..countered
                };
                self.propose(ctx, peer, terms, false);
            }
            Outcome::Answered(_) => {
                if let Some(ledger) = self.ledgers.get_mut(&peer) {
                    ledger.declined_at = Some(ctx.now());
                    ledger.declines = ledger.declines.saturating_add(1);
                }
            }
            Outcome::TimedOut | Outcome::NotSent => {}
        }
    }

    fn contract_made(&mut self, ctx: &mut Context<'_>, peer: PeerId, contract: Contract) {
        // An accepted proposal may be followed by a bigger one at once, as needs grow.
        if let Some(ledger) = self.ledgers.get_mut(&peer) {
            ledger.proposed_at = None;
        }
        let grew = self
            .contracts
            .insert(peer, contract)
            .is_none_or(|old| old.for_me_bytes < contract.for_me_bytes);
        if let Some(ledger) = self.ledgers.get_mut(&peer) {
            ledger.stranger_since = None;
            ledger.declined_at = None;
            ledger.declines = 0;
            // Should the contract end, it gets a stranger's term to move its chunks.
            ledger.trial_spent = false;
        }
        self.save_contracts(ctx.now());
        self.stranger_judged(ctx, peer, true);
        self.grant(ctx, peer);
        // Chunks that found no room may fit now: they try again from the start.
        if grew {
            self.retry_starved_now(ctx);
        }
    }

    /// Serves a trade request from `from` as our strategy says.
    pub(super) fn trade(
        &mut self,
        ctx: &mut Context<'_>,
        from: PeerId,
        request: TradeRequest,
    ) -> Response {
        match request {
            TradeRequest::Propose(terms) => match self.consider(ctx, from, terms) {
                Ok(answer) => Response::Trade(answer),
                Err(refusal) => Response::Refused(refusal),
            },
            // It no longer holds what it held for us (a contract, or a stranger's term).
            TradeRequest::End => {
                if self.contracts.contains_key(&from) {
                    self.end_contract(ctx, from, false, false);
                } else {
                    self.lose_holder(ctx, from);
                }
                Response::Trade(TradeResponse::Ended)
            }
            TradeRequest::Lost { chunks } if chunks.len() > self.config.check_chunks_max => {
                Response::Refused(Refusal::TooLarge)
            }
            // It restarted without these: they need another holder (an audit would have
            // found out later).
            TradeRequest::Lost { chunks } => {
                for chunk in chunks {
                    let Some(owned) = self.owned.get_mut(&chunk) else {
                        continue;
                    };
                    if owned.holders.remove(&from).is_some() {
                        if let Some(ledger) = self.ledgers.get_mut(&from) {
                            ledger.held_by_them_bytes =
                                ledger.held_by_them_bytes.saturating_sub(owned.len);
                        }
                        self.place(ctx, chunk, true);
                    }
                }
                Response::Trade(TradeResponse::NotedLost)
            }
        }
    }

    /// The provider's side of a proposal.
    fn consider(
        &mut self,
        ctx: &mut Context<'_>,
        from: PeerId,
        terms: Terms,
    ) -> Result<TradeResponse, Refusal> {
        let term_us = u64::from(terms.term_s) * Time::SECOND;
        if terms.bytes == 0 || term_us == 0 || term_us > TERM_US_MAX {
            return Err(Refusal::Invalid);
        }
        if self.config.strategy.freeloads_storage(ctx.now())
            || !self.config.strategy.deals_with(&from)
        {
            return Err(Refusal::Declined);
        }
        if !self.contracts.contains_key(&from)
            && self.contracts.len() >= self.economy().contracts_max
        {
            return Err(Refusal::Declined);
        }
        let credit_creds = self.credit_creds();
        let contracts = &self.contracts;
        let ledger = self
            .ledgers
            .entry(from, ctx.now(), &self.config.economy, &|p| {
                contracts.contains_key(p)
            })
            .ok_or(Refusal::Declined)?;
        // A peer that broke a contract with us, or owes us more than our credit, gets none.
        let owes = Creds(ledger.creds_given.0.saturating_sub(ledger.creds_received.0));
        if ledger.disqualified || ledger.contracts_broken > 0 || owes > credit_creds {
            return Err(Refusal::Declined);
        }
        // A partner asking us to promise again what our contract says: yes if we would still
        // renew it. Our contract stays as it is, and we judge it at its own term's end.
        let same = self.contracts.get(&from).is_some_and(|c| {
            c.for_them_bytes == terms.bytes
                && c.for_me_bytes == terms.reciprocal_bytes
                && c.term_us == term_us
        });
        if same && self.trusted(&from) {
            return Ok(TradeResponse::Accepted(terms));
        }
        let Some(ledger) = self.ledgers.get(&from) else {
            return Err(Refusal::Declined);
        };
        let partner = ledger.creds_received.0 > 0;
        let holds = ledger.held_for_them_bytes > 0;
        let holds_for_us = ledger.held_by_them_bytes;
        let free = self
            .config
            .storage_for_others_bytes
            .saturating_sub(self.promised_bytes(&from));
        // Credit is for partners that have given us storage, and no more than they hold for
        // us now: a peer that holds a little for us (a sybil's identity on a shared sliver
        // of disk) cannot draw a whole credit line on it. A stranger offers storage for
        // storage, or gets nothing beyond a stranger's allowance.
        let credit = if partner {
            self.config
                .strategy
                .credit_bytes(self.economy())
                .min(holds_for_us)
        } else {
            0
        };
        let room = terms.bytes.min(free);
        // With the filter on, a peer whose score fell under the line gets no contract: it is
        // treated as offering nothing (a stranger's trial is then spent, as below).
        let acceptable = if self.trusted(&from) {
            room.min(terms.reciprocal_bytes.saturating_add(credit))
        } else {
            0
        };
        if acceptable < terms.bytes {
            let least = self.economy().contract_bytes_min / 4;
            if acceptable >= least {
                return Ok(TradeResponse::Countered(Terms {
                    bytes: acceptable,
                    reciprocal_bytes: terms.reciprocal_bytes.min(acceptable),
                    term_s: terms.term_s,
                }));
            }
            // A peer without a contract here that asks for storage and offers too little in
            // return (we had the room) is no stranger on trial, even one that has held a
            // little for us: unless we give freely, its trial is spent.
            if !self.contracts.contains_key(&from)
                && room >= least
                && !self.config.strategy.gives_freely()
            {
                if let Some(ledger) = self.ledgers.get_mut(&from) {
                    ledger.trial_spent = true;
                }
                self.stranger_judged(ctx, from, false);
                self.grant(ctx, from);
                if holds {
                    self.send(ctx, from, Request::Trade(TradeRequest::End), Purpose::End);
                }
            }
            return Err(Refusal::Declined);
        }
        let contract = Contract {
            for_me_bytes: terms.reciprocal_bytes,
            for_them_bytes: terms.bytes,
            term_us,
            ends: ctx.now().plus(term_us),
            made: ctx.now(),
        };
        self.contract_made(ctx, from, contract);
        Ok(TradeResponse::Accepted(terms))
    }

    /// What the store should let `peer` use: its contract's quota (or a stranger's, for one
    /// term), and bytes served up to what it served us plus our allowance.
    pub(super) fn grant(&self, ctx: &mut Context<'_>, peer: PeerId) {
        let strategy = &self.config.strategy;
        let ledger = self.ledgers.get(&peer);
        let (quota_bytes, serve_until_bytes) = if ledger.is_some_and(|l| l.disqualified) {
            (0, 0)
        } else {
            let quota = match self.contracts.get(&peer) {
                Some(contract) => contract.for_them_bytes,
                None => {
                    let trial_over = ledger.is_some_and(|l| {
                        l.trial_spent
                            || l.stranger_since.is_some_and(|at| {
                                ctx.now().since(at) >= self.economy().contract_term_us
                            })
                    });
                    let broke = ledger.is_some_and(|l| l.contracts_broken > 0);
                    if trial_over || broke {
                        0
                    } else if !self.trusted(&peer) {
                        // Distrusted (scores move every computation): it keeps what it has
                        // here until its term ends, and may place nothing more.
                        let held = ledger.map_or(0, |l| l.held_for_them_bytes);
                        held.min(self.stranger_allowance().0)
                    } else {
                        self.stranger_allowance().0
                    }
                }
            };
            let received = ledger.map_or(0, |l| l.bandwidth_received_bytes);
            // A partner gets the whole allowance; anyone else, a stranger's (none at all
            // under the filter's line).
            let allowance = if self.contracts.contains_key(&peer) {
                strategy.bandwidth_allowance_bytes(self.economy())
            } else if self.trusted(&peer) {
                self.stranger_allowance().1
            } else {
                0
            };
            (quota, received.saturating_add(allowance))
        };
        ctx.local(
            ActorKind::Store,
            Local::Grant {
                peer,
                quota_bytes,
                serve_until_bytes,
            },
        );
    }

    /// The store reports what `peer` uses here.
    pub(super) fn usage(&mut self, ctx: &mut Context<'_>, peer: PeerId, held: u64, served: u64) {
        let contracted = self.contracts.contains_key(&peer);
        let contracts = &self.contracts;
        let Some(ledger) = self
            .ledgers
            .entry(peer, ctx.now(), &self.config.economy, &|p| {
                contracts.contains_key(p)
            })
        else {
            return;
        };
        ledger.held_for_them_bytes = held;
        ledger.bandwidth_given_bytes = served;
        if held > 0 && !contracted && ledger.stranger_since.is_none() {
            ledger.stranger_since = Some(ctx.now());
        }
    }

    /// `from` served us `bytes`: it may draw as much more from us.
    pub(super) fn received_from(&mut self, ctx: &mut Context<'_>, from: PeerId, bytes: u64) {
        let contracts = &self.contracts;
        if let Some(ledger) = self
            .ledgers
            .entry(from, ctx.now(), &self.config.economy, &|p| {
                contracts.contains_key(p)
            })
        {
            ledger.bandwidth_received_bytes += bytes;
            ledger.term_served += u64::from(self.contracts.contains_key(&from));
        }
        if bytes > 0 {
            self.stranger_judged(ctx, from, true);
        }
        self.grant(ctx, from);
    }

    /// Ends our contract with `peer`: its quota here falls (the store drops its chunks over
    /// it), and our chunks it held are placed elsewhere. `tell`: we end it, so say so;
    /// `broken`: it did not keep its side.
    pub(super) fn end_contract(
        &mut self,
        ctx: &mut Context<'_>,
        peer: PeerId,
        tell: bool,
        broken: bool,
    ) {
        if self.contracts.remove(&peer).is_some() {
            self.save_contracts(ctx.now());
        }
        if let Some(ledger) = self.ledgers.get_mut(&peer) {
            if broken {
                ledger.contracts_broken += 1;
            }
            // What it held for us under the contract is no longer promised.
            ledger.stranger_since = Some(ctx.now());
        }
        if tell {
            let body = Request::Trade(TradeRequest::End);
            self.send(ctx, peer, body, Purpose::End);
        }
        self.grant(ctx, peer);
        self.lose_holder(ctx, peer);
    }

    /// Our chunks on `peer` are no longer there (as far as we count): place them again.
    pub(super) fn lose_holder(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let mut lost = Vec::new();
        for (chunk, owned) in &mut self.owned {
            if owned.holders.remove(&peer).is_some() {
                lost.push(*chunk);
            }
        }
        if let Some(ledger) = self.ledgers.get_mut(&peer) {
            ledger.held_by_them_bytes = 0;
        }
        for chunk in lost {
            self.place(ctx, chunk, true);
        }
    }

    /// Every term interval ([`Negotiator::term_interval_us`]): counts the creds each side
    /// gave over the round, judges the contracts whose term ended, and ends strangers' free
    /// term.
    pub(super) fn term_round(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        let elapsed = now.since(self.last_term_round);
        self.last_term_round = now;
        // What each holder holds for us now.
        let mut held_by: std::collections::BTreeMap<PeerId, u64> = Default::default();
        for owned in self.owned.values() {
            for holder in owned.holders.keys() {
                *held_by.entry(*holder).or_default() += owned.len;
            }
        }
        // One pass over the ledgers beside the contracts and `held_by` (all in id order),
        // not three lookups a ledger.
        let mut contracts = self.contracts.iter().peekable();
        let mut held_by = held_by.into_iter().peekable();
        for (peer, ledger) in self.ledgers.iter_mut() {
            while contracts.next_if(|(p, _)| *p < peer).is_some() {}
            let contract = contracts.next_if(|(p, _)| *p == peer).map(|(_, c)| *c);
            while held_by.next_if(|(p, _)| p < peer).is_some() {}
            let held = held_by.next_if(|(p, _)| p == peer).map(|(_, bytes)| bytes);
            ledger.held_by_them_bytes = held.unwrap_or(0);
            let (given, received) = match contract {
                Some(c) => (c.for_them_bytes, c.for_me_bytes),
                None => (ledger.held_for_them_bytes, ledger.held_by_them_bytes),
            };
            ledger.creds_given = ledger.creds_given.plus(Creds::for_storage(given, elapsed));
            let earned = Creds::for_storage(received, elapsed);
            ledger.creds_received = ledger.creds_received.plus(earned);
            if earned.0 > 0 && ledger.held_by_them_bytes > 0 {
                // A service to us: recorded on both chains with its quantities.
                let served = Local::Served {
                    peer: *peer,
                    service: crate::chain::Service::ChunkStored,
                    bytes: ledger.held_by_them_bytes,
                    creds: earned.0,
                    seconds: elapsed / Time::SECOND,
                };
                ctx.local(ActorKind::Reputation, served);
            }
        }
        let tolerated = self
            .config
            .strategy
            .shortfall_tolerated(&self.config.economy);
        let credit = self.credit_creds();
        let ended: Vec<PeerId> = self
            .contracts
            .iter()
            .filter(|(_, c)| c.ends <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in ended {
            let Some(ledger) = self.ledgers.get_mut(&peer) else {
                self.end_contract(ctx, peer, true, false);
                continue;
            };
            let owes = Creds(ledger.creds_given.0.saturating_sub(ledger.creds_received.0));
            let fell_short = ledger.disqualified || ledger.shortfall() > tolerated || owes > credit;
            // With the filter on, a partner the filter no longer trusts is not renewed.
            let distrusted = !self.trusted(&peer);
            let Some(ledger) = self.ledgers.get_mut(&peer) else {
                continue;
            };
            ledger.term_failed = 0;
            ledger.term_served = 0;
            if fell_short {
                ctx.observe(peer, Observation::Misbehaved);
                self.end_contract(ctx, peer, true, true);
            } else if distrusted {
                // Not renewed, and not contracted with again (counted with the broken ones):
                // letting it back in made and ended contracts every term near the line, and
                // doubled the traffic (`freeriders-1000`, 7 days: 186 GB against 78 GB). It is
                // not marked as misbehaving, so its score does not fall further for it.
                ledger.declined_at = Some(now);
                ledger.declines = ledger.declines.saturating_add(1);
                self.end_contract(ctx, peer, true, true);
            } else {
                ledger.contracts_kept += 1;
                // Renewed, and the partner is asked to promise its side again: one that
                // stopped giving storage refuses, and the contract ends now, even if no audit
                // of ours could have found it out (we placed nothing with it, or its turn to
                // be audited has not come).
                if let Some(contract) = self.contracts.get_mut(&peer) {
                    contract.ends = contract.ends.plus(contract.term_us.max(Time::SECOND));
                    let contract = *contract;
                    if contract.for_me_bytes > 0 && !self.proposing.contains(&peer) {
                        let terms = Terms {
                            bytes: contract.for_me_bytes,
                            reciprocal_bytes: contract.for_them_bytes,
                            term_s: (contract.term_us / Time::SECOND) as u32,
                        };
                        self.propose(ctx, peer, terms, true);
                    }
                }
            }
        }
        // Saved every round (with the time left in each term), so that a restart ends each
        // term at most one round late.
        if !self.contracts.is_empty() {
            self.save_contracts(now);
        }
        // Strangers whose free term is over: their quota falls to nothing.
        let expired: Vec<PeerId> = self
            .ledgers
            .iter()
            .filter(|(peer, l)| {
                !self.contracts.contains_key(peer)
                    && l.held_for_them_bytes > 0
                    && l.stranger_since
                        .is_some_and(|at| now.since(at) >= self.config.economy.contract_term_us)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            if let Some(ledger) = self.ledgers.get_mut(&peer) {
                ledger.trial_spent = true;
            }
            self.stranger_judged(ctx, peer, false);
            self.grant(ctx, peer);
            // Its chunks go: say so, so that it places them elsewhere.
            let body = Request::Trade(TradeRequest::End);
            self.send(ctx, peer, body, Purpose::End);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{KernelConfig, Outbox};
    use crate::store::Store;
    use rand::SeedableRng;

    /// In a node, a partner's store may refuse our first requests before its negotiator's
    /// word of the contract reaches it: that is not held against the partner; a refusal
    /// later is.
    #[test]
    fn a_refusal_as_a_contract_is_made_is_not_held_against_the_partner() {
        let config = KernelConfig {
            contract_grace_us: 10 * Time::SECOND,
            ..KernelConfig::default()
        };
        let mut negotiator = Negotiator::new(config.clone(), Store::memory());
        let (me, partner) = (PeerId([1; 32]), PeerId([9; 32]));
        let begun = Time(10 * Time::HOUR);
        let contract = Contract {
            for_me_bytes: 1 << 20,
            for_them_bytes: 1 << 20,
            term_us: Time::DAY,
            ends: begun.plus(Time::DAY),
            made: begun,
        };
        negotiator.contracts.insert(partner, contract);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut out = Outbox::default();
        let refused = Outcome::Answered(Response::Refused(Refusal::QuotaFull));
        let mut answer = |negotiator: &mut Negotiator, now: Time| {
            let mut ctx = Context::new(now, me, ActorKind::Negotiator, &mut rng, &mut out);
            negotiator.placement_answered(&mut ctx, partner, 1000, &refused);
            negotiator.ledgers().get(&partner).map(|l| l.term_failed)
        };
        assert_eq!(answer(&mut negotiator, begun.plus(1)), Some(0));
        let later = begun.plus(config.contract_grace_us);
        assert_eq!(answer(&mut negotiator, later), Some(1));
    }

    /// At a term's end the partner is asked to promise its side again, even one that holds
    /// nothing of ours (no audit could have tested it): a refusal ends the contract at once;
    /// the partner that promises again keeps its own term's end.
    #[test]
    fn a_renewal_asks_the_partner_to_promise_again_and_its_refusal_ends_the_contract() {
        let config = KernelConfig::default();
        let (me, partner) = (PeerId([1; 32]), PeerId([9; 32]));
        let begun = Time(10 * Time::HOUR);
        let contract = Contract {
            for_me_bytes: 2 << 20,
            for_them_bytes: 1 << 20,
            term_us: Time::DAY,
            ends: begun.plus(Time::DAY),
            made: begun,
        };
        let terms = Terms {
            bytes: 2 << 20,
            reciprocal_bytes: 1 << 20,
            term_s: (Time::DAY / Time::SECOND) as u32,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut out = Outbox::default();
        let judged = begun.plus(Time::DAY + Time::HOUR);
        for (answer, kept) in [
            (Response::Refused(Refusal::Declined), false),
            (Response::Trade(TradeResponse::Accepted(terms)), true),
        ] {
            let mut negotiator = Negotiator::new(config.clone(), Store::memory());
            negotiator.contracts.insert(partner, contract);
            let economy = config.economy.clone();
            negotiator
                .ledgers
                .entry(partner, begun, &economy, &|_| true);
            out.clear();
            let mut ctx = Context::new(judged, me, ActorKind::Negotiator, &mut rng, &mut out);
            negotiator.term_round(&mut ctx);
            // Renewed for now, and asked again on the same terms.
            let renewed = negotiator.contracts.get(&partner).map(|c| c.ends);
            assert_eq!(renewed, Some(contract.ends.plus(Time::DAY)));
            let asked = out.local.iter().any(|(_, local)| {
                matches!(local, Local::Send { to, body: Request::Trade(TradeRequest::Propose(t)), .. }
                    if *to == partner && *t == terms)
            });
            assert!(asked, "no renewal asked: {:?}", out.local);
            let mut ctx = Context::new(judged, me, ActorKind::Negotiator, &mut rng, &mut out);
            negotiator.proposal_answered(
                &mut ctx,
                partner,
                (terms, true),
                Outcome::Answered(answer),
            );
            assert_eq!(negotiator.contracts.contains_key(&partner), kept);
            if kept {
                let ends = negotiator.contracts.get(&partner).map(|c| c.ends);
                assert_eq!(ends, renewed, "a promise given again changes nothing");
            }
        }

        // The partner's side: asked on its contract's terms, it says yes and keeps its end.
        let mut theirs = Negotiator::new(config.clone(), Store::memory());
        let mirrored = Contract {
            for_me_bytes: contract.for_them_bytes,
            for_them_bytes: contract.for_me_bytes,
            ..contract
        };
        theirs.contracts.insert(me, mirrored);
        let mut ctx = Context::new(judged, partner, ActorKind::Negotiator, &mut rng, &mut out);
        let answer = theirs.consider(&mut ctx, me, terms);
        assert_eq!(answer, Ok(TradeResponse::Accepted(terms)));
        assert_eq!(
            theirs.contracts.get(&me).map(|c| c.ends),
            Some(mirrored.ends)
        );
    }
}
