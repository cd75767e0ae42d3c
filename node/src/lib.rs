//! Cryptosphere's node crate: everything a peer is made of.
//!
//! Today it owns the encrypted object format ([`object`]), the local chunk store and its
//! backends ([`store`]), and the local host that imports and exports files for the
//! `cryptosphere` command line ([`host`], [`cli`]). The actors, the chain and the wire protocol
//! arrive with later issues and live here too; the simulator depends on this crate, never the
//! other way round.
//!
//! Rules every module follows: no `unsafe`; anything that came from outside the process is
//! checked and gives a typed error; limits are named in [`limits`].

pub mod chain;
pub mod cli;
pub mod datadir;
pub mod host;
pub mod ids;
pub mod kernel;
pub mod limits;
pub mod net;
pub mod object;
pub mod store;
pub mod wire;

pub use ids::{ChunkId, ChunkKey};
