//! A peer: the four actors and the routing of messages between them. Hosts hand a peer one
//! input at a time; the messages its actors send each other are delivered within the same
//! step, in order, and every delivery is recorded in the outbox's trace.

use ed25519_dalek::SigningKey;
use rand_chacha::ChaCha8Rng;

use super::chains::Chains;
use super::negotiator::Negotiator;
use super::reputation::Reputation;
use super::storage::StoreActor;
use super::transport::Transport;
use super::{ActorKind, Context, Directory, Input, KernelConfig, Outbox, PeerId, Time};
use crate::store::Store;

/// Local messages one step may deliver before the peer is considered to be looping.
const LOCAL_DELIVERIES_MAX: usize = 1 << 20;

/// One peer: transport, store, negotiator and reputation filter.
#[derive(Debug)]
pub struct Peer {
    id: PeerId,
    pub transport: Transport,
    pub store: StoreActor,
    pub negotiator: Negotiator,
    pub reputation: Reputation,
}

/// The name of a trace code of [`input_code`] (`"?"` for a code none gives), for profiles
/// of where a run's events go.
pub fn input_kind_name(code: u8) -> &'static str {
    match code {
        1 => "wire Hello",
        2 => "wire Store",
        3 => "wire Fetch",
        4 => "wire Check",
        5 => "wire Agree",
        6 => "wire Countersign",
        7 => "wire ChainRange",
        8 => "wire Fork",
        9 => "wire FindNode",
        10 => "wire GetProviders",
        11 => "wire Welcome",
        12 => "wire Stored",
        13 => "wire Refused",
        14 => "wire Chunk",
        15 => "wire NotFound",
        16 => "wire Holding",
        17 => "wire ChainAccepted",
        19 => "wire Records",
        20 => "wire Noted/Added",
        21 => "wire AddProvider",
        22 => "wire Nodes",
        23 => "wire Providers",
        24 => "wire Propose",
        25 => "wire End",
        26 => "wire Accepted",
        27 => "wire Countered",
        28 => "wire Ended",
        29 => "wire Audit",
        30 => "wire Proofs",
        31 => "local Send",
        32 => "local Done",
        33 => "local Incoming",
        34 => "local Respond",
        35 => "local PeersKnown",
        36 => "local Observe",
        37 => "local Standing",
        38 => "local KeepOwn",
        39 => "local Read",
        40 => "local ReadDone",
        41 => "local Directory",
        42 => "local Served",
        43 => "local FindProviders",
        44 => "local Found",
        45 => "local Provide",
        46 => "local Grant",
        47 => "local Usage",
        48 => "local Unprovide",
        49 => "local Strangers",
        50 => "start",
        51 => "timer",
        52 => "command",
        53 => "link",
        54 => "wire Lost",
        55 => "wire NotedLost",
        56 => "local Reachable",
        _ => "?",
    }
}

/// A code for the trace: which kind of input an actor received.
fn input_code(input: &Input) -> u8 {
    match input {
        Input::Start { .. } => 50,
        Input::Local(local) => local.kind_code(),
        Input::Wire { frame, .. } => frame.kind_code(),
        Input::Timer { .. } => 51,
        Input::Command(_) => 52,
        Input::Link(_) => 53,
    }
}

impl Peer {
    /// A peer whose identity is `key` (its id is the public key).
    pub fn new(key: SigningKey, config: KernelConfig, store: Store) -> Peer {
        let id = PeerId(key.verifying_key().to_bytes());
        let chains = config
            .chain_record_interval_us
            .map(|interval| Chains::new(key, &config, interval, store.clone()));
        Peer {
            id,
            transport: Transport::new(config.clone(), id, store.clone()),
            negotiator: Negotiator::new(config.clone(), store.clone()),
            store: StoreActor::new(store, &config),
            reputation: Reputation::new(chains, config.trust.clone()),
        }
    }

    /// The same peer after a restart that lost its memory and kept its disk (a process
    /// killed and started again): every actor is made anew from `config` and the disk, and
    /// rebuilds at its next start what it saved there (what it published, its contracts,
    /// what it holds for others; its chain is read back at once).
    pub fn reboot(&mut self, key: SigningKey, config: KernelConfig) {
        let placeholder = StoreActor::new(Store::memory(), &config);
        let (disk, synthetic) = std::mem::replace(&mut self.store, placeholder).into_disk();
        *self = Peer::new(key, config, disk);
        self.store.set_synthetic(synthetic);
    }

    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The four actors, for a host that runs each on its own (the node). It must start them
    /// as [`Peer::start`] does: the negotiator, the transport, the reputation filter, then
    /// the store if it [wants to start](StoreActor::wants_start).
    pub fn into_parts(self) -> (PeerId, Transport, StoreActor, Negotiator, Reputation) {
        (
            self.id,
            self.transport,
            self.store,
            self.negotiator,
            self.reputation,
        )
    }

    /// (Re)starts every actor, telling the transport of the peers it may contact.
    pub fn start(&mut self, now: Time, peers: Directory, rng: &mut ChaCha8Rng, out: &mut Outbox) {
        self.step(
            ActorKind::Negotiator,
            Input::Start {
                peers: Directory::from(Vec::new()),
            },
            now,
            rng,
            out,
        );
        self.step(ActorKind::Transport, Input::Start { peers }, now, rng, out);
        let restart = Input::Start {
            peers: Directory::from(Vec::new()),
        };
        self.step(ActorKind::Reputation, restart.clone(), now, rng, out);
        // The store starts only to announce the roots it holds (its pins), after the
        // transport has started, or to set a traitor's defection; a store with neither
        // (nearly every simulated one) has nothing to do, and is not stepped.
        if self.store.wants_start() {
            self.step(ActorKind::Store, restart, now, rng, out);
        }
    }

    /// Delivers `input` to `actor`, then every local message that follows from it.
    pub fn step(
        &mut self,
        actor: ActorKind,
        input: Input,
        now: Time,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) {
        self.deliver(actor, input, now, rng, out);
        let mut delivered = 0;
        while let Some((actor, message)) = out.local.pop_front() {
            delivered += 1;
            if delivered > LOCAL_DELIVERIES_MAX {
                // A bug guard, never reached by design (every fan-out is bounded): rather than
                // spin or crash the host, drop the rest of this step's local messages.
                debug_assert!(false, "actors of {:?} are looping", self.id);
                out.local.clear();
                break;
            }
            self.deliver(actor, Input::Local(message), now, rng, out);
        }
    }

    fn deliver(
        &mut self,
        actor: ActorKind,
        input: Input,
        now: Time,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) {
        out.effects().trace.push((actor, input_code(&input)));
        let mut ctx = Context::new(now, self.id, actor, rng, out);
        match actor {
            ActorKind::Transport => self.transport.handle(&mut ctx, input),
            ActorKind::Store => self.store.handle(&mut ctx, input),
            ActorKind::Negotiator => self.negotiator.handle(&mut ctx, input),
            ActorKind::Reputation => self.reputation.handle(&mut ctx, input),
        }
    }
}
