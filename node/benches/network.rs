//! Network benchmarks of real node processes (`cargo bench -p cryptosphere-node --bench
//! network`):
//! - fetching a 1 GiB object from one peer over loopback, Noise on, RocksDB on tmpfs at both
//!   ends, against this machine's single-core SHA-256 speed (`openssl speed -evp sha256`,
//!   1 MiB blocks) measured in the same run (target: at least 25 %);
//! - the resident memory of a node holding 1,000 authenticated connections (target: under
//!   500 MiB).
//!
//! `CRYPTOSPHERE_BENCH_MIB` (default 1024) and `CRYPTOSPHERE_BENCH_RUNS` (default 3) change
//! the object size and the number of runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{client_handshake, env_or, random_file, wait_until, Launch, Node};

const CONNECTIONS: usize = 1_000;

/// Single-core SHA-256 speed in bytes/s, from openssl with 1 MiB blocks.
fn sha256_speed() -> f64 {
    let output = std::process::Command::new("openssl")
        .args([
            "speed", "-evp", "sha256", "-bytes", "1048576", "-seconds", "3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("sha256"))
        .unwrap();
    let last = line.split_whitespace().last().unwrap();
    last.trim_end_matches('k').parse::<f64>().unwrap() * 1000.0
}

fn tmpfs_launch(dir: &Path, bootstrap: Vec<std::net::SocketAddr>) -> Launch {
    Launch {
        data_in: Some(dir.to_path_buf()),
        bootstrap,
        // The bench's own log level: info lines are rare, a debug line per chunk is not.
        ..Launch::default()
    }
}

/// One run: a holder with the object, a fresh fetcher. Returns the seconds the fetcher took
/// to fetch the object into its store (`PUT /v1/pins/{cap}`), and then to stream it to a
/// file through `cryptosphere get --api`.
fn fetch_run(work: &Path, input: &Path, cap: &mut Option<String>) -> (f64, f64) {
    let holder = Node::start("holder", &tmpfs_launch(work, Vec::new()));
    let put = holder.cli(&["put", "--api", &holder.url(), input.to_str().unwrap()]);
    if let Some(previous) = cap {
        assert_eq!(
            previous, &put,
            "convergent encryption gives the same capability"
        );
    }
    *cap = Some(put.clone());
    // The holder's store settles (memtable flushes, compactions) before anything is timed.
    holder.wait_idle(Duration::from_secs(60));
    let fetcher = Node::start("fetcher", &tmpfs_launch(work, vec![holder.listen]));
    wait_until(
        "the fetcher to meet the holder",
        Duration::from_secs(30),
        || fetcher.status()["known_peers"].as_u64().unwrap() >= 1,
    );
    fetcher.wait_idle(Duration::from_secs(60));
    let output = work.join("output");
    let _ = std::fs::remove_file(&output);
    let started = Instant::now();
    ureq::put(&format!("{}/v1/pins/{put}", fetcher.url()))
        .call()
        .unwrap();
    let fetch = started.elapsed().as_secs_f64();
    let started = Instant::now();
    fetcher.cli(&[
        "get",
        "--api",
        &fetcher.url(),
        &put,
        "-o",
        output.to_str().unwrap(),
    ]);
    let stream = started.elapsed().as_secs_f64();
    let status = fetcher.status();
    assert_eq!(status["fetches_ok"].as_u64().unwrap(), 1, "{status}");
    assert!(
        files_equal(input, &output),
        "the fetched object differs from the input"
    );
    (fetch, stream)
}

fn files_equal(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        let m = b.read(&mut y).unwrap();
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

/// An authenticated connection to `node`, as a peer would hold one.
fn connect(node: &Node, seed: [u8; 32]) -> TcpStream {
    let mut stream = TcpStream::connect(node.listen).unwrap();
    client_handshake(&mut stream, seed);
    stream
}

fn main() {
    let mib = env_or("CRYPTOSPHERE_BENCH_MIB", 1024);
    let runs = env_or("CRYPTOSPHERE_BENCH_RUNS", 3);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let shm = PathBuf::from("/dev/shm");
    let work = tempfile::tempdir_in(&shm).unwrap();
    let input = work.path().join("input");
    random_file(&input, mib << 20, 1);
    let bytes = (mib << 20) as f64;

    let sha = sha256_speed();
    println!(
        "openssl sha256: {:.3} GB/s (1 MiB blocks); 25 % of it is {:.0} MB/s",
        sha / 1e9,
        sha * 0.25 / 1e6
    );
    let mut cap = None;
    let (mut rates, mut whole) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let (fetch, stream) = fetch_run(work.path(), &input, &mut cap);
        let rate = bytes / fetch;
        println!(
            "run {run}: fetched {mib} MiB from one peer in {fetch:.2} s = {:.0} MB/s = {:.0} % of \
             sha256; streamed it to a file in {stream:.2} s more ({:.0} MB/s from request to file)",
            rate / 1e6,
            100.0 * rate / sha,
            bytes / (fetch + stream) / 1e6,
        );
        rates.push(rate);
        whole.push(bytes / (fetch + stream));
    }
    rates.sort_by(f64::total_cmp);
    whole.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "median fetch: {:.0} MB/s = {:.0} % of single-core sha256 (target: at least 25 %); \
         fetch and stream: {:.0} MB/s = {:.0} %",
        median / 1e6,
        100.0 * median / sha,
        whole[whole.len() / 2] / 1e6,
        100.0 * whole[whole.len() / 2] / sha,
    );
    std::fs::remove_file(&input).unwrap();

    let node = Node::start(
        "crowded",
        &Launch {
            data_in: Some(shm.clone()),
            extra: [
                "--connections-max",
                "2000",
                "--connections-per-ip-max",
                "2000",
            ]
            .map(String::from)
            .to_vec(),
            ..Launch::default()
        },
    );
    let idle = node.rss_bytes();
    let started = Instant::now();
    let streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| connect(&node, seed_of(i)))
        .collect();
    wait_until(
        "the node to count every connection",
        Duration::from_secs(60),
        || node.status()["connected_peers"].as_u64().unwrap() as usize >= CONNECTIONS,
    );
    let crowded = node.rss_bytes();
    println!(
        "{CONNECTIONS} authenticated connections (made in {:.1} s): node RSS {:.0} MiB (idle: {:.0} MiB; target: under 500 MiB)",
        started.elapsed().as_secs_f64(),
        crowded as f64 / (1 << 20) as f64,
        idle as f64 / (1 << 20) as f64
    );
    drop(streams);
}

/// A distinct identity seed per connection.
fn seed_of(i: usize) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    seed
}
