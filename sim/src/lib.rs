//! The deterministic simulator: thousands of the node's own peers (the kernel's actors) on a
//! modelled network, driven by scenario files, measured, and checked against expectations.
//!
//! It owns the simulated host ([`world`]), the network model ([`network`]), the scenario
//! loader ([`scenario`]), metrics ([`metrics`]), expectations ([`expect`]), a run's output files
//! ([`output`]) and the kernel benchmark ([`bench`]). It must never contain a protocol decision: those live in the
//! actors, in `cryptosphere-node`.

pub mod batch;
pub mod bench;
pub mod expect;
pub mod golden;
pub mod metrics;
pub mod network;
pub mod output;
pub mod progress;
pub mod queue;
pub mod scenario;
pub mod sweep;
pub mod tournament;
pub mod world;
