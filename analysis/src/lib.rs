//! Reports from a simulator run's output files: plots over time per group (with
//! `plotters`), tables of the summary and the expectations, and one self-contained HTML page.
//!
//! It reads only the documented output format (`docs/scenario-format.md` §5: `summary.json`,
//! `metrics.csv`, `checks.csv`, `scenario.toml`) and never the simulator's internals, so a
//! run written by another version, or by hand, reports the same way. It does no simulation.

// A tool over files, not an actor: reading a run's folder and writing the report into it is
// this crate's whole job (the workspace's disallowed methods keep files out of actors).
#![allow(clippy::disallowed_methods)]

pub mod error;
pub mod html;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod run;
pub mod stats;
pub mod sweep;
pub mod tournament;

pub use error::ReportError;
pub use report::{write_report, Report};
