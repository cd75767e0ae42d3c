//! The mailboxes between the node's four actors: delivery of kernel inputs by actor kind,
//! each mailbox's depth, and the step every actor host takes (its kernel actor handles one
//! input; the local messages it sends go to their actors' mailboxes, its timers are
//! scheduled on the runtime, its events are counted).
//!
//! Bounds: work enters the node at its edges, and is bounded there. A connection has at most
//! [`super::conn::FRAMES_IN_HOST_MAX`] frames in the transport's mailbox, connections are
//! capped by the gate, API requests by `API_REQUESTS_MAX` (each gives at most two
//! commands), and the API's reads of an actor's state wait for room in a mailbox of
//! [`MAILBOX_CAPACITY`] (`Addr::send`; the store's `SyncArbiter` queue has no capacity of
//! its own). Messages from one actor to another, and commands, are never refused, cancelled
//! nor waited on: a refused `KeepOwn` would lose data, a cancelled `Fetch` would leave its
//! waiters waiting, and a cycle of actors each waiting for room in the next would deadlock.
//! Each input causes a bounded number of them (the kernel's fan-out limits), so no mailbox
//! grows past the edges' bounds times that fan-out; `/metrics` shows each depth and the
//! deepest seen.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use actix::{Addr, Message};
use rand_chacha::ChaCha8Rng;

use super::actors::{KernelHost, StoreHost};
use super::host::TransportHost;
use super::Shared;
use crate::kernel::negotiator::Negotiator;
use crate::kernel::reputation::Reputation;
use crate::kernel::storage::StoreActor;
use crate::kernel::transport::Transport;
use crate::kernel::{ActorKind, Context, Effects, Input, Outbox, PeerId};

/// Inputs an API read of an actor's state waits behind in its mailbox (actix's bounded
/// mailbox; messages between actors and commands do not wait, see the module's note).
pub const MAILBOX_CAPACITY: usize = 1_024;

/// The four actors, in the order their depths are listed.
pub const ACTORS: [ActorKind; 4] = [
    ActorKind::Transport,
    ActorKind::Store,
    ActorKind::Negotiator,
    ActorKind::Reputation,
];

pub fn actor_name(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Transport => "transport",
        ActorKind::Store => "store",
        ActorKind::Negotiator => "negotiator",
        ActorKind::Reputation => "reputation",
    }
}

/// A kernel input for the actor whose mailbox it is in.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Input);

/// Reads an actor's state, in its turn (the API's views).
pub struct Inspect<A, R>(Box<dyn FnOnce(&A) -> R + Send>);

impl<A, R> std::fmt::Debug for Inspect<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspect")
    }
}

impl<A, R> Inspect<A, R> {
    pub fn new(read: impl FnOnce(&A) -> R + Send + 'static) -> Inspect<A, R> {
        Inspect(Box::new(read))
    }

    pub fn run(self, actor: &A) -> R {
        (self.0)(actor)
    }
}

impl<A: 'static, R: 'static> Message for Inspect<A, R> {
    type Result = R;
}

/// A kernel actor as a host steps it.
pub trait KernelActor: Send + Unpin + 'static {
    const KIND: ActorKind;
    fn handle(&mut self, ctx: &mut Context<'_>, input: Input);
}

macro_rules! kernel_actor {
    ($actor:ty, $kind:expr) => {
        impl KernelActor for $actor {
            const KIND: ActorKind = $kind;
            fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
                <$actor>::handle(self, ctx, input)
            }
        }
    };
}

kernel_actor!(Transport, ActorKind::Transport);
kernel_actor!(StoreActor, ActorKind::Store);
kernel_actor!(Negotiator, ActorKind::Negotiator);
kernel_actor!(Reputation, ActorKind::Reputation);

/// The actors' addresses.
#[derive(Debug, Clone)]
pub struct Mailboxes {
    pub transport: Addr<TransportHost>,
    pub store: Addr<StoreHost>,
    pub negotiator: Addr<KernelHost<Negotiator>>,
    pub reputation: Addr<KernelHost<Reputation>>,
}

/// One mailbox's depth now and the deepest it has been.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Depth {
    pub depth: usize,
    pub depth_max: usize,
}

/// Where every actor's inputs go, shared by the actors, the connections and the API.
#[derive(Debug, Default)]
pub struct Routes {
    /// Set once, when every actor has started, before any input is delivered.
    boxes: OnceLock<Mailboxes>,
    depth: [AtomicUsize; 4],
    depth_max: [AtomicUsize; 4],
    stopping: AtomicBool,
}

