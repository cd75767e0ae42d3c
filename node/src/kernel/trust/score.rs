//! The subjective scores, computed over a [`Snapshot`] from one peer's position:
//! BarterCast's max-flow over paths of at most two hops, and a personalised PageRank
//! (EigenTrust with pre-trusted peers) seeded at this peer's direct partners.

use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::graph::Snapshot;

/// Flow between this peer and another over paths of at most two hops.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flow {
    /// MF(j → me): what `j` gave us, directly or through one other peer.
    pub to_me: f64,
    /// MF(me → j).
    pub from_me: f64,
}

impl Flow {
    /// BarterCast: `atan((MF(j→i) − MF(i→j)) / scale) / (π/2)`, in (−1, 1).
    pub fn bartercast(&self, scale: f64) -> f64 {
        // libm, not the platform's atan: the same trace on every machine.
        libm::atan((self.to_me - self.from_me) / scale.max(f64::MIN_POSITIVE))
            / std::f64::consts::FRAC_PI_2
    }
}

/// Two-hop max-flow between `me` and every peer it is connected to. Paths `j → me` and
/// `j → k → me` for distinct `k` share no edge, so the two-hop max-flow is exact:
/// `MF(j→me) = c(j,me) + Σ_k min(c(j,k), c(k,me))`, and the same the other way.
/// Indexed by node.
pub fn flows(snapshot: &Snapshot, me: NodeIndex) -> Vec<Flow> {
    let g = &snapshot.graph;
    let mut flows = vec![Flow::default(); g.node_count()];
    // Into me: direct, then through each k that served me.
    for into_me in g.edges_directed(me, Direction::Incoming) {
        let (k, c_k_me) = (into_me.source(), *into_me.weight());
        if k == me {
            continue;
        }
        flows[k.index()].to_me += c_k_me;
        for into_k in g.edges_directed(k, Direction::Incoming) {
            let j = into_k.source();
            if j != me && j != k {
                flows[j.index()].to_me += into_k.weight().min(c_k_me);
            }
        }
    }
    // Out of me: direct, then through each k I served.
    for out_of_me in g.edges_directed(me, Direction::Outgoing) {
        let (k, c_me_k) = (out_of_me.target(), *out_of_me.weight());
        if k == me {
            continue;
        }
        flows[k.index()].from_me += c_me_k;
        for out_of_k in g.edges_directed(k, Direction::Outgoing) {
            let j = out_of_k.target();
            if j != me && j != k {
                flows[j.index()].from_me += out_of_k.weight().min(c_me_k);
            }
        }
    }
    flows
}

/// How a personalised PageRank is run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankParams {
    /// Probability of following an edge rather than returning to the seeds.
    pub damping: f64,
    pub iterations_max: usize,
    /// Stop once the L1 change of an iteration is below this.
    pub tolerance: f64,
}

