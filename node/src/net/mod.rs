//! The real host: the node. Each of the peer's four actors runs as its own actix actor
//! ([`host`] for the transport, [`actors`] for the store, negotiator and reputation filter),
//! and they send each other the kernel's messages through their mailboxes ([`mailbox`]);
//! TCP connections with Noise ([`conn`]) run on a tokio runtime beside them; a local
//! HTTP API ([`api`]) takes puts and gets and shows the node's state, its economy
//! ([`trade`]) and its chain. The store is RocksDB in the data directory.
//!
//! Host code: it reads the clock, draws from the OS, opens sockets and files, and spawns.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod actors;
pub mod api;
pub mod client;
pub mod conn;
pub mod host;
pub mod identity;
pub mod mailbox;
pub mod peers;
pub mod status;
pub mod trade;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;

use crate::kernel::peer::Peer;
use crate::kernel::strategy::{Economy, Strategy};
use crate::kernel::{ActorKind, Directory, Input, KernelConfig, Time};
use crate::store::Store;
use crate::wire::gate::{Gate, GateLimits};
use crate::wire::noise::NoiseIdentity;

pub use crate::datadir::{IDENTITY_FILE, STORE_DIR};

/// How the node runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub bootstrap: Vec<SocketAddr>,
    pub api: SocketAddr,
    pub replication: usize,
    pub gate: GateLimits,
    /// A connection idle this long (no frame either way) is closed.
    pub idle_timeout: std::time::Duration,
    /// How this node trades: altruism and, for experiments, an adversary's behaviours.
    pub strategy: Strategy,
    /// The economy's limits and timings (contract term, audit interval, allowances).
    pub economy: Economy,
    /// Storage this node offers to other peers, bytes.
    pub offer_bytes: u64,
    /// At most one chain agreement is started this often (chains are always on in a node).
    pub chain_record_interval: std::time::Duration,
    /// How long a fetch goes on looking for sources before it fails (default
    /// [`FETCH_DEADLINE_US`]).
    pub fetch_deadline: std::time::Duration,
    /// Benchmarks only: keep the reputation filter recomputing over a synthetic graph of
    /// [`BENCH_FILTER_PEERS`] peers and [`BENCH_FILTER_SERVICES`] services, with
    /// [`BENCH_FILTER_BATCH`] more before each pass.
    pub bench_filter_load: bool,
}

/// The synthetic graph of `--bench-filter-load`: the size the filter's benchmark uses.
pub const BENCH_FILTER_PEERS: u32 = 10_000;
pub const BENCH_FILTER_SERVICES: usize = 100_000;
pub const BENCH_FILTER_BATCH: usize = 1_000;

/// Why the node could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity key {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    #[error("the store could not be flushed at shutdown: {0}")]
    Flush(String),
    #[error("the node did not stop cleanly: {0}")]
    Stop(&'static str),
}

/// Byte counters the connections share with the API.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub handshakes_failed: AtomicU64,
}

impl Counters {
    pub fn add_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.frames_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every connection task needs.
#[derive(Debug)]
pub struct Shared {
    pub noise: NoiseIdentity,
    pub frame_bytes_max: usize,
    pub idle_timeout: std::time::Duration,
    pub counters: Counters,
    epoch: Instant,
    gate: Mutex<Gate>,
    /// Why the store could not be flushed at shutdown (the process then exits non-zero).
    pub flush_failed: Mutex<Option<String>>,
    /// The actors' mailboxes.
    pub routes: mailbox::Routes,
    /// What the actors' events and the connections count, and fetches waited on.
    pub node: status::NodeState,
}

impl Shared {
    pub fn now(&self) -> Time {
        Time(self.epoch.elapsed().as_micros() as u64)
    }

