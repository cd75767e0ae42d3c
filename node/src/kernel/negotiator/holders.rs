//! The holders of one of our chunks, each with its replica's audit state: a short list in
//! id order kept inline in the chunk's entry (a chunk has a few holders), so the rounds that
//! walk every owned chunk's holders (terms, checks, audits) read them beside the chunk
//! rather than behind a pointer each. It iterates in the order a `BTreeMap` would.

use smallvec::SmallVec;

use super::audit::Replica;
use crate::kernel::PeerId;

/// Holders kept inline; more spill to the heap (the default replication is 3).
const INLINE: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct Holders(SmallVec<[(PeerId, Replica); INLINE]>);

impl Holders {
    fn find(&self, peer: &PeerId) -> Result<usize, usize> {
        self.0.binary_search_by(|(p, _)| p.cmp(peer))
    }

    /// The holders in id order.
    pub fn keys(&self) -> impl Iterator<Item = &PeerId> {
        self.0.iter().map(|(peer, _)| peer)
    }

    pub fn get(&self, peer: &PeerId) -> Option<&Replica> {
        self.find(peer).ok().map(|at| &self.0[at].1)
    }

    pub fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Replica> {
        self.find(peer).ok().map(|at| &mut self.0[at].1)
    }

    pub fn contains_key(&self, peer: &PeerId) -> bool {
        self.find(peer).is_ok()
    }

    /// Adds `peer` or replaces its replica; the replaced one, if any.
    pub fn insert(&mut self, peer: PeerId, replica: Replica) -> Option<Replica> {
        match self.find(&peer) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, replica)),
            Err(at) => {
                self.0.insert(at, (peer, replica));
                None
            }
        }
    }

    pub fn remove(&mut self, peer: &PeerId) -> Option<Replica> {
        self.find(peer).ok().map(|at| self.0.remove(at).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The same answers, in the same order, as the map it replaces, past the inline size.
    #[test]
    fn holders_behave_as_a_map_in_id_order() {
        let mut holders = Holders::default();
        let mut map = BTreeMap::new();
        for (step, n) in [5u8, 2, 9, 2, 7, 1, 5, 3, 8].into_iter().enumerate() {
            let peer = PeerId([n; 32]);
            if step % 3 == 2 {
                assert_eq!(holders.remove(&peer), map.remove(&peer));
            } else {
                assert_eq!(
                    holders.insert(peer, Replica::default()),
                    map.insert(peer, Replica::default())
                );
            }
            assert!(holders.keys().eq(map.keys()));
            assert_eq!(holders.len(), map.len());
            assert_eq!(holders.is_empty(), map.is_empty());
            for probe in 0..10u8 {
                let probe = PeerId([probe; 32]);
                assert_eq!(holders.get(&probe), map.get(&probe));
                assert_eq!(holders.contains_key(&probe), map.contains_key(&probe));
            }
        }
        assert!(
            holders.len() > INLINE,
            "the list spilled past its inline room"
        );
    }
}
