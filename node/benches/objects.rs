//! Criterion benchmarks of the object layer: one chunk's encryption and decryption, and
//! whole-file put and get through the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cryptosphere::object::crypto::{open, seal_chunk};
use cryptosphere::object::{Reader, WriteConfig, Writer};
use cryptosphere::store::Store;
use rand::{RngCore, SeedableRng};
use sha2::Digest;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut bytes);
    bytes
}

fn chunk(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk");
    let plaintext = random_bytes(1 << 20);
    group.throughput(Throughput::Bytes(plaintext.len() as u64));
    group.bench_function("sha256_1MiB", |b| {
        b.iter(|| sha2::Sha256::digest(&plaintext))
    });
    group.bench_function("encrypt_1MiB", |b| b.iter(|| seal_chunk(&plaintext, None)));
    let sealed = seal_chunk(&plaintext, None);
    group.bench_function("decrypt_1MiB", |b| {
        b.iter(|| open(&sealed.key, &sealed.stored, &[]).unwrap())
    });
    group.finish();
}

fn file(c: &mut Criterion) {
    let mut group = c.benchmark_group("file");
    group.sample_size(10);
    let content = random_bytes(64 << 20);
    group.throughput(Throughput::Bytes(content.len() as u64));
    group.bench_function(BenchmarkId::new("put_memory", "64MiB"), |b| {
        b.iter(|| {
            let store = Store::memory();
            let mut writer = Writer::new(&store, WriteConfig::default(), None);
            let (cap, _) = writer.put_file(&content[..], &mut |_| {}).unwrap();
            writer.finish(Some(cap)).unwrap();
        })
    });
    let store = Store::memory();
    let mut writer = Writer::new(&store, WriteConfig::default(), None);
    let (cap, _) = writer.put_file(&content[..], &mut |_| {}).unwrap();
    writer.finish(Some(cap)).unwrap();
    let mut out = Vec::with_capacity(content.len());
    group.bench_function(BenchmarkId::new("get_memory", "64MiB"), |b| {
        b.iter(|| {
            out.clear();
            Reader::new(&store)
                .copy_file(&cap, &mut out, &mut |_| {})
                .unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, chunk, file);
criterion_main!(benches);
