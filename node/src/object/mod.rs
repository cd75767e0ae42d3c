//! The encrypted object format: chunking, convergent encryption, manifests and directory
//! trees, capabilities and heads. The byte layouts are written out in `docs/object-format.md`.
//!
//! This module decides what bytes an object is; it never does I/O of its own. Reading and
//! writing go through a [`crate::store::Store`], and the file system belongs to
//! [`crate::host`].

pub mod capability;
pub mod chunker;
pub mod crypto;
pub mod format;
pub mod head;
pub mod read;
pub mod write;

pub use capability::{CapError, Capability, ReadCap, VerifyCap};
pub use crypto::ConvergenceSecret;
pub use format::{DirEntry, EntryKind, Link, LinkKind, Node, NodeKind, ObjectError};
pub use read::{ReadError, Reader};
pub use write::{WriteConfig, WriteError, Writer};
