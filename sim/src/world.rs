//! The simulated host: a single-threaded discrete-event loop that drives real peers (the
//! kernel's actors) over the modelled network, with churn, faults and a workload, and
//! measures what happens. Events are ordered by (virtual time, sequence number); every random
//! choice comes from ChaCha generators derived from the scenario seed; every input delivered
//! to an actor is hashed into the trace digest.
//!
//! This host decides nothing a peer would decide: it moves frames, fires timers, turns peers
//! on and off, and issues the workload's commands.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use cryptosphere::ids::ChunkId;
use cryptosphere::kernel::content::Content;
use cryptosphere::kernel::peer::Peer;
use cryptosphere::kernel::{
    ActorKind, Command, Directory, Effects, Event, Frame, Input, KernelConfig, Outbox, PeerId, Time,
};
use cryptosphere::store::Store;

use crate::metrics::{percentile, GroupCounters, HourRow, Summary};
use crate::network::{Links, Network};
use crate::queue::EventQueue;
use crate::scenario::{Fault, Fidelity, Popularity, Scenario};

#[derive(Debug)]
enum SimEvent {
    Deliver {
        to: u32,
        from: u32,
        frame: Frame,
    },
    Timer {
        peer: u32,
        incarnation: u32,
        actor: ActorKind,
        token: u64,
    },
    Churn {
        peer: u32,
        incarnation: u32,
    },
    Depart {
        peer: u32,
    },
    Arrive {
        group: u16,
    },
    Publish {
        group: u16,
    },
    Fetch {
        group: u16,
    },
    PartitionStart {
        side_a: f64,
    },
    PartitionHeal,
    Crash {
        group: u16,
        fraction: f64,
    },
    Probe {
        probe: usize,
    },
    Tick,
}

#[derive(Debug)]
struct SimPeer {
    peer: Peer,
    group: u16,
    online: bool,
    departed: bool,
    incarnation: u32,
    rng: ChaCha8Rng,
    links: Links,
    /// Chunks this peer's store reported holding (so a lost disk can be forgotten).
    held: Vec<ChunkId>,
}

#[derive(Debug)]
struct GroupState {
    name: String,
    config: KernelConfig,
    members: Vec<u32>,
    up_mbps: f64,
    down_mbps: f64,
    mean_online_us: f64,
    mean_offline_us: f64,
    total: GroupCounters,
    hour: GroupCounters,
}

#[derive(Debug)]
struct Object {
    root: ChunkId,
    chunks: Vec<ChunkId>,
    publisher: u32,
    at: Time,
}

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub now: Time,
    pub end: Time,
    pub events: u64,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub summary: Summary,
    pub rows: Vec<HourRow>,
}

/// A simulation in progress.
#[derive(Debug)]
pub struct World {
    name: String,
    scenario: Scenario,
    seed: u64,
    now: Time,
    end: Time,
    queue: EventQueue<SimEvent>,
    peers: Vec<SimPeer>,
    index: BTreeMap<PeerId, u32>,
    directory: Directory,
    groups: Vec<GroupState>,
    network: Network,
    rng: ChaCha8Rng,
    net_rng: ChaCha8Rng,
    outbox: Outbox,
    digest: Sha256,
    delivered: u64,
    catalog: Vec<Object>,
    holders: BTreeMap<ChunkId, Vec<u32>>,
    probes: Vec<(u64, u64)>,
    /// Probe fetches in flight: (fetcher, root, start) → the probes they count for.
    probe_fetches: BTreeMap<(u32, ChunkId, Time), Vec<usize>>,
    rows: Vec<HourRow>,
    availability: Vec<Vec<f64>>,
    /// Share of peers on side A of the current (or last) partition.
    side_a: f64,
    /// Forks made (offender → when) and when each peer learned of each.
    forks: BTreeMap<PeerId, Time>,
    fork_learned: BTreeMap<(PeerId, u32), Time>,
}

fn derive(domain: &[u8], seed: u64, index: u64) -> [u8; 32] {
    Sha256::new()
        .chain_update(domain)
        .chain_update(seed.to_le_bytes())
        .chain_update(index.to_le_bytes())
        .finalize()
        .into()
}

