//! Chains kept in a store: appending checks the record's position against the stored head,
//! reading decodes and hands records back in order. A record's signatures are checked before
//! it gets here (by the agreement that produced it, or by `verify_range` for records received
//! from others); a chain read back is checked again by whoever relies on it.
//!
//! One writer per chain: the head check and the write are not one atomic step, so only the
//! chain's owner (one actor) may append to it. Appends go through the WAL without fsync; a
//! caller that is about to countersign on the strength of its own new record must make the
//! store durable first (the agreement wiring of a later issue does).

use super::record::{Record, RecordError};
use crate::store::{Store, StoreError};

/// Why a chain could not be appended to or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("record {seq} cannot follow the stored head: {why}")]
    Position { seq: u64, why: &'static str },
    #[error("stored record {seq} is unreadable: {source}")]
    Corrupt { seq: u64, source: RecordError },
    #[error("the record stored as number {seq} of this chain is another record")]
    Misfiled { seq: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn decode(owner: &[u8; 32], seq: u64, bytes: &[u8]) -> Result<Record, LogError> {
    let record = Record::from_bytes(bytes).map_err(|source| LogError::Corrupt { seq, source })?;
    if record.seq != seq || record.owner != *owner {
        return Err(LogError::Misfiled { seq });
    }
    Ok(record)
}

/// The last record of `owner`'s chain.
pub fn head(store: &Store, owner: &[u8; 32]) -> Result<Option<Record>, LogError> {
    match store
        .backend()
        .chain_last(owner)
        .map_err(StoreError::from)?
    {
        Some((seq, bytes)) => decode(owner, seq, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Appends `record` to its owner's chain if it continues the stored head.
pub fn append(store: &Store, record: &Record) -> Result<(), LogError> {
    let head = head(store, &record.owner)?;
    let (expected, prev) = head
        .as_ref()
        .map_or((1, [0u8; 32]), |h| (h.seq + 1, h.hash()));
    if record.seq != expected {
        return Err(LogError::Position {
            seq: record.seq,
            why: "its sequence number is not the next one",
        });
    }
    if record.prev != prev {
        return Err(LogError::Position {
            seq: record.seq,
            why: "its previous-record hash is not the head's",
        });
    }
    store
        .backend()
        .chain_put(&record.owner, record.seq, &record.to_bytes())
        .map_err(StoreError::from)?;
    Ok(())
}

/// [`append`], then makes it durable (an empty synced write, which syncs the log the record
/// went through): a peer's own records are on its disk before its countersignature of them
/// leaves (`docs/chain-format.md` §11).
pub fn append_durable(store: &Store, record: &Record) -> Result<(), LogError> {
    append(store, record)?;
    store.flush()?;
    Ok(())
}

/// Up to `limit` records of `owner`'s chain from `from_seq` on.
pub fn read(
    store: &Store,
    owner: &[u8; 32],
    from_seq: u64,
    limit: usize,
) -> Result<Vec<Record>, LogError> {
    store
        .backend()
        .chain_range(owner, from_seq, limit)
        .map_err(StoreError::from)?
        .into_iter()
        .map(|(seq, bytes)| decode(owner, seq, &bytes))
        .collect()
}
