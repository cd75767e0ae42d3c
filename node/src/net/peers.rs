//! The reputation filter as the API shows it (`GET /v1/peers`, `cryptosphere peers`):
//! every peer this node knows of, its score and the parts it is made of, its ledger and
//! contract, and why the node refuses it, if it does. Read from the reputation actor, then
//! the negotiator, each in its turn; it decides nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::trade::{economics, ContractView, LedgerView, TradeConfig};
use crate::ids::encode_base32;
use crate::kernel::negotiator::Negotiator;
use crate::kernel::reputation::{Record, Reputation};
use crate::kernel::trust::Parts;
use crate::kernel::{PeerId, Time};

/// One known peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub peer: String,
    /// In [0, 1]; 0 for a key proven to have forked.
    pub score: f64,
    /// Direct experience (0.5 unless seen misbehaving), BarterCast flow in (−1, 1), and
    /// personalised rank as a percentile of the graph, with their weights' combination
    /// giving `score`.
    pub direct: f64,
    pub flow: f64,
    pub rank: f64,
    /// Two-hop max-flow of service from it to us and from us to it (byte-days of storage
    /// and bytes served).
    pub flow_to_us: f64,
    pub flow_from_us: f64,
    /// What it did in answer to our requests.
    pub answered: u64,
    pub timed_out: u64,
    pub misbehaved: u64,
    pub ledger: Option<LedgerView>,
    pub contract: Option<ContractView>,
    /// Why this node gives it nothing it did not pay for; `null`: it does not refuse it.
    pub refused: Option<&'static str>,
}

/// `GET /v1/peers`.
#[derive(Debug, Clone, Serialize)]
pub struct PeersView {
    pub peer: String,
    /// Whether the reputation filter is on (off: the score is direct experience alone).
    pub filter: bool,
    /// The score under which a peer is refused; `null` with the filter off.
    pub serve_line: Option<f64>,
    /// What strangers get, as a share of the strategy's allowance (the adaptive policy).
    pub stranger_share: f64,
    /// Peers and services in the filter's graph.
    pub graph_nodes: usize,
    pub graph_edges: usize,
    /// Best first.
    pub peers: Vec<PeerView>,
}

/// What the reputation filter says of each peer it was asked about, and of itself.
#[derive(Debug)]
pub struct FilterView {
    /// Peers it ranks, then those asked about, each once.
    peers: Vec<(PeerId, Parts, Record, bool)>,
    filter: bool,
    serve_line: Option<f64>,
    graph_nodes: usize,
    graph_edges: usize,
}

impl FilterView {
    /// The peers it speaks of (the negotiator is asked why it refuses each).
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.peers.iter().map(|(peer, ..)| *peer).collect()
    }
}

/// The reputation filter's part of the view: the peers it ranks and `also` (the peers the
/// negotiator keeps ledgers for).
pub fn filter_view(reputation: &Reputation, also: &[PeerId]) -> FilterView {
    let mut known: Vec<PeerId> = reputation.ranking().into_iter().map(|(p, _)| p).collect();
    for peer in also {
        if !known.contains(peer) {
            known.push(*peer);
        }
    }
    let trust = reputation.trust.as_ref();
    FilterView {
        peers: known
            .into_iter()
            .map(|peer| {
                let parts = reputation.parts(&peer);
                (
                    peer,
                    parts,
                    reputation.record(&peer),
                    reputation.disqualified(&peer),
                )
            })
            .collect(),
        filter: trust.is_some(),
        serve_line: trust.map(|t| t.config.serve_line()),
        graph_nodes: trust.map_or(0, |t| t.graph().nodes()),
        graph_edges: trust.map_or(0, |t| t.graph().edges()),
    }
}

/// The negotiator's part of the view.
#[derive(Debug)]
pub struct TradeView {
    economics: super::trade::Economics,
    /// Why it refuses each peer asked about, if it does.
    refusals: BTreeMap<PeerId, &'static str>,
    stranger_share: f64,
}

/// The peers the negotiator keeps ledgers for (asked of the filter).
pub fn ledger_peers(negotiator: &Negotiator) -> Vec<PeerId> {
    negotiator.ledgers().iter().map(|(peer, _)| *peer).collect()
}

pub fn trade_view(
    me: PeerId,
    negotiator: &Negotiator,
    config: &TradeConfig,
    now: Time,
    peers: &[PeerId],
) -> TradeView {
    TradeView {
        economics: economics(me, negotiator, config, now),
        refusals: peers
            .iter()
            .filter_map(|peer| Some((*peer, negotiator.refusal(peer, now)?)))
            .collect(),
        stranger_share: negotiator.stranger_share(),
    }
}

/// The filter's and the negotiator's parts, put together.
pub fn peers(me: PeerId, filter: FilterView, trade: TradeView) -> PeersView {
    let economics = &trade.economics;
    let mut peers: Vec<PeerView> = filter
        .peers
        .into_iter()
        .filter(|(peer, ..)| *peer != me)
        .map(|(peer, parts, record, disqualified)| {
            let id = encode_base32(&peer.0);
            let refused = if disqualified {
                Some("proven to have forked its chain")
            } else {
                trade.refusals.get(&peer).copied()
            };
            PeerView {
                score: parts.score,
                direct: parts.direct,
                flow: parts.flow,
                rank: parts.rank,
                flow_to_us: parts.to_me,
                flow_from_us: parts.from_me,
                answered: record.answered,
                timed_out: record.timed_out,
                misbehaved: record.misbehaved,
                ledger: economics.ledgers.iter().find(|l| l.peer == id).cloned(),
                contract: economics.contracts.iter().find(|c| c.peer == id).cloned(),
                refused,
                peer: id,
            }
        })
        .collect();
    peers.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.peer.cmp(&b.peer)));
    PeersView {
        peer: encode_base32(&me.0),
        filter: filter.filter,
        serve_line: filter.serve_line,
        stranger_share: trade.stranger_share,
        graph_nodes: filter.graph_nodes,
        graph_edges: filter.graph_edges,
        peers,
    }
}
