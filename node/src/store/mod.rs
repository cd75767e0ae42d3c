//! The local chunk store: a [`StoreBackend`] trait with in-memory and RocksDB backends, and
//! the [`Store`] wrapper that every caller uses.
//!
//! The store holds stored chunks (ciphertext) by id, and pins (root ids that garbage
//! collection keeps, with everything they reach). It never returns wrong bytes: every read
//! rechecks SHA-256(bytes) == id. It knows nothing about keys or plaintext.

pub mod gc;
pub mod memory;
pub mod rocks;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::ids::ChunkId;
use crate::limits::CHUNK_STORED_BYTES_MAX;
use crate::object::crypto::chunk_id;

pub use memory::MemoryBackend;
pub use rocks::RocksBackend;

/// Chunks to store and pins to change, in one call. See [`StoreBackend::write`] for what a
/// crash may leave of it.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub chunks: Vec<(ChunkId, Vec<u8>)>,
    pub pins: Vec<ChunkId>,
    pub unpins: Vec<ChunkId>,
    /// Make the write durable (fsync) before returning.
    pub sync: bool,
    /// Write the chunks through the write-ahead log (not synced by itself: the next synced
    /// write, such as the mark of a chunk held for another peer, makes them durable).
    pub logged: bool,
}

/// A metadata entry: key and value.
pub type MetaEntry = (Vec<u8>, Vec<u8>);

/// A failure inside a backend (the disk, RocksDB, a lock), as opposed to bad data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    #[error("the data directory {0} is in use by another cryptosphere process")]
    Locked(String),
    #[error("the data directory was written by store format version {found}; this program uses version {expected}")]
    FormatVersion { found: String, expected: u32 },
    #[error("the disk is full: RocksDB could not {operation} ({message}); free space, and the next write reopens the store")]
    NoSpace {
        operation: &'static str,
        message: String,
    },
    #[error("RocksDB failed to {operation}: {message}")]
    Rocks {
        operation: &'static str,
        message: String,
    },
    #[error("the chunk index entry for {0} is malformed")]
    BadIndex(String),
}

