//! The stranger policy's price for honest newcomers: `scenarios/whitewash-newcomers.toml`
//! run as it is (the adaptive policy), with the stingy policy for every honest peer (the
//! two costs compared: the whitewash question's second bound), and with the fixed one (the
//! whitewashers must obtain less from adaptive peers than from fixed ones).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cryptosphere_sim::expect::evaluate;
use cryptosphere_sim::metrics::Summary;
use cryptosphere_sim::scenario::{Scenario, Strangers};
use cryptosphere_sim::world::World;

fn run(scenario: &Scenario) -> Summary {
    World::new(scenario, "whitewash-newcomers", scenario.seed)
        .run(&mut |_| {})
        .summary
}

/// The share of the newcomers' fetches that fail beyond a contributor's, in one run.
fn newcomers_cost(summary: &Summary) -> f64 {
    let newcomers = &summary.groups["newcomers"];
    let contributors = &summary.groups["contributors"];
    assert!(newcomers.fetches > 100.0, "{} fetches", newcomers.fetches);
    (1.0 - newcomers.fetch_success_ratio / contributors.fetch_success_ratio).max(0.0)
}

#[test]
fn the_adaptive_stranger_policy_costs_newcomers_under_half_what_a_stingy_one_does() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/whitewash-newcomers.toml");
    let adaptive = Scenario::load(&path).unwrap();
    assert!(adaptive
        .groups
        .iter()
        .all(|g| g.strategy.strangers == Strangers::Adaptive));
    // Every honest peer with one policy; the whitewashers' own does not matter (they never
    // give to strangers).
    let honest_with = |policy: Strangers| {
        let mut scenario = adaptive.clone();
        for group in &mut scenario.groups {
            if group.name != "whitewashers" {
                group.strategy.strangers = policy;
            }
        }
        scenario
    };
    let (adaptive_run, stingy_run) = (run(&adaptive), run(&honest_with(Strangers::Stingy)));
    let fixed_run = run(&honest_with(Strangers::Fixed));
    // The adaptive run is the scenario itself: its own expectations hold.
    let checks = evaluate(&adaptive, &adaptive_run);
    assert!(!checks.is_empty());
    for check in &checks {
        assert!(check.pass, "{check:?}");
    }
    let (adaptive_cost, stingy_cost) = (newcomers_cost(&adaptive_run), newcomers_cost(&stingy_run));
    let fixed_cost = newcomers_cost(&fixed_run);
    for (policy, run) in [
        ("adaptive", &adaptive_run),
        ("fixed", &fixed_run),
        ("stingy", &stingy_run),
    ] {
        let g = |name: &str| &run.groups[name];
        eprintln!(
            "{policy}: fetch success newcomers {:.4} of {:.0}, contributors {:.4} of {:.0}; \
             storage obtained newcomers {:.0} B, contributors {:.0} B, whitewashers {:.0} B; \
             contributors' stranger share {:.3}",
            g("newcomers").fetch_success_ratio,
            g("newcomers").fetches,
            g("contributors").fetch_success_ratio,
            g("contributors").fetches,
            g("newcomers").storage_obtained_mean,
            g("contributors").storage_obtained_mean,
            g("whitewashers").storage_obtained_mean,
            g("contributors").stranger_share_final,
        );
    }
    eprintln!(
        "newcomers' cost: adaptive {adaptive_cost:.4}, fixed {fixed_cost:.4}, stingy {stingy_cost:.4}"
    );
    // What adapting is for: the whitewashers' flood of fresh identities lowers what every
    // stranger gets, so they obtain less than from peers whose allowance is fixed.
    let whitewashers = |run: &Summary| run.groups["whitewashers"].storage_obtained_mean;
    assert!(
        whitewashers(&adaptive_run) < whitewashers(&fixed_run),
        "whitewashers obtain {} B under the adaptive policy, {} B under the fixed one",
        whitewashers(&adaptive_run),
        whitewashers(&fixed_run)
    );
    assert!(
        adaptive_run.groups["contributors"].stranger_share_final < 1.0,
        "the contributors' allowance never adapted"
    );
    assert!(
        stingy_cost > 0.0,
        "a stingy policy cost the newcomers nothing"
    );
    assert!(
        adaptive_cost < 0.5 * stingy_cost,
        "adaptive {adaptive_cost} against stingy {stingy_cost}"
    );
}