/// Personalised PageRank: trust flows from each peer to the peers that served it, in
/// proportion to what each served (EigenTrust's local trust `c_ij`), and returns to the
/// seeds with probability `1 − damping` (and wholly from a peer no one served). `seeds`
/// are weights on nodes (normalised here); `warm` is a previous result to start from (the
/// incremental part: a graph that changed a little converges in a few iterations). Returns
/// the stationary trust of every node (summing to 1) and the iterations it took.
pub fn personalised_rank(
    snapshot: &Snapshot,
    seeds: &[(NodeIndex, f64)],
    params: RankParams,
    warm: Option<&[f64]>,
) -> (Vec<f64>, usize) {
    let g = &snapshot.graph;
    let n = g.node_count();
    let mut seed = vec![0.0; n];
    let total: f64 = seeds.iter().map(|(_, w)| w.max(0.0)).sum();
    if n == 0 || total <= 0.0 {
        return (seed, 0);
    }
    for (node, w) in seeds {
        seed[node.index()] += w.max(0.0) / total;
    }
    // The edges as flat (provider, requester, weight) triples, in petgraph's edge order:
    // the sums below run in that order, as they would over the graph itself.
    let edges: Vec<(usize, usize, f64)> = g
        .edge_references()
        .map(|e| (e.source().index(), e.target().index(), *e.weight()))
        .collect();
    // What each node received in all (the denominator of its local trust).
    let mut received = vec![0.0; n];
    for (_, requester, w) in &edges {
        received[*requester] += *w;
    }
    // The nodes no one served: their trust returns to the seeds.
    let sinks: Vec<usize> = (0..n).filter(|i| received[*i] <= 0.0).collect();
    let mut trust = match warm {
        Some(previous) if previous.len() == n => previous.to_vec(),
        _ => seed.clone(),
    };
    let mut next = vec![0.0; n];
    let mut iterations = 0;
    while iterations < params.iterations_max {
        iterations += 1;
        let mut leaked = 0.0;
        for i in &sinks {
            leaked += trust[*i];
        }
        for (value, s) in next.iter_mut().zip(&seed) {
            *value = (1.0 - params.damping + params.damping * leaked) * s;
        }
        for &(provider, requester, w) in &edges {
            if received[requester] > 0.0 {
                next[provider] += params.damping * trust[requester] * w / received[requester];
            }
        }
        let change: f64 = next.iter().zip(&trust).map(|(a, b)| (a - b).abs()).sum();
        std::mem::swap(&mut trust, &mut next);
        if change < params.tolerance {
            break;
        }
    }
    (trust, iterations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::PeerId;
    use petgraph::graph::DiGraph;
    use std::collections::BTreeMap;

    fn peer(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    /// A snapshot from (provider, requester, weight) triples over peers 0..n.
    fn snapshot(n: u8, edges: &[(u8, u8, f64)]) -> Snapshot {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for i in 0..n {
            index.insert(peer(i), graph.add_node(peer(i)));
        }
        for (a, b, w) in edges {
            graph.add_edge(index[&peer(*a)], index[&peer(*b)], *w);
        }
        let slots = (0..u32::from(n)).map(Some).collect();
        Snapshot { graph, slots }
    }

    /// Peer `n`'s node.
    fn node(s: &Snapshot, n: u8) -> NodeIndex {
        s.node(&peer(n)).expect("every peer 0..n is a node")
    }

    #[test]
    fn two_hop_flow_is_the_sum_of_direct_and_bottlenecks() {
        // 1 gave me (0) 5 directly; 2 gave 1 ten, 1 gave me 5 → through 1, min(10, 5) = 5;
        // 3 gave 2 only: three hops, not counted. I gave 4 seven.
        let s = snapshot(5, &[(1, 0, 5.0), (2, 1, 10.0), (3, 2, 9.0), (0, 4, 7.0)]);
        let f = flows(&s, node(&s, 0));
        let at = |n: u8| f[node(&s, n).index()];
        assert_eq!(at(1).to_me, 5.0);
        assert_eq!(at(2).to_me, 5.0);
        assert_eq!(at(3), Flow::default());
        assert_eq!(at(4).from_me, 7.0);
        assert!(at(4).bartercast(1.0) < -0.9);
        assert!(at(1).bartercast(1.0) > 0.8);
        assert_eq!(Flow::default().bartercast(1.0), 0.0);
    }

    #[test]
    fn personalised_rank_trusts_whom_the_seeds_trust_and_not_a_clique_of_strangers() {
        // Seed 1 was served by 2; 2 by 3. Peers 4 and 5 praise each other heavily, unseen.
        let s = snapshot(
            6,
            &[
                (1, 0, 1.0),
                (2, 1, 1.0),
                (3, 2, 1.0),
                (4, 5, 1e9),
                (5, 4, 1e9),
            ],
        );
        let params = RankParams {
            damping: 0.85,
            iterations_max: 1000,
            tolerance: 1e-10,
        };
        let (t, iterations) = personalised_rank(&s, &[(node(&s, 1), 1.0)], params, None);
        assert!(iterations > 1 && iterations < 1000);
        assert!((t.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(t[1] > t[2] && t[2] > t[3] && t[3] > 0.0);
        assert_eq!(t[4], 0.0);
        assert_eq!(t[5], 0.0);
        // Starting from the answer converges at once.
        let (again, iterations) = personalised_rank(&s, &[(node(&s, 1), 1.0)], params, Some(&t));
        assert_eq!(iterations, 1);
        assert!(again.iter().zip(&t).all(|(a, b)| (a - b).abs() < 1e-9));
    }
}
