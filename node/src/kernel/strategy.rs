//! How a peer trades. One knob, [`Strategy::altruism`], runs from stingy (0) to fully
//! altruistic (1) and sets what strangers get, how much credit a partner may draw, how far a
//! partner may fall short before its contract is not renewed, and how often holders are
//! audited. The adversaries' behaviours are knobs of their own. The store actor reads it
//! (what it keeps and serves), the negotiator too (contracts, audits, renewal); the limits
//! it scales are in [`Economy`].

use std::sync::Arc;

use super::{PeerId, Time};

/// A peer's trading strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    /// From 0 (stingy) to 1 (fully altruistic: no limit on what it gives).
    pub altruism: f64,
    /// Adversary: asks for storage, holds nothing for others (refuses every contract and
    /// every chunk, and offers nothing in return).
    pub storage_freeloader: bool,
    /// Adversary: fetches, never serves (declines every fetch).
    pub bandwidth_freeloader: bool,
    /// Adversary (silent dropper): accepts chunks, then drops this fraction of them.
    pub drop_fraction: f64,
    /// Adversary: answers audits without the data (made-up proofs).
    pub liar: bool,
    /// Adversary: forks its own chain at this time, microseconds.
    pub fork_at_us: Option<u64>,
    /// Adversary: never proposes a contract, so that it never shows it offers nothing; it
    /// lives on strangers' allowances (with `storage_freeloader`, a whitewasher's way).
    pub stranger_only: bool,
    /// What strangers (peers without a contract here that have served us nothing) get.
    pub strangers: StrangerPolicy,
    /// Adversary (traitor): trades honestly until this time, microseconds; from then on it
    /// is a storage freeloader, and drops everything it held for others.
    pub defect_at_us: Option<u64>,
    /// Adversaries (colluders, a sybil operator's identities): the peers this one works with,
    /// sorted. Empty for everyone else.
    pub accomplices: Arc<[PeerId]>,
    /// Adversary: every chain record round it also asks an accomplice to sign a made-up
    /// record that the accomplice served it this many bytes (praise, never service).
    pub praise_bytes: u64,
    /// Adversary (colluder): holds, serves and trades with its accomplices only.
    pub serves_only_accomplices: bool,
    /// Adversary (liar about others): answers a read of another owner's chain with the
    /// records only up to the first that credits a provider other than itself (a chain's
    /// records are linked, so what it leaves out is the rest of the run).
    pub omits_others_records: bool,
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            altruism: 0.5,
            storage_freeloader: false,
            bandwidth_freeloader: false,
            drop_fraction: 0.0,
            liar: false,
            fork_at_us: None,
            stranger_only: false,
            strangers: StrangerPolicy::Adaptive,
            defect_at_us: None,
            accomplices: Arc::from(Vec::new()),
            praise_bytes: 0,
            serves_only_accomplices: false,
            omits_others_records: false,
        }
    }
}

/// What a stranger gets (Feldman, Lai, Stoica and Chuang, EC'04).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrangerPolicy {
    /// With the reputation filter on, the allowance of `altruism` scaled by how recent
    /// strangers behaved (`negotiator/strangers.rs`); without it, as `Fixed`.
    Adaptive,
    /// The allowance of `altruism`, whatever strangers do.
    Fixed,
    /// Nothing: no storage without a contract, no byte served before it served us.
    Stingy,
}

/// The economy's limits (what a fully altruistic peer would give, where that is finite) and
/// the audit parameters. Every limit has its unit in its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Economy {
    /// A contract's term: it is judged, and renewed or dropped, at its end.
    pub contract_term_us: u64,
    /// Contracts are proposed for at least this much, so that later chunks fit.
    pub contract_bytes_min: u64,
    /// Contracts this peer keeps at once.
    pub contracts_max: usize,
    /// Proposals to one peer at most this often.
    pub propose_interval_us: u64,
    /// Counterparties with a ledger entry; past it, strangers are declined.
    pub ledger_peers_max: usize,
    /// Storage a stranger may use here for one term without a contract, at altruism 1.
    pub stranger_storage_bytes: u64,
    /// Bytes served free to a peer that has served us nothing, at altruism 1 (minus 1 ulp:
    /// altruism 1 itself is unlimited).
    pub stranger_bandwidth_bytes: u64,
    /// Storage a partner may take beyond what it holds for us, at altruism 1.
    pub credit_bytes: u64,
    /// Share of its service a partner may fail in a term and still be renewed, at altruism 1.
    pub shortfall_max: f64,
    /// Audit rounds at altruism 0 and at altruism 1 (interpolated between).
    pub audit_interval_stingy_us: u64,
    pub audit_interval_generous_us: u64,
    /// Holders audited per round (the rest wait for later rounds, in turn).
    pub audit_holders_per_round_max: usize,
    /// Chunks challenged per holder and round.
    pub audit_chunks_per_holder: usize,
    /// Challenges precomputed for each replica when it is placed (at most 8).
    pub audit_challenges_per_replica: usize,
    /// Bytes of a chunk each challenge covers.
    pub audit_range_bytes: u32,
    /// Beta reputation of a holder's audits: `α ← λα + w(1+v)/2`, `β ← λβ + w(1−v)/2`.
    pub audit_decay: f64,
    pub audit_weight: f64,
    pub audit_alpha_initial: f64,
    pub audit_beta_initial: f64,
    /// A holder whose audit score `α/(α+β)` falls below this is disqualified.
    pub audit_disqualify_below: f64,
}

