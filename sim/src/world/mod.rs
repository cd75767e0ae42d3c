//! The simulated host: a single-threaded discrete-event loop that drives real peers (the
//! kernel's actors) over the modelled network, with churn, faults and a workload, and
//! measures what happens. Events are ordered by (virtual time, sequence number); every random
//! choice comes from ChaCha generators derived from the scenario seed; every input delivered
//! to an actor is hashed into the trace digest.
//!
//! This host decides nothing a peer would decide: it moves frames, fires timers, turns peers
//! on and off, and issues the workload's commands. This file owns the [`World`], its
//! construction, the event loop and the carrying out of a peer's [`Effects`]; the rest is
//! split by concern: `lifecycle.rs` (peers on and off), `workload.rs` (what peers are asked to
//! do) and `measure.rs` (what the run observed).

mod lifecycle;
mod measure;
mod standing;
#[cfg(test)]
mod tests;
mod workload;

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use cryptosphere::ids::ChunkId;
use cryptosphere::kernel::peer::Peer;
use cryptosphere::kernel::strategy::StrangerPolicy;
use cryptosphere::kernel::{
    ActorKind, Directory, Effects, Frame, Input, KernelConfig, Outbox, PeerId, Time,
};
use cryptosphere::store::Store;

use crate::metrics::{GroupCounters, HourRow, Summary};
use crate::network::{Links, Network, Sent};
use crate::queue::EventQueue;
use crate::scenario::{Fault, Fidelity, Scenario, Strangers};

#[derive(Debug)]
enum SimEvent {
    /// A frame has crossed its sender's uplink and the latency: it takes its turn on the
    /// receiver's downlink.
    AtDownlink {
        to: u32,
        from: u32,
        /// Frames are numbered as they are sent, from 1 (see `Network::sever`).
        number: u64,
        frame: Frame,
    },
    /// A frame is through the receiver's downlink: it goes to the receiver's transport.
    Deliver {
        to: u32,
        from: u32,
        number: u64,
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
    Reboot {
        group: u16,
        fraction: f64,
    },
    Probe {
        probe: usize,
    },
    /// A whitewasher comes back under a fresh identity (`lifecycle.rs`).
    Rekey {
        peer: u32,
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
    /// Identities it has had (a whitewasher takes a fresh one every so often).
    identities: u32,
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
    /// A defecting group's contracts (member, partner) at the first hourly row from its
    /// defection on, as long as they last, each with the hourly rows at which its partner
    /// was online; the hour the last of them went; the most such rows of any that went.
    defection_contracts: Option<std::collections::BTreeMap<(u32, PeerId), u64>>,
    defection_contracts_gone: Option<u64>,
    defection_online_hours_max: u64,
}

/// What one dropper did to one owner's chunks.
#[derive(Debug, Default)]
struct Drops {
    /// When the first dropped chunk the owner challenged (while still dropped) was dropped.
    audited_from: Option<Time>,
}

/// What a fetch in flight counts for besides its fetcher's group.
#[derive(Debug, Default)]
struct Watched {
    /// The object was published by a member of the fetcher's own group.
    own_group: bool,
    /// The probes it counts for.
    probes: Vec<usize>,
}

/// Which peers hold each chunk, by a slot number per chunk (so that the hourly measurement
/// walks the catalog without a search per chunk). A chunk's first holders are kept in its
/// slot, not behind a pointer: an object's chunks take consecutive slots, so the hourly walk
/// reads memory in order.
#[derive(Debug, Default)]
struct Holders {
    slots: BTreeMap<ChunkId, u32>,
    lists: Vec<SmallVec<[u32; 4]>>,
}

impl Holders {
    /// The slot of `chunk`, made if needed.
    fn slot(&mut self, chunk: ChunkId) -> u32 {
        let next = self.lists.len() as u32;
        let slot = *self.slots.entry(chunk).or_insert(next);
        if slot == next {
            self.lists.push(SmallVec::new());
        }
        slot
    }

    fn of(&self, chunk: &ChunkId) -> &[u32] {
        self.slots
            .get(chunk)
            .map_or(&[][..], |slot| &self.lists[*slot as usize])
    }

    fn at(&self, slot: u32) -> &[u32] {
        &self.lists[slot as usize]
    }
}

#[derive(Debug)]
struct Object {
    root: ChunkId,
    /// The slots (in [`Holders`]) of its chunks.
    chunks: Vec<u32>,
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
    /// Where the events went: inputs delivered per group, actor and kind.
    pub profile: Vec<ProfileRow>,
}

/// One line of `profile.csv`: how many inputs of one kind one actor of a group's peers took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    pub group: String,
    pub actor: &'static str,
    pub kind: &'static str,
    pub events: u64,
}

impl ProfileRow {
    pub const CSV_HEADER: &'static str = "group,actor,kind,events";

    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{}",
            self.group, self.actor, self.kind, self.events
        )
    }
}

