//! Protocol steps of the four actors, on the small harness (a few peers, a fake clock).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use cryptosphere::kernel::content::{build, Content};
use cryptosphere::kernel::harness::{peer_id, Harness};
use cryptosphere::kernel::{
    Command, Event, Frame, KernelConfig, Payload, Request, StoreRequest, Time,
};

const LATENCY_US: u64 = 20 * Time::MILLISECOND;

fn config() -> KernelConfig {
    KernelConfig {
        check_interval_us: Time::HOUR,
        holder_dead_after_us: 3 * Time::HOUR,
        synthetic_payloads: true,
        ..KernelConfig::default()
    }
}

/// As the node runs: lookups on (contract partners before the ring), upkeep in minutes.
fn node_like() -> KernelConfig {
    KernelConfig {
        lookups: true,
        placements_in_flight_max: 96,
        check_interval_us: 10 * 60 * Time::SECOND,
        ..config()
    }
}

fn synthetic(seed: u64) -> Content {
    Content::Synthetic {
        size: 1_000_000,
        seed,
        chunk_bytes: 262_144,
    }
}

fn fetch_results(h: &Harness, peer: usize) -> Vec<(bool, u64)> {
    h.events
        .iter()
        .filter(|(i, _)| *i == peer)
        .filter_map(|(_, e)| match e {
            Event::FetchDone { ok, bytes, .. } => Some((*ok, *bytes)),
            _ => None,
        })
        .collect()
}

#[test]
fn published_chunks_get_their_replicas_and_can_be_fetched() {
    for content in [
        synthetic(1),
        Content::Bytes((0..2_500_000u32).map(|i| (i % 253) as u8).collect()),
    ] {
        let built = build(&content).unwrap();
        let mut h = Harness::new(8, config(), LATENCY_US);
        h.start_all();
        h.command(0, Command::Publish { content });
        h.run_for(Time::SECOND * 30);
        for (chunk, _) in &built.chunks {
            assert_eq!(h.holders(0, chunk), 3, "replicas of {chunk}");
        }
        assert!(h
            .events
            .iter()
            .any(|(i, e)| *i == 0 && matches!(e, Event::Published { .. })));
        h.command(5, Command::Fetch { root: built.root });
        h.run_for(Time::SECOND * 30);
        let root_len = built.chunks[0].1.len();
        assert_eq!(
            fetch_results(&h, 5),
            vec![(true, built.bytes + root_len + tree_overhead(&built))]
        );
    }
}

/// Bytes of the manifest objects below the root (multi-level trees only).
fn tree_overhead(built: &cryptosphere::kernel::content::Built) -> u64 {
    let data: u64 = built.chunks.iter().skip(1).map(|(_, p)| p.len()).sum();
    // Data chunks of real content are ciphertext: plaintext + 16-byte tag each.
    data - built.bytes
}

#[test]
fn a_departed_holder_is_replaced() {
    let mut h = Harness::new(8, config(), LATENCY_US);
    h.start_all();
    let built = build(&synthetic(2)).unwrap();
    h.command(
        0,
        Command::Publish {
            content: synthetic(2),
        },
    );
    h.run_for(Time::SECOND * 30);
    let chunk = built.chunks[1].0;
    let gone = (1..8).find(|i| h.peer(*i).store.holds(&chunk)).unwrap();
    h.set_online(gone, false);
    // Before the dead-after delay nothing is replaced; after it the count is back.
    h.run_for(2 * Time::HOUR);
    assert_eq!(h.holders(0, &chunk), 2);
    h.run_for(4 * Time::HOUR);
    assert_eq!(h.holders(0, &chunk), 3);
    assert!(h
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::ReplicaPlaced { repair: true, .. })));
}

