//! The transport actor: the peer table, request/response with request ids, timeouts and
//! retries, and routing of requests and answers to the sibling actors. It is the only actor
//! that emits frames; the host moves them (over TCP + Noise in the node, through the
//! modelled network in the simulator). With `KernelConfig::lookups` it also keeps the
//! Kademlia routing table, runs lookups, and keeps and publishes provider records
//! ([`super::routing`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use rand::Rng;

use super::routing::{Lookup, LookupKind, ProviderRecords, RoutingTable, K};
use super::{
    ActorKind, Contact, Context, Directory, Event, Frame, Input, KernelConfig, Link, Local,
    Observation, Outcome, PeerId, Request, Response, RouteRequest, RouteResponse, StoreRequest,
    Time,
};
use crate::ids::ChunkId;
use crate::limits::CHUNK_STORED_BYTES_MAX;
use crate::store::Store;

/// Timer token of the gossip round (request ids count up from 0 and never reach it).
const GOSSIP_TOKEN: u64 = u64::MAX;
/// The known peers' addresses are saved at most this often.
const CONTACTS_SAVE_EVERY_US: u64 = 60 * Time::SECOND;
/// Timer token of the provider records' republish (and expiry) round.
const REPUBLISH_TOKEN: u64 = u64::MAX - 1;
/// Timer token of the sweep that expires requests past their deadline.
const SWEEP_TOKEN: u64 = u64::MAX - 2;
/// Deadlines are swept at multiples of this, so that requests sent together (a lookup's)
/// share one timer: a request expires up to this much after its timeout.
const SWEEP_GRANULARITY_US: u64 = 250 * Time::MILLISECOND;
/// Announcing lookups run at once; the rest of a republish round waits its turn.
const PROVIDE_LOOKUPS_MAX: usize = 32;
/// Keys this peer announces at most.
const PROVIDED_MAX: usize = 1 << 16;

/// Why a lookup runs.
#[derive(Debug, Clone, Copy)]
enum LookupFor {
    /// The negotiator asked for the providers of `key`.
    Negotiator { tag: u64, key: ChunkId },
    /// We provide `key`: find the peers closest to it and give them our record.
    Provide { key: ChunkId },
    /// Joining: our own neighbourhood learns us, and we it.
    Join,
}
/// Peers greeted when (re)starting.
const HELLOS_ON_START: usize = 3;

#[derive(Debug)]
struct Pending {
    to: PeerId,
    body: Request,
    reply_to: ActorKind,
    tag: u64,
    attempts: u32,
    /// When the current attempt expires.
    deadline: Time,
}

/// The transport actor.
#[derive(Debug)]
pub struct Transport {
    config: KernelConfig,
    /// The peers we were bootstrapped with, sorted.
    directory: Directory,
    /// Peers learned since, in the order learned (for uniform random picks).
    peer_list: Vec<PeerId>,
    /// Peers learned since, and when they were last heard from.
    peers: BTreeMap<PeerId, Time>,
    pending: BTreeMap<u64, Pending>,
    /// The requests in flight by deadline.
    deadlines: BTreeSet<(Time, u64)>,
    /// The earliest sweep armed (others may be armed later: they find less to do).
    sweep_at: Option<Time>,
    next_id: u64,
    /// The first request id of this run: ids from here to `next_id` were issued.
    first_id: u64,
    /// Where peers listen (real hosts only).
    addrs: BTreeMap<PeerId, SocketAddr>,
    /// Bootstrap addresses dialed and not yet answered with a connection.
    bootstrapping: BTreeSet<SocketAddr>,
    table: RoutingTable,
    lookups: BTreeMap<u64, (Lookup, LookupFor)>,
    next_lookup: u64,
    records: ProviderRecords,
    /// Roots we hold and announce.
    provided: BTreeSet<ChunkId>,
    /// Announcements waiting for a lookup slot, and the announcing lookups running.
    to_announce: Vec<ChunkId>,
    /// Peers learned during the current input, for the negotiator.
    newly_known: Vec<PeerId>,
    announcing: usize,
    /// Peers cut off for breaking the protocol in this run (at most `peers_max`): never
    /// named to others in a `Welcome`.
    banned: BTreeSet<PeerId>,
    /// Where the peers we know are saved, to be dialed again after a restart
    /// ([`super::saved`]; real hosts only, which know addresses).
    store: Store,
    /// Whether the saved contacts have been read back (at the first start).
    restored: bool,
    /// When the contacts were last saved, and how many addresses were known then.
    contacts_saved_at: Option<(Time, usize)>,
    /// An address was learned or replaced since the contacts were last saved.
    contacts_dirty: bool,
}

