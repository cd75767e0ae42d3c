//! The store actor: the chunk store behind an actor. It keeps our own chunks and the chunks
//! other peers asked us to keep, and enforces what each peer may use: the storage quota and
//! the bytes served that the negotiator grants it ([`Local::Grant`]), or a stranger's
//! allowance when it has no grant. It answers audits from the bytes it holds, and tells the
//! negotiator what each peer uses ([`Local::Usage`]). Real payloads go to a [`Store`]
//! (memory or RocksDB, checked against their ids); synthetic ones (simulator only) are kept
//! as their descriptors. The adversaries' store behaviours (freeloading, dropping, lying)
//! are here, read from the [`Strategy`].

use std::collections::BTreeMap;

use rand::Rng;

use super::content::{audit_proof, payload_matches};
use super::strategy::{Economy, Strategy};
use super::{
    ActorKind, Challenge, Context, Event, Input, KernelConfig, Local, Observation, Payload, PeerId,
    Refusal, Request, Response, StoreRequest, StoreResponse, TradeRequest,
};
use crate::ids::ChunkId;
use crate::limits::CHUNK_STORED_BYTES_MAX;
use crate::store::Store;

/// The timer of a traitor's defection.
const DEFECT_TOKEN: u64 = 1;

/// What one other peer uses here, and what it may use.
#[derive(Debug, Clone, Copy, Default)]
struct Account {
    /// Bytes of its chunks we hold.
    held_bytes: u64,
    /// Bytes served to it since we started.
    served_bytes: u64,
    /// What the negotiator granted; `None`: a stranger's allowance.
    grant: Option<Grant>,
}

#[derive(Debug, Clone, Copy)]
struct Grant {
    quota_bytes: u64,
    serve_until_bytes: u64,
}

/// The store actor.
#[derive(Debug)]
pub struct StoreActor {
    check_chunks_max: usize,
    synthetic_payloads: bool,
    strategy: Strategy,
    economy: Economy,
    store: Store,
    synthetic: BTreeMap<ChunkId, (u32, u64)>,
    /// Chunks held for other peers: who asked, and the size.
    for_others: BTreeMap<ChunkId, (PeerId, u64)>,
    for_others_bytes: u64,
    /// Everything we give to others, bytes.
    capacity_bytes: u64,
    accounts: BTreeMap<PeerId, Account>,
    /// What a peer without a grant may use, when the negotiator's stranger policy has said
    /// (`None`: the strategy's fixed allowance).
    strangers: Option<Grant>,
    /// Whether the marks of chunks held for others have been looked at (at the first start).
    restored: bool,
    /// There are marks to rebuild what we hold for others from, at the coming start.
    restore_pending: bool,
    /// Chunks held for others that were gone at our start, by owner, until the owner is
    /// told ([`TradeRequest::Lost`]): tried at the start, and again when the owner next
    /// asks us anything.
    lost: BTreeMap<PeerId, Vec<ChunkId>>,
    /// Owners being told now (one telling in flight each).
    telling: std::collections::BTreeSet<PeerId>,
}

impl StoreActor {
    pub fn new(store: Store, config: &KernelConfig) -> StoreActor {
        StoreActor {
            check_chunks_max: config.check_chunks_max,
            synthetic_payloads: config.synthetic_payloads,
            strategy: config.strategy.clone(),
            economy: config.economy.clone(),
            store,
            synthetic: BTreeMap::new(),
            for_others: BTreeMap::new(),
            for_others_bytes: 0,
            capacity_bytes: config.storage_for_others_bytes,
            accounts: BTreeMap::new(),
            strangers: None,
            restored: false,
            restore_pending: false,
            lost: BTreeMap::new(),
            telling: std::collections::BTreeSet::new(),
        }
    }

    /// Has the store anything to do at a (re)start: what we hold for others to rebuild from
    /// the store's marks (the first start only), pins to announce, a defection to set?
    pub fn wants_start(&mut self) -> bool {
        if !self.restored {
            self.restored = true;
            self.restore_pending = self.store.held().is_ok_and(|held| !held.is_empty());
        }
        self.restore_pending
            || self.strategy.defect_at_us.is_some()
            || !self.pinned_roots().is_empty()
            || !self.kept_roots().is_empty()
    }

