//! The service graph: who delivered how much to whom, read from verified chains, with
//! exponential decay by age, bounded in nodes and edges.
//!
//! An edge runs from a provider to the peer it served. Each doubly signed service sits on
//! two chains (the provider's half and the requester's half); the edge keeps what each side's
//! chain says and counts the larger, so a service read from both chains counts once and one
//! read from either counts whole. Weights are in byte-days for storage (the creds a
//! `ChunkStored` record carries) and bytes for chunks served; audits answered weigh nothing
//! (they prove storage already counted).
//!
//! **Eviction.** When the graph holds more than its limits, the lightest go first: edges by
//! decayed weight, then nodes by the decayed weight of their edges (ties: seen longest ago,
//! then id). This peer's own node and the nodes `keep` names (its direct partners) are never
//! evicted. How far an evicted owner's chain had been taken in is remembered (bounded), so
//! that a chain still held is not taken in twice.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::chain::{Record, Role, Service};
use crate::kernel::PeerId;

/// A weight that halves every `half_life_us`, as of `at_s` (seconds; compact, since a
/// simulated peer keeps thousands of these).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Decayed {
    value: f32,
    at_s: u32,
}

fn decay(value: f64, elapsed_us: u64, half_life_us: u64) -> f64 {
    // Nothing decays to nothing (an edge read from one side only has a zero other side).
    if elapsed_us == 0 || value == 0.0 {
        return value;
    }
    // libm, not the platform's exp: scores steer decisions, and traces must match everywhere.
    value * libm::exp(-(elapsed_us as f64) / half_life_us.max(1) as f64 * std::f64::consts::LN_2)
}

fn seconds(micros: u64) -> u32 {
    u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX)
}

impl Decayed {
    fn add(&mut self, weight: f64, at_us: u64, half_life_us: u64) {
        let at_s = seconds(at_us);
        let value = f64::from(self.value);
        let elapsed_us = u64::from(at_s.abs_diff(self.at_s)) * 1_000_000;
        let value = if at_s >= self.at_s {
            self.at_s = at_s;
            decay(value, elapsed_us, half_life_us) + weight
        } else {
            value + decay(weight, elapsed_us, half_life_us)
        };
        self.value = value as f32;
    }

    fn at(&self, now_us: u64, half_life_us: u64) -> f64 {
        let elapsed_s = u64::from(seconds(now_us).saturating_sub(self.at_s));
        decay(f64::from(self.value), elapsed_s * 1_000_000, half_life_us)
    }
}

/// One provider → requester edge: what each side's chain says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Edge {
    by_provider: Decayed,
    by_requester: Decayed,
}

impl Edge {
    fn weight(&self, now_us: u64, half_life_us: u64) -> f64 {
        let a = self.by_provider.at(now_us, half_life_us);
        let b = self.by_requester.at(now_us, half_life_us);
        a.max(b)
    }
}

/// What the graph keeps per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    /// Its slot: edges name nodes by slot (4 bytes, not 32).
    slot: u32,
    /// Records of its own chain taken in (its chain is read from here on).
    seen_seq: u64,
    /// Time of the newest service it took part in.
    last_us: u64,
    /// The tenth of its score last told to the negotiator (the reputation actor's).
    reported: Option<u8>,
}

/// The weight a record carries into the graph.
pub fn service_weight(record: &Record) -> f64 {
    match record.tx.service {
        Service::ChunkStored => record.tx.creds as f64,
        Service::ChunkServed | Service::BandwidthGiven | Service::BandwidthReceived => {
            record.tx.bytes as f64
        }
        Service::AuditAnswered => 0.0,
    }
}

