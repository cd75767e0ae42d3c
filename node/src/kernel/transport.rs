//! The transport actor: the peer table, request/response with request ids, timeouts and
//! retries, and routing of requests and answers to the sibling actors. It is the only actor
//! that emits frames; the host moves them (over TCP + Noise in the node, through the
//! modelled network in the simulator).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use rand::Rng;

use super::{
    ActorKind, Contact, Context, Directory, Frame, Input, KernelConfig, Link, Local, Observation,
    Outcome, PeerId, Request, Response, Time,
};
use crate::limits::CHUNK_STORED_BYTES_MAX;

/// Timer token of the gossip round (request ids count up from 0 and never reach it).
const GOSSIP_TOKEN: u64 = u64::MAX;
/// Peers greeted when (re)starting.
const HELLOS_ON_START: usize = 3;

#[derive(Debug)]
struct Pending {
    to: PeerId,
    body: Request,
    reply_to: ActorKind,
    tag: u64,
    attempts: u32,
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
    next_id: u64,
    /// The first request id of this run: ids from here to `next_id` were issued.
    first_id: u64,
    /// Where peers listen (real hosts only).
    addrs: BTreeMap<PeerId, SocketAddr>,
    /// Bootstrap addresses dialed and not yet answered with a connection.
    bootstrapping: BTreeSet<SocketAddr>,
}

impl Transport {
    pub fn new(config: KernelConfig) -> Transport {
        Transport {
            config,
            directory: Directory::from(Vec::new()),
            peer_list: Vec::new(),
            peers: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_id: 0,
            first_id: 0,
            addrs: BTreeMap::new(),
            bootstrapping: BTreeSet::new(),
        }
    }

    pub fn known_peers(&self) -> usize {
        self.directory.len() + self.peer_list.len()
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn learn(&mut self, ctx: &mut Context<'_>, Contact { id: peer, addr }: Contact) {
        if peer == ctx.me() {
            return;
        }
        if let Some(addr) = addr {
            if self.addrs.get(&peer) != Some(&addr) && self.addrs.len() < self.config.peers_max {
                self.addrs.insert(peer, addr);
                ctx.address(peer, addr);
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
        ctx.local(ActorKind::Negotiator, Local::PeerKnown { peer });
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
            Request::Fetch { .. } => CHUNK_STORED_BYTES_MAX as u64,
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
        ctx.wire(pending.to, frame);
        ctx.timer(timeout, id);
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
                    outcome: Outcome::TimedOut,
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
            },
        );
        self.transmit(ctx, id);
    }

    fn hello(&self) -> Request {
        Request::Hello {
            listen: self.config.listen,
        }
    }

    fn greet(&mut self, ctx: &mut Context<'_>, count: usize) {
        for _ in 0..count {
            if let Some(peer) = self.random_peer(ctx) {
                self.send(ctx, peer, self.hello(), ActorKind::Transport, 0);
            }
        }
    }

    fn contact(&self, id: PeerId) -> Contact {
        Contact {
            id,
            addr: self.addrs.get(&id).copied(),
        }
    }

    fn link(&mut self, ctx: &mut Context<'_>, link: Link) {
        match link {
            Link::Up { peer, dialed } => {
                self.learn(
                    ctx,
                    Contact {
                        id: peer,
                        addr: dialed,
                    },
                );
                // A bootstrap address answered: introduce ourselves to whoever is there.
                if dialed.is_some_and(|addr| self.bootstrapping.remove(&addr)) {
                    self.send(ctx, peer, self.hello(), ActorKind::Transport, 0);
                }
            }
            Link::Down { .. } => {}
            Link::Broken { peer, .. } => ctx.observe(peer, Observation::Misbehaved),
        }
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        match input {
            Input::Start { peers } => {
                // A restart loses requests in flight; their requesters restarted too. New ids
                // start at a random point so that answers to the old ones, still on their way,
                // cannot match the new requests.
                self.pending.clear();
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
                for addr in self.config.bootstrap.clone() {
                    self.bootstrapping.insert(addr);
                    ctx.dial(addr);
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
                if frame.encoded_len() > self.config.frame_bytes_max {
                    // Oversized: dropped unread, and the sender is marked and cut off.
                    ctx.observe(from, Observation::Misbehaved);
                    ctx.disconnect(from);
                    return;
                }
                let listen = match &frame {
                    Frame::Request {
                        body: Request::Hello { listen },
                        ..
                    } => *listen,
                    _ => None,
                };
                self.learn(
                    ctx,
                    Contact {
                        id: from,
                        addr: listen,
                    },
                );
                match frame {
                    Frame::Request {
                        id,
                        body: Request::Hello { .. },
                    } => {
                        let count = self.config.welcome_peers_max.min(self.known_peers());
                        let mut peers = Vec::with_capacity(count);
                        for _ in 0..count {
                            if let Some(peer) = self.random_peer(ctx) {
                                peers.push(self.contact(peer));
                            }
                        }
                        ctx.wire(
                            from,
                            Frame::Response {
                                id,
                                body: Response::Welcome { peers },
                            },
                        );
                    }
                    Frame::Request { id, body } => {
                        // Chain business goes to the reputation filter, chunks to the store.
                        let to = match body {
                            Request::Agree(_)
                            | Request::Countersign { .. }
                            | Request::ChainRange(_)
                            | Request::Fork(_) => ActorKind::Reputation,
                            _ => ActorKind::Store,
                        };
                        ctx.local(to, Local::Incoming { from, id, body });
                    }
                    Frame::Response { id, body } => self.answered(ctx, from, id, body),
                }
            }
            Input::Timer {
                token: GOSSIP_TOKEN,
            } => {
                self.greet(ctx, 1);
                ctx.timer(self.config.gossip_interval_us, GOSSIP_TOKEN);
            }
            Input::Timer { token } => self.expired(ctx, token),
            Input::Link(link) => self.link(ctx, link),
            Input::Local(_) | Input::Command(_) => {}
        }
    }

    fn answered(&mut self, ctx: &mut Context<'_>, from: PeerId, id: u64, body: Response) {
        if !(self.first_id..self.next_id).contains(&id) {
            // An answer to a request never made: a message of the wrong kind.
            ctx.observe(from, Observation::Misbehaved);
            ctx.disconnect(from);
            return;
        }
        // Only the peer we asked may answer; anything else is late or forged and dropped.
        if self.pending.get(&id).map(|p| p.to) != Some(from) {
            return;
        }
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        if !pending.body.admits(&body) {
            // A message of the wrong kind: the request fails and the peer is dropped.
            ctx.observe(from, Observation::Misbehaved);
            ctx.disconnect(from);
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
        ctx.observe(from, Observation::Answered);
        if let Response::Welcome { peers } = &body {
            for peer in peers.iter().take(self.config.welcome_peers_max) {
                self.learn(ctx, *peer);
            }
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
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        ctx.observe(pending.to, Observation::TimedOut);
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
}