/// An exponential delay with the given mean, in microseconds (at least 1). Logarithms and
/// powers come from `libm` (pure Rust), not the platform's maths library, so every machine
/// draws the same numbers.
fn exponential(rng: &mut ChaCha8Rng, mean_us: f64) -> u64 {
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    ((-libm::log(u) * mean_us) as u64).max(1)
}

fn minutes(m: f64) -> u64 {
    (m * 60.0 * Time::SECOND as f64) as u64
}

fn hours(h: f64) -> u64 {
    (h * Time::HOUR as f64) as u64
}

impl World {
    pub fn new(scenario: &Scenario, name: &str, seed: u64) -> World {
        let network = Network::new(
            &scenario.network.latency_ms,
            scenario.network.jitter,
            scenario.network.loss,
        );
        let groups = scenario
            .groups
            .iter()
            .map(|g| GroupState {
                name: g.name.clone(),
                config: KernelConfig {
                    chain_record_interval_us: scenario
                        .chains
                        .as_ref()
                        .map(|c| minutes(c.record_every_minutes)),
                    chain_exchange_interval_us: scenario
                        .chains
                        .as_ref()
                        .map_or(Time::HOUR, |c| minutes(c.exchange_every_minutes)),
                    strategy: cryptosphere::kernel::strategy::Strategy {
                        fork_at_us: g.strategy.fork_at_hours.map(hours),
                        ..Default::default()
                    },
                    synthetic_payloads: scenario.fidelity == Fidelity::Synthetic,
                    replication: g.strategy.replication as usize,
                    storage_for_others_bytes: g.storage_mib << 20,
                    check_interval_us: hours(g.strategy.check_hours),
                    lookups: scenario.routing.is_some(),
                    provider_ttl_us: scenario
                        .routing
                        .as_ref()
                        .map_or(Time::DAY, |r| hours(r.record_ttl_hours)),
                    provider_republish_us: scenario
                        .routing
                        .as_ref()
                        .map_or(Time::DAY / 2, |r| hours(r.republish_hours)),
                    holder_dead_after_us: hours(g.strategy.holder_dead_after_hours),
                    ..KernelConfig::default()
                },
                members: Vec::new(),
                up_mbps: g.upload_mbps,
                down_mbps: g.download_mbps,
                mean_online_us: g.mean_online_hours * Time::HOUR as f64,
                mean_offline_us: g.mean_offline_hours * Time::HOUR as f64,
                total: GroupCounters::default(),
                hour: GroupCounters::default(),
            })
            .collect();
        let mut world = World {
            name: name.to_owned(),
            scenario: scenario.clone(),
            seed,
            now: Time::default(),
            end: Time(hours(scenario.duration_hours)),
            queue: EventQueue::default(),
            peers: Vec::new(),
            index: BTreeMap::new(),
            directory: Directory::from(Vec::new()),
            groups,
            network,
            rng: ChaCha8Rng::from_seed(derive(b"cryptosphere/sim/world", seed, 0)),
            net_rng: ChaCha8Rng::from_seed(derive(b"cryptosphere/sim/network", seed, 0)),
            outbox: Outbox::default(),
            digest: Sha256::new(),
            delivered: 0,
            catalog: Vec::new(),
            holders: BTreeMap::new(),
            probes: vec![(0, 0); scenario.probes.len()],
            probe_fetches: BTreeMap::new(),
            rows: Vec::new(),
            availability: vec![Vec::new(); scenario.groups.len() + 1],
            side_a: 0.5,
            forks: BTreeMap::new(),
            fork_learned: BTreeMap::new(),
        };
        world.populate();
        world
    }

    /// Peer `index`'s identity key (its id is the public key), derived from the seed.
    fn peer_key(&self, index: u32) -> SigningKey {
        SigningKey::from_bytes(&derive(
            b"cryptosphere/sim/key",
            self.seed,
            u64::from(index),
        ))
    }

    fn schedule(&mut self, at: Time, event: SimEvent) {
        self.queue.push(at, event);
    }

