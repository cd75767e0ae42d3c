//! Ledgers: what this peer and each counterparty have given each other (creds of storage,
//! bytes of bandwidth), how its audits went (a beta reputation), and the contracts it kept
//! and broke. The table is bounded; what is evicted when it is full is stated at
//! [`Ledgers::entry`].

use std::collections::BTreeMap;

use crate::kernel::strategy::Economy;
use crate::kernel::{PeerId, Time};

/// The unit of storage trade: one byte stored for one day (86,400 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Creds(pub u64);

impl Creds {
    pub const SECONDS_PER_CRED_BYTE: u64 = 86_400;

    /// Creds of `bytes` kept for `micros`.
    pub fn for_storage(bytes: u64, micros: u64) -> Creds {
        let byte_micros = u128::from(bytes) * u128::from(micros);
        let per = u128::from(Creds::SECONDS_PER_CRED_BYTE) * u128::from(Time::SECOND);
        Creds(u64::try_from(byte_micros / per).unwrap_or(u64::MAX))
    }

    pub fn plus(self, other: Creds) -> Creds {
        Creds(self.0.saturating_add(other.0))
    }
}

/// A holder's audit score: a beta reputation with decay, `α/(α+β)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditScore {
    alpha: f64,
    beta: f64,
}

impl AuditScore {
    pub fn new(economy: &Economy) -> AuditScore {
        AuditScore {
            alpha: economy.audit_alpha_initial,
            beta: economy.audit_beta_initial,
        }
    }

    /// `α ← λα + w(1+v)/2`, `β ← λβ + w(1−v)/2`, with `v = +1` for a pass, `−1` for a
    /// failure.
    pub fn update(&mut self, passed: bool, economy: &Economy) {
        let v = if passed { 1.0 } else { -1.0 };
        let (lambda, w) = (economy.audit_decay, economy.audit_weight);
        self.alpha = lambda * self.alpha + w * (1.0 + v) / 2.0;
        self.beta = lambda * self.beta + w * (1.0 - v) / 2.0;
    }

    pub fn score(&self) -> f64 {
        let total = self.alpha + self.beta;
        if total > 0.0 {
            self.alpha / total
        } else {
            0.5
        }
    }
}

/// Everything this peer keeps about one counterparty.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    /// Storage we gave it (held its chunks) and it gave us.
    pub creds_given: Creds,
    pub creds_received: Creds,
    /// Bytes we served it, and it served us.
    pub bandwidth_given_bytes: u64,
    pub bandwidth_received_bytes: u64,
    pub audits_passed: u64,
    pub audits_failed: u64,
    pub contracts_kept: u64,
    pub contracts_broken: u64,
    pub audit: AuditScore,
    /// Failed an audit badly enough: never placed on, served or contracted with again.
    pub disqualified: bool,
    /// Bytes of its chunks we hold (as the store reports), and of ours it holds.
    pub held_for_them_bytes: u64,
    pub held_by_them_bytes: u64,
    /// When it first had chunks here without a contract (a stranger's one term).
    pub stranger_since: Option<Time>,
    /// Its stranger's term is spent: it ran out, or it asked us for storage and offered
    /// none in return. It gets no stranger's allowance here again, only a contract.
    pub trial_spent: bool,
    /// The stranger policy has counted how it behaved as a stranger.
    pub stranger_judged: bool,
    /// Its service to us this term: requests it should have served and refused or failed,
    /// and those it served.
    pub term_failed: u64,
    pub term_served: u64,
    /// When it last declined a contract we proposed, and how many times in a row it has:
    /// we wait a term before asking again, doubling with each decline (see
    /// [`Ledger::declined_wait_us`]).
    pub declined_at: Option<Time>,
    pub declines: u32,
    /// When it last refused a placement of ours for want of a contract (we place elsewhere
    /// for a proposal interval, or until a contract is made).
    pub refused_at: Option<Time>,
    /// When we last proposed to it (we wait `Economy::propose_interval_us` between).
    pub proposed_at: Option<Time>,
    pub last_seen: Time,
    /// What this ledger last added to its table's [`Totals`].
    counted: Totals,
}

impl Ledger {
    fn new(economy: &Economy, now: Time) -> Ledger {
        Ledger {
            creds_given: Creds::default(),
            creds_received: Creds::default(),
            bandwidth_given_bytes: 0,
            bandwidth_received_bytes: 0,
            audits_passed: 0,
            audits_failed: 0,
            contracts_kept: 0,
            contracts_broken: 0,
            audit: AuditScore::new(economy),
            disqualified: false,
            held_for_them_bytes: 0,
            held_by_them_bytes: 0,
            stranger_since: None,
            trial_spent: false,
            stranger_judged: false,
            term_failed: 0,
            term_served: 0,
            declined_at: None,
            declines: 0,
            refused_at: None,
            proposed_at: None,
            last_seen: now,
            counted: Totals::default(),
        }
    }