#[test]
fn a_holder_that_lost_its_disk_is_caught_and_marked() {
    let mut h = Harness::new(8, config(), LATENCY_US);
    h.start_all();
    let built = build(&synthetic(3)).unwrap();
    h.command(
        0,
        Command::Publish {
            content: synthetic(3),
        },
    );
    h.run_for(Time::SECOND * 30);
    let chunk = built.chunks[1].0;
    let victim = (1..8).find(|i| h.peer(*i).store.holds(&chunk)).unwrap();
    let before = h.peer(0).reputation.score(&peer_id(victim));
    h.crash_with_disk_loss(victim, config());
    h.run_for(2 * Time::HOUR);
    assert_eq!(h.holders(0, &chunk), 3, "the lost replica was placed again");
    let after = h.peer(0).reputation.score(&peer_id(victim));
    assert!(after < before, "score {before} -> {after}");
    assert!(h.peer(0).reputation.record(&peer_id(victim)).misbehaved >= 1);
}

#[test]
fn fetching_with_every_holder_offline_fails_cleanly() {
    let mut h = Harness::new(
        6,
        KernelConfig {
            extra_candidates: 0,
            ..config()
        },
        LATENCY_US,
    );
    h.start_all();
    let built = build(&synthetic(4)).unwrap();
    h.command(
        0,
        Command::Publish {
            content: synthetic(4),
        },
    );
    h.run_for(Time::SECOND * 30);
    for i in 0..6 {
        if h.peer(i).store.holds(&built.root) {
            h.set_online(i, false);
        }
    }
    let fetcher = (1..6)
        .find(|i| !h.peer(*i).store.holds(&built.root) && h.peer(*i).transport.known_peers() > 0)
        .unwrap();
    h.command(fetcher, Command::Fetch { root: built.root });
    h.run_for(Time::SECOND * 120);
    assert_eq!(fetch_results(&h, fetcher), vec![(false, 0)]);
    // The silent peers were noticed.
    let silent = (1..6)
        .find(|i| h.peer(*i).store.holds(&built.root))
        .unwrap();
    assert!(
        h.peer(fetcher)
            .reputation
            .record(&peer_id(silent))
            .timed_out
            >= 1
    );
}

#[test]
fn a_payload_that_does_not_match_its_id_is_refused_and_marked() {
    let mut h = Harness::new(3, config(), LATENCY_US);
    h.start_all();
    let liar = peer_id(2);
    let built = build(&synthetic(5)).unwrap();
    let (chunk, _) = built.chunks[1].clone();
    h.inject(
        1,
        liar,
        Frame::Request {
            id: 7,
            body: Request::Store(StoreRequest::Store {
                chunk,
                payload: Payload::Synthetic { len: 5, seed: 5 },
                announce: false,
            }),
        },
    );
    assert!(!h.peer(1).store.holds(&chunk));
    assert_eq!(h.peer(1).reputation.record(&liar).misbehaved, 1);
    h.run_for(Time::SECOND);
    // Nothing was stored for it.
    assert_eq!(h.peer(1).store.bytes_for_others(), 0);
}

#[test]
fn quota_limits_what_a_peer_keeps_for_others() {
    let small = KernelConfig {
        storage_for_others_bytes: 300_000,
        ..config()
    };
    let mut h = Harness::new(5, small, LATENCY_US);
    h.start_all();
    h.command(
        0,
        Command::Publish {
            content: synthetic(6),
        },
    );
    h.run_for(Time::SECOND * 60);
    for i in 1..5 {
        assert!(
            h.peer(i).store.bytes_for_others() <= 300_000,
            "peer {i} over quota"
        );
    }
}

#[test]
fn a_real_node_refuses_synthetic_payloads_and_oversized_requests() {
    let strict = KernelConfig {
        synthetic_payloads: false,
        check_chunks_max: 4,
        ..config()
    };
    let mut h = Harness::new(3, strict, LATENCY_US);
    h.start_all();
    let built = build(&synthetic(7)).unwrap();
    let (chunk, payload) = built.chunks[1].clone();
    h.inject(
        1,
        peer_id(2),
        Frame::Request {
            id: 1,
            body: Request::Store(StoreRequest::Store {
                chunk,
                payload,
                announce: false,
            }),
        },
    );
    assert!(
        !h.peer(1).store.holds(&chunk),
        "a descriptor without bytes was kept"
    );
    assert_eq!(h.peer(1).reputation.record(&peer_id(2)).misbehaved, 1);
    // A frame over the size limit is dropped unread and its sender marked.
    let huge = Frame::Request {
        id: 2,
        body: Request::Store(StoreRequest::Check {
            chunks: vec![chunk; 100_000],
        }),
    };
    h.inject(1, peer_id(0), huge);
    assert_eq!(h.peer(1).reputation.record(&peer_id(0)).misbehaved, 1);
}

