//! Metrics of a run: one row per simulated hour and peer group, the final summary that
//! expectations are checked against, and the typed names of its metrics ([`Metric`],
//! [`Measure`]). Names and meanings are listed in `docs/scenario-format.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Counters of one group, kept over the run and per hour.
#[derive(Debug, Clone, Default)]
pub struct GroupCounters {
    pub fetches_ok: u64,
    pub fetches_failed: u64,
    /// Fetches of objects the fetcher's own group published, and those that succeeded.
    pub own_group_fetches: u64,
    pub own_group_fetches_ok: u64,
    /// Latencies of successful fetches, milliseconds.
    pub latencies_ms: Vec<u32>,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    /// Frames dropped because the sender's uplink queue was full.
    pub frames_dropped: u64,
    pub publishes: u64,
    pub chain_records: u64,
    pub chain_verified: u64,
    pub forks_detected: u64,
    /// Provider lookups for data with a live holder, and those that found a provider.
    pub lookups_live: u64,
    pub lookups_found: u64,
    /// Rounds the successful lookups took.
    pub lookup_hops: Vec<u32>,
    /// Times a member was disqualified by an auditor.
    pub disqualified: u64,
}

impl GroupCounters {
    pub fn add(&mut self, other: &GroupCounters) {
        self.fetches_ok += other.fetches_ok;
        self.fetches_failed += other.fetches_failed;
        self.own_group_fetches += other.own_group_fetches;
        self.own_group_fetches_ok += other.own_group_fetches_ok;
        self.latencies_ms.extend_from_slice(&other.latencies_ms);
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
        self.frames_dropped += other.frames_dropped;
        self.publishes += other.publishes;
        self.chain_records += other.chain_records;
        self.chain_verified += other.chain_verified;
        self.forks_detected += other.forks_detected;
        self.lookups_live += other.lookups_live;
        self.lookups_found += other.lookups_found;
        self.lookup_hops.extend_from_slice(&other.lookup_hops);
        self.disqualified += other.disqualified;
    }
}

/// The p-th percentile (0..=100) of `values` (sorted in place), or 0 if empty.
pub fn percentile(values: &mut [u32], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    f64::from(values[rank.min(values.len() - 1)])
}

/// One line of `metrics.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct HourRow {
    pub hour: u64,
    pub group: String,
    pub online_peers: u64,
    pub bytes_for_others: u64,
    pub fetches_ok: u64,
    pub fetches_failed: u64,
    pub fetch_latency_p50_ms: f64,
    pub fetch_latency_p95_ms: f64,
    pub objects: u64,
    pub availability: f64,
    pub replicas_alive_mean: f64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub frames_dropped: u64,
    /// Bytes of the members' chunks other peers hold for them.
    pub storage_obtained_bytes: u64,
    /// Bytes the members served to others, and others served them, since the start.
    pub bandwidth_given_bytes: u64,
    pub bandwidth_received_bytes: u64,
    /// Creds the members received minus those they gave, by their own ledgers.
    pub creds_balance: i64,
    /// Contracts the members hold.
    pub contracts: u64,
    /// The mean score honest peers give the members, and the AUC of honest peers' scores
    /// against the members' (`world/standing.rs`).
    pub reputation_mean: f64,
    pub reputation_auc: f64,
    /// Scores `reputation_mean` is over (not in the CSV: 0 tells a mean of no score from a
    /// mean of 0).
    #[serde(skip)]
    pub reputation_observed: u64,
    /// Share of the audit challenges the members answered right as holders, by their
    /// owners' ledgers now; 1 if none.
    pub audit_score: f64,
}

pub const CSV_HEADER: &str = "hour,group,online_peers,bytes_for_others,fetches_ok,fetches_failed,fetch_latency_p50_ms,fetch_latency_p95_ms,objects,availability,replicas_alive_mean,messages_sent,bytes_sent,frames_dropped,storage_obtained_bytes,bandwidth_given_bytes,bandwidth_received_bytes,creds_balance,contracts,reputation_mean,reputation_auc,audit_score";

impl HourRow {
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{:.1},{:.1},{},{:.6},{:.4},{},{},{},{},{},{},{},{},{:.4},{:.4},{:.4}",
            self.hour,
            self.group,
            self.online_peers,
            self.bytes_for_others,
            self.fetches_ok,
            self.fetches_failed,
            self.fetch_latency_p50_ms,
            self.fetch_latency_p95_ms,
            self.objects,
            self.availability,
            self.replicas_alive_mean,
            self.messages_sent,
            self.bytes_sent,
            self.frames_dropped,
            self.storage_obtained_bytes,
            self.bandwidth_given_bytes,
            self.bandwidth_received_bytes,
            self.creds_balance,
            self.contracts,
            self.reputation_mean,
            self.reputation_auc,
            self.audit_score
        )
    }
}

