//! Peers on and off: sessions and churn, departures for good, arrivals, crashes and the disk
//! loss that goes with departures and crashes. It decides when a peer runs, never what it does.

use cryptosphere::ids::ChunkId;
use cryptosphere::kernel::peer::Peer;
use cryptosphere::kernel::{Directory, PeerId, Time};
use cryptosphere::store::Store;
use ed25519_dalek::SigningKey;
use rand::Rng;

use super::{exponential, SimEvent, World};

impl World {
    /// Without a directory, a peer starts from a few random others (as a real node starts
    /// from its bootstrap addresses); it finds the rest through the protocol.
    fn bootstrap_sample(&mut self, index: u32) -> Directory {
        let count = self.peers.len();
        let wanted = (self.scenario.bootstrap_peers as usize).min(count.saturating_sub(1));
        let mut picked: Vec<PeerId> = Vec::with_capacity(wanted);
        let mut tries = 0;
        while picked.len() < wanted && tries < 16 * wanted {
            tries += 1;
            let other = self.rng.gen_range(0..count) as u32;
            let id = self.peers[other as usize].peer.id();
            if other != index && !picked.contains(&id) {
                picked.push(id);
            }
        }
        picked.sort();
        Directory::from(picked)
    }

    /// Starts (or restarts) a peer and schedules the end of its session.
    pub(super) fn bring_online(&mut self, index: u32) {
        let now = self.now;
        let directory = if self.scenario.directory {
            self.directory.clone()
        } else {
            self.bootstrap_sample(index)
        };
        let peer = &mut self.peers[index as usize];
        peer.online = true;
        peer.incarnation += 1;
        peer.links.reset(now);
        let incarnation = peer.incarnation;
        let group = usize::from(peer.group);
        self.outbox.clear();
        let mut outbox = std::mem::take(&mut self.outbox);
        let peer = &mut self.peers[index as usize];
        peer.peer.start(now, directory, &mut peer.rng, &mut outbox);
        self.outbox = outbox;
        self.after_step(index);
        if self.groups[group].mean_offline_us > 0.0 {
            let at = now.plus(exponential(
                &mut self.rng,
                self.groups[group].mean_online_us,
            ));
            self.schedule(
                at,
                SimEvent::Churn {
                    peer: index,
                    incarnation,
                },
            );
        }
    }

    fn take_offline(&mut self, index: u32) {
        let peer = &mut self.peers[index as usize];
        peer.online = false;
        peer.incarnation += 1;
    }