#[test]
fn a_misbehaving_peer_gets_no_more_replicas() {
    let mut h = Harness::new(8, config(), LATENCY_US);
    h.start_all();
    // Peer 3 sends peer 0 garbage five times: its score falls below the placement floor.
    let built = build(&synthetic(8)).unwrap();
    for id in 0..5 {
        let (chunk, _) = built.chunks[1].clone();
        h.inject(
            0,
            peer_id(3),
            Frame::Request {
                id,
                body: Request::Store(StoreRequest::Store {
                    chunk,
                    payload: Payload::Synthetic { len: 1, seed: id },
                    announce: false,
                }),
            },
        );
    }
    assert!(h.peer(0).reputation.score(&peer_id(3)) < 0.2);
    for seed in 10..30 {
        h.command(
            0,
            Command::Publish {
                content: synthetic(seed),
            },
        );
    }
    h.run_for(Time::SECOND * 60);
    for seed in 10..30 {
        for (chunk, _) in build(&synthetic(seed)).unwrap().chunks {
            assert!(
                !h.peer(3).store.holds(&chunk),
                "the marked peer was given a replica"
            );
        }
    }
    // The others did get them.
    assert!(h.peer(0).negotiator.replica_counts().all(|(_, n)| n == 3));
}

#[test]
fn a_publish_larger_than_the_stranger_allowance_makes_contracts_and_reaches_every_replica() {
    let node_like = node_like();
    let mut h = Harness::new(5, node_like, LATENCY_US);
    h.start_all();
    let big = Content::Synthetic {
        size: 64 << 20,
        seed: 99,
        chunk_bytes: 262_144,
    };
    h.command(0, Command::Publish { content: big });
    h.run_for(5 * 60 * Time::SECOND);
    let counts: Vec<usize> = h
        .peer(0)
        .negotiator
        .replica_counts()
        .map(|(_, n)| n)
        .collect();
    assert!(counts.len() > 256);
    assert!(
        counts.iter().all(|n| *n == 3),
        "{:?}",
        counts.iter().filter(|n| **n < 3).count()
    );
    // Well past the stranger allowance on every holder: it went on contracts.
    assert!(h.peer(0).negotiator.contracts().count() >= 3);
    // Every chunk of the tree is where its root is: three holders, not four.
    let held: Vec<u64> = (1..5).map(|i| h.peer(i).store.bytes_for_others()).collect();
    assert_eq!(held.iter().filter(|b| **b > 0).count(), 3, "{held:?}");
}

/// Five node-like peers; peer 4 a storage freeloader that publishes 8 MiB (content `seed`),
/// peer 0 fully altruistic if asked; run for five minutes.
fn a_freeloader_publishes(altruist_0: bool, seed: u64) -> Harness {
    let node_like = node_like();
    let mut h = Harness::new(5, node_like.clone(), LATENCY_US);
    if altruist_0 {
        let mut altruist = node_like.clone();
        altruist.strategy.altruism = 1.0;
        h.replace_config(0, altruist);
    }
    let mut freeloading = node_like;
    freeloading.strategy.storage_freeloader = true;
    h.replace_config(4, freeloading);
    h.start_all();
    let big = Content::Synthetic {
        size: 8 << 20,
        seed,
        chunk_bytes: 262_144,
    };
    h.command(4, Command::Publish { content: big });
    h.run_for(5 * 60 * Time::SECOND);
    h
}