    /// How long after its last decline we wait before placing on it or asking again: a
    /// term, doubled for each decline in a row after the first (at most 32 terms).
    pub fn declined_wait_us(&self, economy: &Economy) -> u64 {
        let doublings = self.declines.saturating_sub(1).min(5);
        economy.contract_term_us.saturating_mul(1 << doublings)
    }

    /// Did it decline us (a placement or a proposal) so lately that we do not ask again yet?
    pub fn declined_lately(&self, now: Time, economy: &Economy) -> bool {
        self.declined_at
            .is_some_and(|at| now.since(at) < self.declined_wait_us(economy))
    }

    /// Share of its service it failed this term.
    pub fn shortfall(&self) -> f64 {
        let asked = self.term_failed + self.term_served;
        if asked == 0 {
            0.0
        } else {
            self.term_failed as f64 / asked as f64
        }
    }
}

/// What the ledgers of a table add up to (the simulator tallies them every hour, for every
/// peer: summing each time was a tenth of a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub held_by_them_bytes: u64,
    pub bandwidth_given_bytes: u64,
    pub bandwidth_received_bytes: u64,
    /// Creds received less creds given.
    pub creds_balance: i64,
}

impl Totals {
    fn of(ledger: &Ledger) -> Totals {
        Totals {
            held_by_them_bytes: ledger.held_by_them_bytes,
            bandwidth_given_bytes: ledger.bandwidth_given_bytes,
            bandwidth_received_bytes: ledger.bandwidth_received_bytes,
            creds_balance: (ledger.creds_received.0 as i64)
                .wrapping_sub(ledger.creds_given.0 as i64),
        }
    }

    /// `self + is − was`, part by part (wrapping, so that it is the sum of the parts
    /// whatever order they moved in).
    fn moved(self, was: Totals, is: Totals) -> Totals {
        let step = |total: u64, was: u64, is: u64| total.wrapping_add(is.wrapping_sub(was));
        Totals {
            held_by_them_bytes: step(
                self.held_by_them_bytes,
                was.held_by_them_bytes,
                is.held_by_them_bytes,
            ),
            bandwidth_given_bytes: step(
                self.bandwidth_given_bytes,
                was.bandwidth_given_bytes,
                is.bandwidth_given_bytes,
            ),
            bandwidth_received_bytes: step(
                self.bandwidth_received_bytes,
                was.bandwidth_received_bytes,
                is.bandwidth_received_bytes,
            ),
            creds_balance: self
                .creds_balance
                .wrapping_add(is.creds_balance.wrapping_sub(was.creds_balance)),
        }
    }
}

/// Which ledgers were lent out for changes since [`Totals`] were last brought up to date.
#[derive(Debug, Default)]
enum Touched {
    #[default]
    None,
    One(PeerId),
    All,
}

/// The ledgers of every counterparty, bounded.
#[derive(Debug, Default)]
pub struct Ledgers {
    map: BTreeMap<PeerId, Ledger>,
    /// What every ledger's `counted` adds up to.
    counted: Totals,
    touched: Touched,
}

impl Ledgers {
    pub fn get(&self, peer: &PeerId) -> Option<&Ledger> {
        self.map.get(peer)
    }

    pub fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Ledger> {
        self.settle();
        if self.map.contains_key(peer) {
            self.touched = Touched::One(*peer);
        }
        self.map.get_mut(peer)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &Ledger)> {
        self.map.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&PeerId, &mut Ledger)> {
        self.settle();
        self.touched = Touched::All;
        self.map.iter_mut()
    }

    /// Brings `counted` up to date with the ledgers lent out since (their loans have ended:
    /// this takes `&mut self`).
    fn settle(&mut self) {
        let count = |ledger: &mut Ledger, counted: &mut Totals| {
            let now = Totals::of(ledger);
            *counted = counted.moved(ledger.counted, now);
            ledger.counted = now;
        };
        match std::mem::take(&mut self.touched) {
            Touched::None => {}
            Touched::One(peer) => {
                if let Some(ledger) = self.map.get_mut(&peer) {
                    count(ledger, &mut self.counted);
                }
            }
            Touched::All => {
                for ledger in self.map.values_mut() {
                    count(ledger, &mut self.counted);
                }
            }
        }
    }