    /// A peer that departs or crashes takes its fetches in flight with it: they failed.
    fn abandon_fetches(&mut self, index: u32) {
        let group = usize::from(self.peers[index as usize].group);
        let lost = self.peers[index as usize]
            .peer
            .negotiator
            .fetches_in_flight() as u64;
        self.groups[group].hour.fetches_failed += lost;
        let keys: Vec<(u32, ChunkId, Time)> = self
            .fetches
            .range(
                (index, ChunkId([0; 32]), Time(0))..=(index, ChunkId([0xff; 32]), Time(u64::MAX)),
            )
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            let watched = self.fetches.remove(&key).unwrap_or_default();
            self.groups[group].hour.own_group_fetches += u64::from(watched.own_group);
            for probe in watched.probes {
                self.probes[probe].1 += 1;
            }
        }
    }

    fn forget_disk(&mut self, index: u32) {
        let held = std::mem::take(&mut self.peers[index as usize].held);
        for chunk in held {
            let slot = self.holders.slot(chunk);
            self.holders.lists[slot as usize].retain(|h| *h != index);
        }
    }

    /// A session ends (the peer goes offline until its next start) or a gap ends (it starts).
    pub(super) fn churn(&mut self, peer: u32, incarnation: u32) {
        let p = &self.peers[peer as usize];
        if p.departed || p.incarnation != incarnation {
            return;
        }
        if p.online {
            self.take_offline(peer);
            let group = usize::from(self.peers[peer as usize].group);
            let at = self.now.plus(exponential(
                &mut self.rng,
                self.groups[group].mean_offline_us,
            ));
            let incarnation = self.peers[peer as usize].incarnation;
            self.schedule(at, SimEvent::Churn { peer, incarnation });
        } else {
            self.bring_online(peer);
        }
    }

    /// A peer leaves for good and its disk is forgotten.
    pub(super) fn depart(&mut self, peer: u32) {
        self.abandon_fetches(peer);
        self.take_offline(peer);
        self.peers[peer as usize].departed = true;
        self.forget_disk(peer);
    }

    /// A new peer joins `group` and starts at once.
    pub(super) fn arrive(&mut self, group: u16) {
        let index = self.add_peer(group);
        let side = self.rng.gen_bool(self.side_a);
        if let Some(sides) = self.network.sides.as_mut() {
            sides.push(side);
        }
        self.rebuild_directory();
        self.bring_online(index);
        if let Some(every) = self.scenario.groups[usize::from(group)]
            .strategy
            .rekey_every_hours
        {
            let at = self.now.plus(super::hours(every).max(1));
            self.schedule(at, SimEvent::Rekey { peer: index });
        }
    }

    /// A whitewasher's move (a host action: a real operator would make a new `identity.key`
    /// and wipe its data directory): the peer at `index` forgets everything, disk included,
    /// and comes back at once under a fresh identity, which nobody has a ledger, a score or
    /// a chain of. Messages to its old identity go nowhere. The next move is scheduled.
    pub(super) fn rekey(&mut self, index: u32) {
        let p = &self.peers[index as usize];
        if p.departed {
            return;
        }
        let group = usize::from(p.group);
        let Some(every) = self.scenario.groups[group].strategy.rekey_every_hours else {
            return;
        };
        self.abandon_fetches(index);
        self.forget_disk(index);
        let old = self.peers[index as usize].peer.id();
        self.index.remove(&old);
        let generation = self.peers[index as usize].identities;
        let key = self.generation_key(index, generation + 1);
        let config = self.groups[group].config.clone();
        let peer = &mut self.peers[index as usize];
        peer.identities += 1;
        peer.peer = Peer::new(key, config, Store::memory());
        let id = peer.peer.id();
        self.index.insert(id, index);
        self.rebuild_directory();
        if self.peers[index as usize].online {
            self.take_offline(index);
            self.bring_online(index);
        }
        let at = self.now.plus(super::hours(every).max(1));
        self.schedule(at, SimEvent::Rekey { peer: index });
    }

    /// The key of the peer at `index` in its `generation`-th identity (1: its first; a
    /// whitewasher's rekey moves it to the next).
    fn generation_key(&self, index: u32, generation: u32) -> SigningKey {
        if generation <= 1 {
            return self.peer_key(index);
        }
        SigningKey::from_bytes(&super::derive(
            b"cryptosphere/sim/rekey",
            self.seed,
            (u64::from(index) << 32) | u64::from(generation - 1),
        ))
    }

    /// Each non-departed member of `group` restarts with probability `fraction`, its disk
    /// kept and its memory lost: its actors are made anew and rebuild from what they saved.
    /// It keeps its holder lists (its chunks are still on its disk).
    pub(super) fn reboot(&mut self, group: u16, fraction: f64) {
        self.strike(group, fraction, true);
    }

    /// Each non-departed member of `group` crashes with probability `fraction`, losing its disk.
    pub(super) fn crash(&mut self, group: u16, fraction: f64) {
        self.strike(group, fraction, false);
    }

    /// Restarts each non-departed member of `group` with probability `fraction` (one draw
    /// per member, in order), its disk kept (a reboot) or lost (a crash); one that was online
    /// starts again at once.
    fn strike(&mut self, group: u16, fraction: f64, disk_kept: bool) {
        let members = self.groups[usize::from(group)].members.clone();
        for index in members {
            let p = &self.peers[index as usize];
            if p.departed || !self.rng.gen_bool(fraction) {
                continue;
            }
            let config = self.groups[usize::from(group)].config.clone();
            self.abandon_fetches(index);
            if disk_kept {
                let key = self.generation_key(index, self.peers[index as usize].identities);
                self.peers[index as usize].peer.reboot(key, config);
            } else {
                self.forget_disk(index);
                let key = self.peer_key(index);
                self.peers[index as usize].peer = Peer::new(key, config, Store::memory());
            }
            if self.peers[index as usize].online {
                self.take_offline(index);
                self.bring_online(index);
            }
        }
    }
}
