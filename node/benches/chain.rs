//! Chain benchmarks (run with `cargo bench -p cryptosphere-node --bench chain`):
//! - verifying a 100,000-record chain against ed25519-dalek's batch verification of the same
//!   200,000 signatures, measured in the same run (target: at most 1.25 times);
//! - appending records whose signatures are already present to a RocksDB chain (target:
//!   50,000 records/s or more), and, as a peer appends its own, each one synced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::Instant;

use cryptosphere::chain::{log, verify_chain, Outcome, Record, Role, Service, Transaction};
use cryptosphere::store::Store;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

const RECORDS: u64 = 100_000;
const RUNS: usize = 3;

/// A valid chain for one owner, trading with 64 counterparties (signed directly: the
/// agreement protocol is tested elsewhere and would only slow the setup).
fn build() -> Vec<Record> {
    let me = SigningKey::from_bytes(&[1; 32]);
    let others: Vec<SigningKey> = (0..64u8)
        .map(|i| SigningKey::from_bytes(&[i + 2; 32]))
        .collect();
    let mut chain: Vec<Record> = Vec::with_capacity(RECORDS as usize);
    let mut prev = [0u8; 32];
    for seq in 1..=RECORDS {
        let other = &others[(seq % 64) as usize];
        let tx = Transaction {
            service: Service::ChunkStored,
            bytes: seq,
            creds: seq * 3,
            seconds: 86_400,
            time: seq,
            outcome: Outcome::Delivered,
            commitment: [0; 32],
        };
        let mut record = Record {
            owner: me.verifying_key().to_bytes(),
            seq,
            prev,
            counterparty: other.verifying_key().to_bytes(),
            counterparty_seq: seq,
            role: if seq % 2 == 0 {
                Role::Requester
            } else {
                Role::Provider
            },
            tx,
            owner_sig: [0; 64],
            counterparty_sig: [0; 64],
        };
        record.owner_sig = record.sign(&me);
        record.counterparty_sig = record.sign(other);
        prev = record.hash();
        chain.push(record);
    }
    chain
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    eprintln!("building a {RECORDS}-record chain...");
    let chain = build();

    // The baseline: ed25519-dalek's batch verification of exactly the chain's signatures,
    // with messages and keys prepared outside the timing.
    let messages: Vec<Vec<u8>> = chain.iter().map(Record::signed_message).collect();
    let mut message_refs: Vec<&[u8]> = Vec::new();
    let mut signatures = Vec::new();
    let mut keys = Vec::new();
    for (record, message) in chain.iter().zip(&messages) {
        for (key, signature) in [
            (&record.owner, &record.owner_sig),
            (&record.counterparty, &record.counterparty_sig),
        ] {
            message_refs.push(message);
            signatures.push(Signature::from_bytes(signature));
            keys.push(VerifyingKey::from_bytes(key).unwrap());
        }
    }
    let mut batch = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).unwrap();
        batch.push(start.elapsed().as_secs_f64());
        // Each run checks every signature (none remembered from the run before).
        cryptosphere::chain::signature::forget();
        let start = Instant::now();
        verify_chain(&chain).unwrap();
        whole.push(start.elapsed().as_secs_f64());
    }
    let (batch, whole) = (median(batch), median(whole));
    println!("verify {RECORDS} records: chain rules {whole:.3} s, bare batch verification {batch:.3} s, ratio {:.2} (target <= 1.25)", whole / batch);

    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_rocks(dir.path()).unwrap();
        let start = Instant::now();
        for record in &chain {
            log::append(&store, record).unwrap();
        }
        rates.push(RECORDS as f64 / start.elapsed().as_secs_f64());
    }
    println!("append {RECORDS} records to a RocksDB chain: {:.0} records/s (median of {RUNS}; target >= 50,000)", median(rates));

    // What a peer does with its own records: each one synced before its countersignature
    // leaves (a node appends one per agreement, seconds apart).
    const DURABLE: usize = 1_000;
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_rocks(dir.path()).unwrap();
        let start = Instant::now();
        for record in &chain[..DURABLE] {
            log::append_durable(&store, record).unwrap();
        }
        rates.push(DURABLE as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "append {DURABLE} records each synced (append_durable) in {}: {:.0} records/s (median of {RUNS})",
        std::env::temp_dir().display(),
        median(rates)
    );
}