/// Declares [`Metric`] and [`GroupSummary`] from one list, so that a metric's variant, its
/// name and its field cannot drift apart: the name is the field's.
macro_rules! group_metrics {
    ($($(#[doc = $doc:literal])+ $variant:ident: $field:ident,)+) => {
        /// A metric of a group's summary (`docs/scenario-format.md` §4.3), which `[[expect]]`
        /// may bound.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Metric {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Metric {
            /// Every group metric.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)+];

            /// Its name in scenario files, `summary.json` and `check`'s lines.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => stringify!($field),)+
                }
            }
        }

        /// One group's summary: a value for every [`Metric`]. `summary.json` writes it as an
        /// object from metric name to number, in byte order of the names.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct GroupSummary {
            $($(#[doc = $doc])+ pub $field: f64,)+
        }

        impl GroupSummary {
            pub fn get(&self, metric: Metric) -> f64 {
                match metric {
                    $(Metric::$variant => self.$field,)+
                }
            }
        }
    };
}

group_metrics! {
    /// Members at the end.
    Peers: peers,
    /// Publications made.
    Publishes: publishes,
    /// Fetches that reported an end.
    Fetches: fetches,
    /// Share of those fetches that succeeded; 1 if none.
    FetchSuccessRatio: fetch_success_ratio,
    /// Share of the members' fetches of objects their own group published that succeeded;
    /// 1 if none.
    FetchSuccessOwnGroupRatio: fetch_success_own_group_ratio,
    /// Median latency of successful fetches, ms.
    FetchLatencyP50Ms: fetch_latency_p50_ms,
    /// 95th percentile latency of successful fetches, ms.
    FetchLatencyP95Ms: fetch_latency_p95_ms,
    /// 99th percentile latency of successful fetches, ms.
    FetchLatencyP99Ms: fetch_latency_p99_ms,
    /// Mean of the hourly availability samples.
    AvailabilityMean: availability_mean,
    /// Minimum of the hourly availability samples.
    AvailabilityMin: availability_min,
    /// Last hourly availability sample.
    AvailabilityFinal: availability_final,
    /// Mean alive holders per chunk besides the publisher, at the last hourly row.
    ReplicasAliveFinal: replicas_alive_final,
    /// Bytes stored for other peers at the last hourly row.
    BytesForOthers: bytes_for_others,
    /// Frames emitted.
    MessagesSent: messages_sent,
    /// Bytes of the frames emitted.
    BytesSent: bytes_sent,
    /// Frames dropped because the sender's uplink queue was full.
    FramesDropped: frames_dropped,
    /// Records appended to the members' own chains.
    ChainRecords: chain_records,
    /// Records of other peers' chains checked and taken in.
    ChainRecordsVerified: chain_records_verified,
    /// Times a member learned of a fork.
    ForksDetected: forks_detected,
    /// The longest an honest member took to learn of a fork, hours.
    ForkLearnHoursMax: fork_learn_hours_max,
    /// Provider lookups for live data.
    Lookups: lookups,
    /// Share of those lookups that named a provider; 1 if none.
    LookupSuccessRatio: lookup_success_ratio,
    /// Median hop count of successful lookups.
    LookupHopsP50: lookup_hops_p50,
    /// 95th percentile hop count of successful lookups.
    LookupHopsP95: lookup_hops_p95,
    /// Bytes other peers hold for a member (its storage obtained), mean over the hourly
    /// rows from `steady_from_hours` on.
    StorageObtainedMean: storage_obtained_mean,
    /// Bytes a member holds for others (its storage given), mean over the same rows.
    StorageGivenMean: storage_given_mean,
    /// Bytes a member served to others over the run, per member.
    BandwidthGivenPerPeer: bandwidth_given_per_peer,
    /// Bytes others served a member over the run, per member.
    BandwidthReceivedPerPeer: bandwidth_received_per_peer,
    /// Creds received minus creds given, per member, by their own ledgers at the end.
    CredsBalancePerPeer: creds_balance_per_peer,
    /// Contracts per member at the end.
    ContractsPerPeer: contracts_per_peer,
    /// Audit challenges the members answered right (as holders).
    AuditsPassed: audits_passed,
    /// Audit challenges the members answered wrong or not at all (as holders).
    AuditsFailed: audits_failed,
    /// Times an auditor disqualified a member.
    Disqualified: disqualified,
    /// (Owner, member) pairs where the member silently dropped a chunk of the owner's (the
    /// owner present at the end).
    DroppedPairs: dropped_pairs,
    /// Those pairs in which the owner then challenged the member for a dropped chunk (the
    /// others' replicas left the member, by the end of a term, before any audit of them).
    DroppedPairsAudited: dropped_pairs_audited,
    /// Share of the audited pairs in which the owner disqualified the member; 1 if there are
    /// none.
    DroppedPairsDisqualifiedRatio: dropped_pairs_disqualified_ratio,
    /// Over the audited pairs, the longest from the drop of the first dropped chunk the owner
    /// challenged to that owner disqualifying the member, hours (never: until the end).
    DisqualifyHoursMax: disqualify_hours_max,
    /// The members' objects of which some chunk is held by no peer at all at the end.
    ObjectsLostFinal: objects_lost_final,
    /// The mean score honest peers give the members, at the last hourly row.
    ReputationMeanFinal: reputation_mean_final,
    /// How well honest peers' scores rank honest peers above the members (the AUC: 1 is a
    /// perfect separation, 0.5 none), at the last hourly row.
    ReputationAucFinal: reputation_auc_final,
    /// The first hour at which the members' mean score in honest eyes was under the
    /// filter's line (a stranger's score less `serve_margin`), hours; the run's length if
    /// never.
    RefusedFromHours: refused_from_hours,
    /// Hours from the members' defection (`strategy.defect_at_hours`) until none of the
    /// contracts they held at it remains (at an hourly row; the rest of the run if some
    /// does; 0 for a group that never defects).
    ContractsLostHours: contracts_lost_hours,
    /// As `contracts_lost_hours`, counted in the hours the partner (the side that judges
    /// the contract at its term's end) was online: over the contracts the members held at
    /// their defection, the most hourly rows from it at which the contract still stood and
    /// its partner was online.
    ContractsLostOnlineHours: contracts_lost_online_hours,
    /// The members' mean stranger share at the end: the factor each scales its stranger's
    /// allowance by (with the filter on and `strangers = "adaptive"`, `(cooperators + 1) /
    /// (judged + 2)` over its last strangers; otherwise 1, of an allowance that is nothing
    /// under `"stingy"`).
    StrangerShareFinal: stranger_share_final,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a metric (see docs/scenario-format.md)")]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(name: &str) -> Result<Metric, UnknownMetric> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.name() == name)
            .ok_or_else(|| UnknownMetric(name.to_owned()))
    }
}