/// The bounded graph of services this peer knows of.
#[derive(Debug, Clone)]
pub struct ServiceGraph {
    nodes: BTreeMap<PeerId, Node>,
    /// Slot → peer (`None`: free, reused by the next node).
    slots: Vec<Option<PeerId>>,
    free: Vec<u32>,
    /// (provider slot, requester slot) → edge.
    edges: BTreeMap<(u32, u32), Edge>,
    nodes_max: usize,
    edges_max: usize,
    half_life_us: u64,
    /// Services taken in so far (a computation over an unchanged graph can be skipped).
    pub changes: u64,
    /// How far the chains of evicted owners had been taken in, so that a chain still in the
    /// book is not taken in again (and evicted again) at every computation. Bounded by
    /// `nodes_max`; when full it starts again empty.
    evicted_seen: BTreeMap<PeerId, u64>,
}

/// The graph as petgraph holds it for one computation: nodes in id order, edge weights
/// decayed to one instant.
#[derive(Debug)]
pub struct Snapshot {
    pub graph: DiGraph<PeerId, f64>,
    /// Each node's slot in the [`ServiceGraph`] (`None`: this peer, when it had none).
    pub slots: Vec<Option<u32>>,
}

impl Snapshot {
    /// `peer`'s node, if it is one (nodes are in id order, so a binary search finds it).
    pub fn node(&self, peer: &PeerId) -> Option<NodeIndex> {
        let nodes = self.graph.raw_nodes();
        let at = nodes.partition_point(|n| n.weight < *peer);
        (nodes.get(at).is_some_and(|n| n.weight == *peer)).then(|| NodeIndex::new(at))
    }
}

impl ServiceGraph {
    pub fn new(nodes_max: usize, edges_max: usize, half_life_us: u64) -> ServiceGraph {
        ServiceGraph {
            nodes: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            edges: BTreeMap::new(),
            nodes_max: nodes_max.max(1),
            edges_max: edges_max.max(1),
            half_life_us: half_life_us.max(1),
            changes: 0,
            evicted_seen: BTreeMap::new(),
        }
    }

    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn edges(&self) -> usize {
        self.edges.len()
    }

