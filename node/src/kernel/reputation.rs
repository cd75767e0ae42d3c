//! The reputation filter: what this peer has seen each other peer do, and the ranking the
//! negotiator places replicas and fetches by. It counts answers, timeouts and misbehaviour,
//! and (when chains are on, see [`chains`](super::chains)) keeps this peer's long-chain
//! certificate, records services on it, reads other peers' chains and disqualifies any key
//! proven to have forked. With the filter on ([`trust`](super::trust)), every hour it takes
//! the chains it has verified into its service graph and scores each peer from its own
//! position: direct experience, BarterCast flow and personalised rank.

use std::collections::BTreeMap;

use super::trust::{Parts, Trust, TrustConfig};
use super::{ActorKind, Context, Input, Local, Observation, PeerId, Refusal, Response};

const TRUST_TOKEN: u64 = 16;

/// Peers with counts kept at most; past it, the one with the least evidence goes (one seen
/// misbehaving goes last).
pub const RECORDS_MAX: usize = 16_384;

/// Counts for one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub answered: u64,
    pub timed_out: u64,
    pub misbehaved: u64,
    /// The score's tenth last reported to the negotiator.
    reported: Option<u8>,
}

impl Record {
    /// In (0, 1): 0.5 for a stranger, towards 1 for a peer that answers, towards 0 for one
    /// that times out, and faster for one that misbehaves.
    ///
    /// Silence is what churn looks like, so timeouts lower the score only a little (at most
    /// 1.5 points of "bad", never below 0.28): they reorder peers but never exclude them.
    /// Broken promises and bad data weigh four points each.
    pub fn score(&self) -> f64 {
        let good = self.answered as f64 + 1.0;
        let bad = 0.5 * self.timed_out.min(3) as f64 + 4.0 * self.misbehaved as f64 + 1.0;
        good / (good + bad)
    }

    /// Direct experience as the filter weighs it: 0.5 (neutral) for a peer never seen
    /// misbehaving, halved and more with each broken promise or bad answer
    /// (`0.5 / (1 + 2m)`). Answers and timeouts say how available a peer is, not whether
    /// it trades fairly (the flows say that), so they do not enter.
    pub fn conduct(&self) -> f64 {
        0.5 / (1.0 + 2.0 * self.misbehaved as f64)
    }
}

/// The reputation filter actor.
#[derive(Debug, Default)]
pub struct Reputation {
    records: BTreeMap<PeerId, Record>,
    /// This peer's chain and the chains it reads; `None` when chains are off.
    pub chains: Option<super::chains::Chains>,
    /// The service graph and its scores; `None` when the filter is off (it needs chains).
    pub trust: Option<Trust>,
}

/// Scores are reported to the negotiator when they move to another tenth.
fn bucket(score: f64) -> u8 {
    (score * 10.0).floor() as u8
}

/// Notes `score` as the last told in `reported` (a peer never told stands at a stranger's
/// 0.5); whether it moved to another tenth, so is to be told.
fn moved(reported: &mut Option<u8>, score: f64) -> bool {
    let now = bucket(score);
    reported.replace(now).unwrap_or(bucket(0.5)) != now
}

impl Reputation {
    pub fn new(chains: Option<super::chains::Chains>, trust: Option<TrustConfig>) -> Reputation {
        let trust = trust.filter(|_| chains.is_some()).map(Trust::new);
        Reputation {
            records: BTreeMap::new(),
            chains,
            trust,
        }
    }

    pub fn record(&self, peer: &PeerId) -> Record {
        self.records.get(peer).copied().unwrap_or_default()
    }

    /// A peer's score and its parts; a disqualified key scores 0.
    pub fn parts(&self, peer: &PeerId) -> Parts {
        let record = self.record(peer);
        let direct = record.score();
        let mut parts = match &self.trust {
            Some(trust) => trust.parts(peer, record.conduct()),
            None => Parts {
                direct,
                flow: 0.0,
                rank: 0.0,
                to_me: 0.0,
                from_me: 0.0,
                score: direct,
            },
        };
        if self.disqualified(peer) {
            parts.score = 0.0;
        }
        parts
    }

    /// A peer's score; 0 for a key proven to have forked its chain.
    pub fn score(&self, peer: &PeerId) -> f64 {
        self.parts(peer).score
    }

    pub fn disqualified(&self, peer: &PeerId) -> bool {
        self.chains
            .as_ref()
            .is_some_and(|chains| chains.book().disqualified(&peer.0))
    }

