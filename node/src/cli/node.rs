//! `cryptosphere node run` (and its operator flags), `node status` and `node contracts`, and
//! `put`/`get` through a running node's API.

// Host code: it reads files and talks to the node over HTTP.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::{data_dir, Failure, NoDataDir, ENVIRONMENT, INTEGRITY, USAGE};
use crate::kernel::strategy::{Economy, Strategy};
use crate::kernel::Time;
use crate::net::client::{self, ClientError};
use crate::net::{NodeError, NodeOptions};
use crate::object::Capability;
use crate::wire::gate::GateLimits;

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node until SIGINT or SIGTERM. Prints one JSON line (peer, listen, api) on
    /// stdout once it serves; logs go to stderr (CRYPTOSPHERE_LOG sets the level).
    Run(RunArgs),
    /// Print a running node's status (JSON) from its API.
    Status(StatusArgs),
    /// Print a running node's strategy, contracts and ledgers from its API (a table, or
    /// the API's JSON with --json).
    Contracts(ContractsArgs),
    /// Print the peers a running node knows: score and its parts, ledger, contract, and why
    /// the node refuses a peer if it does (a table, or the API's JSON with --json). The
    /// same as `cryptosphere peers`.
    Peers(ContractsArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The node's API (http://HOST:PORT). Without it: the API the node running on the data
    /// directory wrote to its `api` file, else http://127.0.0.1:7421.
    #[arg(long, value_name = "URL", env = "CRYPTOSPHERE_API")]
    pub api: Option<String>,
}

/// The API a node listens on unless told otherwise (`node run --api`).
pub const DEFAULT_API: &str = "http://127.0.0.1:7421";

impl StatusArgs {
    /// The API to call: `--api` (or `$CRYPTOSPHERE_API`), else the one the node running on
    /// the data directory wrote, else [`DEFAULT_API`].
    pub fn url(&self, data_dir: Option<PathBuf>) -> String {
        self.api
            .clone()
            .or_else(|| super::data_dir(data_dir).and_then(|dir| crate::datadir::running_api(&dir)))
            .unwrap_or_else(|| DEFAULT_API.to_owned())
    }
}

#[derive(Debug, Args)]
pub struct ContractsArgs {
    #[command(flatten)]
    pub node: StatusArgs,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An adversary's behaviour, for experiments and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Adversary {
    /// Asks for storage, holds nothing for others and offers nothing in return.
    StorageFreeloader,
    /// Fetches, never serves.
    BandwidthFreeloader,
    /// Answers audits with made-up proofs.
    Liar,
    /// Never proposes a contract; lives on strangers' allowances (with
    /// `storage-freeloader`, a whitewasher's way between identities).
    StrangerOnly,
}

/// Longest contract term peers accept (the negotiator refuses longer ones as invalid).
const CONTRACT_TERM_SECS_MAX: u64 = 7 * 86_400;
/// Most storage a node may offer, GiB (1 PiB).
const OFFER_GIB_MAX: f64 = 1_048_576.0;
/// Default storage offered to others, GiB.
const OFFER_GIB_DEFAULT: f64 = 10.0;
/// Default interval between chain agreements, seconds: a real network's pace.
const CHAIN_RECORD_SECS_DEFAULT: u64 = 60;

/// A share from 0 to 1.
fn fraction(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| format!("{text:?} is not a number from 0 to 1"))
}