    /// Every peer the graph holds, in id order.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.nodes.keys().copied()
    }

    /// The tenth of `peer`'s score last told to the negotiator, if the graph holds it.
    pub fn reported_mut(&mut self, peer: &PeerId) -> Option<&mut Option<u8>> {
        self.nodes.get_mut(peer).map(|n| &mut n.reported)
    }

    /// Every node in id order: its peer and its slot.
    pub fn slotted(&self) -> impl Iterator<Item = (PeerId, u32)> + '_ {
        self.nodes.iter().map(|(peer, node)| (*peer, node.slot))
    }

    /// Every node in id order: its peer, its slot, and the tenth of its score last told.
    pub fn nodes_mut(&mut self) -> impl Iterator<Item = (PeerId, u32, &mut Option<u8>)> + '_ {
        self.nodes
            .iter_mut()
            .map(|(peer, node)| (*peer, node.slot, &mut node.reported))
    }

    /// `peer`'s slot, if the graph holds it.
    pub fn slot(&self, peer: &PeerId) -> Option<u32> {
        self.nodes.get(peer).map(|n| n.slot)
    }

    /// Does the graph hold more nodes than its limit (so that [`ServiceGraph::trim`] evicts
    /// some)?
    pub fn nodes_over(&self) -> bool {
        self.nodes.len() > self.nodes_max
    }

    /// Slots in use or free (a bound on every slot).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// How far `owner`'s chain has been taken in.
    pub fn seen(&self, owner: &PeerId) -> u64 {
        let evicted = self.evicted_seen.get(owner).copied().unwrap_or(0);
        self.nodes
            .get(owner)
            .map_or(evicted, |n| n.seen_seq.max(evicted))
    }

    /// The peers with a service between them and `me`, either way (its direct partners).
    pub fn partners(&self, me: &PeerId) -> std::collections::BTreeSet<PeerId> {
        let Some(me) = self.nodes.get(me).map(|n| n.slot) else {
            return Default::default();
        };
        self.edges
            .keys()
            .filter_map(|(p, r)| match (*p == me, *r == me) {
                (true, false) => self.slots[*r as usize],
                (false, true) => self.slots[*p as usize],
                _ => None,
            })
            .collect()
    }

    fn node(&mut self, peer: PeerId) -> &mut Node {
        let (slots, free) = (&mut self.slots, &mut self.free);
        self.nodes.entry(peer).or_insert_with(|| {
            let slot = match free.pop() {
                Some(slot) => {
                    slots[slot as usize] = Some(peer);
                    slot
                }
                None => {
                    slots.push(Some(peer));
                    u32::try_from(slots.len() - 1).unwrap_or(u32::MAX)
                }
            };
            Node {
                slot,
                seen_seq: 0,
                last_us: 0,
                reported: None,
            }
        })
    }

    /// Takes in the records of `owner`'s chain after those already taken in. `chain` is
    /// the chain from record 1, verified.
    pub fn ingest<R: std::borrow::Borrow<Record>>(&mut self, owner: PeerId, chain: &[R]) {
        let seen = self.seen(&owner);
        // A verified chain runs in sequence order: what is new is a tail.
        let new = chain.partition_point(|r| r.borrow().seq <= seen);
        for record in chain[new..].iter().map(R::borrow) {
            self.add(record);
        }
        if let Some(last) = chain.last().map(R::borrow) {
            let node = self.node(owner);
            node.seen_seq = node.seen_seq.max(last.seq).max(seen);
            self.evicted_seen.remove(&owner);
        }
    }

    /// One half of a service.
    pub fn add(&mut self, record: &Record) {
        let weight = service_weight(record);
        let owner = PeerId(record.owner);
        let counterparty = PeerId(record.counterparty);
        if weight <= 0.0 || owner == counterparty {
            return;
        }
        let (provider, requester) = match record.role {
            Role::Provider => (owner, counterparty),
            Role::Requester => (counterparty, owner),
        };
        let at_us = record.tx.time;
        let mut slots = [0u32; 2];
        for (slot, peer) in slots.iter_mut().zip([provider, requester]) {
            let node = self.node(peer);
            node.last_us = node.last_us.max(at_us);
            *slot = node.slot;
        }
        let half_life = self.half_life_us;
        let edge = self.edges.entry((slots[0], slots[1])).or_default();
        let side = match record.role {
            Role::Provider => &mut edge.by_provider,
            Role::Requester => &mut edge.by_requester,
        };
        side.add(weight, at_us, half_life);
        self.changes += 1;
    }

    /// Evicts the lightest edges and nodes until the graph is within its limits (the policy
    /// is at the top of this module). `keep` names the nodes never evicted. Returns the
    /// peers evicted, lightest first.
    pub fn trim(&mut self, now_us: u64, keep: &dyn Fn(&PeerId) -> bool) -> Vec<PeerId> {
        let mut gone = Vec::new();
        let half_life = self.half_life_us;
        if self.edges.len() > self.edges_max {
            let mut by_weight: Vec<(f64, (u32, u32))> = self
                .edges
                .iter()
                .map(|(key, edge)| (edge.weight(now_us, half_life), *key))
                .collect();
            let excess = self.edges.len() - self.edges_max;
            by_weight
                .select_nth_unstable_by(excess - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (_, key) in by_weight.into_iter().take(excess) {
                self.edges.remove(&key);
            }
        }
        if self.nodes_over() {
            let mut weight = vec![0.0f64; self.slots.len()];
            for ((provider, requester), edge) in &self.edges {
                let w = edge.weight(now_us, half_life);
                weight[*provider as usize] += w;
                weight[*requester as usize] += w;
            }
            let mut candidates: Vec<(f64, u64, PeerId)> = self
                .nodes
                .iter()
                .filter(|(peer, _)| !keep(peer))
                .map(|(peer, node)| (weight[node.slot as usize], node.last_us, *peer))
                .collect();
            candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let excess = self.nodes.len() - self.nodes_max;
            let mut evicted = vec![false; self.slots.len()];
            for (_, _, peer) in candidates.into_iter().take(excess) {
                if let Some(node) = self.nodes.remove(&peer) {
                    if self.evicted_seen.len() >= self.nodes_max {
                        self.evicted_seen.clear();
                    }
                    if node.seen_seq > 0 {
                        self.evicted_seen.insert(peer, node.seen_seq);
                    }
                    evicted[node.slot as usize] = true;
                    self.slots[node.slot as usize] = None;
                    self.free.push(node.slot);
                    gone.push(peer);
                }
            }
            self.edges
                .retain(|(p, r), _| !evicted[*p as usize] && !evicted[*r as usize]);
        }
        gone
    }

    /// The graph at `now_us`, for petgraph's algorithms; `me` is always a node.
    pub fn snapshot(&self, me: PeerId, now_us: u64) -> Snapshot {
        let mut graph = DiGraph::with_capacity(self.nodes.len() + 1, self.edges.len());
        let mut by_slot = vec![NodeIndex::end(); self.slots.len()];
        let mut peers: Vec<(PeerId, Option<u32>)> =
            self.nodes.iter().map(|(p, n)| (*p, Some(n.slot))).collect();
        if !self.nodes.contains_key(&me) {
            peers.push((me, None));
            peers.sort();
        }
        let mut slots = Vec::with_capacity(peers.len());
        for (peer, slot) in peers {
            let node = graph.add_node(peer);
            slots.push(slot);
            if let Some(slot) = slot {
                by_slot[slot as usize] = node;
            }
        }
        for ((provider, requester), edge) in &self.edges {
            let w = edge.weight(now_us, self.half_life_us);
            if w > 0.0 {
                graph.add_edge(by_slot[*provider as usize], by_slot[*requester as usize], w);
            }
        }
        Snapshot { graph, slots }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::chain::{Outcome, Transaction};
    use crate::kernel::Time;

    fn peer(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    /// `owner`'s half (as `role`) of a chunk-storage service between it and `other`.
    /// One half of a service, unsigned (the graph takes in verified records only).
    pub(in crate::kernel::trust) fn half(
        owner: u8,
        other: u8,
        role: Role,
        seq: u64,
        creds: u64,
        at_us: u64,
    ) -> Record {
        Record {
            owner: [owner; 32],
            seq,
            prev: [0; 32],
            counterparty: [other; 32],
            counterparty_seq: seq,
            role,
            tx: Transaction {
                service: Service::ChunkStored,
                bytes: 1 << 20,
                creds,
                seconds: 86_400,
                time: at_us,
                outcome: Outcome::Delivered,
                commitment: [0; 32],
            },
            owner_sig: [0; 64],
            counterparty_sig: [0; 64],
        }
    }

    fn weight(graph: &ServiceGraph, provider: u8, requester: u8, now_us: u64) -> f64 {
        let snapshot = graph.snapshot(peer(0), now_us);
        let (a, b) = (
            snapshot.node(&peer(provider)).unwrap(),
            snapshot.node(&peer(requester)).unwrap(),
        );
        snapshot
            .graph
            .edges_connecting(a, b)
            .map(|e| *e.weight())
            .sum()
    }

    #[test]
    fn a_service_read_from_both_chains_counts_once_and_decays_by_half_lives() {
        let mut graph = ServiceGraph::new(100, 100, Time::DAY);
        // 1 stored for 2: 1's provider half and 2's requester half say the same.
        graph.ingest(peer(1), &[half(1, 2, Role::Provider, 1, 1000, 0)]);
        assert_eq!(weight(&graph, 1, 2, 0), 1000.0);
        graph.ingest(peer(2), &[half(2, 1, Role::Requester, 1, 1000, 0)]);
        assert_eq!(weight(&graph, 1, 2, 0), 1000.0);
        // Read again: nothing is taken in twice.
        graph.ingest(peer(1), &[half(1, 2, Role::Provider, 1, 1000, 0)]);
        assert_eq!(weight(&graph, 1, 2, 0), 1000.0);
        assert_eq!(graph.seen(&peer(1)), 1);
        let later = weight(&graph, 1, 2, 2 * Time::DAY);
        assert!((later - 250.0).abs() < 0.01, "{later}");
        // Audits answered weigh nothing; self-dealing is no edge.
        let mut audit = half(1, 3, Role::Provider, 2, 5, 0);
        audit.tx.service = Service::AuditAnswered;
        graph.add(&audit);
        graph.add(&half(4, 4, Role::Provider, 1, 5, 0));
        assert_eq!(graph.edges(), 1);
    }

    #[test]
    fn an_evicted_owner_s_chain_is_not_taken_in_twice() {
        let mut graph = ServiceGraph::new(2, 100, Time::DAY);
        let chain = [
            half(1, 2, Role::Provider, 1, 10, 0),
            half(1, 3, Role::Provider, 2, 10, 0),
        ];
        graph.ingest(peer(1), &chain);
        graph.add(&half(4, 5, Role::Provider, 1, 1000, 0));
        graph.trim(0, &|p| *p == peer(4) || *p == peer(5));
        assert_eq!(graph.seen(&peer(1)), 2, "remembered past its eviction");
        let changes = graph.changes;
        graph.ingest(peer(1), &chain);
        assert_eq!(graph.changes, changes, "nothing taken in again");
        let longer = [
            chain[0].clone(),
            chain[1].clone(),
            half(1, 2, Role::Provider, 3, 7, 0),
        ];
        graph.ingest(peer(1), &longer);
        assert_eq!(graph.changes, changes + 1, "only the new record");
        assert_eq!(graph.seen(&peer(1)), 3);
    }

    #[test]
    fn the_lightest_go_first_and_kept_nodes_stay() {
        let mut graph = ServiceGraph::new(3, 100, Time::DAY);
        graph.add(&half(1, 2, Role::Provider, 1, 1000, 0));
        graph.add(&half(3, 4, Role::Provider, 1, 10, 0));
        graph.add(&half(5, 4, Role::Provider, 1, 20, 0));
        assert_eq!(graph.nodes(), 5);
        // Node weights: 1 and 2: 1000; 3: 10; 4: 30; 5: 20. Keep 3 whatever it weighs.
        let gone = graph.trim(0, &|p| *p == peer(3));
        assert_eq!(gone, [peer(5), peer(4)], "the lightest first");
        assert_eq!(graph.nodes(), 3);
        let snapshot = graph.snapshot(peer(0), 0);
        for kept in [1, 2, 3] {
            assert!(snapshot.node(&peer(kept)).is_some(), "{kept}");
        }
        assert_eq!(graph.edges(), 1, "edges of evicted nodes go with them");
        // Slots are reused: a new node fits without growing the table.
        graph.add(&half(6, 1, Role::Provider, 1, 5, 0));
        assert_eq!(graph.nodes(), 4);
        assert_eq!(weight(&graph, 6, 1, 0), 5.0);
        // Edges: the lightest goes.
        let mut graph = ServiceGraph::new(100, 2, Time::DAY);
        graph.add(&half(1, 2, Role::Provider, 1, 30, 0));
        graph.add(&half(1, 3, Role::Provider, 2, 10, 0));
        graph.add(&half(1, 4, Role::Provider, 3, 20, 0));
        assert!(graph.trim(0, &|_| false).is_empty(), "edges only");
        assert_eq!(graph.edges(), 2);
        assert_eq!(weight(&graph, 1, 3, 0), 0.0);
        assert_eq!(weight(&graph, 1, 4, 0), 20.0);
    }
}
