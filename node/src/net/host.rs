//! The peer host: an actix actor that owns one [`Peer`] and is its only driver. It turns
//! connection events, frames, timer firings and user commands into kernel inputs, and the
//! outbox into frames on connections, dials, timers and answers to waiting API calls. It
//! decides nothing about storage or trading: that is the actors' business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResult};
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;

use super::conn::{self, LinkHandle};
use super::trade::{self, Economics, TradeConfig, TradeCounts};
use super::Shared;
use crate::ids::ChunkId;
use crate::kernel::content::Content;
use crate::kernel::peer::Peer;
use crate::kernel::{
    ActorKind, Command, Directory, Effects, Event, Frame, Input, KernelConfig, Link, Outbox,
    PeerId, WireFault,
};
use crate::store::Store;

/// Frames kept for a peer while a connection to it is being dialed.
const FRAMES_WAITING_FOR_DIAL_MAX: usize = 4_096;
/// Bytes queued on one connection and not yet written; past this, frames for the peer are
/// dropped (as a congested network would), and the transport's timeouts take over.
const LINK_QUEUE_BYTES_MAX: u64 = 16 << 20;
/// Connections kept to one peer (two peers that dial each other at once have two).
const LINKS_PER_PEER_MAX: usize = 4;

/// A frame from a connected peer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Arrived {
    pub from: PeerId,
    pub frame: Frame,
    /// Held until the frame is handled: it bounds the frames a connection has waiting here.
    pub _permit: tokio::sync::OwnedSemaphorePermit,
}

/// A connection finished its handshake.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LinkUp {
    pub peer: PeerId,
    pub dialed: Option<SocketAddr>,
    pub handle: LinkHandle,
}

/// A connection ended (`fault`: the peer broke the protocol).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LinkEnded {
    pub peer: PeerId,
    pub conn: u64,
    pub fault: Option<WireFault>,
}

/// A dial failed, or reached someone other than `expect` (`wrong_peer`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DialEnded {
    pub addr: SocketAddr,
    pub expect: Option<conn::DialFor>,
    pub wrong_peer: bool,
}

/// Replicate a tree already in our store.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub root: ChunkId,
    pub chunks: Vec<ChunkId>,
    pub bytes: u64,
}

/// A tree is now whole (and pinned) in our store: the store actor has it announced.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Announce {
    pub root: ChunkId,
}

/// Fetch a tree into our store; the receiver says whether it worked.
#[derive(Debug, Message)]
#[rtype(result = "oneshot::Receiver<bool>")]
pub struct FetchTree {
    pub root: ChunkId,
}

/// What `/v1/status` and `/metrics` show.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub peer: String,
    pub listen: Option<SocketAddr>,
    pub connected_peers: usize,
    pub known_peers: usize,
    /// Contacts in the Kademlia routing table.
    pub routing_table_contacts: usize,
    /// Provider records kept for others.
    pub provider_records: usize,
    pub bytes_held_for_others: u64,
    pub chunks_owned: usize,
    /// Our chunks with at least `replication` holders.
    pub chunks_replicated: usize,
    pub replication: usize,
    pub replicas_placed: u64,
    /// Chunks held for others that were missing from the disk at this run's start (their
    /// owners were told).
    pub chunks_lost_at_start: u64,
    pub fetches_ok: u64,
    pub fetches_failed: u64,
    pub protocol_faults: u64,
    /// Frames dropped because a connection's send queue was full.
    pub frames_dropped: u64,
    /// Peers the reputation filter has seen misbehaving.
    pub peers_marked: usize,
    pub requests_in_flight: usize,
    /// Contracts, ledgers, disqualified peers and audit results (`/v1/contracts` has them
    /// per peer).
    #[serde(flatten)]
    pub trade: TradeCounts,
    /// Records on this node's own chain.
    pub chain_records: u64,
}

#[derive(Debug, Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// What `/v1/peers` shows.
#[derive(Debug, Message)]
#[rtype(result = "super::peers::PeersView")]
pub struct GetPeers;

/// What `/v1/contracts` shows.
#[derive(Debug, Message)]
#[rtype(result = "Economics")]
pub struct GetContracts;

/// Up to `limit` records of this node's own chain from position `from` (1 is the first).
#[derive(Debug, Message)]
#[rtype(result = "ChainPage")]
pub struct GetChain {
    pub from: u64,
    pub limit: usize,
}

/// A page of this node's own chain.
#[derive(Debug, Clone)]
pub struct ChainPage {
    /// This node's peer id.
    pub owner: String,
    /// Records on the chain in all.
    pub length: u64,
    pub records: Vec<crate::chain::Record>,
}

/// Flush the store and stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

