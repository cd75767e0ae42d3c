//! The actix actors of the negotiator and the reputation filter (each on its own arbiter
//! thread, so that neither placement work nor graph work delays frames) and of the store (on
//! a `SyncArbiter` thread, for its blocking RocksDB I/O; its timers are set on the runtime,
//! as every actor's are). Each owns one kernel actor and steps it on every input from its
//! mailbox; none decides anything.

use actix::{Actor, Handler, MessageResult, SyncContext};

use super::mailbox::{Core, Deliver, Inspect, KernelActor, MAILBOX_CAPACITY};
use crate::kernel::reputation::Reputation;
use crate::kernel::storage::StoreActor;
use crate::kernel::trust::Trust;
use crate::kernel::ActorKind;
use crate::store::Store;

/// The negotiator's or the reputation filter's actor.
#[derive(Debug)]
pub struct KernelHost<A> {
    core: Core<A>,
}

impl<A: KernelActor> KernelHost<A> {
    pub fn new(core: Core<A>) -> KernelHost<A> {
        KernelHost { core }
    }
}

impl<A: KernelActor> Actor for KernelHost<A> {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl<A: KernelActor> Handler<Deliver> for KernelHost<A> {
    type Result = ();

    fn handle(&mut self, message: Deliver, _ctx: &mut Self::Context) {
        self.core.shared.routes.taken(A::KIND);
        let effects = self.core.step(message.0);
        debug_assert!(
            effects.wire.is_empty() && effects.dials.is_empty(),
            "only the transport talks to peers"
        );
    }
}

impl<A: KernelActor, R: Send + 'static> Handler<Inspect<A, R>> for KernelHost<A> {
    type Result = MessageResult<Inspect<A, R>>;

    fn handle(&mut self, message: Inspect<A, R>, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(message.run(&self.core.actor))
    }
}

/// Benchmarks only (`node run --bench-filter-load`): on the filter's thread, a graph of its
/// own (never the filter's: no score of a real peer moves) takes these services and
/// recomputes every score from this node's position, as the filter does when chains arrive.
/// Answers the graph and the time the pass took.
#[derive(Debug, actix::Message)]
#[rtype(result = "(Box<Trust>, std::time::Duration)")]
pub struct FilterLoad {
    pub graph: Box<Trust>,
    pub records: Vec<crate::chain::Record>,
}

impl Handler<FilterLoad> for KernelHost<Reputation> {
    type Result = MessageResult<FilterLoad>;

    fn handle(&mut self, message: FilterLoad, _ctx: &mut Self::Context) -> Self::Result {
        let started = std::time::Instant::now();
        let FilterLoad { mut graph, records } = message;
        for record in &records {
            graph.add(record);
        }
        graph.recompute(self.core.me(), self.core.shared.now(), &|_| 0.5);
        MessageResult((graph, started.elapsed()))
    }
}

/// The store's actor, on its own thread.
#[derive(Debug)]
pub struct StoreHost {
    /// Flushed at shutdown. Declared first, so dropped first: the core's `alive` handle
    /// goes only after it, and the node's main thread cannot exit while RocksDB is still
    /// closing here (an exit racing that close aborts with "pthread lock: Invalid
    /// argument", seen once in `tests/restart.rs`).
    store: Store,
    core: Core<StoreActor>,
}

impl StoreHost {
    pub fn new(core: Core<StoreActor>, store: Store) -> StoreHost {
        StoreHost { core, store }
    }
}

impl Actor for StoreHost {
    type Context = SyncContext<Self>;
}

impl Handler<Deliver> for StoreHost {
    type Result = ();

    fn handle(&mut self, message: Deliver, _ctx: &mut Self::Context) {
        self.core.shared.routes.taken(ActorKind::Store);
        self.core.step(message.0);
    }
}

impl<R: Send + 'static> Handler<Inspect<StoreActor, R>> for StoreHost {
    type Result = MessageResult<Inspect<StoreActor, R>>;

    fn handle(
        &mut self,
        message: Inspect<StoreActor, R>,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        MessageResult(message.run(&self.core.actor))
    }
}

/// Flush the store and stop the node (after every input already in the store's mailbox).
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for StoreHost {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _ctx: &mut Self::Context) {
        match self.store.flush() {
            Ok(()) => tracing::info!("store flushed; stopping"),
            Err(e) => {
                tracing::error!(%e, "the store could not be flushed");
                *self
                    .core
                    .shared
                    .flush_failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
        }
        actix::System::current().stop();
    }
}