impl Routes {
    /// Sets the addresses (once; a second call is ignored).
    pub fn connect(&self, boxes: Mailboxes) {
        let _ = self.boxes.set(boxes);
    }

    pub fn mailboxes(&self) -> Option<&Mailboxes> {
        self.boxes.get()
    }

    /// One more input is in `to`'s mailbox (counted by whoever puts it there).
    pub fn entered(&self, to: ActorKind) {
        let index = to as usize;
        let depth = self.depth[index].fetch_add(1, Ordering::Relaxed) + 1;
        self.depth_max[index].fetch_max(depth, Ordering::Relaxed);
    }

    /// An actor took one counted input from its mailbox.
    pub fn taken(&self, kind: ActorKind) {
        let _ = self.depth[kind as usize].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
            Some(d.saturating_sub(1))
        });
    }

    /// The node is stopping: from now on no input is delivered, and every actor ignores
    /// what is already in its mailbox.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Puts `input` in `to`'s mailbox without waiting (between actors, timers, and the API's
    /// commands: never cancelled, never refused).
    pub fn deliver(&self, to: ActorKind, input: Input) {
        if self.stopping() {
            return;
        }
        let Some(boxes) = self.boxes.get() else {
            tracing::error!(
                actor = actor_name(to),
                "an input before the actors started; dropped"
            );
            return;
        };
        self.entered(to);
        let deliver = Deliver(input);
        match to {
            ActorKind::Transport => boxes.transport.do_send(deliver),
            ActorKind::Store => boxes.store.do_send(deliver),
            ActorKind::Negotiator => boxes.negotiator.do_send(deliver),
            ActorKind::Reputation => boxes.reputation.do_send(deliver),
        }
    }

    /// Every mailbox's depth, in [`ACTORS`] order.
    pub fn depths(&self) -> [(ActorKind, Depth); 4] {
        ACTORS.map(|kind| {
            let index = kind as usize;
            let depth = Depth {
                depth: self.depth[index].load(Ordering::Relaxed),
                depth_max: self.depth_max[index].load(Ordering::Relaxed),
            };
            (kind, depth)
        })
    }
}

/// What every actor host has: its kernel actor and what stepping it needs.
#[derive(Debug)]
pub struct Core<A> {
    pub actor: A,
    me: PeerId,
    rng: ChaCha8Rng,
    out: Outbox,
    pub shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    /// Dropped with the actor: the node waits for every actor to be gone before it exits,
    /// so that no thread still holds the store when the process ends.
    _alive: std::sync::mpsc::Sender<()>,
}

impl<A: KernelActor> Core<A> {
    pub fn new(
        actor: A,
        me: PeerId,
        rng: ChaCha8Rng,
        shared: Arc<Shared>,
        runtime: tokio::runtime::Handle,
        alive: std::sync::mpsc::Sender<()>,
    ) -> Core<A> {
        Core {
            actor,
            me,
            rng,
            out: Outbox::default(),
            shared,
            runtime,
            _alive: alive,
        }
    }

    pub fn me(&self) -> PeerId {
        self.me
    }

    /// The actor handles `input`; what it sent its siblings is in
    /// their mailboxes, its timers are set and its events counted. Returns what is left
    /// for the host: the transport's frames, dials, addresses and disconnects.
    pub fn step(&mut self, input: Input) -> &mut Effects {
        let now = self.shared.now();
        self.out.clear();
        if self.shared.routes.stopping() {
            // The store is being flushed: nothing more is done.
            return self.out.effects();
        }
        let mut ctx = Context::new(now, self.me, A::KIND, &mut self.rng, &mut self.out);
        self.actor.handle(&mut ctx, input);
        for (to, message) in self.out.local.drain(..) {
            self.shared.routes.deliver(to, Input::Local(message));
        }
        let effects = self.out.effects();
        // The node keeps no trace digest: that is the simulator's.
        effects.trace.clear();
        for (actor, at, token) in effects.timers.drain(..) {
            debug_assert_eq!(actor, A::KIND, "an actor sets only its own timers");
            let after = Duration::from_micros(at.since(now));
            let shared = self.shared.clone();
            self.runtime.spawn(async move {
                tokio::time::sleep(after).await;
                shared.routes.deliver(actor, Input::Timer { token });
            });
        }
        for event in effects.events.drain(..) {
            self.shared.node.event(event);
        }
        effects
    }
}
