//! Criterion benchmark of the reputation filter: recomputing one peer's scores (two-hop
//! flows and personalised rank) over a service graph of 10,000 peers and 100,000 services,
//! from cold and after 1 % more services arrived (the rank starts from the last result).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use cryptosphere::chain::Record;
use cryptosphere::kernel::trust::{synthetic, Trust, TrustConfig};
use cryptosphere::kernel::{PeerId, Time};
use rand::{Rng, SeedableRng};

const NODES: u32 = 10_000;
const EDGES: usize = 100_000;

fn id(n: u32) -> [u8; 32] {
    synthetic::peer(n)
}

fn service(rng: &mut impl Rng, at: u64) -> Record {
    synthetic::service(rng, NODES, at, None)
}

fn graph(rng: &mut impl Rng) -> Trust {
    let mut trust = Trust::new(TrustConfig::default());
    for _ in 0..EDGES {
        let record = service(rng, Time::HOUR);
        trust.add(&record);
    }
    trust
}

fn recompute(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
    let base = graph(&mut rng);
    let me = PeerId(id(0));
    let now = Time(2 * Time::HOUR);
    println!(
        "graph: {} nodes, {} edges",
        base.graph().nodes(),
        base.graph().edges()
    );
    let mut group = c.benchmark_group("trust");
    group.sample_size(10);
    group.bench_function("recompute_cold_10k_nodes_100k_edges", |b| {
        b.iter_batched(
            || base.clone(),
            |mut trust| {
                trust.recompute(me, now, &|_| 0.5);
                trust.last_iterations
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let mut warm = base.clone();
    warm.recompute(me, now, &|_| 0.5);
    println!("cold: {} iterations", warm.last_iterations);
    for _ in 0..EDGES / 100 {
        let record = service(&mut rng, 2 * Time::HOUR);
        warm.add(&record);
    }
    group.bench_function("recompute_warm_after_1pct_new_edges", |b| {
        b.iter_batched(
            || warm.clone(),
            |mut trust| {
                trust.recompute(me, now, &|_| 0.5);
                trust.last_iterations
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let mut again = warm.clone();
    again.recompute(me, now, &|_| 0.5);
    println!("warm: {} iterations", again.last_iterations);
    group.finish();
}

criterion_group!(benches, recompute);
criterion_main!(benches);