#[test]
fn a_storage_freeloader_is_declined_and_held_to_the_allowance() {
    let node_like = node_like();
    let h = a_freeloader_publishes(false, 5);
    let declined = (0..4)
        .filter(|i| {
            h.peer(4)
                .negotiator
                .ledgers()
                .get(&peer_id(*i))
                .is_some_and(|l| l.declined_at.is_some())
        })
        .count();
    let allowance = node_like
        .strategy
        .stranger_storage_bytes(&node_like.economy);
    for i in 0..4 {
        assert!(h.peer(i).store.bytes_held_for(&peer_id(4)) <= allowance);
    }
    assert_eq!(h.peer(4).negotiator.contracts().count(), 0);
    assert!(declined >= 1, "{declined}");
}

#[test]
fn a_stranger_that_offers_nothing_in_return_spends_its_trial_except_with_altruists() {
    let h = a_freeloader_publishes(true, 6);
    let spent = |h: &Harness, i: usize| {
        h.peer(i)
            .negotiator
            .ledgers()
            .get(&peer_id(4))
            .is_some_and(|l| l.trial_spent)
    };
    let spenders: Vec<usize> = (1..4).filter(|i| spent(&h, *i)).collect();
    assert!(!spenders.is_empty(), "no provider judged the freeloader");
    for i in &spenders {
        // Its chunks went with its trial.
        assert_eq!(h.peer(*i).store.bytes_held_for(&peer_id(4)), 0, "peer {i}");
    }
    // A fully altruistic peer gives it a stranger's term whatever it offers.
    assert!(!spent(&h, 0));
}

/// Peers 3 and 4 collude: they deal with each other only, and praise each other on their
/// chains every record round; peers 0 to 2 are honest.
#[test]
fn colluders_hold_for_each_other_only_and_their_praise_is_on_both_chains() {
    let mut colluding = KernelConfig {
        chain_record_interval_us: Some(60 * Time::SECOND),
        ..node_like()
    };
    let honest = colluding.clone();
    let mut accomplices = vec![peer_id(3), peer_id(4)];
    accomplices.sort();
    colluding.strategy.accomplices = std::sync::Arc::from(accomplices);
    colluding.strategy.serves_only_accomplices = true;
    colluding.strategy.praise_bytes = 1 << 30;
    assert!(colluding.strategy.deals_with(&peer_id(4)));
    assert!(!colluding.strategy.deals_with(&peer_id(0)));
    assert!(honest.strategy.deals_with(&peer_id(0)));
    let mut h = Harness::new(5, honest, LATENCY_US);
    h.replace_config(3, colluding.clone());
    h.replace_config(4, colluding);
    h.start_all();
    for publisher in [0, 4] {
        let content = Content::Synthetic {
            size: 2 << 20,
            seed: 40 + publisher as u64,
            chunk_bytes: 262_144,
        };
        h.command(publisher, Command::Publish { content });
    }
    h.run_for(10 * 60 * Time::SECOND);
    // An honest publisher's chunks go to honest peers only: colluders decline them.
    assert_eq!(h.peer(3).store.bytes_held_for(&peer_id(0)), 0);
    assert_eq!(h.peer(4).store.bytes_held_for(&peer_id(0)), 0);
    assert!((1..3).all(|i| h.peer(i).store.bytes_held_for(&peer_id(0)) > 0));
    // A colluder's chunks: its accomplice holds them.
    assert!(h.peer(3).store.bytes_held_for(&peer_id(4)) > 0);
    // Praise: records on both colluders' chains of a gigabyte served between them.
    for (me, other) in [(3, 4), (4, 3)] {
        let own = h.peer(me).reputation.chains.as_ref().unwrap().own();
        let praised = own
            .iter()
            .filter(|r| r.counterparty == peer_id(other).0 && r.tx.bytes >= 1 << 30)
            .count();
        assert!(praised >= 2, "peer {me}: {praised} records of praise");
    }
    // Honest peers' chains hold no such record.
    for i in 0..3 {
        let own = h.peer(i).reputation.chains.as_ref().unwrap().own();
        assert!(own.iter().all(|r| r.tx.bytes < 1 << 30), "peer {i}");
    }
}

