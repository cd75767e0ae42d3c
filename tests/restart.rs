//! Real nodes on loopback across restarts: a node killed with `-9` comes back knowing what it
//! published (and repairs it), what it holds for others, and whom it had contracts with; a
//! get goes on looking for a source within its deadline instead of answering 502 at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{random_file, wait_until, Launch, Node};

fn u64_of(node: &Node, key: &str) -> u64 {
    node.status()[key].as_u64().unwrap()
}

/// A get for data no peer serves yet keeps searching: the holder starts 5 s after the get
/// began, announces the root, and the get answers 200 with the right bytes (within the
/// 60 s deadline), where it used to answer 502 within milliseconds.
#[test]
fn a_get_retries_until_a_provider_comes() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("file");
    let content = random_file(&file, 3 << 20, 11);
    let mut holder = Node::start("holder", &Launch::default());
    let cap = holder.cli(&["put", "--api", &holder.url(), file.to_str().unwrap()]);
    assert!(holder.terminate().success());

    let getter = Node::start("getter", &Launch::default());
    let url = format!("{}/v1/objects/{cap}", getter.url());
    let started = Instant::now();
    let get = std::thread::spawn(move || common::get_body(&url, Duration::from_secs(120)));
    std::thread::sleep(Duration::from_secs(5));
    holder.restart(&Launch {
        bootstrap: vec![getter.listen],
        ..Launch::default()
    });
    let body = get.join().unwrap().unwrap_or_else(|e| {
        panic!(
            "the get failed ({e}); getter log:\n{}\nholder log:\n{}",
            getter.log(),
            holder.log()
        )
    });
    assert!(body == content, "the file came back different");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(5), "{took:?}");
    assert_eq!(u64_of(&getter, "fetches_ok"), 1);
}

/// With no source at all, the get answers 502 once its deadline (here 2 s) has passed.
#[test]
fn a_get_with_no_source_answers_502_after_its_deadline() {
    let launch = Launch {
        extra: vec!["--fetch-deadline-secs".into(), "2".into()],
        ..Launch::default()
    };
    let node = Node::start("solo", &launch);
    let unknown = format!("cs:r:{}:{}", "a".repeat(52), "a".repeat(52));
    let started = Instant::now();
    match ureq::get(&format!("{}/v1/objects/{unknown}", node.url()))
        .timeout(Duration::from_secs(60))
        .call()
    {
        Err(ureq::Error::Status(502, _)) => {}
        other => panic!("expected 502, got {other:?}"),
    }
    // Tried at 0, then 1 s later; the next try (2 s after that) would start past the
    // deadline, so the get fails with its second try.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(u64_of(&node, "fetches_failed"), 1);
}

/// The publisher is killed with -9 once its file is replicated, and one of the holders with
/// it, for good. Started again on its directory with no bootstrap address, the publisher
/// dials the peers it knew, still owns every chunk
/// (before the fix, `chunks_owned` fell to 0 and nothing was repaired), places the dead
/// holder's replicas on the node that held none, and gets back to full replication. A holder
/// killed with -9 and restarted still counts what it holds for others, and lost none of it.
#[test]
fn a_node_killed_with_9_resumes_repairing_what_it_published() {
    let work = tempfile::tempdir().unwrap();
    let first = Node::start("P", &Launch::default());
    let join = Launch {
        bootstrap: vec![first.listen],
        ..Launch::default()
    };
    let mut nodes = vec![first];
    for name in ["B", "C", "D", "E"] {
        nodes.push(Node::start(name, &join));
    }
    wait_until(
        "every node to know the four others",
        Duration::from_secs(60),
        || nodes.iter().all(|node| u64_of(node, "known_peers") >= 4),
    );
    let file = work.path().join("file");
    random_file(&file, 4 << 20, 12);
    let cap = nodes[0].cli(&["put", "--api", &nodes[0].url(), file.to_str().unwrap()]);
    assert!(cap.starts_with("cs:r:"), "{cap}");
    let mut owned = 0;
    wait_until(
        "3 holders for every chunk",
        Duration::from_secs(120),
        || {
            owned = u64_of(&nodes[0], "chunks_owned");
            owned > 0 && u64_of(&nodes[0], "chunks_replicated") == owned
        },
    );
    let held: Vec<u64> = nodes[1..]
        .iter()
        .map(|node| u64_of(node, "bytes_held_for_others"))
        .collect();
    // Every chunk follows the root to the same three holders: one node holds nothing.
    let spare = 1 + held
        .iter()
        .position(|&bytes| bytes == 0)
        .expect("a spare node");
    let dead = 1 + held.iter().position(|&bytes| bytes > 0).unwrap();
    let kept = (1..5).find(|&i| i != spare && i != dead).unwrap();

    // A holder killed and restarted knows what it holds for others.
    let before = u64_of(&nodes[kept], "bytes_held_for_others");
    nodes[kept].kill_9();
    let rejoin = Launch {
        bootstrap: vec![nodes[spare].listen],
        ..Launch::default()
    };
    nodes[kept].restart(&rejoin);
    let mut after = 0;
    let counted = Instant::now() + Duration::from_secs(10);
    while after != before && Instant::now() < counted {
        after = u64_of(&nodes[kept], "bytes_held_for_others");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(after, before, "{}", nodes[kept].log());
    assert_eq!(u64_of(&nodes[kept], "chunks_lost_at_start"), 0);

    nodes[0].kill_9();
    nodes[dead].kill_9();
    // No bootstrap address: it dials the peers it knew.
    nodes[0].restart(&Launch::default());
    wait_until(
        "the restarted publisher to own its chunks again",
        Duration::from_secs(10),
        || u64_of(&nodes[0], "chunks_owned") == owned,
    );
    let reconnect = Instant::now() + Duration::from_secs(30);
    while u64_of(&nodes[0], "connected_peers") < 3 {
        assert!(
            Instant::now() < reconnect,
            "the restarted publisher did not reconnect: {}\n{}",
            nodes[0].status(),
            nodes[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_until(
        "the restarted publisher to replace the dead holder",
        Duration::from_secs(240),
        || u64_of(&nodes[0], "chunks_replicated") == owned,
    );
    assert!(
        u64_of(&nodes[spare], "bytes_held_for_others") > 0,
        "the spare node got no replica"
    );
}
