//! The deterministic simulator (not built yet: the kernel/simulator issue delivers it).
//!
//! It will own the simulated host — a single-threaded discrete-event loop ordered by
//! (virtual time, sequence number), a seeded ChaCha RNG per peer, a modelled network and an
//! in-memory store with synthetic payloads — plus the scenario loader, metrics, expectations
//! and the `cryptosphere-sim` binary. It depends on `cryptosphere-node` for the actors and
//! must never contain a protocol decision of its own.
//!
//! Today this crate exports nothing, on purpose: nothing here pretends to simulate.
