//! One backoff for every retry loop: Redis round trips, Kinesis `PutRecords` and conditional
//! registry writes.
//!
//! The delay doubles from `first` up to `max`, and each wait adds a random jitter of up to half
//! the delay. The jitter is what makes writers that collided once (two materializations
//! committing, many Lambda sandboxes reconnecting to a Redis that came back) drift apart; it is
//! drawn from a generator seeded per process from the OS (`fastrand`), so two sandboxes never
//! share it the way they may share a process id. The nominal delay is a floor, so a caller can
//! rely on having waited at least it.

use std::time::Duration;

/// Exponential backoff with random jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first.min(max), max }
    }

    /// The next delay (the nominal one plus up to half of it again), advancing the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = u64::try_from(nominal.as_micros() / 2).unwrap_or(u64::MAX);
        nominal + Duration::from_micros(fastrand::u64(0..=half))
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_above_the_nominal_delay() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        for nominal in [50, 100, 200, 300, 300] {
            let d = b.next_delay();
            let nominal = Duration::from_millis(nominal);
            assert!(d >= nominal && d <= nominal + nominal / 2, "{d:?} for {nominal:?}");
        }
    }

    #[test]
    fn jitter_differs_between_waits() {
        // 20 draws from 0..=25 ms of jitter, all equal, would mean there is no jitter at all.
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| Backoff::new(Duration::from_millis(50), Duration::from_millis(50)).next_delay()).collect();
        assert!(delays.len() > 1, "{delays:?}");
    }
}
