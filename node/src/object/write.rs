//! Writing trees: chunk and encrypt a file's bytes, build its manifest tree, build directory
//! trees from entries, and hand everything to the store in batches, children before
//! parents and the pin last (so a crash never leaves a pin over a partial tree).
//!
//! Chunks of one batch are sealed in parallel (rayon): sealing is pure computation, and the
//! output order, hence every id, is the same whatever the thread count.

use std::io::Read;

use rayon::prelude::*;

use crate::ids::ChunkId;
use crate::limits::{CHUNK_STORED_BYTES_MAX, TREE_LEVEL_MAX};
use crate::object::capability::ReadCap;
use crate::object::chunker::{Chunker, Group};
use crate::object::crypto::{seal_chunk, ConvergenceSecret};
use crate::object::format::{
    check_name, ChildRef, DirEntry, Entries, Node, NodeKind, SealedObject, DIR_ENTRY_FIXED_BYTES,
    LINK_BYTES, MODE_MAX, OBJECT_OVERHEAD_BYTES, REF_FANOUT_MAX,
};
use crate::store::{Store, StoreError, WriteBatch};

/// How the writer shapes trees and batches. Readers accept any fan-out and batching that
/// follow the format rules, so changing these
/// changes ids (and so dedup) but never readability.
#[derive(Debug, Clone)]
pub struct WriteConfig {
    /// Children per manifest node, 4 ..= [`REF_FANOUT_MAX`].
    pub fanout: usize,
    /// Plaintext bytes sealed in parallel before the results are written.
    pub seal_batch_bytes: usize,
    /// Stored bytes gathered before one store write.
    pub write_batch_bytes: usize,
    /// Use the rayon thread pool (both cores) for sealing and overlap the stages. Actors
    /// build content with this off: they never start threads.
    pub parallel: bool,
}