    /// Time since `micros` (a value of `now()`).
    pub fn since(&self, micros: u64) -> std::time::Duration {
        std::time::Duration::from_micros(self.now().since(Time(micros)))
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        // A panic while holding the gate cannot leave it inconsistent beyond a count.
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn strike(&self, ip: IpAddr, now: Time) {
        self.gate().strike(ip, now);
    }

    pub fn gate_state(&self) -> (usize, u64) {
        let gate = self.gate();
        (gate.open_connections(), gate.refused())
    }
}

/// How long a node's fetch goes on trying (fresh lookups, other sources) before it fails,
/// unless the operator says otherwise (`node run --fetch-deadline-secs`).
pub const FETCH_DEADLINE_US: u64 = 60 * Time::SECOND;

/// The kernel's configuration for a real node.
pub fn kernel_config(options: &NodeOptions, listen: SocketAddr) -> KernelConfig {
    KernelConfig {
        replication: options.replication,
        listen: Some(listen),
        bootstrap: options.bootstrap.clone(),
        keep_fetched: true,
        // Real networks: gossip and upkeep in minutes, not simulated hours.
        gossip_interval_us: 10 * Time::SECOND,
        check_interval_us: 10 * 60 * Time::SECOND,
        holder_dead_after_us: 30 * 60 * Time::SECOND,
        request_timeout_us: 10 * Time::SECOND,
        timeout_bytes_per_s: 4 << 20,
        request_retries_max: 2,
        fetch_parallel_max: 16,
        // A get that finds no source, or whose sources fail it, looks again: 1, 2, 4, 8, 8 …
        // seconds later, for a minute, before it answers 502.
        fetch_deadline_us: options.fetch_deadline.as_micros() as u64,
        placements_in_flight_max: 96,
        // The actors run on threads of their own: a partner's store may refuse our first
        // requests before its negotiator's word of the contract reaches it.
        contract_grace_us: 10 * Time::SECOND,
        lookups: true,
        provider_ttl_us: 4 * Time::HOUR,
        provider_republish_us: Time::HOUR,
        // Every service is recorded on both parties' chains (kept in the node's store), and
        // other peers' chains are read for forks.
        chain_record_interval_us: Some(
            (options.chain_record_interval.as_micros() as u64).max(Time::SECOND),
        ),
        // The reputation filter scores peers over the chains read, every minute (a node's
        // graph is small; the simulator recomputes less often). Its flow scale puts a peer
        // that took more than it gave under the serve line after about 106 MiB
        // (`NODE_FLOW_SCALE × tan(π/8)`), near the default bandwidth allowance (128 MiB),
        // not after the 1.7 MB the simulator's smaller data are scaled for.
        trust: Some(crate::kernel::trust::TrustConfig {
            recompute_interval_us: 60 * Time::SECOND,
            flow_scale: NODE_FLOW_SCALE,
            ..Default::default()
        }),
        storage_for_others_bytes: options.offer_bytes,
        strategy: options.strategy.clone(),
        economy: options.economy.clone(),
        ..KernelConfig::default()
    }
}

/// The node's BarterCast scale, bytes (the simulator's is `TrustConfig`'s default, 4 MiB).
pub const NODE_FLOW_SCALE: f64 = (256u64 << 20) as f64;

/// Runs the node until SIGINT or SIGTERM.
pub fn run(options: NodeOptions) -> Result<(), NodeError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| NodeError::DataDir {
        path: options.data_dir.clone(),
        source,
    })?;
    // Every peer is a socket: take all the descriptors the system allows us.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(%e, "could not raise the open-file limit");
    }
    let store = Store::open_rocks(&crate::datadir::store_dir(&options.data_dir))?;
    let key_path = crate::datadir::identity_file(&options.data_dir);
    // A seed an earlier version's chain commands kept in the store is this directory's
    // identity: its chain stays the node's.
    if !key_path.exists() {
        if let Ok(Some(seed)) = store.backend().meta_get(crate::cli::chain::IDENTITY_KEY) {
            if let Ok(seed) = <[u8; 32]>::try_from(seed.as_slice()) {
                identity::create(&key_path, &seed)?;
            }
        }
    }
    let key = identity::load_or_create(&key_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| NodeError::Runtime(e.to_string()))?;
    let listener = runtime
        .block_on(TcpListener::bind(options.listen))
        .map_err(|source| NodeError::Listen {
            addr: options.listen,
            source,
        })?;
    let api_listener = runtime
        .block_on(TcpListener::bind(options.api))
        .map_err(|source| NodeError::Listen {
            addr: options.api,
            source,
        })?;
    let listen = listener.local_addr().map_err(|source| NodeError::Listen {
        addr: options.listen,
        source,
    })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| NodeError::Listen {
            addr: options.api,
            source,
        })?;
    let config = kernel_config(&options, listen);
    let shared = Arc::new(Shared {
        noise: NoiseIdentity::generate(&key)?,
        frame_bytes_max: config.frame_bytes_max as usize,
        idle_timeout: options.idle_timeout,
        counters: Counters::default(),
        epoch: Instant::now(),
        gate: Mutex::new(Gate::new(options.gate)),
        flush_failed: Mutex::new(None),
        routes: mailbox::Routes::default(),
        node: status::NodeState::default(),
    });
    let peer = Peer::new(key, config.clone(), store.clone());
    let me = peer.id();
    let peer_id = crate::ids::encode_base32(&me.0);
    let handle = runtime.handle().clone();
    let Started {
        boxes,
        thread: actix_thread,
        gone,
    } = start_actors(peer, store.clone(), shared.clone(), handle)?;

    // Ready: one line on stdout that scripts and tests read.
    println!(
        "{}",
        serde_json::json!({ "peer": peer_id, "listen": listen, "api": api_addr })
    );
    tracing::info!(%listen, api = %api_addr, peer = %peer_id, "node running");
    // Local commands on this directory point to the API while we run.
    let api_file = crate::datadir::api_file(&options.data_dir);
    if let Err(e) = std::fs::write(&api_file, format!("http://{api_addr}\n")) {
        tracing::warn!(%e, "could not write {}", api_file.display());
    }

    if options.bench_filter_load {
        runtime.spawn(bench_filter_load(
            shared.clone(),
            boxes.reputation.clone(),
            me,
        ));
    }
    runtime.block_on(async {
        let accepting = tokio::spawn(accept(listener, shared.clone(), boxes.transport.clone()));
        let view = api::NodeView {
            me,
            listen: Some(listen),
            replication: config.replication,
            trade: trade::TradeConfig::of(&config),
        };
        let state = api::ApiState::new(view, store.clone(), shared.clone());
        let serving = tokio::spawn(api::serve(api_listener, state));
        shutdown_signal().await;
        tracing::info!("shutting down");
        accepting.abort();
        serving.abort();
        stop_actors(&shared, &boxes).await;
    });
    let _ = actix_thread.join();
    // The store, negotiator and filter stop on their own threads: none may still hold the
    // store (RocksDB) when the process ends.
    let stuck = matches!(
        gone.recv_timeout(std::time::Duration::from_secs(10)),
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout)
    );
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let _ = std::fs::remove_file(&api_file);
    let flush_failed = shared
        .flush_failed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    match flush_failed {
        Some(reason) => Err(NodeError::Flush(reason)),
        None if stuck => Err(NodeError::Stop(
            "an actor still held the store 10 s after it",
        )),
        None => Ok(()),
    }
}