/// Trace codes are below this (see `cryptosphere_node::kernel::peer::input_code`).
const KIND_CODES: usize = 64;

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
    /// Inputs delivered per group, actor and trace code (codes at or past `KIND_CODES`
    /// count in the last slot).
    profile: Vec<[[u64; KIND_CODES]; 4]>,
    /// Frames numbered so far (each frame put on its way takes the next number).
    frames_sent: u64,
    catalog: Vec<Object>,
    holders: Holders,
    probes: Vec<(u64, u64)>,
    /// Fetches in flight: (fetcher, root, start) → what they count for.
    fetches: BTreeMap<(u32, ChunkId, Time), Watched>,
    rows: Vec<HourRow>,
    availability: Vec<Vec<f64>>,
    /// Share of peers on side A of the current (or last) partition.
    side_a: f64,
    /// Forks made (offender → when) and when each peer learned of each.
    forks: BTreeMap<PeerId, Time>,
    fork_learned: BTreeMap<(PeerId, u32), Time>,
    /// Silent drops per (owner, dropper); and when each owner disqualified each holder.
    drops: BTreeMap<(u32, u32), Drops>,
    /// Chunks dropped and not held since: (dropper, chunk) → (owner, when).
    dropped: BTreeMap<(u32, ChunkId), (u32, Time)>,
    disqualifications: BTreeMap<(u32, u32), Time>,
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
            scenario.network.uplink_queue_bytes_max,
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
                    chain_book_records_max: scenario
                        .chains
                        .as_ref()
                        .map_or(0, |c| c.book_records_max as usize),
                    trust: scenario.chains.as_ref().filter(|c| c.filter).map(|c| {
                        cryptosphere::kernel::trust::TrustConfig {
                            graph_nodes_max: c.graph_nodes_max as usize,
                            graph_edges_max: c.graph_edges_max as usize,
                            recompute_interval_us: hours(c.recompute_every_hours),
                            ..Default::default()
                        }
                    }),
                    strategy: cryptosphere::kernel::strategy::Strategy {
                        altruism: g.strategy.altruism,
                        storage_freeloader: g.strategy.storage_freeloader,
                        bandwidth_freeloader: g.strategy.bandwidth_freeloader,
                        drop_fraction: g.strategy.drop_fraction,
                        liar: g.strategy.liar,
                        fork_at_us: g.strategy.fork_at_hours.map(hours),
                        strangers: match g.strategy.strangers {
                            Strangers::Adaptive => StrangerPolicy::Adaptive,
                            Strangers::Fixed => StrangerPolicy::Fixed,
                            Strangers::Stingy => StrangerPolicy::Stingy,
                        },
                        stranger_only: g.strategy.stranger_only,
                        defect_at_us: g.strategy.defect_at_hours.map(hours),
                        // Filled in by `populate` once the members' identities are known.
                        accomplices: std::sync::Arc::from(Vec::new()),
                        praise_bytes: g.strategy.praise_bytes,
                        serves_only_accomplices: g.strategy.serves_only_group,
                        omits_others_records: g.strategy.omits_others_records,
                    },
                    synthetic_payloads: scenario.fidelity == Fidelity::Synthetic,
                    replication: g.strategy.replication as usize,
                    storage_for_others_bytes: (g.storage_mib * (1u64 << 20) as f64) as u64,
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
                defection_contracts: None,
                defection_contracts_gone: None,
                defection_online_hours_max: 0,
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
            profile: vec![[[0; KIND_CODES]; 4]; scenario.groups.len()],
            frames_sent: 0,
            catalog: Vec::new(),
            holders: Holders::default(),
            probes: vec![(0, 0); scenario.probes.len()],
            fetches: BTreeMap::new(),
            rows: Vec::new(),
            availability: vec![Vec::new(); scenario.groups.len() + 1],
            side_a: 0.5,
            forks: BTreeMap::new(),
            fork_learned: BTreeMap::new(),
            drops: BTreeMap::new(),
            dropped: BTreeMap::new(),
            disqualifications: BTreeMap::new(),
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
            identities: 1,
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
        // Colluding groups' members know each other: peers are numbered group by group, so
        // their identities are known before they are made.
        let mut first = 0u32;
        for (g, group) in scenario.groups.iter().enumerate() {
            if group.strategy.colludes() {
                let mut ids: Vec<PeerId> = (first..first + group.count)
                    .map(|i| PeerId(self.peer_key(i).verifying_key().to_bytes()))
                    .collect();
                ids.sort();
                self.groups[g].config.strategy.accomplices = std::sync::Arc::from(ids);
            }
            first += group.count;
        }
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
            if let Some(every) = scenario.groups[g].strategy.rekey_every_hours {
                let every = hours(every).max(1);
                let at = Time(self.rng.gen_range(1..=every));
                self.schedule(at, SimEvent::Rekey { peer: index });
            }
        }
        for (g, group) in scenario.groups.iter().enumerate() {
            for _ in 0..group.arrivals {
                let at = Time(self.rng.gen_range(0..duration));
                self.schedule(at, SimEvent::Arrive { group: g as u16 });
            }
            let warmup = Time(hours(scenario.workload.warmup_hours));
            let rates = self.group_workload(g);
            if rates.publish_per_peer_per_day > 0.0 && group.count + group.arrivals > 0 {
                self.schedule(warmup, SimEvent::Publish { group: g as u16 });
            }
            if rates.fetch_per_peer_per_day > 0.0 && group.count + group.arrivals > 0 {
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
                }
                | Fault::Reboot {
                    at_hours,
                    group,
                    fraction,
                } => {
                    let group = scenario
                        .groups
                        .iter()
                        .position(|x| &x.name == group)
                        .unwrap_or(0) as u16;
                    let fraction = *fraction;
                    let event = match fault {
                        Fault::Crash { .. } => SimEvent::Crash { group, fraction },
                        _ => SimEvent::Reboot { group, fraction },
                    };
                    self.schedule(Time(hours(*at_hours)), event);
                }
            }
        }
        for (probe, p) in scenario.probes.iter().enumerate() {
            self.schedule(Time(hours(p.at_hours)), SimEvent::Probe { probe });
        }
        self.schedule(Time(Time::HOUR), SimEvent::Tick);
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
            let group = usize::from(self.peers[index as usize].group);
            self.profile[group][actor as usize][usize::from(kind).min(KIND_CODES - 1)] += 1;
        }
        // Simulated peers are reached by id: there are no addresses to learn or dial.
        dials.clear();
        addresses.clear();
        // A dropped connection loses what is on its way, both ways, as the node's closed TCP
        // connection does. Frames the step sends next go on a new connection, as the node's
        // do (it drops connections before it sends).
        for peer in disconnects.drain(..) {
            if let Some(&other) = self.index.get(&peer) {
                self.network.sever(index, other, self.frames_sent);
            }
        }
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
            let to_region = self.peers[to as usize].links.region;
            match self.network.send(
                now,
                bytes,
                (index as usize, &mut self.peers[index as usize].links),
                (to as usize, to_region),
                &mut self.net_rng,
            ) {
                Sent::Arrives(at) => {
                    self.frames_sent += 1;
                    self.schedule(
                        at,
                        SimEvent::AtDownlink {
                            to,
                            from: index,
                            number: self.frames_sent,
                            frame,
                        },
                    );
                }
                Sent::Lost => {}
                Sent::Dropped => self.groups[group].hour.frames_dropped += 1,
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

    fn handle(&mut self, event: SimEvent) {
        match event {
            SimEvent::AtDownlink {
                to,
                from,
                number,
                frame,
            } => {
                // A receiver that is down, or a connection dropped since, takes no downlink.
                if self.deliverable(to, from, number) {
                    let bytes = frame.encoded_len();
                    let at = self.peers[to as usize].links.receive(self.now, bytes);
                    self.schedule(
                        at,
                        SimEvent::Deliver {
                            to,
                            from,
                            number,
                            frame,
                        },
                    );
                }
            }
            SimEvent::Deliver {
                to,
                from,
                number,
                frame,
            } => {
                if self.deliverable(to, from, number) {
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
            SimEvent::Churn { peer, incarnation } => self.churn(peer, incarnation),
            SimEvent::Depart { peer } => self.depart(peer),
            SimEvent::Arrive { group } => self.arrive(group),
            SimEvent::Publish { group } => self.publish_due(group),
            SimEvent::Fetch { group } => self.fetch_due(group),
            SimEvent::PartitionStart { side_a } => {
                self.side_a = side_a;
                let sides = (0..self.peers.len())
                    .map(|_| self.rng.gen_bool(side_a))
                    .collect();
                self.network.sides = Some(sides);
            }
            SimEvent::PartitionHeal => self.network.sides = None,
            SimEvent::Crash { group, fraction } => self.crash(group, fraction),
            SimEvent::Reboot { group, fraction } => self.reboot(group, fraction),
            SimEvent::Rekey { peer } => self.rekey(peer),
            SimEvent::Probe { probe } => self.probe(probe),
            SimEvent::Tick => {
                self.forget_severed();
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

    /// Does frame `number` from `from` reach `to` now: is the receiver up, and was the frame
    /// not on its way when their connection dropped?
    fn deliverable(&self, to: u32, from: u32, number: u64) -> bool {
        self.alive(to) && !self.network.severed(from, to, number)
    }

    /// Forgets the dropped connections that no frame in flight predates (hourly, and only
    /// when some connection dropped: this looks at every event waiting).
    fn forget_severed(&mut self) {
        if !self.network.remembers_severed() {
            return;
        }
        let oldest = self
            .queue
            .iter()
            .filter_map(|event| match event {
                SimEvent::AtDownlink { number, .. } | SimEvent::Deliver { number, .. } => {
                    Some(*number)
                }
                _ => None,
            })
            .min();
        self.network.forget_severed(oldest);
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
}
