//! Who may connect: the listener's limits on connections in total and per IP address, and
//! the strikes that ban an address for a while. A peer that never completed a handshake has
//! no identity for the reputation filter to mark, so its address is what gets the strike.
//! Sans-IO: the host asks, the gate answers; time comes in as an argument.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::kernel::Time;

/// The gate's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    pub connections_max: usize,
    pub connections_per_ip_max: usize,
    /// Strikes (garbage handshakes, broken frames) that ban an address.
    pub strikes_to_ban: u32,
    pub ban_us: u64,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            connections_max: 2_048,
            connections_per_ip_max: 64,
            strikes_to_ban: 8,
            ban_us: 10 * 60 * Time::SECOND,
        }
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many connections in total")]
    Full,
    #[error("too many connections from this address")]
    AddressFull,
    #[error("this address is banned for misbehaving")]
    Banned,
}

#[derive(Debug)]
pub struct Gate {
    limits: GateLimits,
    open: BTreeMap<IpAddr, usize>,
    total: usize,
    /// Strikes since the last ban ended, and when the ban (if any) ends.
    strikes: BTreeMap<IpAddr, (u32, Option<Time>)>,
    refused: u64,
}

impl Gate {
    pub fn new(limits: GateLimits) -> Gate {
        Gate {
            limits,
            open: BTreeMap::new(),
            total: 0,
            strikes: BTreeMap::new(),
            refused: 0,
        }
    }

    pub fn open_connections(&self) -> usize {
        self.total
    }

    /// Connections turned away so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Lets a connection from `ip` in (and counts it), or says why not.
    pub fn admit(&mut self, ip: IpAddr, now: Time) -> Result<(), Refused> {
        let verdict = self.verdict(ip, now);
        match verdict {
            Ok(()) => {
                *self.open.entry(ip).or_default() += 1;
                self.total += 1;
            }
            Err(_) => self.refused += 1,
        }
        verdict
    }

    fn verdict(&mut self, ip: IpAddr, now: Time) -> Result<(), Refused> {
        if let Some((count, until)) = self.strikes.get_mut(&ip) {
            match until {
                Some(end) if now < *end => return Err(Refused::Banned),
                Some(_) => {
                    *count = 0;
                    *until = None;
                }
                None => {}
            }
        }
        if self.total >= self.limits.connections_max {
            return Err(Refused::Full);
        }
        if self.open.get(&ip).copied().unwrap_or(0) >= self.limits.connections_per_ip_max {
            return Err(Refused::AddressFull);
        }
        Ok(())
    }

    /// A connection admitted earlier closed.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(count) = self.open.get_mut(&ip) {
            *count -= 1;
            self.total -= 1;
            if *count == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// `ip` misbehaved; enough strikes ban it.
    pub fn strike(&mut self, ip: IpAddr, now: Time) {
        if self.strikes.len() >= self.limits.connections_max && !self.strikes.contains_key(&ip) {
            // Bounded memory: forget the strikes of the oldest-sorted address first.
            self.strikes.pop_first();
        }
        let entry = self.strikes.entry(ip).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= self.limits.strikes_to_ban {
            entry.1 = Some(now.plus(self.limits.ban_us));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_bans_hold() {
        let limits = GateLimits {
            connections_max: 3,
            connections_per_ip_max: 2,
            strikes_to_ban: 2,
            ban_us: 100,
        };
        let mut gate = Gate::new(limits);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "::1".parse().unwrap());
        assert_eq!(gate.admit(a, Time(0)), Ok(()));
        assert_eq!(gate.admit(a, Time(0)), Ok(()));
        assert_eq!(gate.admit(a, Time(0)), Err(Refused::AddressFull));
        assert_eq!(gate.admit(b, Time(0)), Ok(()));
        assert_eq!(gate.admit(b, Time(0)), Err(Refused::Full));
        gate.release(a);
        gate.strike(b, Time(0));
        gate.strike(b, Time(0));
        assert_eq!(gate.admit(b, Time(50)), Err(Refused::Banned));
        assert_eq!(gate.admit(b, Time(100)), Ok(()));
        assert_eq!(gate.refused(), 3);
        assert_eq!(gate.open_connections(), 3);
    }
}
