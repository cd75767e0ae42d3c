//! Progress lines for runs whose stderr is not a terminal (a log, CI, a batch job): one line
//! every few seconds of wall time with the simulated time, the event rate and an estimate of
//! the time left. The wall clock is handed in, so this stays a plain state machine.

use cryptosphere::kernel::Time;

use crate::world::Progress;

/// Wall seconds between two lines by default.
pub const EVERY_S_DEFAULT: f64 = 10.0;

/// Decides when a progress line is due and writes it.
#[derive(Debug, Clone)]
pub struct ProgressLines {
    name: String,
    every_s: f64,
    next_s: f64,
}

impl ProgressLines {
    /// Lines for the run `name`, one every `every_s` wall seconds.
    pub fn new(name: &str, every_s: f64) -> ProgressLines {
        ProgressLines {
            name: name.to_owned(),
            every_s,
            next_s: every_s,
        }
    }

    /// The line due at `wall_s` wall seconds into the run, if one is.
    pub fn line(&mut self, progress: &Progress, wall_s: f64) -> Option<String> {
        if wall_s < self.next_s || progress.now >= progress.end {
            return None;
        }
        while self.next_s <= wall_s {
            self.next_s += self.every_s;
        }
        let now = progress.now.micros() as f64;
        let end = progress.end.micros().max(1) as f64;
        let done = (now / end).clamp(0.0, 1.0);
        let rate = progress.events as f64 / wall_s.max(1e-9);
        let eta = if done > 0.0 {
            format!("{:.0} s", wall_s * (1.0 - done) / done)
        } else {
            "unknown".to_owned()
        };
        Some(format!(
            "{}: simulated day {:.2} of {:.2} ({:.1} %), {} events, {:.2} M events/s, eta {eta}",
            self.name,
            now / Time::DAY as f64,
            end / Time::DAY as f64,
            100.0 * done,
            progress.events,
            rate / 1e6,
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(day_tenths: u64, events: u64) -> Progress {
        Progress {
            now: Time(day_tenths * Time::DAY / 10),
            end: Time(4 * Time::DAY),
            events,
        }
    }

    #[test]
    fn one_line_per_period_with_time_rate_and_eta() {
        let mut lines = ProgressLines::new("s", 10.0);
        assert_eq!(lines.line(&at(1, 1_000), 9.9), None);
        // 10 s in, a quarter of the way: 30 s left; 5 M events in 10 s.
        let line = lines.line(&at(10, 5_000_000), 10.0).unwrap();
        assert_eq!(
            line,
            "s: simulated day 1.00 of 4.00 (25.0 %), 5000000 events, 0.50 M events/s, eta 30 s"
        );
        assert_eq!(lines.line(&at(11, 5_500_000), 15.0), None);
        assert!(lines.line(&at(20, 10_000_000), 20.0).is_some());
        // A stall of several periods gives one line, not a burst.
        assert!(lines.line(&at(30, 15_000_000), 55.0).is_some());
        assert_eq!(lines.line(&at(31, 15_100_000), 59.0), None);
        // The end of the run prints nothing: the summary follows.
        assert_eq!(lines.line(&at(40, 20_000_000), 70.0), None);
    }
}
