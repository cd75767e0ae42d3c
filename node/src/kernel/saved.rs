//! What the actors keep in the store's metadata so that a restart that loses memory (a
//! process killed, a simulated reboot) can rebuild them at `Start`: what this peer published
//! (each root with its tree's chunks), its contracts and the trees it fetched and kept (the
//! negotiator's), the roots it holds for others and announces (the store actor's), and the
//! peers it
//! knew with their addresses (the transport's, to dial again). The keys, the little-endian
//! encodings and their strict decoders; an entry that does not decode is skipped, never
//! half-read.

use super::{PeerId, Time};
use crate::ids::ChunkId;
use crate::store::{Store, StoreError};

/// `saved/published/<root>` → the tree's chunk ids, 32 bytes each.
const PUBLISHED: &[u8] = b"saved/published/";
/// `saved/contracts` → [`SavedContract`]s, [`CONTRACT_LEN`] bytes each.
const CONTRACTS: &[u8] = b"saved/contracts";
/// Peer id, bytes for me, bytes for them, term, time left in the term.
const CONTRACT_LEN: usize = 32 + 8 * 4;

/// `saved/kept/<root>` → nothing: a tree fetched whole and kept (announced again at a start
/// if it is still whole).
const KEPT: &[u8] = b"saved/kept/";
/// `saved/provided/<root>` → nothing: a tree root held for another peer that asked us to
/// announce it (announced again at a start while we still hold it).
const PROVIDED: &[u8] = b"saved/provided/";
/// `saved/contacts` → (peer id, address length `u8`, address as text) each.
const CONTACTS: &[u8] = b"saved/contacts";
/// Contacts kept to dial at a restart.
pub const CONTACTS_MAX: usize = 32;

/// A contract as saved: its term's end as the time left, since a node's clock starts again
/// at 0 when it restarts (the time it was down is not counted against the term).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedContract {
    pub peer: PeerId,
    pub for_me_bytes: u64,
    pub for_them_bytes: u64,
    pub term_us: u64,
    pub left_us: u64,
}

/// Saves that this peer published the tree at `root`, made of `chunks`.
pub fn save_published(store: &Store, root: &ChunkId, chunks: &[ChunkId]) -> Result<(), StoreError> {
    let mut key = PUBLISHED.to_vec();
    key.extend_from_slice(&root.0);
    let value: Vec<u8> = chunks.iter().flat_map(|c| c.0).collect();
    Ok(store.backend().meta_put(&key, &value)?)
}

/// Every tree this peer published, by root, with its chunks.
pub fn published(store: &Store) -> Result<Vec<(ChunkId, Vec<ChunkId>)>, StoreError> {
    let entries = store.backend().meta_scan(PUBLISHED)?;
    Ok(entries
        .into_iter()
        .filter_map(|(key, value)| {
            let root = ChunkId(key.get(PUBLISHED.len()..)?.try_into().ok()?);
            if value.len() % 32 != 0 {
                return None;
            }
            let chunks = value
                .chunks_exact(32)
                .map(|c| ChunkId(c.try_into().unwrap_or([0; 32])))
                .collect();
            Some((root, chunks))
        })
        .collect())
}

/// Saves that the tree at `root` was fetched whole and kept here.
pub fn save_kept(store: &Store, root: &ChunkId) -> Result<(), StoreError> {
    mark_root(store, KEPT, root, true)
}

/// Every tree saved as fetched whole and kept, by root.
pub fn kept(store: &Store) -> Result<Vec<ChunkId>, StoreError> {
    roots_under(store, KEPT)
}

/// Saves (`true`) or forgets that we announce the root `root` held for another peer.
pub fn save_provided(store: &Store, root: &ChunkId, provided: bool) -> Result<(), StoreError> {
    mark_root(store, PROVIDED, root, provided)
}

/// Every root held for another peer that we announce.
pub fn provided(store: &Store) -> Result<Vec<ChunkId>, StoreError> {
    roots_under(store, PROVIDED)
}

/// Puts (`on`) or deletes the empty entry `prefix ‖ root`.
fn mark_root(store: &Store, prefix: &[u8], root: &ChunkId, on: bool) -> Result<(), StoreError> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&root.0);
    if on {
        Ok(store.backend().meta_put(&key, &[])?)
    } else {
        Ok(store.backend().meta_delete(&key)?)
    }
}

/// The roots of the entries under `prefix` (an entry whose key is not `prefix ‖ 32 bytes`
/// is skipped).
fn roots_under(store: &Store, prefix: &[u8]) -> Result<Vec<ChunkId>, StoreError> {
    let entries = store.backend().meta_scan(prefix)?;
    Ok(entries
        .into_iter()
        .filter_map(|(key, _)| Some(ChunkId(key.get(prefix.len()..)?.try_into().ok()?)))
        .collect())
}