impl Default for WriteConfig {
    fn default() -> Self {
        WriteConfig {
            fanout: REF_FANOUT_MAX,
            seal_batch_bytes: 16 << 20,
            write_batch_bytes: 4 << 20,
            parallel: true,
        }
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    #[error("reading the input failed: {0}")]
    Input(#[from] std::io::Error),
    #[error("entry name {name:?} is invalid: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("two entries share the name {0:?}")]
    DuplicateName(String),
    #[error("entry {name:?} has mode {mode:o}, above {MODE_MAX:o}")]
    BadMode { name: String, mode: u32 },
    #[error("the input is too large: its manifest would need more than {TREE_LEVEL_MAX} levels")]
    TooLarge,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a writer has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Plaintext bytes read from inputs.
    pub bytes_in: u64,
    /// Chunks (data and objects) produced.
    pub chunks: u64,
    /// Chunks the store did not hold yet.
    pub chunks_new: u64,
}

/// Builds trees into a store. Call [`Writer::finish`] to flush and pin the root.
#[derive(Debug)]
pub struct Writer<'s> {
    store: &'s Store,
    config: WriteConfig,
    secret: Option<ConvergenceSecret>,
    batch: WriteBatch,
    batch_bytes: usize,
    stats: WriteStats,
}

impl<'s> Writer<'s> {
    pub fn new(
        store: &'s Store,
        config: WriteConfig,
        secret: Option<ConvergenceSecret>,
    ) -> Writer<'s> {
        assert!(
            (4..=REF_FANOUT_MAX).contains(&config.fanout),
            "fanout {} out of range",
            config.fanout
        );
        Writer {
            store,
            config,
            secret,
            batch: WriteBatch::default(),
            batch_bytes: 0,
            stats: WriteStats::default(),
        }
    }

    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Chunks, encrypts and stores a byte stream; returns the file's capability and size.
    /// `progress` is told the input bytes consumed so far (by this writer, over all files).
    ///
    /// Three stages overlap: while one group of chunks is sealed (in parallel), the next
    /// group is read and cut, and the previous full batch goes to the store. Batches still
    /// reach the store in order, and ids do not depend on the thread count.
    pub fn put_file(
        &mut self,
        source: impl Read + Send,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(ReadCap, u64), WriteError> {
        let mut tree = RefTree::new(NodeKind::File, 0, self.config.fanout);
        let mut chunker = Chunker::new(source);
        let secret = self.secret.clone();
        let group_bytes = self.config.seal_batch_bytes;
        let store = self.store;
        let mut in_flight: Option<WriteBatch> = None;
        let (mut current, mut next) = (Group::default(), Group::default());
        chunker.next_group(&mut current, group_bytes)?;
        while !current.is_empty() {
            let parallel = self.config.parallel;
            let mut write = || in_flight.take().map(|batch| store.write(batch)).transpose();
            let mut read = || chunker.next_group(&mut next, group_bytes);
            let seal = |range: &std::ops::Range<usize>| {
                seal_chunk(&current.bytes[range.clone()], secret.as_ref())
            };
            let ((written, read), sealed) = if parallel {
                rayon::join(
                    || rayon::join(write, read),
                    || current.chunks.par_iter().map(seal).collect::<Vec<_>>(),
                )
            } else {
                (
                    (write(), read()),
                    current.chunks.iter().map(seal).collect::<Vec<_>>(),
                )
            };
            self.stats.chunks_new += written?.unwrap_or(0) as u64;
            read?;
            for chunk in sealed {
                self.stats.bytes_in += chunk.plaintext_len;
                let child = ChildRef {
                    id: chunk.id,
                    key: chunk.key,
                    covered: chunk.plaintext_len,
                };
                tree.push(child, self)?;
                self.add(chunk.id, chunk.stored);
            }
            progress(self.stats.bytes_in);
            in_flight = self.take_full_batch();
            std::mem::swap(&mut current, &mut next);
        }
        if let Some(batch) = in_flight {
            self.write_now(batch)?;
        }
        let root = tree.finish(self)?;
        Ok((
            ReadCap {
                id: root.id,
                key: root.key,
            },
            root.covered,
        ))
    }

    /// Stores a directory made of `entries` (any order; names must be valid and distinct).
    pub fn put_directory(&mut self, mut entries: Vec<DirEntry>) -> Result<ReadCap, WriteError> {
        for entry in &entries {
            check_name(&entry.name).map_err(|reason| WriteError::InvalidName {
                name: entry.name.clone(),
                reason,
            })?;
            if entry.mode > MODE_MAX {
                return Err(WriteError::BadMode {
                    name: entry.name.clone(),
                    mode: entry.mode,
                });
            }
        }
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(WriteError::DuplicateName(pair[0].name.clone()));
        }
        let mut upper = RefTree::new(NodeKind::Directory, 1, self.config.fanout);
        let mut leaf: Vec<DirEntry> = Vec::new();
        let mut leaf_bytes = OBJECT_OVERHEAD_BYTES;
        let mut sealed_leaves = 0usize;
        for entry in entries {
            let entry_bytes = LINK_BYTES + DIR_ENTRY_FIXED_BYTES + entry.name.len();
            if leaf.len() == self.config.fanout || leaf_bytes + entry_bytes > CHUNK_STORED_BYTES_MAX
            {
                let child = self.seal_dir_leaf(std::mem::take(&mut leaf))?;
                upper.push(child, self)?;
                if let Some(batch) = self.take_full_batch() {
                    self.write_now(batch)?;
                }
                sealed_leaves += 1;
                leaf_bytes = OBJECT_OVERHEAD_BYTES;
            }
            leaf_bytes += entry_bytes;
            leaf.push(entry);
        }
        let last = self.seal_dir_leaf(leaf)?;
        let root = if sealed_leaves == 0 {
            last
        } else {
            upper.push(last, self)?;
            upper.finish(self)?
        };
        Ok(ReadCap {
            id: root.id,
            key: root.key,
        })
    }

