//! Expectations: the `[[expect]]` bounds of a scenario, checked against a run's summary.

use crate::metrics::{Summary, GROUP_METRICS};
use crate::scenario::Scenario;

/// One expectation and what the run measured.
#[derive(Debug, Clone)]
pub struct Check {
    pub metric: String,
    pub group: String,
    pub op: String,
    pub bound: f64,
    pub measured: Option<f64>,
    pub pass: bool,
}

/// Is `name` a metric expectations may name?
pub fn known_metric(name: &str) -> bool {
    GROUP_METRICS.contains(&name)
        || (name.starts_with("probe.") && name.ends_with(".success_ratio"))
}

pub fn evaluate(scenario: &Scenario, summary: &Summary) -> Vec<Check> {
    scenario
        .expectations
        .iter()
        .map(|e| {
            let measured = summary.metric(&e.group, &e.metric);
            let pass = measured.is_some_and(|m| match e.op.as_str() {
                ">=" => m >= e.value,
                "<=" => m <= e.value,
                ">" => m > e.value,
                "<" => m < e.value,
                "==" => (m - e.value).abs() < 1e-9,
                _ => false,
            });
            Check {
                metric: e.metric.clone(),
                group: e.group.clone(),
                op: e.op.clone(),
                bound: e.value,
                measured,
                pass,
            }
        })
        .collect()
}
