//! The workload: publications and fetches at the scenario's rates, probes, the content of
//! each publication, and which object a fetch asks for (popularity). It issues commands to
//! peers; what they do with them is theirs.

use cryptosphere::kernel::content::Content;
use cryptosphere::kernel::{ActorKind, Command, Input, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{exponential, hours, SimEvent, World};
use crate::scenario::{Fidelity, Popularity};

impl World {
    /// Members the group's next workload event is timed for: a group still empty (its
    /// peers all arrive later) is timed as one, so that it starts once they come.
    fn rate_members(&self, group: usize) -> f64 {
        self.groups[group].members.len().max(1) as f64
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
        let own_group =
            self.peers[object.publisher as usize].group == self.peers[peer as usize].group;
        // Registered first: the fetch may end within the step that starts it.
        let watched = self.fetches.entry((peer, root, self.now)).or_default();
        watched.own_group = own_group;
        watched.probes.extend(probe);
        self.step(
            peer,
            ActorKind::Negotiator,
            Input::Command(Command::Fetch { root }),
        );
        true
    }

    /// Group `g`'s workload: its own values where it has them, the scenario's elsewhere.
    pub(super) fn group_workload(&self, g: usize) -> GroupRates {
        let w = &self.scenario.workload;
        let own = &self.scenario.groups[g].workload;
        GroupRates {
            publish_per_peer_per_day: own
                .publish_per_peer_per_day
                .unwrap_or(w.publish_per_peer_per_day),
            fetch_per_peer_per_day: own
                .fetch_per_peer_per_day
                .unwrap_or(w.fetch_per_peer_per_day),
            object_bytes_min: own.object_bytes_min.unwrap_or(w.object_bytes_min),
            object_bytes_max: own.object_bytes_max.unwrap_or(w.object_bytes_max),
        }
    }

    fn content(&mut self, g: usize) -> Content {
        let rates = self.group_workload(g);
        let w = &self.scenario.workload;
        let size = self
            .rng
            .gen_range(rates.object_bytes_min..=rates.object_bytes_max);
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

    /// A publication of `group` is due: a random member publishes, and the next is scheduled.
    pub(super) fn publish_due(&mut self, group: u16) {
        let g = usize::from(group);
        if let Some(peer) = self.random_member(g) {
            let content = self.content(g);
            self.step(
                peer,
                ActorKind::Negotiator,
                Input::Command(Command::Publish { content }),
            );
        }
        let rate = self.group_workload(g).publish_per_peer_per_day * self.rate_members(g);
        let at = self.now.plus(exponential(
            &mut self.rng,
            Time::DAY as f64 / rate.max(1e-9),
        ));
        self.schedule(at, SimEvent::Publish { group });
    }

    /// A fetch of `group` is due: a random member fetches, and the next is scheduled.
    pub(super) fn fetch_due(&mut self, group: u16) {
        let g = usize::from(group);
        if let (Some(peer), Some(object)) =
            (self.random_member(g), self.pick_object(self.catalog.len()))
        {
            self.fetch(peer, object, None);
        }
        let rate = self.group_workload(g).fetch_per_peer_per_day * self.rate_members(g);
        let at = self.now.plus(exponential(
            &mut self.rng,
            Time::DAY as f64 / rate.max(1e-9),
        ));
        self.schedule(at, SimEvent::Fetch { group });
    }

    /// Probe `probe` starts its fetches.
    pub(super) fn probe(&mut self, probe: usize) {
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
}

/// One group's publish and fetch rates and object sizes.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupRates {
    pub publish_per_peer_per_day: f64,
    pub fetch_per_peer_per_day: f64,
    pub object_bytes_min: u64,
    pub object_bytes_max: u64,
}
