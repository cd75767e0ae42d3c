//! The host's own handling of frames, on a world of two peers driven event by event: what a
//! dropped connection loses.

use super::*;

const TWO_PEERS: &str = r#"
seed = 1
duration_hours = 1

[network]
regions = [{ name = "eu", weight = 1.0 }]
latency_ms = [[20.0]]

[[group]]
name = "peers"
count = 2
storage_mib = 16
upload_mbps = 100.0
download_mbps = 100.0
mean_online_hours = 100.0

[workload]
publish_per_peer_per_day = 0.0
object_bytes_min = 1
object_bytes_max = 1
fetch_per_peer_per_day = 0.0
"#;

fn two_peers() -> World {
    let scenario = Scenario::parse(TWO_PEERS, "two.toml").unwrap();
    World::new(&scenario, "two", 1)
}

/// The numbers of the frames on their way from `from` to `to`.
fn in_flight(world: &World, from: u32, to: u32) -> Vec<u64> {
    world
        .queue
        .iter()
        .filter_map(|event| match event {
            SimEvent::AtDownlink {
                to: t,
                from: f,
                number,
                ..
            }
            | SimEvent::Deliver {
                to: t,
                from: f,
                number,
                ..
            } if (*f, *t) == (from, to) => Some(*number),
            _ => None,
        })
        .collect()
}

/// Runs the events up to `until`; returns the frames delivered, as (from, to, number).
fn run_until(world: &mut World, until: Time) -> Vec<(u32, u32, u64)> {
    let mut delivered = Vec::new();
    while let Some((at, event)) = world.queue.pop() {
        if at > until {
            break;
        }
        world.now = at;
        if let SimEvent::Deliver {
            to, from, number, ..
        } = &event
        {
            if world.deliverable(*to, *from, *number) {
                delivered.push((*from, *to, *number));
            }
        }
        world.handle(event);
    }
    delivered
}

#[test]
fn a_dropped_connection_loses_the_frames_on_their_way_both_ways() {
    let mut world = two_peers();
    // At start each peer greeted the other: frames reaching the other's downlink in 20 ms.
    let (a_to_b, b_to_a) = (in_flight(&world, 0, 1), in_flight(&world, 1, 0));
    assert!(
        !a_to_b.is_empty() && !b_to_a.is_empty(),
        "{a_to_b:?} {b_to_a:?}"
    );
    let again = world
        .queue
        .iter()
        .find_map(|event| match event {
            SimEvent::AtDownlink { from: 0, frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .unwrap();

    // 1 ms later peer 0's step drops its connection to peer 1 (as its transport does when a
    // peer breaks the protocol), then sends peer 1 a frame: on a new connection.
    world.now = Time(Time::MILLISECOND);
    let b = world.peers[1].peer.id();
    world.outbox.clear();
    world.outbox.effects().disconnects.push(b);
    world.outbox.effects().wire.push((b, again));
    world.after_step(0);
    let after = world.frames_sent;
    assert_eq!(in_flight(&world, 0, 1).last(), Some(&after));

    let delivered = run_until(&mut world, Time(Time::SECOND));
    for number in a_to_b.iter().chain(&b_to_a) {
        assert!(
            !delivered.iter().any(|(_, _, n)| n == number),
            "frame {number} was on its way when the connection dropped: {delivered:?}"
        );
    }
    assert!(delivered.contains(&(0, 1, after)), "{delivered:?}");
    assert!(
        delivered.iter().any(|&(from, _, n)| from == 1 && n > after),
        "peer 1 answers on the new connection: {delivered:?}"
    );
    // No frame on its way now predates the drop, so it is forgotten.
    world.forget_severed();
    assert!(!world.network.remembers_severed());
}
