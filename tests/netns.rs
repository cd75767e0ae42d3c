//! Five nodes in five network namespaces, each with its own address, over a network with
//! 50 ms of one-way delay and 1 % packet loss on every link: the put, `kill -9` and get of
//! the loopback test must work there too.
//!
//! The impairment is `tc netem`'s (delay every packet, drop some at random), applied by a
//! userspace switch: each namespace's only interface is a TUN device whose packets this
//! test reads, delays and drops (or not), and writes into the destination's device. It is
//! done here rather than with netem because kernels built without `CONFIG_NET_SCH_NETEM`
//! (this machine's, for one) cannot run netem at all; a TUN device works on any of them.
//!
//! The test needs root, `ip` (iproute2) and `/dev/net/tun`. Without them it says SKIPPED and
//! why, and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{put_kill_get, wait_until, Launch, Node};
use rand::{Rng, SeedableRng};

const NODES: usize = 5;
const DELAY: Duration = Duration::from_millis(50);
const LOSS: f64 = 0.01;
const PORT: u16 = 7420;

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The namespaces and the switch between them; dropping it stops the switch and deletes
/// the namespaces (and with them the devices).
struct Net {
    namespaces: Vec<String>,
    /// Packets and bytes handed on, and packets dropped.
    forwarded: Arc<AtomicU64>,
    forwarded_bytes: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn address(node: usize) -> String {
    format!("10.77.0.{}", node + 1)
}

/// Builds `NODES` namespaces, each with TUN device `cs0` at 10.77.0.(i+1)/24, and starts the
/// switch.
fn network() -> Result<Net, String> {
    let pid = std::process::id();
    let mut net = Net {
        namespaces: Vec::new(),
        forwarded: Arc::new(AtomicU64::new(0)),
        forwarded_bytes: Arc::new(AtomicU64::new(0)),
        dropped: Arc::new(AtomicU64::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
        threads: Vec::new(),
    };
    let mut devices = Vec::new();
    for node in 0..NODES {
        let ns = format!("cs-{pid}-{node}");
        ip(&["netns", "add", &ns])?;
        net.namespaces.push(ns.clone());
        // Made here, then moved into the namespace; the file descriptor stays ours.
        let name = format!("cst{pid}x{node}");
        let mut config = tun::Configuration::default();
        config.tun_name(&name);
        let device = tun::create(&config).map_err(|e| format!("TUN device: {e}"))?;
        ip(&["link", "set", &name, "netns", &ns])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["link", "set", &name, "name", "cs0"])?;
        inside(&[
            "addr",
            "add",
            &format!("{}/24", address(node)),
            "dev",
            "cs0",
        ])?;
        inside(&["link", "set", "cs0", "up"])?;
        devices.push(Arc::new(device));
    }

    // Readers: one per device. Each IPv4 packet for another node is dropped with
    // probability LOSS or handed on, due DELAY from now.
    let (wire, arrivals) = mpsc::channel::<(Instant, usize, Vec<u8>)>();
    for (node, device) in devices.iter().enumerate() {
        let (device, wire, stop) = (device.clone(), wire.clone(), net.stop.clone());
        let (forwarded, bytes, dropped) = (
            net.forwarded.clone(),
            net.forwarded_bytes.clone(),
            net.dropped.clone(),
        );
        net.threads.push(std::thread::spawn(move || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(node as u64);
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let Ok(len) = device.recv_timeout(&mut buf, Duration::from_millis(100)) else {
                    continue;
                };
                let packet = &buf[..len];
                if len < 20 || packet[0] >> 4 != 4 || packet[16..19] != [10, 77, 0] {
                    continue;
                }
                let to = usize::from(packet[19]).wrapping_sub(1);
                if to >= NODES {
                    continue;
                }
                if rng.gen_bool(LOSS) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                forwarded.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(len as u64, Ordering::Relaxed);
                let _ = wire.send((Instant::now() + DELAY, to, packet.to_vec()));
            }
        }));
    }
    drop(wire);
    // The wire: delivers each packet when it is due, in order of due time.
    let stop = net.stop.clone();
    net.threads.push(std::thread::spawn(move || {
        let mut queue: BinaryHeap<Reverse<InFlight>> = BinaryHeap::new();
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            while queue.peek().is_some_and(|Reverse((due, ..))| *due <= now) {
                if let Some(Reverse((_, _, to, packet))) = queue.pop() {
                    let _ = devices[to].send(&packet);
                }
            }
            let wait = queue
                .peek()
                .map_or(Duration::from_millis(50), |Reverse((due, ..))| {
                    due.saturating_duration_since(now)
                });
            match arrivals.recv_timeout(wait) {
                Ok((due, to, packet)) => {
                    seq += 1;
                    queue.push(Reverse((due, seq, to, packet)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }));
    Ok(net)
}

/// A packet on the wire: when it is due, a sequence number (ties keep arrival order), the
/// node it is for, and its bytes.
type InFlight = (Instant, u64, usize, Vec<u8>);

/// Why this machine cannot run the test, if it cannot.
fn unavailable() -> Option<String> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    let probe = format!("cs-probe-{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(format!("cannot create a network namespace ({e})")),
    }
}

#[test]
fn five_nodes_in_namespaces_over_a_delayed_lossy_network() {
    if let Some(reason) = unavailable() {
        eprintln!("SKIPPED five_nodes_in_namespaces_over_a_delayed_lossy_network: {reason}");
        return;
    }
    let net = network().unwrap();
    let launch = |node: usize| Launch {
        netns: Some(net.namespaces[node].clone()),
        listen: Some(format!("{}:{PORT}", address(node))),
        api: Some(format!("{}:7421", address(node))),
        bootstrap: if node == 0 {
            Vec::new()
        } else {
            vec![format!("{}:{PORT}", address(0)).parse().unwrap()]
        },
        ..Launch::default()
    };
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|node| Node::start(&format!("ns{node}"), &launch(node)))
        .collect();
    // The links really are slow: asking node 0's API from node 1's namespace takes two round
    // trips through the switch (TCP's handshake, then the request), at least 200 ms.
    let started = Instant::now();
    nodes[1].cli(&["node", "status", "--api", &nodes[0].url()]);
    let probe = started.elapsed();
    assert!(probe >= 4 * DELAY, "{probe:?}");
    wait_until(
        "every node to know the four others",
        Duration::from_secs(120),
        || {
            nodes
                .iter()
                .all(|node| node.status()["known_peers"].as_u64().unwrap() >= 4)
        },
    );
    put_kill_get(&mut nodes, 64 << 20, Duration::from_secs(600));
    // Three replicas out and one copy back in crossed the switch, and it dropped about 1 %.
    let forwarded = net.forwarded.load(Ordering::Relaxed);
    let dropped = net.dropped.load(Ordering::Relaxed);
    let bytes = net.forwarded_bytes.load(Ordering::Relaxed);
    eprintln!(
        "switch: {forwarded} packets ({bytes} bytes) handed on, {dropped} dropped, in {:.1} s; \
         an API call across it took {probe:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(bytes >= 4 * (64 << 20), "{bytes}");
    let ratio = dropped as f64 / (forwarded + dropped) as f64;
    assert!((0.007..0.013).contains(&ratio), "{ratio}");
    drop(nodes);
    drop(net);
}
