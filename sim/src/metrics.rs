//! Metrics of a run: one row per simulated hour and peer group, and the final summary that
//! expectations are checked against. Names and meanings are listed in
//! `docs/scenario-format.md`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counters of one group, kept over the run and per hour.
#[derive(Debug, Clone, Default)]
pub struct GroupCounters {
    pub fetches_ok: u64,
    pub fetches_failed: u64,
    /// Latencies of successful fetches, milliseconds.
    pub latencies_ms: Vec<u32>,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub publishes: u64,
    pub chain_records: u64,
    pub chain_verified: u64,
    pub forks_detected: u64,
    /// Provider lookups for data with a live holder, and those that found a provider.
    pub lookups_live: u64,
    pub lookups_found: u64,
    /// Rounds the successful lookups took.
    pub lookup_hops: Vec<u32>,
}

impl GroupCounters {
    pub fn add(&mut self, other: &GroupCounters) {
        self.fetches_ok += other.fetches_ok;
        self.fetches_failed += other.fetches_failed;
        self.latencies_ms.extend_from_slice(&other.latencies_ms);
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
        self.publishes += other.publishes;
        self.chain_records += other.chain_records;
        self.chain_verified += other.chain_verified;
        self.forks_detected += other.forks_detected;
        self.lookups_live += other.lookups_live;
        self.lookups_found += other.lookups_found;
        self.lookup_hops.extend_from_slice(&other.lookup_hops);
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
}

pub const CSV_HEADER: &str = "hour,group,online_peers,bytes_for_others,fetches_ok,fetches_failed,fetch_latency_p50_ms,fetch_latency_p95_ms,objects,availability,replicas_alive_mean,messages_sent,bytes_sent";

impl HourRow {
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{:.1},{:.1},{},{:.6},{:.4},{},{}",
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
            self.bytes_sent
        )
    }
}

/// The names a group's summary holds (expectations may use any of them).
pub const GROUP_METRICS: &[&str] = &[
    "peers",
    "publishes",
    "fetches",
    "fetch_success_ratio",
    "fetch_latency_p50_ms",
    "fetch_latency_p95_ms",
    "fetch_latency_p99_ms",
    "availability_mean",
    "availability_min",
    "availability_final",
    "replicas_alive_final",
    "bytes_for_others",
    "messages_sent",
    "bytes_sent",
    "chain_records",
    "chain_records_verified",
    "forks_detected",
    "fork_learn_hours_max",
    "lookups",
    "lookup_success_ratio",
    "lookup_hops_p50",
    "lookup_hops_p95",
];

/// The result of a run, written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub duration_hours: f64,
    pub fidelity: String,
    pub events: u64,
    pub trace_digest: String,
    /// group name (and "all") → metric → value.
    pub groups: BTreeMap<String, BTreeMap<String, f64>>,
    /// probe name → success ratio.
    pub probes: BTreeMap<String, f64>,
}

impl Summary {
    /// The value an expectation names, if there is one.
    pub fn metric(&self, group: &str, metric: &str) -> Option<f64> {
        if let Some(name) = metric
            .strip_prefix("probe.")
            .and_then(|m| m.strip_suffix(".success_ratio"))
        {
            return self.probes.get(name).copied();
        }
        self.groups.get(group)?.get(metric).copied()
    }
}