    /// What every ledger adds up to now: the sum of each one's [`Totals`], kept as they
    /// change rather than summed (only a ledger lent out since the last change is read).
    pub fn totals(&self) -> Totals {
        match &self.touched {
            Touched::None => self.counted,
            Touched::One(peer) => self.map.get(peer).map_or(self.counted, |ledger| {
                self.counted.moved(ledger.counted, Totals::of(ledger))
            }),
            Touched::All => self.map.values().fold(self.counted, |total, ledger| {
                total.moved(ledger.counted, Totals::of(ledger))
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn disqualified(&self, peer: &PeerId) -> bool {
        self.map.get(peer).is_some_and(|l| l.disqualified)
    }

    /// The ledger of `peer`, made if needed. When the table is full, the entry seen longest
    /// ago that holds nothing either way, has no contract (`busy`) and is not disqualified
    /// is evicted; if there is none, `None` (the peer is then treated as a stranger that
    /// cannot be charged, and declined).
    pub fn entry(
        &mut self,
        peer: PeerId,
        now: Time,
        economy: &Economy,
        busy: &dyn Fn(&PeerId) -> bool,
    ) -> Option<&mut Ledger> {
        if !self.map.contains_key(&peer) {
            if self.map.len() >= economy.ledger_peers_max {
                let evict = self
                    .map
                    .iter()
                    .filter(|(p, l)| {
                        !l.disqualified
                            && l.held_for_them_bytes == 0
                            && l.held_by_them_bytes == 0
                            && !busy(p)
                    })
                    .min_by_key(|(p, l)| (l.last_seen, **p))
                    .map(|(p, _)| *p)?;
                self.settle();
                if let Some(gone) = self.map.remove(&evict) {
                    self.counted = self.counted.moved(gone.counted, Totals::default());
                }
            }
            self.map.insert(peer, Ledger::new(economy, now));
        }
        let ledger = self.get_mut(&peer)?;
        ledger.last_seen = now;
        Some(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain sum, as the totals must always be.
    fn summed(ledgers: &Ledgers) -> Totals {
        ledgers.iter().fold(Totals::default(), |t, (_, l)| {
            t.moved(Totals::default(), Totals::of(l))
        })
    }

    /// Totals follow every way a ledger changes: lent out one at a time, all at once, and
    /// evicted when the table is full (the evicted one's part leaves with it).
    #[test]
    fn totals_are_the_sum_of_the_ledgers_through_changes_and_evictions() {
        let economy = Economy {
            ledger_peers_max: 4,
            ..Economy::default()
        };
        let mut ledgers = Ledgers::default();
        let none = |_: &PeerId| false;
        for n in 0..20u8 {
            let now = Time(u64::from(n) * Time::SECOND);
            let ledger = ledgers
                .entry(PeerId([n; 32]), now, &economy, &none)
                .unwrap();
            ledger.bandwidth_received_bytes += 100 + u64::from(n);
            ledger.creds_given = Creds(u64::from(n) * 7);
            assert_eq!(ledgers.totals(), summed(&ledgers), "after entry {n}");
            if let Some(ledger) = ledgers.get_mut(&PeerId([n / 2; 32])) {
                ledger.creds_received = Creds(1000);
                ledger.bandwidth_given_bytes = 50;
            }
            assert_eq!(ledgers.totals(), summed(&ledgers), "after get_mut {n}");
            if n % 3 == 0 {
                for (_, ledger) in ledgers.iter_mut() {
                    ledger.bandwidth_received_bytes += 1;
                }
                assert_eq!(ledgers.totals(), summed(&ledgers), "after iter_mut {n}");
            }
        }
        assert_eq!(ledgers.len(), 4, "evicted down to the limit");
        let totals = ledgers.totals();
        assert!(totals.bandwidth_received_bytes > 0 && totals.creds_balance != 0);
    }

    #[test]
    fn creds_are_byte_days() {
        assert_eq!(Creds::for_storage(1000, Time::DAY), Creds(1000));
        assert_eq!(Creds::for_storage(1000, Time::DAY / 2), Creds(500));
        assert_eq!(Creds::for_storage(u64::MAX, u64::MAX), Creds(u64::MAX));
    }

    #[test]
    fn one_failure_from_the_steady_state_disqualifies_with_the_defaults() {
        let economy = Economy::default();
        let mut score = AuditScore::new(&economy);
        for _ in 0..100 {
            score.update(true, &economy);
        }
        assert!(score.score() > economy.audit_disqualify_below);
        score.update(false, &economy);
        assert!(score.score() < economy.audit_disqualify_below);
        // From the steady state (where α starts), one failure leaves exactly λ.
        assert!((score.score() - economy.audit_decay).abs() < 1e-9);
    }
}
