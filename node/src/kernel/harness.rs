//! A small test harness in the manner of quinn-proto's `Pair`: a few peers, a fake clock and
//! in-memory links with a fixed latency, for unit tests of protocol steps. The simulator is
//! the full-size version of the same loop.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::peer::Peer;
use super::{
    ActorKind, Command, Directory, Effects, Event, Frame, Input, KernelConfig, Outbox, PeerId, Time,
};
use crate::store::Store;

#[derive(Debug)]
enum Delivery {
    Wire {
        to: usize,
        from: PeerId,
        frame: Frame,
    },
    Timer {
        peer: usize,
        incarnation: u32,
        actor: ActorKind,
        token: u64,
    },
}

/// Peers on a fake network.
#[derive(Debug)]
pub struct Harness {
    pub now: Time,
    peers: Vec<Peer>,
    rngs: Vec<ChaCha8Rng>,
    index: BTreeMap<PeerId, usize>,
    queue: BTreeMap<(Time, u64), Delivery>,
    seq: u64,
    latency_us: u64,
    offline: BTreeSet<usize>,
    /// Bumped at every restart, so timers of an earlier run of a peer never fire.
    incarnations: Vec<u32>,
    /// Events every peer emitted, with the peer's index.
    pub events: Vec<(usize, Event)>,
    /// Frames sent, counting those dropped on the way.
    pub frames_sent: u64,
    outbox: Outbox,
}

/// The identity key of harness peer `index`.
pub fn peer_key(index: usize) -> SigningKey {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(b"harness peer")
        .chain_update((index as u64).to_le_bytes())
        .finalize()
        .into();
    SigningKey::from_bytes(&seed)
}

/// The id of harness peer `index`.
pub fn peer_id(index: usize) -> PeerId {
    PeerId(peer_key(index).verifying_key().to_bytes())
}

impl Harness {
    /// `count` peers with in-memory stores, each knowing all the others once started.
    pub fn new(count: usize, config: KernelConfig, latency_us: u64) -> Harness {
        let peers: Vec<Peer> = (0..count)
            .map(|i| Peer::new(peer_key(i), config.clone(), Store::memory()))
            .collect();
        let index = peers.iter().enumerate().map(|(i, p)| (p.id(), i)).collect();
        Harness {
            now: Time::default(),
            rngs: (0..count)
                .map(|i| ChaCha8Rng::seed_from_u64(i as u64))
                .collect(),
            peers,
            index,
            queue: BTreeMap::new(),
            seq: 0,
            latency_us,
            offline: BTreeSet::new(),
            incarnations: vec![0; count],
            events: Vec::new(),
            frames_sent: 0,
            outbox: Outbox::default(),
        }
    }

    pub fn peer(&self, index: usize) -> &Peer {
        &self.peers[index]
    }

    fn directory(&self) -> Directory {
        let mut all: Vec<PeerId> = self.peers.iter().map(Peer::id).collect();
        all.sort();
        Directory::from(all)
    }

    pub fn start_all(&mut self) {
        let all = self.directory();
        for i in 0..self.peers.len() {
            self.outbox.clear();
            self.peers[i].start(self.now, all.clone(), &mut self.rngs[i], &mut self.outbox);
            self.drain(i);
        }
    }

    /// Takes peer `index` off the network (its frames and timers are dropped) or back on
    /// (restarted, as a process would be).
    pub fn set_online(&mut self, index: usize, online: bool) {
        if online && self.offline.remove(&index) {
            self.incarnations[index] += 1;
            let all = self.directory();
            self.outbox.clear();
            self.peers[index].start(self.now, all, &mut self.rngs[index], &mut self.outbox);
            self.drain(index);
        } else if !online {
            self.offline.insert(index);
        }
    }

    /// Gives peer `index` (not started yet) another configuration: a strategy of its own.
    pub fn replace_config(&mut self, index: usize, config: KernelConfig) {
        self.peers[index] = Peer::new(peer_key(index), config, Store::memory());
    }