    fn add_peer(&mut self, group: u16) -> u32 {
        let index = self.peers.len() as u32;
        let key = self.peer_key(index);
        let id = PeerId(key.verifying_key().to_bytes());
        let weights: Vec<f64> = self
            .scenario
            .network
            .regions
            .iter()
            .map(|r| r.weight)
            .collect();
        let pick = self.rng.gen_range(0.0..weights.iter().sum::<f64>());
        let mut acc = 0.0;
        let region = weights.iter().position(|w| {
            acc += w;
            pick < acc
        });
        let state = &mut self.groups[usize::from(group)];
        state.members.push(index);
        self.peers.push(SimPeer {
            peer: Peer::new(key, state.config.clone(), Store::memory()),
            group,
            online: false,
            departed: false,
            incarnation: 0,
            rng: ChaCha8Rng::from_seed(derive(
                b"cryptosphere/sim/rng",
                self.seed,
                u64::from(index),
            )),
            links: Links::new(region.unwrap_or(0) as u8, state.up_mbps, state.down_mbps),
            held: Vec::new(),
        });
        self.index.insert(id, index);
        index
    }

    fn rebuild_directory(&mut self) {
        let mut ids: Vec<PeerId> = self.peers.iter().map(|p| p.peer.id()).collect();
        ids.sort();
        self.directory = Directory::from(ids);
    }

    fn populate(&mut self) {
        let scenario = self.scenario.clone();
        for (g, group) in scenario.groups.iter().enumerate() {
            for _ in 0..group.count {
                self.add_peer(g as u16);
            }
        }
        self.rebuild_directory();
        let duration = self.end.micros().max(1);
        for index in 0..self.peers.len() as u32 {
            let g = usize::from(self.peers[index as usize].group);
            let (on, off) = (
                self.groups[g].mean_online_us,
                self.groups[g].mean_offline_us,
            );
            let online = off == 0.0 || self.rng.gen_bool(on / (on + off));
            if online {
                self.bring_online(index);
            } else {
                let at = Time(exponential(&mut self.rng, off));
                self.schedule(
                    at,
                    SimEvent::Churn {
                        peer: index,
                        incarnation: 0,
                    },
                );
            }
            if self.rng.gen_bool(scenario.groups[g].departures) {
                let at = Time(self.rng.gen_range(0..duration));
                self.schedule(at, SimEvent::Depart { peer: index });
            }
        }
        for (g, group) in scenario.groups.iter().enumerate() {
            for _ in 0..group.arrivals {
                let at = Time(self.rng.gen_range(0..duration));
                self.schedule(at, SimEvent::Arrive { group: g as u16 });
            }
            let warmup = Time(hours(scenario.workload.warmup_hours));
            if scenario.workload.publish_per_peer_per_day > 0.0 && group.count + group.arrivals > 0
            {
                self.schedule(warmup, SimEvent::Publish { group: g as u16 });
            }
            if scenario.workload.fetch_per_peer_per_day > 0.0 && group.count + group.arrivals > 0 {
                self.schedule(warmup, SimEvent::Fetch { group: g as u16 });
            }
        }
        for fault in &scenario.faults {
            match fault {
                Fault::Partition {
                    at_hours,
                    heal_hours,
                    side_a,
                } => {
                    self.schedule(
                        Time(hours(*at_hours)),
                        SimEvent::PartitionStart { side_a: *side_a },
                    );
                    self.schedule(Time(hours(*heal_hours)), SimEvent::PartitionHeal);
                }
                Fault::Crash {
                    at_hours,
                    group,
                    fraction,
                } => {
                    let g = scenario
                        .groups
                        .iter()
                        .position(|x| &x.name == group)
                        .unwrap_or(0);
                    self.schedule(
                        Time(hours(*at_hours)),
                        SimEvent::Crash {
                            group: g as u16,
                            fraction: *fraction,
                        },
                    );
                }
            }
        }
        for (probe, p) in scenario.probes.iter().enumerate() {
            self.schedule(Time(hours(p.at_hours)), SimEvent::Probe { probe });
        }
        self.schedule(Time(Time::HOUR), SimEvent::Tick);
    }