    fn seal_dir_leaf(&mut self, entries: Vec<DirEntry>) -> Result<ChildRef, WriteError> {
        let node = Node {
            kind: NodeKind::Directory,
            level: 0,
            total: entries.len() as u64,
            entries: Entries::Dir(entries),
        };
        self.store_node(&node)
    }

    fn store_node(&mut self, node: &Node) -> Result<ChildRef, WriteError> {
        let SealedObject { id, key, stored } = node.seal(self.secret.as_ref());
        self.add(id, stored);
        Ok(ChildRef {
            id,
            key,
            covered: node.total,
        })
    }

    fn add(&mut self, id: ChunkId, stored: Vec<u8>) {
        self.stats.chunks += 1;
        self.batch_bytes += stored.len();
        self.batch.chunks.push((id, stored));
    }

    /// The buffered batch, if it has reached the configured size.
    fn take_full_batch(&mut self) -> Option<WriteBatch> {
        if self.batch_bytes < self.config.write_batch_bytes {
            return None;
        }
        self.batch_bytes = 0;
        Some(std::mem::take(&mut self.batch))
    }

    fn write_now(&mut self, batch: WriteBatch) -> Result<(), WriteError> {
        self.stats.chunks_new += self.store.write(batch)? as u64;
        Ok(())
    }

    /// Writes everything still buffered and makes it durable, then pins `pin`.
    pub fn finish(mut self, pin: Option<ReadCap>) -> Result<WriteStats, WriteError> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.pins = pin.map(|cap| cap.id).into_iter().collect();
        batch.sync = true;
        self.write_now(batch)?;
        Ok(self.stats)
    }
}

/// The levels of a manifest tree under construction. `levels[i]` holds the pending children
/// of the node being filled at level `base + i`; a full node is sealed and handed upward.
#[derive(Debug)]
struct RefTree {
    kind: NodeKind,
    base: u8,
    fanout: usize,
    levels: Vec<Vec<ChildRef>>,
}

impl RefTree {
    fn new(kind: NodeKind, base: u8, fanout: usize) -> RefTree {
        RefTree {
            kind,
            base,
            fanout,
            levels: vec![Vec::new()],
        }
    }

    /// Adds a child at the lowest level.
    fn push(&mut self, child: ChildRef, writer: &mut Writer<'_>) -> Result<(), WriteError> {
        self.push_at(0, child, writer)
    }

    /// Adds a child at `levels[index]`, sealing full nodes on the way up (iteratively).
    fn push_at(
        &mut self,
        mut index: usize,
        mut child: ChildRef,
        writer: &mut Writer<'_>,
    ) -> Result<(), WriteError> {
        loop {
            if self.levels[index].len() < self.fanout {
                self.levels[index].push(child);
                return Ok(());
            }
            let full = std::mem::replace(&mut self.levels[index], vec![child]);
            child = self.seal(index, full, writer)?;
            index += 1;
            if index == self.levels.len() {
                self.levels.push(Vec::new());
            }
        }
    }

    fn seal(
        &self,
        index: usize,
        children: Vec<ChildRef>,
        writer: &mut Writer<'_>,
    ) -> Result<ChildRef, WriteError> {
        let level = self.base as usize + index;
        if level > TREE_LEVEL_MAX as usize {
            return Err(WriteError::TooLarge);
        }
        let total = children.iter().map(|c| c.covered).sum();
        writer.store_node(&Node {
            kind: self.kind,
            level: level as u8,
            total,
            entries: Entries::Refs(children),
        })
    }

    /// Seals the partial nodes bottom-up and returns the root.
    fn finish(mut self, writer: &mut Writer<'_>) -> Result<ChildRef, WriteError> {
        let mut index = 0;
        loop {
            let children = std::mem::take(&mut self.levels[index]);
            let node = self.seal(index, children, writer)?;
            if index + 1 == self.levels.len() {
                return Ok(node);
            }
            self.push_at(index + 1, node, writer)?;
            index += 1;
        }
    }
}
