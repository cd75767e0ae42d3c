//! Measurement: the host events peers report (holdings, publications, fetch and lookup ends,
//! chain records and forks), the hourly rows, and the summary at the end of the run.

use std::collections::BTreeMap;

use cryptosphere::kernel::peer::input_kind_name;
use cryptosphere::kernel::{Event, Time};
use sha2::Digest;

use super::{Object, ProfileRow, RunOutput, World};
use crate::metrics::{percentile, GroupCounters, GroupSummary, HourRow, Summary};

impl World {
    pub(super) fn observe(&mut self, index: u32, event: Event) {
        let group = usize::from(self.peers[index as usize].group);
        match event {
            Event::Holding { chunk, held } => {
                if held {
                    self.dropped.remove(&(index, chunk));
                }
                let slot = self.holders.slot(chunk);
                let list = &mut self.holders.lists[slot as usize];
                if held && !list.contains(&index) {
                    list.push(index);
                    self.peers[index as usize].held.push(chunk);
                } else if !held {
                    list.retain(|h| *h != index);
                }
            }
            Event::Published { root, chunks, .. } => {
                self.groups[group].hour.publishes += 1;
                let chunks = chunks.into_iter().map(|c| self.holders.slot(c)).collect();
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
                if let Some(watched) = self.fetches.remove(&(index, root, started)) {
                    if watched.own_group {
                        counters.own_group_fetches += 1;
                        counters.own_group_fetches_ok += u64::from(ok);
                    }
                    for probe in watched.probes {
                        self.probes[probe].0 += u64::from(ok);
                        self.probes[probe].1 += 1;
                    }
                }
            }
            Event::ReplicaPlaced { .. } => {}
            // A simulated reboot keeps the whole disk, so nothing is ever found lost.
            Event::LostAtStart { .. } => {}
            Event::Disqualified { holder } => {
                if let Some(&h) = self.index.get(&holder) {
                    let g = usize::from(self.peers[h as usize].group);
                    self.groups[g].hour.disqualified += 1;
                    self.disqualifications.entry((index, h)).or_insert(self.now);
                }
            }
            Event::Dropped { owner, chunk } => {
                if let Some(&o) = self.index.get(&owner) {
                    self.drops.entry((o, index)).or_default();
                    self.dropped.entry((index, chunk)).or_insert((o, self.now));
                }
            }
            Event::Challenged { chunk, holder } => {
                let Some(&h) = self.index.get(&holder) else {
                    return;
                };
                let Some(&(owner, at)) = self.dropped.get(&(h, chunk)) else {
                    return;
                };
                if owner == index {
                    let drops = self.drops.entry((index, h)).or_default();
                    drops.audited_from = drops.audited_from.or(Some(at));
                }
            }
            Event::LookupDone { key, found, hops } => {
                // Only lookups for live data count: at least one holder is up.
                if self.holders.of(&key).iter().any(|h| self.alive(*h)) {
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

    /// Follows the contracts each defecting group held at its defection, until the last
    /// is gone (by either side's end of it).
    fn follow_defections(&mut self, hour: u64) {
        for g in 0..self.groups.len() {
            let Some(at) = self.groups[g].config.strategy.defect_at_us else {
                continue;
            };
            if self.now.micros() < at || self.groups[g].defection_contracts_gone.is_some() {
                continue;
            }
            let held =
                |peers: &[super::SimPeer], member: u32, partner: &cryptosphere::kernel::PeerId| {
                    peers[member as usize]
                        .peer
                        .negotiator
                        .contracts()
                        .any(|(p, _)| p == partner)
                };
            let state = &self.groups[g];
            let mut left: std::collections::BTreeMap<(u32, cryptosphere::kernel::PeerId), u64> =
                match &state.defection_contracts {
                    None => state
                        .members
                        .iter()
                        .flat_map(|m| {
                            self.peers[*m as usize]
                                .peer
                                .negotiator
                                .contracts()
                                .map(|(p, _)| ((*m, *p), 0))
                                .collect::<Vec<_>>()
                        })
                        .collect(),
                    Some(set) => set.clone(),
                };
            let mut gone_online_max = 0;
            left.retain(|(m, p), online| {
                if !held(&self.peers, *m, p) {
                    gone_online_max = gone_online_max.max(*online);
                    return false;
                }
                // The partner judges the contract only while it is online.
                if self.index.get(p).is_some_and(|i| self.alive(*i)) {
                    *online += 1;
                }
                true
            });
            let state = &mut self.groups[g];
            state.defection_online_hours_max =
                state.defection_online_hours_max.max(gone_online_max);
            if left.is_empty() {
                state.defection_contracts_gone = Some(hour);
            }
            state.defection_contracts = Some(left);
        }
    }

    /// One metrics row per group (and "all") for the hour that just ended.
    pub(super) fn tick(&mut self) {
        let hour = self.now.micros() / Time::HOUR;
        self.follow_defections(hour);
        let groups = self.groups.len();
        let mut objects = vec![0u64; groups + 1];
        let mut available = vec![0u64; groups + 1];
        let mut replicas = vec![(0u64, 0u64); groups + 1];
        // Who is up, read once (every chunk's holders are looked up below).
        let up: Vec<bool> = (0..self.peers.len() as u32)
            .map(|i| self.alive(i))
            .collect();
        for object in &self.catalog {
            let g = usize::from(self.peers[object.publisher as usize].group);
            let mut ok = true;
            for slot in &object.chunks {
                let holders = self.holders.at(*slot);
                let alive = holders.iter().filter(|h| up[**h as usize]).count();
                let others = holders
                    .iter()
                    .filter(|h| **h != object.publisher && up[**h as usize])
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
        // The hourly audit score: the audits of up to AUDIT_OWNERS_HOURLY owners.
        let stride = self.peers.len().div_ceil(AUDIT_OWNERS_HOURLY);
        let economy = self.economy_by_group(stride);
        let standing = self.standing();
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
                frames_dropped: counters.frames_dropped,
                storage_obtained_bytes: economy[g].storage_obtained_bytes,
                bandwidth_given_bytes: economy[g].bandwidth_given_bytes,
                bandwidth_received_bytes: economy[g].bandwidth_received_bytes,
                creds_balance: economy[g].creds_balance,
                contracts: economy[g].contracts,
                reputation_mean: standing[g].reputation_mean,
                reputation_auc: standing[g].auc,
                reputation_observed: standing[g].observed,
                audit_score: economy[g].audit_score(),
            });
        }
    }

    /// The mean over `group`'s hourly rows from `from` on of `value` per member.
    fn steady_mean(
        &self,
        group: &str,
        from: u64,
        members: usize,
        value: impl Fn(&HourRow) -> u64,
    ) -> f64 {
        let rows: Vec<u64> = self
            .rows
            .iter()
            .filter(|r| r.group == group && r.hour * Time::HOUR >= from)
            .map(value)
            .collect();
        if rows.is_empty() || members == 0 {
            return 0.0;
        }
        rows.iter().sum::<u64>() as f64 / rows.len() as f64 / members as f64
    }

    /// The first hour `group`'s mean score in honest eyes was under the filter's line; the
    /// run's length if never.
    fn refused_from_hours(&self, group: &str) -> f64 {
        let line = self
            .groups
            .first()
            .and_then(|g| g.config.trust.as_ref())
            .map_or(
                cryptosphere::kernel::trust::TrustConfig::default().serve_line(),
                |t| t.serve_line(),
            );
        self.rows
            .iter()
            .find(|r| r.group == group && r.reputation_observed > 0 && r.reputation_mean < line)
            .map_or(self.end.micros() as f64 / Time::HOUR as f64, |r| {
                r.hour as f64
            })
    }

    /// Hours from group `g`'s defection until no contract it held then remains; the rest
    /// of the run if some does (0 for a group that never defects, and the "all" row).
    fn contracts_lost_hours(&self, g: usize) -> f64 {
        let hour = Time::HOUR as f64;
        let Some(state) = self.groups.get(g) else {
            return 0.0;
        };
        let Some(from) = state
            .config
            .strategy
            .defect_at_us
            .map(|at| at as f64 / hour)
        else {
            return 0.0;
        };
        let end = self.end.micros() as f64 / hour;
        state
            .defection_contracts_gone
            .map_or(end - from, |gone| gone as f64 - from)
            .max(0.0)
    }

    /// Over the contracts group `g` held at its defection, the most hourly rows at which
    /// the partner was online while the contract stood (for one still standing at the end,
    /// the rows until then); 0 for a group that never defects, and the "all" row.
    fn contracts_lost_online_hours(&self, g: usize) -> f64 {
        let Some(state) = self.groups.get(g) else {
            return 0.0;
        };
        let standing = state
            .defection_contracts
            .iter()
            .flat_map(|left| left.values())
            .copied()
            .max()
            .unwrap_or(0);
        standing.max(state.defection_online_hours_max) as f64
    }

    /// The mean stranger share of the present `members` now (1 if none is present).
    fn stranger_share_mean(&self, members: &[u32]) -> f64 {
        let shares: Vec<f64> = members
            .iter()
            .map(|m| &self.peers[*m as usize])
            .filter(|p| !p.departed)
            .map(|p| p.peer.negotiator.stranger_share())
            .collect();
        if shares.is_empty() {
            1.0
        } else {
            shares.iter().sum::<f64>() / shares.len() as f64
        }
    }

    /// Objects published by `members` of which some chunk has no holder at all.
    fn objects_lost(&self, members: &[u32]) -> usize {
        let members: std::collections::BTreeSet<u32> = members.iter().copied().collect();
        self.catalog
            .iter()
            .filter(|o| members.contains(&o.publisher))
            .filter(|o| {
                o.chunks
                    .iter()
                    .any(|slot| self.holders.at(*slot).is_empty())
            })
            .count()
    }

    /// The silent drops of `members` as holders, and how their owners' audits answered.
    fn with_drops(&self, mut summary: GroupSummary, members: &[u32]) -> GroupSummary {
        let members: std::collections::BTreeSet<u32> = members.iter().copied().collect();
        let mut pairs = 0u64;
        let mut audited = 0u64;
        let mut caught = 0u64;
        let mut worst: u64 = 0;
        for ((owner, dropper), drops) in &self.drops {
            if !members.contains(dropper) || self.peers[*owner as usize].departed {
                continue;
            }
            pairs += 1;
            // Only an owner that challenged a dropped chunk has seen the drop.
            let Some(first) = drops.audited_from else {
                continue;
            };
            audited += 1;
            let at = self.disqualifications.get(&(*owner, *dropper)).copied();
            caught += u64::from(at.is_some());
            worst = worst.max(at.unwrap_or(self.end).since(first));
        }
        summary.dropped_pairs = pairs as f64;
        summary.dropped_pairs_audited = audited as f64;
        summary.dropped_pairs_disqualified_ratio = if audited > 0 {
            caught as f64 / audited as f64
        } else {
            1.0
        };
        summary.disqualify_hours_max = worst as f64 / Time::HOUR as f64;
        summary
    }

    /// What each group (and, last, all) obtained and gave, as its members' own ledgers
    /// count it: storage other peers hold for them, bandwidth both ways, creds, contracts.
    /// Also how its members did as holders under audit, as their owners' ledgers count it:
    /// the ledgers of every `audit_stride`-th peer (finding each holder's group costs a
    /// lookup per ledger, a fifth of a run if every hour asked every owner).
    fn economy_by_group(&self, audit_stride: usize) -> Vec<Economy> {
        let groups = self.groups.len();
        let mut out = vec![Economy::default(); groups + 1];
        for (index, peer) in self.peers.iter().enumerate().filter(|(_, p)| !p.departed) {
            let audited = index % audit_stride.max(1) == 0;
            let g = usize::from(peer.group);
            let negotiator = &peer.peer.negotiator;
            // Kept by the ledgers as they change: no pass over them.
            let totals = negotiator.ledgers().totals();
            let mine = Economy {
                contracts: negotiator.contracts_len() as u64,
                storage_obtained_bytes: totals.held_by_them_bytes,
                bandwidth_given_bytes: totals.bandwidth_given_bytes,
                bandwidth_received_bytes: totals.bandwidth_received_bytes,
                creds_balance: totals.creds_balance,
                ..Economy::default()
            };
            if !audited {
                for slot in [g, groups] {
                    out[slot].add(&mine);
                }
                continue;
            }
            for (holder, ledger) in negotiator.ledgers().iter() {
                if ledger.audits_passed + ledger.audits_failed == 0 {
                    continue;
                }
                if let Some(h) = self.index.get(holder) {
                    let h = usize::from(self.peers[*h as usize].group);
                    for slot in [h, groups] {
                        out[slot].audits_passed += ledger.audits_passed;
                        out[slot].audits_failed += ledger.audits_failed;
                    }
                }
            }
            for slot in [g, groups] {
                out[slot].add(&mine);
            }
        }
        out
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

    pub(super) fn finish(mut self) -> RunOutput {
        let groups = self.groups.len();
        let economy = self.economy_by_group(1);
        let steady_from = (self.scenario.steady_from_hours * 3_600.0) as u64 * Time::SECOND;
        let mut summary_groups = BTreeMap::new();
        let mut all = GroupCounters::default();
        for (g, totals) in economy.iter().enumerate() {
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
            let summary = GroupSummary {
                peers: members.len() as f64,
                publishes: counters.publishes as f64,
                fetches: fetches as f64,
                fetch_success_ratio: if fetches > 0 {
                    counters.fetches_ok as f64 / fetches as f64
                } else {
                    1.0
                },
                fetch_success_own_group_ratio: if counters.own_group_fetches > 0 {
                    counters.own_group_fetches_ok as f64 / counters.own_group_fetches as f64
                } else {
                    1.0
                },
                fetch_latency_p50_ms: percentile(&mut counters.latencies_ms, 50.0),
                fetch_latency_p95_ms: percentile(&mut counters.latencies_ms, 95.0),
                fetch_latency_p99_ms: percentile(&mut counters.latencies_ms, 99.0),
                availability_mean: if series.is_empty() {
                    1.0
                } else {
                    series.iter().sum::<f64>() / series.len() as f64
                },
                availability_min: series.iter().copied().fold(1.0, f64::min),
                availability_final: series.last().copied().unwrap_or(1.0),
                replicas_alive_final: last.map_or(0.0, |r| r.replicas_alive_mean),
                bytes_for_others: last.map_or(0.0, |r| r.bytes_for_others as f64),
                messages_sent: counters.messages_sent as f64,
                bytes_sent: counters.bytes_sent as f64,
                frames_dropped: counters.frames_dropped as f64,
                chain_records: counters.chain_records as f64,
                chain_records_verified: counters.chain_verified as f64,
                forks_detected: counters.forks_detected as f64,
                fork_learn_hours_max: self.fork_learn_hours_max(&members),
                lookups: counters.lookups_live as f64,
                lookup_success_ratio: if counters.lookups_live > 0 {
                    counters.lookups_found as f64 / counters.lookups_live as f64
                } else {
                    1.0
                },
                lookup_hops_p50: percentile(&mut counters.lookup_hops, 50.0),
                lookup_hops_p95: percentile(&mut counters.lookup_hops, 95.0),
                storage_obtained_mean: self.steady_mean(&name, steady_from, members.len(), |r| {
                    r.storage_obtained_bytes
                }),
                storage_given_mean: self
                    .steady_mean(&name, steady_from, members.len(), |r| r.bytes_for_others),
                bandwidth_given_per_peer: per_peer(totals.bandwidth_given_bytes, &members),
                bandwidth_received_per_peer: per_peer(totals.bandwidth_received_bytes, &members),
                creds_balance_per_peer: totals.creds_balance as f64 / members.len().max(1) as f64,
                contracts_per_peer: per_peer(totals.contracts, &members),
                audits_passed: totals.audits_passed as f64,
                audits_failed: totals.audits_failed as f64,
                disqualified: counters.disqualified as f64,
                dropped_pairs: 0.0,
                dropped_pairs_audited: 0.0,
                dropped_pairs_disqualified_ratio: 1.0,
                disqualify_hours_max: 0.0,
                objects_lost_final: self.objects_lost(&members) as f64,
                reputation_mean_final: last.map_or(0.0, |r| r.reputation_mean),
                reputation_auc_final: last.map_or(0.5, |r| r.reputation_auc),
                refused_from_hours: self.refused_from_hours(&name),
                contracts_lost_hours: self.contracts_lost_hours(g),
                contracts_lost_online_hours: self.contracts_lost_online_hours(g),
                stranger_share_final: self.stranger_share_mean(&members),
            };
            let summary = self.with_drops(summary, &members);
            summary_groups.insert(name, summary);
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
        let mut profile = Vec::new();
        for (g, actors) in self.profile.iter().enumerate() {
            for (actor, codes) in actors.iter().enumerate() {
                for (code, &events) in codes.iter().enumerate() {
                    if events > 0 {
                        profile.push(ProfileRow {
                            group: self.groups[g].name.clone(),
                            actor: ["transport", "store", "negotiator", "reputation"][actor],
                            kind: input_kind_name(code as u8),
                            events,
                        });
                    }
                }
            }
        }
        RunOutput {
            summary,
            rows: self.rows,
            profile,
        }
    }
}

/// Owners whose audits make each hour's `audit_score` (every k-th peer; the summary counts
/// every owner's).
const AUDIT_OWNERS_HOURLY: usize = 64;

/// One group's economy at one moment (see [`World::economy_by_group`]).
#[derive(Debug, Clone, Copy, Default)]
struct Economy {
    storage_obtained_bytes: u64,
    bandwidth_given_bytes: u64,
    bandwidth_received_bytes: u64,
    creds_balance: i64,
    contracts: u64,
    audits_passed: u64,
    audits_failed: u64,
}

impl Economy {
    /// Share of the audit challenges the members answered right; 1 if none.
    fn audit_score(&self) -> f64 {
        let asked = self.audits_passed + self.audits_failed;
        if asked == 0 {
            1.0
        } else {
            self.audits_passed as f64 / asked as f64
        }
    }

    fn add(&mut self, other: &Economy) {
        self.storage_obtained_bytes += other.storage_obtained_bytes;
        self.bandwidth_given_bytes += other.bandwidth_given_bytes;
        self.bandwidth_received_bytes += other.bandwidth_received_bytes;
        self.creds_balance += other.creds_balance;
        self.contracts += other.contracts;
        self.audits_passed += other.audits_passed;
        self.audits_failed += other.audits_failed;
    }
}

/// `total` per member of `members`.
fn per_peer(total: u64, members: &[u32]) -> f64 {
    total as f64 / members.len().max(1) as f64
}
