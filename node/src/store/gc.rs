//! Garbage collection: keep every chunk reachable from a pin and every chunk held for
//! another peer (a replica it placed here and relies on), delete the rest.
//!
//! Reachability is read from the objects' clear link lists, so it needs no key. If a
//! reachable object cannot be read, nothing is deleted: without its links we cannot know
//! what it keeps alive. A dry run says what a collection would delete, and deletes nothing.

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
    /// Of the kept chunks, those kept because they are held for another peer (and no pin
    /// reaches them).
    pub kept_for_others: u64,
    /// Deleted, or (in a dry run) to be deleted.
    pub removed_chunks: u64,
    pub removed_bytes: u64,
    pub dry_run: bool,
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
    Ok(walk(store, store.pins()?, false)?.0)
}

/// Every chunk id of the tree at `root` this store can reach, and whether any chunk (or an
/// object whose children are then unknown) is missing.
pub fn tree(store: &Store, root: ChunkId) -> Result<(BTreeSet<ChunkId>, bool), GcError> {
    walk(store, vec![root], true)
}

/// Every chunk id reachable from `roots` through the clear link lists. With `missing_ok`, an
/// absent object ends its branch (and is reported) instead of failing the walk.
fn walk(
    store: &Store,
    mut objects: Vec<ChunkId>,
    missing_ok: bool,
) -> Result<(BTreeSet<ChunkId>, bool), GcError> {
    let mut reached = BTreeSet::new();
    let mut missing = false;
    // Objects already parsed: an id first reached through a data link must still be parsed
    // when another link says it is an object, or what it keeps alive would be missed.
    let mut parsed = BTreeSet::new();
    while let Some(id) = objects.pop() {
        reached.insert(id);
        if !parsed.insert(id) {
            continue;
        }
        let stored = match store.get(&id) {
            Err(StoreError::Missing(_)) if missing_ok => {
                missing = true;
                continue;
            }
            other => other.map_err(|source| GcError::Unreadable { id, source })?,
        };
        let (links, _) =
            parse_links(&stored).map_err(|source| GcError::Malformed { id, source })?;
        for link in links {
            reached.insert(link.id);
            if link.kind == LinkKind::Object && !parsed.contains(&link.id) {
                objects.push(link.id);
            } else if missing_ok && link.kind == LinkKind::Data && !store.contains(&link.id)? {
                missing = true;
            }
        }
    }
    Ok((reached, missing))
}

/// Deletes every chunk that no pin reaches and that is not held for another peer.
pub fn collect(store: &Store) -> Result<GcReport, GcError> {
    let (report, doomed) = plan(store)?;
    for batch in doomed.chunks(DELETE_BATCH_CHUNKS) {
        store.delete(batch)?;
    }
    if report.removed_chunks > 0 {
        store.compact()?;
    }
    Ok(report)
}

/// What [`collect`] would delete, deleting nothing: the report, and the chunks.
pub fn dry_run(store: &Store) -> Result<(GcReport, Vec<ChunkId>), GcError> {
    let (report, doomed) = plan(store)?;
    Ok((
        GcReport {
            dry_run: true,
            ..report
        },
        doomed,
    ))
}

fn plan(store: &Store) -> Result<(GcReport, Vec<ChunkId>), GcError> {
    let reached = reachable(store)?;
    let held: BTreeSet<ChunkId> = store.held()?.into_iter().map(|(id, _)| id).collect();
    let mut report = GcReport::default();
    let mut doomed = Vec::new();
    store
        .backend
        .for_each_chunk(&mut |id, len| {
            if reached.contains(&id) {
                report.kept_chunks += 1;
            } else if held.contains(&id) {
                report.kept_chunks += 1;
                report.kept_for_others += 1;
            } else {
                doomed.push(id);
                report.removed_chunks += 1;
                report.removed_bytes += len;
            }
        })
        .map_err(StoreError::from)?;
    Ok((report, doomed))
}