#[derive(Debug)]
pub struct PeerHost {
    peer: Peer,
    store: Store,
    rng: ChaCha8Rng,
    out: Outbox,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    replication: usize,
    listen: Option<SocketAddr>,
    /// Live connections per peer; frames go out on the newest.
    links: BTreeMap<PeerId, Vec<LinkHandle>>,
    /// Where peers listen, as the transport told us.
    addrs: BTreeMap<PeerId, SocketAddr>,
    /// Peers being dialed: the attempt, and the frames waiting for the connection.
    dialing: BTreeMap<PeerId, (u64, Vec<Frame>)>,
    next_attempt: u64,
    /// Frames dropped because a connection's queue was full.
    frames_dropped: u64,
    fetch_waiters: BTreeMap<ChunkId, Vec<oneshot::Sender<bool>>>,
    status: Status,
    /// Our own address, for the connection tasks we start.
    address: Option<actix::Addr<PeerHost>>,
    /// The peers the transport starts with (none: a node bootstraps from addresses).
    directory: Directory,
    /// The strategy and economy the peer was configured with, for `/v1/contracts`.
    trade: TradeConfig,
}

impl PeerHost {
    pub fn new(
        peer: Peer,
        store: Store,
        rng: ChaCha8Rng,
        shared: Arc<Shared>,
        runtime: tokio::runtime::Handle,
        config: &KernelConfig,
    ) -> PeerHost {
        let (replication, listen) = (config.replication, config.listen);
        let status = Status {
            peer: crate::ids::encode_base32(&peer.id().0),
            listen,
            connected_peers: 0,
            known_peers: 0,
            routing_table_contacts: 0,
            provider_records: 0,
            bytes_held_for_others: 0,
            chunks_owned: 0,
            chunks_replicated: 0,
            replication,
            replicas_placed: 0,
            chunks_lost_at_start: 0,
            fetches_ok: 0,
            fetches_failed: 0,
            protocol_faults: 0,
            frames_dropped: 0,
            peers_marked: 0,
            requests_in_flight: 0,
            trade: TradeCounts::default(),
            chain_records: 0,
        };
        PeerHost {
            peer,
            store,
            rng,
            out: Outbox::default(),
            shared,
            runtime,
            replication,
            listen,
            links: BTreeMap::new(),
            addrs: BTreeMap::new(),
            dialing: BTreeMap::new(),
            next_attempt: 0,
            frames_dropped: 0,
            fetch_waiters: BTreeMap::new(),
            status,
            address: None,
            directory: Directory::from(Vec::new()),
            trade: TradeConfig::of(config),
        }
    }

    fn own_chain(&self) -> &[crate::chain::Record] {
        self.peer
            .reputation
            .chains
            .as_ref()
            .map_or(&[], |chains| chains.own())
    }

    /// Delivers one input to one actor, then carries out everything the step asked for.
    fn step(&mut self, ctx: &mut Context<Self>, actor: ActorKind, input: Input) {
        let now = self.shared.now();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.peer.step(actor, input, now, &mut self.rng, &mut out);
        self.carry_out(ctx, &mut out);
        self.out = out;
    }

    fn carry_out(&mut self, ctx: &mut Context<Self>, out: &mut Outbox) {
        let now = self.shared.now();
        let Effects {
            wire,
            timers,
            events,
            trace,
            dials,
            addresses,
            disconnects,
        } = out.effects();
        // The node keeps no trace digest: that is the simulator's.
        trace.clear();
        for (peer, addr) in addresses.drain(..) {
            self.addrs.insert(peer, addr);
        }
        for peer in disconnects.drain(..) {
            tracing::info!(?peer, "dropping the connection to a misbehaving peer");
            self.links.remove(&peer);
        }
        for (peer, frame) in wire.drain(..) {
            self.send(ctx, peer, frame);
        }
        for addr in dials.drain(..) {
            let (shared, host) = (self.shared.clone(), ctx.address());
            self.runtime.spawn(conn::dial(addr, None, shared, host));
        }
        for (actor, at, token) in timers.drain(..) {
            let after = Duration::from_micros(at.since(now));
            ctx.run_later(after, move |host, ctx| {
                host.step(ctx, actor, Input::Timer { token })
            });
        }
        for event in events.drain(..) {
            self.event(event);
        }
    }