    /// Has this peer dealt with `peer`, or read of it on a chain?
    pub fn knows(&self, peer: &PeerId) -> bool {
        self.records.contains_key(peer) || self.trust.as_ref().is_some_and(|t| t.knows(peer))
    }

    /// Every peer it knows ([`Reputation::knows`]) in id order, as `visit(peer, score)`
    /// with [`Reputation::score`]: one pass over the counts and the graph, not a lookup in
    /// each per peer (the simulator's hourly standing reads every observer's peers).
    pub fn each_known(&self, mut visit: impl FnMut(PeerId, f64)) {
        let mut emit = |peer: PeerId, score: f64| {
            visit(peer, if self.disqualified(&peer) { 0.0 } else { score });
        };
        let Some(trust) = &self.trust else {
            for (peer, record) in &self.records {
                emit(*peer, record.score());
            }
            return;
        };
        let unknown = |record: &Record| Parts::unknown(record.conduct(), &trust.config).score;
        let mut records = self.records.iter().peekable();
        trust.each_scored(|peer, parts| {
            while let Some((only_counted, record)) = records.next_if(|(p, _)| **p < peer) {
                emit(*only_counted, unknown(record));
            }
            let record = records.next_if(|(p, _)| **p == peer).map(|(_, r)| *r);
            emit(peer, parts(record.unwrap_or_default().conduct()).score);
        });
        for (only_counted, record) in records {
            emit(*only_counted, unknown(record));
        }
    }

    /// Peers seen misbehaving at least once.
    pub fn marked(&self) -> usize {
        self.records.values().filter(|r| r.misbehaved > 0).count()
    }

    /// Every peer with counts or a place in the graph, best first (ties by id).
    pub fn ranking(&self) -> Vec<(PeerId, f64)> {
        let mut peers: Vec<PeerId> = self.records.keys().copied().collect();
        if let Some(trust) = &self.trust {
            peers.extend(
                trust
                    .graph()
                    .peers()
                    .filter(|p| !self.records.contains_key(p)),
            );
        }
        let mut ranking: Vec<(PeerId, f64)> =
            peers.into_iter().map(|p| (p, self.score(&p))).collect();
        ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranking
    }

    /// Tells the negotiator `peer`'s score if it moved to another tenth since last told.
    fn report(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        // A disqualified key stays at 0 for the negotiator (the chain side told it).
        if self.disqualified(&peer) {
            return;
        }
        let score = self.score(&peer);
        // Where the last report is kept: with the peer's counts if it has any, else with
        // its node in the graph (so that reading of a peer makes no counts for it).
        let has_record = self.records.contains_key(&peer);
        let reported = match self.trust.as_mut() {
            Some(trust) if !has_record => trust.reported_mut(&peer),
            _ => None,
        };
        let reported = match reported {
            Some(reported) => reported,
            None => match self.record_mut(peer) {
                Some(record) => &mut record.reported,
                None => return,
            },
        };
        if moved(reported, score) {
            ctx.local(ActorKind::Negotiator, Local::Standing { peer, score });
        }
    }

    /// `peer`'s counts, made if needed; when the table is full, the entry with the least
    /// evidence goes (one seen misbehaving last, ties by id). `None` only for an empty
    /// table that is full, which `RECORDS_MAX > 0` rules out.
    fn record_mut(&mut self, peer: PeerId) -> Option<&mut Record> {
        if !self.records.contains_key(&peer) && self.records.len() >= RECORDS_MAX {
            let least = self
                .records
                .iter()
                .min_by_key(|(id, r)| (r.misbehaved > 0, r.answered + r.timed_out, **id))
                .map(|(id, _)| *id)?;
            self.records.remove(&least);
        }
        Some(self.records.entry(peer).or_default())
    }

