//! A chain survives `kill -9` of the process appending to it: after the crash it is valid up
//! to its last complete record. The test re-runs its own binary as the appender.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::Duration;

use cryptosphere::chain::{log, verify_chain, Outcome, Record, Role, Service, Transaction};
use cryptosphere::store::Store;
use ed25519_dalek::SigningKey;

const APPENDER: &str = "CRYPTOSPHERE_CHAIN_APPENDER_DIR";

fn owner() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

/// Appends signed records to the chain in `dir` until killed.
fn append_forever(dir: &str) {
    let (me, other) = (owner(), SigningKey::from_bytes(&[12; 32]));
    let store = Store::open_rocks(std::path::Path::new(dir)).unwrap();
    let mut head = log::head(&store, &me.verifying_key().to_bytes()).unwrap();
    loop {
        let seq = head.as_ref().map_or(1, |h| h.seq + 1);
        let mut record = Record {
            owner: me.verifying_key().to_bytes(),
            seq,
            prev: head.as_ref().map_or([0; 32], Record::hash),
            counterparty: other.verifying_key().to_bytes(),
            counterparty_seq: seq,
            role: Role::Provider,
            tx: Transaction {
                service: Service::ChunkStored,
                bytes: seq,
                creds: seq,
                seconds: 86_400,
                time: seq,
                outcome: Outcome::Delivered,
                commitment: [0; 32],
            },
            owner_sig: [0; 64],
            counterparty_sig: [0; 64],
        };
        record.owner_sig = record.sign(&me);
        record.counterparty_sig = record.sign(&other);
        log::append(&store, &record).unwrap();
        head = Some(record);
    }
}

#[test]
fn kill_9_while_appending_leaves_a_valid_chain() {
    if let Ok(dir) = std::env::var(APPENDER) {
        append_forever(&dir);
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data");
    let mut lengths = Vec::new();
    for delay_ms in [400u64, 800, 1200] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_while_appending_leaves_a_valid_chain",
                "--nocapture",
            ])
            .env(APPENDER, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the appender stopped by itself"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = Store::open_rocks(&dir).unwrap();
        let chain = log::read(&store, &owner().verifying_key().to_bytes(), 1, usize::MAX).unwrap();
        verify_chain(&chain).unwrap();
        lengths.push(chain.len());
    }
    // Each run continued the chain the previous kill left.
    assert!(lengths.windows(2).all(|w| w[0] < w[1]), "{lengths:?}");
    assert!(lengths[0] > 0, "{lengths:?}");
}
