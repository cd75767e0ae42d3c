//! The negotiator: decides where our chunks' replicas go and keeps them alive, fetches
//! trees for the user, and trades: storage contracts, ledgers and audits
//! ([`contracts`], [`ledger`], [`audit`]).
//!
//! Placement: every chunk of a tree is placed at the tree's root id on the ring of known
//! peer ids (consistent hashing), so a fetcher that knows only the root looks in the same
//! place. The candidates are the first `replication + extra_candidates` usable peers
//! clockwise from that point, and the reputation ranking picks among them; contract
//! partners with room come first. Upkeep: every
//! `check_interval` we ask each holder whether it still holds our chunks; a holder that lost
//! one is marked and replaced, and one unreachable for `holder_dead_after` is replaced.
//!
//! Fetching: the root (small) is asked of every candidate at once; the peers that answer
//! with it are the sources the rest of the tree is fetched from, spread across them, with
//! the other candidates as fallbacks.

pub mod audit;
pub mod contracts;
mod holders;
pub mod ledger;
pub mod strangers;

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

use self::audit::Replica;
use self::contracts::Contract;
use self::ledger::Ledgers;

use super::content::{build, payload_matches};
use super::saved;
use super::{
    ActorKind, Command, Context, Directory, Event, Input, KernelConfig, Local, Observation,
    Outcome, Payload, PeerId, Request, Response, StoreRequest, StoreResponse, Time,
};
use crate::chain::Service;
use crate::ids::ChunkId;
use crate::object::format::{parse_links, LinkKind};
use crate::store::Store;

/// Timer token of the upkeep round.
const CHECK_TOKEN: u64 = 0;
/// Timer token of the audit round.
const AUDIT_TOKEN: u64 = 1;
/// Timer token of the retry of chunks that found no room.
const RETRY_TOKEN: u64 = 2;
/// Timer token of the term round (creds counted, contracts whose term ended judged).
const TERM_TOKEN: u64 = 3;
/// Timer token of fetches waiting to be tried again.
const FETCH_RETRY_TOKEN: u64 = 4;
/// A failed fetch is first tried again after this...
pub const FETCH_RETRY_FIRST_US: u64 = Time::SECOND;
/// ...and the wait doubles up to this.
pub const FETCH_RETRY_MAX_US: u64 = 8 * Time::SECOND;
/// The first retry of starved chunks waits this long; each retry that leaves some starved
/// doubles it, up to the upkeep interval.
const RETRY_FIRST_US: u64 = 60 * Time::SECOND;
/// Trees with no holder at all that a retry round tries again (the others wait for later
/// rounds, in turn): when nobody takes our chunks, one tree finds that out as well as all
/// of them would, at a fraction of the messages. A contract made retries them all.
const RETRY_HOMELESS_TREES_MAX: usize = 1;
/// Scores the negotiator keeps at most (see the `Standing` input).
pub const SCORES_MAX: usize = 32_768;

/// Peers with a score below this are never chosen.
const SCORE_MIN: f64 = 0.2;
/// Placement attempts per chunk and round before waiting for the next round.
const PLACE_ATTEMPTS_MAX: u32 = 8;

/// One of our chunks.
#[derive(Debug)]
struct Owned {
    /// Where on the ring its holders are sought (its tree's root).
    point: PeerId,
    /// Its length, bytes (known once read for placement).
    len: u64,
    /// Who holds it, and the audit challenges kept for that replica.
    holders: holders::Holders,
    /// Peers asked this round that refused or stayed silent.
    tried: BTreeSet<PeerId>,
    placing: u32,
    attempts: u32,
}

/// Why we are waiting for an answer.
#[derive(Debug)]
enum Purpose {
    /// Payload read from our store, to be placed on `peers`.
    ReadForPlacement {
        repair: bool,
        peers: Vec<PeerId>,
    },
    Place {
        chunk: ChunkId,
        repair: bool,
        bytes: u64,
        replica: Replica,
    },
    /// A contract proposed to `peer` (`renewal`: the terms of the one we have, asked again).
    Propose {
        peer: PeerId,
        terms: crate::kernel::Terms,
        renewal: bool,
    },
    /// A contract with `peer` ended by us.
    End,
    /// Challenges sent to `holder`: the chunks and the expected answers, in order.
    Audit {
        holder: PeerId,
        items: Vec<(ChunkId, u64)>,
    },
    /// Our copy of a chunk, read to make new challenges for its replica on `holder`.
    Refresh {
        holder: PeerId,
    },
    Check {
        chunks: Vec<ChunkId>,
    },
    /// The providers of `root` are being looked up, for a fetch asked for at `started`.
    Lookup {
        root: ChunkId,
        started: Time,
    },
    FetchRoot {
        fetch: u64,
    },
    /// `tries` sources have failed so far, starting from source `start`.
    FetchChunk {
        fetch: u64,
        chunk: ChunkId,
        kind: LinkKind,
        start: usize,
        tries: usize,
    },
}

/// A tree being fetched.
#[derive(Debug)]
struct Fetch {
    root: ChunkId,
    started: Time,
    /// Peers that may hold the tree: those that answered with the root first, then the rest.
    sources: Vec<PeerId>,
    answered: usize,
    root_queries: usize,
    /// Sources asked for the root that did not give it.
    failed: Vec<PeerId>,
    queue: Vec<(ChunkId, LinkKind)>,
    in_flight: usize,
    chunks: usize,
    bytes: u64,
    next_source: usize,
}

/// A failed fetch waiting to be tried again (`KernelConfig::fetch_deadline_us`).
#[derive(Debug, Clone)]
struct FetchRetry {
    started: Time,
    /// When it is tried next; `None` while that attempt runs.
    due: Option<Time>,
    wait_us: u64,
    /// Sources that did not give the root in earlier attempts (at most
    /// [`FETCH_SKIP_MAX`]): their provider records do not end the next lookup.
    skip: Vec<PeerId>,
}

/// Sources a fetch's retries remember as tried in vain.
const FETCH_SKIP_MAX: usize = 64;