    /// Takes the verified chains into the graph and recomputes every score.
    fn recompute(&mut self, ctx: &mut Context<'_>) {
        let (Some(trust), Some(chains)) = (self.trust.as_mut(), self.chains.as_ref()) else {
            return;
        };
        let me = ctx.me();
        trust.ingest(me, chains.own());
        let book = chains.book();
        for (owner, chain) in book.chains() {
            let owner = PeerId(*owner);
            let end = chain.last().map_or(0, |r| r.seq);
            if end > trust.graph().seen(&owner) && !book.disqualified(&owner.0) {
                trust.ingest(owner, chain);
            }
        }
        let records = &self.records;
        let direct = |peer: &PeerId| records.get(peer).copied().unwrap_or_default().conduct();
        if !trust.recompute(me, ctx.now(), &direct) {
            return;
        }
        let evicted = trust.take_evicted();
        // What `report` does for each peer of the graph, in one pass beside the records
        // (both in id order), not six lookups a peer: this runs at every computation, over
        // every peer known.
        let book = chains.book();
        let mut records = self.records.iter_mut().peekable();
        let mut told = Vec::new();
        trust.each_node(|peer, in_graph, parts| {
            while records.next_if(|(p, _)| **p < peer).is_some() {}
            let record = records.next_if(|(p, _)| **p == peer).map(|(_, r)| r);
            // A disqualified key stays at 0 for the negotiator (the chain side told it).
            if book.disqualified(&peer.0) {
                return;
            }
            let conduct = record
                .as_ref()
                .map_or(Record::default().conduct(), |r| r.conduct());
            let score = parts(conduct).score;
            // Kept with the peer's counts if it has any, else with its node in the graph.
            let reported = match record {
                Some(record) => &mut record.reported,
                None => in_graph,
            };
            if moved(reported, score) {
                told.push((peer, score));
            }
        });
        for (peer, score) in told {
            ctx.local(ActorKind::Negotiator, Local::Standing { peer, score });
        }
        // A peer the graph let go is scored as the graph no longer knows it; the negotiator
        // would otherwise keep its last score (high or low) for good. Its last report was
        // kept with its node, so the new score is told whatever it is.
        for peer in evicted {
            if self.records.contains_key(&peer) {
                self.report(ctx, peer);
            } else if !self.disqualified(&peer) {
                let score = self.score(&peer);
                ctx.local(ActorKind::Negotiator, Local::Standing { peer, score });
            }
        }
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        let (peer, observation) = match input {
            Input::Local(Local::Observe { peer, observation }) => (peer, observation),
            Input::Timer { token: TRUST_TOKEN } => {
                self.recompute(ctx);
                if let Some(trust) = &self.trust {
                    ctx.timer(trust.config.recompute_interval_us.max(1), TRUST_TOKEN);
                }
                return;
            }
            other => {
                if let (Input::Start { .. }, Some(trust)) = (&other, &self.trust) {
                    let interval = trust.config.recompute_interval_us.max(1);
                    let first = rand::Rng::gen_range(ctx.rng(), 0..interval);
                    ctx.timer(first, TRUST_TOKEN);
                }
                match self.chains.as_mut() {
                    Some(chains) => {
                        // The peers known, listed only when an input needs them (a read of
                        // some peer's chain, a fork proof to pass on).
                        let records = &self.records;
                        let peers = || records.keys().copied().collect::<Vec<PeerId>>();
                        chains.handle(ctx, other, &peers);
                    }
                    // Chains are off: chain requests get a typed refusal, not silence.
                    None => {
                        if let Input::Local(Local::Incoming { from, id, .. }) = other {
                            let body = Response::Refused(Refusal::NotServed);
                            let respond = Local::Respond { to: from, id, body };
                            ctx.local(ActorKind::Transport, respond);
                        }
                    }
                }
                return;
            }
        };
        self.observe(ctx, peer, observation);
    }

    /// Counts what `peer` did and tells the negotiator when its score moves.
    fn observe(&mut self, ctx: &mut Context<'_>, peer: PeerId, observation: Observation) {
        let Some(record) = self.record_mut(peer) else {
            return;
        };
        let told = record.reported.is_some();
        match observation {
            Observation::Answered => record.answered += 1,
            Observation::TimedOut => record.timed_out += 1,
            Observation::Misbehaved => record.misbehaved += 1,
        }
        // With the filter on, answers and timeouts do not enter the score (only conduct
        // does, and the graph's parts move at a computation, which tells them): a peer
        // already told of has nothing new to tell. This runs at every answer.
        if self.trust.is_some() && told && observation != Observation::Misbehaved {
            return;
        }
        self.report(ctx, peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_rank_reliable_peers_first() {
        let stranger = Record::default();
        let reliable = Record {
            answered: 20,
            ..Record::default()
        };
        let flaky = Record {
            answered: 5,
            timed_out: 5,
            ..Record::default()
        };
        let cheat = Record {
            answered: 5,
            misbehaved: 2,
            ..Record::default()
        };
        assert!((stranger.score() - 0.5).abs() < 1e-9);
        assert!(reliable.score() > flaky.score());
        assert!(flaky.score() > cheat.score());
    }
}
