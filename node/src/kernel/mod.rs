//! The actor kernel: the one shape every subsystem of a peer has, the messages they
//! exchange, and the [`peer::Peer`] that composes the four actors (transport, store,
//! negotiator, reputation filter).
//!
//! Sans-IO: the current time, randomness, messages, commands and timer firings come in
//! through a [`Context`]; messages, timer requests and events go out through it. No actor
//! reads a clock, draws from the OS, opens a socket or a file, or spawns. The simulator and
//! (later) the real node host the very same actors.
//!
//! Every actor has the same shape: `handle(&mut self, ctx, input)` for input, getters for
//! state the host may observe, and nothing else.

pub mod chains;
pub mod content;
pub mod harness;
pub mod msg;
pub mod negotiator;
pub mod peer;
pub mod reputation;
pub mod routing;
pub mod saved;
pub mod storage;
pub mod strategy;
pub mod transport;
pub mod trust;

use std::fmt;
use std::net::SocketAddr;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ids::ChunkId;

pub use msg::{
    ChainRequest, ChainResponse, Challenge, Frame, Refusal, Request, Response, RouteRequest,
    RouteResponse, StoreRequest, StoreResponse, Terms, TradeRequest, TradeResponse,
    FRAME_HEADER_BYTES,
};

/// Virtual or real time, in microseconds since the host started.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

impl Time {
    pub const MILLISECOND: u64 = 1_000;
    pub const SECOND: u64 = 1_000_000;
    pub const HOUR: u64 = 3_600 * Time::SECOND;
    pub const DAY: u64 = 24 * Time::HOUR;

    pub fn micros(self) -> u64 {
        self.0
    }

    pub fn plus(self, micros: u64) -> Time {
        Time(self.0.saturating_add(micros))
    }

    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.0 as f64 / Time::SECOND as f64)
    }
}

/// A peer's identity on the network: its ed25519 public key. Peers are placed on a ring by
/// this value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerId(pub [u8; 32]);

impl Ord for PeerId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        crate::ids::cmp32(&self.0, &other.0)
    }
}

impl PartialOrd for PeerId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A peer and, when it listens for connections, the address it listens on. (Simulated peers
/// have no addresses: the simulator routes by id.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Contact {
    pub id: PeerId,
    pub addr: Option<SocketAddr>,
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Peer({:02x}{:02x}{:02x}{:02x})",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The four actors of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ActorKind {
    Transport = 0,
    Store = 1,
    Negotiator = 2,
    Reputation = 3,
}

/// A chunk's payload as it travels and is stored: real bytes (perhaps already hashed by the
/// host), or (in the simulator) a synthetic stand-in of a given length whose bytes are never
/// materialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Bytes(Vec<u8>),
    Hashed(HashedBytes),
    Synthetic { len: u32, seed: u64 },
}

/// Real bytes and their SHA-256, computed when they were made (a host hashes what arrives on
/// its connections' threads, so the actors need not hash it again on theirs). The only way
/// to make one computes the hash, so `id` is always the id of `bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedBytes {
    bytes: Vec<u8>,
    id: ChunkId,
}

impl HashedBytes {
    pub fn new(bytes: Vec<u8>) -> HashedBytes {
        let id = crate::object::crypto::chunk_id(&bytes);
        HashedBytes { bytes, id }
    }

    /// SHA-256 of the bytes.
    pub fn id(&self) -> ChunkId {
        self.id
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Payload {
    /// Bytes this payload stands for.
    pub fn len(&self) -> u64 {
        match self {
            Payload::Bytes(bytes) => bytes.len() as u64,
            Payload::Hashed(hashed) => hashed.bytes.len() as u64,
            Payload::Synthetic { len, .. } => u64::from(*len),
        }
    }

    /// The real bytes, if any.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::Bytes(bytes) => Some(bytes),
            Payload::Hashed(hashed) => Some(hashed.bytes()),
            Payload::Synthetic { .. } => None,
        }
    }