impl Serialize for GroupSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut metrics = Metric::ALL.to_vec();
        metrics.sort_unstable_by_key(|m| m.name());
        let mut map = serializer.serialize_map(Some(metrics.len()))?;
        for metric in metrics {
            map.serialize_entry(metric.name(), &self.get(metric))?;
        }
        map.end()
    }
}

/// What an expectation bounds: a group metric, or a probe's success ratio
/// (`probe.<name>.success_ratio`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    Group(Metric),
    ProbeSuccessRatio(String),
}

impl FromStr for Measure {
    type Err = UnknownMetric;

    fn from_str(name: &str) -> Result<Measure, UnknownMetric> {
        match name
            .strip_prefix("probe.")
            .and_then(|m| m.strip_suffix(".success_ratio"))
        {
            Some(probe) => Ok(Measure::ProbeSuccessRatio(probe.to_owned())),
            None => name.parse().map(Measure::Group),
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::Group(metric) => f.write_str(metric.name()),
            Measure::ProbeSuccessRatio(probe) => write!(f, "probe.{probe}.success_ratio"),
        }
    }
}

/// The result of a run, written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub duration_hours: f64,
    pub fidelity: String,
    pub events: u64,
    pub trace_digest: String,
    /// group name (and "all") → its summary.
    pub groups: BTreeMap<String, GroupSummary>,
    /// probe name → success ratio.
    pub probes: BTreeMap<String, f64>,
}

impl Summary {
    /// The value `measure` names for `group` (ignored for probes), if there is one.
    pub fn measured(&self, group: &str, measure: &Measure) -> Option<f64> {
        match measure {
            Measure::Group(metric) => self.groups.get(group).map(|g| g.get(*metric)),
            Measure::ProbeSuccessRatio(probe) => self.probes.get(probe).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip_and_are_unique() {
        for metric in Metric::ALL {
            assert_eq!(metric.name().parse::<Metric>(), Ok(*metric));
            let measure = Measure::Group(*metric);
            assert_eq!(measure.to_string().parse::<Measure>(), Ok(measure));
        }
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        assert_eq!(
            "availability_average".parse::<Metric>(),
            Err(UnknownMetric("availability_average".to_owned()))
        );
        assert_eq!(
            "probe.during.success_ratio".parse::<Measure>(),
            Ok(Measure::ProbeSuccessRatio("during".to_owned()))
        );
    }

    #[test]
    fn a_group_summary_is_written_by_name_in_byte_order() {
        let summary = GroupSummary {
            peers: 60.0,
            fetch_success_ratio: 0.5,
            ..GroupSummary::default()
        };
        let json = serde_json::to_string(&summary).unwrap();
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        let at: Vec<usize> = names
            .iter()
            .map(|name| json.find(&format!("\"{name}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(json.contains("\"peers\":60.0"), "{json}");
        assert!(json.contains("\"fetch_success_ratio\":0.5"), "{json}");
    }
}