/// GiB from 0 to [`OFFER_GIB_MAX`], fractions allowed.
fn gib(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|g| (0.0..=OFFER_GIB_MAX).contains(g))
        .ok_or_else(|| format!("{text:?} is not a size in GiB from 0 to {OFFER_GIB_MAX}"))
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address to listen on for peers.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7420")]
    pub listen: SocketAddr,
    /// A peer's address to start from (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub bootstrap: Vec<SocketAddr>,
    /// Address of the local HTTP API (loopback unless you mean otherwise).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7421")]
    pub api: SocketAddr,
    /// How many other peers hold each chunk this node publishes.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub replication: u16,
    /// Inbound connections accepted at once.
    #[arg(long, value_name = "N", default_value_t = GateLimits::default().connections_max)]
    pub connections_max: usize,
    /// Inbound connections accepted at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = GateLimits::default().connections_per_ip_max)]
    pub connections_per_ip_max: usize,
    /// Seconds a connection may carry no frame before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,
    /// How much this node gives, from 0 (stingy) to 1 (no limit): it scales the storage and
    /// bandwidth strangers get here, the credit partners get, the shortfall tolerated, and
    /// how often holders are audited.
    #[arg(long, value_name = "F", default_value_t = Strategy::default().altruism, value_parser = fraction, allow_negative_numbers = true)]
    pub altruism: f64,
    /// Storage offered to other peers, GiB (fractions allowed).
    #[arg(long, value_name = "GIB", default_value_t = OFFER_GIB_DEFAULT, value_parser = gib, allow_negative_numbers = true)]
    pub offer_gib: f64,
    /// For experiments: behave as this adversary (repeatable).
    #[arg(long, value_enum, value_name = "KIND")]
    pub adversary: Vec<Adversary>,
    /// For experiments: say chunks are kept and silently drop this share of them (0 to 1).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = fraction, allow_negative_numbers = true)]
    pub drop_fraction: f64,
    /// A storage contract's term, seconds: each side judges it at the end, and renews or
    /// drops it. Also a stranger's free term, and the wait after a declined proposal.
    #[arg(long, value_name = "SECS", default_value_t = Economy::default().contract_term_us / Time::SECOND, value_parser = clap::value_parser!(u64).range(1..=CONTRACT_TERM_SECS_MAX))]
    pub contract_term_secs: u64,
    /// Seconds between audit rounds (default: 1 hour at altruism 0 to 1 day at altruism 1).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=CONTRACT_TERM_SECS_MAX))]
    pub audit_every_secs: Option<u64>,
    /// At most one service is recorded on the chain (an agreement with its counterparty)
    /// this often, seconds.
    #[arg(long, value_name = "SECS", default_value_t = CHAIN_RECORD_SECS_DEFAULT, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub chain_record_every_secs: u64,
    /// How long a get goes on looking for sources (fresh lookups, retries after 1, 2, 4, 8,
    /// 8 … s) before it answers 502, seconds (0: one attempt).
    #[arg(long, value_name = "SECS", default_value_t = crate::net::FETCH_DEADLINE_US / Time::SECOND, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub fetch_deadline_secs: u64,
    /// Benchmarks only: keep the reputation filter recomputing over a synthetic graph of
    /// 10,000 peers and 100,000 services.
    #[arg(long, hide = true)]
    pub bench_filter_load: bool,
}

impl RunArgs {
    fn strategy(&self) -> Strategy {
        Strategy {
            altruism: self.altruism,
            storage_freeloader: self.adversary.contains(&Adversary::StorageFreeloader),
            bandwidth_freeloader: self.adversary.contains(&Adversary::BandwidthFreeloader),
            drop_fraction: self.drop_fraction,
            liar: self.adversary.contains(&Adversary::Liar),
            stranger_only: self.adversary.contains(&Adversary::StrangerOnly),
            ..Strategy::default()
        }
    }

