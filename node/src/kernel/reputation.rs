//! The reputation filter: what this peer has seen each other peer do, and the ranking the
//! negotiator places replicas and fetches by. It counts answers, timeouts and misbehaviour,
//! and (when chains are on, see [`chains`](super::chains)) keeps this peer's long-chain
//! certificate, records services on it, reads other peers' chains and disqualifies any key
//! proven to have forked.

use std::collections::BTreeMap;

use super::{ActorKind, Context, Input, Local, Observation, PeerId, Refusal, Response};

/// Counts for one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub answered: u64,
    pub timed_out: u64,
    pub misbehaved: u64,
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
}

/// The reputation filter actor.
#[derive(Debug, Default)]
pub struct Reputation {
    records: BTreeMap<PeerId, Record>,
    /// This peer's chain and the chains it reads; `None` when chains are off.
    pub chains: Option<super::chains::Chains>,
}

/// Scores are reported to the negotiator when they move to another tenth.
fn bucket(score: f64) -> u8 {
    (score * 10.0).floor() as u8
}

impl Reputation {
    pub fn new(chains: Option<super::chains::Chains>) -> Reputation {
        Reputation {
            records: BTreeMap::new(),
            chains,
        }
    }

    pub fn record(&self, peer: &PeerId) -> Record {
        self.records.get(peer).copied().unwrap_or_default()
    }

    /// A peer's score; 0 for a key proven to have forked its chain.
    pub fn score(&self, peer: &PeerId) -> f64 {
        if self.disqualified(peer) {
            return 0.0;
        }
        self.record(peer).score()
    }

    fn disqualified(&self, peer: &PeerId) -> bool {
        self.chains
            .as_ref()
            .is_some_and(|chains| chains.book().disqualified(&peer.0))
    }

    /// Peers seen misbehaving at least once.
    pub fn marked(&self) -> usize {
        self.records.values().filter(|r| r.misbehaved > 0).count()
    }

    /// Every known peer, best first (ties by id).
    pub fn ranking(&self) -> Vec<(PeerId, f64)> {
        let mut ranking: Vec<(PeerId, f64)> =
            self.records.iter().map(|(p, r)| (*p, r.score())).collect();
        ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranking
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        let (peer, observation) = match input {
            Input::Local(Local::Observe { peer, observation }) => (peer, observation),
            other => {
                match self.chains.as_mut() {
                    Some(chains) => {
                        let peers: Vec<PeerId> = self.records.keys().copied().collect();
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
        let record = self.records.entry(peer).or_default();
        let before = bucket(record.score());
        match observation {
            Observation::Answered => record.answered += 1,
            Observation::TimedOut => record.timed_out += 1,
            Observation::Misbehaved => record.misbehaved += 1,
        }
        let score = record.score();
        // A disqualified key stays at 0 for the negotiator, whatever it does next.
        if bucket(score) != before && !self.disqualified(&peer) {
            ctx.local(ActorKind::Negotiator, Local::Standing { peer, score });
        }
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
