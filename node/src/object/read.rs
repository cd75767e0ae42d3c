//! Reading trees: stream a file's bytes in order, list a directory, and verify every chunk a
//! capability reaches. Every chunk is checked against its id by the store, every object's
//! shape against what its parent promised; the first problem stops the read and names the
//! chunk.
//!
//! Walks are iterative (explicit stacks): tree depth is bounded by the format, but a peer
//! controls the bytes.

use std::collections::BTreeSet;
use std::io::Write;

use rayon::prelude::*;

use crate::ids::{ChunkId, ChunkKey};
use crate::limits::TAG_BYTES;
use crate::object::capability::{Capability, ReadCap};
use crate::object::crypto;
use crate::object::format::{
    parse_links, ChildRef, DirEntry, Entries, EntryKind, LinkKind, Node, NodeKind, ObjectError,
};
use crate::store::{Store, StoreError};

/// Data chunks fetched and decrypted in parallel before being written out in order.
const READ_BATCH_CHUNKS: usize = 32;

/// Why a read failed. Every variant about data names the chunk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("object {id} is malformed: {source}")]
    Object { id: ChunkId, source: ObjectError },
    #[error("data chunk {0} does not decrypt under the key its manifest gives")]
    ChunkDecrypt(ChunkId),
    #[error("data chunk {id} holds {found} bytes but its manifest says {expected}")]
    ChunkLength {
        id: ChunkId,
        expected: u64,
        found: u64,
    },
    #[error("object {id} does not match its parent: {problem}")]
    Shape { id: ChunkId, problem: String },
    #[error("the capability points at a {found}, not a {expected}")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("writing the output failed: {0}")]
    Output(std::io::Error),
}

impl ReadError {
    /// The chunk this error is about, if it is about one.
    pub fn chunk(&self) -> Option<ChunkId> {
        match self {
            ReadError::Store(e) => e.chunk(),
            ReadError::Object { id, .. }
            | ReadError::ChunkDecrypt(id)
            | ReadError::ChunkLength { id, .. }
            | ReadError::Shape { id, .. } => Some(*id),
            ReadError::WrongKind { .. } | ReadError::Output(_) => None,
        }
    }

    /// True when the store's data is at fault (missing, corrupt or malformed chunks).
    pub fn is_integrity(&self) -> bool {
        match self {
            ReadError::Store(e) => e.chunk().is_some(),
            ReadError::WrongKind { .. } | ReadError::Output(_) => false,
            _ => true,
        }
    }
}

/// What a node must look like, as promised by its parent.
#[derive(Debug, Clone, Copy)]
struct Expect {
    kind: NodeKind,
    level: Option<u8>,
    total: Option<u64>,
}

/// What the child `r` of interior node `parent` must look like.
fn expect_child(parent: &Node, r: &ChildRef) -> Expect {
    Expect {
        kind: parent.kind,
        level: parent.level.checked_sub(1),
        total: Some(r.covered),
    }
}

pub fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Directory => "directory",
    }
}

/// Data chunks on their way out of a get: `ready` holds decrypted chunks waiting to be
/// written while the chunks of `refs` are fetched and decrypted, in parallel with the write.
struct Pipeline<'o> {
    out: &'o mut (dyn Write + Send),
    ready: Vec<Vec<u8>>,
    refs: Vec<ChildRef>,
    written: u64,
}

impl Pipeline<'_> {
    /// Writes `ready` while fetching `refs`; the fetched chunks become the next `ready`.
    fn pump(&mut self, reader: &Reader<'_>) -> Result<(), ReadError> {
        let ready = std::mem::take(&mut self.ready);
        let refs = std::mem::take(&mut self.refs);
        let out = &mut *self.out;
        let (written, fetched) = rayon::join(
            move || -> Result<u64, ReadError> {
                let mut bytes = 0;
                for plaintext in ready {
                    out.write_all(&plaintext).map_err(ReadError::Output)?;
                    bytes += plaintext.len() as u64;
                }
                Ok(bytes)
            },
            || {
                refs.par_iter()
                    .map(|r| reader.data_chunk(r))
                    .collect::<Result<Vec<_>, _>>()
            },
        );
        self.written += written?;
        self.ready = fetched?;
        Ok(())
    }
}