    /// Starts (or restarts) a peer and schedules the end of its session.
    fn bring_online(&mut self, index: u32) {
        let now = self.now;
        let directory = self.directory.clone();
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
            .probe_fetches
            .range(
                (index, ChunkId([0; 32]), Time(0))..=(index, ChunkId([0xff; 32]), Time(u64::MAX)),
            )
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            for probe in self.probe_fetches.remove(&key).unwrap_or_default() {
                self.probes[probe].1 += 1;
            }
        }
    }

    fn forget_disk(&mut self, index: u32) {
        let held = std::mem::take(&mut self.peers[index as usize].held);
        for chunk in held {
            if let Some(list) = self.holders.get_mut(&chunk) {
                list.retain(|h| *h != index);
            }
        }
    }

    fn step(&mut self, index: u32, actor: ActorKind, input: Input) {
        self.outbox.clear();
        let mut outbox = std::mem::take(&mut self.outbox);
        let now = self.now;
        let peer = &mut self.peers[index as usize];
        peer.peer
            .step(actor, input, now, &mut peer.rng, &mut outbox);
        self.outbox = outbox;
        self.after_step(index);
    }

    fn after_step(&mut self, index: u32) {
        let now = self.now;
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
        for (actor, kind) in trace.drain(..) {
            let mut record = [0u8; 14];
            record[..8].copy_from_slice(&now.micros().to_le_bytes());
            record[8..12].copy_from_slice(&index.to_le_bytes());
            record[12] = actor as u8;
            record[13] = kind;
            self.digest.update(record);
            self.delivered += 1;
        }
        // Simulated peers are reached by id: there are no addresses to learn or dial.
        dials.clear();
        addresses.clear();
        // FIXME(issue 9): a dropped connection should lose the frames on their way.
        disconnects.clear();
        let group = usize::from(self.peers[index as usize].group);
        for (to_id, frame) in wire.drain(..) {
            let bytes = frame.encoded_len();
            self.groups[group].hour.messages_sent += 1;
            self.groups[group].hour.bytes_sent += bytes;
            let Some(&to) = self.index.get(&to_id) else {
                continue;
            };
            if to == index {
                continue;
            }
            let (a, b) = (index as usize, to as usize);
            let (from_links, to_links) = if a < b {
                let (left, right) = self.peers.split_at_mut(b);
                (&mut left[a].links, &mut right[0].links)
            } else {
                let (left, right) = self.peers.split_at_mut(a);
                (&mut right[0].links, &mut left[b].links)
            };
            if let Some(at) = self.network.send(
                now,
                bytes,
                (a, from_links),
                (b, to_links),
                &mut self.net_rng,
            ) {
                self.schedule(
                    at,
                    SimEvent::Deliver {
                        to,
                        from: index,
                        frame,
                    },
                );
            }
        }
        let incarnation = self.peers[index as usize].incarnation;
        for (actor, at, token) in timers.drain(..) {
            self.schedule(
                at,
                SimEvent::Timer {
                    peer: index,
                    incarnation,
                    actor,
                    token,
                },
            );
        }
        for event in events.drain(..) {
            self.observe(index, event);
        }
        *self.outbox.effects() = effects;
    }

    fn observe(&mut self, index: u32, event: Event) {
        let group = usize::from(self.peers[index as usize].group);
        match event {
            Event::Holding { chunk, held } => {
                let list = self.holders.entry(chunk).or_default();
                if held && !list.contains(&index) {
                    list.push(index);
                    self.peers[index as usize].held.push(chunk);
                } else if !held {
                    list.retain(|h| *h != index);
                }
            }
            Event::Published { root, chunks, .. } => {
                self.groups[group].hour.publishes += 1;
                self.catalog.push(Object {
                    root,
                    chunks,
                    publisher: index,
                    at: self.now,
                });
            }
            Event::FetchDone {
                root, ok, started, ..
            } => {
                let counters = &mut self.groups[group].hour;
                if ok {
                    counters.fetches_ok += 1;
                    counters.latencies_ms.push(
                        (self.now.since(started) / Time::MILLISECOND).min(u64::from(u32::MAX))
                            as u32,
                    );
                } else {
                    counters.fetches_failed += 1;
                }
                if let Some(waiting) = self.probe_fetches.get_mut(&(index, root, started)) {
                    if let Some(probe) = waiting.pop() {
                        self.probes[probe].0 += u64::from(ok);
                        self.probes[probe].1 += 1;
                    }
                    if waiting.is_empty() {
                        self.probe_fetches.remove(&(index, root, started));
                    }
                }
            }
            Event::ReplicaPlaced { .. } | Event::Disqualified { .. } => {}
            Event::LookupDone { key, found, hops } => {
                // Only lookups for live data count: at least one holder is up.
                let holders = self.holders.get(&key).map_or(&[][..], |v| &v[..]);
                if holders.iter().any(|h| self.alive(*h)) {
                    let counters = &mut self.groups[group].hour;
                    counters.lookups_live += 1;
                    if found {
                        counters.lookups_found += 1;
                        counters.lookup_hops.push(hops);
                    }
                }
            }
            Event::ChainAppended { .. } => self.groups[group].hour.chain_records += 1,
            Event::ChainVerified { records } => self.groups[group].hour.chain_verified += records,
            Event::ForkLearned { offender } => {
                self.groups[group].hour.forks_detected += 1;
                self.fork_learned
                    .entry((offender, index))
                    .or_insert(self.now);
            }
            Event::Forked => {
                let id = self.peers[index as usize].peer.id();
                self.forks.entry(id).or_insert(self.now);
            }
        }
    }

    fn random_member(&mut self, group: usize) -> Option<u32> {
        let members = &self.groups[group].members;
        if members.is_empty() {
            return None;
        }
        let pick = members[self.rng.gen_range(0..members.len())];
        let peer = &self.peers[pick as usize];
        (peer.online && !peer.departed).then_some(pick)
    }

    /// A published object chosen by the scenario's popularity, newest ranked first.
    fn pick_object(&mut self, limit: usize) -> Option<usize> {
        if limit == 0 {
            return None;
        }
        let u: f64 = self.rng.gen_range(0.0..1.0);
        let n = limit as f64;
        // Inverse of the continuous approximation of the Zipf CDF over ranks 1..=n, so every
        // rank, the oldest included, can be drawn.
        let rank = match self.scenario.workload.popularity {
            Popularity::Uniform => (u * n) as usize,
            Popularity::Zipf { s } if (s - 1.0).abs() < 1e-9 => {
                (libm::pow(n + 1.0, u) - 1.0) as usize
            }
            Popularity::Zipf { s } => {
                (libm::pow(
                    (libm::pow(n + 1.0, 1.0 - s) - 1.0) * u + 1.0,
                    1.0 / (1.0 - s),
                ) - 1.0) as usize
            }
        };
        Some(limit - 1 - rank.min(limit - 1))
    }

    /// Asks `peer` to fetch catalog entry `object` (not its own), counting it for `probe`.
    fn fetch(&mut self, peer: u32, object: usize, probe: Option<usize>) -> bool {
        let object = &self.catalog[object];
        if object.publisher == peer {
            return false;
        }
        let root = object.root;
        // Registered first: the fetch may end within the step that starts it.
        if let Some(probe) = probe {
            self.probe_fetches
                .entry((peer, root, self.now))
                .or_default()
                .push(probe);
        }
        self.step(
            peer,
            ActorKind::Negotiator,
            Input::Command(Command::Fetch { root }),
        );
        true
    }

    fn content(&mut self) -> Content {
        let w = &self.scenario.workload;
        let size = self.rng.gen_range(w.object_bytes_min..=w.object_bytes_max);
        let seed: u64 = self.rng.gen();
        match self.scenario.fidelity {
            Fidelity::Synthetic => Content::Synthetic {
                size,
                seed,
                chunk_bytes: w.chunk_bytes,
            },
            Fidelity::Full => {
                let mut bytes = vec![0u8; size as usize];
                ChaCha8Rng::seed_from_u64(seed).fill(&mut bytes[..]);
                Content::Bytes(bytes)
            }
        }
    }

    fn handle(&mut self, event: SimEvent) {
        match event {
            SimEvent::Deliver { to, from, frame } => {
                let peer = &self.peers[to as usize];
                if peer.online && !peer.departed {
                    let from = self.peers[from as usize].peer.id();
                    self.step(to, ActorKind::Transport, Input::Wire { from, frame });
                }
            }
            SimEvent::Timer {
                peer,
                incarnation,
                actor,
                token,
            } => {
                let p = &self.peers[peer as usize];
                if p.online && !p.departed && p.incarnation == incarnation {
                    self.step(peer, actor, Input::Timer { token });
                }
            }
            SimEvent::Churn { peer, incarnation } => {
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
            SimEvent::Depart { peer } => {
                self.abandon_fetches(peer);
                self.take_offline(peer);
                self.peers[peer as usize].departed = true;
                self.forget_disk(peer);
            }
            SimEvent::Arrive { group } => {
                let index = self.add_peer(group);
                let side = self.rng.gen_bool(self.side_a);
                if let Some(sides) = self.network.sides.as_mut() {
                    sides.push(side);
                }
                self.rebuild_directory();
                self.bring_online(index);
            }
            SimEvent::Publish { group } => {
                let g = usize::from(group);
                if let Some(peer) = self.random_member(g) {
                    let content = self.content();
                    self.step(
                        peer,
                        ActorKind::Negotiator,
                        Input::Command(Command::Publish { content }),
                    );
                }
                let rate = self.scenario.workload.publish_per_peer_per_day
                    * self.groups[g].members.len() as f64;
                let at = self.now.plus(exponential(
                    &mut self.rng,
                    Time::DAY as f64 / rate.max(1e-9),
                ));
                self.schedule(at, SimEvent::Publish { group });
            }
            SimEvent::Fetch { group } => {
                let g = usize::from(group);
                if let (Some(peer), Some(object)) =
                    (self.random_member(g), self.pick_object(self.catalog.len()))
                {
                    self.fetch(peer, object, None);
                }
                let rate = self.scenario.workload.fetch_per_peer_per_day
                    * self.groups[g].members.len() as f64;
                let at = self.now.plus(exponential(
                    &mut self.rng,
                    Time::DAY as f64 / rate.max(1e-9),
                ));
                self.schedule(at, SimEvent::Fetch { group });
            }
            SimEvent::PartitionStart { side_a } => {
                self.side_a = side_a;
                let sides = (0..self.peers.len())
                    .map(|_| self.rng.gen_bool(side_a))
                    .collect();
                self.network.sides = Some(sides);
            }
            SimEvent::PartitionHeal => self.network.sides = None,
            SimEvent::Crash { group, fraction } => {
                let members = self.groups[usize::from(group)].members.clone();
                for index in members {
                    let p = &self.peers[index as usize];
                    if p.departed || !self.rng.gen_bool(fraction) {
                        continue;
                    }
                    let config = self.groups[usize::from(group)].config.clone();
                    self.abandon_fetches(index);
                    self.forget_disk(index);
                    let key = self.peer_key(index);
                    self.peers[index as usize].peer = Peer::new(key, config, Store::memory());
                    if self.peers[index as usize].online {
                        self.take_offline(index);
                        self.bring_online(index);
                    }
                }
            }
            SimEvent::Probe { probe } => {
                let spec = self.scenario.probes[probe].clone();
                let before = Time(hours(spec.published_before_hours));
                let eligible = self.catalog.partition_point(|o| o.at < before);
                let groups = self.groups.len();
                let mut made = 0;
                let mut attempts = 0;
                while made < spec.fetches && attempts < spec.fetches.saturating_mul(20) {
                    attempts += 1;
                    let g = self.rng.gen_range(0..groups);
                    let (Some(peer), true) = (self.random_member(g), eligible > 0) else {
                        continue;
                    };
                    let object = self.rng.gen_range(0..eligible);
                    if self.fetch(peer, object, Some(probe)) {
                        made += 1;
                    }
                }
            }
            SimEvent::Tick => {
                self.tick();
                if self.now.plus(Time::HOUR) <= self.end {
                    self.schedule(self.now.plus(Time::HOUR), SimEvent::Tick);
                }
            }
        }
    }

    fn alive(&self, index: u32) -> bool {
        let peer = &self.peers[index as usize];
        peer.online && !peer.departed
    }

    /// One metrics row per group (and "all") for the hour that just ended.
    fn tick(&mut self) {
        let hour = self.now.micros() / Time::HOUR;
        let groups = self.groups.len();
        let mut objects = vec![0u64; groups + 1];
        let mut available = vec![0u64; groups + 1];
        let mut replicas = vec![(0u64, 0u64); groups + 1];
        for object in &self.catalog {
            let g = usize::from(self.peers[object.publisher as usize].group);
            let mut ok = true;
            for chunk in &object.chunks {
                let holders = self.holders.get(chunk).map_or(&[][..], |v| &v[..]);
                let alive = holders.iter().filter(|h| self.alive(**h)).count();
                let others = holders
                    .iter()
                    .filter(|h| **h != object.publisher && self.alive(**h))
                    .count();
                ok &= alive > 0;
                for slot in [g, groups] {
                    replicas[slot].0 += others as u64;
                    replicas[slot].1 += 1;
                }
            }
            for slot in [g, groups] {
                objects[slot] += 1;
                available[slot] += u64::from(ok);
            }
        }
        let mut all_hour = GroupCounters::default();
        for g in 0..=groups {
            let (name, members, mut counters) = if g < groups {
                let state = &mut self.groups[g];
                let counters = std::mem::take(&mut state.hour);
                state.total.add(&counters);
                all_hour.add(&counters);
                (state.name.clone(), state.members.clone(), counters)
            } else {
                (
                    "all".to_owned(),
                    (0..self.peers.len() as u32).collect(),
                    std::mem::take(&mut all_hour),
                )
            };
            let online = members.iter().filter(|m| self.alive(**m)).count() as u64;
            let bytes_for_others = members
                .iter()
                .filter(|m| !self.peers[**m as usize].departed)
                .map(|m| self.peers[*m as usize].peer.store.bytes_for_others())
                .sum();
            let availability = if objects[g] > 0 {
                available[g] as f64 / objects[g] as f64
            } else {
                1.0
            };
            if objects[g] > 0 {
                self.availability[g].push(availability);
            }
            self.rows.push(HourRow {
                hour,
                group: name,
                online_peers: online,
                bytes_for_others,
                fetches_ok: counters.fetches_ok,
                fetches_failed: counters.fetches_failed,
                fetch_latency_p50_ms: percentile(&mut counters.latencies_ms, 50.0),
                fetch_latency_p95_ms: percentile(&mut counters.latencies_ms, 95.0),
                objects: objects[g],
                availability,
                replicas_alive_mean: if replicas[g].1 > 0 {
                    replicas[g].0 as f64 / replicas[g].1 as f64
                } else {
                    0.0
                },
                messages_sent: counters.messages_sent,
                bytes_sent: counters.bytes_sent,
            });
        }
    }

    /// Runs to the end of the scenario.
    pub fn run(mut self, progress: &mut dyn FnMut(Progress)) -> RunOutput {
        let mut handled: u64 = 0;
        while let Some((at, event)) = self.queue.pop() {
            if at > self.end {
                break;
            }
            self.now = at;
            self.handle(event);
            handled += 1;
            if handled.is_multiple_of(65_536) {
                progress(Progress {
                    now: self.now,
                    end: self.end,
                    events: self.delivered,
                });
            }
        }
        self.now = self.end;
        progress(Progress {
            now: self.now,
            end: self.end,
            events: self.delivered,
        });
        self.finish()
    }

    /// For every fork made, the longest any honest, present member of `members` took to
    /// learn of it, in hours; a peer that never learned counts as taking until the end.
    fn fork_learn_hours_max(&self, members: &[u32]) -> f64 {
        let mut worst: u64 = 0;
        for (offender, made) in &self.forks {
            for index in members {
                let peer = &self.peers[*index as usize];
                if peer.departed || self.forks.contains_key(&peer.peer.id()) {
                    continue;
                }
                let learned = self
                    .fork_learned
                    .get(&(*offender, *index))
                    .copied()
                    .unwrap_or(self.end);
                worst = worst.max(learned.since(*made));
            }
        }
        worst as f64 / Time::HOUR as f64
    }

    fn finish(mut self) -> RunOutput {
        let groups = self.groups.len();
        let mut summary_groups = BTreeMap::new();
        let mut all = GroupCounters::default();
        for g in 0..=groups {
            let (name, mut counters, members) = if g < groups {
                let state = &mut self.groups[g];
                let leftover = std::mem::take(&mut state.hour);
                state.total.add(&leftover);
                all.add(&state.total);
                (
                    state.name.clone(),
                    state.total.clone(),
                    state.members.clone(),
                )
            } else {
                (
                    "all".to_owned(),
                    std::mem::take(&mut all),
                    (0..self.peers.len() as u32).collect(),
                )
            };
            let fetches = counters.fetches_ok + counters.fetches_failed;
            let series = &self.availability[g];
            let last = self.rows.iter().rev().find(|row| row.group == name);
            let mut m = BTreeMap::new();
            m.insert("peers".to_owned(), members.len() as f64);
            m.insert("publishes".to_owned(), counters.publishes as f64);
            m.insert("fetches".to_owned(), fetches as f64);
            m.insert(
                "fetch_success_ratio".to_owned(),
                if fetches > 0 {
                    counters.fetches_ok as f64 / fetches as f64
                } else {
                    1.0
                },
            );
            m.insert(
                "fetch_latency_p50_ms".to_owned(),
                percentile(&mut counters.latencies_ms, 50.0),
            );
            m.insert(
                "fetch_latency_p95_ms".to_owned(),
                percentile(&mut counters.latencies_ms, 95.0),
            );
            m.insert(
                "fetch_latency_p99_ms".to_owned(),
                percentile(&mut counters.latencies_ms, 99.0),
            );
            m.insert(
                "availability_mean".to_owned(),
                if series.is_empty() {
                    1.0
                } else {
                    series.iter().sum::<f64>() / series.len() as f64
                },
            );
            m.insert(
                "availability_min".to_owned(),
                series.iter().copied().fold(1.0, f64::min),
            );
            m.insert(
                "availability_final".to_owned(),
                series.last().copied().unwrap_or(1.0),
            );
            m.insert(
                "replicas_alive_final".to_owned(),
                last.map_or(0.0, |r| r.replicas_alive_mean),
            );
            m.insert(
                "bytes_for_others".to_owned(),
                last.map_or(0.0, |r| r.bytes_for_others as f64),
            );
            m.insert("messages_sent".to_owned(), counters.messages_sent as f64);
            m.insert("bytes_sent".to_owned(), counters.bytes_sent as f64);
            m.insert("chain_records".to_owned(), counters.chain_records as f64);
            m.insert(
                "chain_records_verified".to_owned(),
                counters.chain_verified as f64,
            );
            m.insert("forks_detected".to_owned(), counters.forks_detected as f64);
            m.insert("lookups".to_owned(), counters.lookups_live as f64);
            m.insert(
                "lookup_success_ratio".to_owned(),
                if counters.lookups_live > 0 {
                    counters.lookups_found as f64 / counters.lookups_live as f64
                } else {
                    1.0
                },
            );
            m.insert(
                "lookup_hops_p50".to_owned(),
                percentile(&mut counters.lookup_hops, 50.0),
            );
            m.insert(
                "lookup_hops_p95".to_owned(),
                percentile(&mut counters.lookup_hops, 95.0),
            );
            m.insert(
                "fork_learn_hours_max".to_owned(),
                self.fork_learn_hours_max(&members),
            );
            summary_groups.insert(name, m);
        }
        // A probe none of whose fetches ended reports nothing, so an expectation on it fails.
        let probes = self
            .scenario
            .probes
            .iter()
            .zip(&self.probes)
            .filter(|(_, (_, all))| *all > 0)
            .map(|(p, (ok, all))| (p.name.clone(), *ok as f64 / *all as f64))
            .collect();
        let digest: [u8; 32] = self.digest.finalize().into();
        let summary = Summary {
            scenario: self.name,
            seed: self.seed,
            duration_hours: self.scenario.duration_hours,
            fidelity: format!("{:?}", self.scenario.fidelity).to_lowercase(),
            events: self.delivered,
            trace_digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
            groups: summary_groups,
            probes,
        };
        RunOutput {
            summary,
            rows: self.rows,
        }
    }
}
