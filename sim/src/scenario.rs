//! Scenario files: TOML, read strictly (unknown keys are errors), checked for sense, with
//! errors that give the file, line, column and key. Every key is documented in
//! `docs/scenario-format.md`.

// Host code: it reads and writes files on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use serde::Deserialize;

use crate::expect::Op;
use crate::metrics::{Measure, Metric, UnknownMetric};

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random choice in the run.
    pub seed: u64,
    /// Simulated length of the run, in hours.
    pub duration_hours: f64,
    /// "synthetic" (chunk payloads are descriptors) or "full" (real bytes, real encryption).
    #[serde(default)]
    pub fidelity: Fidelity,
    pub network: Network,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
    pub workload: Workload,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    #[serde(default, rename = "probe")]
    pub probes: Vec<Probe>,
    /// The `[[expect]]` tables as written; [`Scenario::expectations`] is what they say.
    #[serde(default, rename = "expect")]
    expect_tables: Vec<ExpectTable>,
    /// The `[[expect]]` bounds, typed and checked when the scenario is loaded.
    #[serde(skip)]
    pub expectations: Vec<Expectation>,
    /// Long-chain certificates: off unless this table is present.
    #[serde(default)]
    pub chains: Option<ChainsConfig>,
    /// Kademlia lookups and provider records: off unless this table is present.
    #[serde(default)]
    pub routing: Option<RoutingConfig>,
    /// Every peer starts knowing every other (a shared directory, an oracle for studies that
    /// are not about discovery); `false`: each starts from `bootstrap_peers` random others
    /// and finds the rest through the protocol (gossip, lookups).
    #[serde(default = "default_directory")]
    pub directory: bool,
    /// Peers each peer starts from when there is no directory.
    #[serde(default = "default_bootstrap_peers")]
    pub bootstrap_peers: u32,
    /// The economy's means (`storage_obtained_mean`, `storage_given_mean`) are taken over
    /// the hours from this one on (peers trade for a while before they settle).
    #[serde(default)]
    pub steady_from_hours: f64,
}

fn default_directory() -> bool {
    true
}

fn default_bootstrap_peers() -> u32 {
    8
}

/// How peers find the holders of data: provider records for tree roots, kept by the peers
/// closest to each root's id, looked up before every fetch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// A provider record lives this long unless renewed, hours.
    pub record_ttl_hours: f64,
    /// Holders renew their records this often, hours.
    pub republish_hours: f64,
}

/// How peers keep and read long-chain certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainsConfig {
    /// Services owed to one counterparty are recorded at most this often, minutes.
    pub record_every_minutes: f64,
    /// Each peer reads another peer's chain this often, minutes.
    pub exchange_every_minutes: f64,
    /// The reputation filter: peers score each other over the services on the chains they
    /// read (`node/src/kernel/trust`), and the negotiator trades by those scores.
    #[serde(default)]
    pub filter: bool,
    /// Records of other peers' chains each peer keeps at most.
    #[serde(default = "default_book_records_max")]
    pub book_records_max: u64,
    /// With the filter: peers and services each peer's graph holds at most, and how often
    /// it recomputes its scores, hours.
    #[serde(default = "default_graph_nodes_max")]
    pub graph_nodes_max: u64,
    #[serde(default = "default_graph_edges_max")]
    pub graph_edges_max: u64,
    #[serde(default = "default_recompute_every_hours")]
    pub recompute_every_hours: f64,
}

fn default_book_records_max() -> u64 {
    8_192
}

fn default_graph_nodes_max() -> u64 {
    2_048
}

fn default_graph_edges_max() -> u64 {
    8_192
}

fn default_recompute_every_hours() -> f64 {
    12.0
}

/// A group's stranger policy (`Strategy::strangers`), written as one of three strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strangers {
    #[default]
    Adaptive,
    Fixed,
    Stingy,
}

impl Strangers {
    const WANTED: &'static str = r#"one of "adaptive", "fixed" or "stingy""#;
}

