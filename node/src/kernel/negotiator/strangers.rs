//! The stranger policy, with the reputation filter on: what a stranger gets depends on how
//! recent strangers behaved (Feldman, Lai, Stoica and Chuang, "Robust incentive techniques
//! for peer-to-peer networks", EC'04). A stranger is judged once: it cooperated if it gave
//! us something (a contract, or a chunk served) before its stranger's term was spent, and
//! defected if its term was spent first. The share of cooperators among the last
//! `window` strangers (with one of each assumed, so that the first strangers are treated
//! as a coin toss) scales the stranger's storage and bandwidth allowance. A flood of fresh
//! identities that defect (whitewashers) drives it down for every newcomer; newcomers that
//! reciprocate bring it back.

use std::collections::VecDeque;

use super::Negotiator;
use crate::kernel::strategy::StrangerPolicy;
use crate::kernel::{ActorKind, Context, Local, PeerId};

/// The last strangers' outcomes.
#[derive(Debug, Clone, Default)]
pub struct Strangers {
    recent: VecDeque<bool>,
}

impl Strangers {
    /// Notes one stranger's outcome, keeping the last `window`.
    pub fn judged(&mut self, cooperated: bool, window: usize) {
        self.recent.push_back(cooperated);
        while self.recent.len() > window.max(1) {
            self.recent.pop_front();
        }
    }

    /// `(cooperators + 1) / (strangers + 2)`, in (0, 1).
    pub fn share(&self) -> f64 {
        let cooperated = self.recent.iter().filter(|c| **c).count();
        (cooperated as f64 + 1.0) / (self.recent.len() as f64 + 2.0)
    }
}

impl Negotiator {
    /// With the filter on and the strategy adaptive, the share that scales what strangers
    /// get; otherwise 1 (the strategy's fixed allowance, none at all for a stingy one).
    pub fn stranger_share(&self) -> f64 {
        match &self.config.trust {
            Some(_) if self.config.strategy.strangers == StrangerPolicy::Adaptive => {
                self.strangers.share()
            }
            _ => 1.0,
        }
    }

    /// With the filter on: a peer whose score fell under the line gets nothing it did not
    /// pay for (no stranger's storage, no free bandwidth, no renewal). Always true with
    /// the filter off.
    pub(super) fn trusted(&self, peer: &PeerId) -> bool {
        self.config
            .trust
            .as_ref()
            .is_none_or(|trust| self.score(peer) >= trust.serve_line())
    }

    /// Why this peer gives `peer` nothing it did not pay for, if it does (for the API).
    pub fn refusal(&self, peer: &PeerId, now: crate::kernel::Time) -> Option<&'static str> {
        let ledger = self.ledgers.get(peer);
        if ledger.is_some_and(|l| l.disqualified) {
            return Some("disqualified by our audits");
        }
        if ledger.is_some_and(|l| l.contracts_broken > 0) && !self.contracts.contains_key(peer) {
            return Some("broke a contract with us, or was not renewed for its score");
        }
        if !self.trusted(peer) {
            return Some("its score is under the filter's line");
        }
        let trial_over = ledger.is_some_and(|l| {
            l.trial_spent
                || l.stranger_since
                    .is_some_and(|at| now.since(at) >= self.config.economy.contract_term_us)
        });
        if trial_over && !self.contracts.contains_key(peer) {
            return Some("its stranger's term is spent: storage only under a contract");
        }
        None
    }

    /// `peer`, a stranger until now, cooperated (`true`) or spent its term (`false`).
    /// Each stranger is judged once; the store hears the new allowance when it moves.
    pub(super) fn stranger_judged(
        &mut self,
        ctx: &mut Context<'_>,
        peer: PeerId,
        cooperated: bool,
    ) {
        let Some(trust) = &self.config.trust else {
            return;
        };
        let window = trust.strangers_window;
        let Some(ledger) = self.ledgers.get_mut(&peer) else {
            return;
        };
        if ledger.stranger_judged {
            return;
        }
        ledger.stranger_judged = true;
        let before = self.stranger_allowance();
        self.strangers.judged(cooperated, window);
        if self.stranger_allowance() != before {
            self.tell_strangers(ctx);
        }
    }

    /// What a stranger may use: (storage quota, bytes served beyond what it served us).
    pub(super) fn stranger_allowance(&self) -> (u64, u64) {
        let strategy = &self.config.strategy;
        let share = self.stranger_share();
        let storage = strategy.stranger_storage_bytes(&self.config.economy);
        let bandwidth = strategy.stranger_bandwidth_bytes(&self.config.economy);
        let scale = |bytes: u64| {
            if share >= 1.0 {
                bytes
            } else {
                // Whole MiB, so that the store hears of a change only when it matters.
                let scaled = (bytes as f64 * share) as u64;
                scaled & !((1 << 20) - 1)
            }
        };
        (scale(storage), scale(bandwidth))
    }

    /// Tells the store what strangers may use now.
    pub(super) fn tell_strangers(&self, ctx: &mut Context<'_>) {
        if self.config.trust.is_none() {
            return;
        }
        let (quota_bytes, serve_until_bytes) = self.stranger_allowance();
        ctx.local(
            ActorKind::Store,
            Local::Strangers {
                quota_bytes,
                serve_until_bytes,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_follows_the_last_strangers() {
        let mut s = Strangers::default();
        assert_eq!(s.share(), 0.5);
        for _ in 0..40 {
            s.judged(false, 32);
        }
        assert!((s.share() - 1.0 / 34.0).abs() < 1e-12);
        for _ in 0..32 {
            s.judged(true, 32);
        }
        assert!((s.share() - 33.0 / 34.0).abs() < 1e-12);
    }
}
