//! In-memory backend: chunks and pins in ordered maps. Used by tests, benchmarks and (later)
//! the simulator. Cloning shares the same storage, which lets tests reach in and damage it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{BackendError, StoreBackend, WriteBatch};
use crate::ids::ChunkId;

#[derive(Debug, Default)]
struct Inner {
    chunks: BTreeMap<ChunkId, Vec<u8>>,
    pins: BTreeSet<ChunkId>,
    chains: BTreeMap<([u8; 32], u64), Vec<u8>>,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    held: BTreeMap<ChunkId, [u8; 32]>,
    /// Test aid: chain appends fail, as on a full disk.
    chain_writes_fail: bool,
}

/// Chunks and pins held in memory; clones share the same maps.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryBackend {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock cannot leave the maps half-updated: every
        // mutation below is a single map operation.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Test aid: flips one bit of a stored chunk, as a failing disk would.
    pub fn flip_bit(&self, id: &ChunkId, bit: usize) -> bool {
        let mut inner = self.lock();
        match inner.chunks.get_mut(id) {
            Some(bytes) if bit / 8 < bytes.len() => {
                bytes[bit / 8] ^= 1 << (bit % 8);
                true
            }
            _ => false,
        }
    }

    /// Test aid: replaces a chunk's stored bytes with anything.
    pub fn set_raw(&self, id: ChunkId, bytes: Vec<u8>) {
        self.lock().chunks.insert(id, bytes);
    }

    /// Test aid: makes every chain append fail (or work again), as a full disk would.
    pub fn set_chain_writes_failing(&self, failing: bool) {
        self.lock().chain_writes_fail = failing;
    }

    /// Test aid: drops a chunk, as a lost disk sector would.
    pub fn remove_raw(&self, id: &ChunkId) -> bool {
        self.lock().chunks.remove(id).is_some()
    }
}

impl StoreBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.lock().chunks.get(id).cloned())
    }

    fn contains(&self, id: &ChunkId) -> Result<bool, BackendError> {
        Ok(self.lock().chunks.contains_key(id))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), BackendError> {
        let mut inner = self.lock();
        for (id, bytes) in batch.chunks {
            inner.chunks.insert(id, bytes);
        }
        for id in batch.pins {
            inner.pins.insert(id);
        }
        for id in batch.unpins {
            inner.pins.remove(&id);
        }
        Ok(())
    }

    fn delete(&self, ids: &[ChunkId]) -> Result<(), BackendError> {
        let mut inner = self.lock();
        for id in ids {
            inner.chunks.remove(id);
        }
        Ok(())
    }

    fn for_each_chunk(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<(), BackendError> {
        let inner = self.lock();
        for (id, bytes) in &inner.chunks {
            visit(*id, bytes.len() as u64);
        }
        Ok(())
    }

    fn held_put(&self, id: &ChunkId, owner: &[u8; 32]) -> Result<(), BackendError> {
        self.lock().held.insert(*id, *owner);
        Ok(())
    }

    fn held_delete(&self, ids: &[ChunkId]) -> Result<(), BackendError> {
        let mut inner = self.lock();
        for id in ids {
            inner.held.remove(id);
        }
        Ok(())
    }

    fn held(&self) -> Result<Vec<(ChunkId, [u8; 32])>, BackendError> {
        Ok(self.lock().held.iter().map(|(id, o)| (*id, *o)).collect())
    }

    fn pins(&self) -> Result<Vec<ChunkId>, BackendError> {
        Ok(self.lock().pins.iter().copied().collect())
    }

    fn compact(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    fn meta_put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        self.lock().meta.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn meta_delete(&self, key: &[u8]) -> Result<(), BackendError> {
        self.lock().meta.remove(key);
        Ok(())
    }

    fn meta_scan(&self, prefix: &[u8]) -> Result<Vec<super::MetaEntry>, BackendError> {
        let inner = self.lock();
        let found = inner
            .meta
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Ok(found)
    }

    fn chain_put(&self, owner: &[u8; 32], seq: u64, record: &[u8]) -> Result<(), BackendError> {
        let mut inner = self.lock();
        if inner.chain_writes_fail {
            return Err(BackendError::NoSpace {
                operation: "append to a chain",
                message: "made to fail (test aid)".into(),
            });
        }
        inner.chains.insert((*owner, seq), record.to_vec());
        Ok(())
    }

    fn chain_range(
        &self,
        owner: &[u8; 32],
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, BackendError> {
        let inner = self.lock();
        Ok(inner
            .chains
            .range((*owner, from_seq)..=(*owner, u64::MAX))
            .take(limit)
            .map(|((_, seq), r)| (*seq, r.clone()))
            .collect())
    }

    fn chain_last(&self, owner: &[u8; 32]) -> Result<Option<(u64, Vec<u8>)>, BackendError> {
        let inner = self.lock();
        Ok(inner
            .chains
            .range((*owner, 0)..=(*owner, u64::MAX))
            .next_back()
            .map(|((_, seq), r)| (*seq, r.clone())))
    }
}
