//! The reputation filter's judgement: a bounded [`graph::ServiceGraph`] of the services on
//! the chains this peer has verified (its own and others'), and the subjective scores
//! computed over it from this peer's position ([`score`]: BarterCast max-flow, personalised
//! PageRank), combined with direct experience into one score per peer. Pure computation:
//! the reputation actor feeds it chains and asks for scores on its own timer.

pub mod graph;
pub mod score;
pub mod synthetic;

use crate::chain::Record;
use crate::kernel::{PeerId, Time};
use graph::ServiceGraph;
use score::{Flow, RankParams};

/// The filter's limits and weights (every unit in its name).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustConfig {
    /// Peers and services the graph holds at most (eviction: see [`graph`]).
    pub graph_nodes_max: usize,
    pub graph_edges_max: usize,
    /// A service's weight halves every this long.
    pub half_life_us: u64,
    /// Scores are recomputed this often.
    pub recompute_interval_us: u64,
    /// BarterCast's scale: a net two-hop flow of this many byte(-day)s scores `atan(1)`.
    pub flow_scale: f64,
    pub rank: RankParams,
    /// Weights of direct experience, BarterCast flow and personalised rank in the score.
    pub weight_direct: f64,
    pub weight_flow: f64,
    pub weight_rank: f64,
    /// A peer that scores this much under a stranger (a peer never dealt with nor read of)
    /// is neither served beyond what it gave, nor given a stranger's storage, nor renewed
    /// ([`TrustConfig::serve_line`]).
    pub serve_margin: f64,
    /// Recent strangers' outcomes the stranger policy is judged on.
    pub strangers_window: usize,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            graph_nodes_max: 10_000,
            graph_edges_max: 100_000,
            half_life_us: 7 * Time::DAY,
            recompute_interval_us: Time::HOUR,
            flow_scale: (4u64 << 20) as f64,
            rank: RankParams {
                damping: 0.85,
                iterations_max: 50,
                tolerance: 1e-5,
            },
            weight_direct: 0.2,
            weight_flow: 0.4,
            weight_rank: 0.4,
            serve_margin: 0.05,
            strangers_window: 32,
        }
    }
}

impl TrustConfig {
    /// The score under which a peer gets nothing it did not pay for: a stranger's, less the
    /// margin.
    pub fn serve_line(&self) -> f64 {
        Parts::unknown(0.5, self).score - self.serve_margin
    }
}

/// A peer's score and the parts it is made of.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Parts {
    /// Direct experience, in (0, 0.5]: 0.5 unless seen misbehaving.
    pub direct: f64,
    /// BarterCast, in (−1, 1).
    pub flow: f64,
    /// Personalised rank as a percentile: the share of the other peers in the graph that
    /// this peer's trust exceeds, in [0, 1] (0 for a peer no trust reaches).
    pub rank: f64,
    /// Net two-hop flow, both ways.
    pub to_me: f64,
    pub from_me: f64,
    /// The combination, in [0, 1] (0 for a disqualified key).
    pub score: f64,
}

impl Parts {
    /// What a peer the graph does not know scores, given its direct experience.
    pub fn unknown(direct: f64, config: &TrustConfig) -> Parts {
        Parts::combine(direct, Flow::default(), 0.0, config)
    }

    fn combine(direct: f64, flow: Flow, rank: f64, config: &TrustConfig) -> Parts {
        let bartercast = flow.bartercast(config.flow_scale);
        let weights = config.weight_direct + config.weight_flow + config.weight_rank;
        let score = (config.weight_direct * direct
            + config.weight_flow * (bartercast + 1.0) / 2.0
            + config.weight_rank * rank)
            / weights.max(f64::MIN_POSITIVE);
        Parts {
            direct,
            flow: bartercast,
            rank,
            to_me: flow.to_me,
            from_me: flow.from_me,
            score: score.clamp(0.0, 1.0),
        }
    }
}

/// What the last computation found for one node of the graph (compact: a simulated peer
/// keeps thousands).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Scored {
    to_me: f32,
    from_me: f32,
    /// Percentile of its trust.
    rank: f32,
    /// Its trust (the next computation starts from it).
    trust: f32,
}

impl Scored {
    fn parts(&self, direct: f64, config: &TrustConfig) -> Parts {
        let flow = Flow {
            to_me: f64::from(self.to_me),
            from_me: f64::from(self.from_me),
        };
        Parts::combine(direct, flow, f64::from(self.rank), config)
    }
}