/// Only the string form: a derived enum would also take `{ stingy = {} }`, and would call a
/// wrong type "string or table".
impl<'de> Deserialize<'de> for Strangers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Policy;
        impl serde::de::Visitor<'_> for Policy {
            type Value = Strangers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(Strangers::WANTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Strangers, E> {
                match v {
                    "adaptive" => Ok(Strangers::Adaptive),
                    "fixed" => Ok(Strangers::Fixed),
                    "stingy" => Ok(Strangers::Stingy),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_str(Policy)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fidelity {
    #[default]
    Synthetic,
    Full,
}

/// The modelled network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Regions peers are spread over, with their weights.
    pub regions: Vec<Region>,
    /// One-way latency between regions, milliseconds; a square matrix in region order.
    pub latency_ms: Vec<Vec<f64>>,
    /// Each one-way latency is scaled by a uniform factor in [1 - jitter, 1 + jitter].
    #[serde(default)]
    pub jitter: f64,
    /// Probability that a message is lost.
    #[serde(default)]
    pub loss: f64,
    /// Bytes a peer's uplink may hold queued; a frame that would queue more is dropped, as
    /// the node drops frames past `LINK_QUEUE_BYTES_MAX` on a connection.
    #[serde(default = "default_uplink_queue_bytes_max")]
    pub uplink_queue_bytes_max: u64,
}

/// The node's bound on the bytes queued on one connection (`node/src/net/host.rs`,
/// `LINK_QUEUE_BYTES_MAX`).
pub const UPLINK_QUEUE_BYTES_MAX_DEFAULT: u64 = 16 << 20;

fn default_uplink_queue_bytes_max() -> u64 {
    UPLINK_QUEUE_BYTES_MAX_DEFAULT
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    pub weight: f64,
}

/// A group of peers sharing strategy knobs, resources and online behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub count: u32,
    /// Storage given to other peers, MiB.
    /// MiB; a fraction is allowed (a share of one disk, as a sybil operator's identities).
    pub storage_mib: f64,
    pub upload_mbps: f64,
    pub download_mbps: f64,
    /// Mean online session, hours (sessions are exponential).
    pub mean_online_hours: f64,
    /// Mean offline gap, hours; 0 means always online.
    #[serde(default)]
    pub mean_offline_hours: f64,
    /// Fraction of the group that leaves for good during the run, at uniform times.
    #[serde(default)]
    pub departures: f64,
    /// New peers of this group arriving during the run, at uniform times.
    #[serde(default)]
    pub arrivals: u32,
    /// Strategy knobs.
    #[serde(default)]
    pub strategy: Strategy,
    /// This group's own workload (rates and sizes), over the scenario's.
    #[serde(default)]
    pub workload: GroupWorkload,
}

/// What a peer's actors are told to do differently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// Replicas kept of each published chunk.
    #[serde(default = "default_replication")]
    pub replication: u32,
    /// Hours between checks that holders still hold our chunks.
    #[serde(default = "default_check_hours")]
    pub check_hours: f64,
    /// Hours a holder may stay unreachable before it is replaced.
    #[serde(default = "default_dead_after_hours")]
    pub holder_dead_after_hours: f64,
    /// Adversary: fork the peer's own chain at this hour.
    #[serde(default)]
    pub fork_at_hours: Option<f64>,
    /// Adversary (traitor): trade honestly until this hour, then hold nothing for others
    /// (what it held is dropped) and offer nothing.
    #[serde(default)]
    pub defect_at_hours: Option<f64>,
    /// From 0 (stingy) to 1 (fully altruistic): what strangers get, the credit a partner
    /// may draw, the shortfall tolerated at renewal, how often holders are audited.
    #[serde(default = "default_altruism")]
    pub altruism: f64,
    /// Adversary: asks for storage, holds nothing for others.
    #[serde(default)]
    pub storage_freeloader: bool,
    /// Adversary: fetches, never serves.
    #[serde(default)]
    pub bandwidth_freeloader: bool,
    /// Adversary (silent dropper): accepts chunks, then drops this fraction of them.
    #[serde(default)]
    pub drop_fraction: f64,
    /// Adversary: answers audits without the data.
    #[serde(default)]
    pub liar: bool,
    /// What strangers get: `"adaptive"` (with the filter on, the allowance of `altruism`
    /// scaled by how recent strangers behaved), `"fixed"` (that allowance whatever they do)
    /// or `"stingy"` (nothing without a contract or service first).
    #[serde(default)]
    pub strangers: Strangers,
    /// Adversary: never proposes a contract; lives on strangers' allowances.
    #[serde(default)]
    pub stranger_only: bool,
    /// Adversary (whitewasher): every this many hours the peer drops its identity and its
    /// disk and comes back as a stranger (a host action, `sim/src/world/lifecycle.rs`).
    #[serde(default)]
    pub rekey_every_hours: Option<f64>,
    /// Adversary (colluders, a sybil operator): every chain record round, a made-up record
    /// that a fellow member of the group served this many bytes.
    #[serde(default)]
    pub praise_bytes: u64,
    /// Adversary (colluders): holds for, serves and trades with fellow members only.
    #[serde(default)]
    pub serves_only_group: bool,
    /// Adversary (liar about others): answers reads of other owners' chains leaving out
    /// every record from the first that credits a provider other than itself.
    #[serde(default)]
    pub omits_others_records: bool,
}

impl Strategy {
    /// Do the members work together (and so need to know each other)?
    pub fn colludes(&self) -> bool {
        self.praise_bytes > 0 || self.serves_only_group
    }
}