    /// Trees fetched whole and kept ([`super::saved::kept`]), if their chunks are all still
    /// here (our own chunks are written without the log, so a crash may have taken some).
    fn kept_whole(&self) -> Vec<ChunkId> {
        self.kept_roots()
            .into_iter()
            .filter(|root| {
                crate::store::gc::tree(&self.store, *root).is_ok_and(|(_, missing)| !missing)
            })
            .collect()
    }

    fn kept_roots(&self) -> Vec<ChunkId> {
        super::saved::kept(&self.store).unwrap_or_default()
    }

    /// The disk, for a host that restarts this peer with its memory lost and its disk kept:
    /// the store, and the synthetic chunks' descriptors (the simulator's stand-in for bytes
    /// on disk).
    pub fn into_disk(self) -> (Store, BTreeMap<ChunkId, (u32, u64)>) {
        (self.store, self.synthetic)
    }

    /// Takes back the synthetic chunks of [`StoreActor::into_disk`].
    pub fn set_synthetic(&mut self, synthetic: BTreeMap<ChunkId, (u32, u64)>) {
        self.synthetic = synthetic;
    }

    /// At the first start: what we hold for others is rebuilt from the store's marks. A
    /// marked chunk that is not on disk any more (lost in a crash) is unmarked, reported
    /// ([`Event::LostAtStart`]) and its owner told, so it places the chunk elsewhere.
    fn restore(&mut self, ctx: &mut Context<'_>) {
        let Ok(held) = self.store.held() else {
            return;
        };
        let mut lens: BTreeMap<ChunkId, u64> = held.iter().map(|(chunk, _)| (*chunk, 0)).collect();
        let mut present = std::collections::BTreeSet::new();
        let scanned = self.store.backend().for_each_chunk(&mut |chunk, len| {
            if let Some(entry) = lens.get_mut(&chunk) {
                *entry = len;
                present.insert(chunk);
            }
        });
        if scanned.is_err() {
            // Without the index we cannot tell what was lost: keep every mark, count nothing.
            return;
        }
        for (chunk, (len, _)) in &self.synthetic {
            if let Some(entry) = lens.get_mut(chunk) {
                *entry = u64::from(*len);
                present.insert(*chunk);
            }
        }
        let mut gone = Vec::new();
        for (chunk, owner) in held {
            let owner = PeerId(owner);
            if !present.contains(&chunk) {
                gone.push(chunk);
                self.lost.entry(owner).or_default().push(chunk);
                continue;
            }
            let len = lens.get(&chunk).copied().unwrap_or(0);
            if self.for_others.insert(chunk, (owner, len)).is_none() {
                self.for_others_bytes += len;
                if let Some(account) = self.account(owner) {
                    account.held_bytes += len;
                }
            }
        }
        if !gone.is_empty() {
            // Unmarked: the marks would otherwise be found lost again at every start.
            let _ = self.store.release(&gone);
            ctx.event(Event::LostAtStart {
                chunks: gone.len() as u64,
            });
        }
        let owners: Vec<PeerId> = self.accounts.keys().copied().collect();
        for owner in owners {
            self.usage(ctx, owner);
        }
        let told: Vec<PeerId> = self.lost.keys().copied().collect();
        for owner in told {
            self.tell_lost(ctx, owner);
        }
    }

    /// Tells `owner` which of its chunks we lost (in messages of at most
    /// `check_chunks_max`); forgotten once it has answered.
    fn tell_lost(&mut self, ctx: &mut Context<'_>, owner: PeerId) {
        let Some(chunks) = self.lost.get(&owner) else {
            return;
        };
        if !self.telling.insert(owner) {
            return;
        }
        for (index, part) in chunks.chunks(self.check_chunks_max.max(1)).enumerate() {
            let send = Local::Send {
                to: owner,
                body: Request::Trade(TradeRequest::Lost {
                    chunks: part.to_vec(),
                }),
                reply_to: ActorKind::Store,
                tag: index as u64,
            };
            ctx.local(ActorKind::Transport, send);
        }
    }

    /// Bytes held for other peers.
    pub fn bytes_for_others(&self) -> u64 {
        self.for_others_bytes
    }