impl Default for Economy {
    fn default() -> Self {
        Economy {
            contract_term_us: Time::DAY,
            contract_bytes_min: 16 << 20,
            contracts_max: 1024,
            propose_interval_us: 10 * 60 * Time::SECOND,
            ledger_peers_max: 4096,
            stranger_storage_bytes: 8 << 20,
            stranger_bandwidth_bytes: 256 << 20,
            credit_bytes: 32 << 20,
            shortfall_max: 0.5,
            audit_interval_stingy_us: Time::HOUR,
            audit_interval_generous_us: Time::DAY,
            audit_holders_per_round_max: 16,
            audit_chunks_per_holder: 4,
            audit_challenges_per_replica: 4,
            audit_range_bytes: 1024,
            audit_decay: 0.9,
            audit_weight: 1.0,
            // The steady state of a holder that always passes (w / (1 − λ)), so one failure
            // takes it to λ = 0.9, under the threshold.
            audit_alpha_initial: 10.0,
            audit_beta_initial: 0.0,
            audit_disqualify_below: 0.95,
        }
    }
}

/// Most replicas' challenges kept at once (`Economy::audit_challenges_per_replica`).
pub const AUDIT_CHALLENGES_MAX: usize = 8;

impl Strategy {
    /// Does this peer hold nothing for others (and offer nothing) at `now`: a storage
    /// freeloader, or a traitor once it has defected?
    pub fn freeloads_storage(&self, now: Time) -> bool {
        self.storage_freeloader || self.defect_at_us.is_some_and(|at| now.micros() >= at)
    }

    /// Does this peer hold for, serve and trade with `peer` at all? Everyone does, but a
    /// colluder (with its accomplices only).
    pub fn deals_with(&self, peer: &PeerId) -> bool {
        !self.serves_only_accomplices || self.accomplices.binary_search(peer).is_ok()
    }

    fn fully_altruistic(&self) -> bool {
        self.altruism >= 1.0
    }

    /// A fully altruistic peer gives strangers their allowance whatever they offer back.
    pub fn gives_freely(&self) -> bool {
        self.fully_altruistic()
    }

    /// `max` scaled by altruism; unlimited at altruism 1.
    fn scaled(&self, max: u64) -> u64 {
        if self.fully_altruistic() {
            u64::MAX
        } else {
            (max as f64 * self.altruism.clamp(0.0, 1.0)) as u64
        }
    }

    /// Storage a stranger may use here for one term.
    pub fn stranger_storage_bytes(&self, economy: &Economy) -> u64 {
        if self.storage_freeloader || self.strangers == StrangerPolicy::Stingy {
            return 0;
        }
        (economy.stranger_storage_bytes as f64 * self.altruism.clamp(0.0, 1.0)) as u64
    }

    /// Bytes served to a peer beyond what it has served us.
    pub fn bandwidth_allowance_bytes(&self, economy: &Economy) -> u64 {
        if self.bandwidth_freeloader {
            return 0;
        }
        self.scaled(economy.stranger_bandwidth_bytes)
    }

    /// Bytes served to a stranger beyond what it has served us.
    pub fn stranger_bandwidth_bytes(&self, economy: &Economy) -> u64 {
        if self.strangers == StrangerPolicy::Stingy {
            return 0;
        }
        self.bandwidth_allowance_bytes(economy)
    }

    /// Storage a partner may take beyond what it holds for us.
    pub fn credit_bytes(&self, economy: &Economy) -> u64 {
        self.scaled(economy.credit_bytes)
    }

    /// Share of its service a partner may fail in a term and still be renewed.
    pub fn shortfall_tolerated(&self, economy: &Economy) -> f64 {
        if self.fully_altruistic() {
            1.0
        } else {
            economy.shortfall_max * self.altruism.clamp(0.0, 1.0)
        }
    }

    /// Time between audit rounds.
    pub fn audit_interval_us(&self, economy: &Economy) -> u64 {
        let (stingy, generous) = (
            economy.audit_interval_stingy_us as f64,
            economy.audit_interval_generous_us as f64,
        );
        let a = self.altruism.clamp(0.0, 1.0);
        ((stingy + (generous - stingy) * a) as u64).max(Time::SECOND)
    }
}