fn default_altruism() -> f64 {
    0.5
}

/// A group's own publish and fetch rates and object sizes; each key left out takes the
/// scenario's `[workload]` value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupWorkload {
    pub publish_per_peer_per_day: Option<f64>,
    pub fetch_per_peer_per_day: Option<f64>,
    pub object_bytes_min: Option<u64>,
    pub object_bytes_max: Option<u64>,
}

fn default_replication() -> u32 {
    3
}
fn default_check_hours() -> f64 {
    12.0
}
fn default_dead_after_hours() -> f64 {
    36.0
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            replication: default_replication(),
            check_hours: default_check_hours(),
            holder_dead_after_hours: default_dead_after_hours(),
            fork_at_hours: None,
            defect_at_hours: None,
            altruism: default_altruism(),
            storage_freeloader: false,
            bandwidth_freeloader: false,
            drop_fraction: 0.0,
            liar: false,
            strangers: Strangers::Adaptive,
            stranger_only: false,
            rekey_every_hours: None,
            praise_bytes: 0,
            serves_only_group: false,
            omits_others_records: false,
        }
    }
}

/// Who publishes and fetches what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Objects each peer publishes per day (Poisson).
    pub publish_per_peer_per_day: f64,
    /// Object sizes, uniform in [min, max] bytes.
    pub object_bytes_min: u64,
    pub object_bytes_max: u64,
    /// Chunk size of synthetic content, bytes (full fidelity chunks with FastCDC).
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: u32,
    /// Fetches each peer makes per day (Poisson).
    pub fetch_per_peer_per_day: f64,
    /// Which published object a fetch asks for.
    #[serde(default)]
    pub popularity: Popularity,
    /// Hours at the start with no workload (peers settle).
    #[serde(default)]
    pub warmup_hours: f64,
}

fn default_chunk_bytes() -> u32 {
    256 * 1024
}

/// How fetches choose among published objects (ranked newest first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Popularity {
    #[default]
    Uniform,
    /// Rank r (1 = newest) is chosen with probability proportional to 1 / r^s.
    Zipf { s: f64 },
}

/// Something that happens to the network or the peers at a given time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    /// Peers split into two sides (a fraction `side_a` of them on side A); nothing crosses
    /// until the heal.
    Partition {
        at_hours: f64,
        heal_hours: f64,
        side_a: f64,
    },
    /// A fraction of a group's peers crash at once and lose their disks.
    Crash {
        at_hours: f64,
        group: String,
        fraction: f64,
    },
    /// A fraction of a group's peers restart at once with their disks kept and their memory
    /// lost (a process killed and started again).
    Reboot {
        at_hours: f64,
        group: String,
        fraction: f64,
    },
}

/// Fetches the simulator makes at a given time, of objects published before another, to
/// ask a precise question (reported as `probe.<name>.success_ratio`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub name: String,
    pub at_hours: f64,
    pub fetches: u32,
    pub published_before_hours: f64,
}

/// An `[[expect]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectTable {
    /// A metric name from `docs/scenario-format.md`, e.g. `fetch_success_ratio`.
    metric: String,
    /// A group name, or "all" (the default).
    #[serde(default = "default_group")]
    group: String,
    /// One of ">=", "<=", ">", "<", "==".
    op: String,
    value: f64,
    /// Another group: the bound is `value` times that group's measure of the same metric.
    #[serde(default)]
    relative_to: Option<String>,
}

/// A bound on a metric of the summary: `measured OP value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub metric: Measure,
    /// A group name, or "all"; ignored for probes.
    pub group: String,
    pub op: Op,
    pub value: f64,
    /// The bound is `value` times this group's measure of the metric.
    pub relative_to: Option<String>,
}

fn default_group() -> String {
    "all".to_owned()
}

/// The slowest and fastest links a scenario may give a peer, Mbps (125 bytes/s to 1 Tbps).
pub const MBPS_MIN: f64 = 0.001;
pub const MBPS_MAX: f64 = 1e6;
/// The longest one-way latency, ms (a minute: beyond any real path).
pub const LATENCY_MS_MAX: f64 = 60_000.0;
/// The longest session, gap or warm-up, hours (ten years).
pub const HOURS_MAX: f64 = 87_600.0;
/// The highest publish or fetch rate, per peer per day (more than one a second).
pub const PER_DAY_MAX: f64 = 100_000.0;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type, an unknown or missing key: `key` is the dotted path (with
    /// the index of the group, region, fault, probe or expectation) of the table or key the
    /// error is in, when there is one.
    #[error("{path}:{line}:{column}: {}{message}", key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
    #[error("{path}:{line}:{column}: {key}: {problem}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        key: String,
        problem: String,
    },
}