impl Transport {
    pub fn new(config: KernelConfig, me: PeerId, store: Store) -> Transport {
        Transport {
            store,
            restored: false,
            contacts_saved_at: None,
            contacts_dirty: false,
            table: RoutingTable::new(me),
            lookups: BTreeMap::new(),
            next_lookup: 1,
            records: ProviderRecords::default(),
            provided: BTreeSet::new(),
            to_announce: Vec::new(),
            newly_known: Vec::new(),
            announcing: 0,
            banned: BTreeSet::new(),
            config,
            directory: Directory::from(Vec::new()),
            peer_list: Vec::new(),
            peers: BTreeMap::new(),
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            sweep_at: None,
            next_id: 0,
            first_id: 0,
            addrs: BTreeMap::new(),
            bootstrapping: BTreeSet::new(),
        }
    }

    /// At each gossip round where an address was learned or replaced since, and once a
    /// minute anyway:
    /// saves the peers heard from most recently that said where they listen (none are
    /// known without real addresses, as in the simulator).
    fn save_contacts(&mut self, now: Time) {
        let recent = |(at, _): (Time, usize)| now.since(at) < CONTACTS_SAVE_EVERY_US;
        if self.addrs.is_empty()
            || (!self.contacts_dirty && self.contacts_saved_at.is_some_and(recent))
        {
            return;
        }
        self.contacts_dirty = false;
        self.contacts_saved_at = Some((now, self.addrs.len()));
        let mut heard: Vec<(Time, PeerId, SocketAddr)> = self
            .addrs
            .iter()
            .filter(|(peer, _)| !self.banned.contains(peer))
            .map(|(peer, addr)| {
                let seen = self.peers.get(peer).copied().unwrap_or_default();
                (seen, *peer, *addr)
            })
            .collect();
        heard.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let contacts: Vec<(PeerId, SocketAddr)> = heard
            .into_iter()
            .take(super::saved::CONTACTS_MAX)
            .map(|(_, peer, addr)| (peer, addr))
            .collect();
        // A store that cannot save them costs only the redial after a restart.
        let _ = super::saved::save_contacts(&self.store, &contacts);
    }

    pub fn known_peers(&self) -> usize {
        self.directory.len() + self.peer_list.len()
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Contacts in the routing table.
    pub fn routing_table_len(&self) -> usize {
        self.table.len()
    }

    /// Provider records kept for others.
    pub fn provider_records(&self) -> usize {
        self.records.len()
    }

    /// The providers of `key` this peer keeps records of, unexpired at `now`.
    pub fn providers_of(&self, key: &ChunkId, now: Time) -> Vec<PeerId> {
        self.records
            .get(key, now)
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// Takes a contact in. `first_hand`: the peer itself told us (it sent us something, said
    /// where it listens, or answered where we dialed); second-hand contacts (named by
    /// others) never replace an address we have or revive a failing table entry.
    fn learn(
        &mut self,
        ctx: &mut Context<'_>,
        Contact { id: peer, addr }: Contact,
        first_hand: bool,
    ) {
        if peer == ctx.me() {
            return;
        }
        // On a real network a contact is only worth routing to if it says where it listens.
        if self.config.lookups && (addr.is_some() || self.config.listen.is_none()) {
            let contact = Contact { id: peer, addr };
            self.table.insert(contact, ctx.now(), first_hand);
        }
        if let Some(addr) = addr {
            let known = self.addrs.get(&peer);
            let replace = match known {
                Some(old) => first_hand && *old != addr,
                None => self.addrs.len() < self.config.peers_max,
            };
            if replace {
                self.addrs.insert(peer, addr);
                ctx.address(peer, addr);
                self.contacts_dirty = true;
                // Until as many as are kept are saved, each new address is saved at once
                // (a node killed a second after it met its peers still knows them).
                if self.contacts_saved_at.map_or(0, |(_, count)| count) < super::saved::CONTACTS_MAX
                {
                    self.save_contacts(ctx.now());
                }
            }
        }
        if self.directory.binary_search(&peer).is_ok() {
            return;
        }
        if let Some(seen) = self.peers.get_mut(&peer) {
            *seen = ctx.now();
            return;
        }
        if self.peer_list.len() >= self.config.peers_max {
            return;
        }
        self.peers.insert(peer, ctx.now());
        self.peer_list.push(peer);
        self.newly_known.push(peer);
    }

    fn random_peer(&self, ctx: &mut Context<'_>) -> Option<PeerId> {
        let known = self.known_peers();
        if known == 0 {
            return None;
        }
        let index = ctx.rng().gen_range(0..known);
        let peer = match self.directory.get(index) {
            Some(peer) => *peer,
            None => self.peer_list[index - self.directory.len()],
        };
        (peer != ctx.me()).then_some(peer)
    }

    /// How long to wait for an answer to `frame` before retrying.
    fn timeout_for(&self, frame: &Frame, body: &Request) -> u64 {
        let answer_bytes = match body {
            Request::Store(StoreRequest::Fetch { .. }) => CHUNK_STORED_BYTES_MAX as u64,
            _ => 0,
        };
        let bytes = frame.encoded_len() + answer_bytes;
        self.config.request_timeout_us
            + bytes * Time::SECOND / self.config.timeout_bytes_per_s.max(1)
    }

    fn transmit(&mut self, ctx: &mut Context<'_>, id: u64) {
        let Some(pending) = self.pending.get(&id) else {
            return;
        };
        let frame = Frame::Request {
            id,
            body: pending.body.clone(),
        };
        let timeout = self.timeout_for(&frame, &pending.body);
        let to = pending.to;
        let deadline = ctx.now().plus(timeout);
        if let Some(pending) = self.pending.get_mut(&id) {
            self.deadlines.remove(&(pending.deadline, id));
            pending.deadline = deadline;
        }
        self.deadlines.insert((deadline, id));
        ctx.wire(to, frame);
        self.arm_sweep(ctx);
    }

    /// Arms a sweep for the earliest deadline, unless one is armed by then.
    fn arm_sweep(&mut self, ctx: &mut Context<'_>) {
        let Some(&(deadline, _)) = self.deadlines.first() else {
            return;
        };
        let at = Time(deadline.micros().div_ceil(SWEEP_GRANULARITY_US) * SWEEP_GRANULARITY_US);
        if self.sweep_at.is_some_and(|armed| armed <= at) {
            return;
        }
        self.sweep_at = Some(at);
        ctx.timer(at.since(ctx.now()), SWEEP_TOKEN);
    }

    /// Expires the requests whose deadline has passed, then arms the next sweep.
    fn sweep(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        if self.sweep_at.is_some_and(|armed| armed <= now) {
            self.sweep_at = None;
        }
        let due: Vec<u64> = self
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            self.expired(ctx, id);
        }
        self.arm_sweep(ctx);
    }

    /// Takes request `id` off the books.
    fn settle(&mut self, id: u64) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        self.deadlines.remove(&(pending.deadline, id));
        Some(pending)
    }

