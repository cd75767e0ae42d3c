//! The modelled network: per-peer upload and download bandwidth (each a FIFO link), a bound on
//! the bytes queued on each uplink, one-way latency between regions with jitter, random loss,
//! partitions, and dropped connections. It
//! decides when a frame reaches its receiver's downlink and when it is through it, or that it
//! does not arrive; peers never see it.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use cryptosphere::kernel::Time;

/// One peer's links.
#[derive(Debug, Clone)]
pub struct Links {
    pub region: u8,
    /// Bytes per second.
    pub up_bytes_per_s: f64,
    pub down_bytes_per_s: f64,
    up_free_at: Time,
    down_free_at: Time,
}

impl Links {
    pub fn new(region: u8, up_mbps: f64, down_mbps: f64) -> Links {
        Links {
            region,
            up_bytes_per_s: up_mbps * 1e6 / 8.0,
            down_bytes_per_s: down_mbps * 1e6 / 8.0,
            up_free_at: Time::default(),
            down_free_at: Time::default(),
        }
    }

    /// A restarted peer starts with idle links.
    pub fn reset(&mut self, now: Time) {
        self.up_free_at = now;
        self.down_free_at = now;
    }

    /// Bytes waiting on the uplink at `now`: the rest of its FIFO's busy time, at its rate.
    pub fn up_queued_bytes(&self, now: Time) -> u64 {
        (self.up_free_at.since(now) as f64 * self.up_bytes_per_s / 1e6) as u64
    }

    /// A `bytes`-long frame reaches this peer's downlink now: it crosses it after every frame
    /// that reached it earlier (FIFO). When it is through, to be delivered.
    pub fn receive(&mut self, now: Time, bytes: u64) -> Time {
        let received = now
            .max(self.down_free_at)
            .plus(transfer_us(bytes, self.down_bytes_per_s));
        self.down_free_at = received;
        received
    }
}

/// What becomes of a frame sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// It reaches the receiver's downlink at this time.
    Arrives(Time),
    /// Lost on the way, or cut by a partition, after it used the sender's uplink.
    Lost,
    /// Dropped before the sender's uplink, whose queue was full: it used nothing.
    Dropped,
}

/// Latency, loss, partitions, dropped connections, and the uplink queues' bound.
#[derive(Debug, Clone)]
pub struct Network {
    latency_us: Vec<Vec<u64>>,
    jitter: f64,
    loss: f64,
    uplink_queue_bytes_max: u64,
    /// While partitioned: each peer's side.
    pub sides: Option<Vec<bool>>,
    /// Dropped connections: for a pair of peers (lower index first), the number of the last
    /// frame sent anywhere before their connection was dropped. Frames between the two with
    /// that number or a lower one were on their way, and are lost.
    severed: BTreeMap<(u32, u32), u64>,
}