    /// Hashes real bytes now (a host does this off the actors' thread).
    pub fn hash_ahead(self) -> Payload {
        match self {
            Payload::Bytes(bytes) => Payload::Hashed(HashedBytes::new(bytes)),
            other => other,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a request to another peer ended, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered(Response),
    /// No answer after every retry.
    TimedOut,
    /// Never sent: our own limit on requests in flight was reached. It says nothing about
    /// the peer.
    NotSent,
}

/// What a peer's reputation filter is told about another peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// It answered a request.
    Answered,
    /// It did not answer in time.
    TimedOut,
    /// It broke a promise or sent bad data.
    Misbehaved,
}

/// Messages between the actors of one peer.
#[derive(Debug, Clone, PartialEq)]
pub enum Local {
    /// To the transport: send `body` to `to`; answer `reply_to` with `tag`.
    Send {
        to: PeerId,
        body: Request,
        reply_to: ActorKind,
        tag: u64,
    },
    /// From the transport: how the request `tag` ended.
    Done {
        tag: u64,
        from: PeerId,
        outcome: Outcome,
    },
    /// From the transport to the actor that serves it: a request from another peer.
    Incoming {
        from: PeerId,
        id: u64,
        body: Request,
    },
    /// To the transport: answer request `id` of `to`.
    Respond { to: PeerId, id: u64, body: Response },
    /// From the transport: peers that entered the peer table (in one step).
    PeersKnown { peers: Vec<PeerId> },
    /// From the transport: the directory of peers it was started with (sorted).
    Directory { peers: Directory },
    /// From the transport: a connection to `peer` came up (a real host's link), so it is
    /// reachable, whatever its silence before said.
    Reachable { peer: PeerId },
    /// To the reputation filter: something a peer did.
    Observe {
        peer: PeerId,
        observation: Observation,
    },
    /// From the reputation filter: a peer's score moved to another tenth.
    Standing { peer: PeerId, score: f64 },
    /// To the store: keep this chunk as our own (not held for others). The sender has
    /// checked the payload against the id.
    KeepOwn { chunk: ChunkId, payload: Payload },
    /// To the reputation filter: we were served (as requester) by `peer`; to be recorded on
    /// both chains, with its quantities.
    Served {
        peer: PeerId,
        service: crate::chain::Service,
        bytes: u64,
        creds: u64,
        seconds: u64,
    },
    /// From the negotiator to the store: what `peer` may use here (storage held for it, and
    /// bytes served to it in all).
    Grant {
        peer: PeerId,
        quota_bytes: u64,
        serve_until_bytes: u64,
    },
    /// From the negotiator to the store: what a peer with no grant (a stranger) may use here,
    /// as the stranger policy now stands.
    Strangers {
        quota_bytes: u64,
        serve_until_bytes: u64,
    },
    /// From the store to the negotiator: what `peer` uses here now.
    Usage {
        peer: PeerId,
        held_bytes: u64,
        served_bytes: u64,
    },
    /// To the store: send back chunk `chunk` under `tag`.
    Read { chunk: ChunkId, tag: u64 },
    /// From the store: the answer to a [`Local::Read`].
    ReadDone {
        tag: u64,
        chunk: ChunkId,
        payload: Option<Payload>,
    },
    /// To the transport: look up the providers of `key`; answer with [`Local::Found`].
    /// Providers in `skip` (tried in vain already) do not end the lookup.
    FindProviders {
        key: ChunkId,
        tag: u64,
        skip: Vec<PeerId>,
    },
    /// From the transport: the providers a lookup found (none: it failed).
    Found { tag: u64, providers: Vec<Contact> },
    /// From the store to the transport: we hold `key`; announce it (and keep announcing).
    Provide { key: ChunkId },
    /// From the store to the transport: we no longer hold `key`; stop announcing it.
    Unprovide { key: ChunkId },
}

impl Local {
    /// A small stable number for the trace digest.
    pub fn kind_code(&self) -> u8 {
        match self {
            Local::Send { .. } => 31,
            Local::Done { .. } => 32,
            Local::Incoming { .. } => 33,
            Local::Respond { .. } => 34,
            Local::PeersKnown { .. } => 35,
            Local::Directory { .. } => 41,
            Local::Observe { .. } => 36,
            Local::Standing { .. } => 37,
            Local::KeepOwn { .. } => 38,
            Local::Read { .. } => 39,
            Local::ReadDone { .. } => 40,
            Local::Served { .. } => 42,
            Local::FindProviders { .. } => 43,
            Local::Found { .. } => 44,
            Local::Provide { .. } => 45,
            Local::Unprovide { .. } => 48,
            Local::Grant { .. } => 46,
            Local::Usage { .. } => 47,
            Local::Strangers { .. } => 49,
            Local::Reachable { .. } => 56,
        }
    }
}

/// What a user (or the simulator's workload) asks of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Publish content; the negotiator places and keeps its replicas.
    Publish { content: content::Content },
    /// Fetch the tree rooted at `root` (its manifest is readable by id alone).
    Fetch { root: ChunkId },
    /// To the store: this peer now holds the whole tree at `root` (published or pinned
    /// here); if its store has it pinned, the transport announces us as a provider.
    Announce { root: ChunkId },
}