/// A node that keeps what it fetched announces itself as a provider of the tree once it has
/// it whole, so others find the copy (its holders and publisher may be gone by then).
#[test]
fn a_node_that_keeps_a_fetched_tree_announces_itself_as_its_provider() {
    let keeping = KernelConfig {
        keep_fetched: true,
        ..node_like()
    };
    let mut h = Harness::new(8, keeping, LATENCY_US);
    h.start_all();
    let built = build(&synthetic(7)).unwrap();
    h.command(
        0,
        Command::Publish {
            content: synthetic(7),
        },
    );
    h.run_for(Time::SECOND * 60);
    let providers = |h: &Harness| -> Vec<cryptosphere::kernel::PeerId> {
        let mut all: Vec<cryptosphere::kernel::PeerId> = (0..8)
            .flat_map(|i| h.peer(i).transport.providers_of(&built.root, h.now))
            .collect();
        all.sort();
        all.dedup();
        all
    };
    let fetcher = (1..8)
        .find(|i| !h.peer(*i).store.holds(&built.root))
        .unwrap();
    assert!(!providers(&h).contains(&peer_id(fetcher)));
    h.command(fetcher, Command::Fetch { root: built.root });
    h.run_for(Time::SECOND * 60);
    assert_eq!(fetch_results(&h, fetcher).len(), 1);
    assert!(fetch_results(&h, fetcher)[0].0);
    assert!(built
        .chunks
        .iter()
        .all(|(c, _)| h.peer(fetcher).store.holds(c)));
    assert!(
        providers(&h).contains(&peer_id(fetcher)),
        "{:?}",
        providers(&h)
    );
}

/// Without keeping what it fetches, a node announces nothing for it.
#[test]
fn a_node_that_keeps_nothing_fetched_announces_nothing() {
    let mut h = Harness::new(8, node_like(), LATENCY_US);
    h.start_all();
    let built = build(&synthetic(8)).unwrap();
    h.command(
        0,
        Command::Publish {
            content: synthetic(8),
        },
    );
    h.run_for(Time::SECOND * 60);
    let fetcher = (1..8)
        .find(|i| !h.peer(*i).store.holds(&built.root))
        .unwrap();
    h.command(fetcher, Command::Fetch { root: built.root });
    h.run_for(Time::SECOND * 60);
    assert!(fetch_results(&h, fetcher)[0].0);
    let announced = (0..8).any(|i| {
        h.peer(i)
            .transport
            .providers_of(&built.root, h.now)
            .contains(&peer_id(fetcher))
    });
    assert!(!announced);
}

/// A publisher restarted with its memory lost still owns its tree and keeps it replicated
/// (a holder that lost its disk meanwhile gets its replicas again), and a holder restarted
/// so counts what it holds for others as before.
#[test]
fn a_rebooted_peer_keeps_what_it_published_and_what_it_holds() {
    let mut h = Harness::new(8, config(), LATENCY_US);
    h.start_all();
    let built = build(&synthetic(8)).unwrap();
    h.command(
        0,
        Command::Publish {
            content: synthetic(8),
        },
    );
    h.run_for(Time::SECOND * 30);
    let holder = (1..8)
        .find(|i| h.peer(*i).store.holds(&built.root))
        .unwrap();
    let held = h.peer(holder).store.bytes_for_others();
    assert!(held > 0);
    h.reboot(holder, config());
    assert_eq!(h.peer(holder).store.bytes_for_others(), held);

    h.reboot(0, config());
    let other = (1..8)
        .find(|i| *i != holder && h.peer(*i).store.holds(&built.root))
        .unwrap();
    h.crash_with_disk_loss(other, config());
    h.run_for(Time::SECOND * 30);
    assert_eq!(
        h.peer(0).negotiator.replica_counts().count(),
        built.chunks.len(),
        "the rebooted publisher forgot its chunks"
    );
    for (chunk, _) in &built.chunks {
        assert_eq!(h.holders(0, chunk), 3, "replicas of {chunk}");
    }
}