/// Starts the peer's four actors on an actix system thread: the transport on the system's
/// arbiter, the negotiator and the reputation filter each on an arbiter of its own, the
/// store on a `SyncArbiter` thread; then starts them in the kernel's order.
fn start_actors(
    peer: Peer,
    store: Store,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
) -> Result<Started, NodeError> {
    use actix::Actor;
    use mailbox::Core;

    let (me, transport, mut store_actor, negotiator, reputation) = peer.into_parts();
    let store_starts = store_actor.wants_start();
    let mut seeds = ChaCha8Rng::from_entropy();
    let mut rng =
        move || ChaCha8Rng::from_rng(&mut seeds).unwrap_or_else(|_| ChaCha8Rng::from_entropy());
    let (alive, gone) = std::sync::mpsc::channel();
    let core = |rng| (rng, shared.clone(), runtime.clone(), alive.clone());
    let (r, s, h, a) = core(rng());
    let transport = Core::new(transport, me, r, s, h, a);
    let (r, s, h, a) = core(rng());
    let store_core = Core::new(store_actor, me, r, s, h, a);
    let (r, s, h, a) = core(rng());
    let negotiator = Core::new(negotiator, me, r, s, h, a);
    let (r, s, h, a) = core(rng());
    let reputation = Core::new(reputation, me, r, s, h, a);
    drop(alive);
    let (started, addresses) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("actors".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                // The factory runs once, on the store's thread.
                let store_host = Mutex::new(Some(actors::StoreHost::new(store_core, store)));
                let store = actix::SyncArbiter::start(1, move || {
                    let host = store_host.lock().unwrap_or_else(|e| e.into_inner()).take();
                    host.unwrap_or_else(|| unreachable!("the store's actor is made once"))
                });
                let negotiator_thread = actix::Arbiter::new();
                let negotiator =
                    actors::KernelHost::start_in_arbiter(&negotiator_thread.handle(), move |_| {
                        actors::KernelHost::new(negotiator)
                    });
                let reputation_thread = actix::Arbiter::new();
                let reputation =
                    actors::KernelHost::start_in_arbiter(&reputation_thread.handle(), move |_| {
                        actors::KernelHost::new(reputation)
                    });
                let transport = host::TransportHost::new(transport, runtime).start();
                let _ = started.send(mailbox::Mailboxes {
                    transport,
                    store,
                    negotiator,
                    reputation,
                });
            });
            system.run()
        })
        .map_err(|e| NodeError::Runtime(e.to_string()))?;
    let boxes = addresses
        .recv()
        .map_err(|_| NodeError::Runtime("the actors did not start".into()))?;
    shared.routes.connect(boxes.clone());
    // As `Peer::start`: the negotiator, the transport (a node bootstraps from addresses, not
    // from a directory of peers), the reputation filter, then the store if it has to.
    let start = || Input::Start {
        peers: Directory::from(Vec::new()),
    };
    let routes = &shared.routes;
    routes.deliver(ActorKind::Negotiator, start());
    routes.deliver(ActorKind::Transport, start());
    routes.deliver(ActorKind::Reputation, start());
    if store_starts {
        routes.deliver(ActorKind::Store, start());
    }
    Ok(Started {
        boxes,
        thread,
        gone,
    })
}