/// What an actor reports to its host (for metrics and logs); never read back by actors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Published {
        root: ChunkId,
        /// Every chunk of the tree, root first.
        chunks: Vec<ChunkId>,
        bytes: u64,
    },
    /// This peer now holds (or no longer holds) a chunk.
    Holding { chunk: ChunkId, held: bool },
    FetchDone {
        root: ChunkId,
        ok: bool,
        started: Time,
        bytes: u64,
    },
    /// A record was appended to this peer's own chain.
    ChainAppended { seq: u64 },
    /// Records of other peers' chains checked and believed.
    ChainVerified { records: u64 },
    /// This peer learned that `offender` forked its chain.
    ForkLearned { offender: PeerId },
    /// This peer forked its own chain (an adversary's strategy).
    Forked,
    /// A lookup for the providers of `key` ended; `hops`: the round that found them.
    LookupDone {
        key: ChunkId,
        found: bool,
        hops: u32,
    },
    /// This peer's audits disqualified `holder` (its contracts end, its replicas move).
    Disqualified { holder: PeerId },
    /// This peer said it stored `owner`'s chunk and did not (a silent dropper's strategy).
    Dropped { chunk: ChunkId, owner: PeerId },
    /// At its start, this peer found `chunks` it had held for others missing from its disk
    /// (their owners are told).
    LostAtStart { chunks: u64 },
    /// This peer challenged `holder` to prove it holds `chunk` (an audit).
    Challenged { chunk: ChunkId, holder: PeerId },
    /// A replica of one of our chunks was placed on `holder`.
    ReplicaPlaced {
        chunk: ChunkId,
        holder: PeerId,
        repair: bool,
    },
}

/// A sorted, shared list of peer ids: the directory a peer is bootstrapped with. Shared so
/// that thousands of simulated peers do not each copy it.
pub type Directory = std::sync::Arc<[PeerId]>;

/// Input to an actor.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The peer (re)started; `peers` is the directory it was bootstrapped with.
    Start {
        peers: Directory,
    },
    Local(Local),
    /// A frame from another peer (transport only).
    Wire {
        from: PeerId,
        frame: Frame,
    },
    /// A timer this actor asked for.
    Timer {
        token: u64,
    },
    /// A user's command (negotiator only).
    Command(Command),
    /// A host with real connections reports on one (transport only).
    Link(Link),
}

/// What a host with real connections tells the transport about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// An authenticated connection to `peer` is up; `dialed` is the address we dialed (it is
    /// where the peer listens), `None` when the peer dialed us.
    Up {
        peer: PeerId,
        dialed: Option<SocketAddr>,
    },
    /// The connection to `peer` closed.
    Down { peer: PeerId },
    /// Frames for `peer` cannot be delivered: no connection, and none could be made.
    Unreachable { peer: PeerId },
    /// `peer` broke the protocol (an oversized, truncated or undecodable frame); the host
    /// dropped the connection.
    Broken { peer: PeerId, fault: WireFault },
}

/// How a peer broke the wire protocol, as the host's codec saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFault {
    Oversized,
    Truncated,
    Undecodable,
}

/// What one step asks of its host. A host takes it apart with an exhaustive pattern (no
/// `..`), so that a new kind of effect does not compile until every host handles it.
#[derive(Debug, Default)]
pub struct Effects {
    /// Frames to other peers.
    pub wire: Vec<(PeerId, Frame)>,
    /// Timers: (actor, fire at, token).
    pub timers: Vec<(ActorKind, Time, u64)>,
    pub events: Vec<Event>,
    /// Every input delivered during the step: (actor, message kind code), in order.
    pub trace: Vec<(ActorKind, u8)>,
    /// Addresses to connect to whose peer is not known yet (bootstrap).
    pub dials: Vec<SocketAddr>,
    /// Where peers listen, as learned (hosts with real connections dial these).
    pub addresses: Vec<(PeerId, SocketAddr)>,
    /// Peers whose connection should be dropped (they broke the protocol).
    pub disconnects: Vec<PeerId>,
}

