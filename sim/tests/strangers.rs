//! The stranger policy's price for honest newcomers: `scenarios/whitewash-newcomers.toml`
//! run as it is (the adaptive policy) and with a fixed stingy policy for every honest peer,
//! the two costs compared (the whitewash question's second bound).
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
    let mut stingy = adaptive.clone();
    for group in &mut stingy.groups {
        if group.name != "whitewashers" {
            group.strategy.strangers = Strangers::Stingy;
        }
    }
    let (adaptive_run, stingy_run) = (run(&adaptive), run(&stingy));
    // The adaptive run is the scenario itself: its own expectations hold.
    let checks = evaluate(&adaptive, &adaptive_run);
    assert!(!checks.is_empty());
    for check in &checks {
        assert!(check.pass, "{check:?}");
    }
    let (adaptive_cost, stingy_cost) = (newcomers_cost(&adaptive_run), newcomers_cost(&stingy_run));
    for (policy, run) in [("adaptive", &adaptive_run), ("stingy", &stingy_run)] {
        let g = |name: &str| &run.groups[name];
        eprintln!(
            "{policy}: fetch success newcomers {:.4}, contributors {:.4}; storage obtained \
             newcomers {:.0} B, contributors {:.0} B, whitewashers {:.0} B",
            g("newcomers").fetch_success_ratio,
            g("contributors").fetch_success_ratio,
            g("newcomers").storage_obtained_mean,
            g("contributors").storage_obtained_mean,
            g("whitewashers").storage_obtained_mean,
        );
    }
    eprintln!("newcomers' cost: adaptive {adaptive_cost:.4}, stingy {stingy_cost:.4}");
    assert!(
        stingy_cost > 0.0,
        "a stingy policy cost the newcomers nothing"
    );
    assert!(
        adaptive_cost < 0.5 * stingy_cost,
        "adaptive {adaptive_cost} against stingy {stingy_cost}"
    );
}
