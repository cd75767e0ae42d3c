//! Real nodes on loopback: five processes, a 64 MiB put on one, `kill -9` of it once the
//! file is replicated, and a byte-identical get through a node that held none of it. Also
//! the node's command-line contract: graceful shutdown, status, metrics, bad requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{put_kill_get, wait_until, Launch, Node};

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
    let mut nodes = five_nodes();
    put_kill_get(&mut nodes, 64 << 20, Duration::from_secs(120));
    // Each of the four actors has its own mailbox: every one of them took inputs (frames,
    // chunks to keep, commands, observations), and once the node is idle none waits.
    for node in &nodes[1..] {
        wait_until("the mailboxes to empty", Duration::from_secs(30), || {
            let status = node.status();
            let boxes = status["mailboxes"].as_object().unwrap().clone();
            assert_eq!(boxes.len(), 4, "{status}");
            for actor in ["transport", "store", "negotiator", "reputation"] {
                let depth_max = boxes[actor]["depth_max"].as_u64().unwrap();
                assert!(depth_max >= 1, "{actor}: {status}");
            }
            boxes.values().all(|b| b["depth"].as_u64() == Some(0))
        });
        let metrics = node.metrics();
        for actor in ["transport", "store", "negotiator", "reputation"] {
            for name in ["mailbox_depth", "mailbox_depth_max"] {
                let line = format!("\ncryptosphere_{name}{{actor=\"{actor}\"}} ");
                assert!(metrics.contains(&line), "{line}: {metrics}");
            }
        }
    }
}

#[test]
fn a_node_shuts_down_cleanly_and_answers_bad_requests_with_reasons() {
    // A get with no source gives up at once (the deadline is tested in `restart.rs`).
    let quick = Launch {
        extra: vec!["--fetch-deadline-secs".into(), "0".into()],
        ..Launch::default()
    };
    let mut node = Node::start("solo", &quick);
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
    for count in [
        "contracts",
        "ledgers",
        "peers_disqualified",
        "audits_passed",
        "chain_records",
    ] {
        assert_eq!(status[count], 0, "{count}: {status}");
    }
    // A node alone: its strategy (the defaults), no contracts, no ledgers, an empty chain.
    let economy = node.api_json("/v1/contracts");
    assert_eq!(economy["peer"].as_str().unwrap(), node.peer);
    assert_eq!(economy["strategy"]["altruism"], 0.5, "{economy}");
    assert_eq!(economy["strategy"]["offer_bytes"], 10u64 << 30, "{economy}");
    assert_eq!(
        economy["strategy"]["stranger_storage_bytes"],
        4u64 << 20,
        "{economy}"
    );
    assert_eq!(economy["strategy"]["contract_term_s"], 86_400, "{economy}");
    assert_eq!(economy["contracts"], serde_json::json!([]), "{economy}");
    assert_eq!(economy["ledgers"], serde_json::json!([]), "{economy}");
    let chain = node.api_json("/v1/chain");
    assert_eq!(chain["owner"].as_str().unwrap(), node.peer);
    assert_eq!(chain["length"], 0, "{chain}");
    for (query, problem) in [
        ("limit=0", "limit=\"0\" is not a count from 1 to 4096"),
        ("from=x", "from=\"x\" is not a position"),
        ("page=2", "unknown parameter \"page\""),
    ] {
        match ureq::get(&format!("{}/v1/chain?{query}", node.url())).call() {
            Err(ureq::Error::Status(400, response)) => {
                let text = response.into_string().unwrap();
                assert!(text.contains(problem), "{query}: {text}");
            }
            other => panic!("{query}: expected 400, got {other:?}"),
        }
    }
    // A view without parameters refuses any; a path the API lacks is named in a 404.
    for (path, code, problem) in [
        ("/v1/peers?x=1", 400, "unknown parameter \"x\""),
        ("/v1/status?verbose", 400, "unknown parameter \"verbose\""),
        ("/v1/peer", 404, "no such path \"/v1/peer\""),
        ("/nope", 404, "/v1/peers"),
    ] {
        match ureq::get(&format!("{}{path}", node.url())).call() {
            Err(ureq::Error::Status(status, response)) if status == code => {
                let text = response.into_string().unwrap();
                assert!(text.contains(problem), "{path}: {text}");
            }
            other => panic!("{path}: expected {code}, got {other:?}"),
        }
    }
    let table = node.cli(&["node", "contracts", "--api", &node.url()]);
    assert!(
        table.contains("altruism 0.5, adversary none") && table.contains("contracts: 0"),
        "{table}"
    );

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

/// gc on a holder's data directory keeps the replicas it holds for others (a dry run says
/// what it would delete, and deletes nothing), and takes only what nothing needs.
#[test]
fn gc_keeps_replicas_held_for_others() {
    let work = tempfile::tempdir().unwrap();
    let a = Node::start("A", &Launch::default());
    let mut b = Node::start(
        "B",
        &Launch {
            bootstrap: vec![a.listen],
            ..Launch::default()
        },
    );
    let file = work.path().join("published");
    common::random_file(&file, 900_000, 31);
    common::cli(&["put", "--api", &a.url(), file.to_str().unwrap()]);
    wait_until(
        "B to hold replicas of A's file",
        Duration::from_secs(60),
        || {
            let owned = a.status()["chunks_owned"].as_u64().unwrap();
            owned > 0 && b.status()["chunks_held"].as_u64().unwrap() == owned
        },
    );
    // B has nothing of its own: everything it holds, it holds for A.
    let held = b.status()["chunks_held"].as_u64().unwrap();
    assert!(held > 0);
    assert!(b.terminate().success());
    let data = b.dir.to_str().unwrap().to_owned();
    let gc = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--data-dir", &data, "gc", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&common::cli(&all)).unwrap()
    };
    let stats = || -> u64 {
        let text = common::cli(&["--data-dir", &data, "stats", "--json"]);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["chunks"]
            .as_u64()
            .unwrap()
    };
    // Something nothing needs: a local put, unpinned.
    let junk = work.path().join("junk");
    common::random_file(&junk, 300_000, 32);
    let cap = common::cli(&["--data-dir", &data, "put", junk.to_str().unwrap()]);
    common::cli(&["--data-dir", &data, "unpin", &cap]);
    let before = stats();

    let planned = gc(&["--dry-run"]);
    assert_eq!(planned["dry_run"], true, "{planned}");
    assert_eq!(
        planned["kept_for_others"].as_u64().unwrap(),
        held,
        "{planned}"
    );
    let doomed = planned["would_remove"].as_array().unwrap().len() as u64;
    assert!(doomed >= 1, "{planned}");
    assert_eq!(planned["removed_chunks"].as_u64().unwrap(), doomed);
    assert_eq!(stats(), before, "a dry run deleted something");
    let text = common::cli(&["--data-dir", &data, "gc", "--dry-run"]);
    assert!(
        text.lines()
            .filter(|l| l.starts_with("would remove "))
            .count() as u64
            == doomed + 1,
        "{text}"
    );

    let done = gc(&[]);
    assert_eq!(done["removed_chunks"].as_u64().unwrap(), doomed, "{done}");
    assert_eq!(done["kept_for_others"].as_u64().unwrap(), held, "{done}");
    assert_eq!(stats(), before - doomed);
    assert_eq!(stats(), held);
}