    fn send(&mut self, ctx: &mut Context<Self>, peer: PeerId, frame: Frame) {
        if let Some(link) = self.links.get(&peer).and_then(|links| links.last()) {
            let charged = frame.encoded_len();
            let queued = link.queued.load(std::sync::atomic::Ordering::Relaxed);
            if queued + charged > LINK_QUEUE_BYTES_MAX {
                self.frames_dropped += 1;
                tracing::debug!(?peer, queued, "connection queue full; frame dropped");
                return;
            }
            link.queued
                .fetch_add(charged, std::sync::atomic::Ordering::Relaxed);
            // A closed connection reports its end; until then the frame is lost like any
            // frame on a failing link, and the transport's timeout handles it.
            let _ = link.frames.send((frame, charged));
            return;
        }
        if let Some((_, waiting)) = self.dialing.get_mut(&peer) {
            if waiting.len() < FRAMES_WAITING_FOR_DIAL_MAX {
                waiting.push(frame);
            }
            return;
        }
        let Some(addr) = self.addrs.get(&peer).copied() else {
            // Nowhere to send it: the transport fails what waits on it.
            tracing::debug!(?peer, "no address for peer; frame dropped");
            let input = Input::Link(Link::Unreachable { peer });
            ctx.notify(Unreachable(input));
            return;
        };
        self.next_attempt += 1;
        let attempt = self.next_attempt;
        self.dialing.insert(peer, (attempt, vec![frame]));
        let host = self.address.clone();
        if let Some(host) = host {
            let shared = self.shared.clone();
            let expect = conn::DialFor { peer, attempt };
            self.runtime
                .spawn(conn::dial(addr, Some(expect), shared, host));
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::FetchDone { root, ok, .. } => {
                if ok {
                    self.status.fetches_ok += 1;
                } else {
                    self.status.fetches_failed += 1;
                }
                for waiter in self.fetch_waiters.remove(&root).unwrap_or_default() {
                    let _ = waiter.send(ok);
                }
                tracing::info!(root = %root, ok, "fetch finished");
            }
            Event::ReplicaPlaced { chunk, holder, .. } => {
                self.status.replicas_placed += 1;
                tracing::debug!(%chunk, ?holder, "replica placed");
            }
            Event::LostAtStart { chunks } => {
                self.status.chunks_lost_at_start += chunks;
                tracing::warn!(
                    chunks,
                    "chunks held for other peers were missing from the disk at start; their owners are told"
                );
            }
            Event::Published { root, bytes, .. } => {
                tracing::info!(%root, bytes, "published; placing replicas");
            }
            _ => {}
        }
    }
}

impl Actor for PeerHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.address = Some(ctx.address());
        let now = self.shared.now();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.peer
            .start(now, self.directory.clone(), &mut self.rng, &mut out);
        self.carry_out(ctx, &mut out);
        self.out = out;
        tracing::info!(peer = %self.status.peer, listen = ?self.listen, "peer started");
    }
}

impl Handler<Arrived> for PeerHost {
    type Result = ();

    fn handle(&mut self, message: Arrived, ctx: &mut Context<Self>) {
        let input = Input::Wire {
            from: message.from,
            frame: message.frame,
        };
        self.step(ctx, ActorKind::Transport, input);
    }
}

impl Handler<LinkUp> for PeerHost {
    type Result = ();

    fn handle(&mut self, message: LinkUp, ctx: &mut Context<Self>) {
        let LinkUp {
            peer,
            dialed,
            handle,
        } = message;
        for frame in self
            .dialing
            .remove(&peer)
            .map(|(_, f)| f)
            .unwrap_or_default()
        {
            let charged = frame.encoded_len();
            handle
                .queued
                .fetch_add(charged, std::sync::atomic::Ordering::Relaxed);
            let _ = handle.frames.send((frame, charged));
        }
        let links = self.links.entry(peer).or_default();
        if links.len() >= LINKS_PER_PEER_MAX {
            // The oldest goes (its queued frames are still written).
            links.remove(0);
        }
        links.push(handle);
        self.status.connected_peers = self.links.len();
        self.step(
            ctx,
            ActorKind::Transport,
            Input::Link(Link::Up { peer, dialed }),
        );
    }
}

impl Handler<LinkEnded> for PeerHost {
    type Result = ();

    fn handle(&mut self, message: LinkEnded, ctx: &mut Context<Self>) {
        let LinkEnded { peer, conn, fault } = message;
        if let Some(links) = self.links.get_mut(&peer) {
            links.retain(|link| link.conn != conn);
            if links.is_empty() {
                self.links.remove(&peer);
                self.step(ctx, ActorKind::Transport, Input::Link(Link::Down { peer }));
            }
        }
        self.status.connected_peers = self.links.len();
        if let Some(fault) = fault {
            self.status.protocol_faults += 1;
            let input = Input::Link(Link::Broken { peer, fault });
            self.step(ctx, ActorKind::Transport, input);
        }
    }
}

impl Handler<DialEnded> for PeerHost {
    type Result = ();

    fn handle(&mut self, message: DialEnded, ctx: &mut Context<Self>) {
        let Some(conn::DialFor { peer, attempt }) = message.expect else {
            return;
        };
        if message.wrong_peer && self.addrs.get(&peer) == Some(&message.addr) {
            // Someone else listens there: that address is no way to reach the peer.
            self.addrs.remove(&peer);
        }
        // Only the attempt still waiting counts; a later dial has its own.
        if self.dialing.get(&peer).map(|(a, _)| *a) != Some(attempt) {
            return;
        }
        self.dialing.remove(&peer);
        if !self.links.contains_key(&peer) {
            // The frames are lost; the transport fails their requests.
            let input = Input::Link(Link::Unreachable { peer });
            self.step(ctx, ActorKind::Transport, input);
        }
    }
}