/// Where `key` (dotted, with `[i]` for an element of an array of tables, e.g.
/// `group[1].departures`) is written in `text`, as line and column; the nearest enclosing
/// table that is written when the key itself is not (it took its default), else 1:1.
fn locate(text: &str, key: &str) -> (usize, usize) {
    use toml::de::{DeTable, DeValue};
    let Ok(root) = DeTable::parse(text) else {
        return (1, 1);
    };
    let mut table: &DeTable<'_> = root.get_ref();
    let mut found = 0;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((name_span, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)
        else {
            break;
        };
        found = name_span.span().start;
        let value = match (index, value.get_ref()) {
            (Some(i), DeValue::Array(items)) => match items.get(i) {
                Some(item) => {
                    found = item.span().start;
                    item
                }
                None => break,
            },
            _ => value,
        };
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    line_column(text, found)
}

/// The dotted path (as [`locate`] reads it) of the key or array element written last at or
/// before byte `offset` of `text`: the key an error at `offset` is about, or the table it is
/// in. Read from what parses of a broken file, so that syntax errors are named too.
fn key_at(text: &str, offset: usize) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    let (root, _) = DeTable::parse_recoverable(text);
    // (start of the key or element, its path); the last one at or before `offset` wins.
    let mut best: Option<(usize, String)> = None;
    let mut consider = |start: usize, path: &str| {
        if start <= offset && best.as_ref().is_none_or(|(at, _)| start >= *at) {
            best = Some((start, path.to_owned()));
        }
    };
    // Iteration, not recursion: the file is outside input. (table, its path)
    let mut pending: Vec<(&DeTable<'_>, String)> = vec![(root.get_ref(), String::new())];
    while let Some((table, prefix)) = pending.pop() {
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            consider(key.span().start, &path);
            match value.get_ref() {
                DeValue::Table(inner) => pending.push((inner, path)),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(inner) = item.get_ref() {
                            let element = format!("{path}[{i}]");
                            consider(item.span().start, &element);
                            pending.push((inner, element));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    best.map(|(_, path)| path)
}

/// Where a syntax error at `offset` should be shown. A parser finds a missing comma or
/// closing bracket only at the next token, which may be on a later line (the next key, the
/// next table's header): the mistake is after the last token before it, so the error is put
/// just after that token, skipping blank lines and comments.
fn syntax_error_offset(text: &str, offset: usize, message: &str) -> usize {
    let offset = offset.min(text.len());
    let expects_close = [
        "missing comma",
        "expected `,`",
        "expected `]`",
        "expected `}`",
    ]
    .iter()
    .any(|m| message.contains(m));
    let line_start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
    if !expects_close || !text[line_start..offset].trim().is_empty() {
        return offset;
    }
    let mut end = line_start;
    while end > 0 {
        let start = text[..end - 1].rfind('\n').map_or(0, |n| n + 1);
        let line = &text[start..end - 1];
        let code = line.split('#').next().unwrap_or("").trim_end();
        if !code.trim().is_empty() {
            return start + code.len();
        }
        end = start;
    }
    offset
}

/// `value` as an error shows it: plainly when it reads well, else in scientific notation
/// (`1e-300`, not three hundred zeros).
fn shown(value: f64) -> String {
    if value == 0.0 || (1e-4..1e7).contains(&value.abs()) || !value.is_finite() {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Edit distance between `a` and `b` (for suggesting a name).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// What an unknown metric's error adds: the nearest name, if one is close, and every valid
/// name.
fn metric_help(unknown: &str) -> String {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let list = format!("metrics: {}, probe.NAME.success_ratio", names.join(", "));
    match names
        .iter()
        .map(|n| (edit_distance(unknown, n), *n))
        .min()
        .filter(|(distance, _)| *distance <= 3)
    {
        Some((_, nearest)) => format!("; did you mean {nearest}? Valid {list}"),
        None => format!("; valid {list}"),
    }
}

/// The decoder's type errors ("invalid value: integer `-40`, expected u32") in the words of
/// the format document ("must be a whole number from 0 to 4294967295, not -40"); any other
/// message as it is.
fn plain_type_error(message: &str) -> String {
    let Some((found, expected)) = message
        .strip_prefix("invalid value: ")
        .or_else(|| message.strip_prefix("invalid type: "))
        .and_then(|rest| rest.rsplit_once(", expected "))
    else {
        return message.to_owned();
    };
    let wanted = match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number from 0 to 18446744073709551615",
        "f64" | "f32" => "a number",
        "a boolean" | "bool" => "true or false",
        wanted if wanted.starts_with("one of ") => wanted,
        _ => return message.to_owned(),
    };
    // `integer `-40``, `floating point `40.5``, `string "high"`: the value itself.
    let value = match (found.find('`'), found.rfind('`')) {
        (Some(a), Some(b)) if b > a => &found[a + 1..b],
        _ => match found {
            "map" => "a table",
            "sequence" => "an array",
            _ => found.split_once(' ').map_or(found, |(_, v)| v),
        },
    };
    format!("must be {wanted}, not {value}")
}

/// An unknown key of a `[[group]]` that is a key of `[group.strategy]` gets a hint saying
/// where it belongs.
fn strategy_hint(message: String, key: Option<&str>) -> String {
    let in_group = key.is_some_and(|k| k.starts_with("group[") && !k.contains(".strategy"));
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    match unknown {
        Some(name) if name == "strangers_adapt" => {
            "unknown field `strangers_adapt`: it was renamed; write strangers = \"adaptive\" for true, \"fixed\" for false".to_owned()
        }
        Some(name) if in_group => {
            // A strategy key is one a strategy table does not call unknown.
            let mut table = toml::Table::new();
            table.insert(name.clone(), toml::Value::Integer(0));
            let probe = toml::Value::Table(table).try_into::<Strategy>();
            let known = match probe {
                Ok(_) => true,
                Err(e) => !e.message().contains("unknown field"),
            };
            if known {
                format!(
                    "{message} ({name} is a strategy key: write it under [group.strategy], or as strategy = {{ {name} = ... }})"
                )
            } else {
                message
            }
        }
        _ => message,
    }
}

/// Where a TOML error of `text` is, in the words a user reads: (line, column, the dotted key
/// it is in, the message in plain types). A key missing from the top level is in no key (the
/// error points at the file's start, where some other key is written).
pub(crate) fn located(text: &str, e: &toml::de::Error) -> (usize, usize, Option<String>, String) {
    let message = plain_type_error(e.message().trim());
    match e.span() {
        Some(span) => {
            let at = syntax_error_offset(text, span.start, &message);
            let (line, column) = line_column(text, at);
            let top = span.start == 0 && message.starts_with("missing field");
            // An error at a table's header (a key missing from the table, a table where a
            // value belongs) is about that table: its name is within the header, after the
            // error's offset.
            let key = key_at(text, header_end(text, at).unwrap_or(at)).filter(|_| !top);
            (line, column, key, message)
        }
        None => (1, 1, None, message),
    }
}

/// If a table header (`[name]`, `[[name]]`) starts at byte `at` of `text`, where its line
/// ends (past the names it holds).
fn header_end(text: &str, at: usize) -> Option<usize> {
    let rest = text.get(at..)?;
    if !rest.starts_with('[') {
        return None;
    }
    let line = rest.split('\n').next().unwrap_or(rest);
    Some(at + line.trim_end().len())
}

/// Line and column (1-based) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a scenario; `path` only labels errors.
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column, key, message) = located(text, &e);
            let message = strategy_hint(message, key.as_deref());
            ScenarioError::Syntax {
                path: path.to_owned(),
                line,
                column,
                key,
                message,
            }
        })?;
        scenario.expectations = scenario.check(text, path)?;
        Ok(scenario)
    }

    /// Checks every rule, and returns the expectations typed.
    fn check(&self, text: &str, path: &str) -> Result<Vec<Expectation>, ScenarioError> {
        let invalid = |key: &str, problem: String| {
            let (line, column) = locate(text, key);
            ScenarioError::Invalid {
                path: path.to_owned(),
                line,
                column,
                key: key.to_owned(),
                problem,
            }
        };
        let positive = |key: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!("must be a positive number, not {value}"),
                ))
            }
        };
        let fraction = |key: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!("must be between 0 and 1, not {value}"),
                ))
            }
        };
        // A value with a unit must lie in a range that makes sense for it; the error gives
        // the unit (an uplink of 1e-300 Mbps, a latency of 1e300 ms).
        let within = |key: &str, value: f64, low: f64, high: f64, unit: &str| {
            if value.is_finite() && (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!(
                        "must be between {} and {} {unit}, not {} {unit}",
                        shown(low),
                        shown(high),
                        shown(value)
                    ),
                ))
            }
        };
        let non_negative = |key: &str, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(invalid(key, format!("must be zero or more, not {value}")))
            }
        };
        positive("duration_hours", self.duration_hours)?;
        within(
            "duration_hours",
            self.duration_hours,
            0.001,
            24.0 * 366.0,
            "hours",
        )?;
        let regions = self.network.regions.len();
        if regions == 0 || regions > 64 {
            return Err(invalid(
                "network.regions",
                format!("needs 1 to 64 regions, has {regions}"),
            ));
        }
        for (r, region) in self.network.regions.iter().enumerate() {
            positive(&format!("network.regions[{r}].weight"), region.weight)?;
            if region.weight > 1e6 {
                return Err(invalid(
                    &format!("network.regions[{r}].weight"),
                    "must be at most 1,000,000".into(),
                ));
            }
        }
        if self.network.latency_ms.len() != regions
            || self
                .network
                .latency_ms
                .iter()
                .any(|row| row.len() != regions)
        {
            return Err(invalid(
                "network.latency_ms",
                format!("must be a {regions} x {regions} matrix"),
            ));
        }
        for value in self.network.latency_ms.iter().flatten() {
            within("network.latency_ms", *value, 0.0, LATENCY_MS_MAX, "ms")?;
        }
        fraction("network.jitter", self.network.jitter)?;
        fraction("network.loss", self.network.loss)?;
        // At least a frame's limit, so that every frame a peer may send fits an idle uplink.
        let frame_bytes_max = cryptosphere::kernel::KernelConfig::default().frame_bytes_max;
        let queue = self.network.uplink_queue_bytes_max;
        if !(frame_bytes_max..=1 << 40).contains(&queue) {
            return Err(invalid(
                "network.uplink_queue_bytes_max",
                format!(
                    "must be between {frame_bytes_max} (a frame's limit) and 2^40, not {queue}"
                ),
            ));
        }
        if self.groups.is_empty() {
            return Err(invalid("group", "at least one [[group]] is needed".into()));
        }
        let mut total: u64 = 0;
        for (g, group) in self.groups.iter().enumerate() {
            if group.name.is_empty() || group.name == "all" {
                return Err(invalid(
                    &format!("group[{g}].name"),
                    format!("{:?} is not a usable group name", group.name),
                ));
            }
            if self.groups.iter().filter(|g| g.name == group.name).count() > 1 {
                return Err(invalid(
                    &format!("group[{g}].name"),
                    format!("{:?} is used twice", group.name),
                ));
            }
            total += u64::from(group.count) + u64::from(group.arrivals);
            within(
                &format!("group[{g}].storage_mib"),
                group.storage_mib,
                0.0,
                (1u64 << 30) as f64,
                "MiB",
            )?;
            for (key, mbps) in [
                ("upload_mbps", group.upload_mbps),
                ("download_mbps", group.download_mbps),
            ] {
                within(
                    &format!("group[{g}].{key}"),
                    mbps,
                    MBPS_MIN,
                    MBPS_MAX,
                    "Mbps",
                )?;
            }
            within(
                &format!("group[{g}].mean_online_hours"),
                group.mean_online_hours,
                0.01,
                HOURS_MAX,
                "hours",
            )?;
            within(
                &format!("group[{g}].mean_offline_hours"),
                group.mean_offline_hours,
                0.0,
                HOURS_MAX,
                "hours",
            )?;
            fraction(&format!("group[{g}].departures"), group.departures)?;
            fraction(
                &format!("group[{g}].strategy.altruism"),
                group.strategy.altruism,
            )?;
            fraction(
                &format!("group[{g}].strategy.drop_fraction"),
                group.strategy.drop_fraction,
            )?;
            let gw = &group.workload;
            for (key, value) in [
                ("publish_per_peer_per_day", gw.publish_per_peer_per_day),
                ("fetch_per_peer_per_day", gw.fetch_per_peer_per_day),
            ] {
                if let Some(value) = value {
                    within(
                        &format!("group[{g}].workload.{key}"),
                        value,
                        0.0,
                        PER_DAY_MAX,
                        "per peer per day",
                    )?;
                }
            }
            let min = gw
                .object_bytes_min
                .unwrap_or(self.workload.object_bytes_min);
            let max = gw
                .object_bytes_max
                .unwrap_or(self.workload.object_bytes_max);
            if min == 0 || min > max || max > 1 << 30 {
                return Err(invalid(
                    &format!("group[{g}].workload.object_bytes_min"),
                    "needs 1 <= min <= max <= 1 GiB".into(),
                ));
            }
            if max.div_ceil(u64::from(self.workload.chunk_bytes.max(1))) > 10_000 {
                return Err(invalid(
                    &format!("group[{g}].workload.object_bytes_max"),
                    "makes objects of more than 10,000 chunks".into(),
                ));
            }
            if !(1..=16).contains(&group.strategy.replication) {
                return Err(invalid(
                    &format!("group[{g}].strategy.replication"),
                    format!("must be 1 to 16, not {}", group.strategy.replication),
                ));
            }
            for (key, hours) in [
                ("check_hours", group.strategy.check_hours),
                (
                    "holder_dead_after_hours",
                    group.strategy.holder_dead_after_hours,
                ),
            ] {
                if !(0.01..=87_600.0).contains(&hours) {
                    return Err(invalid(
                        &format!("group[{g}].strategy.{key}"),
                        format!("must be between 0.01 and 87,600 hours, not {hours}"),
                    ));
                }
            }
        }
        if total == 0 || total > 100_000 {
            return Err(invalid(
                "group.count",
                format!("the run needs 1 to 100,000 peers, not {total}"),
            ));
        }
        let w = &self.workload;
        for (key, value) in [
            ("publish_per_peer_per_day", w.publish_per_peer_per_day),
            ("fetch_per_peer_per_day", w.fetch_per_peer_per_day),
        ] {
            within(
                &format!("workload.{key}"),
                value,
                0.0,
                PER_DAY_MAX,
                "per peer per day",
            )?;
        }
        within(
            "workload.warmup_hours",
            w.warmup_hours,
            0.0,
            HOURS_MAX,
            "hours",
        )?;
        if w.object_bytes_min == 0
            || w.object_bytes_min > w.object_bytes_max
            || w.object_bytes_max > 1 << 30
        {
            return Err(invalid(
                "workload.object_bytes_min",
                "needs 1 <= min <= max <= 1 GiB".into(),
            ));
        }
        if w.chunk_bytes == 0 || w.chunk_bytes > 1 << 20 {
            return Err(invalid(
                "workload.chunk_bytes",
                "must be 1 to 1048576".into(),
            ));
        }
        if w.object_bytes_max.div_ceil(u64::from(w.chunk_bytes)) > 10_000 {
            return Err(invalid(
                "workload.object_bytes_max",
                "makes objects of more than 10,000 chunks".into(),
            ));
        }
        if let Popularity::Zipf { s } = w.popularity {
            positive("workload.popularity.zipf.s", s)?;
        }
        if self.fidelity == Fidelity::Full && total > 2_000 {
            return Err(invalid(
                "fidelity",
                "\"full\" is for small runs (at most 2,000 peers)".into(),
            ));
        }
        if let Some(chains) = &self.chains {
            for (key, minutes) in [
                ("chains.record_every_minutes", chains.record_every_minutes),
                (
                    "chains.exchange_every_minutes",
                    chains.exchange_every_minutes,
                ),
            ] {
                if !(0.1..=100_000.0).contains(&minutes) {
                    return Err(invalid(
                        key,
                        format!("must be between 0.1 and 100,000 minutes, not {minutes}"),
                    ));
                }
            }
            for (key, value) in [
                ("chains.book_records_max", chains.book_records_max),
                ("chains.graph_nodes_max", chains.graph_nodes_max),
                ("chains.graph_edges_max", chains.graph_edges_max),
            ] {
                if !(16..=1 << 24).contains(&value) {
                    return Err(invalid(
                        key,
                        format!("must be 16 to 16,777,216, not {value}"),
                    ));
                }
            }
            within(
                "chains.recompute_every_hours",
                chains.recompute_every_hours,
                0.01,
                HOURS_MAX,
                "hours",
            )?;
        }
        if !self.directory && !(1..=1_000).contains(&self.bootstrap_peers) {
            return Err(invalid(
                "bootstrap_peers",
                format!("must be 1 to 1,000, not {}", self.bootstrap_peers),
            ));
        }
        if let Some(routing) = &self.routing {
            for (key, value) in [
                ("routing.record_ttl_hours", routing.record_ttl_hours),
                ("routing.republish_hours", routing.republish_hours),
            ] {
                if !(0.01..=10_000.0).contains(&value) {
                    return Err(invalid(
                        key,
                        format!("must be between 0.01 and 10,000 hours, not {value}"),
                    ));
                }
            }
            if routing.republish_hours >= routing.record_ttl_hours {
                return Err(invalid(
                    "routing.republish_hours",
                    "must be shorter than routing.record_ttl_hours, or records lapse".into(),
                ));
            }
        }
        for (g, group) in self.groups.iter().enumerate() {
            if let Some(every) = group.strategy.rekey_every_hours {
                let key = format!("group[{g}].strategy.rekey_every_hours");
                within(&key, every, 0.1, HOURS_MAX, "hours")?;
            }
            if let Some(at) = group.strategy.defect_at_hours {
                let key = format!("group[{g}].strategy.defect_at_hours");
                within(&key, at, 0.0, HOURS_MAX, "hours")?;
                if at >= self.duration_hours {
                    return Err(invalid(
                        &key,
                        format!(
                            "must come before the run's end (duration_hours = {}): a defection after it is never measured",
                            self.duration_hours
                        ),
                    ));
                }
            }
            if group.strategy.colludes() {
                let key = if group.strategy.praise_bytes > 0 {
                    format!("group[{g}].strategy.praise_bytes")
                } else {
                    format!("group[{g}].strategy.serves_only_group")
                };
                if group.strategy.praise_bytes > 0 && self.chains.is_none() {
                    return Err(invalid(&key, "needs a [chains] table".into()));
                }
                if group.strategy.praise_bytes > 1 << 40 {
                    return Err(invalid(&key, "must be at most 2^40 bytes".into()));
                }
                // The members know each other from the start: their identities never change.
                if group.strategy.rekey_every_hours.is_some() || group.arrivals > 0 {
                    return Err(invalid(
                        &key,
                        "colluders are the members present at time 0: not with rekey_every_hours or arrivals".into(),
                    ));
                }
            }
            if group.strategy.omits_others_records
                && !self.chains.as_ref().is_some_and(|c| c.filter)
            {
                let key = format!("group[{g}].strategy.omits_others_records");
                return Err(invalid(
                    &key,
                    "needs [chains] with filter = true: only the filter scores what other peers' chains say, so without it the lie changes nothing".into(),
                ));
            }
            if let Some(at) = group.strategy.fork_at_hours {
                let key = format!("group[{g}].strategy.fork_at_hours");
                within(&key, at, 0.0, HOURS_MAX, "hours")?;
                if self.chains.is_none() {
                    return Err(invalid(&key, "needs a [chains] table".into()));
                }
            }
        }
        for (f, fault) in self.faults.iter().enumerate() {
            match fault {
                Fault::Partition {
                    at_hours,
                    heal_hours,
                    side_a,
                } => {
                    non_negative(&format!("fault[{f}].at_hours"), *at_hours)?;
                    non_negative(&format!("fault[{f}].heal_hours"), *heal_hours)?;
                    if heal_hours <= at_hours {
                        return Err(invalid(
                            &format!("fault[{f}].heal_hours"),
                            "must come after at_hours".into(),
                        ));
                    }
                    fraction(&format!("fault[{f}].side_a"), *side_a)?;
                }
                Fault::Crash {
                    at_hours,
                    group,
                    fraction: share,
                }
                | Fault::Reboot {
                    at_hours,
                    group,
                    fraction: share,
                } => {
                    non_negative(&format!("fault[{f}].at_hours"), *at_hours)?;
                    fraction(&format!("fault[{f}].fraction"), *share)?;
                    if !self.groups.iter().any(|g| &g.name == group) {
                        return Err(invalid(
                            &format!("fault[{f}].group"),
                            format!("no group is named {group:?}"),
                        ));
                    }
                }
            }
        }
        for (p, probe) in self.probes.iter().enumerate() {
            if self.probes.iter().filter(|p| p.name == probe.name).count() > 1 {
                return Err(invalid(
                    &format!("probe[{p}].name"),
                    format!("{:?} is used twice", probe.name),
                ));
            }
            if probe.fetches > 1_000_000 {
                return Err(invalid(
                    &format!("probe[{p}].fetches"),
                    "must be at most 1,000,000".into(),
                ));
            }
            non_negative(&format!("probe[{p}].at_hours"), probe.at_hours)?;
            non_negative(
                &format!("probe[{p}].published_before_hours"),
                probe.published_before_hours,
            )?;
        }
        let mut expectations = Vec::with_capacity(self.expect_tables.len());
        for (e, table) in self.expect_tables.iter().enumerate() {
            let metric: Measure = table.metric.parse().map_err(|unknown: UnknownMetric| {
                invalid(
                    &format!("expect[{e}].metric"),
                    format!("{unknown}{}", metric_help(&unknown.0)),
                )
            })?;
            if let Measure::ProbeSuccessRatio(name) = &metric {
                if !self.probes.iter().any(|p| &p.name == name) {
                    return Err(invalid(
                        &format!("expect[{e}].metric"),
                        format!("no [[probe]] is named {name:?}"),
                    ));
                }
            }
            let Some(op) = Op::from_symbol(&table.op) else {
                return Err(invalid(
                    &format!("expect[{e}].op"),
                    format!("{:?} is not one of <=, >=, <, >, ==", table.op),
                ));
            };
            if table.group != "all" && !self.groups.iter().any(|g| g.name == table.group) {
                return Err(invalid(
                    &format!("expect[{e}].group"),
                    format!("no group is named {:?}", table.group),
                ));
            }
            if let Some(other) = &table.relative_to {
                if other != "all" && !self.groups.iter().any(|g| &g.name == other) {
                    return Err(invalid(
                        &format!("expect[{e}].relative_to"),
                        format!("no group is named {other:?}"),
                    ));
                }
                if matches!(metric, Measure::ProbeSuccessRatio(_)) {
                    return Err(invalid(
                        &format!("expect[{e}].relative_to"),
                        "a probe has no groups to compare".into(),
                    ));
                }
            }
            expectations.push(Expectation {
                metric,
                group: table.group.clone(),
                op,
                value: table.value,
                relative_to: table.relative_to.clone(),
            });
        }
        Ok(expectations)
    }
}