/// The running actors.
struct Started {
    boxes: mailbox::Mailboxes,
    /// The actix system's thread (the transport's), ended once the system stops.
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    /// Disconnected once every actor is dropped (the others live on threads of their own).
    gone: std::sync::mpsc::Receiver<()>,
}

/// Stops the actors, then flushes the store: no input is delivered any more, the transport,
/// negotiator and filter finish the input in hand (they write to the store themselves:
/// contacts, contracts, chains) and ignore the rest, then the store flushes and stops the
/// actix system.
async fn stop_actors(shared: &Shared, boxes: &mailbox::Mailboxes) {
    use mailbox::Inspect;
    shared.routes.stop();
    let wait = std::time::Duration::from_secs(10);
    let idle = tokio::join!(
        tokio::time::timeout(wait, boxes.transport.send(Inspect::new(|_: &_| ()))),
        tokio::time::timeout(wait, boxes.negotiator.send(Inspect::new(|_: &_| ()))),
        tokio::time::timeout(wait, boxes.reputation.send(Inspect::new(|_: &_| ()))),
    );
    if !matches!(idle, (Ok(Ok(())), Ok(Ok(())), Ok(Ok(())))) {
        tracing::warn!("an actor did not finish its input within 10 s");
    }
    let _ = boxes.store.send(actors::Shutdown).await;
}

/// `--bench-filter-load`: keeps the reputation filter's thread recomputing, pass after pass,
/// over a synthetic graph of its own (the filter's scores are left alone) that grows by a batch of services before each (a tenth of them
/// with this node, so that it is in the graph), and logs how busy it was every 10 passes.
async fn bench_filter_load(
    shared: Arc<Shared>,
    reputation: actix::Addr<actors::KernelHost<crate::kernel::reputation::Reputation>>,
    me: crate::kernel::PeerId,
) {
    use crate::kernel::trust::synthetic;
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let batch = |rng: &mut ChaCha8Rng, count: usize| {
        let at = shared.now().micros();
        (0..count)
            .map(|_| {
                let with = rng.gen_bool(0.1).then_some(me.0);
                synthetic::service(rng, BENCH_FILTER_PEERS, at, with)
            })
            .collect::<Vec<_>>()
    };
    let mut records = batch(&mut rng, BENCH_FILTER_SERVICES);
    let mut graph = Box::new(crate::kernel::trust::Trust::new(Default::default()));
    let (mut passes, mut busy) = (0u64, std::time::Duration::ZERO);
    let started = Instant::now();
    loop {
        let load = actors::FilterLoad { graph, records };
        let Ok((back, took)) = reputation.send(load).await else {
            return;
        };
        graph = back;
        passes += 1;
        busy += took;
        if passes % 10 == 0 {
            tracing::info!(
                passes,
                busy_ms = busy.as_millis() as u64,
                wall_ms = started.elapsed().as_millis() as u64,
                "benchmark filter load"
            );
        }
        records = batch(&mut rng, BENCH_FILTER_BATCH);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Accepts connections through the gate and runs each.
async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    host: actix::Addr<host::TransportHost>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, usually: wait a little rather than spin.
                tracing::warn!(%e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = shared.gate().admit(remote.ip(), shared.now());
        if let Err(refused) = admitted {
            tracing::debug!(%remote, %refused, "connection refused");
            drop(stream);
            continue;
        }
        let (shared, host) = (shared.clone(), host.clone());
        tokio::spawn(async move {
            conn::run(stream, remote, None, None, shared.clone(), host).await;
            shared.gate().release(remote.ip());
        });
    }
}
