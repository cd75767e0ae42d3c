//! The economy as the node's API shows it (`GET /v1/contracts`, `cryptosphere node
//! contracts`, the counts in `/v1/status`): this node's strategy and the allowances it
//! implies, its contracts and its ledgers, read from the negotiator. Read only: it decides
//! nothing about trading.

use serde::Serialize;

use crate::ids::encode_base32;
use crate::kernel::negotiator::Negotiator;
use crate::kernel::strategy::{Economy, Strategy};
use crate::kernel::{KernelConfig, PeerId, Time};

/// What the node was configured to trade with (a copy of its kernel configuration's part).
#[derive(Debug, Clone)]
pub struct TradeConfig {
    pub strategy: Strategy,
    pub economy: Economy,
    pub offer_bytes: u64,
}

impl TradeConfig {
    pub fn of(config: &KernelConfig) -> TradeConfig {
        TradeConfig {
            strategy: config.strategy.clone(),
            economy: config.economy.clone(),
            offer_bytes: config.storage_for_others_bytes,
        }
    }
}

/// This node's strategy and what it gives.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyView {
    pub altruism: f64,
    /// The adversary behaviours it runs with; empty for an honest node.
    pub adversary: Vec<&'static str>,
    /// Share of stored chunks it silently drops (an adversary's knob; 0 when honest).
    pub drop_fraction: f64,
    /// Storage offered to all other peers together.
    pub offer_bytes: u64,
    /// Storage a stranger (no contract) may use here for one term.
    pub stranger_storage_bytes: u64,
    /// Bytes served to a peer beyond what it served us; `null`: unlimited.
    pub bandwidth_allowance_bytes: Option<u64>,
    /// Storage a partner may take beyond what it holds for us; `null`: unlimited.
    pub credit_bytes: Option<u64>,
    pub contract_term_s: u64,
    /// Time between this node's audit rounds.
    pub audit_interval_s: u64,
}

/// One contract, from this node's side.
#[derive(Debug, Clone, Serialize)]
pub struct ContractView {
    /// The counterparty's peer id (lowercase base32 of its ed25519 key).
    pub peer: String,
    /// Bytes it promised to hold for us, and bytes we promised to hold for it.
    pub for_us_bytes: u64,
    pub for_them_bytes: u64,
    /// Bytes of ours it holds (as far as we know), and of its we hold.
    pub held_for_us_bytes: u64,
    pub held_for_them_bytes: u64,
    pub term_s: u64,
    /// Seconds until the current term ends and the contract is judged; negative: the term
    /// is over and waits for the next judgement round.
    pub term_ends_in_s: i64,
}

/// Everything this node keeps about one counterparty.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerView {
    pub peer: String,
    /// Creds (byte-days) of storage we gave it, and it gave us.
    pub creds_given: u64,
    pub creds_received: u64,
    /// Bytes we served it, and it served us.
    pub bandwidth_given_bytes: u64,
    pub bandwidth_received_bytes: u64,
    pub held_for_us_bytes: u64,
    pub held_for_them_bytes: u64,
    /// Our audits of its holding: challenges passed and failed, and the beta score.
    pub audits_passed: u64,
    pub audits_failed: u64,
    pub audit_score: f64,
    pub contracts_kept: u64,
    pub contracts_broken: u64,
    /// Failed our audits badly enough: never placed on, served or contracted with again.
    pub disqualified: bool,
    /// Seconds since it last declined a contract we proposed; `null`: it has not.
    pub declined_s_ago: Option<u64>,
}

/// `GET /v1/contracts`.
#[derive(Debug, Clone, Serialize)]
pub struct Economics {
    pub peer: String,
    pub strategy: StrategyView,
    pub contracts: Vec<ContractView>,
    pub ledgers: Vec<LedgerView>,
}

/// The counts `/v1/status` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TradeCounts {
    pub contracts: usize,
    pub ledgers: usize,
    pub peers_disqualified: usize,
    pub audits_passed: u64,
    pub audits_failed: u64,
}

/// `u64::MAX` is how the strategy says "unlimited".
fn limited(bytes: u64) -> Option<u64> {
    (bytes != u64::MAX).then_some(bytes)
}