/// The negotiator actor.
#[derive(Debug)]
pub struct Negotiator {
    config: KernelConfig,
    /// The ring: the bootstrap directory (sorted) and the peers learned since.
    directory: Directory,
    ring: BTreeSet<PeerId>,
    scores: BTreeMap<PeerId, f64>,
    /// Holders that missed a check: when they first did, and when they last did.
    unreachable_since: BTreeMap<PeerId, (Time, Time)>,
    owned: BTreeMap<ChunkId, Owned>,
    waiting: BTreeMap<u64, Purpose>,
    fetches: BTreeMap<u64, Fetch>,
    /// Failed fetches waiting to be tried again, by root: when the fetch began, when it is
    /// tried next, and the wait before that.
    fetch_retries: BTreeMap<ChunkId, FetchRetry>,
    next_tag: u64,
    /// Store requests (and reads for them) in flight, over all chunks.
    placing_total: usize,
    /// Chunks waiting for `placing_total` to drop below its limit, and whether for repair.
    deferred: BTreeMap<ChunkId, bool>,
    /// Fetches waiting for a provider lookup.
    looking: usize,
    ledgers: Ledgers,
    contracts: BTreeMap<PeerId, Contract>,
    /// Peers with a proposal of ours in flight.
    proposing: BTreeSet<PeerId>,
    /// The secret our audit challenges derive from (drawn at the first start).
    audit_key: [u8; 32],
    /// Where the next audit round starts among our holders (they take turns).
    audit_cursor: PeerId,
    /// Chunks short of holders with no candidate left this round; placed again when a
    /// contract is made.
    starved: BTreeSet<ChunkId>,
    /// When creds were last counted.
    last_term_round: Time,
    /// The wait before the next retry of starved chunks, if one is set.
    retry_us: Option<u64>,
    /// The wait of the next retry (it doubles while chunks stay starved).
    retry_next_us: u64,
    /// The last starved chunk of a homeless tree a retry round tried (they take turns).
    retry_cursor: ChunkId,
    /// How recent strangers behaved (the adaptive stranger policy).
    strangers: strangers::Strangers,
    /// Where what we published and our contracts are saved ([`super::saved`]).
    store: Store,
    /// Whether this actor has read back what was saved (at its first start).
    restored: bool,
    /// Trees read back before any peer was known, to be placed when the first are.
    place_restored: bool,
}

fn ring_point(chunk: &ChunkId) -> PeerId {
    PeerId(chunk.0)
}

impl Negotiator {
    /// A negotiator that saves what it publishes and its contracts in `store`, and reads
    /// them back at its first start.
    pub fn new(config: KernelConfig, store: Store) -> Negotiator {
        Negotiator {
            config,
            directory: Directory::from(Vec::new()),
            ring: BTreeSet::new(),
            scores: BTreeMap::new(),
            unreachable_since: BTreeMap::new(),
            owned: BTreeMap::new(),
            waiting: BTreeMap::new(),
            fetches: BTreeMap::new(),
            fetch_retries: BTreeMap::new(),
            next_tag: 1,
            placing_total: 0,
            deferred: BTreeMap::new(),
            looking: 0,
            ledgers: Ledgers::default(),
            contracts: BTreeMap::new(),
            proposing: BTreeSet::new(),
            audit_key: [0; 32],
            audit_cursor: PeerId([0; 32]),
            starved: BTreeSet::new(),
            last_term_round: Time::default(),
            retry_us: None,
            retry_next_us: RETRY_FIRST_US,
            retry_cursor: ChunkId([0; 32]),
            strangers: strangers::Strangers::default(),
            store,
            restored: false,
            place_restored: false,
        }
    }

    /// Our chunks and how many holders each has.
    pub fn replica_counts(&self) -> impl Iterator<Item = (&ChunkId, usize)> {
        self.owned
            .iter()
            .map(|(chunk, owned)| (chunk, owned.holders.len()))
    }

    pub fn fetches_in_flight(&self) -> usize {
        self.fetches.len()
    }

