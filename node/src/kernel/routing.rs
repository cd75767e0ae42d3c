//! Kademlia-style routing, owned by the transport: the routing table (k-buckets over the
//! XOR distance between 32-byte ids), iterative lookups (for the peers closest to an id, or
//! for the providers of a chunk id), and the provider records this peer keeps for others,
//! with expiry. Pure data structures: the transport sends the requests they ask for.

use std::collections::BTreeMap;

use super::{Contact, PeerId, Time};
use crate::ids::ChunkId;

/// Contacts per bucket, and the size of a lookup's answer.
pub const K: usize = 20;
/// Queries a lookup keeps in flight.
pub const ALPHA: usize = 3;
/// Timeouts after which a contact leaves the table.
const FAILURES_MAX: u32 = 3;

pub fn distance(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (i, byte) in d.iter_mut().enumerate() {
        *byte = a[i] ^ b[i];
    }
    d
}

/// Which bucket `other` belongs in for `me`: the number of leading bits they share.
fn bucket_of(me: &[u8; 32], other: &[u8; 32]) -> Option<usize> {
    let d = distance(me, other);
    let zeros = d
        .iter()
        .position(|b| *b != 0)
        .map(|i| i * 8 + d[i].leading_zeros() as usize)?;
    Some(zeros.min(255))
}

#[derive(Debug, Clone)]
struct Entry {
    contact: Contact,
    seen: Time,
    failures: u32,
}

/// The k-buckets.
#[derive(Debug)]
pub struct RoutingTable {
    me: PeerId,
    buckets: Vec<Vec<Entry>>,
    len: usize,
}

