//! Real nodes on loopback: five processes, a 64 MiB put on one, `kill -9` of it once the
//! file is replicated, and a byte-identical get through a node that held none of it. Also
//! the node's command-line contract: graceful shutdown, status, metrics, bad requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{cli, random_file, wait_until, Launch, Node};

fn five_nodes() -> Vec<Node> {
    let a = Node::start("A", &Launch::default());
    let mut nodes = vec![a];
    for name in ["B", "C", "D", "E"] {
        let launch = Launch {
            bootstrap: vec![nodes[0].listen],
            ..Launch::default()
        };
        nodes.push(Node::start(name, &launch));
    }
    // Everyone learns everyone through A's introductions and gossip.
    wait_until(
        "every node to know the four others",
        Duration::from_secs(60),
        || {
            nodes
                .iter()
                .all(|node| node.status()["known_peers"].as_u64().unwrap() >= 4)
        },
    );
    nodes
}

#[test]
fn five_nodes_survive_the_publisher_being_killed() {
    let work = tempfile::tempdir().unwrap();
    let mut nodes = five_nodes();
    let file = work.path().join("random-64m");
    let content = random_file(&file, 64 << 20, 4);
    let cap = cli(&["put", "--api", &nodes[0].url(), file.to_str().unwrap()]);
    assert!(cap.starts_with("cs:r:"), "{cap}");

    let mut owned = 0;
    wait_until(
        "A's chunks to reach 3 holders each",
        Duration::from_secs(120),
        || {
            let status = nodes[0].status();
            owned = status["chunks_owned"].as_u64().unwrap();
            owned > 0 && status["chunks_replicated"].as_u64().unwrap() == owned
        },
    );
    let held: Vec<u64> = nodes[1..]
        .iter()
        .map(|node| node.status()["bytes_held_for_others"].as_u64().unwrap())
        .collect();
    assert_eq!(
        held.iter().filter(|&&bytes| bytes > 0).count(),
        3,
        "{held:?}"
    );
    // The holders announced the root: peers close to its id keep provider records.
    wait_until(
        "provider records for the root",
        Duration::from_secs(60),
        || {
            nodes
                .iter()
                .map(|node| node.status()["provider_records"].as_u64().unwrap())
                .sum::<u64>()
                >= 3
        },
    );
    nodes[0].kill_9();

    // Get through the node that holds none of it, so every chunk crosses the network.
    let getter = nodes[1..]
        .iter()
        .find(|node| node.status()["bytes_held_for_others"].as_u64().unwrap() == 0)
        .unwrap();
    let out = work.path().join("got");
    cli(&[
        "get",
        "--api",
        &getter.url(),
        &cap,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&out).unwrap() == content,
        "the file came back different"
    );
    let status = getter.status();
    assert_eq!(status["fetches_ok"].as_u64().unwrap(), 1);
    // Every chunk of the tree now sits in the getter's store, fetched from B, C and D.
    assert_eq!(status["chunks_held"].as_u64().unwrap(), owned, "{status}");
}

#[test]
fn a_node_shuts_down_cleanly_and_answers_bad_requests_with_reasons() {
    let mut node = Node::start("solo", &Launch::default());
    let metrics = node.metrics();
    for name in [
        "connected_peers",
        "chunks_owned",
        "wire_bytes_in_total",
        "bytes_held_for_others",
    ] {
        assert!(
            metrics.contains(&format!("\ncryptosphere_{name} ")),
            "{name}: {metrics}"
        );
    }
    let status = node.status();
    assert_eq!(status["peer"].as_str().unwrap(), node.peer);
    assert_eq!(status["listen"].as_str().unwrap(), node.listen.to_string());

    let bad = ureq::get(&format!("{}/v1/objects/cs:r:nonsense", node.url())).call();
    match bad {
        Err(ureq::Error::Status(400, response)) => {
            let text = response.into_string().unwrap();
            assert!(text.contains("capability"), "{text}");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // A capability no peer can serve: the node says so instead of hanging or lying.
    let unknown = format!("cs:r:{}:{}", "a".repeat(52), "a".repeat(52));
    match ureq::get(&format!("{}/v1/objects/{unknown}", node.url())).call() {
        Err(ureq::Error::Status(502, _)) => {}
        other => panic!("expected 502, got {other:?}"),
    }

    let status = node.terminate();
    assert!(status.success(), "{status:?}");
    assert!(node.log().contains("store flushed"), "{}", node.log());
}
