//! Long-chain certificates: each peer's own append-only chain of records of the services it
//! requested and delivered, every record signed by both parties, linked to the one before,
//! and naming no chunk. The byte layout is in `docs/chain-format.md`.
//!
//! This module owns the record format, the rules a chain must follow, fork proofs,
//! disagreement between matching halves, and the three-message agreement that produces a
//! pair of matching records. It does no I/O: chains are stored through the store backends.

pub mod agreement;
pub mod exchange;
pub mod json;
pub mod log;
pub mod record;
pub mod rules;
pub mod signature;

pub use record::{Outcome, Record, RecordError, Role, Service, Transaction, RECORD_BYTES};
pub use rules::{verify_chain, ChainError, Disagreement, ForkProof};
