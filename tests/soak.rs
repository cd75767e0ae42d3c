//! Availability under churn: nodes on loopback, files put, then a node killed with `-9` and
//! restarted (with no bootstrap address: it dials the peers it knew) at a steady interval,
//! and the publishers killed at the end. Every file must then come back byte for byte
//! through every live node (all at once), unless no live node holds it whole (checked on
//! their data directories afterwards). The CI form is short (10 nodes, 4 files, 90 s, a kill
//! every 15 s); `CRYPTOSPHERE_SOAK=full` runs the full one by hand (30 nodes, 12 files, 10
//! minutes, a kill every 30 s). Figures are printed (`--nocapture`) and quoted in the README.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{random_file, wait_until, Launch, Node};
use rand::{Rng, SeedableRng};

struct Plan {
    nodes: usize,
    files: usize,
    churn: Duration,
    every: Duration,
}

fn plan() -> Plan {
    if std::env::var("CRYPTOSPHERE_SOAK").as_deref() == Ok("full") {
        Plan {
            nodes: 30,
            files: 12,
            churn: Duration::from_secs(600),
            every: Duration::from_secs(30),
        }
    } else {
        Plan {
            nodes: 10,
            files: 4,
            churn: Duration::from_secs(90),
            every: Duration::from_secs(15),
        }
    }
}

fn u64_of(node: &Node, key: &str) -> u64 {
    node.status()[key].as_u64().unwrap()
}

#[test]
fn files_survive_churn_and_come_back_through_every_live_node() {
    let plan = plan();
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut nodes = vec![Node::start("n0", &Launch::default())];
    for i in 1..plan.nodes {
        let launch = Launch {
            bootstrap: vec![nodes[0].listen, nodes[i - 1].listen],
            ..Launch::default()
        };
        nodes.push(Node::start(&format!("n{i}"), &launch));
    }
    let acquainted = (plan.nodes - 1).min(8) as u64;
    wait_until(
        "every node to know its peers",
        Duration::from_secs(120),
        || {
            nodes
                .iter()
                .all(|node| u64_of(node, "known_peers") >= acquainted)
        },
    );

    // One file on each of the first `files` nodes, 1 to 3 MiB.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(30);
    let mut files = Vec::new();
    for (i, publisher) in nodes.iter().take(plan.files).enumerate() {
        let path = work.path().join(format!("file{i}"));
        let len = rng.gen_range(1 << 20..3 << 20);
        let content = random_file(&path, len, 100 + i as u64);
        let cap = publisher.cli(&["put", "--api", &publisher.url(), path.to_str().unwrap()]);
        assert!(cap.starts_with("cs:r:"), "{cap}");
        files.push((cap, content));
    }
    wait_until(
        "every publisher's chunks to reach 3 holders",
        Duration::from_secs(300),
        || {
            nodes.iter().take(plan.files).all(|node| {
                let owned = u64_of(node, "chunks_owned");
                owned > 0 && u64_of(node, "chunks_replicated") == owned
            })
        },
    );
    let replicated_after = started.elapsed();

    // Churn: a random node (publishers included) killed with -9 and restarted on its
    // directory, with no bootstrap address.
    let churn_end = Instant::now() + plan.churn;
    let mut kills = 0;
    let mut lost_at_start = 0;
    while Instant::now() < churn_end {
        std::thread::sleep(plan.every);
        let victim = rng.gen_range(0..plan.nodes);
        nodes[victim].kill_9();
        nodes[victim].restart(&Launch::default());
        kills += 1;
        lost_at_start += u64_of(&nodes[victim], "chunks_lost_at_start");
    }
    for node in nodes.iter().skip(plan.files) {
        wait_until(
            "a live node to reconnect after the churn",
            Duration::from_secs(60),
            || u64_of(node, "connected_peers") >= 2,
        );
    }
    for publisher in nodes.iter_mut().take(plan.files) {
        publisher.kill_9();
    }

    // Every file through every live node, all live nodes at once (so that a file no live
    // node holds costs one fetch deadline, not one per node).
    let mut failures = Vec::new();
    let mut times = Vec::new();
    for (f, (cap, content)) in files.iter().enumerate() {
        let results: Vec<(String, Duration, Result<Vec<u8>, String>)> =
            std::thread::scope(|scope| {
                let gets: Vec<_> = nodes
                    .iter()
                    .skip(plan.files)
                    .map(|node| {
                        let url = format!("{}/v1/objects/{cap}", node.url());
                        let name = node.name.clone();
                        scope.spawn(move || {
                            let begun = Instant::now();
                            let got = common::get_body(&url, Duration::from_secs(180));
                            (name, begun.elapsed(), got)
                        })
                    })
                    .collect();
                gets.into_iter().map(|g| g.join().unwrap()).collect()
            });
        for (name, took, got) in results {
            times.push(took);
            match got {
                Ok(body) => assert!(
                    body == *content,
                    "file {f} came back different through {name}"
                ),
                Err(e) => failures.push((f, name, e)),
            }
        }
    }
    // Disks are kept: a restart finds everything it held for others.
    assert_eq!(
        lost_at_start, 0,
        "chunks held for others were lost at restarts"
    );
    // A get may fail only for a file no live node holds whole: look in their stores.
    for node in nodes.iter_mut().skip(plan.files) {
        assert!(
            node.terminate().success(),
            "{} did not stop cleanly",
            node.name
        );
    }
    let mut unheld = std::collections::BTreeSet::new();
    for (f, name, error) in &failures {
        let (cap, _) = &files[*f];
        let holders: Vec<&str> = nodes
            .iter()
            .skip(plan.files)
            .filter(|node| {
                common::command(None)
                    .args(["--data-dir"])
                    .arg(&node.dir)
                    .args(["verify", cap])
                    .output()
                    .unwrap()
                    .status
                    .success()
            })
            .map(|node| node.name.as_str())
            .collect();
        assert!(
            holders.is_empty(),
            "file {f} failed through {name} ({error}) while {holders:?} held it whole"
        );
        unheld.insert(*f);
    }

    let gets = files.len() * (plan.nodes - plan.files);
    times.sort();
    let p50 = times[times.len() / 2];
    let max = *times.last().unwrap();
    println!(
        "soak: {} nodes, {} files, replicated in {:.1} s, {kills} kills and restarts every {} s \
         for {} s, {lost_at_start} chunks found lost at restarts; {} of {gets} gets whole \
         through the {} live nodes (p50 {:.2} s, max {:.2} s); {} files held whole by no live \
         node (their publisher and holders all killed) {unheld:?}",
        plan.nodes,
        plan.files,
        replicated_after.as_secs_f64(),
        plan.every.as_secs(),
        plan.churn.as_secs(),
        gets - failures.len(),
        plan.nodes - plan.files,
        p50.as_secs_f64(),
        max.as_secs_f64(),
        unheld.len(),
    );
}