/// With a deadline, a fetch that finds no source tries again (1, 2, 4 … s later) and
/// succeeds once a holder is back; without one coming back it fails once, within the
/// deadline.
#[test]
fn a_fetch_retries_within_its_deadline() {
    let patient = KernelConfig {
        extra_candidates: 0,
        fetch_deadline_us: 20 * Time::SECOND,
        ..config()
    };
    for comes_back in [true, false] {
        let mut h = Harness::new(6, patient.clone(), LATENCY_US);
        h.start_all();
        let built = build(&synthetic(9)).unwrap();
        h.command(
            0,
            Command::Publish {
                content: synthetic(9),
            },
        );
        h.run_for(Time::SECOND * 30);
        let holders: Vec<usize> = (0..6)
            .filter(|i| h.peer(*i).store.holds(&built.root))
            .collect();
        for &i in &holders {
            h.set_online(i, false);
        }
        let fetcher = (1..6).find(|i| !holders.contains(i)).unwrap();
        h.command(fetcher, Command::Fetch { root: built.root });
        h.run_for(Time::SECOND * 5);
        assert!(fetch_results(&h, fetcher).is_empty(), "it gave up at once");
        if comes_back {
            h.set_online(holders[0], true);
        }
        h.run_for(Time::SECOND * 40);
        let results = fetch_results(&h, fetcher);
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(results[0].0, comes_back, "{results:?}");
    }
}

/// A peer whose store fails to take a record of its own chain signs nothing more (no new
/// record, no countersignature) until the store has it: the chain in memory is never more
/// than that one record ahead of the disk, so a restart cannot make it sign a position
/// twice. Once the store works again, the disk catches up and recording goes on.
#[test]
fn a_failed_chain_append_stops_signing_until_the_store_takes_it() {
    use cryptosphere::chain::log;
    use cryptosphere::store::{MemoryBackend, Store};
    let config = KernelConfig {
        chain_record_interval_us: Some(60 * Time::SECOND),
        ..node_like()
    };
    let mut h = Harness::new(3, config.clone(), LATENCY_US);
    let backend = MemoryBackend::default();
    let disk = Store::new(backend.clone());
    h.replace_store(1, config, disk.clone());
    h.start_all();
    let mut seed = 60;
    let mut publish = |h: &mut Harness, publisher: usize| {
        seed += 1;
        let content = Content::Synthetic {
            size: 2 << 20,
            seed,
            chunk_bytes: 262_144,
        };
        h.command(publisher, Command::Publish { content });
    };
    let in_memory = |h: &Harness| h.peer(1).reputation.chains.as_ref().unwrap().own().len();
    let on_disk = || {
        let records = log::read(&disk, &peer_id(1).0, 1, usize::MAX).unwrap();
        cryptosphere::chain::verify_chain(&records).unwrap();
        records.len()
    };
    for publisher in [0, 1, 2] {
        publish(&mut h, publisher);
    }
    h.run_for(20 * 60 * Time::SECOND);
    let before = in_memory(&h);
    assert!(before >= 1, "peer 1 recorded nothing");
    assert_eq!(on_disk(), before);

    backend.set_chain_writes_failing(true);
    for round in 0..6 {
        publish(&mut h, round % 3);
        h.run_for(10 * 60 * Time::SECOND);
        assert!(
            in_memory(&h) <= on_disk() + 1,
            "signed on past a record the disk lacks"
        );
    }
    assert_eq!(
        in_memory(&h),
        before + 1,
        "one record was agreed and not stored, and nothing after it"
    );

    backend.set_chain_writes_failing(false);
    for round in 0..3 {
        publish(&mut h, round % 3);
        h.run_for(10 * 60 * Time::SECOND);
    }
    assert!(in_memory(&h) > before + 1, "recording did not go on");
    assert_eq!(on_disk(), in_memory(&h));
}
