//! Crash safety with a real process: `kill -9` a `cryptosphere put` at several points and
//! check that every earlier put stays fully readable and that no stored chunk fails its id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use cryptosphere::object::{Capability, Reader};
use cryptosphere::store::Store;
use rand::{RngCore, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_cryptosphere");

fn cryptosphere(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let output = cryptosphere(data, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn kill_9_during_put_loses_nothing_earlier_and_leaves_no_bad_chunk() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let mut earlier = Vec::new();
    for seed in 0..3 {
        let path = work.path().join(format!("early-{seed}"));
        let content = random_file(&path, 3_000_000 + seed as usize * 1000, seed);
        earlier.push((ok(&data, &["put", path.to_str().unwrap()]), content));
    }
    let big = work.path().join("big");
    let big_content = random_file(&big, 400 << 20, 99);

    let mut killed_mid_put = 0;
    for delay_ms in [30u64, 120, 250, 400, 600] {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(["put", big.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_mid_put += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // No stored chunk fails its id, every pin left behind reaches a whole tree, and
        // every earlier put is whole.
        ok(&data, &["verify", "--all"]);
        let store = Store::open_rocks(&data.join("store")).unwrap();
        for pin in store.pins().unwrap() {
            let check = Capability::Verify(cryptosphere::object::VerifyCap { id: pin });
            Reader::new(&store)
                .verify(&check)
                .unwrap_or_else(|e| panic!("pin {pin} after a kill at {delay_ms} ms: {e}"));
        }
        drop(store);
        for (index, (cap, content)) in earlier.iter().enumerate() {
            ok(&data, &["verify", cap]);
            let out = work.path().join(format!("out-{delay_ms}-{index}"));
            ok(&data, &["get", cap, "--output", out.to_str().unwrap()]);
            assert_eq!(
                &fs::read(&out).unwrap(),
                content,
                "earlier put {index} after a kill at {delay_ms} ms"
            );
        }
    }
    assert!(
        killed_mid_put >= 3,
        "only {killed_mid_put} kills landed during a put"
    );

    // The store still takes the interrupted file, whole.
    let cap = ok(&data, &["put", big.to_str().unwrap()]);
    let out = work.path().join("big-out");
    ok(&data, &["get", &cap, "--output", out.to_str().unwrap()]);
    assert!(fs::read(&out).unwrap() == big_content);
    ok(&data, &["verify", "--all"]);
}