    fn economy(&self) -> Economy {
        let mut economy = Economy {
            contract_term_us: self.contract_term_secs * Time::SECOND,
            ..Economy::default()
        };
        if let Some(secs) = self.audit_every_secs {
            economy.audit_interval_stingy_us = secs * Time::SECOND;
            economy.audit_interval_generous_us = secs * Time::SECOND;
        }
        economy
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CRYPTOSPHERE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn run_node(explicit: Option<PathBuf>, args: &NodeArgs) -> Result<(), Failure> {
    let run = match &args.command {
        NodeCommand::Run(run) => run,
        NodeCommand::Status(status) => {
            let api = status.url(explicit);
            let context = || format!("cannot read the status of the node at {api}");
            let text =
                client::status(&api).map_err(|e| Failure::new(client_code(&e), context(), e))?;
            let mut stdout = std::io::stdout().lock();
            return writeln!(stdout, "{}", text.trim())
                .map_err(|e| Failure::new(ENVIRONMENT, "cannot write to stdout", e));
        }
        NodeCommand::Contracts(contracts) => return super::economy::print(contracts, explicit),
        NodeCommand::Peers(peers) => return super::economy::print_peers(peers, explicit),
    };
    let dir =
        data_dir(explicit).ok_or_else(|| Failure::new(USAGE, "no data directory", NoDataDir))?;
    if run.connections_max == 0 || run.connections_per_ip_max == 0 {
        return Err(Failure::new(
            USAGE,
            "bad connection limits",
            Message("--connections-max and --connections-per-ip-max must be at least 1".into()),
        ));
    }
    init_logs();
    let options = NodeOptions {
        data_dir: dir,
        listen: run.listen,
        bootstrap: run.bootstrap.clone(),
        api: run.api,
        replication: usize::from(run.replication),
        gate: GateLimits {
            connections_max: run.connections_max,
            connections_per_ip_max: run.connections_per_ip_max,
            ..GateLimits::default()
        },
        idle_timeout: std::time::Duration::from_secs(run.idle_timeout),
        strategy: run.strategy(),
        economy: run.economy(),
        offer_bytes: (run.offer_gib * (1u64 << 30) as f64) as u64,
        chain_record_interval: std::time::Duration::from_secs(run.chain_record_every_secs),
        fetch_deadline: std::time::Duration::from_secs(run.fetch_deadline_secs),
        bench_filter_load: run.bench_filter_load,
    };
    crate::net::run(options).map_err(|e| {
        let code = match &e {
            NodeError::Identity { .. } => USAGE,
            _ => ENVIRONMENT,
        };
        Failure::new(code, "the node stopped", e)
    })
}

pub(super) fn client_code(error: &ClientError) -> u8 {
    match error {
        ClientError::BadUrl(_) => USAGE,
        ClientError::Refused { status, .. } if *status == 400 || *status == 422 => USAGE,
        ClientError::Refused { status, .. } if *status == 502 => INTEGRITY,
        ClientError::Short { .. } => INTEGRITY,
        _ => ENVIRONMENT,
    }
}

pub fn put_via_api(api: &str, path: &Path) -> Result<(), Failure> {
    let context = || format!("cannot put {} through {api}", path.display());
    let metadata =
        std::fs::symlink_metadata(path).map_err(|e| Failure::new(USAGE, context(), e))?;
    let cap = if metadata.is_dir() {
        client::put_dir(api, path)
    } else if metadata.is_file() {
        let file = std::fs::File::open(path).map_err(|e| Failure::new(USAGE, context(), e))?;
        client::put(api, file)
    } else {
        return Err(Failure::new(
            USAGE,
            context(),
            Message("only regular files and directories can be put".into()),
        ));
    };
    let cap = cap.map_err(|e| Failure::new(client_code(&e), context(), e))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{cap}").map_err(|e| Failure::new(ENVIRONMENT, "cannot write to stdout", e))
}

pub fn get_via_api(api: &str, cap: &Capability, output: &Path, force: bool) -> Result<(), Failure> {
    let context = || format!("cannot get {cap} into {} through {api}", output.display());
    if output.exists() && !force {
        return Err(Failure::new(
            USAGE,
            context(),
            Message(format!(
                "{} exists; pass --force to replace it",
                output.display()
            )),
        ));
    }
    let text = cap.to_string();
    let kind = client::kind(api, &text).map_err(|e| Failure::new(client_code(&e), context(), e))?;
    if kind == "directory" {
        let stream =
            client::get_tar(api, &text).map_err(|e| Failure::new(client_code(&e), context(), e))?;
        crate::host::export::unpack_to_path(stream, output, force)
            .map_err(|e| Failure::new(super::export_code(&e), context(), e))?;
        return Ok(());
    }
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // All or nothing: the file appears under its name only once every byte arrived.
    let mut staged = tempfile::Builder::new()
        .prefix(".cryptosphere-get-")
        .tempfile_in(parent)
        .map_err(|e| Failure::new(ENVIRONMENT, context(), e))?;
    client::get(api, &text, staged.as_file_mut())
        .map_err(|e| Failure::new(client_code(&e), context(), e))?;
    staged
        .as_file()
        .sync_all()
        .map_err(|e| Failure::new(ENVIRONMENT, context(), e))?;
    staged
        .persist(output)
        .map_err(|e| Failure::new(ENVIRONMENT, context(), e.error))?;
    Ok(())
}