/// Storage of chunks and pins. Implementations need not check ids (the [`Store`] does).
pub trait StoreBackend: Send + Sync + fmt::Debug {
    /// Short name for messages and test labels.
    fn name(&self) -> &'static str;
    /// What is wrong with the backend now, if anything (a write failed for lack of space,
    /// and the store has not been reopened since).
    fn health(&self) -> Option<String> {
        None
    }
    fn get(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, BackendError>;
    /// Like `get`, with the backend's own checksums verified (RocksDB's CRC32C over the
    /// value), for bytes that go to a peer, which checks SHA-256 itself. A backend without
    /// checksums returns `None` here, and the caller hashes instead.
    fn get_checksummed(&self, id: &ChunkId) -> Option<Result<Option<Vec<u8>>, BackendError>> {
        let _ = id;
        None
    }
    fn contains(&self, id: &ChunkId) -> Result<bool, BackendError>;
    /// Stores the chunks, then changes the pins. Each chunk is stored atomically (whole or
    /// not at all, never separated from its index entry); a crash may keep any subset of a
    /// batch's chunks. Pins change only after every chunk of the batch is durable, and are
    /// durable on return, as is everything when `sync` is set. Chunks already present are
    /// overwritten.
    fn write(&self, batch: WriteBatch) -> Result<(), BackendError>;
    /// Removes chunks atomically (and leaves pins alone).
    fn delete(&self, ids: &[ChunkId]) -> Result<(), BackendError>;
    /// Calls `visit` with every stored chunk's id and stored length, in id order.
    fn for_each_chunk(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<(), BackendError>;
    fn pins(&self) -> Result<Vec<ChunkId>, BackendError>;
    /// Reclaims space freed by deletes, if the backend needs that.
    fn compact(&self) -> Result<(), BackendError>;
    /// Stores record `seq` of `owner`'s chain, atomically (whole or not at all).
    fn chain_put(&self, owner: &[u8; 32], seq: u64, record: &[u8]) -> Result<(), BackendError>;
    /// Up to `limit` stored records of `owner`'s chain from `from_seq` on, in order.
    fn chain_range(
        &self,
        owner: &[u8; 32],
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, BackendError>;
    /// A small value of the store's own (identity, settings).
    fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    fn meta_put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError>;
    /// Deletes a metadata entry (nothing if there is none).
    fn meta_delete(&self, key: &[u8]) -> Result<(), BackendError>;
    /// Every metadata entry whose key starts with `prefix`, in key order.
    fn meta_scan(&self, prefix: &[u8]) -> Result<Vec<MetaEntry>, BackendError>;
    /// The record of `owner`'s chain with the highest sequence number.
    fn chain_last(&self, owner: &[u8; 32]) -> Result<Option<(u64, Vec<u8>)>, BackendError>;
    /// Marks chunk `id` as held for the peer `owner` (garbage collection keeps it), durably.
    fn held_put(&self, id: &ChunkId, owner: &[u8; 32]) -> Result<(), BackendError>;
    /// Unmarks chunks held for others (they stay stored until collected).
    fn held_delete(&self, ids: &[ChunkId]) -> Result<(), BackendError>;
    /// Every chunk held for others, with the peer it is held for, in id order.
    fn held(&self) -> Result<Vec<(ChunkId, [u8; 32])>, BackendError>;
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("chunk {0} is missing from the store")]
    Missing(ChunkId),
    #[error("chunk {0} is corrupt: its bytes no longer hash to its id")]
    Corrupt(ChunkId),
    #[error("chunk {id} is {len} bytes, over the {CHUNK_STORED_BYTES_MAX} byte limit")]
    TooLarge { id: ChunkId, len: usize },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl StoreError {
    /// The chunk this error is about, if it is about one.
    pub fn chunk(&self) -> Option<ChunkId> {
        match self {
            StoreError::Missing(id) | StoreError::Corrupt(id) | StoreError::TooLarge { id, .. } => {
                Some(*id)
            }
            StoreError::Backend(_) => None,
        }
    }
}

/// Counts of what the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    pub chunks: u64,
    pub bytes: u64,
    pub pins: u64,
}

/// The store every caller uses: a backend plus the id checks.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn StoreBackend>,
}

impl Store {
    pub fn new(backend: impl StoreBackend + 'static) -> Store {
        Store {
            backend: Arc::new(backend),
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> Store {
        Store::new(MemoryBackend::default())
    }

    /// Opens (creating if needed) the RocksDB store in `dir`.
    pub fn open_rocks(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::new(RocksBackend::open(dir)?))
    }

    /// The backend underneath, for raw access that skips the id checks (repair tools and
    /// tests that need to damage a store on purpose).
    pub fn backend(&self) -> &dyn StoreBackend {
        self.backend.as_ref()
    }

    /// Reads a chunk and checks that its bytes hash to `id`.
    pub fn get(&self, id: &ChunkId) -> Result<Vec<u8>, StoreError> {
        let bytes = self.backend.get(id)?.ok_or(StoreError::Missing(*id))?;
        if bytes.len() > CHUNK_STORED_BYTES_MAX || chunk_id(&bytes) != *id {
            return Err(StoreError::Corrupt(*id));
        }
        Ok(bytes)
    }

    /// A chunk for another peer, who checks it against its id on arrival: damage is caught
    /// here by the backend's checksums (CRC32C, in hardware) rather than by hashing it twice
    /// over; a backend without checksums is checked as `get` checks. Users' reads go through
    /// `get`.
    pub fn get_for_peer(&self, id: &ChunkId) -> Result<Vec<u8>, StoreError> {
        match self.backend.get_checksummed(id) {
            Some(read) => {
                let bytes = read?.ok_or(StoreError::Missing(*id))?;
                if bytes.len() > CHUNK_STORED_BYTES_MAX {
                    return Err(StoreError::Corrupt(*id));
                }
                Ok(bytes)
            }
            None => self.get(id),
        }
    }

    pub fn contains(&self, id: &ChunkId) -> Result<bool, StoreError> {
        Ok(self.backend.contains(id)?)
    }

    /// Writes a batch of chunks this process just produced (so their ids are the hashes it
    /// just computed), skipping chunks already held. Returns how many chunks were new.
    pub fn write(&self, mut batch: WriteBatch) -> Result<usize, StoreError> {
        let mut seen = BTreeSet::new();
        let mut fresh = Vec::with_capacity(batch.chunks.len());
        for (id, bytes) in batch.chunks.drain(..) {
            assert!(
                bytes.len() <= CHUNK_STORED_BYTES_MAX,
                "writer produced an oversized chunk"
            );
            debug_assert_eq!(
                chunk_id(&bytes),
                id,
                "writer produced a chunk under the wrong id"
            );
            // A chunk already held is skipped only if its bytes still check out, so putting
            // the same data again repairs a damaged copy.
            if seen.insert(id) && (!self.backend.contains(&id)? || self.get(&id).is_err()) {
                fresh.push((id, bytes));
            }
        }
        let count = fresh.len();
        batch.chunks = fresh;
        if !batch.chunks.is_empty() || !batch.pins.is_empty() || !batch.unpins.is_empty() {
            self.backend.write(batch)?;
        }
        Ok(count)
    }

    /// Stores one chunk that came from outside the process, after checking its id.
    pub fn put_verified(&self, id: ChunkId, bytes: Vec<u8>) -> Result<bool, StoreError> {
        if bytes.len() > CHUNK_STORED_BYTES_MAX {
            return Err(StoreError::TooLarge {
                id,
                len: bytes.len(),
            });
        }
        if chunk_id(&bytes) != id {
            return Err(StoreError::Corrupt(id));
        }
        Ok(self.write(WriteBatch {
            chunks: vec![(id, bytes)],
            ..WriteBatch::default()
        })? == 1)
    }

    /// Stores one chunk its caller has already checked against its id (hashing it once on
    /// arrival is enough; every read checks it again).
    pub fn put_trusted(&self, id: ChunkId, bytes: Vec<u8>) -> Result<bool, StoreError> {
        self.put_checked(id, bytes, false)
    }

    /// Stores, for another peer, a chunk checked against its id, and marks it held for
    /// `owner`; both are durable when this returns (one synced write-ahead log), so a
    /// `Stored` answer survives a crash of the process or the machine.
    pub fn put_for(&self, id: ChunkId, bytes: Vec<u8>, owner: [u8; 32]) -> Result<(), StoreError> {
        self.put_checked(id, bytes, true)?;
        self.hold_for(id, owner)
    }

    fn put_checked(&self, id: ChunkId, bytes: Vec<u8>, logged: bool) -> Result<bool, StoreError> {
        if bytes.len() > CHUNK_STORED_BYTES_MAX {
            return Err(StoreError::TooLarge {
                id,
                len: bytes.len(),
            });
        }
        Ok(self.write(WriteBatch {
            chunks: vec![(id, bytes)],
            logged,
            ..WriteBatch::default()
        })? == 1)
    }

    /// Makes everything written so far durable (the node calls this when it shuts down).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.backend.write(WriteBatch {
            sync: true,
            ..WriteBatch::default()
        })?;
        Ok(())
    }

    pub fn pin(&self, root: ChunkId) -> Result<(), StoreError> {
        self.write(WriteBatch {
            pins: vec![root],
            sync: true,
            ..WriteBatch::default()
        })?;
        Ok(())
    }

    pub fn unpin(&self, root: ChunkId) -> Result<(), StoreError> {
        self.write(WriteBatch {
            unpins: vec![root],
            sync: true,
            ..WriteBatch::default()
        })?;
        Ok(())
    }

    /// Marks `id` as held for the peer `owner`: garbage collection keeps it while marked.
    pub fn hold_for(&self, id: ChunkId, owner: [u8; 32]) -> Result<(), StoreError> {
        Ok(self.backend.held_put(&id, &owner)?)
    }

    /// Ends holding `ids` for others.
    pub fn release(&self, ids: &[ChunkId]) -> Result<(), StoreError> {
        Ok(self.backend.held_delete(ids)?)
    }

    /// Every chunk held for others, and for whom.
    pub fn held(&self) -> Result<Vec<(ChunkId, [u8; 32])>, StoreError> {
        Ok(self.backend.held()?)
    }

    /// What is wrong with the store now (`None`: it takes writes).
    pub fn health(&self) -> Option<String> {
        self.backend.health()
    }

    pub fn pins(&self) -> Result<Vec<ChunkId>, StoreError> {
        Ok(self.backend.pins()?)
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut stats = StoreStats {
            pins: self.backend.pins()?.len() as u64,
            ..StoreStats::default()
        };
        self.backend.for_each_chunk(&mut |_, len| {
            stats.chunks += 1;
            stats.bytes += len;
        })?;
        Ok(stats)
    }

    /// Every stored chunk id, in order.
    pub fn chunk_ids(&self) -> Result<Vec<ChunkId>, StoreError> {
        let mut ids = Vec::new();
        self.backend.for_each_chunk(&mut |id, _| ids.push(id))?;
        Ok(ids)
    }

    /// Rechecks every stored chunk; returns the ids whose bytes no longer match.
    pub fn scrub(&self) -> Result<Vec<ChunkId>, StoreError> {
        let mut bad = Vec::new();
        for id in self.chunk_ids()? {
            match self.get(&id) {
                Ok(_) => {}
                Err(StoreError::Corrupt(id)) | Err(StoreError::Missing(id)) => bad.push(id),
                Err(other) => return Err(other),
            }
        }
        Ok(bad)
    }

    pub(crate) fn delete(&self, ids: &[ChunkId]) -> Result<(), StoreError> {
        Ok(self.backend.delete(ids)?)
    }

    pub(crate) fn compact(&self) -> Result<(), StoreError> {
        Ok(self.backend.compact()?)
    }
}

#[cfg(test)]
mod tests;
