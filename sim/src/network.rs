//! The modelled network: per-peer upload and download bandwidth (each a FIFO link), one-way
//! latency between regions with jitter, random loss, and partitions. It decides when a
//! message arrives, or that it does not; peers never see it.

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
}

/// Latency, loss and partitions.
#[derive(Debug, Clone)]
pub struct Network {
    latency_us: Vec<Vec<u64>>,
    jitter: f64,
    loss: f64,
    /// While partitioned: each peer's side.
    pub sides: Option<Vec<bool>>,
}

fn transfer_us(bytes: u64, bytes_per_s: f64) -> u64 {
    (bytes as f64 / bytes_per_s * 1e6).ceil() as u64
}

impl Network {
    pub fn new(latency_ms: &[Vec<f64>], jitter: f64, loss: f64) -> Network {
        let latency_us = latency_ms
            .iter()
            .map(|row| row.iter().map(|ms| (ms * 1e3) as u64).collect())
            .collect();
        Network {
            latency_us,
            jitter,
            loss,
            sides: None,
        }
    }

    /// When a `bytes`-long message sent now from `from` reaches `to`, or `None` if it is
    /// lost. The sender's uplink is charged whether or not the message arrives; the
    /// receiver's downlink is booked, when the message is sent, only for one that arrives.
    pub fn send(
        &self,
        now: Time,
        bytes: u64,
        (from_index, from): (usize, &mut Links),
        (to_index, to): (usize, &mut Links),
        rng: &mut ChaCha8Rng,
    ) -> Option<Time> {
        let start = now.max(from.up_free_at);
        let sent = start.plus(transfer_us(bytes, from.up_bytes_per_s));
        from.up_free_at = sent;
        let lost = self.loss > 0.0 && rng.gen::<f64>() < self.loss;
        let cut = self
            .sides
            .as_ref()
            .is_some_and(|sides| sides.get(from_index) != sides.get(to_index));
        if lost || cut {
            return None;
        }
        let base = self.latency_us[usize::from(from.region)][usize::from(to.region)] as f64;
        let factor = if self.jitter > 0.0 {
            1.0 + rng.gen_range(-self.jitter..=self.jitter)
        } else {
            1.0
        };
        let arrives = sent.plus((base * factor).max(0.0) as u64);
        let received = arrives
            .max(to.down_free_at)
            .plus(transfer_us(bytes, to.down_bytes_per_s));
        to.down_free_at = received;
        Some(received)
    }
}