/// Counts from a verification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub chunks: u64,
    pub bytes: u64,
}

/// Reads trees out of a store.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'s> {
    store: &'s Store,
}

impl<'s> Reader<'s> {
    pub fn new(store: &'s Store) -> Reader<'s> {
        Reader { store }
    }

    /// Fetches, decrypts and decodes the root object of `cap`.
    pub fn root(&self, cap: &ReadCap) -> Result<Node, ReadError> {
        self.node(cap.id, &cap.key, None)
    }

    fn node(&self, id: ChunkId, key: &ChunkKey, expect: Option<Expect>) -> Result<Node, ReadError> {
        let stored = self.store.get(&id)?;
        let node = Node::open(&stored, key).map_err(|source| ReadError::Object { id, source })?;
        if let Some(expect) = expect {
            let mut problems = Vec::new();
            if node.kind != expect.kind {
                problems.push(format!(
                    "it is a {} node where a {} node belongs",
                    kind_name(node.kind),
                    kind_name(expect.kind)
                ));
            }
            if let Some(level) = expect.level.filter(|level| *level != node.level) {
                problems.push(format!(
                    "it is at level {} where level {level} belongs",
                    node.level
                ));
            }
            if let Some(total) = expect.total.filter(|total| *total != node.total) {
                problems.push(format!(
                    "it covers {} where its parent says {total}",
                    node.total
                ));
            }
            if !problems.is_empty() {
                return Err(ReadError::Shape {
                    id,
                    problem: problems.join("; "),
                });
            }
        }
        Ok(node)
    }

    fn root_of_kind(&self, cap: &ReadCap, kind: NodeKind) -> Result<Node, ReadError> {
        let root = self.root(cap)?;
        if root.kind != kind {
            return Err(ReadError::WrongKind {
                expected: kind_name(kind),
                found: kind_name(root.kind),
            });
        }
        Ok(root)
    }

    /// Fetches the child `r` of interior node `parent`, checking it is what the parent says.
    fn child(&self, parent: &Node, r: &ChildRef) -> Result<Node, ReadError> {
        self.node(r.id, &r.key, Some(expect_child(parent, r)))
    }

    /// Streams a file's plaintext into `out` in order; returns the bytes written.
    /// `progress` is told the bytes written so far.
    pub fn copy_file(
        &self,
        cap: &ReadCap,
        out: &mut (dyn Write + Send),
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, ReadError> {
        let root = self.root_of_kind(cap, NodeKind::File)?;
        let declared = root.total;
        let mut pipeline = Pipeline {
            out,
            ready: Vec::new(),
            refs: Vec::new(),
            written: 0,
        };
        // Each stack frame: one node and the index of the next child to visit.
        let mut stack: Vec<(Node, usize)> = vec![(root, 0)];
        while let Some((node, next)) = stack.pop() {
            let Entries::Refs(refs) = &node.entries else {
                unreachable!("file nodes always hold refs")
            };
            if node.level == 0 {
                for r in refs {
                    pipeline.refs.push(*r);
                    if pipeline.refs.len() == READ_BATCH_CHUNKS {
                        pipeline.pump(self)?;
                        progress(pipeline.written);
                    }
                }
                continue;
            }
            if next == refs.len() {
                continue;
            }
            let child = self.child(&node, &refs[next])?;
            stack.push((node, next + 1));
            stack.push((child, 0));
        }
        // Once for the last refs, once more to write what that fetched.
        pipeline.pump(self)?;
        pipeline.pump(self)?;
        progress(pipeline.written);
        assert_eq!(
            pipeline.written, declared,
            "node totals were checked on the way down"
        );
        Ok(pipeline.written)
    }

    /// Streams the bytes `range` of a file's plaintext into `out` (clipped to the file),
    /// one chunk at a time: subtrees and chunks outside the range are not read, and at most
    /// one chunk's ciphertext and plaintext are held at once. Returns the bytes written.
    pub fn copy_range(
        &self,
        cap: &ReadCap,
        range: std::ops::Range<u64>,
        out: &mut (dyn Write + Send),
    ) -> Result<u64, ReadError> {
        let root = self.root_of_kind(cap, NodeKind::File)?;
        let end = range.end.min(root.total);
        let start = range.start.min(end);
        let mut written = 0u64;
        // Each frame: a node, the index of its next child, and where that child starts.
        let mut stack: Vec<(Node, usize, u64)> = vec![(root, 0, 0)];
        while let Some((node, next, at)) = stack.pop() {
            let Entries::Refs(refs) = &node.entries else {
                unreachable!("file nodes always hold refs")
            };
            let Some(r) = refs.get(next).copied() else {
                continue;
            };
            let (lo, hi) = (at, at.saturating_add(r.covered));
            if lo >= end {
                break;
            }
            let level = node.level;
            stack.push((node, next + 1, hi));
            if hi <= start {
                continue;
            }
            if level == 0 {
                let plaintext = self.data_chunk(&r)?;
                let from = usize::try_from(start.saturating_sub(lo)).unwrap_or(usize::MAX);
                let to = usize::try_from(end.min(hi) - lo).unwrap_or(usize::MAX);
                let piece = plaintext.get(from..to).unwrap_or_default();
                out.write_all(piece).map_err(ReadError::Output)?;
                written += piece.len() as u64;
            } else {
                let Some((parent, _, _)) = stack.last() else {
                    unreachable!("the parent was just pushed")
                };
                let child = self.child(parent, &r)?;
                stack.push((child, 0, lo));
            }
        }
        Ok(written)
    }

    fn data_chunk(&self, r: &ChildRef) -> Result<Vec<u8>, ReadError> {
        let stored = self.store.get(&r.id)?;
        let plaintext =
            crypto::open(&r.key, &stored, &[]).map_err(|_| ReadError::ChunkDecrypt(r.id))?;
        if plaintext.len() as u64 != r.covered {
            return Err(ReadError::ChunkLength {
                id: r.id,
                expected: r.covered,
                found: plaintext.len() as u64,
            });
        }
        Ok(plaintext)
    }

    /// The root of a directory entry's tree, checked against the kind the entry claims (a
    /// mismatch is malformed data, named by the entry's id).
    pub fn check_entry(&self, entry: &DirEntry) -> Result<Node, ReadError> {
        let kind = match entry.kind {
            EntryKind::File => NodeKind::File,
            EntryKind::Directory => NodeKind::Directory,
        };
        self.node(
            entry.cap.id,
            &entry.cap.key,
            Some(Expect {
                kind,
                level: None,
                total: None,
            }),
        )
    }

    /// The entries of a directory, in name order.
    pub fn list_dir(&self, cap: &ReadCap) -> Result<Vec<DirEntry>, ReadError> {
        self.walk_dir(cap, &mut VerifyReport::default())
    }

    /// Lists a directory, counting the nodes it reads into `report`.
    fn walk_dir(
        &self,
        cap: &ReadCap,
        report: &mut VerifyReport,
    ) -> Result<Vec<DirEntry>, ReadError> {
        let root = self.root_of_kind(cap, NodeKind::Directory)?;
        let mut listing: Vec<DirEntry> = Vec::new();
        // Each frame: a node, its id, and the index of the next child to visit. Names must
        // increase strictly across leaves, so no leaf can be visited twice.
        let mut stack: Vec<(Node, ChunkId, usize)> = vec![(root, cap.id, 0)];
        while let Some((node, id, next)) = stack.pop() {
            if next == 0 {
                report.chunks += 1;
                report.bytes += node.stored_len() as u64;
            }
            match &node.entries {
                Entries::Dir(entries) => {
                    if let (Some(last), Some(first)) = (listing.last(), entries.first()) {
                        if last.name.as_bytes() >= first.name.as_bytes() {
                            return Err(ReadError::Shape {
                                id,
                                problem: format!(
                                    "entry {:?} is out of name order across directory nodes",
                                    first.name
                                ),
                            });
                        }
                    }
                    listing.extend(entries.iter().cloned());
                }
                Entries::Refs(refs) => {
                    if next == refs.len() {
                        continue;
                    }
                    let child_id = refs[next].id;
                    let child = self.child(&node, &refs[next])?;
                    stack.push((node, id, next + 1));
                    stack.push((child, child_id, 0));
                }
            }
        }
        Ok(listing)
    }

    /// Checks every chunk `cap` reaches. With a read capability every object is decrypted
    /// and checked against its parent (entries against the kind they claim, names in order
    /// across directory nodes) and every data chunk is decrypted; with a verify capability
    /// every chunk's id and every object's link list are checked. Work is linear in the
    /// distinct (chunk, key, expected shape) combinations, however often a subtree repeats.
    pub fn verify(&self, cap: &Capability) -> Result<VerifyReport, ReadError> {
        match cap {
            Capability::Read(cap) => self.verify_readable(cap),
            Capability::Verify(cap) => self.verify_ids(cap.id),
        }
    }

    fn verify_ids(&self, root: ChunkId) -> Result<VerifyReport, ReadError> {
        let mut report = VerifyReport::default();
        // Keep (id, kind): an id reached first as data and later as an object must still be
        // parsed as an object.
        let mut seen = BTreeSet::from([(root, LinkKind::Object as u8)]);
        let mut stack = vec![(root, LinkKind::Object)];
        while let Some((id, kind)) = stack.pop() {
            let stored = self.store.get(&id)?;
            report.chunks += 1;
            report.bytes += stored.len() as u64;
            if kind == LinkKind::Data && stored.len() <= TAG_BYTES {
                return Err(ReadError::Shape {
                    id,
                    problem: format!(
                        "a data chunk of {} bytes cannot hold a tag and data",
                        stored.len()
                    ),
                });
            }
            if kind == LinkKind::Object {
                let (links, _) =
                    parse_links(&stored).map_err(|source| ReadError::Object { id, source })?;
                for link in links {
                    if seen.insert((link.id, link.kind as u8)) {
                        stack.push((link.id, link.kind));
                    }
                }
            }
        }
        Ok(report)
    }

    fn verify_readable(&self, cap: &ReadCap) -> Result<VerifyReport, ReadError> {
        let mut report = VerifyReport::default();
        let mut seen = Seen::default();
        let root = self.root(cap)?;
        let mut trees: Vec<(ReadCap, NodeKind)> = vec![(*cap, root.kind)];
        while let Some((tree, kind)) = trees.pop() {
            if !seen.trees.insert((tree.id, tree.key.0, kind as u8)) {
                continue;
            }
            match kind {
                NodeKind::File => self.verify_file(&tree, &mut report, &mut seen)?,
                NodeKind::Directory => {
                    for entry in self.walk_dir(&tree, &mut report)? {
                        let node = self.check_entry(&entry)?;
                        trees.push((entry.cap, node.kind));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Checks one file tree: its nodes against their parents, its data chunks by
    /// decryption.
    fn verify_file(
        &self,
        cap: &ReadCap,
        report: &mut VerifyReport,
        seen: &mut Seen,
    ) -> Result<(), ReadError> {
        let root = self.root_of_kind(cap, NodeKind::File)?;
        report.chunks += 1;
        report.bytes += root.stored_len() as u64;
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            let Entries::Refs(refs) = &node.entries else {
                unreachable!("file nodes always hold refs")
            };
            if node.level == 0 {
                let fresh: Vec<ChildRef> = refs
                    .iter()
                    .filter(|r| seen.data.insert((r.id, r.key.0, r.covered)))
                    .copied()
                    .collect();
                let results: Vec<Result<u64, ReadError>> = fresh
                    .par_iter()
                    .map(|r| self.data_chunk(r).map(|_| r.covered))
                    .collect();
                for result in results {
                    report.chunks += 1;
                    report.bytes += result? + TAG_BYTES as u64;
                }
                continue;
            }
            for r in refs {
                if seen.nodes.insert((r.id, r.key.0, node.level, r.covered)) {
                    let child = self.child(&node, r)?;
                    report.chunks += 1;
                    report.bytes += child.stored_len() as u64;
                    stack.push(child);
                }
            }
        }
        Ok(())
    }
}

/// What a read-capability verification has already checked.
#[derive(Debug, Default)]
struct Seen {
    /// Trees (root id, key, kind).
    trees: BTreeSet<(ChunkId, [u8; 32], u8)>,
    /// File nodes (id, key, parent level, covered).
    nodes: BTreeSet<(ChunkId, [u8; 32], u8, u64)>,
    /// Data chunks (id, key, length).
    data: BTreeSet<(ChunkId, [u8; 32], u64)>,
}