    /// Replaces peer `index`, before it starts, by one on `store` (a backend a test can make
    /// fail).
    pub fn replace_store(&mut self, index: usize, config: KernelConfig, store: Store) {
        self.peers[index] = Peer::new(peer_key(index), config, store);
    }

    /// Replaces peer `index` by a fresh one with the same identity and an empty disk, and
    /// starts it.
    pub fn crash_with_disk_loss(&mut self, index: usize, config: KernelConfig) {
        self.peers[index] = Peer::new(peer_key(index), config, Store::memory());
        self.offline.insert(index);
        self.set_online(index, true);
    }

    /// Restarts peer `index` with its memory lost and its disk kept (a process killed and
    /// started again; [`Peer::reboot`]).
    pub fn reboot(&mut self, index: usize, config: KernelConfig) {
        self.peers[index].reboot(peer_key(index), config);
        self.offline.insert(index);
        self.set_online(index, true);
    }

    /// Delivers a frame to peer `to` as if `from` had sent it.
    pub fn inject(&mut self, to: usize, from: PeerId, frame: Frame) {
        self.input(to, ActorKind::Transport, Input::Wire { from, frame });
    }

    pub fn command(&mut self, index: usize, command: Command) {
        self.input(index, ActorKind::Negotiator, Input::Command(command));
    }

    fn input(&mut self, index: usize, actor: ActorKind, input: Input) {
        if self.offline.contains(&index) {
            return;
        }
        self.outbox.clear();
        self.peers[index].step(
            actor,
            input,
            self.now,
            &mut self.rngs[index],
            &mut self.outbox,
        );
        self.drain(index);
    }

    fn push(&mut self, at: Time, delivery: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), delivery);
    }

    fn drain(&mut self, index: usize) {
        let from = self.peers[index].id();
        let mut effects = std::mem::take(self.outbox.effects());
        let Effects {
            wire,
            timers,
            events,
            trace,
            dials,
            addresses,
            disconnects,
        } = &mut effects;
        // No trace digest, no addresses and no dials here: peers are reached by id.
        trace.clear();
        dials.clear();
        addresses.clear();
        // A dropped connection loses what is on its way, both ways.
        for peer in disconnects.drain(..) {
            let Some(&other) = self.index.get(&peer) else {
                continue;
            };
            let other_id = self.peers[other].id();
            self.queue.retain(|_, delivery| match delivery {
                Delivery::Wire {
                    to, from: sender, ..
                } => !((*to == other && *sender == from) || (*to == index && *sender == other_id)),
                Delivery::Timer { .. } => true,
            });
        }
        for (to, frame) in wire.drain(..) {
            self.frames_sent += 1;
            if let Some(&to) = self.index.get(&to) {
                let at = self.now.plus(self.latency_us);
                self.push(at, Delivery::Wire { to, from, frame });
            }
        }
        for (actor, at, token) in timers.drain(..) {
            self.push(
                at,
                Delivery::Timer {
                    peer: index,
                    incarnation: self.incarnations[index],
                    actor,
                    token,
                },
            );
        }
        self.events.extend(events.drain(..).map(|e| (index, e)));
        *self.outbox.effects() = effects;
    }

    /// Runs every delivery due up to `until`, advancing the clock.
    pub fn run_until(&mut self, until: Time) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), delivery) = entry.remove_entry();
            self.now = at;
            match delivery {
                Delivery::Wire { to, from, frame } => {
                    self.input(to, ActorKind::Transport, Input::Wire { from, frame })
                }
                Delivery::Timer {
                    peer,
                    incarnation,
                    actor,
                    token,
                } => {
                    if incarnation == self.incarnations[peer] {
                        self.input(peer, actor, Input::Timer { token });
                    }
                }
            }
        }
        self.now = until;
    }

    pub fn run_for(&mut self, micros: u64) {
        self.run_until(self.now.plus(micros));
    }

    /// How many online peers other than `owner` hold `chunk`.
    pub fn holders(&self, owner: usize, chunk: &crate::ids::ChunkId) -> usize {
        (0..self.peers.len())
            .filter(|i| {
                *i != owner && !self.offline.contains(i) && self.peers[*i].store.holds(chunk)
            })
            .count()
    }
}