/// A pair of peers, lower index first: a connection has no direction.
fn pair(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

fn transfer_us(bytes: u64, bytes_per_s: f64) -> u64 {
    (bytes as f64 / bytes_per_s * 1e6).ceil() as u64
}

impl Network {
    pub fn new(
        latency_ms: &[Vec<f64>],
        jitter: f64,
        loss: f64,
        uplink_queue_bytes_max: u64,
    ) -> Network {
        let latency_us = latency_ms
            .iter()
            .map(|row| row.iter().map(|ms| (ms * 1e3) as u64).collect())
            .collect();
        Network {
            latency_us,
            jitter,
            loss,
            uplink_queue_bytes_max,
            sides: None,
            severed: BTreeMap::new(),
        }
    }

    /// The connection between `a` and `b` drops now, when `frames_sent` frames have been
    /// numbered: frames between them up to that number, both ways, are lost on their way.
    /// Later ones go through (on a new connection).
    pub fn sever(&mut self, a: u32, b: u32, frames_sent: u64) {
        self.severed.insert(pair(a, b), frames_sent);
    }

    /// Was frame number `frame` from `from` to `to` on its way when their connection dropped?
    pub fn severed(&self, from: u32, to: u32, frame: u64) -> bool {
        self.severed
            .get(&pair(from, to))
            .is_some_and(|last| frame <= *last)
    }

    /// Whether any dropped connection is still remembered.
    pub fn remembers_severed(&self) -> bool {
        !self.severed.is_empty()
    }

    /// Forgets dropped connections that no frame still on its way predates: `oldest` is the
    /// lowest number of a frame in flight (`None` if there is none). This keeps the map to the
    /// connections dropped while frames now in flight were being sent.
    pub fn forget_severed(&mut self, oldest: Option<u64>) {
        match oldest {
            Some(oldest) => self.severed.retain(|_, last| *last >= oldest),
            None => self.severed.clear(),
        }
    }

    /// When a `bytes`-long frame sent now from `from` reaches the downlink of `to` (then
    /// [`Links::receive`] takes it across), or why it does not. A frame that would queue more
    /// than the bound on the sender's uplink is dropped at once, so a slow sender cannot queue
    /// hours of frames. The uplink is charged whether or not the frame then arrives; the
    /// receiver's downlink only when it arrives, so a frame queued long behind a slow uplink
    /// holds no one else's downlink meanwhile.
    pub fn send(
        &self,
        now: Time,
        bytes: u64,
        (from_index, from): (usize, &mut Links),
        (to_index, to_region): (usize, u8),
        rng: &mut ChaCha8Rng,
    ) -> Sent {
        if from.up_queued_bytes(now).saturating_add(bytes) > self.uplink_queue_bytes_max {
            return Sent::Dropped;
        }
        let start = now.max(from.up_free_at);
        let sent = start.plus(transfer_us(bytes, from.up_bytes_per_s));
        from.up_free_at = sent;
        let lost = self.loss > 0.0 && rng.gen::<f64>() < self.loss;
        let cut = self
            .sides
            .as_ref()
            .is_some_and(|sides| sides.get(from_index) != sides.get(to_index));
        if lost || cut {
            return Sent::Lost;
        }
        let base = self.latency_us[usize::from(from.region)][usize::from(to_region)] as f64;
        let factor = if self.jitter > 0.0 {
            1.0 + rng.gen_range(-self.jitter..=self.jitter)
        } else {
            1.0
        };
        Sent::Arrives(sent.plus((base * factor).max(0.0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_dropped_connection_loses_earlier_frames_both_ways_and_is_forgotten() {
        let mut network = Network::new(&[vec![10.0]], 0.0, 0.0, 1 << 20);
        assert!(!network.severed(1, 2, 5));
        network.sever(2, 1, 7);
        for frame in [1, 6, 7] {
            assert!(network.severed(1, 2, frame) && network.severed(2, 1, frame));
        }
        assert!(!network.severed(1, 2, 8), "sent after the drop");
        assert!(!network.severed(1, 3, 6), "another connection");
        network.forget_severed(Some(7));
        assert!(network.severed(1, 2, 7), "frame 7 may still be on its way");
        network.forget_severed(Some(8));
        assert!(!network.remembers_severed());
        network.sever(1, 2, 9);
        network.forget_severed(None);
        assert!(!network.remembers_severed());
    }

    #[test]
    fn a_full_uplink_drops_frames_until_it_drains() {
        let network = Network::new(&[vec![10.0]], 0.0, 0.0, 1_000_000);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // 1,000 bytes/s up: a 600,000-byte frame keeps the uplink busy for 600 s.
        let mut from = Links::new(0, 0.008, 100.0);
        let now = Time(0);
        let first = network.send(now, 600_000, (0, &mut from), (1, 0), &mut rng);
        assert_eq!(first, Sent::Arrives(Time(600 * Time::SECOND + 10_000)));
        assert_eq!(from.up_queued_bytes(now), 600_000);
        // 600,000 + 400,000 fit the bound; one byte more does not.
        let dropped = network.send(now, 400_001, (0, &mut from), (1, 0), &mut rng);
        assert_eq!(dropped, Sent::Dropped);
        assert_eq!(
            from.up_queued_bytes(now),
            600_000,
            "a dropped frame takes no uplink"
        );
        assert!(matches!(
            network.send(now, 400_000, (0, &mut from), (1, 0), &mut rng),
            Sent::Arrives(_)
        ));
        assert_eq!(
            network.send(now, 1, (0, &mut from), (1, 0), &mut rng),
            Sent::Dropped
        );
        // 500 s later, 500,000 bytes have left.
        let later = Time(500 * Time::SECOND);
        assert_eq!(from.up_queued_bytes(later), 500_000);
        assert!(matches!(
            network.send(later, 500_000, (0, &mut from), (1, 0), &mut rng),
            Sent::Arrives(_)
        ));
    }
}