fn adversary(strategy: &Strategy) -> Vec<&'static str> {
    let mut names = Vec::new();
    if strategy.storage_freeloader {
        names.push("storage-freeloader");
    }
    if strategy.bandwidth_freeloader {
        names.push("bandwidth-freeloader");
    }
    if strategy.liar {
        names.push("liar");
    }
    if strategy.drop_fraction > 0.0 {
        names.push("dropper");
    }
    if strategy.stranger_only {
        names.push("stranger-only");
    }
    names
}

pub fn strategy_view(config: &TradeConfig) -> StrategyView {
    let (strategy, economy) = (&config.strategy, &config.economy);
    StrategyView {
        altruism: strategy.altruism,
        adversary: adversary(strategy),
        drop_fraction: strategy.drop_fraction,
        offer_bytes: config.offer_bytes,
        stranger_storage_bytes: strategy.stranger_storage_bytes(economy),
        bandwidth_allowance_bytes: limited(strategy.bandwidth_allowance_bytes(economy)),
        credit_bytes: limited(strategy.credit_bytes(economy)),
        contract_term_s: economy.contract_term_us / Time::SECOND,
        audit_interval_s: strategy.audit_interval_us(economy) / Time::SECOND,
    }
}

/// Whole seconds from `now` to `then`, negative when `then` is past.
fn seconds_until(now: Time, then: Time) -> i64 {
    let micros = i128::from(then.micros()) - i128::from(now.micros());
    i64::try_from(micros / i128::from(Time::SECOND)).unwrap_or(i64::MAX)
}

pub fn economics(
    me: PeerId,
    negotiator: &Negotiator,
    config: &TradeConfig,
    now: Time,
) -> Economics {
    let ledgers = negotiator.ledgers();
    let contracts = negotiator
        .contracts()
        .map(|(peer, contract)| {
            let ledger = ledgers.get(peer);
            ContractView {
                peer: encode_base32(&peer.0),
                for_us_bytes: contract.for_me_bytes,
                for_them_bytes: contract.for_them_bytes,
                held_for_us_bytes: ledger.map_or(0, |l| l.held_by_them_bytes),
                held_for_them_bytes: ledger.map_or(0, |l| l.held_for_them_bytes),
                term_s: contract.term_us / Time::SECOND,
                term_ends_in_s: seconds_until(now, contract.ends),
            }
        })
        .collect();
    let ledgers = ledgers
        .iter()
        .map(|(peer, l)| LedgerView {
            peer: encode_base32(&peer.0),
            creds_given: l.creds_given.0,
            creds_received: l.creds_received.0,
            bandwidth_given_bytes: l.bandwidth_given_bytes,
            bandwidth_received_bytes: l.bandwidth_received_bytes,
            held_for_us_bytes: l.held_by_them_bytes,
            held_for_them_bytes: l.held_for_them_bytes,
            audits_passed: l.audits_passed,
            audits_failed: l.audits_failed,
            audit_score: l.audit.score(),
            contracts_kept: l.contracts_kept,
            contracts_broken: l.contracts_broken,
            disqualified: l.disqualified,
            declined_s_ago: l.declined_at.map(|at| now.since(at) / Time::SECOND),
        })
        .collect();
    Economics {
        peer: encode_base32(&me.0),
        strategy: strategy_view(config),
        contracts,
        ledgers,
    }
}

pub fn counts(negotiator: &Negotiator) -> TradeCounts {
    let ledgers = negotiator.ledgers();
    let mut counts = TradeCounts {
        contracts: negotiator.contracts_len(),
        ledgers: ledgers.len(),
        ..TradeCounts::default()
    };
    for (_, ledger) in ledgers.iter() {
        counts.peers_disqualified += usize::from(ledger.disqualified);
        counts.audits_passed += ledger.audits_passed;
        counts.audits_failed += ledger.audits_failed;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_allowances_show_as_null_and_adversaries_by_name() {
        let config = TradeConfig {
            strategy: Strategy {
                altruism: 1.0,
                storage_freeloader: true,
                ..Strategy::default()
            },
            economy: Economy::default(),
            offer_bytes: 1 << 30,
        };
        let view = strategy_view(&config);
        assert_eq!(view.credit_bytes, None);
        assert_eq!(view.bandwidth_allowance_bytes, None);
        assert_eq!(view.stranger_storage_bytes, 0);
        assert_eq!(view.adversary, vec!["storage-freeloader"]);
        assert_eq!(
            seconds_until(Time(5 * Time::SECOND), Time(2 * Time::SECOND)),
            -3
        );
        assert_eq!(seconds_until(Time(0), Time(7 * Time::SECOND + 1)), 7);
    }
}
