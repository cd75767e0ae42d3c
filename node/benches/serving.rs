//! Benchmark of the node's four actors (`cargo bench -p cryptosphere-node --bench serving`):
//! one node serves an object to four fetchers at once, against one fetcher, with its
//! reputation filter idle and then working flat out (`node run --bench-filter-load`: pass
//! after pass over a graph of 10,000 peers and 100,000 services, on the filter's own thread).
//! Real node processes on loopback, Noise on, data directories on tmpfs. It reports each
//! case's aggregate rate, the holder's CPU time per GiB served, the filter's passes during
//! the fetches, and the deepest each mailbox of the holder got.
//!
//! The holder runs at `--altruism 1`, so it serves strangers without limit (at the default
//! altruism a stranger's bandwidth allowance is smaller than the object).
//!
//! `CRYPTOSPHERE_BENCH_MIB` (default 256) is the object's size, `CRYPTOSPHERE_BENCH_RUNS`
//! (default 3) the runs of each case, of which the median rate is kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{env_or, random_file, wait_until, Launch, Node};

/// Clock ticks per second of /proc's CPU times.
const TICKS_PER_S: f64 = 100.0;

fn launch(dir: &Path, bootstrap: Vec<std::net::SocketAddr>, extra: &[&str]) -> Launch {
    Launch {
        data_in: Some(dir.to_path_buf()),
        bootstrap,
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Launch::default()
    }
}

/// The filter's passes and busy milliseconds so far, from the holder's last log line of
/// its load (0, 0 before the first).
fn filter_work(holder: &Node) -> (u64, u64) {
    let log = holder.log();
    let Some(line) = log
        .lines()
        .rev()
        .find(|l| l.contains("benchmark filter load"))
    else {
        return (0, 0);
    };
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("passes"), field("busy_ms"))
}

/// (Re)starts the holder with `flags`, and waits until it is idle or, with `load`, its
/// filter has made its first passes.
fn start_holder(holder: &mut Node, work: &Path, flags: &[&str], load: bool) {
    let lines = |holder: &Node| holder.log().matches("benchmark filter load").count();
    let earlier = lines(holder);
    holder.restart(&launch(work, Vec::new(), flags));
    if load {
        wait_until(
            "the filter's first passes",
            Duration::from_secs(120),
            || lines(holder) > earlier,
        );
    } else {
        holder.wait_idle(Duration::from_secs(60));
    }
}

/// The deepest each mailbox of `node` got, from its metrics.
fn mailbox_depths(node: &Node) -> String {
    node.metrics()
        .lines()
        .filter(|l| l.starts_with("cryptosphere_mailbox_depth_max{"))
        .map(|l| {
            let actor = l.split('"').nth(1).unwrap_or("?");
            let value = l.rsplit(' ').next().unwrap_or("?");
            format!("{actor} {value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `fetchers` fresh nodes fetch the object at once; returns the wall seconds until the
/// last has it and the holder's CPU seconds meanwhile.
fn serve(work: &Path, holder: &Node, cap: &str, fetchers: usize) -> (f64, f64) {
    let nodes: Vec<Node> = (0..fetchers)
        .map(|i| {
            Node::start(
                &format!("fetcher-{i}"),
                &launch(work, vec![holder.listen], &[]),
            )
        })
        .collect();
    for node in &nodes {
        wait_until(
            "a fetcher to meet the holder",
            Duration::from_secs(30),
            || node.status()["known_peers"].as_u64().unwrap() >= 1,
        );
    }
    let cpu = holder.cpu_ticks();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for node in &nodes {
            scope.spawn(move || {
                ureq::put(&format!("{}/v1/pins/{cap}", node.url()))
                    .timeout(Duration::from_secs(600))
                    .call()
                    .unwrap();
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = (holder.cpu_ticks() - cpu) as f64 / TICKS_PER_S;
    for node in &nodes {
        let status = node.status();
        assert_eq!(status["fetches_ok"].as_u64().unwrap(), 1, "{status}");
    }
    (wall, cpu)
}

fn main() {
    let mib = env_or("CRYPTOSPHERE_BENCH_MIB", 256);
    let runs = env_or("CRYPTOSPHERE_BENCH_RUNS", 3).max(1);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let work = tempfile::tempdir_in(PathBuf::from("/dev/shm")).unwrap();
    let input = work.path().join("input");
    random_file(&input, mib << 20, 2);
    let gib = mib as f64 / 1024.0;

    // The object is put into the holder's directory while it is stopped, so the holder
    // pins and announces it at its start but places no replica of it on the fetchers.
    let mut holder = Node::start("holder", &launch(work.path(), Vec::new(), &[]));
    assert!(holder.terminate().success());
    let cap = common::cli(&[
        "--data-dir",
        holder.dir.to_str().unwrap(),
        "put",
        input.to_str().unwrap(),
    ]);
    std::fs::remove_file(&input).unwrap();

    let mut rates = Vec::new();
    for load in [false, true] {
        let flags: &[&str] = if load {
            &["--altruism", "1", "--bench-filter-load"]
        } else {
            &["--altruism", "1"]
        };
        let filter = if load { "working" } else { "idle" };
        for fetchers in [1, 4] {
            let mut runs_of_case = Vec::new();
            for _ in 0..runs {
                // A fresh holder each run: what it learned of earlier fetchers (strangers
                // that took and gave nothing) would make it stingier with the next.
                start_holder(&mut holder, work.path(), flags, load);
                let before = filter_work(&holder);
                let (wall, cpu) = serve(work.path(), &holder, &cap, fetchers);
                let after = filter_work(&holder);
                let served = fetchers as f64 * gib;
                let rate = served * 1024.0 / wall;
                let filter_note = if load {
                    format!(
                        "; the filter made about {} passes meanwhile ({:.0} % of its thread)",
                        after.0 - before.0,
                        100.0 * (after.1 - before.1) as f64 / 1e3 / wall
                    )
                } else {
                    String::new()
                };
                println!(
                    "filter {filter}, {fetchers} fetcher(s): {:.0} MiB served in {wall:.2} s = \
                     {rate:.0} MiB/s; holder CPU {:.2} s per GiB served{filter_note}",
                    served * 1024.0,
                    cpu / served,
                );
                runs_of_case.push(rate);
                if fetchers == 4 {
                    println!("  holder's deepest mailboxes: {}", mailbox_depths(&holder));
                }
                assert!(holder.terminate().success());
            }
            runs_of_case.sort_by(f64::total_cmp);
            rates.push(((load, fetchers), runs_of_case[runs_of_case.len() / 2]));
        }
    }
    let rate = |case| {
        rates
            .iter()
            .find(|(c, _)| *c == case)
            .map_or(f64::NAN, |(_, r)| *r)
    };
    let medians: Vec<String> = rates
        .iter()
        .map(|((load, n), r)| {
            let filter = if *load { "working" } else { "idle" };
            format!("filter {filter}, {n} fetcher(s) {r:.0} MiB/s")
        })
        .collect();
    println!("medians: {}", medians.join("; "));
    println!(
        "four fetchers against one: {:.2}× with the filter idle, {:.2}× with it working; \
         the working filter leaves {:.0} % of the idle rate to one fetcher and {:.0} % to four",
        rate((false, 4)) / rate((false, 1)),
        rate((true, 4)) / rate((true, 1)),
        100.0 * rate((true, 1)) / rate((false, 1)),
        100.0 * rate((true, 4)) / rate((false, 4)),
    );
}
