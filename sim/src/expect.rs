//! Expectations: the `[[expect]]` bounds of a scenario (typed when the scenario is loaded),
//! checked against a run's summary.

use std::fmt;

use crate::metrics::{Measure, Summary};
use crate::scenario::Scenario;

/// How an expectation compares what was measured with its bound: `measured OP bound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AtLeast,
    AtMost,
    Above,
    Below,
    /// Within 1e-9 of the bound.
    Equal,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::AtMost, Op::AtLeast, Op::Below, Op::Above, Op::Equal];

    /// As written in scenario files: `>=`, `<=`, `>`, `<`, `==`.
    pub const fn symbol(self) -> &'static str {
        match self {
            Op::AtLeast => ">=",
            Op::AtMost => "<=",
            Op::Above => ">",
            Op::Below => "<",
            Op::Equal => "==",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.symbol() == symbol)
    }

    pub fn holds(self, measured: f64, bound: f64) -> bool {
        match self {
            Op::AtLeast => measured >= bound,
            Op::AtMost => measured <= bound,
            Op::Above => measured > bound,
            Op::Below => measured < bound,
            Op::Equal => (measured - bound).abs() < 1e-9,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// One expectation and what the run measured.
#[derive(Debug, Clone)]
pub struct Check {
    pub metric: Measure,
    pub group: String,
    pub op: Op,
    pub bound: f64,
    pub measured: Option<f64>,
    pub pass: bool,
}

pub fn evaluate(scenario: &Scenario, summary: &Summary) -> Vec<Check> {
    scenario
        .expectations
        .iter()
        .map(|e| {
            let measured = summary.measured(&e.group, &e.metric);
            // A relative bound is the value times the other group's measure.
            let bound = match &e.relative_to {
                Some(other) => summary.measured(other, &e.metric).map(|m| m * e.value),
                None => Some(e.value),
            };
            Check {
                metric: e.metric.clone(),
                group: e.group.clone(),
                op: e.op,
                bound: bound.unwrap_or(f64::NAN),
                measured,
                pass: measured.zip(bound).is_some_and(|(m, b)| e.op.holds(m, b)),
            }
        })
        .collect()
}
