//! `cryptosphere-sim bench`: the kernel's own event rate against a bare `BinaryHeap` loop of
//! the same shape, measured in the same process: 1,000 peers, 10,000 events in flight, one
//! small message per event and one reply per event.
//!
//! The kernel side runs trivial actors through everything the simulator's hot path uses: the
//! (time, sequence) event queue, a per-peer seeded RNG, the actor [`Context`] and [`Outbox`],
//! frames with their encoded sizes, and the trace digest.

// This module measures wall time: it is host code, the one place a clock belongs.
#![allow(clippy::disallowed_methods)]

use std::collections::BinaryHeap;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use cryptosphere::kernel::{
    ActorKind, Context, Frame, Input, Outbox, PeerId, Request, Response, RouteRequest,
    StoreResponse, Time,
};

use crate::queue::EventQueue;

pub const PEERS: usize = 1_000;
pub const IN_FLIGHT: usize = 10_000;
const LATENCY_US: u64 = 20_000;

/// Measured rates, events per second.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    pub events: u64,
    pub bare_events_per_s: f64,
    pub kernel_events_per_s: f64,
}

/// One event of the bare loop: when, in what order, and a small message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BareEvent {
    at: u64,
    seq: u64,
    to: u32,
    from: u32,
    id: u64,
    kind: u8,
}

impl PartialOrd for BareEvent {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for BareEvent {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The bare loop: a `BinaryHeap` of events carrying a small message; handling an event means
/// answering it with one reply to a random peer (xorshift), as the kernel loop does.
fn bare(events: u64) -> f64 {
    let mut heap: BinaryHeap<BareEvent> = BinaryHeap::with_capacity(IN_FLIGHT * 2);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seq = 0;
    for i in 0..IN_FLIGHT as u64 {
        seq += 1;
        let (to, from) = ((i % PEERS as u64) as u32, ((i * 7) % PEERS as u64) as u32);
        heap.push(BareEvent {
            at: next() % 1_000,
            seq,
            to,
            from,
            id: i,
            kind: 1,
        });
    }
    let mut checksum = 0u64;
    let start = Instant::now();
    for _ in 0..events {
        let Some(event) = heap.pop() else { break };
        checksum = checksum.wrapping_add(u64::from(event.to) ^ event.id);
        let reply = BareEvent {
            at: event.at + LATENCY_US + next() % 1_000,
            seq: {
                seq += 1;
                seq
            },
            to: (next() % PEERS as u64) as u32,
            from: event.to,
            id: event.id,
            kind: 3 - event.kind,
        };
        heap.push(reply);
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    events as f64 / elapsed
}

/// A trivial actor: answers every request with a one-byte response.
struct Echo;

impl Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        match input {
            Input::Wire {
                from,
                frame: Frame::Request { id, .. },
            } => ctx.wire(
                from,
                Frame::Response {
                    id,
                    body: Response::Store(StoreResponse::Stored),
                },
            ),
            Input::Wire {
                from,
                frame: Frame::Response { id, .. },
            } => ctx.wire(
                from,
                Frame::Request {
                    id,
                    body: Request::Route(RouteRequest::Hello { listen: None }),
                },
            ),
            _ => {}
        }
    }
}

struct Delivery {
    to: u32,
    from: u32,
    frame: Frame,
}

fn kernel(events: u64) -> f64 {
    let ids: Vec<PeerId> = (0..PEERS as u64)
        .map(|i| {
            PeerId(
                Sha256::new()
                    .chain_update(b"bench")
                    .chain_update(i.to_le_bytes())
                    .finalize()
                    .into(),
            )
        })
        .collect();
    let mut rngs: Vec<ChaCha8Rng> = (0..PEERS as u64).map(ChaCha8Rng::seed_from_u64).collect();
    let mut actors: Vec<Echo> = (0..PEERS).map(|_| Echo).collect();
    let mut queue: EventQueue<Delivery> = EventQueue::with_capacity(IN_FLIGHT * 2);
    let mut net = ChaCha8Rng::seed_from_u64(7);
    for i in 0..IN_FLIGHT {
        let (to, from) = ((i % PEERS) as u32, ((i * 7) % PEERS) as u32);
        queue.push(
            Time(net.gen_range(0..1_000)),
            Delivery {
                to,
                from,
                frame: Frame::Request {
                    id: i as u64,
                    body: Request::Route(RouteRequest::Hello { listen: None }),
                },
            },
        );
    }
    let mut outbox = Outbox::default();
    let mut digest = Sha256::new();
    let mut bytes = 0u64;
    let start = Instant::now();
    for _ in 0..events {
        let Some((now, delivery)) = queue.pop() else {
            break;
        };
        let to = delivery.to as usize;
        outbox.clear();
        let mut record = [0u8; 14];
        record[..8].copy_from_slice(&now.micros().to_le_bytes());
        record[8..12].copy_from_slice(&delivery.to.to_le_bytes());
        record[13] = delivery.frame.kind_code();
        digest.update(record);
        let mut ctx = Context::new(
            now,
            ids[to],
            ActorKind::Transport,
            &mut rngs[to],
            &mut outbox,
        );
        actors[to].handle(
            &mut ctx,
            Input::Wire {
                from: ids[delivery.from as usize],
                frame: delivery.frame,
            },
        );
        for (_, frame) in outbox.effects().wire.drain(..) {
            bytes += frame.encoded_len();
            let target = net.gen_range(0..PEERS as u32);
            queue.push(
                now.plus(LATENCY_US + net.gen_range(0..1_000)),
                Delivery {
                    to: target,
                    from: delivery.to,
                    frame,
                },
            );
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::hint::black_box((digest.finalize(), bytes));
    events as f64 / elapsed
}

/// Runs both loops for `events` events each, alternating twice, and keeps each one's best.
pub fn run(events: u64) -> BenchResult {
    let mut bare_best: f64 = 0.0;
    let mut kernel_best: f64 = 0.0;
    for _ in 0..2 {
        bare_best = bare_best.max(bare(events));
        kernel_best = kernel_best.max(kernel(events));
    }
    BenchResult {
        events,
        bare_events_per_s: bare_best,
        kernel_events_per_s: kernel_best,
    }
}