    fn send(
        &mut self,
        ctx: &mut Context<'_>,
        to: PeerId,
        body: Request,
        reply_to: ActorKind,
        tag: u64,
    ) {
        if self.pending.len() >= self.config.requests_in_flight_max {
            // Serve local work before taking more: refuse rather than queue without bound.
            ctx.local(
                reply_to,
                Local::Done {
                    tag,
                    from: to,
                    outcome: Outcome::NotSent,
                },
            );
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                to,
                body,
                reply_to,
                tag,
                attempts: 0,
                deadline: ctx.now(),
            },
        );
        self.transmit(ctx, id);
    }

    fn hello(&self) -> Request {
        Request::Route(RouteRequest::Hello {
            listen: self.config.listen,
        })
    }

    fn greet(&mut self, ctx: &mut Context<'_>, count: usize) {
        for _ in 0..count {
            if let Some(peer) = self.random_peer(ctx) {
                self.send(ctx, peer, self.hello(), ActorKind::Transport, 0);
            }
        }
    }

    fn link(&mut self, ctx: &mut Context<'_>, link: Link) {
        match link {
            Link::Up { peer, dialed } => {
                let contact = Contact {
                    id: peer,
                    addr: dialed,
                };
                self.learn(ctx, contact, true);
                ctx.local(ActorKind::Negotiator, Local::Reachable { peer });
                // A bootstrap address answered: introduce ourselves to whoever is there, and
                // find our neighbourhood through it.
                if dialed.is_some_and(|addr| self.bootstrapping.remove(&addr)) {
                    self.send(ctx, peer, self.hello(), ActorKind::Transport, 0);
                    if self.config.lookups {
                        self.join(ctx);
                    }
                }
            }
            Link::Down { .. } => {}
            Link::Unreachable { peer } => {
                // Fail what waits on it now rather than at its timeout.
                let waiting: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| p.to == peer)
                    .map(|(id, _)| *id)
                    .collect();
                for id in waiting {
                    if let Some(pending) = self.pending.get_mut(&id) {
                        pending.attempts = self.config.request_retries_max;
                    }
                    self.expired(ctx, id);
                }
            }
            // The host already closed the connection.
            Link::Broken { peer, .. } => self.ban(ctx, peer, false),
        }
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        self.take(ctx, input);
        // The peers this input taught us go to the negotiator together.
        if !self.newly_known.is_empty() {
            let peers = std::mem::take(&mut self.newly_known);
            ctx.local(ActorKind::Negotiator, Local::PeersKnown { peers });
        }
    }

    fn take(&mut self, ctx: &mut Context<'_>, input: Input) {
        match input {
            Input::Start { peers } => {
                // A restart loses requests in flight; their requesters restarted too. New ids
                // start at a random point so that answers to the old ones, still on their way,
                // cannot match the new requests.
                self.pending.clear();
                self.deadlines.clear();
                self.sweep_at = None;
                self.next_id = ctx.rng().gen_range(0..1 << 62);
                self.first_id = self.next_id;
                self.directory = if peers.windows(2).all(|w| w[0] < w[1]) {
                    peers
                } else {
                    let mut sorted = peers.to_vec();
                    sorted.sort();
                    sorted.dedup();
                    Directory::from(sorted)
                };
                ctx.local(
                    ActorKind::Negotiator,
                    Local::Directory {
                        peers: self.directory.clone(),
                    },
                );
                self.greet(ctx, HELLOS_ON_START);
                let mut dial = self.config.bootstrap.clone();
                if !self.restored {
                    // A restarted node dials the peers it knew, as it dials its bootstrap.
                    self.restored = true;
                    let saved = super::saved::contacts(&self.store).unwrap_or_default();
                    for (peer, addr) in saved {
                        if peer != ctx.me() && !dial.contains(&addr) {
                            dial.push(addr);
                        }
                    }
                }
                for addr in dial {
                    self.bootstrapping.insert(addr);
                    ctx.dial(addr);
                }
                if self.config.lookups {
                    self.lookups.clear();
                    self.announcing = 0;
                    let now = ctx.now();
                    for peer in self.directory.iter() {
                        if *peer != ctx.me() {
                            let contact = Contact {
                                id: *peer,
                                addr: None,
                            };
                            self.table.insert(contact, now, false);
                        }
                    }
                    if !self.table.is_empty() {
                        self.join(ctx);
                    }
                    let first = ctx
                        .rng()
                        .gen_range(0..self.config.provider_republish_us.max(1));
                    ctx.timer(first, REPUBLISH_TOKEN);
                }
                let first = ctx
                    .rng()
                    .gen_range(0..self.config.gossip_interval_us.max(1));
                ctx.timer(first, GOSSIP_TOKEN);
            }
            Input::Local(Local::Send {
                to,
                body,
                reply_to,
                tag,
            }) => self.send(ctx, to, body, reply_to, tag),
            Input::Local(Local::Respond { to, id, body }) => {
                ctx.wire(to, Frame::Response { id, body })
            }
            Input::Wire { from, frame } => {
                if self.oversized(&frame) {
                    // Oversized: dropped unread, and the sender is marked and cut off.
                    return self.ban(ctx, from, true);
                }
                let listen = match &frame {
                    Frame::Request {
                        body: Request::Route(RouteRequest::Hello { listen }),
                        ..
                    } => *listen,
                    _ => None,
                };
                let contact = Contact {
                    id: from,
                    addr: listen,
                };
                self.learn(ctx, contact, true);
                match frame {
                    // Routing is ours; chunks go to the store, chain business to the
                    // reputation filter, contracts to the negotiator.
                    Frame::Request { id, body } => match body {
                        Request::Route(request) => {
                            let body = Response::Route(self.route(ctx, from, request));
                            ctx.wire(from, Frame::Response { id, body });
                        }
                        Request::Store(_) => {
                            ctx.local(ActorKind::Store, Local::Incoming { from, id, body })
                        }
                        Request::Chain(_) => {
                            ctx.local(ActorKind::Reputation, Local::Incoming { from, id, body })
                        }
                        Request::Trade(_) => {
                            ctx.local(ActorKind::Negotiator, Local::Incoming { from, id, body })
                        }
                    },
                    Frame::Response { id, body } => self.answered(ctx, from, id, body),
                }
            }
            Input::Timer {
                token: GOSSIP_TOKEN,
            } => {
                self.greet(ctx, 1);
                self.save_contacts(ctx.now());
                ctx.timer(self.config.gossip_interval_us, GOSSIP_TOKEN);
            }
            Input::Timer {
                token: REPUBLISH_TOKEN,
            } => {
                self.records.expire(ctx.now());
                self.to_announce = self.provided.iter().rev().copied().collect();
                self.announce_next(ctx);
                ctx.timer(self.config.provider_republish_us.max(1), REPUBLISH_TOKEN);
            }
            Input::Timer { token: SWEEP_TOKEN } => self.sweep(ctx),
            // A request's own timer (before sweeps; none is armed now).
            Input::Timer { .. } => {}
            Input::Local(Local::FindProviders { key, tag, skip }) => {
                let purpose = LookupFor::Negotiator { tag, key };
                self.start_lookup(ctx, key.0, LookupKind::Providers, purpose, skip);
            }
            Input::Local(Local::Provide { key }) => {
                if self.config.lookups
                    && self.provided.len() < PROVIDED_MAX
                    && self.provided.insert(key)
                {
                    self.to_announce.push(key);
                    self.announce_next(ctx);
                }
            }
            // Records already given expire with their TTL.
            Input::Local(Local::Unprovide { key }) => {
                self.provided.remove(&key);
            }
            // A lookup query refused for lack of room in flight.
            Input::Local(Local::Done { tag, from, .. }) => self.lookup_step(ctx, tag, from, None),
            Input::Link(link) => self.link(ctx, link),
            Input::Local(_) | Input::Command(_) => {}
        }
    }

    /// Answers a routing request.
    fn route(
        &mut self,
        ctx: &mut Context<'_>,
        from: PeerId,
        request: RouteRequest,
    ) -> RouteResponse {
        match request {
            RouteRequest::Hello { .. } => RouteResponse::Welcome {
                peers: self.welcome(ctx, from),
            },
            RouteRequest::FindNode { target } => RouteResponse::Nodes {
                peers: self.table.closest(&target.0, K),
            },
            RouteRequest::GetProviders { key } => {
                // A peer that provides the key names itself first: its own announcement
                // may not outlive the restarts of the peers keeping its record.
                let mut providers = Vec::new();
                if self.provided.contains(&key) {
                    let addr = self.config.listen;
                    providers.push(Contact { id: ctx.me(), addr });
                }
                providers.extend(self.records.get(&key, ctx.now()));
                providers.truncate(K);
                RouteResponse::Providers {
                    providers,
                    closer: self.table.closest(&key.0, K),
                }
            }
            RouteRequest::AddProvider { key, addr } => {
                let expires = ctx.now().plus(self.config.provider_ttl_us);
                let provider = Contact { id: from, addr };
                let max = self.config.provider_records_max;
                self.records.add(key, provider, expires, max);
                RouteResponse::Added
            }
        }
    }

    /// Is `frame` over the frame limit? The estimate decides when it is under; a frame it
    /// puts over is measured exactly (its real encoding), so a frame within the documented
    /// limit is never refused. A frame that has no encoding (synthetic payloads, simulator
    /// only) is judged by the estimate.
    fn oversized(&self, frame: &Frame) -> bool {
        let max = self.config.frame_bytes_max;
        frame.encoded_len() > max
            && crate::wire::codec::plaintext_len(frame).map_or(true, |len| len > max)
    }

    /// `peer` broke the protocol: it is marked, cut off (unless the host already closed the
    /// connection), and never named in a `Welcome` again in this run.
    fn ban(&mut self, ctx: &mut Context<'_>, peer: PeerId, disconnect: bool) {
        ctx.observe(peer, Observation::Misbehaved);
        if disconnect {
            ctx.disconnect(peer);
        }
        if self.banned.len() >= self.config.peers_max {
            self.banned.pop_first();
        }
        self.banned.insert(peer);
    }

    /// The contacts a `Welcome` to `requester` names (`docs/wire-protocol.md` §5): at most
    /// `welcome_peers_max` distinct peers, drawn at random from those with an address (where
    /// peers have none, the simulator, from every peer known), leaving out the requester,
    /// ourselves and the peers we banned.
    fn welcome(&self, ctx: &mut Context<'_>, requester: PeerId) -> Vec<Contact> {
        let me = ctx.me();
        let nameable =
            |peer: &PeerId| *peer != requester && *peer != me && !self.banned.contains(peer);
        let wanted = self.config.welcome_peers_max;
        let known = self.known_peers();
        if self.config.listen.is_none() && known > 4 * wanted {
            // Many peers and no addresses (the simulator): distinct peers drawn by index,
            // without listing them all (a thousand-peer directory on every Hello).
            let mut picked = BTreeSet::new();
            let mut contacts = Vec::with_capacity(wanted);
            for _ in 0..4 * wanted {
                if contacts.len() == wanted {
                    break;
                }
                let index = ctx.rng().gen_range(0..known);
                let peer = match self.directory.get(index) {
                    Some(peer) => *peer,
                    None => self.peer_list[index - self.directory.len()],
                };
                if nameable(&peer) && picked.insert(peer) {
                    contacts.push(Contact {
                        id: peer,
                        addr: None,
                    });
                }
            }
            return contacts;
        }
        let mut candidates: Vec<(PeerId, Option<SocketAddr>)> = if self.config.listen.is_some() {
            self.addrs
                .iter()
                .filter(|(peer, _)| nameable(peer))
                .map(|(peer, addr)| (*peer, Some(*addr)))
                .collect()
        } else {
            self.directory
                .iter()
                .chain(self.peer_list.iter())
                .filter(|peer| nameable(peer))
                .map(|peer| (*peer, None))
                .collect()
        };
        let count = wanted.min(candidates.len());
        // A partial Fisher-Yates shuffle: the first `count` are a uniform draw without repeats.
        for i in 0..count {
            let j = ctx.rng().gen_range(i..candidates.len());
            candidates.swap(i, j);
        }
        candidates.truncate(count);
        candidates
            .into_iter()
            .map(|(id, addr)| Contact { id, addr })
            .collect()
    }

    fn answered(&mut self, ctx: &mut Context<'_>, from: PeerId, id: u64, body: Response) {
        if !(self.first_id..self.next_id).contains(&id) {
            // An answer to a request never made: a message of the wrong kind.
            return self.ban(ctx, from, true);
        }
        // Only the peer we asked may answer; anything else is late or forged and dropped.
        if self.pending.get(&id).map(|p| p.to) != Some(from) {
            return;
        }
        let Some(pending) = self.settle(id) else {
            return;
        };
        if !pending.body.admits(&body) {
            // A message of the wrong kind: the request fails and the peer is dropped.
            self.ban(ctx, from, true);
            if pending.reply_to == ActorKind::Transport && pending.tag != 0 {
                return self.lookup_step(ctx, pending.tag, from, None);
            }
            if pending.reply_to != ActorKind::Transport {
                let outcome = Outcome::TimedOut;
                let done = Local::Done {
                    tag: pending.tag,
                    from,
                    outcome,
                };
                ctx.local(pending.reply_to, done);
            }
            return;
        }
        // Routing's own requests are judged by the routing table (a contact that fails
        // leaves it); the reputation filter observes service: chunks, chains, trades. A
        // refusal or a "not found" is an answer but no service, and counts for nothing.
        let served = !matches!(
            body,
            Response::Refused(_) | Response::Store(super::StoreResponse::NotFound)
        );
        if pending.reply_to != ActorKind::Transport && served {
            ctx.observe(from, Observation::Answered);
        }
        if let Response::Route(RouteResponse::Welcome { peers }) = &body {
            for peer in peers.iter().take(self.config.welcome_peers_max) {
                self.learn(ctx, *peer, false);
            }
        }
        if pending.reply_to == ActorKind::Transport && pending.tag != 0 {
            return self.lookup_step(ctx, pending.tag, from, Some(body));
        }
        if pending.reply_to != ActorKind::Transport {
            ctx.local(
                pending.reply_to,
                Local::Done {
                    tag: pending.tag,
                    from,
                    outcome: Outcome::Answered(body),
                },
            );
        }
    }

    fn expired(&mut self, ctx: &mut Context<'_>, id: u64) {
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        if pending.attempts < self.config.request_retries_max {
            pending.attempts += 1;
            self.transmit(ctx, id);
            return;
        }
        let Some(pending) = self.settle(id) else {
            return;
        };
        if pending.reply_to != ActorKind::Transport {
            ctx.observe(pending.to, Observation::TimedOut);
        }
        self.table.failed(&pending.to);
        if pending.reply_to == ActorKind::Transport && pending.tag != 0 {
            return self.lookup_step(ctx, pending.tag, pending.to, None);
        }
        if pending.reply_to != ActorKind::Transport {
            ctx.local(
                pending.reply_to,
                Local::Done {
                    tag: pending.tag,
                    from: pending.to,
                    outcome: Outcome::TimedOut,
                },
            );
        }
    }

    /// Starts announcing lookups from the queue while there is room.
    fn announce_next(&mut self, ctx: &mut Context<'_>) {
        while self.announcing < PROVIDE_LOOKUPS_MAX {
            let Some(key) = self.to_announce.pop() else {
                return;
            };
            if !self.provided.contains(&key) {
                continue;
            }
            self.announcing += 1;
            self.start_lookup(
                ctx,
                key.0,
                LookupKind::Nodes,
                LookupFor::Provide { key },
                Vec::new(),
            );
        }
    }

    /// Looks ourselves up: our neighbourhood learns us, and we it.
    fn join(&mut self, ctx: &mut Context<'_>) {
        let me = ctx.me().0;
        self.start_lookup(ctx, me, LookupKind::Nodes, LookupFor::Join, Vec::new());
    }

    fn start_lookup(
        &mut self,
        ctx: &mut Context<'_>,
        target: [u8; 32],
        kind: LookupKind,
        purpose: LookupFor,
        skip: Vec<PeerId>,
    ) {
        let seeds = self.table.closest(&target, K);
        // Joining fills the table from the K closest; records live on the closest few.
        let want = match purpose {
            LookupFor::Join => K,
            LookupFor::Provide { .. } | LookupFor::Negotiator { .. } => {
                self.config.provider_replicas
            }
        };
        let lookup = Lookup::new(target, kind, ctx.me(), seeds, want).skipping(skip);
        let id = self.next_lookup;
        self.next_lookup += 1;
        self.lookups.insert(id, (lookup, purpose));
        self.advance(ctx, id);
    }

    /// Takes an answer (or a failure) from `from` into lookup `id`, then goes on.
    fn lookup_step(
        &mut self,
        ctx: &mut Context<'_>,
        id: u64,
        from: PeerId,
        answer: Option<Response>,
    ) {
        if !self.lookups.contains_key(&id) {
            return;
        }
        let named = match answer {
            Some(Response::Route(RouteResponse::Nodes { peers })) => Some((peers, Vec::new())),
            Some(Response::Route(RouteResponse::Providers { providers, closer })) => {
                Some((closer, providers))
            }
            _ => None,
        };
        if let Some((closer, providers)) = &named {
            // Everyone named is worth knowing (and the host needs their addresses); a peer
            // this lookup was already told of was learned then.
            let new: Vec<Contact> = match self.lookups.get(&id) {
                Some((lookup, _)) => closer
                    .iter()
                    .take(K)
                    .filter(|c| !lookup.knows(&c.id))
                    .chain(providers.iter().take(K))
                    .copied()
                    .collect(),
                None => Vec::new(),
            };
            for contact in new {
                self.learn(ctx, contact, false);
            }
        }
        let Some((lookup, _)) = self.lookups.get_mut(&id) else {
            return;
        };
        match named {
            Some((closer, providers)) => lookup.answered(from, closer, providers),
            None => lookup.failed(from),
        }
        self.advance(ctx, id);
    }

    /// Sends a lookup's next queries, or finishes it.
    fn advance(&mut self, ctx: &mut Context<'_>, id: u64) {
        let Some((lookup, purpose)) = self.lookups.get_mut(&id) else {
            return;
        };
        let queries = lookup.next_queries();
        let request = match lookup.kind {
            LookupKind::Nodes => RouteRequest::FindNode {
                target: PeerId(lookup.target),
            },
            LookupKind::Providers => RouteRequest::GetProviders {
                key: ChunkId(lookup.target),
            },
        };
        if queries.is_empty() && lookup.is_done() {
            let purpose = *purpose;
            if let Some((lookup, _)) = self.lookups.remove(&id) {
                self.finish_lookup(ctx, lookup, purpose);
            }
            return;
        }
        for contact in queries {
            let body = Request::Route(request.clone());
            self.send(ctx, contact.id, body, ActorKind::Transport, id);
        }
    }

    fn finish_lookup(&mut self, ctx: &mut Context<'_>, lookup: Lookup, purpose: LookupFor) {
        match purpose {
            LookupFor::Negotiator { tag, key } => {
                let hops = lookup.hops.unwrap_or(0);
                let providers = lookup.into_providers();
                ctx.event(Event::LookupDone {
                    key,
                    found: !providers.is_empty(),
                    hops,
                });
                ctx.local(ActorKind::Negotiator, Local::Found { tag, providers });
            }
            LookupFor::Provide { key } => {
                let request = Request::Route(RouteRequest::AddProvider {
                    key,
                    addr: self.config.listen,
                });
                for contact in lookup.closest_answered(self.config.provider_replicas) {
                    self.send(ctx, contact.id, request.clone(), ActorKind::Transport, 0);
                }
                self.announcing = self.announcing.saturating_sub(1);
                self.announce_next(ctx);
            }
            LookupFor::Join => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::kernel::{ChainResponse, Outbox, Payload};

    const ME: PeerId = PeerId([0; 32]);

    struct One {
        transport: Transport,
        rng: ChaCha8Rng,
    }

    impl One {
        fn new() -> One {
            let config = KernelConfig {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 1))),
                ..KernelConfig::default()
            };
            One {
                transport: Transport::new(config, ME, crate::store::Store::memory()),
                rng: ChaCha8Rng::seed_from_u64(3),
            }
        }

        fn wire(&mut self, from: PeerId, frame: Frame) -> Outbox {
            self.input(Input::Wire { from, frame })
        }

        fn input(&mut self, input: Input) -> Outbox {
            let mut out = Outbox::default();
            let mut ctx = Context::new(Time(0), ME, ActorKind::Transport, &mut self.rng, &mut out);
            self.transport.handle(&mut ctx, input);
            out
        }
    }

    fn peer(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    fn hello(id: u64, port: Option<u16>) -> Frame {
        Frame::Request {
            id,
            body: Request::Route(RouteRequest::Hello {
                listen: port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
            }),
        }
    }

    #[test]
    fn a_welcome_names_distinct_addressed_peers_never_the_requester_nor_the_banned() {
        let mut one = One::new();
        for n in 1..=5 {
            one.wire(peer(n), hello(1, Some(1000 + u16::from(n))));
        }
        // Known, but with no address.
        one.wire(peer(6), hello(1, None));
        // Breaks the protocol: an answer to a request never made.
        let stray = Frame::Response {
            id: u64::MAX,
            body: Response::Chain(ChainResponse::Noted),
        };
        assert_eq!(one.wire(peer(3), stray).effects().disconnects, [peer(3)]);
        for _ in 0..20 {
            let mut out = one.wire(peer(2), hello(7, Some(1002)));
            let [(to, Frame::Response { id: 7, body })] = &out.effects().wire[..] else {
                panic!("no single answer");
            };
            assert_eq!(*to, peer(2));
            let Response::Route(RouteResponse::Welcome { peers }) = body else {
                panic!("not a Welcome: {body:?}");
            };
            let mut ids: Vec<PeerId> = peers.iter().map(|c| c.id).collect();
            ids.sort();
            assert_eq!(ids, [peer(1), peer(4), peer(5)]);
            assert!(peers.iter().all(|c| c.addr.is_some()));
        }
    }

    /// A `Store` frame of `payload_len` payload bytes with request id 1: its plaintext is
    /// 41 + `payload_len` bytes (for a payload of 16,384 bytes or more).
    fn store(payload_len: usize) -> Frame {
        Frame::Request {
            id: 1,
            body: Request::Store(StoreRequest::Store {
                chunk: ChunkId([7; 32]),
                payload: Payload::Bytes(vec![1; payload_len]),
                announce: false,
            }),
        }
    }

    #[test]
    fn the_frame_limit_counts_the_real_encoding() {
        let max = KernelConfig::default().frame_bytes_max;
        let at_limit = store(max as usize - 41);
        assert_eq!(crate::wire::codec::plaintext_len(&at_limit).unwrap(), max);
        // The estimate puts it over; the real length is within the limit.
        assert!(at_limit.encoded_len() > max);
        let mut one = One::new();
        let mut out = one.wire(peer(1), at_limit);
        assert!(out.effects().disconnects.is_empty());
        assert!(out
            .local
            .iter()
            .any(|m| matches!(m, (ActorKind::Store, Local::Incoming { .. }))));
        let mut out = one.wire(peer(1), store(max as usize - 40));
        assert_eq!(out.effects().disconnects, [peer(1)]);
    }

    #[test]
    fn a_provider_names_itself_first_then_the_records_it_keeps() {
        let config = KernelConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 1))),
            lookups: true,
            ..KernelConfig::default()
        };
        let mut one = One {
            transport: Transport::new(config, ME, crate::store::Store::memory()),
            rng: ChaCha8Rng::seed_from_u64(3),
        };
        let key = ChunkId([9; 32]);
        let ask = |id| Frame::Request {
            id,
            body: Request::Route(RouteRequest::GetProviders { key }),
        };
        let providers = |out: &mut Outbox| -> Vec<Contact> {
            let wire = out.effects().wire.clone();
            let [(_, Frame::Response { body, .. })] = &wire[..] else {
                panic!("no single answer: {wire:?}");
            };
            let Response::Route(RouteResponse::Providers { providers, .. }) = body else {
                panic!("not Providers: {body:?}");
            };
            providers.clone()
        };
        let add = Frame::Request {
            id: 1,
            body: Request::Route(RouteRequest::AddProvider {
                key,
                addr: Some(SocketAddr::from(([127, 0, 0, 1], 1005))),
            }),
        };
        one.wire(peer(5), add);
        let named: Vec<PeerId> = providers(&mut one.wire(peer(2), ask(2)))
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(named, [peer(5)], "not a provider yet: only the record");
        one.input(Input::Local(Local::Provide { key }));
        let named = providers(&mut one.wire(peer(2), ask(3)));
        assert_eq!(named[0].id, ME);
        assert_eq!(named[0].addr, Some(SocketAddr::from(([127, 0, 0, 1], 1))));
        assert_eq!(named[1].id, peer(5));
        assert_eq!(named.len(), 2);
    }
}
