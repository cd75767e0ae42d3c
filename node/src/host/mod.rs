//! Hosts: the code that touches the outside world on behalf of the library.
//!
//! Today that is the local file system host used by the command line: importing files and
//! directories into a store ([`import`]) and exporting trees back out ([`export`]), and trees
//! as tar streams for the HTTP API ([`tarball`]). The real
//! network host (actix, TCP + Noise) joins it with the network-node issue. Hosts make no
//! decision about what to store or how to encode it; they move bytes and report errors.

pub mod export;
pub mod import;
pub mod pieces;
pub mod tarball;
