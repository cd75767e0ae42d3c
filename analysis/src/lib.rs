//! Run analysis (not built yet: it follows the simulator).
//!
//! It will turn a simulator run's output files (`summary.json`, metrics series) into a report
//! with plots and tables. It depends only on the documented output format, never on the
//! simulator's internals.
//!
//! Today this crate exports nothing, on purpose: nothing here pretends to analyse.
