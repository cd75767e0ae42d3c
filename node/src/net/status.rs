//! What the node shows of itself (`/v1/status`, `/metrics`): the counters its actors'
//! events and its connections keep, fetches the API waits on, and a status gathered from
//! the four actors, each read in its own turn.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::mailbox::{actor_name, Depth, Inspect};
use super::trade::{self, TradeCounts};
use super::Shared;
use crate::ids::ChunkId;
use crate::kernel::negotiator::Negotiator;
use crate::kernel::reputation::Reputation;
use crate::kernel::storage::StoreActor;
use crate::kernel::transport::Transport;
use crate::kernel::Event;

/// Counters and waiters shared by the actor hosts and the API.
#[derive(Debug, Default)]
pub struct NodeState {
    pub connected_peers: AtomicUsize,
    pub protocol_faults: AtomicU64,
    pub frames_dropped: AtomicU64,
    fetches_ok: AtomicU64,
    fetches_failed: AtomicU64,
    replicas_placed: AtomicU64,
    chunks_lost_at_start: AtomicU64,
    fetch_waiters: Mutex<BTreeMap<ChunkId, Vec<oneshot::Sender<bool>>>>,
}

impl NodeState {
    fn waiters(&self) -> std::sync::MutexGuard<'_, BTreeMap<ChunkId, Vec<oneshot::Sender<bool>>>> {
        // A panic while holding the map cannot leave it worse than a waiter short.
        self.fetch_waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the fetch of `root`; `true` with the receiver: no fetch of it was waited on
    /// yet, and the caller asks the negotiator for one.
    pub fn wait_for_fetch(&self, root: ChunkId) -> (bool, oneshot::Receiver<bool>) {
        let (done, receiver) = oneshot::channel();
        let mut waiters = self.waiters();
        let first = !waiters.contains_key(&root);
        waiters.entry(root).or_default().push(done);
        (first, receiver)
    }

    /// What an actor told its host.
    pub fn event(&self, event: Event) {
        match event {
            Event::FetchDone { root, ok, .. } => {
                let counter = if ok {
                    &self.fetches_ok
                } else {
                    &self.fetches_failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                for waiter in self.waiters().remove(&root).unwrap_or_default() {
                    let _ = waiter.send(ok);
                }
                tracing::info!(root = %root, ok, "fetch finished");
            }
            Event::ReplicaPlaced { chunk, holder, .. } => {
                self.replicas_placed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%chunk, ?holder, "replica placed");
            }
            Event::LostAtStart { chunks } => {
                self.chunks_lost_at_start
                    .fetch_add(chunks, Ordering::Relaxed);
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
    /// Each actor's mailbox: inputs waiting now, and the most that ever waited.
    pub mailboxes: BTreeMap<&'static str, Depth>,
}

/// Reads the four actors (at once; each answers in its turn). `None`: the node is stopping.
pub async fn gather(
    shared: &Shared,
    peer: String,
    listen: Option<SocketAddr>,
    replication: usize,
) -> Option<Status> {
    let boxes = shared.routes.mailboxes()?;
    let transport = boxes.transport.send(Inspect::new(|t: &Transport| {
        (
            t.known_peers(),
            t.routing_table_len(),
            t.provider_records(),
            t.in_flight(),
        )
    }));
    let store = boxes
        .store
        .send(Inspect::new(|s: &StoreActor| s.bytes_for_others()));
    let negotiator = boxes.negotiator.send(Inspect::new(move |n: &Negotiator| {
        let (mut owned, mut replicated) = (0, 0);
        for (_, holders) in n.replica_counts() {
            owned += 1;
            replicated += usize::from(holders >= replication);
        }
        (owned, replicated, trade::counts(n))
    }));
    let reputation = boxes.reputation.send(Inspect::new(|r: &Reputation| {
        let chain = r.chains.as_ref().map_or(0, |c| c.own().len() as u64);
        (r.marked(), chain)
    }));
    let (transport, store, negotiator, reputation) =
        tokio::join!(transport, store, negotiator, reputation);
    let (known_peers, routing_table_contacts, provider_records, requests_in_flight) =
        transport.ok()?;
    let (chunks_owned, chunks_replicated, trade) = negotiator.ok()?;
    let (peers_marked, chain_records) = reputation.ok()?;
    let node = &shared.node;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    Some(Status {
        peer,
        listen,
        connected_peers: node.connected_peers.load(Ordering::Relaxed),
        known_peers,
        routing_table_contacts,
        provider_records,
        bytes_held_for_others: store.ok()?,
        chunks_owned,
        chunks_replicated,
        replication,
        replicas_placed: load(&node.replicas_placed),
        chunks_lost_at_start: load(&node.chunks_lost_at_start),
        fetches_ok: load(&node.fetches_ok),
        fetches_failed: load(&node.fetches_failed),
        protocol_faults: load(&node.protocol_faults),
        frames_dropped: load(&node.frames_dropped),
        peers_marked,
        requests_in_flight,
        trade,
        chain_records,
        mailboxes: shared
            .routes
            .depths()
            .into_iter()
            .map(|(kind, depth)| (actor_name(kind), depth))
            .collect(),
    })
}
