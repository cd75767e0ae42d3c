//! Garbage collection: keep every chunk reachable from a pin, delete the rest.
//!
//! Reachability is read from the objects' clear link lists, so it needs no key. If a
//! reachable object cannot be read, nothing is deleted: without its links we cannot know
//! what it keeps alive.

use std::collections::BTreeSet;

use super::{Store, StoreError};
use crate::ids::ChunkId;
use crate::object::format::{parse_links, LinkKind, ObjectError};

/// Chunks deleted per atomic delete.
const DELETE_BATCH_CHUNKS: usize = 1024;

/// What a collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub kept_chunks: u64,
    pub removed_chunks: u64,
    pub removed_bytes: u64,
}

/// Why a collection stopped before deleting anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    #[error("cannot tell what pinned object {id} keeps alive, so nothing was collected: {source}")]
    Unreadable { id: ChunkId, source: StoreError },
    #[error("pinned object {id} is malformed, so nothing was collected: {source}")]
    Malformed { id: ChunkId, source: ObjectError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every chunk id reachable from the pins.
pub fn reachable(store: &Store) -> Result<BTreeSet<ChunkId>, GcError> {
    let mut reached = BTreeSet::new();
    // Objects already parsed: an id first reached through a data link must still be parsed
    // when another link says it is an object, or what it keeps alive would be missed.
    let mut parsed = BTreeSet::new();
    let mut objects: Vec<ChunkId> = store.pins()?;
    while let Some(id) = objects.pop() {
        reached.insert(id);
        if !parsed.insert(id) {
            continue;
        }
        let stored = store
            .get(&id)
            .map_err(|source| GcError::Unreadable { id, source })?;
        let (links, _) =
            parse_links(&stored).map_err(|source| GcError::Malformed { id, source })?;
        for link in links {
            reached.insert(link.id);
            if link.kind == LinkKind::Object && !parsed.contains(&link.id) {
                objects.push(link.id);
            }
        }
    }
    Ok(reached)
}

/// Deletes every chunk that no pin reaches.
pub fn collect(store: &Store) -> Result<GcReport, GcError> {
    let reached = reachable(store)?;
    let mut report = GcReport::default();
    let mut doomed = Vec::new();
    let mut sizes = Vec::new();
    store
        .backend
        .for_each_chunk(&mut |id, len| {
            if reached.contains(&id) {
                report.kept_chunks += 1;
            } else {
                doomed.push(id);
                sizes.push(len);
            }
        })
        .map_err(StoreError::from)?;
    for batch in doomed.chunks(DELETE_BATCH_CHUNKS) {
        store.delete(batch)?;
    }
    report.removed_chunks = doomed.len() as u64;
    report.removed_bytes = sizes.iter().sum();
    if report.removed_chunks > 0 {
        store.compact()?;
    }
    Ok(report)
}