impl RoutingTable {
    pub fn new(me: PeerId) -> RoutingTable {
        RoutingTable {
            me,
            buckets: vec![Vec::new(); 256],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds or refreshes a contact. A full bucket keeps its old, live contacts (Kademlia's
    /// preference for peers that have stayed up); a new one replaces only a failing entry.
    /// Only a first-hand contact (the peer itself) refreshes an entry or clears its failures;
    /// a second-hand one (named by another peer) only fills an empty place.
    pub fn insert(&mut self, contact: Contact, now: Time, first_hand: bool) {
        let Some(index) = bucket_of(&self.me.0, &contact.id.0) else {
            return;
        };
        let bucket = &mut self.buckets[index];
        if let Some(entry) = bucket.iter_mut().find(|e| e.contact.id == contact.id) {
            if first_hand {
                entry.seen = now;
                entry.failures = 0;
                if contact.addr.is_some() {
                    entry.contact.addr = contact.addr;
                }
            } else if entry.contact.addr.is_none() {
                entry.contact.addr = contact.addr;
            }
            return;
        }
        let entry = Entry {
            contact,
            seen: now,
            failures: 0,
        };
        if bucket.len() < K {
            bucket.push(entry);
            self.len += 1;
        } else if let Some(worst) = bucket
            .iter_mut()
            .filter(|e| first_hand && e.failures > 0)
            .max_by_key(|e| (e.failures, std::cmp::Reverse(e.seen)))
        {
            *worst = entry;
        }
    }

    /// `peer` did not answer; after a few such failures in a row it leaves the table.
    pub fn failed(&mut self, peer: &PeerId) {
        let Some(index) = bucket_of(&self.me.0, &peer.0) else {
            return;
        };
        let bucket = &mut self.buckets[index];
        if let Some(position) = bucket.iter().position(|e| e.contact.id == *peer) {
            bucket[position].failures += 1;
            if bucket[position].failures >= FAILURES_MAX {
                bucket.remove(position);
                self.len -= 1;
            }
        }
    }

    /// The `count` contacts closest to `target`, closest first.
    ///
    /// Buckets are visited in XOR order, so only what is returned is sorted. With `j` the
    /// bucket `target` falls in: bucket `j`'s contacts agree with the target beyond bit `j`
    /// and are closest; those of every deeper bucket differ from it first at bit `j`, so
    /// they come next, together; bucket `i < j`'s differ first at bit `i`, so they follow in
    /// the order `j − 1, …, 0`.
    pub fn closest(&self, target: &[u8; 32], count: usize) -> Vec<Contact> {
        let j = bucket_of(&self.me.0, target).unwrap_or(255);
        let mut out = Vec::with_capacity(count.min(self.len));
        let mut group: Vec<([u8; 32], Contact)> = Vec::new();
        let take = |group: &mut Vec<([u8; 32], Contact)>, out: &mut Vec<Contact>| {
            group.sort_unstable_by(|(a, _), (b, _)| crate::ids::cmp32(a, b));
            let room = count - out.len();
            out.extend(group.drain(..).take(room).map(|(_, c)| c));
        };
        let entries = |bucket: &[Entry]| -> Vec<([u8; 32], Contact)> {
            bucket
                .iter()
                .map(|e| (distance(&e.contact.id.0, target), e.contact))
                .collect()
        };
        group.extend(entries(&self.buckets[j]));
        take(&mut group, &mut out);
        if out.len() < count {
            for bucket in &self.buckets[j + 1..] {
                group.extend(entries(bucket));
            }
            take(&mut group, &mut out);
        }
        for bucket in self.buckets[..j].iter().rev() {
            if out.len() >= count {
                break;
            }
            group.extend(entries(bucket));
            take(&mut group, &mut out);
        }
        out
    }
}

/// What a lookup looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// The peers closest to the target.
    Nodes,
    /// Peers that provide the chunk named by the target.
    Providers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    Asked,
    Answered,
    Failed,
}

#[derive(Debug)]
struct Candidate {
    contact: Contact,
    /// Round of the lookup in which this candidate is (or would be) asked.
    hop: u32,
    state: State,
}

/// An iterative lookup in progress.
#[derive(Debug)]
pub struct Lookup {
    pub target: [u8; 32],
    pub kind: LookupKind,
    me: PeerId,
    /// It is done when this many of the closest live candidates have answered.
    want: usize,
    /// By distance to the target.
    candidates: BTreeMap<[u8; 32], Candidate>,
    in_flight: usize,
    pub providers: Vec<Contact>,
    /// Providers the asker already tried in vain: named, they do not end the lookup.
    skip: Vec<PeerId>,
    /// Providers named that are in `skip`, given only if no other is found.
    skipped: Vec<Contact>,
    /// The round whose answer first named a provider.
    pub hops: Option<u32>,
}

impl Lookup {
    /// A lookup of `target` from `seeds`, done when the `want` closest live candidates
    /// (at most [`K`]) have answered.
    pub fn new(
        target: [u8; 32],
        kind: LookupKind,
        me: PeerId,
        seeds: Vec<Contact>,
        want: usize,
    ) -> Lookup {
        let mut lookup = Lookup {
            target,
            kind,
            me,
            want: want.clamp(1, K),
            candidates: BTreeMap::new(),
            in_flight: 0,
            providers: Vec::new(),
            skip: Vec::new(),
            skipped: Vec::new(),
            hops: None,
        };
        lookup.add(seeds, 1);
        lookup
    }

    /// Providers in `skip` (at most [`K`]) do not end this provider lookup: it goes on
    /// looking for others, and names them only if it finds none.
    pub fn skipping(mut self, skip: Vec<PeerId>) -> Lookup {
        self.skip = skip.into_iter().take(K).collect();
        self
    }

    /// The providers found: those not skipped, or else the skipped ones named.
    pub fn into_providers(self) -> Vec<Contact> {
        if self.providers.is_empty() {
            self.skipped
        } else {
            self.providers
        }
    }

    fn add(&mut self, contacts: Vec<Contact>, hop: u32) {
        for contact in contacts.into_iter().take(K) {
            if contact.id == self.me {
                continue;
            }
            let key = distance(&contact.id.0, &self.target);
            self.candidates.entry(key).or_insert(Candidate {
                contact,
                hop,
                state: State::Fresh,
            });
        }
    }

    /// The next peers to ask (marked asked), with the round each is asked in.
    pub fn next_queries(&mut self) -> Vec<Contact> {
        let mut out = Vec::new();
        if self.is_done() {
            return out;
        }
        let mut live = 0;
        for candidate in self.candidates.values_mut() {
            if live >= self.want || self.in_flight >= ALPHA {
                break;
            }
            if candidate.state == State::Failed {
                continue;
            }
            live += 1;
            if candidate.state == State::Fresh {
                candidate.state = State::Asked;
                self.in_flight += 1;
                out.push(candidate.contact);
            }
        }
        out
    }

    /// Has this lookup been told of `peer` (or is it us)?
    pub fn knows(&self, peer: &PeerId) -> bool {
        *peer == self.me
            || self
                .candidates
                .contains_key(&distance(&peer.0, &self.target))
    }

    fn candidate(&mut self, peer: &PeerId) -> Option<&mut Candidate> {
        let key = distance(&peer.0, &self.target);
        self.candidates
            .get_mut(&key)
            .filter(|c| c.state == State::Asked)
    }

    /// `from` answered with closer peers and (for provider lookups) providers.
    pub fn answered(&mut self, from: PeerId, closer: Vec<Contact>, providers: Vec<Contact>) {
        let Some(candidate) = self.candidate(&from) else {
            return;
        };
        candidate.state = State::Answered;
        let hop = candidate.hop;
        self.in_flight -= 1;
        for provider in providers.into_iter().take(K) {
            let list = if self.skip.contains(&provider.id) {
                &mut self.skipped
            } else {
                &mut self.providers
            };
            if !list.iter().any(|p| p.id == provider.id) {
                list.push(provider);
            }
        }
        if !self.providers.is_empty() && self.hops.is_none() {
            self.hops = Some(hop);
        }
        self.add(closer, hop + 1);
    }

    pub fn failed(&mut self, from: PeerId) {
        if let Some(candidate) = self.candidate(&from) {
            candidate.state = State::Failed;
            self.in_flight -= 1;
        }
    }

    /// Finished: a provider lookup has found providers, or the `want` closest live candidates
    /// have all answered (or nobody is left to ask).
    pub fn is_done(&self) -> bool {
        if self.kind == LookupKind::Providers && !self.providers.is_empty() {
            return true;
        }
        if self.in_flight > 0 {
            return false;
        }
        !self
            .candidates
            .values()
            .filter(|c| c.state != State::Failed)
            .take(self.want)
            .any(|c| c.state == State::Fresh)
    }

    /// The closest peers that answered, closest first.
    pub fn closest_answered(&self, count: usize) -> Vec<Contact> {
        self.candidates
            .values()
            .filter(|c| c.state == State::Answered)
            .take(count)
            .map(|c| c.contact)
            .collect()
    }
}

/// Records one provider may have this peer keep, so no one provider can fill the store.
pub const RECORDS_PER_PROVIDER_MAX: usize = 4_096;

/// Provider records this peer keeps for others: who provides which chunk, until when.
#[derive(Debug, Default)]
pub struct ProviderRecords {
    records: BTreeMap<ChunkId, Vec<(Contact, Time)>>,
    count: usize,
    /// Records kept per provider.
    by_provider: BTreeMap<PeerId, usize>,
}

impl ProviderRecords {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Records (or renews) `provider` for `key` until `expires`, within `max` records.
    pub fn add(&mut self, key: ChunkId, provider: Contact, expires: Time, max: usize) {
        if let Some(list) = self.records.get_mut(&key) {
            if let Some(entry) = list.iter_mut().find(|(c, _)| c.id == provider.id) {
                *entry = (provider, expires);
                return;
            }
        }
        let theirs = self.by_provider.get(&provider.id).copied().unwrap_or(0);
        let listed = self.records.get(&key).map_or(0, Vec::len);
        if self.count >= max || listed >= K || theirs >= RECORDS_PER_PROVIDER_MAX {
            return;
        }
        self.records
            .entry(key)
            .or_default()
            .push((provider, expires));
        *self.by_provider.entry(provider.id).or_default() += 1;
        self.count += 1;
    }

    /// Providers of `key` whose records have not expired.
    pub fn get(&self, key: &ChunkId, now: Time) -> Vec<Contact> {
        self.records.get(key).map_or_else(Vec::new, |list| {
            list.iter()
                .filter(|(_, expires)| *expires > now)
                .map(|(c, _)| *c)
                .collect()
        })
    }

    /// Drops expired records.
    pub fn expire(&mut self, now: Time) {
        let mut count = 0;
        let mut by_provider: BTreeMap<PeerId, usize> = BTreeMap::new();
        self.records.retain(|_, list| {
            list.retain(|(_, expires)| *expires > now);
            count += list.len();
            for (contact, _) in list.iter() {
                *by_provider.entry(contact.id).or_default() += 1;
            }
            !list.is_empty()
        });
        self.count = count;
        self.by_provider = by_provider;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, last: u8) -> PeerId {
        let mut bytes = [0u8; 32];
        bytes[0] = first;
        bytes[31] = last;
        PeerId(bytes)
    }

    fn contact(id: PeerId) -> Contact {
        Contact { id, addr: None }
    }

    #[test]
    fn buckets_keep_old_live_contacts_and_answer_closest_first() {
        let me = id(0, 0);
        let mut table = RoutingTable::new(me);
        // 30 contacts in the farthest bucket (first bit set): only K fit.
        for n in 0..30 {
            table.insert(contact(id(0x80, n)), Time(u64::from(n)), true);
        }
        assert_eq!(table.len(), K);
        table.insert(contact(id(0x01, 1)), Time(0), true);
        let closest = table.closest(&id(0x01, 0).0, 2);
        assert_eq!(closest[0].id, id(0x01, 1));
        // A failing contact gives its place to a new one.
        for _ in 0..FAILURES_MAX {
            table.failed(&id(0x80, 0));
        }
        assert_eq!(table.len(), K);
        table.insert(contact(id(0x80, 99)), Time(100), true);
        assert_eq!(table.len(), K + 1);
        assert!(table
            .closest(&id(0x80, 99).0, 1)
            .iter()
            .any(|c| c.id == id(0x80, 99)));
    }

    proptest::proptest! {
        /// Visiting buckets in XOR order gives what sorting the whole table gives.
        #[test]
        fn closest_is_the_table_sorted_by_distance(
            me in proptest::array::uniform32(proptest::num::u8::ANY),
            peers in proptest::collection::vec(proptest::array::uniform32(proptest::num::u8::ANY), 0..300),
            target in proptest::array::uniform32(proptest::num::u8::ANY),
            near_me in proptest::bool::ANY,
            count in 0usize..60,
        ) {
            let me = PeerId(me);
            let mut table = RoutingTable::new(me);
            for (n, peer) in peers.iter().enumerate() {
                table.insert(contact(PeerId(*peer)), Time(n as u64), true);
            }
            // Targets near our own id exercise the deep buckets.
            let target = if near_me { let mut t = me.0; t[31] ^= target[31]; t } else { target };
            let mut all: Vec<Contact> = table.buckets.iter().flatten().map(|e| e.contact).collect();
            all.sort_by_key(|c| distance(&c.id.0, &target));
            all.truncate(count);
            proptest::prop_assert_eq!(table.closest(&target, count), all);
        }
    }

    #[test]
    fn a_lookup_walks_closer_and_stops_at_providers() {
        let me = id(0, 0);
        let target = id(0xf0, 0).0;
        let far = contact(id(0x10, 0));
        let mut lookup = Lookup::new(target, LookupKind::Providers, me, vec![far], K);
        assert_eq!(lookup.next_queries(), vec![far]);
        let near = contact(id(0xf0, 1));
        lookup.answered(far.id, vec![near], Vec::new());
        assert!(!lookup.is_done());
        assert_eq!(lookup.next_queries(), vec![near]);
        let provider = contact(id(0x33, 3));
        lookup.answered(near.id, Vec::new(), vec![provider]);
        assert!(lookup.is_done());
        assert_eq!(lookup.providers, vec![provider]);
        assert_eq!(lookup.hops, Some(2));
    }

    #[test]
    fn a_provider_tried_in_vain_does_not_end_the_lookup() {
        let me = id(0, 0);
        let target = id(0xf0, 0).0;
        let dead = contact(id(0x44, 4));
        let (a, b, c) = (
            contact(id(0x10, 0)),
            contact(id(0x20, 0)),
            contact(id(0x30, 0)),
        );
        let mut lookup = Lookup::new(target, LookupKind::Providers, me, vec![a, b, c], K)
            .skipping(vec![dead.id]);
        assert_eq!(lookup.next_queries().len(), 3);
        lookup.answered(a.id, Vec::new(), vec![dead]);
        assert!(!lookup.is_done(), "a skipped provider does not end it");
        let live = contact(id(0x55, 5));
        lookup.answered(b.id, Vec::new(), vec![dead, live]);
        assert!(lookup.is_done());
        assert_eq!(lookup.hops, Some(1));
        assert_eq!(lookup.into_providers(), vec![live]);

        // Nobody else found: the skipped providers are given back.
        let mut lookup =
            Lookup::new(target, LookupKind::Providers, me, vec![a], K).skipping(vec![dead.id]);
        assert_eq!(lookup.next_queries(), vec![a]);
        lookup.answered(a.id, Vec::new(), vec![dead]);
        assert!(lookup.is_done(), "no one is left to ask");
        assert_eq!(lookup.hops, None);
        assert_eq!(lookup.into_providers(), vec![dead]);
    }

    #[test]
    fn provider_records_expire() {
        let mut records = ProviderRecords::default();
        let key = ChunkId([7; 32]);
        records.add(key, contact(id(1, 1)), Time(10), 100);
        records.add(key, contact(id(2, 2)), Time(20), 100);
        assert_eq!(records.get(&key, Time(15)).len(), 1);
        records.expire(Time(15));
        assert_eq!(records.len(), 1);
        records.add(key, contact(id(3, 3)), Time(30), 1);
        assert_eq!(records.len(), 1, "the limit holds");
    }
}