    /// Every peer that uses this store: (peer, bytes of its chunks held, bytes served to it).
    pub fn accounts(&self) -> impl Iterator<Item = (&PeerId, u64, u64)> {
        self.accounts
            .iter()
            .map(|(peer, a)| (peer, a.held_bytes, a.served_bytes))
    }

    /// Bytes of `peer`'s chunks held here.
    pub fn bytes_held_for(&self, peer: &PeerId) -> u64 {
        self.accounts.get(peer).map_or(0, |a| a.held_bytes)
    }

    /// Roots this peer holds whole: its store's pins (a pin is written only once every
    /// chunk of its tree is durable). Empty when the pins cannot be read.
    pub fn pinned_roots(&self) -> Vec<ChunkId> {
        self.store.pins().unwrap_or_default()
    }

    /// Announces us as a provider of each pinned root in `roots`.
    fn announce(&self, ctx: &mut Context<'_>, roots: &[ChunkId]) {
        let Ok(pins) = self.store.pins() else {
            return;
        };
        for root in roots {
            if pins.contains(root) {
                ctx.local(ActorKind::Transport, Local::Provide { key: *root });
            }
        }
    }

    pub fn holds(&self, chunk: &ChunkId) -> bool {
        self.synthetic.contains_key(chunk) || self.store.contains(chunk).unwrap_or(false)
    }

    fn read(&self, chunk: &ChunkId) -> Option<Payload> {
        if let Some((len, seed)) = self.synthetic.get(chunk) {
            return Some(Payload::Synthetic {
                len: *len,
                seed: *seed,
            });
        }
        // What this actor reads goes to other peers (served, or placed), and they check it
        // against its id.
        self.store.get_for_peer(chunk).ok().map(Payload::Bytes)
    }

    /// Keeps a payload already checked against its id (by the caller: hashing twice would
    /// halve what a node can take in): ours, or held for `owner` (then durable, and marked,
    /// before this returns).
    fn keep(
        &mut self,
        ctx: &mut Context<'_>,
        chunk: ChunkId,
        payload: Payload,
        owner: Option<PeerId>,
    ) -> Result<(), Refusal> {
        let bytes = match payload {
            Payload::Synthetic { len, seed } => {
                self.synthetic.insert(chunk, (len, seed));
                None
            }
            Payload::Bytes(bytes) => Some(bytes),
            Payload::Hashed(hashed) => Some(hashed.into_bytes()),
        };
        let kept = match (bytes, owner) {
            (Some(bytes), Some(owner)) => self.store.put_for(chunk, bytes, owner.0),
            (Some(bytes), None) => self.store.put_trusted(chunk, bytes).map(|_| ()),
            (None, Some(owner)) => self.store.hold_for(chunk, owner.0),
            (None, None) => Ok(()),
        };
        kept.map_err(|_| Refusal::Unavailable)?;
        ctx.event(Event::Holding { chunk, held: true });
        Ok(())
    }

    fn forget(&mut self, ctx: &mut Context<'_>, chunk: ChunkId) {
        // A chunk that cannot be deleted stays (and is still served); nothing is lost.
        if self.store.release(&[chunk]).is_err() {
            return;
        }
        if self.synthetic.remove(&chunk).is_none() && self.store.backend().delete(&[chunk]).is_err()
        {
            return;
        }
        ctx.event(Event::Holding { chunk, held: false });
        let _ = super::saved::save_provided(&self.store, &chunk, false);
        ctx.local(ActorKind::Transport, Local::Unprovide { key: chunk });
    }

    /// The account of `peer`, made if there is room (a full table declines strangers).
    fn account(&mut self, peer: PeerId) -> Option<&mut Account> {
        if !self.accounts.contains_key(&peer) {
            if self.accounts.len() >= self.economy.ledger_peers_max {
                // Room is made only from accounts that hold nothing and were never granted.
                let idle = self
                    .accounts
                    .iter()
                    .find(|(_, a)| a.held_bytes == 0 && a.grant.is_none())
                    .map(|(p, _)| *p)?;
                self.accounts.remove(&idle);
            }
            self.accounts.insert(peer, Account::default());
        }
        self.accounts.get_mut(&peer)
    }