impl Effects {
    pub fn clear(&mut self) {
        let Effects {
            wire,
            timers,
            events,
            trace,
            dials,
            addresses,
            disconnects,
        } = self;
        wire.clear();
        timers.clear();
        events.clear();
        trace.clear();
        dials.clear();
        addresses.clear();
        disconnects.clear();
    }
}

/// What actors emit during a step: the host's [`Effects`], and the messages between sibling
/// actors that [`peer::Peer`] delivers within the step (empty again when the step ends).
#[derive(Debug, Default)]
pub struct Outbox {
    effects: Effects,
    pub(crate) local: std::collections::VecDeque<(ActorKind, Local)>,
}

impl Outbox {
    pub fn clear(&mut self) {
        self.effects.clear();
        self.local.clear();
    }

    /// The effects of the steps since the last [`Outbox::clear`], for the host to carry out.
    pub fn effects(&mut self) -> &mut Effects {
        &mut self.effects
    }
}

/// Everything an actor may touch while it handles one input.
#[derive(Debug)]
pub struct Context<'a> {
    now: Time,
    me: PeerId,
    actor: ActorKind,
    rng: &'a mut ChaCha8Rng,
    out: &'a mut Outbox,
}

impl<'a> Context<'a> {
    pub fn new(
        now: Time,
        me: PeerId,
        actor: ActorKind,
        rng: &'a mut ChaCha8Rng,
        out: &'a mut Outbox,
    ) -> Context<'a> {
        Context {
            now,
            me,
            actor,
            rng,
            out,
        }
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn me(&self) -> PeerId {
        self.me
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Sends a message to a sibling actor.
    pub fn local(&mut self, to: ActorKind, message: Local) {
        self.out.local.push_back((to, message));
    }

    /// Sends a frame to another peer (the transport's privilege).
    pub fn wire(&mut self, to: PeerId, frame: Frame) {
        debug_assert_eq!(
            self.actor,
            ActorKind::Transport,
            "only the transport talks to peers"
        );
        self.out.effects.wire.push((to, frame));
    }

    /// Asks for `Input::Timer { token }` after `after` microseconds.
    pub fn timer(&mut self, after: u64, token: u64) {
        self.out
            .effects
            .timers
            .push((self.actor, self.now.plus(after), token));
    }

    /// Asks the host to connect to `addr` (the transport's privilege).
    pub fn dial(&mut self, addr: SocketAddr) {
        debug_assert_eq!(self.actor, ActorKind::Transport);
        self.out.effects.dials.push(addr);
    }

    /// Tells the host where `peer` listens.
    pub fn address(&mut self, peer: PeerId, addr: SocketAddr) {
        debug_assert_eq!(self.actor, ActorKind::Transport);
        self.out.effects.addresses.push((peer, addr));
    }

    /// Asks the host to drop the connection to `peer`.
    pub fn disconnect(&mut self, peer: PeerId) {
        debug_assert_eq!(self.actor, ActorKind::Transport);
        self.out.effects.disconnects.push(peer);
    }

    /// Tells this peer's reputation filter what `peer` did.
    pub fn observe(&mut self, peer: PeerId, observation: Observation) {
        self.local(ActorKind::Reputation, Local::Observe { peer, observation });
    }

    pub fn event(&mut self, event: Event) {
        self.out.effects.events.push(event);
    }
}

/// Limits and knobs of a peer's actors; every bound has a unit in its name.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelConfig {
    /// How many peers hold each of our chunks (besides us).
    pub replication: usize,
    /// Bytes we keep for other peers.
    pub storage_for_others_bytes: u64,
    /// A request with no answer after this (plus transfer time) is retried or failed.
    pub request_timeout_us: u64,
    /// Assumed transfer rate when stretching timeouts for large frames.
    pub timeout_bytes_per_s: u64,
    pub request_retries_max: u32,
    pub requests_in_flight_max: usize,
    pub peers_max: usize,
    /// Peers named in one Welcome.
    pub welcome_peers_max: usize,
    /// How often we ask a random known peer for more peers.
    pub gossip_interval_us: u64,
    /// How often we check that holders still hold our chunks.
    pub check_interval_us: u64,
    /// A holder unreachable for this long is replaced.
    pub holder_dead_after_us: u64,
    /// Chunks asked about in one Check.
    pub check_chunks_max: usize,
    /// Candidates tried for one placement or fetch, beyond `replication`.
    pub extra_candidates: usize,
    /// Chunk fetches in flight for one tree.
    pub fetch_parallel_max: usize,
    /// Trees being fetched at once.
    pub fetches_max: usize,
    /// Chunks in one tree we accept to fetch.
    pub fetch_chunks_max: usize,
    /// A fetch that fails is tried again (a fresh lookup, then the sources it finds), after
    /// a wait that doubles from [`negotiator::FETCH_RETRY_FIRST_US`] up to
    /// [`negotiator::FETCH_RETRY_MAX_US`], until this long has passed since it began; then it
    /// fails. 0: one attempt (the simulator's default).
    pub fetch_deadline_us: u64,
    /// Largest frame accepted from a peer; a larger one is dropped and its sender marked.
    pub frame_bytes_max: u64,
    /// Accept synthetic payloads (descriptors without bytes): the simulator only.
    pub synthetic_payloads: bool,
    /// Record services on long-chain certificates, one agreement per counterparty and
    /// service kind at most this often; `None`: chains are off.
    pub chain_record_interval_us: Option<u64>,
    /// How often to fetch another peer's chain (checking it for forks).
    pub chain_exchange_interval_us: u64,
    /// The reputation filter over the chains read (needs chains); `None`: scores are direct
    /// experience alone, and the negotiator's stranger policy is fixed.
    pub trust: Option<trust::TrustConfig>,
    /// Records of other peers' chains kept at most (about 330 bytes each in a node; shared
    /// `Arc`s, so a pointer each, where the records came from the simulator's frames).
    pub chain_book_records_max: usize,
    /// Where this peer listens for connections (announced in Hello); `None` in the simulator.
    pub listen: Option<SocketAddr>,
    /// Addresses dialed at start to find the first peers (real hosts).
    pub bootstrap: Vec<SocketAddr>,
    /// Keep the chunks of fetched trees in our store (the node; the simulator only counts).
    pub keep_fetched: bool,
    /// Store requests in flight over all our chunks; more wait their turn (bounds memory).
    pub placements_in_flight_max: usize,
    /// A refusal from a partner this soon after a contract with it was made is not held
    /// against it: in a node the partner's store and negotiator are separate actors, and its
    /// store may take our first requests before it hears of the contract. 0 in the
    /// simulator, whose peers deliver their actors' messages to each other at once.
    pub contract_grace_us: u64,
    /// Kademlia: holders announce tree roots in provider records, and fetches look the
    /// providers up before asking anyone.
    pub lookups: bool,
    /// A provider record lives this long unless renewed...
    pub provider_ttl_us: u64,
    /// ...and providers renew theirs this often.
    pub provider_republish_us: u64,
    /// Provider records kept for others.
    pub provider_records_max: usize,
    /// The closest peers to a key that get each provider record.
    pub provider_replicas: usize,
    /// How this peer trades (altruism, and the adversaries' behaviours).
    pub strategy: strategy::Strategy,
    /// The economy's limits and audit parameters.
    pub economy: strategy::Economy,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            replication: 3,
            storage_for_others_bytes: 10 << 30,
            request_timeout_us: 4 * Time::SECOND,
            timeout_bytes_per_s: 1 << 20,
            request_retries_max: 1,
            requests_in_flight_max: 4096,
            peers_max: 20_000,
            welcome_peers_max: 64,
            gossip_interval_us: 6 * Time::HOUR,
            check_interval_us: 12 * Time::HOUR,
            holder_dead_after_us: 36 * Time::HOUR,
            check_chunks_max: 4096,
            extra_candidates: 3,
            fetch_parallel_max: 4,
            fetches_max: 64,
            fetch_chunks_max: 1 << 16,
            fetch_deadline_us: 0,
            frame_bytes_max: 2 << 20,
            synthetic_payloads: false,
            chain_record_interval_us: None,
            chain_exchange_interval_us: 10 * 60 * Time::SECOND,
            trust: None,
            chain_book_records_max: 65_536,
            listen: None,
            bootstrap: Vec::new(),
            keep_fetched: false,
            placements_in_flight_max: 1 << 11,
            contract_grace_us: 0,
            lookups: false,
            provider_ttl_us: 24 * Time::HOUR,
            provider_republish_us: 12 * Time::HOUR,
            provider_records_max: 1 << 20,
            provider_replicas: 8,
            strategy: strategy::Strategy::default(),
            economy: strategy::Economy::default(),
        }
    }
}