/// The graph and the last scores computed over it.
#[derive(Debug, Clone)]
pub struct Trust {
    pub config: TrustConfig,
    graph: ServiceGraph,
    /// By slot of the graph; a slot filled since the last computation reads as unscored.
    scored: Vec<Scored>,
    /// Iterations the last rank computation took.
    pub last_iterations: usize,
    /// The graph's changes at the last computation.
    computed_at: Option<u64>,
    /// Peers the last computation evicted from the graph (their scores went with them).
    evicted: Vec<PeerId>,
}

impl Trust {
    pub fn new(config: TrustConfig) -> Trust {
        Trust {
            graph: ServiceGraph::new(
                config.graph_nodes_max,
                config.graph_edges_max,
                config.half_life_us,
            ),
            config,
            scored: Vec::new(),
            evicted: Vec::new(),
            last_iterations: 0,
            computed_at: None,
        }
    }

    pub fn graph(&self) -> &ServiceGraph {
        &self.graph
    }

    /// Takes in one half of a service (from a verified chain).
    pub fn add(&mut self, record: &Record) {
        self.graph.add(record);
    }

    /// Takes in what `owner`'s verified chain holds beyond what was taken in before.
    pub fn ingest<R: std::borrow::Borrow<Record>>(&mut self, owner: PeerId, chain: &[R]) {
        self.graph.ingest(owner, chain);
    }

    /// The tenth of `peer`'s score last told to the negotiator, if the graph holds it.
    pub fn reported_mut(&mut self, peer: &PeerId) -> Option<&mut Option<u8>> {
        self.graph.reported_mut(peer)
    }