    fn quota_bytes(&self, account: &Account) -> u64 {
        match (account.grant, self.strangers) {
            (Some(g), _) | (None, Some(g)) => g.quota_bytes,
            (None, None) => self.strategy.stranger_storage_bytes(&self.economy),
        }
    }

    fn serve_until_bytes(&self, account: &Account) -> u64 {
        match (account.grant, self.strangers) {
            (Some(g), _) | (None, Some(g)) => g.serve_until_bytes,
            (None, None) => self.strategy.stranger_bandwidth_bytes(&self.economy),
        }
    }

    fn usage(&self, ctx: &mut Context<'_>, peer: PeerId) {
        if let Some(account) = self.accounts.get(&peer) {
            let usage = Local::Usage {
                peer,
                held_bytes: account.held_bytes,
                served_bytes: account.served_bytes,
            };
            ctx.local(ActorKind::Negotiator, usage);
        }
    }

    fn store_for(
        &mut self,
        ctx: &mut Context<'_>,
        from: PeerId,
        (chunk, payload, announce): (ChunkId, Payload, bool),
    ) -> Result<StoreResponse, Refusal> {
        let announce_it = |store: &Store, ctx: &mut Context<'_>| {
            if announce {
                // Saved, so that a restart announces it again; a store that cannot save
                // it costs only that.
                let _ = super::saved::save_provided(store, &chunk, true);
                ctx.local(ActorKind::Transport, Local::Provide { key: chunk });
            }
        };
        // The payload is judged before anything else, whatever we already hold: `Stored`
        // never answers bytes that are not the chunk.
        if payload.len() > CHUNK_STORED_BYTES_MAX as u64 {
            // No chunk is this large: more than is taken at once (the frame itself was
            // within its limit).
            return Err(Refusal::TooLarge);
        }
        if !payload_matches(&chunk, &payload)
            || (!self.synthetic_payloads && matches!(payload, Payload::Synthetic { .. }))
        {
            ctx.observe(from, Observation::Misbehaved);
            return Err(Refusal::BadChunk);
        }
        if self.holds(&chunk) {
            announce_it(&self.store, ctx);
            return Ok(StoreResponse::Stored);
        }
        if self.strategy.freeloads_storage(ctx.now()) || !self.strategy.deals_with(&from) {
            return Err(Refusal::Declined);
        }
        let len = payload.len();
        let Some(account) = self.account(from).copied() else {
            return Err(Refusal::Declined);
        };
        if self.for_others_bytes + len > self.capacity_bytes {
            // What we give others has no room left for this chunk: no contract makes room,
            // so it is declined (the owner places elsewhere), not "over your quota" (which
            // would have it ask for a bigger contract).
            return Err(Refusal::Declined);
        }
        if account.held_bytes + len > self.quota_bytes(&account) {
            return Err(Refusal::QuotaFull);
        }
        // The silent dropper says it keeps the chunk, and does not.
        if self.strategy.drop_fraction > 0.0 && ctx.rng().gen_bool(self.strategy.drop_fraction) {
            ctx.event(Event::Dropped { chunk, owner: from });
            return Ok(StoreResponse::Stored);
        }
        // Durable and marked in the store before `Stored` is answered, so garbage collection
        // never takes what a peer relies on and a restart knows what it holds.
        self.keep(ctx, chunk, payload, Some(from))?;
        self.for_others.insert(chunk, (from, len));
        self.for_others_bytes += len;
        if let Some(account) = self.accounts.get_mut(&from) {
            account.held_bytes += len;
        }
        self.usage(ctx, from);
        announce_it(&self.store, ctx);
        Ok(StoreResponse::Stored)
    }

    fn fetch_for(
        &mut self,
        ctx: &mut Context<'_>,
        from: PeerId,
        chunk: ChunkId,
    ) -> Result<StoreResponse, Refusal> {
        if self.strategy.bandwidth_freeloader || !self.strategy.deals_with(&from) {
            return Err(Refusal::Declined);
        }
        let Some(payload) = self.read(&chunk) else {
            return Ok(StoreResponse::NotFound);
        };
        let len = payload.len();
        let Some(account) = self.account(from).copied() else {
            return Err(Refusal::Declined);
        };
        if account.served_bytes.saturating_add(len) > self.serve_until_bytes(&account) {
            return Err(Refusal::Declined);
        }
        if let Some(account) = self.accounts.get_mut(&from) {
            account.served_bytes += len;
        }
        self.usage(ctx, from);
        Ok(StoreResponse::Chunk { payload })
    }

    fn audit(&mut self, ctx: &mut Context<'_>, challenges: &[Challenge]) -> StoreResponse {
        let proofs = challenges
            .iter()
            .map(|challenge| {
                if self.strategy.liar {
                    // Made up, without reading anything: it cannot match.
                    let mut made_up = [0u8; 32];
                    ctx.rng().fill(&mut made_up);
                    return Some(made_up);
                }
                audit_proof(&self.read(&challenge.chunk)?, challenge)
            })
            .collect();
        StoreResponse::Proofs { proofs }
    }

    fn serve(&mut self, ctx: &mut Context<'_>, from: PeerId, request: StoreRequest) -> Response {
        let answer = match request {
            StoreRequest::Store {
                chunk,
                payload,
                announce,
            } => self.store_for(ctx, from, (chunk, payload, announce)),
            StoreRequest::Fetch { chunk } => self.fetch_for(ctx, from, chunk),
            StoreRequest::Check { chunks } if chunks.len() > self.check_chunks_max => {
                Err(Refusal::TooLarge)
            }
            StoreRequest::Check { chunks } => Ok(StoreResponse::Holding {
                missing: chunks.into_iter().filter(|c| !self.holds(c)).collect(),
            }),
            StoreRequest::Audit { challenges } if challenges.len() > self.check_chunks_max => {
                Err(Refusal::TooLarge)
            }
            // An auditor we hold nothing for any more (its quota fell to 0) is told so.
            StoreRequest::Audit { .. }
                if self
                    .accounts
                    .get(&from)
                    .is_some_and(|a| a.grant.is_some_and(|g| g.quota_bytes == 0)) =>
            {
                Err(Refusal::Declined)
            }
            StoreRequest::Audit { challenges } => Ok(self.audit(ctx, &challenges)),
        };
        match answer {
            Ok(answer) => Response::Store(answer),
            Err(refusal) => Response::Refused(refusal),
        }
    }

    /// The traitor's move: everything held for others goes (its owners find out by audit).
    fn defect(&mut self, ctx: &mut Context<'_>) {
        let held: Vec<(ChunkId, PeerId, u64)> = self
            .for_others
            .iter()
            .map(|(chunk, (owner, len))| (*chunk, *owner, *len))
            .collect();
        for (chunk, owner, len) in held {
            self.for_others.remove(&chunk);
            self.for_others_bytes -= len;
            if let Some(account) = self.accounts.get_mut(&owner) {
                account.held_bytes = account.held_bytes.saturating_sub(len);
            }
            self.forget(ctx, chunk);
        }
        let owners: Vec<PeerId> = self.accounts.keys().copied().collect();
        for owner in owners {
            self.usage(ctx, owner);
        }
    }

    /// Takes in what the negotiator grants `peer`. Its chunks over a smaller quota are
    /// dropped (from the highest id down), and it places them elsewhere.
    fn grant(&mut self, ctx: &mut Context<'_>, peer: PeerId, grant: Grant) {
        let Some(account) = self.account(peer) else {
            return;
        };
        account.grant = Some(grant);
        if account.held_bytes <= grant.quota_bytes {
            return;
        }
        let mut over = account.held_bytes - grant.quota_bytes;
        let theirs: Vec<(ChunkId, u64)> = self
            .for_others
            .iter()
            .rev()
            .filter(|(_, (owner, _))| *owner == peer)
            .map(|(chunk, (_, len))| (*chunk, *len))
            .collect();
        for (chunk, len) in theirs {
            if over == 0 {
                break;
            }
            self.for_others.remove(&chunk);
            self.for_others_bytes -= len;
            over = over.saturating_sub(len);
            if let Some(account) = self.accounts.get_mut(&peer) {
                account.held_bytes -= len;
            }
            self.forget(ctx, chunk);
        }
        self.usage(ctx, peer);
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        match input {
            // At a (re)start: every root we hold whole (pinned, or fetched and kept) is
            // announced again.
            Input::Start { .. } => {
                if self.restore_pending {
                    self.restore_pending = false;
                    self.restore(ctx);
                }
                let roots = self.pinned_roots();
                self.announce(ctx, &roots);
                let held_roots: Vec<ChunkId> = super::saved::provided(&self.store)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|root| self.for_others.contains_key(root))
                    .collect();
                for root in self.kept_whole().into_iter().chain(held_roots) {
                    if !roots.contains(&root) {
                        ctx.local(ActorKind::Transport, Local::Provide { key: root });
                    }
                }
                // A traitor drops what it holds for others when it defects.
                if let Some(at) = self.strategy.defect_at_us {
                    ctx.timer(at.saturating_sub(ctx.now().micros()), DEFECT_TOKEN);
                }
            }
            Input::Timer {
                token: DEFECT_TOKEN,
            } => self.defect(ctx),
            Input::Command(super::Command::Announce { root }) => self.announce(ctx, &[root]),
            // An owner that heard of its lost chunks is not told again.
            // Any answer (a refusal included) means it heard: it is not told again. A
            // telling that failed is tried again when the owner next asks us something.
            Input::Local(Local::Done { from, outcome, .. }) => {
                self.telling.remove(&from);
                if matches!(outcome, super::Outcome::Answered(_)) {
                    self.lost.remove(&from);
                }
            }
            Input::Local(Local::Incoming { from, id, body }) => {
                if self.lost.contains_key(&from) {
                    // It could not be told at our start; it is reachable now.
                    self.tell_lost(ctx, from);
                }
                // The transport sends us storage requests only; anything else is refused.
                let body = match body {
                    Request::Store(request) => self.serve(ctx, from, request),
                    Request::Route(_) | Request::Chain(_) | Request::Trade(_) => {
                        Response::Refused(Refusal::NotServed)
                    }
                };
                ctx.local(ActorKind::Transport, Local::Respond { to: from, id, body });
            }
            // The negotiator checked the payload against its id (it built or fetched it).
            Input::Local(Local::KeepOwn { chunk, payload }) if !self.holds(&chunk) => {
                // A failing own store shows up later as a missing chunk; nothing to answer.
                let _ = self.keep(ctx, chunk, payload, None);
            }
            Input::Local(Local::Read { chunk, tag }) => {
                let payload = self.read(&chunk);
                ctx.local(
                    ActorKind::Negotiator,
                    Local::ReadDone {
                        tag,
                        chunk,
                        payload,
                    },
                );
            }
            Input::Local(Local::Grant {
                peer,
                quota_bytes,
                serve_until_bytes,
            }) => {
                let grant = Grant {
                    quota_bytes,
                    serve_until_bytes,
                };
                self.grant(ctx, peer, grant);
            }
            Input::Local(Local::Strangers {
                quota_bytes,
                serve_until_bytes,
            }) => {
                // Strangers over a smaller quota keep what they have until their term ends
                // (the negotiator ends it); only new chunks meet the new quota.
                self.strangers = Some(Grant {
                    quota_bytes,
                    serve_until_bytes,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::kernel::{Command, Directory, Outbox, Time};

    fn step(actor: &mut StoreActor, input: Input) -> Vec<(ActorKind, Local)> {
        step_out(actor, input).local.into_iter().collect()
    }

    /// Steps `actor` once; everything it put out.
    fn step_out(actor: &mut StoreActor, input: Input) -> Outbox {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = Outbox::default();
        let mut ctx = Context::new(
            Time(0),
            PeerId([9; 32]),
            ActorKind::Store,
            &mut rng,
            &mut out,
        );
        actor.handle(&mut ctx, input);
        out
    }

    fn provided(messages: &[(ActorKind, Local)]) -> Vec<ChunkId> {
        messages
            .iter()
            .filter_map(|(to, message)| match message {
                Local::Provide { key } if *to == ActorKind::Transport => Some(*key),
                _ => None,
            })
            .collect()
    }

    /// A (re)started store has every root it holds whole (its pins) announced, and one
    /// announced later only if it is pinned here.
    #[test]
    fn pinned_roots_are_announced_at_start_and_on_request() {
        let store = Store::memory();
        let pinned = ChunkId([1; 32]);
        store.pin(pinned).unwrap();
        let mut actor = StoreActor::new(store.clone(), &KernelConfig::default());
        let start = Input::Start {
            peers: Directory::from(Vec::new()),
        };
        assert_eq!(provided(&step(&mut actor, start)), vec![pinned]);
        let other = ChunkId([2; 32]);
        let announce = |root| Input::Command(Command::Announce { root });
        assert!(provided(&step(&mut actor, announce(other))).is_empty());
        store.pin(other).unwrap();
        assert_eq!(provided(&step(&mut actor, announce(other))), vec![other]);
    }

    /// A store actor made anew on a kept store (a restart that lost memory) counts again
    /// what it holds for others, from the store's marks; a marked chunk missing from the
    /// disk is unmarked, reported once, and its owner is told it is lost.
    #[test]
    fn a_restarted_store_rebuilds_what_it_holds_and_reports_what_was_lost() {
        let store = Store::memory();
        let owner = PeerId([5; 32]);
        let kept = b"kept for a peer".to_vec();
        let gone = b"lost in a crash".to_vec();
        let kept_id = crate::object::crypto::chunk_id(&kept);
        let gone_id = crate::object::crypto::chunk_id(&gone);
        for (id, bytes) in [(kept_id, &kept), (gone_id, &gone)] {
            store.put_trusted(id, bytes.clone()).unwrap();
            store.hold_for(id, owner.0).unwrap();
        }
        store.backend().delete(&[gone_id]).unwrap();

        let start = || Input::Start {
            peers: Directory::from(Vec::new()),
        };
        let mut actor = StoreActor::new(store.clone(), &KernelConfig::default());
        assert!(actor.wants_start());
        let mut out = step_out(&mut actor, start());
        assert_eq!(actor.bytes_for_others(), kept.len() as u64);
        assert_eq!(actor.bytes_held_for(&owner), kept.len() as u64);
        assert_eq!(out.effects().events, vec![Event::LostAtStart { chunks: 1 }]);
        let told: Vec<&Request> = out
            .local
            .iter()
            .filter_map(|(to, message)| match message {
                Local::Send { to: peer, body, .. }
                    if *to == ActorKind::Transport && *peer == owner =>
                {
                    Some(body)
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            told,
            vec![&Request::Trade(TradeRequest::Lost {
                chunks: vec![gone_id]
            })]
        );
        // The lost chunk's mark is gone: the next restart finds nothing lost.
        assert_eq!(store.held().unwrap(), vec![(kept_id, owner.0)]);
        let mut again = StoreActor::new(store.clone(), &KernelConfig::default());
        assert!(again.wants_start());
        let messages = step(&mut again, start());
        assert!(messages
            .iter()
            .all(|(_, message)| !matches!(message, Local::Send { .. })));
        assert_eq!(again.bytes_for_others(), kept.len() as u64);
        // A restart that kept memory (the same actor started again) counts nothing twice.
        assert!(!actor.wants_start());
        step(&mut actor, start());
        assert_eq!(actor.bytes_for_others(), kept.len() as u64);
    }

    /// A tree fetched whole and kept is announced again at a start while every chunk of it
    /// is still here, and not once one is gone.
    #[test]
    fn kept_trees_are_announced_at_start_while_whole() {
        let store = Store::memory();
        let built = crate::kernel::content::build(&crate::kernel::content::Content::Bytes(vec![
                7u8;
                300_000
            ]))
        .unwrap();
        for (chunk, payload) in &built.chunks {
            store
                .put_trusted(*chunk, payload.bytes().unwrap().to_vec())
                .unwrap();
        }
        crate::kernel::saved::save_kept(&store, &built.root).unwrap();
        let start = || Input::Start {
            peers: Directory::from(Vec::new()),
        };
        let mut actor = StoreActor::new(store.clone(), &KernelConfig::default());
        assert!(actor.wants_start());
        assert_eq!(provided(&step(&mut actor, start())), vec![built.root]);
        let data = built.chunks.last().unwrap().0;
        assert_ne!(data, built.root);
        store.backend().delete(&[data]).unwrap();
        let mut again = StoreActor::new(store.clone(), &KernelConfig::default());
        assert!(again.wants_start());
        assert!(provided(&step(&mut again, start())).is_empty());
    }
}
