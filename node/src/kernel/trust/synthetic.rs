//! Synthetic service graphs for benchmarks: random services between numbered peers, as a
//! filter would read them off verified chains (signatures are never looked at by the graph).

use rand::Rng;

use crate::chain::{Outcome, Record, Role, Service, Transaction};

/// The id of synthetic peer `n` (no real key has it: its last 28 bytes are zero).
pub fn peer(n: u32) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

/// A provider's half of one storage service between two of `peers` random peers (or between
/// `with` and a random one, if given), agreed at `at` (microseconds, as `Transaction::time`).
pub fn service(rng: &mut impl Rng, peers: u32, at: u64, with: Option<[u8; 32]>) -> Record {
    let provider = rng.gen_range(0..peers);
    let mut requester = rng.gen_range(0..peers.saturating_sub(1).max(1));
    if requester >= provider {
        requester += 1;
    }
    let (owner, counterparty) = match with {
        Some(with) if rng.gen_bool(0.5) => (with, peer(provider)),
        Some(with) => (peer(provider), with),
        None => (peer(provider), peer(requester)),
    };
    Record {
        owner,
        seq: 1,
        prev: [0; 32],
        counterparty,
        counterparty_seq: 1,
        role: Role::Provider,
        tx: Transaction {
            service: Service::ChunkStored,
            bytes: 1 << 20,
            creds: rng.gen_range(1..16u64) << 20,
            seconds: 86_400,
            time: at,
            outcome: Outcome::Delivered,
            commitment: [0; 32],
        },
        owner_sig: [0; 64],
        counterparty_sig: [0; 64],
    }
}