    /// The peers the last computation evicted from the graph, once.
    pub fn take_evicted(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.evicted)
    }

    /// Does the graph hold `peer`?
    pub fn knows(&self, peer: &PeerId) -> bool {
        self.graph.slot(peer).is_some()
    }

    /// Every node of the graph in id order, as `visit(peer, last told tenth, parts)`, where
    /// `parts(direct)` is what [`Trust::parts`] gives: one pass, no lookup per peer.
    pub fn each_node(
        &mut self,
        mut visit: impl FnMut(PeerId, &mut Option<u8>, &dyn Fn(f64) -> Parts),
    ) {
        let (scored, config) = (&self.scored, &self.config);
        for (peer, slot, reported) in self.graph.nodes_mut() {
            let scored = scored.get(slot as usize).copied().unwrap_or_default();
            visit(peer, reported, &|direct| scored.parts(direct, config));
        }
    }

    /// Every node of the graph in id order, as `visit(peer, parts)`, where `parts(direct)`
    /// is what [`Trust::parts`] gives.
    pub fn each_scored(&self, mut visit: impl FnMut(PeerId, &dyn Fn(f64) -> Parts)) {
        for (peer, slot) in self.graph.slotted() {
            let scored = self.scored.get(slot as usize).copied().unwrap_or_default();
            visit(peer, &|direct| scored.parts(direct, &self.config));
        }
    }

    /// `peer`'s score now: the flow and rank of the last computation (none, for a peer the
    /// graph does not know) with its direct experience as it stands.
    pub fn parts(&self, peer: &PeerId, direct: f64) -> Parts {
        self.graph
            .slot(peer)
            .and_then(|slot| self.scored.get(slot as usize))
            .copied()
            .unwrap_or_default()
            .parts(direct, &self.config)
    }

    /// Recomputes every score from `me`'s position, unless no service came in since the
    /// last computation (decay alone moves every weight alike and ranks little). `direct`
    /// gives a peer's direct experience (0.5 for none, under 0.5 for one seen misbehaving,
    /// which is then no seed; it enters the score when asked for, so its changes need no
    /// computation). Returns whether it computed.
    pub fn recompute(&mut self, me: PeerId, now: Time, direct: &dyn Fn(&PeerId) -> f64) -> bool {
        if self.computed_at == Some(self.graph.changes) {
            return false;
        }
        self.computed_at = Some(self.graph.changes);
        // This peer and its direct partners (a service between them) are never evicted
        // (they are listed only when a node is to go: the list costs a pass over the edges).
        let partners = if self.graph.nodes_over() {
            self.graph.partners(&me)
        } else {
            Default::default()
        };
        let keep = |peer: &PeerId| *peer == me || partners.contains(peer);
        self.evicted = self.graph.trim(now.micros(), &keep);
        let snapshot = self.graph.snapshot(me, now.micros());
        let Some(me_node) = snapshot.node(&me) else {
            return false;
        };
        let g = &snapshot.graph;
        let flows = score::flows(&snapshot, me_node);
        // Seeds: the peers that served us directly, by what they gave, unless seen
        // misbehaving; this peer itself when none has.
        let mut seeds: Vec<(petgraph::graph::NodeIndex, f64)> = Vec::new();
        for edge in g.edges_directed(me_node, petgraph::Direction::Incoming) {
            let provider = petgraph::visit::EdgeRef::source(&edge);
            if provider != me_node && direct(&g[provider]) >= 0.5 {
                seeds.push((provider, *edge.weight()));
            }
        }
        if seeds.is_empty() {
            seeds.push((me_node, 1.0));
        }
        let warm: Vec<f64> = snapshot
            .slots
            .iter()
            .map(|slot| {
                slot.and_then(|s| self.scored.get(s as usize))
                    .map_or(0.0, |s| f64::from(s.trust))
            })
            .collect();
        let warm_sum: f64 = warm.iter().sum();
        let start = (warm_sum > 0.5).then_some(warm.as_slice());
        let (rank, iterations) =
            score::personalised_rank(&snapshot, &seeds, self.config.rank, start);
        self.last_iterations = iterations;
        // Percentiles: the share of the other nodes each node's trust exceeds.
        let mut order: Vec<f64> = g
            .node_indices()
            .filter(|n| *n != me_node)
            .map(|n| rank[n.index()])
            .collect();
        order.sort_by(f64::total_cmp);
        let others = order.len().saturating_sub(1).max(1) as f64;
        self.scored.clear();
        self.scored.resize(self.graph.slots(), Scored::default());
        for node in g.node_indices() {
            let Some(slot) = snapshot.slots[node.index()] else {
                continue;
            };
            let below = order.partition_point(|t| *t < rank[node.index()]);
            let flow = flows[node.index()];
            self.scored[slot as usize] = Scored {
                to_me: flow.to_me as f32,
                from_me: flow.from_me as f32,
                rank: if node == me_node {
                    0.0
                } else {
                    (below as f64 / others) as f32
                },
                trust: rank[node.index()] as f32,
            };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::graph::tests::half;
    use super::*;
    use crate::chain::Role;

    /// `provider` stored `creds` byte-days for `requester`, on the provider's chain.
    fn stored(provider: u8, requester: u8, seq: u64, creds: u64) -> Record {
        half(provider, requester, Role::Provider, seq, creds, 0)
    }

    /// The peers a computation evicts from the graph are handed out once, so their scores
    /// can be told again (as the graph no longer knows them).
    #[test]
    fn a_computation_hands_out_the_peers_it_evicted_once() {
        let me = PeerId([1; 32]);
        let mut trust = Trust::new(TrustConfig {
            graph_nodes_max: 3,
            ..TrustConfig::default()
        });
        // 2 served me (a direct partner, kept); 3, 4 and 5 served 6, lightly.
        trust.ingest(PeerId([2; 32]), &[stored(2, 1, 1, 1000)]);
        trust.ingest(PeerId([3; 32]), &[stored(3, 6, 1, 10)]);
        trust.ingest(PeerId([4; 32]), &[stored(4, 6, 1, 20)]);
        trust.ingest(PeerId([5; 32]), &[stored(5, 6, 1, 30)]);
        assert!(trust.recompute(me, Time(0), &|_| 0.5));
        let evicted = trust.take_evicted();
        assert_eq!(evicted.len(), 3, "six nodes, three kept: {evicted:?}");
        assert!(!evicted.contains(&me) && !evicted.contains(&PeerId([2; 32])));
        assert!(evicted.iter().all(|peer| !trust.knows(peer)));
        assert!(trust.take_evicted().is_empty(), "once");
        // An evicted peer is scored as one the graph does not know: a stranger's 0.30.
        let parts = trust.parts(&evicted[0], 0.5);
        assert!((parts.score - 0.30).abs() < 1e-9, "{parts:?}");
    }
}
