//! The transport's actix actor, on the node's main arbiter: it owns the transport and the
//! live connections. It turns connection events and frames into the transport's inputs, and
//! what the transport asks for into frames on connections, dials and disconnects. It
//! decides nothing about storage or trading: that is the actors' business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResult};

use super::conn::{self, LinkHandle};
use super::mailbox::{Core, Deliver, Inspect, MAILBOX_CAPACITY};
use super::Shared;
use crate::kernel::transport::Transport;
use crate::kernel::{ActorKind, Effects, Frame, Input, Link, PeerId, WireFault};

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

#[derive(Debug)]
pub struct TransportHost {
    core: Core<Transport>,
    runtime: tokio::runtime::Handle,
    /// Live connections per peer; frames go out on the newest.
    links: BTreeMap<PeerId, Vec<LinkHandle>>,
    /// Where peers listen, as the transport told us.
    addrs: BTreeMap<PeerId, SocketAddr>,
    /// Peers being dialed: the attempt, and the frames waiting for the connection.
    dialing: BTreeMap<PeerId, (u64, Vec<Frame>)>,
    next_attempt: u64,
}

impl TransportHost {
    pub fn new(core: Core<Transport>, runtime: tokio::runtime::Handle) -> TransportHost {
        TransportHost {
            core,
            runtime,
            links: BTreeMap::new(),
            addrs: BTreeMap::new(),
            dialing: BTreeMap::new(),
            next_attempt: 0,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.core.shared
    }

    /// One connection event or frame was taken from the mailbox.
    fn taken(&self) {
        self.shared().routes.taken(ActorKind::Transport);
    }

    /// The transport handles one input; then its frames go out, and its dials start.
    fn step(&mut self, ctx: &mut Context<Self>, input: Input) {
        let Effects {
            wire,
            dials,
            addresses,
            disconnects,
            ..
        } = self.core.step(input);
        let (wire, dials) = (std::mem::take(wire), std::mem::take(dials));
        let (addresses, disconnects) = (std::mem::take(addresses), std::mem::take(disconnects));
        for (peer, addr) in addresses {
            self.addrs.insert(peer, addr);
        }
        for peer in disconnects {
            tracing::info!(?peer, "dropping the connection to a misbehaving peer");
            self.links.remove(&peer);
        }
        self.count_links();
        for (peer, frame) in wire {
            self.send(ctx, peer, frame);
        }
        for addr in dials {
            let (shared, host) = (self.shared().clone(), ctx.address());
            self.runtime.spawn(conn::dial(addr, None, shared, host));
        }
    }

    fn count_links(&self) {
        let node = &self.shared().node;
        node.connected_peers
            .store(self.links.len(), std::sync::atomic::Ordering::Relaxed);
    }

    fn send(&mut self, ctx: &mut Context<Self>, peer: PeerId, frame: Frame) {
        if let Some(link) = self.links.get(&peer).and_then(|links| links.last()) {
            let charged = frame.encoded_len();
            let queued = link.queued.load(std::sync::atomic::Ordering::Relaxed);
            if queued + charged > LINK_QUEUE_BYTES_MAX {
                let node = &self.core.shared.node;
                node.frames_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            // Nowhere to send it: the transport fails what waits on it, after this step.
            tracing::debug!(?peer, "no address for peer; frame dropped");
            let input = Input::Link(Link::Unreachable { peer });
            self.shared().routes.deliver(ActorKind::Transport, input);
            return;
        };
        self.next_attempt += 1;
        let attempt = self.next_attempt;
        self.dialing.insert(peer, (attempt, vec![frame]));
        let shared = self.shared().clone();
        let expect = conn::DialFor { peer, attempt };
        self.runtime
            .spawn(conn::dial(addr, Some(expect), shared, ctx.address()));
    }
}

impl Actor for TransportHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<Deliver> for TransportHost {
    type Result = ();

    fn handle(&mut self, message: Deliver, ctx: &mut Context<Self>) {
        self.taken();
        self.step(ctx, message.0);
    }
}

impl<R: Send + 'static> Handler<Inspect<Transport, R>> for TransportHost {
    type Result = MessageResult<Inspect<Transport, R>>;

    fn handle(&mut self, message: Inspect<Transport, R>, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(message.run(&self.core.actor))
    }
}

impl Handler<Arrived> for TransportHost {
    type Result = ();

    fn handle(&mut self, message: Arrived, ctx: &mut Context<Self>) {
        self.taken();
        let input = Input::Wire {
            from: message.from,
            frame: message.frame,
        };
        self.step(ctx, input);
    }
}

impl Handler<LinkUp> for TransportHost {
    type Result = ();

    fn handle(&mut self, message: LinkUp, ctx: &mut Context<Self>) {
        self.taken();
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
        self.count_links();
        self.step(ctx, Input::Link(Link::Up { peer, dialed }));
    }
}

impl Handler<LinkEnded> for TransportHost {
    type Result = ();

    fn handle(&mut self, message: LinkEnded, ctx: &mut Context<Self>) {
        self.taken();
        let LinkEnded { peer, conn, fault } = message;
        if let Some(links) = self.links.get_mut(&peer) {
            links.retain(|link| link.conn != conn);
            if links.is_empty() {
                self.links.remove(&peer);
                self.step(ctx, Input::Link(Link::Down { peer }));
            }
        }
        self.count_links();
        if let Some(fault) = fault {
            let node = &self.shared().node;
            node.protocol_faults
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.step(ctx, Input::Link(Link::Broken { peer, fault }));
        }
    }
}

impl Handler<DialEnded> for TransportHost {
    type Result = ();

    fn handle(&mut self, message: DialEnded, ctx: &mut Context<Self>) {
        self.taken();
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
            self.step(ctx, Input::Link(Link::Unreachable { peer }));
        }
    }
}