/// Delivered to ourselves after the current step, so a step never nests in another.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Unreachable(Input);

impl Handler<Unreachable> for PeerHost {
    type Result = ();

    fn handle(&mut self, message: Unreachable, ctx: &mut Context<Self>) {
        self.step(ctx, ActorKind::Transport, message.0);
    }
}

impl Handler<Publish> for PeerHost {
    type Result = ();

    fn handle(&mut self, message: Publish, ctx: &mut Context<Self>) {
        let content = Content::Stored {
            root: message.root,
            chunks: message.chunks,
            bytes: message.bytes,
        };
        let command = Input::Command(Command::Publish { content });
        self.step(ctx, ActorKind::Negotiator, command);
        let announce = Input::Command(Command::Announce { root: message.root });
        self.step(ctx, ActorKind::Store, announce);
    }
}

impl Handler<Announce> for PeerHost {
    type Result = ();

    fn handle(&mut self, message: Announce, ctx: &mut Context<Self>) {
        let announce = Input::Command(Command::Announce { root: message.root });
        self.step(ctx, ActorKind::Store, announce);
    }
}

impl Handler<FetchTree> for PeerHost {
    type Result = MessageResult<FetchTree>;

    fn handle(&mut self, message: FetchTree, ctx: &mut Context<Self>) -> Self::Result {
        let (done, receiver) = oneshot::channel();
        let first = !self.fetch_waiters.contains_key(&message.root);
        self.fetch_waiters
            .entry(message.root)
            .or_default()
            .push(done);
        if first {
            let command = Input::Command(Command::Fetch { root: message.root });
            self.step(ctx, ActorKind::Negotiator, command);
        }
        MessageResult(receiver)
    }
}

impl Handler<GetStatus> for PeerHost {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        let mut status = self.status.clone();
        status.known_peers = self.peer.transport.known_peers();
        status.routing_table_contacts = self.peer.transport.routing_table_len();
        status.provider_records = self.peer.transport.provider_records();
        status.requests_in_flight = self.peer.transport.in_flight();
        status.peers_marked = self.peer.reputation.marked();
        status.frames_dropped = self.frames_dropped;
        status.bytes_held_for_others = self.peer.store.bytes_for_others();
        let (mut owned, mut replicated) = (0, 0);
        for (_, holders) in self.peer.negotiator.replica_counts() {
            owned += 1;
            if holders >= self.replication {
                replicated += 1;
            }
        }
        status.chunks_owned = owned;
        status.chunks_replicated = replicated;
        status.trade = trade::counts(&self.peer.negotiator);
        status.chain_records = self.own_chain().len() as u64;
        MessageResult(status)
    }
}

impl Handler<GetContracts> for PeerHost {
    type Result = MessageResult<GetContracts>;

    fn handle(&mut self, _: GetContracts, _ctx: &mut Context<Self>) -> Self::Result {
        let now = self.shared.now();
        let me = self.peer.id();
        MessageResult(trade::economics(
            me,
            &self.peer.negotiator,
            &self.trade,
            now,
        ))
    }
}

impl Handler<GetPeers> for PeerHost {
    type Result = MessageResult<GetPeers>;

    fn handle(&mut self, _: GetPeers, _ctx: &mut Context<Self>) -> Self::Result {
        let now = self.shared.now();
        let me = self.peer.id();
        MessageResult(super::peers::peers(
            me,
            &self.peer.reputation,
            &self.peer.negotiator,
            &self.trade,
            now,
        ))
    }
}

impl Handler<GetChain> for PeerHost {
    type Result = MessageResult<GetChain>;

    fn handle(&mut self, message: GetChain, _ctx: &mut Context<Self>) -> Self::Result {
        let own = self.own_chain();
        let start = usize::try_from(message.from.saturating_sub(1)).unwrap_or(usize::MAX);
        let records = own
            .iter()
            .skip(start)
            .take(message.limit)
            .cloned()
            .collect();
        MessageResult(ChainPage {
            owner: self.status.peer.clone(),
            length: own.len() as u64,
            records,
        })
    }
}

impl Handler<Shutdown> for PeerHost {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        match self.store.flush() {
            Ok(()) => tracing::info!("store flushed; stopping"),
            Err(e) => {
                tracing::error!(%e, "the store could not be flushed");
                *self
                    .shared
                    .flush_failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
        }
        self.links.clear();
        actix::ActorContext::stop(ctx);
        actix::System::current().stop();
    }
}