    fn tag(&mut self, purpose: Purpose) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.waiting.insert(tag, purpose);
        tag
    }

    fn send(&mut self, ctx: &mut Context<'_>, to: PeerId, body: Request, purpose: Purpose) {
        let tag = self.tag(purpose);
        ctx.local(
            ActorKind::Transport,
            Local::Send {
                to,
                body,
                reply_to: ActorKind::Negotiator,
                tag,
            },
        );
    }

    /// `peer` left a request unanswered at `now`: it is unreachable since the first miss
    /// that no answer has cleared, which is returned.
    fn missed(&mut self, now: Time, peer: PeerId) -> Time {
        let entry = self.unreachable_since.entry(peer).or_insert((now, now));
        entry.1 = now;
        entry.0
    }

    /// A connection to `peer` came up. Marked for its silence (a dial to an address it no
    /// longer listens on, say), it is offered what waited for room at once, rather than
    /// after a check interval (a restarted node's placements, `tests/restart.rs`).
    fn reachable(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        if self.unreachable_since.remove(&peer).is_some() {
            self.retry_starved_now(ctx);
        }
    }

    /// A peer that missed a check or a placement within the last check interval is not
    /// offered work; after that it is tried again (it may have come back).
    fn recently_unreachable(&self, now: Time, peer: &PeerId) -> bool {
        self.unreachable_since
            .get(peer)
            .is_some_and(|(_, last)| now.since(*last) < self.config.check_interval_us)
    }

    fn score(&self, peer: &PeerId) -> f64 {
        self.scores.get(peer).copied().unwrap_or(0.5)
    }

    /// The first `replication + extra_candidates` usable peers clockwise from `point` on the
    /// ring, best score first (ring order breaks ties), leaving out `skip`.
    fn candidates(
        &self,
        ctx: &Context<'_>,
        point: PeerId,
        skip: &dyn Fn(&PeerId) -> bool,
    ) -> Vec<PeerId> {
        let wanted = self.config.replication + self.config.extra_candidates;
        let usable = |peer: &&PeerId| {
            **peer != ctx.me()
                && !skip(peer)
                && self.score(peer) >= SCORE_MIN
                && !self.ledgers.disqualified(peer)
                && !self.recently_unreachable(ctx.now(), peer)
        };
        // The first `wanted` usable peers of each sorted set, clockwise from `point`, then
        // the first `wanted` of their union in ring order.
        let split = self.directory.partition_point(|peer| *peer < point);
        let (before, after) = self.directory.split_at(split);
        let mut picked: Vec<PeerId> = after
            .iter()
            .chain(before)
            .filter(usable)
            .take(wanted)
            .chain(
                self.ring
                    .range(point..)
                    .chain(self.ring.range(..point))
                    .filter(usable)
                    .take(wanted),
            )
            .copied()
            .collect();
        picked.sort_by_key(|peer| (*peer < point, *peer));
        picked.truncate(wanted);
        // A stable sort keeps ring order among equal scores.
        picked.sort_by(|a, b| self.score(b).total_cmp(&self.score(a)));
        picked
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        match input {
            Input::Start { .. } => {
                // Answers to requests made before a restart will never come: the fetches they
                // served have failed.
                self.waiting.clear();
                self.looking = 0;
                let mut ended = BTreeSet::new();
                for fetch in std::mem::take(&mut self.fetches).into_values() {
                    ended.insert(fetch.root);
                    ctx.event(Event::FetchDone {
                        root: fetch.root,
                        ok: false,
                        started: fetch.started,
                        bytes: fetch.bytes,
                    });
                }
                // Nor will the timers of fetches waiting to be tried again, nor the lookups
                // of those being tried.
                for (root, retry) in std::mem::take(&mut self.fetch_retries) {
                    if !ended.contains(&root) {
                        ctx.event(Event::FetchDone {
                            root,
                            ok: false,
                            started: retry.started,
                            bytes: 0,
                        });
                    }
                }
                self.placing_total = 0;
                self.deferred.clear();
                for owned in self.owned.values_mut() {
                    owned.placing = 0;
                    owned.attempts = 0;
                    owned.tried.clear();
                }
                self.proposing.clear();
                // The retry timer of the last run will not fire.
                self.retry_us = None;
                if self.audit_key == [0; 32] {
                    ctx.rng().fill(&mut self.audit_key);
                }
                let interval = self.config.check_interval_us.max(Time::SECOND);
                let first = ctx
                    .rng()
                    .gen_range(Time::HOUR..Time::HOUR.saturating_add(interval));
                ctx.timer(first, CHECK_TOKEN);
                let audits = self.audit_interval_us();
                let first = ctx.rng().gen_range(audits / 2..audits.saturating_add(1));
                ctx.timer(first, AUDIT_TOKEN);
                let terms = self.term_interval_us();
                let first = ctx.rng().gen_range(terms / 2..terms.saturating_add(1));
                ctx.timer(first, TERM_TOKEN);
                self.tell_strangers(ctx);
            }
            Input::Command(Command::Publish { content }) => self.publish(ctx, &content),
            Input::Command(Command::Fetch { root }) => self.start_fetch(ctx, root, ctx.now()),
            Input::Local(Local::PeersKnown { peers }) => {
                self.ring.extend(peers);
                if std::mem::take(&mut self.place_restored) {
                    let chunks: Vec<ChunkId> = self.owned.keys().copied().collect();
                    for chunk in chunks {
                        self.place(ctx, chunk, false);
                    }
                }
            }
            Input::Local(Local::Reachable { peer }) => self.reachable(ctx, peer),
            Input::Local(Local::Directory { peers }) => {
                self.ring.retain(|peer| peers.binary_search(peer).is_err());
                self.directory = peers;
                // The transport sends it as it starts: the first one, with the peers we may
                // place on known, is when what a run before this one saved is taken back.
                if !self.restored {
                    self.restored = true;
                    self.restore(ctx);
                }
            }
            Input::Local(Local::Standing { peer, score }) => {
                // Bounded: when full, the score nearest a stranger's 0.5 (the least telling)
                // makes room; a forker's 0 or a partner's high score stays.
                if !self.scores.contains_key(&peer) && self.scores.len() >= SCORES_MAX {
                    let least = self
                        .scores
                        .iter()
                        .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()))
                        .map(|(p, _)| *p);
                    if let Some(least) = least {
                        self.scores.remove(&least);
                    }
                }
                self.scores.insert(peer, score);
                // With the filter on, what the store lets it use follows its standing.
                if self.config.trust.is_some() && self.ledgers.get(&peer).is_some() {
                    self.grant(ctx, peer);
                }
            }
            Input::Local(Local::ReadDone {
                tag,
                chunk,
                payload,
            }) => self.read_done(ctx, tag, chunk, payload),
            Input::Local(Local::Done { tag, from, outcome }) => self.done(ctx, tag, from, outcome),
            Input::Local(Local::Found { tag, providers }) => {
                if let Some(Purpose::Lookup { root, started }) = self.waiting.remove(&tag) {
                    self.looking -= 1;
                    let providers = providers.into_iter().map(|c| c.id).collect();
                    self.fetch_from(ctx, root, started, providers);
                }
            }
            Input::Timer { token: CHECK_TOKEN } => {
                self.check_round(ctx);
                ctx.timer(self.config.check_interval_us.max(Time::SECOND), CHECK_TOKEN);
            }
            Input::Timer { token: TERM_TOKEN } => {
                self.term_round(ctx);
                ctx.timer(self.term_interval_us(), TERM_TOKEN);
            }
            Input::Timer { token: RETRY_TOKEN } => self.retry_starved(ctx),
            Input::Timer {
                token: FETCH_RETRY_TOKEN,
            } => self.retry_fetches(ctx),
            Input::Timer { token: AUDIT_TOKEN } => {
                self.audit_round(ctx);
                ctx.timer(self.audit_interval_us(), AUDIT_TOKEN);
            }
            Input::Local(Local::Incoming { from, id, body }) => {
                let body = match body {
                    Request::Trade(request) => self.trade(ctx, from, request),
                    Request::Route(_) | Request::Store(_) | Request::Chain(_) => {
                        Response::Refused(crate::kernel::Refusal::NotServed)
                    }
                };
                ctx.local(ActorKind::Transport, Local::Respond { to: from, id, body });
            }
            Input::Local(Local::Usage {
                peer,
                held_bytes,
                served_bytes,
            }) => self.usage(ctx, peer, held_bytes, served_bytes),
            _ => {}
        }
    }

    fn publish(&mut self, ctx: &mut Context<'_>, content: &super::content::Content) {
        let (root, chunks, bytes) = match content {
            super::content::Content::Stored {
                root,
                chunks,
                bytes,
            } => (*root, chunks.clone(), *bytes),
            content => {
                let Ok(built) = build(content) else {
                    return;
                };
                let chunks = built.chunks.iter().map(|(chunk, _)| *chunk).collect();
                for (chunk, payload) in built.chunks {
                    ctx.local(ActorKind::Store, Local::KeepOwn { chunk, payload });
                }
                (built.root, chunks, built.bytes)
            }
        };
        // Saved before it is placed: a restart from here on resumes it. A store that cannot
        // save loses only that (a repair after a restart).
        let _ = saved::save_published(&self.store, &root, &chunks);
        self.own(ctx, root, &chunks);
        ctx.event(Event::Published {
            root,
            chunks,
            bytes,
        });
    }

    /// Takes the tree at `root` (made of `chunks`) as ours, and places it: the root first,
    /// since the rest of the tree follows it to its holders.
    fn own(&mut self, ctx: &mut Context<'_>, root: ChunkId, chunks: &[ChunkId]) {
        self.take_owned(&root, chunks);
        self.place(ctx, root, false);
        for &chunk in chunks.iter().filter(|c| **c != root) {
            self.place(ctx, chunk, false);
        }
    }

    /// Enters the chunks of the tree at `root` in the table of ours.
    fn take_owned(&mut self, root: &ChunkId, chunks: &[ChunkId]) {
        let point = ring_point(root);
        for &chunk in chunks {
            self.owned.entry(chunk).or_insert_with(|| Owned {
                point,
                len: 0,
                holders: holders::Holders::default(),
                tried: BTreeSet::new(),
                placing: 0,
                attempts: 0,
            });
        }
    }

    /// At the first start: what a run before this one published is ours again (its holders
    /// are found anew: a holder that has a chunk answers `Stored` at once), and its
    /// contracts stand for the rest of their terms.
    fn restore(&mut self, ctx: &mut Context<'_>) {
        // Creds are counted from now on, not over the time before the restart.
        self.last_term_round = ctx.now();
        for saved in saved::contracts(&self.store).unwrap_or_default() {
            if self.contracts.len() >= self.config.economy.contracts_max {
                break;
            }
            // What was saved is bounded as what a peer proposes is.
            let term_us = saved.term_us.clamp(Time::SECOND, contracts::TERM_US_MAX);
            let contract = Contract {
                for_me_bytes: saved.for_me_bytes,
                for_them_bytes: saved
                    .for_them_bytes
                    .min(self.config.storage_for_others_bytes),
                term_us,
                ends: ctx.now().plus(saved.left_us.min(term_us)),
                made: ctx.now(),
            };
            self.contracts.insert(saved.peer, contract);
            let contracts = &self.contracts;
            // Its ledger starts afresh (ledgers are not saved); the contract is judged on
            // what it does from here on.
            let _ = self
                .ledgers
                .entry(saved.peer, ctx.now(), &self.config.economy, &|p| {
                    contracts.contains_key(p)
                });
            self.grant(ctx, saved.peer);
        }
        self.save_contracts(ctx.now());
        let published = saved::published(&self.store).unwrap_or_default();
        if self.directory.is_empty() && self.ring.is_empty() {
            // No peer is known yet (a node starts from addresses): the trees are placed
            // once the first peers are.
            for (root, chunks) in &published {
                self.take_owned(root, chunks);
            }
            self.place_restored = !published.is_empty();
            return;
        }
        for (root, chunks) in published {
            self.own(ctx, root, &chunks);
        }
    }

    /// Saves the contracts as they stand now (after each is made, renewed or ended).
    pub(super) fn save_contracts(&self, now: Time) {
        let contracts: Vec<saved::SavedContract> = self
            .contracts
            .iter()
            .map(|(peer, c)| saved::SavedContract {
                peer: *peer,
                for_me_bytes: c.for_me_bytes,
                for_them_bytes: c.for_them_bytes,
                term_us: c.term_us,
                left_us: c.ends.micros().saturating_sub(now.micros()),
            })
            .collect();
        // A store that cannot save them loses only them, at a restart.
        let _ = saved::save_contracts(&self.store, &contracts);
    }

    /// One placement (or the read for it) ended: start deferred ones.
    fn placed_one(&mut self, ctx: &mut Context<'_>, count: usize) {
        self.placing_total = self.placing_total.saturating_sub(count);
        while self.placing_total < self.config.placements_in_flight_max {
            let Some((chunk, repair)) = self.deferred.pop_first() else {
                return;
            };
            self.place(ctx, chunk, repair);
        }
    }

    /// Starts placements for `chunk` until it has (or is getting) enough holders.
    fn place(&mut self, ctx: &mut Context<'_>, chunk: ChunkId, repair: bool) {
        let Some(owned) = self.owned.get(&chunk) else {
            return;
        };
        let have = owned.holders.len() + owned.placing as usize;
        if have >= self.config.replication {
            return;
        }
        // The tree's other chunks follow its root: while the root is being placed, or has no
        // holder at all, they wait (so a tree nobody takes costs one chunk's tries, not all).
        let root = ChunkId(owned.point.0);
        if root != chunk
            && self.owned.get(&root).is_some_and(|tree| {
                tree.holders.is_empty()
                    || (tree.placing > 0 && tree.holders.len() < self.config.replication)
            })
        {
            self.starve(ctx, chunk);
            return;
        }
        if owned.attempts >= PLACE_ATTEMPTS_MAX {
            // Tried enough peers for now: wait for a contract, or a retry.
            self.starve(ctx, chunk);
            return;
        }
        if self.placing_total >= self.config.placements_in_flight_max {
            self.deferred.insert(chunk, repair);
            return;
        }
        let need = self.config.replication - have;
        let peers: Vec<PeerId> = self
            .placement_candidates(ctx, owned, &|peer| {
                owned.holders.contains_key(peer) || owned.tried.contains(peer)
            })
            .into_iter()
            .take(need)
            .collect();
        if peers.is_empty() {
            self.starve(ctx, chunk);
            return;
        }
        if let Some(owned) = self.owned.get_mut(&chunk) {
            self.placing_total += peers.len();
            owned.placing += peers.len() as u32;
            owned.attempts += 1;
            owned.tried.extend(peers.iter().copied());
        }
        let tag = self.tag(Purpose::ReadForPlacement { repair, peers });
        ctx.local(ActorKind::Store, Local::Read { chunk, tag });
    }

    fn read_done(
        &mut self,
        ctx: &mut Context<'_>,
        tag: u64,
        chunk: ChunkId,
        payload: Option<Payload>,
    ) {
        let (repair, peers) = match self.waiting.remove(&tag) {
            Some(Purpose::ReadForPlacement { repair, peers }) => (repair, peers),
            Some(Purpose::Refresh { holder }) => return self.refreshed(chunk, holder, payload),
            _ => return,
        };
        let Some(payload) = payload else {
            // We lost our own copy; nothing to place from.
            if let Some(owned) = self.owned.get_mut(&chunk) {
                owned.placing = owned.placing.saturating_sub(peers.len() as u32);
            }
            return self.placed_one(ctx, peers.len());
        };
        // The root is what fetchers look up: its holders announce it.
        let announce = self.config.lookups
            && self
                .owned
                .get(&chunk)
                .is_some_and(|owned| owned.point == ring_point(&chunk));
        if let Some(owned) = self.owned.get_mut(&chunk) {
            owned.len = payload.len();
        }
        for peer in peers {
            let replica = Replica::make(
                &self.audit_key,
                (chunk, peer),
                &payload,
                None,
                &self.config.economy,
            );
            self.send(
                ctx,
                peer,
                Request::Store(StoreRequest::Store {
                    chunk,
                    payload: payload.clone(),
                    announce,
                }),
                Purpose::Place {
                    chunk,
                    repair,
                    bytes: payload.len(),
                    replica,
                },
            );
        }
    }

    fn done(&mut self, ctx: &mut Context<'_>, tag: u64, from: PeerId, outcome: Outcome) {
        let Some(purpose) = self.waiting.remove(&tag) else {
            return;
        };
        if matches!(outcome, Outcome::Answered(_)) {
            self.unreachable_since.remove(&from);
        }
        match purpose {
            Purpose::Place {
                chunk,
                repair,
                bytes,
                replica,
            } => {
                if outcome == Outcome::NotSent {
                    // Our own limit, not the peer's doing: the chunk waits for room and the
                    // peer stays a candidate. Deferred placements are not started now (they
                    // would meet the same limit within this step): the next answer starts them.
                    self.placing_total = self.placing_total.saturating_sub(1);
                    if let Some(owned) = self.owned.get_mut(&chunk) {
                        owned.placing = owned.placing.saturating_sub(1);
                        owned.tried.remove(&from);
                        owned.attempts = owned.attempts.saturating_sub(1);
                        self.deferred.insert(chunk, repair);
                    }
                    return;
                }
                self.placed_one(ctx, 1);
                // A peer that does not answer a placement is offered no more for a while, as
                // one that misses a check: otherwise every retry of the tree goes to it first
                // (`traitors`: 1.2 M timed-out placements in a day, to a few silent peers).
                if outcome == Outcome::TimedOut {
                    self.missed(ctx.now(), from);
                }
                let Some(owned) = self.owned.get_mut(&chunk) else {
                    return;
                };
                owned.placing = owned.placing.saturating_sub(1);
                let stored = outcome == Outcome::Answered(Response::Store(StoreResponse::Stored));
                if stored {
                    owned.holders.insert(from, replica);
                    ctx.event(Event::ReplicaPlaced {
                        chunk,
                        holder: from,
                        repair,
                    });
                }
                let root_placed =
                    owned.point.0 == chunk.0 && owned.placing == 0 && !owned.holders.is_empty();
                self.placement_answered(ctx, from, bytes, &outcome);
                // Still short (this one failed, or an earlier failure found every candidate
                // busy with this chunk): go on placing.
                self.place(ctx, chunk, repair);
                // A root's placement ended with holders: its tree's chunks follow it now.
                if root_placed {
                    self.retry_tree(ctx, chunk);
                }
            }
            Purpose::Propose {
                peer,
                terms,
                renewal,
            } => self.proposal_answered(ctx, peer, (terms, renewal), outcome),
            Purpose::Audit { holder, items } => self.audited(ctx, holder, items, outcome),
            Purpose::End | Purpose::Refresh { .. } => {}
            Purpose::Check { chunks } => self.checked(ctx, from, chunks, outcome),
            Purpose::FetchRoot { fetch } => self.root_answered(ctx, fetch, from, outcome),
            Purpose::FetchChunk {
                fetch,
                chunk,
                kind,
                start,
                tries,
            } => self.chunk_answered(ctx, fetch, (chunk, kind), (start, tries), from, outcome),
            Purpose::ReadForPlacement { .. } | Purpose::Lookup { .. } => {}
        }
    }

    /// `chunk` found no room: it waits in `starved` for a contract or the retry timer.
    fn starve(&mut self, ctx: &mut Context<'_>, chunk: ChunkId) {
        self.starved.insert(chunk);
        if self.retry_us.is_none() {
            let wait = self.retry_next_us.max(RETRY_FIRST_US);
            self.retry_us = Some(wait);
            ctx.timer(wait, RETRY_TOKEN);
        }
    }

    /// Starved chunks try again from the start; the wait doubles while nothing gets placed.
    fn retry_starved(&mut self, ctx: &mut Context<'_>) {
        let Some(wait) = self.retry_us.take() else {
            return;
        };
        // Doubling whatever else got placed meanwhile: chunks nobody takes must not keep a
        // peer sending them every minute (a contract that grows retries them at once).
        let next = wait
            .saturating_mul(2)
            .min(self.config.check_interval_us.max(RETRY_FIRST_US));
        self.retry_starved_in_turn(ctx);
        // The next starving waits `next`, unless everything found room.
        self.retry_next_us = if self.starved.is_empty() {
            RETRY_FIRST_US
        } else {
            next
        };
        if !self.starved.is_empty() && self.retry_us.is_none() {
            self.retry_us = Some(next);
            ctx.timer(next, RETRY_TOKEN);
        }
    }

    /// The starved chunks of the tree at `root` try again from the start.
    fn retry_tree(&mut self, ctx: &mut Context<'_>, root: ChunkId) {
        let point = ring_point(&root);
        let tree: Vec<ChunkId> = self
            .starved
            .iter()
            .filter(|c| self.owned.get(c).is_some_and(|o| o.point == point))
            .copied()
            .collect();
        for chunk in tree {
            self.starved.remove(&chunk);
            if let Some(owned) = self.owned.get_mut(&chunk) {
                owned.attempts = 0;
                owned.tried.clear();
            }
            self.place(ctx, chunk, true);
        }
    }

    /// Starved chunks of trees that have holders try again (they go where their root is),
    /// and those of [`RETRY_HOMELESS_TREES_MAX`] trees without any, in turn.
    fn retry_starved_in_turn(&mut self, ctx: &mut Context<'_>) {
        let cursor = self.retry_cursor;
        let order: Vec<ChunkId> = self
            .starved
            .range(cursor..)
            .filter(|chunk| **chunk != cursor)
            .chain(self.starved.range(..=cursor))
            .copied()
            .collect();
        let mut homeless = BTreeSet::new();
        let mut chosen = Vec::new();
        for chunk in order {
            let Some(root) = self.owned.get(&chunk).map(|o| ChunkId(o.point.0)) else {
                self.starved.remove(&chunk);
                continue;
            };
            let housed = self
                .owned
                .get(&root)
                .is_some_and(|tree| !tree.holders.is_empty());
            if housed || homeless.contains(&root) {
                chosen.push(chunk);
            } else if homeless.len() < RETRY_HOMELESS_TREES_MAX {
                homeless.insert(root);
                self.retry_cursor = chunk;
                chosen.push(chunk);
            }
        }
        for chunk in chosen {
            self.starved.remove(&chunk);
            if let Some(owned) = self.owned.get_mut(&chunk) {
                owned.attempts = 0;
                owned.tried.clear();
            }
            self.place(ctx, chunk, true);
        }
    }

    /// Every starved chunk tries again from the start.
    pub(super) fn retry_starved_now(&mut self, ctx: &mut Context<'_>) {
        for chunk in std::mem::take(&mut self.starved) {
            if let Some(owned) = self.owned.get_mut(&chunk) {
                owned.attempts = 0;
                owned.tried.clear();
            }
            self.place(ctx, chunk, true);
        }
    }

    fn check_round(&mut self, ctx: &mut Context<'_>) {
        let mut by_holder: BTreeMap<PeerId, Vec<ChunkId>> = BTreeMap::new();
        let mut thin = Vec::new();
        for (chunk, owned) in &mut self.owned {
            for holder in owned.holders.keys() {
                by_holder.entry(*holder).or_default().push(*chunk);
            }
            owned.tried.clear();
            owned.attempts = 0;
            // Starved chunks wait for their retry (or a contract), not for this round.
            if owned.holders.len() + (owned.placing as usize) < self.config.replication
                && !self.starved.contains(chunk)
            {
                thin.push(*chunk);
            }
        }
        for (holder, chunks) in by_holder {
            for batch in chunks.chunks(self.config.check_chunks_max.max(1)) {
                let chunks = batch.to_vec();
                self.send(
                    ctx,
                    holder,
                    Request::Store(StoreRequest::Check {
                        chunks: chunks.clone(),
                    }),
                    Purpose::Check { chunks },
                );
            }
        }
        for chunk in thin {
            self.place(ctx, chunk, true);
        }
    }

    fn checked(
        &mut self,
        ctx: &mut Context<'_>,
        holder: PeerId,
        asked: Vec<ChunkId>,
        outcome: Outcome,
    ) {
        let lost: Vec<ChunkId> = match outcome {
            Outcome::Answered(Response::Store(StoreResponse::Holding { missing })) => {
                let asked: BTreeSet<ChunkId> = asked.into_iter().collect();
                let missing: Vec<ChunkId> =
                    missing.into_iter().filter(|c| asked.contains(c)).collect();
                if !missing.is_empty() {
                    ctx.observe(holder, Observation::Misbehaved);
                }
                if let Some(ledger) = self.ledgers.get_mut(&holder) {
                    ledger.term_failed += missing.len() as u64;
                }
                // A replica it says it lost is audited at once: a holder we hold nothing
                // for any more says so (no penalty), one that dropped it fails the audit.
                self.audit_now(ctx, holder, missing)
            }
            // A refusal (it asks too much at once, say) tells nothing about the chunks.
            Outcome::Answered(_) => return,
            // Not asked (our own limit): the next round asks again.
            Outcome::NotSent => return,
            Outcome::TimedOut => {
                let since = self.missed(ctx.now(), holder);
                if ctx.now().since(since) < self.config.holder_dead_after_us {
                    return;
                }
                asked
            }
        };
        for chunk in lost {
            if let Some(owned) = self.owned.get_mut(&chunk) {
                owned.holders.remove(&holder);
            }
            self.place(ctx, chunk, true);
        }
    }

    fn start_fetch(&mut self, ctx: &mut Context<'_>, root: ChunkId, started: Time) {
        if self.fetches.len() + self.looking >= self.config.fetches_max {
            self.fetch_failed(ctx, (root, started, 0), Vec::new());
            return;
        }
        if self.config.lookups {
            // Ask the network who provides the root first; the ring is the fallback.
            let tag = self.tag(Purpose::Lookup { root, started });
            self.looking += 1;
            let skip = self
                .fetch_retries
                .get(&root)
                .map_or_else(Vec::new, |retry| retry.skip.clone());
            ctx.local(
                ActorKind::Transport,
                Local::FindProviders {
                    key: root,
                    tag,
                    skip,
                },
            );
            return;
        }
        self.fetch_from(ctx, root, started, Vec::new());
    }

    /// A fetch failed (`failed`: the sources that did not give its root): it is tried
    /// again after a wait (doubling) while that stays within `fetch_deadline_us` of its
    /// start; otherwise it is over.
    fn fetch_failed(
        &mut self,
        ctx: &mut Context<'_>,
        (root, started, bytes): (ChunkId, Time, u64),
        failed: Vec<PeerId>,
    ) {
        let (wait_us, mut skip) = self
            .fetch_retries
            .remove(&root)
            .map_or((FETCH_RETRY_FIRST_US, Vec::new()), |retry| {
                ((retry.wait_us * 2).min(FETCH_RETRY_MAX_US), retry.skip)
            });
        let within = ctx.now().since(started).saturating_add(wait_us);
        if within <= self.config.fetch_deadline_us {
            let due = Some(ctx.now().plus(wait_us));
            for peer in failed {
                if skip.len() < FETCH_SKIP_MAX && !skip.contains(&peer) {
                    skip.push(peer);
                }
            }
            let retry = FetchRetry {
                started,
                due,
                wait_us,
                skip,
            };
            self.fetch_retries.insert(root, retry);
            ctx.timer(wait_us, FETCH_RETRY_TOKEN);
            return;
        }
        ctx.event(Event::FetchDone {
            root,
            ok: false,
            started,
            bytes,
        });
    }

    /// Starts again each failed fetch whose wait is over.
    fn retry_fetches(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        let due: Vec<(ChunkId, Time)> = self
            .fetch_retries
            .iter_mut()
            .filter(|(_, retry)| retry.due.is_some_and(|due| due <= now))
            .map(|(root, retry)| {
                retry.due = None;
                (*root, retry.started)
            })
            .collect();
        for (root, started) in due {
            self.start_fetch(ctx, root, started);
        }
    }

    /// Fetches the tree at `root` from `providers` (found by a lookup) and the peers the
    /// ring places it on.
    fn fetch_from(
        &mut self,
        ctx: &mut Context<'_>,
        root: ChunkId,
        started: Time,
        providers: Vec<PeerId>,
    ) {
        let mut sources: Vec<PeerId> = providers
            .into_iter()
            .filter(|peer| *peer != ctx.me() && self.score(peer) >= SCORE_MIN)
            .collect();
        for peer in self.candidates(ctx, ring_point(&root), &|_| false) {
            if !sources.contains(&peer) {
                sources.push(peer);
            }
        }
        if self.fetches.len() >= self.config.fetches_max || sources.is_empty() {
            self.fetch_failed(ctx, (root, started, 0), Vec::new());
            return;
        }
        let id = self.next_tag;
        self.next_tag += 1;
        // The root is small: ask every candidate at once and keep whoever answers.
        for peer in &sources {
            self.send(
                ctx,
                *peer,
                Request::Store(StoreRequest::Fetch { chunk: root }),
                Purpose::FetchRoot { fetch: id },
            );
        }
        let fetch = Fetch {
            root,
            started,
            root_queries: sources.len(),
            failed: Vec::new(),
            sources,
            answered: 0,
            queue: Vec::new(),
            in_flight: 0,
            chunks: 1,
            bytes: 0,
            next_source: 0,
        };
        self.fetches.insert(id, fetch);
    }

    /// A fetch that no retry could mend (a tree larger than we fetch, an object that does
    /// not parse though its bytes match its id): it fails now, deadline or not.
    fn give_up_fetch(&mut self, ctx: &mut Context<'_>, id: u64) {
        if let Some(fetch) = self.fetches.remove(&id) {
            self.fetch_retries.remove(&fetch.root);
            ctx.event(Event::FetchDone {
                root: fetch.root,
                ok: false,
                started: fetch.started,
                bytes: fetch.bytes,
            });
        }
    }

    fn finish_fetch(&mut self, ctx: &mut Context<'_>, id: u64, ok: bool) {
        if let Some(fetch) = self.fetches.remove(&id) {
            if !ok {
                let attempt = (fetch.root, fetch.started, fetch.bytes);
                self.fetch_failed(ctx, attempt, fetch.failed);
                return;
            }
            self.fetch_retries.remove(&fetch.root);
            if self.config.keep_fetched {
                // The whole tree is kept here now: a provider of it, as its holders are (and
                // again after a restart, if it is still whole then).
                let _ = saved::save_kept(&self.store, &fetch.root);
                ctx.local(ActorKind::Transport, Local::Provide { key: fetch.root });
            }
            ctx.event(Event::FetchDone {
                root: fetch.root,
                ok,
                started: fetch.started,
                bytes: fetch.bytes,
            });
        }
    }

    /// The links of an object payload, or `None` if it is not a readable object.
    fn children(payload: &Payload) -> Option<Vec<(ChunkId, LinkKind)>> {
        let bytes = payload.bytes()?;
        parse_links(bytes)
            .ok()
            .map(|(links, _)| links.into_iter().map(|l| (l.id, l.kind)).collect())
    }

    fn root_answered(&mut self, ctx: &mut Context<'_>, id: u64, from: PeerId, outcome: Outcome) {
        let Some(fetch) = self.fetches.get_mut(&id) else {
            return;
        };
        fetch.root_queries -= 1;
        let valid = match outcome {
            Outcome::Answered(Response::Store(StoreResponse::Chunk { payload }))
                if payload_matches(&fetch.root, &payload) =>
            {
                Some(payload)
            }
            Outcome::Answered(Response::Store(StoreResponse::Chunk { .. })) => {
                ctx.observe(from, Observation::Misbehaved);
                None
            }
            _ => None,
        };
        let Some(payload) = valid else {
            fetch.failed.push(from);
            if fetch.root_queries == 0 && fetch.answered == 0 {
                self.finish_fetch(ctx, id, false);
            }
            return;
        };
        // Move the answering peer to the front of the sources, after earlier answerers.
        if let Some(position) = fetch.sources.iter().position(|p| *p == from) {
            let peer = fetch.sources.remove(position);
            fetch
                .sources
                .insert(fetch.answered.min(fetch.sources.len()), peer);
        }
        fetch.answered += 1;
        if fetch.answered > 1 {
            return;
        }
        let Some(children) = Self::children(&payload) else {
            return self.give_up_fetch(ctx, id);
        };
        let root = fetch.root;
        self.take_in(ctx, id, from, (root, payload), children);
    }

    /// Counts a chunk `from` served us (and keeps it, if so configured), queues its
    /// children, and goes on fetching.
    fn take_in(
        &mut self,
        ctx: &mut Context<'_>,
        id: u64,
        from: PeerId,
        (chunk, payload): (ChunkId, Payload),
        children: Vec<(ChunkId, LinkKind)>,
    ) {
        let bytes = payload.len();
        if self.config.keep_fetched {
            ctx.local(ActorKind::Store, Local::KeepOwn { chunk, payload });
        }
        ctx.local(
            ActorKind::Reputation,
            Local::Served {
                peer: from,
                service: Service::ChunkServed,
                bytes,
                creds: 0,
                seconds: 0,
            },
        );
        self.received_from(ctx, from, bytes);
        let limit = self.config.fetch_chunks_max;
        let Some(fetch) = self.fetches.get_mut(&id) else {
            return;
        };
        fetch.bytes += bytes;
        fetch.chunks += children.len();
        if fetch.chunks > limit {
            return self.give_up_fetch(ctx, id);
        }
        fetch.queue.extend(children.into_iter().rev());
        self.pump(ctx, id);
    }

    /// Starts chunk fetches up to the parallelism limit, or reports the fetch finished.
    fn pump(&mut self, ctx: &mut Context<'_>, id: u64) {
        loop {
            let Some(fetch) = self.fetches.get_mut(&id) else {
                return;
            };
            if fetch.in_flight >= self.config.fetch_parallel_max {
                return;
            }
            let Some((chunk, kind)) = fetch.queue.pop() else {
                if fetch.in_flight == 0 {
                    self.finish_fetch(ctx, id, true);
                }
                return;
            };
            fetch.in_flight += 1;
            // Spread the chunks over the peers that answered with the root.
            let start = fetch.next_source;
            fetch.next_source = (fetch.next_source + 1) % fetch.answered.max(1);
            self.ask(ctx, id, (chunk, kind), (start, 0));
        }
    }

    /// Asks the next source for a chunk: source `start + tries`, in source order.
    fn ask(
        &mut self,
        ctx: &mut Context<'_>,
        id: u64,
        (chunk, kind): (ChunkId, LinkKind),
        (start, tries): (usize, usize),
    ) {
        let Some(fetch) = self.fetches.get(&id) else {
            return;
        };
        if tries >= fetch.sources.len() {
            return self.finish_fetch(ctx, id, false);
        }
        let peer = fetch.sources[(start + tries) % fetch.sources.len()];
        self.send(
            ctx,
            peer,
            Request::Store(StoreRequest::Fetch { chunk }),
            Purpose::FetchChunk {
                fetch: id,
                chunk,
                kind,
                start,
                tries,
            },
        );
    }

    fn chunk_answered(
        &mut self,
        ctx: &mut Context<'_>,
        id: u64,
        (chunk, kind): (ChunkId, LinkKind),
        (start, tries): (usize, usize),
        from: PeerId,
        outcome: Outcome,
    ) {
        if !self.fetches.contains_key(&id) {
            return;
        }
        let payload = match outcome {
            Outcome::Answered(Response::Store(StoreResponse::Chunk { payload }))
                if payload_matches(&chunk, &payload) =>
            {
                payload
            }
            Outcome::Answered(Response::Store(StoreResponse::Chunk { .. })) => {
                ctx.observe(from, Observation::Misbehaved);
                return self.ask(ctx, id, (chunk, kind), (start, tries + 1));
            }
            _ => return self.ask(ctx, id, (chunk, kind), (start, tries + 1)),
        };
        let children = match kind {
            LinkKind::Data => Vec::new(),
            LinkKind::Object => match Self::children(&payload) {
                Some(children) => children,
                None => return self.give_up_fetch(ctx, id),
            },
        };
        let Some(fetch) = self.fetches.get_mut(&id) else {
            return;
        };
        fetch.in_flight -= 1;
        self.take_in(ctx, id, from, (chunk, payload), children);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::kernel::{Contact, KernelConfig, Outbox};

    /// A fetch whose provider failed it looks the providers up again without letting that
    /// provider's record end the lookup (`Local::FindProviders::skip`).
    #[test]
    fn a_retried_fetch_looks_past_the_providers_that_failed_it() {
        let config = KernelConfig {
            lookups: true,
            fetch_deadline_us: 60 * Time::SECOND,
            ..KernelConfig::default()
        };
        let mut negotiator = Negotiator::new(config, Store::memory());
        let (me, dead) = (PeerId([1; 32]), PeerId([7; 32]));
        let root = ChunkId([5; 32]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut step = |negotiator: &mut Negotiator, now: Time, input: Input| {
            let mut out = Outbox::default();
            let mut ctx = Context::new(now, me, ActorKind::Negotiator, &mut rng, &mut out);
            negotiator.handle(&mut ctx, input);
            out.local.into_iter().collect::<Vec<_>>()
        };
        let lookup = |sent: &[(ActorKind, Local)]| {
            sent.iter().find_map(|(to, local)| match local {
                Local::FindProviders { key, tag, skip } if *to == ActorKind::Transport => {
                    assert_eq!(*key, root);
                    Some((*tag, skip.clone()))
                }
                _ => None,
            })
        };
        let begun = Time(Time::HOUR);
        let sent = step(
            &mut negotiator,
            begun,
            Input::Command(Command::Fetch { root }),
        );
        let (tag, skip) = lookup(&sent).expect("a lookup");
        assert!(skip.is_empty(), "nothing to skip at first");
        let providers = vec![Contact {
            id: dead,
            addr: None,
        }];
        let sent = step(
            &mut negotiator,
            begun,
            Input::Local(Local::Found { tag, providers }),
        );
        let asked: Vec<(PeerId, u64)> = sent
            .iter()
            .filter_map(|(_, local)| match local {
                Local::Send {
                    to,
                    tag,
                    body: Request::Store(StoreRequest::Fetch { chunk }),
                    ..
                } if *chunk == root => Some((*to, *tag)),
                _ => None,
            })
            .collect();
        assert_eq!(asked.len(), 1, "the root is asked of the provider found");
        let (to, tag) = asked[0];
        assert_eq!(to, dead);
        let failed = Local::Done {
            tag,
            from: dead,
            outcome: Outcome::TimedOut,
        };
        step(&mut negotiator, begun, Input::Local(failed));
        let retry = begun.plus(FETCH_RETRY_FIRST_US);
        let token = FETCH_RETRY_TOKEN;
        let sent = step(&mut negotiator, retry, Input::Timer { token });
        let (_, skip) = lookup(&sent).expect("the retry looks the providers up again");
        assert_eq!(skip, [dead]);
    }

    /// A peer that leaves a placement unanswered is offered nothing more for a check
    /// interval (`traitors`: the same silent peer was tried again at every retry); a
    /// connection to it coming up offers it the starved chunks at once (a node restarted on
    /// a new port, `tests/restart.rs`).
    #[test]
    fn a_silent_holder_is_passed_over_until_its_link_comes_up() {
        let mut negotiator = Negotiator::new(KernelConfig::default(), Store::memory());
        let peers: Vec<PeerId> = (0..4u8).map(|i| PeerId([0x40 * i + 8; 32])).collect();
        let root = ChunkId([0x30; 32]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let at = Time(Time::HOUR);
        // As after a restart: what we own is placed once the first peers are known.
        negotiator.take_owned(&root, &[root]);
        negotiator.place_restored = true;
        let known = Input::Local(Local::PeersKnown {
            peers: peers.clone(),
        });
        let first = placements(&mut negotiator, &mut rng, at, known);
        assert_eq!(first.len(), 3, "{first:?}");
        let asked = |placed: &[(PeerId, u64)]| placed.iter().map(|(to, _)| *to).collect::<Vec<_>>();
        let spare = *peers.iter().find(|p| !asked(&first).contains(p)).unwrap();

        // Two store it and the third is silent: the fourth peer is asked instead.
        let answer = |tag, from, outcome| Input::Local(Local::Done { tag, from, outcome });
        for &(from, tag) in &first[..2] {
            let stored = Outcome::Answered(Response::Store(StoreResponse::Stored));
            let placed = placements(&mut negotiator, &mut rng, at, answer(tag, from, stored));
            assert!(placed.is_empty(), "{placed:?}");
        }
        let (silent, tag) = first[2];
        let timed_out = answer(tag, silent, Outcome::TimedOut);
        let second = placements(&mut negotiator, &mut rng, at, timed_out);
        assert_eq!(asked(&second), [spare]);
        // The spare is silent too: nobody is left, and the chunk starves.
        let timed_out = answer(second[0].1, spare, Outcome::TimedOut);
        assert!(placements(&mut negotiator, &mut rng, at, timed_out).is_empty());

        // The retry a minute later passes both over: each missed a placement within the
        // check interval.
        let retry = at.plus(RETRY_FIRST_US);
        let timer = Input::Timer { token: RETRY_TOKEN };
        assert!(placements(&mut negotiator, &mut rng, retry, timer).is_empty());

        // A link to the first silent one comes up: it is offered the chunk at once.
        let up = retry.plus(Time::SECOND);
        let reachable = Input::Local(Local::Reachable { peer: silent });
        let third = placements(&mut negotiator, &mut rng, up, reachable);
        assert_eq!(asked(&third), [silent]);
    }

    /// Hands `input` to the negotiator, answers the reads of our copy it asks for, and
    /// returns the peers (and tags) of the `Store` requests it sends.
    fn placements(
        negotiator: &mut Negotiator,
        rng: &mut rand_chacha::ChaCha8Rng,
        now: Time,
        input: Input,
    ) -> Vec<(PeerId, u64)> {
        let mut out = Outbox::default();
        let mut ctx = Context::new(now, PeerId([1; 32]), ActorKind::Negotiator, rng, &mut out);
        negotiator.handle(&mut ctx, input);
        let mut stores = Vec::new();
        for (_, local) in out.local {
            match local {
                Local::Read { chunk, tag } => {
                    let payload = Some(Payload::Bytes(vec![7; 100]));
                    let done = Input::Local(Local::ReadDone {
                        tag,
                        chunk,
                        payload,
                    });
                    stores.extend(placements(negotiator, rng, now, done));
                }
                Local::Send {
                    to,
                    tag,
                    body: Request::Store(StoreRequest::Store { .. }),
                    ..
                } => stores.push((to, tag)),
                _ => {}
            }
        }
        stores
    }
}