/// Replaces the saved contracts with `contracts`.
pub fn save_contracts(store: &Store, contracts: &[SavedContract]) -> Result<(), StoreError> {
    let mut value = Vec::with_capacity(contracts.len() * CONTRACT_LEN);
    for c in contracts {
        value.extend_from_slice(&c.peer.0);
        for field in [c.for_me_bytes, c.for_them_bytes, c.term_us, c.left_us] {
            value.extend_from_slice(&field.to_le_bytes());
        }
    }
    Ok(store.backend().meta_put(CONTRACTS, &value)?)
}

/// The saved contracts (none when nothing decodes).
pub fn contracts(store: &Store) -> Result<Vec<SavedContract>, StoreError> {
    let Some(value) = store.backend().meta_get(CONTRACTS)? else {
        return Ok(Vec::new());
    };
    if value.len() % CONTRACT_LEN != 0 {
        return Ok(Vec::new());
    }
    let u64_at = |bytes: &[u8], at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    Ok(value
        .chunks_exact(CONTRACT_LEN)
        .map(|bytes| {
            let mut peer = [0u8; 32];
            peer.copy_from_slice(&bytes[..32]);
            SavedContract {
                peer: PeerId(peer),
                for_me_bytes: u64_at(bytes, 32),
                for_them_bytes: u64_at(bytes, 40),
                term_us: u64_at(bytes, 48),
                left_us: u64_at(bytes, 56).min(Time::DAY * 366),
            }
        })
        .collect())
}

/// Replaces the saved contacts with `contacts` (the first [`CONTACTS_MAX`]).
pub fn save_contacts(
    store: &Store,
    contacts: &[(PeerId, std::net::SocketAddr)],
) -> Result<(), StoreError> {
    let mut value = Vec::new();
    for (peer, addr) in contacts.iter().take(CONTACTS_MAX) {
        let text = addr.to_string();
        value.extend_from_slice(&peer.0);
        value.push(text.len() as u8);
        value.extend_from_slice(text.as_bytes());
    }
    Ok(store.backend().meta_put(CONTACTS, &value)?)
}

/// The saved contacts, up to the first that does not decode.
pub fn contacts(store: &Store) -> Result<Vec<(PeerId, std::net::SocketAddr)>, StoreError> {
    let Some(value) = store.backend().meta_get(CONTACTS)? else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    let mut rest = &value[..];
    while found.len() < CONTACTS_MAX && rest.len() > 33 {
        let len = usize::from(rest[32]);
        let Some(text) = rest.get(33..33 + len) else {
            break;
        };
        let Some(addr) = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) else {
            break;
        };
        let mut peer = [0u8; 32];
        peer.copy_from_slice(&rest[..32]);
        found.push((PeerId(peer), addr));
        rest = &rest[33 + len..];
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is saved reads back the same; a malformed entry is skipped, not half-read.
    #[test]
    fn saved_state_reads_back_and_malformed_entries_are_skipped() {
        let store = Store::memory();
        assert!(published(&store).unwrap().is_empty());
        assert!(contracts(&store).unwrap().is_empty());
        let root = ChunkId([1; 32]);
        let chunks = vec![ChunkId([1; 32]), ChunkId([2; 32]), ChunkId([3; 32])];
        save_published(&store, &root, &chunks).unwrap();
        save_published(&store, &ChunkId([4; 32]), &[ChunkId([4; 32])]).unwrap();
        let mut bad = PUBLISHED.to_vec();
        bad.extend_from_slice(&[9; 32]);
        store.backend().meta_put(&bad, &[0; 33]).unwrap();
        let read = published(&store).unwrap();
        assert_eq!(
            read,
            vec![(root, chunks), (ChunkId([4; 32]), vec![ChunkId([4; 32])])]
        );
        let saved = [SavedContract {
            peer: PeerId([7; 32]),
            for_me_bytes: 10,
            for_them_bytes: 20,
            term_us: 30,
            left_us: 40,
        }];
        save_contracts(&store, &saved).unwrap();
        assert_eq!(contracts(&store).unwrap(), saved);
        store.backend().meta_put(CONTRACTS, &[0; 65]).unwrap();
        assert!(contracts(&store).unwrap().is_empty());
        let known = vec![
            (PeerId([1; 32]), "127.0.0.1:7420".parse().unwrap()),
            (PeerId([2; 32]), "[::1]:9".parse().unwrap()),
        ];
        assert!(kept(&store).unwrap().is_empty());
        save_provided(&store, &ChunkId([6; 32]), true).unwrap();
        save_provided(&store, &ChunkId([5; 32]), true).unwrap();
        save_provided(&store, &ChunkId([6; 32]), false).unwrap();
        assert_eq!(provided(&store).unwrap(), vec![ChunkId([5; 32])]);
        save_kept(&store, &ChunkId([8; 32])).unwrap();
        assert_eq!(kept(&store).unwrap(), vec![ChunkId([8; 32])]);
        save_contacts(&store, &known).unwrap();
        assert_eq!(contacts(&store).unwrap(), known);
        let mut cut = store.backend().meta_get(CONTACTS).unwrap().unwrap();
        cut.pop();
        store.backend().meta_put(CONTACTS, &cut).unwrap();
        assert_eq!(contacts(&store).unwrap(), known[..1]);
    }
}
